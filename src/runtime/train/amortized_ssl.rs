//! `amortized_ssl` (paper 001, Algorithm 1, in the update order of the authors' closest code,
//! `bpucla/ibebm:semi_sup_classification.py`; see shared/notes/algorithms-from-reference-code.md §2):
//!
//! 1. labelled step: `labeled_weight · CE(p(y | z = mean q(z | x_l)), y_l)` on the prior network(s)
//!    and the encoder (a labelled minibatch of the batch size, drawn with replacement);
//! 2. z⁺ = mean + exp(log_std) · ε from q(z | x) (reparameterised) for the unlabelled minibatch;
//! 3. z⁻ from the marginal prior p(z) by Langevin on `prior_grad`: persistent chains (a buffer of
//!    `persistent` chains kept in `algorithm_state["chains"]`, started from p0; each iteration picks
//!    a batch of them, moves them and writes them back), or short-run chains from p0;
//! 4. ELBO step: `−mean log p(x | z⁺) − mean log p(z⁺) − mean H(q) − mi_weight · MI(z⁺)` on the
//!    generator and the encoder (log p(z) is the derived marginal with y summed out, which includes
//!    log p0, so the sum with H(q) is the KL term of the paper's update 5);
//! 5. prior step: `mean log p(z⁻) − mean log p(z⁺) − mi_weight · MI(z⁺)` with z⁺ detached, on the
//!    prior's networks and parameters (log p0 has no parameters, so its gradient is that of F).
//!
//! MI(z) = H(mean_batch p(y | z)) − mean_batch H(p(y | z)), with p(y | z) the derived classifier.
//! Which parameters each step updates comes from the spec: the networks and parameters read by
//! `model.prior`, by `model.likelihood`, and the `model.inference` network.

use super::{Batch, Session, StepMetrics, scalar};
use crate::check::{CheckedSpec, TExpr, TExprKind};
use crate::runtime::error::{Context, Result};
use crate::runtime::exec::ParamMode;
use crate::runtime::params::Params;
use candle_core::{D, Tensor};

/// Key of the persistent prior chains in `Session::algorithm_state`.
const CHAINS: &str = "chains";
/// Inside the logs of the mutual-information term, as in the authors' code.
const MI_EPS: f64 = 1e-15;

/// The parameter paths each update of Algorithm 1 owns.
struct Roles {
    prior: Vec<String>,
    generator: Vec<String>,
    encoder: Vec<String>,
}

impl Roles {
    fn of(spec: &CheckedSpec, params: &Params) -> Roles {
        let select = |e: Option<&TExpr>| match e {
            Some(e) => params.select(&learnables(e, spec)),
            None => Vec::new(),
        };
        let encoder: Vec<String> = spec
            .model
            .inference
            .map(|n| format!("networks.{}", spec.network(n).name))
            .into_iter()
            .collect();
        Roles {
            prior: select(spec.model.prior.as_ref()),
            generator: select(spec.model.likelihood.as_ref()),
            encoder: params.select(&encoder),
        }
    }
}

/// Parameter selectors of the networks and parameters an expression reads.
fn learnables(e: &TExpr, spec: &CheckedSpec) -> Vec<String> {
    let mut out = Vec::new();
    e.visit(&mut |n| match &n.kind {
        TExprKind::Net { net, .. } => out.push(format!("networks.{}", spec.network(*net).name)),
        TExprKind::Param(p) => out.push(format!("parameters.{}", spec.parameter(*p).name)),
        _ => {}
    });
    out
}

fn union(a: &[String], b: &[String]) -> Vec<String> {
    a.iter().chain(b).cloned().collect()
}

pub(crate) fn step(s: &mut Session, batch: &Batch) -> Result<StepMetrics> {
    let roles = Roles::of(s.spec, &s.params);
    let b = batch.x.dim(0).ctx("batch size")?;
    let (latent, x_name) = (s.latent.clone(), s.observed.clone());
    let mi_weight = s.spec.learn.mi_weight;
    let mut metrics = labelled_step(s, b)?;

    // z⁺ ~ q(z | x) by reparameterisation, on the tape.
    let (mean, log_std) = encode(s, &batch.x, &ParamMode::Tracked(&s.params))?;
    let eps = s.rng.normal(mean.dims(), 0.0, 1.0, &s.device, s.dtype)?;
    let z_q = (&mean + (log_std.exp().ctx("q std")? * eps).ctx("reparameterisation")?)
        .ctx("reparameterisation")?;
    let z_prior = prior_samples(s, b)?;

    // ELBO step on the generator and the encoder.
    let tracked = ParamMode::Tracked(&s.params);
    let log_lik = s
        .exec
        .call1(
            "log_likelihood",
            &[(&x_name, &batch.x), (&latent, &z_q)],
            &tracked,
        )?
        .mean_all()
        .ctx("ELBO")?;
    // log p(z) and p(y | z) share the prior network's layers: one evaluation.
    let [log_prior, probs] = prior_and_classifier(s, &latent, &z_q, &tracked)?;
    let log_prior = log_prior.mean_all().ctx("ELBO")?;
    let entropy = gaussian_entropy(&log_std)?;
    let mi = mutual_information(&probs)?;
    let neg_elbo = (log_lik + log_prior + entropy)
        .and_then(|e| e.neg())
        .ctx("ELBO")?;
    let loss_elbo = (&neg_elbo - mi.affine(mi_weight, 0.0).ctx("ELBO")?).ctx("ELBO")?;
    metrics.push(("loss_elbo".into(), scalar(&neg_elbo)?));
    metrics.push(("mi".into(), scalar(&mi)?));
    s.apply_gradients_to(&loss_elbo, &union(&roles.generator, &roles.encoder))?;

    // Prior step: the contrastive update of F on z⁻ against the (pre-update) z⁺, detached.
    if let Some(z_prior) = z_prior {
        let z_q = z_q.detach();
        let tracked = ParamMode::Tracked(&s.params);
        let f_prior = s
            .exec
            .call1("prior_log_density", &[(&latent, &z_prior)], &tracked)?
            .mean_all()
            .ctx("prior loss")?;
        let [f_post, probs] = prior_and_classifier(s, &latent, &z_q, &tracked)?;
        let f_post = f_post.mean_all().ctx("prior loss")?;
        let loss_prior = (f_prior - f_post).ctx("prior loss")?;
        metrics.push(("loss_prior".into(), scalar(&loss_prior)?));
        let loss = if mi_weight > 0.0 {
            let mi = mutual_information(&probs)?;
            (loss_prior - mi.affine(mi_weight, 0.0).ctx("prior loss")?).ctx("prior loss")?
        } else {
            loss_prior
        };
        s.apply_gradients_to(&loss, &roles.prior)?;
    }
    metrics.push((
        "mse".into(),
        s.reconstruction_error(&batch.x, &mean.detach())?,
    ));
    Ok(metrics)
}

/// The labelled step (update 6 of Algorithm 1, on the encoder mean as in the authors' code): a
/// minibatch of `b` labelled examples drawn with replacement; `labeled_weight · CE` on the prior's
/// parameters and the encoder. Also the whole of the supervised-only baseline's training step.
/// No labelled data or a zero weight: no step, no metrics.
pub(crate) fn labelled_step(s: &mut Session, b: usize) -> Result<StepMetrics> {
    let weight = s.spec.learn.labeled_weight;
    let Some((features, labels)) = &s.labelled else {
        return Ok(Vec::new());
    };
    if weight == 0.0 || labels.is_empty() {
        return Ok(Vec::new());
    }
    let idx = s.rng.index_sample(labels.len(), b, true);
    let idx_t = Tensor::from_vec(
        idx.iter().map(|&i| i as u32).collect::<Vec<_>>(),
        b,
        &s.device,
    )
    .ctx("labelled minibatch")?;
    let x = features.index_select(&idx_t, 0).ctx("labelled minibatch")?;
    let y: Vec<u32> = idx.iter().map(|&i| labels[i]).collect();
    let tracked = ParamMode::Tracked(&s.params);
    let (mean, _) = encode(s, &x, &tracked)?;
    let (log_p, probs) = log_p_y_given_z(s, &mean, &y, &tracked)?;
    let ce = log_p
        .mean_all()
        .and_then(|l| l.neg())
        .ctx("labelled loss")?;
    let acc = accuracy_of(&probs, &y)?;
    let loss = ce.affine(weight, 0.0).ctx("labelled loss")?;
    let roles = Roles::of(s.spec, &s.params);
    s.apply_gradients_to(&loss, &union(&roles.prior, &roles.encoder))?;
    Ok(vec![
        ("loss_labelled".into(), scalar(&ce)?),
        ("acc_labelled".into(), acc),
    ])
}

/// The encoder's mean and log-std at x.
pub(crate) fn encode(s: &Session, x: &Tensor, params: &ParamMode) -> Result<(Tensor, Tensor)> {
    let mut outs = s.exec.call("encoder", &[(&s.observed, x)], params)?;
    let log_std = outs.pop().expect("encoder returns mean, log_std").1;
    let mean = outs.pop().expect("encoder returns mean, log_std").1;
    Ok((mean, log_std))
}

/// log p(y | z) per example, as the derived `prior_log_density_labelled − prior_log_density`
/// (a difference of logsumexps: stable where the softmax probabilities underflow), and p(· | z),
/// all from one evaluation of the prior network.
fn log_p_y_given_z(
    s: &Session,
    z: &Tensor,
    y: &[u32],
    params: &ParamMode,
) -> Result<(Tensor, Tensor)> {
    let label = s
        .spec
        .variables
        .iter()
        .find(|v| v.observed && !v.is_continuous())
        .expect("checked: amortized_ssl has a discrete observed label");
    let k: usize = label.shape.iter().product();
    let mut onehot = vec![0f32; y.len() * k];
    for (row, &c) in y.iter().enumerate() {
        onehot[row * k + c as usize] = 1.0;
    }
    let onehot = Tensor::from_vec(onehot, (y.len(), k), &s.device)
        .and_then(|t| t.to_dtype(s.dtype))
        .ctx("one-hot labels")?;
    let mut outs = s.exec.call_together(
        &[
            "prior_log_density_labelled",
            "prior_log_density",
            "classifier",
        ],
        &[(&s.latent, z), (&label.name, &onehot)],
        params,
    )?;
    let probs = outs.pop().expect("three functions");
    let marginal = outs.pop().expect("three functions");
    let joint = outs.pop().expect("three functions");
    Ok(((joint - marginal).ctx("log p(y | z)")?, probs))
}

/// `prior_log_density` and `classifier` at `z`, in one evaluation of the prior network.
fn prior_and_classifier(
    s: &Session,
    latent: &str,
    z: &Tensor,
    params: &ParamMode,
) -> Result<[Tensor; 2]> {
    let outs =
        s.exec
            .call_together(&["prior_log_density", "classifier"], &[(latent, z)], params)?;
    let [log_p, probs]: [Tensor; 2] = outs.try_into().expect("two functions");
    Ok([log_p, probs])
}

/// Fraction of rows of `probs` [B, K] whose argmax is the label.
pub(crate) fn accuracy_of(probs: &Tensor, y: &[u32]) -> Result<f64> {
    let pred: Vec<u32> = probs
        .argmax(D::Minus1)
        .and_then(|p| p.to_vec1())
        .ctx("predictions")?;
    let right = pred.iter().zip(y).filter(|(p, y)| p == y).count();
    Ok(right as f64 / y.len().max(1) as f64)
}

/// Mean over the batch of the entropy of N(mean, exp(log_std)²): Σ log_std + d/2 · (1 + log 2π).
fn gaussian_entropy(log_std: &Tensor) -> Result<Tensor> {
    let d = log_std.elem_count() / log_std.dim(0).ctx("entropy")?.max(1);
    let c = d as f64 / 2.0 * (1.0 + (2.0 * std::f64::consts::PI).ln());
    log_std
        .flatten_from(1)
        .and_then(|t| t.sum(1))
        .and_then(|t| t.mean_all())
        .and_then(|t| t.affine(1.0, c))
        .ctx("entropy of q")
}

/// MI(y; z) over the batch = H(mean_batch p(y | z)) − mean_batch H(p(y | z)); `probs` is [B, K].
fn mutual_information(probs: &Tensor) -> Result<Tensor> {
    let plogp = |p: &Tensor| -> candle_core::Result<Tensor> { p * p.affine(1.0, MI_EPS)?.log()? };
    let marginal = probs.mean(0).ctx("MI")?;
    let h_marginal = plogp(&marginal)
        .and_then(|t| t.sum_all()?.neg())
        .ctx("MI")?;
    let h_cond = plogp(probs)
        .and_then(|t| t.sum(1)?.mean_all()?.neg())
        .ctx("MI")?;
    (h_marginal - h_cond).ctx("MI")
}

/// `b` samples of the marginal prior by the spec's `prior_sampler` (none without one): from the
/// persistent chains when it keeps some, else from p0.
fn prior_samples(s: &mut Session, b: usize) -> Result<Option<Tensor>> {
    let Some(cfg) = s.spec.learn.prior_sampler.clone() else {
        return Ok(None);
    };
    let picked = if cfg.persistent > 0 {
        if !s.algorithm_state.contains_key(CHAINS) {
            let init = s.draw_reference(cfg.persistent)?;
            s.algorithm_state.insert(CHAINS.into(), init);
        }
        let n = cfg.persistent;
        let idx: Vec<u32> = s
            .rng
            .index_sample(n, b, b > n)
            .into_iter()
            .map(|i| i as u32)
            .collect();
        Some(Tensor::from_vec(idx, b, &s.device).ctx("persistent chains")?)
    } else {
        None
    };
    let z0 = match &picked {
        Some(idx) => s.algorithm_state[CHAINS]
            .index_select(idx, 0)
            .ctx("persistent chains")?,
        None => s.draw_reference(b)?,
    };
    let z = s.prior_chain(z0, &cfg)?;
    if let Some(idx) = picked {
        let chains = &s.algorithm_state[CHAINS];
        let flat = z.flatten_from(1).ctx("persistent chains")?;
        let rows = idx
            .unsqueeze(1)
            .and_then(|i| i.broadcast_as(flat.dims())?.contiguous())
            .ctx("persistent chains")?;
        let updated = chains
            .flatten_from(1)
            .and_then(|c| c.scatter(&rows, &flat, 0)?.reshape(chains.dims()))
            .ctx("persistent chains")?;
        s.algorithm_state.insert(CHAINS.into(), updated);
    }
    Ok(Some(z))
}
