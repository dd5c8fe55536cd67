//! Structural checks of a program: handles in range, inputs before users (so the graph is acyclic),
//! shapes consistent with each op, functions reading only their own inputs.

use super::{Binary, NodeId, Op, Program, broadcast_shapes, print::reachable};
use crate::check::Shape;

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
        // The remaining ops' shape rules are checked where they are built.
        _ => None,
    }
}
