//! The executor: evaluates a function of a compiled [`Program`] on candle tensors.
//!
//! [`Executor::new`] plans every function once (the nodes it reaches, in handle order, and when each
//! value can be dropped); [`Executor::call`] then walks that list. Values follow the IR's shape
//! convention: a batched node's tensor has the batch as its leading dim, and event axes of ops
//! (`Sum`, `LogSumExp`, `Select`, `Concat`, ...) are shifted by one when the operand is batched.
//! Elementwise ops broadcast explicitly (numpy-style over the event dims, aligned from the right;
//! unbatched operands are repeated over the batch), exactly as the reference evaluator
//! [`crate::ir::eval`] does, which the tests compare against on every function of every spec.
//!
//! Scalar constants are folded where they meet other constants, applied as `affine` where they meet
//! a tensor (`x · c`, `x + c`, ...), and otherwise materialised once per (value, dtype, device).
//!
//! Parameters are read in one of two [`ParamMode`]s: `Tracked` uses the `Var`s themselves, so that
//! `loss.backward()` yields parameter gradients (learning steps); `Detached` reads them without the
//! tape (sampler loops, which call the derived input-gradient functions instead of autograd).

use super::error::{Context, Result, RuntimeError};
use super::fuse;
use super::host;
use super::linear::linear;
use super::params::Params;
use crate::check::Shape;
use crate::ir::eval::{binary_value, unary_value};
use crate::ir::print::reachable;
use crate::ir::{Binary, Node, NodeId, Op, Program, Unary};
use candle_core::{DType, Device, DeviceLocation, Tensor, WithDType};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

#[cfg(test)]
#[path = "exec_tests.rs"]
mod exec_tests;

/// How a call reads the parameters.
#[derive(Clone, Copy, Debug)]
pub enum ParamMode<'a> {
    /// The `Var`s themselves: the result's autograd graph reaches the parameters.
    Tracked(&'a Params),
    /// The current values without the tape (no parameter gradients, no graph kept alive).
    Detached(&'a Params),
}

impl<'a> ParamMode<'a> {
    pub fn params(&self) -> &'a Params {
        match self {
            ParamMode::Tracked(p) | ParamMode::Detached(p) => p,
        }
    }

    fn value(&self, path: &str) -> Option<Tensor> {
        match self {
            ParamMode::Tracked(p) => p.try_get(path).map(|v| v.as_tensor().clone()),
            ParamMode::Detached(p) => p.try_get(path).map(|v| v.as_detached_tensor()),
        }
    }
}

/// One function, planned.
#[derive(Clone, Debug)]
struct Plan {
    inputs: Vec<(String, NodeId)>,
    outputs: Vec<(String, NodeId)>,
    /// The nodes the outputs depend on, in handle order (inputs before their users).
    order: Vec<NodeId>,
    /// After evaluating `order[k]`, the values no later node (nor an output) needs.
    drop_after: Vec<Vec<NodeId>>,
    /// Swish nodes whose input also feeds a later `Sigmoid` node (a derived gradient's swish
    /// derivative), with that node: both are computed in one pass (see [`swish_and_sigmoid`]).
    swish_sigmoid: HashMap<NodeId, NodeId>,
    /// Chains of elementwise nodes evaluated as one loop (see [`fuse`]), by their root node.
    fused: HashMap<NodeId, fuse::Group>,
    /// The other nodes of those groups: evaluated inside their group's loop.
    fused_away: HashSet<NodeId>,
}

/// The plan of the function with `inputs` that computes `outputs`.
fn make_plan(
    program: &Program,
    inputs: &[(String, NodeId)],
    outputs: &[(String, NodeId)],
    fusion: bool,
) -> Plan {
    let order = reachable(program, outputs.iter().map(|(_, id)| *id));
    let output_ids: Vec<NodeId> = outputs.iter().map(|(_, id)| *id).collect();
    let fused = if fusion {
        fuse::find(program, &order, &output_ids)
    } else {
        HashMap::new()
    };
    let fused_away: HashSet<NodeId> = fused
        .iter()
        .flat_map(|(root, g)| g.members.iter().filter(move |m| *m != root).copied())
        .collect();
    // What each evaluated node reads: a group's root reads what any node of the group reads
    // from outside it (its leaves, and the constants its nodes read when evaluated one by one),
    // the group's other nodes nothing.
    let mut last_use: HashMap<NodeId, usize> = HashMap::new();
    for (k, id) in order.iter().enumerate() {
        let reads = match fused.get(id) {
            Some(g) => g
                .members
                .iter()
                .flat_map(|m| program.node(*m).inputs.iter().copied())
                .filter(|i| !g.members.contains(i))
                .collect(),
            None if fused_away.contains(id) => Vec::new(),
            None => program.node(*id).inputs.clone(),
        };
        for i in reads {
            last_use.insert(i, k);
        }
    }
    let mut drop_after = vec![Vec::new(); order.len()];
    for (id, k) in last_use {
        if !outputs.iter().any(|(_, o)| *o == id) {
            drop_after[k].push(id);
        }
    }
    let swish_sigmoid = swish_sigmoid_pairs(program, &order);
    Plan {
        inputs: inputs.to_vec(),
        outputs: outputs.to_vec(),
        order,
        drop_after,
        swish_sigmoid,
        fused,
        fused_away,
    }
}

/// The `Swish(x)` nodes of `order` with a later `Sigmoid(x)` node on the same `x`.
fn swish_sigmoid_pairs(program: &Program, order: &[NodeId]) -> HashMap<NodeId, NodeId> {
    let of = |u: Unary| -> HashMap<NodeId, NodeId> {
        order
            .iter()
            .filter(|id| program.node(**id).op == Op::Unary(u))
            .map(|id| (program.node(*id).inputs[0], *id))
            .collect()
    };
    let sigmoids = of(Unary::Sigmoid);
    of(Unary::Swish)
        .into_iter()
        .filter_map(|(x, sw)| sigmoids.get(&x).filter(|sg| **sg > sw).map(|sg| (sw, *sg)))
        .collect()
}

/// A node's value during a call: a scalar constant (folded, not yet a tensor) or a tensor.
#[derive(Clone, Debug)]
enum Val {
    Const(f64),
    T(Tensor),
}

/// What every node evaluation needs to know about the call.
struct Cx<'a> {
    batch: Option<usize>,
    dtype: DType,
    device: &'a Device,
    mode: &'a ParamMode<'a>,
}

/// Evaluates the functions of one program.
#[derive(Debug)]
pub struct Executor {
    program: Program,
    plans: HashMap<String, Plan>,
    /// Per `(function, output)`: the plan of that output alone (see [`Executor::call_output`]).
    output_plans: HashMap<(String, String), Plan>,
    /// Plans of several functions evaluated together (see [`Executor::call_together`]), made on
    /// first use.
    joint_plans: Mutex<HashMap<Vec<String>, Arc<Plan>>>,
    fusion: bool,
    consts: Mutex<HashMap<(u64, DType, DeviceLocation), Tensor>>,
}

impl Executor {
    /// Plans every function of `program`.
    pub fn new(program: &Program) -> Self {
        Self::with_fusion(program, true)
    }

    /// [`Executor::new`], with elementwise fusion on or off (off: every node is evaluated alone,
    /// which tests compare the fused loops against).
    pub(crate) fn with_fusion(program: &Program, fusion: bool) -> Self {
        let mut plans = HashMap::new();
        let mut output_plans = HashMap::new();
        for f in &program.functions {
            plans.insert(
                f.name.clone(),
                make_plan(program, &f.inputs, &f.outputs, fusion),
            );
            for out in &f.outputs {
                let plan = make_plan(program, &f.inputs, std::slice::from_ref(out), fusion);
                output_plans.insert((f.name.clone(), out.0.clone()), plan);
            }
        }
        Executor {
            program: program.clone(),
            plans,
            output_plans,
            joint_plans: Mutex::new(HashMap::new()),
            fusion,
            consts: Mutex::new(HashMap::new()),
        }
    }

    pub fn program(&self) -> &Program {
        &self.program
    }

    pub fn has_function(&self, name: &str) -> bool {
        self.plans.contains_key(name)
    }

    /// The arguments of `function`: `(name, shape)` (the shape without the batch dim, flagged).
    pub fn inputs_of(&self, function: &str) -> Result<Vec<(String, Shape)>> {
        let plan = self.plan(function)?;
        Ok(plan
            .inputs
            .iter()
            .map(|(n, id)| (n.clone(), self.program.node(*id).shape.clone()))
            .collect())
    }

    /// The results of `function`: `(name, shape)`.
    pub fn outputs_of(&self, function: &str) -> Result<Vec<(String, Shape)>> {
        let plan = self.plan(function)?;
        Ok(plan
            .outputs
            .iter()
            .map(|(n, id)| (n.clone(), self.program.node(*id).shape.clone()))
            .collect())
    }

    fn plan(&self, function: &str) -> Result<&Plan> {
        self.plans
            .get(function)
            .ok_or_else(|| RuntimeError::NoFunction {
                name: function.to_string(),
            })
    }

    /// Evaluates `function` on `inputs` (by argument name; extra names are ignored) and returns
    /// its named outputs in declaration order. Tensors must be in the parameters' dtype and on
    /// their device; batched arguments carry the batch as their leading dim.
    pub fn call(
        &self,
        function: &str,
        inputs: &[(&str, &Tensor)],
        params: &ParamMode,
    ) -> Result<Vec<(String, Tensor)>> {
        let plan = self.plan(function)?;
        self.run(function, plan, inputs, params)
    }

    /// The output `output` of `function` alone: only the nodes it depends on are evaluated (e.g. a
    /// sampler that needs `grad_z` but not the function's `value`).
    pub fn call_output(
        &self,
        function: &str,
        output: &str,
        inputs: &[(&str, &Tensor)],
        params: &ParamMode,
    ) -> Result<Tensor> {
        let plan = self
            .output_plans
            .get(&(function.to_string(), output.to_string()))
            .ok_or_else(|| RuntimeError::NoFunction {
                name: format!("{function} (output `{output}`)"),
            })?;
        let mut outs = self.run(function, plan, inputs, params)?;
        Ok(outs.swap_remove(0).1)
    }

    /// The outputs `names` of `function`, in that order, from one evaluation of it (e.g. a chain
    /// that traces the function's `value` beside its gradient).
    pub fn call_outputs(
        &self,
        function: &str,
        names: &[&str],
        inputs: &[(&str, &Tensor)],
        params: &ParamMode,
    ) -> Result<Vec<Tensor>> {
        let mut outs = self.call(function, inputs, params)?;
        names
            .iter()
            .map(|name| {
                let at = outs.iter().position(|(n, _)| n == name).ok_or_else(|| {
                    RuntimeError::NoFunction {
                        name: format!("{function} (output `{name}`)"),
                    }
                })?;
                Ok(outs.swap_remove(at).1)
            })
            .collect()
    }

    /// The first output of each of `functions`, evaluated in one pass: the nodes they share (the
    /// IR shares a network's layers between, e.g., `prior_log_density` and `classifier` on the
    /// same z) are computed once, and on the tape their gradients flow through one graph.
    pub fn call_together(
        &self,
        functions: &[&str],
        inputs: &[(&str, &Tensor)],
        params: &ParamMode,
    ) -> Result<Vec<Tensor>> {
        let key: Vec<String> = functions.iter().map(|f| f.to_string()).collect();
        let plan = {
            let mut cache = self.joint_plans.lock().expect("joint plans poisoned");
            match cache.get(&key) {
                Some(p) => p.clone(),
                None => {
                    let (mut args, mut outs) = (Vec::new(), Vec::new());
                    for f in functions {
                        let plan = self.plan(f)?;
                        for a in &plan.inputs {
                            if !args.contains(a) {
                                args.push(a.clone());
                            }
                        }
                        let first =
                            plan.outputs
                                .first()
                                .ok_or_else(|| RuntimeError::NoFunction {
                                    name: format!("{f} (it has no outputs)"),
                                })?;
                        outs.push(first.clone());
                    }
                    let p = Arc::new(make_plan(&self.program, &args, &outs, self.fusion));
                    cache.insert(key.clone(), p.clone());
                    p
                }
            }
        };
        let outs = self.run(&key.join(" + "), &plan, inputs, params)?;
        Ok(outs.into_iter().map(|(_, t)| t).collect())
    }

    /// Evaluates `plan` (of `function`) on `inputs`: its outputs in plan order.
    fn run(
        &self,
        function: &str,
        plan: &Plan,
        inputs: &[(&str, &Tensor)],
        params: &ParamMode,
    ) -> Result<Vec<(String, Tensor)>> {
        let p = params.params();
        let (dtype, device) = (p.dtype(), p.device());
        let mut vals: Vec<Option<Val>> = vec![None; self.program.nodes.len()];

        // Bind the arguments; the batch size comes from the batched ones.
        let mut batch: Option<usize> = None;
        for (arg, id) in &plan.inputs {
            let bad = |message: String| RuntimeError::BadInput {
                function: function.to_string(),
                input: arg.clone(),
                message,
            };
            let Some((_, t)) = inputs.iter().find(|(n, _)| n == arg) else {
                // An argument no output depends on may be left out.
                if plan.order.binary_search(id).is_err() {
                    continue;
                }
                return Err(bad("no value given".into()));
            };
            let shape = &self.program.node(*id).shape;
            let dims = t.dims();
            let event = if shape.batched {
                let Some(&b) = dims.first() else {
                    return Err(bad(format!("batched argument of shape {dims:?}")));
                };
                if let Some(prev) = batch
                    && prev != b
                {
                    return Err(bad(format!("batch size {b}, other arguments have {prev}")));
                }
                batch = Some(b);
                &dims[1..]
            } else {
                dims
            };
            if event != shape.dims.as_slice() {
                return Err(bad(format!("shape {dims:?}, expected {shape}")));
            }
            if t.dtype() != dtype {
                return Err(bad(format!(
                    "dtype {:?}, the parameters are {dtype:?}",
                    t.dtype()
                )));
            }
            vals[id.index()] = Some(Val::T((*t).clone()));
        }

        let cx = Cx {
            batch,
            dtype,
            device,
            mode: params,
        };
        for (k, id) in plan.order.iter().enumerate() {
            let node = self.program.node(*id);
            if let Some(group) = plan.fused.get(id) {
                self.eval_group(function, group, &mut vals, &cx)?;
            } else if plan.fused_away.contains(id) {
                // Computed inside its group's loop.
            } else if vals[id.index()].is_none() {
                if let Some((sw, sg)) = self.fused_swish(plan, *id, node, &vals)? {
                    vals[id.index()] = Some(Val::T(sw));
                    vals[plan.swish_sigmoid[id].index()] = Some(Val::T(sg));
                } else {
                    let v = self.eval_node(function, *id, node, &vals, &cx)?;
                    vals[id.index()] = Some(v);
                }
            }
            for d in &plan.drop_after[k] {
                vals[d.index()] = None;
            }
        }

        plan.outputs
            .iter()
            .map(|(name, id)| {
                let v = vals[id.index()]
                    .as_ref()
                    .expect("internal error: output not evaluated");
                let t = self
                    .tensor(v, &cx)
                    .with_ctx(|| format!("{function}: output {name}"))?;
                Ok((name.clone(), t))
            })
            .collect()
    }

    /// The first output of `function`.
    pub fn call1(
        &self,
        function: &str,
        inputs: &[(&str, &Tensor)],
        params: &ParamMode,
    ) -> Result<Tensor> {
        let mut outs = self.call(function, inputs, params)?;
        if outs.is_empty() {
            return Err(RuntimeError::NoFunction {
                name: format!("{function} (it has no outputs)"),
            });
        }
        Ok(outs.swap_remove(0).1)
    }

    /// Evaluates a fused group into its root's value: one loop where [`fuse::Group::eval`]
    /// applies, else its nodes one by one (the values of the non-root nodes are then dropped).
    fn eval_group(
        &self,
        function: &str,
        group: &fuse::Group,
        vals: &mut [Option<Val>],
        cx: &Cx,
    ) -> Result<()> {
        let root = *group.members.last().expect("a group has nodes");
        let fused = group
            .leaves
            .iter()
            .map(|l| self.tensor(vals[l.index()].as_ref().expect("planned before"), cx))
            .collect::<candle_core::Result<Vec<_>>>()
            .and_then(|leaves| group.eval(&leaves))
            .with_ctx(|| format!("evaluating `{function}`: the fused group of {root}"))?;
        if let Some(t) = fused {
            vals[root.index()] = Some(Val::T(t));
            return Ok(());
        }
        for m in &group.members {
            let v = self.eval_node(function, *m, self.program.node(*m), vals, cx)?;
            vals[m.index()] = Some(v);
        }
        for m in &group.members[..group.members.len() - 1] {
            vals[m.index()] = None;
        }
        Ok(())
    }

    /// For a swish node paired with a sigmoid node not yet evaluated (see [`Plan`]): both values,
    /// where [`swish_and_sigmoid`] can compute them.
    fn fused_swish(
        &self,
        plan: &Plan,
        id: NodeId,
        node: &Node,
        vals: &[Option<Val>],
    ) -> Result<Option<(Tensor, Tensor)>> {
        let Some(sg) = plan.swish_sigmoid.get(&id) else {
            return Ok(None);
        };
        match (&vals[sg.index()], &vals[node.inputs[0].index()]) {
            (None, Some(Val::T(x))) => swish_and_sigmoid(x).ctx("evaluating swish and sigmoid"),
            _ => Ok(None),
        }
    }

    fn eval_node(
        &self,
        function: &str,
        id: NodeId,
        node: &Node,
        vals: &[Option<Val>],
        cx: &Cx,
    ) -> Result<Val> {
        let arg = |i: usize| -> &Val {
            let input = node.inputs[i];
            vals[input.index()].as_ref().unwrap_or_else(|| {
                panic!(
                    "internal error: {input} used by {id} in `{function}` before it is evaluated"
                )
            })
        };
        let context = || {
            format!(
                "evaluating `{function}`: {id} = {} : {}",
                node.op.name(),
                node.shape
            )
        };
        match &node.op {
            Op::Input(name) => Err(RuntimeError::BadInput {
                function: function.to_string(),
                input: name.clone(),
                message: "no value given (it is not an argument of the function)".into(),
            }),
            Op::Param(path) => {
                let t = cx
                    .mode
                    .value(path)
                    .ok_or_else(|| RuntimeError::ParamMismatch {
                        path: path.clone(),
                        message: "the parameters do not include it".into(),
                    })?;
                if t.dims() != node.shape.dims.as_slice() {
                    return Err(RuntimeError::ParamMismatch {
                        path: path.clone(),
                        message: format!(
                            "has shape {:?}, the program needs {:?}",
                            t.dims(),
                            node.shape.dims
                        ),
                    });
                }
                Ok(Val::T(t))
            }
            Op::Const(c) => Ok(Val::Const(*c)),
            _ => self.eval_op(node, &arg, cx).with_ctx(context),
        }
    }

    /// The value of a node that computes something (not an argument, parameter or constant).
    fn eval_op<'v>(
        &self,
        node: &Node,
        arg: &dyn Fn(usize) -> &'v Val,
        cx: &Cx,
    ) -> candle_core::Result<Val> {
        let shape_of = |i: usize| &self.program.node(node.inputs[i]).shape;
        let out_dims = full_dims(&node.shape, cx.batch)?;
        let off = |s: &Shape| s.batched as usize;
        let t = match &node.op {
            Op::Input(_) | Op::Param(_) | Op::Const(_) => unreachable!("handled by eval_node"),
            Op::Unary(u) => match arg(0) {
                Val::Const(c) => return Ok(Val::Const(unary_value(*u, *c))),
                Val::T(x) => unary(*u, x)?,
            },
            Op::Binary(op) => {
                return self.binary(
                    *op,
                    arg(0),
                    shape_of(0),
                    arg(1),
                    shape_of(1),
                    &node.shape,
                    cx,
                );
            }
            Op::Where => {
                let a = self.expand(arg(0), shape_of(0), &node.shape, cx)?;
                let b = self.expand(arg(1), shape_of(1), &node.shape, cx)?;
                let c = self.expand(arg(2), shape_of(2), &node.shape, cx)?;
                let zero = self.tensor(&Val::Const(0.0), cx)?;
                c.broadcast_gt(&zero)?.where_cond(&a, &b)?
            }
            Op::Broadcast => self.expand(arg(0), shape_of(0), &node.shape, cx)?,
            Op::SumTo => {
                let x = self.tensor(arg(0), cx)?;
                let (src, dst) = (shape_of(0), &node.shape);
                let mut axes = Vec::new();
                if src.batched && !dst.batched {
                    axes.push(0);
                }
                let (n, m) = (src.dims.len(), dst.dims.len());
                for i in 0..n {
                    if i < n - m || (dst.dims[i - (n - m)] == 1 && src.dims[i] != 1) {
                        axes.push(off(src) + i);
                    }
                }
                // The host sum on untracked CPU values (it builds no autograd node).
                let run = axes.windows(2).all(|w| w[1] == w[0] + 1)
                    && host::is_host_float(&x)
                    && !x.track_op();
                let x = match (axes.first(), x.dtype()) {
                    (None, _) => x,
                    (Some(&a), DType::F32) if run => {
                        host::sum_axes_keepdim::<f32>(&x, a, axes.len())?
                    }
                    (Some(&a), DType::F64) if run => {
                        host::sum_axes_keepdim::<f64>(&x, a, axes.len())?
                    }
                    _ => x.sum_keepdim(axes)?,
                };
                x.reshape(out_dims.as_slice())?
            }
            Op::Linear => {
                let (x, w) = (self.tensor(arg(0), cx)?, self.tensor(arg(1), cx)?);
                let (o, i) = w.dims2()?;
                let rows = x.elem_count() / i.max(1);
                let x2 = if x.rank() == 2 {
                    x
                } else {
                    x.reshape((rows, i))?
                };
                let y = match arg(2) {
                    Val::Const(c) if *c == 0.0 => linear(&x2, &w, None)?,
                    Val::Const(c) => linear(&x2, &w, None)?.affine(1.0, *c)?,
                    Val::T(b) if b.elem_count() == o && b.rank() == 1 => linear(&x2, &w, Some(b))?,
                    Val::T(b) if b.elem_count() == 1 => {
                        linear(&x2, &w, None)?.broadcast_add(&b.reshape((1, 1))?)?
                    }
                    Val::T(b) => linear(&x2, &w, Some(&b.reshape(o)?))?,
                };
                if y.dims() == out_dims.as_slice() {
                    y
                } else {
                    y.reshape(out_dims.as_slice())?
                }
            }
            Op::MatMul => {
                let (x, w) = (self.tensor(arg(0), cx)?, self.tensor(arg(1), cx)?);
                let (xs, ws) = (shape_of(0), shape_of(1));
                let i = *xs
                    .dims
                    .last()
                    .ok_or_else(|| candle_core::Error::Msg("matmul of a scalar".into()))?;
                let r: usize = ws.dims[1..].iter().product();
                let y = if ws.batched {
                    let b = w.dim(0)?;
                    let w3 = w.reshape((b, i, r))?.contiguous()?;
                    let x3 = if xs.batched {
                        x.reshape((b, (), i))?.contiguous()?
                    } else {
                        x.reshape((1, (), i))?
                            .broadcast_as((b, x.elem_count() / i, i))?
                            .contiguous()?
                    };
                    x3.matmul(&w3)?
                } else {
                    let x2 = x.reshape(((), i))?.contiguous()?;
                    let w2 = w.reshape((i, r))?.contiguous()?;
                    x2.matmul(&w2)?
                };
                y.reshape(out_dims.as_slice())?
            }
            Op::Conv2d { stride, padding } => {
                let (x, w) = (self.tensor(arg(0), cx)?, self.tensor(arg(1), cx)?);
                let batched = x.rank() == 4;
                let x = if batched { x } else { x.unsqueeze(0)? };
                // GEMM + im2col on the CPU (candle's own elsewhere); see `runtime::conv`.
                let b = tensor_bias(arg(2));
                let y = super::conv::conv2d(&x, &w, b, *stride, *padding)?;
                conv_bias(y, arg(2), batched)?
            }
            Op::ConvTranspose2d {
                stride,
                padding,
                output_padding,
            } => {
                let (x, w) = (self.tensor(arg(0), cx)?, self.tensor(arg(1), cx)?);
                let batched = x.rank() == 4;
                let x = if batched { x } else { x.unsqueeze(0)? };
                // GEMM + col2im on the CPU (candle's own elsewhere); see `runtime::conv`.
                let b = tensor_bias(arg(2));
                let (s, p, op) = (*stride, *padding, *output_padding);
                let y = super::conv::conv_transpose2d(&x, &w, b, s, p, op)?;
                conv_bias(y, arg(2), batched)?
            }
            Op::Reshape => {
                let x = self.tensor(arg(0), cx)?;
                if x.dims() == out_dims.as_slice() {
                    x
                } else {
                    x.reshape(out_dims.as_slice())?
                }
            }
            Op::Unsqueeze { axis } => self
                .tensor(arg(0), cx)?
                .unsqueeze(axis + off(shape_of(0)))?,
            Op::Sum { axes } => {
                let x = self.tensor(arg(0), cx)?;
                if axes.is_empty() {
                    x
                } else {
                    let o = off(shape_of(0));
                    x.sum(axes.iter().map(|a| a + o).collect::<Vec<_>>())?
                }
            }
            Op::LogSumExp { axis } => self
                .tensor(arg(0), cx)?
                .log_sum_exp(axis + off(shape_of(0)))?,
            Op::Softmax { axis } => {
                candle_nn::ops::softmax(&self.tensor(arg(0), cx)?, axis + off(shape_of(0)))?
            }
            Op::LogSoftmax { axis } => {
                candle_nn::ops::log_softmax(&self.tensor(arg(0), cx)?, axis + off(shape_of(0)))?
            }
            Op::Select { axis, index } => {
                let ax = axis + off(shape_of(0));
                self.tensor(arg(0), cx)?
                    .narrow(ax, *index, 1)?
                    .squeeze(ax)?
            }
            Op::Concat { axis } => {
                let mut pieces = Vec::with_capacity(node.inputs.len());
                for k in 0..node.inputs.len() {
                    let mut slab = node.shape.clone();
                    slab.dims[*axis] = shape_of(k).dims[*axis];
                    pieces.push(self.expand(arg(k), shape_of(k), &slab, cx)?);
                }
                Tensor::cat(&pieces, axis + off(&node.shape))?
            }
        };
        if t.dims() != out_dims.as_slice() {
            candle_core::bail!("evaluated to shape {:?}, expected {out_dims:?}", t.dims());
        }
        Ok(Val::T(t))
    }

    /// An elementwise binary op with the IR's broadcasting; constants become `affine` where they
    /// can, and fold when both sides are constant.
    #[allow(clippy::too_many_arguments)]
    fn binary(
        &self,
        op: Binary,
        a: &Val,
        sa: &Shape,
        b: &Val,
        sb: &Shape,
        out: &Shape,
        cx: &Cx,
    ) -> candle_core::Result<Val> {
        let t = match (a, b) {
            (Val::Const(x), Val::Const(y)) if out.dims.is_empty() && !out.batched => {
                return Ok(Val::Const(binary_value(op, *x, *y)));
            }
            (Val::T(x), Val::Const(c)) if sa == out => match op {
                Binary::Add => x.affine(1.0, *c)?,
                Binary::Sub => x.affine(1.0, -*c)?,
                Binary::Mul => x.affine(*c, 0.0)?,
                Binary::Div => x.affine(1.0 / *c, 0.0)?,
                Binary::Pow => x.powf(*c)?,
                Binary::Max | Binary::Min => self.binary_tensors(op, a, sa, b, sb, out, cx)?,
            },
            (Val::Const(c), Val::T(y)) if sb == out => match op {
                Binary::Add => y.affine(1.0, *c)?,
                Binary::Sub => y.affine(-1.0, *c)?,
                Binary::Mul => y.affine(*c, 0.0)?,
                Binary::Pow if *c > 0.0 => y.affine(c.ln(), 0.0)?.exp()?,
                _ => self.binary_tensors(op, a, sa, b, sb, out, cx)?,
            },
            _ => self.binary_tensors(op, a, sa, b, sb, out, cx)?,
        };
        Ok(Val::T(t))
    }

    #[allow(clippy::too_many_arguments)]
    fn binary_tensors(
        &self,
        op: Binary,
        a: &Val,
        sa: &Shape,
        b: &Val,
        sb: &Shape,
        out: &Shape,
        cx: &Cx,
    ) -> candle_core::Result<Tensor> {
        let x = self.expand(a, sa, out, cx)?;
        let y = self.expand(b, sb, out, cx)?;
        match op {
            Binary::Add => x.add(&y),
            Binary::Sub => x.sub(&y),
            Binary::Mul => x.mul(&y),
            Binary::Div => x.div(&y),
            Binary::Pow => x.pow(&y),
            Binary::Max => x.broadcast_maximum(&y),
            Binary::Min => x.broadcast_minimum(&y),
        }
    }

    /// `v` (of IR shape `src`) broadcast to the full dims of `dst`: event dims aligned from the
    /// right, the batch matched with the batch (an unbatched value is repeated over it). A view.
    fn expand(&self, v: &Val, src: &Shape, dst: &Shape, cx: &Cx) -> candle_core::Result<Tensor> {
        let out = full_dims(dst, cx.batch)?;
        let mut t = self.tensor(v, cx)?;
        if t.dims() == out.as_slice() {
            return Ok(t);
        }
        let (n, m) = (dst.dims.len(), src.dims.len());
        if m > n || (src.batched && !dst.batched) {
            candle_core::bail!("cannot broadcast {src} to {dst}");
        }
        // Insert the missing leading event axes (after the batch, if any), then the batch.
        let at = src.batched as usize;
        for _ in 0..n - m {
            t = t.unsqueeze(at)?;
        }
        if dst.batched && !src.batched {
            t = t.unsqueeze(0)?;
        }
        t.broadcast_as(out)
    }

    /// The tensor of a value (constants materialised once per value, dtype and device).
    fn tensor(&self, v: &Val, cx: &Cx) -> candle_core::Result<Tensor> {
        match v {
            Val::T(t) => Ok(t.clone()),
            Val::Const(c) => {
                let key = (c.to_bits(), cx.dtype, cx.device.location());
                let mut cache = self.consts.lock().expect("constant cache poisoned");
                if let Some(t) = cache.get(&key) {
                    return Ok(t.clone());
                }
                let t = Tensor::new(*c, cx.device)?.to_dtype(cx.dtype)?;
                cache.insert(key, t.clone());
                Ok(t)
            }
        }
    }
}

/// The dims of a node's value: the batch (if batched) followed by the event dims.
fn full_dims(s: &Shape, batch: Option<usize>) -> candle_core::Result<Vec<usize>> {
    let mut d = Vec::with_capacity(s.dims.len() + 1);
    if s.batched {
        match batch {
            Some(b) => d.push(b),
            None => candle_core::bail!("a batched value in a function without batched arguments"),
        }
    }
    d.extend(&s.dims);
    Ok(d)
}

/// `swish(x)` and `sigmoid(x)` in one pass over host memory: both divide by `1 + exp(−x)`, and
/// `exp` is the costly part of the convolutional energies' derived gradients. The formulas are
/// candle's own (`silu`, `candle_nn::ops::sigmoid`): in f64 the values are the same bits; in f32
/// `exp` is the vectorised [`super::expf::exp`] (within 2 ulp) and swish is `x · σ` (one
/// division, not two), so they may differ from candle's in the last bits. `None` (use candle's
/// ops) off the CPU, for other dtypes, and for an `x` on the autograd tape.
fn swish_and_sigmoid(x: &Tensor) -> candle_core::Result<Option<(Tensor, Tensor)>> {
    if !x.device().is_cpu() || x.track_op() {
        return Ok(None);
    }
    match x.dtype() {
        DType::F32 => swish_and_sigmoid_host::<f32>(x, swish_sigmoid_f32).map(Some),
        // candle's formulas: silu v / (1 + e), sigmoid (e + 1).recip(), e = exp(−v). libm's `exp`
        // is a call per element, so it gets a pass of its own; the divisions vectorise in two
        // more (the sigmoid's in place over the denominators).
        DType::F64 => swish_and_sigmoid_host::<f64>(x, |xs, sw, sg| {
            sg.iter_mut()
                .zip(xs)
                .for_each(|(d, &v)| *d = 1.0 + (-v).exp());
            sw.iter_mut()
                .zip(xs)
                .zip(sg.iter())
                .for_each(|((s, &v), &d)| *s = v / d);
            sg.iter_mut().for_each(|d| *d = 1.0 / *d);
        })
        .map(Some),
        _ => Ok(None),
    }
}

/// σ = 1 / (1 + exp(−v)), swish = v·σ over `xs`: one loop that vectorises (one division), on
/// eight lanes where the CPU has AVX2 (no FMA: the same bits as the baseline's four).
fn swish_sigmoid_f32(xs: &[f32], sw: &mut [f32], sg: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2.
        return unsafe { swish_sigmoid_f32_avx2(xs, sw, sg) };
    }
    swish_sigmoid_lanes(xs, sw, sg)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn swish_sigmoid_f32_avx2(xs: &[f32], sw: &mut [f32], sg: &mut [f32]) {
    swish_sigmoid_lanes(xs, sw, sg)
}

#[inline(always)]
fn swish_sigmoid_lanes(xs: &[f32], sw: &mut [f32], sg: &mut [f32]) {
    for ((sw, sg), &v) in sw.iter_mut().zip(sg.iter_mut()).zip(xs) {
        let s = 1.0 / (1.0 + super::expf::exp(-v));
        (*sw, *sg) = (v * s, s);
    }
}

/// `fill(x, swish, sigmoid)` over chunks of `x` in parallel.
fn swish_and_sigmoid_host<T: WithDType>(
    x: &Tensor,
    fill: impl Fn(&[T], &mut [T], &mut [T]) + Sync,
) -> candle_core::Result<(Tensor, Tensor)> {
    let x = x.contiguous()?;
    let mut out = host::with_slice(&x, |xs: &[T]| {
        host::par_fill(2, xs.len(), |start, chunks| {
            let [sw, sg] = chunks else {
                unreachable!("two outputs")
            };
            fill(&xs[start..start + sw.len()], sw, sg);
        })
    })?;
    let sg = out.pop().expect("two outputs");
    let sw = out.pop().expect("two outputs");
    Ok((host::tensor(sw, x.dims())?, host::tensor(sg, x.dims())?))
}

fn unary(u: Unary, x: &Tensor) -> candle_core::Result<Tensor> {
    // Non-generic candle entry points only (`broadcast_maximum`, not `maximum::<T>`): generic
    // ones are instantiated in this crate, unoptimised in dev builds.
    match u {
        Unary::Neg => x.neg(),
        Unary::Exp => x.exp(),
        Unary::Log => x.log(),
        Unary::Sqr => x.sqr(),
        Unary::Sqrt => x.sqrt(),
        // relu(x) + log(1 + exp(−|x|)): no overflow for large |x|.
        Unary::Softplus => x
            .relu()?
            .add(&x.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?),
        Unary::Sigmoid => candle_nn::ops::sigmoid(x),
        Unary::Tanh => x.tanh(),
        Unary::Relu => x.relu(),
        Unary::LeakyRelu(s) => super::activation::leaky_relu(x, s),
        // The tanh approximation, as the reference evaluator (and candle's `gelu`).
        Unary::Gelu => x.gelu(),
        Unary::Swish => x.silu(),
        // relu(sign(x)): 1 where x > 0, else 0, in x's dtype (two vectorised passes; a comparison
        // gives u8 and needs a slow conversion).
        Unary::Step => x.sign()?.relu(),
        Unary::Recip => x.recip(),
    }
}

/// A convolution's bias when it is a tensor: the convolution adds it ([`super::conv::conv2d`]).
fn tensor_bias(b: &Val) -> Option<&Tensor> {
    match b {
        Val::T(b) => Some(b),
        Val::Const(_) => None,
    }
}

/// Adds a constant convolution bias to `y: [N, C, H, W]` (a tensor bias was added by the
/// convolution); drops N if the input had none.
fn conv_bias(y: Tensor, b: &Val, batched: bool) -> candle_core::Result<Tensor> {
    let y = match b {
        Val::Const(c) if *c != 0.0 => y.affine(1.0, *c)?,
        _ => y,
    };
    if batched { Ok(y) } else { y.squeeze(0) }
}

/// The device named on the command line: `cpu`, `cuda`, `cuda:N`, or `auto` (CUDA when this build
/// has it and a GPU is present, else the CPU).
pub fn device_from_name(name: &str) -> Result<Device> {
    let unavailable = |help: &str| RuntimeError::DeviceUnavailable {
        requested: name.to_string(),
        help: help.to_string(),
    };
    match name {
        "cpu" => Ok(Device::Cpu),
        "auto" => {
            if cfg!(feature = "cuda") && candle_core::utils::cuda_is_available() {
                Device::new_cuda(0).ctx("opening CUDA device 0")
            } else {
                Ok(Device::Cpu)
            }
        }
        _ => {
            let ordinal = match name.strip_prefix("cuda") {
                Some("") => 0,
                Some(rest) => match rest.strip_prefix(':').and_then(|n| n.parse::<usize>().ok()) {
                    Some(n) => n,
                    None => {
                        return Err(unavailable(
                            "write `cpu`, `cuda`, `cuda:N` (N a GPU number) or `auto`",
                        ));
                    }
                },
                None => {
                    return Err(unavailable(
                        "write `cpu`, `cuda`, `cuda:N` (N a GPU number) or `auto`",
                    ));
                }
            };
            if !cfg!(feature = "cuda") {
                return Err(unavailable(
                    "this ebmc was built without CUDA: rebuild with `--features cuda`, or use `--device cpu`",
                ));
            }
            Device::new_cuda(ordinal).map_err(|e| {
                unavailable(&format!(
                    "no usable CUDA device {ordinal} ({}); use `--device cpu`",
                    e.to_string().lines().next().unwrap_or("")
                ))
            })
        }
    }
}
