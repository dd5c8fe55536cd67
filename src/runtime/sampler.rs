//! Gradient chains, shared by the latent samplers and data-space SGLD: each step runs the derived
//! input-gradient function (`prior_grad`, `posterior_grad`, `marginal_energy_grad`) with detached
//! parameters, so no parameter tape is built inside the chain, and moves
//! `x ← x + drift · g + ε`, ε ~ N(0, noise²) ([`Dynamics`]). Latent Langevin on log p has drift
//! s²/2 (the reference term is part of the derived gradient, since `*_log_density` includes
//! log p0); SGLD on an energy has drift −step_size/2.
//!
//! Each example (row of x) draws its noise from its own member of a [`Family`] keyed by one draw of
//! the run's generator, so a row's path does not depend on how the rows are grouped. Where the
//! compiler found the gradient's rows independent ([`crate::ir::rows`]), the CPU moves blocks of
//! rows on separate threads ([`set_chain_threads`]): each block is a chain of its own, with no
//! exchange between steps. The blocks depend on the row and thread counts only, so a run is
//! reproducible for a given `--threads`. Where no product rounds by the batch size (tested: dense
//! layers, lebm_digits' generator) the result has the bits of the whole chain; convolutions whose
//! column blocks span images (the CEBM's) change in their last bits with the split.

use super::error::{Context, Result};
use super::exec::{Executor, ParamMode};
use super::host::{tensor, try_with_slice, with_slice};
use super::normal;
use super::rng::{Family, Rng, host_tensor};
use crate::check::{Langevin, Sgld};
use candle_core::{DType, Tensor, WithDType};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// What a chain moves: the derived gradient function, the input it moves, and the other inputs
/// held fixed (e.g. the data x for the posterior).
pub struct Target<'a> {
    pub grad_fn: &'a str,
    pub moved: &'a str,
    pub given: &'a [(&'a str, &'a Tensor)],
}

/// The steps of a chain: `x ← x + drift · g + ε`, ε ~ N(0, noise²), g the function's `grad_<x>`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dynamics {
    pub steps: usize,
    pub drift: f64,
    pub noise: f64,
}

impl Dynamics {
    /// Langevin on a log density: `z + s²/2 · ∇ log p(z) + noise · ε`.
    pub fn langevin(cfg: &Langevin) -> Self {
        Dynamics {
            steps: cfg.steps,
            drift: cfg.step_size * cfg.step_size / 2.0,
            noise: cfg.noise,
        }
    }

    /// SGLD on an energy, noise decoupled from the step size: `x − s/2 · ∇E(x) + noise · ε`.
    pub fn sgld(cfg: &Sgld) -> Self {
        Dynamics {
            steps: cfg.steps,
            drift: -cfg.step_size / 2.0,
            noise: cfg.noise,
        }
    }
}

/// A finished chain: its final state and, when traced, the sum over the rows of the function's
/// `value` at the start of each step.
pub struct Moved {
    pub x: Tensor,
    pub value_sums: Vec<f64>,
}

/// Threads a chain may split its rows over (see the module docs); 1 until the CLI sets it.
static CHAIN_THREADS: AtomicUsize = AtomicUsize::new(1);

/// Sets the threads of [`chain_threads`] for this process (at least 1).
pub fn set_chain_threads(n: usize) {
    CHAIN_THREADS.store(n.max(1), Ordering::Relaxed);
}

/// Threads a chain on the CPU may split its rows over.
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
    let moved = run(
        exec,
        target,
        z0,
        Dynamics::langevin(cfg),
        false,
        params,
        rng,
    )?;
    Ok(moved.x)
}

/// Runs the chain of `dynamics` from `x0` on `target`, tracing the function's `value` if `trace`.
pub fn run(
    exec: &Executor,
    target: &Target,
    x0: Tensor,
    dynamics: Dynamics,
    trace: bool,
    params: &ParamMode,
    rng: &mut Rng,
) -> Result<Moved> {
    let noise = rng.family();
    let blocks = blocks(x0.dim(0).ctx("chain")?, chain_threads());
    let chain = Chain {
        exec,
        target,
        dynamics,
        trace,
        params,
        noise: &noise,
    };
    chain.by_blocks(x0, &blocks)
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

/// One chain's settings, shared by its blocks.
struct Chain<'a> {
    exec: &'a Executor,
    target: &'a Target<'a>,
    dynamics: Dynamics,
    trace: bool,
    params: &'a ParamMode<'a>,
    noise: &'a Family,
}

impl Chain<'_> {
    fn grad_name(&self) -> String {
        format!("grad_{}", self.target.moved)
    }

    /// The chain of `x0`, as one chain per block of rows on threads of their own where
    /// the gradient's rows are independent and x is on the CPU, else as one chain.
    fn by_blocks(&self, x0: Tensor, blocks: &[(usize, usize)]) -> Result<Moved> {
        let (exec, target) = (self.exec, self.target);
        let split = blocks.len() > 1
            && x0.device().is_cpu()
            && crate::ir::rows::independent(exec.program(), target.grad_fn, &self.grad_name());
        if !split {
            return self.block(target, x0, 0);
        }
        let batched: Vec<String> = exec
            .inputs_of(target.grad_fn)?
            .into_iter()
            .filter(|(_, shape)| shape.batched)
            .map(|(name, _)| name)
            .collect();
        let block_chain = |&(first, rows): &(usize, usize)| {
            let narrow = |t: &Tensor| t.narrow(0, first, rows).ctx("chain block");
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
            self.block(&block, narrow(&x0)?, first)
        };
        let done: Vec<OnceLock<Result<Moved>>> = blocks.iter().map(|_| OnceLock::new()).collect();
        // Where ops run on one thread here, the first block stays on the calling thread.
        let caller_takes_first = rayon::current_num_threads() == 1;
        each_on_its_own_thread(blocks.len(), caller_takes_first, &|i| {
            let _ = done[i].set(block_chain(&blocks[i]));
        });
        let mut moved = Vec::with_capacity(blocks.len());
        let mut value_sums = vec![0.0; if self.trace { self.dynamics.steps } else { 0 }];
        for d in done {
            let m = d
                .into_inner()
                .expect("internal error: a chain block did not run")?;
            for (sum, v) in value_sums.iter_mut().zip(&m.value_sums) {
                *sum += v;
            }
            moved.push(m.x);
        }
        Ok(Moved {
            x: Tensor::cat(&moved, 0).ctx("chain blocks")?,
            value_sums,
        })
    }

    /// One chain over the rows `first_row..` of the whole chain (their noise streams).
    fn block(&self, target: &Target, x0: Tensor, first_row: usize) -> Result<Moved> {
        let Dynamics {
            steps,
            drift,
            noise,
        } = self.dynamics;
        let grad_name = self.grad_name();
        let rows = x0.dim(0).ctx("chain")?;
        let mut streams: Vec<Rng> = (first_row..first_row + rows)
            .map(|r| self.noise.member(r as u64))
            .collect();
        let mut x = x0;
        let mut value_sums = Vec::with_capacity(if self.trace { steps } else { 0 });
        for _ in 0..steps {
            let mut inputs: Vec<(&str, &Tensor)> = target.given.to_vec();
            inputs.push((target.moved, &x));
            let g = if self.trace {
                let names = ["value", grad_name.as_str()];
                let outs = self
                    .exec
                    .call_outputs(target.grad_fn, &names, &inputs, self.params)?;
                let [value, g]: [Tensor; 2] = outs.try_into().expect("the two outputs asked for");
                value_sums.push(
                    value
                        .to_dtype(DType::F64)
                        .and_then(|v| v.sum_all())
                        .and_then(|v| v.to_scalar::<f64>())
                        .ctx("chain value")?,
                );
                g
            } else {
                // Only the gradient: the function's `value` would be computed and thrown away.
                self.exec
                    .call_output(target.grad_fn, &grad_name, &inputs, self.params)?
            };
            x = update(&x, &g, drift, noise, &mut streams)?;
        }
        Ok(Moved { x, value_sums })
    }
}

/// Runs `f(i)` for every `i` in `0..n` at once, each on a thread of its own whose ops run on it
/// alone (a one-thread rayon pool, so that ebmc's and candle's parallel loops run serially there):
/// `i` on [`block_thread`]`(i)`, except 0 on the calling thread if `caller_takes_first`.
///
/// Measured against the alternatives (bench workloads (a), (b), (c), (e)): fresh threads per chain
/// made the prior step 2–5 % slower (cold allocator arenas); where the ops run on the calling
/// thread, leaving it idle while a pool runs every block left a spare worker spinning against it,
/// and the ssl_mnist chain took 10–20 ms instead of 10; one pool of n threads for n blocks, its
/// threads sharing each block's ops, was as fast on (b) and (c) but its times spread wider.
fn each_on_its_own_thread<F: Fn(usize) + Sync>(n: usize, caller_takes_first: bool, f: &F) {
    fn from<F: Fn(usize) + Sync>(i: usize, n: usize, caller_takes_first: bool, f: &F) {
        if i == n {
            if caller_takes_first && n > 0 {
                f(0);
            }
        } else if i == 0 && caller_takes_first {
            from(1, n, caller_takes_first, f);
        } else {
            // The scope returns when `f(i)` has run, after the later blocks were started.
            block_thread(i).in_place_scope(|scope| {
                scope.spawn(move |_| f(i));
                from(i + 1, n, caller_takes_first, f);
            });
        }
    }
    from(0, n, caller_takes_first, f);
}

/// The one-thread rayon pool of block `i`, made once per process.
fn block_thread(i: usize) -> Arc<rayon::ThreadPool> {
    static POOLS: Mutex<Vec<Arc<rayon::ThreadPool>>> = Mutex::new(Vec::new());
    let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
    while pools.len() <= i {
        let k = pools.len();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .thread_name(move |_| format!("ebmc-chain-{k}"))
            .build()
            .expect("internal error: cannot start a chain thread");
        pools.push(Arc::new(pool));
    }
    pools[i].clone()
}

/// One chain update `z + (drift·g + ε)` with ε ~ N(0, noise²), row r of z drawing from
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
        "internal error: chain gradient of another shape"
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

    /// A chain split into blocks of rows, on threads, gives the bits of the whole chain where the
    /// products do not depend on the batch size: on the prior MLP of workload (a) and on the
    /// posterior of lebm_digits, whose given x is split too. cebm_gmm's SGLD convolutions
    /// multiply blocks of column rows that span images, and the `gemm` crate's rounding depends
    /// on a block's row count: there the split changes the last bits (tested close), and the same
    /// split gives the same bits every time. Its traced energies add up over the blocks. Both ways
    /// of running the blocks: the first on the calling thread (ops on one thread), all on the pool.
    #[test]
    fn a_chain_split_into_blocks_of_rows_gives_the_bits_of_the_whole_chain() {
        let langevin = Dynamics::langevin(&Langevin {
            steps: 5,
            step_size: 0.1,
            noise: 0.1,
            persistent: 0,
        });
        let sgld = Dynamics {
            steps: 5,
            drift: -1.0,
            noise: 7.5e-3,
        };
        let cases = [
            (
                "bench/specs/prior_mlp.yaml",
                "prior_grad",
                "z",
                langevin,
                true,
            ),
            (
                "specs/lebm_digits.yaml",
                "posterior_grad",
                "z",
                langevin,
                true,
            ),
            (
                "specs/cebm_gmm.yaml",
                "marginal_energy_grad",
                "x",
                sgld,
                false,
            ),
        ];
        for (path, grad_fn, moved, dynamics, bit_exact) in cases {
            let program = crate::compile_repo_spec(path).1;
            let exec = Executor::new(&program);
            let mut rng = Rng::new(11);
            let params = Params::new(&program, &mut rng, &Device::Cpu, DType::F32).unwrap();
            let params = ParamMode::Detached(&params);
            let rows = 48;
            let inputs = exec.inputs_of(grad_fn).unwrap();
            let shape = |name: &str| {
                let (_, s) = inputs.iter().find(|(n, _)| n == name).unwrap();
                [vec![rows], s.dims.clone()].concat()
            };
            let x0 = rng
                .uniform(&shape(moved), -1.0, 1.0, &Device::Cpu, DType::F32)
                .unwrap();
            // The posterior's data x, held fixed.
            let x = rng
                .uniform(&[rows, 1, 8, 8], -1.0, 1.0, &Device::Cpu, DType::F32)
                .unwrap();
            let given = [("x", &x)];
            let target = Target {
                grad_fn,
                moved,
                given: if inputs.len() > 1 { &given } else { &[] },
            };
            let noise = rng.family();
            let chain = Chain {
                exec: &exec,
                target: &target,
                dynamics,
                trace: true,
                params: &params,
                noise: &noise,
            };
            let whole = chain.by_blocks(x0.clone(), &[(0, rows)]).unwrap();
            let bits = crate::runtime::bit_pattern;
            for ops_threads in [1, 2] {
                let ops = rayon::ThreadPoolBuilder::new()
                    .num_threads(ops_threads)
                    .build()
                    .unwrap();
                for split in [
                    blocks(rows, 2),
                    blocks(rows, 3),
                    vec![(0, 5), (5, 40), (45, 3)],
                ] {
                    let at = format!("{path}: {split:?} with ops on {ops_threads}");
                    let run = || ops.install(|| chain.by_blocks(x0.clone(), &split).unwrap());
                    let moved = run();
                    if bit_exact {
                        assert_eq!(bits(&moved.x), bits(&whole.x), "{at}");
                    } else {
                        assert_eq!(bits(&moved.x), bits(&run().x), "{at}: not reproducible");
                        let diff = (&moved.x - &whole.x).unwrap().abs().unwrap();
                        let diff = diff.max_all().unwrap().to_scalar::<f32>().unwrap();
                        assert!(diff < 1e-5, "{at}: max difference {diff}");
                    }
                    assert_eq!(moved.value_sums.len(), dynamics.steps, "{at}");
                    // Sums in another order; for cebm_gmm of states a few ulp apart.
                    let tol = if bit_exact { 1e-9 } else { 1e-6 };
                    for (a, b) in moved.value_sums.iter().zip(&whole.value_sums) {
                        assert!((a - b).abs() <= tol * b.abs().max(1.0), "{at}: {a} vs {b}");
                    }
                }
            }
            let moved = (whole.x - &x0).unwrap().abs().unwrap().max_all().unwrap();
            assert!(
                moved.to_scalar::<f32>().unwrap() > 0.01,
                "{path}: the chain moved"
            );
        }
    }
}
