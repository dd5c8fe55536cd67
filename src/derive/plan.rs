//! The learning plan. (Stub.)

use crate::check::CheckedSpec;
use crate::ir::Program;

pub fn derive(program: &mut Program, spec: &CheckedSpec) {
    let _ = (program, spec);
}
