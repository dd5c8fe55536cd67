//! The expression language: every YAML scalar that holds math, a type, a network or a call is parsed
//! here by the pest grammar in `grammar/ebmc.pest`. pest's `Pair`/`Rule` never leave this module.
//!
//! Each entry point takes the scalar's text and the [`SpanMap`] that shifts spans to file offsets,
//! and returns the syntax tree or one [`SyntaxError`].

pub mod ast;
mod display;
mod error;
mod lex;
mod parser;
#[cfg(test)]
mod tests;

pub use error::{INEXACT_NOTE, SyntaxError};

use crate::source::SpanMap;
use ast::{Call, Expr, NetworkDef, ParamDecl, VarDecl};

/// A model term: `f(z)`, `normal(x | g(z), 0.3)`, `-dot(t(x), stats(z))`.
pub fn parse_expr(text: &str, map: &SpanMap) -> Result<Expr, SyntaxError> {
    parser::parse_expr(text, map)
}

/// A variable declaration: `observed image[1, 28, 28] in [-1, 1]`, `real[16] ~ normal(0, 1)`.
pub fn parse_var_decl(text: &str, map: &SpanMap) -> Result<VarDecl, SyntaxError> {
    parser::parse_var_decl(text, map)
}

/// A parameter declaration: `real[10, 128] = normal(0, 1)`.
pub fn parse_param_decl(text: &str, map: &SpanMap) -> Result<ParamDecl, SyntaxError> {
    parser::parse_param_decl(text, map)
}

/// A network definition: `mlp(z -> 200 -> 1, act = lrelu(0.2))`, `conv(x -> 32) -> linear(10)`.
pub fn parse_network(text: &str, map: &SpanMap) -> Result<NetworkDef, SyntaxError> {
    parser::parse_network(text, map)
}

/// A sampler, optimizer or evaluation call: `langevin(steps = 60, step_size = 0.4)`,
/// `adam(lr = 1e-4, betas = (0.5, 0.999))`, `samples(64)`, or a bare name (`reconstruction_mse`).
pub fn parse_call(text: &str, map: &SpanMap) -> Result<Call, SyntaxError> {
    parser::parse_call(text, map)
}
