//! The command line. It only reads files, calls the library's stages and prints; every decision
//! about a spec is made by the stages.

use crate::diag::{Diagnostics, RenderStyle};
use crate::source::SourceFile;
use clap::{Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit codes: 0 success, 1 the spec has errors, 2 usage errors (bad flags, unreadable files),
/// 3 a run that could not finish.
pub const EXIT_SPEC_ERRORS: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
/// The run started but could not finish (missing data, divergence, I/O).
pub const EXIT_RUN_FAILED: u8 = 3;

#[derive(Parser, Debug)]
#[command(
    name = "ebmc",
    version,
    about = "A compiler and runtime for latent-variable energy-based models",
    long_about = "ebmc checks a model spec (YAML with math in a small expression language), compiles it \
                  into a computation graph and runs its learning algorithm.",
    after_help = "Examples:\n  ebmc check specs/lebm_digits.yaml\n  ebmc schema > ebmc.schema.json"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// When to color diagnostics.
    #[arg(long, value_enum, default_value_t = Color::Auto, global = true)]
    pub color: Color,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check specs and print every diagnostic (exit 0 when clean, 1 when a spec has errors).
    #[command(
        after_help = "Examples:\n  ebmc check specs/cebm_gmm.yaml\n  ebmc check specs/*.yaml --format json"
    )]
    Check {
        /// Spec files to check.
        #[arg(required = true, value_name = "SPEC")]
        specs: Vec<PathBuf>,
        /// `human`: rendered diagnostics; `json`: one JSON object per spec (for editors and CI).
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Train a spec and evaluate it; writes a run directory (spec, IR, metrics, checkpoint,
    /// samples, eval.json, report.md).
    #[command(
        after_help = "Examples:\n  ebmc run specs/lebm_digits.yaml\n  ebmc run specs/cebm_gmm.yaml --set learn.iterations=200 --seed 3\n  ebmc run specs/lebm_mnist.yaml --set data.train=mnist --out runs/lebm1\n  ebmc run --resume runs/lebm1"
    )]
    Run {
        /// The spec to run (not needed with --resume, which reads the run's own spec).
        #[arg(value_name = "SPEC", required_unless_present = "resume")]
        spec: Option<PathBuf>,
        /// The run directory (default: runs/<name>-<time>); must not exist or be empty.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Override a spec field, e.g. `--set learn.iterations=50` (repeatable).
        #[arg(long = "set", value_name = "PATH=VALUE")]
        sets: Vec<String>,
        /// The seed (default: `learn.seed`).
        #[arg(long)]
        seed: Option<u64>,
        /// `cpu` (default) or `cuda[:N]` (needs a build with `--features cuda`).
        #[arg(long, value_name = "DEVICE")]
        device: Option<String>,
        /// Continue the run in DIR from its last checkpoint.
        #[arg(long, value_name = "DIR", conflicts_with_all = ["out", "sets"])]
        resume: Option<PathBuf>,
        /// Where the downloaded data sets live (see scripts/setup-data.sh).
        #[arg(long, value_name = "DIR", default_value = "data")]
        data_dir: PathBuf,
        /// Stop after this many iterations (the schedule still follows the spec); for quick looks.
        #[arg(long, value_name = "N")]
        stop_after: Option<usize>,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
        /// CPU threads (default: every core). Every sampler chain splits its rows over them;
        /// convolutional models also use them inside each op outside the chains, models of dense
        /// layers only or of small inputs such as the 8×8 digits run each op on one thread.
        #[arg(long, value_name = "N")]
        threads: Option<usize>,
    },
    /// Re-run a finished run's evaluations on its checkpoint (rewrites eval.json).
    #[command(after_help = "Example:\n  ebmc eval runs/lebm_digits-20261125-201500")]
    Eval {
        /// The run directory.
        #[arg(value_name = "RUN_DIR")]
        dir: PathBuf,
        /// Where the downloaded data sets live.
        #[arg(long, value_name = "DIR", default_value = "data")]
        data_dir: PathBuf,
    },
    /// Draw samples from a finished run's model into a PNG grid in the run directory.
    #[command(after_help = "Example:\n  ebmc sample runs/lebm_digits-20261125-201500 --n 64")]
    Sample {
        /// The run directory.
        #[arg(value_name = "RUN_DIR")]
        dir: PathBuf,
        /// How many samples.
        #[arg(long, default_value_t = 64)]
        n: usize,
        /// The file name inside the run directory.
        #[arg(long, default_value = "samples-more.png")]
        file: String,
    },
    /// Compile a spec and print its IR: every function, the derived ones (marginals, classifier,
    /// closed-form posterior, input gradients) and the learning plan.
    #[command(
        after_help = "Examples:\n  ebmc ir specs/cebm_gmm.yaml\n  ebmc ir specs/ssl_digits.yaml | less"
    )]
    Ir {
        /// The spec to compile.
        #[arg(value_name = "SPEC")]
        spec: PathBuf,
    },
    /// Print the JSON Schema of the spec format (for editor completion).
    #[command(
        after_help = "Example (VS Code with the YAML extension):\n  ebmc schema > ebmc.schema.json\n  \
                            # then in a spec:  # yaml-language-server: $schema=ebmc.schema.json"
    )]
    Schema,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
}

/// Keeps large freed buffers in the process instead of handing them back to the kernel.
///
/// A step of the convolutional models frees and reallocates activations of 6–13 MB. With glibc's
/// defaults such blocks are mmapped (or trimmed off the heap's top once freed), so every step
/// faults in fresh zeroed pages and unmaps them again: about 5 % of a step in the profiles, and
/// raising these limits through `GLIBC_TUNABLES` made the convolutional workloads 4–15 %
/// faster. The cost is that the process keeps its peak heap. Call it before anything allocates
/// much (it is harmless later); the bench harness calls it as `ebmc` does.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // glibc refuses mmap thresholds above 32 MiB on 64-bit (HEAP_MAX_SIZE / 2), so this is
        // the largest that takes effect; the trim threshold is an int, 1 GiB is "never" here.
        const MMAP_THRESHOLD: libc::c_int = 32 << 20;
        const TRIM_THRESHOLD: libc::c_int = 1 << 30;
        // SAFETY: mallopt only sets allocator parameters; a rejected value returns 0 and leaves
        // glibc's default in place, which is correct, only slower.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        }
    }
}

/// Runs the command line; returns the process exit code.
pub fn main() -> ExitCode {
    tune_allocator();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    let style = render_style(cli.color);
    match cli.command {
        Command::Check { specs, format } => check(&specs, format, style),
        Command::Ir { spec } => ir(&spec, style),
        Command::Eval { dir, data_dir } => reuse(
            &dir,
            &data_dir,
            crate::runtime::train::run::Reuse::Evaluate,
            style,
        ),
        Command::Sample { dir, n, file } => {
            let file = crate::runtime::rundir::safe_file_name(&file);
            reuse(
                &dir,
                Path::new("data"),
                crate::runtime::train::run::Reuse::Sample {
                    n,
                    file: file.clone(),
                },
                style,
            )
        }
        Command::Run {
            spec,
            out,
            sets,
            seed,
            device,
            resume,
            data_dir,
            stop_after,
            quiet,
            threads,
        } => {
            let opts = crate::runtime::train::run::RunOptions {
                out,
                seed,
                device,
                resume: resume.clone(),
                data_dir,
                stop_after,
                quiet,
                command: std::env::args().collect::<Vec<_>>().join(" "),
                skip_evaluation: false,
            };
            set_threads(threads, spec.as_deref(), resume.as_deref());
            run(spec.as_deref(), &sets, &opts, style)
        }
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&crate::spec::json_schema())
                    .expect("a JSON value serializes")
            );
            ExitCode::SUCCESS
        }
    }
}

fn render_style(color: Color) -> RenderStyle {
    let colored = match color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    if colored {
        RenderStyle::Fancy
    } else {
        RenderStyle::Plain
    }
}

/// Reads a spec file; an unreadable file is a usage error printed here.
pub fn read_spec(path: &Path) -> Result<SourceFile, String> {
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Ok(SourceFile::new(path.display().to_string(), text)),
            Err(e) => Err(format!(
                "error[ebmc::cli::not_utf8]: {} is not UTF-8 text (invalid byte at offset {})\n  help: save the spec as UTF-8",
                path.display(),
                e.utf8_error().valid_up_to()
            )),
        },
        Err(e) => Err(format!(
            "error[ebmc::cli::read_file]: cannot read {}: {}\n  help: {}",
            path.display(),
            e,
            if e.kind() == std::io::ErrorKind::NotFound {
                "check the path; specs live in `specs/`"
            } else {
                "check the file's permissions"
            }
        )),
    }
}

fn check(specs: &[PathBuf], format: Format, style: RenderStyle) -> ExitCode {
    let mut worst = 0u8;
    for path in specs {
        let source = match read_spec(path) {
            Ok(s) => s,
            Err(msg) => {
                eprintln!("{msg}");
                worst = worst.max(EXIT_USAGE);
                continue;
            }
        };
        let result = crate::check_source(&source);
        match format {
            Format::Human => match &result {
                Ok(spec) => println!(
                    "{}: ok — `{}`, {} variables, {} networks, {}",
                    path.display(),
                    spec.name,
                    spec.variables.len(),
                    spec.networks.len(),
                    spec.learn.algorithm.name()
                ),
                Err(diags) => {
                    eprint!("{}", diags.render(style));
                    eprintln!(
                        "{}: {} error{}",
                        path.display(),
                        diags.len(),
                        if diags.len() == 1 { "" } else { "s" }
                    );
                }
            },
            Format::Json => println!("{}", json_report(path, result.as_ref().err())),
        }
        if result.is_err() {
            worst = worst.max(EXIT_SPEC_ERRORS);
        }
    }
    ExitCode::from(worst)
}

/// `{"file": ..., "ok": bool, "diagnostics": [{"code", "message", "help", "labels": [{"start", "end", "line", "column", "label"}]}]}`
fn json_report(path: &Path, diags: Option<&Diagnostics>) -> serde_json::Value {
    let items: Vec<serde_json::Value> = diags.map_or(Vec::new(), |d| {
        let text = &d.source.text;
        d.items
            .iter()
            .map(|item| {
                let labels: Vec<serde_json::Value> = item
                    .labels()
                    .map(|ls| {
                        ls.map(|l| {
                            let (line, column) = line_col(text, l.offset());
                            serde_json::json!({
                                "start": l.offset(), "end": l.offset() + l.len(),
                                "line": line, "column": column, "label": l.label(),
                            })
                        })
                        .collect()
                    })
                    .unwrap_or_default();
                serde_json::json!({
                    "code": item.code().map(|c| c.to_string()),
                    "message": item.to_string(),
                    "help": item.help().map(|h| h.to_string()),
                    "labels": labels,
                })
            })
            .collect()
    });
    serde_json::json!({ "file": path.display().to_string(), "ok": diags.is_none(), "diagnostics": items })
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn ir(path: &Path, style: RenderStyle) -> ExitCode {
    let source = match read_spec(path) {
        Ok(s) => s,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match crate::compile_source(&source) {
        Ok((_, program)) => {
            print!("{}", crate::ir::print::print(&program));
            ExitCode::SUCCESS
        }
        Err(diags) => {
            eprint!("{}", diags.render(style));
            eprintln!(
                "{}: {} error{}",
                path.display(),
                diags.len(),
                if diags.len() == 1 { "" } else { "s" }
            );
            ExitCode::from(EXIT_SPEC_ERRORS)
        }
    }
}

fn run(
    spec: Option<&Path>,
    sets: &[String],
    opts: &crate::runtime::train::run::RunOptions,
    style: RenderStyle,
) -> ExitCode {
    let path = match (&opts.resume, spec) {
        (Some(dir), _) => dir.join(crate::runtime::rundir::SPEC_FILE),
        (None, Some(p)) => p.to_path_buf(),
        (None, None) => unreachable!("clap requires SPEC unless --resume"),
    };
    let source = match read_spec(&path) {
        Ok(s) => s,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let source = match crate::spec::overrides::apply_overrides(&source, sets) {
        Ok(s) => s,
        Err(errors) => {
            eprint!("{}", crate::spec::overrides::render(&errors, style));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match crate::runtime::train::run::run(&source, opts) {
        Ok(outcome) => {
            for (k, v) in &outcome.eval {
                println!("{k}: {v:.6}");
            }
            println!("run directory: {}", outcome.dir.display());
            ExitCode::SUCCESS
        }
        Err(failures) => report_failures(failures, style),
    }
}

/// Pins the CPU threads (`threads_to_pin`: `--threads`, else every core, spent inside ops or
/// across chain rows as the spec suits) unless the environment already pins `RAYON_NUM_THREADS`.
fn set_threads(threads: Option<usize>, spec: Option<&Path>, resume: Option<&Path>) {
    let path = resume
        .map(|d| d.join(crate::runtime::rundir::SPEC_FILE))
        .or(spec.map(Path::to_path_buf));
    let spec = path
        .and_then(|path| read_spec(&path).ok())
        .and_then(|source| crate::check_source(&source).ok());
    let Some(chosen) = crate::runtime::train::run::threads_to_pin(threads, spec.as_ref()) else {
        return;
    };
    // SAFETY: called before any thread is spawned (no candle op has run yet in this process).
    unsafe {
        crate::runtime::train::run::pin_threads(chosen);
        // candle's separate elementwise pool busy-waits between the small ops of a Langevin
        // step; measured on lebm_mnist, one thread there halves the time per iteration.
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}

fn reuse(
    dir: &Path,
    data_dir: &Path,
    what: crate::runtime::train::run::Reuse,
    style: RenderStyle,
) -> ExitCode {
    set_threads(None, None, Some(dir));
    let sample_file = match &what {
        crate::runtime::train::run::Reuse::Sample { file, .. } => Some(dir.join(file)),
        crate::runtime::train::run::Reuse::Evaluate => None,
    };
    match crate::runtime::train::run::reuse_run(dir, data_dir, what) {
        Ok(eval) => {
            for (k, v) in &eval {
                println!("{k}: {v:.6}");
            }
            if let Some(f) = sample_file {
                println!("samples: {}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(failures) => report_failures(failures, style),
    }
}

fn report_failures(
    failures: Vec<crate::runtime::train::run::RunFailure>,
    style: RenderStyle,
) -> ExitCode {
    let spec_errors = failures.iter().any(|f| f.source.is_some());
    for f in failures {
        let mut d = Diagnostics::new(f.source.unwrap_or_else(|| SourceFile::new("", "")));
        d.items.push(f.diagnostic);
        eprint!("{}", d.render(style));
        if let Some(dir) = f.dir {
            eprintln!(
                "run directory (last good checkpoint kept): {}",
                dir.display()
            );
        }
    }
    ExitCode::from(if spec_errors {
        EXIT_SPEC_ERRORS
    } else {
        EXIT_RUN_FAILED
    })
}
