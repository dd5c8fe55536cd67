//! Conjugacy tests: the polynomial analysis on hand-built graphs (what is recognised, what is
//! rejected and why), the derived posterior and marginal energy against brute-force integration over
//! a grid of z (f64 reference evaluator), and the shipped conjugate specs end to end.
//!
//! Grid tolerances. Every integrand here is a Gaussian (or a mixture of Gaussians) in z whose
//! standard deviations lie between about 0.3 and 1. On a uniform grid of spacing h the trapezoid rule
//! integrates such a function with relative error ≈ 2·exp(−2π²σ²/h²) (spectral accuracy of the
//! trapezoid rule for analytic, rapidly decaying integrands): h = 0.0012 (1-D) and h = 0.025 (2-D)
//! give errors below e^−3000. Truncating the range is checked by each test itself: the integrand at
//! the grid's edge is below e^−40 of its peak. What remains is f64 rounding in the evaluator and in
//! the sums (≈ 1e−13 relative for 10⁵–10⁶ terms), so 1e−9 (1-D) and 1e−8 (2-D) are tolerances with
//! orders of magnitude to spare that still catch any wrong constant (½ log π, log K) or coefficient.

use super::*;
use crate::check::Shape;
use crate::ir::eval::{ParamValues, Tensor, eval_function, init_params};
use crate::ir::validate::validate;
use crate::ir::{ParamInfo, ParamInit};
use crate::source::SourceFile;

const HALF_LOG_2PI: f64 = 0.918_938_533_204_672_8;

// ---- building energies by hand, the way the lowering does --------------------------------------

fn param(b: &mut Builder, path: &str, dims: Vec<usize>, init: ParamInit) -> NodeId {
    b.program.params.push(ParamInfo {
        path: path.to_string(),
        dims: dims.clone(),
        init,
    });
    b.param(path, dims)
}

fn linear(b: &mut Builder, x: NodeId, name: &str, out: usize) -> NodeId {
    let inp = *b.shape(x).dims.last().unwrap();
    let w = param(
        b,
        &format!("networks.{name}.layer0.weight"),
        vec![out, inp],
        ParamInit::Normal {
            mean: 0.0,
            std: 0.4,
        },
    );
    let bias = param(
        b,
        &format!("networks.{name}.layer0.bias"),
        vec![out],
        ParamInit::Normal {
            mean: 0.0,
            std: 0.4,
        },
    );
    let mut s = b.shape(x).clone();
    *s.dims.last_mut().unwrap() = out;
    b.node(Op::Linear, vec![x, w, bias], s)
}

fn dot(b: &mut Builder, x: NodeId, y: NodeId) -> NodeId {
    let m = b.mul(x, y);
    let last = b.shape(m).dims.len() - 1;
    b.sum(m, vec![last])
}

/// `log normal(z | m, exp(log_s))` summed over the last axis, as the lowering writes it.
fn log_normal(b: &mut Builder, z: NodeId, m: NodeId, log_s: NodeId) -> NodeId {
    let s = b.unary(Unary::Exp, log_s);
    let d = b.sub(z, m);
    let d2 = b.unary(Unary::Sqr, d);
    let s2 = b.unary(Unary::Sqr, s);
    let q = b.div(d2, s2);
    let half = b.scale(q, -0.5);
    let e = b.sub(half, log_s);
    let last = b.shape(e).dims.len() - 1;
    let n = b.shape(e).dims[last] as f64;
    let sum = b.sum(e, vec![last]);
    let c = b.constant(-n * HALF_LOG_2PI);
    b.add(sum, c)
}

/// The CEBM statistics of x: `t(x) = linear(x)` reshaped to `[2, d]`, rows t0 and t1.
fn stats_of_x(b: &mut Builder, x: NodeId, d: usize) -> (NodeId, NodeId) {
    let h = linear(b, x, "t", 2 * d);
    let rows = b.reshape(h, vec![2, d]);
    (select(b, rows, 0, 0), select(b, rows, 0, 1))
}

/// E(x, z) = −dot(t0(x), z) + dot(sq(t1(x)), sq(z)) − log normal(z | m(x), exp(log_s)): a Gaussian
/// bias whose mean depends on x through a second linear map.
fn gaussian_program(d: usize) -> Program {
    let mut p = Program {
        name: "hand_gaussian".into(),
        ..Program::default()
    };
    let mut b = Builder::new(&mut p);
    let x = b.input("x", Shape::batched(vec![3]));
    let z = b.input("z", Shape::batched(vec![d]));
    let (t0, t1) = stats_of_x(&mut b, x, d);
    let m = linear(&mut b, x, "m", d);
    let log_s = param(
        &mut b,
        "parameters.log_sigma",
        vec![d],
        ParamInit::Uniform { lo: -0.5, hi: 0.0 },
    );
    let a = dot(&mut b, t0, z);
    let a = b.neg(a);
    let s1 = b.unary(Unary::Sqr, t1);
    let sz = b.unary(Unary::Sqr, z);
    let q = dot(&mut b, s1, sz);
    let lp = log_normal(&mut b, z, m, log_s);
    let e = b.add(a, q);
    let e = b.sub(e, lp);
    b.function(
        "energy",
        vec![("x".into(), x), ("z".into(), z)],
        vec![("energy".into(), e)],
        vec![],
    );
    p
}

/// The GMM-CEBM table with learned weights: entry k is
/// −dot(t0, z) + dot(sq(t1), sq(z)) − log normal(z | mu[k], exp(log_sigma[k])) − log π_k,
/// and `energy = −logsumexp_k(−table) + log K`, as the lowering builds them.
fn mixture_program(d: usize, k: usize) -> Program {
    let mut p = Program {
        name: "hand_mixture".into(),
        ..Program::default()
    };
    let mut b = Builder::new(&mut p);
    let x = b.input("x", Shape::batched(vec![3]));
    let z = b.input("z", Shape::batched(vec![d]));
    let (t0, t1) = stats_of_x(&mut b, x, d);
    let mu = param(
        &mut b,
        "parameters.mu",
        vec![k, d],
        ParamInit::Uniform { lo: -1.5, hi: 1.5 },
    );
    let log_s = param(
        &mut b,
        "parameters.log_sigma",
        vec![k, d],
        ParamInit::Uniform { lo: -0.5, hi: 0.0 },
    );
    let logits = param(
        &mut b,
        "parameters.logits_pi",
        vec![k],
        ParamInit::Normal {
            mean: 0.0,
            std: 1.0,
        },
    );
    let a = dot(&mut b, t0, z);
    let a = b.neg(a);
    let s1 = b.unary(Unary::Sqr, t1);
    let sz = b.unary(Unary::Sqr, z);
    let q = dot(&mut b, s1, sz);
    let base = b.add(a, q);
    let z1 = unsqueeze(&mut b, z, 0);
    let lp = log_normal(&mut b, z1, mu, log_s);
    let log_w = b.node(
        Op::LogSoftmax { axis: 0 },
        vec![logits],
        Shape::fixed(vec![k]),
    );
    let table = b.sub(base, lp);
    let table = b.sub(table, log_w);
    let neg = b.neg(table);
    let lse = reduce(&mut b, Op::LogSumExp { axis: 0 }, neg, 0);
    let e = b.neg(lse);
    let log_k = b.constant((k as f64).ln());
    let e = b.add(e, log_k);
    let args = vec![("x".to_string(), x), ("z".to_string(), z)];
    b.function(
        "energy_table",
        args.clone(),
        vec![("table".into(), table)],
        vec![],
    );
    b.function("energy", args, vec![("energy".into(), e)], vec![]);
    p
}

/// A program whose energy is built by `f(builder, x, z)` (x: `[B, 3]`, z: `[B, d]`).
fn custom(d: usize, f: impl FnOnce(&mut Builder, NodeId, NodeId) -> NodeId) -> Program {
    let mut p = Program {
        name: "custom".into(),
        ..Program::default()
    };
    let mut b = Builder::new(&mut p);
    let x = b.input("x", Shape::batched(vec![3]));
    let z = b.input("z", Shape::batched(vec![d]));
    let e = f(&mut b, x, z);
    b.function(
        "energy",
        vec![("x".into(), x), ("z".into(), z)],
        vec![("energy".into(), e)],
        vec![],
    );
    p
}

fn names(p: &Program) -> Vec<&str> {
    p.functions.iter().map(|f| f.name.as_str()).collect()
}

fn out_shape(p: &Program, f: &str, o: &str) -> Shape {
    let f = p.function(f).unwrap_or_else(|| panic!("no function {f}"));
    let id = f
        .outputs
        .iter()
        .find(|(n, _)| n == o)
        .unwrap_or_else(|| panic!("no output {o}"))
        .1;
    p.node(id).shape.clone()
}

fn arg_names(p: &Program, f: &str) -> Vec<String> {
    p.function(f)
        .unwrap()
        .inputs
        .iter()
        .map(|(n, _)| n.clone())
        .collect()
}

fn note_with<'a>(p: &'a Program, f: &str, prefix: &str) -> Option<&'a String> {
    p.function(f)
        .unwrap()
        .notes
        .iter()
        .find(|n| n.starts_with(prefix))
}

/// Whether any `min` node (the domain guard) feeds the output.
fn has_guard(p: &Program, f: &str) -> bool {
    let roots = p.function(f).unwrap().outputs.iter().map(|(_, id)| *id);
    reachable(p, roots)
        .into_iter()
        .any(|id| p.node(id).op == Op::Binary(Binary::Min))
}

// ---- numeric helpers ------------------------------------------------------------------------

fn lse(v: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = v.collect();
    let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

fn output<'a>(outs: &'a [(String, Tensor)], name: &str) -> &'a Tensor {
    &outs
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no output {name}"))
        .1
}

fn grid(lo: f64, hi: f64, n: usize) -> (Vec<f64>, f64) {
    let h = (hi - lo) / (n - 1) as f64;
    ((0..n).map(|i| lo + i as f64 * h).collect(), h)
}

/// `x` repeated `n` times as a batch.
fn repeat(x: &[f64], n: usize) -> Tensor {
    Tensor::new(
        vec![n, x.len()],
        x.iter().copied().cycle().take(n * x.len()).collect(),
    )
}

fn eval(
    p: &Program,
    f: &str,
    inputs: &[(&str, Tensor)],
    params: &ParamValues,
) -> Vec<(String, Tensor)> {
    eval_function(p, f, inputs, params)
}

fn close(what: &str, got: f64, want: f64, tol: f64) {
    assert!(
        (got - want).abs() <= tol,
        "{what}: closed form {got}, numerical {want} (|Δ| = {:e} > {tol:e})",
        (got - want).abs()
    );
}

/// Log-weights −E at the grid's edge are below e^−40 of the peak: truncation is negligible.
fn assert_negligible_edges(what: &str, log_w: &[f64], edge: impl Fn(usize) -> bool) {
    let peak = log_w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let worst = log_w
        .iter()
        .enumerate()
        .filter(|(i, _)| edge(*i))
        .map(|(_, v)| *v)
        .fold(f64::NEG_INFINITY, f64::max);
    assert!(
        worst - peak < -40.0,
        "{what}: the integrand at the grid's edge is e^{} of its peak",
        worst - peak
    );
}

/// Moments of the normalised weights exp(log_w) over points `z` (per coordinate).
fn moments(log_w: &[f64], z: &[Vec<f64>]) -> (Vec<f64>, Vec<f64>) {
    let norm = lse(log_w.iter().cloned());
    let w: Vec<f64> = log_w.iter().map(|l| (l - norm).exp()).collect();
    let d = z[0].len();
    let mean: Vec<f64> = (0..d)
        .map(|j| w.iter().zip(z).map(|(w, p)| w * p[j]).sum())
        .collect();
    let std: Vec<f64> = (0..d)
        .map(|j| {
            w.iter()
                .zip(z)
                .map(|(w, p)| w * (p[j] - mean[j]).powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .collect();
    (mean, std)
}

/// Points of a 1-D (d = 1) or 2-D (d = 2) grid, row-major, with the cell volume and an edge test.
fn grid_points(
    d: usize,
    lo: f64,
    hi: f64,
    n: usize,
) -> (Vec<Vec<f64>>, f64, impl Fn(usize) -> bool) {
    let (g, h) = grid(lo, hi, n);
    let pts: Vec<Vec<f64>> = match d {
        1 => g.iter().map(|u| vec![*u]).collect(),
        2 => g
            .iter()
            .flat_map(|u| g.iter().map(move |v| vec![*u, *v]))
            .collect(),
        _ => unreachable!(),
    };
    let edge = move |i: usize| {
        let (r, c) = if d == 1 { (i, 1) } else { (i / n, i % n) };
        r == 0 || r == n - 1 || (d == 2 && (c == 0 || c == n - 1))
    };
    (pts, h.powi(d as i32), edge)
}

fn z_tensor(pts: &[Vec<f64>]) -> Tensor {
    Tensor::new(
        vec![pts.len(), pts[0].len()],
        pts.iter().flatten().copied().collect(),
    )
}

const XS: [[f64; 3]; 3] = [[0.3, -0.7, 0.9], [-1.0, 0.2, 0.5], [0.8, 0.8, -0.4]];

/// The derived posterior and marginal energy of `gaussian_program(d)` against the grid.
fn check_gaussian_against_grid(d: usize, lo: f64, hi: f64, n: usize, tol: f64, xs: &[[f64; 3]]) {
    let mut p = gaussian_program(d);
    assert_eq!(
        derive_for(&mut p, "z"),
        Outcome::Conjugate {
            proved: true,
            mixture: None
        }
    );
    validate(&p).unwrap();
    let params = init_params(&p, 11);
    let (pts, vol, edge) = grid_points(d, lo, hi, n);
    for &x in xs {
        let e = eval(
            &p,
            "energy",
            &[("x", repeat(&x, pts.len())), ("z", z_tensor(&pts))],
            &params,
        );
        let log_w: Vec<f64> = output(&e, "energy").data.iter().map(|e| -e).collect();
        assert_negligible_edges("energy", &log_w, &edge);
        let numeric = -(lse(log_w.iter().cloned()) + vol.ln());
        let (mean, std) = moments(&log_w, &pts);

        let one = [("x", repeat(&x, 1))];
        let closed = eval(&p, "marginal_energy", &one, &params);
        close("E(x)", output(&closed, "energy").data[0], numeric, tol);
        let ms = eval(&p, "posterior_mean_std", &one, &params);
        for j in 0..d {
            close("mean", output(&ms, "mean").data[j], mean[j], tol);
            close("std", output(&ms, "std").data[j], std[j], tol);
        }
        let nat = eval(&p, "posterior_natural", &one, &params);
        for j in 0..d {
            let (e1, e2) = (output(&nat, "eta1").data[j], output(&nat, "eta2").data[j]);
            close("−η1/(2η2)", -e1 / (2.0 * e2), mean[j], tol);
            close("√(−1/(2η2))", (-0.5 / e2).sqrt(), std[j], tol);
        }
    }
}

// ---- (a) closed forms against numerical integration --------------------------------------------

#[test]
fn gaussian_1d_matches_numerical_integration() {
    // h = 24/20000 = 0.0012.
    check_gaussian_against_grid(1, -12.0, 12.0, 20001, 1e-9, &XS);
}

#[test]
fn gaussian_2d_matches_numerical_integration() {
    // 801 × 801 points on [−10, 10]², h = 0.025 (one x: the f64 evaluator is slow on 641,601 points).
    check_gaussian_against_grid(2, -10.0, 10.0, 801, 1e-8, &XS[..1]);
}

/// A GMM bias with K = 3 and learned weights: per-component posteriors, responsibilities and the
/// mixture marginal against the grid.
fn check_mixture_against_grid(d: usize, lo: f64, hi: f64, n: usize, tol: f64, xs: &[[f64; 3]]) {
    let k = 3;
    let mut p = mixture_program(d, k);
    assert_eq!(
        derive_for(&mut p, "z"),
        Outcome::Conjugate {
            proved: true,
            mixture: Some(k)
        }
    );
    validate(&p).unwrap();
    assert_eq!(
        out_shape(&p, "posterior_natural", "eta1"),
        Shape::batched(vec![k, d])
    );
    assert_eq!(
        out_shape(&p, "posterior_natural", "eta2"),
        Shape::batched(vec![k, d])
    );
    assert_eq!(
        out_shape(&p, "posterior_mean_std", "responsibilities"),
        Shape::batched(vec![k])
    );
    assert_eq!(
        out_shape(&p, "marginal_energy", "energy"),
        Shape::per_example()
    );
    let params = init_params(&p, 5);
    let (pts, vol, edge) = grid_points(d, lo, hi, n);
    for &x in xs {
        let inputs = [("x", repeat(&x, pts.len())), ("z", z_tensor(&pts))];
        let table = eval(&p, "energy_table", &inputs, &params);
        let table = &output(&table, "table").data;
        // exp(−E(x, z)) = Σ_k exp(−table_k) / K (the energy of `mixture_program`, from its table).
        let log_w: Vec<f64> = (0..pts.len())
            .map(|i| lse((0..k).map(|c| -table[i * k + c])) - (k as f64).ln())
            .collect();
        assert_negligible_edges("energy", &log_w, &edge);
        let numeric = -(lse(log_w.iter().cloned()) + vol.ln());

        let one = [("x", repeat(&x, 1))];
        let closed = eval(&p, "marginal_energy", &one, &params);
        close("E(x)", output(&closed, "energy").data[0], numeric, tol);
        let ms = eval(&p, "posterior_mean_std", &one, &params);
        let mut log_norms = Vec::new();
        for c in 0..k {
            let log_wc: Vec<f64> = (0..pts.len()).map(|i| -table[i * k + c]).collect();
            assert_negligible_edges("component", &log_wc, &edge);
            log_norms.push(lse(log_wc.iter().cloned()) + vol.ln());
            let (mean, std) = moments(&log_wc, &pts);
            for j in 0..d {
                close(
                    "component mean",
                    output(&ms, "mean").data[c * d + j],
                    mean[j],
                    tol,
                );
                close(
                    "component std",
                    output(&ms, "std").data[c * d + j],
                    std[j],
                    tol,
                );
            }
        }
        let total = lse(log_norms.iter().cloned());
        for (c, log_norm) in log_norms.iter().enumerate() {
            close(
                "responsibility",
                output(&ms, "responsibilities").data[c],
                (log_norm - total).exp(),
                tol,
            );
        }
    }
}

#[test]
fn mixture_1d_matches_numerical_integration() {
    check_mixture_against_grid(1, -12.0, 12.0, 20001, 1e-9, &XS);
    // The hand-built `energy` is −logsumexp(−table) + log K, as the grid tests assume.
    let mut p = mixture_program(1, 3);
    derive_for(&mut p, "z");
    let params = init_params(&p, 5);
    let pts = vec![vec![-0.4], vec![0.0], vec![1.3]];
    let inputs = [("x", repeat(&XS[0], 3)), ("z", z_tensor(&pts))];
    let e = eval(&p, "energy", &inputs, &params);
    let t = eval(&p, "energy_table", &inputs, &params);
    for i in 0..3 {
        let row = &output(&t, "table").data[i * 3..i * 3 + 3];
        let want = -lse(row.iter().map(|v| -v)) + 3f64.ln();
        close(
            "energy from table",
            output(&e, "energy").data[i],
            want,
            1e-12,
        );
    }
}

#[test]
fn mixture_2d_matches_numerical_integration() {
    // 801 × 801 points on [−10, 10]² (one x: the f64 evaluator is slow on 641,601 points).
    check_mixture_against_grid(2, -10.0, 10.0, 801, 1e-8, &XS[..1]);
}

// ---- structure of what is recognised ---------------------------------------------------------

#[test]
fn gaussian_functions_have_the_contract_shapes_and_notes() {
    let mut p = gaussian_program(4);
    derive_for(&mut p, "z");
    validate(&p).unwrap();
    assert_eq!(
        names(&p),
        [
            "energy",
            "posterior_natural",
            "posterior_mean_std",
            "marginal_energy"
        ]
    );
    for f in ["posterior_natural", "posterior_mean_std", "marginal_energy"] {
        assert_eq!(arg_names(&p, f), ["x"], "{f} reads x only");
        assert!(!has_guard(&p, f), "{f}: η2 < 0 is proved, no guard");
        let proof =
            note_with(&p, f, "η2 < 0 proved: ").unwrap_or_else(|| panic!("{f}: no proof note"));
        assert!(proof.contains("−sq(t(x)[1]) ≤ 0"), "{proof}");
        assert!(note_with(&p, f, "closed form from `energy`").is_some());
    }
    assert_eq!(
        out_shape(&p, "posterior_natural", "eta1"),
        Shape::batched(vec![4])
    );
    assert_eq!(
        out_shape(&p, "posterior_mean_std", "std"),
        Shape::batched(vec![4])
    );
    assert_eq!(
        out_shape(&p, "marginal_energy", "energy"),
        Shape::per_example()
    );
    assert!(note_with(&p, "marginal_energy", "the ½ log π terms are kept").is_some());
    assert_eq!(p.notes.len(), 1);
    assert!(
        p.notes[0].starts_with("closed-form posterior for z"),
        "{}",
        p.notes[0]
    );
}

#[test]
fn stats_form_with_unconstrained_statistics_gets_a_guard() {
    // E = −dot(t(x), stats(z)) − log normal(z | 0, 1): η2 = t(x)[d..] − ½ may be ≥ 0.
    let d = 2;
    let mut p = custom(d, |b, x, z| {
        let t = linear(b, x, "t", 2 * d);
        let sq = b.unary(Unary::Sqr, z);
        let stats = b.node(
            Op::Concat { axis: 0 },
            vec![z, sq],
            Shape::batched(vec![2 * d]),
        );
        let a = dot(b, t, stats);
        let a = b.neg(a);
        let zero = b.constant(0.0);
        let lp = log_normal(b, z, zero, zero);
        b.sub(a, lp)
    });
    assert_eq!(
        derive_for(&mut p, "z"),
        Outcome::Conjugate {
            proved: false,
            mixture: None
        }
    );
    validate(&p).unwrap();
    for f in ["posterior_natural", "posterior_mean_std", "marginal_energy"] {
        assert!(has_guard(&p, f), "{f} has the guard");
        let note = note_with(&p, f, "η2 < 0 not proved").unwrap();
        assert!(
            note.contains("guard inserted: η2 ← min(η2, −1e-6)"),
            "{note}"
        );
        assert!(note.contains("is of unknown sign"), "{note}");
    }
    // Where η2 < 0 holds, the guard is inactive and the closed form is exact: compare η with the
    // coefficients read off the energy (E(z) at z = 0, ±e_j).
    let params = init_params(&p, 3);
    for x in XS {
        let nat = eval(&p, "posterior_natural", &[("x", repeat(&x, 1))], &params);
        for j in 0..d {
            let pts: Vec<Vec<f64>> = [0.0, 1.0, -1.0]
                .iter()
                .map(|u| (0..d).map(|i| if i == j { *u } else { 0.0 }).collect())
                .collect();
            let e = eval(
                &p,
                "energy",
                &[("x", repeat(&x, 3)), ("z", z_tensor(&pts))],
                &params,
            );
            let e = &output(&e, "energy").data;
            // −E(u) = c + η1 u + η2 u²  ⇒  η1 = (E(−1) − E(1))/2, η2 = (2E(0) − E(1) − E(−1))/2
            let eta1 = (e[2] - e[1]) / 2.0;
            let eta2 = (2.0 * e[0] - e[1] - e[2]) / 2.0;
            close("η1", output(&nat, "eta1").data[j], eta1, 1e-12);
            close(
                "η2 (guarded)",
                output(&nat, "eta2").data[j],
                eta2.min(ETA2_GUARD),
                1e-12,
            );
        }
    }
}

#[test]
fn polynomial_forms_that_are_recognised() {
    // Each energy is conjugate; the comment says which rule it exercises.
    type Make = fn(&mut Builder, NodeId, NodeId) -> NodeId;
    let cases: Vec<(&str, bool, Make)> = vec![
        // ½ Σ (a z + c)² with a z-free a (Sqr of degree 1), written with Pow(·, 2): η2 = −½a² is
        // only ≤ 0 (a may vanish), so conjugate with a guard.
        ("pow 2 of an affine function", false, |b, x, z| {
            let a = linear(b, x, "a", 2);
            let az = b.mul(a, z);
            let c = b.constant(1.5);
            let s = b.add(az, c);
            let two = b.constant(2.0);
            let p = b.binary(Binary::Pow, s, two);
            let p = b.sum(p, vec![0]);
            b.scale(p, 0.5)
        }),
        // z·z (a product of two degree-1 polynomials) divided by a positive constant, plus a sum
        // over a broadcast axis (counted twice) and a sum of z.
        ("z·z / 4 over an unsqueezed axis", true, |b, _x, z| {
            let zz = b.mul(z, z);
            let four = b.constant(4.0);
            let q = b.div(zz, four);
            let q = unsqueeze(b, q, 0);
            let one = b.constant(1.0);
            let q = b.mul(q, one);
            let q = b.sum(q, vec![0, 1]);
            let lin = b.sum(z, vec![0]);
            b.add(q, lin)
        }),
    ];
    for (what, proved, make) in cases {
        let mut p = custom(2, make);
        let outcome = derive_for(&mut p, "z");
        assert_eq!(
            outcome,
            Outcome::Conjugate {
                proved,
                mixture: None
            },
            "{what}"
        );
        validate(&p).unwrap_or_else(|e| panic!("{what}: {e}"));
    }
}

#[test]
fn recognised_forms_agree_with_the_energy_numerically() {
    // ½ Σ_d (a_d(x) z_d + 1.5)² + Σ_d z_d²/0.5 : η2 = −(a²/2 + 2) < 0 everywhere.
    let mut p = custom(1, |b, x, z| {
        let a = linear(b, x, "a", 1);
        let az = b.mul(a, z);
        let c = b.constant(1.5);
        let s = b.add(az, c);
        let two = b.constant(2.0);
        let sq = b.binary(Binary::Pow, s, two);
        let half = b.scale(sq, 0.5);
        let zz = b.mul(z, z);
        let c = b.constant(0.5);
        let q = b.div(zz, c);
        let e = b.add(half, q);
        b.sum(e, vec![0])
    });
    assert_eq!(
        derive_for(&mut p, "z"),
        Outcome::Conjugate {
            proved: true,
            mixture: None
        }
    );
    let params = init_params(&p, 1);
    let (pts, vol, edge) = grid_points(1, -12.0, 12.0, 20001);
    for x in XS {
        let e = eval(
            &p,
            "energy",
            &[("x", repeat(&x, pts.len())), ("z", z_tensor(&pts))],
            &params,
        );
        let log_w: Vec<f64> = output(&e, "energy").data.iter().map(|e| -e).collect();
        assert_negligible_edges("energy", &log_w, &edge);
        let numeric = -(lse(log_w.iter().cloned()) + vol.ln());
        let closed = eval(&p, "marginal_energy", &[("x", repeat(&x, 1))], &params);
        close("E(x)", output(&closed, "energy").data[0], numeric, 1e-9);
    }
}

// ---- (b) what is rejected, with the exact notes ------------------------------------------------

fn rejected(
    d: usize,
    make: impl FnOnce(&mut Builder, NodeId, NodeId) -> NodeId,
) -> (Program, String) {
    let mut p = custom(d, make);
    let before = p.functions.len();
    let outcome = derive_for(&mut p, "z");
    let Outcome::NotConjugate(reason) = outcome else {
        panic!("expected no closed form, got {outcome:?}")
    };
    assert_eq!(p.functions.len(), before, "no functions are emitted");
    assert_eq!(p.notes, std::slice::from_ref(&reason));
    validate(&p).unwrap();
    (p, reason)
}

fn note(reason: &str) -> String {
    format!("no closed-form posterior for z: {reason} ({RECOGNISED})")
}

/// ½ Σ z², so only the term under test breaks conjugacy.
fn quad(b: &mut Builder, z: NodeId) -> NodeId {
    let sq = b.unary(Unary::Sqr, z);
    let s = b.sum(sq, vec![0]);
    b.scale(s, 0.5)
}

#[test]
fn exp_of_z_is_not_conjugate() {
    let (_, reason) = rejected(2, |b, _x, z| {
        let e = b.unary(Unary::Exp, z);
        let e = b.sum(e, vec![0]);
        let q = quad(b, z);
        b.add(e, q)
    });
    assert_eq!(
        reason,
        note("z enters through `exp`, which is not a polynomial of degree ≤ 2 in z")
    );
}

#[test]
fn a_network_applied_to_z_is_not_conjugate() {
    let (_, reason) = rejected(2, |b, _x, z| {
        let h = linear(b, z, "f", 4);
        let h = b.unary(Unary::Tanh, h);
        let f = b.sum(h, vec![0]);
        let q = quad(b, z);
        b.add(f, q)
    });
    assert_eq!(
        reason,
        note("z enters through `linear` (a network), which is not a polynomial of degree ≤ 2 in z")
    );
}

#[test]
fn other_non_conjugate_forms_name_the_op() {
    type Make = Box<dyn FnOnce(&mut Builder, NodeId, NodeId) -> NodeId>;
    let cases: Vec<(&str, Make)> = vec![
        (
            "`mul` multiplies terms of degree 2 and 1 in z, a polynomial of degree 3 > 2",
            Box::new(|b, _x, z| {
                let sq = b.unary(Unary::Sqr, z);
                let cube = b.mul(sq, z);
                let c = b.sum(cube, vec![0]);
                let q = quad(b, z);
                b.add(c, q)
            }),
        ),
        (
            "`sq` squares a term of degree 2 in z, a polynomial of degree 4 > 2",
            Box::new(|b, _x, z| {
                let sq = b.unary(Unary::Sqr, z);
                let q4 = b.unary(Unary::Sqr, sq);
                b.sum(q4, vec![0])
            }),
        ),
        (
            "`sq` of a sum over z's coordinates creates cross terms z_d·z_e, so the posterior does not factorise per dimension",
            Box::new(|b, _x, z| {
                let s = b.sum(z, vec![0]);
                b.unary(Unary::Sqr, s)
            }),
        ),
        (
            "z appears in a divisor (`div`), which is not a polynomial in z",
            Box::new(|b, _x, z| {
                let one = b.constant(1.0);
                let r = b.div(one, z);
                let r = b.sum(r, vec![0]);
                let q = quad(b, z);
                b.add(r, q)
            }),
        ),
        (
            "z enters through `log`, which is not a polynomial of degree ≤ 2 in z",
            Box::new(|b, _x, z| {
                let sq = b.unary(Unary::Sqr, z);
                let one = b.constant(1.0);
                let s = b.add(sq, one);
                let l = b.unary(Unary::Log, s);
                b.sum(l, vec![0])
            }),
        ),
        (
            "z is raised by `pow` to a power other than 1 or 2, which is not a polynomial of degree ≤ 2 in z",
            Box::new(|b, _x, z| {
                let three = b.constant(3.0);
                let c = b.binary(Binary::Pow, z, three);
                let c = b.sum(c, vec![0]);
                let q = quad(b, z);
                b.add(c, q)
            }),
        ),
        (
            "`select(axis=0, index=1)` picks single coordinates of z; the per-dimension analysis needs all of z's coordinates on one axis",
            Box::new(|b, _x, z| {
                let z1 = select(b, z, 0, 1);
                let q = quad(b, z);
                b.add(z1, q)
            }),
        ),
        (
            "−E has no z² term, so exp(−E) is not integrable in z (no Gaussian posterior)",
            Box::new(|b, x, z| {
                let a = linear(b, x, "a", 2);
                dot(b, a, z)
            }),
        ),
        (
            "the energy does not depend on it",
            Box::new(|b, x, _z| {
                let a = linear(b, x, "a", 2);
                b.sum(a, vec![0])
            }),
        ),
    ];
    for (want, make) in cases {
        let (_, reason) = rejected(2, make);
        assert_eq!(reason, note(want));
    }
}

#[test]
fn a_mixture_whose_energy_is_not_the_table_marginal_is_not_derived() {
    let mut p = mixture_program(2, 3);
    // Replace `energy` by a different reduction of the table (a plain sum over components).
    let table = p.function("energy_table").unwrap().outputs[0].1;
    let mut b = Builder::new(&mut p);
    let e = b.sum(table, vec![0]);
    let f = b
        .program
        .functions
        .iter_mut()
        .find(|f| f.name == "energy")
        .unwrap();
    f.outputs[0].1 = e;
    let Outcome::NotConjugate(reason) = derive_for(&mut p, "z") else {
        panic!()
    };
    assert!(
        reason.contains("`energy` is not −logsumexp_k(−energy_table) + log K"),
        "{reason}"
    );
    assert!(p.function("marginal_energy").is_none());
}

#[test]
fn a_matrix_latent_is_not_analysed() {
    let mut p = Program::default();
    let mut b = Builder::new(&mut p);
    let z = b.input("z", Shape::batched(vec![2, 2]));
    let sq = b.unary(Unary::Sqr, z);
    let e = b.sum(sq, vec![0, 1]);
    b.function(
        "energy",
        vec![("z".into(), z)],
        vec![("energy".into(), e)],
        vec![],
    );
    let Outcome::NotConjugate(reason) = derive_for(&mut p, "z") else {
        panic!()
    };
    assert!(
        reason
            .contains("z has shape [B, 2, 2]; the per-dimension analysis handles a vector latent"),
        "{reason}"
    );
}

#[test]
fn the_sign_analysis() {
    let mut p = Program::default();
    let mut b = Builder::new(&mut p);
    let w = param(&mut b, "w", vec![3], ParamInit::Constant(0.0));
    let sq = b.unary(Unary::Sqr, w);
    let e = b.unary(Unary::Exp, w);
    let neg_sq = b.neg(sq);
    let e2 = b.unary(Unary::Sqr, e);
    let two_e2 = b.scale(e2, 2.0);
    let one = b.constant(1.0);
    let inv = b.div(one, two_e2);
    let neg_inv = b.neg(inv);
    let strict = b.add(neg_sq, neg_inv); // −w² − 1/(2 e^{2w}) < 0
    let weak = b.sub(neg_sq, sq); // −2w² ≤ 0
    let unknown = b.add(w, neg_inv);
    let summed = b.sum(strict, vec![0]);
    let mut memo = HashMap::new();
    assert_eq!(sign(&p, strict, &mut memo), Sign(NEG));
    assert_eq!(sign(&p, summed, &mut memo), Sign(NEG));
    assert_eq!(sign(&p, weak, &mut memo), Sign(NEG | ZERO));
    assert_eq!(sign(&p, unknown, &mut memo), ANY);
    assert!(prove_negative(&p, strict).is_ok());
    let err = prove_negative(&p, weak).unwrap_err();
    assert!(err.contains("only known to be ≤ 0"), "{err}");
    let err = prove_negative(&p, unknown).unwrap_err();
    assert!(err.contains("w is of unknown sign"), "{err}");
}

// ---- (c) the shipped specs end to end ----------------------------------------------------------

fn compile(rel: &str) -> Program {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    let source = SourceFile::new(rel, std::fs::read_to_string(path).unwrap());
    compile_text(source)
}

fn compile_text(source: SourceFile) -> Program {
    let spec = crate::check_source(&source).unwrap_or_else(|d| {
        panic!(
            "{} should check:\n{}",
            source.name,
            d.render(crate::diag::RenderStyle::Plain)
        )
    });
    let mut program = crate::lower::lower(&spec);
    derive(&mut program, &spec);
    validate(&program).unwrap_or_else(|e| panic!("{}: {e}", source.name));
    program
}

#[test]
fn shipped_conjugate_specs_get_proved_closed_forms() {
    for (rel, k, d) in [
        ("specs/cebm_gaussian.yaml", None, 128),
        ("specs/cebm_gmm.yaml", Some(10), 128),
        ("specs/variants/cebm_gmm_learned_weights.yaml", Some(10), 64),
        ("tests/cases/ok/conjugate_gaussian.yaml", None, 8),
        ("tests/cases/ok/conjugate_mixture.yaml", Some(4), 8),
        ("tests/cases/ok/block_scalar_expression.yaml", Some(4), 8),
    ] {
        let p = compile(rel);
        let mut dims: Vec<usize> = k.into_iter().collect();
        dims.push(d);
        assert_eq!(
            out_shape(&p, "posterior_natural", "eta2"),
            Shape::batched(dims.clone()),
            "{rel}"
        );
        assert_eq!(
            out_shape(&p, "posterior_mean_std", "mean"),
            Shape::batched(dims),
            "{rel}"
        );
        assert_eq!(
            out_shape(&p, "marginal_energy", "energy"),
            Shape::per_example(),
            "{rel}"
        );
        if let Some(k) = k {
            assert_eq!(
                out_shape(&p, "posterior_mean_std", "responsibilities"),
                Shape::batched(vec![k]),
                "{rel}"
            );
        }
        for f in ["posterior_natural", "posterior_mean_std", "marginal_energy"] {
            assert_eq!(arg_names(&p, f), ["x"], "{rel}: {f}");
            assert!(!has_guard(&p, f), "{rel}: {f} needs no guard");
            let proof = note_with(&p, f, "η2 < 0 proved: ")
                .unwrap_or_else(|| panic!("{rel}: {f}: no proof"));
            assert!(proof.contains("−sq(t(x)[1]) ≤ 0"), "{rel}: {proof}");
            if k.is_some() {
                assert!(
                    proof.contains("−0.5·(1/sq(exp(log_sigma))) < 0"),
                    "{rel}: {proof}"
                );
            } else {
                assert!(proof.contains("−0.5 < 0"), "{rel}: {proof}");
            }
        }
    }
}

#[test]
fn stats_specs_are_conjugate_with_a_guard() {
    for rel in [
        "tests/cases/ok/stats_energy.yaml",
        "tests/cases/ok/network_composition.yaml",
    ] {
        let p = compile(rel);
        assert!(has_guard(&p, "posterior_natural"), "{rel}");
        assert!(
            note_with(&p, "marginal_energy", "η2 < 0 not proved").is_some(),
            "{rel}"
        );
    }
}

#[test]
fn latent_ebm_specs_get_no_conjugacy_functions() {
    let p = compile("tests/cases/ok/ebm_prior.yaml");
    assert!(p.function("posterior_natural").is_none());
    assert!(
        !p.notes.iter().any(|n| n.contains("closed-form")),
        "{:?}",
        p.notes
    );
}

#[test]
fn conjugate_gaussian_spec_marginal_matches_per_dimension_integration() {
    // D = 8. −E is separable, so E(x, z) = E(x, 0) + Σ_d g_d(z_d) with g_d(u) = E(x, u e_d) − E(x, 0),
    // and −log ∫ exp(−E) dz = E(x, 0) − Σ_d log ∫ exp(−g_d(u)) du: eight 1-D integrals, each on
    // 401 points of [−10, 10] (h = 0.05; the posterior std here is ≥ 0.5, so the trapezoid error
    // ≈ exp(−2π²·0.25/h²) ≈ e^−1970 is negligible, as is the truncation, checked below).
    let p = compile("tests/cases/ok/conjugate_gaussian.yaml");
    let params = init_params(&p, 2);
    let d = 8;
    let (g, h) = grid(-10.0, 10.0, 401);
    let xs: Vec<Vec<f64>> = (0..1)
        .map(|s| {
            (0..64)
                .map(|i| ((i * 7 + s * 13) % 17) as f64 / 8.0 - 1.0)
                .collect()
        })
        .collect();
    for x in xs {
        let mut pts = vec![vec![0.0; d]];
        for j in 0..d {
            for u in &g {
                let mut z = vec![0.0; d];
                z[j] = *u;
                pts.push(z);
            }
        }
        let xt = Tensor::new(
            vec![pts.len(), 1, 8, 8],
            x.iter().copied().cycle().take(pts.len() * 64).collect(),
        );
        let e = eval(&p, "energy", &[("x", xt), ("z", z_tensor(&pts))], &params);
        let e = &output(&e, "energy").data;
        let mut numeric = e[0];
        for j in 0..d {
            let log_w: Vec<f64> = (0..g.len())
                .map(|i| -(e[1 + j * g.len() + i] - e[0]))
                .collect();
            assert_negligible_edges("dimension", &log_w, |i| i == 0 || i == g.len() - 1);
            numeric -= lse(log_w.into_iter()) + h.ln();
        }
        let x1 = Tensor::new(vec![1, 1, 8, 8], x.clone());
        let closed = eval(&p, "marginal_energy", &[("x", x1)], &params);
        close("E(x)", output(&closed, "energy").data[0], numeric, 1e-8);
    }
}

const TINY_GMM: &str = "\
ebmc: 1
name: tiny_gmm
variables:
  x: observed real[64] in [-1, 1]
  y: onehot[3]
  z: real[2]
parameters:
  mu: real[3, 2] = uniform(-1.5, 1.5)
  log_sigma: real[3, 2] = uniform(-0.5, 0)
  logits_pi: real[3] = normal(0, 1)
networks:
  t: mlp(x -> 8) -> linear([2, 2])
model:
  energy: -dot(t(x)[0], z) + dot(sq(t(x)[1]), sq(z)) - log normal(z | mu[y], exp(log_sigma[y])) - log categorical(y | softmax(logits_pi))
learn:
  algorithm: contrastive_divergence
  optimizers:
    default: adam(lr = 5e-5)
";

#[test]
fn a_compiled_gmm_spec_matches_2d_integration() {
    // The whole pipeline (check, lower, derive) on a 2-D, K = 3 mixture with learned weights; the
    // grid is 401 × 401 on [−10, 10]² (h = 0.05: trapezoid error ≈ exp(−2π²·0.09/h²) ≈ e^−700).
    let p = compile_text(SourceFile::new("tiny_gmm.yaml", TINY_GMM.to_string()));
    let note = note_with(&p, "marginal_energy", "η2 < 0 proved: ").expect("proved");
    assert!(note.contains("−0.5·(1/sq(exp(log_sigma))) < 0"), "{note}");
    let params = init_params(&p, 9);
    let (pts, vol, edge) = grid_points(2, -10.0, 10.0, 401);
    for s in 0..1 {
        let x: Vec<f64> = (0..64)
            .map(|i| ((i * 5 + s * 11) % 13) as f64 / 6.0 - 1.0)
            .collect();
        let e = eval(
            &p,
            "energy",
            &[("x", repeat(&x, pts.len())), ("z", z_tensor(&pts))],
            &params,
        );
        let log_w: Vec<f64> = output(&e, "energy").data.iter().map(|e| -e).collect();
        assert_negligible_edges("energy", &log_w, &edge);
        let numeric = -(lse(log_w.iter().cloned()) + vol.ln());
        let closed = eval(&p, "marginal_energy", &[("x", repeat(&x, 1))], &params);
        close("E(x)", output(&closed, "energy").data[0], numeric, 1e-8);
    }
}
