//! A peephole of the executor's plans: `r = g · (a·step(h) + b)` in one pass.
//!
//! Reverse mode over a leaky ReLU (slope s) emits the derivative as `step(h)·(1 − s) + s` times
//! the incoming gradient: four elementwise nodes, four passes over activations that reach millions
//! of elements in the DCGAN generator, in every Langevin step. When the three inner nodes feed
//! only that product, the plan evaluates `r` directly from `h` and `g` and skips them. On the CPU
//! (f32/f64, off the tape) it is one host loop; elsewhere the same tensor ops as unfused. Both give
//! the bits of the unfused nodes.

use super::host::{is_host_float, tensor, try_with_slice, with_slice};
use crate::ir::{Binary, NodeId, Op, Program, Unary};
use candle_core::{DType, Result, Tensor, WithDType};
use std::collections::HashMap;

/// One matched `r = g · (a·step(h) + b)`.
#[derive(Clone, Debug)]
pub(crate) struct StepScale {
    pub h: NodeId,
    pub g: NodeId,
    pub a: f64,
    pub b: f64,
    /// `step(h)`, `a·step(h)`, `a·step(h) + b`: not evaluated when the product is fused.
    pub inner: [NodeId; 3],
}

/// The fusable products among `order` (keyed by `r`): every node of the pattern has `r`'s shape
/// (no broadcasting), and the inner nodes are used by nothing else, nor returned.
pub(crate) fn find(
    program: &Program,
    order: &[NodeId],
    outputs: &[NodeId],
) -> HashMap<NodeId, StepScale> {
    let mut uses: HashMap<NodeId, usize> = HashMap::new();
    for id in order {
        for i in &program.node(*id).inputs {
            *uses.entry(*i).or_default() += 1;
        }
    }
    let private = |id: NodeId| uses.get(&id) == Some(&1) && !outputs.contains(&id);
    let konst = |id: NodeId| match program.node(id).op {
        Op::Const(c) => Some(c),
        _ => None,
    };
    // `op(x, c)` or `op(c, x)` with c a constant: (x, c).
    let with_const = |id: NodeId, op: Binary| -> Option<(NodeId, f64)> {
        let n = program.node(id);
        if n.op != Op::Binary(op) {
            return None;
        }
        let (l, r) = (n.inputs[0], n.inputs[1]);
        match (konst(l), konst(r)) {
            (None, Some(c)) => Some((l, c)),
            (Some(c), None) => Some((r, c)),
            _ => None,
        }
    };
    let mut out = HashMap::new();
    for &r in order {
        let node = program.node(r);
        if node.op != Op::Binary(Binary::Mul) || (node.shape.dims.is_empty() && !node.shape.batched)
        {
            continue;
        }
        for (k, &sum) in node.inputs.iter().enumerate() {
            let g = node.inputs[1 - k];
            let Some((scaled, b)) = with_const(sum, Binary::Add) else {
                continue;
            };
            let Some((step, a)) = with_const(scaled, Binary::Mul) else {
                continue;
            };
            if program.node(step).op != Op::Unary(Unary::Step) {
                continue;
            }
            let h = program.node(step).inputs[0];
            let same = [h, g, step, scaled, sum]
                .iter()
                .all(|n| program.node(*n).shape == node.shape);
            if same && [step, scaled, sum].into_iter().all(private) && konst(g).is_none() {
                let inner = [step, scaled, sum];
                out.insert(r, StepScale { h, g, a, b, inner });
                break;
            }
        }
    }
    out
}

/// `g · (a·step(h) + b)`, with the roundings of the unfused nodes (`step` is `relu(sign(h))`, a
/// product or sum with a constant is candle's `affine`).
pub(crate) fn eval(h: &Tensor, g: &Tensor, a: f64, b: f64) -> Result<Tensor> {
    let host = is_host_float(h)
        && is_host_float(g)
        && h.dtype() == g.dtype()
        && h.dims() == g.dims()
        && !h.track_op()
        && !g.track_op();
    if host {
        return match h.dtype() {
            DType::F32 => eval_host::<f32>(h, g, a, b),
            _ => eval_host::<f64>(h, g, a, b),
        };
    }
    let d = h.sign()?.relu()?.affine(a, 0.0)?.affine(1.0, b)?;
    g.mul(&d)
}

fn eval_host<T: WithDType>(h: &Tensor, g: &Tensor, a: f64, b: f64) -> Result<Tensor> {
    let (h, g) = (h.contiguous()?, g.contiguous()?);
    let (zero, one) = (T::zero(), T::one());
    // affine(a, 0) then affine(1, b) of step's 1 and 0, as candle rounds them.
    let d = |s: T| (s * T::from_f64(a) + zero) * one + T::from_f64(b);
    let (d1, d0) = (d(one), d(zero));
    let out: Vec<T> = try_with_slice(&h, |hs: &[T]| {
        with_slice(&g, |gs: &[T]| {
            hs.iter()
                .zip(gs)
                .map(|(&h, &g)| {
                    // Both products, then a select: branch-free, so LLVM vectorises it.
                    let (p1, p0) = (g * d1, g * d0);
                    if h > zero { p1 } else { p0 }
                })
                .collect()
        })
    })?;
    tensor(out, h.dims())
}
