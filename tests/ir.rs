//! Snapshots of `ebmc ir` for every spec in `specs/` and `tests/cases/ok/`: the lowered functions,
//! the derived ones (marginals, classifier, closed-form posterior, input gradients) and the plan.

use ebmc::source::SourceFile;
use std::path::Path;

fn compile(path: &Path) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let name = path
        .strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string();
    let source = SourceFile::new(name, std::fs::read_to_string(path).expect("readable"));
    match ebmc::compile_source(&source) {
        Ok((_, program)) => ebmc::ir::print::print(&program),
        Err(d) => panic!(
            "{} should compile:\n{}",
            source.name,
            d.render(ebmc::diag::RenderStyle::Plain)
        ),
    }
}

#[test]
fn ir_of_project_specs() {
    insta::glob!("../specs", "**/*.yaml", |path| insta::assert_snapshot!(
        compile(path)
    ));
}

#[test]
fn ir_of_ok_cases() {
    insta::glob!("cases/ok/*.yaml", |path| insta::assert_snapshot!(compile(
        path
    )));
}

#[test]
fn ir_printing_is_deterministic() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/cebm_gmm.yaml");
    assert_eq!(compile(&path), compile(&path));
}
