//! `data:` — the data source, and how observed variables bind to it.

use super::{BuiltinData, CheckError, Checker, DataConfig, DataSource, Scope, Split, VarType};
use crate::diag::did_you_mean;
use crate::source::Span;
use crate::spec::{DataSection, Spanned};

pub(crate) fn check_data(
    cx: &mut Checker,
    d: &DataSection,
    scope: &mut Scope,
    variables_key: Option<Span>,
) -> Option<DataConfig> {
    let default = DataSource::Builtin {
        set: BuiltinData::Digits,
        split: Split::Train,
    };
    let train = d.train.as_ref().map_or(Some(default), |s| source(cx, s));
    let test = d.test.as_ref().map(|s| source(cx, s));
    let labels_per_class = match &d.labels_per_class {
        Some(n) if n.value < 1 => {
            cx.error(CheckError::InvalidValue {
                what: "`data.labels_per_class`".into(),
                expected: "an integer ≥ 1".into(),
                span: n.span,
                found: n.value.to_string(),
                help: Some("leave it out to keep every label".into()),
            });
            None
        }
        Some(n) => Some(n.value as usize),
        None => None,
    };
    let seed = nonnegative(cx, d.seed.as_ref(), "`data.seed`");
    check_observed(cx, d, scope, train.as_ref(), variables_key);
    Some(DataConfig {
        train: train?,
        test: match test {
            Some(t) => Some(t?),
            None => None,
        },
        labels_per_class,
        seed,
    })
}

pub(crate) fn nonnegative(cx: &mut Checker, v: Option<&Spanned<i64>>, what: &str) -> u64 {
    match v {
        Some(s) if s.value < 0 => {
            cx.error(CheckError::InvalidValue {
                what: what.into(),
                expected: "an integer ≥ 0".into(),
                span: s.span,
                found: s.value.to_string(),
                help: None,
            });
            0
        }
        Some(s) => s.value as u64,
        None => 0,
    }
}

/// `digits`, `mnist:test`, `fashion-mnist`, `idx:PATH`, `csv:PATH`, `npy:PATH`.
fn source(cx: &mut Checker, s: &Spanned<String>) -> Option<DataSource> {
    let text = s.value.trim();
    if let Some((kind, path)) = text.split_once(':') {
        let reader = match kind {
            "idx" => Some(DataSource::Idx as fn(String) -> DataSource),
            "csv" => Some(DataSource::Csv as fn(String) -> DataSource),
            "npy" => Some(DataSource::Npy as fn(String) -> DataSource),
            _ => None,
        };
        if let Some(make) = reader {
            if path.trim().is_empty() {
                cx.error(CheckError::InvalidValue {
                    what: format!("the `{kind}:` reader"),
                    expected: "a file path".into(),
                    span: s.span,
                    found: "nothing after the colon".into(),
                    help: Some(format!("e.g. `{kind}:data/train.{kind}`")),
                });
                return None;
            }
            return Some(make(path.trim().to_string()));
        }
    }
    let (name, split) = match text.split_once(':') {
        Some((n, "train")) => (n, Split::Train),
        Some((n, "test")) => (n, Split::Test),
        Some((n, other)) => {
            cx.error(CheckError::InvalidValue {
                what: format!("the split of `{n}`"),
                expected: "`train` or `test`".into(),
                span: s.span,
                found: format!("`{other}`"),
                help: did_you_mean(other, ["train", "test"]),
            });
            return None;
        }
        None => (text, Split::Train),
    };
    if let Some((_, set)) = BuiltinData::ALL.iter().find(|(n, _)| *n == name) {
        return Some(DataSource::Builtin { set: *set, split });
    }
    let mut names: Vec<&str> = BuiltinData::ALL.iter().map(|(n, _)| *n).collect();
    names.extend(["idx:", "csv:", "npy:"]);
    cx.error(CheckError::UnknownData {
        name: name.to_string(),
        span: s.span,
        help: did_you_mean(name, names.iter().copied())
            .or_else(|| Some("built-in: `digits`, `mnist`, `fashion-mnist` (optionally `:train`/`:test`); files: `idx:PATH`, `csv:PATH`, `npy:PATH`".into())),
    });
    None
}

fn check_observed(
    cx: &mut Checker,
    d: &DataSection,
    scope: &mut Scope,
    train: Option<&DataSource>,
    variables_key: Option<Span>,
) {
    let features: Vec<_> = scope
        .variables
        .iter()
        .filter(|v| v.observed && v.is_continuous())
        .collect();
    let labels: Vec<_> = scope
        .variables
        .iter()
        .filter(|v| v.observed && v.is_discrete())
        .collect();
    if features.is_empty() && cx.broken.is_empty() {
        cx.error(CheckError::ObservedVariables {
            what: "no observed variable receives the data".into(),
            span: variables_key.unwrap_or(Span::point(0)),
            label: "declare one here".into(),
            help: Some("add e.g. `x: observed image[1, 8, 8] in [-1, 1]` to `variables:`".into()),
        });
    }
    for extra in features.iter().skip(1).chain(labels.iter().skip(1)) {
        cx.error(CheckError::ObservedVariables {
            what: format!("`{}` is a second observed {} variable", extra.name, if extra.is_discrete() { "discrete" } else { "continuous" }),
            span: extra.span,
            label: "second one".into(),
            help: Some("the data bind one continuous variable (features) and at most one onehot variable (labels)".into()),
        });
    }
    if let Some(n) = &d.labels_per_class
        && labels.is_empty()
    {
        cx.error(CheckError::InvalidValue {
            what: "`data.labels_per_class`".into(),
            expected: "an observed onehot variable to hold the labels".into(),
            span: n.span,
            found: "no observed onehot variable".into(),
            help: Some("declare `y: observed onehot[10]`".into()),
        });
    }
    let data_span = d.train.as_ref().map(|s| s.span);
    let Some(DataSource::Builtin { set, .. }) = train else {
        // Without a shape the variable cannot be used: drop it, and do not report its uses again.
        let (shapeless, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut scope.variables)
            .into_iter()
            .partition(|v| v.observed && v.shape.is_empty());
        scope.variables = rest;
        for v in shapeless {
            cx.error(CheckError::InvalidDeclaration {
                name: v.name.clone(),
                reason: "its shape can only be left out for a built-in data set".into(),
                span: v.span,
                label: "no dimensions".into(),
                help: Some("data read from files have no shape before the run: write the dimensions, e.g. `image[1, 28, 28]`".into()),
            });
            cx.broken(&v.name);
        }
        return;
    };
    let [c, h, w] = set.image_shape();
    // Shapes left out in the declaration come from the data set.
    for v in scope
        .variables
        .iter_mut()
        .filter(|v| v.observed && v.shape.is_empty())
    {
        v.shape = match v.ty {
            VarType::Image => vec![c, h, w],
            VarType::Real => vec![c * h * w],
            VarType::Onehot => vec![set.classes()],
        };
    }
    let features: Vec<_> = scope
        .variables
        .iter()
        .filter(|v| v.observed && v.is_continuous())
        .collect();
    let labels: Vec<_> = scope
        .variables
        .iter()
        .filter(|v| v.observed && v.is_discrete())
        .collect();
    if let Some(x) = features.first() {
        let fits = match x.ty {
            VarType::Image => x.shape == [c, h, w],
            _ => x.shape == [c * h * w],
        };
        if !fits {
            let declared = super::networks::shape_text(&x.shape);
            cx.error(CheckError::DataShapeMismatch {
                var: x.name.clone(),
                data: format!("`{}` images of shape [{c}, {h}, {w}]", set.name()),
                declared,
                decl_span: x.span,
                data_span,
                help: Some(format!(
                    "declare `{}: observed image[{c}, {h}, {w}] in [-1, 1]` or `real[{}]`{}",
                    x.name,
                    c * h * w,
                    if data_span.is_none() {
                        " (no `data.train` given: the default is the 8×8 `digits`)"
                    } else {
                        ""
                    }
                )),
            });
        }
    }
    if let Some(y) = labels.first()
        && y.shape[0] != set.classes()
    {
        cx.error(CheckError::DataShapeMismatch {
            var: y.name.clone(),
            data: format!("`{}` labels with {} classes", set.name(), set.classes()),
            declared: format!("onehot[{}]", y.shape[0]),
            decl_span: y.span,
            data_span,
            help: Some(format!(
                "declare `{}: observed onehot[{}]`",
                y.name,
                set.classes()
            )),
        });
    }
}
