//! Random and truncated specs never panic and never hang: every input ends in a spec or in
//! diagnostics.

use ebmc::source::SourceFile;
use proptest::prelude::*;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

/// Every spec the project ships or tests, as seeds for mutation.
fn corpus() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in [
        "specs",
        "specs/variants",
        "tests/cases/ok",
        "tests/cases/err",
    ] {
        for e in std::fs::read_dir(root.join(dir)).expect("corpus folder exists") {
            let p = e.expect("entry").path();
            if p.extension().is_some_and(|x| x == "yaml") {
                out.push(std::fs::read_to_string(p).expect("readable"));
            }
        }
    }
    out
}

/// Runs the whole front end on `text` in a thread; fails on a panic or after 10 s (a hang).
fn front_end_terminates(text: String) {
    let (tx, rx) = mpsc::channel();
    let input = text.clone();
    std::thread::spawn(move || {
        let source = SourceFile::new("fuzz.yaml", input);
        let outcome = std::panic::catch_unwind(|| {
            if let Err(d) = ebmc::check_source(&source) {
                let _ = d.render(ebmc::diag::RenderStyle::Plain);
            }
        });
        let _ = tx.send(outcome.is_ok());
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(true) => {}
        Ok(false) => panic!("the front end panicked on:\n{text}"),
        Err(_) => panic!("the front end did not finish within 10 s on:\n{text}"),
    }
}

/// Characters that matter to YAML or to the grammar.
const SPICE: &[&str] = &[
    "(", ")", "[", "]", "{", "}", ":", ": ", ",", "|", "->", "@", "~", "-", "*", "^", "\t", "\n",
    "  ", "#", "'", "\"", "&a", "*a", "!!", "---", "1e999", "0", "-1", "é", "\u{feff}", "\\",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn truncated_specs_never_panic(seed in 0usize..1000, cut in 0.0f64..1.0) {
        let corpus = corpus();
        let text = &corpus[seed % corpus.len()];
        let mut at = (text.len() as f64 * cut) as usize;
        while !text.is_char_boundary(at) { at -= 1; }
        front_end_terminates(text[..at].to_string());
    }

    #[test]
    fn mutated_specs_never_panic(seed in 0usize..1000, edits in prop::collection::vec((0.0f64..1.0, 0usize..SPICE.len(), 0u8..3), 1..6)) {
        let corpus = corpus();
        let mut text = corpus[seed % corpus.len()].clone();
        for (pos, spice, op) in edits {
            let mut at = (text.len() as f64 * pos) as usize;
            while !text.is_char_boundary(at) { at -= 1; }
            match op {
                0 => text.insert_str(at, SPICE[spice]),
                1 => {
                    let mut end = (at + 1 + spice % 7).min(text.len());
                    while !text.is_char_boundary(end) { end += 1; }
                    text.replace_range(at..end, "");
                }
                _ => {
                    let mut end = (at + 1).min(text.len());
                    while !text.is_char_boundary(end) { end += 1; }
                    text.replace_range(at..end, SPICE[spice]);
                }
            }
        }
        front_end_terminates(text);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        front_end_terminates(text);
    }
}

#[test]
fn pathological_nesting_is_an_error_not_a_crash() {
    for text in [
        format!(
            "ebmc: 1\nmodel:\n  prior: {}z{}\n",
            "(".repeat(100_000),
            ")".repeat(100_000)
        ),
        format!("ebmc: 1\nmodel: {}\n", "[".repeat(100_000)),
        format!("ebmc: 1\nmodel:\n  prior: {}z\n", "-".repeat(100_000)),
        format!("ebmc: 1\nmodel:\n  prior: z{}\n", "^z".repeat(50_000)),
    ] {
        front_end_terminates(text);
    }
}
