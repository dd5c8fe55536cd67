//! YAML text → a small owned tree whose every node has a byte span in the file.
//!
//! We drive `saphyr-parser`'s event parser (its markers count *characters*; a char → byte table turns
//! them into byte offsets) and build [`Node`]s with an explicit stack, so nesting never recurses
//! (and is capped at [`MAX_DEPTH`]). Scalars get their [`SpanMap`] here, from their style:
//!
//! - plain on one line: [`SpanMap::Offset`] (exact);
//! - literal `|`: [`SpanMap::Segments`], one piece per line of the value (exact);
//! - plain over several lines, quoted, folded `>`: [`SpanMap::Whole`] (the whole scalar).
//!
//! Also found here, because they need the raw text or the event stream: duplicate keys, tabs used as
//! indentation, aliases and tags, a second document, and `[...]` items that YAML split at commas.

use super::error::SpecError;
use crate::source::{Span, SpanMap};
use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Tag};
use std::collections::HashMap;

/// The deepest nesting of collections accepted (a spec needs 3 or 4).
pub(crate) const MAX_DEPTH: usize = 64;

/// A YAML node with its byte span in the file.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Node {
    pub kind: NodeKind,
    /// Scalars: the scalar's text (quotes included; block scalars: the content lines, trailing line
    /// breaks excluded). Collections: from the first byte (`[`/`{`, or the first key/item of a block
    /// collection) to the last.
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum NodeKind {
    /// Entries in file order; duplicate keys are reported and dropped while building.
    Map {
        entries: Vec<(Node, Node)>,
    },
    Seq {
        items: Vec<Node>,
    },
    Scalar(Scalar),
    /// A node that was already reported as an error (an alias): loaders skip it silently.
    Invalid,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Scalar {
    pub value: String,
    pub style: Style,
    /// Value offsets → file offsets.
    pub map: SpanMap,
}

/// How a scalar was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    /// `|`
    Literal,
    /// `>`
    Folded,
}

impl Node {
    pub fn scalar(&self) -> Option<&Scalar> {
        match &self.kind {
            NodeKind::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// A YAML null: an empty plain scalar, `~` or `null`.
    pub fn is_null(&self) -> bool {
        self.scalar()
            .is_some_and(|s| s.style == Style::Plain && is_null_text(&s.value))
    }
}

pub(crate) fn is_null_text(s: &str) -> bool {
    matches!(s, "" | "~" | "null" | "Null" | "NULL")
}

/// The result of parsing: the first document's root (when the YAML parsed) and every error found.
pub(crate) struct Parsed {
    /// `None` when the stream has no document or the YAML did not parse.
    pub root: Option<Node>,
    pub errors: Vec<SpecError>,
}

/// Parses `text` into a span tree. Never panics; stops at the first YAML syntax error.
pub(crate) fn parse(text: &str) -> Parsed {
    Builder::new(text).run()
}

/// A collection being built.
enum Frame {
    Map {
        start: usize,
        flow: bool,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
        /// Scalar keys seen so far → the span of their first occurrence.
        seen: HashMap<String, Span>,
    },
    Seq {
        start: usize,
        flow: bool,
        items: Vec<Node>,
    },
}

impl Frame {
    fn is_flow(&self) -> bool {
        match self {
            Frame::Map { flow, .. } | Frame::Seq { flow, .. } => *flow,
        }
    }

    /// The frame's completed children (and pending key) in file order.
    fn children(&self) -> Vec<&Node> {
        match self {
            Frame::Map { entries, key, .. } => entries
                .iter()
                .flat_map(|(k, v)| [k, v])
                .chain(key.as_ref())
                .collect(),
            Frame::Seq { items, .. } => items.iter().collect(),
        }
    }
}

struct Builder<'a> {
    text: &'a str,
    /// Byte offset of each char index (one extra entry for the end).
    char_bytes: Vec<usize>,
    stack: Vec<Frame>,
    root: Option<Node>,
    errors: Vec<SpecError>,
    /// Spans whose interior is not YAML structure (scalars, flow collections): a tab at the start of
    /// a line inside one is content or allowed separation, not indentation.
    interiors: Vec<Span>,
}

impl<'a> Builder<'a> {
    fn new(text: &'a str) -> Self {
        let mut char_bytes: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        char_bytes.push(text.len());
        Builder {
            text,
            char_bytes,
            stack: Vec::new(),
            root: None,
            errors: Vec::new(),
            interiors: Vec::new(),
        }
    }

    /// Byte offset of a saphyr char index (clamped to the end of the text).
    fn byte(&self, char_index: usize) -> usize {
        self.char_bytes
            .get(char_index)
            .copied()
            .unwrap_or(self.text.len())
    }

    fn span(&self, s: saphyr_parser::Span) -> Span {
        let start = self.byte(s.start.index());
        Span::new(start, self.byte(s.end.index()).max(start))
    }

    fn run(mut self) -> Parsed {
        let mut parser = Parser::new_from_str(self.text);
        let mut documents = 0usize;
        while let Some(next) = parser.next_event() {
            let (event, span) = match next {
                Ok(x) => x,
                Err(e) => {
                    let err = self.scan_error(&e);
                    self.errors.push(err);
                    return Parsed {
                        root: None,
                        errors: self.errors,
                    };
                }
            };
            let span = self.span(span);
            let is_map = matches!(event, Event::MappingStart(..));
            match event {
                Event::StreamEnd => break,
                Event::Nothing | Event::StreamStart | Event::DocumentEnd => {}
                Event::DocumentStart(_) => {
                    documents += 1;
                    if documents > 1 {
                        // `---` (explicit start) or the first token of an implicit document.
                        let dashes = self
                            .text
                            .get(span.start..span.end.max(span.start + 3))
                            .and_then(|t| t.find("---"));
                        let span = match dashes {
                            Some(i) => Span::new(span.start + i, span.start + i + 3),
                            None => self.char_span(span.start),
                        };
                        self.errors.push(SpecError::MultipleDocuments { span });
                        break;
                    }
                }
                Event::Alias(_) => {
                    self.errors.push(SpecError::AliasUnsupported { span });
                    self.complete(Node {
                        kind: NodeKind::Invalid,
                        span,
                    });
                }
                Event::Scalar(value, style, _anchor, tag) => {
                    let mut node = self.scalar_node(&value, style, span);
                    if value.is_empty()
                        && style == ScalarStyle::Plain
                        && matches!(self.stack.last(), Some(Frame::Seq { flow: false, .. }))
                    {
                        // An empty block list item: point at its `-`.
                        node.span = self.dash_before(node.span.start).unwrap_or(node.span);
                    }
                    if let Some(tag) = tag {
                        self.tag_error(&tag, node.span);
                    }
                    if !node.span.is_empty() {
                        self.interiors.push(node.span);
                    }
                    self.complete(node);
                }
                Event::SequenceStart(_, tag) | Event::MappingStart(_, tag) => {
                    if self.stack.len() >= MAX_DEPTH {
                        self.errors.push(SpecError::TooDeep {
                            limit: MAX_DEPTH,
                            span: self.char_span(span.start),
                        });
                        return Parsed {
                            root: None,
                            errors: self.errors,
                        };
                    }
                    let start = self.skip_properties(span.start, span.end);
                    let flow = matches!(self.text.as_bytes().get(start), Some(b'[' | b'{'))
                        && start < span.end;
                    if let Some(tag) = tag {
                        self.tag_error(&tag, Span::new(span.start, start.max(span.start)));
                    }
                    self.stack.push(if is_map {
                        Frame::Map {
                            start,
                            flow,
                            entries: Vec::new(),
                            key: None,
                            seen: HashMap::new(),
                        }
                    } else {
                        Frame::Seq {
                            start,
                            flow,
                            items: Vec::new(),
                        }
                    });
                }
                Event::SequenceEnd | Event::MappingEnd => {
                    let Some(mut frame) = self.stack.pop() else {
                        continue;
                    };
                    let flow = frame.is_flow();
                    if flow {
                        self.check_split(&mut frame);
                    }
                    let node = match frame {
                        Frame::Map {
                            start,
                            entries,
                            key,
                            ..
                        } => {
                            let end = if flow {
                                span.end
                            } else {
                                last_end(entries.iter().map(|(_, v)| v).chain(key.as_ref()), start)
                            };
                            // A pending key without value cannot happen with a well-formed event stream.
                            Node {
                                kind: NodeKind::Map { entries },
                                span: Span::new(start, end.max(start)),
                            }
                        }
                        Frame::Seq { start, items, .. } => {
                            let end = if flow {
                                span.end
                            } else {
                                last_end(items.iter(), start)
                            };
                            Node {
                                kind: NodeKind::Seq { items },
                                span: Span::new(start, end.max(start)),
                            }
                        }
                    };
                    if flow {
                        self.interiors.push(node.span);
                    }
                    self.complete(node);
                }
            }
        }
        self.check_indent_tabs();
        Parsed {
            root: self.root,
            errors: self.errors,
        }
    }

    /// Attaches a finished node to the collection being built (or makes it the root).
    fn complete(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                key,
                seen,
                flow,
                ..
            }) => match key.take() {
                None => *key = Some(node),
                // A flow mapping's duplicates are found when it closes, once the pieces of items
                // YAML split at commas are set aside (`{f: adam(lr = 1, betas = (0.5, 0.9))}`).
                Some(k) if *flow => entries.push((k, node)),
                Some(k) => {
                    if first_occurrence(seen, &k, &mut self.errors) {
                        entries.push((k, node));
                    }
                }
            },
        }
    }

    fn tag_error(&mut self, tag: &Tag, span: Span) {
        let tag = if tag.is_yaml_core_schema() {
            format!("!!{}", tag.suffix)
        } else {
            tag.to_string()
        };
        let help =
            format!("remove `{tag}`: spec values are read by their key, tags are not needed");
        self.errors
            .push(SpecError::TagUnsupported { tag, span, help });
    }

    /// Skips node properties (`&anchor`, `!tag`) and the blanks after them, from `at` (within `end`).
    fn skip_properties(&self, mut at: usize, end: usize) -> usize {
        let b = self.text.as_bytes();
        while at < end && matches!(b.get(at), Some(b'&' | b'!')) {
            while at < end && !matches!(b.get(at), Some(b' ' | b'\t' | b'\r' | b'\n') | None) {
                at += 1;
            }
            while at < end {
                match b.get(at) {
                    Some(b' ' | b'\t' | b'\r' | b'\n') => at += 1,
                    Some(b'#') => {
                        while at < end && !matches!(b.get(at), Some(b'\n') | None) {
                            at += 1;
                        }
                    }
                    _ => break,
                }
            }
        }
        at
    }

    fn scalar_node(&self, value: &str, style: ScalarStyle, span: Span) -> Node {
        let text = self.text;
        let (style, span, map) = match style {
            ScalarStyle::Plain => {
                if value.is_empty() {
                    // Empty scalars get odd spans from saphyr (`, ` or `}` in flow context).
                    let at = span.start;
                    (Style::Plain, Span::point(at), SpanMap::Offset(at))
                } else {
                    // One line: the value is the file text ending where the scalar ends.
                    match span.end.checked_sub(value.len()) {
                        Some(start)
                            if start >= span.start && text.get(start..span.end) == Some(value) =>
                        {
                            (
                                Style::Plain,
                                Span::new(start, span.end),
                                SpanMap::Offset(start),
                            )
                        }
                        _ => {
                            let s = Span::new(self.skip_properties(span.start, span.end), span.end);
                            (Style::Plain, s, SpanMap::Whole(s))
                        }
                    }
                }
            }
            ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => {
                let st = if style == ScalarStyle::SingleQuoted {
                    Style::SingleQuoted
                } else {
                    Style::DoubleQuoted
                };
                let s = Span::new(self.skip_properties(span.start, span.end), span.end);
                (st, s, SpanMap::Whole(s))
            }
            ScalarStyle::Literal => {
                let s = self.trim_block(span, value.is_empty());
                let from = if value.is_empty() { s.end } else { span.start };
                let map = literal_map(text, from, value).unwrap_or(SpanMap::Whole(s));
                (Style::Literal, s, map)
            }
            ScalarStyle::Folded => {
                let s = self.trim_block(span, value.is_empty());
                (Style::Folded, s, SpanMap::Whole(s))
            }
        };
        Node {
            kind: NodeKind::Scalar(Scalar {
                value: value.to_string(),
                style,
                map,
            }),
            span,
        }
    }

    /// A block scalar's span without its trailing blank lines; an empty one is its indicator.
    fn trim_block(&self, span: Span, empty: bool) -> Span {
        if empty {
            return self
                .block_indicator(span.start)
                .unwrap_or(Span::point(span.start));
        }
        let start = self.skip_properties(span.start, span.end);
        let body = self.text.get(start..span.end).unwrap_or("");
        Span::new(start, start + body.trim_end().len())
    }

    /// The `|`/`>` header (with its chomping and indentation indicators) of an empty block scalar
    /// whose event is at `at`: on the line of `at`, or else on the last non-blank line before it.
    fn block_indicator(&self, at: usize) -> Option<Span> {
        let text = self.text;
        let at = at.min(text.len());
        let line_of = |p: usize| text[..p].rfind('\n').map_or(0, |i| i + 1);
        let mut line = line_of(at);
        if text[line..at].trim().is_empty() {
            // `at` starts a line after the block: go up to the header line.
            while line > 0 {
                line = line_of(line - 1);
                if !text[line..]
                    .split('\n')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .is_empty()
                {
                    break;
                }
            }
        }
        let header = text[line..].split('\n').next().unwrap_or("");
        let b = header.as_bytes();
        (0..b.len()).find_map(|i| {
            let starts =
                matches!(b[i], b'|' | b'>') && (i == 0 || matches!(b[i - 1], b' ' | b'\t'));
            let len = 1 + b[i + 1..]
                .iter()
                .take_while(|c| matches!(c, b'-' | b'+' | b'0'..=b'9'))
                .count();
            let ends = matches!(b.get(i + len), None | Some(b' ' | b'\t' | b'\r'));
            (starts && ends).then(|| Span::new(line + i, line + i + len))
        })
    }

    /// The `-` of the block list item whose (empty) value is at `at`: the last `-` on its line
    /// before any comment.
    fn dash_before(&self, at: usize) -> Option<Span> {
        let at = at.min(self.text.len());
        let line_start = self.text[..at].rfind('\n').map_or(0, |i| i + 1);
        let line = &self.text[line_start..at];
        let code = line.split(" #").next().unwrap_or(line);
        code.rfind('-')
            .map(|i| Span::new(line_start + i, line_start + i + 1))
    }

    /// A one-character span at `at` (a point at a line end or the end of the file).
    fn char_span(&self, at: usize) -> Span {
        let at = at.min(self.text.len());
        match self.text.get(at..).and_then(|t| t.chars().next()) {
            Some(c) if c != '\n' && c != '\r' => Span::new(at, at + c.len_utf8()),
            _ => Span::point(at),
        }
    }

    /// Turns a saphyr scan error into the most helpful diagnostic we can tell it is.
    fn scan_error(&mut self, e: &ScanError) -> SpecError {
        let at = self.byte(e.marker().index());
        let info = e.info();
        if info.contains("recursion limit") {
            return SpecError::TooDeep {
                limit: MAX_DEPTH,
                span: self.char_span(at),
            };
        }
        // A tab at the error itself or just before it (`key:<TAB>value`).
        let b = self.text.as_bytes();
        if let Some(tab) = [Some(at), at.checked_sub(1)]
            .into_iter()
            .flatten()
            .find(|&i| b.get(i) == Some(&b'\t'))
        {
            return tab_error(self.text, tab);
        }
        if info.contains("tab")
            && let Some(tab) = self
                .indent_tab_from(at, usize::MAX)
                .or_else(|| self.text.get(at..)?.find('\t').map(|i| at + i))
        {
            return tab_error(self.text, tab);
        }
        if let Some(err) = self.split_at_error(at) {
            return err;
        }
        // A tab indenting the error's line or the next one is the likely cause.
        if let Some(tab) = self.indent_tab_from(at, 2) {
            return tab_error(self.text, tab);
        }
        let (message, help) = clean_scan_message(info);
        SpecError::YamlSyntax {
            message,
            span: self.char_span(at),
            help,
        }
    }

    /// The first tab in the leading whitespace of a line, from the line of `at`, over at most
    /// `lines` lines.
    fn indent_tab_from(&self, at: usize, lines: usize) -> Option<usize> {
        let at = at.min(self.text.len());
        let mut line_start = self.text[..at].rfind('\n').map_or(0, |i| i + 1);
        for _ in 0..lines {
            let rest = &self.text[line_start..];
            let line = rest.split('\n').next().unwrap_or("");
            let lead = line.len() - line.trim_start_matches([' ', '\t']).len();
            if let Some(i) = line[..lead].find('\t') {
                return Some(line_start + i);
            }
            if line.len() == rest.len() {
                return None;
            }
            line_start += line.len() + 1;
        }
        None
    }

    /// After parsing: tabs indenting YAML structure that saphyr let through (`\tkey: value`).
    fn check_indent_tabs(&mut self) {
        if !self.text.contains('\t') {
            return;
        }
        // Is `p` strictly inside one of the interiors? (sorted by start, with running maximum ends)
        let mut interiors = std::mem::take(&mut self.interiors);
        interiors.sort_unstable_by_key(|s| s.start);
        let max_ends: Vec<usize> = interiors
            .iter()
            .scan(0, |m, s| {
                *m = s.end.max(*m);
                Some(*m)
            })
            .collect();
        let inside = |p: usize| {
            let i = interiors.partition_point(|s| s.start < p);
            i > 0 && max_ends[i - 1] > p
        };
        let mut line_start = 0;
        for line in self.text.split('\n') {
            let body = line.trim_start_matches([' ', '\t']);
            let lead = line.len() - body.len();
            if let Some(i) = line[..lead].find('\t') {
                let structural =
                    !body.is_empty() && !body.starts_with('#') && !body.starts_with('\r');
                if structural && !inside(line_start + lead) {
                    self.errors.push(tab_error(self.text, line_start + i));
                    return; // one is enough: the fix is the same everywhere
                }
            }
            line_start += line.len() + 1;
        }
    }

    /// At a scan error inside `[...]`/`{...}`: was an item with an open `(` cut off by YAML?
    fn split_at_error(&self, at: usize) -> Option<SpecError> {
        let frame = self.stack.last()?;
        if !frame.is_flow() {
            return None;
        }
        let children = frame.children();
        let mut depth = 0i64;
        let mut group: Option<usize> = None;
        for n in &children {
            let d = match n.scalar() {
                Some(s) if s.style == Style::Plain => paren_balance(&s.value),
                _ => 0,
            };
            if depth <= 0 && d > 0 {
                group = Some(n.span.start);
                depth = 0;
            }
            depth += d;
            if depth <= 0 {
                group = None;
            }
        }
        let start = group?;
        let item = balanced_item(self.text, start);
        let end = item
            .map_or(at, |i| start + i.len())
            .max(at.min(self.text.len()))
            .max(start);
        Some(SpecError::SplitFlowItem {
            span: Span::new(start, end),
            help: split_help(item, flow_context(frame, start)),
        })
    }

    /// In a finished `[...]`/`{...}`: plain items whose `(` is closed only in a later item. In a
    /// mapping, the keys YAML made of the pieces (`betas = (0.5`, `0.999))`) are dropped, so that they
    /// are not reported again as invalid names or duplicate keys; then duplicates are looked for.
    fn check_split(&mut self, frame: &mut Frame) {
        let groups = split_groups(&frame.children());
        for &(start, end) in &groups {
            let span = Span::new(start, end.max(start));
            let item = self.text.get(span.start..span.end);
            self.errors.push(SpecError::SplitFlowItem {
                span,
                help: split_help(item, flow_context(frame, start)),
            });
        }
        let Frame::Map { entries, seen, .. } = frame else {
            return;
        };
        let piece = |k: &Node| {
            groups
                .iter()
                .any(|&(start, end)| k.span.start > start && k.span.start < end)
        };
        let mut kept = Vec::with_capacity(entries.len());
        for (k, v) in std::mem::take(entries) {
            if piece(&k) {
                continue;
            }
            if first_occurrence(seen, &k, &mut self.errors) {
                kept.push((k, v));
            }
        }
        *entries = kept;
    }
}

/// Records the mapping key `k` in `seen`; a scalar key met before is a `DuplicateKey` error
/// (pushed to `errors`) and returns false.
fn first_occurrence(
    seen: &mut HashMap<String, Span>,
    k: &Node,
    errors: &mut Vec<SpecError>,
) -> bool {
    let Some(s) = k.scalar() else {
        return true;
    };
    if let Some(&first) = seen.get(&s.value) {
        errors.push(SpecError::DuplicateKey {
            key: s.value.clone(),
            first,
            second: k.span,
        });
        return false;
    }
    seen.insert(s.value.clone(), k.span);
    true
}

/// The spans (start, end) of the items YAML split at commas among a flow collection's children:
/// a plain item whose `(` is closed only in a later item, up to that item. An item that never
/// closes its `(` alone is an expression error for the checker to report.
fn split_groups(children: &[&Node]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut depth = 0i64;
    let mut group: Option<(usize, usize)> = None; // (start, items in the group)
    for n in children {
        let d = match n.scalar() {
            Some(s) if s.style == Style::Plain => paren_balance(&s.value),
            _ => 0,
        };
        if let Some((start, count)) = group.as_mut() {
            *count += 1;
            depth += d;
            if depth <= 0 {
                out.push((*start, n.span.end));
                group = None;
                depth = 0;
            }
        } else if d > 0 {
            group = Some((n.span.start, 1));
            depth = d;
        }
    }
    if let (Some((start, count)), Some(last)) = (group, children.last())
        && count > 1
    {
        out.push((start, last.span.end));
    }
    out
}

/// Where a split item sits, for the help: a `[...]` item, or a `{...}` mapping's value (of `key`).
#[derive(Clone, Copy)]
enum FlowContext<'a> {
    List,
    Map { key: Option<&'a str> },
}

/// The context of the item starting at `start` in a flow collection.
fn flow_context(frame: &Frame, start: usize) -> FlowContext<'_> {
    match frame {
        Frame::Seq { .. } => FlowContext::List,
        Frame::Map { entries, .. } => {
            let key = entries
                .iter()
                .find(|(_, v)| v.span.start == start)
                .and_then(|(k, _)| k.scalar())
                .map(|s| s.value.as_str());
            FlowContext::Map { key }
        }
    }
}

/// End of the last node, or `default` when there is none.
fn last_end<'n>(nodes: impl Iterator<Item = &'n Node>, default: usize) -> usize {
    nodes.last().map_or(default, |n| n.span.end)
}

/// `(` minus `)`.
fn paren_balance(s: &str) -> i64 {
    s.chars()
        .map(|c| {
            if c == '(' {
                1
            } else if c == ')' {
                -1
            } else {
                0
            }
        })
        .sum()
}

/// The text of an item from `start` up to its balancing `)` on the same line, if there is one.
fn balanced_item(text: &str, start: usize) -> Option<&str> {
    let rest = text.get(start..)?;
    let mut depth = 0i64;
    for (i, c) in rest.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => {
                depth -= 1;
                if depth == 0 {
                    return rest.get(..i + 1);
                }
                if depth < 0 {
                    return None;
                }
            }
            '\n' => return None,
            _ => {}
        }
    }
    None
}

fn split_help(item: Option<&str>, context: FlowContext) -> String {
    let one_line = item.filter(|i| !i.contains('\n') && i.len() <= 80);
    match context {
        FlowContext::List => {
            let example = one_line.map_or("few_label(shots = [1, 10], repeats = 10)", str::trim);
            format!(
                "YAML splits a `[...]` list at every comma, even inside parentheses: write the list one item per line \
                 (`- {example}`), or quote the item"
            )
        }
        FlowContext::Map { key } => {
            let example = one_line.map_or("adam(lr = 1e-4, betas = (0.5, 0.999))", str::trim);
            let key = key.unwrap_or("KEY");
            format!(
                "YAML splits a `{{...}}` mapping at every comma, even inside parentheses: write the mapping in block \
                 form, one key per line (`{key}: {example}`), or quote the value (`{key}: '{example}'`)"
            )
        }
    }
}

fn tab_error(text: &str, at: usize) -> SpecError {
    let line_start = text[..at.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
    let leading = text[line_start..at.min(text.len())]
        .chars()
        .all(|c| c == ' ' || c == '\t');
    let help = if leading {
        "indent with spaces"
    } else {
        "use a space instead of the tab"
    };
    SpecError::Tab {
        span: Span::new(at, (at + 1).min(text.len())),
        help: help.into(),
    }
}

/// saphyr's message in ebmc's words, and a help line for the common cases.
fn clean_scan_message(info: &str) -> (String, Option<String>) {
    let (message, help): (&str, Option<&str>) = match info {
        "mapping values are not allowed in this context" => (
            "`: ` would start a mapping here",
            Some(
                "inside a value write named arguments with `=` (`steps = 60`), or quote the whole value",
            ),
        ),
        "while parsing a block mapping, did not find expected key" => (
            "expected a `key: value` line",
            Some("check the indentation of this line against the lines above"),
        ),
        "while parsing a flow sequence, expected ',' or ']'" => {
            ("expected `,` or `]` in this `[...]` list", None)
        }
        "while parsing a flow mapping, did not find expected ',' or '}'" => {
            ("expected `,` or `}` in this `{...}` mapping", None)
        }
        "while scanning a quoted scalar, found unexpected end of stream" => (
            "this quoted string is never closed",
            Some("add the closing quote"),
        ),
        "while parsing a node, did not find expected node content" => {
            ("expected a value here", None)
        }
        "unexpected eof" => ("unexpected end of file", None),
        other => (other, None),
    };
    let message = message.trim().trim_end_matches('.');
    (message.to_string(), help.map(str::to_string))
}

/// The map of a literal (`|`) block scalar whose content starts at byte `start`: value line `i` maps
/// to the content of file line `header + 1 + i` (after the block's indentation). `None` when the file
/// text does not match the value (then the caller falls back to `Whole`).
pub(crate) fn literal_map(text: &str, start: usize, value: &str) -> Option<SpanMap> {
    if value.is_empty() {
        return Some(SpanMap::Segments(vec![(0, start.min(text.len()))]));
    }
    let start = start.min(text.len());
    let line_of = |p: usize| text[..p].rfind('\n').map_or(0, |i| i + 1);
    let mut first = line_of(start);
    if text[first..start].chars().all(|c| c == ' ' || c == '\t') {
        // `start` is the first content line: the value's first lines may be blank lines above it.
        while first > 0 {
            let prev = line_of(first - 1);
            if text[prev..first].trim().is_empty() {
                first = prev;
            } else {
                break;
            }
        }
    } else {
        // `start` is on the header line itself: the value starts on the next line.
        first = start + text[start..].find('\n')? + 1;
    }
    let mut segs = Vec::new();
    let mut line_start = first;
    let mut value_off = 0;
    for v in value.split('\n') {
        let pos = if line_start >= text.len() {
            if !v.is_empty() {
                return None;
            }
            text.len()
        } else {
            let raw = text[line_start..].split('\n').next().unwrap_or("");
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if !line.ends_with(v) {
                return None;
            }
            let pos = line_start + line.len() - v.len();
            line_start += raw.len() + 1;
            pos
        };
        if text.get(pos..pos + v.len()) != Some(v) {
            return None;
        }
        segs.push((value_off, pos));
        value_off += v.len() + 1;
    }
    Some(SpanMap::Segments(segs))
}
