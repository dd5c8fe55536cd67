//! Samplers. Latent Langevin runs the derived input-gradient function (`prior_grad`,
//! `posterior_grad`) with detached parameters, so no parameter tape is built inside the chain:
//! `z ← z + s²/2 · ∇z log p(z | ·) + noise · ε` (the reference term is part of the derived
//! gradient, since `*_log_density` includes log p0).
//!
//! Each example (row of z) draws its noise from its own member of a [`Family`] keyed by one draw of
//! the run's generator, so a row's path does not depend on how the rows are grouped. Where the
//! compiler found the gradient's rows independent ([`crate::ir::rows`]), the CPU moves blocks of
//! rows on separate threads ([`set_chain_threads`]): each block is a chain of its own, with no
//! exchange between steps, and the result has the bits of the whole chain.

use super::error::{Context, Result};
use super::exec::{Executor, ParamMode};
use super::host::{tensor, try_with_slice, with_slice};
use super::normal;
use super::rng::{Family, Rng, host_tensor};
use crate::check::Langevin;
use candle_core::{DType, Tensor, WithDType};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// What a latent chain samples: the derived gradient function, the latent it moves, and the other
/// inputs held fixed (e.g. the data x for the posterior).
pub struct Target<'a> {
    pub grad_fn: &'a str,
    pub latent: &'a str,
    pub given: &'a [(&'a str, &'a Tensor)],
}

/// Threads a chain may split its rows over (see the module docs); 1 until the CLI sets it.
static CHAIN_THREADS: AtomicUsize = AtomicUsize::new(1);

/// Sets the threads of [`chain_threads`] for this process (at least 1).
pub fn set_chain_threads(n: usize) {
    CHAIN_THREADS.store(n.max(1), Ordering::Relaxed);
}

/// Threads a latent chain on the CPU may split its rows over.
pub fn chain_threads() -> usize {
    CHAIN_THREADS.load(Ordering::Relaxed)
}

/// Fewest rows of a block: below this its matrix products are too small to pay for a thread.
const MIN_BLOCK_ROWS: usize = 16;

/// Runs `cfg.steps` Langevin steps from `z0` on `target`. Returns the final state.
pub fn langevin(
    exec: &Executor,
    target: &Target,
    z0: Tensor,
    cfg: &Langevin,
    params: &ParamMode,
    rng: &mut Rng,
) -> Result<Tensor> {
    let noise = rng.family();
    let blocks = blocks(z0.dim(0).ctx("langevin")?, chain_threads());
    by_blocks(exec, target, z0, cfg, params, &noise, &blocks)
}

/// `(first row, rows)` of at most `threads` blocks of at least [`MIN_BLOCK_ROWS`] rows (one block
/// when there are too few), the first `rows % n` one row longer.
fn blocks(rows: usize, threads: usize) -> Vec<(usize, usize)> {
    let n = threads.min(rows / MIN_BLOCK_ROWS).max(1);
    let mut first = 0;
    (0..n)
        .map(|i| {
            let len = rows / n + usize::from(i < rows % n);
            first += len;
            (first - len, len)
        })
        .collect()
}

/// The chain of `z0`, as one chain per block of rows on the threads of the chain pool where the
/// gradient's rows are independent and z is on the CPU, else as one chain.
fn by_blocks(
    exec: &Executor,
    target: &Target,
    z0: Tensor,
    cfg: &Langevin,
    params: &ParamMode,
    noise: &Family,
    blocks: &[(usize, usize)],
) -> Result<Tensor> {
    let grad_name = format!("grad_{}", target.latent);
    let split = blocks.len() > 1
        && z0.device().is_cpu()
        && crate::ir::rows::independent(exec.program(), target.grad_fn, &grad_name);
    if !split {
        return chain(exec, target, z0, 0, cfg, params, noise);
    }
    let batched: Vec<String> = exec
        .inputs_of(target.grad_fn)?
        .into_iter()
        .filter(|(_, shape)| shape.batched)
        .map(|(name, _)| name)
        .collect();
    let block_chain = |&(first, rows): &(usize, usize)| {
        let narrow = |t: &Tensor| t.narrow(0, first, rows).ctx("langevin block");
        let given = target
            .given
            .iter()
            .map(|&(name, t)| {
                let t = if batched.iter().any(|b| b == name) {
                    narrow(t)?
                } else {
                    t.clone()
                };
                Ok((name, t))
            })
            .collect::<Result<Vec<_>>>()?;
        let given: Vec<(&str, &Tensor)> = given.iter().map(|(n, t)| (*n, t)).collect();
        let block = Target {
            given: &given,
            ..*target
        };
        chain(exec, &block, narrow(&z0)?, first, cfg, params, noise)
    };
    // The first block on the calling thread, the others on the chain pool.
    let mut others: Vec<Option<Result<Tensor>>> = blocks[1..].iter().map(|_| None).collect();
    let first = chain_pool(blocks.len() - 1).in_place_scope(|scope| {
        for (b, out) in blocks[1..].iter().zip(others.iter_mut()) {
            let block_chain = &block_chain;
            scope.spawn(move |_| *out = Some(block_chain(b)));
        }
        block_chain(&blocks[0])
    });
    let mut moved = vec![first?];
    for o in others {
        moved.push(o.expect("internal error: a chain block did not run")?);
    }
    Tensor::cat(&moved, 0).ctx("langevin blocks")
}

/// A rayon pool of `threads` threads for the blocks of split chains beside the calling thread,
/// made once per count. Measured against the alternatives on bench workloads (a) and (e): fresh
/// threads per chain made the prior step 2–5 % slower (cold allocator arenas); a pool running
/// every block left the calling thread idle and its spare worker spinning against it, and the
/// ssl_mnist chain took 10–20 ms instead of 10.
fn chain_pool(threads: usize) -> Arc<rayon::ThreadPool> {
    static POOLS: Mutex<Vec<(usize, Arc<rayon::ThreadPool>)>> = Mutex::new(Vec::new());
    let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, pool)) = pools.iter().find(|(n, _)| *n == threads) {
        return pool.clone();
    }
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("ebmc-chain-{i}"))
            .build()
            .expect("internal error: cannot start the chain threads"),
    );
    pools.push((threads, pool.clone()));
    pool
}

/// One chain over the rows `first_row..` of the whole chain (their noise streams).
fn chain(
    exec: &Executor,
    target: &Target,
    z0: Tensor,
    first_row: usize,
    cfg: &Langevin,
    params: &ParamMode,
    noise: &Family,
) -> Result<Tensor> {
    let drift = cfg.step_size * cfg.step_size / 2.0;
    let grad_name = format!("grad_{}", target.latent);
    let rows = z0.dim(0).ctx("langevin")?;
    let mut streams: Vec<Rng> = (first_row..first_row + rows)
        .map(|r| noise.member(r as u64))
        .collect();
    let mut z = z0;
    for _ in 0..cfg.steps {
        let mut inputs: Vec<(&str, &Tensor)> = target.given.to_vec();
        inputs.push((target.latent, &z));
        // Only the gradient: the function's `value` would be computed and thrown away.
        let g = exec.call_output(target.grad_fn, &grad_name, &inputs, params)?;
        z = update(&z, &g, drift, cfg.noise, &mut streams)?;
    }
    Ok(z)
}

/// One Langevin update `z + (drift·g + ε)` with ε ~ N(0, noise²), row r of z drawing from
/// `streams[r]`. On the CPU (f32/f64) it is one pass over host memory that draws the noise as it
/// goes; elsewhere the same arithmetic as tensor ops. Both give the same bits for the same streams.
pub fn update(
    z: &Tensor,
    g: &Tensor,
    drift: f64,
    noise: f64,
    streams: &mut [Rng],
) -> Result<Tensor> {
    assert_eq!(
        z.dims(),
        g.dims(),
        "internal error: langevin gradient of another shape"
    );
    assert_eq!(
        z.dims().first(),
        Some(&streams.len()),
        "internal error: one noise stream per row of z"
    );
    if z.device().is_cpu() {
        match z.dtype() {
            DType::F32 => return fused_update::<f32>(z, g, drift, noise, streams),
            DType::F64 => return fused_update::<f64>(z, g, drift, noise, streams),
            _ => {}
        }
    }
    // Other devices (CUDA) and dtypes: the noise is drawn on the host and moved to the device.
    let eps = host_tensor(
        row_noise(streams, z.elem_count(), noise),
        z.dims(),
        z.device(),
        z.dtype(),
    )?;
    let step = (g.affine(drift, 0.0).ctx("langevin drift")? + eps).ctx("langevin noise")?;
    (z + step).ctx("langevin step")
}

/// `n` draws of N(0, noise²) in row-major order, an equal share of each row from its stream.
fn row_noise(streams: &mut [Rng], n: usize, noise: f64) -> Vec<f64> {
    let per_row = n / streams.len().max(1);
    let mut eps = vec![0f32; per_row];
    let mut out = Vec::with_capacity(n);
    for stream in streams {
        normal::fill(stream, &mut eps);
        out.extend(eps.iter().map(|&e| noise * e as f64));
    }
    out
}

/// [`update`] as one host loop: the tensor-op form allocates three intermediates and a noise
/// buffer (drawn in f64, then converted and copied) in every step.
fn fused_update<T: WithDType>(
    z: &Tensor,
    g: &Tensor,
    drift: f64,
    noise: f64,
    streams: &mut [Rng],
) -> Result<Tensor> {
    let (z, g) = (
        z.contiguous().ctx("langevin step")?,
        g.contiguous().ctx("langevin step")?,
    );
    let per_row = (z.elem_count() / streams.len().max(1)).max(1);
    // Rounded as candle's `affine` and `host_tensor` round them, so the result matches the
    // tensor-op form bit for bit.
    let drift = T::from_f64(drift);
    let mut eps = vec![0f32; per_row];
    let out: Vec<T> = try_with_slice(&z, |zs: &[T]| {
        with_slice(&g, |gs: &[T]| {
            let mut out = Vec::with_capacity(zs.len());
            for ((zr, gr), stream) in zs
                .chunks(per_row)
                .zip(gs.chunks(per_row))
                .zip(streams.iter_mut())
            {
                normal::fill(stream, &mut eps[..zr.len()]);
                out.extend(
                    zr.iter()
                        .zip(gr)
                        .zip(&eps)
                        .map(|((&z, &g), &e)| z + (g * drift + T::from_f64(noise * e as f64))),
                );
            }
            out
        })
    })
    .ctx("langevin step")?;
    tensor(out, z.dims()).ctx("langevin step")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::params::Params;
    use candle_core::Device;

    /// The tensor-op form of [`update`] (the path other devices take).
    fn by_ops(z: &Tensor, g: &Tensor, drift: f64, noise: f64, streams: &mut [Rng]) -> Tensor {
        let eps = row_noise(streams, z.elem_count(), noise);
        let eps = host_tensor(eps, z.dims(), z.device(), z.dtype()).unwrap();
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
            let family = r.family();
            let mut a: Vec<Rng> = (0..7).map(|i| family.member(i)).collect();
            let mut b = a.clone();
            let fused = update(&z, &g, 0.005, 0.1, &mut a).unwrap();
            let ops = by_ops(&z, &g, 0.005, 0.1, &mut b);
            assert_eq!(a, b, "both draw the same number of values");
            let bits = crate::runtime::bit_pattern;
            assert_eq!(bits(&fused), bits(&ops), "{dtype:?}");
            assert_eq!(fused.dims(), &[7, 3]);
            // Row 2 moved with the draws of stream 2 alone.
            let mut own = family.member(2);
            let mut eps = [0f32; 3];
            normal::fill(&mut own, &mut eps);
            let row2 = |t: &Tensor| -> Vec<f64> {
                t.get(2)
                    .unwrap()
                    .to_dtype(DType::F64)
                    .unwrap()
                    .to_vec1()
                    .unwrap()
            };
            let (z2, g2, moved) = (row2(&z), row2(&g), row2(&fused));
            for (((z, g), m), e) in z2.iter().zip(&g2).zip(&moved).zip(eps) {
                let expected = z + (g * 0.005 + 0.1 * e as f64);
                assert!((m - expected).abs() < 1e-5, "{m} vs {expected}");
            }
        }
    }

    #[test]
    fn blocks_share_the_rows_out_evenly_and_keep_a_minimum() {
        assert_eq!(blocks(100, 1), vec![(0, 100)]);
        assert_eq!(blocks(100, 2), vec![(0, 50), (50, 50)]);
        assert_eq!(blocks(100, 3), vec![(0, 34), (34, 33), (67, 33)]);
        // 40 rows make at most two blocks of 16 or more; 10 rows one.
        assert_eq!(blocks(40, 8), vec![(0, 20), (20, 20)]);
        assert_eq!(blocks(10, 4), vec![(0, 10)]);
        assert_eq!(blocks(0, 4), vec![(0, 0)]);
    }

    /// A chain split into blocks of rows, on threads, gives the bits of the whole chain: on the
    /// prior MLP of workload (a) and on the posterior of lebm_digits, whose given x is split too.
    #[test]
    fn a_chain_split_into_blocks_of_rows_gives_the_bits_of_the_whole_chain() {
        let cases = [
            ("bench/specs/prior_mlp.yaml", "prior_grad", 100, false),
            ("specs/lebm_digits.yaml", "posterior_grad", 16, true),
        ];
        for (path, grad_fn, latent, posterior) in cases {
            let program = crate::compile_repo_spec(path).1;
            let exec = Executor::new(&program);
            let mut rng = Rng::new(11);
            let params = Params::new(&program, &mut rng, &Device::Cpu, DType::F32).unwrap();
            let params = ParamMode::Detached(&params);
            let rows = 48;
            let z0 = rng
                .normal(&[rows, latent], 0.0, 1.0, &Device::Cpu, DType::F32)
                .unwrap();
            let x = rng
                .uniform(&[rows, 1, 8, 8], -1.0, 1.0, &Device::Cpu, DType::F32)
                .unwrap();
            let given = [("x", &x)];
            let target = Target {
                grad_fn,
                latent: "z",
                given: if posterior { &given } else { &[] },
            };
            let cfg = Langevin {
                steps: 5,
                step_size: 0.1,
                noise: 0.1,
                persistent: 0,
            };
            let noise = rng.family();
            let run = |blocks: &[(usize, usize)]| {
                by_blocks(&exec, &target, z0.clone(), &cfg, &params, &noise, blocks).unwrap()
            };
            let whole = run(&[(0, rows)]);
            let bits = crate::runtime::bit_pattern;
            for split in [
                blocks(rows, 2),
                blocks(rows, 3),
                vec![(0, 5), (5, 40), (45, 3)],
            ] {
                assert_eq!(bits(&run(&split)), bits(&whole), "{path}: {split:?}");
            }
            let moved = (whole - &z0).unwrap().abs().unwrap().max_all().unwrap();
            assert!(
                moved.to_scalar::<f32>().unwrap() > 0.01,
                "{path}: the chain moved"
            );
        }
    }
}
