//! The compiled graph: an arena of typed nodes (op, inputs, shape), grouped into named functions.
//!
//! Shapes carry the batch dimension symbolically (`B`). Every function reads only its own inputs,
//! learned parameters (by spec path, `networks.g.layer2.weight`) and constants; nodes are shared
//! between functions (common subexpressions are built once, see [`Builder`]). Functions are pure: a
//! runtime may evaluate any of them on its own.
//!
//! The printer ([`print`]) is canonical and deterministic and has no spans; the validator
//! ([`validate`]) checks handle ranges, acyclicity (inputs precede their users) and shapes.

pub mod eval;
pub mod print;
pub mod rows;
pub mod validate;

use crate::check::Shape;
use std::collections::HashMap;
use std::fmt;

/// A node handle: an index into [`Program::nodes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

impl NodeId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub op: Op,
    pub inputs: Vec<NodeId>,
    pub shape: Shape,
    pub dtype: DType,
}

/// Elementwise functions of one argument.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    Neg,
    Exp,
    Log,
    Sqr,
    Sqrt,
    Softplus,
    Sigmoid,
    Tanh,
    Relu,
    LeakyRelu(f64),
    Gelu,
    Swish,
    /// 1 where the input is > 0, else 0 (the derivative of relu; used by derived gradients).
    Step,
    /// `1 / x`.
    Recip,
}

/// Elementwise functions of two arguments, broadcasting numpy-style over event dims.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    /// `max(a, b)`: the domain guard of a natural parameter.
    Max,
    Min,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A function argument (a variable's value), by name.
    Input(String),
    /// A learned tensor, by spec path.
    Param(String),
    /// A scalar constant (broadcasts).
    Const(f64),
    Unary(Unary),
    Binary(Binary),
    /// `x · wᵀ + b` over the last axis; inputs `[x, w, b]`, `w: [out, in]`.
    Linear,
    /// `x · w` over the last axis of `x` and the first of `w` (no bias); `w: [in, out]`.
    MatMul,
    /// inputs `[x, w, b]`, `w: [out, in, k, k]`.
    Conv2d {
        stride: usize,
        padding: usize,
    },
    /// inputs `[x, w, b]`, `w: [in, out, k, k]`.
    ConvTranspose2d {
        stride: usize,
        padding: usize,
        output_padding: usize,
    },
    /// New event dims (same number of elements); the batch dim is kept.
    Reshape,
    /// Sum over the listed event axes (0 = first axis after the batch).
    Sum {
        axes: Vec<usize>,
    },
    /// Log-sum-exp over one event axis.
    LogSumExp {
        axis: usize,
    },
    /// Softmax over one event axis.
    Softmax {
        axis: usize,
    },
    LogSoftmax {
        axis: usize,
    },
    /// Select index `index` of event axis `axis` (the axis disappears).
    Select {
        axis: usize,
        index: usize,
    },
    /// Concatenate along an event axis.
    Concat {
        axis: usize,
    },
    /// Insert a size-1 event axis at `axis`.
    Unsqueeze {
        axis: usize,
    },
    /// Repeat to the node's shape (numpy broadcasting, batch included): makes implicit broadcasts
    /// explicit where a gradient needs them summed back.
    Broadcast,
    /// Sum a broadcast value back to the node's shape (the adjoint of `Broadcast`).
    SumTo,
    /// `[a, b]` → the node's shape: `a` where the condition input (third) is > 0, else `b`.
    Where,
}

impl Op {
    pub fn name(&self) -> String {
        match self {
            Op::Input(n) => format!("input {n}"),
            Op::Param(p) => format!("param {p}"),
            Op::Const(c) => format!("const {c}"),
            Op::Unary(u) => match u {
                Unary::LeakyRelu(s) => format!("lrelu({s})"),
                other => format!("{other:?}").to_lowercase(),
            },
            Op::Binary(b) => format!("{b:?}").to_lowercase(),
            Op::Linear => "linear".into(),
            Op::MatMul => "matmul".into(),
            Op::Conv2d { stride, padding } => format!("conv2d(stride={stride}, padding={padding})"),
            Op::ConvTranspose2d {
                stride,
                padding,
                output_padding,
            } => {
                format!(
                    "conv_transpose2d(stride={stride}, padding={padding}, output_padding={output_padding})"
                )
            }
            Op::Reshape => "reshape".into(),
            Op::Sum { axes } => format!("sum(axes={axes:?})"),
            Op::LogSumExp { axis } => format!("logsumexp(axis={axis})"),
            Op::Softmax { axis } => format!("softmax(axis={axis})"),
            Op::LogSoftmax { axis } => format!("log_softmax(axis={axis})"),
            Op::Select { axis, index } => format!("select(axis={axis}, index={index})"),
            Op::Concat { axis } => format!("concat(axis={axis})"),
            Op::Unsqueeze { axis } => format!("unsqueeze(axis={axis})"),
            Op::Broadcast => "broadcast".into(),
            Op::SumTo => "sum_to".into(),
            Op::Where => "where".into(),
        }
    }
}

/// A named function of the program.
#[derive(Clone, Debug, PartialEq)]
pub struct Function {
    pub name: String,
    /// Arguments: `(variable name, Input node)`.
    pub inputs: Vec<(String, NodeId)>,
    /// Named results.
    pub outputs: Vec<(String, NodeId)>,
    /// What the function is, and how it was derived (printed as comments).
    pub notes: Vec<String>,
}

/// A learned tensor the program reads.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamInfo {
    pub path: String,
    pub dims: Vec<usize>,
    pub init: ParamInit,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ParamInit {
    Constant(f64),
    Normal {
        mean: f64,
        std: f64,
    },
    Uniform {
        lo: f64,
        hi: f64,
    },
    /// Default initialisation of a layer weight with this fan-in (uniform ±1/√fan_in, as PyTorch).
    FanIn(usize),
}

/// A whole compiled program: the node arena, the functions, and the learning plan.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Program {
    pub name: String,
    pub nodes: Vec<Node>,
    pub functions: Vec<Function>,
    pub params: Vec<ParamInfo>,
    /// Facts the derivation passes state about the model (e.g. "not conjugate because ...").
    pub notes: Vec<String>,
    /// The steps of the learning algorithm (printed last).
    pub plan: Vec<PlanStep>,
}

impl Program {
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.index()]
    }

    pub fn function(&self, name: &str) -> Option<&Function> {
        self.functions.iter().find(|f| f.name == name)
    }

    pub fn param(&self, path: &str) -> Option<&ParamInfo> {
        self.params.iter().find(|p| p.path == path)
    }

    /// The energy of the data alone that data-space SGLD samples with, as `(energy, gradient)`
    /// functions: the closed-form marginal E(x) when the conjugacy pass derived one, else the
    /// energy itself when it reads only `observed`. `None` for an energy of x and a latent without
    /// a closed form. The learning plan and the runtime both follow this rule.
    pub fn data_space_energy(&self, observed: &str) -> Option<(&'static str, &'static str)> {
        if self.function("marginal_energy_grad").is_some() {
            return Some(("marginal_energy", "marginal_energy_grad"));
        }
        let only_x = self
            .function("energy")
            .is_some_and(|f| f.inputs.iter().all(|(n, _)| n == observed));
        (only_x && self.function("energy_grad_x").is_some()).then_some(("energy", "energy_grad_x"))
    }
}

/// One step of the learning plan.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanStep {
    /// What the step does, e.g. `sample posterior z | x`.
    pub action: String,
    /// The functions it evaluates.
    pub uses: Vec<String>,
    /// Sampler or optimizer configuration, as text.
    pub with: Vec<String>,
}

/// Appends nodes to a program, sharing identical nodes (hash-consing), and creates functions.
pub struct Builder<'p> {
    pub program: &'p mut Program,
    memo: HashMap<(String, Vec<NodeId>, Vec<usize>, bool), NodeId>,
}

impl<'p> Builder<'p> {
    pub fn new(program: &'p mut Program) -> Self {
        let mut memo = HashMap::new();
        for (i, n) in program.nodes.iter().enumerate() {
            memo.insert(Self::key(&n.op, &n.inputs, &n.shape), NodeId(i as u32));
        }
        Builder { program, memo }
    }

    fn key(op: &Op, inputs: &[NodeId], shape: &Shape) -> (String, Vec<NodeId>, Vec<usize>, bool) {
        (
            format!("{op:?}"),
            inputs.to_vec(),
            shape.dims.clone(),
            shape.batched,
        )
    }

    /// Adds (or reuses) a node. Inputs must already exist.
    pub fn node(&mut self, op: Op, inputs: Vec<NodeId>, shape: Shape) -> NodeId {
        let key = Self::key(&op, &inputs, &shape);
        if let Some(id) = self.memo.get(&key) {
            return *id;
        }
        for i in &inputs {
            assert!(
                i.index() < self.program.nodes.len(),
                "internal error: node input {i} does not exist yet"
            );
        }
        let id = NodeId(self.program.nodes.len() as u32);
        self.program.nodes.push(Node {
            op,
            inputs,
            shape,
            dtype: DType::F32,
        });
        self.memo.insert(key, id);
        id
    }

    pub fn shape(&self, id: NodeId) -> &Shape {
        &self.program.nodes[id.index()].shape
    }

    pub fn input(&mut self, name: &str, shape: Shape) -> NodeId {
        self.node(Op::Input(name.to_string()), vec![], shape)
    }

    pub fn param(&mut self, path: &str, dims: Vec<usize>) -> NodeId {
        self.node(Op::Param(path.to_string()), vec![], Shape::fixed(dims))
    }

    pub fn constant(&mut self, c: f64) -> NodeId {
        // -0.0 and 0.0 are the same constant.
        let c = if c == 0.0 { 0.0 } else { c };
        self.node(Op::Const(c), vec![], Shape::scalar())
    }

    pub fn unary(&mut self, u: Unary, a: NodeId) -> NodeId {
        let shape = self.shape(a).clone();
        self.node(Op::Unary(u), vec![a], shape)
    }

    /// An elementwise binary op with numpy broadcasting; panics (internal error) on incompatible
    /// shapes, which the checker has ruled out.
    pub fn binary(&mut self, b: Binary, x: NodeId, y: NodeId) -> NodeId {
        let shape = broadcast_shapes(self.shape(x), self.shape(y)).unwrap_or_else(|| {
            panic!(
                "internal error: cannot broadcast {} and {}",
                self.shape(x),
                self.shape(y)
            )
        });
        self.node(Op::Binary(b), vec![x, y], shape)
    }

    pub fn add(&mut self, x: NodeId, y: NodeId) -> NodeId {
        self.binary(Binary::Add, x, y)
    }
    pub fn sub(&mut self, x: NodeId, y: NodeId) -> NodeId {
        self.binary(Binary::Sub, x, y)
    }
    pub fn mul(&mut self, x: NodeId, y: NodeId) -> NodeId {
        self.binary(Binary::Mul, x, y)
    }
    pub fn div(&mut self, x: NodeId, y: NodeId) -> NodeId {
        self.binary(Binary::Div, x, y)
    }
    pub fn neg(&mut self, x: NodeId) -> NodeId {
        self.unary(Unary::Neg, x)
    }
    pub fn scale(&mut self, x: NodeId, c: f64) -> NodeId {
        let k = self.constant(c);
        self.mul(x, k)
    }

    /// Sum over the given event axes.
    pub fn sum(&mut self, x: NodeId, axes: Vec<usize>) -> NodeId {
        let s = self.shape(x).clone();
        let dims = s
            .dims
            .iter()
            .enumerate()
            .filter(|(i, _)| !axes.contains(i))
            .map(|(_, d)| *d)
            .collect();
        self.node(
            Op::Sum { axes },
            vec![x],
            Shape {
                batched: s.batched,
                dims,
            },
        )
    }

    /// Sum over every event axis: one number per example.
    pub fn sum_all(&mut self, x: NodeId) -> NodeId {
        let n = self.shape(x).dims.len();
        if n == 0 {
            return x;
        }
        self.sum(x, (0..n).collect())
    }

    pub fn reshape(&mut self, x: NodeId, dims: Vec<usize>) -> NodeId {
        let s = self.shape(x).clone();
        assert_eq!(
            s.numel(),
            dims.iter().product::<usize>(),
            "internal error: reshape changes the element count"
        );
        if s.dims == dims {
            return x;
        }
        self.node(
            Op::Reshape,
            vec![x],
            Shape {
                batched: s.batched,
                dims,
            },
        )
    }

    /// Creates a function with the given inputs and outputs.
    pub fn function(
        &mut self,
        name: &str,
        inputs: Vec<(String, NodeId)>,
        outputs: Vec<(String, NodeId)>,
        notes: Vec<String>,
    ) {
        assert!(
            self.program.function(name).is_none(),
            "internal error: function `{name}` defined twice"
        );
        self.program.functions.push(Function {
            name: name.to_string(),
            inputs,
            outputs,
            notes,
        });
    }
}

/// numpy broadcasting of two shapes (batch kept if either has it).
pub fn broadcast_shapes(a: &Shape, b: &Shape) -> Option<Shape> {
    a.broadcast(b)
}
