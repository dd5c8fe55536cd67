//! A small reference evaluator of the IR in f64 (plain loops, no candle), for numeric tests of
//! derived functions: clarity over speed.
//!
//! Values are dense row-major tensors whose shape includes the batch dimension `B` when the node is
//! batched. `B` is taken from the batched inputs of the evaluated function.
//!
//! Conventions this evaluator fixes (the runtime must agree):
//! - `Gelu` is the tanh approximation `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))` (candle's
//!   `gelu`, not `gelu_erf`), so that its derivative is expressible with the IR's own ops.
//! - `Step(x)` is 1 where `x > 0`, else 0; `LeakyRelu(s)(0) = 0`.
//! - Elementwise ops (`Binary`, `Where`, `Broadcast`, `SumTo`) broadcast numpy-style over the event
//!   dims (aligned from the right); the batch dim is separate: an unbatched operand is repeated over
//!   the batch, and `Broadcast` may turn an unbatched value into a batched one (`SumTo` does the
//!   reverse by summing over the batch).
//! - `MatMul`: `x: [.., in]`, `w: [in, R..]` → `[.., R..]`; `w` may be batched (one matrix per example).

use super::print::reachable;
use super::{Binary, NodeId, Op, ParamInit, Program, Unary};
use crate::check::Shape;
use std::collections::HashMap;

#[cfg(test)]
#[path = "eval_tests.rs"]
mod eval_tests;

/// A dense f64 tensor; `shape` includes the batch dimension when the value is batched.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

impl Tensor {
    /// A tensor from its shape and row-major data; panics if they disagree.
    pub fn new(shape: Vec<usize>, data: Vec<f64>) -> Self {
        assert_eq!(
            shape.iter().product::<usize>(),
            data.len(),
            "internal error: tensor shape {shape:?} does not hold {} values",
            data.len()
        );
        Tensor { shape, data }
    }

    pub fn scalar(v: f64) -> Self {
        Tensor {
            shape: Vec::new(),
            data: vec![v],
        }
    }

    pub fn zeros(shape: Vec<usize>) -> Self {
        let n = shape.iter().product();
        Tensor {
            shape,
            data: vec![0.0; n],
        }
    }

    pub fn numel(&self) -> usize {
        self.data.len()
    }
}

/// Parameter values by spec path.
pub type ParamValues = HashMap<String, Tensor>;

/// Evaluates function `name` on the given inputs (by argument name); returns its named outputs.
pub fn eval_function(
    p: &Program,
    name: &str,
    inputs: &[(&str, Tensor)],
    params: &ParamValues,
) -> Vec<(String, Tensor)> {
    let f = p
        .function(name)
        .unwrap_or_else(|| panic!("internal error: no function `{name}` to evaluate"));
    // The value of each argument, by its Input node; the batch size from the batched ones.
    let mut args: HashMap<NodeId, &Tensor> = HashMap::new();
    let mut batch: Option<usize> = None;
    for (arg, id) in &f.inputs {
        let Some((_, t)) = inputs.iter().find(|(n, _)| n == arg) else {
            continue;
        };
        let shape = &p.node(*id).shape;
        if shape.batched {
            let b = *t.shape.first().unwrap_or_else(|| {
                panic!("internal error: batched input `{arg}` given as a scalar")
            });
            if let Some(prev) = batch
                && prev != b
            {
                panic!("internal error: inputs disagree on the batch size ({prev} and {b})");
            }
            batch = Some(b);
        }
        args.insert(*id, t);
    }
    let mut vals: Vec<Option<Tensor>> = vec![None; p.nodes.len()];
    for id in reachable(p, f.outputs.iter().map(|(_, id)| *id)) {
        let v = eval_node(p, id, &vals, &args, params, batch);
        let expect = full_dims(&p.node(id).shape, batch);
        if v.shape != expect {
            panic!(
                "internal error: {id} = {} evaluated to shape {:?}, expected {expect:?}",
                p.node(id).op.name(),
                v.shape
            );
        }
        vals[id.index()] = Some(v);
    }
    f.outputs
        .iter()
        .map(|(n, id)| {
            (
                n.clone(),
                vals[id.index()]
                    .clone()
                    .expect("internal error: output not evaluated"),
            )
        })
        .collect()
}

/// The dims of a node's value: the batch (if batched) followed by the event dims.
fn full_dims(s: &Shape, batch: Option<usize>) -> Vec<usize> {
    let mut d = Vec::with_capacity(s.dims.len() + 1);
    if s.batched {
        d.push(batch.expect("internal error: a batched node in a function without batched inputs"));
    }
    d.extend(&s.dims);
    d
}

fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1];
    }
    s
}

/// Calls `f(flat, index)` for every index of `dims` in row-major order.
fn for_each_index(dims: &[usize], mut f: impl FnMut(usize, &[usize])) {
    let n: usize = dims.iter().product();
    let mut idx = vec![0usize; dims.len()];
    for flat in 0..n {
        f(flat, &idx);
        for a in (0..dims.len()).rev() {
            idx[a] += 1;
            if idx[a] < dims[a] {
                break;
            }
            idx[a] = 0;
        }
    }
}

fn dot(idx: &[usize], strides: &[usize]) -> usize {
    idx.iter().zip(strides).map(|(i, s)| i * s).sum()
}

/// For each axis of `dst`'s full dims, the stride of `src`'s data along it (0 where `src` is
/// broadcast): numpy alignment of event dims from the right, batch matched with batch.
fn bstrides(src: &Shape, dst: &Shape, batch: Option<usize>) -> Vec<usize> {
    let sfull = full_dims(src, batch);
    let sstr = strides(&sfull);
    let off = src.batched as usize;
    let mut out = Vec::with_capacity(dst.dims.len() + 1);
    if dst.batched {
        out.push(if src.batched { sstr[0] } else { 0 });
    } else if src.batched {
        panic!("internal error: cannot broadcast batched {src} to unbatched {dst}");
    }
    let (n, m) = (dst.dims.len(), src.dims.len());
    if m > n {
        panic!("internal error: cannot broadcast {src} to {dst}");
    }
    for i in 0..n {
        if i < n - m {
            out.push(0);
            continue;
        }
        let j = i - (n - m);
        let d = src.dims[j];
        if d == dst.dims[i] {
            out.push(sstr[off + j]);
        } else if d == 1 {
            out.push(0);
        } else {
            panic!("internal error: cannot broadcast {src} to {dst}");
        }
    }
    out
}

/// `(outer, n, inner)` for a reduction over tensor axis `ax` of `dims`.
fn split_axis(dims: &[usize], ax: usize) -> (usize, usize, usize) {
    assert!(
        ax < dims.len(),
        "internal error: axis {ax} out of range for {dims:?}"
    );
    (
        dims[..ax].iter().product(),
        dims[ax],
        dims[ax + 1..].iter().product(),
    )
}

pub(crate) fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `log(1 + exp(x))`, stable for large |x|.
pub(crate) fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// √(2/π), the constant of the tanh approximation of GELU.
pub(crate) const GELU_C: f64 = 0.797_884_560_802_865_4;
pub(crate) const GELU_A: f64 = 0.044_715;

pub(crate) fn unary_value(u: Unary, x: f64) -> f64 {
    match u {
        Unary::Neg => -x,
        Unary::Exp => x.exp(),
        Unary::Log => x.ln(),
        Unary::Sqr => x * x,
        Unary::Sqrt => x.sqrt(),
        Unary::Softplus => softplus(x),
        Unary::Sigmoid => sigmoid(x),
        Unary::Tanh => x.tanh(),
        Unary::Relu => x.max(0.0),
        Unary::LeakyRelu(s) => {
            if x > 0.0 {
                x
            } else {
                s * x
            }
        }
        Unary::Gelu => 0.5 * x * (1.0 + (GELU_C * (x + GELU_A * x * x * x)).tanh()),
        Unary::Swish => x * sigmoid(x),
        Unary::Step => {
            if x > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Unary::Recip => 1.0 / x,
    }
}

pub(crate) fn binary_value(op: Binary, a: f64, b: f64) -> f64 {
    match op {
        Binary::Add => a + b,
        Binary::Sub => a - b,
        Binary::Mul => a * b,
        Binary::Div => a / b,
        Binary::Pow => a.powf(b),
        Binary::Max => a.max(b),
        Binary::Min => a.min(b),
    }
}

fn log_sum_exp(xs: impl Iterator<Item = f64> + Clone) -> f64 {
    let m = xs.clone().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY || m.is_nan() {
        return m;
    }
    if m == f64::INFINITY {
        return m;
    }
    m + xs.map(|x| (x - m).exp()).sum::<f64>().ln()
}

fn eval_node(
    p: &Program,
    id: NodeId,
    vals: &[Option<Tensor>],
    args: &HashMap<NodeId, &Tensor>,
    params: &ParamValues,
    batch: Option<usize>,
) -> Tensor {
    let node = p.node(id);
    let out_dims = full_dims(&node.shape, batch);
    let arg = |i: usize| -> &Tensor {
        let input = node
            .inputs
            .get(i)
            .unwrap_or_else(|| panic!("internal error: {id} = {} lacks input {i}", node.op.name()));
        vals[input.index()].as_ref().unwrap_or_else(|| {
            panic!("internal error: {input} used by {id} before it is evaluated")
        })
    };
    let shape_of = |i: usize| -> &Shape { &p.node(node.inputs[i]).shape };
    let off = node.shape.batched as usize;
    match &node.op {
        Op::Input(name) => {
            let t = args
                .get(&id)
                .unwrap_or_else(|| panic!("internal error: no value given for input `{name}`"));
            if t.shape != out_dims {
                panic!(
                    "internal error: input `{name}` has shape {:?}, expected {out_dims:?}",
                    t.shape
                );
            }
            (*t).clone()
        }
        Op::Param(path) => {
            let t = params
                .get(path)
                .unwrap_or_else(|| panic!("internal error: no value given for parameter `{path}`"));
            if t.shape != out_dims {
                panic!(
                    "internal error: parameter `{path}` has shape {:?}, expected {out_dims:?}",
                    t.shape
                );
            }
            t.clone()
        }
        Op::Const(c) => {
            let n = out_dims.iter().product();
            Tensor::new(out_dims, vec![*c; n])
        }
        Op::Unary(u) => {
            let a = arg(0);
            Tensor::new(
                a.shape.clone(),
                a.data.iter().map(|x| unary_value(*u, *x)).collect(),
            )
        }
        Op::Binary(b) => {
            let (a, c) = (arg(0), arg(1));
            let sa = bstrides(shape_of(0), &node.shape, batch);
            let sc = bstrides(shape_of(1), &node.shape, batch);
            let mut data = vec![0.0; out_dims.iter().product()];
            for_each_index(&out_dims, |flat, idx| {
                data[flat] = binary_value(*b, a.data[dot(idx, &sa)], c.data[dot(idx, &sc)]);
            });
            Tensor::new(out_dims, data)
        }
        Op::Where => {
            let (a, c, cond) = (arg(0), arg(1), arg(2));
            let sa = bstrides(shape_of(0), &node.shape, batch);
            let sc = bstrides(shape_of(1), &node.shape, batch);
            let sk = bstrides(shape_of(2), &node.shape, batch);
            let mut data = vec![0.0; out_dims.iter().product()];
            for_each_index(&out_dims, |flat, idx| {
                data[flat] = if cond.data[dot(idx, &sk)] > 0.0 {
                    a.data[dot(idx, &sa)]
                } else {
                    c.data[dot(idx, &sc)]
                };
            });
            Tensor::new(out_dims, data)
        }
        Op::Broadcast => {
            let a = arg(0);
            let sa = bstrides(shape_of(0), &node.shape, batch);
            let mut data = vec![0.0; out_dims.iter().product()];
            for_each_index(&out_dims, |flat, idx| data[flat] = a.data[dot(idx, &sa)]);
            Tensor::new(out_dims, data)
        }
        Op::SumTo => {
            // The input is the broadcast (larger) value; the node's shape broadcasts to it.
            let a = arg(0);
            let so = bstrides(&node.shape, shape_of(0), batch);
            let mut data = vec![0.0; out_dims.iter().product()];
            for_each_index(&a.shape, |flat, idx| data[dot(idx, &so)] += a.data[flat]);
            Tensor::new(out_dims, data)
        }
        Op::Linear => {
            let (x, w, b) = (arg(0), arg(1), arg(2));
            let (o, i) = match w.shape[..] {
                [o, i] => (o, i),
                _ => panic!("internal error: linear weight of shape {:?}", w.shape),
            };
            if x.shape.last() != Some(&i) {
                panic!(
                    "internal error: linear input {:?} does not fit weight {:?}",
                    x.shape, w.shape
                );
            }
            if b.numel() != o && b.numel() != 1 {
                panic!(
                    "internal error: linear bias {:?} does not fit weight {:?}",
                    b.shape, w.shape
                );
            }
            let rows = x.numel() / i;
            let mut data = vec![0.0; rows * o];
            for r in 0..rows {
                for oo in 0..o {
                    let mut acc = b.data[if b.numel() == 1 { 0 } else { oo }];
                    for ii in 0..i {
                        acc += x.data[r * i + ii] * w.data[oo * i + ii];
                    }
                    data[r * o + oo] = acc;
                }
            }
            Tensor::new(out_dims, data)
        }
        Op::MatMul => {
            let (x, w) = (arg(0), arg(1));
            let (xs, ws) = (shape_of(0), shape_of(1));
            let i = *xs
                .dims
                .last()
                .unwrap_or_else(|| panic!("internal error: matmul of a scalar"));
            if ws.dims.first() != Some(&i) {
                panic!("internal error: matmul of {xs} and {ws}");
            }
            let r: usize = ws.dims[1..].iter().product();
            // One matrix product per example when the weight is batched, else one in all.
            let groups = if ws.batched { out_dims[0] } else { 1 };
            let x_per_group = if ws.batched && xs.batched {
                x.numel() / groups
            } else {
                x.numel()
            };
            let rows = x_per_group / i;
            let mut data = vec![0.0; groups * rows * r];
            for g in 0..groups {
                let xo = if ws.batched && xs.batched {
                    g * x_per_group
                } else {
                    0
                };
                let wo = g * i * r;
                for row in 0..rows {
                    for rr in 0..r {
                        let mut acc = 0.0;
                        for ii in 0..i {
                            acc += x.data[xo + row * i + ii] * w.data[wo + ii * r + rr];
                        }
                        data[(g * rows + row) * r + rr] = acc;
                    }
                }
            }
            Tensor::new(out_dims, data)
        }
        Op::Conv2d { stride, padding } => {
            let (x, w, b) = (arg(0), arg(1), arg(2));
            Tensor::new(
                out_dims.clone(),
                conv2d(x, w, b, *stride, *padding, &out_dims),
            )
        }
        Op::ConvTranspose2d {
            stride,
            padding,
            output_padding,
        } => {
            let (x, w, b) = (arg(0), arg(1), arg(2));
            Tensor::new(
                out_dims.clone(),
                conv_transpose2d(x, w, b, *stride, *padding, *output_padding, &out_dims),
            )
        }
        Op::Reshape | Op::Unsqueeze { .. } => {
            let a = arg(0);
            if let Op::Unsqueeze { axis } = node.op {
                let mut d = shape_of(0).dims.clone();
                if axis > d.len() {
                    panic!("internal error: unsqueeze axis {axis} out of range");
                }
                d.insert(axis, 1);
                if d != node.shape.dims {
                    panic!(
                        "internal error: unsqueeze of {} is not {}",
                        shape_of(0),
                        node.shape
                    );
                }
            }
            if shape_of(0).batched != node.shape.batched {
                panic!("internal error: {} changes the batch", node.op.name());
            }
            Tensor::new(out_dims, a.data.clone())
        }
        Op::Sum { axes } => {
            let a = arg(0);
            let in_dims = &a.shape;
            let aoff = shape_of(0).batched as usize;
            let taxes: Vec<usize> = axes.iter().map(|ax| ax + aoff).collect();
            if taxes.iter().any(|ax| *ax >= in_dims.len()) {
                panic!(
                    "internal error: sum axes {axes:?} out of range for {}",
                    shape_of(0)
                );
            }
            let ostr = strides(&out_dims);
            let mut data = vec![0.0; out_dims.iter().product()];
            for_each_index(in_dims, |flat, idx| {
                let mut o = 0;
                let mut k = 0;
                for (ax, i) in idx.iter().enumerate() {
                    if !taxes.contains(&ax) {
                        o += i * ostr[k];
                        k += 1;
                    }
                }
                data[o] += a.data[flat];
            });
            Tensor::new(out_dims, data)
        }
        Op::LogSumExp { axis } | Op::Softmax { axis } | Op::LogSoftmax { axis } => {
            let a = arg(0);
            let (outer, n, inner) = split_axis(&a.shape, axis + shape_of(0).batched as usize);
            let reduce = matches!(node.op, Op::LogSumExp { .. });
            let mut data = vec![0.0; if reduce { outer * inner } else { a.numel() }];
            for o in 0..outer {
                for j in 0..inner {
                    let at = |k: usize| o * n * inner + k * inner + j;
                    let lse = log_sum_exp((0..n).map(|k| a.data[at(k)]));
                    match node.op {
                        Op::LogSumExp { .. } => data[o * inner + j] = lse,
                        Op::Softmax { .. } => {
                            (0..n).for_each(|k| data[at(k)] = (a.data[at(k)] - lse).exp())
                        }
                        _ => (0..n).for_each(|k| data[at(k)] = a.data[at(k)] - lse),
                    }
                }
            }
            Tensor::new(out_dims, data)
        }
        Op::Select { axis, index } => {
            let a = arg(0);
            let (outer, n, inner) = split_axis(&a.shape, axis + shape_of(0).batched as usize);
            if *index >= n {
                panic!("internal error: select index {index} out of range {n}");
            }
            let mut data = Vec::with_capacity(outer * inner);
            for o in 0..outer {
                for j in 0..inner {
                    data.push(a.data[o * n * inner + index * inner + j]);
                }
            }
            Tensor::new(out_dims, data)
        }
        Op::Concat { axis } => {
            let ax = axis + off;
            if ax >= out_dims.len() {
                panic!(
                    "internal error: concat axis {axis} out of range for {}",
                    node.shape
                );
            }
            // Each input, broadcast over the batch if it has none, is the slab
            // [offset, offset + n_k) of the output along the axis.
            let mut pieces = Vec::new();
            let mut offset = 0;
            for k in 0..node.inputs.len() {
                let s = shape_of(k);
                let n = *s
                    .dims
                    .get(*axis)
                    .unwrap_or_else(|| panic!("internal error: concat of {s} along {axis}"));
                let mut slab = node.shape.clone();
                slab.dims[*axis] = n;
                pieces.push((offset, n, bstrides(s, &slab, batch)));
                offset += n;
            }
            if offset != out_dims[ax] {
                panic!(
                    "internal error: concat sizes add up to {offset}, not {}",
                    out_dims[ax]
                );
            }
            let mut data = vec![0.0; out_dims.iter().product()];
            let mut local = vec![0usize; out_dims.len()];
            for_each_index(&out_dims, |flat, idx| {
                let k = pieces
                    .iter()
                    .position(|(o, n, _)| idx[ax] >= *o && idx[ax] < o + n)
                    .expect("in range");
                local.copy_from_slice(idx);
                local[ax] -= pieces[k].0;
                data[flat] = arg(k).data[dot(&local, &pieces[k].2)];
            });
            Tensor::new(out_dims, data)
        }
    }
}

/// `(N, C, H, W)` of a conv input: a batched `[B, C, H, W]` or an unbatched `[C, H, W]` (N = 1).
fn nchw(x: &Tensor) -> (usize, usize, usize, usize) {
    match x.shape[..] {
        [n, c, h, w] => (n, c, h, w),
        [c, h, w] => (1, c, h, w),
        _ => panic!("internal error: convolution input of shape {:?}", x.shape),
    }
}

fn weight4(w: &Tensor) -> (usize, usize, usize, usize) {
    match w.shape[..] {
        [a, b, kh, kw] => (a, b, kh, kw),
        _ => panic!("internal error: convolution weight of shape {:?}", w.shape),
    }
}

fn bias_at(b: &Tensor, c: usize, channels: usize) -> f64 {
    if b.numel() == channels {
        b.data[c]
    } else if b.numel() == 1 {
        b.data[0]
    } else {
        panic!(
            "internal error: convolution bias of shape {:?} for {channels} channels",
            b.shape
        )
    }
}

/// PyTorch `conv2d`: `w: [out, in, kh, kw]`,
/// `y[n, o, i, j] = b[o] + Σ_{c,u,v} x[n, c, i·s + u − p, j·s + v − p] · w[o, c, u, v]`.
pub(crate) fn conv2d(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    s: usize,
    p: usize,
    out_dims: &[usize],
) -> Vec<f64> {
    let (n, c, h, wd) = nchw(x);
    let (o, ci, kh, kw) = weight4(w);
    if ci != c || s == 0 || h + 2 * p < kh || wd + 2 * p < kw {
        panic!(
            "internal error: conv2d of {:?} with weight {:?}",
            x.shape, w.shape
        );
    }
    let (ho, wo) = ((h + 2 * p - kh) / s + 1, (wd + 2 * p - kw) / s + 1);
    if out_dims.iter().product::<usize>() != n * o * ho * wo
        || out_dims[out_dims.len() - 3..] != [o, ho, wo]
    {
        panic!(
            "internal error: conv2d of {:?} gives [{o}, {ho}, {wo}], not {out_dims:?}",
            x.shape
        );
    }
    let mut y = vec![0.0; n * o * ho * wo];
    for nn in 0..n {
        for oo in 0..o {
            for i in 0..ho {
                for j in 0..wo {
                    let mut acc = bias_at(b, oo, o);
                    for cc in 0..c {
                        for u in 0..kh {
                            for v in 0..kw {
                                let (r, q) = (
                                    (i * s + u) as isize - p as isize,
                                    (j * s + v) as isize - p as isize,
                                );
                                if r < 0 || q < 0 || r >= h as isize || q >= wd as isize {
                                    continue;
                                }
                                let xi = ((nn * c + cc) * h + r as usize) * wd + q as usize;
                                acc += x.data[xi] * w.data[((oo * c + cc) * kh + u) * kw + v];
                            }
                        }
                    }
                    y[((nn * o + oo) * ho + i) * wo + j] = acc;
                }
            }
        }
    }
    y
}

/// PyTorch `conv_transpose2d`: `w: [in, out, kh, kw]`, output size `(H − 1)·s − 2p + k + op`;
/// each input pixel `x[n, c, i, j]` adds `x · w[c, o, u, v]` to `y[n, o, i·s + u − p, j·s + v − p]`.
pub(crate) fn conv_transpose2d(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    s: usize,
    p: usize,
    op: usize,
    out_dims: &[usize],
) -> Vec<f64> {
    let (n, c, h, wd) = nchw(x);
    let (ci, o, kh, kw) = weight4(w);
    if ci != c || s == 0 || (h - 1) * s + kh + op < 2 * p || (wd - 1) * s + kw + op < 2 * p {
        panic!(
            "internal error: conv_transpose2d of {:?} with weight {:?}",
            x.shape, w.shape
        );
    }
    let (ho, wo) = (
        (h - 1) * s + kh + op - 2 * p,
        (wd - 1) * s + kw + op - 2 * p,
    );
    if out_dims.iter().product::<usize>() != n * o * ho * wo
        || out_dims[out_dims.len() - 3..] != [o, ho, wo]
    {
        panic!(
            "internal error: conv_transpose2d of {:?} gives [{o}, {ho}, {wo}], not {out_dims:?}",
            x.shape
        );
    }
    let mut y = vec![0.0; n * o * ho * wo];
    for nn in 0..n {
        for oo in 0..o {
            let bo = bias_at(b, oo, o);
            y[(nn * o + oo) * ho * wo..(nn * o + oo + 1) * ho * wo]
                .iter_mut()
                .for_each(|v| *v = bo);
        }
        for cc in 0..c {
            for i in 0..h {
                for j in 0..wd {
                    let xv = x.data[((nn * c + cc) * h + i) * wd + j];
                    for oo in 0..o {
                        for u in 0..kh {
                            for v in 0..kw {
                                let (r, q) = (
                                    (i * s + u) as isize - p as isize,
                                    (j * s + v) as isize - p as isize,
                                );
                                if r < 0 || q < 0 || r >= ho as isize || q >= wo as isize {
                                    continue;
                                }
                                y[((nn * o + oo) * ho + r as usize) * wo + q as usize] +=
                                    xv * w.data[((cc * o + oo) * kh + u) * kw + v];
                            }
                        }
                    }
                }
            }
        }
    }
    y
}

/// splitmix64: a tiny, well-mixed PRNG (enough for initial values of tests).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // in (0, 1]
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// Deterministic initial values for every parameter of the program (seeded), in f64. Each
/// parameter draws from its own stream (seed mixed with its path), so values do not depend on the
/// order or number of the other parameters.
pub fn init_params(p: &Program, seed: u64) -> ParamValues {
    let mut out = ParamValues::new();
    for info in &p.params {
        // FNV-1a of the path, mixed with the seed.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in info.path.bytes() {
            h = (h ^ byte as u64).wrapping_mul(0x0100_0000_01b3);
        }
        let mut rng = SplitMix64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ h);
        let n: usize = info.dims.iter().product();
        let data: Vec<f64> = (0..n)
            .map(|_| match info.init {
                ParamInit::Constant(c) => c,
                ParamInit::Normal { mean, std } => mean + std * rng.normal(),
                ParamInit::Uniform { lo, hi } => lo + (hi - lo) * rng.uniform(),
                ParamInit::FanIn(fan_in) => {
                    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
                    -bound + 2.0 * bound * rng.uniform()
                }
            })
            .collect();
        out.insert(info.path.clone(), Tensor::new(info.dims.clone(), data));
    }
    out
}
