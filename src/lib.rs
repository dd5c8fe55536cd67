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

/// The `.yaml` files of these repository directories (`specs`, `tests/cases/ok`, ...), each
/// directory's sorted, for tests.
#[cfg(test)]
pub(crate) fn repo_spec_paths(dirs: &[&str]) -> Vec<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = Vec::new();
    for dir in dirs {
        let entries = std::fs::read_dir(root.join(dir)).unwrap_or_else(|e| panic!("{dir}: {e}"));
        let mut here: Vec<_> = entries
            .map(|e| e.expect("directory entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        here.sort();
        paths.extend(here);
    }
    paths
}

/// Compiles a spec file of this repository (`rel` from its root), for tests; panics with the
/// rendered diagnostics when it does not compile.
#[cfg(test)]
pub(crate) fn compile_repo_spec(rel: &str) -> (check::CheckedSpec, ir::Program) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
    compile_source(&SourceFile::new(rel, text)).unwrap_or_else(|d| {
        panic!(
            "{rel} should compile:\n{}",
            d.render(diag::RenderStyle::Plain)
        )
    })
}
