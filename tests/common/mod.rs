//! What the runtime test files share: a project spec with `--set` overrides, a scratch output
//! directory, run options, a run that must succeed, a metric by name, and the resume check.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use candle_core::Tensor;
use ebmc::runtime::checkpoint;
use ebmc::runtime::train::run::{RunOptions, RunOutcome, run};
use ebmc::source::SourceFile;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// `path` (relative to the repository) with each `section.key=value` of `sets` applied.
pub fn spec_with(path: &str, sets: &[&str]) -> SourceFile {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let source = SourceFile::new(
        path,
        std::fs::read_to_string(root.join(path)).expect("spec exists"),
    );
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    ebmc::spec::overrides::apply_overrides(&source, &sets)
        .unwrap_or_else(|_| panic!("overrides apply"))
}

/// A fresh (removed) scratch directory, unique per test process.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ebmc-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A quiet run into `out`, reading the data the setup script fetched.
pub fn options(out: &Path) -> RunOptions {
    RunOptions {
        out: Some(out.to_path_buf()),
        data_dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("data"),
        quiet: true,
        ..RunOptions::default()
    }
}

pub fn must_run(source: &SourceFile, opts: &RunOptions) -> RunOutcome {
    match run(source, opts) {
        Ok(o) => o,
        Err(failures) => panic!(
            "run failed: {}",
            failures
                .iter()
                .map(|f| f.diagnostic.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        ),
    }
}

pub fn metric(m: &[(String, f64)], name: &str) -> f64 {
    m.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no metric {name}"))
}

/// Runs `source` (scratch directories named after `name`) straight through, and again stopped after `stop_after` steps and resumed from its
/// run directory (with the effective spec the run kept); asserts that both final checkpoints hold
/// the same step and the same tensors bit for bit. Returns the uninterrupted run's state.
pub fn assert_resume_is_bit_exact(
    name: &str,
    source: &SourceFile,
    stop_after: usize,
    options: impl Fn(&Path) -> RunOptions,
) -> HashMap<String, Tensor> {
    let straight = temp_dir(&format!("{name}-straight"));
    must_run(source, &options(&straight));

    let split = temp_dir(&format!("{name}-split"));
    must_run(
        source,
        &RunOptions {
            stop_after: Some(stop_after),
            ..options(&split)
        },
    );
    let effective = SourceFile::new(
        "spec.yaml",
        std::fs::read_to_string(split.join("spec.yaml")).expect("run keeps its spec"),
    );
    let resumed = RunOptions {
        out: None,
        resume: Some(split.clone()),
        ..options(&split)
    };
    must_run(&effective, &resumed);

    let load = |dir: &Path| {
        checkpoint::load(
            &dir.join("checkpoint.safetensors"),
            &candle_core::Device::Cpu,
        )
        .expect("checkpoint")
    };
    let ((a, meta_a), (b, meta_b)) = (load(&straight), load(&split));
    assert_eq!(meta_a["step"], meta_b["step"]);
    let mut keys: Vec<&String> = a.keys().collect();
    keys.sort();
    assert_eq!(keys.len(), b.len());
    for k in keys {
        assert!(
            bytes(&a[k]) == bytes(&b[k]),
            "`{k}` differs between the uninterrupted and the resumed run"
        );
    }
    let _ = std::fs::remove_dir_all(&straight);
    let _ = std::fs::remove_dir_all(&split);
    a
}

/// The tensor's values as f64 bits: equal bytes = equal values, NaNs and signed zeros included.
fn bytes(t: &Tensor) -> Vec<u8> {
    t.flatten_all()
        .and_then(|t| t.to_dtype(candle_core::DType::F64))
        .and_then(|t| t.to_vec1::<f64>())
        .expect("f64 values")
        .iter()
        .flat_map(|v| v.to_bits().to_le_bytes())
        .collect()
}
