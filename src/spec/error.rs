//! Errors in the YAML structure of a spec: YAML syntax, the shape of the document, unknown keys and
//! value kinds. Codes are stable (`ebmc::spec::<what>`): tests and users match on them.
//!
//! Every variant carries a label in file byte offsets; a help line wherever the fix is known.

use crate::source::Span;
use miette::Diagnostic;
use thiserror::Error;

/// An error in the YAML structure of a spec.
#[derive(Clone, Debug, Error, Diagnostic, PartialEq)]
pub enum SpecError {
    /// The YAML scanner or parser gave up (the rest of the file is not loaded).
    #[error("YAML syntax error: {message}")]
    #[diagnostic(code(ebmc::spec::yaml_syntax))]
    YamlSyntax {
        message: String,
        #[label("here")]
        span: Span,
        #[help]
        help: Option<String>,
    },

    /// A tab where YAML only allows spaces (indentation, or after `:`).
    #[error("tab character in the YAML structure")]
    #[diagnostic(code(ebmc::spec::tab))]
    Tab {
        #[label("tab")]
        span: Span,
        #[help]
        help: String,
    },

    /// No document, or a document holding nothing.
    #[error("the spec file is empty")]
    #[diagnostic(
        code(ebmc::spec::empty),
        help("start the file with `ebmc: 1`, then the sections (see docs/spec-reference.md)")
    )]
    Empty {
        #[label("nothing here")]
        span: Span,
    },

    /// The document is a list or a single value instead of `key: value` lines.
    #[error("the spec must be a mapping of sections, found {found}")]
    #[diagnostic(
        code(ebmc::spec::not_a_mapping),
        help("write `key: value` lines at the top level, starting with `ebmc: 1`")
    )]
    NotAMapping {
        found: String,
        #[label("this is {found}")]
        span: Span,
    },

    #[error("a spec is one YAML document, found a second one")]
    #[diagnostic(
        code(ebmc::spec::multiple_documents),
        help("remove this `---` line and what follows it, or move it to its own file")
    )]
    MultipleDocuments {
        #[label("a second document starts here")]
        span: Span,
    },

    #[error("YAML aliases (`*name`) are not supported in specs")]
    #[diagnostic(
        code(ebmc::spec::alias_unsupported),
        help("write the value out in full instead of referring to an anchor")
    )]
    AliasUnsupported {
        #[label("alias")]
        span: Span,
    },

    #[error("YAML tags (`{tag}`) are not supported in specs")]
    #[diagnostic(code(ebmc::spec::tag_unsupported))]
    TagUnsupported {
        tag: String,
        #[label("tagged value")]
        span: Span,
        #[help]
        help: String,
    },

    /// Collections nested deeper than any spec needs (guards the stack).
    #[error("the YAML is nested more than {limit} levels deep")]
    #[diagnostic(
        code(ebmc::spec::too_deep),
        help("a spec needs at most a few levels of nesting; check the brackets and indentation")
    )]
    TooDeep {
        limit: usize,
        #[label("too deep here")]
        span: Span,
    },

    #[error("key `{key}` appears twice")]
    #[diagnostic(
        code(ebmc::spec::duplicate_key),
        help("remove or rename one of the two")
    )]
    DuplicateKey {
        key: String,
        #[label("first here")]
        first: Span,
        #[label("again here")]
        second: Span,
    },

    #[error("unknown key `{key}`")]
    #[diagnostic(code(ebmc::spec::unknown_key))]
    UnknownKey {
        key: String,
        #[label("not a field here")]
        span: Span,
        #[help]
        help: Option<String>,
    },

    /// A mapping key that is not a plain name (a list, a mapping, or nothing).
    #[error("expected a key name, found {found}")]
    #[diagnostic(
        code(ebmc::spec::expected_key),
        help("keys are names: write `name: value`")
    )]
    ExpectedKey {
        found: String,
        #[label("not a key name")]
        span: Span,
    },

    /// A value of the wrong kind: "expected an integer, found a string".
    #[error("expected {expected}, found {found}")]
    #[diagnostic(code(ebmc::spec::wrong_type))]
    WrongType {
        expected: String,
        found: String,
        #[label("expected {expected}")]
        span: Span,
        #[help]
        help: Option<String>,
    },

    /// A number of the right kind that does not fit (an integer beyond 64 bits, an infinite weight).
    #[error("{message}")]
    #[diagnostic(code(ebmc::spec::out_of_range))]
    OutOfRange {
        message: String,
        #[label("out of range")]
        span: Span,
        #[help]
        help: Option<String>,
    },

    /// A key written without a value (`prior:`), or `null`, where a value is needed.
    #[error("{what} has no value")]
    #[diagnostic(code(ebmc::spec::empty_value))]
    EmptyValue {
        /// "`prior`", or "this list item".
        what: String,
        #[label("no value")]
        span: Span,
        #[help]
        help: Option<String>,
    },

    #[error("the spec does not say its format version")]
    #[diagnostic(code(ebmc::spec::missing_version), help("add `ebmc: 1` at the top"))]
    MissingVersion {
        #[label("the spec starts here")]
        span: Span,
    },

    #[error("unsupported spec format version {version}")]
    #[diagnostic(
        code(ebmc::spec::unsupported_version),
        help("this ebmc reads format version 1: write `ebmc: 1`")
    )]
    UnsupportedVersion {
        version: i64,
        #[label("version {version}")]
        span: Span,
    },

    /// A user name (variable, network, parameter, optimizer key) that is not an identifier.
    #[error("`{name}` is not a valid name")]
    #[diagnostic(code(ebmc::spec::invalid_name))]
    InvalidName {
        name: String,
        #[label("names are identifiers")]
        span: Span,
        #[help]
        help: String,
    },

    /// YAML split one item of a `[...]` (or `{...}`) at the commas between its parentheses.
    #[error("YAML split this item at its commas")]
    #[diagnostic(code(ebmc::spec::split_flow_item))]
    SplitFlowItem {
        #[label("one item with commas inside `(...)`")]
        span: Span,
        #[help]
        help: String,
    },
}

impl SpecError {
    /// The primary span of the error (the first label).
    pub fn span(&self) -> Span {
        match self {
            SpecError::YamlSyntax { span, .. }
            | SpecError::Tab { span, .. }
            | SpecError::Empty { span }
            | SpecError::NotAMapping { span, .. }
            | SpecError::MultipleDocuments { span }
            | SpecError::AliasUnsupported { span }
            | SpecError::TagUnsupported { span, .. }
            | SpecError::TooDeep { span, .. }
            | SpecError::UnknownKey { span, .. }
            | SpecError::ExpectedKey { span, .. }
            | SpecError::WrongType { span, .. }
            | SpecError::OutOfRange { span, .. }
            | SpecError::EmptyValue { span, .. }
            | SpecError::MissingVersion { span }
            | SpecError::UnsupportedVersion { span, .. }
            | SpecError::InvalidName { span, .. }
            | SpecError::SplitFlowItem { span, .. } => *span,
            SpecError::DuplicateKey { second, .. } => *second,
        }
    }
}
