//! Samplers. Latent Langevin runs the derived input-gradient function (`prior_grad`,
//! `posterior_grad`) with detached parameters, so no parameter tape is built inside the chain:
//! `z ← z + s²/2 · ∇z log p(z | ·) + noise · ε` (the reference term is part of the derived
//! gradient, since `*_log_density` includes log p0).

use super::error::{Context, Result};
use super::exec::{Executor, ParamMode};
use super::rng::Rng;
use crate::check::Langevin;
use candle_core::Tensor;

/// Runs `cfg.steps` Langevin steps from `z0` on the gradient function `grad_fn`, whose other inputs
/// are `given` (e.g. the data x for the posterior). Returns the final state.
pub fn langevin(
    exec: &Executor,
    grad_fn: &str,
    latent: &str,
    given: &[(&str, &Tensor)],
    z0: Tensor,
    cfg: &Langevin,
    params: &ParamMode,
    rng: &mut Rng,
) -> Result<Tensor> {
    let drift = cfg.step_size * cfg.step_size / 2.0;
    let grad_name = format!("grad_{latent}");
    let mut z = z0;
    for _ in 0..cfg.steps {
        let mut inputs: Vec<(&str, &Tensor)> = given.to_vec();
        inputs.push((latent, &z));
        let outs = exec.call(grad_fn, &inputs, params)?;
        let g = outs
            .into_iter()
            .find(|(n, _)| *n == grad_name)
            .map(|(_, t)| t)
            .unwrap_or_else(|| panic!("internal error: `{grad_fn}` has no output `{grad_name}`"));
        let noise = rng.normal(z.dims(), 0.0, cfg.noise, z.device(), z.dtype())?;
        z = (z + (g.affine(drift, 0.0).ctx("langevin drift")? + noise).ctx("langevin noise")?)
            .ctx("langevin step")?;
    }
    Ok(z)
}
