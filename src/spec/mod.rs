//! YAML → [`SpecDoc`]: the spec file loaded into typed sections where every scalar keeps its exact
//! byte span. Unknown keys are errors with a "did you mean" help; the field list is also the source of
//! the JSON Schema (`ebmc schema`) and of `docs/spec-reference.md`.
//!
//! This stage knows YAML and the shape of the spec format; it does not parse the expression language
//! (the checker does, through `syntax`).

use crate::source::{Span, SpanMap};

mod error;
mod load;
pub mod overrides;
mod schema;
#[cfg(test)]
mod tests;
mod yaml;

pub use error::SpecError;
use schema::spec_struct;
pub use schema::{
    FieldDefault, FieldDoc, FieldKind, NAME_PATTERN, json_schema, reference_markdown,
};

/// A value with the span of its YAML scalar.
#[derive(Clone, Debug, PartialEq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

/// A YAML scalar that holds grammar text (an expression, a declaration, a network, a call).
#[derive(Clone, Debug, PartialEq)]
pub struct Text {
    pub value: String,
    /// The whole scalar in the file (for a quoted scalar, including the quotes).
    pub span: Span,
    /// Value offsets → file offsets: exact for plain and `|` scalars, `Whole` otherwise.
    pub map: SpanMap,
}

/// One entry of a mapping whose keys are user names (variables, networks, optimizers).
#[derive(Clone, Debug, PartialEq)]
pub struct Entry<T> {
    pub key: Spanned<String>,
    pub value: T,
}

/// A mapping of user names, in file order. `key` is the span of the section's own key
/// (`networks:`), `None` when the section is absent (then `entries` is empty).
#[derive(Clone, Debug, PartialEq)]
pub struct NameMap<T> {
    pub key: Option<Span>,
    pub entries: Vec<Entry<T>>,
}

impl<T> Default for NameMap<T> {
    fn default() -> Self {
        NameMap {
            key: None,
            entries: Vec::new(),
        }
    }
}

impl<T> NameMap<T> {
    pub fn get(&self, name: &str) -> Option<&Entry<T>> {
        self.entries.iter().find(|e| e.key.value == name)
    }
}

// Each field: `pub NAME: TYPE => KIND, DEFAULT, "one-line doc" [, &[CHOICES]];` (see `spec_struct!`).

spec_struct! {
    /// The whole spec.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct SpecDoc {
        /// `ebmc: 1`, the format version (required).
        pub ebmc: Option<Spanned<i64>>
            => FieldKind::Integer, FieldDefault::Required,
            "The spec format version; must be `1`.", &["1"];
        /// The model's name; defaults to the file stem.
        pub name: Option<Spanned<String>>
            => FieldKind::String, FieldDefault::Note("the file stem"),
            "The model's name.";
        pub description: Option<Spanned<String>>
            => FieldKind::String, FieldDefault::Note("none"),
            "A free-text description of the model.";
        pub data: DataSection
            => FieldKind::Section(DataSection::FIELDS), FieldDefault::Note("all defaults"),
            "Where the training and test data come from.";
        pub variables: NameMap<Text>
            => FieldKind::Map(&FieldKind::Declaration), FieldDefault::Note("none"),
            "The model's variables: `name: [observed] TYPE [in [LO, HI]] [~ DISTRIBUTION]`.";
        pub parameters: NameMap<Text>
            => FieldKind::Map(&FieldKind::Declaration), FieldDefault::Note("none"),
            "Learned tensors used directly in expressions: `name: real[D1, ...] [= INIT]`.";
        pub networks: NameMap<Text>
            => FieldKind::Map(&FieldKind::Network), FieldDefault::Note("none"),
            "Neural networks: `name: STAGE -> STAGE -> ...`, e.g. `f: mlp(z -> 200 -> 1)`.";
        pub model: ModelSection
            => FieldKind::Section(ModelSection::FIELDS), FieldDefault::Note("none"),
            "The model: its prior, likelihood or energy, and inference network.";
        pub learn: LearnSection
            => FieldKind::Section(LearnSection::FIELDS), FieldDefault::Required,
            "How the model is trained.";
        pub evaluate: TextList
            => FieldKind::List(&FieldKind::Call), FieldDefault::Note("empty (no evaluations)"),
            "Evaluations run after training, e.g. `[samples(64), reconstruction_mse]`.";
    }
}

spec_struct! {
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct DataSection [key "Span of the `data:` key, `None` when the section is absent."] {
        /// `digits` (default), `mnist`, `fashion-mnist`, each with an optional `:train`/`:test`,
        /// or `idx:PATH`, `csv:PATH`, `npy:PATH`.
        pub train: Option<Spanned<String>>
            => FieldKind::String, FieldDefault::Value("digits"),
            "The training data: `digits`, `mnist` or `fashion-mnist`, each with an optional \
             `:train`/`:test`, or `idx:PATH`, `csv:PATH`, `npy:PATH`.";
        pub test: Option<Spanned<String>>
            => FieldKind::String,
            FieldDefault::Note(
                "the test split of the `train` source; for `digits` a fixed seeded 80/20 split"
            ),
            "The test data, in the same forms as `train`.";
        /// Keep this many labels per class (seeded choice); the rest is unlabelled.
        pub labels_per_class: Option<Spanned<i64>>
            => FieldKind::Integer, FieldDefault::Note("all"),
            "Keep this many labels per class (a seeded choice); the other examples are unlabelled.";
        /// Seed of the labelled subset and of data splits.
        pub seed: Option<Spanned<i64>>
            => FieldKind::Integer, FieldDefault::Value("0"),
            "Seed of the labelled subset and of data splits.";
    }
}

spec_struct! {
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct ModelSection [key "Span of the `model:` key, `None` when the section is absent."] {
        pub prior: Option<Text>
            => FieldKind::Expression, FieldDefault::Note("none: the plain reference density p0"),
            "Log-tilt f of the latent prior, `p(z) ∝ exp(prior) p0(z)` (a log-density: higher is \
             more likely).";
        pub likelihood: Option<Text>
            => FieldKind::Expression, FieldDefault::Note("none"),
            "Log-density of the observed variable given the latents, e.g. `normal(x | g(z), 0.3)`.";
        pub energy: Option<Text>
            => FieldKind::Expression, FieldDefault::Note("none"),
            "Joint energy E(x, z) of a conjugate (or any) EBM (lower is more likely).";
        pub inference: Option<Text>
            => FieldKind::Name, FieldDefault::Note("none"),
            "The name of an `encoder` network q(z | x) used for amortized inference.";
    }
}

/// The default of the samplers.
const SAMPLER_DEFAULT: FieldDefault = FieldDefault::Note(
    "none; required by some algorithms (see the algorithm table in spec-language.md)",
);

spec_struct! {
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct LearnSection [key "Span of the `learn:` key, `None` when the section is absent."] {
        pub algorithm: Option<Spanned<String>>
            => FieldKind::String, FieldDefault::Required,
            "The learning algorithm; what each needs is in the algorithm table of spec-language.md.",
            &["short_run_mle", "amortized_ssl", "contrastive_divergence"];
        pub iterations: Option<Spanned<i64>>
            => FieldKind::Integer, FieldDefault::Value("1000"),
            "Number of training iterations (parameter updates).";
        pub batch: Option<Spanned<i64>>
            => FieldKind::Integer, FieldDefault::Value("100"),
            "Examples per minibatch.";
        pub seed: Option<Spanned<i64>>
            => FieldKind::Integer, FieldDefault::Value("0"),
            "Seed of initialisation, minibatch order and sampling.";
        pub prior_sampler: Option<Text>
            => FieldKind::Call, SAMPLER_DEFAULT,
            "Sampler of the latent prior, e.g. `langevin(steps = 60, step_size = 0.4)`.";
        pub posterior_sampler: Option<Text>
            => FieldKind::Call, SAMPLER_DEFAULT,
            "Sampler of the latent posterior given an example, e.g. \
             `langevin(steps = 20, step_size = 0.1)`.";
        pub sampler: Option<Text>
            => FieldKind::Call, SAMPLER_DEFAULT,
            "Data-space sampler (`contrastive_divergence`), e.g. `sgld(steps = 60)`.";
        pub optimizers: NameMap<Text>
            => FieldKind::Map(&FieldKind::Call),
            FieldDefault::Note("required for every learned network and parameter"),
            "Optimizer per network or parameter, e.g. `f: adam(lr = 1e-4)`; the key `default` \
             applies to every learnable thing not listed.";
        pub labeled_weight: Option<Spanned<f64>>
            => FieldKind::Number, FieldDefault::Value("1.0"),
            "Weight of the labelled-data term (`amortized_ssl` only).";
        pub mi_weight: Option<Spanned<f64>>
            => FieldKind::Number, FieldDefault::Value("0.0"),
            "Weight of the mutual-information term (`amortized_ssl` only).";
        pub data_noise: Option<Spanned<f64>>
            => FieldKind::Number, FieldDefault::Value("0.03"),
            "Standard deviation of the noise added to data examples (`contrastive_divergence` only).";
        pub energy_reg: Option<Spanned<f64>>
            => FieldKind::Number, FieldDefault::Value("5e-3"),
            "Weight of the penalty on squared energies of data and samples \
             (`contrastive_divergence` only).";
    }
}

/// A YAML sequence of grammar texts (`evaluate:`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TextList {
    pub key: Option<Span>,
    pub items: Vec<Text>,
}

/// Loads the spec file's YAML into a [`SpecDoc`], or every error found (YAML syntax, tabs, unknown
/// keys, wrong value types, a missing or unsupported format version). Never panics.
pub fn load(source: &crate::source::SourceFile) -> Result<SpecDoc, Vec<SpecError>> {
    load_text(&source.text)
}

/// [`load`] on a string.
pub fn load_text(text: &str) -> Result<SpecDoc, Vec<SpecError>> {
    let parsed = yaml::parse(text);
    let mut l = load::Loader {
        errors: parsed.errors,
    };
    let mut doc = SpecDoc::default();
    match parsed.root {
        // A YAML syntax error (already reported) or a stream without a document.
        None => {
            if l.errors.is_empty() {
                l.errors.push(SpecError::Empty {
                    span: Span::point(0),
                });
            }
        }
        Some(root) => match &root.kind {
            yaml::NodeKind::Map { entries } => {
                l.load_section(&mut doc, entries);
                let has_version = entries
                    .iter()
                    .any(|(k, _)| k.scalar().is_some_and(|s| s.value == "ebmc"));
                match &doc.ebmc {
                    Some(v) if v.value != 1 => l.errors.push(SpecError::UnsupportedVersion {
                        version: v.value,
                        span: v.span,
                    }),
                    None if !has_version => l.errors.push(SpecError::MissingVersion {
                        span: Span::point(0),
                    }),
                    _ => {}
                }
            }
            yaml::NodeKind::Invalid => {}
            _ if root.is_null() => l.errors.push(SpecError::Empty { span: root.span }),
            _ => l.errors.push(SpecError::NotAMapping {
                found: load::found(&root).to_string(),
                span: root.span,
            }),
        },
    }
    if l.errors.is_empty() {
        Ok(doc)
    } else {
        // File order (stable: errors at one place keep the order they were found in).
        l.errors.sort_by_key(|e| e.span().start);
        Err(l.errors)
    }
}

/// The default model name: the file stem of the spec.
pub fn default_name(source: &crate::source::SourceFile) -> String {
    std::path::Path::new(&*source.name)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".to_string())
}
