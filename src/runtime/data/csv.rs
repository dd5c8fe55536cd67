//! Numeric CSV: comma-separated numbers, one example per line, an optional header row.
//!
//! - A first (non-blank) line with any field that is not a number is the header.
//! - A header column named `label`, `target` or `class` (any case, the first such) holds integer
//!   class labels; every other column is a feature. Without a header every column is a feature,
//!   unless the caller says the last column is the label (the embedded digits).
//! - Blank lines are skipped; `\r\n` line ends and a gzipped file are accepted; fields are trimmed
//!   and may be wrapped in double quotes. Values must be finite numbers; labels non-negative
//!   integers (`3` or `3.0`).

use super::error::{DataError, Origin};
use super::idx::gunzip_if_gzipped;
use std::path::Path;

pub(crate) const LABEL_NAMES: [&str; 3] = ["label", "target", "class"];

/// The parsed table: `features` is `rows × width` row-major.
#[derive(Debug)]
pub(crate) struct Table {
    pub features: Vec<f32>,
    pub width: usize,
    pub labels: Option<Vec<u32>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LabelColumn {
    /// From the header (`label`/`target`/`class`); none without a header.
    ByName,
    /// The last column (files without a header, e.g. the UCI digits).
    Last,
}

pub(crate) fn read_csv(path: &Path, origin: Origin) -> Result<Table, DataError> {
    let bytes = DataError::read(path, origin)?;
    let bytes = gunzip_if_gzipped(bytes, path, origin)?;
    parse_csv(&bytes, path, LabelColumn::ByName)
}

fn unquote(field: &str) -> &str {
    let f = field.trim();
    f.strip_prefix('"')
        .and_then(|f| f.strip_suffix('"'))
        .map(str::trim)
        .unwrap_or(f)
}

pub(crate) fn parse_csv(bytes: &[u8], path: &Path, label: LabelColumn) -> Result<Table, DataError> {
    let bad =
        |line: usize, column: usize, name: Option<&String>, problem: String| DataError::BadCsv {
            path: path.to_path_buf(),
            line,
            column,
            name: name.cloned(),
            problem,
            help: None,
        };
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let before = &bytes[..e.valid_up_to()];
            let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
            let start = before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |p| p + 1);
            let column = before[start..].iter().filter(|&&b| b == b',').count() + 1;
            return Err(bad(line, column, None, "the text is not UTF-8".into()));
        }
    };
    let mut lines = text
        .split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
        .filter(|(_, l)| !l.trim().is_empty())
        .peekable();
    let Some(&(first_no, first)) = lines.peek() else {
        return Err(DataError::BadCsv {
            path: path.to_path_buf(),
            line: 1,
            column: 1,
            name: None,
            problem: "the file holds no data".into(),
            help: None,
        });
    };
    let is_header = first.split(',').any(|f| unquote(f).parse::<f64>().is_err());
    let mut names: Option<Vec<String>> = None;
    let width = first.split(',').count();
    let mut label_col = None;
    if is_header {
        let header: Vec<String> = first.split(',').map(|f| unquote(f).to_string()).collect();
        if label == LabelColumn::ByName {
            label_col = header
                .iter()
                .position(|h| LABEL_NAMES.iter().any(|n| h.eq_ignore_ascii_case(n)));
        }
        names = Some(header);
        lines.next();
    } else if label == LabelColumn::Last {
        label_col = Some(width - 1);
    }
    let name_of = |c: usize| names.as_ref().map(|n| &n[c]);
    let mut features = Vec::new();
    let mut labels = label_col.map(|_| Vec::new());
    for (no, line) in lines {
        let mut count = 0;
        for (c, field) in line.split(',').enumerate() {
            count += 1;
            if c >= width {
                continue;
            }
            let f = unquote(field);
            if f.is_empty() {
                return Err(bad(no, c + 1, name_of(c), "empty value".into()));
            }
            if Some(c) == label_col {
                let v: f64 = f.parse().map_err(|_| {
                    bad(
                        no,
                        c + 1,
                        name_of(c),
                        format!("label `{f}` is not a number"),
                    )
                })?;
                if !(v >= 0.0 && v.fract() == 0.0 && v <= u32::MAX as f64) {
                    return Err(bad(
                        no,
                        c + 1,
                        name_of(c),
                        format!("label `{f}` is not a non-negative integer"),
                    ));
                }
                labels.as_mut().expect("label column").push(v as u32);
            } else {
                let v: f32 = f
                    .parse()
                    .map_err(|_| bad(no, c + 1, name_of(c), format!("`{f}` is not a number")))?;
                if !v.is_finite() {
                    return Err(bad(
                        no,
                        c + 1,
                        name_of(c),
                        format!("`{f}` is not a finite number"),
                    ));
                }
                features.push(v);
            }
        }
        if count != width {
            // Too few: the first missing column; too many: the first extra one.
            let column = if count < width { count + 1 } else { width + 1 };
            let like = if is_header {
                "the header"
            } else {
                "the first line"
            };
            return Err(bad(
                no,
                column,
                None,
                format!("expected {width} values (like {like}), found {count}"),
            ));
        }
    }
    let feature_width = width - usize::from(label_col.is_some());
    if feature_width == 0 {
        return Err(DataError::BadCsv {
            path: path.to_path_buf(),
            line: first_no,
            column: 1,
            name: None,
            problem: "there is no feature column, only the label".into(),
            help: None,
        });
    }
    Ok(Table {
        features,
        width: feature_width,
        labels,
    })
}
