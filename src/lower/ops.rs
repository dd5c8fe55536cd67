//! Shape-computing constructors for the ops the [`Builder`] has no helper for. Each derives the
//! output shape from its inputs, so the lowering never states a shape by hand.

use crate::check::Shape;
use crate::ir::{Builder, NodeId, Op};

/// The event rank of a node (axes after the batch).
pub(super) fn rank(b: &Builder, x: NodeId) -> usize {
    b.shape(x).dims.len()
}

/// Index `index` of event axis `axis`; the axis disappears.
pub(super) fn select(b: &mut Builder, x: NodeId, axis: usize, index: usize) -> NodeId {
    let shape = without_axis(b.shape(x), axis);
    b.node(Op::Select { axis, index }, vec![x], shape)
}

/// A new size-1 event axis at `axis`.
pub(super) fn unsqueeze(b: &mut Builder, x: NodeId, axis: usize) -> NodeId {
    let mut shape = b.shape(x).clone();
    assert!(
        axis <= shape.dims.len(),
        "internal error: unsqueeze axis {axis} out of range for {shape}"
    );
    shape.dims.insert(axis, 1);
    b.node(Op::Unsqueeze { axis }, vec![x], shape)
}

pub(super) fn logsumexp(b: &mut Builder, x: NodeId, axis: usize) -> NodeId {
    let shape = without_axis(b.shape(x), axis);
    b.node(Op::LogSumExp { axis }, vec![x], shape)
}

pub(super) fn softmax(b: &mut Builder, x: NodeId, axis: usize) -> NodeId {
    let shape = b.shape(x).clone();
    assert!(
        axis < shape.dims.len(),
        "internal error: softmax over axis {axis} of {shape}"
    );
    b.node(Op::Softmax { axis }, vec![x], shape)
}

pub(super) fn log_softmax(b: &mut Builder, x: NodeId, axis: usize) -> NodeId {
    let shape = b.shape(x).clone();
    assert!(
        axis < shape.dims.len(),
        "internal error: log_softmax over axis {axis} of {shape}"
    );
    b.node(Op::LogSoftmax { axis }, vec![x], shape)
}

/// Concatenation of equally shaped values (apart from `axis`) along event axis `axis`.
pub(super) fn concat(b: &mut Builder, xs: Vec<NodeId>, axis: usize) -> NodeId {
    let first = b.shape(xs[0]).clone();
    let mut shape = first.clone();
    shape.dims[axis] = 0;
    for x in &xs {
        let s = b.shape(*x);
        assert_eq!(
            s.dims.len(),
            first.dims.len(),
            "internal error: concat of different ranks"
        );
        shape.dims[axis] += s.dims[axis];
        shape.batched |= s.batched;
    }
    b.node(Op::Concat { axis }, xs, shape)
}

/// `x · wᵀ + bias` over the last axis, `w: [out, in]`.
pub(super) fn linear(b: &mut Builder, x: NodeId, w: NodeId, bias: NodeId) -> NodeId {
    let out = b.shape(w).dims[0];
    let mut shape = b.shape(x).clone();
    *shape
        .dims
        .last_mut()
        .expect("internal error: linear layer on a scalar") = out;
    b.node(Op::Linear, vec![x, w, bias], shape)
}

/// A 2-D convolution over `[C, H, W]` events; `w: [out, in, k, k]`.
pub(super) fn conv2d(
    b: &mut Builder,
    x: NodeId,
    w: NodeId,
    bias: NodeId,
    stride: usize,
    padding: usize,
) -> NodeId {
    let (out_channels, k) = (b.shape(w).dims[0], b.shape(w).dims[2]);
    let size = |n: usize| (n + 2 * padding - k) / stride + 1;
    let shape = image_shape(b.shape(x), out_channels, size);
    b.node(Op::Conv2d { stride, padding }, vec![x, w, bias], shape)
}

/// A transposed 2-D convolution (output padding 0); `w: [in, out, k, k]`.
pub(super) fn conv_transpose2d(
    b: &mut Builder,
    x: NodeId,
    w: NodeId,
    bias: NodeId,
    stride: usize,
    padding: usize,
) -> NodeId {
    let (out_channels, k) = (b.shape(w).dims[1], b.shape(w).dims[2]);
    let size = |n: usize| (n - 1) * stride + k - 2 * padding;
    let shape = image_shape(b.shape(x), out_channels, size);
    let op = Op::ConvTranspose2d {
        stride,
        padding,
        output_padding: 0,
    };
    b.node(op, vec![x, w, bias], shape)
}

/// Repeats a value to `shape` (used only where a symbol table would otherwise lose its axis).
pub(super) fn broadcast_to(b: &mut Builder, x: NodeId, shape: Shape) -> NodeId {
    b.node(Op::Broadcast, vec![x], shape)
}

fn image_shape(input: &Shape, channels: usize, size: impl Fn(usize) -> usize) -> Shape {
    let d = &input.dims;
    assert_eq!(
        d.len(),
        3,
        "internal error: a convolution needs [C, H, W], found {input}"
    );
    Shape {
        batched: input.batched,
        dims: vec![channels, size(d[1]), size(d[2])],
    }
}

fn without_axis(s: &Shape, axis: usize) -> Shape {
    assert!(
        axis < s.dims.len(),
        "internal error: axis {axis} out of range for {s}"
    );
    let mut out = s.clone();
    out.dims.remove(axis);
    out
}
