//! Derivation passes: each adds named functions (and notes) to a lowered program.
//! Order: conjugacy (closed-form posteriors and marginal energy), sampler gradients, learning plan.

pub mod conjugacy;
pub mod gradients;
pub mod plan;

use crate::check::CheckedSpec;
use crate::ir::Program;

/// Runs every derivation on a lowered program.
pub fn derive(program: &mut Program, spec: &CheckedSpec) {
    conjugacy::derive(program, spec);
    gradients::derive(program, spec);
    plan::derive(program, spec);
}
