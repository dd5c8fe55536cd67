//! Runtime tests: tiny seeded models trained for seconds on the real embedded digits, asserting
//! that learning works and that a resumed run reproduces an uninterrupted one bit for bit (CPU).

mod common;

use common::{assert_resume_is_bit_exact, metric, must_run, spec_with, temp_dir};
use ebmc::runtime::train::run::{RunOptions, run};
use std::path::Path;

/// The common options without the evaluations: these tests assert on training.
fn options(out: &Path) -> RunOptions {
    RunOptions {
        skip_evaluation: true,
        ..common::options(out)
    }
}

#[test]
fn short_run_mle_learns_to_reconstruct_digits() {
    let source = spec_with(
        "specs/lebm_digits.yaml",
        &[
            "learn.iterations=120",
            "learn.batch=50",
            "learn.prior_sampler=langevin(steps = 20, step_size = 0.4)",
            // A faster generator than the paper's 1e-4, so that seconds of training show learning.
            "learn.optimizers.g=adam(lr = 1e-3, betas = (0.5, 0.999))",
        ],
    );
    let out = temp_dir("srmle");
    let outcome = must_run(&source, &options(&out));
    let first: f64 = outcome.metrics[..10]
        .iter()
        .map(|m| metric(m, "mse"))
        .sum::<f64>()
        / 10.0;
    let last: f64 = outcome.metrics[outcome.metrics.len() - 10..]
        .iter()
        .map(|m| metric(m, "mse"))
        .sum::<f64>()
        / 10.0;
    // Pixels lie in [-1, 1]; an untrained generator starts near the data variance (~0.6). Learning
    // must at least halve the posterior reconstruction error in 120 iterations.
    assert!(
        last < 0.5 * first,
        "reconstruction MSE fell only from {first:.4} to {last:.4}"
    );
    for f in [
        "spec.yaml",
        "program.ir",
        "metrics.jsonl",
        "checkpoint.safetensors",
        "report.md",
        "curves.png",
    ] {
        assert!(out.join(f).exists(), "run directory lacks {f}");
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn resume_reproduces_an_uninterrupted_run_bit_for_bit() {
    let sets = [
        "learn.iterations=8",
        "learn.batch=20",
        "learn.prior_sampler=langevin(steps = 5, step_size = 0.4)",
        "learn.posterior_sampler=langevin(steps = 5, step_size = 0.1)",
    ];
    let source = spec_with("specs/lebm_digits.yaml", &sets);
    assert_resume_is_bit_exact("lebm", &source, 3, options);
}

#[test]
fn divergence_stops_the_run_with_a_coded_error_and_keeps_the_directory_intact() {
    // A posterior step size of 1e4 throws z far out on the first step: the energies overflow.
    let source = spec_with(
        "specs/lebm_digits.yaml",
        &[
            "learn.iterations=5",
            "learn.batch=20",
            "learn.posterior_sampler=langevin(steps = 5, step_size = 1e4)",
        ],
    );
    let out = temp_dir("diverge");
    let failures = match run(&source, &options(&out)) {
        Ok(_) => panic!("a run with step size 1e4 should diverge"),
        Err(f) => f,
    };
    let d = &failures[0].diagnostic;
    assert_eq!(
        d.code().map(|c| c.to_string()).as_deref(),
        Some("ebmc::run::diverged"),
        "{d}"
    );
    assert!(
        d.to_string().contains("step 1"),
        "the error names the step: {d}"
    );
    assert!(out.join("spec.yaml").exists() && out.join("program.ir").exists());
    for line in std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
    {
        serde_json::from_str::<serde_json::Value>(line)
            .expect("metrics.jsonl holds only whole JSON lines");
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn an_existing_output_directory_is_never_overwritten() {
    let out = temp_dir("exists");
    std::fs::create_dir_all(&out).expect("mkdir");
    std::fs::write(out.join("precious.txt"), "keep me").expect("write");
    let source = spec_with("specs/lebm_digits.yaml", &["learn.iterations=2"]);
    let failures = run(&source, &options(&out))
        .err()
        .expect("a non-empty --out is refused");
    assert_eq!(
        failures[0]
            .diagnostic
            .code()
            .map(|c| c.to_string())
            .as_deref(),
        Some("ebmc::run::out_exists")
    );
    assert_eq!(
        std::fs::read_to_string(out.join("precious.txt")).expect("still there"),
        "keep me"
    );
    let _ = std::fs::remove_dir_all(&out);
}
