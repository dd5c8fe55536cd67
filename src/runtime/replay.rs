//! SGLD in data space on the energy the compiler derived, and the replay buffer of persistent
//! chains, as in the authors' code of paper 003 (`cebm/sgld.py`, after JEM):
//!
//! - update `x ← x − step_size/2 · ∇x E(x) + noise · ε` (noise decoupled from the step size);
//! - a buffer of `buffer` images, pre-filled uniform in `init`; each call draws B indices *with*
//!   replacement, starts a chain from the buffer entry with probability 1 − `reinit` (else from
//!   fresh uniform noise), runs the chain, and writes all B final states back (a duplicated index
//!   keeps the last write).
//!
//! The chain calls the derived input-gradient function with detached parameters, so no parameter
//! tape is built inside it.

use super::error::{Context, Result, RuntimeError};
use super::exec::{Executor, ParamMode};
use super::rng::Rng;
use super::sampler::{self, Dynamics, Target};
use crate::check::Sgld;
use candle_core::{DType, Device, Tensor};

/// Where [`Session::algorithm_state`](super::train::Session) keeps the buffer.
pub const BUFFER_KEY: &str = "replay";

/// The energy SGLD samples and its input gradient (`value`, `grad_<x>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataEnergy {
    pub energy: &'static str,
    pub grad: &'static str,
}

/// The data-space energy of a program: the marginal energy E(x) when the compiler summed a
/// conjugate latent out in closed form, else the energy itself when it depends on `observed` only.
pub fn data_energy(exec: &Executor, observed: &str) -> Result<DataEnergy> {
    if let Some((energy, grad)) = exec.program().data_space_energy(observed) {
        return Ok(DataEnergy { energy, grad });
    }
    // The conjugacy pass's note says why: "no closed-form posterior for z: <reason> (recognised: …)".
    let reason = exec
        .program()
        .notes
        .iter()
        .find_map(|n| n.strip_prefix("no closed-form posterior for "))
        .map(|n| n.split(" (recognised:").next().unwrap_or(n).to_string())
        .unwrap_or_else(|| "the energy is not conjugate in its latent".into());
    Err(RuntimeError::NoMarginalEnergy { reason })
}

/// Runs `cfg.steps` SGLD steps from `x0` ([`Dynamics::sgld`], one noise stream per example, rows
/// in blocks on the chain threads as latent chains are). Returns the final state and the mean
/// energy at each step's start (the gradient function's `value`, for free).
pub fn sgld(
    exec: &Executor,
    f: DataEnergy,
    observed: &str,
    x0: Tensor,
    cfg: &Sgld,
    params: &ParamMode,
    rng: &mut Rng,
) -> Result<(Tensor, Vec<f64>)> {
    let rows = x0.dim(0).ctx("sgld")?.max(1) as f64;
    let target = Target {
        grad_fn: f.grad,
        moved: observed,
        given: &[],
    };
    let moved = sampler::run(exec, &target, x0, Dynamics::sgld(cfg), true, params, rng)?;
    let energies = moved.value_sums.iter().map(|s| s / rows).collect();
    Ok((moved.x, energies))
}

/// A new buffer of `cfg.buffer` states of `shape`, uniform in `cfg.init`.
pub fn new_buffer(
    cfg: &Sgld,
    shape: &[usize],
    rng: &mut Rng,
    device: &Device,
    dtype: DType,
) -> Result<Tensor> {
    let mut dims = vec![cfg.buffer.max(1)];
    dims.extend(shape);
    rng.uniform(&dims, cfg.init.0, cfg.init.1, device, dtype)
}

/// Start states of `b` chains: buffer entries at indices drawn with replacement, each replaced by
/// fresh uniform noise with probability `cfg.reinit`. Returns the indices and the states.
pub fn draw(buffer: &Tensor, b: usize, cfg: &Sgld, rng: &mut Rng) -> Result<(Vec<usize>, Tensor)> {
    let n = buffer.dim(0).ctx("replay buffer")?;
    let idx = rng.index_sample(n, b, true);
    let fresh_rows: Vec<u8> = (0..b)
        .map(|_| u8::from(rng.bernoulli(cfg.reinit)))
        .collect();
    let mut dims = buffer.dims().to_vec();
    dims[0] = b;
    let fresh = rng.uniform(
        &dims,
        cfg.init.0,
        cfg.init.1,
        buffer.device(),
        buffer.dtype(),
    )?;
    let old = buffer
        .index_select(&index_tensor(&idx, buffer.device())?, 0)
        .ctx("replay draw")?;
    let mut mask_dims = vec![1; dims.len()];
    mask_dims[0] = b;
    let mask = Tensor::from_vec(fresh_rows, mask_dims, buffer.device())
        .and_then(|m| m.broadcast_as(dims.as_slice()))
        .ctx("replay draw")?;
    let x0 = mask.where_cond(&fresh, &old).ctx("replay draw")?;
    Ok((idx, x0))
}

/// `buffer` with rows `idx` replaced by the rows of `x` (a repeated index keeps its last row).
pub fn write_back(buffer: &Tensor, idx: &[usize], x: &Tensor) -> Result<Tensor> {
    // Keep the last occurrence of each index: scatter order is unspecified on some devices.
    let mut last = std::collections::HashMap::new();
    for (row, &i) in idx.iter().enumerate() {
        last.insert(i, row);
    }
    let mut pairs: Vec<(usize, usize)> = last.into_iter().collect();
    pairs.sort_unstable();
    let (targets, rows): (Vec<usize>, Vec<usize>) = pairs.into_iter().unzip();
    let dims = buffer.dims().to_vec();
    let width: usize = dims[1..].iter().product();
    let rows = index_tensor(&rows, x.device())?;
    let src = x
        .reshape((x.dim(0).ctx("replay write")?, width))
        .and_then(|t| t.index_select(&rows, 0))
        .ctx("replay write")?;
    let at = index_tensor(&targets, buffer.device())?
        .reshape((targets.len(), 1))
        .and_then(|t| t.broadcast_as((targets.len(), width)))
        .and_then(|t| t.contiguous())
        .ctx("replay write")?;
    buffer
        .reshape((dims[0], width))
        .and_then(|b| b.scatter(&at, &src, 0))
        .and_then(|b| b.reshape(dims))
        .ctx("replay write")
}

fn index_tensor(idx: &[usize], device: &Device) -> Result<Tensor> {
    let v: Vec<u32> = idx.iter().map(|&i| i as u32).collect();
    Tensor::from_vec(v, idx.len(), device).ctx("indices")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(reinit: f64) -> Sgld {
        Sgld {
            steps: 1,
            step_size: 2.0,
            noise: 0.0,
            buffer: 6,
            reinit,
            init: (-1.0, 1.0),
        }
    }

    #[test]
    fn write_back_replaces_rows_and_keeps_the_last_of_a_repeated_index() {
        let dev = Device::Cpu;
        let buffer = Tensor::zeros((4, 1, 2), DType::F32, &dev).unwrap();
        let x = Tensor::new(&[[[1f32, 1.]], [[2., 2.]], [[3., 3.]]], &dev).unwrap();
        let out = write_back(&buffer, &[2, 0, 2], &x).unwrap();
        let rows: Vec<f32> = out.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(rows, vec![2., 2., 0., 0., 3., 3., 0., 0.]);
    }

    #[test]
    fn draw_takes_buffer_rows_or_fresh_noise() {
        let dev = Device::Cpu;
        let mut rng = Rng::new(1);
        // A buffer of constants far outside the init range tells buffer rows from fresh ones.
        let buffer = Tensor::full(5f32, (6, 1, 3), &dev).unwrap();
        let (idx, x) = draw(&buffer, 200, &cfg(0.0), &mut rng).unwrap();
        assert_eq!(idx.len(), 200);
        let v: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        assert!(v.iter().all(|&a| a == 5.0));
        let (_, x) = draw(&buffer, 400, &cfg(0.5), &mut rng).unwrap();
        let v: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        let fresh = v
            .chunks(3)
            .filter(|r| r.iter().all(|a| a.abs() <= 1.0))
            .count();
        assert!((150..250).contains(&fresh), "{fresh} of 400 rows fresh");
    }
}
