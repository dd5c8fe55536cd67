//! Host-memory access to CPU tensors, for the fused loops that replace chains of candle ops on the
//! CPU (Langevin update, Adam, swish, leaky ReLU, im2col). Other devices keep the tensor ops.

use candle_core::{CpuStorage, Device, Layout, Result, Shape, Storage, Tensor, WithDType};
use rayon::prelude::*;
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

/// Elements per task of [`par_fill`]: below this a split costs more than the loop it shares.
pub const PAR_GRAIN: usize = 1 << 14;

/// `outs` (of equal length) filled by `fill(start, chunks)` over chunks of [`PAR_GRAIN`] elements
/// in parallel, where `chunks[k]` is `outs[k][start..start + len]`. Elementwise loops give the
/// same bits in any split.
pub fn par_fill<T: WithDType>(outs: &mut [Vec<T>], fill: impl Fn(usize, &mut [&mut [T]]) + Sync) {
    let n = outs.first().map_or(0, Vec::len);
    if n <= PAR_GRAIN || rayon::current_num_threads() == 1 {
        let mut all: Vec<&mut [T]> = outs.iter_mut().map(|v| v.as_mut_slice()).collect();
        return fill(0, &mut all);
    }
    let mut parts: Vec<Vec<&mut [T]>> = (0..n.div_ceil(PAR_GRAIN)).map(|_| Vec::new()).collect();
    for out in outs.iter_mut() {
        for (part, chunk) in parts.iter_mut().zip(out.chunks_mut(PAR_GRAIN)) {
            part.push(chunk);
        }
    }
    parts
        .par_iter_mut()
        .enumerate()
        .for_each(|(c, chunks)| fill(c * PAR_GRAIN, chunks));
}

/// A vector of `n` values filled by `fill(start, chunk)` as in [`par_fill`] (one output).
pub fn par_filled<T: WithDType>(n: usize, fill: impl Fn(usize, &mut [T]) + Sync) -> Vec<T> {
    let mut out = vec![vec![T::zero(); n]];
    par_fill(&mut out, |start, chunks| fill(start, &mut *chunks[0]));
    out.pop().unwrap_or_default()
}

/// Whether the fused host loops apply: a CPU tensor of f32 or f64.
pub fn is_host_float(t: &Tensor) -> bool {
    t.device().is_cpu() && matches!(t.dtype(), candle_core::DType::F32 | candle_core::DType::F64)
}

/// The float dtypes of the host loops, with the operations `WithDType` lacks.
pub trait HostFloat: WithDType + Neg<Output = Self> {
    fn sqrt(self) -> Self;
}

impl HostFloat for f32 {
    fn sqrt(self) -> Self {
        f32::sqrt(self)
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
    fn par_fill_covers_every_element_once_across_chunks() {
        // Several chunks and a ragged last one, on the test harness's multi-threaded pool.
        let n = 3 * PAR_GRAIN + 17;
        let mut outs = vec![vec![0.0f32; n]; 2];
        par_fill(&mut outs, |start, chunks| {
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
}
