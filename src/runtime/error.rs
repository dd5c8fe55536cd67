//! Errors of the runtime (codes `ebmc::run::<what>`): what went wrong while building, executing or
//! training a compiled program. Unlike the compile stages, these have no span into the spec: they
//! name the quantity, the step, the file or the tensor instead.

use miette::Diagnostic;
use thiserror::Error;

/// An error while running a compiled program.
#[derive(Clone, Debug, Error, Diagnostic, PartialEq)]
pub enum RuntimeError {
    /// candle refused an operation (shape, dtype, device, out of memory, ...).
    #[error("{context}: {message}")]
    #[diagnostic(
        code(ebmc::run::candle),
        help(
            "this is a tensor-library error; if the spec checked without errors, it is probably an ebmc bug: please report it with the spec"
        )
    )]
    Candle { context: String, message: String },

    /// A monitored quantity became NaN or infinite (or exploded).
    #[error("{quantity} diverged at step {step} (value {value})")]
    #[diagnostic(
        code(ebmc::run::diverged),
        help("lower the learning rate or the step size; the last good checkpoint is kept")
    )]
    Diverged {
        quantity: String,
        step: usize,
        value: String,
    },

    /// Reading or writing a file failed.
    #[error("{path}: {message}")]
    #[diagnostic(
        code(ebmc::run::io),
        help(
            "check that the path exists and is readable (or writable), and that the disk is not full"
        )
    )]
    Io { path: String, message: String },

    /// The executor was asked for a function the program does not define (an internal error: the
    /// learning plan only names functions the compiler emitted).
    #[error("internal error: the program has no function `{name}`")]
    #[diagnostic(
        code(ebmc::run::no_function),
        help("this is an ebmc bug, please report it with the spec")
    )]
    NoFunction { name: String },

    /// A function was called with a missing or misshapen argument (an internal error).
    #[error("internal error: function `{function}`, argument `{input}`: {message}")]
    #[diagnostic(
        code(ebmc::run::bad_input),
        help("this is an ebmc bug, please report it with the spec")
    )]
    BadInput {
        function: String,
        input: String,
        message: String,
    },

    /// The requested device is not available in this build or on this machine.
    #[error("device `{requested}` is not available")]
    #[diagnostic(code(ebmc::run::device_unavailable))]
    DeviceUnavailable {
        requested: String,
        #[help]
        help: String,
    },

    /// Stored parameter values do not fit the program (a checkpoint of another spec).
    #[error("parameter `{path}`: {message}")]
    #[diagnostic(
        code(ebmc::run::param_mismatch),
        help(
            "the checkpoint was written for a different spec (or a different version of it); start a fresh run or restore the spec it was written with"
        )
    )]
    ParamMismatch { path: String, message: String },

    /// A feature the runtime does not have yet (an algorithm or evaluation still to come).
    #[error("{what} is not supported by this version of ebmc")]
    #[diagnostic(
        code(ebmc::run::unsupported),
        help("`ebmc check` and `ebmc ir` accept the spec; running it needs a later ebmc")
    )]
    Unsupported { what: String },

    /// contrastive_divergence on an energy whose latent the compiler could not integrate out.
    #[error(
        "contrastive_divergence cannot train this spec: the energy depends on the latent and no \
         closed-form marginal energy E(x) was derived ({reason}), so SGLD has no energy of the \
         data alone to sample"
    )]
    #[diagnostic(
        code(ebmc::run::no_marginal_energy),
        help(
            "write the energy in a conjugate form in the latent (docs/conjugacy.md lists them); \
             `ebmc ir` shows the compiler's note and the plan"
        )
    )]
    NoMarginalEnergy { reason: String },

    /// Saved state (RNG, optimizer) could not be decoded.
    #[error("corrupt {what}: {message}")]
    #[diagnostic(
        code(ebmc::run::corrupt_state),
        help(
            "the checkpoint is damaged or was written by another version of ebmc; start a fresh run"
        )
    )]
    CorruptState { what: String, message: String },
}

pub type Result<T> = std::result::Result<T, RuntimeError>;

impl RuntimeError {
    /// A candle error, with what ebmc was doing. Only the first line of candle's message is kept
    /// (candle appends a backtrace when `RUST_BACKTRACE` is set).
    pub fn candle(context: impl Into<String>, err: &candle_core::Error) -> Self {
        RuntimeError::Candle {
            context: context.into(),
            message: first_line(&err.to_string()),
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<std::path::Path>, err: &std::io::Error) -> Self {
        RuntimeError::Io {
            path: path.as_ref().display().to_string(),
            message: first_line(&err.to_string()),
        }
    }

    /// The stable code (`ebmc::run::...`), for tests and machine-readable reports.
    pub fn code_str(&self) -> String {
        self.code().map(|c| c.to_string()).unwrap_or_default()
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim_end().to_string()
}

/// Wraps a candle error with what ebmc was doing: `t.matmul(&w).ctx("evaluating prior_grad")?`.
pub trait Context<T> {
    fn ctx(self, context: &str) -> Result<T>;
    /// As [`Context::ctx`], with the context built only on error.
    fn with_ctx<S: Into<String>>(self, context: impl FnOnce() -> S) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, candle_core::Error> {
    fn ctx(self, context: &str) -> Result<T> {
        self.map_err(|e| RuntimeError::candle(context, &e))
    }

    fn with_ctx<S: Into<String>>(self, context: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| RuntimeError::candle(context(), &e))
    }
}

impl<T> Context<T> for std::result::Result<T, std::io::Error> {
    fn ctx(self, path: &str) -> Result<T> {
        self.map_err(|e| RuntimeError::io(path, &e))
    }

    fn with_ctx<S: Into<String>>(self, path: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| RuntimeError::io(path().into(), &e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candle_errors_keep_only_the_first_line() {
        let dev = candle_core::Device::Cpu;
        let a = candle_core::Tensor::zeros((2, 3), candle_core::DType::F32, &dev).unwrap();
        let b = candle_core::Tensor::zeros((4, 5), candle_core::DType::F32, &dev).unwrap();
        let err = a.matmul(&b).ctx("evaluating prior_grad").unwrap_err();
        let RuntimeError::Candle { context, message } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(context, "evaluating prior_grad");
        assert!(!message.contains('\n'));
        assert!(!message.is_empty());
        assert_eq!(err.code_str(), "ebmc::run::candle");
        assert!(err.to_string().starts_with("evaluating prior_grad: "));
    }

    #[test]
    fn codes_and_help() {
        let e = RuntimeError::Diverged {
            quantity: "prior energy".into(),
            step: 12,
            value: "NaN".into(),
        };
        assert_eq!(e.code_str(), "ebmc::run::diverged");
        assert_eq!(
            e.help().unwrap().to_string(),
            "lower the learning rate or the step size; the last good checkpoint is kept"
        );
        assert_eq!(
            e.to_string(),
            "prior energy diverged at step 12 (value NaN)"
        );
        let e = RuntimeError::DeviceUnavailable {
            requested: "cuda".into(),
            help: "rebuild with `--features cuda`".into(),
        };
        assert_eq!(
            e.help().unwrap().to_string(),
            "rebuild with `--features cuda`"
        );
        let io = std::fs::read("/nonexistent/ebmc/file")
            .ctx("/nonexistent/ebmc/file")
            .unwrap_err();
        assert_eq!(io.code_str(), "ebmc::run::io");
    }
}
