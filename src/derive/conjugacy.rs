//! Conjugacy: a closed-form posterior q(z | x) and marginal energy E(x) when −E(x, z) is, in each
//! coordinate of the continuous latent z separately, a polynomial of degree ≤ 2:
//!
//! ```text
//! −E(x, z) = Σ_d [ η1_d(x) z_d + η2_d(x) z_d² ] + c(x),      η2 < 0
//! q(z | x) = Π_d N(z_d; −η1_d/(2η2_d), −1/(2η2_d))
//! E(x)     = −log ∫ exp(−E(x, z)) dz = −Σ_d [ −η1_d²/(4η2_d) + ½ log(π/(−η2_d)) ] − c(x)
//! ```
//!
//! This is the Gaussian case of paper 003 (`−<λ + t(x), (z, z²)> + B(λ)`), found by analysing the
//! lowered graph rather than by matching the spec's syntax: every node on the path from the energy's
//! output back to the input z gets a value "polynomial in z" whose coefficients are new z-free IR
//! nodes. With a mixture index y (the lowering's `energy_table`, one column per component) the same
//! holds per component, and the marginal over y is a logsumexp of the per-component normalisers.
//!
//! Shapes. A z-dependent value is either
//! - `Elem`: elementwise in z — the node's last axis is aligned with z's coordinates (or, after
//!   `stats(z) = concat(z, z²)`, a concatenation of S such "segments" of length D), entry d being
//!   `c0 + c1 z_d + c2 z_d²`; or
//! - `Summed`: a sum over z's coordinates, `c0 + Σ_d (c1_d z_d + c2_d z_d²)`, with per-dimension
//!   coefficient vectors whose shape is the node's shape followed by D.
//!
//! Coefficients broadcast (numpy-style, right-aligned) against the shape they stand for, so the
//! constant 1 of `z` itself is a scalar. `None` is the zero coefficient.
//!
//! The domain η2 < 0 is proved by a sign analysis of η2's graph where possible; otherwise the
//! functions clamp η2 with `min(η2, −1e-6)` and say so.

use crate::check::{CheckedSpec, Shape};
use crate::ir::print::reachable;
use crate::ir::{Binary, Builder, NodeId, Op, Program, Unary};
use std::collections::HashMap;

#[cfg(test)]
#[path = "conjugacy_tests.rs"]
mod tests;

/// The floor of the domain guard on η2 when η2 < 0 cannot be proved.
pub const ETA2_GUARD: f64 = -1e-6;

/// Which forms the analysis recognises (stated with every "no closed form" note).
pub const RECOGNISED: &str = "recognised: −E(x, z) = Σ_d [η1_d(x) z_d + η2_d(x) z_d²] + c(x) with η2 < 0, \
     built from z by +, −, · and ÷ with z-free values, sq, products of total degree ≤ 2, dot, stats, \
     sums over event axes and log normal(z | m(x), s(x)); a mixture index y gives one such form per component";

pub fn derive(program: &mut Program, spec: &CheckedSpec) {
    if spec.model.energy.is_none() {
        return;
    }
    let fname = if program.function("energy_table").is_some() {
        "energy_table"
    } else {
        "energy"
    };
    let Some(f) = program.function(fname) else {
        return;
    };
    let latents: Vec<String> = f
        .inputs
        .iter()
        .map(|(n, _)| n.clone())
        .filter(|n| {
            spec.variables
                .iter()
                .any(|v| v.name == *n && !v.observed && v.is_continuous())
        })
        .collect();
    match latents.as_slice() {
        [] => {}
        [z] => {
            derive_for(program, z);
        }
        many => program.notes.push(format!(
            "no closed-form posterior: the energy has {} continuous latents ({}); the conjugacy analysis handles one",
            many.len(),
            many.join(", ")
        )),
    }
}

/// What the analysis concluded.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Functions emitted; `proved` tells whether η2 < 0 was proved (else a guard was inserted).
    Conjugate {
        proved: bool,
        mixture: Option<usize>,
    },
    /// No closed form; the reason (also in `program.notes`).
    NotConjugate(String),
    /// Nothing to do (no energy function, z not among its inputs, functions already present).
    Skipped,
}

/// Analyses the per-component energy (`energy_table` if present, else `energy`) in the latent
/// `latent` and emits `posterior_natural`, `posterior_mean_std` and `marginal_energy`, or a note.
pub fn derive_for(program: &mut Program, latent: &str) -> Outcome {
    let (fname, mixture) = if program.function("energy_table").is_some() {
        ("energy_table", true)
    } else if program.function("energy").is_some() {
        ("energy", false)
    } else {
        return Outcome::Skipped;
    };
    if ["posterior_natural", "posterior_mean_std", "marginal_energy"]
        .iter()
        .any(|n| program.function(n).is_some())
    {
        return Outcome::Skipped;
    }
    let f = program.function(fname).expect("checked above").clone();
    let Some(&(_, z)) = f.inputs.iter().find(|(n, _)| n == latent) else {
        return Outcome::Skipped;
    };
    let Some(&(_, out)) = f.outputs.first() else {
        return Outcome::Skipped;
    };
    let zshape = program.node(z).shape.clone();
    let result = if mixture && !is_mixture_marginal(program, out) {
        Err("`energy` is not −logsumexp_k(−energy_table) + log K, so the mixture marginal cannot be read off the table".into())
    } else if zshape.dims.len() != 1 {
        Err(format!(
            "{latent} has shape {zshape}; the per-dimension analysis handles a vector latent (one event axis)"
        ))
    } else {
        analyse(program, z, zshape.dims[0], out, mixture)
    };
    match result {
        Err(reason) => {
            let reason = format!("no closed-form posterior for {latent}: {reason} ({RECOGNISED})");
            program.notes.push(reason.clone());
            Outcome::NotConjugate(reason)
        }
        Ok(natural) => {
            let inputs: Vec<(String, NodeId)> = f
                .inputs
                .iter()
                .filter(|(n, _)| n != latent)
                .cloned()
                .collect();
            emit(program, fname, latent, inputs, natural)
        }
    }
}

/// Whether `energy` is `−logsumexp_k(−table) + log K` (the lowering's symbol marginalization), so that
/// the closed-form marginal over z follows component by component.
fn is_mixture_marginal(p: &Program, table: NodeId) -> bool {
    let Some(k) = p.node(table).shape.dims.first().copied() else {
        return false;
    };
    let Some(&(_, out)) = p.function("energy").and_then(|f| f.outputs.first()) else {
        return false;
    };
    let is = |id: NodeId, op: &Op| p.node(id).op == *op;
    let n = p.node(out);
    if !is(out, &Op::Binary(Binary::Add)) {
        return false;
    }
    let (neg_lse, log_k) = (n.inputs[0], n.inputs[1]);
    let Op::Const(c) = p.node(log_k).op else {
        return false;
    };
    if (c - (k as f64).ln()).abs() > 1e-12 || !is(neg_lse, &Op::Unary(Unary::Neg)) {
        return false;
    }
    let lse = p.node(neg_lse).inputs[0];
    if !is(lse, &Op::LogSumExp { axis: 0 }) {
        return false;
    }
    let neg_table = p.node(lse).inputs[0];
    is(neg_table, &Op::Unary(Unary::Neg)) && p.node(neg_table).inputs[0] == table
}

type R<T> = Result<T, String>;
type Coef = Option<NodeId>;

/// `c[0] + c[1] z + c[2] z²` with coefficient nodes (`None` = 0).
#[derive(Clone, Debug, Default)]
struct Poly {
    c: [Coef; 3],
}

impl Poly {
    fn constant(c: NodeId) -> Self {
        Poly {
            c: [Some(c), None, None],
        }
    }
    fn degree(&self) -> usize {
        (0..3).rev().find(|&i| self.c[i].is_some()).unwrap_or(0)
    }
}

#[derive(Clone, Debug)]
enum Val {
    /// Does not depend on z: the node itself.
    Free,
    /// Elementwise in z; one polynomial per length-D segment of the last axis.
    Elem(Vec<Poly>),
    /// `c0 + Σ_d c1_d z_d + c2_d z_d²` (c1, c2 have the node's shape followed by D).
    Summed(Poly),
}

/// The result of the analysis: −E(x, z) = Σ_d η1_d z_d + η2_d z_d² + c0 (per component if mixture).
struct Natural {
    eta1: Coef,
    eta2: NodeId,
    c0: Coef,
    /// The energy output's shape: `[B]`, or `[B, K]` for a mixture table.
    out_shape: Shape,
    d: usize,
    mixture: Option<usize>,
}

fn analyse(program: &mut Program, z: NodeId, d: usize, out: NodeId, mixture: bool) -> R<Natural> {
    let n = program.nodes.len();
    let mut dep = vec![false; n];
    for i in 0..n {
        dep[i] = i == z.index() || program.nodes[i].inputs.iter().any(|x| dep[x.index()]);
    }
    let order = reachable(program, [out]);
    let out_shape = program.node(out).shape.clone();
    let mut b = Builder::new(program);
    let mut a = Analyzer {
        b: &mut b,
        dep,
        d,
        vals: HashMap::new(),
        z,
    };
    for id in order {
        if !a.dep[id.index()] {
            continue;
        }
        let v = a.visit(id)?;
        a.vals.insert(id, v);
    }
    let p = match a.get(out) {
        Val::Free => return Err("the energy does not depend on it".into()),
        Val::Elem(_) => {
            return Err("the energy is not one number per example in it (internal shape)".into());
        }
        Val::Summed(p) => p,
    };
    let expected = if mixture { 1 } else { 0 };
    if out_shape.dims.len() != expected {
        return Err(format!(
            "the energy has shape {out_shape}, expected one number per example"
        ));
    }
    let eta1 = a.c_neg(p.c[1]);
    let eta2 = a.c_neg(p.c[2]);
    let c0 = a.c_neg(p.c[0]);
    let Some(eta2) = eta2 else {
        return Err(
            "−E has no z² term, so exp(−E) is not integrable in z (no Gaussian posterior)".into(),
        );
    };
    Ok(Natural {
        eta1,
        eta2,
        c0,
        mixture: mixture.then(|| out_shape.dims[0]),
        out_shape,
        d,
    })
}

struct Analyzer<'a, 'p> {
    b: &'a mut Builder<'p>,
    dep: Vec<bool>,
    d: usize,
    vals: HashMap<NodeId, Val>,
    z: NodeId,
}

/// How a rejected op is named in a note.
fn op_text(op: &Op) -> String {
    let name = match op {
        Op::Unary(Unary::Sqr) => "sq".to_string(),
        other => other.name(),
    };
    match op {
        Op::Linear | Op::MatMul | Op::Conv2d { .. } | Op::ConvTranspose2d { .. } => {
            format!("`{name}` (a network)")
        }
        _ => format!("`{name}`"),
    }
}

fn not_poly(op: &Op) -> String {
    format!(
        "z enters through {}, which is not a polynomial of degree ≤ 2 in z",
        op_text(op)
    )
}

impl Analyzer<'_, '_> {
    fn get(&self, id: NodeId) -> Val {
        if self.dep.get(id.index()).copied().unwrap_or(false) {
            self.vals[&id].clone()
        } else {
            Val::Free
        }
    }

    fn shape(&self, id: NodeId) -> Shape {
        self.b.shape(id).clone()
    }

    fn konst(&self, id: NodeId) -> Option<f64> {
        match self.b.program.node(id).op {
            Op::Const(c) => Some(c),
            _ => None,
        }
    }

    // ---- coefficient algebra (None = 0), folding constants -------------------------------------

    fn fold(&mut self, v: f64) -> Coef {
        (v != 0.0).then(|| self.b.constant(v))
    }

    fn norm(&self, c: Coef) -> Coef {
        c.filter(|id| self.konst(*id) != Some(0.0))
    }

    fn c_add(&mut self, x: Coef, y: Coef) -> Coef {
        let (x, y) = (self.norm(x), self.norm(y));
        match (x, y) {
            (None, o) | (o, None) => o,
            (Some(x), Some(y)) => match (self.konst(x), self.konst(y)) {
                (Some(p), Some(q)) => self.fold(p + q),
                _ => Some(self.b.add(x, y)),
            },
        }
    }

    fn c_neg(&mut self, x: Coef) -> Coef {
        let x = self.norm(x)?;
        if let Some(c) = self.konst(x) {
            return Some(self.b.constant(-c));
        }
        let node = self.b.program.node(x);
        if node.op == Op::Unary(Unary::Neg) {
            return Some(node.inputs[0]);
        }
        Some(self.b.neg(x))
    }

    fn c_mul(&mut self, x: Coef, y: Coef) -> Coef {
        let (x, y) = (self.norm(x)?, self.norm(y)?);
        match (self.konst(x), self.konst(y)) {
            (Some(p), Some(q)) => self.fold(p * q),
            (Some(1.0), _) => Some(y),
            (_, Some(1.0)) => Some(x),
            (Some(-1.0), _) => self.c_neg(Some(y)),
            (_, Some(-1.0)) => self.c_neg(Some(x)),
            _ => Some(self.b.mul(x, y)),
        }
    }

    fn c_div(&mut self, x: Coef, den: NodeId) -> Coef {
        let x = self.norm(x)?;
        match (self.konst(x), self.konst(den)) {
            (Some(p), Some(q)) => self.fold(p / q),
            (_, Some(1.0)) => Some(x),
            _ => Some(self.b.div(x, den)),
        }
    }

    fn c_scale(&mut self, x: Coef, k: f64) -> Coef {
        let k = self.b.constant(k);
        self.c_mul(x, Some(k))
    }

    // ---- coefficient shapes ----------------------------------------------------------------------

    /// The coefficient `c` (broadcasting to `full`) summed over `axes` of `full`: the result
    /// broadcasts to `full` without those axes. Broadcast axes count their multiplicity.
    fn coef_sum(&mut self, c: NodeId, full: &[usize], axes: &[usize]) -> NodeId {
        let cs = self.shape(c).dims;
        let off = full.len() - cs.len();
        let mut mult = 1.0;
        let mut own = Vec::new();
        let mut drop = Vec::new();
        for &ax in axes {
            if ax < off {
                mult *= full[ax] as f64;
            } else if cs[ax - off] == full[ax] && full[ax] != 1 {
                own.push(ax - off);
            } else {
                mult *= full[ax] as f64;
                drop.push(ax - off);
            }
        }
        let mut r = c;
        if !own.is_empty() {
            own.sort_unstable();
            r = self.b.sum(r, own.clone());
        }
        if !drop.is_empty() {
            let keep: Vec<usize> = cs
                .iter()
                .enumerate()
                .filter(|(i, _)| !own.contains(i) && !drop.contains(i))
                .map(|(_, d)| *d)
                .collect();
            r = self.b.reshape(r, keep);
        }
        if mult != 1.0 {
            r = self.c_scale(Some(r), mult).expect("nonzero");
        }
        r
    }

    /// `c` (broadcasting to `full`) with axis `axis` of `full` selected at `index`.
    fn coef_select(&mut self, c: NodeId, full: &[usize], axis: usize, index: usize) -> NodeId {
        let cs = self.shape(c).dims;
        let off = full.len() - cs.len();
        if axis < off {
            return c;
        }
        let p = axis - off;
        if cs[p] == full[axis] && full[axis] != 1 {
            select(self.b, c, p, index)
        } else {
            let mut keep = cs.clone();
            keep.remove(p);
            self.b.reshape(c, keep)
        }
    }

    /// `c` (broadcasting to a shape of rank `rank`) with a size-1 axis inserted at `axis`.
    fn coef_unsqueeze(&mut self, c: NodeId, rank: usize, axis: usize) -> NodeId {
        let rc = self.shape(c).dims.len();
        let off = rank - rc;
        if axis <= off {
            c
        } else {
            unsqueeze(self.b, c, axis - off)
        }
    }

    /// `c` (broadcasting to `from`) reshaped to `to`; both end in the same (z) axis.
    fn coef_reshape(&mut self, c: NodeId, from: &[usize], to: &[usize], what: &str) -> R<NodeId> {
        let cs = self.shape(c).dims;
        if cs == from {
            return Ok(self.b.reshape(c, to.to_vec()));
        }
        if cs.len() <= 1 {
            return Ok(c);
        }
        if cs[..cs.len() - 1].iter().all(|d| *d == 1) {
            let last = *cs.last().expect("nonempty");
            return Ok(self.b.reshape(c, vec![last]));
        }
        Err(format!(
            "`reshape` of {what} with a broadcast coefficient is not supported"
        ))
    }

    /// A z-free node as coefficients of `s` segments of its last axis.
    fn split(&mut self, f: NodeId, s: usize) -> R<Vec<NodeId>> {
        let dims = self.shape(f).dims;
        if s == 1 || dims.last().is_none_or(|l| *l == 1) {
            return Ok(vec![f; s]);
        }
        let last = *dims.last().expect("nonempty");
        if last != s * self.d {
            return Err(format!(
                "a value of shape {} does not line up with z's coordinates",
                self.shape(f)
            ));
        }
        let mut to = dims[..dims.len() - 1].to_vec();
        to.extend([s, self.d]);
        let r = self.b.reshape(f, to.clone());
        Ok((0..s).map(|i| select(self.b, r, to.len() - 2, i)).collect())
    }

    /// `f` with a trailing size-1 axis, so that it broadcasts against a per-dimension vector.
    fn unsq_last(&mut self, f: NodeId) -> NodeId {
        let r = self.shape(f).dims.len();
        if r == 0 { f } else { unsqueeze(self.b, f, r) }
    }

    // ---- polynomial algebra ------------------------------------------------------------------

    fn p_neg(&mut self, p: &Poly) -> Poly {
        Poly {
            c: [self.c_neg(p.c[0]), self.c_neg(p.c[1]), self.c_neg(p.c[2])],
        }
    }

    fn p_add(&mut self, p: &Poly, q: &Poly) -> Poly {
        Poly {
            c: [
                self.c_add(p.c[0], q.c[0]),
                self.c_add(p.c[1], q.c[1]),
                self.c_add(p.c[2], q.c[2]),
            ],
        }
    }

    fn p_mul(&mut self, p: &Poly, q: &Poly, op: &Op) -> R<Poly> {
        let (dp, dq) = (p.degree(), q.degree());
        if dp + dq > 2 {
            return Err(format!(
                "{} multiplies terms of degree {dp} and {dq} in z, a polynomial of degree {} > 2",
                op_text(op),
                dp + dq
            ));
        }
        let mut r = Poly::default();
        for i in 0..3 {
            for j in 0..3 - i {
                let t = self.c_mul(p.c[i], q.c[j]);
                r.c[i + j] = self.c_add(r.c[i + j], t);
            }
        }
        Ok(r)
    }

    /// `(a + b z)² = a² + 2ab z + b² z²`.
    fn p_square(&mut self, p: &Poly, op: &Op) -> R<Poly> {
        if p.degree() > 1 {
            return Err(format!(
                "{} squares a term of degree {} in z, a polynomial of degree {} > 2",
                op_text(op),
                p.degree(),
                2 * p.degree()
            ));
        }
        let sq = |a: &mut Self, c: Coef| match c {
            Some(c) if a.konst(c).is_some() => {
                let v = a.konst(c).expect("constant");
                a.fold(v * v)
            }
            Some(c) => Some(a.b.unary(Unary::Sqr, c)),
            None => None,
        };
        let ab = self.c_mul(p.c[0], p.c[1]);
        Ok(Poly {
            c: [sq(self, p.c[0]), self.c_scale(ab, 2.0), sq(self, p.c[1])],
        })
    }

    /// Every coefficient times the z-free `f` (per-dimension vectors take `f` with a trailing axis).
    fn p_scale_summed(&mut self, p: &Poly, f: NodeId, div: bool) -> Poly {
        let fv = self.unsq_last(f);
        let c0 = if div {
            self.c_div(p.c[0], f)
        } else {
            self.c_mul(p.c[0], Some(f))
        };
        let mut rest = [None, None];
        for (k, slot) in rest.iter_mut().enumerate() {
            *slot = if div {
                self.c_div(p.c[k + 1], fv)
            } else {
                self.c_mul(p.c[k + 1], Some(fv))
            };
        }
        Poly {
            c: [c0, rest[0], rest[1]],
        }
    }

    // ---- the rules --------------------------------------------------------------------------

    fn visit(&mut self, id: NodeId) -> R<Val> {
        let node = self.b.program.node(id).clone();
        let ins = node.inputs.clone();
        let out_dims = node.shape.dims.clone();
        match &node.op {
            Op::Input(_) if id == self.z => Ok(Val::Elem(vec![Poly {
                c: [None, Some(self.b.constant(1.0)), None],
            }])),
            Op::Unary(Unary::Neg) => Ok(match self.get(ins[0]) {
                Val::Free => Val::Free,
                Val::Elem(segs) => Val::Elem(segs.iter().map(|p| self.p_neg(p)).collect()),
                Val::Summed(p) => Val::Summed(self.p_neg(&p)),
            }),
            Op::Unary(Unary::Sqr) => self.square(ins[0], &node.op),
            Op::Binary(Binary::Pow) => {
                if self.dep[ins[1].index()] {
                    return Err(format!(
                        "z appears in the exponent of {}",
                        op_text(&node.op)
                    ));
                }
                match self.konst(ins[1]) {
                    Some(1.0) => Ok(self.get(ins[0])),
                    Some(2.0) => self.square(ins[0], &node.op),
                    _ => Err(format!(
                        "z is raised by {} to a power other than 1 or 2, which is not a polynomial of degree ≤ 2 in z",
                        op_text(&node.op)
                    )),
                }
            }
            Op::Binary(op @ (Binary::Add | Binary::Sub)) => {
                let r = self.add(ins[0], ins[1], *op == Binary::Sub, &node.op)?;
                self.check_elem(&r, &out_dims, &node.op)?;
                Ok(r)
            }
            Op::Binary(Binary::Mul) => {
                let r = self.mul(ins[0], ins[1], &node.op)?;
                self.check_elem(&r, &out_dims, &node.op)?;
                Ok(r)
            }
            Op::Binary(Binary::Div) => {
                if self.dep[ins[1].index()] {
                    return Err(format!(
                        "z appears in a divisor ({}), which is not a polynomial in z",
                        op_text(&node.op)
                    ));
                }
                let f = ins[1];
                let r = match self.get(ins[0]) {
                    Val::Free => Val::Free,
                    Val::Elem(segs) => {
                        let fs = self.split(f, segs.len())?;
                        let mut out = Vec::new();
                        for (p, fseg) in segs.iter().zip(fs) {
                            out.push(Poly {
                                c: [0, 1, 2].map(|k| self.c_div(p.c[k], fseg)),
                            });
                        }
                        Val::Elem(out)
                    }
                    Val::Summed(p) => Val::Summed(self.p_scale_summed(&p, f, true)),
                };
                self.check_elem(&r, &out_dims, &node.op)?;
                Ok(r)
            }
            Op::Sum { axes } => self.sum(ins[0], axes),
            Op::Select { axis, index } => self.select(ins[0], *axis, *index, &node.op),
            Op::Unsqueeze { axis } => self.unsqueeze(ins[0], *axis, &node.op),
            Op::Reshape => self.reshape(ins[0], &out_dims, &node.op),
            Op::Concat { axis } => self.concat(&ins, *axis, out_dims.len(), &node.op),
            // Coefficients broadcast like the value (the z axis must stay the last one).
            Op::Broadcast => {
                let v = self.get(ins[0]);
                self.check_elem(&v, &out_dims, &node.op)?;
                Ok(v)
            }
            Op::Linear | Op::MatMul | Op::Conv2d { .. } | Op::ConvTranspose2d { .. } => {
                Err(not_poly(&node.op))
            }
            other => Err(not_poly(other)),
        }
    }

    /// Elementwise values must keep z's coordinates on their last axis (no broadcasting over it).
    fn check_elem(&self, v: &Val, out_dims: &[usize], op: &Op) -> R<()> {
        if let Val::Elem(segs) = v
            && out_dims.last() != Some(&(segs.len() * self.d))
        {
            return Err(format!(
                "{} broadcasts z's coordinates along another axis",
                op_text(op)
            ));
        }
        Ok(())
    }

    fn square(&mut self, x: NodeId, op: &Op) -> R<Val> {
        match self.get(x) {
            Val::Free => Ok(Val::Free),
            Val::Elem(segs) => {
                let mut out = Vec::new();
                for p in &segs {
                    out.push(self.p_square(p, op)?);
                }
                Ok(Val::Elem(out))
            }
            Val::Summed(p) if p.degree() == 0 => Ok(Val::Summed(self.p_square(&p, op)?)),
            Val::Summed(_) => Err(format!(
                "{} of a sum over z's coordinates creates cross terms z_d·z_e, so the posterior does not factorise per dimension",
                op_text(op)
            )),
        }
    }

    fn add(&mut self, x: NodeId, y: NodeId, sub: bool, op: &Op) -> R<Val> {
        let (vx, vy) = (self.get(x), self.get(y));
        let sum = |a: &mut Self, p: &Poly, q: &Poly| {
            if sub {
                let nq = a.p_neg(q);
                a.p_add(p, &nq)
            } else {
                a.p_add(p, q)
            }
        };
        match (vx, vy) {
            (Val::Free, Val::Free) => Ok(Val::Free),
            (Val::Summed(p), Val::Summed(q)) => Ok(Val::Summed(sum(self, &p, &q))),
            (Val::Summed(p), Val::Free) => Ok(Val::Summed(sum(self, &p, &Poly::constant(y)))),
            (Val::Free, Val::Summed(q)) => Ok(Val::Summed(sum(self, &Poly::constant(x), &q))),
            (Val::Elem(p), Val::Elem(q)) => {
                if p.len() != q.len() {
                    return Err(format!(
                        "{} combines stats-like values of different lengths",
                        op_text(op)
                    ));
                }
                Ok(Val::Elem(
                    p.iter().zip(&q).map(|(p, q)| sum(self, p, q)).collect(),
                ))
            }
            (Val::Elem(p), Val::Free) => {
                let fs = self.split(y, p.len())?;
                Ok(Val::Elem(
                    p.iter()
                        .zip(fs)
                        .map(|(p, f)| sum(self, p, &Poly::constant(f)))
                        .collect(),
                ))
            }
            (Val::Free, Val::Elem(q)) => {
                let fs = self.split(x, q.len())?;
                Ok(Val::Elem(
                    q.iter()
                        .zip(fs)
                        .map(|(q, f)| sum(self, &Poly::constant(f), q))
                        .collect(),
                ))
            }
            _ => Err(format!(
                "{} combines a sum over z's coordinates with a per-coordinate function of z; this form is not supported",
                op_text(op)
            )),
        }
    }

    fn mul(&mut self, x: NodeId, y: NodeId, op: &Op) -> R<Val> {
        let (vx, vy) = (self.get(x), self.get(y));
        match (vx, vy) {
            (Val::Free, Val::Free) => Ok(Val::Free),
            (Val::Summed(p), Val::Free) => Ok(Val::Summed(self.p_scale_summed(&p, y, false))),
            (Val::Free, Val::Summed(q)) => Ok(Val::Summed(self.p_scale_summed(&q, x, false))),
            (Val::Summed(p), Val::Summed(q)) => match (p.degree(), q.degree()) {
                (0, _) => Ok(Val::Summed(self.p_mul(&p, &q, op)?)),
                (_, 0) => Ok(Val::Summed(self.p_mul(&p, &q, op)?)),
                _ => Err(format!(
                    "{} multiplies two sums over z's coordinates, which creates cross terms z_d·z_e, so the posterior does not factorise per dimension",
                    op_text(op)
                )),
            },
            (Val::Elem(p), Val::Elem(q)) => {
                if p.len() != q.len() {
                    return Err(format!(
                        "{} combines stats-like values of different lengths",
                        op_text(op)
                    ));
                }
                let mut out = Vec::new();
                for (p, q) in p.iter().zip(&q) {
                    out.push(self.p_mul(p, q, op)?);
                }
                Ok(Val::Elem(out))
            }
            (Val::Elem(p), Val::Free) => {
                let fs = self.split(y, p.len())?;
                let mut out = Vec::new();
                for (p, f) in p.iter().zip(fs) {
                    out.push(self.p_mul(p, &Poly::constant(f), op)?);
                }
                Ok(Val::Elem(out))
            }
            (Val::Free, Val::Elem(q)) => {
                let fs = self.split(x, q.len())?;
                let mut out = Vec::new();
                for (q, f) in q.iter().zip(fs) {
                    out.push(self.p_mul(&Poly::constant(f), q, op)?);
                }
                Ok(Val::Elem(out))
            }
            _ => Err(format!(
                "{} multiplies a sum over z's coordinates with a per-coordinate function of z, which creates cross terms z_d·z_e",
                op_text(op)
            )),
        }
    }

    fn sum(&mut self, x: NodeId, axes: &[usize]) -> R<Val> {
        let dims = self.shape(x).dims;
        match self.get(x) {
            Val::Free => Ok(Val::Free),
            Val::Elem(segs) => {
                let r = dims.len();
                let mut full = dims.clone();
                full[r - 1] = self.d;
                let over_z = axes.contains(&(r - 1));
                let others: Vec<usize> = axes.iter().copied().filter(|a| *a != r - 1).collect();
                let mut out = Vec::new();
                for p in &segs {
                    let c0 = p.c[0].map(|c| self.coef_sum(c, &full, axes));
                    let mut q = Poly {
                        c: [c0, None, None],
                    };
                    for k in 1..3 {
                        let ax = if over_z { &others } else { axes };
                        q.c[k] = p.c[k].map(|c| self.coef_sum(c, &full, ax));
                    }
                    out.push(q);
                }
                if over_z {
                    let mut acc = Poly::default();
                    for q in &out {
                        acc = self.p_add(&acc, q);
                    }
                    Ok(Val::Summed(acc))
                } else {
                    Ok(Val::Elem(out))
                }
            }
            Val::Summed(p) => {
                let mut full = dims.clone();
                full.push(self.d);
                let c0 = p.c[0].map(|c| self.coef_sum(c, &dims, axes));
                let c1 = p.c[1].map(|c| self.coef_sum(c, &full, axes));
                let c2 = p.c[2].map(|c| self.coef_sum(c, &full, axes));
                Ok(Val::Summed(Poly { c: [c0, c1, c2] }))
            }
        }
    }

    fn select(&mut self, x: NodeId, axis: usize, index: usize, op: &Op) -> R<Val> {
        let dims = self.shape(x).dims;
        match self.get(x) {
            Val::Free => Ok(Val::Free),
            Val::Elem(segs) => {
                let r = dims.len();
                if axis == r - 1 {
                    return Err(format!(
                        "{} picks single coordinates of z; the per-dimension analysis needs all of z's coordinates on one axis",
                        op_text(op)
                    ));
                }
                let mut full = dims.clone();
                full[r - 1] = self.d;
                let mut out = Vec::new();
                for p in &segs {
                    let mut q = Poly::default();
                    for k in 0..3 {
                        q.c[k] = p.c[k].map(|c| self.coef_select(c, &full, axis, index));
                    }
                    out.push(q);
                }
                Ok(Val::Elem(out))
            }
            Val::Summed(p) => {
                let mut full = dims.clone();
                full.push(self.d);
                let c0 = p.c[0].map(|c| self.coef_select(c, &dims, axis, index));
                let c1 = p.c[1].map(|c| self.coef_select(c, &full, axis, index));
                let c2 = p.c[2].map(|c| self.coef_select(c, &full, axis, index));
                Ok(Val::Summed(Poly { c: [c0, c1, c2] }))
            }
        }
    }

    fn unsqueeze(&mut self, x: NodeId, axis: usize, op: &Op) -> R<Val> {
        let r = self.shape(x).dims.len();
        match self.get(x) {
            Val::Free => Ok(Val::Free),
            Val::Elem(segs) => {
                if axis >= r {
                    return Err(format!(
                        "{} moves z's coordinates off the last axis",
                        op_text(op)
                    ));
                }
                let mut out = Vec::new();
                for p in &segs {
                    let mut q = Poly::default();
                    for k in 0..3 {
                        q.c[k] = p.c[k].map(|c| self.coef_unsqueeze(c, r, axis));
                    }
                    out.push(q);
                }
                Ok(Val::Elem(out))
            }
            Val::Summed(p) => {
                let c0 = p.c[0].map(|c| self.coef_unsqueeze(c, r, axis));
                let c1 = p.c[1].map(|c| self.coef_unsqueeze(c, r + 1, axis));
                let c2 = p.c[2].map(|c| self.coef_unsqueeze(c, r + 1, axis));
                Ok(Val::Summed(Poly { c: [c0, c1, c2] }))
            }
        }
    }

    fn reshape(&mut self, x: NodeId, to: &[usize], op: &Op) -> R<Val> {
        let from = self.shape(x).dims;
        match self.get(x) {
            Val::Free => Ok(Val::Free),
            Val::Elem(segs) => {
                let last = segs.len() * self.d;
                if from.last() != Some(&last) || to.last() != Some(&last) {
                    return Err(format!(
                        "{} mixes z's coordinates with other axes",
                        op_text(op)
                    ));
                }
                let mut ffrom = from.clone();
                *ffrom.last_mut().expect("nonempty") = self.d;
                let mut fto = to.to_vec();
                *fto.last_mut().expect("nonempty") = self.d;
                let mut out = Vec::new();
                for p in &segs {
                    let mut q = Poly::default();
                    for k in 0..3 {
                        q.c[k] = match p.c[k] {
                            Some(c) => Some(self.coef_reshape(
                                c,
                                &ffrom,
                                &fto,
                                "an elementwise function of z",
                            )?),
                            None => None,
                        };
                    }
                    out.push(q);
                }
                Ok(Val::Elem(out))
            }
            Val::Summed(p) => {
                let mut ffrom = from.clone();
                ffrom.push(self.d);
                let mut fto = to.to_vec();
                fto.push(self.d);
                let c0 = match p.c[0] {
                    None => None,
                    Some(c) if self.shape(c).dims == from => Some(self.b.reshape(c, to.to_vec())),
                    Some(c) if self.shape(c).numel() == 1 => Some(self.b.reshape(c, vec![])),
                    Some(_) => {
                        return Err(format!(
                            "{} of a sum over z with a broadcast term is not supported",
                            op_text(op)
                        ));
                    }
                };
                let mut q = Poly {
                    c: [c0, None, None],
                };
                for k in 1..3 {
                    q.c[k] = match p.c[k] {
                        Some(c) => Some(self.coef_reshape(c, &ffrom, &fto, "a sum over z")?),
                        None => None,
                    };
                }
                Ok(Val::Summed(q))
            }
        }
    }

    fn concat(&mut self, ins: &[NodeId], axis: usize, rank: usize, op: &Op) -> R<Val> {
        let vals: Vec<Val> = ins.iter().map(|i| self.get(*i)).collect();
        if vals.iter().all(|v| matches!(v, Val::Free)) {
            return Ok(Val::Free);
        }
        if axis + 1 != rank || vals.iter().any(|v| matches!(v, Val::Summed(_))) {
            return Err(format!(
                "{} joins z-dependent values along an axis other than z's coordinates; this form is not supported",
                op_text(op)
            ));
        }
        let mut segs = Vec::new();
        for (i, v) in ins.iter().zip(vals) {
            match v {
                Val::Elem(s) => segs.extend(s),
                Val::Free => {
                    let last = self.shape(*i).dims.last().copied().unwrap_or(1);
                    if last % self.d != 0 {
                        return Err(format!(
                            "{} joins z with a value that does not line up with z's coordinates",
                            op_text(op)
                        ));
                    }
                    for f in self.split(*i, last / self.d)? {
                        segs.push(Poly::constant(f));
                    }
                }
                Val::Summed(_) => unreachable!("rejected above"),
            }
        }
        Ok(Val::Elem(segs))
    }
}

// ---- small builders for ops the Builder has no helper for -----------------------------------------

fn select(b: &mut Builder, x: NodeId, axis: usize, index: usize) -> NodeId {
    let mut s = b.shape(x).clone();
    s.dims.remove(axis);
    b.node(Op::Select { axis, index }, vec![x], s)
}

fn unsqueeze(b: &mut Builder, x: NodeId, axis: usize) -> NodeId {
    let mut s = b.shape(x).clone();
    s.dims.insert(axis, 1);
    b.node(Op::Unsqueeze { axis }, vec![x], s)
}

fn broadcast_to(b: &mut Builder, x: NodeId, shape: &Shape) -> NodeId {
    if b.shape(x) == shape {
        x
    } else {
        b.node(Op::Broadcast, vec![x], shape.clone())
    }
}

/// `−x`, reusing the operand of a negation.
fn neg(b: &mut Builder, x: NodeId) -> NodeId {
    let n = b.program.node(x);
    if n.op == Op::Unary(Unary::Neg) && n.shape == *b.shape(n.inputs[0]) {
        n.inputs[0]
    } else {
        b.neg(x)
    }
}

fn reduce(b: &mut Builder, op: Op, x: NodeId, axis: usize) -> NodeId {
    let mut s = b.shape(x).clone();
    s.dims.remove(axis);
    b.node(op, vec![x], s)
}

// ---- emitting the functions -----------------------------------------------------------------------

fn emit(
    program: &mut Program,
    source: &str,
    latent: &str,
    inputs: Vec<(String, NodeId)>,
    n: Natural,
) -> Outcome {
    let domain = prove_negative(program, n.eta2);
    let mut b = Builder::new(program);
    let mut full = n.out_shape.clone();
    full.dims.push(n.d);
    let last = full.dims.len() - 1;

    let eta2 = match &domain {
        Ok(_) => n.eta2,
        Err(_) => {
            let floor = b.constant(ETA2_GUARD);
            b.binary(Binary::Min, n.eta2, floor)
        }
    };
    let eta2 = broadcast_to(&mut b, eta2, &full);
    let eta1 = match n.eta1 {
        Some(e) => e,
        None => b.constant(0.0),
    };
    let eta1 = broadcast_to(&mut b, eta1, &full);

    // mean = −η1 / (2 η2), std = √(−1 / (2 η2))
    let neg_eta1 = neg(&mut b, eta1);
    let two_eta2 = b.scale(eta2, 2.0);
    let mean = b.div(neg_eta1, two_eta2);
    let minus_half = b.constant(-0.5);
    let var = b.div(minus_half, eta2);
    let std = b.unary(Unary::Sqrt, var);

    // log ∫ exp(η1 z + η2 z² + c0) dz = Σ_d [η1² / (−4 η2) + ½ log(π / (−η2))] + c0
    let sq1 = b.unary(Unary::Sqr, eta1);
    let m4 = b.scale(eta2, -4.0);
    let quad = b.div(sq1, m4);
    let pi = b.constant(std::f64::consts::PI);
    let neg_eta2 = neg(&mut b, eta2);
    let ratio = b.div(pi, neg_eta2);
    let log_ratio = b.unary(Unary::Log, ratio);
    let half_log = b.scale(log_ratio, 0.5);
    let per_dim = b.add(quad, half_log);
    let mut log_norm = b.sum(per_dim, vec![last]);
    if let Some(c0) = n.c0 {
        log_norm = b.add(log_norm, c0);
    }

    let what = match n.mixture {
        Some(k) => format!("per mixture component (axis 0 of `{source}`, K = {k})"),
        None => format!("from `{source}`"),
    };
    let form = format!(
        "closed form {what}: −E(x, {latent}) = Σ_d [η1_d(x) {latent}_d + η2_d(x) {latent}_d²] + c(x) is quadratic in each coordinate with no cross terms"
    );
    let domain_note = match &domain {
        Ok(proof) => format!("η2 < 0 proved: {proof}"),
        Err(why) => format!(
            "η2 < 0 not proved ({why}); guard inserted: η2 ← min(η2, −1e-6) keeps q({latent} | x) normalisable, and where it is active the results describe the guarded quadratic, not E"
        ),
    };

    let energy;
    let mut mean_std_outputs = vec![("mean".to_string(), mean), ("std".to_string(), std)];
    let mut mean_notes = vec![format!(
        "q({latent} | x) = N(mean, std²) per dimension with mean = −η1/(2η2), std = √(−1/(2η2))"
    )];
    let mut marginal_notes = vec![format!(
        "E(x) = −log ∫ exp(−E(x, {latent})) d{latent} in closed form: per dimension log ∫ exp(η1 z + η2 z²) dz = −η1²/(4η2) + ½ log(π/(−η2)), plus c(x)"
    )];
    match n.mixture {
        Some(k) => {
            let lse = reduce(&mut b, Op::LogSumExp { axis: 0 }, log_norm, 0);
            let neg = b.neg(lse);
            let log_k = b.constant((k as f64).ln());
            energy = b.add(neg, log_k);
            let resp = b.node(
                Op::Softmax { axis: 0 },
                vec![log_norm],
                b.shape(log_norm).clone(),
            );
            mean_std_outputs.push(("responsibilities".to_string(), resp));
            mean_notes.push(format!(
                "mean and std per component [B, K, D]; responsibilities = p(y = k | x) = softmax_k of log ∫ exp(−E(x, {latent}, y = k)) d{latent}; the runtime picks the arg-max component"
            ));
            marginal_notes.push(format!(
                "the mixture over y is summed out like the energy: E(x) = −logsumexp_k(log ∫ exp(−E_k) d{latent}) + log {k}"
            ));
        }
        None => {
            energy = b.neg(log_norm);
        }
    }
    marginal_notes
        .push("the ½ log π terms are kept, so E(x) is exact, not up to a constant".to_string());

    let natural_notes = vec![
        form.clone(),
        format!(
            "q({latent} | x) ∝ exp(η1·{latent} + η2·{latent}²): eta1 = η1, eta2 = η2 (natural parameters)"
        ),
        domain_note.clone(),
    ];
    mean_notes.insert(0, form.clone());
    mean_notes.push(domain_note.clone());
    marginal_notes.insert(0, form);
    marginal_notes.push(domain_note);

    b.function(
        "posterior_natural",
        inputs.clone(),
        vec![("eta1".to_string(), eta1), ("eta2".to_string(), eta2)],
        natural_notes,
    );
    b.function(
        "posterior_mean_std",
        inputs.clone(),
        mean_std_outputs,
        mean_notes,
    );
    b.function(
        "marginal_energy",
        inputs,
        vec![("energy".to_string(), energy)],
        marginal_notes,
    );
    program.notes.push(format!(
        "closed-form posterior for {latent}: −E is quadratic in each {latent}_d; derived posterior_natural, posterior_mean_std, marginal_energy"
    ));
    Outcome::Conjugate {
        proved: domain.is_ok(),
        mixture: n.mixture,
    }
}

// ---- sign analysis --------------------------------------------------------------------------------

/// The possible signs of a value: bit 0 negative, bit 1 zero, bit 2 positive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sign(u8);

const NEG: u8 = 1;
const ZERO: u8 = 2;
const POS: u8 = 4;
const ANY: Sign = Sign(NEG | ZERO | POS);

impl Sign {
    fn of(c: f64) -> Sign {
        if c.is_nan() {
            ANY
        } else if c < 0.0 {
            Sign(NEG)
        } else if c == 0.0 {
            Sign(ZERO)
        } else {
            Sign(POS)
        }
    }
    fn singles(self) -> impl Iterator<Item = u8> {
        [NEG, ZERO, POS]
            .into_iter()
            .filter(move |s| self.0 & s != 0)
    }
    fn map(self, f: impl Fn(u8) -> u8) -> Sign {
        Sign(self.singles().fold(0, |acc, s| acc | f(s)))
    }
    fn pair(self, o: Sign, f: impl Fn(u8, u8) -> u8) -> Sign {
        let mut r = 0;
        for a in self.singles() {
            for b in o.singles() {
                r |= f(a, b);
            }
        }
        Sign(r)
    }
    fn neg(self) -> Sign {
        self.map(|s| match s {
            NEG => POS,
            POS => NEG,
            z => z,
        })
    }
    fn add(self, o: Sign) -> Sign {
        self.pair(o, |a, b| match (a, b) {
            (ZERO, x) | (x, ZERO) => x,
            (x, y) if x == y => x,
            _ => NEG | ZERO | POS,
        })
    }
    fn mul(self, o: Sign) -> Sign {
        self.pair(o, |a, b| match (a, b) {
            (ZERO, _) | (_, ZERO) => ZERO,
            (x, y) if x == y => POS,
            _ => NEG,
        })
    }
    /// The sign of `x · x` (one value squared, not a product of two independent ones).
    fn square(self) -> Sign {
        self.map(|s| if s == ZERO { ZERO } else { POS })
    }
    fn text(self) -> &'static str {
        match self.0 {
            NEG => "< 0",
            x if x == NEG | ZERO => "≤ 0",
            ZERO => "= 0",
            x if x == ZERO | POS => "≥ 0",
            POS => "> 0",
            _ => "is of unknown sign",
        }
    }
}

fn sign(p: &Program, id: NodeId, memo: &mut HashMap<NodeId, Sign>) -> Sign {
    if let Some(s) = memo.get(&id) {
        return *s;
    }
    let node = p.node(id);
    let arg = |i: usize, memo: &mut HashMap<NodeId, Sign>| sign(p, node.inputs[i], memo);
    let s = match &node.op {
        Op::Const(c) => Sign::of(*c),
        Op::Unary(u) => {
            let a = arg(0, memo);
            match u {
                Unary::Neg => a.neg(),
                Unary::Sqr => a.square(),
                Unary::Exp | Unary::Softplus | Unary::Sigmoid => Sign(POS),
                Unary::Sqrt | Unary::Relu | Unary::Step => {
                    Sign(if a == Sign(POS) { POS } else { ZERO | POS })
                }
                Unary::Tanh | Unary::LeakyRelu(_) => a,
                Unary::Recip if a.0 & ZERO == 0 => a,
                _ => ANY,
            }
        }
        Op::Binary(bop) => {
            let (a, c) = (arg(0, memo), arg(1, memo));
            match bop {
                Binary::Add => a.add(c),
                Binary::Sub => a.add(c.neg()),
                Binary::Mul => a.mul(c),
                Binary::Div if c.0 & ZERO == 0 => a.mul(c),
                Binary::Pow if a == Sign(POS) => Sign(POS),
                Binary::Pow => match p.node(node.inputs[1]).op {
                    Op::Const(2.0) => a.square(),
                    Op::Const(1.0) => a,
                    _ => ANY,
                },
                Binary::Max => a.pair(c, |x, y| x.max(y)),
                Binary::Min => a.pair(c, |x, y| x.min(y)),
                _ => ANY,
            }
        }
        Op::Sum { .. } => {
            let a = arg(0, memo);
            a.add(a)
        }
        Op::Select { .. } | Op::Reshape | Op::Unsqueeze { .. } | Op::Broadcast => arg(0, memo),
        Op::Concat { .. } => {
            (0..node.inputs.len()).fold(Sign(0), |acc, i| Sign(acc.0 | arg(i, memo).0))
        }
        Op::Softmax { .. } => Sign(POS),
        Op::LogSoftmax { .. } => Sign(NEG | ZERO),
        _ => ANY,
    };
    memo.insert(id, s);
    s
}

/// The terms of a sum (through Add, Sub and Neg), each with whether it is negated.
fn terms(p: &Program, id: NodeId, negated: bool, out: &mut Vec<(NodeId, bool)>) {
    let node = p.node(id);
    match node.op {
        Op::Binary(Binary::Add) => {
            terms(p, node.inputs[0], negated, out);
            terms(p, node.inputs[1], negated, out);
        }
        Op::Binary(Binary::Sub) => {
            terms(p, node.inputs[0], negated, out);
            terms(p, node.inputs[1], !negated, out);
        }
        Op::Unary(Unary::Neg) => terms(p, node.inputs[0], !negated, out),
        _ => out.push((id, negated)),
    }
}

/// `Ok(proof)` when the sign analysis shows `eta2 < 0` everywhere, else `Err(what is missing)`.
fn prove_negative(p: &Program, eta2: NodeId) -> Result<String, String> {
    let mut memo = HashMap::new();
    let mut ts = Vec::new();
    terms(p, eta2, false, &mut ts);
    let described: Vec<(String, Sign)> = ts
        .iter()
        .map(|(id, neg)| {
            let s = sign(p, *id, &mut memo);
            let s = if *neg { s.neg() } else { s };
            let text = render(p, *id, 0);
            (
                if *neg {
                    format!("−{}", paren(p, *id, text))
                } else {
                    text
                },
                s,
            )
        })
        .collect();
    let total = sign(p, eta2, &mut memo);
    let sum_text = described
        .iter()
        .enumerate()
        .map(|(i, (t, _))| {
            if i == 0 {
                t.clone()
            } else if let Some(r) = t.strip_prefix('−') {
                format!("− {r}")
            } else {
                format!("+ {t}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    let facts = described
        .iter()
        .map(|(t, s)| format!("{t} {}", s.text()))
        .collect::<Vec<_>>()
        .join(", ");
    if total == Sign(NEG) {
        let why = if described.len() > 1 {
            "a sum of terms ≤ 0 with at least one < 0 is < 0"
        } else {
            "so η2 < 0"
        };
        Ok(format!("η2 = {sum_text}, where {facts}; {why}"))
    } else {
        let bad: Vec<String> = described
            .iter()
            .filter(|(_, s)| s.0 & (ZERO | POS) != 0)
            .map(|(t, s)| format!("{t} {}", s.text()))
            .collect();
        if described.iter().all(|(_, s)| s.0 & POS == 0) {
            Err(format!(
                "η2 = {sum_text} is only known to be ≤ 0: no term is strictly negative"
            ))
        } else {
            Err(format!("η2 = {sum_text}, where {}", bad.join(", ")))
        }
    }
}

fn paren(p: &Program, id: NodeId, text: String) -> String {
    match p.node(id).op {
        Op::Binary(Binary::Add | Binary::Sub) => format!("({text})"),
        _ => text,
    }
}

/// A short readable form of a z-free coefficient node, for notes.
fn render(p: &Program, id: NodeId, depth: usize) -> String {
    if depth > 8 {
        return "…".into();
    }
    let node = p.node(id);
    let arg = |i: usize| render(p, node.inputs[i], depth + 1);
    let wrap = |i: usize| {
        let t = render(p, node.inputs[i], depth + 1);
        match p.node(node.inputs[i]).op {
            Op::Binary(Binary::Add | Binary::Sub | Binary::Mul | Binary::Div) => format!("({t})"),
            Op::Unary(Unary::Neg) => format!("({t})"),
            _ => t,
        }
    };
    match &node.op {
        Op::Const(c) if *c < 0.0 => format!("−{}", -c),
        Op::Const(c) => format!("{c}"),
        Op::Input(n) => n.clone(),
        Op::Param(path) => path.strip_prefix("parameters.").unwrap_or(path).to_string(),
        Op::Unary(Unary::Neg) => format!("−{}", wrap(0)),
        Op::Unary(Unary::Sqr) => format!("sq({})", arg(0)),
        Op::Unary(Unary::Recip) => format!("1/{}", wrap(0)),
        Op::Unary(u) => format!("{}({})", Op::Unary(*u).name(), arg(0)),
        Op::Binary(Binary::Mul) if matches!(p.node(node.inputs[1]).op, Op::Const(_)) => {
            format!("{}·{}", arg(1), wrap(0))
        }
        Op::Binary(bop) => {
            let sym = match bop {
                Binary::Add => " + ",
                Binary::Sub => " − ",
                Binary::Mul => "·",
                Binary::Div => "/",
                Binary::Pow => "^",
                Binary::Max => return format!("max({}, {})", arg(0), arg(1)),
                Binary::Min => return format!("min({}, {})", arg(0), arg(1)),
            };
            format!("{}{sym}{}", wrap(0), wrap(1))
        }
        Op::Linear | Op::MatMul | Op::Conv2d { .. } | Op::ConvTranspose2d { .. } => {
            match node.inputs.get(1).map(|w| &p.node(*w).op) {
                Some(Op::Param(path)) if path.starts_with("networks.") => {
                    let net = path.split('.').nth(1).unwrap_or("net");
                    let args: Vec<String> = reachable(p, [id])
                        .into_iter()
                        .filter_map(|i| match &p.node(i).op {
                            Op::Input(n) => Some(n.clone()),
                            _ => None,
                        })
                        .collect();
                    if args.is_empty() {
                        format!("{net}(…)")
                    } else {
                        format!("{net}({})", args.join(", "))
                    }
                }
                _ => format!("{}(…)", node.op.name()),
            }
        }
        Op::Reshape | Op::Unsqueeze { .. } | Op::Broadcast | Op::SumTo => arg(0),
        Op::Select { axis: 0, index } => format!("{}[{index}]", wrap(0)),
        Op::Select { axis, index } => format!("select({}, axis {axis}, {index})", arg(0)),
        Op::Sum { .. } => format!("sum({})", arg(0)),
        other => format!(
            "{}({})",
            other.name(),
            node.inputs
                .iter()
                .map(|i| render(p, *i, depth + 1))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
