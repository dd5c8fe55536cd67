//! The canonical text of a program: deterministic, no spans. Each function lists the nodes it
//! reaches in handle order (inputs always precede their users), so a reader can follow it top down.

use super::{NodeId, ParamInit, Program};
use std::fmt::Write;

pub fn print(p: &Program) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "program {}", p.name);
    for note in &p.notes {
        let _ = writeln!(o, "# {note}");
    }
    if !p.params.is_empty() {
        o.push('\n');
    }
    for param in &p.params {
        let init = match param.init {
            ParamInit::Constant(c) => format!("constant({c})"),
            ParamInit::Normal { mean, std } => format!("normal({mean}, {std})"),
            ParamInit::Uniform { lo, hi } => format!("uniform({lo}, {hi})"),
            ParamInit::FanIn(n) => format!("fan_in({n})"),
        };
        let _ = writeln!(o, "param {} {:?} init {init}", param.path, param.dims);
    }
    for f in &p.functions {
        o.push('\n');
        let args: Vec<String> = f
            .inputs
            .iter()
            .map(|(n, id)| format!("{n}: {}", p.node(*id).shape))
            .collect();
        let outs: Vec<String> = f
            .outputs
            .iter()
            .map(|(n, id)| format!("{n}: {}", p.node(*id).shape))
            .collect();
        let _ = writeln!(
            o,
            "fn {}({}) -> ({})",
            f.name,
            args.join(", "),
            outs.join(", ")
        );
        for note in &f.notes {
            let _ = writeln!(o, "  # {note}");
        }
        for id in reachable(p, f.outputs.iter().map(|(_, id)| *id)) {
            let n = p.node(id);
            if matches!(n.op, super::Op::Input(_)) {
                continue;
            }
            let ins: Vec<String> = n.inputs.iter().map(|i| i.to_string()).collect();
            let _ = writeln!(
                o,
                "  {id} = {}{}{} : {}",
                n.op.name(),
                if ins.is_empty() { "" } else { " " },
                ins.join(", "),
                n.shape
            );
        }
        for (name, id) in &f.outputs {
            let _ = writeln!(o, "  return {name} = {id}");
        }
    }
    if !p.plan.is_empty() {
        o.push_str("\nplan\n");
        for (i, step) in p.plan.iter().enumerate() {
            let _ = writeln!(o, "  {}. {}", i + 1, step.action);
            if !step.uses.is_empty() {
                let _ = writeln!(o, "     uses {}", step.uses.join(", "));
            }
            for w in &step.with {
                let _ = writeln!(o, "     with {w}");
            }
        }
    }
    o
}

/// The nodes the given roots depend on, in ascending handle order.
pub fn reachable(p: &Program, roots: impl IntoIterator<Item = NodeId>) -> Vec<NodeId> {
    let mut seen = vec![false; p.nodes.len()];
    let mut stack: Vec<NodeId> = roots.into_iter().collect();
    while let Some(id) = stack.pop() {
        if std::mem::replace(&mut seen[id.index()], true) {
            continue;
        }
        stack.extend(p.node(id).inputs.iter().copied());
    }
    seen.iter()
        .enumerate()
        .filter(|(_, s)| **s)
        .map(|(i, _)| NodeId(i as u32))
        .collect()
}
