//! Lowering: a [`CheckedSpec`] becomes an [`ir::Program`](crate::ir::Program) of named functions.
//! (Stub: the lowering helper replaces this.)

use crate::check::CheckedSpec;
use crate::ir::Program;

pub fn lower(spec: &CheckedSpec) -> Program {
    Program { name: spec.name.clone(), ..Program::default() }
}
