//! Conjugacy detection. (Stub: the conjugacy helper replaces this.)

use crate::check::CheckedSpec;
use crate::ir::Program;

pub fn derive(program: &mut Program, spec: &CheckedSpec) {
    let _ = (program, spec);
}
