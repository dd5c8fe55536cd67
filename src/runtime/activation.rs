//! Leaky ReLU, `x > 0 ? x : s·x`, as one host pass forward and one backward on the CPU (a candle
//! custom op). Its tensor-op form (`max(x, s·x)`) costs two passes forward, and candle's gradient
//! of `maximum` six more (two comparisons, conversions, a division); the MLPs of every spec use
//! it. Other devices and dtypes keep the tensor ops.

use super::host::{is_host_float, par_filled};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, WithDType};

/// `x > 0 ? x : slope·x`, differentiable (the derivative at 0 is `slope`, as the derived
/// gradients' `step` gives).
pub fn leaky_relu(x: &Tensor, slope: f64) -> Result<Tensor> {
    if is_host_float(x) {
        return x.contiguous()?.apply_op1(LeakyRelu { slope });
    }
    // Each form is exact on both sides of 0 for its range of slopes.
    if (0.0..=1.0).contains(&slope) {
        x.broadcast_maximum(&x.affine(slope, 0.0)?)
    } else if slope > 1.0 {
        x.broadcast_minimum(&x.affine(slope, 0.0)?)
    } else {
        x.relu()?.add(&x.neg()?.relu()?.affine(-slope, 0.0)?)
    }
}

struct LeakyRelu {
    slope: f64,
}

/// `grad · (x > 0 ? 1 : slope)`: the backward pass of [`LeakyRelu`].
struct LeakyReluGrad {
    slope: f64,
}

/// `x > 0 ? x : s·x`. The `+ 0` is what candle's `affine(s, 0)` adds (−0 becomes +0, as in the
/// tensor-op form). Both sides computed, then selected: a branch-free loop that LLVM vectorises.
fn forward<T: WithDType>(xs: &[T], slope: f64) -> Vec<T> {
    let (zero, s) = (T::zero(), T::from_f64(slope));
    par_filled(xs.len(), |start, out| {
        for (y, &v) in out.iter_mut().zip(&xs[start..]) {
            let neg = v * s + zero;
            *y = if v > zero { v } else { neg };
        }
    })
}

/// `g · (x > 0 ? 1 : s)`, branch-free as [`forward`].
fn backward<T: WithDType>(x: &[T], g: &[T], slope: f64) -> Vec<T> {
    let (zero, s) = (T::zero(), T::from_f64(slope));
    par_filled(x.len(), |start, out| {
        for ((y, &x), &g) in out.iter_mut().zip(&x[start..]).zip(&g[start..]) {
            let neg = g * s;
            *y = if x > zero { g } else { neg };
        }
    })
}

impl CustomOp1 for LeakyRelu {
    fn name(&self) -> &'static str {
        "ebmc-leaky-relu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let Some((a, b)) = l.contiguous_offsets() else {
            candle_core::bail!("leaky_relu: expected a contiguous tensor");
        };
        let out = match s {
            CpuStorage::F32(v) => CpuStorage::F32(forward(&v[a..b], self.slope)),
            CpuStorage::F64(v) => CpuStorage::F64(forward(&v[a..b], self.slope)),
            other => candle_core::bail!("leaky_relu: unsupported dtype {:?}", other.dtype()),
        };
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let grad = grad.contiguous()?;
        let op = LeakyReluGrad { slope: self.slope };
        Ok(Some(x.apply_op2_no_bwd(&grad, &op)?))
    }
}

impl CustomOp2 for LeakyReluGrad {
    fn name(&self) -> &'static str {
        "ebmc-leaky-relu-grad"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (Some((xa, xb)), Some((ga, gb))) = (xl.contiguous_offsets(), gl.contiguous_offsets())
        else {
            candle_core::bail!("leaky_relu backward: expected contiguous tensors");
        };
        let out = match (xs, gs) {
            (CpuStorage::F32(x), CpuStorage::F32(g)) => {
                CpuStorage::F32(backward(&x[xa..xb], &g[ga..gb], self.slope))
            }
            (CpuStorage::F64(x), CpuStorage::F64(g)) => {
                CpuStorage::F64(backward(&x[xa..xb], &g[ga..gb], self.slope))
            }
            _ => candle_core::bail!("leaky_relu backward: unsupported dtypes"),
        };
        Ok((out, xl.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::bit_pattern;
    use candle_core::{DType, Device, Var};

    /// The tensor-op forms (what other devices compute).
    fn by_ops(x: &Tensor, s: f64) -> Tensor {
        if (0.0..=1.0).contains(&s) {
            x.broadcast_maximum(&x.affine(s, 0.0).unwrap()).unwrap()
        } else if s > 1.0 {
            x.broadcast_minimum(&x.affine(s, 0.0).unwrap()).unwrap()
        } else {
            let neg = x.neg().unwrap().relu().unwrap().affine(-s, 0.0).unwrap();
            x.relu().unwrap().add(&neg).unwrap()
        }
    }

    #[test]
    fn the_host_pass_matches_the_tensor_ops_bit_for_bit() {
        for dtype in [DType::F32, DType::F64] {
            let x = Tensor::new(&[-3.5f64, -0.25, 0.0, 1e-30, 0.7, 12.0], &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            // Strided input: the op makes it contiguous first.
            let x2 = Tensor::stack(&[&x, &x], 1).unwrap().t().unwrap();
            // More elements than one task of the parallel pass takes.
            let big = (0..50_000).map(|i| ((i * 7919) % 2001) as f64 / 100.0 - 10.0);
            let x3 = Tensor::from_iter(big, &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            for s in [0.0, 0.2, 1.0, 1.5, -0.3] {
                assert_eq!(
                    bit_pattern(&leaky_relu(&x3, s).unwrap()),
                    bit_pattern(&by_ops(&x3, s))
                );
                assert_eq!(
                    bit_pattern(&leaky_relu(&x, s).unwrap()),
                    bit_pattern(&by_ops(&x, s))
                );
                assert_eq!(
                    bit_pattern(&leaky_relu(&x2, s).unwrap()),
                    bit_pattern(&by_ops(&x2, s))
                );
            }
        }
    }

    #[test]
    fn its_gradient_is_one_above_zero_and_the_slope_below() {
        let x = Var::new(&[-2.0f32, -0.5, 0.0, 0.5, 3.0], &Device::Cpu).unwrap();
        let w = Tensor::new(&[1.0f32, 2.0, 3.0, 4.0, 5.0], &Device::Cpu).unwrap();
        let y = (leaky_relu(x.as_tensor(), 0.2).unwrap() * &w)
            .unwrap()
            .sum_all()
            .unwrap();
        let g = y.backward().unwrap();
        let gx: Vec<f32> = g.get(x.as_tensor()).unwrap().to_vec1().unwrap();
        assert_eq!(gx, vec![0.2, 0.4, 0.6, 4.0, 5.0]);

        // More elements than one task of the parallel pass takes.
        let n = 50_000;
        let xs: Vec<f32> = (0..n)
            .map(|i| if i % 3 == 0 { -1.0 } else { 1.0 })
            .collect();
        let ws: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let x = Var::from_vec(xs.clone(), n, &Device::Cpu).unwrap();
        let w = Tensor::from_vec(ws.clone(), n, &Device::Cpu).unwrap();
        let y = (leaky_relu(x.as_tensor(), 0.2).unwrap() * &w).unwrap();
        let g = y.sum_all().unwrap().backward().unwrap();
        let gx: Vec<f32> = g.get(x.as_tensor()).unwrap().to_vec1().unwrap();
        let want: Vec<f32> = xs
            .iter()
            .zip(&ws)
            .map(|(&x, &w)| if x > 0.0 { w } else { w * 0.2 })
            .collect();
        assert_eq!(gx, want);
    }
}
