//! The syntax tree of everything the grammar parses: expressions, variable and parameter
//! declarations, network definitions and calls. Spans are file offsets (already shifted out of the
//! YAML scalar). Nothing here knows about pest.

use crate::source::Span;

/// A name as written, with where it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// A numeric literal. `is_integer` is true when it was written without `.` or exponent.
    Number {
        value: f64,
        is_integer: bool,
    },
    /// A bare name: a variable, parameter, network, or a keyword such as `all`.
    Name(Ident),
    Unary {
        op: UnaryOp,
        arg: Box<Expr>,
    },
    Binary {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// `f(z)`, `dot(a, b)`, `normal(x | m, s)`, `log normal(z | m, s)` (= `log(normal(z | m, s))`),
    /// `adam(lr = 1e-4)`.
    Call(Call),
    /// `mu[y]`, `f(z)[0]`.
    Index {
        base: Box<Expr>,
        index: Box<Expr>,
    },
    /// `(0.5, 0.999)`: two or more elements. `(e)` is just `e`.
    Tuple(Vec<Expr>),
    /// `[1, 10, all]`, `[-1, 1]`.
    List(Vec<Expr>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    Neg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Pow => "^",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub callee: Ident,
    /// The subject of a density: `x` in `normal(x | m, s)`.
    pub given: Option<Box<Expr>>,
    pub args: Vec<Arg>,
    /// True when written with parentheses (`samples(64)`, `f()`); false for a bare name used where a
    /// call is expected (`reconstruction_mse`, `flatten`).
    pub parenthesized: bool,
    pub span: Span,
}

impl Call {
    pub fn positional(&self) -> impl Iterator<Item = &Expr> {
        self.args
            .iter()
            .filter(|a| a.name.is_none())
            .map(|a| &a.value)
    }

    pub fn named(&self, name: &str) -> Option<&Arg> {
        self.args
            .iter()
            .find(|a| a.name.as_ref().is_some_and(|n| n.name == name))
    }
}

/// One argument: positional (`0.3`) or named (`lr = 1e-4`).
#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
    pub span: Span,
}

/// `[observed] TYPE [in [LO, HI]] [~ DIST]`
#[derive(Clone, Debug, PartialEq)]
pub struct VarDecl {
    /// Span of the `observed` keyword, when present.
    pub observed: Option<Span>,
    pub ty: TypeExpr,
    /// `in [LO, HI]`: the range the data are scaled to.
    pub range: Option<Range>,
    /// `~ normal(0, 1)`: the reference density.
    pub reference: Option<Call>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Range {
    pub lo: Expr,
    pub hi: Expr,
    pub span: Span,
}

/// `real[16]`, `image[1, 28, 28]`, `onehot[10]`.
#[derive(Clone, Debug, PartialEq)]
pub struct TypeExpr {
    /// The type's name as written (`real`, `image`, `onehot`); the checker resolves it.
    pub name: Ident,
    pub dims: Vec<Expr>,
    pub span: Span,
}

/// `real[10, 128] [= INIT]`
#[derive(Clone, Debug, PartialEq)]
pub struct ParamDecl {
    pub ty: TypeExpr,
    pub init: Option<Expr>,
    pub span: Span,
}

/// `STAGE -> STAGE -> ...`
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkDef {
    pub stages: Vec<Stage>,
    pub span: Span,
}

/// `mlp(z -> 200 -> 1, act = lrelu(0.2))`, `linear(2 * 128)`, `flatten`.
#[derive(Clone, Debug, PartialEq)]
pub struct Stage {
    pub name: Ident,
    /// The positional chain argument, empty when there is none.
    pub chain: Vec<ChainItem>,
    /// Named options, and any positional arguments after the chain (the checker rejects those).
    pub args: Vec<Arg>,
    pub parenthesized: bool,
    pub span: Span,
}

impl Stage {
    pub fn named(&self, name: &str) -> Option<&Arg> {
        self.args
            .iter()
            .find(|a| a.name.as_ref().is_some_and(|n| n.name == name))
    }
}

/// One link of a chain: `z`, `200`, `2 * 128`, `64@14`, `normal(z)`.
#[derive(Clone, Debug, PartialEq)]
pub struct ChainItem {
    pub value: Expr,
    /// `@ SIZE`: the spatial size after this layer.
    pub at: Option<Expr>,
    pub span: Span,
}
