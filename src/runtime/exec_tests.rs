//! The executor against the f64 reference evaluator (`crate::ir::eval`) on every function of every
//! project spec, and its tracked mode (parameter gradients by candle's autograd) against finite
//! differences.

use super::*;
use crate::ir::eval::{self, ParamValues, eval_function};
use crate::ir::{Builder, ParamInfo, ParamInit};
use crate::runtime::rng::Rng;
use candle_core::Var;
use miette::Diagnostic;

const DEV: Device = Device::Cpu;

fn to_eval(t: &Tensor) -> eval::Tensor {
    let data = t
        .flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    eval::Tensor::new(t.dims().to_vec(), data)
}

fn from_eval(t: &eval::Tensor) -> Tensor {
    Tensor::from_vec(t.data.clone(), t.shape.as_slice(), &DEV).unwrap()
}

fn eval_params(p: &Params) -> ParamValues {
    p.tensors()
        .iter()
        .map(|(k, v)| (k.clone(), to_eval(v)))
        .collect()
}

/// Whether `got` agrees with the reference `want` within `tol` (relative to max(1, |want|)); NaN
/// and infinities must match exactly. Returns the worst scaled error.
fn agree(got: &eval::Tensor, want: &eval::Tensor, tol: f64, what: &str) -> f64 {
    assert_eq!(got.shape, want.shape, "{what}: shapes differ");
    let mut worst: f64 = 0.0;
    for (i, (a, b)) in got.data.iter().zip(&want.data).enumerate() {
        if !b.is_finite() || !a.is_finite() {
            assert!(
                a.is_nan() && b.is_nan() || a == b,
                "{what}: element {i}: {a} vs {b}"
            );
            continue;
        }
        let err = (a - b).abs() / b.abs().max(1.0);
        worst = worst.max(err);
        assert!(
            err <= tol,
            "{what}: element {i}: {a} vs {b} (error {err:.2e})"
        );
    }
    worst
}

fn spec_paths() -> Vec<std::path::PathBuf> {
    crate::repo_spec_paths(&["specs", "specs/variants"])
}

/// [`crate::compile_repo_spec`] of a path under the repository root.
fn compile(path: &std::path::Path) -> (crate::check::CheckedSpec, Program) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let rel = path.strip_prefix(root).unwrap_or(path);
    crate::compile_repo_spec(&rel.to_string_lossy())
}

/// Arguments of `f`: onehot symbols one-hot, observed data uniform inside their range, everything
/// else standard normal; batch `batch`.
fn spec_inputs(
    spec: &crate::check::CheckedSpec,
    p: &Program,
    f: &str,
    rng: &mut Rng,
    batch: usize,
) -> Vec<(String, eval::Tensor)> {
    let func = p.function(f).unwrap();
    func.inputs
        .iter()
        .map(|(name, id)| {
            let s = &p.node(*id).shape;
            let mut shape = if s.batched { vec![batch] } else { vec![] };
            shape.extend(&s.dims);
            let n: usize = shape.iter().product();
            let rows = if s.batched { batch } else { 1 };
            let var = spec.variables.iter().find(|v| &v.name == name);
            let data = match var {
                Some(v) if v.is_discrete() => {
                    let k = s.dims[0];
                    let mut d = vec![0.0; n];
                    for b in 0..rows {
                        d[b * k + rng.below(k)] = 1.0;
                    }
                    d
                }
                Some(v) if v.observed => {
                    let (lo, hi) = v.range.unwrap_or((-1.0, 1.0));
                    rng.uniform_vec(n, lo + 0.05 * (hi - lo), hi - 0.05 * (hi - lo))
                }
                _ => rng.normal_vec(n, 0.0, 1.0),
            };
            (name.clone(), eval::Tensor::new(shape, data))
        })
        .collect()
}

#[test]
fn agrees_with_the_reference_evaluator_on_every_spec_function() {
    let mut functions = 0;
    let mut specs = 0;
    let mut worst: f64 = 0.0;
    for path in spec_paths() {
        let (spec, program) = compile(&path);
        let exec = Executor::new(&program);
        let params = Params::new(&program, &mut Rng::new(42), &DEV, DType::F64).unwrap();
        let reference = eval_params(&params);
        let mut rng = Rng::new(7);
        for f in &program.functions {
            let inputs = spec_inputs(&spec, &program, &f.name, &mut rng, 3);
            let given: Vec<(&str, eval::Tensor)> = inputs
                .iter()
                .map(|(n, t)| (n.as_str(), t.clone()))
                .collect();
            let want = eval_function(&program, &f.name, &given, &reference);
            let tensors: Vec<(String, Tensor)> = inputs
                .iter()
                .map(|(n, t)| (n.clone(), from_eval(t)))
                .collect();
            let args: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
            let got = exec
                .call(&f.name, &args, &ParamMode::Detached(&params))
                .unwrap();
            let tracked = exec
                .call(&f.name, &args, &ParamMode::Tracked(&params))
                .unwrap();
            assert_eq!(got.len(), want.len());
            // Each output alone (its own plan) gives the same values.
            for (name, t) in &got {
                let alone = exec
                    .call_output(&f.name, name, &args, &ParamMode::Detached(&params))
                    .unwrap();
                let what = format!("{}: {}.{name} alone", spec.name, f.name);
                assert_eq!(to_eval(&alone), to_eval(t), "{what}");
            }
            assert!(
                exec.call_output(
                    &f.name,
                    "no_such_output",
                    &args,
                    &ParamMode::Detached(&params)
                )
                .is_err()
            );
            for (((gn, g), (wn, w)), (_, tr)) in got.iter().zip(&want).zip(&tracked) {
                assert_eq!(gn, wn);
                let what = format!("{}: {}.{gn}", spec.name, f.name);
                worst = worst.max(agree(&to_eval(g), w, 1e-10, &what));
                assert_eq!(
                    to_eval(g),
                    to_eval(tr),
                    "{what}: tracked and detached differ"
                );
            }
            functions += 1;
        }
        specs += 1;
    }
    eprintln!(
        "{functions} functions of {specs} specs agree with the reference; worst relative error {worst:.2e}"
    );
    assert!(
        specs >= 9 && functions > 50,
        "{specs} specs, {functions} functions"
    );
}

// ---------------------------------------------------------------------------------------------
// Hand-built programs: every op, broadcasting corners.

struct Case {
    program: Program,
    params: Params,
    inputs: Vec<(String, Tensor)>,
}

impl Case {
    fn run(&self, mode_tracked: bool) -> Vec<(String, Tensor)> {
        let exec = Executor::new(&self.program);
        let args: Vec<(&str, &Tensor)> = self.inputs.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let mode = if mode_tracked {
            ParamMode::Tracked(&self.params)
        } else {
            ParamMode::Detached(&self.params)
        };
        exec.call("f", &args, &mode).unwrap()
    }

    fn reference(&self) -> Vec<(String, eval::Tensor)> {
        let given: Vec<(&str, eval::Tensor)> = self
            .inputs
            .iter()
            .map(|(n, t)| (n.as_str(), to_eval(t)))
            .collect();
        eval_function(&self.program, "f", &given, &eval_params(&self.params))
    }

    fn check(&self) {
        for ((n, g), (_, w)) in self.run(false).iter().zip(self.reference()) {
            agree(&to_eval(g), &w, 1e-12, n);
        }
    }
}

/// Builds `f` (inputs batched with batch 2 unless their shape says otherwise) and random params.
fn case(
    inputs: &[(&str, Shape)],
    params: &[(&str, Vec<usize>)],
    build: impl FnOnce(&mut Builder, &[NodeId], &[NodeId]) -> Vec<NodeId>,
) -> Case {
    let mut program = Program::default();
    let mut b = Builder::new(&mut program);
    let ins: Vec<NodeId> = inputs.iter().map(|(n, s)| b.input(n, s.clone())).collect();
    let ps: Vec<NodeId> = params.iter().map(|(n, d)| b.param(n, d.clone())).collect();
    let outs = build(&mut b, &ins, &ps);
    let args = inputs
        .iter()
        .zip(&ins)
        .map(|((n, _), id)| (n.to_string(), *id))
        .collect();
    let outs = outs
        .iter()
        .enumerate()
        .map(|(i, id)| (format!("y{i}"), *id))
        .collect();
    b.function("f", args, outs, vec![]);
    program.params = params
        .iter()
        .map(|(n, d)| ParamInfo {
            path: n.to_string(),
            dims: d.clone(),
            init: ParamInit::Normal {
                mean: 0.0,
                std: 0.7,
            },
        })
        .collect();
    let mut rng = Rng::new(99);
    let params = Params::new(&program, &mut rng, &DEV, DType::F64).unwrap();
    let inputs = inputs
        .iter()
        .map(|(n, s)| {
            let mut d = if s.batched { vec![2] } else { vec![] };
            d.extend(&s.dims);
            (
                n.to_string(),
                rng.normal(&d, 0.0, 1.0, &DEV, DType::F64).unwrap(),
            )
        })
        .collect();
    Case {
        program,
        params,
        inputs,
    }
}

fn node(b: &mut Builder, op: Op, inputs: Vec<NodeId>, dims: &[usize], batched: bool) -> NodeId {
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
fn every_op_agrees_with_the_reference() {
    // Unary ops, including the stability corners of softplus and sigmoid.
    let c = case(&[("x", Shape::batched(vec![5]))], &[], |b, i, _| {
        let big = b.scale(i[0], 40.0);
        let mut outs: Vec<NodeId> = [
            Unary::Neg,
            Unary::Exp,
            Unary::Sqr,
            Unary::Softplus,
            Unary::Sigmoid,
            Unary::Tanh,
            Unary::Relu,
            Unary::LeakyRelu(0.2),
            Unary::LeakyRelu(1.5),
            Unary::LeakyRelu(-0.3),
            Unary::Gelu,
            Unary::Swish,
            Unary::Step,
            Unary::Recip,
        ]
        .into_iter()
        .map(|u| b.unary(u, i[0]))
        .collect();
        let sq = b.unary(Unary::Sqr, i[0]);
        outs.push(b.unary(Unary::Log, sq));
        outs.push(b.unary(Unary::Sqrt, sq));
        outs.push(b.unary(Unary::Softplus, big));
        outs.push(b.unary(Unary::Sigmoid, big));
        outs
    });
    c.check();

    // Binary ops: tensor ∘ tensor over batch/event broadcasting, tensor ∘ constant, constant ∘
    // tensor, constant ∘ constant.
    let c = case(
        &[
            ("a", Shape::batched(vec![2, 1])),
            ("s", Shape::per_example()),
        ],
        &[("w", vec![3]), ("m", vec![2, 3])],
        |b, i, p| {
            let mut outs = Vec::new();
            let two = b.constant(2.5);
            let three = b.constant(-3.0);
            let pos = b.unary(Unary::Exp, i[0]);
            for op in [
                Binary::Add,
                Binary::Sub,
                Binary::Mul,
                Binary::Div,
                Binary::Max,
                Binary::Min,
            ] {
                outs.push(b.binary(op, i[0], p[0])); // [B,2,1] ∘ [3] → [B,2,3]
                outs.push(b.binary(op, i[1], p[1])); // [B] ∘ [2,3]
                outs.push(b.binary(op, p[1], i[0])); // [2,3] ∘ [B,2,1]
                outs.push(b.binary(op, i[0], two));
                outs.push(b.binary(op, two, i[0]));
                let cc = b.binary(op, two, three);
                outs.push(b.binary(Binary::Mul, cc, i[1]));
            }
            outs.push(b.binary(Binary::Pow, pos, p[0]));
            outs.push(b.binary(Binary::Pow, i[0], two));
            outs.push(b.binary(Binary::Pow, i[0], three));
            outs.push(b.binary(Binary::Pow, two, i[0]));
            outs.push(b.binary(Binary::Pow, two, three));
            outs
        },
    );
    c.check();

    // Linear (batched, extra leading dims, unbatched), MatMul (plain, batched weight, unbatched x
    // with a batched weight), Sum, LogSumExp, Softmax, LogSoftmax, Select, Concat, Unsqueeze,
    // Reshape, Broadcast, SumTo, Where.
    let c = case(
        &[
            ("x", Shape::batched(vec![2, 4])),
            ("v", Shape::batched(vec![4, 3])),
        ],
        &[
            ("w", vec![3, 4]),
            ("bias", vec![3]),
            ("u", vec![4]),
            ("k", vec![4, 2, 2]),
            ("s1", vec![1]),
        ],
        |b, i, p| {
            let (x, v) = (i[0], i[1]);
            let mut outs = Vec::new();
            outs.push(node(b, Op::Linear, vec![x, p[0], p[1]], &[2, 3], true));
            outs.push(node(b, Op::Linear, vec![p[2], p[0], p[1]], &[3], false));
            outs.push(node(b, Op::Linear, vec![x, p[0], p[4]], &[2, 3], true));
            let zero = b.constant(0.0);
            outs.push(node(b, Op::Linear, vec![x, p[0], zero], &[2, 3], true));
            outs.push(node(b, Op::MatMul, vec![x, p[3]], &[2, 2, 2], true));
            outs.push(node(b, Op::MatMul, vec![x, v], &[2, 3], true));
            outs.push(node(b, Op::MatMul, vec![p[2], v], &[3], true));
            outs.push(b.sum(x, vec![1]));
            outs.push(b.sum(x, vec![0, 1]));
            outs.push(b.sum(p[3], vec![0, 2]));
            for axis in [0, 1] {
                outs.push(node(
                    b,
                    Op::LogSumExp { axis },
                    vec![x],
                    if axis == 0 { &[4] } else { &[2] },
                    true,
                ));
                outs.push(node(b, Op::Softmax { axis }, vec![x], &[2, 4], true));
                outs.push(node(b, Op::LogSoftmax { axis }, vec![x], &[2, 4], true));
            }
            outs.push(node(
                b,
                Op::Select { axis: 1, index: 2 },
                vec![x],
                &[2],
                true,
            ));
            outs.push(node(
                b,
                Op::Select { axis: 0, index: 1 },
                vec![x],
                &[4],
                true,
            ));
            outs.push(node(
                b,
                Op::Select { axis: 1, index: 0 },
                vec![p[3]],
                &[4, 2],
                false,
            ));
            // Concat of a batched and an unbatched piece, on both axes.
            let ut = b.reshape(p[2], vec![1, 4]);
            outs.push(node(b, Op::Concat { axis: 0 }, vec![x, ut], &[3, 4], true));
            let ucol = b.reshape(p[2], vec![4, 1]);
            outs.push(node(
                b,
                Op::Concat { axis: 1 },
                vec![v, ucol, v],
                &[4, 7],
                true,
            ));
            outs.push(node(
                b,
                Op::Unsqueeze { axis: 1 },
                vec![x],
                &[2, 1, 4],
                true,
            ));
            outs.push(node(
                b,
                Op::Unsqueeze { axis: 0 },
                vec![p[2]],
                &[1, 4],
                false,
            ));
            outs.push(b.reshape(x, vec![8]));
            outs.push(b.reshape(v, vec![2, 6]));
            let two = b.constant(2.0);
            outs.push(node(b, Op::Broadcast, vec![p[2]], &[3, 4], true));
            outs.push(node(b, Op::Broadcast, vec![two], &[2], true));
            outs.push(node(b, Op::Broadcast, vec![x], &[3, 2, 4], true));
            outs.push(node(b, Op::SumTo, vec![x], &[4], false));
            outs.push(node(b, Op::SumTo, vec![x], &[1, 4], true));
            outs.push(node(b, Op::SumTo, vec![x], &[2, 1], false));
            outs.push(node(b, Op::SumTo, vec![x], &[], false));
            let xs = b.sum(x, vec![0, 1]);
            outs.push(node(b, Op::Where, vec![x, p[2], xs], &[2, 4], true));
            outs.push(node(b, Op::Where, vec![two, x, p[2]], &[2, 4], true));
            outs
        },
    );
    c.check();

    // Convolutions, batched and unbatched, with a bias and a scalar bias.
    let c = case(
        &[
            ("img", Shape::batched(vec![3, 6, 6])),
            ("h", Shape::batched(vec![2, 3, 3])),
        ],
        &[
            ("cw", vec![4, 3, 3, 3]),
            ("cb", vec![4]),
            ("tw", vec![2, 3, 4, 4]),
            ("tb", vec![3]),
            ("one", vec![1]),
            ("u", vec![3, 6, 6]),
        ],
        |b, i, p| {
            vec![
                node(
                    b,
                    Op::Conv2d {
                        stride: 1,
                        padding: 1,
                    },
                    vec![i[0], p[0], p[1]],
                    &[4, 6, 6],
                    true,
                ),
                node(
                    b,
                    Op::Conv2d {
                        stride: 2,
                        padding: 0,
                    },
                    vec![i[0], p[0], p[4]],
                    &[4, 2, 2],
                    true,
                ),
                node(
                    b,
                    Op::Conv2d {
                        stride: 2,
                        padding: 1,
                    },
                    vec![p[5], p[0], p[1]],
                    &[4, 3, 3],
                    false,
                ),
                node(
                    b,
                    Op::ConvTranspose2d {
                        stride: 2,
                        padding: 1,
                        output_padding: 0,
                    },
                    vec![i[1], p[2], p[3]],
                    &[3, 6, 6],
                    true,
                ),
                node(
                    b,
                    Op::ConvTranspose2d {
                        stride: 2,
                        padding: 1,
                        output_padding: 1,
                    },
                    vec![i[1], p[2], p[4]],
                    &[3, 7, 7],
                    true,
                ),
                node(
                    b,
                    Op::ConvTranspose2d {
                        stride: 1,
                        padding: 0,
                        output_padding: 0,
                    },
                    vec![i[1], p[2], p[3]],
                    &[3, 6, 6],
                    true,
                ),
            ]
        },
    );
    c.check();
}

#[test]
fn calling_errors_are_clear() {
    let c = case(
        &[
            ("x", Shape::batched(vec![3])),
            ("y", Shape::batched(vec![3])),
        ],
        &[("w", vec![3])],
        |b, i, p| {
            let s = b.add(i[0], p[0]);
            vec![b.mul(s, i[1])]
        },
    );
    let exec = Executor::new(&c.program);
    let x = c.inputs[0].1.clone();
    let mode = ParamMode::Detached(&c.params);
    let err = exec.call("nope", &[], &mode).unwrap_err();
    assert_eq!(err.code_str(), "ebmc::run::no_function");
    let err = exec.call("f", &[("x", &x)], &mode).unwrap_err();
    assert!(
        err.to_string().contains("argument `y`: no value given"),
        "{err}"
    );
    let y4 = Tensor::zeros((4, 3), DType::F64, &DEV).unwrap();
    let err = exec.call("f", &[("x", &x), ("y", &y4)], &mode).unwrap_err();
    assert!(err.to_string().contains("batch size 4"), "{err}");
    let y32 = Tensor::zeros((2, 3), DType::F32, &DEV).unwrap();
    let err = exec
        .call("f", &[("x", &x), ("y", &y32)], &mode)
        .unwrap_err();
    assert!(err.to_string().contains("dtype"), "{err}");
    let bad = Tensor::zeros((2, 4), DType::F64, &DEV).unwrap();
    let err = exec
        .call("f", &[("x", &x), ("y", &bad)], &mode)
        .unwrap_err();
    assert!(
        err.to_string().contains("expected [B, 3]") || err.to_string().contains("expected"),
        "{err}"
    );
    assert_eq!(exec.inputs_of("f").unwrap()[0].0, "x");
    assert_eq!(exec.outputs_of("f").unwrap()[0].0, "y0");
}

// ---------------------------------------------------------------------------------------------
// Tracked mode: parameter gradients.

/// Central finite differences of `Σ output` against candle's parameter gradients, on `coords`
/// coordinates of each parameter. Errors are relative to max(|g|, floor), where the floor is 1e-3
/// of the largest gradient of that parameter (near-zero components are compared against the
/// parameter's scale); with `noise_aware`, 3× the estimated error of the difference itself is
/// allowed on top of the tolerance (1e-5). Returns the worst error and the largest allowance.
fn fd_param_check(
    exec: &Executor,
    f: &str,
    params: &Params,
    inputs: &[(String, Tensor)],
    coords: usize,
    eps: f64,
    noise_aware: bool,
) -> (f64, f64) {
    let args: Vec<(&str, &Tensor)> = inputs.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let total = |mode: &ParamMode| -> f64 {
        exec.call1(f, &args, mode)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let loss = exec
        .call1(f, &args, &ParamMode::Tracked(params))
        .unwrap()
        .sum_all()
        .unwrap();
    let grads = loss.backward().unwrap();
    let size = exec
        .call1(f, &args, &ParamMode::Detached(params))
        .unwrap()
        .abs()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    let mut rng = Rng::new(3);
    let (mut raw, mut allowance): (f64, f64) = (0.0, 0.0);
    for (path, var) in params.iter() {
        let Some(g) = grads.get(var.as_tensor()) else {
            continue;
        };
        let g = g.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let gmax = g.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let original = var.as_detached_tensor().copy().unwrap();
        let base = original.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let picks: Vec<usize> = if base.len() <= coords {
            (0..base.len()).collect()
        } else {
            rng.index_sample(base.len(), coords, false)
        };
        for i in picks {
            let at = |d: f64| {
                let mut v = base.clone();
                v[i] += d;
                var.set(&Tensor::from_vec(v, var.dims(), &DEV).unwrap())
                    .unwrap();
                total(&ParamMode::Detached(params))
            };
            let fd_at = |h: f64| (at(h) - at(-h)) / (2.0 * h);
            let fd = fd_at(eps);
            // The error of the difference: the spread of the estimates at steps eps/2, eps and
            // 2·eps, and at least the rounding of f (a few ulps of Σ|f| over 2·eps; the rounding
            // is quantized, so the spread alone can be zero). A wrong gradient is off by O(|g|).
            let noise = if noise_aware {
                let (a, b) = (fd_at(eps / 2.0), fd_at(2.0 * eps));
                let spread = (a - fd).abs().max((b - fd).abs()).max((a - b).abs());
                spread + 4.0 * f64::EPSILON * size / eps
            } else {
                0.0
            };
            var.set(&original).unwrap();
            let scale = g[i].abs().max(1e-3 * gmax).max(1e-12);
            let err = ((fd - g[i]).abs() - 3.0 * noise).max(0.0) / scale;
            assert!(
                err < 1e-5,
                "{f}: d/d{path}[{i}]: autograd {} vs finite differences {fd} (error {err:.2e}, noise {noise:.1e})",
                g[i]
            );
            raw = raw.max((fd - g[i]).abs() / scale);
            allowance = allowance.max(3.0 * noise / scale);
        }
    }
    (raw, allowance)
}

#[test]
fn tracked_parameter_gradients_match_finite_differences() {
    // A tiny generator-and-energy: conv → lrelu → conv-transpose → tanh → linear → softplus →
    // logsumexp, plus a matmul and a Where.
    let c = case(
        &[("x", Shape::batched(vec![1, 4, 4]))],
        &[
            ("c.w", vec![2, 1, 3, 3]),
            ("c.b", vec![2]),
            ("t.w", vec![2, 1, 4, 4]),
            ("t.b", vec![1]),
            ("l.w", vec![3, 64]),
            ("l.b", vec![3]),
            ("m", vec![3, 2]),
        ],
        |b, i, p| {
            let h = node(
                b,
                Op::Conv2d {
                    stride: 1,
                    padding: 1,
                },
                vec![i[0], p[0], p[1]],
                &[2, 4, 4],
                true,
            );
            let h = b.unary(Unary::LeakyRelu(0.2), h);
            let h = node(
                b,
                Op::ConvTranspose2d {
                    stride: 2,
                    padding: 1,
                    output_padding: 0,
                },
                vec![h, p[2], p[3]],
                &[1, 8, 8],
                true,
            );
            let h = b.unary(Unary::Tanh, h);
            let h = b.reshape(h, vec![64]);
            let h = node(b, Op::Linear, vec![h, p[4], p[5]], &[3], true);
            let s = b.unary(Unary::Softplus, h);
            let lse = node(b, Op::LogSumExp { axis: 0 }, vec![s], &[], true);
            let mm = node(b, Op::MatMul, vec![h, p[6]], &[2], true);
            let sw = b.unary(Unary::Swish, mm);
            let w = node(b, Op::Where, vec![sw, mm, mm], &[2], true);
            let ws = b.sum(w, vec![0]);
            vec![b.add(lse, ws)]
        },
    );
    let exec = Executor::new(&c.program);
    let (worst, _) = fd_param_check(&exec, "f", &c.params, &c.inputs, 1000, 1e-6, false);
    eprintln!("tiny network: worst relative error of parameter gradients {worst:.2e}");
    assert!(worst < 1e-5);
}

/// The first function of each spec that a learning step differentiates.
const LOSSES: [&str; 4] = [
    "posterior_log_density",
    "energy",
    "prior_log_density",
    "log_likelihood",
];

#[test]
fn tracked_parameter_gradients_of_every_spec() {
    let mut checked = 0;
    for path in spec_paths() {
        let (spec, program) = compile(&path);
        let exec = Executor::new(&program);
        let params = Params::new(&program, &mut Rng::new(42), &DEV, DType::F64).unwrap();
        let mut rng = Rng::new(8);
        for f in LOSSES {
            if program.function(f).is_none() {
                continue;
            }
            let inputs: Vec<(String, Tensor)> = spec_inputs(&spec, &program, f, &mut rng, 2)
                .iter()
                .map(|(n, t)| (n.clone(), from_eval(t)))
                .collect();
            let (worst, allowed) = fd_param_check(&exec, f, &params, &inputs, 3, 1e-6, true);
            eprintln!(
                "{}: {f}: parameter gradients vs finite differences: worst relative error {worst:.1e} (noise allowance up to {allowed:.1e})",
                spec.name
            );
            checked += 1;
        }
    }
    assert!(checked >= 9);
}

/// candle's autograd w.r.t. an input, against the compiler's derived gradient functions.
#[test]
fn derived_input_gradients_match_autograd() {
    let pairs = [
        ("prior_log_density", "prior_grad"),
        ("posterior_log_density", "posterior_grad"),
        ("energy", "energy_grad_x"),
        ("marginal_energy", "marginal_energy_grad"),
    ];
    let mut checked = 0;
    for path in spec_paths() {
        let (spec, program) = compile(&path);
        let exec = Executor::new(&program);
        let params = Params::new(&program, &mut Rng::new(42), &DEV, DType::F64).unwrap();
        let mut rng = Rng::new(9);
        for (f, g) in pairs {
            let Some(gf) = program.function(g) else {
                continue;
            };
            let wrt = gf.outputs[1].0.strip_prefix("grad_").unwrap().to_string();
            let inputs: Vec<(String, Tensor)> = spec_inputs(&spec, &program, f, &mut rng, 3)
                .iter()
                .map(|(n, t)| (n.clone(), from_eval(t)))
                .collect();
            let var = Var::from_tensor(&inputs.iter().find(|(n, _)| *n == wrt).unwrap().1).unwrap();
            let args: Vec<(&str, &Tensor)> = inputs
                .iter()
                .map(|(n, t)| (n.as_str(), if *n == wrt { var.as_tensor() } else { t }))
                .collect();
            let value = exec.call1(f, &args, &ParamMode::Detached(&params)).unwrap();
            let auto = value.sum_all().unwrap().backward().unwrap();
            let auto = auto.get(var.as_tensor()).unwrap();
            let derived = exec.call(g, &args, &ParamMode::Detached(&params)).unwrap();
            assert_eq!(
                to_eval(&derived[0].1),
                to_eval(&value),
                "{}: {g} value",
                spec.name
            );
            let what = format!("{}: {g}", spec.name);
            let worst = agree(&to_eval(&derived[1].1), &to_eval(auto), 1e-9, &what);
            eprintln!("{what}: derived vs autograd, worst relative error {worst:.2e}");
            checked += 1;
        }
    }
    assert!(checked > 0);
}

#[test]
fn f32_runs_track_f64() {
    // The same program in f32: values agree to f32 precision (inputs rounded the same way).
    let path = spec_paths()
        .into_iter()
        .find(|p| p.ends_with("lebm_digits.yaml"))
        .unwrap();
    let (spec, program) = compile(&path);
    let exec = Executor::new(&program);
    let p64 = Params::new(&program, &mut Rng::new(1), &DEV, DType::F64).unwrap();
    let p32 = Params::new(&program, &mut Rng::new(1), &DEV, DType::F32).unwrap();
    let mut rng = Rng::new(2);
    for f in ["posterior_log_density", "prior_grad", "generator"] {
        if program.function(f).is_none() {
            continue;
        }
        let inputs = spec_inputs(&spec, &program, f, &mut rng, 4);
        let t64: Vec<(String, Tensor)> = inputs
            .iter()
            .map(|(n, t)| (n.clone(), from_eval(t)))
            .collect();
        let t32: Vec<(String, Tensor)> = t64
            .iter()
            .map(|(n, t)| (n.clone(), t.to_dtype(DType::F32).unwrap()))
            .collect();
        let a64: Vec<(&str, &Tensor)> = t64.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let a32: Vec<(&str, &Tensor)> = t32.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let o64 = exec.call(f, &a64, &ParamMode::Detached(&p64)).unwrap();
        let o32 = exec.call(f, &a32, &ParamMode::Detached(&p32)).unwrap();
        for ((n, x), (_, y)) in o64.iter().zip(&o32) {
            assert_eq!(y.dtype(), DType::F32);
            agree(&to_eval(y), &to_eval(x), 1e-4, &format!("{f}.{n} in f32"));
        }
    }
}

#[test]
fn device_names() {
    assert!(device_from_name("cpu").unwrap().is_cpu());
    let err = device_from_name("tpu").unwrap_err();
    assert_eq!(err.code_str(), "ebmc::run::device_unavailable");
    if !cfg!(feature = "cuda") {
        let err = device_from_name("cuda:0").unwrap_err();
        assert!(err.help().unwrap().to_string().contains("--features cuda"));
        assert!(device_from_name("auto").unwrap().is_cpu());
    }
}

/// Rough timings of the sampler-loop functions (f32, batch 100): `cargo test --release --lib --
/// --ignored --nocapture sampler_function_timings`.
#[test]
#[ignore]
fn sampler_function_timings() {
    for name in ["lebm_mnist.yaml", "lebm_digits.yaml", "cebm_gmm.yaml"] {
        let path = spec_paths()
            .into_iter()
            .find(|p| p.ends_with(name))
            .unwrap();
        let (spec, program) = compile(&path);
        let exec = Executor::new(&program);
        let params = Params::new(&program, &mut Rng::new(1), &DEV, DType::F32).unwrap();
        let mut rng = Rng::new(2);
        for f in [
            "prior_grad",
            "posterior_grad",
            "energy_grad_x",
            "marginal_energy_grad",
        ] {
            if program.function(f).is_none() {
                continue;
            }
            let inputs: Vec<(String, Tensor)> = spec_inputs(&spec, &program, f, &mut rng, 100)
                .iter()
                .map(|(n, t)| (n.clone(), from_eval(t).to_dtype(DType::F32).unwrap()))
                .collect();
            let args: Vec<(&str, &Tensor)> = inputs.iter().map(|(n, t)| (n.as_str(), t)).collect();
            let mode = ParamMode::Detached(&params);
            for _ in 0..3 {
                exec.call(f, &args, &mode).unwrap();
            }
            let n = 20;
            let t0 = std::time::Instant::now();
            for _ in 0..n {
                exec.call(f, &args, &mode).unwrap();
            }
            let ms = t0.elapsed().as_secs_f64() * 1e3 / n as f64;
            eprintln!("{}: {f} at batch 100 (f32): {ms:.3} ms per call", spec.name);
        }
    }
}

#[test]
fn swish_and_sigmoid_in_one_pass_are_candles_values() {
    let mut rng = Rng::new(21);
    for dtype in [DType::F32, DType::F64] {
        // Large magnitudes too (exp overflows to inf for very negative x), a transposed view, and
        // more elements than one task of the parallel pass takes.
        let x = rng
            .normal(&[6, 10_000], 0.0, 30.0, &DEV, dtype)
            .unwrap()
            .t()
            .unwrap();
        let (sw, sg) = swish_and_sigmoid(&x)
            .unwrap()
            .expect("CPU f32/f64 take the host pass");
        let (want_sw, want_sg) = (x.silu().unwrap(), candle_nn::ops::sigmoid(&x).unwrap());
        if dtype == DType::F64 {
            let bits = crate::runtime::bit_pattern;
            assert_eq!(bits(&sw), bits(&want_sw), "swish");
            assert_eq!(bits(&sg), bits(&want_sg), "sigmoid");
        } else {
            // f32 takes the vectorised exp (2 ulp): a few ulp from candle's, zeros and signs kept.
            for (got, want, what) in [(&sw, &want_sw, "swish"), (&sg, &want_sg, "sigmoid")] {
                let got: Vec<f32> = got.flatten_all().unwrap().to_vec1().unwrap();
                let want: Vec<f32> = want.flatten_all().unwrap().to_vec1().unwrap();
                for (g, w) in got.iter().zip(&want) {
                    let close = (g - w).abs() <= 4.0 * f32::EPSILON * w.abs();
                    assert!(
                        close && g.is_sign_negative() == w.is_sign_negative(),
                        "{what}: {g:e} vs {w:e}"
                    );
                }
            }
        }
        assert_eq!(sw.dims(), x.dims());
    }
    // On the tape, candle's own ops run (their autograd must see them).
    let v = Var::new(&[1.0f64, -2.0], &DEV).unwrap();
    assert!(swish_and_sigmoid(v.as_tensor()).unwrap().is_none());
}

#[test]
fn a_derived_swish_gradient_pairs_the_swish_with_its_sigmoid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/cebm_gmm.yaml");
    let (_, program) = compile(&path);
    let exec = Executor::new(&program);
    let paired: Vec<&String> = exec
        .plans
        .iter()
        .filter(|(_, p)| !p.swish_sigmoid.is_empty())
        .map(|(name, _)| name)
        .collect();
    assert!(
        paired.iter().any(|n| n.contains("grad")),
        "no derived gradient pairs swish and sigmoid: {paired:?}"
    );
}

#[test]
fn derived_activation_derivatives_are_fused_into_one_loop_each() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let plan_of = |spec: &str, f: &str, out: &str| {
        let (_, program) = compile(&root.join(spec));
        let exec = Executor::new(&program);
        exec.output_plans[&(f.to_string(), out.to_string())].clone()
    };
    // f's two hidden leaky ReLUs: `g · (0.8·step(h) + 0.2)`, four nodes each.
    let plan = plan_of("specs/ssl_mnist.yaml", "prior_grad", "grad_z");
    let leaky = plan.fused.values().filter(|g| g.members.len() == 4).count();
    assert_eq!(leaky, 2, "{:?}", plan.fused);
    // The CEBM's four swish layers: `g · (σ · (1 + x · (1 − σ)))`, five nodes each.
    let (_, program) = compile(&root.join("specs/cebm_gmm.yaml"));
    let plan = plan_of("specs/cebm_gmm.yaml", "marginal_energy_grad", "grad_x");
    let reads_sigmoid = |g: &fuse::Group| {
        g.leaves
            .iter()
            .any(|l| program.node(*l).op == Op::Unary(Unary::Sigmoid))
    };
    let swish: Vec<usize> = plan
        .fused
        .values()
        .filter(|g| reads_sigmoid(g))
        .map(|g| g.members.len())
        .collect();
    assert_eq!(swish, vec![5; 4], "{:?}", plan.fused);
}

/// The derived gradients of the project's specs, fused and unfused, on the same inputs.
#[test]
fn fused_loops_give_the_bits_of_the_nodes_evaluated_alone() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let bits = crate::runtime::bit_pattern;
    for (spec, f, batch) in [
        ("specs/ssl_mnist.yaml", "prior_grad", 7),
        // 30 digits: the first layer's 61,440 activations take several tasks of the parallel loop.
        ("specs/cebm_gmm.yaml", "marginal_energy_grad", 30),
        ("specs/lebm_mnist.yaml", "posterior_grad", 2),
    ] {
        let (_, program) = compile(&root.join(spec));
        let (fused, alone) = (
            Executor::with_fusion(&program, true),
            Executor::with_fusion(&program, false),
        );
        let mut rng = Rng::new(8);
        let params = Params::new(&program, &mut rng, &DEV, DType::F32).unwrap();
        let args: Vec<(String, Tensor)> = fused
            .inputs_of(f)
            .unwrap()
            .into_iter()
            .map(|(name, shape)| {
                let mut dims = vec![batch];
                dims.extend(&shape.dims);
                (name, rng.normal(&dims, 0.0, 1.0, &DEV, DType::F32).unwrap())
            })
            .collect();
        let inputs: Vec<(&str, &Tensor)> = args.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let mode = ParamMode::Detached(&params);
        let (a, b) = (
            fused.call(f, &inputs, &mode).unwrap(),
            alone.call(f, &inputs, &mode).unwrap(),
        );
        assert!(!fused.plans[f].fused.is_empty(), "{spec}: {f} has groups");
        for ((name, x), (_, y)) in a.iter().zip(&b) {
            assert_eq!(bits(x), bits(y), "{spec}: {f} output {name}");
        }
    }
}

#[test]
fn functions_called_together_give_what_each_gives_alone() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let (_, program) = compile(&root.join("specs/ssl_mnist.yaml"));
    let exec = Executor::new(&program);
    let mut rng = Rng::new(12);
    let params = Params::new(&program, &mut rng, &DEV, DType::F32).unwrap();
    let z = rng.normal(&[6, 32], 0.0, 1.0, &DEV, DType::F32).unwrap();
    let y = Tensor::eye(10, DType::F32, &DEV)
        .unwrap()
        .narrow(0, 0, 6)
        .unwrap();
    let inputs = [("z", &z), ("y", &y)];
    let names = [
        "prior_log_density_labelled",
        "prior_log_density",
        "classifier",
    ];
    let bits = crate::runtime::bit_pattern;
    for mode in [ParamMode::Detached(&params), ParamMode::Tracked(&params)] {
        let together = exec.call_together(&names, &inputs, &mode).unwrap();
        assert_eq!(together.len(), 3);
        for (name, t) in names.iter().zip(&together) {
            let alone = exec.call1(name, &inputs, &mode).unwrap();
            assert_eq!(bits(t), bits(&alone), "{name}");
        }
    }
    // The joint plan evaluates the prior network's layers once: fewer nodes than the three
    // plans alone.
    let joint = exec.joint_plans.lock().unwrap()[&names.map(String::from).to_vec()].clone();
    let alone: usize = names.iter().map(|n| exec.plans[*n].order.len()).sum();
    assert!(
        joint.order.len() < alone,
        "{} vs {alone}",
        joint.order.len()
    );
    assert!(
        exec.call_together(&["no_such"], &inputs, &ParamMode::Detached(&params))
            .is_err()
    );
}

/// The AVX2 swish pass gives the bits of the baseline's four lanes (no FMA, same operations), on a
/// length that leaves a tail, across the exp's clamps.
#[test]
fn swish_and_sigmoid_on_eight_lanes_give_the_bits_of_four() {
    let xs: Vec<f32> = (0..1003).map(|i| (i as f32 - 501.0) * 0.2).collect();
    let run = |f: fn(&[f32], &mut [f32], &mut [f32])| {
        let (mut sw, mut sg) = (vec![0f32; xs.len()], vec![0f32; xs.len()]);
        f(&xs, &mut sw, &mut sg);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        (bits(&sw), bits(&sg))
    };
    let (lanes, dispatched) = (run(swish_sigmoid_lanes), run(swish_sigmoid_f32));
    assert_eq!(lanes, dispatched);
    let sg = f32::from_bits(lanes.1[600]);
    let x = xs[600];
    assert!(
        (sg - 1.0 / (1.0 + (-x).exp())).abs() < 1e-6,
        "σ({x}) = {sg}"
    );
}
