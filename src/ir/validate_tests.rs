//! The validator rejects each kind of broken program with its message, accepts the shapes the
//! lowering and the derivations build (batch conventions included), and every project spec compiles
//! to a valid program.

use super::validate;
use crate::check::Shape;
use crate::ir::{Builder, DType, Function, Node, NodeId, Op, Program, Unary};
use std::path::PathBuf;

fn b(dims: &[usize]) -> Shape {
    Shape::batched(dims.to_vec())
}

fn f(dims: &[usize]) -> Shape {
    Shape::fixed(dims.to_vec())
}

/// A program of one input node per shape (`%0`, `%1`, ...) and one `op` node reading them all.
fn one_op(ins: &[Shape], op: Op, out: Shape) -> Program {
    let mut p = Program::default();
    let mut bld = Builder::new(&mut p);
    let ids: Vec<NodeId> = ins
        .iter()
        .enumerate()
        .map(|(i, s)| bld.input(&format!("a{i}"), s.clone()))
        .collect();
    bld.node(op, ids, out);
    p
}

fn accepts(ins: &[Shape], op: Op, out: Shape) {
    let what = format!("{} of {ins:?} → {out}", op.name());
    let p = one_op(ins, op, out);
    if let Err(e) = validate(&p) {
        panic!("{what} should be valid: {e}");
    }
}

/// The validator's message for a one-op program (without the "internal error" preamble).
fn rejects(ins: &[Shape], op: Op, out: Shape) -> String {
    let what = format!("{} of {ins:?} → {out}", op.name());
    match validate(&one_op(ins, op, out)) {
        Ok(()) => panic!("{what} should be rejected"),
        Err(e) => e.0,
    }
}

fn node(op: Op, inputs: Vec<NodeId>, shape: Shape) -> Node {
    Node {
        op,
        inputs,
        shape,
        dtype: DType::F32,
    }
}

const CONV: Op = Op::Conv2d {
    stride: 1,
    padding: 1,
};

fn deconv(stride: usize, padding: usize, output_padding: usize) -> Op {
    Op::ConvTranspose2d {
        stride,
        padding,
        output_padding,
    }
}

#[test]
fn the_error_says_it_is_an_internal_error() {
    let p = one_op(&[b(&[3]), f(&[4, 5])], Op::MatMul, b(&[5]));
    let e = validate(&p).unwrap_err();
    assert_eq!(
        e.to_string(),
        "internal error, please report: invalid IR: %2 = matmul: x [B, 3] and weight [4, 5] do not fit (last axis of x, first of w)"
    );
}

#[test]
fn handles_out_of_range_are_rejected() {
    let mut p = Program::default();
    p.nodes.push(node(Op::Input("x".into()), vec![], b(&[3])));
    p.nodes
        .push(node(Op::Unary(Unary::Neg), vec![NodeId(7)], b(&[3])));
    assert_eq!(
        validate(&p).unwrap_err().0,
        "%1 reads %7, out of range (2 nodes)"
    );

    let mut p = Program::default();
    p.nodes.push(node(Op::Input("x".into()), vec![], b(&[3])));
    p.functions.push(Function {
        name: "f".into(),
        inputs: vec![("x".into(), NodeId(0))],
        outputs: vec![("y".into(), NodeId(4))],
        notes: vec![],
    });
    assert_eq!(
        validate(&p).unwrap_err().0,
        "function f refers to %4, out of range"
    );
}

#[test]
fn an_input_after_its_user_is_rejected() {
    // %0 reads %1: a forward reference (and the only way to build a cycle).
    let mut p = Program::default();
    p.nodes
        .push(node(Op::Unary(Unary::Neg), vec![NodeId(1)], b(&[3])));
    p.nodes.push(node(Op::Input("x".into()), vec![], b(&[3])));
    assert_eq!(
        validate(&p).unwrap_err().0,
        "%0 reads %1, which does not precede it"
    );
    // A node reading itself.
    let mut p = Program::default();
    p.nodes
        .push(node(Op::Unary(Unary::Neg), vec![NodeId(0)], b(&[3])));
    assert_eq!(
        validate(&p).unwrap_err().0,
        "%0 reads %0, which does not precede it"
    );
}

#[test]
fn functions_read_only_their_arguments_and_declared_parameters() {
    let mut p = Program::default();
    let mut bld = Builder::new(&mut p);
    let x = bld.input("x", b(&[3]));
    let z = bld.input("z", b(&[3]));
    let y = bld.add(x, z);
    bld.function("f", vec![("x".into(), x)], vec![("y".into(), y)], vec![]);
    assert_eq!(
        validate(&p).unwrap_err().0,
        "function f reads input `z` (%1) that is not among its arguments"
    );

    let mut p = Program::default();
    Builder::new(&mut p).param("networks.f.layer0.weight", vec![2, 3]);
    assert_eq!(
        validate(&p).unwrap_err().0,
        "%0 reads parameter networks.f.layer0.weight, which is not declared"
    );
}

#[test]
fn matmul_shapes() {
    // x [.., I] · w [I, R..] → [.., R..]; w may be batched (one matrix per example).
    accepts(&[b(&[3]), f(&[3, 4])], Op::MatMul, b(&[4]));
    accepts(&[b(&[2, 3]), f(&[3])], Op::MatMul, b(&[2]));
    accepts(&[b(&[3]), f(&[3, 2, 2])], Op::MatMul, b(&[2, 2]));
    accepts(&[f(&[3]), b(&[3, 2])], Op::MatMul, b(&[2]));
    accepts(&[b(&[3]), b(&[3])], Op::MatMul, b(&[]));
    accepts(&[f(&[2, 3]), f(&[3, 4])], Op::MatMul, f(&[2, 4]));

    assert_eq!(
        rejects(&[b(&[3]), f(&[4, 5])], Op::MatMul, b(&[5])),
        "%2 = matmul: x [B, 3] and weight [4, 5] do not fit (last axis of x, first of w)"
    );
    assert_eq!(
        rejects(&[b(&[3]), f(&[3, 4])], Op::MatMul, b(&[5])),
        "%2 = matmul: x [B, 3] · weight [3, 4] is [B, 4], not [B, 5]"
    );
    // The batch comes from the operands only.
    assert_eq!(
        rejects(&[f(&[3]), f(&[3, 4])], Op::MatMul, b(&[4])),
        "%2 = matmul: x [3] · weight [3, 4] is [4], not [B, 4]"
    );
    assert_eq!(
        rejects(&[b(&[3]), f(&[3, 4])], Op::MatMul, f(&[4])),
        "%2 = matmul: x [B, 3] · weight [3, 4] is [B, 4], not [4]"
    );
    assert_eq!(
        rejects(&[b(&[]), f(&[3, 4])], Op::MatMul, b(&[4])),
        "%2 = matmul: x [B] has no axis to contract"
    );
    assert_eq!(
        rejects(&[b(&[3])], Op::MatMul, b(&[4])),
        "%1 = matmul: expects 2 inputs, has 1"
    );
}

#[test]
fn conv2d_shapes() {
    // [x, w, bias]: x [C, H, W] (batched or not), w [out, in, kh, kw], bias [out] (or one value).
    accepts(
        &[b(&[1, 8, 8]), f(&[8, 1, 3, 3]), f(&[8])],
        CONV,
        b(&[8, 8, 8]),
    );
    accepts(
        &[f(&[1, 8, 8]), f(&[8, 1, 3, 3]), f(&[8])],
        CONV,
        f(&[8, 8, 8]),
    );
    accepts(
        &[b(&[1, 8, 8]), f(&[8, 1, 3, 3]), f(&[])],
        CONV,
        b(&[8, 8, 8]),
    );
    let halve = Op::Conv2d {
        stride: 2,
        padding: 1,
    };
    accepts(
        &[b(&[8, 8, 8]), f(&[16, 8, 4, 4]), f(&[16])],
        halve.clone(),
        b(&[16, 4, 4]),
    );
    accepts(
        &[b(&[8, 7, 7]), f(&[16, 8, 4, 4]), f(&[16])],
        halve,
        b(&[16, 3, 3]),
    );
    let plain = Op::Conv2d {
        stride: 1,
        padding: 0,
    };
    accepts(
        &[b(&[2, 6, 5]), f(&[3, 2, 3, 2]), f(&[3])],
        plain.clone(),
        b(&[3, 4, 4]),
    );

    let (x, w, bias) = (b(&[1, 8, 8]), f(&[8, 1, 3, 3]), f(&[8]));
    assert_eq!(
        rejects(&[x.clone(), w.clone(), bias.clone()], CONV, b(&[8, 7, 7])),
        "%3 = conv2d(stride=1, padding=1): input [B, 1, 8, 8] with weight [8, 1, 3, 3] gives [B, 8, 8, 8], not [B, 8, 7, 7]"
    );
    assert_eq!(
        rejects(&[x.clone(), w.clone(), bias.clone()], CONV, f(&[8, 8, 8])),
        "%3 = conv2d(stride=1, padding=1): input [B, 1, 8, 8] with weight [8, 1, 3, 3] gives [B, 8, 8, 8], not [8, 8, 8]"
    );
    assert_eq!(
        rejects(
            &[b(&[3, 8, 8]), w.clone(), bias.clone()],
            CONV,
            b(&[8, 8, 8])
        ),
        "%3 = conv2d(stride=1, padding=1): input [B, 3, 8, 8] has 3 channels, weight [8, 1, 3, 3] expects 1"
    );
    assert_eq!(
        rejects(&[x.clone(), w.clone(), f(&[4])], CONV, b(&[8, 8, 8])),
        "%3 = conv2d(stride=1, padding=1): bias [4] does not fit 8 output channels"
    );
    assert_eq!(
        rejects(&[x.clone(), w.clone(), b(&[8])], CONV, b(&[8, 8, 8])),
        "%3 = conv2d(stride=1, padding=1): bias [B, 8] does not fit 8 output channels"
    );
    assert_eq!(
        rejects(&[b(&[8, 8]), w.clone(), bias.clone()], CONV, b(&[8, 8, 8])),
        "%3 = conv2d(stride=1, padding=1): input [B, 8, 8] is not an image [C, H, W]"
    );
    assert_eq!(
        rejects(
            &[x.clone(), b(&[8, 1, 3, 3]), bias.clone()],
            CONV,
            b(&[8, 8, 8])
        ),
        "%3 = conv2d(stride=1, padding=1): weight [B, 8, 1, 3, 3] is not [out, in, kh, kw]"
    );
    assert_eq!(
        rejects(
            &[x.clone(), f(&[8, 1, 3]), bias.clone()],
            CONV,
            b(&[8, 8, 8])
        ),
        "%3 = conv2d(stride=1, padding=1): weight [8, 1, 3] is not [out, in, kh, kw]"
    );
    assert_eq!(
        rejects(
            &[b(&[1, 2, 2]), f(&[1, 1, 5, 5]), f(&[1])],
            plain,
            b(&[1, 1, 1])
        ),
        "%3 = conv2d(stride=1, padding=0): kernel 5×5 does not fit input [B, 1, 2, 2]"
    );
    let zero_stride = Op::Conv2d {
        stride: 0,
        padding: 1,
    };
    assert_eq!(
        rejects(
            &[x.clone(), w.clone(), bias.clone()],
            zero_stride,
            b(&[8, 8, 8])
        ),
        "%3 = conv2d(stride=0, padding=1): stride 0"
    );
    assert_eq!(
        rejects(&[x, w], CONV, b(&[8, 8, 8])),
        "%2 = conv2d(stride=1, padding=1): expects 3 inputs, has 2"
    );
}

#[test]
fn conv_transpose2d_shapes() {
    // [x, w, bias]: w [in, out, kh, kw], size (n − 1)·s + k + output_padding − 2p.
    accepts(
        &[b(&[16, 4, 4]), f(&[16, 8, 4, 4]), f(&[8])],
        deconv(2, 1, 0),
        b(&[8, 8, 8]),
    );
    accepts(
        &[b(&[4, 1, 1]), f(&[4, 2, 7, 7]), f(&[2])],
        deconv(1, 0, 0),
        b(&[2, 7, 7]),
    );
    // The adjoint of a stride-2 conv of an odd size: output padding 1 restores the size.
    accepts(
        &[b(&[16, 3, 3]), f(&[16, 8, 4, 4]), f(&[8])],
        deconv(2, 1, 1),
        b(&[8, 7, 7]),
    );
    accepts(
        &[f(&[8, 8, 8]), f(&[8, 1, 3, 3]), f(&[])],
        deconv(1, 1, 0),
        f(&[1, 8, 8]),
    );

    assert_eq!(
        rejects(
            &[b(&[16, 4, 4]), f(&[16, 8, 4, 4]), f(&[8])],
            deconv(2, 1, 0),
            b(&[8, 7, 7])
        ),
        "%3 = conv_transpose2d(stride=2, padding=1, output_padding=0): input [B, 16, 4, 4] with weight [16, 8, 4, 4] gives [B, 8, 8, 8], not [B, 8, 7, 7]"
    );
    // The weight is read [in, out, ..]: a forward-conv layout does not fit.
    assert_eq!(
        rejects(
            &[b(&[16, 4, 4]), f(&[8, 16, 4, 4]), f(&[8])],
            deconv(2, 1, 0),
            b(&[8, 8, 8])
        ),
        "%3 = conv_transpose2d(stride=2, padding=1, output_padding=0): input [B, 16, 4, 4] has 16 channels, weight [8, 16, 4, 4] expects 8"
    );
    assert_eq!(
        rejects(
            &[b(&[16, 4, 4]), f(&[16, 8, 4, 4]), f(&[16])],
            deconv(2, 1, 0),
            b(&[8, 8, 8])
        ),
        "%3 = conv_transpose2d(stride=2, padding=1, output_padding=0): bias [16] does not fit 8 output channels"
    );
    assert_eq!(
        rejects(
            &[b(&[16, 4, 4]), f(&[16, 8, 4, 4]), f(&[8])],
            deconv(2, 1, 2),
            b(&[8, 10, 10])
        ),
        "%3 = conv_transpose2d(stride=2, padding=1, output_padding=2): output padding 2 is not smaller than the stride 2"
    );
    assert_eq!(
        rejects(
            &[b(&[1, 1, 1]), f(&[1, 1, 1, 1]), f(&[1])],
            deconv(1, 2, 0),
            b(&[1, 1, 1])
        ),
        "%3 = conv_transpose2d(stride=1, padding=2, output_padding=0): kernel 1×1 does not fit input [B, 1, 1, 1]"
    );
}

#[test]
fn concat_shapes() {
    let cat = |axis| Op::Concat { axis };
    accepts(&[b(&[3]), b(&[2])], cat(0), b(&[5]));
    // An unbatched input is repeated over the batch, a size-1 axis over the node's size.
    accepts(&[b(&[3]), f(&[2])], cat(0), b(&[5]));
    accepts(&[b(&[2, 3]), f(&[1, 1])], cat(0), b(&[3, 3]));
    accepts(&[b(&[3, 2]), b(&[3, 4]), b(&[3, 1])], cat(1), b(&[3, 7]));
    accepts(&[f(&[4])], cat(0), f(&[4]));

    assert_eq!(
        rejects(&[b(&[3]), b(&[2])], cat(0), b(&[6])),
        "%2 = concat(axis=0): sizes along axis 0 add up to 5, not 6"
    );
    assert_eq!(
        rejects(&[b(&[2, 3]), b(&[2, 4])], cat(0), b(&[4, 3])),
        "%2 = concat(axis=0): input [B, 2, 4] does not broadcast to its slab [B, 2, 3] of [B, 4, 3]"
    );
    assert_eq!(
        rejects(&[b(&[3]), b(&[1, 3])], cat(0), b(&[4])),
        "%2 = concat(axis=0): input [B, 1, 3] does not have the rank of [B, 4]"
    );
    assert_eq!(
        rejects(&[b(&[3]), b(&[2])], cat(1), b(&[5])),
        "%2 = concat(axis=1): axis 1 out of range for [B, 5]"
    );
    assert_eq!(
        rejects(&[b(&[3]), f(&[2])], cat(0), f(&[5])),
        "%2 = concat(axis=0): input [B, 3] does not broadcast to its slab [3] of [5]"
    );
    assert_eq!(
        rejects(&[], cat(0), b(&[5])),
        "%0 = concat(axis=0): expects at least 1 input, has 0"
    );
}

#[test]
fn broadcast_and_sum_to_shapes() {
    // Broadcast: the input repeats to the node's shape.
    accepts(&[f(&[])], Op::Broadcast, b(&[2, 3]));
    accepts(&[f(&[3])], Op::Broadcast, f(&[2, 3]));
    accepts(&[b(&[1, 3])], Op::Broadcast, b(&[2, 3]));
    assert_eq!(
        rejects(&[f(&[3])], Op::Broadcast, f(&[2])),
        "%1 = broadcast: [3] does not broadcast to [2]"
    );
    assert_eq!(
        rejects(&[b(&[3])], Op::Broadcast, f(&[3])),
        "%1 = broadcast: [B, 3] does not broadcast to [3]"
    );
    assert_eq!(
        rejects(&[f(&[2, 3])], Op::Broadcast, f(&[3])),
        "%1 = broadcast: [2, 3] does not broadcast to [3]"
    );
    // SumTo: the node's shape repeats to the (larger) input; the batch may be summed away.
    accepts(&[b(&[2, 3])], Op::SumTo, f(&[3]));
    accepts(&[b(&[2, 3])], Op::SumTo, b(&[1, 3]));
    accepts(&[b(&[2, 3])], Op::SumTo, f(&[]));
    assert_eq!(
        rejects(&[b(&[2, 3])], Op::SumTo, f(&[2])),
        "%1 = sum_to: [2] does not broadcast to the input [B, 2, 3]"
    );
    assert_eq!(
        rejects(&[f(&[3])], Op::SumTo, b(&[3])),
        "%1 = sum_to: [B, 3] does not broadcast to the input [3]"
    );
    assert_eq!(
        rejects(&[b(&[3]), b(&[3])], Op::SumTo, b(&[3])),
        "%2 = sum_to: expects 1 inputs, has 2"
    );
}

#[test]
fn where_shapes() {
    // [a, b, cond], each repeated to the node's shape.
    accepts(&[b(&[2, 3]), f(&[]), f(&[3])], Op::Where, b(&[2, 3]));
    assert_eq!(
        rejects(&[b(&[2, 3]), f(&[4]), f(&[])], Op::Where, b(&[2, 3])),
        "%3 = where: input [4] does not broadcast to [B, 2, 3]"
    );
    assert_eq!(
        rejects(&[f(&[3]), f(&[3]), b(&[3])], Op::Where, f(&[3])),
        "%3 = where: input [B, 3] does not broadcast to [3]"
    );
    assert_eq!(
        rejects(&[b(&[3]), b(&[3])], Op::Where, b(&[3])),
        "%2 = where: expects 3 inputs, has 2"
    );
}

/// `specs/`, `specs/variants/`, `tests/cases/ok/`.
fn spec_files() -> Vec<PathBuf> {
    crate::repo_spec_paths(&["specs", "specs/variants", "tests/cases/ok"])
}

#[test]
fn every_spec_compiles_to_a_valid_program() {
    let files = spec_files();
    assert!(files.len() >= 30, "found only {} spec files", files.len());
    for path in files {
        let text = std::fs::read_to_string(&path).expect("spec is readable");
        let source = crate::source::SourceFile::new(path.display().to_string(), text);
        let spec = crate::check_source(&source).unwrap_or_else(|d| {
            panic!(
                "{} should check:\n{}",
                source.name,
                d.render(crate::diag::RenderStyle::Plain)
            )
        });
        let mut program = crate::lower::lower(&spec);
        crate::derive::derive(&mut program, &spec);
        if let Err(e) = validate(&program) {
            panic!("{}: {e}", source.name);
        }
    }
}
