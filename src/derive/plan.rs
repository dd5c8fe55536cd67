//! The learning plan: the steps of the spec's algorithm, each with the functions it evaluates and
//! the sampler or optimizer it uses, so a reader of `ebmc ir` sees exactly what `run` will do.
//! The update order follows the authors' code (shared/notes/algorithms-from-reference-code.md).

use crate::check::{
    Algorithm, CheckedSpec, Langevin, NetId, OptimizerUse, ParamId, TExpr, TExprKind,
};
use crate::ir::{PlanStep, Program};
use std::collections::BTreeSet;

pub fn derive(program: &mut Program, spec: &CheckedSpec) {
    let steps = match spec.learn.algorithm {
        Algorithm::ShortRunMle => short_run_mle(program, spec),
        Algorithm::AmortizedSsl => amortized_ssl(program, spec),
        Algorithm::ContrastiveDivergence => contrastive_divergence(program, spec),
    };
    program.plan = steps;
}

fn step(action: impl Into<String>, uses: &[&str], with: Vec<String>) -> PlanStep {
    PlanStep {
        action: action.into(),
        uses: uses.iter().map(|s| s.to_string()).collect(),
        with,
    }
}

fn langevin_text(s: &Langevin, start: &str) -> String {
    let chains = if s.persistent > 0 {
        format!("{} persistent chains", s.persistent)
    } else {
        format!("short-run chains from {start}")
    };
    format!(
        "langevin steps={} step_size={} noise={} ({chains}): z ← z + s²/2 · ∇log p + noise · ε",
        s.steps, s.step_size, s.noise
    )
}

fn reference_text(spec: &CheckedSpec) -> String {
    spec.variables
        .iter()
        .find_map(|v| match &v.reference {
            Some(crate::check::Reference::Normal { mean, std }) if !v.observed => {
                Some(format!("N({mean}, {std}²)"))
            }
            _ => None,
        })
        .unwrap_or_else(|| "p0".into())
}

/// Networks and parameters an expression reads.
fn learnables(e: &TExpr, _spec: &CheckedSpec) -> (BTreeSet<NetId>, BTreeSet<ParamId>) {
    let mut nets = BTreeSet::new();
    let mut params = BTreeSet::new();
    e.visit(&mut |n| match &n.kind {
        TExprKind::Net { net, .. } => {
            nets.insert(*net);
        }
        TExprKind::Param(p) => {
            params.insert(*p);
        }
        _ => {}
    });
    (nets, params)
}

/// The optimizers that update any of the given networks or parameters, as plan lines.
fn optimizers_for(
    spec: &CheckedSpec,
    nets: &BTreeSet<NetId>,
    params: &BTreeSet<ParamId>,
) -> Vec<String> {
    spec.learn
        .optimizers
        .iter()
        .filter_map(|u| {
            let n: Vec<&str> = u
                .networks
                .iter()
                .filter(|n| nets.contains(n))
                .map(|n| spec.network(*n).name.as_str())
                .collect();
            let p: Vec<&str> = u
                .parameters
                .iter()
                .filter(|p| params.contains(p))
                .map(|p| spec.parameter(*p).name.as_str())
                .collect();
            let targets: Vec<&str> = n.into_iter().chain(p).collect();
            (!targets.is_empty())
                .then(|| format!("{} on [{}]", optimizer_text(u), targets.join(", ")))
        })
        .collect()
}

fn optimizer_text(u: &OptimizerUse) -> String {
    u.optimizer.to_string()
}

fn has(p: &Program, name: &str) -> bool {
    p.function(name).is_some()
}

fn batch_text(spec: &CheckedSpec) -> Vec<String> {
    vec![format!(
        "iterations={} batch={} seed={}",
        spec.learn.iterations, spec.learn.batch, spec.learn.seed
    )]
}

/// Paper 002, Algorithm 1: both chains with the current parameters, then the generator step, then
/// the prior step on the same (pre-update) samples.
fn short_run_mle(p: &Program, spec: &CheckedSpec) -> Vec<PlanStep> {
    let l = &spec.learn;
    let start = reference_text(spec);
    let mut steps = vec![step("draw a minibatch x", &[], batch_text(spec))];
    if let (Some(s), true) = (&l.prior_sampler, spec.model.prior.is_some()) {
        steps.push(step(
            "sample the prior: z⁻ ~ p(z)",
            &["prior_grad"],
            vec![langevin_text(s, &start)],
        ));
    }
    if let Some(s) = &l.posterior_sampler {
        steps.push(step(
            "sample the posterior: z⁺ ~ p(z | x)",
            &["posterior_grad"],
            vec![langevin_text(s, &start)],
        ));
    }
    if let Some(lik) = &spec.model.likelihood {
        let (nets, params) = learnables(lik, spec);
        steps.push(step(
            "generator step: minimise −mean log p(x | z⁺)",
            &["log_likelihood"],
            optimizers_for(spec, &nets, &params),
        ));
    }
    if let Some(prior) = &spec.model.prior {
        let (nets, params) = learnables(prior, spec);
        let uses = if has(p, "prior_log_density") {
            vec!["prior_log_density"]
        } else {
            vec![]
        };
        steps.push(step(
            "prior step: minimise mean f(z⁻) − mean f(z⁺) (samples detached, drawn before the generator step)",
            &uses,
            optimizers_for(spec, &nets, &params),
        ));
    }
    steps
}

/// Paper 001, Algorithm 1 (with the authors' closest code): labelled step, unlabelled ELBO step,
/// prior contrastive step.
fn amortized_ssl(_p: &Program, spec: &CheckedSpec) -> Vec<PlanStep> {
    let l = &spec.learn;
    let start = reference_text(spec);
    let all_opts = |e: Option<&TExpr>| e.map(|e| learnables(e, spec)).unwrap_or_default();
    let q_nets: BTreeSet<NetId> = spec.model.inference.into_iter().collect();
    let (prior_nets, prior_params) = all_opts(spec.model.prior.as_ref());
    let (lik_nets, lik_params) = all_opts(spec.model.likelihood.as_ref());
    let mut steps = vec![step(
        "draw an unlabelled minibatch x and a labelled minibatch (x, y)",
        &[],
        batch_text(spec),
    )];
    let labelled: BTreeSet<NetId> = prior_nets.union(&q_nets).copied().collect();
    steps.push(step(
        format!(
            "labelled step: minimise {} · cross-entropy of p(y | z = mean q(z | x))",
            l.labeled_weight
        ),
        &["encoder", "classifier"],
        optimizers_for(spec, &labelled, &prior_params),
    ));
    steps.push(step(
        "infer: z ~ q(z | x) by reparameterisation",
        &["encoder"],
        vec![],
    ));
    if let Some(s) = &l.prior_sampler {
        steps.push(step(
            "sample the marginal prior: z⁻ ~ p(z)",
            &["prior_grad"],
            vec![langevin_text(s, &start)],
        ));
    }
    let elbo_nets: BTreeSet<NetId> = lik_nets.union(&q_nets).copied().collect();
    let mut with = optimizers_for(spec, &elbo_nets, &lik_params);
    if l.mi_weight > 0.0 {
        with.push(format!("mutual-information term weight {}", l.mi_weight));
    }
    steps.push(step(
        "ELBO step: minimise −log p(x | z) − log p(z) + log q(z | x)",
        &["encoder", "log_likelihood", "prior_log_density"],
        with,
    ));
    steps.push(step(
        "prior step: minimise mean F(z⁻) − mean F(z) with F the marginal log-tilt (z detached)",
        &["prior_log_density"],
        optimizers_for(spec, &prior_nets, &prior_params),
    ));
    steps
}

/// Paper 003 with the authors' code: noisy data, SGLD from a replay buffer on the marginal energy,
/// one step on E(data) − E(model) + c·(E(data)² + E(model)²).
///
/// SGLD needs an energy of x alone (`Program::data_space_energy`). An energy of x and a latent
/// without a closed form has none: the plan says that training is not supported instead of naming
/// `energy_grad_x`, whose gradient needs a z nothing provides.
fn contrastive_divergence(p: &Program, spec: &CheckedSpec) -> Vec<PlanStep> {
    let l = &spec.learn;
    let observed = spec
        .variables
        .iter()
        .find(|v| v.observed && v.is_continuous())
        .map_or("", |v| v.name.as_str());
    let Some((energy, grad)) = p.data_space_energy(observed) else {
        let latents: Vec<&str> = p
            .function("energy")
            .map(|f| {
                f.inputs
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .filter(|n| *n != observed)
                    .collect()
            })
            .unwrap_or_default();
        let list = latents
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ");
        return vec![step(
            format!(
                "not supported: no marginal energy E(x) = −log ∫ exp(−E(x, {})) {} was derived (the \
                 energy depends on {list} and has no closed form over it, see the note above), so SGLD \
                 has no energy of x alone to sample x⁻ with; training this spec with \
                 contrastive_divergence is not supported",
                latents.join(", "),
                latents
                    .iter()
                    .map(|n| format!("d{n}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            &[],
            vec![],
        )];
    };
    let mut steps = vec![step(
        format!("draw a minibatch x and add noise N(0, {}²)", l.data_noise),
        &[],
        batch_text(spec),
    )];
    if let Some(s) = &l.sampler {
        steps.push(step(
            "sample the model: x⁻ by SGLD from the replay buffer",
            &[grad],
            vec![format!(
                "sgld steps={} step_size={} noise={} buffer={} reinit={} init=uniform({}, {}): x ← x − step_size/2 · ∇E(x) + noise · ε",
                s.steps, s.step_size, s.noise, s.buffer, s.reinit, s.init.0, s.init.1
            )],
        ));
    }
    let all_nets: BTreeSet<NetId> = (0..spec.networks.len()).map(NetId).collect();
    let all_params: BTreeSet<ParamId> = (0..spec.parameters.len()).map(ParamId).collect();
    steps.push(step(
        format!(
            "energy step: minimise mean E(x) − mean E(x⁻) + {} · (mean E(x)² + mean E(x⁻)²)",
            l.energy_reg
        ),
        &[energy],
        optimizers_for(spec, &all_nets, &all_params),
    ));
    steps
}
