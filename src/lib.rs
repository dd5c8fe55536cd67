//! ebmc: a compiler and runtime for latent-variable energy-based models.
//!
//! The pipeline (see `docs/architecture.md`):
//! `spec` (YAML → SpecDoc) → `check` (expression syntax, names, kinds, shapes, algorithm
//! requirements → CheckedSpec). This file is the one place that sequences the stages.

pub mod check;
pub mod cli;
pub mod diag;
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
