//! Samplers. Latent Langevin runs the derived input-gradient function (`prior_grad`,
//! `posterior_grad`) with detached parameters, so no parameter tape is built inside the chain:
//! `z ← z + s²/2 · ∇z log p(z | ·) + noise · ε` (the reference term is part of the derived
//! gradient, since `*_log_density` includes log p0).

use super::error::{Context, Result};
use super::exec::{Executor, ParamMode};
use super::host::{tensor, try_with_slice, with_slice};
use super::rng::Rng;
use crate::check::Langevin;
use candle_core::{DType, Tensor, WithDType};

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
        // Only the gradient: the function's `value` would be computed and thrown away.
        let g = exec.call_output(target.grad_fn, &grad_name, &inputs, params)?;
        z = update(&z, &g, drift, cfg.noise, rng)?;
    }
    Ok(z)
}

/// One Langevin update `z + (drift·g + ε)` with ε ~ N(0, noise²) from `rng`, in the row-major
/// order of `z`. On the CPU (f32/f64) it is one pass over host memory that draws the noise as it
/// goes; elsewhere the same arithmetic as tensor ops. Both give the same bits for the same stream.
pub fn update(z: &Tensor, g: &Tensor, drift: f64, noise: f64, rng: &mut Rng) -> Result<Tensor> {
    if z.device().is_cpu() {
        match z.dtype() {
            DType::F32 => return fused_update::<f32>(z, g, drift, noise, rng),
            DType::F64 => return fused_update::<f64>(z, g, drift, noise, rng),
            _ => {}
        }
    }
    // Other devices (CUDA) and dtypes: the noise is drawn on the host and moved to the device.
    let eps = rng.normal(z.dims(), 0.0, noise, z.device(), z.dtype())?;
    let step = (g.affine(drift, 0.0).ctx("langevin drift")? + eps).ctx("langevin noise")?;
    (z + step).ctx("langevin step")
}

/// [`update`] as one host loop: the tensor-op form allocates three intermediates and a noise
/// buffer (drawn in f64, then converted and copied) in every step.
fn fused_update<T: WithDType>(
    z: &Tensor,
    g: &Tensor,
    drift: f64,
    noise: f64,
    rng: &mut Rng,
) -> Result<Tensor> {
    assert_eq!(
        z.dims(),
        g.dims(),
        "internal error: langevin gradient of another shape"
    );
    let (z, g) = (
        z.contiguous().ctx("langevin step")?,
        g.contiguous().ctx("langevin step")?,
    );
    // Rounded as candle's `affine` and `host_tensor` round them, so the result matches the
    // tensor-op form bit for bit.
    let drift = T::from_f64(drift);
    let out: Vec<T> = try_with_slice(&z, |zs: &[T]| {
        with_slice(&g, |gs: &[T]| {
            zs.iter()
                .zip(gs)
                .map(|(&z, &g)| z + (g * drift + T::from_f64(rng.normal_draw(0.0, noise))))
                .collect()
        })
    })
    .ctx("langevin step")?;
    tensor(out, z.dims()).ctx("langevin step")
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The tensor-op form of [`update`] (the path other devices take).
    fn by_ops(z: &Tensor, g: &Tensor, drift: f64, noise: f64, rng: &mut Rng) -> Tensor {
        let eps = rng
            .normal(z.dims(), 0.0, noise, z.device(), z.dtype())
            .unwrap();
        (z + (g.affine(drift, 0.0).unwrap() + eps).unwrap()).unwrap()
    }

    #[test]
    fn fused_update_matches_the_tensor_ops_bit_for_bit() {
        for dtype in [DType::F32, DType::F64] {
            let mut r = Rng::new(5);
            let z = r.normal(&[7, 3], 0.0, 1.0, &Device::Cpu, dtype).unwrap();
            let g = r.normal(&[3, 7], 0.0, 2.0, &Device::Cpu, dtype).unwrap();
            // A transposed (non-contiguous) gradient takes the same path.
            let g = g.t().unwrap();
            let (mut a, mut b) = (r.clone(), r.clone());
            let fused = update(&z, &g, 0.005, 0.1, &mut a).unwrap();
            let ops = by_ops(&z, &g, 0.005, 0.1, &mut b);
            assert_eq!(a, b, "both draw the same number of values");
            let bits = crate::runtime::bit_pattern;
            assert_eq!(bits(&fused), bits(&ops), "{dtype:?}");
            assert_eq!(fused.dims(), &[7, 3]);
        }
    }
}
