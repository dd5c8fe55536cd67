//! `latent_kl_mi` (paper 003 §7.5, Table 3): how close the aggregate posterior
//! q(z) = 1/N Σ_n q(z | x_n) lies to the bias p_λ(z), and the mutual information between x and z
//! under q(x, z) = p_data(x) q(z | x).
//!
//! Estimator (Monte Carlo, as the paper's "batches of size 1k" after Esmaeili et al. 2019), over the
//! N examples of the test split: draw one z_i ~ q(z | x_i) for M = min(N, 1000) seeded examples i;
//! score every z_i under every posterior in closed form (diagonal Gaussians, or mixtures of them
//! weighted by the responsibilities); then
//!
//! ```text
//! log q(z_i) = logsumexp_n log q(z_i | x_n) − log N
//! MI = mean_i [log q(z_i | x_i) − log q(z_i)]        (so 0 ≤ MI ≤ log N, up to noise)
//! KL = mean_i [log q(z_i) − log p_λ(z_i)]
//! ```
//!
//! The bias p_λ(z) is the part of the energy that does not depend on the observed variable
//! (E(x, z) = −⟨t(x), η(z)⟩ + E_λ(z) in the paper's notation): those additive terms are lowered on
//! their own, mixture symbols summed out as in the energy, and exp(−E_λ) is taken as the bias. The
//! specs write it as a normalised log-density (`- log normal(z | ...)`), so the KL is exact; an
//! unnormalised bias would shift the KL by its log-normaliser. Without such terms only the MI is
//! reported.

use super::generation::{batches, tensor};
use crate::check::{CheckedSpec, TExpr, TExprKind, VarId};
use crate::runtime::data::Dataset;
use crate::runtime::error::{Context, Result, RuntimeError};
use crate::runtime::exec::{Executor, ParamMode};
use crate::runtime::train::Session;
use crate::syntax::ast::BinOp;
use candle_core::{D, DType, Tensor};

/// Examples whose posterior draws are scored (the paper's batch of 1k).
const DRAWS: usize = 1000;
/// Draws scored against all N posteriors at once (bounds the [rows, N·K] score matrix).
const CHUNK: usize = 100;

/// `kl_aggregate_bias` (when the energy has a bias term) and `mutual_information`, in nats.
pub fn latent_kl_mi(s: &mut Session, test: &Dataset) -> Result<Vec<(String, f64)>> {
    let post = Posteriors::of(s, test)?;
    let n = post.n;
    let chosen = s.rng.index_sample(n, n.min(DRAWS), false);
    let z = post.draw(s, &chosen)?;
    let (own, aggregate) = post.log_densities(&z, &chosen)?;
    let mi = mean(own.iter().zip(&aggregate).map(|(o, a)| o - a));
    let mut out = Vec::new();
    if let Some(bias) = bias_energy(s.spec, &s.observed) {
        let z32 = z.to_dtype(s.dtype).ctx("bias density")?;
        let e = bias.call1(
            "energy",
            &[(&s.latent, &z32)],
            &ParamMode::Detached(&s.params),
        )?;
        let log_p: Vec<f64> = e
            .to_dtype(DType::F64)
            .and_then(|e| e.to_vec1())
            .ctx("bias density")?;
        let kl = mean(aggregate.iter().zip(&log_p).map(|(a, e)| a + e));
        out.push(("kl_aggregate_bias".to_string(), kl));
    }
    out.push(("mutual_information".to_string(), mi));
    Ok(out)
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    sum / n.max(1) as f64
}

/// The closed-form posteriors of N examples as K-component diagonal Gaussian mixtures (K = 1
/// without a mixture bias), in f64: mean and std `[N, K, D]`, log-weights `[N, K]`.
struct Posteriors {
    n: usize,
    k: usize,
    mean: Tensor,
    std: Tensor,
    log_w: Tensor,
}

impl Posteriors {
    fn of(s: &Session, d: &Dataset) -> Result<Posteriors> {
        if !s.exec.has_function("posterior_mean_std") {
            return Err(RuntimeError::Unsupported {
                what: "latent_kl_mi without a closed-form posterior (`posterior_mean_std`; the energy is not conjugate)".into(),
            });
        }
        let (mut means, mut stds, mut ws) = (Vec::new(), Vec::new(), Vec::new());
        for idx in batches(d) {
            let x = tensor(s, d, &idx)?;
            let outs = s.exec.call(
                "posterior_mean_std",
                &[(&s.observed, &x)],
                &ParamMode::Detached(&s.params),
            )?;
            let get = |name: &str| -> Option<Tensor> {
                outs.iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, t)| t.to_dtype(DType::F64).expect("f64 conversion"))
            };
            let (m, sd) = (get("mean").expect("mean"), get("std").expect("std"));
            let (m, sd, w) = match get("responsibilities") {
                Some(r) => (m, sd, r.log().ctx("responsibilities")?),
                None => {
                    let w = Tensor::zeros((idx.len(), 1), DType::F64, &s.device).ctx("weights")?;
                    (
                        m.unsqueeze(1).ctx("posterior")?,
                        sd.unsqueeze(1).ctx("posterior")?,
                        w,
                    )
                }
            };
            means.push(m);
            stds.push(sd);
            ws.push(w);
        }
        let cat = |v: &[Tensor]| Tensor::cat(v, 0).ctx("posteriors");
        let mean = cat(&means)?;
        let (n, k, _) = mean.dims3().ctx("posteriors")?;
        Ok(Posteriors {
            n,
            k,
            mean,
            std: cat(&stds)?,
            log_w: cat(&ws)?,
        })
    }

    /// One draw z_i ~ q(z | x_i) per chosen example: a component by its weight, then the Gaussian.
    fn draw(&self, s: &mut Session, chosen: &[usize]) -> Result<Tensor> {
        let idx = Tensor::from_vec(
            chosen.iter().map(|&i| i as u32).collect::<Vec<_>>(),
            chosen.len(),
            &s.device,
        )
        .ctx("draws")?;
        let pick = |t: &Tensor| -> Result<Vec<Vec<Vec<f64>>>> {
            t.index_select(&idx, 0)
                .and_then(|t| t.to_vec3())
                .ctx("draws")
        };
        let (mean, std) = (pick(&self.mean)?, pick(&self.std)?);
        let log_w: Vec<Vec<f64>> = self
            .log_w
            .index_select(&idx, 0)
            .and_then(|t| t.to_vec2())
            .ctx("draws")?;
        let mut z = Vec::with_capacity(chosen.len() * mean[0][0].len());
        for i in 0..chosen.len() {
            let u = s.rng.uniform_f64();
            let mut acc = 0.0;
            let c = (0..self.k)
                .find(|&c| {
                    acc += log_w[i][c].exp();
                    u < acc
                })
                .unwrap_or(self.k - 1);
            for (m, sd) in mean[i][c].iter().zip(&std[i][c]) {
                z.push(m + sd * s.rng.normal_f64());
            }
        }
        let d = mean[0][0].len();
        Tensor::from_vec(z, (chosen.len(), d), &s.device).ctx("draws")
    }

    /// For each draw z_i: log q(z_i | x_i) and log q(z_i) = logsumexp_n log q(z_i | x_n) − log N.
    fn log_densities(&self, z: &Tensor, chosen: &[usize]) -> Result<(Vec<f64>, Vec<f64>)> {
        let ctx = "posterior densities";
        let d = self.mean.dim(2).ctx(ctx)?;
        let c = self.n * self.k;
        // log N(z; μ, σ) = −½ Σ z²/σ² + Σ z μ/σ² − ½ Σ μ²/σ² − Σ log σ − D/2 log 2π: two matmuls.
        let mean = self.mean.reshape((c, d)).ctx(ctx)?;
        let std = self.std.reshape((c, d)).ctx(ctx)?;
        let prec = std.sqr().and_then(|v| v.recip()).ctx(ctx)?;
        let lin = (&mean * &prec).ctx(ctx)?;
        let constant = ((mean.sqr().and_then(|m| m * &prec))
            .and_then(|q| q.sum(1))
            .and_then(|q| q.affine(-0.5, -0.5 * d as f64 * (2.0 * std::f64::consts::PI).ln()))
            .and_then(|q| q - std.log()?.sum(1)?)
            .and_then(|q| q + self.log_w.reshape(c)?))
        .ctx(ctx)?;
        let (prec_t, lin_t) = (
            prec.t().and_then(|t| t.contiguous()).ctx(ctx)?,
            lin.t().and_then(|t| t.contiguous()).ctx(ctx)?,
        );
        let (mut own, mut aggregate) = (Vec::new(), Vec::new());
        let log_n = (self.n as f64).ln();
        for (start, rows) in chosen.chunks(CHUNK).enumerate() {
            let zc = z.narrow(0, start * CHUNK, rows.len()).ctx(ctx)?;
            let scores = zc
                .sqr()
                .and_then(|z2| z2.matmul(&prec_t))
                .and_then(|q| q.affine(-0.5, 0.0))
                .and_then(|q| q + zc.matmul(&lin_t)?)
                .and_then(|q| q.broadcast_add(&constant))
                .and_then(|q| q.reshape((rows.len(), self.n, self.k)))
                .and_then(|q| q.log_sum_exp(D::Minus1))
                .ctx(ctx)?;
            let per_example: Vec<Vec<f64>> = scores.to_vec2().ctx(ctx)?;
            aggregate.extend(
                scores
                    .log_sum_exp(1)
                    .and_then(|a| a.to_vec1::<f64>())
                    .ctx(ctx)?
                    .into_iter()
                    .map(|a| a - log_n),
            );
            own.extend(rows.iter().zip(&per_example).map(|(&i, row)| row[i]));
        }
        Ok((own, aggregate))
    }
}

/// The bias energy E_λ(z) = −log p_λ(z): the additive terms of the energy free of the observed
/// variable, lowered on their own (see the module doc). `None` when there are none.
pub fn bias_energy(spec: &CheckedSpec, observed: &str) -> Option<Executor> {
    let x = VarId(spec.variables.iter().position(|v| v.name == observed)?);
    let mut terms = Vec::new();
    additive_terms(spec.model.energy.as_ref()?, false, &mut terms);
    let bias = terms
        .into_iter()
        .filter(|t| !mentions(t, x))
        .reduce(|a, b| TExpr {
            shape: a.shape.clone(),
            span: a.span,
            kind: TExprKind::Binary {
                op: BinOp::Add,
                lhs: Box::new(a),
                rhs: Box::new(b),
            },
        })?;
    let mut bias_spec = spec.clone();
    bias_spec.model.energy = Some(bias);
    let program = crate::lower::lower(&bias_spec);
    program.function("energy")?;
    Some(Executor::new(&program))
}

/// Splits `e` at top-level `+`, `−` and negation into signed terms (negated terms wrapped in `Neg`).
fn additive_terms(e: &TExpr, negated: bool, out: &mut Vec<TExpr>) {
    match &e.kind {
        TExprKind::Binary {
            op: op @ (BinOp::Add | BinOp::Sub),
            lhs,
            rhs,
        } => {
            additive_terms(lhs, negated, out);
            additive_terms(rhs, negated != (*op == BinOp::Sub), out);
        }
        TExprKind::Neg(a) => additive_terms(a, !negated, out),
        _ if negated => out.push(TExpr {
            shape: e.shape.clone(),
            span: e.span,
            kind: TExprKind::Neg(Box::new(e.clone())),
        }),
        _ => out.push(e.clone()),
    }
}

/// Whether `e` reads variable `v` (directly, through a network, an index or a density).
fn mentions(e: &TExpr, v: VarId) -> bool {
    match &e.kind {
        TExprKind::Var(id) => *id == v,
        TExprKind::Const(_) | TExprKind::Param(_) => false,
        TExprKind::Neg(a)
        | TExprKind::Net { arg: a, .. }
        | TExprKind::Map { arg: a, .. }
        | TExprKind::Stats(a)
        | TExprKind::Reduce { arg: a, .. } => mentions(a, v),
        TExprKind::Binary { lhs, rhs, .. } | TExprKind::Dot(lhs, rhs) => {
            mentions(lhs, v) || mentions(rhs, v)
        }
        TExprKind::Index { base, index } => {
            mentions(base, v) || matches!(index, crate::check::IndexBy::Var(i) if *i == v)
        }
        TExprKind::LogDensity {
            subject, params, ..
        } => mentions(subject, v) || params.iter().any(|p| mentions(p, v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::params::Params;
    use crate::runtime::rng::Rng;
    use candle_core::Device;

    /// One-component posteriors N(mean_n, std²) in one dimension.
    fn posteriors(means: &[f64], std: f64) -> Posteriors {
        let n = means.len();
        let dev = Device::Cpu;
        Posteriors {
            n,
            k: 1,
            mean: Tensor::from_vec(means.to_vec(), (n, 1, 1), &dev).unwrap(),
            std: Tensor::full(std, (n, 1, 1), &dev).unwrap(),
            log_w: Tensor::zeros((n, 1), DType::F64, &dev).unwrap(),
        }
    }

    #[test]
    fn mutual_information_is_log_n_for_separated_posteriors_and_zero_for_equal_ones() {
        let z = Tensor::new(&[[0.0f64], [100.0], [200.0]], &Device::Cpu).unwrap();
        let (own, agg) = posteriors(&[0.0, 100.0, 200.0], 1.0)
            .log_densities(&z, &[0, 1, 2])
            .unwrap();
        let mi = mean(own.iter().zip(&agg).map(|(o, a)| o - a));
        assert!((mi - 3f64.ln()).abs() < 1e-9, "{mi}");
        // log q(z | x) of a standard normal at its mean.
        assert!((own[0] + 0.5 * (2.0 * std::f64::consts::PI).ln()).abs() < 1e-9);
        let (own, agg) = posteriors(&[1.0, 1.0, 1.0], 0.5)
            .log_densities(&z, &[0, 1, 2])
            .unwrap();
        assert!(own.iter().zip(&agg).all(|(o, a)| (o - a).abs() < 1e-9));
    }

    #[test]
    fn the_bias_is_the_energy_terms_free_of_x() {
        let (spec, program) = crate::compile_repo_spec("specs/cebm_gaussian.yaml");
        let bias = bias_energy(&spec, "x").expect("a bias term");
        let inputs = bias.inputs_of("energy").unwrap();
        assert_eq!(inputs.len(), 1);
        assert_eq!(inputs[0].0, "z");
        let params = Params::new(&program, &mut Rng::new(0), &Device::Cpu, DType::F64).unwrap();
        let z = Tensor::zeros((2, 128), DType::F64, &Device::Cpu).unwrap();
        let e: Vec<f64> = bias
            .call1("energy", &[("z", &z)], &ParamMode::Detached(&params))
            .unwrap()
            .to_vec1()
            .unwrap();
        // −log N(0; 0, I) in 128 dimensions.
        let expected = 64.0 * (2.0 * std::f64::consts::PI).ln();
        assert!((e[0] - expected).abs() < 1e-9, "{} vs {expected}", e[0]);
    }

    #[test]
    fn a_mixture_bias_sums_its_components_out() {
        let (spec, program) = crate::compile_repo_spec("specs/cebm_gmm.yaml");
        let bias = bias_energy(&spec, "x").expect("a bias term");
        let params = Params::new(&program, &mut Rng::new(0), &Device::Cpu, DType::F64).unwrap();
        let mu: Vec<Vec<f64>> = params.get("parameters.mu").as_tensor().to_vec2().unwrap();
        let z = Tensor::new(mu[3].as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let e: Vec<f64> = bias
            .call1("energy", &[("z", &z)], &ParamMode::Detached(&params))
            .unwrap()
            .to_vec1()
            .unwrap();
        // log σ = 0: −log (1/10 Σ_k N(z; μ_k, I)) by hand.
        let half_log_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
        let logs: Vec<f64> = mu
            .iter()
            .map(|m| {
                -m.iter()
                    .zip(&mu[3])
                    .map(|(a, b)| 0.5 * (a - b).powi(2) + half_log_2pi)
                    .sum::<f64>()
            })
            .collect();
        let top = logs.iter().cloned().fold(f64::MIN, f64::max);
        let lse = top + logs.iter().map(|l| (l - top).exp()).sum::<f64>().ln();
        let expected = -(lse - 10f64.ln());
        assert!((e[0] - expected).abs() < 1e-6, "{} vs {expected}", e[0]);
    }
}
