//! Evaluations of the data-space energy E(x) (the marginal energy the compiler derived): samples by
//! SGLD, and out-of-distribution detection (paper 003 Table 1; the authors' `oodauc`).

use super::generation::{batches, tensor, write_grid};
use crate::check::{BuiltinData, Split};
use crate::runtime::data::{self, Dataset};
use crate::runtime::error::{Context, Result, RuntimeError};
use crate::runtime::exec::ParamMode;
use crate::runtime::replay::{self, BUFFER_KEY};
use crate::runtime::rundir::RunDir;
use crate::runtime::train::Session;
use candle_core::{DType, Tensor};

/// SGLD steps of a chain that starts from uniform noise (paper 003 §7.2: "500 SGLD steps").
const FRESH_STEPS: usize = 500;

/// `n` samples of an energy model. With a replay buffer (the persistent chains of training), `n`
/// random entries of it run the configured number of SGLD steps more under the final parameters;
/// without one, chains start from uniform noise and run 500 steps, as the paper's figures.
pub fn samples(s: &mut Session, n: usize, dir: &RunDir, file: &str) -> Result<()> {
    let f = replay::data_energy(&s.exec, &s.observed)?;
    let Some(cfg) = s.spec.learn.sampler.clone() else {
        return Ok(());
    };
    let (x0, cfg) = match s.algorithm_state.get(BUFFER_KEY) {
        Some(buffer) => {
            let size = buffer.dim(0).ctx("replay buffer")?;
            let idx: Vec<u32> = s
                .rng
                .index_sample(size, n.min(size), false)
                .into_iter()
                .map(|i| i as u32)
                .collect();
            let idx = Tensor::new(idx.as_slice(), &s.device).ctx("samples")?;
            (buffer.index_select(&idx, 0).ctx("samples")?, cfg)
        }
        None => {
            let mut dims = vec![n];
            dims.extend(s.exec.inputs_of(f.energy)?[0].1.dims.iter());
            let x0 = s
                .rng
                .uniform(&dims, cfg.init.0, cfg.init.1, &s.device, s.dtype)?;
            let steps = cfg.steps.max(FRESH_STEPS);
            (x0, crate::check::Sgld { steps, ..cfg })
        }
    };
    let params = ParamMode::Detached(&s.params);
    let (x, _) = replay::sgld(&s.exec, f, &s.observed, x0, &cfg, &params, &mut s.rng)?;
    let n = x.dim(0).ctx("samples")?;
    write_grid(s, &x, n, dir, file)
}

/// `ood_auroc_logp_<set>` and `ood_auroc_grad_<set>`: AUROC of separating the test split (positive)
/// from the test split of `against`, scored by log p(x) = −E(x + σε) (σ = the training data noise,
/// as the authors score) and by −‖∇x E(x)‖₂ (Grathwohl et al.'s score, on the clean x).
pub fn ood_auroc(
    s: &mut Session,
    test: &Dataset,
    against: BuiltinData,
) -> Result<Vec<(String, f64)>> {
    let other = load_against(s, test, against)?;
    let (in_logp, in_grad) = scores(s, test)?;
    let (out_logp, out_grad) = scores(s, &other)?;
    let name = against.name().replace('-', "_");
    Ok(vec![
        (format!("ood_auroc_logp_{name}"), auroc(&in_logp, &out_logp)),
        (format!("ood_auroc_grad_{name}"), auroc(&in_grad, &out_grad)),
    ])
}

/// The other set's test split, scaled to the observed variable's range like the training data.
fn load_against(s: &Session, test: &Dataset, against: BuiltinData) -> Result<Dataset> {
    let d =
        data::load_builtin(against, Split::Test, s.spec.data.seed, &s.data_dir).map_err(|e| {
            RuntimeError::Io {
                path: s.data_dir.display().to_string(),
                message: format!("ood_auroc against {}: {e}", against.name()),
            }
        })?;
    if d.dim() != test.dim() {
        return Err(RuntimeError::Unsupported {
            what: format!(
                "ood_auroc against {} (examples {:?}) for a model of {:?} examples",
                against.name(),
                d.shape,
                test.shape
            ),
        });
    }
    let range = s
        .spec
        .variables
        .iter()
        .find(|v| v.name == s.observed)
        .and_then(|v| v.range);
    Ok(match range {
        Some((lo, hi)) => d.scaled(lo as f32, hi as f32),
        None => d,
    })
}

/// Per example: (−E(x + σε), −‖∇x E(x)‖₂).
fn scores(s: &mut Session, d: &Dataset) -> Result<(Vec<f64>, Vec<f64>)> {
    let f = replay::data_energy(&s.exec, &s.observed)?;
    let sigma = s.spec.learn.data_noise;
    let (mut logp, mut grad) = (Vec::with_capacity(d.len()), Vec::with_capacity(d.len()));
    for idx in batches(d) {
        let x = tensor(s, d, &idx)?;
        let eps = s.rng.normal(x.dims(), 0.0, sigma, &s.device, s.dtype)?;
        let noisy = (&x + eps).ctx("ood scores")?;
        let params = ParamMode::Detached(&s.params);
        let e = s.exec.call1(f.energy, &[(&s.observed, &noisy)], &params)?;
        logp.extend(to_vec(&e.neg().ctx("ood scores")?)?);
        let outs = s.exec.call(f.grad, &[(&s.observed, &x)], &params)?;
        let g = &outs
            .iter()
            .find(|(n, _)| *n == format!("grad_{}", s.observed))
            .expect("the gradient function returns grad_<x>")
            .1;
        let norm = g
            .flatten_from(1)
            .and_then(|g| g.sqr())
            .and_then(|g| g.sum(1))
            .and_then(|g| g.sqrt())
            .and_then(|g| g.neg())
            .ctx("ood scores")?;
        grad.extend(to_vec(&norm)?);
    }
    Ok((logp, grad))
}

fn to_vec(t: &Tensor) -> Result<Vec<f64>> {
    t.to_dtype(DType::F64)
        .and_then(|t| t.to_vec1())
        .ctx("reading scores")
}

/// Area under the ROC curve with `pos` the positive class: the probability that a random positive
/// scores above a random negative, ties counting one half (Mann–Whitney U / (n₊ n₋), which equals
/// scikit-learn's `roc_auc_score`).
pub fn auroc(pos: &[f64], neg: &[f64]) -> f64 {
    if pos.is_empty() || neg.is_empty() {
        return f64::NAN;
    }
    let mut all: Vec<(f64, bool)> = pos
        .iter()
        .map(|&v| (v, true))
        .chain(neg.iter().map(|&v| (v, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Sum of the positives' mid-ranks (1-based) over groups of tied scores.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < all.len() {
        let j = all[i..].iter().take_while(|e| e.0 == all[i].0).count() + i;
        let mid = (i + 1 + j) as f64 / 2.0;
        rank_sum += mid * all[i..j].iter().filter(|e| e.1).count() as f64;
        i = j;
    }
    let (np, nn) = (pos.len() as f64, neg.len() as f64);
    (rank_sum - np * (np + 1.0) / 2.0) / (np * nn)
}

#[cfg(test)]
mod tests {
    use super::auroc;

    #[test]
    fn auroc_of_perfect_reversed_and_tied_rankings() {
        assert_eq!(auroc(&[3.0, 4.0], &[1.0, 2.0]), 1.0);
        assert_eq!(auroc(&[1.0, 2.0], &[3.0, 4.0]), 0.0);
        assert_eq!(auroc(&[1.0, 1.0], &[1.0]), 0.5);
    }

    #[test]
    fn auroc_matches_a_hand_count() {
        // Pairs (p, n): 0.8 beats 0.3, 0.5 and ties 0.8 (½); 0.4 beats 0.3 only; 0.9 beats all.
        // (2.5 + 1 + 3) / (3 · 3) = 6.5 / 9.
        let got = auroc(&[0.8, 0.4, 0.9], &[0.3, 0.5, 0.8]);
        assert!((got - 6.5 / 9.0).abs() < 1e-12, "{got}");
    }
}
