//! Row independence: whether row i of a function's output reads only row i of its batched
//! inputs. A Langevin chain on such a gradient is a set of independent per-example chains, so the
//! runtime may move blocks of rows on separate threads with no exchange between steps.
//!
//! Every op acts on each example of a batched value separately, except where a batched value
//! flows into an unbatched node (a sum over the batch, e.g. `sum_to` onto a parameter's shape):
//! that node reads every row, and so does everything computed from it.

use super::print::reachable;
use super::{NodeId, Op, Program};

/// Which rows of the batched inputs a node reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Reads {
    /// None: parameters, constants, unbatched inputs and what is computed from them alone.
    NoRow,
    /// Row i of the result reads row i of the inputs only.
    OwnRow,
    /// Every row.
    AllRows,
}

/// Whether output `output` of `function` is batched and its row i reads only row i of the
/// function's batched inputs. False when there is no such function or output.
pub fn independent(program: &Program, function: &str, output: &str) -> bool {
    let Some(out) = program
        .function(function)
        .and_then(|f| f.outputs.iter().find(|(n, _)| n == output))
        .map(|&(_, id)| id)
    else {
        return false;
    };
    program.node(out).shape.batched && reads(program, out) != Reads::AllRows
}

fn reads(program: &Program, out: NodeId) -> Reads {
    let mut reads = vec![Reads::NoRow; program.nodes.len()];
    // Ascending handles: inputs precede their users (the validator checks it).
    for id in reachable(program, [out]) {
        let node = program.node(id);
        reads[id.index()] = match node.op {
            Op::Input(_) if node.shape.batched => Reads::OwnRow,
            Op::Input(_) | Op::Param(_) | Op::Const(_) => Reads::NoRow,
            _ => {
                let widest = node
                    .inputs
                    .iter()
                    .map(|i| reads[i.index()])
                    .max()
                    .unwrap_or(Reads::NoRow);
                if widest == Reads::OwnRow && !node.shape.batched {
                    Reads::AllRows
                } else {
                    widest
                }
            }
        };
    }
    reads[out.index()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Shape;
    use crate::ir::{Binary, Builder, Unary};

    /// `f(z: [B, 3], c: [3]) -> y` built by `body`.
    fn program(body: impl FnOnce(&mut Builder, NodeId, NodeId) -> NodeId) -> Program {
        let mut p = Program::default();
        let mut b = Builder::new(&mut p);
        let z = b.input("z", Shape::batched(vec![3]));
        let c = b.input("c", Shape::fixed(vec![3]));
        let y = body(&mut b, z, c);
        b.function(
            "f",
            vec![("z".into(), z), ("c".into(), c)],
            vec![("y".into(), y)],
            vec![],
        );
        p
    }

    #[test]
    fn elementwise_ops_of_a_row_and_unbatched_values_keep_rows_apart() {
        let p = program(|b, z, c| {
            let w = b.param("w", vec![3, 3]);
            let h = b.node(Op::MatMul, vec![z, w], Shape::batched(vec![3]));
            let h = b.node(Op::Unary(Unary::Tanh), vec![h], Shape::batched(vec![3]));
            b.node(Op::Binary(Binary::Mul), vec![h, c], Shape::batched(vec![3]))
        });
        assert!(independent(&p, "f", "y"));
    }

    #[test]
    fn a_sum_over_the_batch_reads_every_row_and_so_does_what_uses_it() {
        let p = program(|b, z, _| {
            // Σ over the batch, broadcast back onto every row.
            let total = b.node(Op::SumTo, vec![z], Shape::fixed(vec![3]));
            let back = b.node(Op::Broadcast, vec![total], Shape::batched(vec![3]));
            b.node(
                Op::Binary(Binary::Sub),
                vec![z, back],
                Shape::batched(vec![3]),
            )
        });
        assert!(!independent(&p, "f", "y"));
    }

    #[test]
    fn an_unbatched_output_or_a_missing_one_is_not_independent() {
        let p = program(|b, _, c| b.node(Op::Unary(Unary::Exp), vec![c], Shape::fixed(vec![3])));
        assert!(!independent(&p, "f", "y"), "unbatched");
        assert!(!independent(&p, "f", "nope"));
        assert!(!independent(&p, "g", "y"));
    }

    #[test]
    fn an_output_that_reads_no_row_but_is_batched_is_independent() {
        let p = program(|b, _, c| b.node(Op::Broadcast, vec![c], Shape::batched(vec![3])));
        assert!(independent(&p, "f", "y"));
    }
}
