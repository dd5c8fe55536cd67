//! `model:` — typing of expressions: resolves names, checks kinds (a discrete variable only where a
//! symbol belongs), and infers shapes with a batch dimension.

use super::calls::const_number;
use super::decls::RESERVED;
use super::error::related;
use super::networks::shape_text;
use super::{
    CheckError, Checker, Dist, IndexBy, MapFn, Model, ReduceOp, ReduceOver, Scope, Shape, TExpr,
    TExprKind, VarId,
};
use crate::diag::{did_you_mean, one_of};
use crate::source::Span;
use crate::spec::{ModelSection, Text};
use crate::syntax::{self, ast};
use std::collections::BTreeSet;

pub(crate) fn check_model(cx: &mut Checker, m: &ModelSection, scope: &Scope) -> Model {
    let mut ty = Typer { cx, scope };
    let prior = m.prior.as_ref().and_then(|t| ty.term(t, "prior"));
    if let Some(p) = &prior {
        ty.no_observed(
            p,
            "prior",
            "the prior is over latents only; the data enter through the likelihood",
        );
    }
    let likelihood = m.likelihood.as_ref().and_then(|t| ty.likelihood(t));
    let energy = m.energy.as_ref().and_then(|t| ty.term(t, "energy"));
    let inference = m.inference.as_ref().and_then(|t| ty.inference(t));
    Model {
        prior,
        likelihood,
        energy,
        inference,
    }
}

struct Typer<'a, 'c> {
    cx: &'c mut Checker,
    scope: &'a Scope,
}

/// Where an expression is typed: a density is only a value under `log`, or at the top of a
/// likelihood.
#[derive(Clone, Copy, PartialEq)]
enum Ctx {
    Value,
    Likelihood,
}

impl Typer<'_, '_> {
    fn parse(&mut self, t: &Text) -> Option<ast::Expr> {
        match syntax::parse_expr(&t.value, &t.map) {
            Ok(e) => Some(e),
            Err(e) => {
                self.cx.error(e.into());
                None
            }
        }
    }

    /// A model term: one number per example.
    fn term(&mut self, t: &Text, what: &str) -> Option<TExpr> {
        let e = self.parse(t)?;
        let te = self.infer(&e, Ctx::Value)?;
        self.per_example(te, what)
    }

    /// Accepts `[B]`, `[B, 1]` (a network with one output) and constants; squeezes `[.., 1]`.
    fn per_example(&mut self, mut te: TExpr, what: &str) -> Option<TExpr> {
        if te.shape.dims == [1] {
            te.shape.dims.clear();
        }
        if te.shape.dims.is_empty() {
            return Some(te);
        }
        self.cx.error(CheckError::WrongShape {
            what: format!("the {what}"),
            expected: "one number per example [B]".into(),
            found: te.shape.to_string(),
            span: te.span,
            related: Vec::new(),
            help: Some(
                "reduce it, e.g. `sum(...)`, or couple a symbol `y` with `dot(y, ...)`".into(),
            ),
        });
        None
    }

    fn no_observed(&mut self, te: &TExpr, term: &str, help: &str) {
        let vars = te.variables();
        // Observed labels may enter the prior (p(y, z)); observed features may not.
        if let Some(v) = vars
            .iter()
            .map(|id| &self.scope.variables[id.0])
            .find(|v| v.observed && v.is_continuous())
        {
            let span = te
                .find_var_span(
                    self.scope
                        .variable(&v.name)
                        .map(|(id, _)| id)
                        .unwrap_or(VarId(0)),
                )
                .unwrap_or(te.span);
            self.cx.error(CheckError::DependsOnObserved {
                term: term.into(),
                var: v.name.clone(),
                span,
                help: Some(help.into()),
            });
        }
    }

    fn likelihood(&mut self, t: &Text) -> Option<TExpr> {
        let e = self.parse(t)?;
        let te = self.infer(&e, Ctx::Likelihood)?;
        let TExprKind::LogDensity { subject, .. } = &te.kind else {
            self.cx.error(CheckError::NotADensity {
                what: "the likelihood must be a density of the observed variable".into(),
                span: te.span,
                label: "not a density".into(),
                help: Some("e.g. `normal(x | g(z), 0.3)` or `bernoulli(x | logits = g(z))`".into()),
            });
            return None;
        };
        match &subject.kind {
            TExprKind::Var(id) if self.scope.variables[id.0].observed => Some(te),
            _ => {
                let observed = self
                    .scope
                    .observed_features()
                    .map_or("x".to_string(), |(_, v)| v.name.clone());
                self.cx.error(CheckError::NotADensity {
                    what: "the likelihood must be a density of an observed variable".into(),
                    span: subject.span,
                    label: "not an observed variable".into(),
                    help: Some(format!("write `normal({observed} | ..., ...)`; declare it `observed` in `variables:`")),
                });
                None
            }
        }
    }

    fn inference(&mut self, t: &Text) -> Option<super::NetId> {
        let e = self.parse(t)?;
        let name = match &e.kind {
            ast::ExprKind::Name(n) => n,
            ast::ExprKind::Call(c) if c.args.len() <= 1 && c.given.is_none() => &c.callee,
            _ => {
                self.cx.error(CheckError::InvalidValue {
                    what: "`model.inference`".into(),
                    expected: "the name of an encoder network".into(),
                    span: e.span,
                    found: "an expression".into(),
                    help: Some(
                        "e.g. `inference: q` with `q: encoder(x -> 512 -> normal(z))`".into(),
                    ),
                });
                return None;
            }
        };
        match self.scope.network(&name.name) {
            Some((id, net)) if net.head.is_some() => Some(id),
            Some((_, net)) => {
                self.cx.error(CheckError::InvalidValue {
                    what: "`model.inference`".into(),
                    expected: "an encoder network (one ending in `normal(z)`)".into(),
                    span: name.span,
                    found: format!(
                        "`{}` outputs values of shape {}",
                        net.name,
                        shape_text(&net.output_shape)
                    ),
                    help: Some(format!(
                        "define it as `encoder({} -> 512 -> normal(z))`",
                        self.scope.variables[net.input.0].name
                    )),
                });
                None
            }
            None => {
                let nets: Vec<&str> = self
                    .scope
                    .networks
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect();
                self.cx.error(CheckError::UnknownName {
                    name: name.name.clone(),
                    span: name.span,
                    help: did_you_mean(&name.name, nets),
                });
                None
            }
        }
    }

    fn infer(&mut self, e: &ast::Expr, ctx: Ctx) -> Option<TExpr> {
        let mk = |kind, shape| {
            Some(TExpr {
                kind,
                shape,
                span: e.span,
            })
        };
        match &e.kind {
            ast::ExprKind::Number { value, .. } => mk(TExprKind::Const(*value), Shape::scalar()),
            ast::ExprKind::Name(n) => self.name(n, false),
            ast::ExprKind::Unary {
                op: ast::UnaryOp::Neg,
                arg,
            } => {
                let a = self.infer(arg, Ctx::Value)?;
                let shape = a.shape.clone();
                mk(TExprKind::Neg(Box::new(a)), shape)
            }
            ast::ExprKind::Binary { op, lhs, rhs } => {
                let (l, r) = (self.infer(lhs, Ctx::Value), self.infer(rhs, Ctx::Value));
                let (l, r) = (l?, r?);
                let Some(shape) = broadcast(&l.shape, &r.shape) else {
                    self.cx.error(CheckError::ShapeMismatch {
                        context: format!("`{}`", op.symbol()),
                        left: l.shape.to_string(),
                        left_span: l.span,
                        right: r.shape.to_string(),
                        right_span: r.span,
                        help: Some("elementwise operations need equal shapes, or one side broadcastable (a number, or size 1)".into()),
                    });
                    return None;
                };
                mk(
                    TExprKind::Binary {
                        op: *op,
                        lhs: Box::new(l),
                        rhs: Box::new(r),
                    },
                    shape,
                )
            }
            ast::ExprKind::Call(c) => self.call(c, ctx),
            ast::ExprKind::Index { base, index } => self.index(e.span, base, index),
            ast::ExprKind::Tuple(_) | ast::ExprKind::List(_) => {
                self.cx.error(CheckError::InvalidValue {
                    what: "a model term".into(),
                    expected: "a value".into(),
                    span: e.span,
                    found: "a tuple or list".into(),
                    help: Some(
                        "tuples and lists are for call options, e.g. `betas = (0.5, 0.999)`".into(),
                    ),
                });
                None
            }
        }
    }

    /// A name as a value. `onehot_ok`: a discrete variable stands for its one-hot vector here.
    fn name(&mut self, n: &ast::Ident, onehot_ok: bool) -> Option<TExpr> {
        let mk = |kind, shape| {
            Some(TExpr {
                kind,
                shape,
                span: n.span,
            })
        };
        if let Some((id, v)) = self.scope.variable(&n.name) {
            if v.is_discrete() && !onehot_ok {
                self.cx.error(CheckError::DiscreteAsContinuous {
                    name: v.name.clone(),
                    span: n.span,
                    declared: v.span,
                });
                return None;
            }
            return mk(TExprKind::Var(id), Shape::batched(v.shape.clone()));
        }
        if let Some((id, p)) = self.scope.parameter(&n.name) {
            return mk(TExprKind::Param(id), Shape::fixed(p.shape.clone()));
        }
        if let Some((_, net)) = self.scope.network(&n.name) {
            let input = &self.scope.variables[net.input.0].name;
            self.cx.error(CheckError::InvalidValue {
                what: format!("`{}`", n.name),
                expected: "a value".into(),
                span: n.span,
                found: "a network".into(),
                help: Some(format!("call it: `{}({input})`", n.name)),
            });
            return None;
        }
        let mut names = self.scope.all_names();
        names.extend(RESERVED.iter().copied());
        self.cx.error(CheckError::UnknownName {
            name: n.name.clone(),
            span: n.span,
            help: did_you_mean(&n.name, names),
        });
        None
    }

    fn value_or_onehot(&mut self, e: &ast::Expr) -> Option<TExpr> {
        match &e.kind {
            ast::ExprKind::Name(n) => self.name(n, true),
            _ => self.infer(e, Ctx::Value),
        }
    }

    fn discrete(&mut self, e: &ast::Expr, role: &str) -> Option<VarId> {
        let found = match &e.kind {
            ast::ExprKind::Name(n) => match self.scope.variable(&n.name) {
                Some((id, v)) if v.is_discrete() => return Some(id),
                Some((_, v)) => format!("`{}` is {}", v.name, v.kind_name()),
                None => {
                    self.name(n, true);
                    return None;
                }
            },
            _ => "not a variable".into(),
        };
        let name = match &e.kind {
            ast::ExprKind::Name(n) => n.name.clone(),
            _ => "?".into(),
        };
        self.cx.error(CheckError::ExpectedDiscrete {
            name,
            span: e.span,
            found,
            help: Some(format!("{role} must be a onehot variable")),
        });
        None
    }

    fn positional<'e>(
        &mut self,
        c: &'e ast::Call,
        n: std::ops::RangeInclusive<usize>,
        usage: &str,
    ) -> Option<Vec<&'e ast::Expr>> {
        let args: Vec<&ast::Expr> = c.positional().collect();
        if let Some(named) = c.args.iter().find_map(|a| a.name.as_ref()) {
            self.cx.error(CheckError::UnknownArgument {
                callee: c.callee.name.clone(),
                name: named.name.clone(),
                span: named.span,
                help: Some(format!("write `{usage}`")),
            });
            return None;
        }
        if !n.contains(&args.len()) {
            let expected = if n.start() == n.end() {
                format!("{} argument(s)", n.start())
            } else {
                format!("{} to {} arguments", n.start(), n.end())
            };
            self.cx.error(CheckError::WrongArity {
                callee: c.callee.name.clone(),
                expected,
                found: args.len(),
                span: c.span,
                help: Some(format!("write `{usage}`")),
            });
            return None;
        }
        if let Some(g) = &c.given {
            self.cx.error(CheckError::InvalidValue {
                what: format!("`{}`", c.callee.name),
                expected: "plain arguments".into(),
                span: g.span,
                found: "a density subject `... |`".into(),
                help: Some(format!("write `{usage}`")),
            });
            return None;
        }
        Some(args)
    }

    fn call(&mut self, c: &ast::Call, ctx: Ctx) -> Option<TExpr> {
        let name = c.callee.name.as_str();
        let span = c.span;
        let mk = |kind, shape| Some(TExpr { kind, shape, span });
        if let Some((id, net)) = self.scope.network(name) {
            if let Some(h) = &net.head {
                self.cx.error(CheckError::EncoderInExpression {
                    name: net.name.clone(),
                    latent: self.scope.variables[h.latent.0].name.clone(),
                    span: c.callee.span,
                });
                return None;
            }
            let input = self.scope.variables[net.input.0].name.clone();
            let args = self.positional(c, 1..=1, &format!("{name}({input})"))?;
            let a = self.infer(args[0], Ctx::Value)?;
            if a.shape.dims != net.input_shape {
                self.cx.error(CheckError::WrongShape {
                    what: format!("the argument of `{name}`"),
                    expected: shape_text(&net.input_shape),
                    found: a.shape.to_string(),
                    span: a.span,
                    related: vec![related(
                        net.input_span,
                        format!(
                            "`{name}` is defined over `{input}`, of shape {}",
                            shape_text(&net.input_shape)
                        ),
                    )],
                    help: Some(format!(
                        "pass `{name}` a value of shape {}, like `{input}`",
                        shape_text(&net.input_shape)
                    )),
                });
                return None;
            }
            let shape = Shape {
                batched: a.shape.batched,
                dims: net.output_shape.clone(),
            };
            return mk(
                TExprKind::Net {
                    net: id,
                    arg: Box::new(a),
                },
                shape,
            );
        }
        match name {
            "dot" => {
                let args = self.positional(c, 2..=2, "dot(a, b)")?;
                let (a, b) = (self.value_or_onehot(args[0]), self.value_or_onehot(args[1]));
                let (a, b) = (a?, b?);
                let (la, lb) = (a.shape.dims.last().copied(), b.shape.dims.last().copied());
                let lead = |s: &Shape| Shape {
                    batched: s.batched,
                    dims: s.dims[..s.dims.len().saturating_sub(1)].to_vec(),
                };
                match (la, lb) {
                    (Some(x), Some(y)) if x == y => {
                        let Some(shape) = broadcast(&lead(&a.shape), &lead(&b.shape)) else {
                            self.mismatch("`dot`", &a, &b, None);
                            return None;
                        };
                        mk(TExprKind::Dot(Box::new(a), Box::new(b)), shape)
                    }
                    _ => {
                        self.mismatch("`dot`", &a, &b, Some("`dot` multiplies and sums the last axes, which must have equal sizes".into()));
                        None
                    }
                }
            }
            "sum" | "logsumexp" => {
                let op = if name == "sum" {
                    ReduceOp::Sum
                } else {
                    ReduceOp::LogSumExp
                };
                let args = self.positional(
                    c,
                    1..=2,
                    &format!("{name}(e), {name}(e, AXIS) or {name}(e, y)"),
                )?;
                let over_discrete = args.get(1).and_then(|a| match &a.kind {
                    ast::ExprKind::Name(n) => self
                        .scope
                        .variable(&n.name)
                        .filter(|(_, v)| v.is_discrete())
                        .map(|(id, _)| id),
                    _ => None,
                });
                let a = self.infer(args[0], Ctx::Value)?;
                let (over, shape) = match (args.get(1), over_discrete) {
                    (None, _) => (
                        ReduceOver::All,
                        Shape {
                            batched: a.shape.batched,
                            dims: vec![],
                        },
                    ),
                    (Some(_), Some(y)) => {
                        if !a.variables().contains(&y) {
                            let yname = self.scope.variables[y.0].name.clone();
                            self.cx.error(CheckError::InvalidValue {
                                what: format!("`{name}` over `{yname}`"),
                                expected: format!("a term that depends on `{yname}`"),
                                span: a.span,
                                found: format!("does not mention `{yname}`"),
                                help: Some(format!(
                                    "couple it, e.g. `{name}(dot({yname}, f(z)), {yname})`"
                                )),
                            });
                            return None;
                        }
                        (ReduceOver::Values(y), a.shape.clone())
                    }
                    (Some(ax), None) => {
                        let rank = a.shape.dims.len() as f64;
                        match const_number(ax) {
                            Some(v) if v.fract() == 0.0 && v >= -rank && v < rank => {
                                let axis = if v < 0.0 {
                                    (v + rank) as usize
                                } else {
                                    v as usize
                                };
                                let mut dims = a.shape.dims.clone();
                                dims.remove(axis);
                                (
                                    ReduceOver::Axis(axis),
                                    Shape {
                                        batched: a.shape.batched,
                                        dims,
                                    },
                                )
                            }
                            _ => {
                                self.cx.error(CheckError::InvalidValue {
                                    what: format!("the axis of `{name}`"),
                                    expected: format!("an axis of {} (0 to {}, not counting the batch) or a onehot variable", a.shape, a.shape.dims.len().saturating_sub(1)),
                                    span: ax.span,
                                    found: super::calls::show(ax),
                                    help: None,
                                });
                                return None;
                            }
                        }
                    }
                };
                mk(
                    TExprKind::Reduce {
                        op,
                        over,
                        arg: Box::new(a),
                    },
                    shape,
                )
            }
            "stats" => {
                let args = self.positional(c, 1..=1, "stats(z)")?;
                let a = self.infer(args[0], Ctx::Value)?;
                let Some(&last) = a.shape.dims.last() else {
                    self.cx.error(CheckError::WrongShape {
                        what: "the argument of `stats`".into(),
                        expected: "a vector".into(),
                        found: a.shape.to_string(),
                        span: a.span,
                        related: Vec::new(),
                        help: None,
                    });
                    return None;
                };
                let mut dims = a.shape.dims.clone();
                *dims.last_mut().expect("non-empty") = 2 * last;
                let shape = Shape {
                    batched: a.shape.batched,
                    dims,
                };
                mk(TExprKind::Stats(Box::new(a)), shape)
            }
            "log"
                if c.given.is_none()
                    && matches!(c.args.as_slice(), [a] if a.name.is_none() && is_density_call(&a.value)) =>
            {
                let ast::ExprKind::Call(inner) = &c.args[0].value.kind else {
                    unreachable!("checked by is_density_call")
                };
                let mut te = self.density(inner)?;
                te.span = span;
                Some(te)
            }
            "normal" | "bernoulli" | "categorical" => {
                if ctx == Ctx::Likelihood {
                    return self.density(c);
                }
                self.cx.error(CheckError::NotADensity {
                    what: format!("`{name}(...)` is a distribution, not a value"),
                    span,
                    label: "a distribution".into(),
                    help: Some(format!(
                        "inside an expression write its log-density: `log {name}(...)`"
                    )),
                });
                None
            }
            _ => {
                if let Some((_, f)) = MapFn::ALL.iter().find(|(n, _)| *n == name) {
                    let args = self.positional(c, 1..=1, &format!("{name}(e)"))?;
                    let a = self.infer(args[0], Ctx::Value)?;
                    let shape = a.shape.clone();
                    return mk(
                        TExprKind::Map {
                            func: *f,
                            arg: Box::new(a),
                        },
                        shape,
                    );
                }
                let mut names = self
                    .scope
                    .networks
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>();
                names.extend([
                    "dot",
                    "sum",
                    "logsumexp",
                    "stats",
                    "normal",
                    "bernoulli",
                    "categorical",
                ]);
                names.extend(MapFn::ALL.iter().map(|(n, _)| *n));
                let help = did_you_mean(name, names.iter().copied()).or_else(|| {
                    Some(format!(
                        "networks of this spec: {}",
                        one_of(
                            &self
                                .scope
                                .networks
                                .iter()
                                .map(|n| n.name.as_str())
                                .collect::<Vec<_>>()
                        )
                    ))
                });
                self.cx.error(CheckError::UnknownFunction {
                    name: name.into(),
                    span: c.callee.span,
                    help,
                });
                None
            }
        }
    }

    fn mismatch(&mut self, context: &str, a: &TExpr, b: &TExpr, help: Option<String>) {
        self.cx.error(CheckError::ShapeMismatch {
            context: context.into(),
            left: a.shape.to_string(),
            left_span: a.span,
            right: b.shape.to_string(),
            right_span: b.span,
            help,
        });
    }

    /// `normal(x | m, s)`, `bernoulli(x | p)`, `bernoulli(x | logits = l)`, `categorical(y | p)`:
    /// the log-density, one number per example.
    fn density(&mut self, c: &ast::Call) -> Option<TExpr> {
        let name = c.callee.name.as_str();
        let usage = match name {
            "normal" => "normal(x | MEAN, STD)",
            "bernoulli" => "bernoulli(x | P) or bernoulli(x | logits = L)",
            _ => "categorical(y | P)",
        };
        let Some(given) = &c.given else {
            self.cx.error(CheckError::NotADensity {
                what: format!("`{name}` needs the variable it is a density of"),
                span: c.span,
                label: "no `subject |`".into(),
                help: Some(format!("write `{usage}`")),
            });
            return None;
        };
        let subject = if name == "categorical" {
            let y = self.discrete(given, "the subject of `categorical`")?;
            TExpr {
                kind: TExprKind::Var(y),
                shape: Shape::batched(self.scope.variables[y.0].shape.clone()),
                span: given.span,
            }
        } else {
            self.infer(given, Ctx::Value)?
        };
        let (dist, params): (Dist, Vec<&ast::Expr>) = match name {
            "normal" => (Dist::Normal, self.density_args(c, 2, usage)?),
            "categorical" => (Dist::Categorical, self.density_args(c, 1, usage)?),
            _ => match c.args.as_slice() {
                [a] if a.name.as_ref().is_some_and(|n| n.name == "logits") => {
                    (Dist::BernoulliLogits, vec![&a.value])
                }
                _ => (Dist::Bernoulli, self.density_args(c, 1, usage)?),
            },
        };
        let mut typed = Vec::new();
        for p in params {
            let t = self.infer(p, Ctx::Value)?;
            if broadcast(&t.shape, &subject.shape).as_ref() != Some(&subject.shape) {
                self.mismatch(
                    &format!("`{name}`"),
                    &subject,
                    &t,
                    Some(format!(
                        "the parameters of `{name}` must match the shape of its subject"
                    )),
                );
                return None;
            }
            typed.push(t);
        }
        let shape = Shape {
            batched: subject.shape.batched || typed.iter().any(|t| t.shape.batched),
            dims: vec![],
        };
        Some(TExpr {
            kind: TExprKind::LogDensity {
                dist,
                subject: Box::new(subject),
                params: typed,
            },
            shape,
            span: c.span,
        })
    }

    fn density_args<'e>(
        &mut self,
        c: &'e ast::Call,
        n: usize,
        usage: &str,
    ) -> Option<Vec<&'e ast::Expr>> {
        let args: Vec<&ast::Expr> = c.positional().collect();
        if args.len() != n || c.args.len() != n {
            self.cx.error(CheckError::WrongArity {
                callee: c.callee.name.clone(),
                expected: format!("{n} parameter(s) after `|`"),
                found: c.args.len(),
                span: c.span,
                help: Some(format!("write `{usage}`")),
            });
            return None;
        }
        Some(args)
    }

    fn index(&mut self, span: Span, base: &ast::Expr, index: &ast::Expr) -> Option<TExpr> {
        let b = self.infer(base, Ctx::Value)?;
        let Some(&first) = b.shape.dims.first() else {
            self.cx.error(CheckError::WrongShape {
                what: "an indexed value".into(),
                expected: "at least one axis".into(),
                found: b.shape.to_string(),
                span: b.span,
                related: Vec::new(),
                help: None,
            });
            return None;
        };
        let rest = b.shape.dims[1..].to_vec();
        if let ast::ExprKind::Name(n) = &index.kind
            && let Some((id, v)) = self.scope.variable(&n.name)
        {
            if !v.is_discrete() {
                self.cx.error(CheckError::ExpectedDiscrete {
                    name: v.name.clone(),
                    span: n.span,
                    found: format!("`{}` is {}", v.name, v.kind_name()),
                    help: Some(
                        "index by a onehot variable (`mu[y]`) or a constant (`f(z)[0]`)".into(),
                    ),
                });
                return None;
            }
            let k = v.shape[0];
            if k != first {
                let idx = TExpr {
                    kind: TExprKind::Var(id),
                    shape: Shape::batched(v.shape.clone()),
                    span: n.span,
                };
                self.mismatch(
                    "indexing",
                    &b,
                    &idx,
                    Some(format!(
                        "`{}` has {k} values, so the first axis must have size {k}",
                        v.name
                    )),
                );
                return None;
            }
            let shape = Shape::batched(rest);
            return Some(TExpr {
                kind: TExprKind::Index {
                    base: Box::new(b),
                    index: IndexBy::Var(id),
                },
                shape,
                span,
            });
        }
        match const_number(index) {
            Some(v) if v.fract() == 0.0 && v >= 0.0 && (v as usize) < first => {
                let shape = Shape {
                    batched: b.shape.batched,
                    dims: rest,
                };
                Some(TExpr {
                    kind: TExprKind::Index {
                        base: Box::new(b),
                        index: IndexBy::Const(v as usize),
                    },
                    shape,
                    span,
                })
            }
            _ => {
                self.cx.error(CheckError::InvalidValue {
                    what: "an index".into(),
                    expected: format!("a onehot variable or an integer from 0 to {}", first - 1),
                    span: index.span,
                    found: super::calls::show(index),
                    help: None,
                });
                None
            }
        }
    }
}

fn is_density_call(e: &ast::Expr) -> bool {
    matches!(&e.kind, ast::ExprKind::Call(c) if matches!(c.callee.name.as_str(), "normal" | "bernoulli" | "categorical"))
}

/// numpy-style broadcasting (see [`Shape::broadcast`]).
pub(crate) fn broadcast(a: &Shape, b: &Shape) -> Option<Shape> {
    a.broadcast(b)
}

impl TExpr {
    /// The variables this expression depends on.
    pub fn variables(&self) -> BTreeSet<VarId> {
        self.free_vars()
    }

    fn free_vars(&self) -> BTreeSet<VarId> {
        let mut out = BTreeSet::new();
        match &self.kind {
            TExprKind::Const(_) | TExprKind::Param(_) => {}
            TExprKind::Var(id) => {
                out.insert(*id);
            }
            TExprKind::Reduce {
                over: ReduceOver::Values(y),
                arg,
                ..
            } => {
                out = arg.free_vars();
                out.remove(y);
            }
            TExprKind::Index { base, index } => {
                out = base.free_vars();
                if let IndexBy::Var(y) = index {
                    out.insert(*y);
                }
            }
            _ => {
                for child in self.children() {
                    out.extend(child.free_vars());
                }
            }
        }
        out
    }

    /// Direct sub-expressions.
    pub fn children(&self) -> Vec<&TExpr> {
        match &self.kind {
            TExprKind::Const(_) | TExprKind::Var(_) | TExprKind::Param(_) => vec![],
            TExprKind::Neg(a)
            | TExprKind::Net { arg: a, .. }
            | TExprKind::Map { arg: a, .. }
            | TExprKind::Stats(a) => vec![a],
            TExprKind::Reduce { arg, .. } => vec![arg],
            TExprKind::Binary { lhs, rhs, .. } => vec![lhs, rhs],
            TExprKind::Dot(a, b) => vec![a, b],
            TExprKind::Index { base, .. } => vec![base],
            TExprKind::LogDensity {
                subject, params, ..
            } => std::iter::once(&**subject).chain(params.iter()).collect(),
        }
    }

    /// Pre-order walk.
    pub fn visit(&self, f: &mut impl FnMut(&TExpr)) {
        f(self);
        for c in self.children() {
            c.visit(f);
        }
    }

    /// The span of the first use of `var`, for labels.
    pub fn find_var_span(&self, var: VarId) -> Option<Span> {
        let mut found = None;
        self.visit(&mut |e| {
            if found.is_none() && e.kind == TExprKind::Var(var) {
                found = Some(e.span);
            }
        });
        found
    }
}
