//! `learn:` and `evaluate:` — the algorithm, its samplers and optimizers, what it needs from the
//! model, and the evaluations.

use super::calls::{self, Bound, bind, lookup};
use super::data::nonnegative;
use super::{
    Algorithm, BuiltinData, CheckError, Checker, Evaluation, Langevin, Learn, Model, Optimizer,
    OptimizerUse, Scope, Sgld,
};
use crate::diag::{did_you_mean, one_of};
use crate::source::Span;
use crate::spec::{LearnSection, ModelSection, Spanned, Text, TextList};
use crate::syntax::{self, ast};

pub(crate) fn check_learn(
    cx: &mut Checker,
    l: &LearnSection,
    m: &ModelSection,
    model: &Model,
    scope: &Scope,
) -> Option<Learn> {
    let algorithm = algorithm(cx, l)?;
    let alg_span = l.algorithm.as_ref().map_or(Span::point(0), |a| a.span);
    let iterations = count(cx, l.iterations.as_ref(), "`learn.iterations`", 1000);
    let batch = count(cx, l.batch.as_ref(), "`learn.batch`", 100);
    let seed = nonnegative(cx, l.seed.as_ref(), "`learn.seed`");
    let prior_sampler = l.prior_sampler.as_ref().and_then(|t| langevin(cx, t));
    let posterior_sampler = l.posterior_sampler.as_ref().and_then(|t| langevin(cx, t));
    let sampler = match (&l.sampler, algorithm) {
        (Some(t), _) => sgld(cx, t),
        (None, Algorithm::ContrastiveDivergence) => Some(SGLD_DEFAULT),
        (None, _) => None,
    };
    let optimizers = optimizers(cx, l, scope);
    let weight = |cx: &mut Checker, v: &Option<Spanned<f64>>, what: &str, default: f64| match v {
        Some(s) if !(s.value.is_finite() && s.value >= 0.0) => {
            cx.error(CheckError::InvalidValue {
                what: what.into(),
                expected: "a number ≥ 0".into(),
                span: s.span,
                found: s.value.to_string(),
                help: None,
            });
            default
        }
        Some(s) => s.value,
        None => default,
    };
    let learn = Learn {
        algorithm,
        iterations,
        batch,
        seed,
        prior_sampler,
        posterior_sampler,
        sampler,
        optimizers,
        labeled_weight: weight(cx, &l.labeled_weight, "`learn.labeled_weight`", 1.0),
        mi_weight: weight(cx, &l.mi_weight, "`learn.mi_weight`", 0.0),
        data_noise: weight(cx, &l.data_noise, "`learn.data_noise`", 0.03),
        energy_reg: weight(cx, &l.energy_reg, "`learn.energy_reg`", 5e-3),
    };
    Requirements {
        cx,
        algorithm,
        alg_span,
        l,
        m,
        model,
        scope,
    }
    .verify();
    Some(learn)
}

const SGLD_DEFAULT: Sgld = Sgld {
    steps: 60,
    step_size: 2.0,
    noise: 7.5e-3,
    buffer: 5000,
    reinit: 0.05,
    init: (-1.0, 1.0),
};

fn algorithm(cx: &mut Checker, l: &LearnSection) -> Option<Algorithm> {
    let names: Vec<&str> = Algorithm::ALL.iter().map(|(n, _)| *n).collect();
    let Some(a) = &l.algorithm else {
        cx.error(CheckError::MissingField {
            field: "learn.algorithm".into(),
            span: l.key.unwrap_or(Span::point(0)),
            help: Some(format!(
                "add `algorithm:` under `learn:`, one of {}",
                one_of(&names)
            )),
        });
        return None;
    };
    if let Some((_, alg)) = Algorithm::ALL.iter().find(|(n, _)| *n == a.value) {
        return Some(*alg);
    }
    cx.error(CheckError::UnknownAlgorithm {
        name: a.value.clone(),
        span: a.span,
        help: did_you_mean(&a.value, names.iter().copied())
            .or_else(|| Some(format!("algorithms: {}", one_of(&names)))),
    });
    None
}

fn count(cx: &mut Checker, v: Option<&Spanned<i64>>, what: &str, default: usize) -> usize {
    match v {
        Some(s) if s.value < 1 => {
            let key = what.trim_matches('`').rsplit('.').next().unwrap_or(what);
            cx.error(CheckError::InvalidValue {
                what: what.into(),
                expected: "an integer ≥ 1".into(),
                span: s.span,
                found: s.value.to_string(),
                help: Some(format!(
                    "a count of at least 1, e.g. `{key}: {default}` (the default when left out)"
                )),
            });
            default
        }
        Some(s) => s.value as usize,
        None => default,
    }
}

fn parse_call(cx: &mut Checker, t: &Text) -> Option<ast::Call> {
    match syntax::parse_call(&t.value, &t.map) {
        Ok(c) => Some(c),
        Err(e) => {
            cx.error(e.into());
            None
        }
    }
}

/// A call that must be one particular sampler: reports the other sampler with a pointed help.
fn sampler_call<'a>(
    cx: &mut Checker,
    c: &'a ast::Call,
    want: &'static calls::CallSig,
    why: &str,
) -> Option<Bound<'a>> {
    let sig = lookup(cx, c, calls::SAMPLERS, "sampler")?;
    if sig.name != want.name {
        cx.error(CheckError::InvalidValue {
            what: "this sampler".into(),
            expected: format!("`{}`", want.name),
            span: c.callee.span,
            found: format!("`{}`", sig.name),
            help: Some(why.into()),
        });
        return None;
    }
    Some(bind(cx, c, sig))
}

fn langevin(cx: &mut Checker, t: &Text) -> Option<Langevin> {
    let c = parse_call(cx, t)?;
    let b = sampler_call(
        cx,
        &c,
        &calls::LANGEVIN,
        "latent chains use `langevin(steps = ..., step_size = ...)`; `sgld` is the data-space sampler",
    )?;
    let step_size = b.number(cx, "step_size", 0.1);
    Some(Langevin {
        steps: b.count(cx, "steps", 1),
        step_size,
        noise: if b.is_given("noise") {
            b.number(cx, "noise", step_size)
        } else {
            step_size
        },
        persistent: b.count(cx, "persistent", 0),
    })
}

fn sgld(cx: &mut Checker, t: &Text) -> Option<Sgld> {
    let c = parse_call(cx, t)?;
    let b = sampler_call(
        cx,
        &c,
        &calls::SGLD,
        "the data-space sampler is `sgld(...)`; `langevin` runs latent chains",
    )?;
    let d = SGLD_DEFAULT;
    let init = b.pair(cx, "init", d.init);
    if init.0 >= init.1 {
        cx.error(CheckError::InvalidValue {
            what: "`init` of `sgld`".into(),
            expected: "a range (LO, HI) with LO < HI".into(),
            span: b.span_of("init"),
            found: format!("({}, {})", init.0, init.1),
            help: None,
        });
    }
    Some(Sgld {
        steps: b.count(cx, "steps", d.steps),
        step_size: b.number(cx, "step_size", d.step_size),
        noise: b.number(cx, "noise", d.noise),
        buffer: b.count(cx, "buffer", d.buffer),
        reinit: b.number(cx, "reinit", d.reinit),
        init,
    })
}

fn optimizer(cx: &mut Checker, t: &Text) -> Option<Optimizer> {
    let c = parse_call(cx, t)?;
    let sig = lookup(cx, &c, calls::OPTIMIZERS, "optimizer")?;
    let b = bind(cx, &c, sig);
    Some(match sig.name {
        "adam" => {
            let betas = b.pair(cx, "betas", (0.9, 0.999));
            if !(0.0..1.0).contains(&betas.0) || !(0.0..1.0).contains(&betas.1) {
                cx.error(CheckError::InvalidValue {
                    what: "`betas` of `adam`".into(),
                    expected: "two numbers in [0, 1)".into(),
                    span: b.span_of("betas"),
                    found: format!("({}, {})", betas.0, betas.1),
                    help: Some("e.g. `betas = (0.5, 0.999)`".into()),
                });
            }
            Optimizer::Adam {
                lr: b.number(cx, "lr", 1e-4),
                betas,
                weight_decay: b.number(cx, "weight_decay", 0.0),
                decay: b.number(cx, "decay", 1.0),
            }
        }
        _ => Optimizer::Sgd {
            lr: b.number(cx, "lr", 1e-3),
        },
    })
}

/// Each key names networks/parameters (or `default`: everything not named); every learnable thing
/// must be covered.
fn optimizers(cx: &mut Checker, l: &LearnSection, scope: &Scope) -> Vec<OptimizerUse> {
    let mut uses: Vec<OptimizerUse> = Vec::new();
    let mut default: Option<Optimizer> = None;
    let mut named_nets = Vec::new();
    let mut named_params = Vec::new();
    for e in &l.optimizers.entries {
        let key = &e.key.value;
        let opt = optimizer(cx, &e.value);
        if key == "default" {
            default = opt;
            continue;
        }
        let (nets, params) = match (scope.network(key), scope.parameter(key)) {
            (Some((id, _)), _) => (vec![id], vec![]),
            (_, Some((id, _))) => (vec![], vec![id]),
            _ => {
                let mut names: Vec<&str> = scope.networks.iter().map(|n| n.name.as_str()).collect();
                names.extend(scope.parameters.iter().map(|p| p.name.as_str()));
                names.push("default");
                cx.error(CheckError::UnknownOptimizerTarget {
                    name: key.clone(),
                    span: e.key.span,
                    help: did_you_mean(key, names.iter().copied())
                        .or_else(|| Some(format!("learned here: {}", one_of(&names)))),
                });
                continue;
            }
        };
        named_nets.extend(nets.iter().copied());
        named_params.extend(params.iter().copied());
        if let Some(optimizer) = opt {
            uses.push(OptimizerUse {
                networks: nets,
                parameters: params,
                optimizer,
                key: key.clone(),
            });
        }
    }
    let rest_nets: Vec<_> = (0..scope.networks.len())
        .map(super::NetId)
        .filter(|n| !named_nets.contains(n))
        .collect();
    let rest_params: Vec<_> = (0..scope.parameters.len())
        .map(super::ParamId)
        .filter(|p| !named_params.contains(p))
        .collect();
    match default {
        Some(optimizer) if !rest_nets.is_empty() || !rest_params.is_empty() => {
            uses.push(OptimizerUse {
                networks: rest_nets,
                parameters: rest_params,
                optimizer,
                key: "default".into(),
            });
        }
        Some(_) => {}
        None if l
            .optimizers
            .entries
            .iter()
            .any(|e| e.key.value == "default") => {}
        None => {
            let missing = rest_nets
                .iter()
                .map(|n| (&scope.networks[n.0].name, scope.networks[n.0].name_span))
                .chain(
                    rest_params
                        .iter()
                        .map(|p| (&scope.parameters[p.0].name, scope.parameters[p.0].name_span)),
                );
            for (name, span) in missing {
                cx.error(CheckError::MissingOptimizer {
                    name: name.clone(),
                    span,
                    help: Some(format!("add `{name}: adam(lr = 1e-4)` under `learn.optimizers`, or a `default:` entry")),
                });
            }
        }
    }
    uses
}

/// What each algorithm needs from the spec, and which fields it ignores.
struct Requirements<'a, 'c> {
    cx: &'c mut Checker,
    algorithm: Algorithm,
    alg_span: Span,
    l: &'a LearnSection,
    m: &'a ModelSection,
    model: &'a Model,
    scope: &'a Scope,
}

impl Requirements<'_, '_> {
    fn need(&mut self, present: bool, what: &str, help: &str) {
        if !present {
            self.cx.error(CheckError::MissingRequirement {
                algorithm: self.algorithm.name().into(),
                what: what.into(),
                span: self.alg_span,
                help: Some(help.into()),
            });
        }
    }

    fn unused(&mut self, field: &str, span: Option<Span>, help: &str) {
        if let Some(span) = span {
            self.cx.error(CheckError::UnusedByAlgorithm {
                field: field.into(),
                algorithm: self.algorithm.name().into(),
                span,
                algorithm_span: self.alg_span,
                help: Some(help.into()),
            });
        }
    }

    fn verify(mut self) {
        let (l, m) = (self.l, self.m);
        let has_latent = self
            .scope
            .variables
            .iter()
            .any(|v| !v.observed && v.is_continuous());
        let coupled = self.model.prior.as_ref().is_some_and(|p| {
            p.variables()
                .iter()
                .any(|v| self.scope.variables[v.0].is_discrete())
        });
        let span = |t: &Option<Text>| t.as_ref().map(|t| t.span);
        let fspan = |t: &Option<Spanned<f64>>| t.as_ref().map(|t| t.span);
        if matches!(
            self.algorithm,
            Algorithm::ShortRunMle | Algorithm::AmortizedSsl
        ) {
            // Latent chains start from, and are tilted against, the reference density.
            for v in self
                .scope
                .variables
                .iter()
                .filter(|v| !v.observed && v.is_continuous() && v.reference.is_none())
            {
                self.cx.error(CheckError::MissingReference {
                    name: v.name.clone(),
                    span: v.span,
                    help: Some(format!("{} starts its Langevin chains from p0: write `{}: real[..] ~ normal(0, 1)`", self.algorithm.name(), v.name)),
                });
            }
        }
        match self.algorithm {
            Algorithm::ShortRunMle => {
                self.need(
                    has_latent,
                    "a latent variable with a reference density",
                    "declare e.g. `z: real[16] ~ normal(0, 1)`",
                );
                self.need(
                    m.likelihood.is_some(),
                    "`model.likelihood`",
                    "add e.g. `likelihood: normal(x | g(z), 0.3)` under `model:`",
                );
                self.need(
                    l.posterior_sampler.is_some(),
                    "`learn.posterior_sampler`",
                    "add e.g. `posterior_sampler: langevin(steps = 20, step_size = 0.1)`",
                );
                if m.prior.is_some() {
                    self.need(
                        l.prior_sampler.is_some(),
                        "`learn.prior_sampler` to sample the EBM prior",
                        "add e.g. `prior_sampler: langevin(steps = 60, step_size = 0.4)`",
                    );
                }
                let help = "short_run_mle trains a prior and a generator by posterior and prior Langevin; remove it";
                self.unused("model.energy", span(&m.energy), help);
                self.unused("model.inference", span(&m.inference), help);
                self.unused("learn.sampler", span(&l.sampler), help);
                self.unused("learn.labeled_weight", fspan(&l.labeled_weight), help);
                self.unused("learn.mi_weight", fspan(&l.mi_weight), help);
                self.unused("learn.data_noise", fspan(&l.data_noise), help);
                self.unused("learn.energy_reg", fspan(&l.energy_reg), help);
            }
            Algorithm::AmortizedSsl => {
                self.need(
                    has_latent,
                    "a latent variable with a reference density",
                    "declare e.g. `z: real[16] ~ normal(0, 1)`",
                );
                self.need(
                    m.likelihood.is_some(),
                    "`model.likelihood`",
                    "add e.g. `likelihood: normal(x | g(z), 0.3)` under `model:`",
                );
                self.need(
                    m.prior.is_some() && (coupled || self.model.prior.is_none()),
                    "a `model.prior` coupling a onehot symbol with the latent",
                    "write e.g. `prior: dot(y, f(z))` with `y: observed onehot[10]`",
                );
                self.need(m.inference.is_some(), "`model.inference`, an encoder q(z | x)", "add `q: encoder(x -> 512 -> normal(z))` to `networks:` and `inference: q` under `model:`");
                self.need(l.prior_sampler.is_some(), "`learn.prior_sampler`", "add e.g. `prior_sampler: langevin(steps = 60, step_size = 0.4, persistent = 10000)`");
                let help =
                    "amortized_ssl infers z with the encoder and samples the prior only; remove it";
                self.unused("model.energy", span(&m.energy), help);
                self.unused("learn.posterior_sampler", span(&l.posterior_sampler), help);
                self.unused("learn.sampler", span(&l.sampler), help);
                self.unused("learn.data_noise", fspan(&l.data_noise), help);
                self.unused("learn.energy_reg", fspan(&l.energy_reg), help);
            }
            Algorithm::ContrastiveDivergence => {
                self.need(
                    m.energy.is_some(),
                    "`model.energy`",
                    "add e.g. `energy: -dot(t(x), stats(z)) - log normal(z | 0, 1)` under `model:`",
                );
                if let Some(e) = &self.model.energy
                    && !e
                        .variables()
                        .iter()
                        .any(|v| self.scope.variables[v.0].observed)
                {
                    self.cx.error(CheckError::InvalidValue {
                        what: "`model.energy`".into(),
                        expected: "an energy of the observed data".into(),
                        span: e.span,
                        found: "does not mention an observed variable".into(),
                        help: Some("contrastive divergence samples the data space; the energy must depend on `x`".into()),
                    });
                }
                let help =
                    "contrastive_divergence trains the energy with data-space SGLD; remove it";
                self.unused("model.prior", span(&m.prior), help);
                self.unused("model.likelihood", span(&m.likelihood), help);
                self.unused("model.inference", span(&m.inference), help);
                self.unused("learn.prior_sampler", span(&l.prior_sampler), help);
                self.unused("learn.posterior_sampler", span(&l.posterior_sampler), help);
                self.unused("learn.labeled_weight", fspan(&l.labeled_weight), help);
                self.unused("learn.mi_weight", fspan(&l.mi_weight), help);
            }
        }
    }
}

/// The optional `test_size` of an evaluation.
fn test_size(cx: &mut Checker, b: &calls::Bound) -> Option<usize> {
    b.is_given("test_size").then(|| b.count(cx, "test_size", 1))
}

pub(crate) fn check_evaluations(
    cx: &mut Checker,
    list: &TextList,
    learn: Option<&Learn>,
    model: &Model,
    scope: &Scope,
) -> Vec<Evaluation> {
    let mut out = Vec::new();
    for t in &list.items {
        let Some(c) = parse_call(cx, t) else { continue };
        let Some(sig) = lookup(cx, &c, calls::EVALUATIONS, "evaluation") else {
            continue;
        };
        let b = bind(cx, &c, sig);
        let unsupported = |cx: &mut Checker, what: &str, help: &str| {
            cx.error(CheckError::EvaluationUnsupported {
                evaluation: sig.name.into(),
                what: what.into(),
                span: c.span,
                help: Some(help.into()),
            });
        };
        let eval = match sig.name {
            "samples" => Evaluation::Samples {
                n: b.count(cx, "n", 64),
            },
            "reconstruction_mse" => {
                if model.likelihood.is_none() {
                    unsupported(
                        cx,
                        "a generator (`model.likelihood`)",
                        "reconstruction needs a model that generates x from z",
                    );
                }
                Evaluation::ReconstructionMse {
                    test_size: test_size(cx, &b),
                }
            }
            "anomaly_auprc" => {
                let heldout = b.count(cx, "heldout", 0);
                if heldout > 9 {
                    cx.error(CheckError::InvalidValue {
                        what: "`heldout` of `anomaly_auprc`".into(),
                        expected: "a digit class from 0 to 9".into(),
                        span: b.span_of("heldout"),
                        found: heldout.to_string(),
                        help: Some(
                            "the built-in data sets have ten classes, 0 to 9: hold out one of them, e.g. `heldout = 0`"
                                .into(),
                        ),
                    });
                }
                if model.likelihood.is_none() {
                    unsupported(
                        cx,
                        "a generator (`model.likelihood`)",
                        "the anomaly score is log p(x, z) at the inferred z",
                    );
                }
                Evaluation::AnomalyAuprc {
                    heldout,
                    test_size: test_size(cx, &b),
                }
            }
            "few_label" => {
                let shots = b.shots(cx, "shots", &[Some(1), Some(10), Some(100), None]);
                Evaluation::FewLabel {
                    shots,
                    repeats: b.count(cx, "repeats", 10),
                }
            }
            "ood_auroc" => {
                let against = match b.name(cx, "against") {
                    Some((n, span)) => match BuiltinData::ALL.iter().find(|(name, _)| *name == n) {
                        Some((_, d)) => Some(*d),
                        None => {
                            let names: Vec<&str> =
                                BuiltinData::ALL.iter().map(|(n, _)| *n).collect();
                            cx.error(CheckError::UnknownData {
                                name: n.clone(),
                                span,
                                help: did_you_mean(&n, names),
                            });
                            None
                        }
                    },
                    None => None,
                };
                if model.energy.is_none() {
                    unsupported(
                        cx,
                        "an energy (`model.energy`)",
                        "the OOD scores are the energy and its input gradient",
                    );
                }
                Evaluation::OodAuroc {
                    against: against.unwrap_or(BuiltinData::Mnist),
                }
            }
            "latent_kl_mi" => {
                if model.energy.is_none() {
                    unsupported(
                        cx,
                        "an energy (`model.energy`)",
                        "KL and MI are computed from the closed-form posterior of a conjugate energy",
                    );
                }
                Evaluation::LatentKlMi
            }
            _ => {
                if !scope.variables.iter().any(|v| v.is_discrete()) {
                    unsupported(
                        cx,
                        "a onehot variable",
                        "accuracy scores the classifier p(y | z) of a symbol-coupled prior",
                    );
                }
                Evaluation::Accuracy
            }
        };
        out.push(eval);
    }
    let _ = learn;
    out
}
