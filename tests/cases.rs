//! The spec suite: every `tests/cases/ok/*.yaml` and `specs/**/*.yaml` checks cleanly (snapshot: the
//! checked summary); every `tests/cases/err/*.yaml` is rejected with coded, spanned diagnostics
//! (snapshot: the rendered diagnostics).

use ebmc::check::print::summary;
use ebmc::diag::RenderStyle;
use ebmc::source::SourceFile;
use std::path::Path;

/// Loads a case with a stable, repository-relative name (the name appears in rendered diagnostics).
fn load(path: &Path) -> SourceFile {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let name = path
        .strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string();
    SourceFile::new(
        name,
        std::fs::read_to_string(path).expect("case file is readable"),
    )
}

#[test]
fn ok_cases_check_cleanly() {
    insta::glob!("cases/ok/*.yaml", |path| {
        let source = load(path);
        match ebmc::check_source(&source) {
            Ok(spec) => insta::assert_snapshot!(summary(&spec)),
            Err(d) => panic!(
                "{} should check cleanly:\n{}",
                source.name,
                d.render(RenderStyle::Plain)
            ),
        }
    });
}

#[test]
fn project_specs_check_cleanly() {
    insta::glob!("../specs", "**/*.yaml", |path| {
        let source = load(path);
        match ebmc::check_source(&source) {
            Ok(spec) => insta::assert_snapshot!(summary(&spec)),
            Err(d) => panic!(
                "{} should check cleanly:\n{}",
                source.name,
                d.render(RenderStyle::Plain)
            ),
        }
    });
}

#[test]
fn err_cases_are_rejected_with_coded_spanned_diagnostics() {
    insta::glob!("cases/err/*.yaml", |path| {
        let source = load(path);
        let diags = match ebmc::check_source(&source) {
            Ok(_) => panic!("{} should be rejected", source.name),
            Err(d) => d,
        };
        for d in &diags.items {
            let code = d.code().map(|c| c.to_string()).unwrap_or_default();
            assert!(
                code.starts_with("ebmc::"),
                "{}: diagnostic without a stable code: {d}",
                source.name
            );
            let labels: Vec<_> = d.labels().map(|l| l.collect()).unwrap_or_default();
            assert!(
                !labels.is_empty(),
                "{}: `{code}` has no labelled span",
                source.name
            );
            for l in labels {
                assert!(
                    l.offset() + l.len() <= source.text.len(),
                    "{}: `{code}` points past the end of the file",
                    source.name
                );
            }
        }
        let header = source.text.lines().next().unwrap_or_default().to_string();
        insta::assert_snapshot!(format!(
            "{header}\ncodes: {}\n\n{}",
            diags.codes().join(", "),
            diags.render(RenderStyle::Plain)
        ));
    });
}

#[test]
fn there_are_at_least_forty_distinct_mistakes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases/err");
    let headers: std::collections::BTreeSet<String> = std::fs::read_dir(dir)
        .expect("tests/cases/err exists")
        .map(|e| std::fs::read_to_string(e.expect("entry").path()).expect("readable"))
        .map(|t| t.lines().next().unwrap_or_default().to_string())
        .collect();
    assert!(
        headers.iter().all(|h| h.starts_with("# Mistake: ")),
        "each error case starts with `# Mistake: ...`"
    );
    assert!(
        headers.len() >= 40,
        "only {} distinct mistakes",
        headers.len()
    );
}
