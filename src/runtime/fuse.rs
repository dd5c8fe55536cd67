//! Elementwise fusion in the executor's plans: a chain of arithmetic nodes of one shape runs as
//! one loop over tiles instead of one pass over memory per node.
//!
//! Reverse mode writes the derivative of an activation as a few elementwise nodes: a leaky ReLU's
//! as `g · (step(h)·(1 − s) + s)` (four nodes), a swish's as `g · (σ · (1 + x · (1 − σ)))` (five).
//! On the CEBM's and the DCGAN's activations (up to millions of elements), in every Langevin step,
//! each node is a pass over memory. A fused group reads its inputs and writes its result once; its
//! nodes are evaluated a cache-resident tile at a time. Each node rounds exactly as the executor's
//! own evaluation of it would (a product or sum with a constant is candle's `affine`), so fusion
//! changes no bits.
//!
//! A group is a node the plan needs (used by more than one node, by a non-fusable node, or
//! returned) with the fusable nodes that only it reads, transitively. Fusable: negation, square,
//! step, reciprocal, and `+ − × ÷`, whose operands are constants or values of the node's own
//! shape (no broadcasting). It runs fused on the CPU, in f32/f64, off the autograd tape; elsewhere
//! its nodes are evaluated one by one as usual.

use super::host::{HostFloat, is_host_float, par_filled, tensor, with_slices};
use crate::ir::{Binary, NodeId, Op, Program, Unary};
use candle_core::{DType, Result, Tensor};
use std::collections::{HashMap, HashSet};

/// Elements per tile: the tiles of a group's nodes stay in the L1 cache.
const TILE: usize = 512;

/// A fused group: its nodes in evaluation order (the root last) and the values it reads.
#[derive(Clone, Debug)]
pub(crate) struct Group {
    pub members: Vec<NodeId>,
    pub leaves: Vec<NodeId>,
    code: Vec<Instr>,
}

/// Where an instruction's operand comes from.
#[derive(Clone, Copy, Debug)]
enum Src {
    Leaf(usize),
    /// An earlier instruction's result.
    Member(usize),
    Const(f64),
}

/// One node as the tile loop computes it.
#[derive(Clone, Copy, Debug)]
enum Instr {
    Unary(Unary, Src),
    Binary(Binary, Src, Src),
    /// `x · mul + add` (candle's `affine`, with both numbers rounded to the dtype).
    Affine(Src, f64, f64),
}

fn fusable_unary(u: Unary) -> bool {
    matches!(u, Unary::Neg | Unary::Sqr | Unary::Step | Unary::Recip)
}

fn fusable_binary(b: Binary) -> bool {
    matches!(b, Binary::Add | Binary::Sub | Binary::Mul | Binary::Div)
}

/// The fusable groups among `order` with at least two nodes, keyed by root.
pub(crate) fn find(
    program: &Program,
    order: &[NodeId],
    outputs: &[NodeId],
) -> HashMap<NodeId, Group> {
    let mut users: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
    for id in order {
        for i in &program.node(*id).inputs {
            users.entry(*i).or_default().push(*id);
        }
    }
    let konst = |id: NodeId| match program.node(id).op {
        Op::Const(c) => Some(c),
        _ => None,
    };
    let fusable = |id: NodeId| {
        let n = program.node(id);
        let elementwise = match n.op {
            Op::Unary(u) => fusable_unary(u),
            Op::Binary(b) => fusable_binary(b) && n.inputs.iter().any(|i| konst(*i).is_none()),
            _ => false,
        };
        elementwise
            && (n.shape.batched || !n.shape.dims.is_empty())
            && n.inputs
                .iter()
                .all(|i| konst(*i).is_some() || program.node(*i).shape == n.shape)
    };
    // A fusable node folds into its user when that is its only user and is fusable too.
    let folds = |id: NodeId| -> bool {
        fusable(id)
            && !outputs.contains(&id)
            && matches!(users.get(&id).map(Vec::as_slice), Some([u]) if fusable(*u))
    };
    let mut groups = HashMap::new();
    for &root in order {
        if !fusable(root) || folds(root) {
            continue;
        }
        let mut members = HashSet::new();
        let mut stack = vec![root];
        while let Some(id) = stack.pop() {
            members.insert(id);
            for i in &program.node(id).inputs {
                if folds(*i) && !members.contains(i) {
                    stack.push(*i);
                }
            }
        }
        if members.len() < 2 {
            continue;
        }
        // Plan order is a topological order: inputs before users.
        let members: Vec<NodeId> = order
            .iter()
            .copied()
            .filter(|n| members.contains(n))
            .collect();
        groups.insert(root, compile(program, members, konst));
    }
    groups
}

/// The instructions of `members` (in order), and the leaves they read.
fn compile(
    program: &Program,
    members: Vec<NodeId>,
    konst: impl Fn(NodeId) -> Option<f64>,
) -> Group {
    let mut leaves: Vec<NodeId> = Vec::new();
    let src = |id: NodeId, leaves: &mut Vec<NodeId>| -> Src {
        if let Some(c) = konst(id) {
            return Src::Const(c);
        }
        if let Some(j) = members.iter().position(|m| *m == id) {
            return Src::Member(j);
        }
        let k = leaves.iter().position(|l| *l == id).unwrap_or_else(|| {
            leaves.push(id);
            leaves.len() - 1
        });
        Src::Leaf(k)
    };
    let mut code = Vec::with_capacity(members.len());
    for id in &members {
        let n = program.node(*id);
        let ins: Vec<Src> = n.inputs.iter().map(|i| src(*i, &mut leaves)).collect();
        // As `Executor::binary` evaluates a tensor with a constant of a scalar shape.
        let instr = match (&n.op, ins.as_slice()) {
            (Op::Unary(u), &[x]) => Instr::Unary(*u, x),
            (Op::Binary(op), &[x, Src::Const(c)]) => match op {
                Binary::Add => Instr::Affine(x, 1.0, c),
                Binary::Sub => Instr::Affine(x, 1.0, -c),
                Binary::Mul => Instr::Affine(x, c, 0.0),
                _ => Instr::Affine(x, 1.0 / c, 0.0),
            },
            (Op::Binary(op), &[Src::Const(c), y]) => match op {
                Binary::Add => Instr::Affine(y, 1.0, c),
                Binary::Sub => Instr::Affine(y, -1.0, c),
                Binary::Mul => Instr::Affine(y, c, 0.0),
                _ => Instr::Binary(*op, Src::Const(c), y),
            },
            (Op::Binary(op), &[x, y]) => Instr::Binary(*op, x, y),
            _ => unreachable!("internal error: an unfusable node in a fused group"),
        };
        code.push(instr);
    }
    Group {
        members,
        leaves,
        code,
    }
}

impl Group {
    /// The root's value from the leaves' values, or `None` where the fused loop does not apply
    /// (another device or dtype, a tensor on the autograd tape, shapes that differ): the caller
    /// then evaluates the members one by one.
    pub(crate) fn eval(&self, leaves: &[Tensor]) -> Result<Option<Tensor>> {
        let Some(first) = leaves.first() else {
            return Ok(None);
        };
        let applies = leaves.iter().all(|t| {
            is_host_float(t)
                && t.dtype() == first.dtype()
                && t.dims() == first.dims()
                && !t.track_op()
        });
        if !applies {
            return Ok(None);
        }
        let leaves: Vec<Tensor> = leaves
            .iter()
            .map(|t| t.contiguous())
            .collect::<Result<_>>()?;
        match first.dtype() {
            DType::F32 => self.run::<f32>(&leaves).map(Some),
            _ => self.run::<f64>(&leaves).map(Some),
        }
    }

    fn run<T: HostFloat>(&self, leaves: &[Tensor]) -> Result<Tensor> {
        let n = leaves[0].elem_count();
        let out = with_slices(leaves, |data: &[&[T]]| {
            par_filled(n, |first, chunk| {
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2.
                    return unsafe { run_chunk_avx2(&self.code, data, first, chunk) };
                }
                run_chunk(&self.code, data, first, chunk)
            })
        })?;
        tensor(out, leaves[0].dims())
    }
}

/// [`run_chunk`] on eight lanes instead of the baseline's four. AVX2 alone, not FMA: the same
/// operations in each lane, so the same bits as the baseline build.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn run_chunk_avx2<T: HostFloat>(
    code: &[Instr],
    data: &[&[T]],
    first: usize,
    chunk: &mut [T],
) {
    run_chunk(code, data, first, chunk)
}

/// The group's `code` over the elements `first..first + chunk.len()`, a tile at a time.
#[inline(always)]
fn run_chunk<T: HostFloat>(code: &[Instr], data: &[&[T]], first: usize, chunk: &mut [T]) {
    let mut tiles = vec![[T::zero(); TILE]; code.len()];
    for (t, dst) in chunk.chunks_mut(TILE).enumerate() {
        let (start, len) = (first + t * TILE, dst.len());
        for (j, instr) in code.iter().enumerate() {
            let (done, rest) = tiles.split_at_mut(j);
            let operand = |s: Src| match s {
                Src::Leaf(k) => Operand::Slice(&data[k][start..start + len]),
                Src::Member(m) => Operand::Slice(&done[m][..len]),
                Src::Const(c) => Operand::Scalar(T::from_f64(c)),
            };
            apply(*instr, &mut rest[0][..len], operand);
        }
        dst.copy_from_slice(&tiles[code.len() - 1][..len]);
    }
}

/// An operand over a tile: a slice of it, or a constant.
#[derive(Clone, Copy)]
enum Operand<'a, T> {
    Slice(&'a [T]),
    Scalar(T),
}

/// `dst[i] = f(x[i])` over a tile, one loop per kind of operand (so each one vectorises).
#[inline(always)]
fn map1<T: HostFloat>(dst: &mut [T], x: Operand<T>, f: impl Fn(T) -> T) {
    match x {
        Operand::Slice(xs) => dst.iter_mut().zip(xs).for_each(|(d, &v)| *d = f(v)),
        Operand::Scalar(v) => dst.fill(f(v)),
    }
}

/// `dst[i] = f(x[i], y[i])` over a tile.
#[inline(always)]
fn map2<T: HostFloat>(dst: &mut [T], x: Operand<T>, y: Operand<T>, f: impl Fn(T, T) -> T) {
    match (x, y) {
        (Operand::Slice(xs), Operand::Slice(ys)) => {
            for ((d, &a), &b) in dst.iter_mut().zip(xs).zip(ys) {
                *d = f(a, b);
            }
        }
        (Operand::Slice(xs), Operand::Scalar(b)) => map1(dst, Operand::Slice(xs), |a| f(a, b)),
        (Operand::Scalar(a), y) => map1(dst, y, |b| f(a, b)),
    }
}

/// One instruction over a tile; `operand` gives its inputs' tiles.
#[inline(always)]
fn apply<'a, T: HostFloat + 'a>(
    instr: Instr,
    dst: &mut [T],
    operand: impl Fn(Src) -> Operand<'a, T>,
) {
    let (zero, one) = (T::zero(), T::one());
    match instr {
        Instr::Affine(x, mul, add) => {
            let (mul, add) = (T::from_f64(mul), T::from_f64(add));
            map1(dst, operand(x), |v| v * mul + add);
        }
        Instr::Unary(Unary::Neg, x) => map1(dst, operand(x), |v| -v),
        Instr::Unary(Unary::Sqr, x) => map1(dst, operand(x), |v| v * v),
        // relu(sign(v)), as a select so that it vectorises.
        Instr::Unary(Unary::Step, x) => {
            map1(dst, operand(x), |v| if v > zero { one } else { zero })
        }
        Instr::Unary(_, x) => map1(dst, operand(x), |v| one / v),
        Instr::Binary(Binary::Add, a, b) => map2(dst, operand(a), operand(b), |x, y| x + y),
        Instr::Binary(Binary::Sub, a, b) => map2(dst, operand(a), operand(b), |x, y| x - y),
        Instr::Binary(Binary::Mul, a, b) => map2(dst, operand(a), operand(b), |x, y| x * y),
        Instr::Binary(_, a, b) => map2(dst, operand(a), operand(b), |x, y| x / y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX2 loop gives the bits of the baseline's (no FMA: the same operations in each lane),
    /// for every kind of instruction and operand, on a length that leaves a partial tile.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn a_group_on_eight_lanes_gives_the_bits_of_four() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        let code = [
            Instr::Binary(Binary::Mul, Src::Leaf(0), Src::Leaf(1)),
            Instr::Unary(Unary::Recip, Src::Member(0)),
            Instr::Affine(Src::Member(1), 0.5, 2.0),
            Instr::Binary(Binary::Sub, Src::Member(2), Src::Const(1.0)),
            Instr::Unary(Unary::Step, Src::Leaf(0)),
            Instr::Binary(Binary::Div, Src::Member(3), Src::Leaf(1)),
            Instr::Binary(Binary::Add, Src::Member(5), Src::Member(4)),
            Instr::Unary(Unary::Sqr, Src::Member(6)),
            Instr::Unary(Unary::Neg, Src::Member(7)),
            Instr::Binary(Binary::Mul, Src::Const(3.0), Src::Member(8)),
        ];
        let n = 3 * TILE + 5;
        let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
        let b: Vec<f32> = (0..n)
            .map(|i| 0.5 + (i as f32 * 0.11).cos().abs())
            .collect();
        let data: [&[f32]; 2] = [&a, &b];
        let (mut lanes, mut avx2) = (vec![0f32; n], vec![0f32; n]);
        run_chunk(&code, &data, 0, &mut lanes);
        // SAFETY: the CPU has AVX2 (checked above).
        unsafe { run_chunk_avx2(&code, &data, 0, &mut avx2) };
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&lanes), bits(&avx2));
        let x =
            3.0 * -((1.0 / (a[7] * b[7]) * 0.5 + 2.0 - 1.0) / b[7] + f32::from(a[7] > 0.0)).powi(2);
        assert!(
            (lanes[7] - x).abs() < 1e-4 * x.abs().max(1.0),
            "{} vs {x}",
            lanes[7]
        );
    }
}
