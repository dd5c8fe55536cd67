//! What a run tells its user: `report.md` (what ran, the evaluation, the losses, the pictures),
//! `eval.json` (flat metric → value), and the progress line on the terminal.

use super::rundir::{atomic_write, ordered_object};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;
use std::fmt::Write as _;
use std::io::{self, IsTerminal};
use std::path::Path;
use std::time::{Duration, Instant};

/// Everything `report.md` says about a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    pub spec_name: String,
    pub algorithm: String,
    /// The spec's description (empty: none).
    pub description: String,
    pub iterations: u64,
    /// Wall time of the run, in seconds.
    pub seconds: f64,
    pub device: String,
    pub seed: u64,
    /// The command line that reproduces the run.
    pub command: String,
    /// Per logged quantity: (name, first value, last value).
    pub metrics_summary: Vec<(String, f64, f64)>,
    /// The evaluation: (metric, value).
    pub eval: Vec<(String, f64)>,
    /// (caption, file name relative to the run directory).
    pub pictures: Vec<(String, String)>,
    pub notes: Vec<String>,
}

impl Report {
    /// The report as Markdown.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# Run report: {}\n", inline(&self.spec_name));
        if !self.description.trim().is_empty() {
            let _ = writeln!(s, "{}\n", self.description.trim());
        }
        s.push_str("## What ran\n\n| | |\n|---|---|\n");
        let rows = [
            ("spec", format!("{} (`spec.yaml`)", cell(&self.spec_name))),
            ("algorithm", cell(&self.algorithm)),
            ("iterations", self.iterations.to_string()),
            ("seed", self.seed.to_string()),
            ("device", cell(&self.device)),
            ("wall time", human_duration(self.seconds)),
        ];
        for (k, v) in rows {
            let _ = writeln!(s, "| {k} | {v} |");
        }
        if !self.command.trim().is_empty() {
            let _ = writeln!(s, "\nTo reproduce:\n\n```sh\n{}\n```", self.command.trim());
        }
        s.push_str("\n## Evaluation\n\n");
        if self.eval.is_empty() {
            s.push_str("No evaluations were requested (`evaluate:` in the spec).\n");
        } else {
            s.push_str("| metric | value |\n|---|---:|\n");
            for (k, v) in &self.eval {
                let _ = writeln!(s, "| {} | {} |", cell(k), fmt_value(*v));
            }
            s.push_str(&few_label_table(&self.eval));
        }
        if !self.metrics_summary.is_empty() {
            s.push_str("\n## Training\n\n| quantity | first | last |\n|---|---:|---:|\n");
            for (k, first, last) in &self.metrics_summary {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} |",
                    cell(k),
                    fmt_value(*first),
                    fmt_value(*last)
                );
            }
        }
        if !self.pictures.is_empty() {
            s.push_str("\n## Pictures\n");
            for (caption, file) in &self.pictures {
                let _ = writeln!(
                    s,
                    "\n{}\n\n![{}]({})",
                    inline(caption),
                    inline(caption),
                    link(file)
                );
            }
        }
        if !self.notes.is_empty() {
            s.push_str("\n## Notes\n\n");
            for n in &self.notes {
                let _ = writeln!(s, "- {}", n.trim().replace('\n', "\n  "));
            }
        }
        s
    }

    /// Writes the report atomically.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        atomic_write(path, self.render().as_bytes())
    }
}

/// Text on one line.
/// The `few_label` metrics (`few_label_<shots>_{mean,sd}` beside `raw_pixels_<shots>_{mean,sd}`) as
/// one table, a row per label count; empty when the run has none.
fn few_label_table(eval: &[(String, f64)]) -> String {
    let get = |k: String| eval.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
    let both = |what: &str, shots: &str| {
        let mean = get(format!("{what}_{shots}_mean"));
        let sd = get(format!("{what}_{shots}_sd"));
        match (mean, sd) {
            (Some(m), Some(sd)) => format!("{:.1} ± {:.1} %", 100.0 * m, 100.0 * sd),
            (Some(m), None) => format!("{:.1} %", 100.0 * m),
            _ => "—".into(),
        }
    };
    let shots: Vec<&str> = eval
        .iter()
        .filter_map(|(k, _)| k.strip_prefix("few_label_")?.strip_suffix("_mean"))
        .collect();
    if shots.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "\nFew-label accuracy on the test split (logistic regression; mean ± sd over the draws):\n\n\
         | labels per class | posterior means | raw pixels |\n|---|---:|---:|\n",
    );
    for k in shots {
        let _ = writeln!(
            s,
            "| {k} | {} | {} |",
            both("few_label", k),
            both("raw_pixels", k)
        );
    }
    s
}

fn inline(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Text in a table cell (`|` escaped).
fn cell(s: &str) -> String {
    inline(s).replace('|', "\\|")
}

/// A file name in a Markdown link (spaces and parentheses escaped).
fn link(s: &str) -> String {
    s.replace(' ', "%20")
        .replace('(', "%28")
        .replace(')', "%29")
}

/// A number for a table: integers as integers, otherwise 4 significant digits (scientific outside
/// 1e-3..1e6); `NaN`, `inf`, `-inf` spelled out.
pub fn fmt_value(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    if x == x.trunc() && x.abs() < 1e15 {
        return format!("{}", x as i64);
    }
    let a = x.abs();
    if !(1e-3..1e6).contains(&a) {
        return format!("{x:.3e}");
    }
    let decimals = (3 - a.log10().floor() as i64).max(0) as usize;
    format!("{x:.decimals$}")
}

/// `2 h 03 min`, `4 min 05 s`, `12.3 s`.
pub fn human_duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "unknown".into();
    }
    if seconds < 60.0 {
        return format!("{seconds:.1} s");
    }
    let s = seconds.round() as u64;
    if s < 3600 {
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        format!("{} h {:02} min", s / 3600, (s % 3600) / 60)
    }
}

/// Writes `eval.json`: a flat JSON object metric → value, in the given order, atomically.
/// Non-finite values are written as `null` (JSON has no NaN).
pub fn write_eval_json(path: &Path, eval: &[(String, f64)]) -> io::Result<()> {
    let values: Vec<(&str, Value)> = eval
        .iter()
        .map(|(k, v)| (k.as_str(), Value::from(*v)))
        .collect();
    let mut text = ordered_object(values.iter().map(|(k, v)| (*k, v)));
    text.push('\n');
    atomic_write(path, text.as_bytes())
}

/// The training progress on the terminal: a bar with iterations/s, ETA and the main losses. When
/// stderr is not a terminal (CI, a log file), one plain line every 10 % instead.
pub struct Progress {
    total: u64,
    start: Instant,
    /// The position the run started from (a resumed run).
    start_pos: u64,
    pos: u64,
    losses: String,
    out: Output,
}

enum Output {
    Bar(ProgressBar),
    /// Plain lines; the next tenth to report.
    Lines {
        next_tenth: u64,
        sink: Sink,
    },
}

enum Sink {
    Stderr,
    #[cfg(test)]
    Memory(Vec<String>),
}

impl Progress {
    /// A progress display for `total` iterations: a bar unless `hidden`, plain lines every 10 %
    /// when `hidden`.
    pub fn new(total: u64, hidden: bool) -> Progress {
        let out = if hidden {
            Output::Lines {
                next_tenth: 1,
                sink: Sink::Stderr,
            }
        } else {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{spinner} {pos:>7}/{len:7} [{wide_bar}] {per_sec:>9} eta {eta:>4}  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            Output::Bar(bar)
        };
        Progress {
            total,
            start: Instant::now(),
            start_pos: 0,
            pos: 0,
            losses: String::new(),
            out,
        }
    }

    /// A bar when stderr is a terminal, plain lines otherwise.
    pub fn for_stderr(total: u64) -> Progress {
        Progress::new(total, !io::stderr().is_terminal())
    }

    #[cfg(test)]
    fn in_memory(total: u64) -> Progress {
        let mut p = Progress::new(total, true);
        p.out = Output::Lines {
            next_tenth: 1,
            sink: Sink::Memory(Vec::new()),
        };
        p
    }

    /// Starts at `pos` (a resumed run): rates count from here.
    pub fn resume_at(&mut self, pos: u64) {
        self.start_pos = pos.min(self.total);
        self.pos = self.start_pos;
        self.start = Instant::now();
        match &mut self.out {
            Output::Bar(bar) => {
                bar.set_position(self.pos);
                bar.reset_eta();
                bar.reset_elapsed();
            }
            Output::Lines { next_tenth, .. } => {
                *next_tenth = self
                    .pos
                    .saturating_mul(10)
                    .checked_div(self.total)
                    .unwrap_or(0)
                    + 1;
            }
        }
    }

    /// The main losses, shown after the bar: `loss_g 0.1234  loss_f -0.0345`.
    pub fn set_losses(&mut self, losses: &[(&str, f64)]) {
        self.losses = losses
            .iter()
            .map(|(k, v)| format!("{k} {}", short_value(*v)))
            .collect::<Vec<_>>()
            .join("  ");
        if let Output::Bar(bar) = &self.out {
            bar.set_message(self.losses.clone());
        }
    }

    /// Moves to iteration `pos` (iterations done).
    pub fn set_position(&mut self, pos: u64) {
        self.pos = pos.min(self.total);
        match &mut self.out {
            Output::Bar(bar) => bar.set_position(self.pos),
            Output::Lines { next_tenth, sink } => {
                if self.total == 0 {
                    return;
                }
                let tenth = self.pos.saturating_mul(10) / self.total;
                if tenth >= *next_tenth {
                    *next_tenth = tenth + 1;
                    let line = plain_line(
                        self.pos,
                        self.total,
                        self.start_pos,
                        self.start.elapsed(),
                        &self.losses,
                    );
                    sink.emit(line);
                }
            }
        }
    }

    /// One iteration more.
    pub fn inc(&mut self) {
        self.set_position(self.pos + 1);
    }

    /// Prints a line without breaking the bar.
    pub fn println(&mut self, msg: &str) {
        match &mut self.out {
            Output::Bar(bar) => bar.println(msg),
            Output::Lines { sink, .. } => sink.emit(msg.to_string()),
        }
    }

    /// The run completed: the bar stays on screen with its final losses.
    pub fn finish(&mut self) {
        if let Output::Bar(bar) = &self.out {
            bar.finish_with_message(self.losses.clone());
        }
    }

    /// The run stopped early (an error): the bar stays where it stopped, with `msg`.
    pub fn abandon(&mut self, msg: &str) {
        match &mut self.out {
            Output::Bar(bar) => bar.abandon_with_message(msg.to_string()),
            Output::Lines { sink, .. } => {
                sink.emit(format!("stopped at {}/{}: {msg}", self.pos, self.total))
            }
        }
    }

    #[cfg(test)]
    fn lines(&self) -> &[String] {
        match &self.out {
            Output::Lines {
                sink: Sink::Memory(v),
                ..
            } => v,
            _ => &[],
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Output::Bar(bar) = &self.out
            && !bar.is_finished()
        {
            bar.abandon();
        }
    }
}

impl Sink {
    fn emit(&mut self, line: String) {
        match self {
            Sink::Stderr => eprintln!("{line}"),
            #[cfg(test)]
            Sink::Memory(v) => v.push(line),
        }
    }
}

/// `step 200/2000 (10%)  45.2 it/s  eta 40 s  loss_g 0.12`.
fn plain_line(pos: u64, total: u64, start_pos: u64, elapsed: Duration, losses: &str) -> String {
    let pct = pos.saturating_mul(100).checked_div(total).unwrap_or(100);
    let done = pos.saturating_sub(start_pos) as f64;
    let secs = elapsed.as_secs_f64();
    let mut line = format!("step {pos}/{total} ({pct}%)");
    if secs > 0.0 && done > 0.0 {
        let rate = done / secs;
        let eta = (total - pos) as f64 / rate;
        let _ = write!(
            line,
            "  {} it/s  eta {}",
            short_value(rate),
            human_duration(eta)
        );
    }
    if !losses.is_empty() {
        let _ = write!(line, "  {losses}");
    }
    line
}

/// A compact number for the progress line.
fn short_value(x: f64) -> String {
    if !x.is_finite() {
        return fmt_value(x);
    }
    let a = x.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        format!("{x:.2e}")
    } else if a >= 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.4}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::rundir::tests::scratch;

    fn report() -> Report {
        Report {
            spec_name: "lebm_digits".into(),
            algorithm: "short_run_mle".into(),
            description: "Latent EBM prior on 8×8 digits.".into(),
            iterations: 2000,
            seconds: 125.4,
            device: "cpu".into(),
            seed: 7,
            command: "ebmc run specs/lebm_digits.yaml --seed 7 --set learn.iterations=2000".into(),
            metrics_summary: vec![
                ("loss_g".into(), 1.5, 0.0123),
                ("energy|f".into(), -3.0, 2.0),
            ],
            eval: vec![
                ("reconstruction_mse".into(), 0.01234567),
                ("auprc".into(), f64::NAN),
            ],
            pictures: vec![("Samples from the model".into(), "samples.png".into())],
            notes: vec!["resumed from step 1000".into()],
        }
    }

    #[test]
    fn report_renders_every_part() {
        let md = report().render();
        for part in [
            "# Run report: lebm_digits",
            "Latent EBM prior on 8×8 digits.",
            "| algorithm | short_run_mle |",
            "| iterations | 2000 |",
            "| seed | 7 |",
            "| device | cpu |",
            "| wall time | 2 min 05 s |",
            "```sh\nebmc run specs/lebm_digits.yaml --seed 7 --set learn.iterations=2000\n```",
            "| metric | value |",
            "| reconstruction_mse | 0.01235 |",
            "| auprc | NaN |",
            "| loss_g | 1.500 | 0.01230 |",
            "| energy\\|f | -3 | 2 |",
            "![Samples from the model](samples.png)",
            "- resumed from step 1000",
        ] {
            assert!(md.contains(part), "missing {part:?} in\n{md}");
        }
        assert!(!md.contains("Few-label accuracy"));
        let empty = Report::default().render();
        assert!(empty.contains("No evaluations"));
        assert!(!empty.contains("## Pictures"));
    }

    #[test]
    fn few_label_metrics_get_their_own_table() {
        let mut r = report();
        r.eval = [
            ("few_label_1_mean", 0.5478),
            ("few_label_1_sd", 0.0689),
            ("raw_pixels_1_mean", 0.55),
            ("raw_pixels_1_sd", 0.0644),
            ("few_label_all_mean", 0.9611),
            ("few_label_all_sd", 0.0),
            ("raw_pixels_all_mean", 0.9722),
            ("raw_pixels_all_sd", 0.0),
        ]
        .map(|(k, v)| (k.to_string(), v))
        .to_vec();
        let md = r.render();
        for row in [
            "| labels per class | posterior means | raw pixels |",
            "| 1 | 54.8 ± 6.9 % | 55.0 ± 6.4 % |",
            "| all | 96.1 ± 0.0 % | 97.2 ± 0.0 % |",
        ] {
            assert!(md.contains(row), "missing {row:?} in\n{md}");
        }
    }

    #[test]
    fn report_is_written() {
        let dir = scratch("report-write");
        let p = dir.join("report.md");
        report().write(&p).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), report().render());
    }

    #[test]
    fn values_are_formatted_compactly() {
        assert_eq!(fmt_value(3.0), "3");
        assert_eq!(fmt_value(0.5), "0.5000");
        assert_eq!(fmt_value(123.456), "123.5");
        assert_eq!(fmt_value(1.5e-7), "1.500e-7");
        assert_eq!(fmt_value(f64::INFINITY), "inf");
        assert_eq!(human_duration(12.34), "12.3 s");
        assert_eq!(human_duration(3725.0), "1 h 02 min");
    }

    #[test]
    fn eval_json_is_flat_and_ordered() {
        let dir = scratch("report-eval");
        let p = dir.join("eval.json");
        write_eval_json(
            &p,
            &[
                ("reconstruction_mse".into(), 0.25),
                ("accuracy".into(), 0.9),
                ("fid".into(), f64::NAN),
            ],
        )
        .unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            text,
            "{\"reconstruction_mse\": 0.25, \"accuracy\": 0.9, \"fid\": null}\n"
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["accuracy"], 0.9);
    }

    #[test]
    fn hidden_progress_prints_every_tenth() {
        let mut p = Progress::in_memory(100);
        for i in 0..100 {
            p.set_losses(&[("loss_g", 1.0 / (i + 1) as f64), ("energy", -2.0)]);
            p.inc();
        }
        p.finish();
        let lines = p.lines();
        assert_eq!(lines.len(), 10, "{lines:?}");
        assert!(lines[0].starts_with("step 10/100 (10%)"), "{}", lines[0]);
        assert!(
            lines[0].contains("loss_g 0.1000  energy -2.0000"),
            "{}",
            lines[0]
        );
        assert!(lines[9].starts_with("step 100/100 (100%)"));
        // Jumps print once; a resumed run starts counting at its position.
        let mut p = Progress::in_memory(1000);
        p.resume_at(500);
        p.set_position(501);
        p.set_position(999);
        p.set_position(1000);
        assert_eq!(p.lines().len(), 2, "{:?}", p.lines());
        assert!(p.lines()[0].starts_with("step 999/1000 (99%)"));
        p.abandon("NaN in loss_g");
        assert!(p.lines()[2].contains("NaN in loss_g"));
        // Zero iterations: no division by zero.
        let mut p = Progress::in_memory(0);
        p.inc();
        p.finish();
    }

    #[test]
    fn visible_progress_does_not_panic() {
        // Drawn to stderr (hidden by the test harness when not a terminal).
        let mut p = Progress::new(10, false);
        p.set_losses(&[("loss", f64::NAN)]);
        p.inc();
        p.println("a message");
        p.abandon("stopped");
    }
}
