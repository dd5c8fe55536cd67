//! The named functions of a lowered program (a contract with the derivation passes and the runtime).
//! With x the observed features, z the continuous latent(s) and y a onehot symbol:
//!
//! - latent-EBM models (`prior` and/or `likelihood`): `prior_log_density(z)`, and when the prior
//!   couples a symbol y also `prior_table(z)`, `classifier(z)` and, for observed labels,
//!   `prior_log_density_labelled(z, y)`; `log_likelihood(x, z)`, `generator(z)`,
//!   `posterior_log_density(x, z)`;
//! - `encoder(x)` when `model.inference` names one;
//! - energy models: `energy(x, z)`, and with a symbol y also `energy_table(x, z)` and, for observed
//!   labels, `energy_labelled(x, z, y)`.
//!
//! A function's arguments are exactly the variables its outputs read, ordered features, continuous
//! latents, symbols (then spec order).

use super::expr::{Cx, Operand, Val};
use super::{net, ops};
use crate::check::print::expr_text;
use crate::check::{Dist, Reference, Shape, TExpr, TExprKind, VarId};
use crate::ir::print::reachable;
use crate::ir::{NodeId, Op, Unary};

pub(super) fn lower_all(cx: &mut Cx) {
    let prior = latent_prior(cx);
    likelihood(cx, prior);
    encoder(cx);
    energy(cx);
}

/// `prior_log_density` (and the symbol functions); returns the marginal log-prior node.
fn latent_prior(cx: &mut Cx) -> Option<NodeId> {
    let spec = cx.spec;
    if spec.model.prior.is_none() && spec.model.likelihood.is_none() {
        return None;
    }
    let (log_p0, p0_notes) = log_reference(cx);
    let Some(term) = &spec.model.prior else {
        let node = log_p0.map_or_else(|| cx.b.constant(0.0), |v| v.node);
        let mut notes =
            vec!["log p(z) = log p0(z): no prior term, the reference density alone".to_string()];
        notes.extend(p0_notes);
        emit(cx, "prior_log_density", vec![("log_density", node)], notes);
        return Some(node);
    };
    let text = expr_text(spec, term);
    if let Some(y) = symbol_of(cx, term) {
        return Some(symbol_prior(cx, term, y, log_p0, p0_notes));
    }
    let f = cx.term(term, None);
    let node = add_opt(cx, f, log_p0).node;
    let mut notes = vec![
        "log p(z) up to its normalizing constant: prior(z) + log p0(z)".to_string(),
        format!("prior(z) = {text}"),
    ];
    notes.extend(p0_notes);
    emit(cx, "prior_log_density", vec![("log_density", node)], notes);
    Some(node)
}

/// A prior that couples a symbol y: the per-value table, its exact marginal, the classifier and
/// (observed labels) the labelled joint.
fn symbol_prior(
    cx: &mut Cx,
    term: &TExpr,
    y: VarId,
    log_p0: Option<Val>,
    p0_notes: Vec<String>,
) -> NodeId {
    let spec = cx.spec;
    let (yname, k) = (spec.variable(y).name.clone(), cx.cardinality(y));
    let log_k = (k as f64).ln();
    let table = symbol_table(cx, term, y);

    let lse = Val {
        node: ops::logsumexp(&mut cx.b, table, 0),
        enumerated: false,
    };
    let centred = cx.add_const(lse, -log_k);
    let marginal = add_opt(cx, centred, log_p0).node;
    let mut notes = vec![
        format!(
            "symbol marginalization: `{yname}` summed out exactly: logsumexp over its {k} values of prior_table, minus log {k} (`{yname}` uniform a priori), plus log p0"
        ),
        format!("log p(z) up to its normalizing constant, p(z) = Σ_{yname} exp(prior) p0(z) / {k}"),
    ];
    notes.extend(p0_notes.iter().cloned());
    emit(
        cx,
        "prior_log_density",
        vec![("log_density", marginal)],
        notes,
    );

    let text = expr_text(spec, term);
    let notes = vec![format!(
        "per-value log tilt: column k is prior = {text} with `{yname}` = e_k ({k} values, enumerated on a new axis)"
    )];
    emit(cx, "prior_table", vec![("table", table)], notes);

    let probs = ops::softmax(&mut cx.b, table, 0);
    let notes = vec![format!(
        "p({yname} | z) = softmax of prior_table over the {k} values of `{yname}` (derived by symbol marginalization)"
    )];
    emit(cx, "classifier", vec![("probs", probs)], notes);

    if spec.variable(y).observed {
        let joint = labelled(cx, y, table, -log_k);
        let node = add_opt(cx, joint, log_p0).node;
        let mut notes = vec![
            format!(
                "log p({yname}, z) with the label given: dot({yname}, prior_table) − log {k} + log p0"
            ),
            format!("prior_log_density_labelled − prior_log_density = log p({yname} | z)"),
        ];
        notes.extend(p0_notes);
        emit(
            cx,
            "prior_log_density_labelled",
            vec![("log_density", node)],
            notes,
        );
    }
    marginal
}

/// `dot(y, table) + c`: the table entry of the given label.
fn labelled(cx: &mut Cx, y: VarId, table: NodeId, c: f64) -> Val {
    let y_in = cx.input(y);
    let picked = cx.b.mul(y_in, table);
    let node = cx.b.sum(picked, vec![0]);
    cx.add_const(
        Val {
            node,
            enumerated: false,
        },
        c,
    )
}

/// `log_likelihood`, `generator` and `posterior_log_density`.
fn likelihood(cx: &mut Cx, prior: Option<NodeId>) {
    let spec = cx.spec;
    let Some(term) = &spec.model.likelihood else {
        return;
    };
    assert!(
        symbol_of(cx, term).is_none(),
        "internal error: not supported: a likelihood that depends on a onehot variable"
    );
    let text = expr_text(spec, term);
    let ll = cx.term(term, None).node;
    emit(
        cx,
        "log_likelihood",
        vec![("log_likelihood", ll)],
        vec![format!("log p(x | z) = {text}, summed over the event axes")],
    );

    let (mean, what) = generator_mean(cx, term);
    emit(
        cx,
        "generator",
        vec![("mean", mean)],
        vec![format!(
            "the mean of p(x | z): {what}, for samples and reconstructions"
        )],
    );

    if let Some(p) = prior {
        let node = cx.b.add(p, ll);
        let notes = vec![
            "log p(z | x) up to a constant = prior_log_density(z) + log_likelihood(x, z): the target of posterior Langevin".to_string(),
        ];
        emit(
            cx,
            "posterior_log_density",
            vec![("log_density", node)],
            notes,
        );
    }
}

/// The first parameter of the likelihood's density, as a mean.
fn generator_mean(cx: &mut Cx, term: &TExpr) -> (NodeId, &'static str) {
    let TExprKind::LogDensity { dist, params, .. } = &term.kind else {
        panic!("internal error: the likelihood is a density");
    };
    let first = cx.value(&params[0]);
    match dist {
        Dist::Normal => (first, "the normal's mean"),
        Dist::Bernoulli => (first, "the Bernoulli probability"),
        Dist::BernoulliLogits => (
            cx.b.unary(Unary::Sigmoid, first),
            "sigmoid of the Bernoulli logits",
        ),
        Dist::Categorical => panic!("internal error: not supported: a categorical likelihood"),
    }
}

/// `encoder(x)`: the head's 2D outputs reshaped to `[2, D]`; row 0 is the mean, row 1 the log-std.
fn encoder(cx: &mut Cx) {
    let spec = cx.spec;
    let Some(id) = spec.model.inference else {
        return;
    };
    let net = spec.network(id);
    let head = net
        .head
        .as_ref()
        .expect("internal error: the inference network has a head");
    let latent = spec.variable(head.latent);
    let x = cx.input(net.input);
    let out = net::apply(&mut cx.b, net, x);
    let mut pair = vec![2];
    pair.extend(&latent.shape);
    let rows = cx.b.reshape(out, pair);
    let mean = ops::select(&mut cx.b, rows, 0, 0);
    let log_std = ops::select(&mut cx.b, rows, 0, 1);
    let d: usize = latent.shape.iter().product();
    let notes = vec![format!(
        "amortized inference q({} | {}) = N(mean, exp(log_std)²): network `{}`'s {} outputs, the first {d} the mean, the last {d} the log-std",
        latent.name,
        spec.variable(net.input).name,
        net.name,
        2 * d
    )];
    emit(
        cx,
        "encoder",
        vec![("mean", mean), ("log_std", log_std)],
        notes,
    );
}

/// `energy` (and, with a symbol, `energy_table` and `energy_labelled`).
fn energy(cx: &mut Cx) {
    let spec = cx.spec;
    let Some(term) = &spec.model.energy else {
        return;
    };
    let text = expr_text(spec, term);
    let Some(y) = symbol_of(cx, term) else {
        let e = cx.term(term, None).node;
        emit(
            cx,
            "energy",
            vec![("energy", e)],
            vec![format!("E = {text} (lower is more likely)")],
        );
        return;
    };
    let (yname, k) = (spec.variable(y).name.clone(), cx.cardinality(y));
    let log_k = (k as f64).ln();
    let table = symbol_table(cx, term, y);
    let notes = vec![format!(
        "E with `{yname}` = e_k in column k ({k} values, enumerated on a new axis); E = {text}"
    )];
    emit(cx, "energy_table", vec![("table", table)], notes);

    // E(x, z) = −log Σ_y exp(−E(x, z, y)) / K
    let neg = cx.b.neg(table);
    let lse = ops::logsumexp(&mut cx.b, neg, 0);
    let flipped = Val {
        node: cx.b.neg(lse),
        enumerated: false,
    };
    let marginal = cx.add_const(flipped, log_k).node;
    let notes = vec![format!(
        "symbol marginalization: `{yname}` summed out exactly: E = −logsumexp over its {k} values of −energy_table, plus log {k} (`{yname}` uniform)"
    )];
    emit(cx, "energy", vec![("energy", marginal)], notes);

    if spec.variable(y).observed {
        let node = labelled(cx, y, table, log_k).node;
        let notes = vec![format!(
            "E with the label given: dot({yname}, energy_table) + log {k}"
        )];
        emit(cx, "energy_labelled", vec![("energy", node)], notes);
    }
}

/// The term lowered with y enumerated, as a table `[B, K]`.
fn symbol_table(cx: &mut Cx, term: &TExpr, y: VarId) -> NodeId {
    let k = cx.cardinality(y);
    let v = cx.term(term, Some(y));
    let shape = cx.b.shape(v.node).clone();
    if v.enumerated {
        assert_eq!(
            shape.dims,
            [k],
            "internal error: a symbol table is not [B, {k}]"
        );
        return v.node;
    }
    // The term mentions y but does not vary with it (e.g. a constant categorical): K equal entries.
    ops::broadcast_to(
        &mut cx.b,
        v.node,
        Shape {
            batched: shape.batched,
            dims: vec![k],
        },
    )
}

/// The onehot variable a term depends on, if any.
fn symbol_of(cx: &Cx, term: &TExpr) -> Option<VarId> {
    let symbols: Vec<VarId> = term
        .variables()
        .into_iter()
        .filter(|v| cx.spec.variable(*v).is_discrete())
        .collect();
    assert!(
        symbols.len() <= 1,
        "internal error: not supported: a term over more than one onehot variable"
    );
    symbols.first().copied()
}

/// Σ over the continuous latents of log p0 (normal references; a flat one contributes 0).
fn log_reference(cx: &mut Cx) -> (Option<Val>, Vec<String>) {
    let (mut total, mut notes) = (None, Vec::new());
    for (i, v) in cx.spec.variables.iter().enumerate() {
        if v.observed || v.is_discrete() {
            continue;
        }
        let Some(Reference::Normal { mean, std }) = v.reference else {
            notes.push(format!("p0({}) is flat", v.name));
            continue;
        };
        let x = Val {
            node: cx.input(VarId(i)),
            enumerated: false,
        };
        let lp = cx.normal(x, Operand::Const(mean), Operand::Const(std));
        total = Some(add_opt(cx, lp, total));
        notes.push(format!("p0({}) = N({mean}, {std}²) per element", v.name));
    }
    (total, notes)
}

fn add_opt(cx: &mut Cx, a: Val, b: Option<Val>) -> Val {
    match b {
        Some(b) => cx.binary(crate::ir::Binary::Add, a, b),
        None => a,
    }
}

/// Creates a function whose arguments are the Input nodes its outputs reach.
fn emit(cx: &mut Cx, name: &str, outputs: Vec<(&str, NodeId)>, notes: Vec<String>) {
    let program = &*cx.b.program;
    let mut args: Vec<(String, NodeId)> = reachable(program, outputs.iter().map(|(_, id)| *id))
        .into_iter()
        .filter_map(|id| match &program.node(id).op {
            Op::Input(n) => Some((n.clone(), id)),
            _ => None,
        })
        .collect();
    args.sort_by_key(|(n, _)| arg_order(cx, n));
    let outputs = outputs
        .into_iter()
        .map(|(n, id)| (n.to_string(), id))
        .collect();
    cx.b.function(name, args, outputs, notes);
}

/// Features first, then continuous latents, then symbols; spec order within each.
fn arg_order(cx: &Cx, name: &str) -> (u8, usize) {
    let (i, v) = cx
        .spec
        .variables
        .iter()
        .enumerate()
        .find(|(_, v)| v.name == name)
        .expect("internal error: an input names a variable");
    let group = match (v.is_discrete(), v.observed) {
        (true, _) => 2,
        (false, true) => 0,
        (false, false) => 1,
    };
    (group, i)
}
