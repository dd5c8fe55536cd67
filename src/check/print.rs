//! A canonical text form of a [`CheckedSpec`]: every resolved kind, shape and layer, no spans.
//! `ebmc check --show` prints it and the snapshot tests store it.

use super::{
    CheckedSpec, DataSource, Evaluation, IndexBy, Init, Layer, ReduceOp, ReduceOver, TExpr,
    TExprKind,
};
use std::fmt::Write;

pub fn summary(spec: &CheckedSpec) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "model {}", spec.name);
    let source = |s: &DataSource| match s {
        DataSource::Builtin { set, split } => format!(
            "{}:{}",
            set.name(),
            if *split == super::Split::Train {
                "train"
            } else {
                "test"
            }
        ),
        DataSource::Idx(p) => format!("idx:{p}"),
        DataSource::Csv(p) => format!("csv:{p}"),
        DataSource::Npy(p) => format!("npy:{p}"),
    };
    let _ = write!(o, "data train={}", source(&spec.data.train));
    if let Some(t) = &spec.data.test {
        let _ = write!(o, " test={}", source(t));
    }
    if let Some(n) = spec.data.labels_per_class {
        let _ = write!(o, " labels_per_class={n}");
    }
    let _ = writeln!(o, " seed={}", spec.data.seed);
    for v in &spec.variables {
        let _ = write!(
            o,
            "variable {}: {} {:?}{}",
            v.name,
            v.kind_name(),
            v.ty,
            super::networks::shape_text(&v.shape)
        );
        if let Some((lo, hi)) = v.range {
            let _ = write!(o, " in [{lo}, {hi}]");
        }
        match &v.reference {
            Some(super::Reference::Normal { mean, std }) => {
                let _ = write!(o, " ~ normal({mean}, {std})");
            }
            None if !v.observed && v.is_continuous() => o.push_str(" ~ flat"),
            None => {}
        }
        o.push('\n');
    }
    for p in &spec.parameters {
        let init = match p.init {
            Init::Constant(c) => format!("{c}"),
            Init::Normal { mean, std } => format!("normal({mean}, {std})"),
            Init::Uniform { lo, hi } => format!("uniform({lo}, {hi})"),
        };
        let _ = writeln!(
            o,
            "parameter {}: {} = {init}",
            p.name,
            super::networks::shape_text(&p.shape)
        );
    }
    for n in &spec.networks {
        let input = &spec.variable(n.input).name;
        let _ = write!(
            o,
            "network {}({input}: {}) -> {}",
            n.name,
            super::networks::shape_text(&n.input_shape),
            super::networks::shape_text(&n.output_shape)
        );
        if let Some(h) = &n.head {
            let _ = write!(o, " head {:?}({})", h.family, spec.variable(h.latent).name);
        }
        o.push('\n');
        for (i, l) in n.layers.iter().enumerate() {
            let _ = writeln!(o, "  layer{i} {}", layer_text(l));
        }
    }
    let term = |o: &mut String, name: &str, t: &Option<TExpr>| {
        if let Some(t) = t {
            let _ = writeln!(o, "{name} {} : {}", expr_text(spec, t), t.shape);
        }
    };
    term(&mut o, "prior", &spec.model.prior);
    term(&mut o, "likelihood", &spec.model.likelihood);
    term(&mut o, "energy", &spec.model.energy);
    if let Some(q) = spec.model.inference {
        let _ = writeln!(o, "inference {}", spec.network(q).name);
    }
    let l = &spec.learn;
    let _ = writeln!(
        o,
        "learn {} iterations={} batch={} seed={}",
        l.algorithm.name(),
        l.iterations,
        l.batch,
        l.seed
    );
    for (name, s) in [
        ("prior_sampler", &l.prior_sampler),
        ("posterior_sampler", &l.posterior_sampler),
    ] {
        if let Some(s) = s {
            let _ = writeln!(
                o,
                "  {name} langevin steps={} step_size={} noise={} persistent={}",
                s.steps, s.step_size, s.noise, s.persistent
            );
        }
    }
    if let Some(s) = &l.sampler {
        let _ = writeln!(
            o,
            "  sampler sgld steps={} step_size={} noise={} buffer={} reinit={} init=({}, {})",
            s.steps, s.step_size, s.noise, s.buffer, s.reinit, s.init.0, s.init.1
        );
    }
    for u in &l.optimizers {
        let mut targets: Vec<&str> = u
            .networks
            .iter()
            .map(|n| spec.network(*n).name.as_str())
            .collect();
        targets.extend(
            u.parameters
                .iter()
                .map(|p| spec.parameter(*p).name.as_str()),
        );
        let _ = writeln!(
            o,
            "  optimizer {} [{}] {}",
            u.key,
            targets.join(", "),
            u.optimizer
        );
    }
    let _ = writeln!(
        o,
        "  labeled_weight={} mi_weight={} data_noise={} energy_reg={}",
        l.labeled_weight, l.mi_weight, l.data_noise, l.energy_reg
    );
    for e in &spec.evaluate {
        let text = match e {
            Evaluation::Samples { n } => format!("samples(n = {n})"),
            Evaluation::ReconstructionMse { test_size } => {
                format!("reconstruction_mse{}", test_size_args("", *test_size))
            }
            Evaluation::AnomalyAuprc { heldout, test_size } => format!(
                "anomaly_auprc{}",
                test_size_args(&format!("heldout = {heldout}"), *test_size)
            ),
            Evaluation::FewLabel { shots, repeats } => {
                let s: Vec<String> = shots
                    .iter()
                    .map(|s| s.map_or("all".into(), |n| n.to_string()))
                    .collect();
                format!("few_label(shots = [{}], repeats = {repeats})", s.join(", "))
            }
            Evaluation::OodAuroc { against } => format!("ood_auroc(against = {})", against.name()),
            Evaluation::LatentKlMi => "latent_kl_mi".into(),
            Evaluation::Accuracy => "accuracy".into(),
        };
        let _ = writeln!(o, "evaluate {text}");
    }
    o
}

/// `(args)` of an evaluation with an optional `test_size`; empty when there are none.
fn test_size_args(args: &str, test_size: Option<usize>) -> String {
    let size = test_size.map(|n| format!("test_size = {n}"));
    let all: Vec<&str> = [Some(args), size.as_deref()]
        .into_iter()
        .flatten()
        .filter(|a| !a.is_empty())
        .collect();
    if all.is_empty() {
        String::new()
    } else {
        format!("({})", all.join(", "))
    }
}

pub fn layer_text(l: &Layer) -> String {
    match l {
        Layer::Linear { inputs, outputs } => format!("linear {inputs} -> {outputs}"),
        Layer::Conv2d {
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
        } => {
            format!(
                "conv2d {in_channels} -> {out_channels} kernel={kernel} stride={stride} padding={padding}"
            )
        }
        Layer::ConvTranspose2d {
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
        } => {
            format!(
                "conv_transpose2d {in_channels} -> {out_channels} kernel={kernel} stride={stride} padding={padding}"
            )
        }
        Layer::Activation(a) => format!("{a}"),
        Layer::Flatten => "flatten".into(),
        Layer::Unflatten { channels } => format!("unflatten [{channels}, 1, 1]"),
        Layer::Reshape { dims } => format!("reshape {}", super::networks::shape_text(dims)),
    }
}

/// Fully parenthesised text of a typed expression, with names resolved.
pub fn expr_text(spec: &CheckedSpec, e: &TExpr) -> String {
    let t = |e: &TExpr| expr_text(spec, e);
    match &e.kind {
        TExprKind::Const(c) => format!("{c}"),
        TExprKind::Var(v) => spec.variable(*v).name.clone(),
        TExprKind::Param(p) => spec.parameter(*p).name.clone(),
        TExprKind::Neg(a) => format!("(-{})", t(a)),
        TExprKind::Binary { op, lhs, rhs } => format!("({} {} {})", t(lhs), op.symbol(), t(rhs)),
        TExprKind::Net { net, arg } => format!("{}({})", spec.network(*net).name, t(arg)),
        TExprKind::Map { func, arg } => format!("{}({})", func.name(), t(arg)),
        TExprKind::Dot(a, b) => format!("dot({}, {})", t(a), t(b)),
        TExprKind::Stats(a) => format!("stats({})", t(a)),
        TExprKind::Reduce { op, over, arg } => {
            let f = if *op == ReduceOp::Sum {
                "sum"
            } else {
                "logsumexp"
            };
            match over {
                ReduceOver::All => format!("{f}({})", t(arg)),
                ReduceOver::Axis(a) => format!("{f}({}, axis {a})", t(arg)),
                ReduceOver::Values(v) => {
                    format!("{f}({}, over {})", t(arg), spec.variable(*v).name)
                }
            }
        }
        TExprKind::Index { base, index } => match index {
            IndexBy::Var(v) => format!("{}[{}]", t(base), spec.variable(*v).name),
            IndexBy::Const(i) => format!("{}[{i}]", t(base)),
        },
        TExprKind::LogDensity {
            dist,
            subject,
            params,
        } => {
            let ps: Vec<String> = params.iter().map(t).collect();
            let logits = if *dist == super::Dist::BernoulliLogits {
                "logits = "
            } else {
                ""
            };
            format!(
                "log {}({} | {logits}{})",
                dist.name(),
                t(subject),
                ps.join(", ")
            )
        }
    }
}
