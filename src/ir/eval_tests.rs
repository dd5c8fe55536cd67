//! Unit tests of the reference evaluator: every op against hand-computed values or an independent
//! naive formula.

use super::*;
use crate::ir::{Builder, ParamInfo};

fn t(shape: &[usize], data: &[f64]) -> Tensor {
    Tensor::new(shape.to_vec(), data.to_vec())
}

fn close(a: &Tensor, b: &Tensor) {
    assert_eq!(a.shape, b.shape, "shapes differ: {a:?} vs {b:?}");
    for (i, (x, y)) in a.data.iter().zip(&b.data).enumerate() {
        assert!(
            (x - y).abs() <= 1e-12 * (1.0 + y.abs()),
            "element {i}: {x} vs {y}\n{a:?}\n{b:?}"
        );
    }
}

/// A deterministic pseudo-random tensor in [-1, 1).
pub(crate) fn rand(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = SplitMix64(seed);
    let n = shape.iter().product();
    Tensor::new(
        shape.to_vec(),
        (0..n).map(|_| 2.0 * rng.uniform() - 1.0).collect(),
    )
}

/// Builds a one-output function `f` with the given builder closure and evaluates it.
fn eval1(
    inputs: &[(&str, Shape, Tensor)],
    params: &[(&str, Tensor)],
    build: impl FnOnce(&mut Builder, &[NodeId], &[NodeId]) -> NodeId,
) -> Tensor {
    let mut p = Program::default();
    let mut b = Builder::new(&mut p);
    let ins: Vec<NodeId> = inputs
        .iter()
        .map(|(n, s, _)| b.input(n, s.clone()))
        .collect();
    let ps: Vec<NodeId> = params
        .iter()
        .map(|(n, v)| b.param(n, v.shape.clone()))
        .collect();
    let out = build(&mut b, &ins, &ps);
    let args = inputs
        .iter()
        .zip(&ins)
        .map(|((n, _, _), id)| (n.to_string(), *id))
        .collect();
    b.function("f", args, vec![("y".into(), out)], vec![]);
    let values: ParamValues = params
        .iter()
        .map(|(n, v)| (n.to_string(), v.clone()))
        .collect();
    let given: Vec<(&str, Tensor)> = inputs.iter().map(|(n, _, v)| (*n, v.clone())).collect();
    let mut outs = eval_function(&p, "f", &given, &values);
    outs.remove(0).1
}

fn node(b: &mut Builder, op: Op, inputs: Vec<NodeId>, shape: Shape) -> NodeId {
    b.node(op, inputs, shape)
}

#[test]
fn unary_values() {
    let x = [2.0, -0.5, 0.0, 1.0];
    let cases: Vec<(Unary, [f64; 4])> = vec![
        (Unary::Neg, [-2.0, 0.5, 0.0, -1.0]),
        (Unary::Sqr, [4.0, 0.25, 0.0, 1.0]),
        (Unary::Relu, [2.0, 0.0, 0.0, 1.0]),
        (Unary::LeakyRelu(0.2), [2.0, -0.1, 0.0, 1.0]),
        (Unary::Step, [1.0, 0.0, 0.0, 1.0]),
        (
            Unary::Sigmoid,
            [
                0.8807970779778823,
                1.0 / (1.0 + 0.5f64.exp()),
                0.5,
                1.0 / (1.0 + (-1.0f64).exp()),
            ],
        ),
        (
            Unary::Softplus,
            [
                2.1269280110429727,
                (1.0 + (-0.5f64).exp()).ln(),
                2f64.ln(),
                (1.0 + 1f64.exp()).ln(),
            ],
        ),
        (
            Unary::Tanh,
            [2f64.tanh(), -0.46211715726000974, 0.0, 1f64.tanh()],
        ),
        (
            Unary::Swish,
            [
                1.7615941559557646,
                -0.5 / (1.0 + 0.5f64.exp()),
                0.0,
                1.0 / (1.0 + (-1.0f64).exp()),
            ],
        ),
        (
            Unary::Gelu,
            [
                2.0 * 0.5 * (1.0 + (GELU_C * (2.0 + GELU_A * 8.0)).tanh()),
                -0.15428599017485606,
                0.0,
                0.8411919906082768,
            ],
        ),
        (
            Unary::Exp,
            [2f64.exp(), (-0.5f64).exp(), 1.0, std::f64::consts::E],
        ),
    ];
    let s = Shape::batched(vec![2]);
    for (u, want) in cases {
        let y = eval1(&[("x", s.clone(), t(&[2, 2], &x))], &[], |b, i, _| {
            b.unary(u, i[0])
        });
        close(&y, &t(&[2, 2], &want));
    }
    let pos = [4.0, 0.25, 1.0, 2.0];
    for (u, want) in [
        (Unary::Log, [4f64.ln(), 0.25f64.ln(), 0.0, 2f64.ln()]),
        (Unary::Sqrt, [2.0, 0.5, 1.0, 2f64.sqrt()]),
        (Unary::Recip, [0.25, 4.0, 1.0, 0.5]),
    ] {
        let y = eval1(&[("x", s.clone(), t(&[2, 2], &pos))], &[], |b, i, _| {
            b.unary(u, i[0])
        });
        close(&y, &t(&[2, 2], &want));
    }
    // Stability at the extremes.
    assert_eq!(softplus(1000.0), 1000.0);
    assert!((softplus(-30.0) - 9.357622968839737e-14).abs() < 1e-25);
    assert_eq!(sigmoid(-1000.0), 0.0);
    assert_eq!(sigmoid(1000.0), 1.0);
}

#[test]
fn binary_broadcasting_over_batch_and_event_dims() {
    // [B=2, 2, 3] ∘ unbatched [3]
    let x = t(
        &[2, 2, 3],
        &[1., 2., 3., 4., 5., 6., 7., 8., 9., 10., 11., 12.],
    );
    let w = t(&[3], &[10., 20., 30.]);
    let y = eval1(
        &[("x", Shape::batched(vec![2, 3]), x.clone())],
        &[("w", w.clone())],
        |b, i, p| b.add(i[0], p[0]),
    );
    close(
        &y,
        &t(
            &[2, 2, 3],
            &[11., 22., 33., 14., 25., 36., 17., 28., 39., 20., 31., 42.],
        ),
    );
    // per-example scalar [B] times unbatched [2]: [B, 2]
    let s = t(&[2], &[2., -1.]);
    let v = t(&[2], &[3., 5.]);
    let y = eval1(&[("s", Shape::per_example(), s)], &[("v", v)], |b, i, p| {
        b.mul(i[0], p[0])
    });
    close(&y, &t(&[2, 2], &[6., 10., -3., -5.]));
    // [B, 2, 1] − unbatched [3] → [B, 2, 3]; and the other ops
    let a = t(&[2, 2, 1], &[1., 2., 3., 4.]);
    let c = t(&[3], &[1., 2., 3.]);
    let ai = |b: &mut Builder, i: &[NodeId], p: &[NodeId], op: Binary| b.binary(op, i[0], p[0]);
    let sa = Shape::batched(vec![2, 1]);
    let want = |f: fn(f64, f64) -> f64| {
        let mut d = Vec::new();
        for av in [1., 2., 3., 4.] {
            for cv in [1., 2., 3.] {
                d.push(f(av, cv));
            }
        }
        t(&[2, 2, 3], &d)
    };
    type Reference = fn(f64, f64) -> f64;
    let table: [(Binary, Reference); 7] = [
        (Binary::Add, |a, c| a + c),
        (Binary::Sub, |a, c| a - c),
        (Binary::Mul, |a, c| a * c),
        (Binary::Div, |a, c| a / c),
        (Binary::Pow, |a, c| a.powf(c)),
        (Binary::Max, |a, c| a.max(c)),
        (Binary::Min, |a, c| a.min(c)),
    ];
    for (op, f) in table {
        let y = eval1(
            &[("a", sa.clone(), a.clone())],
            &[("c", c.clone())],
            |b, i, p| ai(b, i, p, op),
        );
        close(&y, &want(f));
    }
    // Binary::Sub of [B] by [B, 2, 3]
    assert_eq!(binary_value(Binary::Pow, 2.0, 10.0), 1024.0);
}

#[test]
fn linear_and_matmul() {
    // x [B=2, 2], w [3, 2], b [3]: y = x wᵀ + b
    let x = t(&[2, 2], &[1., 2., -1., 0.5]);
    let w = t(&[3, 2], &[1., 0., 0., 1., 2., -1.]);
    let bias = t(&[3], &[0.5, -0.5, 1.]);
    let y = eval1(
        &[("x", Shape::batched(vec![2]), x.clone())],
        &[("w", w), ("b", bias)],
        |b, i, p| {
            node(
                b,
                Op::Linear,
                vec![i[0], p[0], p[1]],
                Shape::batched(vec![3]),
            )
        },
    );
    close(&y, &t(&[2, 3], &[1.5, 1.5, 1.0, -0.5, 0.0, -1.5]));
    // matmul with an unbatched weight [2, 3]
    let m = t(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
    let y = eval1(
        &[("x", Shape::batched(vec![2]), x.clone())],
        &[("m", m)],
        |b, i, p| node(b, Op::MatMul, vec![i[0], p[0]], Shape::batched(vec![3])),
    );
    close(&y, &t(&[2, 3], &[9., 12., 15., 1., 0.5, 0.]));
    // matmul with a batched weight [B, 2] (a per-example dot product)
    let v = t(&[2, 2], &[3., 4., 2., 2.]);
    let y = eval1(
        &[
            ("x", Shape::batched(vec![2]), x),
            ("v", Shape::batched(vec![2]), v),
        ],
        &[],
        |b, i, _| node(b, Op::MatMul, vec![i[0], i[1]], Shape::batched(vec![])),
    );
    close(&y, &t(&[2], &[11., -1.]));
}

#[test]
fn conv2d_hand_computed() {
    let x = t(&[1, 1, 3, 3], &[1., 2., 3., 4., 5., 6., 7., 8., 9.]);
    let w = t(&[1, 1, 2, 2], &[1., 2., 3., 4.]);
    let bias = t(&[1], &[0.5]);
    let s = Shape::batched(vec![1, 3, 3]);
    let conv = |stride, padding, out: usize| {
        eval1(
            &[("x", s.clone(), x.clone())],
            &[("w", w.clone()), ("b", bias.clone())],
            move |b, i, p| {
                node(
                    b,
                    Op::Conv2d { stride, padding },
                    vec![i[0], p[0], p[1]],
                    Shape::batched(vec![1, out, out]),
                )
            },
        )
    };
    close(&conv(1, 0, 2), &t(&[1, 1, 2, 2], &[37.5, 47.5, 67.5, 77.5]));
    close(&conv(2, 1, 2), &t(&[1, 1, 2, 2], &[4.5, 18.5, 36.5, 77.5]));
}

#[test]
fn conv_transpose2d_hand_computed() {
    let x = t(&[1, 1, 2, 2], &[1., 2., 3., 4.]);
    let w = t(&[1, 1, 2, 2], &[1., 2., 3., 4.]);
    let bias = t(&[1], &[0.0]);
    let s = Shape::batched(vec![1, 2, 2]);
    let convt = |stride, padding, output_padding, out: usize| {
        eval1(
            &[("x", s.clone(), x.clone())],
            &[("w", w.clone()), ("b", bias.clone())],
            move |b, i, p| {
                let op = Op::ConvTranspose2d {
                    stride,
                    padding,
                    output_padding,
                };
                node(
                    b,
                    op,
                    vec![i[0], p[0], p[1]],
                    Shape::batched(vec![1, out, out]),
                )
            },
        )
    };
    close(
        &convt(1, 0, 0, 3),
        &t(&[1, 1, 3, 3], &[1., 4., 4., 6., 20., 16., 9., 24., 16.]),
    );
    close(
        &convt(2, 0, 0, 4),
        &t(
            &[1, 1, 4, 4],
            &[
                1., 2., 2., 4., 3., 4., 6., 8., 3., 6., 4., 8., 9., 12., 12., 16.,
            ],
        ),
    );
    close(
        &convt(2, 1, 1, 3),
        &t(&[1, 1, 3, 3], &[4., 6., 8., 6., 4., 8., 12., 12., 16.]),
    );
}

/// Independent naive conv2d: pad explicitly, then correlate.
fn naive_conv(x: &Tensor, w: &Tensor, bias: &Tensor, s: usize, p: usize) -> Tensor {
    let [n, c, h, wd] = x.shape[..] else { panic!() };
    let [o, _, k, _] = w.shape[..] else { panic!() };
    let (hp, wp) = (h + 2 * p, wd + 2 * p);
    let mut padded = vec![0.0; n * c * hp * wp];
    for i in 0..n * c {
        for r in 0..h {
            for q in 0..wd {
                padded[(i * hp + r + p) * wp + q + p] = x.data[(i * h + r) * wd + q];
            }
        }
    }
    let (ho, wo) = ((hp - k) / s + 1, (wp - k) / s + 1);
    let mut y = Tensor::zeros(vec![n, o, ho, wo]);
    for nn in 0..n {
        for oo in 0..o {
            for i in 0..ho {
                for j in 0..wo {
                    let mut acc = bias.data[oo];
                    for cc in 0..c {
                        for u in 0..k {
                            for v in 0..k {
                                acc += padded[((nn * c + cc) * hp + i * s + u) * wp + j * s + v]
                                    * w.data[((oo * c + cc) * k + u) * k + v];
                            }
                        }
                    }
                    y.data[((nn * o + oo) * ho + i) * wo + j] = acc;
                }
            }
        }
    }
    y
}

/// Independent naive transposed conv: gather, `y[o, r, q] = Σ x[c, (r + p − u)/s, (q + p − v)/s] w[c, o, u, v]`.
fn naive_convt(x: &Tensor, w: &Tensor, bias: &Tensor, s: usize, p: usize, op: usize) -> Tensor {
    let [n, c, h, wd] = x.shape[..] else { panic!() };
    let [_, o, k, _] = w.shape[..] else { panic!() };
    let (ho, wo) = ((h - 1) * s + k + op - 2 * p, (wd - 1) * s + k + op - 2 * p);
    let mut y = Tensor::zeros(vec![n, o, ho, wo]);
    for nn in 0..n {
        for oo in 0..o {
            for r in 0..ho {
                for q in 0..wo {
                    let mut acc = bias.data[oo];
                    for cc in 0..c {
                        for u in 0..k {
                            for v in 0..k {
                                let (a, bb) = (r + p, q + p);
                                if a < u || bb < v || (a - u) % s != 0 || (bb - v) % s != 0 {
                                    continue;
                                }
                                let (i, j) = ((a - u) / s, (bb - v) / s);
                                if i < h && j < wd {
                                    acc += x.data[((nn * c + cc) * h + i) * wd + j]
                                        * w.data[((cc * o + oo) * k + u) * k + v];
                                }
                            }
                        }
                    }
                    y.data[((nn * o + oo) * ho + r) * wo + q] = acc;
                }
            }
        }
    }
    y
}

#[test]
fn conv_and_conv_transpose_match_naive_formulas_and_are_adjoint() {
    // (H, k, s, p): odd sizes, stride 2, padding 1 among them.
    for (case, &(h, k, s, p)) in [
        (7, 3, 2, 1),
        (5, 3, 1, 1),
        (8, 4, 2, 1),
        (6, 2, 3, 0),
        (9, 4, 2, 1),
    ]
    .iter()
    .enumerate()
    {
        let (n, c, o) = (2, 3, 2);
        let seed = 100 * case as u64;
        let x = rand(&[n, c, h, h], seed + 1);
        let w = rand(&[o, c, k, k], seed + 2);
        let bias = rand(&[o], seed + 3);
        let ho = (h + 2 * p - k) / s + 1;
        let y = eval1(
            &[("x", Shape::batched(vec![c, h, h]), x.clone())],
            &[("w", w.clone()), ("b", bias.clone())],
            |b, i, ps| {
                node(
                    b,
                    Op::Conv2d {
                        stride: s,
                        padding: p,
                    },
                    vec![i[0], ps[0], ps[1]],
                    Shape::batched(vec![o, ho, ho]),
                )
            },
        );
        close(&y, &naive_conv(&x, &w, &bias, s, p));
        // The transposed convolution with the same weight read as [in = o, out = c, k, k], and the
        // output padding that gives back H.
        let op = h + 2 * p - ((ho - 1) * s + k);
        let g = rand(&[n, o, ho, ho], seed + 4);
        let zb = Tensor::zeros(vec![c]);
        let xt = eval1(
            &[("g", Shape::batched(vec![o, ho, ho]), g.clone())],
            &[("w", w.clone()), ("b", zb.clone())],
            |b, i, ps| {
                let opn = Op::ConvTranspose2d {
                    stride: s,
                    padding: p,
                    output_padding: op,
                };
                node(
                    b,
                    opn,
                    vec![i[0], ps[0], ps[1]],
                    Shape::batched(vec![c, h, h]),
                )
            },
        );
        close(&xt, &naive_convt(&g, &w, &zb, s, p, op));
        // Adjointness without biases: <conv(x), g> = <x, convT(g)>.
        let y0 = naive_conv(&x, &w, &Tensor::zeros(vec![o]), s, p);
        let lhs: f64 = y0.data.iter().zip(&g.data).map(|(a, b)| a * b).sum();
        let rhs: f64 = x.data.iter().zip(&xt.data).map(|(a, b)| a * b).sum();
        assert!(
            (lhs - rhs).abs() < 1e-10 * (1.0 + lhs.abs()),
            "case {case}: {lhs} vs {rhs}"
        );
        // Unbatched input [C, H, W].
        let y1 = eval1(
            &[],
            &[("x", x.clone()), ("w", w.clone()), ("b", bias.clone())],
            |b, _, ps| {
                let x0 = node(
                    b,
                    Op::Select { axis: 0, index: 1 },
                    vec![ps[0]],
                    Shape::fixed(vec![c, h, h]),
                );
                node(
                    b,
                    Op::Conv2d {
                        stride: s,
                        padding: p,
                    },
                    vec![x0, ps[1], ps[2]],
                    Shape::fixed(vec![o, ho, ho]),
                )
            },
        );
        let per = o * ho * ho;
        close(
            &y1,
            &Tensor::new(vec![o, ho, ho], y.data[per..2 * per].to_vec()),
        );
    }
}

#[test]
fn reductions_over_event_axes() {
    // x [B=2, 2, 3]
    let x = t(
        &[2, 2, 3],
        &[1., 2., 3., 4., 5., 6., -1., 0., 1., 2., 2., 2.],
    );
    let s = Shape::batched(vec![2, 3]);
    let y = eval1(&[("x", s.clone(), x.clone())], &[], |b, i, _| {
        b.sum(i[0], vec![0])
    });
    close(&y, &t(&[2, 3], &[5., 7., 9., 1., 2., 3.]));
    let y = eval1(&[("x", s.clone(), x.clone())], &[], |b, i, _| {
        b.sum(i[0], vec![1])
    });
    close(&y, &t(&[2, 2], &[6., 15., 0., 6.]));
    let y = eval1(&[("x", s.clone(), x.clone())], &[], |b, i, _| {
        b.sum(i[0], vec![0, 1])
    });
    close(&y, &t(&[2], &[21., 6.]));
    // logsumexp / softmax / log_softmax over axis 1 (length 3) and axis 0 (length 2)
    let lse = |v: &[f64]| v.iter().map(|a| a.exp()).sum::<f64>().ln();
    let y = eval1(&[("x", s.clone(), x.clone())], &[], |b, i, _| {
        node(
            b,
            Op::LogSumExp { axis: 1 },
            vec![i[0]],
            Shape::batched(vec![2]),
        )
    });
    close(
        &y,
        &t(
            &[2, 2],
            &[
                lse(&[1., 2., 3.]),
                lse(&[4., 5., 6.]),
                lse(&[-1., 0., 1.]),
                lse(&[2., 2., 2.]),
            ],
        ),
    );
    let y = eval1(&[("x", s.clone(), x.clone())], &[], |b, i, _| {
        node(
            b,
            Op::LogSumExp { axis: 0 },
            vec![i[0]],
            Shape::batched(vec![3]),
        )
    });
    close(
        &y,
        &t(
            &[2, 3],
            &[
                lse(&[1., 4.]),
                lse(&[2., 5.]),
                lse(&[3., 6.]),
                lse(&[-1., 2.]),
                lse(&[0., 2.]),
                lse(&[1., 2.]),
            ],
        ),
    );
    let y = eval1(&[("x", s.clone(), x.clone())], &[], |b, i, _| {
        node(b, Op::Softmax { axis: 1 }, vec![i[0]], s.clone())
    });
    let mut want = Vec::new();
    for row in x.data.chunks(3) {
        let l = lse(row);
        want.extend(row.iter().map(|a| (a - l).exp()));
    }
    close(&y, &t(&[2, 2, 3], &want));
    let y = eval1(&[("x", s.clone(), x.clone())], &[], |b, i, _| {
        node(b, Op::LogSoftmax { axis: 1 }, vec![i[0]], s.clone())
    });
    let want: Vec<f64> = want.iter().map(|v| v.ln()).collect();
    close(&y, &t(&[2, 2, 3], &want));
    // Stable for large values, and -inf everywhere gives -inf.
    let big = t(&[1, 2], &[1000., 1000.]);
    let y = eval1(&[("x", Shape::batched(vec![2]), big)], &[], |b, i, _| {
        node(
            b,
            Op::LogSumExp { axis: 0 },
            vec![i[0]],
            Shape::batched(vec![]),
        )
    });
    close(&y, &t(&[1], &[1000. + 2f64.ln()]));
    assert_eq!(
        log_sum_exp([f64::NEG_INFINITY, f64::NEG_INFINITY].into_iter()),
        f64::NEG_INFINITY
    );
}

#[test]
fn indexing_and_shape_ops() {
    let x = t(
        &[2, 2, 3],
        &[1., 2., 3., 4., 5., 6., 7., 8., 9., 10., 11., 12.],
    );
    let s = Shape::batched(vec![2, 3]);
    let sel = |axis, index, dims: Vec<usize>| {
        eval1(&[("x", s.clone(), x.clone())], &[], move |b, i, _| {
            node(
                b,
                Op::Select { axis, index },
                vec![i[0]],
                Shape::batched(dims),
            )
        })
    };
    close(
        &sel(0, 1, vec![3]),
        &t(&[2, 3], &[4., 5., 6., 10., 11., 12.]),
    );
    close(&sel(1, 2, vec![2]), &t(&[2, 2], &[3., 6., 9., 12.]));
    // Concat along axis 1 with an unbatched [2, 1] piece (repeated over the batch).
    let c = t(&[2, 1], &[-1., -2.]);
    let y = eval1(
        &[("x", s.clone(), x.clone())],
        &[("c", c.clone())],
        |b, i, p| {
            node(
                b,
                Op::Concat { axis: 1 },
                vec![i[0], p[0]],
                Shape::batched(vec![2, 4]),
            )
        },
    );
    close(
        &y,
        &t(
            &[2, 2, 4],
            &[
                1., 2., 3., -1., 4., 5., 6., -2., 7., 8., 9., -1., 10., 11., 12., -2.,
            ],
        ),
    );
    // Concat along axis 0.
    let y = eval1(&[("x", s.clone(), x.clone())], &[], |b, i, _| {
        node(
            b,
            Op::Concat { axis: 0 },
            vec![i[0], i[0]],
            Shape::batched(vec![4, 3]),
        )
    });
    let mut want = Vec::new();
    for e in x.data.chunks(6) {
        want.extend(e);
        want.extend(e);
    }
    close(&y, &t(&[2, 4, 3], &want));
    // Unsqueeze, Reshape: same data, new dims.
    let y = eval1(&[("x", s.clone(), x.clone())], &[], |b, i, _| {
        node(
            b,
            Op::Unsqueeze { axis: 1 },
            vec![i[0]],
            Shape::batched(vec![2, 1, 3]),
        )
    });
    close(&y, &t(&[2, 2, 1, 3], &x.data));
    let y = eval1(&[("x", s.clone(), x.clone())], &[], |b, i, _| {
        b.reshape(i[0], vec![3, 2])
    });
    close(&y, &t(&[2, 3, 2], &x.data));
    // Broadcast an unbatched [3] to [B, 2, 3]; SumTo back to [3] and to [2, 1].
    let v = t(&[3], &[1., 2., 3.]);
    let y = eval1(&[("x", s.clone(), x.clone())], &[("v", v)], |b, i, p| {
        let bv = node(b, Op::Broadcast, vec![p[0]], s.clone());
        b.add(bv, i[0])
    });
    close(
        &y,
        &t(
            &[2, 2, 3],
            &[2., 4., 6., 5., 7., 9., 8., 10., 12., 11., 13., 15.],
        ),
    );
    let y = eval1(&[("x", s.clone(), x.clone())], &[], |b, i, _| {
        node(b, Op::SumTo, vec![i[0]], Shape::fixed(vec![3]))
    });
    close(&y, &t(&[3], &[22., 26., 30.]));
    let y = eval1(&[("x", s.clone(), x.clone())], &[], |b, i, _| {
        node(b, Op::SumTo, vec![i[0]], Shape::batched(vec![2, 1]))
    });
    close(&y, &t(&[2, 2, 1], &[6., 15., 24., 33.]));
    // Where(a, b, cond) with a scalar b.
    let cond = t(&[3], &[1., -1., 0.]);
    let y = eval1(
        &[("x", s.clone(), x.clone())],
        &[("cond", cond)],
        |b, i, p| {
            let zero = b.constant(-7.0);
            node(b, Op::Where, vec![i[0], zero, p[0]], s.clone())
        },
    );
    close(
        &y,
        &t(
            &[2, 2, 3],
            &[1., -7., -7., 4., -7., -7., 7., -7., -7., 10., -7., -7.],
        ),
    );
    // A constant output of a batched shape takes the batch from the inputs.
    let y = eval1(&[("x", s.clone(), x.clone())], &[], |b, i, _| {
        let k = b.constant(2.5);
        let s0 = b.sum_all(i[0]);
        let z = b.scale(s0, 0.0);
        b.add(z, k)
    });
    close(&y, &t(&[2], &[2.5, 2.5]));
}

#[test]
#[should_panic(expected = "internal error")]
fn wrong_input_shape_is_an_internal_error() {
    eval1(
        &[("x", Shape::batched(vec![3]), t(&[2, 2], &[1., 2., 3., 4.]))],
        &[],
        |b, i, _| b.neg(i[0]),
    );
}

#[test]
#[should_panic(expected = "internal error")]
fn missing_parameter_is_an_internal_error() {
    let mut p = Program::default();
    let mut b = Builder::new(&mut p);
    let w = b.param("w", vec![2]);
    b.function("f", vec![], vec![("y".into(), w)], vec![]);
    eval_function(&p, "f", &[], &ParamValues::new());
}

#[test]
fn init_params_is_deterministic_and_follows_the_init() {
    let p = Program {
        params: vec![
            ParamInfo {
                path: "a".into(),
                dims: vec![2, 3],
                init: ParamInit::Constant(0.5),
            },
            ParamInfo {
                path: "b".into(),
                dims: vec![2000],
                init: ParamInit::Normal {
                    mean: 1.0,
                    std: 2.0,
                },
            },
            ParamInfo {
                path: "c".into(),
                dims: vec![1000],
                init: ParamInit::Uniform { lo: -3.0, hi: -1.0 },
            },
            ParamInfo {
                path: "d".into(),
                dims: vec![4, 25],
                init: ParamInit::FanIn(25),
            },
        ],
        ..Program::default()
    };
    let v = init_params(&p, 7);
    assert_eq!(v, init_params(&p, 7));
    assert_ne!(v["b"], init_params(&p, 8)["b"]);
    assert_eq!(v["a"], t(&[2, 3], &[0.5; 6]));
    let b = &v["b"].data;
    let mean = b.iter().sum::<f64>() / b.len() as f64;
    let sd = (b.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / b.len() as f64).sqrt();
    assert!(
        (mean - 1.0).abs() < 0.2 && (sd - 2.0).abs() < 0.2,
        "normal(1, 2): mean {mean}, sd {sd}"
    );
    assert!(v["c"].data.iter().all(|x| (-3.0..-1.0).contains(x)));
    assert!(v["d"].data.iter().all(|x| x.abs() <= 0.2));
    assert!(v["d"].data.iter().any(|x| x.abs() > 0.15));
    assert_eq!(v["d"].shape, vec![4, 25]);
}
