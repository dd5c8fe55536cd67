//! Typed expressions → nodes, in plain or *enumerated* mode.
//!
//! Plain mode: a value of typed shape `[B, d…]` is a node of that shape.
//!
//! Enumerated mode is how a onehot symbol y with K values is summed out exactly. A value that
//! depends on y carries one extra event axis 0 of size K (entry k = the value with y = e_k); a value
//! that does not depend on y keeps its plain shape and is given a size-1 axis 0 where it meets an
//! enumerated one, so numpy broadcasting lines the two up. The three places y enters become tables
//! without any gather: `dot(y, h)` is h itself (h: `[B, K]`), `mu[y]` is mu (`[K, D]`, which
//! broadcasts against `[B, 1, D]`), `categorical(y | p)` is `log p`. Reductions over the typed event
//! axes shift by one. A term lowered this way is a table `[B, K]`; `logsumexp` over axis 0 marginalizes
//! it, `softmax` over axis 0 classifies.
//!
//! Everything is built from explicit elementwise ops, sums and log-sum-exps, so reverse mode over
//! the graph (the gradient pass) differentiates it without special cases.

use super::{net, ops};
use crate::check::{
    CheckedSpec, Dist, IndexBy, MapFn, ReduceOp, ReduceOver, Shape, TExpr, TExprKind, VarId,
};
use crate::ir::{Binary, Builder, NodeId, Op, Unary};
use crate::syntax::ast::BinOp;

/// ½ log 2π, the per-element constant of a Gaussian log-density.
const HALF_LOG_2PI: f64 = 0.918_938_533_204_672_8;

/// The lowering context: the spec being lowered and the builder of its program.
pub(super) struct Cx<'s, 'p> {
    pub spec: &'s CheckedSpec,
    pub b: Builder<'p>,
}

/// A lowered value; `enumerated`: its event axis 0 runs over the values of the symbol being summed
/// out (the remaining axes are the typed event axes).
#[derive(Clone, Copy, Debug)]
pub(super) struct Val {
    pub node: NodeId,
    pub enumerated: bool,
}

impl Val {
    /// Where the typed event axes start: after the symbol axis, if any.
    fn offset(self) -> usize {
        usize::from(self.enumerated)
    }
}

/// A density parameter: a known number, or a lowered value.
#[derive(Clone, Copy, Debug)]
pub(super) enum Operand {
    Const(f64),
    Val(Val),
}

fn plain(node: NodeId) -> Val {
    Val {
        node,
        enumerated: false,
    }
}

impl Cx<'_, '_> {
    /// The Input node of a variable: its name, shape `[B, event…]`.
    pub fn input(&mut self, v: VarId) -> NodeId {
        let var = self.spec.variable(v);
        self.b.input(&var.name, Shape::batched(var.shape.clone()))
    }

    /// A value in plain mode (no symbol enumerated).
    pub fn value(&mut self, e: &TExpr) -> NodeId {
        self.expr(e, None).node
    }

    /// A model term (one number per example). `symbol`: the onehot variable to enumerate. The checker
    /// accepts `[B, 1]` for a term (a network with one output); it is squeezed here.
    pub fn term(&mut self, e: &TExpr, symbol: Option<VarId>) -> Val {
        let v = self.expr(e, symbol);
        if self.typed_dims(v) == [1] {
            let keep = self.b.shape(v.node).dims[..v.offset()].to_vec();
            return Val {
                node: self.b.reshape(v.node, keep),
                enumerated: v.enumerated,
            };
        }
        v
    }

    /// `log normal(x | m, s)` summed over the event axes; a constant std folds into one scale and
    /// one constant (the common `normal(x | g(z), 0.3)` costs a square, a sum and a scale), and a zero
    /// mean is no subtraction.
    pub fn normal(&mut self, x: Val, m: Operand, s: Operand) -> Val {
        let d = match m {
            Operand::Const(0.0) => x,
            m => {
                let m = self.operand(m);
                self.binary(Binary::Sub, x, m)
            }
        };
        let d2 = self.unary(Unary::Sqr, d);
        let n = self.typed_dims(d2).iter().product::<usize>() as f64;
        let s = match s {
            Operand::Const(c) => {
                let q = self.sum_event(d2);
                let scaled = self.scale(q, -0.5 / (c * c));
                return self.add_const(scaled, n * (-c.ln() - HALF_LOG_2PI));
            }
            Operand::Val(s) => s,
        };
        let s2 = self.unary(Unary::Sqr, s);
        let q = self.binary(Binary::Div, d2, s2);
        let half = self.scale(q, -0.5);
        let log_s = self.log(s);
        let e = self.binary(Binary::Sub, half, log_s);
        let sum = self.sum_event(e);
        self.add_const(sum, -n * HALF_LOG_2PI)
    }

    fn operand(&mut self, o: Operand) -> Val {
        match o {
            Operand::Const(c) => plain(self.b.constant(c)),
            Operand::Val(v) => v,
        }
    }

    /// A density parameter: constants stay numbers so they can be folded.
    fn operand_of(&mut self, e: &TExpr, symbol: Option<VarId>) -> Operand {
        match e.kind {
            TExprKind::Const(c) => Operand::Const(c),
            _ => Operand::Val(self.expr(e, symbol)),
        }
    }

    /// Sum over all typed event axes: one number per example (per symbol value).
    pub fn sum_event(&mut self, v: Val) -> Val {
        let axes = (0..self.typed_rank(v)).collect();
        self.sum_typed(v, axes)
    }

    pub fn add_const(&mut self, v: Val, c: f64) -> Val {
        if c == 0.0 {
            return v;
        }
        let k = plain(self.b.constant(c));
        self.binary(Binary::Add, v, k)
    }

    pub fn scale(&mut self, v: Val, c: f64) -> Val {
        if c == 1.0 {
            return v;
        }
        let k = plain(self.b.constant(c));
        self.binary(Binary::Mul, v, k)
    }

    pub fn unary(&mut self, u: Unary, a: Val) -> Val {
        Val {
            node: self.b.unary(u, a.node),
            enumerated: a.enumerated,
        }
    }

    /// `log a`, with `log(exp(t)) = t` (the usual `exp(log_sigma)` std keeps its gradient simple).
    pub fn log(&mut self, a: Val) -> Val {
        let n = self.b.program.node(a.node);
        if n.op == Op::Unary(Unary::Exp) {
            return Val {
                node: n.inputs[0],
                enumerated: a.enumerated,
            };
        }
        self.unary(Unary::Log, a)
    }

    /// `log e` from the expression, so the simplifications build no dead node: `log(exp(t)) = t`,
    /// `log(softmax(t)) = log_softmax(t)` (stable where a probability underflows).
    fn log_of(&mut self, e: &TExpr, symbol: Option<VarId>) -> Val {
        match &e.kind {
            TExprKind::Map {
                func: MapFn::Exp,
                arg,
            } => self.expr(arg, symbol),
            TExprKind::Map {
                func: MapFn::Softmax,
                arg,
            } => {
                let a = self.expr(arg, symbol);
                self.map(MapFn::LogSoftmax, a)
            }
            _ => {
                let v = self.expr(e, symbol);
                self.log(v)
            }
        }
    }

    /// An elementwise op; where only one side is enumerated, the other gets its size-1 axis first.
    pub fn binary(&mut self, op: Binary, a: Val, c: Val) -> Val {
        if !a.enumerated && !c.enumerated {
            return plain(self.b.binary(op, a.node, c.node));
        }
        let r = self.typed_rank(a).max(self.typed_rank(c));
        let (x, y) = (self.lift(a, r), self.lift(c, r));
        Val {
            node: self.b.binary(op, x, y),
            enumerated: true,
        }
    }

    /// Brings a value to the enumerated layout of typed rank `r`: `[K or 1, 1…, dims]`, so that
    /// right-aligned broadcasting pairs typed axes with typed axes.
    fn lift(&mut self, v: Val, r: usize) -> NodeId {
        let rank = self.typed_rank(v);
        if !v.enumerated && rank == 0 {
            return v.node; // a per-example number broadcasts as it is
        }
        let mut n = v.node;
        for _ in rank..r {
            n = ops::unsqueeze(&mut self.b, n, v.offset());
        }
        if !v.enumerated {
            n = ops::unsqueeze(&mut self.b, n, 0);
        }
        n
    }

    fn typed_dims(&self, v: Val) -> Vec<usize> {
        self.b.shape(v.node).dims[v.offset()..].to_vec()
    }

    fn typed_rank(&self, v: Val) -> usize {
        ops::rank(&self.b, v.node) - v.offset()
    }

    /// Sum over the given typed axes.
    fn sum_typed(&mut self, v: Val, axes: Vec<usize>) -> Val {
        if axes.is_empty() {
            return v;
        }
        let off = v.offset();
        let node = self
            .b
            .sum(v.node, axes.into_iter().map(|a| a + off).collect());
        Val {
            node,
            enumerated: v.enumerated,
        }
    }

    fn expr(&mut self, e: &TExpr, symbol: Option<VarId>) -> Val {
        match &e.kind {
            TExprKind::Const(c) => plain(self.b.constant(*c)),
            TExprKind::Var(id) => {
                let var = self.spec.variable(*id);
                assert!(
                    var.is_continuous(),
                    "internal error: onehot `{}` used outside dot, index or categorical",
                    var.name
                );
                plain(self.input(*id))
            }
            TExprKind::Param(id) => {
                let p = self.spec.parameter(*id);
                plain(self.b.param(&net::param_path(p), p.shape.clone()))
            }
            TExprKind::Neg(a) => {
                let a = self.expr(a, symbol);
                self.unary(Unary::Neg, a)
            }
            TExprKind::Binary { op, lhs, rhs } => {
                let (l, r) = (self.expr(lhs, symbol), self.expr(rhs, symbol));
                self.binary(binary_op(*op), l, r)
            }
            TExprKind::Net { net: id, arg } => {
                let a = self.expr(arg, symbol);
                let net = self.spec.network(*id);
                assert!(
                    !a.enumerated,
                    "internal error: not supported: network `{}` applied to a value that depends on a summed-out symbol",
                    net.name
                );
                plain(net::apply(&mut self.b, net, a.node))
            }
            TExprKind::Map {
                func: MapFn::Log,
                arg,
            } => self.log_of(arg, symbol),
            TExprKind::Map { func, arg } => {
                let a = self.expr(arg, symbol);
                self.map(*func, a)
            }
            TExprKind::Dot(a, c) => self.dot(a, c, symbol),
            TExprKind::Stats(a) => {
                let a = self.expr(a, symbol);
                let sq = self.unary(Unary::Sqr, a);
                let axis = ops::rank(&self.b, a.node) - 1;
                Val {
                    node: ops::concat(&mut self.b, vec![a.node, sq.node], axis),
                    enumerated: a.enumerated,
                }
            }
            TExprKind::Reduce { op, over, arg } => self.reduce(*op, over, arg, symbol),
            TExprKind::Index { base, index } => self.index(base, index, symbol),
            TExprKind::LogDensity {
                dist,
                subject,
                params,
            } => self.log_density(*dist, subject, params, symbol),
        }
    }

    fn map(&mut self, f: MapFn, a: Val) -> Val {
        let u = match f {
            MapFn::Log => Unary::Log,
            MapFn::Exp => Unary::Exp,
            MapFn::Softplus => Unary::Softplus,
            MapFn::Sigmoid => Unary::Sigmoid,
            MapFn::Tanh => Unary::Tanh,
            MapFn::Sq => Unary::Sqr,
            MapFn::Sqrt => Unary::Sqrt,
            MapFn::Softmax | MapFn::LogSoftmax => {
                assert!(
                    self.typed_rank(a) > 0,
                    "internal error: not supported: {} of a scalar",
                    f.name()
                );
                let last = ops::rank(&self.b, a.node) - 1;
                let node = if f == MapFn::Softmax {
                    ops::softmax(&mut self.b, a.node, last)
                } else {
                    ops::log_softmax(&mut self.b, a.node, last)
                };
                return Val {
                    node,
                    enumerated: a.enumerated,
                };
            }
        };
        self.unary(u, a)
    }

    /// `dot(a, b)`: multiply, sum the last axis; `dot(y, h)` with the symbol y is the table h.
    fn dot(&mut self, a: &TExpr, c: &TExpr, symbol: Option<VarId>) -> Val {
        if let Some(y) = self.onehot(a) {
            return self.coupling(y, c, symbol);
        }
        if let Some(y) = self.onehot(c) {
            return self.coupling(y, a, symbol);
        }
        let (a, c) = (self.expr(a, symbol), self.expr(c, symbol));
        let m = self.binary(Binary::Mul, a, c);
        let last = self.typed_rank(m) - 1;
        self.sum_typed(m, vec![last])
    }

    fn onehot(&self, e: &TExpr) -> Option<VarId> {
        match e.kind {
            TExprKind::Var(id) if self.spec.variable(id).is_discrete() => Some(id),
            _ => None,
        }
    }

    /// `dot(y, h)`: entry k is `h[.., k]`, so h (`[B, K]`) is already the per-value table.
    fn coupling(&mut self, y: VarId, h: &TExpr, symbol: Option<VarId>) -> Val {
        self.expect_enumerated(y, symbol, "dot");
        let h = self.expr(h, symbol);
        assert!(
            !h.enumerated && self.typed_rank(h) == 1,
            "internal error: not supported: dot of a symbol with a value that is not a vector or depends on the symbol"
        );
        Val {
            node: h.node,
            enumerated: true,
        }
    }

    fn index(&mut self, base: &TExpr, index: &IndexBy, symbol: Option<VarId>) -> Val {
        let b = self.expr(base, symbol);
        match *index {
            IndexBy::Const(i) => {
                let axis = b.offset();
                Val {
                    node: ops::select(&mut self.b, b.node, axis, i),
                    enumerated: b.enumerated,
                }
            }
            // `mu[y]`: entry k is row k, so the base itself (its first axis has size K) is the table.
            IndexBy::Var(y) => {
                self.expect_enumerated(y, symbol, "an index");
                assert!(
                    !b.enumerated,
                    "internal error: not supported: indexing by a symbol a value that depends on it"
                );
                Val {
                    node: b.node,
                    enumerated: true,
                }
            }
        }
    }

    fn reduce(
        &mut self,
        op: ReduceOp,
        over: &ReduceOver,
        arg: &TExpr,
        symbol: Option<VarId>,
    ) -> Val {
        match *over {
            ReduceOver::Values(y) => {
                assert!(
                    symbol.is_none_or(|s| s == y),
                    "internal error: not supported: a reduction over one symbol inside a term that sums out another"
                );
                let v = self.expr(arg, Some(y));
                self.reduce_values(op, v, y)
            }
            ReduceOver::All => {
                let v = self.expr(arg, symbol);
                match op {
                    ReduceOp::Sum => self.sum_event(v),
                    ReduceOp::LogSumExp => self.logsumexp_event(v),
                }
            }
            ReduceOver::Axis(a) => {
                let v = self.expr(arg, symbol);
                match op {
                    ReduceOp::Sum => self.sum_typed(v, vec![a]),
                    ReduceOp::LogSumExp => {
                        let node = ops::logsumexp(&mut self.b, v.node, a + v.offset());
                        Val {
                            node,
                            enumerated: v.enumerated,
                        }
                    }
                }
            }
        }
    }

    /// `sum(e, y)` / `logsumexp(e, y)` written in the spec: reduce the symbol axis.
    fn reduce_values(&mut self, op: ReduceOp, v: Val, y: VarId) -> Val {
        let k = self.cardinality(y) as f64;
        if !v.enumerated {
            // The term lost its dependence on y (e.g. a constant categorical): K equal entries.
            return match op {
                ReduceOp::Sum => self.scale(v, k),
                ReduceOp::LogSumExp => self.add_const(v, k.ln()),
            };
        }
        plain(match op {
            ReduceOp::Sum => self.b.sum(v.node, vec![0]),
            ReduceOp::LogSumExp => ops::logsumexp(&mut self.b, v.node, 0),
        })
    }

    /// Log-sum-exp over all typed event axes (flattened into one first).
    fn logsumexp_event(&mut self, v: Val) -> Val {
        let off = v.offset();
        let dims = self.b.shape(v.node).dims.clone();
        let node = match self.typed_rank(v) {
            0 => v.node,
            1 => ops::logsumexp(&mut self.b, v.node, off),
            _ => {
                let mut flat = dims[..off].to_vec();
                flat.push(dims[off..].iter().product());
                let f = self.b.reshape(v.node, flat);
                ops::logsumexp(&mut self.b, f, off)
            }
        };
        Val {
            node,
            enumerated: v.enumerated,
        }
    }

    fn log_density(
        &mut self,
        dist: Dist,
        subject: &TExpr,
        params: &[TExpr],
        symbol: Option<VarId>,
    ) -> Val {
        if dist == Dist::Categorical {
            return self.categorical(subject, &params[0], symbol);
        }
        let x = self.expr(subject, symbol);
        if dist == Dist::Normal {
            let (m, s) = (
                self.operand_of(&params[0], symbol),
                self.operand_of(&params[1], symbol),
            );
            return self.normal(x, m, s);
        }
        let ps: Vec<Val> = params.iter().map(|p| self.expr(p, symbol)).collect();
        match dist {
            // Σ x log p + (1 − x) log(1 − p)
            Dist::Bernoulli => {
                let p = ps[0];
                let log_p = self.log(p);
                let on = self.binary(Binary::Mul, x, log_p);
                let one = plain(self.b.constant(1.0));
                let (not_x, not_p) = (
                    self.binary(Binary::Sub, one, x),
                    self.binary(Binary::Sub, one, p),
                );
                let log_not_p = self.log(not_p);
                let off = self.binary(Binary::Mul, not_x, log_not_p);
                let e = self.binary(Binary::Add, on, off);
                self.sum_event(e)
            }
            // Σ x·l − softplus(l)
            Dist::BernoulliLogits => {
                let l = ps[0];
                let xl = self.binary(Binary::Mul, x, l);
                let sp = self.unary(Unary::Softplus, l);
                let e = self.binary(Binary::Sub, xl, sp);
                self.sum_event(e)
            }
            Dist::Normal | Dist::Categorical => unreachable!("handled above"),
        }
    }

    /// `log categorical(y | p)` with y enumerated: entry k is `log p[k]`, the table `log p`.
    fn categorical(&mut self, subject: &TExpr, p: &TExpr, symbol: Option<VarId>) -> Val {
        let y = self
            .onehot(subject)
            .expect("internal error: categorical of a non-onehot subject");
        self.expect_enumerated(y, symbol, "categorical");
        let log_p = self.log_of(p, symbol);
        assert!(
            !log_p.enumerated,
            "internal error: not supported: categorical probabilities that depend on the symbol"
        );
        match self.typed_rank(log_p) {
            0 => log_p, // the same probability for every value
            1 => Val {
                node: log_p.node,
                enumerated: true,
            },
            _ => panic!("internal error: not supported: categorical probabilities of rank > 1"),
        }
    }

    pub fn cardinality(&self, y: VarId) -> usize {
        self.spec
            .variable(y)
            .cardinality()
            .expect("internal error: a symbol is a onehot variable")
    }

    fn expect_enumerated(&self, y: VarId, symbol: Option<VarId>, what: &str) {
        assert!(
            symbol == Some(y),
            "internal error: onehot `{}` in {what} outside a term that sums it out",
            self.spec.variable(y).name
        );
    }
}

fn binary_op(op: BinOp) -> Binary {
    match op {
        BinOp::Add => Binary::Add,
        BinOp::Sub => Binary::Sub,
        BinOp::Mul => Binary::Mul,
        BinOp::Div => Binary::Div,
        BinOp::Pow => Binary::Pow,
    }
}
