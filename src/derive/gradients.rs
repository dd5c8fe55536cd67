//! Sampler gradients by reverse mode over the IR.
//!
//! [`input_gradient`] adds, for a function `f(.., v, ..)` with a per-example output, a function with
//! the same arguments that returns `value` (the output of `f`, shared node) and `grad_v`
//! (∂ Σ_batch f / ∂ v, the shape of `v`). The gradient is built from ordinary IR nodes with the
//! [`Builder`], so it shares every forward node with `f`: a fused forward + backward graph, with no
//! parameter gradients. Only nodes on a path from `v` to the output get adjoints.
//!
//! Adjoints are kept lazily broadcast, to avoid materializing constants over the batch: the
//! adjoint of a node is either a scalar constant (every element has that value), or a node of the
//! same event rank whose dims are the node's dims or 1 and which may lack the batch; it stands for
//! its broadcast to the node's shape. Rules that need the exact shape (convolutions, reshapes, the
//! final gradient) make it explicit with `Broadcast`, which may add the batch (as in numpy, with the
//! batch size of the call).
//!
//! Derivatives of the activations follow the evaluator's definitions (see [`crate::ir::eval`]):
//! `Gelu` is the tanh approximation, `Step` and `Relu`/`LeakyRelu` use `Step(x) = [x > 0]`.

use crate::check::{CheckedSpec, Shape};
use crate::ir::print::reachable;
use crate::ir::{Binary, Builder, NodeId, Op, Program, Unary};

#[cfg(test)]
#[path = "gradients_tests.rs"]
mod gradients_tests;

/// For each sampler target present in the program, its input gradient: `prior_log_density` →
/// `prior_grad` and `posterior_log_density` → `posterior_grad` (wrt the continuous latent); for
/// SGLD in data space (wrt the observed continuous variable), `marginal_energy` →
/// `marginal_energy_grad` where the conjugacy pass derived the marginal energy E(x), else `energy`
/// → `energy_grad_x`. Missing functions are skipped.
pub fn derive(program: &mut Program, spec: &CheckedSpec) {
    let latent = spec
        .variables
        .iter()
        .find(|v| !v.observed && v.is_continuous())
        .map(|v| v.name.clone());
    let observed = spec
        .variables
        .iter()
        .find(|v| v.observed && v.is_continuous())
        .map(|v| v.name.clone());
    let data_space = if program.function("marginal_energy").is_some() {
        ("marginal_energy", observed.as_ref(), "marginal_energy_grad")
    } else {
        ("energy", observed.as_ref(), "energy_grad_x")
    };
    let targets = [
        ("prior_log_density", latent.as_ref(), "prior_grad"),
        ("posterior_log_density", latent.as_ref(), "posterior_grad"),
        data_space,
    ];
    for (function, wrt, new_name) in targets {
        if let Some(wrt) = wrt
            && program.function(function).is_some()
            && program.function(new_name).is_none()
        {
            input_gradient(program, function, wrt, new_name);
        }
    }
}

/// Adds function `new_name(<inputs of function>) -> (value, grad_<wrt>)`: the first output of
/// `function` and the gradient of its sum over the batch with respect to input `wrt`. Returns false
/// (and adds nothing) if there is no such function or it has no such input.
pub fn input_gradient(program: &mut Program, function: &str, wrt: &str, new_name: &str) -> bool {
    let Some(f) = program.function(function).cloned() else {
        return false;
    };
    let Some(&(_, wrt_node)) = f.inputs.iter().find(|(n, _)| n == wrt) else {
        return false;
    };
    let Some(&(_, out)) = f.outputs.first() else {
        panic!("internal error: function `{function}` has no output to differentiate");
    };
    let mut b = Builder::new(program);
    let grad = reverse(&mut b, out, wrt_node);
    b.function(
        new_name,
        f.inputs.clone(),
        vec![("value".to_string(), out), (format!("grad_{wrt}"), grad)],
        vec![format!(
            "∂/∂{wrt} of {function} by reverse mode over the IR; no parameter gradients"
        )],
    );
    let grad_name = format!("grad_{wrt}");
    if crate::ir::rows::independent(program, new_name, &grad_name) {
        let f = program
            .functions
            .iter_mut()
            .find(|f| f.name == new_name)
            .expect("internal error: the function just added");
        f.notes.push(format!(
            "{grad_name}: rows independent (row i reads only row i of the batched inputs), so a \
             chain may move blocks of rows on separate threads"
        ));
    }
    true
}

/// An adjoint: a constant everywhere, or a node that broadcasts to the node's shape with the same
/// event rank (see the module docs).
#[derive(Clone, Copy, Debug)]
enum Adj {
    Scalar(f64),
    Node(NodeId),
}

/// Builds ∂ Σ out / ∂ wrt; returns the node of the gradient (the exact shape of `wrt`).
fn reverse(b: &mut Builder, out: NodeId, wrt: NodeId) -> NodeId {
    // Nodes on a path from `wrt` to `out`.
    let order = reachable(b.program, [out]);
    let mut on_path = vec![false; b.program.nodes.len()];
    on_path[wrt.index()] = true;
    for &id in &order {
        if b.program.node(id).inputs.iter().any(|i| on_path[i.index()]) {
            on_path[id.index()] = true;
        }
    }
    let mut adjoints: Vec<Vec<Adj>> = vec![Vec::new(); b.program.nodes.len()];
    if on_path[out.index()] {
        adjoints[out.index()].push(Adj::Scalar(1.0));
    }
    for &id in order.iter().rev() {
        if id == wrt || !on_path[id.index()] {
            continue;
        }
        let Some(g) = accumulate(b, std::mem::take(&mut adjoints[id.index()])) else {
            continue;
        };
        let contributions = vjp(b, id, g, &on_path);
        for (input, adj) in contributions {
            adjoints[input.index()].push(adj);
        }
    }
    let target = b.shape(wrt).clone();
    match accumulate(b, std::mem::take(&mut adjoints[wrt.index()])) {
        Some(g) => materialize(b, g, &target),
        // The output does not depend on the input.
        None => {
            let zero = b.constant(0.0);
            b.node(Op::Broadcast, vec![zero], target)
        }
    }
}

/// The sum of the contributions to one adjoint.
fn accumulate(b: &mut Builder, parts: Vec<Adj>) -> Option<Adj> {
    let mut c = 0.0;
    let mut has_scalar = false;
    let mut node: Option<NodeId> = None;
    for part in parts {
        match part {
            Adj::Scalar(s) => {
                c += s;
                has_scalar = true;
            }
            // A constant node (of the node's rank 0) is a scalar adjoint.
            Adj::Node(n) if const_of(b, n).is_some() => {
                c += const_of(b, n).unwrap_or_default();
                has_scalar = true;
            }
            Adj::Node(n) => node = Some(node.map_or(n, |m| b.add(m, n))),
        }
    }
    match (node, has_scalar) {
        (None, false) => None,
        (None, true) => Some(Adj::Scalar(c)),
        (Some(n), true) if c != 0.0 => {
            let k = b.constant(c);
            Some(Adj::Node(b.add(n, k)))
        }
        (Some(n), _) => Some(Adj::Node(n)),
    }
}

// ---------------------------------------------------------------------------------------------
// Small constructors (shapes derived from the inputs).

fn unsqueeze(b: &mut Builder, x: NodeId, axis: usize) -> NodeId {
    let mut s = b.shape(x).clone();
    assert!(
        axis <= s.dims.len(),
        "internal error: unsqueeze axis {axis} out of range for {s}"
    );
    s.dims.insert(axis, 1);
    b.node(Op::Unsqueeze { axis }, vec![x], s)
}

fn select(b: &mut Builder, x: NodeId, axis: usize, index: usize) -> NodeId {
    let mut s = b.shape(x).clone();
    s.dims.remove(axis);
    b.node(Op::Select { axis, index }, vec![x], s)
}

fn concat(b: &mut Builder, xs: Vec<NodeId>, axis: usize) -> NodeId {
    if xs.len() == 1 {
        return xs[0];
    }
    let mut s = b.shape(xs[0]).clone();
    s.dims[axis] = 0;
    for x in &xs {
        let t = b.shape(*x);
        s.dims[axis] += t.dims[axis];
        s.batched |= t.batched;
    }
    b.node(Op::Concat { axis }, xs, s)
}

fn softmax(b: &mut Builder, x: NodeId, axis: usize) -> NodeId {
    let s = b.shape(x).clone();
    b.node(Op::Softmax { axis }, vec![x], s)
}

fn step(b: &mut Builder, x: NodeId) -> NodeId {
    b.unary(Unary::Step, x)
}

/// `1 − x`.
fn one_minus(b: &mut Builder, x: NodeId) -> NodeId {
    let one = b.constant(1.0);
    b.sub(one, x)
}

/// An unbatched tensor of zeros.
fn zeros(b: &mut Builder, dims: Vec<usize>) -> NodeId {
    let zero = b.constant(0.0);
    if dims.is_empty() {
        return zero;
    }
    b.node(Op::Broadcast, vec![zero], Shape::fixed(dims))
}

/// Prepends size-1 axes so that `x` has event rank `rank`.
fn align_rank(b: &mut Builder, x: NodeId, rank: usize) -> NodeId {
    let s = b.shape(x).clone();
    assert!(
        s.dims.len() <= rank,
        "internal error: adjoint of rank {} for a node of rank {rank}",
        s.dims.len()
    );
    if s.dims.len() == rank {
        return x;
    }
    let mut dims = vec![1; rank - s.dims.len()];
    dims.extend(&s.dims);
    b.node(
        Op::Reshape,
        vec![x],
        Shape {
            batched: s.batched,
            dims,
        },
    )
}

/// `g · x`, where `x` has (or broadcasts to) the node's shape; result aligned to `rank`.
fn times(b: &mut Builder, g: Adj, x: NodeId, rank: usize) -> NodeId {
    let y = match g {
        Adj::Scalar(1.0) => x,
        Adj::Scalar(c) => {
            // Fold c · (a · k) into a · (c k).
            let node = b.program.node(x);
            match (&node.op, node.inputs.get(1).and_then(|k| const_of(b, *k))) {
                (Op::Binary(Binary::Mul), Some(k)) => {
                    let a = node.inputs[0];
                    b.scale(a, c * k)
                }
                _ => b.scale(x, c),
            }
        }
        Adj::Node(n) => b.mul(n, x),
    };
    align_rank(b, y, rank)
}

/// The value of a scalar constant node.
fn const_of(b: &Builder, x: NodeId) -> Option<f64> {
    let node = b.program.node(x);
    match node.op {
        Op::Const(c) if node.shape == Shape::scalar() => Some(c),
        _ => None,
    }
}

fn neg(b: &mut Builder, g: Adj) -> Adj {
    match g {
        Adj::Scalar(c) => Adj::Scalar(-c),
        Adj::Node(n) => Adj::Node(b.neg(n)),
    }
}

/// The adjoint as a node of exactly `shape` (batch included).
fn materialize(b: &mut Builder, g: Adj, shape: &Shape) -> NodeId {
    let n = match g {
        Adj::Scalar(c) => b.constant(c),
        Adj::Node(n) => n,
    };
    if b.shape(n) == shape {
        return n;
    }
    b.node(Op::Broadcast, vec![n], shape.clone())
}

/// The adjoint as a node with exactly the event dims of `shape` (the batch may stay implicit).
fn materialize_dims(b: &mut Builder, g: NodeId, shape: &Shape) -> NodeId {
    let s = b.shape(g).clone();
    if s.dims == shape.dims {
        return g;
    }
    b.node(
        Op::Broadcast,
        vec![g],
        Shape {
            batched: s.batched,
            dims: shape.dims.clone(),
        },
    )
}

/// Sums an adjoint of a value of shape `full` over the given event axes (which disappear),
/// counting the broadcast copies an implicit size-1 axis stands for.
fn sum_axes(b: &mut Builder, g: Adj, axes: &[usize], full: &Shape) -> Adj {
    let count: usize = axes.iter().map(|a| full.dims[*a]).product();
    match g {
        Adj::Scalar(c) => Adj::Scalar(c * count as f64),
        Adj::Node(n) => {
            let dims = b.shape(n).dims.clone();
            let real: Vec<usize> = axes.iter().copied().filter(|a| dims[*a] != 1).collect();
            let copies: usize = axes
                .iter()
                .filter(|a| dims[**a] == 1)
                .map(|a| full.dims[*a])
                .product();
            let mut t = if real.is_empty() { n } else { b.sum(n, real) };
            let kept: Vec<usize> = dims
                .iter()
                .enumerate()
                .filter(|(i, _)| !axes.contains(i))
                .map(|(_, d)| *d)
                .collect();
            t = b.reshape(t, kept);
            if copies != 1 {
                t = b.scale(t, copies as f64);
            }
            Adj::Node(t)
        }
    }
}

/// Reduces an adjoint of a broadcast result (shape `full`) to an operand's shape `target`: sums
/// over the axes the operand was broadcast along.
fn reduce_to(b: &mut Builder, g: Adj, target: &Shape, full: &Shape) -> Adj {
    let k = full.dims.len() - target.dims.len();
    // Full axes the operand does not have, or has as 1 where the result does not.
    let reduced: Vec<usize> = (0..full.dims.len())
        .filter(|&i| i < k || (target.dims[i - k] == 1 && full.dims[i] != 1))
        .collect();
    match g {
        Adj::Scalar(_) if full.batched && !target.batched => {
            // A sum over the batch: make the batch explicit first.
            let n = materialize(b, g, full);
            reduce_to(b, Adj::Node(n), target, full)
        }
        Adj::Scalar(c) => {
            let count: usize = reduced.iter().map(|i| full.dims[*i]).product();
            Adj::Scalar(c * count as f64)
        }
        Adj::Node(n) => {
            let s = b.shape(n).clone();
            let real = reduced.iter().any(|i| s.dims[*i] != 1) || (s.batched && !target.batched);
            let copies: usize = reduced
                .iter()
                .filter(|i| s.dims[**i] == 1)
                .map(|i| full.dims[*i])
                .product();
            let mut dims: Vec<usize> = s.dims[k..].to_vec();
            for (j, d) in dims.iter_mut().enumerate() {
                if reduced.contains(&(j + k)) {
                    *d = 1;
                }
            }
            let r = Shape {
                batched: s.batched && target.batched,
                dims,
            };
            let mut t = if real {
                b.node(Op::SumTo, vec![n], r)
            } else {
                b.reshape(n, r.dims)
            };
            if copies != 1 {
                t = b.scale(t, copies as f64);
            }
            Adj::Node(t)
        }
    }
}

/// A one-hot vector of length `n` at `index`, shaped to broadcast along event axis `axis` of a
/// value of rank `rank` (unbatched: `[1, .., n, .., 1]`).
fn one_hot(b: &mut Builder, n: usize, index: usize, axis: usize, rank: usize) -> NodeId {
    let mut pieces = Vec::new();
    if index > 0 {
        pieces.push(zeros(b, vec![index]));
    }
    let one = b.constant(1.0);
    pieces.push(unsqueeze(b, one, 0));
    if index + 1 < n {
        pieces.push(zeros(b, vec![n - index - 1]));
    }
    let v = concat(b, pieces, 0);
    let mut dims = vec![1; rank];
    dims[axis] = n;
    b.reshape(v, dims)
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

// ---------------------------------------------------------------------------------------------
// The vector-Jacobian products.

/// The contributions of node `id`'s adjoint `g` to the adjoints of its inputs on the path.
fn vjp(b: &mut Builder, id: NodeId, g: Adj, on_path: &[bool]) -> Vec<(NodeId, Adj)> {
    let node = b.program.node(id).clone();
    let out = node.shape.clone();
    let rank = out.dims.len();
    let ins = node.inputs.clone();
    let needs = |i: usize| on_path[ins[i].index()];
    let in_shape = |b: &Builder, i: usize| b.shape(ins[i]).clone();
    let mut res: Vec<(NodeId, Adj)> = Vec::new();
    match &node.op {
        Op::Input(_) | Op::Param(_) | Op::Const(_) => {}
        Op::Unary(u) => {
            let x = ins[0];
            let d = match u {
                Unary::Neg => {
                    res.push((x, neg(b, g)));
                    return res;
                }
                // Piecewise constant: no gradient.
                Unary::Step => return res,
                Unary::Exp => id,
                Unary::Log => b.unary(Unary::Recip, x),
                Unary::Sqr => b.scale(x, 2.0),
                // 1 / (2 √x)
                Unary::Sqrt => {
                    let r = b.unary(Unary::Recip, id);
                    b.scale(r, 0.5)
                }
                Unary::Softplus => b.unary(Unary::Sigmoid, x),
                // s (1 − s)
                Unary::Sigmoid => {
                    let om = one_minus(b, id);
                    b.mul(id, om)
                }
                // 1 − t²
                Unary::Tanh => {
                    let t2 = b.unary(Unary::Sqr, id);
                    one_minus(b, t2)
                }
                Unary::Relu => step(b, x),
                // s + (1 − s) Step(x)
                Unary::LeakyRelu(s) => {
                    let st = step(b, x);
                    let scaled = b.scale(st, 1.0 - s);
                    let k = b.constant(*s);
                    b.add(scaled, k)
                }
                Unary::Gelu => gelu_derivative(b, x),
                // σ(x) (1 + x (1 − σ(x)))
                Unary::Swish => {
                    let sg = b.unary(Unary::Sigmoid, x);
                    let om = one_minus(b, sg);
                    let xom = b.mul(x, om);
                    let one = b.constant(1.0);
                    let inner = b.add(one, xom);
                    b.mul(sg, inner)
                }
                // −1 / x²  = −r²
                Unary::Recip => {
                    let r2 = b.unary(Unary::Sqr, id);
                    b.neg(r2)
                }
            };
            let gx = times(b, g, d, rank);
            res.push((x, Adj::Node(gx)));
        }
        Op::Binary(op) => {
            let (x, y) = (ins[0], ins[1]);
            // The adjoints of the operands before reduction to their shapes.
            let (gx, gy): (Option<Adj>, Option<Adj>) = match op {
                Binary::Add => (Some(g), Some(g)),
                Binary::Sub => (Some(g), needs(1).then(|| neg(b, g))),
                Binary::Mul => (
                    needs(0).then(|| Adj::Node(times(b, g, y, rank))),
                    needs(1).then(|| Adj::Node(times(b, g, x, rank))),
                ),
                Binary::Div => {
                    let gx = needs(0).then(|| {
                        let r = b.unary(Unary::Recip, y);
                        Adj::Node(times(b, g, r, rank))
                    });
                    // −g · (x / y) / y
                    let gy = needs(1).then(|| {
                        let q = b.div(id, y);
                        let nq = b.neg(q);
                        Adj::Node(times(b, g, nq, rank))
                    });
                    (gx, gy)
                }
                Binary::Pow => {
                    // g · y · x^(y − 1)
                    let gx = needs(0).then(|| {
                        let one = b.constant(1.0);
                        let ym1 = b.sub(y, one);
                        let p = b.binary(Binary::Pow, x, ym1);
                        let d = b.mul(y, p);
                        Adj::Node(times(b, g, d, rank))
                    });
                    // g · x^y · log x
                    let gy = needs(1).then(|| {
                        let l = b.unary(Unary::Log, x);
                        let d = b.mul(id, l);
                        Adj::Node(times(b, g, d, rank))
                    });
                    (gx, gy)
                }
                Binary::Max | Binary::Min => {
                    // Where x wins (ties go to y): Step(x − y) for max, Step(y − x) for min.
                    let diff = if *op == Binary::Max {
                        b.sub(x, y)
                    } else {
                        b.sub(y, x)
                    };
                    let st = step(b, diff);
                    let gx = needs(0).then(|| Adj::Node(times(b, g, st, rank)));
                    let gy = needs(1).then(|| {
                        let om = one_minus(b, st);
                        Adj::Node(times(b, g, om, rank))
                    });
                    (gx, gy)
                }
            };
            for (i, ga) in [(0, gx), (1, gy)] {
                if let Some(ga) = ga
                    && needs(i)
                {
                    let target = in_shape(b, i);
                    res.push((ins[i], reduce_to(b, ga, &target, &out)));
                }
            }
        }
        Op::Where => {
            // [a, b, cond]: a where cond > 0, else b; no gradient through the condition.
            let st = step(b, ins[2]);
            for (i, &input) in ins.iter().enumerate().take(2) {
                if needs(i) {
                    let mask = if i == 0 { st } else { one_minus(b, st) };
                    let ga = Adj::Node(times(b, g, mask, rank));
                    let target = in_shape(b, i);
                    res.push((input, reduce_to(b, ga, &target, &out)));
                }
            }
        }
        Op::Linear => {
            let (x, w, bias) = (ins[0], ins[1], ins[2]);
            if needs(1) {
                panic!("internal error: input gradient through a linear weight is not supported");
            }
            if needs(0) {
                let outs = b.shape(w).dims[0];
                let gx = match g {
                    // Σ_o c · w[o, :]
                    Adj::Scalar(c) => {
                        let colsum = b.sum(w, vec![0]);
                        times(b, Adj::Scalar(c), colsum, rank)
                    }
                    Adj::Node(n) if b.shape(n).dims[rank - 1] == 1 && outs != 1 => {
                        let colsum = b.sum(w, vec![0]);
                        b.mul(n, colsum)
                    }
                    // g[.., out] · w[out, in]
                    Adj::Node(n) => {
                        let mut s = b.shape(n).clone();
                        s.dims[rank - 1] = b.shape(w).dims[1];
                        b.node(Op::MatMul, vec![n, w], s)
                    }
                };
                res.push((x, Adj::Node(gx)));
            }
            if needs(2) {
                let target = in_shape(b, 2);
                res.push((bias, reduce_to(b, g, &target, &out)));
            }
        }
        Op::MatMul => {
            // out[.., R..] = Σ_i x[.., i] · w[i, R..]; w may be batched.
            let (x, w) = (ins[0], ins[1]);
            let (xs, ws) = (in_shape(b, 0), in_shape(b, 1));
            let lead = xs.dims.len() - 1;
            let rest = ws.dims.len() - 1;
            let gm = materialize(b, g, &out);
            let gu = unsqueeze(b, gm, lead); // [.., 1, R..]
            if needs(0) {
                let prod = b.mul(gu, w); // [.., in, R..]
                let axes: Vec<usize> = (lead + 1..lead + 1 + rest).collect();
                let gx = if axes.is_empty() {
                    prod
                } else {
                    b.sum(prod, axes)
                };
                let gx = align_rank(b, gx, xs.dims.len());
                res.push((x, Adj::Node(gx)));
            }
            if needs(1) {
                let mut xe = x;
                for _ in 0..rest {
                    let r = b.shape(xe).dims.len();
                    xe = unsqueeze(b, xe, r);
                }
                let prod = b.mul(xe, gu); // [.., in, R..]
                let full = b.shape(prod).clone();
                res.push((w, reduce_to(b, Adj::Node(prod), &ws, &full)));
            }
        }
        Op::Conv2d { stride, padding } => {
            if needs(1) || needs(2) {
                panic!(
                    "internal error: input gradient through convolution parameters is not supported"
                );
            }
            // The input gradient of a convolution is the transposed convolution of the adjoint
            // with the same weight; the output padding restores sizes the stride rounded down.
            let (x, w) = (ins[0], ins[1]);
            let xs = in_shape(b, 0);
            let k = b.shape(w).dims[2];
            let (s, p) = (*stride, *padding);
            let pads: Vec<usize> = (1..3)
                .map(|a| xs.dims[a] + 2 * p - ((out.dims[a] - 1) * s + k))
                .collect();
            if pads[0] != pads[1] {
                panic!(
                    "internal error: conv2d of {xs} needs different output paddings per axis for its gradient"
                );
            }
            let gm = materialize(b, g, &out);
            let zero_bias = zeros(b, vec![xs.dims[0]]);
            let op = Op::ConvTranspose2d {
                stride: s,
                padding: p,
                output_padding: pads[0],
            };
            let gx = b.node(op, vec![gm, w, zero_bias], xs);
            res.push((x, Adj::Node(gx)));
        }
        Op::ConvTranspose2d {
            stride, padding, ..
        } => {
            if needs(1) || needs(2) {
                panic!(
                    "internal error: input gradient through convolution parameters is not supported"
                );
            }
            // The input gradient of a transposed convolution is the convolution of the adjoint
            // with the same weight (read as [out = in of the transpose, in = its out, k, k]).
            let (x, w) = (ins[0], ins[1]);
            let xs = in_shape(b, 0);
            let gm = materialize(b, g, &out);
            let zero_bias = zeros(b, vec![xs.dims[0]]);
            let op = Op::Conv2d {
                stride: *stride,
                padding: *padding,
            };
            let gx = b.node(op, vec![gm, w, zero_bias], xs);
            res.push((x, Adj::Node(gx)));
        }
        Op::Reshape => {
            let xs = in_shape(b, 0);
            let gx = match g {
                Adj::Scalar(_) => g,
                Adj::Node(n) => {
                    let n = materialize_dims(b, n, &out);
                    Adj::Node(b.reshape(n, xs.dims))
                }
            };
            res.push((ins[0], gx));
        }
        Op::Unsqueeze { axis } => {
            let gx = match g {
                Adj::Scalar(_) => g,
                Adj::Node(n) => {
                    let mut dims = b.shape(n).dims.clone();
                    dims.remove(*axis);
                    Adj::Node(b.reshape(n, dims))
                }
            };
            res.push((ins[0], gx));
        }
        Op::Sum { axes } => {
            // Broadcast back: size-1 axes where the sum was taken (implicitly repeated).
            let gx = match g {
                Adj::Scalar(_) => g,
                Adj::Node(mut n) => {
                    let mut sorted = axes.clone();
                    sorted.sort_unstable();
                    sorted.dedup();
                    for a in sorted {
                        n = unsqueeze(b, n, a);
                    }
                    Adj::Node(n)
                }
            };
            res.push((ins[0], gx));
        }
        Op::LogSumExp { axis } => {
            // softmax(x) · g
            let sm = softmax(b, ins[0], *axis);
            let gx = match g {
                Adj::Scalar(_) => times(b, g, sm, rank + 1),
                Adj::Node(n) => {
                    let u = unsqueeze(b, n, *axis);
                    b.mul(u, sm)
                }
            };
            res.push((ins[0], Adj::Node(gx)));
        }
        Op::Softmax { axis } => {
            // s · (g − Σ_axis g·s); a constant adjoint gives nothing (Σ s = 1).
            if let Adj::Node(n) = g {
                let gs = b.mul(n, id);
                let sum = b.sum(gs, vec![*axis]);
                let u = unsqueeze(b, sum, *axis);
                let d = b.sub(n, u);
                res.push((ins[0], Adj::Node(b.mul(id, d))));
            }
        }
        Op::LogSoftmax { axis } => {
            // g − softmax(x) · Σ_axis g
            let sm = softmax(b, ins[0], *axis);
            let total = sum_axes(b, g, &[*axis], &out);
            let st = match total {
                Adj::Scalar(c) => b.scale(sm, c),
                Adj::Node(n) => {
                    let u = unsqueeze(b, n, *axis);
                    b.mul(sm, u)
                }
            };
            let gx = match g {
                Adj::Scalar(c) => {
                    let k = b.constant(c);
                    b.sub(k, st)
                }
                Adj::Node(n) => b.sub(n, st),
            };
            res.push((ins[0], Adj::Node(gx)));
        }
        Op::Select { axis, index } => {
            // Scatter back: g at `index` of the axis, 0 elsewhere (a one-hot product).
            let xs = in_shape(b, 0);
            let hot = one_hot(b, xs.dims[*axis], *index, *axis, xs.dims.len());
            let gx = match g {
                Adj::Scalar(c) => b.scale(hot, c),
                Adj::Node(n) => {
                    let u = unsqueeze(b, n, *axis);
                    b.mul(u, hot)
                }
            };
            res.push((ins[0], Adj::Node(gx)));
        }
        Op::Concat { axis } => {
            // Each input gets its slab of g. Slabs are cut as whole chunks of d = gcd of the sizes:
            // reshape the axis T into [T/d, d], select chunks, concatenate a slab's chunks.
            let sizes: Vec<usize> = (0..ins.len())
                .map(|i| b.shape(ins[i]).dims[*axis])
                .collect();
            let total: usize = sizes.iter().sum();
            let d = sizes.iter().fold(0, |acc, s| gcd(acc, *s));
            let chunks = match g {
                Adj::Node(n) if b.shape(n).dims[*axis] != 1 || total == 1 => {
                    let s = b.shape(n).clone();
                    let mut dims = s.dims.clone();
                    dims.splice(*axis..*axis + 1, [total / d, d]);
                    Some(b.reshape(n, dims))
                }
                _ => None,
            };
            let mut offset = 0;
            for (i, size) in sizes.iter().enumerate() {
                if needs(i) {
                    let gi = match (g, chunks) {
                        (Adj::Node(_), Some(r)) => {
                            let parts: Vec<NodeId> = (offset / d..(offset + size) / d)
                                .map(|j| select(b, r, *axis, j))
                                .collect();
                            Adj::Node(concat(b, parts, *axis))
                        }
                        // A constant, or a size-1 axis: every slab has the same (broadcast) value.
                        _ => g,
                    };
                    res.push((ins[i], gi));
                }
                offset += size;
            }
        }
        Op::Broadcast => {
            let target = in_shape(b, 0);
            res.push((ins[0], reduce_to(b, g, &target, &out)));
        }
        Op::SumTo => {
            // Broadcast back to the input's shape: prepend the axes the sum removed.
            let xs = in_shape(b, 0);
            let gx = match g {
                Adj::Scalar(_) => g,
                Adj::Node(n) => Adj::Node(align_rank(b, n, xs.dims.len())),
            };
            res.push((ins[0], gx));
        }
    }
    res
}

/// d/dx of the tanh-approximated GELU `0.5 x (1 + tanh u)`, `u = c (x + a x³)`:
/// `0.5 (1 + t) + 0.5 x (1 − t²) c (1 + 3 a x²)`, `t = tanh u`.
fn gelu_derivative(b: &mut Builder, x: NodeId) -> NodeId {
    use crate::ir::eval::{GELU_A, GELU_C};
    let x2 = b.unary(Unary::Sqr, x);
    let x3 = b.mul(x2, x);
    let ax3 = b.scale(x3, GELU_A);
    let inner = b.add(x, ax3);
    let u = b.scale(inner, GELU_C);
    let t = b.unary(Unary::Tanh, u);
    let one = b.constant(1.0);
    let one_plus_t = b.add(one, t);
    let left = b.scale(one_plus_t, 0.5);
    let t2 = b.unary(Unary::Sqr, t);
    let sech2 = one_minus(b, t2);
    let ax2 = b.scale(x2, 3.0 * GELU_A);
    let du = b.add(one, ax2);
    let du = b.scale(du, 0.5 * GELU_C);
    let xs = b.mul(x, sech2);
    let right = b.mul(xs, du);
    b.add(left, right)
}
