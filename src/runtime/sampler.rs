//! Samplers. Latent Langevin runs the derived input-gradient function (`prior_grad`,
//! `posterior_grad`) with detached parameters, so no parameter tape is built inside the chain:
//! `z ← z + s²/2 · ∇z log p(z | ·) + noise · ε` (the reference term is part of the derived
//! gradient, since `*_log_density` includes log p0).

use super::error::{Context, Result};
use super::exec::{Executor, ParamMode};
use super::rng::Rng;
use crate::check::Langevin;
use candle_core::Tensor;

/// What a latent chain samples: the derived gradient function, the latent it moves, and the other
/// inputs held fixed (e.g. the data x for the posterior).
pub struct Target<'a> {
    pub grad_fn: &'a str,
    pub latent: &'a str,
    pub given: &'a [(&'a str, &'a Tensor)],
}

/// Runs `cfg.steps` Langevin steps from `z0` on `target`. Returns the final state.
pub fn langevin(
    exec: &Executor,
    target: &Target,
    z0: Tensor,
    cfg: &Langevin,
    params: &ParamMode,
    rng: &mut Rng,
) -> Result<Tensor> {
    let drift = cfg.step_size * cfg.step_size / 2.0;
    let grad_name = format!("grad_{}", target.latent);
    let mut z = z0;
    for _ in 0..cfg.steps {
        let mut inputs: Vec<(&str, &Tensor)> = target.given.to_vec();
        inputs.push((target.latent, &z));
        let outs = exec.call(target.grad_fn, &inputs, params)?;
        let g = outs
            .into_iter()
            .find(|(n, _)| *n == grad_name)
            .map(|(_, t)| t)
            .unwrap_or_else(|| {
                panic!(
                    "internal error: `{}` has no output `{grad_name}`",
                    target.grad_fn
                )
            });
        let noise = rng.normal(z.dims(), 0.0, cfg.noise, z.device(), z.dtype())?;
        z = (z + (g.affine(drift, 0.0).ctx("langevin drift")? + noise).ctx("langevin noise")?)
            .ctx("langevin step")?;
    }
    Ok(z)
}
