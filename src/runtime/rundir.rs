//! The run directory: where `ebmc run` writes everything a run produces.
//!
//! ```text
//! runs/<spec>-<YYYYmmdd-HHMMSS>/
//!   spec.yaml                the effective spec (with every `--set` applied)
//!   program.ir               the printed IR
//!   metrics.jsonl            one JSON object per logged step: {"step": 10, "seconds": 1.2, ...}
//!   checkpoint.safetensors   parameters, optimizer and RNG state (see `checkpoint`)
//!   samples.png, curves.png  pictures
//!   eval.json, report.md     the evaluation and the report
//! ```
//!
//! Nothing is ever overwritten by a new run: the default directory gets a `-2`, `-3`, ... suffix when
//! its name is taken, and an explicit `--out DIR` must not exist or be empty. Every whole-file write
//! goes through [`atomic_write`] (temp file in the same directory, fsync, rename), so a crash leaves
//! either the old file or the new one, never a torn one.

use miette::Diagnostic;
use serde_json::{Map, Value};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};
use thiserror::Error;

/// The file names of a run directory.
pub const SPEC_FILE: &str = "spec.yaml";
pub const IR_FILE: &str = "program.ir";
pub const METRICS_FILE: &str = "metrics.jsonl";
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
pub const SAMPLES_FILE: &str = "samples.png";
pub const CURVES_FILE: &str = "curves.png";
pub const EVAL_FILE: &str = "eval.json";
pub const REPORT_FILE: &str = "report.md";

/// The default parent of run directories (relative to the working directory).
pub const DEFAULT_RUNS_DIR: &str = "runs";

/// An error creating, opening or writing a run directory.
#[derive(Debug, Error, Diagnostic)]
pub enum RunDirError {
    /// `--out DIR` names something that exists and holds files (or is not a directory).
    #[error("the output directory `{path}` already exists{what}")]
    #[diagnostic(code(ebmc::run::out_exists))]
    OutExists {
        path: String,
        /// ` and is not empty` / ` and is not a directory`.
        what: String,
        #[help]
        help: String,
    },

    /// `--resume DIR` names something that is not a run directory.
    #[error("`{path}` is not an ebmc run directory: {reason}")]
    #[diagnostic(code(ebmc::run::not_a_run))]
    NotARun {
        path: String,
        reason: String,
        #[help]
        help: String,
    },

    /// A file system operation failed.
    #[error("cannot {action} `{path}`: {message}")]
    #[diagnostic(code(ebmc::run::io))]
    Io {
        action: &'static str,
        path: String,
        message: String,
        #[help]
        help: Option<String>,
    },
}

impl RunDirError {
    pub(crate) fn io(action: &'static str, path: &Path, e: &io::Error) -> Self {
        let help = match e.kind() {
            io::ErrorKind::PermissionDenied => {
                Some("check the permissions, or choose another directory with `--out`".into())
            }
            io::ErrorKind::StorageFull => Some("free some disk space".into()),
            _ => None,
        };
        RunDirError::Io {
            action,
            path: path.display().to_string(),
            message: e.to_string(),
            help,
        }
    }
}

/// A run directory that exists on disk.
#[derive(Clone, Debug)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// Creates the run directory of a new run: `out` when given (it must not exist, or be an empty
    /// directory), else `runs/<spec_name>-<YYYYmmdd-HHMMSS>` (UTC) with a `-2`, `-3`, ... suffix when
    /// that name is taken.
    pub fn create(out: Option<&Path>, spec_name: &str) -> Result<RunDir, RunDirError> {
        match out {
            Some(dir) => Self::create_explicit(dir),
            None => {
                Self::create_default_in(Path::new(DEFAULT_RUNS_DIR), spec_name, SystemTime::now())
            }
        }
    }

    /// An explicit `--out DIR`: created, or an existing empty directory.
    pub fn create_explicit(dir: &Path) -> Result<RunDir, RunDirError> {
        let out_exists = |what: &str| RunDirError::OutExists {
            path: dir.display().to_string(),
            what: what.to_string(),
            help: format!(
                "choose another `--out`, or `--resume {}` to continue that run",
                dir.display()
            ),
        };
        match fs::metadata(dir) {
            Ok(m) if m.is_dir() => {
                let mut entries =
                    fs::read_dir(dir).map_err(|e| RunDirError::io("read", dir, &e))?;
                if entries.next().is_some() {
                    return Err(out_exists(" and is not empty"));
                }
            }
            Ok(_) => return Err(out_exists(" and is not a directory")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                    fs::create_dir_all(parent)
                        .map_err(|e| RunDirError::io("create the directory", parent, &e))?;
                }
                match fs::create_dir(dir) {
                    Ok(()) => {}
                    // Created by someone else in between: theirs.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        return Err(out_exists(""));
                    }
                    Err(e) => return Err(RunDirError::io("create the directory", dir, &e)),
                }
            }
            Err(e) => return Err(RunDirError::io("inspect", dir, &e)),
        }
        Ok(RunDir {
            path: dir.to_path_buf(),
        })
    }

    /// The default directory under `base`, named from `spec_name` and the time `now` (UTC).
    pub fn create_default_in(
        base: &Path,
        spec_name: &str,
        now: SystemTime,
    ) -> Result<RunDir, RunDirError> {
        fs::create_dir_all(base).map_err(|e| RunDirError::io("create the directory", base, &e))?;
        let stem = format!("{}-{}", safe_file_name(spec_name), utc_stamp(now));
        for n in 1..10_000u32 {
            let name = if n == 1 {
                stem.clone()
            } else {
                format!("{stem}-{n}")
            };
            let dir = base.join(name);
            match fs::create_dir(&dir) {
                Ok(()) => return Ok(RunDir { path: dir }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(RunDirError::io("create the directory", &dir, &e)),
            }
        }
        Err(RunDirError::OutExists {
            path: base.join(&stem).display().to_string(),
            what: " (and 9999 numbered variants)".into(),
            help: "choose a directory with `--out`".into(),
        })
    }

    /// Opens the directory of an earlier run to continue it: it must hold `spec.yaml` and
    /// `checkpoint.safetensors`.
    pub fn open_for_resume(dir: &Path) -> Result<RunDir, RunDirError> {
        let not_a_run = |reason: String| RunDirError::NotARun {
            path: dir.display().to_string(),
            reason,
            help: "`--resume` takes the directory an earlier `ebmc run` wrote (it holds \
                   `spec.yaml` and `checkpoint.safetensors`)"
                .into(),
        };
        match fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(not_a_run("it is not a directory".into())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(not_a_run("it does not exist".into()));
            }
            Err(e) => return Err(RunDirError::io("inspect", dir, &e)),
        }
        let missing: Vec<&str> = [SPEC_FILE, CHECKPOINT_FILE]
            .into_iter()
            .filter(|f| !dir.join(f).is_file())
            .collect();
        match missing.as_slice() {
            [] => Ok(RunDir {
                path: dir.to_path_buf(),
            }),
            [one] => Err(not_a_run(format!("it has no `{one}`"))),
            _ => Err(not_a_run(format!(
                "it has no `{SPEC_FILE}` and no `{CHECKPOINT_FILE}`"
            ))),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of a file in the directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes a whole file atomically; returns its path.
    pub fn write_bytes(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, RunDirError> {
        let path = self.file(name);
        atomic_write(&path, bytes).map_err(|e| RunDirError::io("write", &path, &e))?;
        Ok(path)
    }

    /// Writes a whole text file atomically; returns its path.
    pub fn write_text(&self, name: &str, text: &str) -> Result<PathBuf, RunDirError> {
        self.write_bytes(name, text.as_bytes())
    }

    /// Reads a text file of the directory.
    pub fn read_text(&self, name: &str) -> Result<String, RunDirError> {
        let path = self.file(name);
        fs::read_to_string(&path).map_err(|e| RunDirError::io("read", &path, &e))
    }
}

/// Writes `bytes` to `path` atomically: to `<path>.tmp` in the same directory, fsync, rename over
/// `path`, then fsync the directory (best effort). A crash at any point leaves the old file (or none)
/// and at most a stale `.tmp`, which the next write replaces.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = tmp_path(path);
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    sync_dir(path);
    Ok(())
}

/// `<path>.tmp`.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Makes a rename in `path`'s directory durable (no-op where directories cannot be opened).
fn sync_dir(path: &Path) {
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// A spec name as a file name: letters, digits, `-`, `_` and `.` kept, others `_`.
pub fn safe_file_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    let s = s.trim_start_matches('.');
    if s.is_empty() {
        "run".to_string()
    } else {
        s.to_string()
    }
}

/// `YYYYmmdd-HHMMSS` in UTC (times before 1970 read as 1970).
pub fn utc_stamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `metrics.jsonl`: one JSON object per logged step, appended and flushed to the OS at each write.
///
/// Non-finite numbers are written as `null` (JSON has no NaN); a diverged step is still logged.
#[derive(Debug)]
pub struct MetricsLog {
    path: PathBuf,
    file: File,
}

impl MetricsLog {
    /// Starts the log of a new run (an existing file is truncated).
    pub fn create(path: &Path) -> io::Result<MetricsLog> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)?;
        Ok(MetricsLog {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Continues the log of a resumed run whose checkpoint is at `step`: lines with a larger step
    /// (logged after the checkpoint) and unreadable lines (a write cut off by a crash) are dropped,
    /// atomically, so the log matches the resumed state. A missing file starts an empty log.
    pub fn open_for_resume(path: &Path, step: u64) -> io::Result<MetricsLog> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                String::from_utf8_lossy(&fs::read(path)?).into_owned()
            }
            Err(e) => return Err(e),
        };
        let mut kept = String::new();
        for line in text.lines() {
            let keep = serde_json::from_str::<Value>(line)
                .ok()
                .and_then(|v| v.get("step").and_then(Value::as_u64))
                .is_some_and(|s| s <= step);
            if keep {
                kept.push_str(line);
                kept.push('\n');
            }
        }
        if kept != text {
            atomic_write(path, kept.as_bytes())?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(MetricsLog {
            path: path.to_path_buf(),
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record, keys in the map's order.
    pub fn append(&mut self, record: &Map<String, Value>) -> io::Result<()> {
        let pairs: Vec<(&str, Value)> = record
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        self.write_line(&pairs)
    }

    /// Appends `{"step": STEP, "seconds": SECONDS, name: value, ...}` (in this order).
    pub fn record(&mut self, step: u64, seconds: f64, values: &[(&str, f64)]) -> io::Result<()> {
        let mut pairs: Vec<(&str, Value)> = Vec::with_capacity(values.len() + 2);
        pairs.push(("step", Value::from(step)));
        pairs.push(("seconds", Value::from(round_seconds(seconds))));
        pairs.extend(values.iter().map(|&(k, v)| (k, Value::from(v))));
        self.write_line(&pairs)
    }

    fn write_line(&mut self, pairs: &[(&str, Value)]) -> io::Result<()> {
        let mut line = ordered_object(pairs.iter().map(|(k, v)| (*k, v)));
        line.push('\n');
        // One write call per line: a crash leaves at most a partial last line, which
        // `open_for_resume` drops.
        self.file.write_all(line.as_bytes())?;
        self.file.flush()
    }

    /// Reads every record of a log, keys in file order (unreadable lines are skipped).
    pub fn read(path: &Path) -> io::Result<Vec<Record>> {
        let bytes = fs::read(path)?;
        let text = String::from_utf8_lossy(&bytes);
        Ok(text.lines().filter_map(parse_record).collect())
    }
}

/// One line of `metrics.jsonl`: (key, value) in file order.
pub type Record = Vec<(String, Value)>;

/// A JSON object line with its keys in the order they are written (`serde_json::Map` sorts them;
/// the order is recovered from the positions of the keys in the line).
pub fn parse_record(line: &str) -> Option<Record> {
    let Ok(Value::Object(m)) = serde_json::from_str::<Value>(line) else {
        return None;
    };
    let mut pairs: Vec<(usize, String, Value)> = m
        .into_iter()
        .map(|(k, v)| {
            let quoted = serde_json::to_string(&k).unwrap_or_default();
            let at = line
                .match_indices(&quoted)
                .find(|(i, q)| line[i + q.len()..].trim_start().starts_with(':'))
                .map_or(usize::MAX, |(i, _)| i);
            (at, k, v)
        })
        .collect();
    pairs.sort_by_key(|(at, _, _)| *at);
    Some(pairs.into_iter().map(|(_, k, v)| (k, v)).collect())
}

/// The value of `key` in a record.
pub fn record_get<'r>(record: &'r Record, key: &str) -> Option<&'r Value> {
    record.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// Seconds with millisecond precision (stable, readable logs).
fn round_seconds(s: f64) -> f64 {
    (s * 1000.0).round() / 1000.0
}

/// A JSON object with its keys in the given order (`serde_json::Map` sorts them).
pub(crate) fn ordered_object<'a>(pairs: impl Iterator<Item = (&'a str, &'a Value)>) -> String {
    let mut s = String::from("{");
    for (i, (k, v)) in pairs.enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        // Serializing a string or a Value cannot fail.
        s.push_str(&serde_json::to_string(k).unwrap_or_default());
        s.push_str(": ");
        s.push_str(&serde_json::to_string(v).unwrap_or_else(|_| "null".into()));
    }
    s.push('}');
    s
}

/// For each numeric quantity of a metrics log (all keys but `step` and `seconds`, in order of first
/// appearance): its first and last finite values. For the report's loss table.
pub fn metrics_summary(records: &[Record]) -> Vec<(String, f64, f64)> {
    let mut out: Vec<(String, f64, f64)> = Vec::new();
    for r in records {
        for (k, v) in r {
            if k == "step" || k == "seconds" {
                continue;
            }
            let Some(x) = v.as_f64().filter(|x| x.is_finite()) else {
                continue;
            };
            match out.iter_mut().find(|(name, _, _)| name == k) {
                Some(entry) => entry.2 = x,
                None => out.push((k.clone(), x, x)),
            }
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::time::Duration;

    /// A fresh scratch directory under the system temp directory (emptied first).
    pub(crate) fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir()
            .join("ebmc-tests")
            .join(format!("{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn utc_stamps() {
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101-000000");
        // 2024-02-29 13:45:07 UTC
        let t = UNIX_EPOCH + Duration::from_secs(1_709_214_307);
        assert_eq!(utc_stamp(t), "20240229-134507");
        // 2000-03-01 00:00:00
        let t = UNIX_EPOCH + Duration::from_secs(951_868_800);
        assert_eq!(utc_stamp(t), "20000301-000000");
        // 1999-12-31 23:59:59
        let t = UNIX_EPOCH + Duration::from_secs(946_684_799);
        assert_eq!(utc_stamp(t), "19991231-235959");
    }

    #[test]
    fn default_dirs_never_collide() {
        let base = scratch("rundir-default");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_214_307);
        let a = RunDir::create_default_in(&base, "lebm digits/x", t).unwrap();
        let b = RunDir::create_default_in(&base, "lebm digits/x", t).unwrap();
        let c = RunDir::create_default_in(&base, "lebm digits/x", t).unwrap();
        assert_eq!(a.path(), base.join("lebm_digits_x-20240229-134507"));
        assert_eq!(b.path(), base.join("lebm_digits_x-20240229-134507-2"));
        assert_eq!(c.path(), base.join("lebm_digits_x-20240229-134507-3"));
        assert!(c.path().is_dir());
        let d = RunDir::create_default_in(&base, "", t).unwrap();
        assert!(d.path().ends_with("run-20240229-134507"));
    }

    #[test]
    fn explicit_out_must_be_new_or_empty() {
        let base = scratch("rundir-explicit");
        let dir = base.join("a/b");
        let r = RunDir::create(Some(&dir), "x").unwrap();
        assert!(r.path().is_dir());
        // Empty: fine.
        RunDir::create(Some(&dir), "x").unwrap();
        r.write_text("spec.yaml", "ebmc: 1\n").unwrap();
        let e = RunDir::create(Some(&dir), "x").unwrap_err();
        assert!(matches!(e, RunDirError::OutExists { .. }));
        assert_eq!(e.code().unwrap().to_string(), "ebmc::run::out_exists");
        assert!(e.help().unwrap().to_string().contains("--resume"));
        // The file is untouched.
        assert_eq!(r.read_text("spec.yaml").unwrap(), "ebmc: 1\n");
        // A file, not a directory.
        let f = base.join("file");
        fs::write(&f, "x").unwrap();
        let e = RunDir::create(Some(&f), "x").unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
        assert_eq!(fs::read_to_string(&f).unwrap(), "x");
    }

    #[test]
    fn resume_needs_a_run_directory() {
        let base = scratch("rundir-resume");
        let e = RunDir::open_for_resume(&base.join("nope")).unwrap_err();
        assert_eq!(e.code().unwrap().to_string(), "ebmc::run::not_a_run");
        assert!(e.to_string().contains("does not exist"));
        let e = RunDir::open_for_resume(&base).unwrap_err();
        assert!(e.to_string().contains("no `spec.yaml` and no"), "{e}");
        fs::write(base.join(SPEC_FILE), "ebmc: 1\n").unwrap();
        let e = RunDir::open_for_resume(&base).unwrap_err();
        assert!(e.to_string().contains("checkpoint.safetensors"), "{e}");
        fs::write(base.join(CHECKPOINT_FILE), "x").unwrap();
        let r = RunDir::open_for_resume(&base).unwrap();
        assert_eq!(r.path(), base);
        let e = RunDir::open_for_resume(&base.join(SPEC_FILE)).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
    }

    #[test]
    fn atomic_write_replaces_whole_files() {
        let base = scratch("rundir-atomic");
        let p = base.join("f.txt");
        atomic_write(&p, b"one").unwrap();
        // A stale temp file from an interrupted write is replaced, and the target stays whole.
        fs::write(tmp_path(&p), b"garbage").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"one");
        atomic_write(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert!(!tmp_path(&p).exists());
        // A failing write leaves no temp file behind.
        assert!(atomic_write(&base.join("missing/f"), b"x").is_err());
    }

    #[test]
    fn metrics_log_appends_ordered_lines() {
        let base = scratch("rundir-metrics");
        let p = base.join(METRICS_FILE);
        let mut log = MetricsLog::create(&p).unwrap();
        log.record(10, 1.23456, &[("loss_g", 0.5), ("energy", -1.0)])
            .unwrap();
        log.record(20, 2.0, &[("loss_g", f64::NAN), ("energy", -2.0)])
            .unwrap();
        let mut m = Map::new();
        m.insert("step".into(), 30.into());
        m.insert("note".into(), "x".into());
        log.append(&m).unwrap();
        let text = fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            r#"{"step": 10, "seconds": 1.235, "loss_g": 0.5, "energy": -1.0}"#
        );
        assert_eq!(
            lines[1],
            r#"{"step": 20, "seconds": 2.0, "loss_g": null, "energy": -2.0}"#
        );
        let records = MetricsLog::read(&p).unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(
            metrics_summary(&records),
            vec![
                ("loss_g".to_string(), 0.5, 0.5),
                ("energy".to_string(), -1.0, -2.0)
            ]
        );
    }

    #[test]
    fn metrics_log_is_cut_back_to_the_checkpoint_on_resume() {
        let base = scratch("rundir-metrics-resume");
        let p = base.join(METRICS_FILE);
        let mut log = MetricsLog::create(&p).unwrap();
        for step in [10, 20, 30, 40] {
            log.record(step, step as f64, &[("loss", 1.0)]).unwrap();
        }
        drop(log);
        // A crash in the middle of a line.
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"step\": 50, \"sec").unwrap();
        drop(f);
        let mut log = MetricsLog::open_for_resume(&p, 20).unwrap();
        log.record(30, 31.0, &[("loss", 2.0)]).unwrap();
        let steps: Vec<u64> = MetricsLog::read(&p)
            .unwrap()
            .iter()
            .map(|r| record_get(r, "step").unwrap().as_u64().unwrap())
            .collect();
        assert_eq!(steps, vec![10, 20, 30]);
        // A missing log starts empty.
        let q = base.join("other.jsonl");
        MetricsLog::open_for_resume(&q, 5).unwrap();
        assert_eq!(fs::read_to_string(&q).unwrap(), "");
    }

    #[test]
    fn records_keep_their_key_order() {
        let r = parse_record(r#"{"step": 1, "z": "\"a\": 1", "a": 2, "m": {"a": 3}}"#).unwrap();
        let keys: Vec<&str> = r.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["step", "z", "a", "m"]);
        assert_eq!(record_get(&r, "a"), Some(&Value::from(2)));
        assert!(parse_record("[1]").is_none());
        assert!(parse_record("{\"step\": 1").is_none());
    }

    #[test]
    fn file_names_are_safe() {
        assert_eq!(safe_file_name("cebm_gmm"), "cebm_gmm");
        assert_eq!(safe_file_name("../x y"), "_x_y");
        assert_eq!(safe_file_name(".."), "run");
        assert_eq!(safe_file_name("ü"), "_");
    }
}
