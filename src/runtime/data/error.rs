//! Errors of the data module: every one names the file or data set and says how to fix it.

use miette::Diagnostic;
use std::path::PathBuf;
use thiserror::Error;

/// What can go wrong loading data. Codes are `ebmc::data::<what>`.
#[derive(Debug, Error, Diagnostic)]
pub enum DataError {
    #[error("data file `{}` not found", path.display())]
    #[diagnostic(code(ebmc::data::missing_file))]
    MissingFile {
        path: PathBuf,
        #[help]
        help: String,
    },

    #[error("data file `{}` is corrupt: {problem}", path.display())]
    #[diagnostic(code(ebmc::data::corrupt))]
    Corrupt {
        path: PathBuf,
        problem: String,
        #[help]
        help: String,
    },

    #[error("`{}`, line {line}, column {column}{}: {problem}", path.display(), column_name(.name))]
    #[diagnostic(code(ebmc::data::bad_csv))]
    BadCsv {
        path: PathBuf,
        /// 1-based line of the file.
        line: usize,
        /// 1-based field of the line.
        column: usize,
        /// The header's name for the column, when there is a header.
        name: Option<String>,
        problem: String,
        #[help]
        help: Option<String>,
    },

    #[error("cannot read `{}` as a .npy array: {problem}", path.display())]
    #[diagnostic(code(ebmc::data::bad_npy))]
    BadNpy {
        path: PathBuf,
        problem: String,
        #[help]
        help: Option<String>,
    },

    #[error("{what} expects examples of shape {}, but `{data}` has examples of shape {}", fmt_shape(.expected), fmt_shape(.found))]
    #[diagnostic(code(ebmc::data::shape_mismatch))]
    ShapeMismatch {
        /// e.g. "the observed variable `x` (declared [1, 28, 28])" or "the training data".
        what: String,
        expected: Vec<usize>,
        data: String,
        found: Vec<usize>,
        #[help]
        help: String,
    },

    #[error(
        "class {class} of `{data}` has {available} example(s), fewer than the {needed} per class asked for"
    )]
    #[diagnostic(code(ebmc::data::too_few_labels))]
    TooFewLabels {
        data: String,
        class: u32,
        available: usize,
        needed: usize,
        #[help]
        help: String,
    },

    #[error("`{data}` has no labels")]
    #[diagnostic(code(ebmc::data::no_labels))]
    NoLabels {
        data: String,
        #[help]
        help: String,
    },

    #[error("class {class} does not exist in `{data}`, whose classes are 0 to {}", .classes.saturating_sub(1))]
    #[diagnostic(code(ebmc::data::no_such_class))]
    NoSuchClass {
        data: String,
        class: u32,
        classes: usize,
    },

    #[error("cannot read `{}`: {source}", path.display())]
    #[diagnostic(code(ebmc::data::io))]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn column_name(name: &Option<String>) -> String {
    match name {
        Some(n) => format!(" (`{n}`)"),
        None => String::new(),
    }
}

/// `[1, 28, 28]`.
pub(crate) fn fmt_shape(dims: &[usize]) -> String {
    let parts: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

/// Who put a file where it is: decides the advice an error gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Fetched by `scripts/setup-data.sh` (MNIST, Fashion-MNIST).
    Setup,
    /// Named by the spec (`idx:`, `csv:`, `npy:`).
    User,
}

pub(crate) const SETUP_HINT: &str =
    "run `scripts/setup-data.sh` (fetches MNIST and Fashion-MNIST into `data/`)";

impl DataError {
    pub(crate) fn missing(path: PathBuf, origin: Origin) -> Self {
        let help = match origin {
            Origin::Setup => SETUP_HINT.to_string(),
            Origin::User => {
                "check the path in `data.train`/`data.test`; a relative path is taken from the \
                 directory ebmc runs in"
                    .to_string()
            }
        };
        DataError::MissingFile { path, help }
    }

    pub(crate) fn corrupt(path: PathBuf, problem: impl Into<String>, origin: Origin) -> Self {
        let help = match origin {
            Origin::Setup => format!(
                "delete `{}` and re-run `scripts/setup-data.sh`",
                path.display()
            ),
            Origin::User => "an idx file is a big-endian header (magic 0x00 0x00 TYPE NDIM, then \
                             NDIM u32 sizes) followed by exactly the data it announces"
                .to_string(),
        };
        DataError::Corrupt {
            path,
            problem: problem.into(),
            help,
        }
    }

    /// Reads a file, mapping "not found" to [`DataError::MissingFile`].
    pub(crate) fn read(path: &std::path::Path, origin: Origin) -> Result<Vec<u8>, DataError> {
        std::fs::read(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => DataError::missing(path.to_path_buf(), origin),
            _ => DataError::Io {
                path: path.to_path_buf(),
                source: e,
            },
        })
    }
}
