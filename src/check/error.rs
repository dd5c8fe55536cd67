//! Every error the checker reports. The wording lives here, once; call sites only fill in fields.
//! Codes are stable: tests and users match on them.

use crate::source::Span;
use crate::syntax::SyntaxError;
use miette::{Diagnostic, LabeledSpan};
use thiserror::Error;

/// A secondary label: the other side of a disagreement (a declaration, a definition).
pub(crate) fn related(span: Span, text: impl Into<String>) -> LabeledSpan {
    LabeledSpan::new_with_span(Some(text.into()), span)
}

#[derive(Clone, Debug, Error, Diagnostic, PartialEq)]
pub enum CheckError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Syntax(#[from] SyntaxError),

    #[error("unknown name `{name}`")]
    #[diagnostic(code(ebmc::check::unknown_name))]
    UnknownName {
        name: String,
        #[label("not a variable, parameter or network of this spec")]
        span: Span,
        #[help]
        help: Option<String>,
    },

    #[error("unknown function `{name}`")]
    #[diagnostic(code(ebmc::check::unknown_function))]
    UnknownFunction {
        name: String,
        #[label("not a network of this spec nor a built-in function")]
        span: Span,
        #[help]
        help: Option<String>,
    },

    #[error("`{name}` is declared twice")]
    #[diagnostic(
        code(ebmc::check::duplicate_name),
        help("variables, parameters and networks share one namespace: rename one of them")
    )]
    DuplicateName {
        name: String,
        #[label("first declared here")]
        first: Span,
        #[label("declared again here")]
        second: Span,
    },

    #[error("`{name}` is a reserved word")]
    #[diagnostic(
        code(ebmc::check::reserved_name),
        help("pick another name; `{name}` means something built in")
    )]
    ReservedName {
        name: String,
        #[label("reserved")]
        span: Span,
    },

    #[error("shape mismatch in {context}: {left} and {right}")]
    #[diagnostic(code(ebmc::check::shape_mismatch))]
    ShapeMismatch {
        context: String,
        left: String,
        #[label("this has shape {left}")]
        left_span: Span,
        right: String,
        #[label("this has shape {right}")]
        right_span: Span,
        #[help]
        help: Option<String>,
    },

    #[error("{what} has shape {found}, expected {expected}")]
    #[diagnostic(code(ebmc::check::wrong_shape))]
    WrongShape {
        what: String,
        expected: String,
        found: String,
        #[label("shape {found}")]
        span: Span,
        /// Where the expected shape comes from (e.g. a network's input declaration).
        #[label(collection)]
        related: Vec<LabeledSpan>,
        #[help]
        help: Option<String>,
    },

    #[error("discrete variable `{name}` used as a continuous value")]
    #[diagnostic(
        code(ebmc::check::discrete_as_continuous),
        help(
            "a onehot variable can only be coupled with `dot({name}, ...)`, used as an index (`mu[{name}]`), \
             summed out (`logsumexp(..., {name})`) or be the subject of `categorical({name} | p)`"
        )
    )]
    DiscreteAsContinuous {
        name: String,
        #[label("used as a continuous value here")]
        span: Span,
        #[label("declared discrete here")]
        declared: Span,
    },

    #[error("`{name}` must be a discrete (onehot) variable here")]
    #[diagnostic(code(ebmc::check::expected_discrete))]
    ExpectedDiscrete {
        name: String,
        #[label("{found}")]
        span: Span,
        found: String,
        #[help]
        help: Option<String>,
    },

    #[error("`{callee}` takes {expected}, found {found}")]
    #[diagnostic(code(ebmc::check::wrong_arity))]
    WrongArity {
        callee: String,
        expected: String,
        found: usize,
        #[label("called here")]
        span: Span,
        #[help]
        help: Option<String>,
    },

    #[error("`{callee}` has no argument `{name}`")]
    #[diagnostic(code(ebmc::check::unknown_argument))]
    UnknownArgument {
        callee: String,
        name: String,
        #[label("unknown argument")]
        span: Span,
        #[help]
        help: Option<String>,
    },

    #[error("`{callee}` needs the argument `{name}`")]
    #[diagnostic(code(ebmc::check::missing_argument))]
    MissingArgument {
        callee: String,
        name: String,
        #[label("`{name}` missing here")]
        span: Span,
        #[help]
        help: Option<String>,
    },

    #[error("argument `{name}` of `{callee}` is given twice")]
    #[diagnostic(code(ebmc::check::duplicate_argument), help("remove one of them"))]
    DuplicateArgument {
        callee: String,
        name: String,
        #[label("first here")]
        first: Span,
        #[label("again here")]
        second: Span,
    },

    #[error("`{callee}` takes its arguments by name")]
    #[diagnostic(code(ebmc::check::positional_argument))]
    PositionalArgument {
        callee: String,
        #[label("positional argument")]
        span: Span,
        #[help]
        help: Option<String>,
    },

    #[error("{what}: expected {expected}")]
    #[diagnostic(code(ebmc::check::invalid_value))]
    InvalidValue {
        what: String,
        expected: String,
        #[label("{found}")]
        span: Span,
        found: String,
        #[help]
        help: Option<String>,
    },

    #[error("the step size of `{sampler}` must be a positive finite number, found {value}")]
    #[diagnostic(code(ebmc::check::bad_step_size))]
    BadStepSize {
        sampler: String,
        value: String,
        #[label("step size {value}")]
        span: Span,
        #[help]
        help: Option<String>,
    },

    #[error("unknown type `{name}`")]
    #[diagnostic(code(ebmc::check::unknown_type))]
    UnknownType {
        name: String,
        #[label("not a type")]
        span: Span,
        #[help]
        help: Option<String>,
    },

    #[error("invalid declaration of `{name}`: {reason}")]
    #[diagnostic(code(ebmc::check::invalid_declaration))]
    InvalidDeclaration {
        name: String,
        reason: String,
        #[label("{label}")]
        span: Span,
        /// What is wrong at `span`, in a few words.
        label: String,
        #[help]
        help: Option<String>,
    },

    #[error("latent variable `{name}` has no reference density")]
    #[diagnostic(code(ebmc::check::missing_reference))]
    MissingReference {
        name: String,
        #[label("add `~ normal(0, 1)` after the type")]
        span: Span,
        #[help]
        help: Option<String>,
    },

    #[error("invalid network `{name}`: {reason}")]
    #[diagnostic(code(ebmc::check::invalid_network))]
    InvalidNetwork {
        name: String,
        reason: String,
        #[label("{label}")]
        span: Span,
        /// What is wrong at `span`, in a few words.
        label: String,
        /// The other side of the disagreement (e.g. the input variable's declaration).
        #[label(collection)]
        related: Vec<LabeledSpan>,
        #[help]
        help: Option<String>,
    },

    #[error("unknown layer `{layer}`")]
    #[diagnostic(code(ebmc::check::unknown_layer))]
    UnknownLayer {
        layer: String,
        #[label("not a layer")]
        span: Span,
        #[help]
        help: Option<String>,
    },

    #[error("unknown activation `{name}`")]
    #[diagnostic(code(ebmc::check::unknown_activation))]
    UnknownActivation {
        name: String,
        #[label("not an activation")]
        span: Span,
        #[help]
        help: Option<String>,
    },

    #[error("a transposed convolution cannot go from size {from} to size {to}")]
    #[diagnostic(
        code(ebmc::check::deconv_size),
        help(
            "each `deconv` step must go from 1 to n (kernel n), from n to 2n (kernel 4, stride 2) or keep n (kernel 3)"
        )
    )]
    DeconvSize {
        from: usize,
        to: usize,
        #[label("{from} → {to}")]
        span: Span,
    },

    #[error("`{name}` is an encoder; it can only be named as `model.inference`")]
    #[diagnostic(
        code(ebmc::check::encoder_in_expression),
        help(
            "an encoder outputs a distribution over `{latent}`, not a value; use `model.inference: {name}`"
        )
    )]
    EncoderInExpression {
        name: String,
        latent: String,
        #[label("encoder called here")]
        span: Span,
    },

    #[error("{what}")]
    #[diagnostic(code(ebmc::check::not_a_density))]
    NotADensity {
        what: String,
        #[label("{label}")]
        span: Span,
        label: String,
        #[help]
        help: Option<String>,
    },

    #[error("the {term} must not depend on the observed variable `{var}`")]
    #[diagnostic(code(ebmc::check::depends_on_observed))]
    DependsOnObserved {
        term: String,
        var: String,
        #[label("`{var}` used here")]
        span: Span,
        #[help]
        help: Option<String>,
    },

    #[error("unknown algorithm `{name}`")]
    #[diagnostic(code(ebmc::check::unknown_algorithm))]
    UnknownAlgorithm {
        name: String,
        #[label("not an algorithm")]
        span: Span,
        #[help]
        help: Option<String>,
    },

    #[error("`{field}` is required")]
    #[diagnostic(code(ebmc::check::missing_field))]
    MissingField {
        field: String,
        #[label("`{field}` missing in this section")]
        span: Span,
        #[help]
        help: Option<String>,
    },

    #[error("{algorithm} needs {what}")]
    #[diagnostic(code(ebmc::check::missing_requirement))]
    MissingRequirement {
        algorithm: String,
        what: String,
        #[label("{algorithm} chosen here")]
        span: Span,
        #[help]
        help: Option<String>,
    },

    #[error("`{field}` is not used by {algorithm}")]
    #[diagnostic(code(ebmc::check::unused_by_algorithm))]
    UnusedByAlgorithm {
        field: String,
        algorithm: String,
        #[label("ignored by {algorithm}")]
        span: Span,
        #[label("algorithm chosen here")]
        algorithm_span: Span,
        #[help]
        help: Option<String>,
    },

    #[error("no optimizer for `{name}`")]
    #[diagnostic(code(ebmc::check::missing_optimizer))]
    MissingOptimizer {
        name: String,
        #[label("`{name}` is learned but no optimizer updates it")]
        span: Span,
        #[help]
        help: Option<String>,
    },

    #[error("`{name}` in `learn.optimizers` is not a network or parameter")]
    #[diagnostic(code(ebmc::check::unknown_optimizer_target))]
    UnknownOptimizerTarget {
        name: String,
        #[label("nothing to optimize by this name")]
        span: Span,
        #[help]
        help: Option<String>,
    },

    #[error("unknown {what} `{name}`")]
    #[diagnostic(code(ebmc::check::unknown_call))]
    UnknownCall {
        what: String,
        name: String,
        #[label("not a known {what}")]
        span: Span,
        #[help]
        help: Option<String>,
    },

    #[error("unknown data source `{name}`")]
    #[diagnostic(code(ebmc::check::unknown_data))]
    UnknownData {
        name: String,
        #[label("not a built-in data set or reader")]
        span: Span,
        #[help]
        help: Option<String>,
    },

    #[error("the data are {data}, but `{var}` is declared {declared}")]
    #[diagnostic(code(ebmc::check::data_shape_mismatch))]
    DataShapeMismatch {
        var: String,
        data: String,
        declared: String,
        #[label("declared {declared}")]
        decl_span: Span,
        #[label("{data}")]
        data_span: Option<Span>,
        #[help]
        help: Option<String>,
    },

    #[error("{what}")]
    #[diagnostic(code(ebmc::check::observed_variables))]
    ObservedVariables {
        what: String,
        #[label("{label}")]
        span: Span,
        label: String,
        #[help]
        help: Option<String>,
    },

    #[error("{what} must be a constant {expected}")]
    #[diagnostic(code(ebmc::check::not_constant))]
    NotConstant {
        what: String,
        expected: String,
        #[label("not a constant {expected}")]
        span: Span,
    },

    #[error("{evaluation} needs {what}")]
    #[diagnostic(code(ebmc::check::evaluation_unsupported))]
    EvaluationUnsupported {
        evaluation: String,
        what: String,
        #[label("asked for here")]
        span: Span,
        #[help]
        help: Option<String>,
    },
}
