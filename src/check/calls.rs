//! Calls with named arguments (samplers, optimizers, evaluations): their signatures, once, and the
//! binder that checks a call against a signature. The reference docs render the same tables.

use super::{CheckError, Checker};
use crate::diag::{did_you_mean, one_of};
use crate::source::Span;
use crate::syntax::ast::{BinOp, Call, Expr, ExprKind, UnaryOp};

/// The signature of a callable configuration (`langevin(steps = 60, step_size = 0.4)`).
#[derive(Debug)]
pub struct CallSig {
    pub name: &'static str,
    pub doc: &'static str,
    pub params: &'static [ParamSig],
}

#[derive(Debug)]
pub struct ParamSig {
    pub name: &'static str,
    pub kind: ValueKind,
    /// `None`: required.
    pub default: Option<&'static str>,
    /// May be given as the first positional argument.
    pub positional: bool,
}

/// What an argument's value must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueKind {
    /// An integer ≥ 1.
    Count,
    /// An integer ≥ 0.
    Natural,
    /// A finite number > 0.
    Positive,
    /// A finite number ≥ 0.
    NonNegative,
    /// A number in [0, 1].
    Probability,
    /// A pair `(a, b)` of numbers.
    Pair,
    /// A list of integers ≥ 1 or `all`.
    Shots,
    /// A name (a data set).
    Name,
}

impl ValueKind {
    pub fn describe(self) -> &'static str {
        match self {
            ValueKind::Count => "an integer ≥ 1",
            ValueKind::Natural => "an integer ≥ 0",
            ValueKind::Positive => "a number > 0",
            ValueKind::NonNegative => "a number ≥ 0",
            ValueKind::Probability => "a number between 0 and 1",
            ValueKind::Pair => "a pair `(a, b)`",
            ValueKind::Shots => "a list of counts or `all`, e.g. `[1, 10, all]`",
            ValueKind::Name => "a name",
        }
    }
}

const fn req(name: &'static str, kind: ValueKind) -> ParamSig {
    ParamSig {
        name,
        kind,
        default: None,
        positional: false,
    }
}

const fn opt(name: &'static str, kind: ValueKind, default: &'static str) -> ParamSig {
    ParamSig {
        name,
        kind,
        default: Some(default),
        positional: false,
    }
}

pub const LANGEVIN: CallSig = CallSig {
    name: "langevin",
    doc: "Langevin dynamics in latent space: z ← z + s²/2 · ∇ log p(z) + noise · ε",
    params: &[
        req("steps", ValueKind::Count),
        req("step_size", ValueKind::Positive),
        opt("noise", ValueKind::NonNegative, "step_size"),
        opt("persistent", ValueKind::Natural, "0"),
    ],
};

pub const SGLD: CallSig = CallSig {
    name: "sgld",
    doc: "SGLD in data space with a replay buffer: x ← x − step_size/2 · ∇E(x) + noise · ε",
    params: &[
        opt("steps", ValueKind::Count, "60"),
        opt("step_size", ValueKind::Positive, "2.0"),
        opt("noise", ValueKind::NonNegative, "7.5e-3"),
        opt("buffer", ValueKind::Count, "5000"),
        opt("reinit", ValueKind::Probability, "0.05"),
        opt("init", ValueKind::Pair, "(-1, 1)"),
    ],
};

pub const ADAM: CallSig = CallSig {
    name: "adam",
    doc: "Adam with bias correction",
    params: &[
        req("lr", ValueKind::Positive),
        opt("betas", ValueKind::Pair, "(0.9, 0.999)"),
        opt("weight_decay", ValueKind::NonNegative, "0"),
        opt("decay", ValueKind::Positive, "1.0"),
    ],
};

pub const SGD: CallSig = CallSig {
    name: "sgd",
    doc: "plain stochastic gradient descent",
    params: &[req("lr", ValueKind::Positive)],
};

pub const SAMPLERS: &[&CallSig] = &[&LANGEVIN, &SGLD];
pub const OPTIMIZERS: &[&CallSig] = &[&ADAM, &SGD];

pub const EVALUATIONS: &[&CallSig] = &[
    &CallSig {
        name: "samples",
        doc: "a grid of n samples from the model",
        params: &[ParamSig {
            name: "n",
            kind: ValueKind::Count,
            default: Some("64"),
            positional: true,
        }],
    },
    &CallSig {
        name: "reconstruction_mse",
        doc: "mean squared reconstruction error on the test split",
        params: &[opt("test_size", ValueKind::Count, "all")],
    },
    &CallSig {
        name: "anomaly_auprc",
        doc: "MNIST anomaly detection: AUPRC with digit `heldout` left out of training",
        params: &[
            ParamSig {
                name: "heldout",
                kind: ValueKind::Natural,
                default: None,
                positional: true,
            },
            opt("test_size", ValueKind::Count, "all"),
        ],
    },
    &CallSig {
        name: "few_label",
        doc: "logistic regression on posterior means with few labels per class",
        params: &[
            opt("shots", ValueKind::Shots, "[1, 10, 100, all]"),
            opt("repeats", ValueKind::Count, "10"),
        ],
    },
    &CallSig {
        name: "ood_auroc",
        doc: "out-of-distribution AUROC against another data set",
        params: &[ParamSig {
            name: "against",
            kind: ValueKind::Name,
            default: None,
            positional: true,
        }],
    },
    &CallSig {
        name: "latent_kl_mi",
        doc: "KL(aggregate posterior ‖ bias) and mutual information I(x; z)",
        params: &[],
    },
    &CallSig {
        name: "accuracy",
        doc: "test accuracy of the classifier p(y | z) at the inferred z",
        params: &[],
    },
];

/// A call's arguments after binding: each parameter's value expression (or none, for a default).
pub(crate) struct Bound<'a> {
    pub call: &'a Call,
    values: Vec<Option<&'a Expr>>,
    sig: &'static CallSig,
}

/// Finds the signature of `call` among `sigs`; reports an unknown name with a suggestion.
pub(crate) fn lookup(
    cx: &mut Checker,
    call: &Call,
    sigs: &[&'static CallSig],
    what: &str,
) -> Option<&'static CallSig> {
    let name = &call.callee.name;
    if let Some(sig) = sigs.iter().find(|s| s.name == name) {
        return Some(sig);
    }
    let names: Vec<&str> = sigs.iter().map(|s| s.name).collect();
    cx.error(CheckError::UnknownCall {
        what: what.to_string(),
        name: name.clone(),
        span: call.callee.span,
        help: did_you_mean(name, names.iter().copied())
            .or_else(|| Some(format!("known: {}", one_of(&names)))),
    });
    None
}

/// Matches the arguments of `call` to `sig`'s parameters; reports unknown, duplicate, missing and
/// positional misuse. Values are checked by the typed getters.
pub(crate) fn bind<'a>(cx: &mut Checker, call: &'a Call, sig: &'static CallSig) -> Bound<'a> {
    let mut values: Vec<Option<&'a Expr>> = vec![None; sig.params.len()];
    let mut spans: Vec<Option<Span>> = vec![None; sig.params.len()];
    if let Some(given) = &call.given {
        cx.error(CheckError::InvalidValue {
            what: format!("`{}`", sig.name),
            expected: "named arguments".into(),
            span: given.span,
            found: "a density subject `... |`".into(),
            help: Some("the `x | ...` form is for densities such as `normal(x | m, s)`".into()),
        });
    }
    for (i, arg) in call.args.iter().enumerate() {
        let slot = match &arg.name {
            Some(n) => match sig.params.iter().position(|p| p.name == n.name) {
                Some(k) => Some((k, n.span)),
                None => {
                    let names: Vec<&str> = sig.params.iter().map(|p| p.name).collect();
                    let help = did_you_mean(&n.name, names.iter().copied()).or_else(|| {
                        Some(if names.is_empty() {
                            format!("`{}` takes no arguments", sig.name)
                        } else {
                            format!("`{}` takes {}", sig.name, one_of(&names))
                        })
                    });
                    cx.error(CheckError::UnknownArgument {
                        callee: sig.name.into(),
                        name: n.name.clone(),
                        span: n.span,
                        help,
                    });
                    None
                }
            },
            None if i == 0 && sig.params.first().is_some_and(|p| p.positional) => {
                Some((0, arg.span))
            }
            None => {
                let help = match sig.params {
                    [] => Some(format!("`{}` takes no arguments", sig.name)),
                    ps => Some(format!(
                        "name it, e.g. `{} = {}`",
                        ps[i.min(ps.len() - 1)].name,
                        show(&arg.value)
                    )),
                };
                cx.error(CheckError::PositionalArgument {
                    callee: sig.name.into(),
                    span: arg.span,
                    help,
                });
                None
            }
        };
        if let Some((k, span)) = slot {
            if let Some(first) = spans[k] {
                cx.error(CheckError::DuplicateArgument {
                    callee: sig.name.into(),
                    name: sig.params[k].name.into(),
                    first,
                    second: span,
                });
            } else {
                values[k] = Some(&arg.value);
                spans[k] = Some(span);
            }
        }
    }
    for (k, p) in sig.params.iter().enumerate() {
        if values[k].is_none() && p.default.is_none() && spans[k].is_none() {
            cx.error(CheckError::MissingArgument {
                callee: sig.name.into(),
                name: p.name.into(),
                span: call.span,
                help: Some(format!("add `{} = ...` ({})", p.name, p.kind.describe())),
            });
        }
    }
    Bound { call, values, sig }
}

impl<'a> Bound<'a> {
    fn slot(&self, name: &str) -> (usize, Option<&'a Expr>) {
        let k = self
            .sig
            .params
            .iter()
            .position(|p| p.name == name)
            .unwrap_or_else(|| {
                panic!(
                    "internal error: `{}` has no parameter `{name}`",
                    self.sig.name
                )
            });
        (k, self.values[k])
    }

    pub fn is_given(&self, name: &str) -> bool {
        self.slot(name).1.is_some()
    }

    pub fn span_of(&self, name: &str) -> Span {
        self.slot(name).1.map_or(self.call.span, |e| e.span)
    }

    /// A number parameter checked against its kind, or its default.
    pub fn number(&self, cx: &mut Checker, name: &str, default: f64) -> f64 {
        let (k, value) = self.slot(name);
        let Some(e) = value else { return default };
        let kind = self.sig.params[k].kind;
        match const_number(e) {
            Some(v) if number_fits(kind, v) => v,
            found => {
                self.bad_value(cx, name, kind, e, found);
                default
            }
        }
    }

    /// A count parameter (integer), or its default.
    pub fn count(&self, cx: &mut Checker, name: &str, default: usize) -> usize {
        let (k, value) = self.slot(name);
        let Some(e) = value else { return default };
        let kind = self.sig.params[k].kind;
        match const_number(e) {
            Some(v) if v.fract() == 0.0 && number_fits(kind, v) && v < 1e15 => v as usize,
            found => {
                self.bad_value(cx, name, kind, e, found);
                default
            }
        }
    }

    pub fn pair(&self, cx: &mut Checker, name: &str, default: (f64, f64)) -> (f64, f64) {
        let (_, value) = self.slot(name);
        let Some(e) = value else { return default };
        if let ExprKind::Tuple(items) = &e.kind
            && let [a, b] = items.as_slice()
            && let (Some(a), Some(b)) = (const_number(a), const_number(b))
        {
            return (a, b);
        }
        self.bad_value(cx, name, ValueKind::Pair, e, None);
        default
    }

    /// `[1, 10, all]` → `[Some(1), Some(10), None]`.
    pub fn shots(
        &self,
        cx: &mut Checker,
        name: &str,
        default: &[Option<usize>],
    ) -> Vec<Option<usize>> {
        let (_, value) = self.slot(name);
        let Some(e) = value else {
            return default.to_vec();
        };
        let parsed = match &e.kind {
            ExprKind::List(items) if !items.is_empty() => items
                .iter()
                .map(|it| match (&it.kind, const_number(it)) {
                    (ExprKind::Name(n), _) if n.name == "all" => Some(None),
                    (_, Some(v)) if v >= 1.0 && v.fract() == 0.0 && v < 1e9 => {
                        Some(Some(v as usize))
                    }
                    _ => None,
                })
                .collect::<Option<Vec<_>>>(),
            _ => None,
        };
        parsed.unwrap_or_else(|| {
            self.bad_value(cx, name, ValueKind::Shots, e, None);
            default.to_vec()
        })
    }

    pub fn name(&self, cx: &mut Checker, name: &str) -> Option<(String, Span)> {
        let (_, value) = self.slot(name);
        let e = value?;
        match &e.kind {
            ExprKind::Name(n) => Some((n.name.clone(), n.span)),
            _ => {
                self.bad_value(cx, name, ValueKind::Name, e, None);
                None
            }
        }
    }

    fn bad_value(
        &self,
        cx: &mut Checker,
        name: &str,
        kind: ValueKind,
        e: &Expr,
        found: Option<f64>,
    ) {
        let found = match found {
            Some(v) => format!("{v}"),
            None => show(e),
        };
        let what = format!("`{name}` of `{}`", self.sig.name);
        if name == "step_size" {
            cx.error(CheckError::BadStepSize {
                sampler: self.sig.name.into(),
                value: found,
                span: e.span,
                help: Some(format!(
                    "typical values: {}",
                    if self.sig.name == "sgld" {
                        "`step_size = 2.0` (data space)"
                    } else {
                        "0.1 (posterior) to 0.4 (prior)"
                    }
                )),
            });
            return;
        }
        cx.error(CheckError::InvalidValue {
            what,
            expected: kind.describe().into(),
            span: e.span,
            found,
            help: None,
        });
    }
}

fn number_fits(kind: ValueKind, v: f64) -> bool {
    v.is_finite()
        && match kind {
            ValueKind::Count => v >= 1.0,
            ValueKind::Natural | ValueKind::NonNegative => v >= 0.0,
            ValueKind::Positive => v > 0.0,
            ValueKind::Probability => (0.0..=1.0).contains(&v),
            ValueKind::Pair | ValueKind::Shots | ValueKind::Name => false,
        }
}

/// Evaluates a constant numeric expression (`0.3`, `-1`, `2 * 128`, `1 / 255`); `None` otherwise.
pub(crate) fn const_number(e: &Expr) -> Option<f64> {
    match &e.kind {
        ExprKind::Number { value, .. } => Some(*value),
        ExprKind::Unary {
            op: UnaryOp::Neg,
            arg,
        } => const_number(arg).map(|v| -v),
        ExprKind::Binary { op, lhs, rhs } => {
            let (a, b) = (const_number(lhs)?, const_number(rhs)?);
            let v = match op {
                BinOp::Add => a + b,
                BinOp::Sub => a - b,
                BinOp::Mul => a * b,
                BinOp::Div => a / b,
                BinOp::Pow => a.powf(b),
            };
            v.is_finite().then_some(v)
        }
        _ => None,
    }
}

/// A constant integer ≥ `min` (dimensions, widths, sizes), or an error naming `what`.
pub(crate) fn const_usize(e: &Expr, what: &str, min: usize) -> Result<usize, CheckError> {
    match const_number(e) {
        Some(v) if v.fract() == 0.0 && v >= min as f64 && v <= 1e9 => Ok(v as usize),
        Some(v) => Err(CheckError::InvalidValue {
            what: what.to_string(),
            expected: format!("an integer ≥ {min}"),
            span: e.span,
            found: format!("{v}"),
            help: None,
        }),
        None => Err(CheckError::NotConstant {
            what: what.to_string(),
            expected: "integer".into(),
            span: e.span,
        }),
    }
}

/// Short source-like text of a value, for messages (`(0.5, 0.999)`, `[1, 10, all]`, `f(...)`).
pub(crate) fn show(e: &Expr) -> String {
    let list = |items: &[Expr]| items.iter().map(show).collect::<Vec<_>>().join(", ");
    match &e.kind {
        ExprKind::Number { value, .. } => format!("{value}"),
        ExprKind::Name(n) => n.name.clone(),
        ExprKind::Unary { arg, .. } => format!("-{}", show(arg)),
        ExprKind::Binary { op, lhs, rhs } => format!("{} {} {}", show(lhs), op.symbol(), show(rhs)),
        ExprKind::Call(c) => format!("{}(...)", c.callee.name),
        ExprKind::Index { base, index } => format!("{}[{}]", show(base), show(index)),
        ExprKind::Tuple(items) => format!("({})", list(items)),
        ExprKind::List(items) => format!("[{}]", list(items)),
    }
}
