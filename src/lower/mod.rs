//! Lowering: a [`CheckedSpec`] becomes an [`ir::Program`](crate::ir::Program) of named functions.
//!
//! Learned tensors are declared by spec path ([`net::declare_params`]); networks are expanded inline
//! where they are called ([`net::apply`]); model terms become nodes ([`expr`]). A onehot symbol in a
//! term is summed out exactly (symbol marginalization, see [`expr`]): the term becomes a table over
//! the symbol's values, from which the marginal (logsumexp) and the classifier (softmax) follow.
//!
//! The function names are a contract with the derivation passes and the runtime (see
//! [`functions`]): `prior_log_density`, `prior_table`, `classifier`, `prior_log_density_labelled`,
//! `log_likelihood`, `generator`, `posterior_log_density`, `encoder`, `energy`, `energy_table`,
//! `energy_labelled`.

mod expr;
mod functions;
mod net;
mod ops;

use crate::check::CheckedSpec;
use crate::ir::{Builder, Program};

pub fn lower(spec: &CheckedSpec) -> Program {
    let mut program = Program {
        name: spec.name.clone(),
        params: net::declare_params(spec),
        ..Program::default()
    };
    let mut cx = expr::Cx {
        spec,
        b: Builder::new(&mut program),
    };
    functions::lower_all(&mut cx);
    program
}

#[cfg(test)]
mod tests;
