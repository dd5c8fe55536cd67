//! The spec format described as data: one [`FieldDoc`] per YAML key, generated with the structs in
//! `mod.rs` by [`spec_struct!`]. The loader, [`json_schema`] and [`reference_markdown`] all read these
//! tables, so the format is written down once.

use serde_json::{Map, Value, json};

/// The pattern of user names (variables, networks, parameters, optimizer keys).
pub const NAME_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]*$";

/// One key of a spec section.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FieldDoc {
    /// The YAML key (also the Rust field name).
    pub key: &'static str,
    pub kind: FieldKind,
    pub default: FieldDefault,
    /// One line of documentation.
    pub doc: &'static str,
    /// The accepted values, when there is a closed list (YAML text; JSON Schema `enum`).
    pub choices: &'static [&'static str],
}

/// What a key holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FieldKind {
    Integer,
    /// A real number (an integer is accepted).
    Number,
    /// Plain text that is not parsed by the grammar (a name, a path, a data source).
    String,
    /// Grammar text: an expression (`f(z)`, `normal(x | g(z), 0.3)`).
    Expression,
    /// Grammar text: a variable or parameter declaration (`real[16] ~ normal(0, 1)`).
    Declaration,
    /// Grammar text: a network (`mlp(z -> 200 -> 1)`).
    Network,
    /// Grammar text: a call (`langevin(steps = 60, step_size = 0.4)`, `samples(64)`).
    Call,
    /// Grammar text: one name (`q`).
    Name,
    /// A mapping from user names (identifiers), in file order, to values of this kind.
    Map(&'static FieldKind),
    /// A YAML sequence of values of this kind.
    List(&'static FieldKind),
    /// A nested section with its own keys.
    Section(&'static [FieldDoc]),
}

/// What applies when a key is absent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FieldDefault {
    /// The key must be present.
    Required,
    /// This value (YAML text; also the JSON Schema `default`).
    Value(&'static str),
    /// What happens, in words.
    Note(&'static str),
}

impl FieldKind {
    /// The kind as the reference tables write it.
    pub fn describe(&self) -> String {
        match self {
            FieldKind::Integer => "integer".into(),
            FieldKind::Number => "number".into(),
            FieldKind::String => "string".into(),
            FieldKind::Expression => "expression".into(),
            FieldKind::Declaration => "declaration".into(),
            FieldKind::Network => "network".into(),
            FieldKind::Call => "call".into(),
            FieldKind::Name => "name".into(),
            FieldKind::Map(inner) => format!("map: name → {}", inner.describe()),
            FieldKind::List(inner) => format!("list of {}s", inner.describe()),
            FieldKind::Section(_) => "section".into(),
        }
    }

    /// The kind with its article, for "expected …" messages.
    pub fn expected(&self) -> &'static str {
        match self {
            FieldKind::Integer => "an integer",
            FieldKind::Number => "a number",
            FieldKind::String => "a string",
            FieldKind::Expression => "an expression",
            FieldKind::Declaration => "a declaration",
            FieldKind::Network => "a network",
            FieldKind::Call => "a call",
            FieldKind::Name => "a name",
            FieldKind::Map(_) => "a mapping of names",
            FieldKind::List(_) => "a list",
            FieldKind::Section(_) => "a mapping",
        }
    }

    /// True for the kinds held by a `Text` (grammar text with a span map).
    pub fn is_text(&self) -> bool {
        matches!(
            self,
            FieldKind::Expression
                | FieldKind::Declaration
                | FieldKind::Network
                | FieldKind::Call
                | FieldKind::Name
        )
    }
}

/// Declares a spec struct together with its [`FieldDoc`] table and its loader, so that each YAML key
/// is written once. Syntax per field: `pub NAME: TYPE => KIND, DEFAULT, "doc" [, &["choice", ...]];`.
/// `[key "doc"]` after the struct name adds `pub key: Option<Span>` (the span of the section's key).
macro_rules! spec_struct {
    (@choices) => { &[] };
    (@choices $c:expr) => { $c };
    (
        $(#[$meta:meta])*
        pub struct $name:ident $([key $keydoc:literal])? {
            $(
                $(#[$fmeta:meta])*
                pub $field:ident : $ty:ty => $kind:expr, $default:expr, $doc:literal $(, $choices:expr)?;
            )*
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $(
                #[doc = $keydoc]
                pub key: Option<$crate::source::Span>,
            )?
            $(
                $(#[$fmeta])*
                pub $field: $ty,
            )*
        }

        impl $name {
            /// The YAML keys of this section (generated with the struct): the source of the loader,
            /// of [`json_schema`](crate::spec::json_schema) and of `docs/spec-reference.md`.
            pub const FIELDS: &'static [$crate::spec::FieldDoc] = &[$(
                $crate::spec::FieldDoc {
                    key: stringify!($field),
                    kind: $kind,
                    default: $default,
                    doc: $doc,
                    choices: spec_struct!(@choices $($choices)?),
                }
            ),*];

            /// True when every field's Rust type can hold its documented kind (checked by a test).
            #[cfg(test)]
            pub(crate) fn kinds_match() -> bool {
                true $(&& <$ty as $crate::spec::load::FieldValue>::accepts(&$kind))*
            }
        }

        impl $crate::spec::load::FieldValue for $name {
            #[cfg(test)]
            fn accepts(kind: &$crate::spec::FieldKind) -> bool {
                matches!(kind, $crate::spec::FieldKind::Section(fields) if *fields == <$name>::FIELDS)
            }

            fn load(
                l: &mut $crate::spec::load::Loader,
                _field: &$crate::spec::FieldDoc,
                key: &$crate::spec::yaml::Node,
                value: &$crate::spec::yaml::Node,
            ) -> Self {
                $crate::spec::load::load_section_value(l, key, value)
            }
        }

        impl $crate::spec::load::SectionValue for $name {
            const FIELDS: &'static [$crate::spec::FieldDoc] = <$name>::FIELDS;

            fn set_key(&mut self, span: $crate::source::Span) {
                $( let _: &str = $keydoc; self.key = Some(span); )?
                let _ = span;
            }

            fn load_field(
                &mut self,
                l: &mut $crate::spec::load::Loader,
                field: &$crate::spec::FieldDoc,
                key: &$crate::spec::yaml::Node,
                value: &$crate::spec::yaml::Node,
            ) {
                match field.key {
                    $( stringify!($field) => {
                        self.$field = <$ty as $crate::spec::load::FieldValue>::load(l, field, key, value);
                    } )*
                    _ => {}
                }
            }
        }
    };
}
pub(crate) use spec_struct;

/// The JSON Schema (draft 2020-12) of the spec format, with descriptions and defaults, for editor
/// completion and validation (`ebmc schema`).
pub fn json_schema() -> Value {
    let mut root = section_schema(super::SpecDoc::FIELDS);
    if let Value::Object(m) = &mut root {
        let mut head = Map::new();
        head.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        head.insert("title".into(), json!("ebmc spec (format version 1)"));
        head.insert(
            "description".into(),
            json!(
                "A latent-variable energy-based model, its data, learning and evaluation. Strings holding \
                 math, declarations, networks and calls follow the ebmc expression language \
                 (docs/spec-language.md)."
            ),
        );
        head.append(m);
        *m = head;
    }
    root
}

fn section_schema(fields: &[FieldDoc]) -> Value {
    let mut props = Map::new();
    let mut required = Vec::new();
    for f in fields {
        props.insert(f.key.into(), field_schema(f));
        if f.default == FieldDefault::Required {
            required.push(json!(f.key));
        }
    }
    let mut m = Map::new();
    m.insert("type".into(), json!("object"));
    m.insert("properties".into(), Value::Object(props));
    if !required.is_empty() {
        m.insert("required".into(), Value::Array(required));
    }
    m.insert("additionalProperties".into(), json!(false));
    Value::Object(m)
}

fn field_schema(f: &FieldDoc) -> Value {
    let mut s = match kind_schema(&f.kind) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let mut description = f.doc.to_string();
    if let FieldDefault::Note(note) = f.default {
        description.push_str(&format!(" Default: {note}."));
    }
    s.insert("description".into(), json!(description));
    if let FieldDefault::Value(v) = f.default
        && let Some(v) = yaml_value(&f.kind, v)
    {
        s.insert("default".into(), v);
    }
    if !f.choices.is_empty() {
        let vals: Vec<Value> = f
            .choices
            .iter()
            .filter_map(|c| yaml_value(&f.kind, c))
            .collect();
        s.insert("enum".into(), Value::Array(vals));
    }
    Value::Object(s)
}

fn kind_schema(kind: &FieldKind) -> Value {
    match kind {
        FieldKind::Integer => json!({ "type": "integer" }),
        FieldKind::Number => json!({ "type": "number" }),
        FieldKind::String => json!({ "type": "string" }),
        // `prior: 0` is a valid expression, and YAML reads it as a number.
        FieldKind::Expression => json!({ "type": ["string", "number"] }),
        FieldKind::Declaration | FieldKind::Network | FieldKind::Call => {
            json!({ "type": "string" })
        }
        FieldKind::Name => json!({ "type": "string", "pattern": NAME_PATTERN }),
        FieldKind::Map(inner) => json!({
            "type": "object",
            "propertyNames": { "pattern": NAME_PATTERN },
            "additionalProperties": kind_schema(inner),
        }),
        FieldKind::List(inner) => json!({ "type": "array", "items": kind_schema(inner) }),
        FieldKind::Section(fields) => section_schema(fields),
    }
}

/// A YAML default or choice as the JSON value of its kind.
pub(crate) fn yaml_value(kind: &FieldKind, text: &str) -> Option<Value> {
    match kind {
        FieldKind::Integer => text.parse::<i64>().ok().map(Value::from),
        FieldKind::Number => text
            .parse::<f64>()
            .ok()
            .and_then(|x| serde_json::Number::from_f64(x).map(Value::Number)),
        FieldKind::Section(_) | FieldKind::Map(_) | FieldKind::List(_) => None,
        _ => Some(Value::from(text)),
    }
}

/// The generated reference of the spec format: the content of `docs/spec-reference.md`.
pub fn reference_markdown() -> String {
    let mut out = String::new();
    out.push_str(
        "<!-- Generated from the field tables in src/spec/mod.rs: do not edit by hand. The test \
         `reference_doc_is_fresh` (`cargo test`) fails when this file is stale; \
         `EBMC_BLESS=1 cargo test --lib spec` rewrites it. -->\n\n",
    );
    out.push_str("# Spec reference (format version 1)\n\n");
    out.push_str(
        "Every key of a spec file, its kind and its default. A spec is one YAML document; unknown keys are \
         errors. The same tables produce the JSON Schema printed by `ebmc schema` (for editor completion).\n\n\
         Kinds: *integer*, *number* and *string* are plain YAML values; *expression*, *declaration*, \
         *network*, *call* and *name* are text in the ebmc expression language; *map: name → …* is a \
         mapping whose keys are names you choose (identifiers: letters, digits and `_`, not starting with \
         a digit), kept in file order; *section* is a nested mapping with the keys listed in its own table.\n\n",
    );
    out.push_str("## Top level\n\n");
    table(&mut out, super::SpecDoc::FIELDS);
    for f in super::SpecDoc::FIELDS {
        if let FieldKind::Section(fields) = f.kind {
            out.push_str(&format!("\n## `{}`\n\n{}\n\n", f.key, cell(f.doc)));
            table(&mut out, fields);
        }
    }
    out.push_str(
        "\n## YAML notes\n\n\
         - **Scalars and diagnostics.** Write grammar text as plain (unquoted) or `|` block scalars: ebmc maps \
         every character of those back to the file, so a diagnostic underlines the exact token. Quoted \
         (`'…'`, `\"…\"`), folded (`>`) and plain scalars that span several lines are accepted, but a \
         diagnostic inside one underlines the whole scalar.\n\
         - **Commas inside `[...]` lists and `{...}` mappings.** In a flow list \
         (`evaluate: [samples(64), reconstruction_mse]`) or a flow mapping (`optimizers: {f: sgd(lr = 1e-3)}`) \
         YAML splits items at *every* comma and does not allow `[`, `]`, `{`, `}` inside an unquoted item, \
         even between parentheses. An expression with commas (a call with several arguments, a tuple, a \
         list) must be a block list item, a block mapping value (one key per line) or a block scalar, or be \
         quoted inside the flow collection; ebmc reports a split item as `ebmc::spec::split_flow_item`, \
         once, and does not report the pieces again:\n\n\
         \x20 ```yaml\n\
         \x20 evaluate:\n\
         \x20   - samples(64)\n\
         \x20   - few_label(shots = [1, 10], repeats = 10)\n\
         \x20   - 'few_label(shots = [1, 10], repeats = 10)'   # or quoted\n\
         \x20 learn:\n\
         \x20   optimizers:                                   # not {f: adam(lr = 1e-4, betas = (0.5, 0.999)), ...}\n\
         \x20     f: adam(lr = 1e-4, betas = (0.5, 0.999))\n\
         \x20     g: adam(lr = 2e-4)\n\
         \x20   # or quoted: optimizers: {f: 'adam(lr = 1e-4, betas = (0.5, 0.999))', g: 'adam(lr = 2e-4)'}\n\
         \x20 ```\n\n\
         - **`: ` inside a value** starts a YAML mapping: write named arguments with `=` \
         (`langevin(steps = 60)`), or quote the value.\n\
         - **Indentation** uses spaces only; a tab is reported as `ebmc::spec::tab`. Duplicate keys, \
         aliases (`*a`), tags (`!!str`) and a second document (`---`) are errors.\n\
         - **Numbers.** An *integer* key takes a plain YAML integer (`1000`, not `1e3`, `1000.0` or \
         `\"1000\"`); a *number* key takes any plain YAML number (`5e-3`, `1`).\n\
         \n## The expression language\n\n\
         The syntax and meaning of expressions, declarations, networks and calls, the sign convention, the \
         samplers, optimizers and algorithms: see [spec-language.md](spec-language.md).\n",
    );
    out
}

fn table(out: &mut String, fields: &[FieldDoc]) {
    out.push_str("| key | kind | default | meaning |\n|---|---|---|---|\n");
    for f in fields {
        let default = match f.default {
            FieldDefault::Required => "**required**".to_string(),
            FieldDefault::Value(v) => format!("`{v}`"),
            FieldDefault::Note(n) => n.to_string(),
        };
        let mut meaning = f.doc.to_string();
        if f.choices.len() > 1 {
            meaning.push_str(&format!(" One of {}.", crate::diag::one_of(f.choices)));
        }
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            f.key,
            cell(&f.kind.describe()),
            cell(&default),
            cell(&meaning)
        ));
    }
}

/// Escapes a table cell (`|` would end it).
fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}
