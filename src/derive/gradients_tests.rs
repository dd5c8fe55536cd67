//! Numeric tests of the derived input gradients: each gradient function, evaluated in f64 by the
//! reference evaluator, against central finite differences of the original function.
//!
//! Tolerance. With step ε the central difference has truncation error ε²/6·|f'''| (≈ 1e-13 for
//! ε = 1e-6 and moderate third derivatives) and rounding error ≈ u·S/ε, u ≈ 1.1e-16, S the
//! magnitude of the intermediate values that cancel in f(x+ε) − f(x−ε) (≈ |f| for well-scaled
//! functions: ≈ 1e-10·|f|). For the hand-built test functions (|f| ≲ 200, gradients of order 1)
//! both stay ≲ 1e-8 relative to the gradient, so a relative tolerance of 1e-6 leaves two orders of
//! magnitude of headroom, while a wrong derivative (a missing factor, a sign, a transposed weight)
//! is off by O(1). Components much smaller than the largest are compared against 1e-3 of the
//! largest, so that cancellation in a near-zero component does not count as a relative error.
//!
//! The project's specs at their initial parameters are not that well scaled: the conjugate EBMs'
//! energies depend on x only weakly (gradients ≈ 1e-4) through intermediate values of order 100,
//! and the MNIST posteriors sum 784 squared errors, so the rounding noise of the difference
//! (≈ 1e-8 absolute) exceeds 1e-6 of some components. There a component that misses the tolerance
//! at ε is also estimated at the steps 1e-5, 1e-4 and 1e-3 (truncation error grows as h², rounding
//! error shrinks as 1/h) and must agree to 1e-6 at one of them: a wrong gradient disagrees by
//! O(|g|) at every step. The tests print both the error at ε and the error at the best step.

use super::*;
use crate::ir::eval::{ParamValues, Tensor, eval_function, init_params};
use crate::ir::validate::validate;
use crate::ir::{ParamInfo, ParamInit};

const EPS: f64 = 1e-6;
const TOL: f64 = 1e-6;

/// splitmix64 + Box–Muller, for test inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u1, u2) = (1.0 - self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    fn tensor(&mut self, shape: &[usize], scale: f64) -> Tensor {
        let n = shape.iter().product();
        Tensor::new(
            shape.to_vec(),
            (0..n).map(|_| scale * self.normal()).collect(),
        )
    }
}

/// The first output of `f`.
fn value(p: &Program, f: &str, inputs: &[(&str, Tensor)], params: &ParamValues) -> Tensor {
    eval_function(p, f, inputs, params).remove(0).1
}

/// Checks the gradient function `gname` (outputs `value`, `grad_<wrt>`) against central finite
/// differences of `f`; `max_coords` bounds the number of coordinates perturbed. Returns the worst
/// relative error at step ε, and (with `sweep`) the worst over coordinates of the best relative
/// error over the steps ε, 1e-5, 1e-4, 1e-3 (see the module docs).
#[allow(clippy::too_many_arguments)]
fn fd_check(
    p: &Program,
    f: &str,
    gname: &str,
    wrt: &str,
    inputs: &[(&str, Tensor)],
    params: &ParamValues,
    max_coords: usize,
    sweep: bool,
) -> (f64, f64) {
    let outs = eval_function(p, gname, inputs, params);
    assert_eq!(outs[0].0, "value");
    assert_eq!(outs[1].0, format!("grad_{wrt}"));
    let v0 = value(p, f, inputs, params);
    assert_eq!(outs[0].1, v0, "{gname}: value differs from {f}");
    let grad = &outs[1].1;
    let wi = inputs
        .iter()
        .position(|(n, _)| *n == wrt)
        .expect("wrt among the inputs");
    let x0 = &inputs[wi].1;
    assert_eq!(grad.shape, x0.shape, "{gname}: gradient shape");
    assert!(
        grad.data.iter().all(|g| g.is_finite()),
        "{gname}: non-finite gradient {grad:?}"
    );
    let batch = x0.shape[0];
    let per = x0.numel() / batch;
    let n = x0.numel();
    let coords: Vec<usize> = if n <= max_coords {
        (0..n).collect()
    } else {
        let mut rng = Rng(n as u64 * 31 + 7);
        (0..max_coords)
            .map(|_| (rng.next() % n as u64) as usize)
            .collect()
    };
    let scale = grad
        .data
        .iter()
        .fold(0.0f64, |m, g| m.max(g.abs()))
        .max(1e-12);
    let (mut worst, mut worst_best) = (0.0f64, 0.0f64);
    // Where the rows are independent, only the perturbed example's value moves: differentiate it
    // alone (fewer cancelling terms); else the sum over the batch.
    let independent = crate::ir::rows::independent(p, gname, &format!("grad_{wrt}"));
    for k in coords {
        let b = k / per;
        let at = |delta: f64| {
            let mut ins: Vec<(&str, Tensor)> = inputs.to_vec();
            ins[wi].1.data[k] += delta;
            let v = value(p, f, &ins, params);
            if independent {
                v.data[b]
            } else {
                v.data.iter().sum()
            }
        };
        let fd_at = |eps: f64| (at(eps) - at(-eps)) / (2.0 * eps);
        let fd = fd_at(EPS);
        let g = grad.data[k];
        let denom = g.abs().max(fd.abs()).max(1e-3 * scale);
        let err = (fd - g).abs() / denom;
        worst = worst.max(err);
        let best = if err < 1e-7 || !sweep {
            err
        } else {
            // Rounding-limited at ε: the best of larger steps (truncation ∝ h², rounding ∝ 1/h).
            [1e-5, 1e-4, 1e-3]
                .iter()
                .map(|h| (fd_at(*h) - g).abs() / denom)
                .fold(err, f64::min)
        };
        assert!(
            best < TOL,
            "{gname}: ∂/∂{wrt}[{k}] = {g} by reverse mode, {fd} by finite differences (relative error {err:.2e}; \
             estimates at steps 1e-5, 1e-4, 1e-3: {:?})",
            [1e-5, 1e-4, 1e-3].map(fd_at)
        );
        worst_best = worst_best.max(best);
    }
    (worst, worst_best)
}

/// Where the rows are found independent, row 0 of the gradient on the whole batch equals the
/// gradient of row 0 alone (the batched inputs cut to their first row).
fn check_rows_independent(
    p: &Program,
    gname: &str,
    wrt: &str,
    inputs: &[(&str, Tensor)],
    params: &ParamValues,
) {
    let output = format!("grad_{wrt}");
    let grad = |inputs: &[(&str, Tensor)]| {
        let outs = eval_function(p, gname, inputs, params);
        outs.into_iter().find(|(n, _)| *n == output).unwrap().1
    };
    let batched: Vec<&str> = p
        .function(gname)
        .unwrap()
        .inputs
        .iter()
        .filter(|(_, id)| p.node(*id).shape.batched)
        .map(|(n, _)| n.as_str())
        .collect();
    let first_row = |t: &Tensor| {
        let per_row = t.data.len() / t.shape[0];
        let mut shape = t.shape.clone();
        shape[0] = 1;
        Tensor::new(shape, t.data[..per_row].to_vec())
    };
    let row0: Vec<(&str, Tensor)> = inputs
        .iter()
        .map(|(n, t)| {
            (
                *n,
                if batched.contains(n) {
                    first_row(t)
                } else {
                    t.clone()
                },
            )
        })
        .collect();
    let (whole, alone) = (grad(inputs), grad(&row0));
    assert_eq!(
        whole.shape[0],
        inputs.iter().find(|(n, _)| *n == wrt).unwrap().1.shape[0]
    );
    for (a, b) in first_row(&whole).data.iter().zip(&alone.data) {
        assert!(
            (a - b).abs() <= 1e-12 * (1.0 + a.abs()),
            "{gname}: row 0 {a} vs {b} alone"
        );
    }
}

/// Derives `∂ f / ∂ wrt` with [`input_gradient`], validates the program, and checks it numerically.
fn check(
    p: &mut Program,
    f: &str,
    wrt: &str,
    inputs: &[(&str, Tensor)],
    params: &ParamValues,
) -> f64 {
    let gname = format!("{f}_grad_{wrt}");
    assert!(input_gradient(p, f, wrt, &gname), "no input {wrt} of {f}");
    if let Err(e) = validate(p) {
        panic!("{e}\n{}", crate::ir::print::print(p));
    }
    let g = p.function(&gname).unwrap();
    assert_eq!(g.inputs, p.function(f).unwrap().inputs);
    assert_eq!(
        g.notes[0],
        format!("∂/∂{wrt} of {f} by reverse mode over the IR; no parameter gradients")
    );
    let independent = crate::ir::rows::independent(p, &gname, &format!("grad_{wrt}"));
    assert_eq!(g.notes.len(), 1 + usize::from(independent), "{:?}", g.notes);
    if independent {
        check_rows_independent(p, &gname, wrt, inputs, params);
    }
    let (worst, _) = fd_check(p, f, &gname, wrt, inputs, params, 200, false);
    eprintln!("{gname}: worst relative error {worst:.2e}");
    worst
}

/// A program with the given parameters (normal(0, std) initial values), its values, and a builder.
fn program(params: &[(&str, &[usize])], std: f64, seed: u64) -> (Program, ParamValues) {
    let p = Program {
        params: params
            .iter()
            .map(|(n, d)| ParamInfo {
                path: n.to_string(),
                dims: d.to_vec(),
                init: ParamInit::Normal { mean: 0.0, std },
            })
            .collect(),
        ..Program::default()
    };
    let values = init_params(&p, seed);
    (p, values)
}

fn pnode(b: &mut Builder, path: &str) -> NodeId {
    let dims = b
        .program
        .param(path)
        .unwrap_or_else(|| panic!("param {path}"))
        .dims
        .clone();
    b.param(path, dims)
}

fn linear(b: &mut Builder, x: NodeId, layer: &str) -> NodeId {
    let w = pnode(b, &format!("{layer}.weight"));
    let bias = pnode(b, &format!("{layer}.bias"));
    let mut s = b.shape(x).clone();
    *s.dims.last_mut().unwrap() = b.shape(w).dims[0];
    b.node(Op::Linear, vec![x, w, bias], s)
}

fn op(b: &mut Builder, op: Op, inputs: Vec<NodeId>, batched: bool, dims: &[usize]) -> NodeId {
    b.node(
        op,
        inputs,
        Shape {
            batched,
            dims: dims.to_vec(),
        },
    )
}

#[test]
fn mlp_with_every_activation() {
    let (mut p, params) = program(
        &[
            ("l1.weight", &[5, 4]),
            ("l1.bias", &[5]),
            ("l2.weight", &[5, 5]),
            ("l2.bias", &[5]),
            ("l3.weight", &[6, 5]),
            ("l3.bias", &[6]),
            ("l4.weight", &[3, 6]),
            ("l4.bias", &[3]),
            ("l5.weight", &[1, 3]),
            ("l5.bias", &[1]),
        ],
        0.9,
        1,
    );
    let mut b = Builder::new(&mut p);
    let z = b.input("z", Shape::batched(vec![4]));
    let h = linear(&mut b, z, "l1");
    let h = b.unary(Unary::LeakyRelu(0.2), h);
    let h = linear(&mut b, h, "l2");
    let h2 = b.unary(Unary::Swish, h);
    let h = linear(&mut b, h2, "l3");
    let h = b.unary(Unary::Gelu, h);
    let h = b.unary(Unary::Softplus, h);
    let h = linear(&mut b, h, "l4");
    let h = b.unary(Unary::Tanh, h);
    let out = linear(&mut b, h, "l5"); // [B, 1]
    let f = b.reshape(out, vec![]); // one number per example: a constant adjoint into a Linear
    let sq = b.unary(Unary::Sqr, h2);
    let reg = b.sum_all(sq);
    let reg = b.scale(reg, 0.1);
    let total = b.add(f, reg);
    b.function(
        "f",
        vec![("z".into(), z)],
        vec![("energy".into(), total)],
        vec![],
    );
    let mut rng = Rng(11);
    let zv = rng.tensor(&[3, 4], 1.0);
    check(&mut p, "f", "z", &[("z", zv)], &params);
}

#[test]
fn every_unary_derivative() {
    let (mut p, params) = program(&[("c", &[16, 5])], 1.0, 2);
    let mut b = Builder::new(&mut p);
    let z = b.input("z", Shape::batched(vec![5]));
    let c = pnode(&mut b, "c");
    let sp = b.unary(Unary::Softplus, z);
    let half = b.constant(0.3);
    let pos = b.add(sp, half);
    let mut terms = Vec::new();
    for u in [
        Unary::Neg,
        Unary::Exp,
        Unary::Sqr,
        Unary::Softplus,
        Unary::Sigmoid,
        Unary::Tanh,
        Unary::Relu,
        Unary::LeakyRelu(0.1),
        Unary::Gelu,
        Unary::Swish,
        Unary::Step,
    ] {
        terms.push(b.unary(u, z));
    }
    for u in [Unary::Log, Unary::Sqrt, Unary::Recip] {
        terms.push(b.unary(u, pos));
    }
    let step_times = b.mul(terms[10], z);
    terms.push(step_times);
    let mut total = None;
    for (i, t) in terms.iter().enumerate() {
        let ci = op(
            &mut b,
            Op::Select { axis: 0, index: i },
            vec![c],
            false,
            &[5],
        );
        let weighted = b.mul(*t, ci);
        let s = b.sum_all(weighted);
        total = Some(total.map_or(s, |acc| b.add(acc, s)));
    }
    // Constant adjoints straight into unary ops.
    let th = b.unary(Unary::Tanh, z);
    let s = b.sum_all(th);
    let total = b.add(total.unwrap(), s);
    b.function(
        "f",
        vec![("z".into(), z)],
        vec![("v".into(), total)],
        vec![],
    );
    let zv = Rng(3).tensor(&[2, 5], 1.2);
    check(&mut p, "f", "z", &[("z", zv)], &params);
}

#[test]
fn conv_then_transposed_conv_then_tanh() {
    // Odd sizes, stride 2, padding 1; the k = 4 path needs output padding 1 in its gradient.
    let (mut p, params) = program(
        &[
            ("c1.weight", &[3, 2, 3, 3]),
            ("c1.bias", &[3]),
            ("t1.weight", &[3, 2, 3, 3]),
            ("t1.bias", &[2]),
            ("c2.weight", &[3, 2, 4, 4]),
            ("c2.bias", &[3]),
            ("t2.weight", &[3, 2, 4, 4]),
            ("t2.bias", &[2]),
            ("target", &[2, 7, 7]),
        ],
        0.5,
        3,
    );
    let mut b = Builder::new(&mut p);
    let x = b.input("x", Shape::batched(vec![2, 7, 7]));
    let (w1, b1, w2, b2) = (
        pnode(&mut b, "c1.weight"),
        pnode(&mut b, "c1.bias"),
        pnode(&mut b, "t1.weight"),
        pnode(&mut b, "t1.bias"),
    );
    let h = op(
        &mut b,
        Op::Conv2d {
            stride: 2,
            padding: 1,
        },
        vec![x, w1, b1],
        true,
        &[3, 4, 4],
    );
    let h = b.unary(Unary::Swish, h);
    let y = op(
        &mut b,
        Op::ConvTranspose2d {
            stride: 2,
            padding: 1,
            output_padding: 0,
        },
        vec![h, w2, b2],
        true,
        &[2, 7, 7],
    );
    let y = b.unary(Unary::Tanh, y);
    let target = pnode(&mut b, "target");
    let prod = b.mul(y, target);
    let a = b.sum_all(prod);
    let (w3, b3, w4, b4) = (
        pnode(&mut b, "c2.weight"),
        pnode(&mut b, "c2.bias"),
        pnode(&mut b, "t2.weight"),
        pnode(&mut b, "t2.bias"),
    );
    let h = op(
        &mut b,
        Op::Conv2d {
            stride: 2,
            padding: 1,
        },
        vec![x, w3, b3],
        true,
        &[3, 3, 3],
    );
    let h = b.unary(Unary::LeakyRelu(0.2), h);
    let y = op(
        &mut b,
        Op::ConvTranspose2d {
            stride: 2,
            padding: 1,
            output_padding: 1,
        },
        vec![h, w4, b4],
        true,
        &[2, 7, 7],
    );
    let y = b.unary(Unary::Tanh, y);
    let sq = b.unary(Unary::Sqr, y);
    let c = b.sum_all(sq);
    // A constant adjoint into a convolution.
    let h = op(
        &mut b,
        Op::Conv2d {
            stride: 2,
            padding: 1,
        },
        vec![x, w1, b1],
        true,
        &[3, 4, 4],
    );
    let d = b.sum_all(h);
    let t = b.add(a, c);
    let t = b.add(t, d);
    b.function("f", vec![("x".into(), x)], vec![("v".into(), t)], vec![]);
    let xv = Rng(5).tensor(&[2, 2, 7, 7], 1.0);
    check(&mut p, "f", "x", &[("x", xv)], &params);
}

#[test]
fn gaussian_log_density_of_a_generator() {
    // log N(x; g(z), s²) + log N(z; 0, 1) (constants dropped), g a small deconv net: the posterior
    // Langevin target of a latent EBM.
    let (mut p, params) = program(
        &[
            ("g0.weight", &[4, 3, 4, 4]),
            ("g0.bias", &[3]),
            ("g1.weight", &[3, 1, 4, 4]),
            ("g1.bias", &[1]),
        ],
        0.4,
        4,
    );
    let mut b = Builder::new(&mut p);
    let x = b.input("x", Shape::batched(vec![1, 8, 8]));
    let z = b.input("z", Shape::batched(vec![4]));
    let zi = b.reshape(z, vec![4, 1, 1]);
    let (w0, b0, w1, b1) = (
        pnode(&mut b, "g0.weight"),
        pnode(&mut b, "g0.bias"),
        pnode(&mut b, "g1.weight"),
        pnode(&mut b, "g1.bias"),
    );
    let h = op(
        &mut b,
        Op::ConvTranspose2d {
            stride: 1,
            padding: 0,
            output_padding: 0,
        },
        vec![zi, w0, b0],
        true,
        &[3, 4, 4],
    );
    let h = b.unary(Unary::LeakyRelu(0.2), h);
    let g = op(
        &mut b,
        Op::ConvTranspose2d {
            stride: 2,
            padding: 1,
            output_padding: 0,
        },
        vec![h, w1, b1],
        true,
        &[1, 8, 8],
    );
    let g = b.unary(Unary::Tanh, g);
    let d = b.sub(x, g);
    let d2 = b.unary(Unary::Sqr, d);
    let s = b.constant(0.3);
    let s2 = b.unary(Unary::Sqr, s);
    let two_s2 = b.scale(s2, 2.0);
    let q = b.div(d2, two_s2);
    let ll = b.sum_all(q);
    let ll = b.neg(ll);
    let zz = b.unary(Unary::Sqr, z);
    let lp = b.sum_all(zz);
    let lp = b.scale(lp, -0.5);
    let post = b.add(ll, lp);
    b.function(
        "posterior",
        vec![("x".into(), x), ("z".into(), z)],
        vec![("log_density".into(), post)],
        vec![],
    );
    let mut rng = Rng(6);
    let xv = rng.tensor(&[2, 1, 8, 8], 0.5);
    let zv = rng.tensor(&[2, 4], 1.0);
    check(
        &mut p,
        "posterior",
        "z",
        &[("x", xv.clone()), ("z", zv.clone())],
        &params,
    );
    check(&mut p, "posterior", "x", &[("x", xv), ("z", zv)], &params);
}

#[test]
fn broadcasting_binary_ops_with_unbatched_params() {
    let (mut p, params) = program(
        &[("a", &[2, 3]), ("c", &[2, 1]), ("d", &[3]), ("w", &[2, 3])],
        1.0,
        5,
    );
    let mut b = Builder::new(&mut p);
    let z = b.input("z", Shape::batched(vec![3]));
    let (a, c, d, w) = (
        pnode(&mut b, "a"),
        pnode(&mut b, "c"),
        pnode(&mut b, "d"),
        pnode(&mut b, "w"),
    );
    let u = b.mul(z, a); // [B, 2, 3]
    let uc = b.add(u, c);
    let dp = b.unary(Unary::Softplus, d);
    let half = b.constant(0.5);
    let dp = b.add(dp, half);
    let v = b.div(uc, dp); // numerator on the path
    let mut terms = vec![v];
    terms.push(b.binary(Binary::Max, v, a));
    terms.push(b.binary(Binary::Min, c, v));
    let spv = b.unary(Unary::Softplus, v);
    let tenth = b.constant(0.1);
    let base = b.add(spv, tenth);
    let k = b.constant(1.5);
    terms.push(b.binary(Binary::Pow, base, k)); // base on the path
    let two = b.constant(2.0);
    let tz = b.scale(z, 0.5);
    terms.push(b.binary(Binary::Pow, two, tz)); // exponent on the path, [B, 3]
    terms.push(b.binary(Binary::Pow, base, tz)); // both
    terms.push(b.sub(c, v)); // subtrahend on the path
    let zz = b.unary(Unary::Sqr, z);
    let one = b.constant(1.0);
    let den = b.add(zz, one);
    terms.push(b.div(a, den)); // denominator on the path
    let s = b.sum(z, vec![0]); // [B]
    terms.push(b.mul(s, w)); // a per-example scalar broadcast over [2, 3]
    terms.push(b.node(Op::Where, vec![v, u, z], Shape::batched(vec![2, 3])));
    terms.push(b.node(Op::Where, vec![c, z, a], Shape::batched(vec![2, 3])));
    let mut total = None;
    for t in terms {
        let weighted = b.mul(t, w);
        let sum = b.sum_all(weighted);
        total = Some(total.map_or(sum, |acc| b.add(acc, sum)));
    }
    b.function(
        "f",
        vec![("z".into(), z)],
        vec![("v".into(), total.unwrap())],
        vec![],
    );
    let zv = Rng(7).tensor(&[3, 3], 1.0);
    check(&mut p, "f", "z", &[("z", zv)], &params);
}

/// A batch statistic: each example centred on the batch mean. Row i of the gradient reads every
/// row, so the gradient carries no rows-independent note (and, were one wrongly given, the check
/// of row 0 alone would fail).
#[test]
fn a_batch_mean_makes_the_rows_depend_on_each_other() {
    let (mut p, params) = program(&[("w", &[3])], 1.0, 6);
    let mut b = Builder::new(&mut p);
    let x = b.input("x", Shape::batched(vec![3]));
    let w = pnode(&mut b, "w");
    let total = b.node(Op::SumTo, vec![x], Shape::fixed(vec![3]));
    let back = b.node(Op::Broadcast, vec![total], Shape::batched(vec![3]));
    let mean = b.scale(back, 0.25);
    let centred = b.sub(x, mean);
    let sq = b.unary(Unary::Sqr, centred);
    let weighted = b.mul(sq, w);
    let v = b.sum_all(weighted);
    b.function("f", vec![("x".into(), x)], vec![("v".into(), v)], vec![]);
    let xv = Rng(3).tensor(&[4, 3], 1.0);
    check(&mut p, "f", "x", &[("x", xv)], &params);
    assert!(!crate::ir::rows::independent(&p, "f_grad_x", "grad_x"));
}

#[test]
fn sums_broadcasts_and_sum_to() {
    let (mut p, params) = program(&[("w", &[3]), ("a", &[2, 3]), ("m", &[2, 4])], 1.0, 6);
    let mut b = Builder::new(&mut p);
    let x = b.input("x", Shape::batched(vec![2, 3, 4]));
    let z = b.input("z", Shape::batched(vec![3]));
    let (w, a, m) = (pnode(&mut b, "w"), pnode(&mut b, "a"), pnode(&mut b, "m"));
    let s02 = b.sum(x, vec![0, 2]); // [B, 3]
    let t1 = b.mul(s02, w);
    let t1 = b.sum_all(t1);
    let s1 = b.sum(x, vec![1]); // [B, 2, 4]
    let s1 = b.unary(Unary::Sqr, s1);
    let t2 = b.mul(s1, m);
    let t2 = b.sum_all(t2);
    let xz = b.sum(x, vec![2]); // [B, 2, 3]
    let zb = b.node(Op::Broadcast, vec![z], Shape::batched(vec![2, 3]));
    let prod = b.mul(zb, xz);
    let prod = b.mul(prod, a);
    let st = b.node(Op::SumTo, vec![prod], Shape::batched(vec![1, 3]));
    let st = b.unary(Unary::Tanh, st);
    let t3 = b.sum_all(st);
    let t = b.add(t1, t2);
    let t = b.add(t, t3);
    b.function(
        "f",
        vec![("x".into(), x), ("z".into(), z)],
        vec![("v".into(), t)],
        vec![],
    );
    let mut rng = Rng(8);
    let (xv, zv) = (rng.tensor(&[2, 2, 3, 4], 0.5), rng.tensor(&[2, 3], 1.0));
    check(
        &mut p,
        "f",
        "x",
        &[("x", xv.clone()), ("z", zv.clone())],
        &params,
    );
    check(&mut p, "f", "z", &[("x", xv), ("z", zv)], &params);
}

#[test]
fn logsumexp_softmax_log_softmax_over_an_axis() {
    let (mut p, params) = program(&[("w", &[4]), ("m", &[3, 4]), ("n", &[3, 4])], 1.0, 7);
    let mut b = Builder::new(&mut p);
    let x = b.input("x", Shape::batched(vec![3, 4]));
    let (w, m, n) = (pnode(&mut b, "w"), pnode(&mut b, "m"), pnode(&mut b, "n"));
    let l = op(&mut b, Op::LogSumExp { axis: 0 }, vec![x], true, &[4]);
    let t1 = b.mul(l, w);
    let t1 = b.sum_all(t1);
    let sm = op(&mut b, Op::Softmax { axis: 1 }, vec![x], true, &[3, 4]);
    let t2 = b.mul(sm, m);
    let t2 = b.sum_all(t2);
    let ls = op(&mut b, Op::LogSoftmax { axis: 0 }, vec![x], true, &[3, 4]);
    let t3 = b.mul(ls, n);
    let t3 = b.sum_all(t3);
    // Constant adjoints: Σ logsumexp, Σ log_softmax, Σ softmax (whose gradient is 0).
    let l1 = op(&mut b, Op::LogSumExp { axis: 1 }, vec![x], true, &[3]);
    let t4 = b.sum_all(l1);
    let t5 = b.sum_all(ls);
    let t6 = b.sum_all(sm);
    // Σ_k of log_softmax with a size-1 (broadcast) adjoint along the axis.
    let nsum = b.sum(n, vec![0]);
    let ls1 = op(&mut b, Op::LogSoftmax { axis: 0 }, vec![x], true, &[3, 4]);
    let s = b.sum(ls1, vec![0]); // [B, 4]
    let t7 = b.mul(s, nsum);
    let t7 = b.sum_all(t7);
    let mut t = t1;
    for u in [t2, t3, t4, t5, t6, t7] {
        t = b.add(t, u);
    }
    b.function("f", vec![("x".into(), x)], vec![("v".into(), t)], vec![]);
    let xv = Rng(9).tensor(&[2, 3, 4], 1.5);
    check(&mut p, "f", "x", &[("x", xv)], &params);
}

#[test]
fn select_concat_unsqueeze_reshape() {
    let (mut p, params) = program(
        &[
            ("a", &[8]),
            ("c", &[10]),
            ("l.weight", &[3, 5]),
            ("l.bias", &[3]),
            ("m", &[5, 4]),
            ("r", &[2, 3, 9]),
        ],
        1.0,
        8,
    );
    let mut b = Builder::new(&mut p);
    let x = b.input("x", Shape::batched(vec![5]));
    let (a, c, m, r) = (
        pnode(&mut b, "a"),
        pnode(&mut b, "c"),
        pnode(&mut b, "m"),
        pnode(&mut b, "r"),
    );
    let s = op(&mut b, Op::Select { axis: 0, index: 2 }, vec![x], true, &[]);
    let t1 = b.unary(Unary::Sqr, s);
    // Equal pieces (reshape + select), then unequal ones (chunks of the gcd).
    let xx = b.unary(Unary::Sqr, x);
    let cat = op(&mut b, Op::Concat { axis: 0 }, vec![x, xx], true, &[10]);
    let cat = b.unary(Unary::Tanh, cat);
    let t2 = b.mul(cat, c);
    let t2 = b.sum_all(t2);
    let y = linear(&mut b, x, "l");
    let cat2 = op(&mut b, Op::Concat { axis: 0 }, vec![y, x], true, &[8]);
    let cat2 = b.unary(Unary::Sigmoid, cat2);
    let t3 = b.mul(cat2, a);
    let t3 = b.sum_all(t3);
    // A concat whose adjoint is constant, and one with an unbatched piece off the path.
    let cat3 = op(&mut b, Op::Concat { axis: 0 }, vec![xx, a], true, &[13]);
    let t4 = b.sum_all(cat3);
    let u = op(&mut b, Op::Unsqueeze { axis: 1 }, vec![x], true, &[5, 1]);
    let um = b.mul(u, m); // [B, 5, 4]
    let um = b.unary(Unary::Tanh, um);
    let t5 = b.sum_all(um);
    // [B, 5] → reshape... via a concat of three copies [B, 15] → [3, 5] along axis 1 of [2, 3, 9].
    let x3 = op(&mut b, Op::Concat { axis: 0 }, vec![x, xx, x], true, &[15]);
    let x3 = b.reshape(x3, vec![3, 5]);
    let sel = op(
        &mut b,
        Op::Select { axis: 1, index: 4 },
        vec![x3],
        true,
        &[3],
    );
    let x2 = b.unary(Unary::Sqr, x3);
    let big = op(&mut b, Op::Concat { axis: 1 }, vec![x3, x2], true, &[3, 10]);
    let pieces = op(
        &mut b,
        Op::Select { axis: 1, index: 9 },
        vec![big],
        true,
        &[3],
    );
    let pm = b.mul(pieces, sel);
    let t6 = b.sum_all(pm);
    let rr = op(
        &mut b,
        Op::Select { axis: 0, index: 1 },
        vec![r],
        false,
        &[3, 9],
    );
    let rr = op(
        &mut b,
        Op::Select { axis: 1, index: 0 },
        vec![rr],
        false,
        &[3],
    );
    let t7 = b.mul(sel, rr);
    let t7 = b.sum_all(t7);
    let mut t = t1;
    for v in [t2, t3, t4, t5, t6, t7] {
        t = b.add(t, v);
    }
    b.function("f", vec![("x".into(), x)], vec![("v".into(), t)], vec![]);
    let xv = Rng(10).tensor(&[2, 5], 1.0);
    check(&mut p, "f", "x", &[("x", xv)], &params);
}

#[test]
fn matmul_with_unbatched_and_batched_weights() {
    let (mut p, params) = program(&[("w", &[3, 4]), ("v", &[4]), ("u", &[3, 2, 2])], 1.0, 9);
    let mut b = Builder::new(&mut p);
    let x = b.input("x", Shape::batched(vec![3]));
    let k = b.input("k", Shape::batched(vec![3, 2]));
    let (w, v, u) = (pnode(&mut b, "w"), pnode(&mut b, "v"), pnode(&mut b, "u"));
    let h = op(&mut b, Op::MatMul, vec![x, w], true, &[4]);
    let h = b.unary(Unary::Tanh, h);
    let t1 = op(&mut b, Op::MatMul, vec![h, v], true, &[]);
    let q = op(&mut b, Op::MatMul, vec![x, k], true, &[2]);
    let q = b.unary(Unary::Sqr, q);
    let t2 = b.sum_all(q);
    let r = op(&mut b, Op::MatMul, vec![x, u], true, &[2, 2]);
    let r = b.unary(Unary::Sigmoid, r);
    let t3 = b.sum_all(r);
    let t = b.add(t1, t2);
    let t = b.add(t, t3);
    b.function(
        "f",
        vec![("x".into(), x), ("k".into(), k)],
        vec![("v".into(), t)],
        vec![],
    );
    let mut rng = Rng(12);
    let (xv, kv) = (rng.tensor(&[2, 3], 1.0), rng.tensor(&[2, 3, 2], 1.0));
    check(
        &mut p,
        "f",
        "x",
        &[("x", xv.clone()), ("k", kv.clone())],
        &params,
    );
    check(&mut p, "f", "k", &[("x", xv), ("k", kv)], &params);
}

#[test]
fn constant_and_missing_gradients_are_batched() {
    let (mut p, params) = program(&[("l.weight", &[1, 3]), ("l.bias", &[1])], 1.0, 10);
    let mut b = Builder::new(&mut p);
    let x = b.input("x", Shape::batched(vec![3]));
    let z = b.input("z", Shape::batched(vec![2]));
    // A linear function of x: its gradient does not depend on the example.
    let y = linear(&mut b, x, "l");
    let lin = b.reshape(y, vec![]);
    let sel = op(&mut b, Op::Select { axis: 0, index: 1 }, vec![x], true, &[]);
    let t = b.add(lin, sel);
    b.function(
        "f",
        vec![("x".into(), x), ("z".into(), z)],
        vec![("v".into(), t)],
        vec![],
    );
    let mut rng = Rng(13);
    let (xv, zv) = (rng.tensor(&[2, 3], 1.0), rng.tensor(&[2, 2], 1.0));
    check(
        &mut p,
        "f",
        "x",
        &[("x", xv.clone()), ("z", zv.clone())],
        &params,
    );
    // z is an argument the output does not read: a zero gradient.
    check(
        &mut p,
        "f",
        "z",
        &[("x", xv.clone()), ("z", zv.clone())],
        &params,
    );
    let g = eval_function(&p, "f_grad_z", &[("x", xv), ("z", zv)], &params);
    assert_eq!(g[1].1, Tensor::zeros(vec![2, 2]));
    // No such input, no such function: nothing added.
    let n = p.functions.len();
    assert!(!input_gradient(&mut p, "f", "w", "g"));
    assert!(!input_gradient(&mut p, "nope", "x", "g"));
    assert_eq!(p.functions.len(), n);
}

#[test]
fn gradient_shares_the_forward_nodes() {
    let (mut p, _) = program(&[("l.weight", &[4, 3]), ("l.bias", &[4])], 1.0, 11);
    let mut b = Builder::new(&mut p);
    let x = b.input("x", Shape::batched(vec![3]));
    let y = linear(&mut b, x, "l");
    let y = b.unary(Unary::Tanh, y);
    let e = b.sum_all(y);
    b.function("f", vec![("x".into(), x)], vec![("v".into(), e)], vec![]);
    let before = p.nodes.len();
    assert!(input_gradient(&mut p, "f", "x", "g"));
    // Tanh' = 1 − t² reuses t; the backward pass adds only Sqr, 1 − ·, and the matmul.
    let added: Vec<String> = p.nodes[before..].iter().map(|n| n.op.name()).collect();
    assert_eq!(
        added,
        vec!["sqr", "const 1", "sub", "matmul"],
        "{}",
        crate::ir::print::print(&p)
    );
    assert_eq!(
        p.function("g").unwrap().outputs[0],
        ("value".to_string(), e)
    );
}

// ---------------------------------------------------------------------------------------------
// The project's specs.

/// Input values for a spec function: onehot symbols one-hot, observed data uniform in their range,
/// latents standard normal; batch 2.
fn spec_inputs(
    spec: &crate::check::CheckedSpec,
    p: &Program,
    f: &str,
    seed: u64,
) -> Vec<(String, Tensor)> {
    let mut rng = Rng(seed);
    let func = p.function(f).unwrap();
    func.inputs
        .iter()
        .map(|(name, id)| {
            let s = &p.node(*id).shape;
            assert!(s.batched, "{f}: input {name} is not batched");
            let mut shape = vec![2];
            shape.extend(&s.dims);
            let n: usize = shape.iter().product();
            let var = spec.variables.iter().find(|v| &v.name == name);
            let data: Vec<f64> = match var {
                Some(v) if v.is_discrete() => {
                    let k = s.dims[0];
                    let mut d = vec![0.0; n];
                    for b in 0..2 {
                        d[b * k + (rng.next() % k as u64) as usize] = 1.0;
                    }
                    d
                }
                Some(v) if v.observed => {
                    let (lo, hi) = v.range.unwrap_or((-1.0, 1.0));
                    (0..n)
                        .map(|_| lo + (hi - lo) * (0.05 + 0.9 * rng.uniform()))
                        .collect()
                }
                _ => (0..n).map(|_| rng.normal()).collect(),
            };
            (name.clone(), Tensor::new(shape, data))
        })
        .collect()
}

/// Lowers and derives the sampler gradients (with `full`, runs every derivation pass instead), then
/// checks each sampler gradient present. With `full`, only the gradients that need the other passes
/// (the marginal energy of the conjugacy pass) are checked numerically; the others are the same
/// functions the lowering-only run checks.
fn check_specs(dirs: &[&str], full: bool) {
    let pairs = [
        ("prior_log_density", "prior_grad"),
        ("posterior_log_density", "posterior_grad"),
        ("energy", "energy_grad_x"),
        ("marginal_energy", "marginal_energy_grad"),
    ];
    let mut checked = 0;
    for path in crate::repo_spec_paths(dirs) {
        let text = std::fs::read_to_string(&path).unwrap();
        let source = crate::source::SourceFile::new(path.display().to_string(), text);
        let spec = crate::check_source(&source).unwrap_or_else(|d| {
            panic!(
                "{} should check:\n{}",
                path.display(),
                d.render(crate::diag::RenderStyle::Plain)
            )
        });
        let mut p = crate::lower::lower(&spec);
        if p.functions.is_empty() {
            eprintln!("skipped {}: the lowering is still a stub", path.display());
            return;
        }
        if full {
            crate::derive::derive(&mut p, &spec);
        } else {
            derive(&mut p, &spec);
        }
        if let Err(e) = validate(&p) {
            panic!("{}: {e}", path.display());
        }
        let params = init_params(&p, 42);
        for (f, g) in pairs {
            if p.function(g).is_none() || (full && f != "marginal_energy") {
                continue;
            }
            let func = p.function(g).unwrap();
            let wrt = func.outputs[1].0.strip_prefix("grad_").unwrap().to_string();
            assert!(
                func.notes[0].starts_with(&format!("∂/∂{wrt} of {f} by reverse mode")),
                "{:?}",
                func.notes
            );
            let inputs = spec_inputs(&spec, &p, f, 5);
            let inputs: Vec<(&str, Tensor)> = inputs
                .iter()
                .map(|(n, t)| (n.as_str(), t.clone()))
                .collect();
            let (worst, excess) = fd_check(&p, f, g, &wrt, &inputs, &params, 16, true);
            if crate::ir::rows::independent(&p, g, &format!("grad_{wrt}")) {
                check_rows_independent(&p, g, &wrt, &inputs, &params);
            }
            eprintln!(
                "{}: {g} (∂/∂{wrt} of {f}): worst relative error {worst:.2e}, {excess:.2e} at the best step",
                spec.name
            );
            checked += 1;
        }
        // Every sampler target present has its gradient.
        let latent = spec
            .variables
            .iter()
            .any(|v| !v.observed && v.is_continuous());
        for (f, g) in &pairs[..2] {
            assert_eq!(
                p.function(f).is_some() && latent,
                p.function(g).is_some(),
                "{}: {g}",
                spec.name
            );
        }
        let data_space = p.function("energy").is_some() || p.function("marginal_energy").is_some();
        let sgld_grad =
            p.function("energy_grad_x").is_some() || p.function("marginal_energy_grad").is_some();
        assert_eq!(data_space, sgld_grad, "{}: SGLD gradient", spec.name);
    }
    assert!(checked > 0);
}

#[test]
fn sampler_gradients_of_every_project_spec() {
    check_specs(&["specs", "specs/variants"], false);
}

#[test]
fn sampler_gradients_after_every_derivation() {
    check_specs(&["specs", "specs/variants"], true);
}

#[test]
fn sampler_gradients_of_the_ok_cases() {
    check_specs(&["tests/cases/ok"], false);
    check_specs(&["tests/cases/ok"], true);
}
