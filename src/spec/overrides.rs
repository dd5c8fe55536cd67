//! `--set section.key=VALUE`: command-line overrides applied to the spec's *text*.
//!
//! An override edits the YAML source and gives a new [`SourceFile`] (the effective spec, which `run`
//! writes to the run directory as `spec.yaml`). The normal loader then reads it, so an override is
//! checked exactly like a value written in the file, and its diagnostics point into the effective
//! text. This module only knows the YAML structure, not the spec schema: unknown keys and wrong value
//! types are reported by the loader, not here.
//!
//! Editing rules (the rest of the file stays byte-identical, comments included):
//! - a key that exists: its scalar is replaced (exactly its span; a block scalar from its `|`/`>`);
//! - a key that is absent: a `key: VALUE` line is added at the end of its section, with the
//!   section's indentation; missing parent sections are created (at the end of the file for a
//!   top-level section); inside a `{ ... }` mapping the entry is added before the `}`;
//! - a key whose value is a list can be set to a whole YAML flow list: `evaluate=[samples(16)]`
//!   (written as is; a value in `[...]` for an absent key is written as is too);
//! - values are written as plain scalars when that is safe, else single-quoted (`'` doubled), or
//!   double-quoted with escapes when they hold control characters. A quoted scalar maps every offset
//!   to the whole scalar, so diagnostics inside a quoted value are coarser (they underline the whole
//!   value). Numbers are always plain.
//!
//! Errors (code `ebmc::cli::bad_override`) carry the override itself as their source: render them
//! on their own (with [`render`]), not through [`crate::diag::Diagnostics`], whose source is the spec.
//!
//! When the spec itself does not parse as YAML, or is not a mapping, overrides are not applied and
//! the source is returned unchanged: the loader then reports the spec's own errors.

use super::yaml::{self, Node, NodeKind, Style};
use crate::diag::RenderStyle;
use crate::source::{SourceFile, Span};
use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme, NamedSource, SourceSpan};
use std::sync::Arc;
use thiserror::Error;

const FORM_HELP: &str = "write `--set section.key=value`, e.g. `--set learn.iterations=50`";

/// A malformed `--set` override, or one that cannot apply to the spec.
#[derive(Debug, Error, Diagnostic)]
pub enum OverrideError {
    #[error("`--set {text}` has no `=`")]
    #[diagnostic(code(ebmc::cli::bad_override))]
    MissingEquals {
        text: String,
        #[source_code]
        src: Arc<NamedSource<String>>,
        #[label("expected `=VALUE` after the key")]
        span: SourceSpan,
        #[help]
        help: String,
    },

    #[error("`--set {text}` names no key before `=`")]
    #[diagnostic(code(ebmc::cli::bad_override))]
    EmptyPath {
        text: String,
        #[source_code]
        src: Arc<NamedSource<String>>,
        #[label("expected `section.key` here")]
        span: SourceSpan,
        #[help]
        help: String,
    },

    #[error("`--set {text}` has an empty key in its path")]
    #[diagnostic(code(ebmc::cli::bad_override))]
    EmptyKey {
        text: String,
        #[source_code]
        src: Arc<NamedSource<String>>,
        #[label("empty key")]
        span: SourceSpan,
        #[help]
        help: String,
    },

    /// The path goes on past a key whose value is a single value.
    #[error("`--set {text}`: `{prefix}` is a value, not a section")]
    #[diagnostic(code(ebmc::cli::bad_override))]
    ThroughValue {
        text: String,
        prefix: String,
        #[source_code]
        src: Arc<NamedSource<String>>,
        #[label("`{prefix}` holds `{found}`, so nothing can be inside it")]
        span: SourceSpan,
        found: String,
        #[help]
        help: String,
    },

    /// The path goes on past a key whose value is a list.
    #[error("`--set {text}`: `{prefix}` is a list, and a path cannot go into a list")]
    #[diagnostic(code(ebmc::cli::bad_override))]
    IntoList {
        text: String,
        prefix: String,
        #[source_code]
        src: Arc<NamedSource<String>>,
        #[label("inside the list `{prefix}`")]
        span: SourceSpan,
        #[help]
        help: String,
    },

    /// The path names a whole section (a mapping).
    #[error("`--set {text}`: `{path}` is a section, not a single value")]
    #[diagnostic(code(ebmc::cli::bad_override))]
    Section {
        text: String,
        path: String,
        #[source_code]
        src: Arc<NamedSource<String>>,
        #[label("a section")]
        span: SourceSpan,
        #[help]
        help: String,
    },

    /// The spec's layout is one this editor does not handle (explicit `?` keys, aliases, ...).
    #[error("`--set {text}` cannot be applied to this spec's layout: {reason}")]
    #[diagnostic(code(ebmc::cli::bad_override))]
    Unsupported {
        text: String,
        reason: String,
        #[source_code]
        src: Arc<NamedSource<String>>,
        #[label("this override")]
        span: SourceSpan,
        #[help]
        help: String,
    },
}

/// One parsed override.
#[derive(Clone, Debug)]
struct Override {
    text: String,
    /// Keys with their byte spans in `text`.
    keys: Vec<(String, Span)>,
    /// The value, trimmed.
    value: String,
}

impl Override {
    fn src(&self) -> Arc<NamedSource<String>> {
        source_of(&self.text)
    }

    /// `a.b` for the first `n` keys.
    fn prefix(&self, n: usize) -> String {
        self.keys[..n]
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(".")
    }

    /// The span of keys `from..` (with the dot before the first one), or the whole path.
    fn keys_span(&self, from: usize, to: usize) -> SourceSpan {
        let start = match from.checked_sub(1).and_then(|i| self.keys.get(i)) {
            Some((_, prev)) => prev.end,
            None => self.keys.first().map_or(0, |(_, s)| s.start),
        };
        let end = self
            .keys
            .get(to.saturating_sub(1))
            .map_or(start, |(_, s)| s.end);
        span_of(Span::new(start, end.max(start)))
    }

    fn unsupported(&self, reason: impl Into<String>) -> OverrideError {
        OverrideError::Unsupported {
            text: self.text.clone(),
            reason: reason.into(),
            src: self.src(),
            span: span_of(Span::new(0, self.text.len())),
            help: "edit the spec file instead of using `--set` for this key".into(),
        }
    }
}

fn source_of(text: &str) -> Arc<NamedSource<String>> {
    Arc::new(NamedSource::new("--set", text.to_string()))
}

fn span_of(s: Span) -> SourceSpan {
    SourceSpan::new(s.start.into(), s.len())
}

/// Applies `--set` overrides (`a.b.c=VALUE`, in order) to a spec's text. Returns the effective spec,
/// named `<original name> (with --set)` (the original itself when there are no overrides), or every
/// malformed or inapplicable override.
pub fn apply_overrides(
    source: &SourceFile,
    overrides: &[String],
) -> Result<SourceFile, Vec<OverrideError>> {
    if overrides.is_empty() {
        return Ok(source.clone());
    }
    let parsed = yaml::parse(&source.text);
    // The spec's own YAML errors are the loader's to report; the overrides are still checked.
    let applicable = parsed.errors.is_empty()
        && parsed
            .root
            .as_ref()
            .is_none_or(|r| matches!(r.kind, NodeKind::Map { .. }) || is_empty_null(r));
    let mut errors = Vec::new();
    let mut text = source.text.to_string();
    for o in overrides {
        let ov = match parse_override(o) {
            Ok(ov) => ov,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        if !applicable {
            continue;
        }
        match apply_one(&text, &ov) {
            Ok(t) => text = t,
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if !applicable {
        return Ok(source.clone());
    }
    Ok(SourceFile::new(
        format!("{} (with --set)", source.name),
        text,
    ))
}

/// Renders override errors (each with its own override as source), separated by blank lines.
pub fn render(errors: &[OverrideError], style: RenderStyle) -> String {
    let mut out = String::new();
    for e in errors {
        let mut s = String::new();
        let res = match style {
            RenderStyle::Fancy => GraphicalReportHandler::new()
                .with_width(100)
                .render_report(&mut s, e),
            RenderStyle::Plain => {
                GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
                    .with_width(100)
                    .render_report(&mut s, e)
            }
            RenderStyle::Narrated => {
                miette::NarratableReportHandler::new().render_report(&mut s, e)
            }
        };
        if res.is_err() {
            s = format!("{e}\n");
        }
        out.push_str(s.trim_end());
        out.push_str("\n\n");
    }
    out
}

fn is_empty_null(n: &Node) -> bool {
    n.scalar()
        .is_some_and(|s| s.style == Style::Plain && s.value.is_empty())
}

/// `a.b.c=VALUE` → keys and value.
fn parse_override(text: &str) -> Result<Override, OverrideError> {
    let Some(eq) = text.find('=') else {
        return Err(OverrideError::MissingEquals {
            text: text.to_string(),
            src: source_of(text),
            span: span_of(if text.is_empty() {
                Span::point(0)
            } else {
                Span::new(0, text.len())
            }),
            help: FORM_HELP.into(),
        });
    };
    let path = &text[..eq];
    if path.trim().is_empty() {
        return Err(OverrideError::EmptyPath {
            text: text.to_string(),
            src: source_of(text),
            span: span_of(Span::point(eq)),
            help: FORM_HELP.into(),
        });
    }
    let mut keys = Vec::new();
    let mut at = 0;
    for part in path.split('.') {
        let lead = part.len() - part.trim_start().len();
        let key = part.trim();
        let span = Span::new(at + lead, at + lead + key.len());
        if key.is_empty() {
            // Point at the dot(s) around the missing key.
            let s = if at > 0 {
                Span::new(at - 1, (at + part.len() + 1).min(eq).max(at))
            } else {
                Span::new(0, (part.len() + 1).min(eq))
            };
            return Err(OverrideError::EmptyKey {
                text: text.to_string(),
                src: source_of(text),
                span: span_of(s),
                help: format!("{FORM_HELP}: keys are separated by single dots"),
            });
        }
        keys.push((key.to_string(), span));
        at += part.len() + 1;
    }
    Ok(Override {
        text: text.to_string(),
        keys,
        value: text[eq + 1..].trim().to_string(),
    })
}

/// True when the node is a `{...}`/`[...]` flow collection.
fn is_flow(text: &str, n: &Node) -> bool {
    matches!(n.kind, NodeKind::Map { .. } | NodeKind::Seq { .. })
        && matches!(text.as_bytes().get(n.span.start), Some(b'{' | b'['))
}

/// The end of the last byte that belongs to a node (its span for scalars; for block collections
/// the end of the last key or value with content: empty scalars have unreliable positions).
/// `0` for a node without content.
fn content_end(text: &str, n: &Node) -> usize {
    match &n.kind {
        _ if is_flow(text, n) => n.span.end,
        NodeKind::Map { entries } => entries
            .iter()
            .map(|(k, v)| content_end(text, k).max(content_end(text, v)))
            .max()
            .unwrap_or(0),
        NodeKind::Seq { items } => items
            .iter()
            .map(|i| content_end(text, i))
            .max()
            .unwrap_or(0),
        NodeKind::Scalar(s) if s.style == Style::Plain && s.value.is_empty() => {
            // An empty block-list item has the span of its `-`; other empty scalars a point.
            if n.span.is_empty() { 0 } else { n.span.end }
        }
        _ => n.span.end,
    }
}

/// The `:` after a mapping key (only blanks between them).
fn colon_after(text: &str, key: &Node) -> Option<usize> {
    let rest = text.get(key.span.end..)?;
    let i = rest.find(|c| c != ' ' && c != '\t')?;
    rest[i..].starts_with(':').then_some(key.span.end + i)
}

/// The start of the line holding `at`.
fn line_start(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].rfind('\n').map_or(0, |i| i + 1)
}

/// The column of `at` when only spaces precede it on its line.
fn indent_of(text: &str, at: usize) -> Option<usize> {
    let ls = line_start(text, at);
    let lead = &text[ls..at.min(text.len())];
    // A byte-order mark at the start of the file takes no column.
    let lead = if ls == 0 {
        lead.strip_prefix('\u{feff}').unwrap_or(lead)
    } else {
        lead
    };
    lead.bytes().all(|b| b == b' ').then_some(lead.len())
}

/// The line break used by the file.
fn newline(text: &str) -> &'static str {
    if text.contains("\r\n") { "\r\n" } else { "\n" }
}

/// True when `v` can be written as a YAML plain scalar and reads back as the same text.
fn plain_safe(v: &str, flow: bool) -> bool {
    let Some(first) = v.chars().next() else {
        return false;
    };
    if v.trim() != v || v.chars().any(char::is_control) {
        return false;
    }
    if v.contains(": ") || v.ends_with(':') || v.contains(" #") {
        return false;
    }
    if flow && v.contains([',', '[', ']', '{', '}', ':']) {
        return false;
    }
    if first == '-' {
        // `-1`, `-dot(...)`: plain; `-` alone or `- x` would start a list item.
        return v
            .chars()
            .nth(1)
            .is_some_and(|c| c != ' ' && !(flow && ",[]{}".contains(c)));
    }
    !"?:,[]{}#&*!|>'\"%@`".contains(first)
}

/// `v` as a YAML scalar in block (`flow == false`) or flow context.
fn render_scalar(v: &str, flow: bool) -> String {
    if plain_safe(v, flow) {
        v.to_string()
    } else if v.chars().any(char::is_control) {
        let mut s = String::from("\"");
        for c in v.chars() {
            match c {
                '"' => s.push_str("\\\""),
                '\\' => s.push_str("\\\\"),
                '\n' => s.push_str("\\n"),
                '\t' => s.push_str("\\t"),
                '\r' => s.push_str("\\r"),
                c if c.is_control() => s.push_str(&format!("\\u{:04X}", c as u32)),
                c => s.push(c),
            }
        }
        s.push('"');
        s
    } else {
        format!("'{}'", v.replace('\'', "''"))
    }
}

/// A value written as is: a YAML flow list.
fn is_raw_list(v: &str) -> bool {
    v.starts_with('[') && v.ends_with(']')
}

/// One edit of the text.
struct Edit {
    range: Span,
    with: String,
    /// Whether the written value is a scalar whose read-back is verified.
    scalar: bool,
}

fn apply_one(text: &str, ov: &Override) -> Result<String, OverrideError> {
    let edit = plan_edit(text, ov)?;
    let Some(edit) = edit else {
        return Ok(text.to_string());
    };
    let mut out = String::with_capacity(text.len() + edit.with.len());
    out.push_str(&text[..edit.range.start]);
    out.push_str(&edit.with);
    out.push_str(&text[edit.range.end..]);
    // Never hand on a corrupted spec: the edited text must parse and hold the value at the path.
    // A text an earlier raw-list override already broke is the loader's to report (it names the
    // list item at fault), not this override's.
    let parsed = yaml::parse(&out);
    if edit.scalar && yaml::parse(text).errors.is_empty() {
        if !parsed.errors.is_empty() {
            return Err(ov.unsupported("the edited spec would not parse"));
        }
        let got = parsed.root.as_ref().and_then(|r| lookup(r, &ov.keys));
        if got.and_then(|n| n.scalar()).map(|s| s.value.as_str()) != Some(ov.value.as_str()) {
            return Err(ov.unsupported("the edited spec would not hold the value at this path"));
        }
    }
    Ok(out)
}

fn lookup<'n>(root: &'n Node, keys: &[(String, Span)]) -> Option<&'n Node> {
    let mut n = root;
    for (k, _) in keys {
        let NodeKind::Map { entries } = &n.kind else {
            return None;
        };
        n = &entries
            .iter()
            .find(|(key, _)| key.scalar().is_some_and(|s| &s.value == k))?
            .1;
    }
    Some(n)
}

/// Where and what to write; `None` when the spec is not editable (the loader reports why).
fn plan_edit(text: &str, ov: &Override) -> Result<Option<Edit>, OverrideError> {
    let nl = newline(text);
    let root = match yaml::parse(text).root {
        Some(r) if matches!(r.kind, NodeKind::Map { .. }) => r,
        Some(r) if !is_empty_null(&r) => return Ok(None),
        // No document, or an empty one: the sections go at the end of the file.
        _ => {
            let mut with = String::new();
            if !text.is_empty() && !text.ends_with('\n') {
                with.push_str(nl);
            }
            with.push_str(&block_lines(&ov.keys, &ov.value, 0, nl));
            return Ok(Some(Edit {
                range: Span::point(text.len()),
                scalar: !is_raw_list(&ov.value),
                with,
            }));
        }
    };
    let mut map = &root;
    let mut flow = is_flow(text, &root);
    for (i, (key, _)) in ov.keys.iter().enumerate() {
        let NodeKind::Map { entries } = &map.kind else {
            return Err(ov.unsupported("internal: walked into a non-mapping"));
        };
        let last = i + 1 == ov.keys.len();
        let Some((k, v)) = entries
            .iter()
            .find(|(k, _)| k.scalar().is_some_and(|s| &s.value == key))
        else {
            return insert(text, map, flow, &ov.keys[i..], ov).map(Some);
        };
        if matches!(v.kind, NodeKind::Invalid) || k.scalar().is_none() {
            return Err(ov.unsupported(format!("`{}` is an alias", ov.prefix(i + 1))));
        }
        if last {
            return replace(text, k, v, flow, ov).map(Some);
        }
        match &v.kind {
            NodeKind::Map { .. } => {
                flow = flow || is_flow(text, v);
                map = v;
            }
            NodeKind::Seq { .. } => {
                let prefix = ov.prefix(i + 1);
                return Err(OverrideError::IntoList {
                    text: ov.text.clone(),
                    src: ov.src(),
                    span: ov.keys_span(i + 1, ov.keys.len()),
                    help: format!(
                        "set the whole list instead, e.g. `--set '{prefix}={}'`",
                        if prefix == "evaluate" {
                            "[samples(16), reconstruction_mse]"
                        } else {
                            "[A, B]"
                        }
                    ),
                    prefix,
                });
            }
            NodeKind::Scalar(_) if v.is_null() => {
                return insert_under_null(text, k, v, flow, &ov.keys[i + 1..], ov).map(Some);
            }
            NodeKind::Scalar(s) => {
                let prefix = ov.prefix(i + 1);
                let mut found = s.value.clone();
                if found.chars().count() > 40 {
                    found = found.chars().take(37).collect::<String>() + "...";
                }
                return Err(OverrideError::ThroughValue {
                    text: ov.text.clone(),
                    src: ov.src(),
                    span: ov.keys_span(i + 1, ov.keys.len()),
                    found: found.replace('\n', " "),
                    help: format!("set the value itself: `--set {prefix}=VALUE`"),
                    prefix,
                });
            }
            NodeKind::Invalid => unreachable!("handled above"),
        }
    }
    // `keys` is never empty (parse_override).
    Err(ov.unsupported("internal: empty path"))
}

/// The value as written in a flow or block context (a `[...]` list as is).
fn value_text(v: &str, flow: bool) -> String {
    if is_raw_list(v) {
        v.to_string()
    } else {
        render_scalar(v, flow)
    }
}

/// `k1:\n  k2: VALUE\n` at `indent`, each line ending with `nl`.
fn block_lines(keys: &[(String, Span)], value: &str, indent: usize, nl: &str) -> String {
    let mut s = String::new();
    for (j, (k, _)) in keys.iter().enumerate() {
        s.push_str(&" ".repeat(indent + 2 * j));
        s.push_str(&render_scalar(k, false));
        s.push(':');
        if j + 1 == keys.len() {
            s.push(' ');
            s.push_str(&value_text(value, false));
        }
        s.push_str(nl);
    }
    s
}

/// `k1: {k2: VALUE}`.
fn flow_entry(keys: &[(String, Span)], value: &str) -> String {
    let (k, _) = &keys[0];
    let inner = if keys.len() == 1 {
        value_text(value, true)
    } else {
        format!("{{{}}}", flow_entry(&keys[1..], value))
    };
    format!("{}: {inner}", render_scalar(k, true))
}

/// Adds `keys` (the first is absent from `map`) with the value.
fn insert(
    text: &str,
    map: &Node,
    flow: bool,
    keys: &[(String, Span)],
    ov: &Override,
) -> Result<Edit, OverrideError> {
    let NodeKind::Map { entries } = &map.kind else {
        return Err(ov.unsupported("internal: not a mapping"));
    };
    let scalar = !is_raw_list(&ov.value);
    if flow {
        if !is_flow(text, map) || text.as_bytes().get(map.span.end.wrapping_sub(1)) != Some(&b'}') {
            return Err(ov.unsupported("a `{...}` mapping without its `}`"));
        }
        let close = map.span.end - 1;
        let entry = flow_entry(keys, &ov.value);
        let (at, with) = match entries.last() {
            None => (close, entry),
            Some((k, v)) => {
                let end = content_end(text, k).max(content_end(text, v));
                (end, format!(", {entry}"))
            }
        };
        return Ok(Edit {
            range: Span::point(at),
            with,
            scalar,
        });
    }
    let Some((first, _)) = entries.first() else {
        return Err(ov.unsupported("an empty block mapping"));
    };
    let Some(indent) = indent_of(text, first.span.start) else {
        return Err(ov.unsupported("a mapping that does not start its own line"));
    };
    let nl = newline(text);
    let end = content_end(text, map);
    let (at, mut with) = match text[end..].find('\n') {
        Some(i) => (end + i + 1, String::new()),
        None => (text.len(), nl.to_string()),
    };
    with.push_str(&block_lines(keys, &ov.value, indent, nl));
    Ok(Edit {
        range: Span::point(at),
        with,
        scalar,
    })
}

/// Adds `keys` under `k`, whose value `v` is null (`learn:` with nothing, or `learn: ~`).
fn insert_under_null(
    text: &str,
    k: &Node,
    v: &Node,
    flow: bool,
    keys: &[(String, Span)],
    ov: &Override,
) -> Result<Edit, OverrideError> {
    let scalar = !is_raw_list(&ov.value);
    let entry = format!("{{{}}}", flow_entry(keys, &ov.value));
    if !v.span.is_empty() {
        // `~` / `null`: replaced by a flow mapping.
        return Ok(Edit {
            range: v.span,
            with: entry,
            scalar,
        });
    }
    let Some(colon) = colon_after(text, k) else {
        if flow {
            return Ok(Edit {
                range: Span::point(k.span.end),
                with: format!(": {entry}"),
                scalar,
            });
        }
        return Err(ov.unsupported("a key without `:`"));
    };
    if flow {
        return Ok(Edit {
            range: Span::point(colon + 1),
            with: format!(" {entry}"),
            scalar,
        });
    }
    let Some(indent) = indent_of(text, k.span.start) else {
        return Err(ov.unsupported("a key that does not start its own line"));
    };
    let nl = newline(text);
    let eol = colon + text[colon..].find('\n').unwrap_or(text.len() - colon);
    // Before a `\r` of a CRLF line end.
    let eol = if eol > colon
        && text.as_bytes()[eol - 1] == b'\r'
        && text.as_bytes().get(eol) == Some(&b'\n')
    {
        eol - 1
    } else {
        eol
    };
    let lines = block_lines(keys, &ov.value, indent + 2, nl);
    let lines = lines.strip_suffix(nl).unwrap_or(&lines);
    Ok(Edit {
        range: Span::point(eol),
        with: format!("{nl}{lines}"),
        scalar,
    })
}

/// Replaces the value `v` of the existing key `k`.
fn replace(
    text: &str,
    k: &Node,
    v: &Node,
    flow: bool,
    ov: &Override,
) -> Result<Edit, OverrideError> {
    let value = &ov.value;
    match &v.kind {
        NodeKind::Map { entries } => {
            let path = ov.prefix(ov.keys.len());
            let names: Vec<String> = entries
                .iter()
                .filter_map(|(k, _)| k.scalar().map(|s| format!("`{path}.{}=...`", s.value)))
                .take(4)
                .collect();
            let help = if names.is_empty() {
                format!("set one of its keys: `--set {path}.KEY=VALUE`")
            } else {
                format!("set one of its keys: {}", names.join(", "))
            };
            Err(OverrideError::Section {
                text: ov.text.clone(),
                src: ov.src(),
                span: ov.keys_span(0, ov.keys.len()),
                path,
                help,
            })
        }
        NodeKind::Seq { .. } => {
            let with = value_text(value, flow);
            let scalar = !is_raw_list(value);
            if is_flow(text, v) {
                return Ok(Edit {
                    range: v.span,
                    with,
                    scalar,
                });
            }
            let Some(colon) = colon_after(text, k) else {
                return Err(ov.unsupported("a key without `:`"));
            };
            let end = content_end(text, v).max(colon + 1);
            Ok(Edit {
                range: Span::new(colon + 1, end),
                with: format!(" {with}"),
                scalar,
            })
        }
        NodeKind::Scalar(s) => {
            let with = value_text(value, flow);
            let scalar = !is_raw_list(value);
            match s.style {
                _ if !(v.span.is_empty() || s.style == Style::Plain && s.value.is_empty()) => {
                    let start = match s.style {
                        Style::Literal | Style::Folded => {
                            // From the `|`/`>` header.
                            let Some(colon) = colon_after(text, k) else {
                                return Err(ov.unsupported("a key without `:`"));
                            };
                            let rest = &text[colon + 1..];
                            let i = rest.find(|c| c != ' ' && c != '\t').unwrap_or(0);
                            if !matches!(rest.as_bytes().get(i), Some(b'|' | b'>')) {
                                return Err(ov.unsupported("a block scalar without its header"));
                            }
                            colon + 1 + i
                        }
                        _ => v.span.start,
                    };
                    Ok(Edit {
                        range: Span::new(start, v.span.end.max(start)),
                        with,
                        scalar,
                    })
                }
                _ => match colon_after(text, k) {
                    // An empty value (`key:`): the value goes after the colon.
                    Some(colon) => Ok(Edit {
                        range: Span::point(colon + 1),
                        with: format!(" {with}"),
                        scalar,
                    }),
                    None if flow => Ok(Edit {
                        range: Span::point(k.span.end),
                        with: format!(": {with}"),
                        scalar,
                    }),
                    None => Err(ov.unsupported("a key without `:`")),
                },
            }
        }
        NodeKind::Invalid => Err(ov.unsupported("an alias")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = "\
# A comment at the top
ebmc: 1
name: demo   # trailing comment
data:
  train: digits   # the default
model:
  prior: f(z)
  # a comment inside a section
  likelihood: normal(x | g(z), 0.3)
learn:
  algorithm: short_run_mle
  iterations: 2000   # long
  optimizers: { f: adam(lr = 2e-5), g: adam(lr = 1e-4) }
evaluate: [samples(64), reconstruction_mse]
# the end
";

    fn src(text: &str) -> SourceFile {
        SourceFile::new("specs/demo.yaml", text)
    }

    fn set(text: &str, overrides: &[&str]) -> Result<String, Vec<OverrideError>> {
        let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        apply_overrides(&src(text), &o).map(|s| s.text.to_string())
    }

    fn one_err(text: &str, o: &str) -> OverrideError {
        let mut errs = set(text, &[o]).unwrap_err();
        assert_eq!(errs.len(), 1);
        let e = errs.remove(0);
        assert_eq!(
            e.code().map(|c| c.to_string()).as_deref(),
            Some("ebmc::cli::bad_override")
        );
        assert!(e.help().is_some(), "{e}");
        assert!(e.labels().is_some_and(|mut l| l.next().is_some()), "{e}");
        e
    }

    #[test]
    fn no_overrides_returns_the_source() {
        let s = src(SPEC);
        let out = apply_overrides(&s, &[]).unwrap();
        assert_eq!(&*out.name, "specs/demo.yaml");
        assert_eq!(&*out.text, SPEC);
    }

    #[test]
    fn replaces_a_scalar_keeping_everything_else() {
        let s = src(SPEC);
        let out = apply_overrides(&s, &["learn.iterations=50".into()]).unwrap();
        assert_eq!(&*out.name, "specs/demo.yaml (with --set)");
        assert_eq!(
            &*out.text,
            SPEC.replace("iterations: 2000   # long", "iterations: 50   # long")
        );
        let doc = super::super::load(&out).unwrap();
        assert_eq!(doc.learn.iterations.unwrap().value, 50);
    }

    #[test]
    fn replaces_text_values_plain() {
        let out = set(
            SPEC,
            &["data.train=mnist", "model.prior=f(z) + 0.1", "name=other"],
        )
        .unwrap();
        let expected = SPEC
            .replace("train: digits   #", "train: mnist   #")
            .replace("prior: f(z)\n", "prior: f(z) + 0.1\n")
            .replace("name: demo   #", "name: other   #");
        assert_eq!(out, expected);
        let doc = super::super::load_text(&out).unwrap();
        let prior = doc.model.prior.unwrap();
        // A plain scalar keeps exact spans.
        assert!(prior.map.is_exact());
        assert_eq!(&out[prior.span.start..prior.span.end], "f(z) + 0.1");
    }

    #[test]
    fn replaces_inside_a_flow_mapping_with_quotes_when_needed() {
        let out = set(SPEC, &["learn.optimizers.f=adam(lr = 1e-3)"]).unwrap();
        assert_eq!(
            out,
            SPEC.replace("{ f: adam(lr = 2e-5),", "{ f: adam(lr = 1e-3),")
        );
        let out = set(
            SPEC,
            &["learn.optimizers.f=adam(lr = 1e-3, betas = (0.5, 0.999))"],
        )
        .unwrap();
        assert_eq!(
            out,
            SPEC.replace(
                "{ f: adam(lr = 2e-5),",
                "{ f: 'adam(lr = 1e-3, betas = (0.5, 0.999))',"
            )
        );
        let doc = super::super::load_text(&out).unwrap();
        assert_eq!(
            doc.learn.optimizers.get("f").unwrap().value.value,
            "adam(lr = 1e-3, betas = (0.5, 0.999))"
        );
    }

    #[test]
    fn inserts_into_a_flow_mapping() {
        let out = set(SPEC, &["learn.optimizers.default=sgd(lr = 0.1)"]).unwrap();
        assert_eq!(
            out,
            SPEC.replace(
                "g: adam(lr = 1e-4) }",
                "g: adam(lr = 1e-4), default: sgd(lr = 0.1) }"
            )
        );
        let out = set("ebmc: 1\nlearn: {}\n", &["learn.batch=5"]).unwrap();
        assert_eq!(out, "ebmc: 1\nlearn: {batch: 5}\n");
    }

    #[test]
    fn inserts_an_absent_key_into_its_section() {
        let out = set(SPEC, &["learn.batch=10", "model.energy=-dot(t(x), z)"]).unwrap();
        let expected = SPEC
            .replace(
                "  likelihood: normal(x | g(z), 0.3)\n",
                "  likelihood: normal(x | g(z), 0.3)\n  energy: -dot(t(x), z)\n",
            )
            .replace(
                "g: adam(lr = 1e-4) }\n",
                "g: adam(lr = 1e-4) }\n  batch: 10\n",
            );
        assert_eq!(out, expected);
        let doc = super::super::load_text(&out).unwrap();
        assert_eq!(doc.learn.batch.unwrap().value, 10);
    }

    #[test]
    fn inserts_with_the_section_indentation() {
        let text = "ebmc: 1\nlearn:\n    algorithm: short_run_mle\n    batch: 3\n";
        let out = set(text, &["learn.iterations=7"]).unwrap();
        assert_eq!(
            out,
            "ebmc: 1\nlearn:\n    algorithm: short_run_mle\n    batch: 3\n    iterations: 7\n"
        );
    }

    #[test]
    fn creates_missing_sections_at_the_end() {
        let text = "ebmc: 1\nlearn:\n  algorithm: short_run_mle\n# trailing\n";
        let out = set(text, &["data.train=mnist:train"]).unwrap();
        assert_eq!(
            out,
            "ebmc: 1\nlearn:\n  algorithm: short_run_mle\ndata:\n  train: mnist:train\n# trailing\n"
        );
        // No final newline in the file.
        let out = set("ebmc: 1", &["learn.iterations=3"]).unwrap();
        assert_eq!(out, "ebmc: 1\nlearn:\n  iterations: 3\n");
        // An empty file.
        let out = set("", &["ebmc=1"]).unwrap();
        assert_eq!(out, "ebmc: 1\n");
    }

    #[test]
    fn fills_an_empty_section() {
        let text = "ebmc: 1\nlearn:   # to do\ndata:\n  train: digits\n";
        let out = set(text, &["learn.iterations=3"]).unwrap();
        assert_eq!(
            out,
            "ebmc: 1\nlearn:   # to do\n  iterations: 3\ndata:\n  train: digits\n"
        );
        let out = set("ebmc: 1\nlearn: ~\n", &["learn.iterations=3"]).unwrap();
        assert_eq!(out, "ebmc: 1\nlearn: {iterations: 3}\n");
    }

    #[test]
    fn sets_an_empty_value() {
        let text = "ebmc: 1\nlearn:\n  iterations:\n  batch: 4\n";
        let out = set(text, &["learn.iterations=9"]).unwrap();
        assert_eq!(out, "ebmc: 1\nlearn:\n  iterations: 9\n  batch: 4\n");
        // The last key of a section, empty.
        let text = "ebmc: 1\nlearn:\n  batch:\ndata:\n  train: digits\n";
        let out = set(text, &["learn.seed=2"]).unwrap();
        assert_eq!(
            out,
            "ebmc: 1\nlearn:\n  batch:\n  seed: 2\ndata:\n  train: digits\n"
        );
    }

    #[test]
    fn quotes_values_that_are_not_plain_safe() {
        let out = set("ebmc: 1\nname: a\n", &["name=it's: here"]).unwrap();
        assert_eq!(out, "ebmc: 1\nname: 'it''s: here'\n");
        let out = set("ebmc: 1\nname: a\n", &["description=a # b"]).unwrap();
        assert_eq!(out, "ebmc: 1\nname: a\ndescription: 'a # b'\n");
        let out = set("ebmc: 1\nname: a\n", &["name="]).unwrap();
        assert_eq!(out, "ebmc: 1\nname: ''\n");
        let out = set("ebmc: 1\nname: a\n", &["name=-"]).unwrap();
        assert_eq!(out, "ebmc: 1\nname: '-'\n");
        let out = set("ebmc: 1\nname: a\n", &["name=a\nb"]).unwrap();
        assert_eq!(out, "ebmc: 1\nname: \"a\\nb\"\n");
        let doc = super::super::load_text(&out).unwrap();
        assert_eq!(doc.name.unwrap().value, "a\nb");
    }

    #[test]
    fn replaces_a_block_scalar() {
        let text = "ebmc: 1\nmodel:\n  prior: |\n    f(z)\n    + 1\n  likelihood: x\n";
        let out = set(text, &["model.prior=f(z)"]).unwrap();
        assert_eq!(out, "ebmc: 1\nmodel:\n  prior: f(z)\n  likelihood: x\n");
    }

    #[test]
    fn replaces_a_list_with_a_flow_list() {
        let out = set(SPEC, &["evaluate=[samples(16)]"]).unwrap();
        assert_eq!(
            out,
            SPEC.replace(
                "evaluate: [samples(64), reconstruction_mse]",
                "evaluate: [samples(16)]"
            )
        );
        let text =
            "ebmc: 1\nevaluate:\n  - samples(64)   # pictures\n  - reconstruction_mse\n# end\n";
        let out = set(text, &["evaluate=[samples(16)]"]).unwrap();
        assert_eq!(out, "ebmc: 1\nevaluate: [samples(16)]\n# end\n");
        let doc = super::super::load_text(&out).unwrap();
        assert_eq!(doc.evaluate.items.len(), 1);
    }

    #[test]
    fn later_overrides_win() {
        let out = set(SPEC, &["learn.iterations=5", "learn.iterations=6"]).unwrap();
        assert!(out.contains("iterations: 6   # long"));
    }

    #[test]
    fn unknown_keys_are_left_to_the_loader() {
        let out = set(SPEC, &["learn.iteration=5"]).unwrap();
        let errs = super::super::load_text(&out).unwrap_err();
        assert!(
            errs.iter()
                .any(|e| matches!(e, super::super::SpecError::UnknownKey { .. }))
        );
    }

    #[test]
    fn keeps_crlf_line_ends() {
        let text = "ebmc: 1\r\nlearn:\r\n  batch: 3\r\n";
        let out = set(text, &["learn.iterations=7", "data.train=mnist"]).unwrap();
        assert_eq!(
            out,
            "ebmc: 1\r\nlearn:\r\n  batch: 3\r\n  iterations: 7\r\ndata:\r\n  train: mnist\r\n"
        );
    }

    #[test]
    fn missing_equals_is_an_error() {
        let e = one_err(SPEC, "learn.iterations");
        assert!(matches!(e, OverrideError::MissingEquals { .. }));
        assert!(e.to_string().contains("learn.iterations"));
        let e = one_err(SPEC, "");
        assert!(matches!(e, OverrideError::MissingEquals { .. }));
    }

    #[test]
    fn empty_path_is_an_error() {
        assert!(matches!(
            one_err(SPEC, "=5"),
            OverrideError::EmptyPath { .. }
        ));
        assert!(matches!(
            one_err(SPEC, "  =5"),
            OverrideError::EmptyPath { .. }
        ));
    }

    #[test]
    fn empty_keys_are_errors() {
        for o in ["learn..x=1", ".x=1", "learn.=1"] {
            assert!(
                matches!(one_err(SPEC, o), OverrideError::EmptyKey { .. }),
                "{o}"
            );
        }
    }

    #[test]
    fn a_path_through_a_value_is_an_error() {
        let e = one_err(SPEC, "learn.iterations.x=1");
        let OverrideError::ThroughValue {
            prefix,
            found,
            span,
            ..
        } = &e
        else {
            panic!("{e:?}");
        };
        assert_eq!(prefix, "learn.iterations");
        assert_eq!(found, "2000");
        assert_eq!(
            &"learn.iterations.x=1"[span.offset()..span.offset() + span.len()],
            ".x"
        );
    }

    #[test]
    fn a_path_into_a_list_is_an_error() {
        let e = one_err(SPEC, "evaluate.0=samples(1)");
        assert!(matches!(e, OverrideError::IntoList { .. }), "{e:?}");
    }

    #[test]
    fn a_section_is_not_a_value() {
        let e = one_err(SPEC, "learn=5");
        assert!(matches!(e, OverrideError::Section { .. }), "{e:?}");
        assert!(e.help().unwrap().to_string().contains("learn.algorithm"));
    }

    #[test]
    fn all_errors_are_collected() {
        let errs = set(
            SPEC,
            &["a", "learn.iterations=5", "=3", "learn.algorithm.x=1"],
        )
        .unwrap_err();
        assert_eq!(errs.len(), 3);
        let rendered = render(&errs, RenderStyle::Plain);
        assert!(rendered.contains("ebmc::cli::bad_override"), "{rendered}");
        assert!(rendered.contains("--set"), "{rendered}");
    }

    #[test]
    fn a_broken_flow_list_is_not_blamed_on_a_later_override() {
        let out = set(
            SPEC,
            &[
                "evaluate=[few_label(shots=[10],repeats=5)]",
                "learn.batch=7",
            ],
        )
        .unwrap();
        assert!(out.contains("batch: 7"), "{out}");
        let errs = super::super::load_text(&out).unwrap_err();
        assert!(
            errs.iter().any(|e| e
                .code()
                .is_some_and(|c| c.to_string() == "ebmc::spec::split_flow_item")),
            "{errs:?}"
        );
    }

    #[test]
    fn a_spec_that_does_not_parse_is_left_to_the_loader() {
        let text = "ebmc: 1\nlearn: [\n";
        let out = apply_overrides(&src(text), &["learn.batch=1".into()]).unwrap();
        assert_eq!(&*out.text, text);
        // Override syntax is still checked.
        assert!(set(text, &["nothing"]).is_err());
        let text = "- a\n- b\n";
        assert_eq!(set(text, &["learn.batch=1"]).unwrap(), text);
    }

    #[test]
    fn never_panics_on_odd_inputs() {
        let specs = [
            SPEC,
            "",
            "ebmc: 1\n",
            "{ebmc: 1, learn: {batch: 2}}",
            "ebmc: 1\nlearn:\n  optimizers: {a, b: c}\n",
            "? complex\n: value\n",
            "a: &x 1\nb: *x\n",
            "ebmc: 1\nevaluate:\n  -\n  - x\n",
            "ebmc: 1\nlearn: 'a'\n",
            "ebmc: 1\r\nlearn:\r\n",
            "\u{feff}ebmc: 1\n",
        ];
        let overrides = [
            "learn.batch=1",
            "learn.optimizers.a=adam()",
            "learn.optimizers.c=adam(lr = 1, b = 2)",
            "evaluate=[x]",
            "evaluate=[x, y(1, 2)]",
            "complex=2",
            "b=3",
            "a.b=3",
            "x.y.z='q'",
            "ebmc={}",
            "weird key.é=\t",
        ];
        for s in specs {
            for o in overrides {
                if let Ok(out) = set(s, &[o])
                    && !o.contains('[')
                    && yaml::parse(s).errors.is_empty()
                {
                    assert!(yaml::parse(&out).errors.is_empty(), "{s:?} {o:?} → {out:?}");
                }
            }
        }
    }

    #[test]
    fn every_repository_spec_takes_overrides() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("specs");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().is_none_or(|x| x != "yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            if super::super::load_text(&text).is_err() {
                continue; // a spec being edited by someone: not this test's business
            }
            let overrides = [
                "learn.iterations=3",
                "learn.batch=7",
                "learn.seed=11",
                "data.train=digits",
                "description=a run with --set",
            ];
            let out = set(&text, &overrides).unwrap_or_else(|e| panic!("{path:?}: {e:?}"));
            let doc =
                super::super::load_text(&out).unwrap_or_else(|e| panic!("{path:?}: {e:?}\n{out}"));
            assert_eq!(doc.learn.iterations.unwrap().value, 3, "{path:?}");
            assert_eq!(doc.learn.batch.unwrap().value, 7, "{path:?}");
            assert_eq!(doc.learn.seed.unwrap().value, 11, "{path:?}");
            assert_eq!(doc.data.train.unwrap().value, "digits", "{path:?}");
            // Every line of the original is still there, in order.
            let mut rest = out.lines();
            for line in text.lines() {
                let changed = ["iterations:", "batch:", "seed:", "train:", "description:"]
                    .iter()
                    .any(|k| line.trim_start().starts_with(k));
                if !changed {
                    assert!(rest.any(|l| l == line), "{path:?}: lost {line:?}");
                }
            }
        }
    }
}
