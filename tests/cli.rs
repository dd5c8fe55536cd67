//! The command line as a user meets it: exit codes, output channels, help texts.

use std::path::Path;
use std::process::{Command, Output};

fn ebmc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ebmc"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .expect("the ebmc binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_accepts_a_valid_spec_with_exit_0() {
    let out = ebmc(&["check", "specs/cebm_gmm.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("ok"));
}

#[test]
fn check_rejects_a_broken_spec_with_exit_1_and_a_coded_diagnostic() {
    let out = ebmc(&["check", "tests/cases/err/typo_network_name.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("ebmc::check::unknown_function"), "{err}");
    assert!(err.contains("did you mean `f`?"), "{err}");
}

#[test]
fn a_missing_file_is_a_usage_error_with_exit_2() {
    let out = ebmc(&["check", "specs/does_not_exist.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("ebmc::cli::read_file"));
}

#[test]
fn an_unknown_flag_is_a_usage_error_with_exit_2() {
    assert_eq!(
        ebmc(&["check", "--frobnicate", "specs/cebm_gmm.yaml"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(ebmc(&["no-such-command"]).status.code(), Some(2));
}

#[test]
fn several_specs_report_the_worst_exit_code() {
    let out = ebmc(&[
        "check",
        "specs/cebm_gmm.yaml",
        "tests/cases/err/tab_indent.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn json_format_gives_codes_and_line_columns() {
    let out = ebmc(&[
        "check",
        "--format",
        "json",
        "tests/cases/err/bad_step_size.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["ok"], false);
    let d = &v["diagnostics"][0];
    assert_eq!(d["code"], "ebmc::check::bad_step_size");
    assert!(d["labels"][0]["line"].as_u64().unwrap() > 1);
}

#[test]
fn schema_is_json_schema_of_the_spec_format() {
    let out = ebmc(&["schema"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(v["type"], "object");
    for section in [
        "ebmc",
        "variables",
        "networks",
        "model",
        "learn",
        "evaluate",
    ] {
        assert!(
            v["properties"][section].is_object(),
            "schema lacks `{section}`"
        );
    }
}

#[test]
fn every_subcommand_explains_itself_with_an_example() {
    for sub in ["check", "ir", "run", "eval", "sample", "schema"] {
        let out = ebmc(&[sub, "--help"]);
        assert_eq!(out.status.code(), Some(0));
        let help = text(&out.stdout);
        assert!(
            help.contains("Example"),
            "`ebmc {sub} --help` has no example:\n{help}"
        );
    }
    let top = text(&ebmc(&["--help"]).stdout);
    assert!(top.contains("check") && top.contains("schema"));
}

#[test]
fn every_shipped_spec_checks_from_the_command_line() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut specs: Vec<String> = Vec::new();
    for dir in ["specs", "specs/variants"] {
        for e in std::fs::read_dir(root.join(dir)).expect("specs exist") {
            let p = e.expect("entry").path();
            if p.extension().is_some_and(|x| x == "yaml") {
                specs.push(
                    p.strip_prefix(root)
                        .expect("under root")
                        .display()
                        .to_string(),
                );
            }
        }
    }
    assert!(specs.len() >= 9);
    let mut args = vec!["check"];
    args.extend(specs.iter().map(String::as_str));
    let out = ebmc(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn every_error_case_exits_1_from_the_command_line() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases/err");
    for e in std::fs::read_dir(dir).expect("error cases exist") {
        let path = e.expect("entry").path();
        let out = ebmc(&["check", path.to_str().expect("utf-8 path")]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}: {}",
            path.display(),
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains("ebmc::"),
            "{}: no coded diagnostic",
            path.display()
        );
    }
}

#[test]
fn ir_prints_the_compiled_program() {
    let out = ebmc(&["ir", "specs/lebm_digits.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let ir = text(&out.stdout);
    assert!(ir.starts_with("program lebm_digits"), "{ir}");
    assert!(ir.contains("plan"), "{ir}");
    assert_eq!(
        ebmc(&["ir", "tests/cases/err/tab_indent.yaml"])
            .status
            .code(),
        Some(1)
    );
}
