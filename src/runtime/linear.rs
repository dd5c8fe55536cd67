//! The dense layer `x · wᵀ + b` as one autograd node on the CPU. Its forward is candle's GEMM
//! and broadcast add; its backward computes only the gradients the graph needs. candle's own
//! gradient of the same ops also multiplies out the gradient of a constant input (the data x of
//! an encoder's first layer: as much work as the layer's forward) and accumulates the weight's
//! gradient through a strided transpose.

use super::host::{Precomputed, is_host_float};
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Storage, Tensor};

/// `x · wᵀ (+ b)` for `x: [rows, i]`, `w: [o, i]`, `b: [o]`; differentiable w.r.t. all three.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let x = x.contiguous()?;
    let tracked = x.track_op() || w.track_op() || b.is_some_and(|b| b.track_op());
    if tracked && !is_host_float(&x) {
        // Off the CPU: candle's ops and their gradients.
        let y = x.matmul(&w.t()?)?;
        return match b {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        };
    }
    let y = x.detach().matmul(&w.detach().t()?)?;
    let y = match b {
        Some(b) => y.broadcast_add(&b.detach())?,
        None => y,
    };
    if !tracked {
        return Ok(y);
    }
    let node = Node {
        result: Precomputed::new(host_storage(&y)?, y.shape().clone()),
    };
    match b {
        Some(b) => x.apply_op3(w, b, node),
        None => x.apply_op2(w, node),
    }
}

/// A copy of a contiguous CPU tensor's storage.
fn host_storage(t: &Tensor) -> Result<CpuStorage> {
    let (storage, layout) = t.storage_and_layout();
    match (&*storage, layout.contiguous_offsets()) {
        (Storage::Cpu(s), Some((0, n))) if n == t.elem_count() => Ok(s.clone()),
        _ => candle_core::bail!("internal error: linear: expected a fresh CPU tensor"),
    }
}

/// A dense layer in the autograd graph; its forward result was computed beforehand and is handed
/// over once by `cpu_fwd`.
struct Node {
    result: Precomputed,
}

impl Node {
    /// The gradients w.r.t. x and w that the graph needs.
    fn grads(x: &Tensor, w: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let gx = if x.track_op() {
            Some(grad.matmul(&w.detach())?)
        } else {
            None
        };
        let gw = if w.track_op() {
            Some(grad.t()?.matmul(&x.detach())?)
        } else {
            None
        };
        Ok((gx, gw))
    }
}

impl CustomOp2 for Node {
    fn name(&self) -> &'static str {
        "ebmc-linear"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.result.take("ebmc-linear")
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Node::grads(x, w, grad)
    }
}

impl CustomOp3 for Node {
    fn name(&self) -> &'static str {
        "ebmc-linear"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.result.take("ebmc-linear")
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (gx, gw) = Node::grads(x, w, grad)?;
        let gb = if b.track_op() {
            Some(grad.sum(0)?)
        } else {
            None
        };
        Ok((gx, gw, gb))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    /// The gradients of `linear` against candle's own ops, for every combination of tracked
    /// inputs; an untracked input gets no gradient.
    #[test]
    fn its_gradients_match_candles_ops() {
        let dev = Device::Cpu;
        let mut rng = crate::runtime::rng::Rng::new(9);
        let mut draw = |d: &[usize]| rng.normal(d, 0.0, 1.0, &dev, DType::F64).unwrap();
        let (x0, w0, b0, r) = (draw(&[5, 4]), draw(&[3, 4]), draw(&[3]), draw(&[5, 3]));
        for mask in 0..8u8 {
            let track = |t: &Tensor, bit: u8| -> (Tensor, Option<Var>) {
                if mask & bit != 0 {
                    let v = Var::from_tensor(t).unwrap();
                    (v.as_tensor().clone(), Some(v))
                } else {
                    (t.clone(), None)
                }
            };
            let ((x, vx), (w, vw), (b, vb)) = (track(&x0, 1), track(&w0, 2), track(&b0, 4));
            let ours = linear(&x, &w, Some(&b)).unwrap();
            let theirs = x
                .matmul(&w.t().unwrap())
                .unwrap()
                .broadcast_add(&b)
                .unwrap();
            let diff = |a: &Tensor, b: &Tensor| {
                (a - b)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f64>()
                    .unwrap()
            };
            assert!(diff(&ours, &theirs) < 1e-12);
            if mask == 0 {
                continue;
            }
            let (ga, gb) = (
                (ours * &r).unwrap().sum_all().unwrap().backward().unwrap(),
                (theirs * &r)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap(),
            );
            for v in [&vx, &vw, &vb].into_iter().flatten() {
                let (a, b) = (
                    ga.get(v.as_tensor()).unwrap(),
                    gb.get(v.as_tensor()).unwrap(),
                );
                assert!(diff(a, b) < 1e-12, "mask {mask}");
            }
        }
    }
}
