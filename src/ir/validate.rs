//! Structural checks of a program: handles in range, inputs before users (so the graph is acyclic),
//! shapes consistent with each op, functions reading only their own inputs.

use super::{Binary, NodeId, Op, Program, broadcast_shapes, print::reachable};
use crate::check::Shape;

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;

/// A broken program: always an internal error of a pass, never a user mistake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidProgram(pub String);

impl std::fmt::Display for InvalidProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "internal error, please report: invalid IR: {}", self.0)
    }
}

pub fn validate(p: &Program) -> Result<(), InvalidProgram> {
    let err = |m: String| Err(InvalidProgram(m));
    for (i, n) in p.nodes.iter().enumerate() {
        let id = NodeId(i as u32);
        for input in &n.inputs {
            if input.index() >= p.nodes.len() {
                return err(format!(
                    "{id} reads {input}, out of range ({} nodes)",
                    p.nodes.len()
                ));
            }
            if input.index() >= i {
                return err(format!("{id} reads {input}, which does not precede it"));
            }
        }
        let ins: Vec<&Shape> = n.inputs.iter().map(|x| &p.node(*x).shape).collect();
        if let Some(problem) = shape_problem(&n.op, &ins, &n.shape) {
            return err(format!("{id} = {}: {problem}", n.op.name()));
        }
        if let Op::Param(path) = &n.op
            && p.param(path).is_none()
        {
            return err(format!(
                "{id} reads parameter {path}, which is not declared"
            ));
        }
    }
    let mut names = std::collections::BTreeSet::new();
    for f in &p.functions {
        if !names.insert(&f.name) {
            return err(format!("function {} is defined twice", f.name));
        }
        for (_, id) in f.inputs.iter().chain(&f.outputs) {
            if id.index() >= p.nodes.len() {
                return err(format!("function {} refers to {id}, out of range", f.name));
            }
        }
        for id in reachable(p, f.outputs.iter().map(|(_, id)| *id)) {
            if let Op::Input(name) = &p.node(id).op
                && !f.inputs.iter().any(|(_, i)| *i == id)
            {
                return err(format!(
                    "function {} reads input `{name}` ({id}) that is not among its arguments",
                    f.name
                ));
            }
        }
    }
    Ok(())
}

fn shape_problem(op: &Op, ins: &[&Shape], out: &Shape) -> Option<String> {
    let arity =
        |n: usize| (ins.len() != n).then(|| format!("expects {n} inputs, has {}", ins.len()));
    let same = |s: &Shape| (s != out).then(|| format!("output {out} differs from input {s}"));
    match op {
        Op::Input(_) | Op::Param(_) | Op::Const(_) => arity(0),
        Op::Unary(_) => arity(1).or_else(|| same(ins[0])),
        Op::Binary(
            Binary::Add
            | Binary::Sub
            | Binary::Mul
            | Binary::Div
            | Binary::Pow
            | Binary::Max
            | Binary::Min,
        ) => arity(2).or_else(|| match broadcast_shapes(ins[0], ins[1]) {
            Some(s) if &s == out => None,
            _ => Some(format!(
                "{} and {} do not broadcast to {out}",
                ins[0], ins[1]
            )),
        }),
        Op::Linear => arity(3).or_else(|| {
            let (x, w) = (ins[0], ins[1]);
            (w.dims.len() != 2
                || x.dims.last() != w.dims.get(1)
                || out.dims.last() != w.dims.first())
            .then(|| format!("x {x}, weight {w}, output {out} do not fit"))
        }),
        Op::Sum { axes } => arity(1).or_else(|| {
            let keep: Vec<usize> = ins[0]
                .dims
                .iter()
                .enumerate()
                .filter(|(i, _)| !axes.contains(i))
                .map(|(_, d)| *d)
                .collect();
            (keep != out.dims || axes.iter().any(|a| *a >= ins[0].dims.len()))
                .then(|| format!("sum of {} is not {out}", ins[0]))
        }),
        Op::Reshape => arity(1).or_else(|| {
            (ins[0].numel() != out.numel()).then(|| "reshape changes the element count".into())
        }),
        Op::Unsqueeze { axis } => arity(1).or_else(|| {
            let mut d = ins[0].dims.clone();
            if *axis > d.len() {
                return Some("axis out of range".into());
            }
            d.insert(*axis, 1);
            (d != out.dims).then(|| format!("unsqueeze of {} is not {out}", ins[0]))
        }),
        Op::LogSumExp { axis } | Op::Select { axis, .. } => arity(1).or_else(|| {
            let mut d = ins[0].dims.clone();
            if *axis >= d.len() {
                return Some("axis out of range".into());
            }
            d.remove(*axis);
            (d != out.dims).then(|| format!("reducing {} is not {out}", ins[0]))
        }),
        Op::Softmax { .. } | Op::LogSoftmax { .. } => arity(1).or_else(|| same(ins[0])),
        Op::MatMul => arity(2).or_else(|| matmul_problem(ins[0], ins[1], out)),
        Op::Conv2d { stride, padding } => {
            arity(3).or_else(|| conv_problem(ins, out, Conv::Forward, *stride, *padding, 0))
        }
        Op::ConvTranspose2d {
            stride,
            padding,
            output_padding,
        } => arity(3).or_else(|| {
            conv_problem(
                ins,
                out,
                Conv::Transposed,
                *stride,
                *padding,
                *output_padding,
            )
        }),
        Op::Concat { axis } => concat_problem(ins, out, *axis),
        // `Broadcast` repeats its input to the node's shape; `SumTo` sums its (larger) input back
        // to the node's shape, which must broadcast to the input; `Where` reads `[a, b, cond]`,
        // each repeated to the node's shape.
        Op::Broadcast => arity(1).or_else(|| {
            (!broadcasts_to(ins[0], out)).then(|| format!("{} does not broadcast to {out}", ins[0]))
        }),
        Op::SumTo => arity(1).or_else(|| {
            (!broadcasts_to(out, ins[0]))
                .then(|| format!("{out} does not broadcast to the input {}", ins[0]))
        }),
        Op::Where => arity(3).or_else(|| {
            ins.iter()
                .find(|s| !broadcasts_to(s, out))
                .map(|s| format!("input {s} does not broadcast to {out}"))
        }),
    }
}

/// Whether `from` repeats to exactly `to` (numpy rules on event dims, right-aligned; a batched
/// value cannot lose its batch).
fn broadcasts_to(from: &Shape, to: &Shape) -> bool {
    broadcast_shapes(from, to).is_some_and(|s| &s == to)
}

/// `x · w` over the last axis of `x` and the first of `w`: `x [.., I]`, `w [I, R..]` →
/// `[.., R..]`; `w` may be batched (one matrix per example), and the result is batched when
/// either is.
fn matmul_problem(x: &Shape, w: &Shape, out: &Shape) -> Option<String> {
    let Some((&i, lead)) = x.dims.split_last() else {
        return Some(format!("x {x} has no axis to contract"));
    };
    if w.dims.first() != Some(&i) {
        return Some(format!(
            "x {x} and weight {w} do not fit (last axis of x, first of w)"
        ));
    }
    let dims: Vec<usize> = lead.iter().chain(&w.dims[1..]).copied().collect();
    let expected = Shape {
        batched: x.batched || w.batched,
        dims,
    };
    (&expected != out).then(|| format!("x {x} · weight {w} is {expected}, not {out}"))
}

#[derive(Clone, Copy, PartialEq)]
enum Conv {
    /// `w: [out, in, kh, kw]`, size `(n + 2p − k) / s + 1`.
    Forward,
    /// `w: [in, out, kh, kw]`, size `(n − 1) s + k + output_padding − 2p`.
    Transposed,
}

/// `[x, w, bias]` with `x [C, H, W]` (batched or not), an unbatched 4-d weight and a bias of one
/// value per output channel (or a single value); the node keeps the batch of `x`.
fn conv_problem(
    ins: &[&Shape],
    out: &Shape,
    kind: Conv,
    stride: usize,
    padding: usize,
    output_padding: usize,
) -> Option<String> {
    let (x, w, bias) = (ins[0], ins[1], ins[2]);
    let [c, h, wd] = x.dims[..] else {
        return Some(format!("input {x} is not an image [C, H, W]"));
    };
    let (&[w0, w1, kh, kw], false) = (&w.dims[..], w.batched) else {
        return Some(format!("weight {w} is not [out, in, kh, kw]"));
    };
    let (cin, cout) = match kind {
        Conv::Forward => (w1, w0),
        Conv::Transposed => (w0, w1),
    };
    if cin != c {
        return Some(format!(
            "input {x} has {c} channels, weight {w} expects {cin}"
        ));
    }
    if bias.batched || (bias.numel() != cout && bias.numel() != 1) {
        return Some(format!("bias {bias} does not fit {cout} output channels"));
    }
    if stride == 0 {
        return Some("stride 0".into());
    }
    let size = |n: usize, k: usize| match kind {
        Conv::Forward => (n + 2 * padding).checked_sub(k).map(|m| m / stride + 1),
        Conv::Transposed => n
            .checked_sub(1)
            .and_then(|m| (m * stride + k + output_padding).checked_sub(2 * padding)),
    };
    if kind == Conv::Transposed && output_padding >= stride {
        return Some(format!(
            "output padding {output_padding} is not smaller than the stride {stride}"
        ));
    }
    let (Some(ho), Some(wo)) = (size(h, kh), size(wd, kw)) else {
        return Some(format!("kernel {kh}×{kw} does not fit input {x}"));
    };
    let expected = Shape {
        batched: x.batched,
        dims: vec![cout, ho, wo],
    };
    (&expected != out).then(|| format!("input {x} with weight {w} gives {expected}, not {out}"))
}

/// Inputs of the node's rank, their sizes along `axis` adding up to the node's; along the other
/// axes each input has the node's size or 1 (repeated), as has its batch.
fn concat_problem(ins: &[&Shape], out: &Shape, axis: usize) -> Option<String> {
    if ins.is_empty() {
        return Some("expects at least 1 input, has 0".into());
    }
    if axis >= out.dims.len() {
        return Some(format!("axis {axis} out of range for {out}"));
    }
    for s in ins {
        if s.dims.len() != out.dims.len() {
            return Some(format!("input {s} does not have the rank of {out}"));
        }
        let mut slab = out.clone();
        slab.dims[axis] = s.dims[axis];
        if !broadcasts_to(s, &slab) {
            return Some(format!(
                "input {s} does not broadcast to its slab {slab} of {out}"
            ));
        }
    }
    let total: usize = ins.iter().map(|s| s.dims[axis]).sum();
    (total != out.dims[axis]).then(|| {
        format!(
            "sizes along axis {axis} add up to {total}, not {}",
            out.dims[axis]
        )
    })
}
