//! Evaluations of generator models: samples, reconstruction error, anomaly detection (AUPRC).

use super::EVAL_BATCH;
use crate::check::Langevin;
use crate::runtime::data::Dataset;
use crate::runtime::error::{Context, Result, RuntimeError};
use crate::runtime::exec::ParamMode;
use crate::runtime::rundir::RunDir;
use crate::runtime::train::Session;
use candle_core::Tensor;

/// The configured prior chain, or none when the prior is the reference density itself.
fn prior_sampler(s: &Session) -> Option<Langevin> {
    s.spec
        .model
        .prior
        .as_ref()
        .and(s.spec.learn.prior_sampler.clone())
}

/// `n` samples: z from the prior (Langevin on `prior_grad` from p0), x = the generator's mean.
pub fn samples(s: &mut Session, n: usize, dir: &RunDir, file: &str) -> Result<()> {
    if !s.exec.has_function("generator") {
        return Ok(());
    }
    let z0 = s.draw_reference(n)?;
    let z = match prior_sampler(s) {
        Some(cfg) => s.prior_chain(z0, &cfg)?,
        None => z0,
    };
    let x = s.exec.call1(
        "generator",
        &[(&s.latent, &z)],
        &ParamMode::Detached(&s.params),
    )?;
    write_grid(s, &x, n, dir, file)
}

pub(super) fn write_grid(
    s: &Session,
    x: &Tensor,
    n: usize,
    dir: &RunDir,
    name: &str,
) -> Result<()> {
    let var = s
        .spec
        .variables
        .iter()
        .find(|v| v.observed && v.is_continuous())
        .expect("checked: an observed variable");
    let (c, h, w) = match var.shape.as_slice() {
        [c, h, w] => (*c, *h, *w),
        [d] => {
            let side = (*d as f64).sqrt() as usize;
            if side * side == *d {
                (1, side, side)
            } else {
                return Ok(());
            }
        }
        _ => return Ok(()),
    };
    let flat: Vec<f32> = x
        .flatten_all()
        .ctx("samples")?
        .to_dtype(candle_core::DType::F32)
        .ctx("samples")?
        .to_vec1()
        .ctx("samples")?;
    let range = var.range.map_or((-1.0, 1.0), |(a, b)| (a as f32, b as f32));
    let upscale = if h <= 16 { 4 } else { 2 };
    crate::runtime::image::write_grid_png(&dir.file(name), &flat, n, c, h, w, range, upscale)
        .map_err(|e| RuntimeError::io(dir.file(name), &e))
}

/// Infers z for a batch by posterior Langevin from p0 (the training chain's settings).
fn infer(s: &mut Session, x: &Tensor) -> Result<Tensor> {
    let b = x.dim(0).ctx("batch")?;
    let cfg = s
        .spec
        .learn
        .posterior_sampler
        .clone()
        .ok_or_else(|| RuntimeError::Unsupported {
            what: "posterior inference without `learn.posterior_sampler`".into(),
        })?;
    let z0 = s.draw_reference(b)?;
    s.posterior_chain(x, z0, &cfg)
}

pub(super) fn batches(d: &Dataset) -> impl Iterator<Item = Vec<usize>> + '_ {
    (0..d.len())
        .step_by(EVAL_BATCH)
        .map(move |i| (i..(i + EVAL_BATCH).min(d.len())).collect())
}

pub(super) fn tensor(s: &Session, d: &Dataset, idx: &[usize]) -> Result<Tensor> {
    let mut shape = vec![idx.len()];
    shape.extend(&d.shape);
    Tensor::from_vec(d.batch(idx), shape, &s.device)
        .ctx("uploading test data")?
        .to_dtype(s.dtype)
        .ctx("test data")
}

/// Mean squared error per pixel between test images and the generator's mean at the inferred z.
pub fn reconstruction_mse(s: &mut Session, test: &Dataset) -> Result<f64> {
    let (mut total, mut count) = (0.0, 0usize);
    for idx in batches(test) {
        let x = tensor(s, test, &idx)?;
        let z = infer(s, &x)?;
        total += s.reconstruction_error(&x, &z)? * idx.len() as f64;
        count += idx.len();
    }
    Ok(total / count.max(1) as f64)
}

/// AUPRC with the held-out digit as the positive class; the score is −log p(x, z) at the inferred
/// z (the unnormalised log-posterior of paper 002 §3.4, negated so that higher = more anomalous).
pub fn anomaly_auprc(s: &mut Session, test: &Dataset, heldout: u32) -> Result<f64> {
    let labels = test
        .labels
        .as_ref()
        .ok_or_else(|| RuntimeError::Unsupported {
            what: "anomaly scores without labels".into(),
        })?;
    let mut scored: Vec<(f64, bool)> = Vec::with_capacity(test.len());
    for idx in batches(test) {
        let x = tensor(s, test, &idx)?;
        let z = infer(s, &x)?;
        let observed = s.observed.clone();
        let lp = s.exec.call1(
            "posterior_log_density",
            &[(&observed, &x), (&s.latent, &z)],
            &ParamMode::Detached(&s.params),
        )?;
        let lp: Vec<f64> = lp
            .to_dtype(candle_core::DType::F64)
            .ctx("scores")?
            .to_vec1()
            .ctx("scores")?;
        scored.extend(
            lp.iter()
                .zip(&idx)
                .map(|(v, &i)| (-v, labels[i] == heldout)),
        );
    }
    Ok(auprc(&mut scored))
}

/// Area under the precision-recall curve (trapezoidal over recall, as scikit-learn's
/// `auc(recall, precision)` on `precision_recall_curve`), positives = `true`.
pub fn auprc(scored: &mut [(f64, bool)]) -> f64 {
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let positives = scored.iter().filter(|(_, p)| *p).count();
    if positives == 0 {
        return f64::NAN;
    }
    // Points at each distinct threshold, from the highest score down.
    let mut points = vec![(0.0f64, 1.0f64)];
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut i = 0;
    while i < scored.len() {
        let t = scored[i].0;
        while i < scored.len() && scored[i].0 == t {
            if scored[i].1 {
                tp += 1
            } else {
                fp += 1
            }
            i += 1;
        }
        points.push((tp as f64 / positives as f64, tp as f64 / (tp + fp) as f64));
    }
    points
        .windows(2)
        .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::auprc;

    #[test]
    fn auprc_of_a_perfect_ranking_is_one_and_of_a_reversed_one_is_low() {
        let mut perfect = vec![(3.0, true), (2.0, true), (1.0, false), (0.0, false)];
        assert!((auprc(&mut perfect) - 1.0).abs() < 1e-12);
        let mut reversed = vec![(3.0, false), (2.0, false), (1.0, true), (0.0, true)];
        assert!(auprc(&mut reversed) < 0.6);
    }

    #[test]
    fn auprc_matches_a_hand_computed_curve() {
        // Ranking: +, -, +, -  → (recall, precision): (0,1), (0.5,1), (0.5,0.5), (1,2/3), (1,0.5)
        let mut s = vec![(4.0, true), (3.0, false), (2.0, true), (1.0, false)];
        let expected = 0.5 * (1.0 + 1.0) / 2.0 + 0.0 + 0.5 * (0.5 + 2.0 / 3.0) / 2.0 + 0.0;
        assert!((auprc(&mut s) - expected).abs() < 1e-12);
    }
}
