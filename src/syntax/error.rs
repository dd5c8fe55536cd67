//! Syntax errors: one per failed scalar, in human terms (never grammar rule names), with spans in
//! file offsets. Codes are stable (`ebmc::syntax::<what>`): tests and users match on them.
//!
//! When the scalar was quoted or folded (its [`SpanMap`](crate::source::SpanMap) is not exact) every
//! label covers the whole scalar, and the help line says how to get an exact location.

use crate::source::Span;
use miette::Diagnostic;
use thiserror::Error;

/// Appended to the help of every error inside a scalar whose offsets do not map exactly.
pub const INEXACT_NOTE: &str =
    "write the expression as a plain or `|` YAML scalar to get an exact location";

/// A syntax error inside one YAML scalar.
///
/// `context` is what was being parsed, with its article: "an expression", "a network definition".
#[derive(Clone, Debug, Error, Diagnostic, PartialEq)]
pub enum SyntaxError {
    #[error("expected {context}, found an empty value")]
    #[diagnostic(code(ebmc::syntax::empty))]
    Empty {
        context: &'static str,
        #[label("nothing here")]
        span: Span,
        #[help]
        help: Option<String>,
    },

    #[error("unexpected {found} in {context}")]
    #[diagnostic(code(ebmc::syntax::unexpected_token))]
    UnexpectedToken {
        context: &'static str,
        /// The token as it reads in prose: ``name `foo` ``, `` `)` ``.
        found: String,
        /// What would have been accepted, as prose: "an operator, `,` or `)`".
        expected: String,
        #[label("expected {expected}")]
        span: Span,
        #[help]
        help: Option<String>,
    },

    #[error("unexpected end of input in {context}")]
    #[diagnostic(code(ebmc::syntax::unexpected_end))]
    UnexpectedEnd {
        context: &'static str,
        expected: String,
        #[label("expected {expected}")]
        span: Span,
        #[help]
        help: Option<String>,
    },

    #[error("unclosed `{open}` in {context}")]
    #[diagnostic(code(ebmc::syntax::unclosed_delimiter))]
    UnclosedDelimiter {
        context: &'static str,
        open: char,
        close: char,
        #[label("this `{open}` is never closed")]
        open_span: Span,
        #[label("expected `{close}` here")]
        span: Span,
        #[help]
        help: Option<String>,
    },

    #[error("unmatched `{close}` in {context}")]
    #[diagnostic(code(ebmc::syntax::unmatched_delimiter))]
    UnmatchedDelimiter {
        context: &'static str,
        close: char,
        #[label("no `{open}` before it")]
        span: Span,
        open: char,
        #[help]
        help: Option<String>,
    },

    #[error("mismatched `{close}` in {context}")]
    #[diagnostic(code(ebmc::syntax::mismatched_delimiter))]
    MismatchedDelimiter {
        context: &'static str,
        open: char,
        close: char,
        #[label("this `{open}` ...")]
        open_span: Span,
        #[label("... is closed by `{close}`")]
        span: Span,
        #[help]
        help: Option<String>,
    },

    #[error("invalid number `{literal}` in {context}")]
    #[diagnostic(code(ebmc::syntax::invalid_number))]
    InvalidNumber {
        context: &'static str,
        literal: String,
        #[label("not a number")]
        span: Span,
        #[help]
        help: Option<String>,
    },

    #[error("`{found}` is not an operator of ebmc (in {context})")]
    #[diagnostic(code(ebmc::syntax::wrong_operator))]
    WrongOperator {
        context: &'static str,
        found: String,
        #[label("not an ebmc operator")]
        span: Span,
        #[help]
        help: Option<String>,
    },

    #[error("missing `,` in {context}")]
    #[diagnostic(code(ebmc::syntax::missing_comma))]
    MissingComma {
        context: &'static str,
        #[label("expected `,` before this")]
        span: Span,
        #[help]
        help: Option<String>,
    },

    #[error("{context} is nested too deeply")]
    #[diagnostic(code(ebmc::syntax::too_deep))]
    TooDeep {
        context: &'static str,
        #[label("more than {limit} levels of brackets and operators")]
        span: Span,
        limit: usize,
        #[help]
        help: Option<String>,
    },
}

impl SyntaxError {
    /// The primary span (file offsets): where the problem was found.
    pub fn span(&self) -> Span {
        match self {
            SyntaxError::Empty { span, .. }
            | SyntaxError::UnexpectedToken { span, .. }
            | SyntaxError::UnexpectedEnd { span, .. }
            | SyntaxError::UnclosedDelimiter { span, .. }
            | SyntaxError::UnmatchedDelimiter { span, .. }
            | SyntaxError::MismatchedDelimiter { span, .. }
            | SyntaxError::InvalidNumber { span, .. }
            | SyntaxError::WrongOperator { span, .. }
            | SyntaxError::MissingComma { span, .. }
            | SyntaxError::TooDeep { span, .. } => *span,
        }
    }

    /// The stable code, e.g. `ebmc::syntax::unexpected_token`.
    pub fn code_str(&self) -> &'static str {
        match self {
            SyntaxError::Empty { .. } => "ebmc::syntax::empty",
            SyntaxError::UnexpectedToken { .. } => "ebmc::syntax::unexpected_token",
            SyntaxError::UnexpectedEnd { .. } => "ebmc::syntax::unexpected_end",
            SyntaxError::UnclosedDelimiter { .. } => "ebmc::syntax::unclosed_delimiter",
            SyntaxError::UnmatchedDelimiter { .. } => "ebmc::syntax::unmatched_delimiter",
            SyntaxError::MismatchedDelimiter { .. } => "ebmc::syntax::mismatched_delimiter",
            SyntaxError::InvalidNumber { .. } => "ebmc::syntax::invalid_number",
            SyntaxError::WrongOperator { .. } => "ebmc::syntax::wrong_operator",
            SyntaxError::MissingComma { .. } => "ebmc::syntax::missing_comma",
            SyntaxError::TooDeep { .. } => "ebmc::syntax::too_deep",
        }
    }

    /// The help line, if any.
    pub fn help_text(&self) -> Option<&str> {
        match self {
            SyntaxError::Empty { help, .. }
            | SyntaxError::UnexpectedToken { help, .. }
            | SyntaxError::UnexpectedEnd { help, .. }
            | SyntaxError::UnclosedDelimiter { help, .. }
            | SyntaxError::UnmatchedDelimiter { help, .. }
            | SyntaxError::MismatchedDelimiter { help, .. }
            | SyntaxError::InvalidNumber { help, .. }
            | SyntaxError::WrongOperator { help, .. }
            | SyntaxError::MissingComma { help, .. }
            | SyntaxError::TooDeep { help, .. } => help.as_deref(),
        }
    }

    fn help_mut(&mut self) -> &mut Option<String> {
        match self {
            SyntaxError::Empty { help, .. }
            | SyntaxError::UnexpectedToken { help, .. }
            | SyntaxError::UnexpectedEnd { help, .. }
            | SyntaxError::UnclosedDelimiter { help, .. }
            | SyntaxError::UnmatchedDelimiter { help, .. }
            | SyntaxError::MismatchedDelimiter { help, .. }
            | SyntaxError::InvalidNumber { help, .. }
            | SyntaxError::WrongOperator { help, .. }
            | SyntaxError::MissingComma { help, .. }
            | SyntaxError::TooDeep { help, .. } => help,
        }
    }

    /// Adds [`INEXACT_NOTE`] to the help line (for errors inside quoted or folded scalars).
    pub(super) fn inexact(mut self) -> Self {
        let help = self.help_mut();
        *help = Some(match help.take() {
            Some(h) => format!("{h}; {INEXACT_NOTE}"),
            None => INEXACT_NOTE.to_string(),
        });
        self
    }
}
