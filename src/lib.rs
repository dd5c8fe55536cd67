//! ebmc: a compiler and runtime for latent-variable energy-based models.
//!
//! The pipeline (see `docs/architecture.md`):
//! `spec` (YAML → SpecDoc) → `check` (expression syntax, names, kinds, shapes, algorithm
//! requirements → CheckedSpec) → `lower` (→ ir::Program) → `derive` (closed forms, sampler
//! gradients, plan) → `ir::validate` → `runtime`. This file is the one place that sequences the
//! compile stages.

pub mod check;
pub mod cli;
pub mod derive;
pub mod diag;
pub mod ir;
pub mod lower;
pub mod runtime;
pub mod source;
pub mod spec;
pub mod syntax;

use diag::Diagnostics;
use source::SourceFile;

/// Loads and checks a spec. All diagnostics of all stages are collected: `Err` holds every error
/// found, so a user fixes them in one round.
pub fn check_source(source: &SourceFile) -> Result<check::CheckedSpec, Diagnostics> {
    let mut diags = Diagnostics::new(source.clone());
    let doc = match spec::load(source) {
        Ok(doc) => doc,
        Err(errors) => {
            diags.extend(errors);
            return Err(diags);
        }
    };
    match check::check(&doc, &spec::default_name(source)) {
        Ok(checked) => Ok(checked),
        Err(errors) => {
            diags.extend(errors);
            Err(diags)
        }
    }
}

/// Checks, lowers and derives: the program `ebmc ir` prints and the runtime executes.
pub fn compile_source(
    source: &SourceFile,
) -> Result<(check::CheckedSpec, ir::Program), Diagnostics> {
    let spec = check_source(source)?;
    let mut program = lower::lower(&spec);
    derive::derive(&mut program, &spec);
    if let Err(e) = ir::validate::validate(&program) {
        panic!("{e}");
    }
    Ok((spec, program))
}
