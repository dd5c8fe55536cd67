//! ebmc's side of the ebmc-vs-PyTorch benchmark (see bench/README.md). One workload per
//! invocation; prints one JSON line with per-repeat timings (seconds) after warm-up.
//!
//! ```sh
//! cargo bench --bench ebmc -- prior --repeats 20 --batch 100 --latent 100
//! ```
//!
//! Workloads (batch 100, f32, CPU):
//! - `prior`: one prior Langevin step on the 100→200→200→1 MLP (`bench/specs/prior_mlp.yaml`),
//!   i.e. a `--steps`-step chain of the runtime's `Session::prior_chain` (Langevin on the
//!   derived `prior_grad`), divided by the step count;
//! - `posterior`: the same for `posterior_grad` of the 32×32 DCGAN (`bench/specs/dcgan32.yaml`),
//!   on random x in [-1, 1];
//! - `lebm`, `cebm`, `ssl`: one `Session::step` of specs/lebm_mnist.yaml, specs/cebm_gmm.yaml (on
//!   MNIST) and specs/ssl_mnist.yaml on real MNIST minibatches;
//! - `compile`: `compile_source` (parse, check, lower, derive, validate: what `ebmc ir` does before
//!   printing) of every spec under specs/.

use candle_core::{DType, Device, Tensor};
use ebmc::check::CheckedSpec;
use ebmc::ir::Program;
use ebmc::runtime::data;
use ebmc::runtime::exec::ParamMode;
use ebmc::runtime::train::run::{Threads, pin_threads, threads_to_pin};
use ebmc::runtime::train::{Batch, Session};
use ebmc::source::SourceFile;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Instant;

type Res<T> = Result<T, String>;

/// The command line (the same flags as bench/torch_bench.py).
#[derive(Debug)]
struct Args {
    workload: String,
    repeats: usize,
    warmup: usize,
    batch: usize,
    /// Latent size override (`variables.z=real[L] ~ normal(0, 1)`); `None`: the spec's.
    latent: Option<usize>,
    /// Chain length for `prior` / `posterior` (time per step = chain time / steps).
    steps: Option<usize>,
    threads: Option<usize>,
    /// `prior` / `posterior`: also time the parts of a step alone.
    breakdown: bool,
    data_dir: PathBuf,
    seed: u64,
    /// Extra spec overrides (ebmc only, for experiments: the PyTorch side has no counterpart).
    sets: Vec<String>,
}

fn parse_args() -> Res<Args> {
    let mut args = Args {
        workload: String::new(),
        repeats: 10,
        warmup: 2,
        batch: 100,
        latent: None,
        steps: None,
        threads: None,
        breakdown: false,
        data_dir: PathBuf::from("data"),
        seed: 0,
        sets: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        let num = |v: String| v.parse::<usize>().map_err(|e| format!("{a} {v}: {e}"));
        match a.as_str() {
            // `cargo bench` appends `--bench`; `--json` is the only output format anyway.
            "--bench" | "--json" => {}
            "--repeats" => args.repeats = num(value()?)?.max(1),
            "--warmup" => args.warmup = num(value()?)?,
            "--batch" => args.batch = num(value()?)?,
            "--latent" => args.latent = Some(num(value()?)?),
            "--steps" => args.steps = Some(num(value()?)?.max(1)),
            "--threads" => args.threads = Some(num(value()?)?),
            "--breakdown" => args.breakdown = true,
            "--data" => args.data_dir = PathBuf::from(value()?),
            "--seed" => args.seed = num(value()?)? as u64,
            "--set" => args.sets.push(value()?),
            w if !w.starts_with('-') && args.workload.is_empty() => args.workload = w.into(),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    Ok(args)
}

const USAGE: &str = "usage: cargo bench --bench ebmc -- WORKLOAD [--repeats N] [--warmup N] \
    [--batch B] [--latent L] [--steps K] [--threads T] [--data DIR] [--seed S] [--breakdown] [--set KEY=VALUE]\n  \
    WORKLOAD: prior | posterior | lebm | cebm | ssl | compile (see bench/README.md)";

/// The spec a workload runs and the `--set` overrides it needs.
fn spec_of(args: &Args) -> Res<(&'static str, Vec<String>)> {
    let path = match args.workload.as_str() {
        "prior" => "bench/specs/prior_mlp.yaml",
        "posterior" => "bench/specs/dcgan32.yaml",
        "lebm" => "specs/lebm_mnist.yaml",
        "cebm" => "specs/cebm_gmm.yaml",
        "ssl" => "specs/ssl_mnist.yaml",
        w => return Err(format!("unknown workload `{w}`")),
    };
    let mut sets = args.sets.clone();
    if args.workload == "cebm" {
        sets.push("data.train=mnist".to_string());
    }
    if let Some(l) = args.latent {
        if args.workload == "cebm" || args.workload == "ssl" {
            return Err(format!("--latent is not supported for `{}`", args.workload));
        }
        sets.push(format!("variables.z=real[{l}] ~ normal(0, 1)"));
    }
    Ok((path, sets))
}

fn load(path: &str, sets: &[String]) -> Res<SourceFile> {
    let source = ebmc::cli::read_spec(Path::new(path))?;
    ebmc::spec::overrides::apply_overrides(&source, sets)
        .map_err(|e| format!("{path}: bad override: {e:?}"))
}

fn compile(source: &SourceFile) -> Res<(CheckedSpec, Program)> {
    ebmc::compile_source(source).map_err(|d| d.render(ebmc::diag::RenderStyle::Plain).to_string())
}

/// Pins the thread counts as `ebmc run` does (`threads_to_pin`): an existing `RAYON_NUM_THREADS`
/// without `--threads` is kept for the ops (chains on one thread); else `--threads` (default: every
/// core) is spent as the CLI would on the spec; candle's elementwise pool gets one. Must run
/// before the first candle op.
fn set_threads(args: &Args, spec: Option<&CheckedSpec>) -> Threads {
    let t = threads_to_pin(args.threads, spec).unwrap_or_else(|| Threads {
        ops: std::env::var("RAYON_NUM_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
            // As rayon reads it: a value that is not a count means every core.
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        chains: 1,
    });
    // SAFETY: no other thread exists yet (nothing has touched candle or rayon).
    unsafe {
        pin_threads(t);
        if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
            std::env::set_var("CANDLE_NUM_THREADS", "1");
        }
    }
    t
}

/// Runs `f` `warmup` times untimed, then `repeats` times; returns the seconds of each timed run
/// (divided by `per` units of work, e.g. the steps of a chain).
fn time_runs(args: &Args, per: usize, mut f: impl FnMut() -> Res<()>) -> Res<Vec<f64>> {
    for _ in 0..args.warmup {
        f()?;
    }
    (0..args.repeats)
        .map(|_| {
            let clock = Instant::now();
            f()?;
            Ok(clock.elapsed().as_secs_f64() / per as f64)
        })
        .collect()
}

/// `prior` / `posterior`: a chain of the runtime's Langevin sampler on the derived gradient.
fn langevin_workload(args: &Args, s: &mut Session) -> Res<(Vec<f64>, Value)> {
    let posterior = args.workload == "posterior";
    let learn = &s.spec.learn;
    let mut cfg = if posterior {
        learn.posterior_sampler.clone()
    } else {
        learn.prior_sampler.clone()
    }
    .ok_or("the bench spec has no sampler")?;
    // A 60-step chain (the paper's prior chain) amortises the per-chain setup fairly; the
    // generator step is ~1000× dearer, so a few steps suffice there.
    cfg.steps = args.steps.unwrap_or(if posterior { 3 } else { 60 });
    let x = if posterior {
        let mut shape = vec![args.batch];
        shape.extend(
            s.spec
                .variables
                .iter()
                .find(|v| v.observed)
                .map_or(vec![3, 32, 32], |v| v.shape.clone()),
        );
        Some(
            s.rng
                .uniform(&shape, -1.0, 1.0, &s.device, s.dtype)
                .map_err(str_err)?,
        )
    } else {
        None
    };
    let steps = cfg.steps;
    let times = time_runs(args, steps, || {
        let z0 = s.draw_reference(args.batch).map_err(str_err)?;
        let z = match &x {
            Some(x) => s.posterior_chain(x, z0, &cfg),
            None => s.prior_chain(z0, &cfg),
        }
        .map_err(str_err)?;
        // Langevin on CPU is synchronous; reading one value makes that explicit on any device.
        z.sum_all()
            .and_then(|t| t.to_scalar::<f32>())
            .map_err(str_err)?;
        Ok(())
    })?;
    let mut extra = json!({ "chain_steps": steps, "per": "step" });
    if args.breakdown {
        extra["breakdown"] = step_breakdown(args, s, x.as_ref(), posterior)?;
    }
    Ok((times, extra))
}

/// `--breakdown`: medians of the parts of one Langevin step, timed alone (the derived gradient
/// call, the host-side noise draw), to show what the update itself adds.
fn step_breakdown(args: &Args, s: &mut Session, x: Option<&Tensor>, posterior: bool) -> Res<Value> {
    let z = s.draw_reference(args.batch).map_err(str_err)?;
    let mut inputs: Vec<(&str, &Tensor)> = x.iter().map(|x| (s.observed.as_str(), *x)).collect();
    inputs.push((s.latent.as_str(), &z));
    let grad_fn = if posterior {
        "posterior_grad"
    } else {
        "prior_grad"
    };
    let params = ParamMode::Detached(&s.params);
    let grad = time_runs(args, 1, || {
        s.exec
            .call(grad_fn, &inputs, &params)
            .map(|_| ())
            .map_err(str_err)
    })?;
    // The chain's noise: each row's draws from its own stream (on one thread here).
    let family = s.rng.family();
    let rows = args.batch.max(1);
    let mut streams: Vec<_> = (0..rows as u64).map(|r| family.member(r)).collect();
    let mut eps = vec![0f32; z.elem_count() / rows];
    let noise = time_runs(args, 1, || {
        for stream in &mut streams {
            ebmc::runtime::normal::fill(stream, &mut eps);
        }
        Ok(())
    })?;
    Ok(json!({ "median_grad_call_s": median(&grad), "median_noise_s": median(&noise) }))
}

fn str_err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The training set of a spec, scaled and shaped as `ebmc run` prepares it.
fn training_data(spec: &CheckedSpec, dir: &Path) -> Res<data::Dataset> {
    let mut train = data::load_source(&spec.data.train, spec.data.seed, dir).map_err(str_err)?;
    let x = spec
        .variables
        .iter()
        .find(|v| v.observed && v.is_continuous())
        .ok_or("no observed continuous variable")?;
    if let Some((lo, hi)) = x.range {
        train = train.scaled(lo as f32, hi as f32);
    }
    train.check_shape(&x.shape, &x.name).map_err(str_err)?;
    train.shape = x.shape.clone();
    Ok(train)
}

/// `lebm` / `cebm` / `ssl`: `Session::step` on real minibatches (fresh ones each iteration).
fn iteration_workload(
    args: &Args,
    s: &mut Session,
    train: &data::Dataset,
) -> Res<(Vec<f64>, Value)> {
    if let Some(per_class) = s.spec.data.labels_per_class {
        let idx = data::labelled_subset(train, per_class, s.spec.data.seed).map_err(str_err)?;
        let x = upload(train, &idx, &s.device, s.dtype)?;
        s.labelled = Some((x, train.label_batch(&idx).unwrap_or_default()));
    }
    let order = data::seeded_permutation(train.len(), args.seed, 1000);
    let mut next = 0usize;
    let mut phases: Vec<Vec<(String, f64)>> = Vec::new();
    let mut k = 0usize;
    let times = time_runs(args, 1, || {
        if next + args.batch > order.len() {
            next = 0;
        }
        let idx = &order[next..next + args.batch];
        next += args.batch;
        let batch = Batch {
            x: upload(train, idx, &s.device, s.dtype)?,
            labels: train.label_batch(idx),
        };
        let metrics = s.step(&batch).map_err(str_err)?;
        if k >= args.warmup {
            phases.push(
                metrics
                    .into_iter()
                    .filter(|(n, _)| n.starts_with("sec_"))
                    .collect(),
            );
        }
        k += 1;
        Ok(())
    })?;
    // The algorithm's own per-phase profile (short_run_mle records it), as medians.
    let mut extra = serde_json::Map::new();
    extra.insert("per".into(), json!("iteration"));
    if let Some(first) = phases.first() {
        for (i, (name, _)) in first.iter().enumerate() {
            let v: Vec<f64> = phases.iter().map(|p| p[i].1).collect();
            extra.insert(format!("median_{name}"), json!(median(&v)));
        }
    }
    Ok((times, Value::Object(extra)))
}

fn upload(d: &data::Dataset, idx: &[usize], device: &Device, dtype: DType) -> Res<Tensor> {
    let mut shape = vec![idx.len()];
    shape.extend(&d.shape);
    Tensor::from_vec(d.batch(idx), shape, device)
        .and_then(|t| t.to_dtype(dtype))
        .map_err(str_err)
}

/// Every spec file under `dir` (recursively), sorted.
fn spec_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            spec_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml") {
            out.push(p);
        }
    }
    out.sort();
}

/// `compile`: each spec's compile time; `times` holds the slowest spec's runs.
fn compile_workload(args: &Args) -> Res<(Vec<f64>, Value)> {
    let mut files = Vec::new();
    spec_files(Path::new("specs"), &mut files);
    let mut per_spec = serde_json::Map::new();
    let mut slowest: (f64, Vec<f64>) = (0.0, Vec::new());
    for f in &files {
        let source = load(&f.display().to_string(), &[])?;
        let times = time_runs(args, 1, || compile(&source).map(|_| ()))?;
        let m = median(&times);
        per_spec.insert(f.display().to_string(), json!(m));
        if m >= slowest.0 {
            slowest = (m, times);
        }
    }
    Ok((
        slowest.1,
        json!({ "per": "spec (slowest)", "per_spec_median_s": per_spec }),
    ))
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn run(args: &Args) -> Res<Value> {
    let (times, extra, spec_name, threads) = if args.workload == "compile" {
        let threads = set_threads(args, None);
        let (t, e) = compile_workload(args)?;
        (t, e, "specs/**".to_string(), threads)
    } else {
        let (path, sets) = spec_of(args)?;
        let (spec, program) = compile(&load(path, &sets)?)?;
        let threads = set_threads(args, Some(&spec));
        let train = match args.workload.as_str() {
            "lebm" | "cebm" | "ssl" => Some(training_data(&spec, &args.data_dir)?),
            _ => None,
        };
        let mut s =
            Session::new(&spec, &program, args.seed, Device::Cpu, DType::F32).map_err(str_err)?;
        let (t, mut e) = match &train {
            Some(train) => iteration_workload(args, &mut s, train)?,
            None => langevin_workload(args, &mut s)?,
        };
        e["latent_dims"] = json!(s.latent_shape);
        (t, e, path.to_string(), threads)
    };
    let mut out = json!({
        "side": "ebmc",
        "workload": args.workload,
        "spec": spec_name,
        "batch": args.batch,
        "latent": args.latent,
        "repeats": args.repeats,
        "warmup": args.warmup,
        // The larger of the two: the count PyTorch gets for the same work.
        "threads": threads.ops.max(threads.chains),
        "op_threads": threads.ops,
        "chain_threads": threads.chains,
        "candle_threads": candle_core::utils::get_num_threads(),
        "candle_elementwise_threads": std::env::var("CANDLE_NUM_THREADS").ok(),
        "times_s": times,
        "median_s": median(&times),
    });
    if let (Value::Object(o), Value::Object(e)) = (&mut out, extra) {
        o.extend(e);
    }
    Ok(out)
}

fn main() {
    // The allocator settings of the `ebmc` binary (large buffers stay mapped).
    ebmc::cli::tune_allocator();
    let args = match parse_args() {
        // Without a workload (a bare `cargo bench`, or `cargo test --all-targets`): usage only.
        Ok(a) if a.workload.is_empty() => {
            eprintln!("{USAGE}");
            return;
        }
        other => other,
    };
    let result = args.and_then(|a| run(&a));
    match result {
        Ok(v) => println!("{v}"),
        Err(e) => {
            eprintln!("ebmc_bench: {e}");
            std::process::exit(2);
        }
    }
}
