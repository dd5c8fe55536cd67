//! `ebmc run`: compiles the spec, prepares the run directory and the data, runs the algorithm's
//! iterations with logging and atomic checkpoints, then evaluates and writes the report.

use super::{Batch, Session, StepMetrics};
use crate::check::{BuiltinData, CheckedSpec, DataSource, Evaluation};
use crate::diag::BoxedDiagnostic;
use crate::ir::Program;
use crate::runtime::checkpoint;
use crate::runtime::data::{self, Dataset};
use crate::runtime::error::{Context, RuntimeError};
use crate::runtime::evaluate;
use crate::runtime::report::{Progress, Report, write_eval_json};
use crate::runtime::rundir::{self, MetricsLog, RunDir};
use crate::source::SourceFile;
use candle_core::{DType, Device, Tensor};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What `ebmc run` was asked to do.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub out: Option<PathBuf>,
    pub seed: Option<u64>,
    pub device: Option<String>,
    /// Continue the run in this directory from its checkpoint.
    pub resume: Option<PathBuf>,
    /// Where `mnist`, `fashion-mnist` live (`data/` by default).
    pub data_dir: PathBuf,
    /// Stop after this step (the spec's `learn.iterations` still defines the schedule); for tests
    /// of resumption and for quick looks.
    pub stop_after: Option<usize>,
    /// Hide the progress bar.
    pub quiet: bool,
    /// The command line, recorded in the report.
    pub command: String,
    /// Skip the evaluations (tests that only train).
    pub skip_evaluation: bool,
}

/// A finished run.
pub struct RunOutcome {
    pub dir: PathBuf,
    pub steps: usize,
    pub metrics: Vec<StepMetrics>,
    pub eval: Vec<(String, f64)>,
}

/// Why a run stopped: any stage's diagnostic (a spec error, a data error, divergence, ...).
pub struct RunFailure {
    pub diagnostic: BoxedDiagnostic,
    /// The spec's source, when the diagnostic points into it.
    pub source: Option<SourceFile>,
    /// The run directory, when one was created (its last good checkpoint stays).
    pub dir: Option<PathBuf>,
}

fn fail(d: impl miette::Diagnostic + Send + Sync + 'static, dir: Option<&RunDir>) -> RunFailure {
    RunFailure {
        diagnostic: Box::new(d),
        source: None,
        dir: dir.map(|d| d.path().to_path_buf()),
    }
}

/// Checkpoints this often (and at the end), so an interrupted run loses little.
fn checkpoint_every(iterations: usize) -> usize {
    (iterations / 10).max(25)
}

/// Runs a spec (already loaded, with `--set` overrides applied) to completion.
pub fn run(source: &SourceFile, opts: &RunOptions) -> Result<RunOutcome, Vec<RunFailure>> {
    let (spec, program) = crate::compile_source(source).map_err(|d| {
        let src = d.source.clone();
        d.items
            .into_iter()
            .map(|diagnostic| RunFailure {
                diagnostic,
                source: Some(src.clone()),
                dir: None,
            })
            .collect::<Vec<_>>()
    })?;
    let device = device(opts.device.as_deref()).map_err(|e| vec![fail(e, None)])?;
    let (train, test) = load_data(&spec, &opts.data_dir).map_err(|e| vec![e])?;
    let dir = match &opts.resume {
        Some(d) => RunDir::open_for_resume(d),
        None => RunDir::create(opts.out.as_deref(), &spec.name),
    }
    .map_err(|e| vec![fail(e, None)])?;
    if opts.resume.is_none() {
        dir.write_text(rundir::SPEC_FILE, &source.text)
            .map_err(|e| vec![fail(e, Some(&dir))])?;
        dir.write_text(rundir::IR_FILE, &crate::ir::print::print(&program))
            .map_err(|e| vec![fail(e, Some(&dir))])?;
    }
    train_and_evaluate(&spec, &program, &train, &test, &dir, device, opts).map_err(|e| vec![e])
}

/// How a run spends its CPU threads: inside each op (`ops`: candle's kernels and ebmc's
/// convolutions, through `RAYON_NUM_THREADS`) and across the rows of a chain (`chains`: blocks of
/// rows moved on separate threads, see `runtime::sampler`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Threads {
    pub ops: usize,
    pub chains: usize,
}

/// How to spend `budget` CPU threads on `spec`. Every chain splits its rows over `budget` threads.
/// A thread hand-off costs about as much as a small op, so models of dense layers only (batch ×
/// width up to about 100 × 800 per product) and models of small inputs run each op on one thread
/// (measured: the 8×8 digits LEBM 2× faster, the ssl_mnist iteration 44 ms against 44–60 ms on
/// two), and their chains' blocks need no hand-off between steps (the prior step of bench workload
/// (a) 0.35 → 0.20 ms on two). Convolutions over image-size inputs gain from every thread inside
/// each op outside the chains (the parameter gradients); inside a chain each block runs its ops on
/// its own thread (bench workloads (b) 0.92×, (c) 0.78×, (d) 0.87× the time of unsplit chains
/// with their ops on every thread). candle reads `RAYON_NUM_THREADS` (and
/// `CANDLE_NUM_THREADS`) once, at its first parallel op, so the CLI sets them before running.
pub fn choose_threads(spec: &CheckedSpec, budget: usize) -> Threads {
    let features: usize = spec
        .variables
        .iter()
        .filter(|v| v.observed && v.is_continuous())
        .map(|v| v.shape.iter().product::<usize>())
        .sum();
    let convolutional = spec.networks.iter().flat_map(|n| &n.layers).any(|l| {
        matches!(
            l,
            crate::check::Layer::Conv2d { .. } | crate::check::Layer::ConvTranspose2d { .. }
        )
    });
    let budget = budget.max(1);
    let image_convolutions = features > 256 && convolutional;
    Threads {
        ops: if image_convolutions { budget } else { 1 },
        chains: budget,
    }
}

/// The threads a process runs with: `requested` (else every core) spent on `spec` as
/// [`choose_threads`] does, or all inside the ops without a spec. `None` when `RAYON_NUM_THREADS`
/// is already set and no count is requested: that setting stands (ops on it, chains on one).
pub fn threads_to_pin(requested: Option<usize>, spec: Option<&CheckedSpec>) -> Option<Threads> {
    if requested.is_none() && std::env::var_os("RAYON_NUM_THREADS").is_some() {
        return None;
    }
    let budget = requested
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    Some(match spec {
        Some(spec) => choose_threads(spec, budget),
        None => Threads {
            ops: budget,
            chains: 1,
        },
    })
}

/// Pins `t` for this process: the sampler's chain threads, and `RAYON_NUM_THREADS` for the ops.
///
/// # Safety
/// No other thread may exist yet (it sets an environment variable).
pub unsafe fn pin_threads(t: Threads) {
    crate::runtime::sampler::set_chain_threads(t.chains);
    // SAFETY: the caller's.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", t.ops.to_string()) };
}

fn device(name: Option<&str>) -> Result<Device, RuntimeError> {
    crate::runtime::exec::device_from_name(name.unwrap_or("cpu"))
}

/// The train and test sets, scaled to the declared range and checked against the declared shape.
fn load_data(spec: &CheckedSpec, data_dir: &Path) -> Result<(Dataset, Dataset), RunFailure> {
    let anomaly = spec.evaluate.iter().find_map(|e| match e {
        Evaluation::AnomalyAuprc { heldout, .. } => Some(*heldout as u32),
        _ => None,
    });
    let (mut train, mut test) = match (anomaly, &spec.data.train) {
        // The anomaly protocol (paper 002 §3.4, after MEG): train on the normal digits only.
        (
            Some(d),
            DataSource::Builtin {
                set: BuiltinData::Mnist,
                ..
            },
        ) => {
            let (train, test, _) =
                data::anomaly_split(d, spec.data.seed, data_dir).map_err(|e| fail(e, None))?;
            (train, test)
        }
        (Some(d), _) => {
            let (train, test) =
                data::load_split(&spec.data, data_dir).map_err(|e| fail(e, None))?;
            let (train, test, _) = data::anomaly_split_pool(&train.concat(test), d, spec.data.seed)
                .map_err(|e| fail(e, None))?;
            (train, test)
        }
        (None, _) => data::load_split(&spec.data, data_dir).map_err(|e| fail(e, None))?,
    };
    if let Some(x) = spec
        .variables
        .iter()
        .find(|v| v.observed && v.is_continuous())
    {
        if let Some((lo, hi)) = x.range {
            train = train.scaled(lo as f32, hi as f32);
            test = test.scaled(lo as f32, hi as f32);
        }
        train
            .check_shape(&x.shape, &x.name)
            .map_err(|e| fail(e, None))?;
        test.check_shape(&x.shape, &x.name)
            .map_err(|e| fail(e, None))?;
        // Same number of values: the examples take the declared shape (`real[64]` for 8×8 digits).
        train.shape = x.shape.clone();
        test.shape = x.shape.clone();
    }
    Ok((train, test))
}

/// With `data.labels_per_class`, the seeded labelled examples of the training set (by `data.seed`)
/// go into `session.labelled`. The unlabelled minibatches still come from the whole training set
/// (their labels unread), as in the authors' code, whose unlabelled loader is the whole set.
fn attach_labelled(session: &mut Session, train: &Dataset, dir: &RunDir) -> Result<(), RunFailure> {
    let Some(per_class) = session.spec.data.labels_per_class else {
        return Ok(());
    };
    let idx = data::labelled_subset(train, per_class, session.spec.data.seed)
        .map_err(|e| fail(e, Some(dir)))?;
    let x = Tensor::from_vec(
        train.batch(&idx),
        batch_shape(train, idx.len()),
        &session.device,
    )
    .and_then(|t| t.to_dtype(session.dtype))
    .ctx("uploading the labelled examples")
    .map_err(|e| fail(e, Some(dir)))?;
    let labels = train.label_batch(&idx).unwrap_or_default();
    session.labelled = Some((x, labels));
    Ok(())
}

fn train_and_evaluate(
    spec: &CheckedSpec,
    program: &Program,
    train: &Dataset,
    test: &Dataset,
    dir: &RunDir,
    device: Device,
    opts: &RunOptions,
) -> Result<RunOutcome, RunFailure> {
    let rt = |e: RuntimeError| fail(e, Some(dir));
    let seed = opts.seed.unwrap_or(spec.learn.seed);
    let mut session = Session::new(spec, program, seed, device.clone(), DType::F32).map_err(rt)?;
    session.data_dir = opts.data_dir.clone();
    attach_labelled(&mut session, train, dir)?;
    let ckpt_path = dir.file(rundir::CHECKPOINT_FILE);
    let mut start = 0usize;
    let mut elapsed = 0.0f64;
    if opts.resume.is_some() {
        let (state, meta) =
            checkpoint::load(&ckpt_path, &device).map_err(|e| fail(e, Some(dir)))?;
        session.load_state(&state).map_err(rt)?;
        start = meta["step"].as_u64().unwrap_or(0) as usize;
        elapsed = meta["seconds"].as_f64().unwrap_or(0.0);
    }
    let metrics_path = dir.file(rundir::METRICS_FILE);
    let mut log = if opts.resume.is_some() {
        MetricsLog::open_for_resume(&metrics_path, start as u64)
    } else {
        MetricsLog::create(&metrics_path)
    }
    .map_err(|e| rt(RuntimeError::io(&metrics_path, &e)))?;

    let iterations = spec.learn.iterations;
    let stop = opts.stop_after.unwrap_or(iterations).min(iterations);
    let batch = spec.learn.batch.min(train.len()).max(1);
    let per_epoch = (train.len() / batch).max(1);
    let mut progress = if opts.quiet {
        Progress::new(iterations as u64, true)
    } else {
        Progress::for_stderr(iterations as u64)
    };
    progress.resume_at(start as u64);
    let started = Instant::now();
    let mut history = Vec::new();
    for step in start..stop {
        let (epoch, within) = (step / per_epoch, step % per_epoch);
        let order = data::seeded_permutation(train.len(), seed, 1000 + epoch as u64);
        let idx = &order[within * batch..(within + 1) * batch];
        let x = Tensor::from_vec(train.batch(idx), batch_shape(train, batch), &device)
            .ctx("uploading a minibatch")
            .map_err(rt)?;
        let labels = train
            .labels
            .as_ref()
            .map(|l| idx.iter().map(|&i| l[i]).collect());
        let metrics = session.step(&Batch { x, labels }).map_err(rt)?;
        if let Some((name, value)) = metrics
            .iter()
            .find(|(_, v)| !v.is_finite() || v.abs() > 1e8)
        {
            progress.abandon(&format!("diverged at step {}", step + 1));
            return Err(rt(RuntimeError::Diverged {
                quantity: name.clone(),
                step: step + 1,
                value: format!("{value}"),
            }));
        }
        let seconds = elapsed + started.elapsed().as_secs_f64();
        let named: Vec<(&str, f64)> = metrics.iter().map(|(n, v)| (n.as_str(), *v)).collect();
        log.record(step as u64 + 1, seconds, &named)
            .map_err(|e| rt(RuntimeError::io(&metrics_path, &e)))?;
        progress.set_losses(&named);
        progress.set_position(step as u64 + 1);
        history.push(metrics);
        if (step + 1) % per_epoch == 0 {
            // Before the checkpoint, so a resumed run has the same learning rates.
            session.end_epoch();
        }
        if (step + 1) % checkpoint_every(iterations) == 0 || step + 1 == stop {
            save_checkpoint(&session, &ckpt_path, step + 1, seconds).map_err(|diagnostic| {
                RunFailure {
                    diagnostic,
                    source: None,
                    dir: Some(dir.path().to_path_buf()),
                }
            })?;
        }
    }
    progress.finish();
    let seconds = elapsed + started.elapsed().as_secs_f64();
    let eval = if opts.skip_evaluation || stop < iterations {
        Vec::new()
    } else {
        evaluate::run_all(&mut session, train, test, dir).map_err(|e| fail(e, Some(dir)))?
    };
    write_outputs(spec, dir, opts, seed, &device, seconds, stop, &eval)
        .map_err(|e| rt(RuntimeError::io(dir.path(), &e)))?;
    Ok(RunOutcome {
        dir: dir.path().to_path_buf(),
        steps: stop,
        metrics: history,
        eval,
    })
}

fn batch_shape(d: &Dataset, b: usize) -> Vec<usize> {
    let mut s = vec![b];
    s.extend(&d.shape);
    s
}

fn save_checkpoint(
    session: &Session,
    path: &Path,
    step: usize,
    seconds: f64,
) -> Result<(), Box<dyn miette::Diagnostic + Send + Sync>> {
    let state = session
        .state()
        .map_err(|e| Box::new(e) as Box<dyn miette::Diagnostic + Send + Sync>)?;
    let meta = serde_json::json!({ "step": step, "seconds": seconds, "spec": session.spec.name });
    checkpoint::save(path, &state, &meta)
        .map_err(|e| Box::new(e) as Box<dyn miette::Diagnostic + Send + Sync>)
}

#[allow(clippy::too_many_arguments)]
fn write_outputs(
    spec: &CheckedSpec,
    dir: &RunDir,
    opts: &RunOptions,
    seed: u64,
    device: &Device,
    seconds: f64,
    steps: usize,
    eval: &[(String, f64)],
) -> std::io::Result<()> {
    write_eval_json(&dir.file(rundir::EVAL_FILE), eval)?;
    let records = MetricsLog::read(&dir.file(rundir::METRICS_FILE))?;
    let summary = rundir::metrics_summary(&records);
    let mut series: Vec<(&str, Vec<(f64, f64)>)> = Vec::new();
    for (name, _, _) in &summary {
        let points: Vec<(f64, f64)> = records
            .iter()
            .filter_map(|r| {
                Some((
                    rundir::record_get(r, "step")?.as_f64()?,
                    rundir::record_get(r, name)?.as_f64()?,
                ))
            })
            .collect();
        if name != "step" && name != "seconds" {
            series.push((name.as_str(), points));
        }
    }
    crate::runtime::image::write_curve_png(&dir.file(rundir::CURVES_FILE), &series, 640, 360)?;
    let mut pictures = vec![(
        "training curves".to_string(),
        rundir::CURVES_FILE.to_string(),
    )];
    if dir.file(rundir::SAMPLES_FILE).exists() {
        pictures.push(("samples".to_string(), rundir::SAMPLES_FILE.to_string()));
    }
    let report = Report {
        spec_name: spec.name.clone(),
        algorithm: spec.learn.algorithm.name().to_string(),
        description: spec.description.clone().unwrap_or_default(),
        iterations: steps as u64,
        seconds,
        device: format!("{device:?}"),
        seed,
        command: opts.command.clone(),
        metrics_summary: summary
            .into_iter()
            .filter(|(n, _, _)| n != "step" && n != "seconds")
            .collect(),
        eval: eval.to_vec(),
        pictures,
        notes: Vec::new(),
    };
    report.write(&dir.file(rundir::REPORT_FILE))
}

/// What `ebmc eval` / `ebmc sample` do with a finished run.
pub enum Reuse {
    /// Re-run every evaluation of the spec on the checkpoint; rewrites `eval.json`.
    Evaluate,
    /// Write a grid of `n` samples to `file` in the run directory.
    Sample { n: usize, file: String },
}

/// Loads a run's spec and checkpoint and evaluates or samples it.
pub fn reuse_run(
    dir: &Path,
    data_dir: &Path,
    what: Reuse,
) -> Result<Vec<(String, f64)>, Vec<RunFailure>> {
    let run = RunDir::open_for_resume(dir).map_err(|e| vec![fail(e, None)])?;
    let text = run
        .read_text(rundir::SPEC_FILE)
        .map_err(|e| vec![fail(e, Some(&run))])?;
    let source = SourceFile::new(run.file(rundir::SPEC_FILE).display().to_string(), text);
    let (spec, program) = crate::compile_source(&source).map_err(|d| {
        let src = d.source.clone();
        d.items
            .into_iter()
            .map(|diagnostic| RunFailure {
                diagnostic,
                source: Some(src.clone()),
                dir: None,
            })
            .collect::<Vec<_>>()
    })?;
    let device = Device::Cpu;
    let rt = |e: RuntimeError| vec![fail(e, Some(&run))];
    let mut session =
        Session::new(&spec, &program, spec.learn.seed, device.clone(), DType::F32).map_err(rt)?;
    session.data_dir = data_dir.to_path_buf();
    let (state, meta) = checkpoint::load(&run.file(rundir::CHECKPOINT_FILE), &device)
        .map_err(|e| vec![fail(e, Some(&run))])?;
    session.load_state(&state).map_err(rt)?;
    match what {
        Reuse::Sample { n, file } => {
            evaluate::samples(&mut session, n, &run, &file).map_err(rt)?;
            Ok(Vec::new())
        }
        Reuse::Evaluate => {
            let (train, test) = load_data(&spec, data_dir).map_err(|e| vec![e])?;
            attach_labelled(&mut session, &train, &run).map_err(|e| vec![e])?;
            let eval = evaluate::run_all(&mut session, &train, &test, &run).map_err(rt)?;
            write_eval_json(&run.file(rundir::EVAL_FILE), &eval)
                .map_err(|e| rt(RuntimeError::io(run.path(), &e)))?;
            let _ = meta;
            Ok(eval)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn threads_for(path: &str) -> Threads {
        choose_threads(&crate::compile_repo_spec(path).0, 4)
    }

    #[test]
    fn dense_and_small_models_run_their_ops_on_one_thread_and_image_convolutions_on_all() {
        let chains = Threads { ops: 1, chains: 4 };
        let ops = Threads { ops: 4, chains: 4 };
        assert_eq!(
            threads_for("specs/ssl_mnist.yaml"),
            chains,
            "dense layers only"
        );
        assert_eq!(threads_for("specs/lebm_digits.yaml"), chains, "8×8 inputs");
        assert_eq!(threads_for("specs/lebm_mnist.yaml"), ops);
        assert_eq!(threads_for("bench/specs/dcgan32.yaml"), ops);
    }
}
