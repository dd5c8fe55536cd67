//! What the checker produces: a spec whose names are resolved, whose expressions are typed with
//! shapes, and whose networks are expanded into layers.

use crate::source::Span;
use crate::syntax::ast::BinOp;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VarId(pub usize);
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(pub usize);
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetId(pub usize);

/// The shape of a value: `batched` adds a leading batch dimension B to `dims`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Shape {
    pub batched: bool,
    pub dims: Vec<usize>,
}

impl Shape {
    pub fn batched(dims: Vec<usize>) -> Self {
        Shape {
            batched: true,
            dims,
        }
    }

    pub fn fixed(dims: Vec<usize>) -> Self {
        Shape {
            batched: false,
            dims,
        }
    }

    /// A single number (no batch, no dims).
    pub fn scalar() -> Self {
        Shape::fixed(Vec::new())
    }

    /// One number per example.
    pub fn per_example() -> Self {
        Shape::batched(Vec::new())
    }

    pub fn numel(&self) -> usize {
        self.dims.iter().product()
    }

    pub fn is_vector(&self) -> bool {
        self.dims.len() == 1
    }

    /// numpy-style broadcasting of event dims; the batch dimension is kept if either side has it.
    pub fn broadcast(&self, other: &Shape) -> Option<Shape> {
        let n = self.dims.len().max(other.dims.len());
        let get = |s: &Shape, i: usize| {
            if i + s.dims.len() >= n {
                s.dims[i + s.dims.len() - n]
            } else {
                1
            }
        };
        let mut dims = Vec::with_capacity(n);
        for i in 0..n {
            dims.push(match (get(self, i), get(other, i)) {
                (x, y) if x == y => x,
                (1, y) => y,
                (x, 1) => x,
                _ => return None,
            });
        }
        Some(Shape {
            batched: self.batched || other.batched,
            dims,
        })
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if self.batched {
            parts.push("B".into());
        }
        parts.extend(self.dims.iter().map(|d| d.to_string()));
        write!(f, "[{}]", parts.join(", "))
    }
}

/// The spec after checking.
#[derive(Clone, Debug)]
pub struct CheckedSpec {
    pub name: String,
    pub description: Option<String>,
    pub data: DataConfig,
    pub variables: Vec<Variable>,
    pub parameters: Vec<Parameter>,
    pub networks: Vec<Network>,
    pub model: Model,
    pub learn: Learn,
    pub evaluate: Vec<Evaluation>,
}

impl CheckedSpec {
    pub fn variable(&self, id: VarId) -> &Variable {
        &self.variables[id.0]
    }
    pub fn parameter(&self, id: ParamId) -> &Parameter {
        &self.parameters[id.0]
    }
    pub fn network(&self, id: NetId) -> &Network {
        &self.networks[id.0]
    }
}

// ---------------------------------------------------------------------------------------------
// Data

#[derive(Clone, Debug, PartialEq)]
pub struct DataConfig {
    pub train: DataSource,
    /// `None`: the test split that belongs to `train` (see [`DataSource::test_split`]).
    pub test: Option<DataSource>,
    pub labels_per_class: Option<usize>,
    pub seed: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum DataSource {
    Builtin { set: BuiltinData, split: Split },
    Idx(String),
    Csv(String),
    Npy(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuiltinData {
    Digits,
    Mnist,
    FashionMnist,
}

impl BuiltinData {
    pub const ALL: [(&'static str, BuiltinData); 3] = [
        ("digits", BuiltinData::Digits),
        ("mnist", BuiltinData::Mnist),
        ("fashion-mnist", BuiltinData::FashionMnist),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, b)| *b == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }

    /// The shape of one example, as an image `[C, H, W]`.
    pub fn image_shape(self) -> [usize; 3] {
        match self {
            BuiltinData::Digits => [1, 8, 8],
            BuiltinData::Mnist | BuiltinData::FashionMnist => [1, 28, 28],
        }
    }

    pub fn classes(self) -> usize {
        10
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

// ---------------------------------------------------------------------------------------------
// Declarations

#[derive(Clone, Debug, PartialEq)]
pub struct Variable {
    pub name: String,
    pub observed: bool,
    pub ty: VarType,
    /// The event shape (without the batch dimension): `real[16]` → `[16]`, `onehot[10]` → `[10]`.
    pub shape: Vec<usize>,
    /// `in [lo, hi]`: the range observed data are scaled to.
    pub range: Option<(f64, f64)>,
    /// `~ normal(mean, std)`: the reference density p0 of a latent continuous variable; `None` for
    /// a latent means a flat (improper) reference, so the model terms alone define its density.
    pub reference: Option<Reference>,
    /// The whole declaration and the name's key.
    pub span: Span,
    pub name_span: Span,
}

impl Variable {
    pub fn is_continuous(&self) -> bool {
        !matches!(self.ty, VarType::Onehot)
    }

    pub fn is_discrete(&self) -> bool {
        matches!(self.ty, VarType::Onehot)
    }

    /// Number of values of a discrete variable.
    pub fn cardinality(&self) -> Option<usize> {
        self.is_discrete().then(|| self.shape[0])
    }

    pub fn kind_name(&self) -> &'static str {
        match (self.observed, self.is_discrete()) {
            (true, true) => "observed discrete",
            (true, false) => "observed continuous",
            (false, true) => "latent discrete",
            (false, false) => "latent continuous",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VarType {
    Real,
    Image,
    Onehot,
}

impl VarType {
    pub const ALL: [(&'static str, VarType); 3] = [
        ("real", VarType::Real),
        ("image", VarType::Image),
        ("onehot", VarType::Onehot),
    ];
}

#[derive(Clone, Debug, PartialEq)]
pub enum Reference {
    Normal { mean: f64, std: f64 },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Parameter {
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
    pub span: Span,
    pub name_span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Init {
    Constant(f64),
    Normal { mean: f64, std: f64 },
    Uniform { lo: f64, hi: f64 },
}

// ---------------------------------------------------------------------------------------------
// Networks

#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    pub name: String,
    /// The variable the definition names as its input; calls may pass any value of its shape.
    pub input: VarId,
    pub input_shape: Vec<usize>,
    pub layers: Vec<Layer>,
    /// Output event shape; for an encoder, the shape of the latent it infers.
    pub output_shape: Vec<usize>,
    /// `encoder(... -> normal(z))`: a distribution head over a latent variable.
    pub head: Option<Head>,
    pub span: Span,
    pub name_span: Span,
    /// The input variable's name in the definition (`z` in `mlp(z -> 64 -> 1)`).
    pub input_span: Span,
}

impl Network {
    /// Learned tensors, named by spec path (`networks.g.layer2.weight`) with their shapes.
    pub fn parameter_names(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            for (leaf, shape) in layer.parameter_shapes() {
                out.push((format!("networks.{}.layer{}.{}", self.name, i, leaf), shape));
            }
        }
        out
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Head {
    pub latent: VarId,
    pub family: HeadFamily,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadFamily {
    /// Outputs mean and log-std of a diagonal Gaussian.
    Normal,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Layer {
    /// `y = x Wᵀ + b`, W: `[out, in]`.
    Linear {
        inputs: usize,
        outputs: usize,
    },
    Conv2d {
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    },
    ConvTranspose2d {
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    },
    Activation(Activation),
    /// `[C, H, W]` → `[C·H·W]`.
    Flatten,
    /// `[N]` → `[N, 1, 1]` (a vector entering a transposed convolution).
    Unflatten {
        channels: usize,
    },
    /// `[prod(dims)]` → `dims` (`linear([2, 128])`: one output per row, e.g. two heads).
    Reshape {
        dims: Vec<usize>,
    },
}

impl Layer {
    /// Learned tensors of this layer, with their shapes (PyTorch layouts).
    pub fn parameter_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        match *self {
            Layer::Linear { inputs, outputs } => {
                vec![("weight", vec![outputs, inputs]), ("bias", vec![outputs])]
            }
            Layer::Conv2d {
                in_channels,
                out_channels,
                kernel,
                ..
            } => {
                vec![
                    ("weight", vec![out_channels, in_channels, kernel, kernel]),
                    ("bias", vec![out_channels]),
                ]
            }
            Layer::ConvTranspose2d {
                in_channels,
                out_channels,
                kernel,
                ..
            } => {
                vec![
                    ("weight", vec![in_channels, out_channels, kernel, kernel]),
                    ("bias", vec![out_channels]),
                ]
            }
            Layer::Activation(_)
            | Layer::Flatten
            | Layer::Unflatten { .. }
            | Layer::Reshape { .. } => Vec::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    Relu,
    LeakyRelu(f64),
    Gelu,
    Swish,
    Tanh,
    Sigmoid,
    Softplus,
    Identity,
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Activation::Relu => write!(f, "relu"),
            Activation::LeakyRelu(s) => write!(f, "lrelu({s})"),
            Activation::Gelu => write!(f, "gelu"),
            Activation::Swish => write!(f, "swish"),
            Activation::Tanh => write!(f, "tanh"),
            Activation::Sigmoid => write!(f, "sigmoid"),
            Activation::Softplus => write!(f, "softplus"),
            Activation::Identity => write!(f, "identity"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Typed expressions

/// An expression with its resolved meaning and shape.
#[derive(Clone, Debug, PartialEq)]
pub struct TExpr {
    pub kind: TExprKind,
    pub shape: Shape,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TExprKind {
    Const(f64),
    Var(VarId),
    Param(ParamId),
    Neg(Box<TExpr>),
    Binary {
        op: BinOp,
        lhs: Box<TExpr>,
        rhs: Box<TExpr>,
    },
    /// A network applied to a value of its input shape.
    Net {
        net: NetId,
        arg: Box<TExpr>,
    },
    /// Elementwise function.
    Map {
        func: MapFn,
        arg: Box<TExpr>,
    },
    /// Inner product over the last axis.
    Dot(Box<TExpr>, Box<TExpr>),
    /// Gaussian sufficient statistics `[z, z²]` on the last axis.
    Stats(Box<TExpr>),
    /// Sum or log-sum-exp over event axes, or over the values of a discrete variable.
    Reduce {
        op: ReduceOp,
        over: ReduceOver,
        arg: Box<TExpr>,
    },
    /// `mu[y]` (a discrete variable selects along the first event axis, or the first axis of an
    /// unbatched parameter) or `f(z)[2]`.
    Index {
        base: Box<TExpr>,
        index: IndexBy,
    },
    /// `log DIST(subject | params)`: a log-density, summed over the subject's event axes.
    LogDensity {
        dist: Dist,
        subject: Box<TExpr>,
        params: Vec<TExpr>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapFn {
    Log,
    Exp,
    Softplus,
    Sigmoid,
    Tanh,
    Sq,
    Sqrt,
    /// Over the last axis.
    Softmax,
    /// Over the last axis.
    LogSoftmax,
}

impl MapFn {
    pub const ALL: [(&'static str, MapFn); 9] = [
        ("log", MapFn::Log),
        ("exp", MapFn::Exp),
        ("softplus", MapFn::Softplus),
        ("sigmoid", MapFn::Sigmoid),
        ("tanh", MapFn::Tanh),
        ("sq", MapFn::Sq),
        ("sqrt", MapFn::Sqrt),
        ("softmax", MapFn::Softmax),
        ("log_softmax", MapFn::LogSoftmax),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, f)| *f == self)
            .map_or("?", |(n, _)| n)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    Sum,
    LogSumExp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReduceOver {
    /// All event axes.
    All,
    /// One event axis (0-based, not counting the batch).
    Axis(usize),
    /// The values of a discrete variable.
    Values(VarId),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndexBy {
    Var(VarId),
    Const(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dist {
    /// `normal(x | mean, std)`
    Normal,
    /// `bernoulli(x | p)`
    Bernoulli,
    /// `bernoulli(x | logits = l)`
    BernoulliLogits,
    /// `categorical(y | p)` over a onehot variable
    Categorical,
}

impl Dist {
    pub fn name(self) -> &'static str {
        match self {
            Dist::Normal => "normal",
            Dist::Bernoulli | Dist::BernoulliLogits => "bernoulli",
            Dist::Categorical => "categorical",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Model, learning, evaluation

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Model {
    /// The log-tilt f of the latent prior: `p(z) ∝ exp(prior) p0(z)`.
    pub prior: Option<TExpr>,
    /// `log p(x | z)`: a log-density of the observed variable.
    pub likelihood: Option<TExpr>,
    /// `E(x, z)`.
    pub energy: Option<TExpr>,
    /// The encoder network q(z | x).
    pub inference: Option<NetId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    ShortRunMle,
    AmortizedSsl,
    ContrastiveDivergence,
}

impl Algorithm {
    pub const ALL: [(&'static str, Algorithm); 3] = [
        ("short_run_mle", Algorithm::ShortRunMle),
        ("amortized_ssl", Algorithm::AmortizedSsl),
        ("contrastive_divergence", Algorithm::ContrastiveDivergence),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, a)| *a == self)
            .map_or("?", |(n, _)| n)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Learn {
    pub algorithm: Algorithm,
    pub iterations: usize,
    pub batch: usize,
    pub seed: u64,
    pub prior_sampler: Option<Langevin>,
    pub posterior_sampler: Option<Langevin>,
    pub sampler: Option<Sgld>,
    pub optimizers: Vec<OptimizerUse>,
    pub labeled_weight: f64,
    pub mi_weight: f64,
    pub data_noise: f64,
    pub energy_reg: f64,
}

/// Short-run or persistent Langevin in latent space:
/// `z ← z + s²/2 · ∇ log p(z) + noise · ε`.
#[derive(Clone, Debug, PartialEq)]
pub struct Langevin {
    pub steps: usize,
    pub step_size: f64,
    pub noise: f64,
    /// 0: chains start from p0 every iteration; N: a buffer of N persistent chains.
    pub persistent: usize,
}

/// SGLD in data space with a replay buffer: `x ← x − step_size/2 · ∇E(x) + noise · ε`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sgld {
    pub steps: usize,
    pub step_size: f64,
    pub noise: f64,
    pub buffer: usize,
    pub reinit: f64,
    pub init: (f64, f64),
}

/// Which learnable things one optimizer updates.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerUse {
    pub networks: Vec<NetId>,
    pub parameters: Vec<ParamId>,
    pub optimizer: Optimizer,
    /// The key in `learn.optimizers` (a name or `default`).
    pub key: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Optimizer {
    Adam {
        lr: f64,
        betas: (f64, f64),
        weight_decay: f64,
        decay: f64,
    },
    Sgd {
        lr: f64,
    },
}

impl fmt::Display for Optimizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Optimizer::Adam {
                lr,
                betas,
                weight_decay,
                decay,
            } => {
                write!(
                    f,
                    "adam lr={lr} betas=({}, {}) weight_decay={weight_decay} decay={decay}",
                    betas.0, betas.1
                )
            }
            Optimizer::Sgd { lr } => write!(f, "sgd lr={lr}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Evaluation {
    Samples {
        n: usize,
    },
    /// `test_size`: score only the first images of the test split (for the anomaly protocol a
    /// seeded random subset, as that split is shuffled), for CPU runs where inferring z for all
    /// ~20,000 test images costs more than training; `None` scores all.
    ReconstructionMse {
        test_size: Option<usize>,
    },
    AnomalyAuprc {
        heldout: usize,
        test_size: Option<usize>,
    },
    FewLabel {
        shots: Vec<Option<usize>>,
        repeats: usize,
    },
    OodAuroc {
        against: BuiltinData,
    },
    LatentKlMi,
    Accuracy,
}
