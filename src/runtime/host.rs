//! Host-memory access to CPU tensors, for the fused loops that replace chains of candle ops on the
//! CPU (Langevin update, Adam, swish, leaky ReLU, im2col). Other devices keep the tensor ops.

use super::shifted;
use candle_core::{CpuStorage, Device, Layout, Result, Shape, Storage, Tensor, WithDType};
use rayon::prelude::*;
use std::mem::MaybeUninit;
use std::ops::Neg;
use std::sync::Mutex;

/// Calls `f` on the data of a contiguous CPU tensor of dtype `T`. Errors (never panics) on
/// another device, dtype or a strided layout: callers make the tensor contiguous first.
pub fn with_slice<T: WithDType, R>(t: &Tensor, f: impl FnOnce(&[T]) -> R) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    Ok(f(slice_of(t, &storage, layout)?))
}

/// [`with_slice`] for several tensors of one dtype at once.
pub fn with_slices<T: WithDType, R>(ts: &[Tensor], f: impl FnOnce(&[&[T]]) -> R) -> Result<R> {
    let guards: Vec<_> = ts.iter().map(|t| t.storage_and_layout()).collect();
    let data = ts
        .iter()
        .zip(&guards)
        .map(|(t, (storage, layout))| slice_of(t, storage, layout))
        .collect::<Result<Vec<&[T]>>>()?;
    Ok(f(&data))
}

/// The data of `t` (whose storage and layout are given) as a slice.
fn slice_of<'a, T: WithDType>(
    t: &Tensor,
    storage: &'a Storage,
    layout: &Layout,
) -> Result<&'a [T]> {
    let Storage::Cpu(s) = storage else {
        candle_core::bail!(
            "internal error: a host loop was given a {:?} tensor",
            t.device()
        );
    };
    let data = T::cpu_storage_as_slice(s)?;
    match layout.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("internal error: a host loop was given a strided tensor"),
    }
}

/// [`with_slice`] for a fallible `f`.
pub fn try_with_slice<T: WithDType, R>(t: &Tensor, f: impl FnOnce(&[T]) -> Result<R>) -> Result<R> {
    with_slice(t, f)?
}

/// A CPU tensor of `shape` owning `v` (no copy).
pub fn tensor<T: WithDType>(v: Vec<T>, shape: impl Into<Shape>) -> Result<Tensor> {
    Tensor::from_vec(v, shape, &Device::Cpu)
}

/// `x` summed over its axes `first..first + count`, kept as axes of size 1: for each outer index
/// and inner position, the reduced values added in order. One pass over contiguous runs of the
/// inner axes (candle reduces a middle axis element by element, about 10× slower).
pub fn sum_axes_keepdim<T: WithDType>(x: &Tensor, first: usize, count: usize) -> Result<Tensor> {
    let x = x.contiguous()?;
    let dims = x.dims();
    let outer: usize = dims[..first].iter().product();
    let reduced: usize = dims[first..first + count].iter().product();
    let inner: usize = dims[first + count..].iter().product();
    let sums = with_slice(&x, |xs: &[T]| {
        let mut sums = vec![T::zero(); outer * inner];
        if inner > 0 {
            for (o, acc) in sums.chunks_exact_mut(inner).enumerate() {
                for run in xs[o * reduced * inner..(o + 1) * reduced * inner].chunks_exact(inner) {
                    acc.iter_mut().zip(run).for_each(|(a, &v)| *a += v);
                }
            }
        }
        sums
    })?;
    let mut kept = dims.to_vec();
    kept[first..first + count].iter_mut().for_each(|d| *d = 1);
    tensor(sums, kept)
}

/// Elements per task of [`par_fill`]: below this a split costs more than the loop it shares.
pub const PAR_GRAIN: usize = 1 << 14;

/// `k` vectors of `n` values filled by `fill(start, chunks)` over chunks of [`PAR_GRAIN`] elements
/// in parallel, where `chunks[i]` is `outs[i][start..start + len]` (zeroed). Elementwise loops
/// give the same bits in any split.
pub fn par_fill<T: WithDType>(
    k: usize,
    n: usize,
    fill: impl Fn(usize, &mut [&mut [T]]) + Sync,
) -> Vec<Vec<T>> {
    if n <= PAR_GRAIN {
        let mut outs = vec![vec![T::zero(); n]; k];
        fill(
            0,
            &mut outs
                .iter_mut()
                .map(|v| v.as_mut_slice())
                .collect::<Vec<_>>(),
        );
        return outs;
    }
    let mut outs: Vec<Vec<T>> = (0..k).map(|_| Vec::with_capacity(n)).collect();
    let mut parts: Vec<Vec<&mut [MaybeUninit<T>]>> =
        (0..n.div_ceil(PAR_GRAIN)).map(|_| Vec::new()).collect();
    for out in outs.iter_mut() {
        let spare = &mut out.spare_capacity_mut()[..n];
        for (part, chunk) in parts.iter_mut().zip(spare.chunks_mut(PAR_GRAIN)) {
            part.push(chunk);
        }
    }
    let task = |(c, chunks): (usize, &mut Vec<&mut [MaybeUninit<T>]>)| {
        let mut chunks: Vec<&mut [T]> = chunks.iter_mut().map(|p| zeroed(p)).collect();
        fill(c * PAR_GRAIN, &mut chunks);
    };
    if rayon::current_num_threads() == 1 {
        parts.iter_mut().enumerate().for_each(task);
    } else {
        parts.par_iter_mut().enumerate().for_each(task);
    }
    drop(parts);
    for out in outs.iter_mut() {
        // SAFETY: the chunks cover the first `n` spare elements, and every task zeroed its
        // chunks (`zeroed`) before filling them.
        unsafe { out.set_len(n) };
    }
    outs
}

/// [`par_fill`] of one vector.
pub fn par_filled<T: WithDType>(n: usize, fill: impl Fn(usize, &mut [T]) + Sync) -> Vec<T> {
    let mut outs = par_fill(1, n, |start, chunks| fill(start, &mut *chunks[0]));
    outs.pop().unwrap_or_default()
}

/// A vector of `n` values whose chunks of `chunk` values (the last one shorter) are filled in
/// parallel by `fill(index, chunk)`, each chunk zeroed first inside its own task.
pub fn par_chunks_filled<T: WithDType>(
    n: usize,
    chunk: usize,
    fill: impl Fn(usize, &mut [T]) + Sync,
) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(n);
    out.spare_capacity_mut()[..n]
        .par_chunks_mut(chunk.max(1))
        .enumerate()
        .for_each(|(c, part)| fill(c, zeroed(part)));
    // SAFETY: the chunks cover the first `n` spare elements, each zeroed in its task.
    unsafe { out.set_len(n) };
    out
}

/// Zeroes `part` and returns it as initialised values.
///
/// The outputs of the parallel fills are zeroed here, chunk by chunk inside the tasks, and not
/// by `vec![0; n]`: that zeroes the whole buffer on one thread before the tasks start and, past
/// the cache, has them read it back from memory (that `memset` was 6 % of a CEBM iteration).
fn zeroed<T: WithDType>(part: &mut [MaybeUninit<T>]) -> &mut [T] {
    for v in part.iter_mut() {
        v.write(T::zero());
    }
    // SAFETY: every element was initialised just above; `MaybeUninit<T>` has `T`'s layout.
    unsafe { std::slice::from_raw_parts_mut(part.as_mut_ptr().cast::<T>(), part.len()) }
}

/// Whether the fused host loops apply: a CPU tensor of f32 or f64.
pub fn is_host_float(t: &Tensor) -> bool {
    t.device().is_cpu() && matches!(t.dtype(), candle_core::DType::F32 | candle_core::DType::F64)
}

/// The float dtypes of the host loops, with the operations `WithDType` lacks.
pub trait HostFloat: WithDType + Neg<Output = Self> {
    fn sqrt(self) -> Self;

    /// [`shifted::sum`] where this type has a kernel on this CPU; `None`: the caller computes such
    /// sums with GEMMs.
    fn shifted_kernel() -> Option<shifted::Kernel<Self>> {
        None
    }
}

impl HostFloat for f32 {
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }

    fn shifted_kernel() -> Option<shifted::Kernel<f32>> {
        shifted::available().then_some(shifted::sum as shifted::Kernel<f32>)
    }
}

impl HostFloat for f64 {
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
}

/// The forward result of a custom op computed before its autograd node is made (so that the work
/// runs outside candle's storage locks), handed to candle once by the op's `cpu_fwd`.
pub struct Precomputed {
    result: Mutex<Option<CpuStorage>>,
    shape: Shape,
}

impl Precomputed {
    pub fn new(result: CpuStorage, shape: Shape) -> Self {
        Precomputed {
            result: Mutex::new(Some(result)),
            shape,
        }
    }

    /// The result, once; `op` names the custom op in the error of a second call.
    pub fn take(&self, op: &str) -> Result<(CpuStorage, Shape)> {
        match self.result.lock().map(|mut r| r.take()).ok().flatten() {
            Some(s) => Ok((s, self.shape.clone())),
            None => candle_core::bail!("{op}: the result was already taken"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_axes_keepdim_matches_candle_on_every_run_of_axes() {
        let dims = [3, 4, 2, 5];
        let n: usize = dims.iter().product();
        let x = Tensor::from_vec(
            (0..n)
                .map(|i| ((i * 37 % 11) as f64 - 5.0) / 3.0)
                .collect::<Vec<_>>(),
            &dims[..],
            &Device::Cpu,
        )
        .unwrap();
        for first in 0..dims.len() {
            for count in 1..=dims.len() - first {
                let got = sum_axes_keepdim::<f64>(&x, first, count).unwrap();
                let want = x
                    .sum_keepdim((first..first + count).collect::<Vec<_>>())
                    .unwrap();
                assert_eq!(got.dims(), want.dims(), "axes {first}+{count}");
                let d = (got - want).unwrap().abs().unwrap().max_all().unwrap();
                assert!(
                    d.to_scalar::<f64>().unwrap() < 1e-12,
                    "axes {first}+{count}"
                );
            }
        }
        // An empty axis sums to zeros; an empty outer axis to nothing.
        let empty = Tensor::zeros((2, 0, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
        let s = sum_axes_keepdim::<f32>(&empty, 1, 1).unwrap();
        assert_eq!(s.dims(), &[2, 1, 3]);
        assert_eq!(
            s.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            vec![0.0; 6]
        );
        let s = sum_axes_keepdim::<f32>(&empty, 0, 2).unwrap();
        assert_eq!(s.dims(), &[1, 1, 3]);
    }

    #[test]
    fn par_fill_covers_every_element_once_across_chunks() {
        // Several chunks and a ragged last one, on the test harness's multi-threaded pool.
        let n = 3 * PAR_GRAIN + 17;
        let outs = par_fill(2, n, |start, chunks: &mut [&mut [f32]]| {
            let [a, b] = chunks else {
                panic!("two outputs")
            };
            for (i, (a, b)) in a.iter_mut().zip(b.iter_mut()).enumerate() {
                *a += (start + i) as f32;
                *b += 2.0 * (start + i) as f32;
            }
        });
        let want: Vec<f32> = (0..n).map(|i| i as f32).collect();
        assert_eq!(outs[0], want);
        assert_eq!(outs[1], want.iter().map(|v| 2.0 * v).collect::<Vec<_>>());
        assert_eq!(par_filled(n, |start, out| out.fill(start as f32)).len(), n);
        assert!(par_filled::<f64>(0, |_, out| assert!(out.is_empty())).is_empty());
    }

    #[test]
    fn par_chunks_filled_hands_out_zeroed_chunks_that_cover_the_vector() {
        let (n, chunk) = (1000, 64);
        let out = par_chunks_filled(n, chunk, |c, part: &mut [f64]| {
            assert!(
                part.len() == chunk || c == n / chunk,
                "chunk {c}: {}",
                part.len()
            );
            for (i, v) in part.iter_mut().enumerate() {
                *v += (c * chunk + i) as f64;
            }
        });
        assert_eq!(out, (0..n).map(|i| i as f64).collect::<Vec<_>>());
        assert!(par_chunks_filled::<f32>(0, 8, |_, _| panic!("no chunks")).is_empty());
    }
}
