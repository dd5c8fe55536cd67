//! `variables:` and `parameters:` — declarations, their types and shapes.

use super::calls::{const_number, const_usize, show};
use super::{CheckError, Checker, Init, Parameter, Reference, VarType, Variable};
use crate::diag::{did_you_mean, one_of};
use crate::source::Span;
use crate::spec::{Entry, NameMap, Text};
use crate::syntax::{self, ast};

/// Names with a built-in meaning in expressions; a declaration may not take them.
pub(crate) const RESERVED: &[&str] = &[
    "dot",
    "sum",
    "logsumexp",
    "log",
    "exp",
    "softplus",
    "sigmoid",
    "tanh",
    "sq",
    "sqrt",
    "softmax",
    "log_softmax",
    "stats",
    "normal",
    "bernoulli",
    "categorical",
    "uniform",
    "all",
    "observed",
    "in",
    "default",
];

pub(crate) fn check_variables(cx: &mut Checker, vars: &NameMap<Text>) -> Vec<Variable> {
    let mut out: Vec<Variable> = Vec::new();
    for entry in &vars.entries {
        if !check_name(cx, entry) {
            continue;
        }
        let decl = match syntax::parse_var_decl(&entry.value.value, &entry.value.map) {
            Ok(d) => d,
            Err(e) => {
                cx.error(e.into());
                cx.broken(&entry.key.value);
                continue;
            }
        };
        match check_variable(cx, entry, &decl) {
            Some(v) => out.push(v),
            None => cx.broken(&entry.key.value),
        }
    }
    out
}

fn check_variable(cx: &mut Checker, entry: &Entry<Text>, decl: &ast::VarDecl) -> Option<Variable> {
    let name = entry.key.value.clone();
    let ty = resolve_type(cx, &decl.ty)?;
    let observed = decl.observed.is_some();
    let shape = check_dims(cx, &decl.ty, ty, &name, observed)?;
    let invalid =
        |reason: &str, span: Span, label: &str, help: &str| CheckError::InvalidDeclaration {
            name: name.clone(),
            reason: reason.into(),
            span,
            label: label.into(),
            help: Some(help.into()),
        };
    let range = match &decl.range {
        None => None,
        Some(r) if !observed || ty == VarType::Onehot => {
            cx.error(invalid(
                "only observed continuous variables have a data range",
                r.span,
                if observed {
                    "a data range on a onehot variable"
                } else {
                    "a data range on a latent variable"
                },
                "remove `in [...]`; it says what range the data are scaled to",
            ));
            None
        }
        Some(r) => match (const_number(&r.lo), const_number(&r.hi)) {
            (Some(lo), Some(hi)) if lo < hi => Some((lo, hi)),
            _ => {
                cx.error(invalid(
                    "the data range must be two constants with LO < HI",
                    r.span,
                    "not two constants with LO < HI",
                    "e.g. `in [-1, 1]` or `in [0, 1]`",
                ));
                None
            }
        },
    };
    let reference = match (&decl.reference, observed, ty) {
        (Some(r), true, _) => {
            cx.error(invalid(
                "an observed variable has no reference density",
                r.span,
                "a reference density on observed data",
                "remove `~ ...`; its values come from the data",
            ));
            None
        }
        (Some(r), false, VarType::Onehot) => {
            cx.error(invalid(
                "a onehot latent is uniform over its values",
                r.span,
                "a reference density on a onehot latent",
                "remove `~ ...`, or express a non-uniform prior with `log categorical(y | p)` in the model",
            ));
            None
        }
        (Some(r), false, _) => check_reference(cx, r),
        (None, _, _) => None,
    };
    Some(Variable {
        name,
        observed,
        ty,
        shape,
        range,
        reference,
        span: decl.span,
        name_span: entry.key.span,
    })
}

fn check_reference(cx: &mut Checker, r: &ast::Call) -> Option<Reference> {
    if r.callee.name != "normal" {
        cx.error(CheckError::UnknownCall {
            what: "reference density".into(),
            name: r.callee.name.clone(),
            span: r.callee.span,
            help: Some("the reference density of a latent is `normal(MEAN, STD)`".into()),
        });
        return None;
    }
    let args: Vec<&ast::Expr> = r.positional().collect();
    if args.len() != 2 || r.args.len() != 2 || r.given.is_some() {
        cx.error(CheckError::WrongArity {
            callee: "normal".into(),
            expected: "2 arguments (mean, std)".into(),
            found: r.args.len(),
            span: r.span,
            help: Some("e.g. `~ normal(0, 1)`".into()),
        });
        return None;
    }
    match (const_number(args[0]), const_number(args[1])) {
        (Some(mean), Some(std)) if std > 0.0 => Some(Reference::Normal { mean, std }),
        (Some(_), Some(std)) => {
            cx.error(CheckError::InvalidValue {
                what: "the std of the reference density".into(),
                expected: "a number > 0".into(),
                span: args[1].span,
                found: format!("{std}"),
                help: None,
            });
            None
        }
        _ => {
            let bad = if const_number(args[0]).is_none() {
                args[0]
            } else {
                args[1]
            };
            cx.error(CheckError::NotConstant {
                what: "a reference density argument".into(),
                expected: "number".into(),
                span: bad.span,
            });
            None
        }
    }
}

pub(crate) fn check_parameters(
    cx: &mut Checker,
    params: &NameMap<Text>,
    vars: &[Variable],
) -> Vec<Parameter> {
    let mut out: Vec<Parameter> = Vec::new();
    for entry in &params.entries {
        if !check_name(cx, entry) {
            continue;
        }
        match check_parameter(cx, entry, vars) {
            Some(p) => out.push(p),
            None => cx.broken(&entry.key.value),
        }
    }
    out
}

fn check_parameter(cx: &mut Checker, entry: &Entry<Text>, vars: &[Variable]) -> Option<Parameter> {
    if let Some(v) = vars.iter().find(|v| v.name == entry.key.value) {
        cx.error(CheckError::DuplicateName {
            name: v.name.clone(),
            first: v.name_span,
            second: entry.key.span,
        });
        return None;
    }
    let decl = match syntax::parse_param_decl(&entry.value.value, &entry.value.map) {
        Ok(d) => d,
        Err(e) => {
            cx.error(e.into());
            return None;
        }
    };
    let ty = resolve_type(cx, &decl.ty)?;
    if ty != VarType::Real {
        cx.error(CheckError::InvalidDeclaration {
            name: entry.key.value.clone(),
            reason: "a parameter is a `real` tensor".into(),
            span: decl.ty.name.span,
            label: format!("`{}`, not `real`", decl.ty.name.name),
            help: Some("write e.g. `real[10, 128] = normal(0, 1)`".into()),
        });
        return None;
    }
    let shape = check_dims(cx, &decl.ty, ty, &entry.key.value, false)?;
    let init = match &decl.init {
        None => Init::Constant(0.0),
        Some(e) => match check_init(e) {
            Some(i) => i,
            None => {
                cx.error(CheckError::InvalidValue {
                    what: format!("the initial value of `{}`", entry.key.value),
                    expected: "a number, `normal(MEAN, STD)` or `uniform(LO, HI)`".into(),
                    span: e.span,
                    found: show(e),
                    help: Some("e.g. `= normal(0, 1)` or `= 0`".into()),
                });
                return None;
            }
        },
    };
    Some(Parameter {
        name: entry.key.value.clone(),
        shape,
        init,
        span: decl.span,
        name_span: entry.key.span,
    })
}

fn check_init(e: &ast::Expr) -> Option<Init> {
    if let Some(v) = const_number(e) {
        return Some(Init::Constant(v));
    }
    let ast::ExprKind::Call(c) = &e.kind else {
        return None;
    };
    let args: Vec<f64> = c.positional().map(const_number).collect::<Option<_>>()?;
    if c.args.len() != 2 || args.len() != 2 || c.given.is_some() {
        return None;
    }
    match c.callee.name.as_str() {
        "normal" if args[1] > 0.0 => Some(Init::Normal {
            mean: args[0],
            std: args[1],
        }),
        "uniform" if args[0] < args[1] => Some(Init::Uniform {
            lo: args[0],
            hi: args[1],
        }),
        _ => None,
    }
}

/// Reports a reserved name; true when the name may be declared.
fn check_name(cx: &mut Checker, entry: &Entry<Text>) -> bool {
    let name = &entry.key.value;
    if RESERVED.contains(&name.as_str()) {
        cx.error(CheckError::ReservedName {
            name: name.clone(),
            span: entry.key.span,
        });
        return false;
    }
    true
}

fn resolve_type(cx: &mut Checker, ty: &ast::TypeExpr) -> Option<VarType> {
    if let Some((_, t)) = VarType::ALL.iter().find(|(n, _)| *n == ty.name.name) {
        return Some(*t);
    }
    let names: Vec<&str> = VarType::ALL.iter().map(|(n, _)| *n).collect();
    cx.error(CheckError::UnknownType {
        name: ty.name.name.clone(),
        span: ty.name.span,
        help: did_you_mean(&ty.name.name, names.iter().copied())
            .or_else(|| Some(format!("types: {}", one_of(&names)))),
    });
    None
}

/// The declared dimensions. An observed variable may leave them out (`observed image`): they are
/// then taken from the data set (empty here, filled in by the data check).
fn check_dims(
    cx: &mut Checker,
    ty: &ast::TypeExpr,
    vt: VarType,
    name: &str,
    observed: bool,
) -> Option<Vec<usize>> {
    if observed && ty.dims.is_empty() {
        return Some(Vec::new());
    }
    let mut dims = Vec::new();
    for d in &ty.dims {
        dims.push(cx.ok(const_usize(d, "a dimension", 1))?);
    }
    let found = match dims.len() {
        1 => "1 dimension".to_string(),
        n => format!("{n} dimensions"),
    };
    let invalid = |reason: &str, label: &str, help: &str| CheckError::InvalidDeclaration {
        name: name.to_string(),
        reason: reason.into(),
        span: ty.span,
        label: label.into(),
        help: Some(help.into()),
    };
    let err = match vt {
        VarType::Real if dims.is_empty() => Some(invalid(
            "`real` needs at least one dimension",
            "no dimensions",
            "e.g. `real[16]`",
        )),
        VarType::Image if dims.len() != 3 => Some(invalid(
            "`image` has three dimensions: channels, height, width",
            &found,
            "e.g. `image[1, 28, 28]`",
        )),
        VarType::Onehot if dims.len() != 1 => Some(invalid(
            "`onehot` has one dimension: the number of values",
            &found,
            "e.g. `onehot[10]`",
        )),
        VarType::Onehot if dims[0] < 2 => Some(invalid(
            "a onehot variable needs at least 2 values",
            "only 1 value",
            "e.g. `onehot[10]`",
        )),
        _ => None,
    };
    match err {
        Some(e) => {
            cx.error(e);
            None
        }
        None => Some(dims),
    }
}
