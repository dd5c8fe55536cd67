//! A tiny tokenizer used only around the pest parser: for the nesting-depth guard (run before pest,
//! so deep input cannot exhaust the stack), and to describe and classify parse errors in human terms
//! (what token was found, unmatched delimiters, malformed numbers, missing commas).

use crate::source::Span;

/// The nesting limit: brackets plus operators within one expression (a bound on the syntax tree's
/// depth).
pub(super) const MAX_DEPTH: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TokKind {
    Ident,
    /// A run that starts like a number; `valid` tells whether it is one the grammar accepts.
    Number {
        valid: bool,
    },
    /// Punctuation the language uses (or that is a likely slip): one character, or one of `->`,
    /// `**`, `:=`, `==`.
    Punct,
    /// Anything else: a character the language never uses.
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Tok {
    pub kind: TokKind,
    /// Local (scalar) byte offsets.
    pub span: Span,
}

impl Tok {
    pub fn text<'a>(&self, src: &'a str) -> &'a str {
        src.get(self.span.start..self.span.end).unwrap_or("")
    }
}

pub(super) fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Splits `src` into tokens, skipping the grammar's whitespace. Never fails.
pub(super) fn tokens(src: &str) -> Vec<Tok> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let start = i;
        let kind = if matches!(b, b' ' | b'\t' | b'\r' | b'\n') {
            i += 1;
            continue;
        } else if is_ident_start(b) {
            while i < bytes.len() && is_ident_char(bytes[i]) {
                i += 1;
            }
            TokKind::Ident
        } else if b.is_ascii_digit()
            || (b == b'.'
                && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)
                && (i == 0 || !is_ident_char(bytes[i - 1])))
        {
            i = number_end(bytes, i);
            TokKind::Number {
                valid: is_valid_number(&src[start..i]),
            }
        } else if b"()[],|=-+*/^@~<>.:".contains(&b) {
            let two = bytes.get(i..i + 2);
            i += match two {
                Some(b"->") | Some(b"**") | Some(b":=") | Some(b"==") => 2,
                _ => 1,
            };
            TokKind::Punct
        } else {
            // One whole (possibly multi-byte) character.
            let len = src[i..].chars().next().map_or(1, char::len_utf8);
            i += len;
            TokKind::Other
        };
        out.push(Tok {
            kind,
            span: Span::new(start, i),
        });
    }
    out
}

/// The end of a number-like run starting at `i`: digits, letters, `_`, `.`, and a sign right after
/// an exponent marker that follows a digit.
fn number_end(bytes: &[u8], mut i: usize) -> usize {
    let start = i;
    while i < bytes.len() {
        let b = bytes[i];
        let sign_of_exponent = matches!(b, b'+' | b'-')
            && i > start + 1
            && matches!(bytes[i - 1], b'e' | b'E')
            && bytes[i - 2].is_ascii_digit();
        if !(is_ident_char(b) || b == b'.' || sign_of_exponent) {
            break;
        }
        i += 1;
    }
    i
}

/// `DIGITS ("." DIGITS)? ([eE] [+-]? DIGITS)?`, exactly the grammar's `number`.
pub(super) fn is_valid_number(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |mut i: usize| {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        (i, i > start)
    };
    let (mut i, ok) = digits(0);
    if !ok {
        return false;
    }
    if b.get(i) == Some(&b'.') {
        let (j, ok) = digits(i + 1);
        if !ok {
            return false;
        }
        i = j;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let (j, ok) = digits(i);
        if !ok {
            return false;
        }
        i = j;
    }
    i == b.len()
}

/// A help line for a malformed number.
pub(super) fn number_help(s: &str) -> String {
    let b = s.as_bytes();
    if b.first() == Some(&b'.') {
        return format!("write a digit before the point: `0{s}`");
    }
    if s.ends_with('.') && s[..s.len() - 1].bytes().all(|c| c.is_ascii_digit()) {
        let whole = &s[..s.len() - 1];
        return format!("write a digit after the point: `{whole}.0`, or just `{whole}`");
    }
    if s.ends_with(['e', 'E', '+', '-']) {
        return "an exponent needs digits, e.g. `2e-5` or `1.5E+3`".into();
    }
    let lead = s.bytes().take_while(u8::is_ascii_digit).count();
    if lead > 0
        && b.get(lead)
            .is_some_and(|&c| is_ident_start(c) && c != b'e' && c != b'E')
    {
        return "names cannot start with a digit; numbers are written like `3`, `0.3`, `2e-5` or `1.5E+3`".into();
    }
    "numbers are written like `3`, `0.3`, `2e-5` or `1.5E+3`".into()
}

/// True for a name as the grammar reads one.
pub(super) fn is_name(s: &str) -> bool {
    s.as_bytes().first().is_some_and(|&b| is_ident_start(b)) && s.bytes().all(is_ident_char)
}

/// How a token reads in a message: ``name `foo` ``, ``number `3` ``, `` `)` ``.
pub(super) fn describe(tok: &Tok, src: &str) -> String {
    let text = tok.text(src);
    match tok.kind {
        TokKind::Ident => format!("name `{}`", shorten(text)),
        TokKind::Number { .. } => format!("number `{}`", shorten(text)),
        TokKind::Punct => format!("`{text}`"),
        TokKind::Other => match text.chars().next() {
            Some(c) if c.is_control() || c.is_whitespace() => format!("character {:?}", c),
            _ => format!("character `{text}`"),
        },
    }
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 40 {
        let cut: String = s.chars().take(37).collect();
        format!("{cut}...")
    } else {
        s.to_string()
    }
}

/// The operators that nest the syntax tree one level deeper.
fn is_operator(text: &str) -> bool {
    matches!(text, "+" | "-" | "*" | "/" | "^" | "**")
}

/// The deepest nesting (open brackets plus operators within the current expression, a bound on the
/// syntax tree's depth), and the first token where it exceeds [`MAX_DEPTH`] (local span).
pub(super) fn nesting(src: &str, toks: &[Tok]) -> (usize, Option<Span>) {
    // Per open group: the number of operators in the current expression of that group.
    let mut groups: Vec<usize> = vec![0];
    let mut depth = 0usize;
    let mut max = 0usize;
    for t in toks {
        if t.kind != TokKind::Punct {
            continue;
        }
        let text = t.text(src);
        match text {
            "(" | "[" => {
                groups.push(0);
                depth += 1;
            }
            ")" | "]" if groups.len() > 1 => {
                let ops = groups.pop().unwrap_or(0);
                depth = depth.saturating_sub(ops + 1);
            }
            "," | "|" | "->" | "@" | "=" | "~" | ":=" | "==" => {
                if let Some(ops) = groups.last_mut() {
                    depth = depth.saturating_sub(*ops);
                    *ops = 0;
                }
            }
            _ if is_operator(text) => {
                if let Some(ops) = groups.last_mut() {
                    *ops += 1;
                    depth += 1;
                }
            }
            _ => {}
        }
        max = max.max(depth);
        if depth > MAX_DEPTH {
            return (max, Some(t.span));
        }
    }
    (max, None)
}

/// A delimiter problem found by matching brackets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Delim {
    /// A closer with no opener at all.
    Unmatched { close: Span },
    /// A closer of the wrong kind for the innermost opener.
    Mismatched { open: Span, close: Span },
    /// An opener never closed (the innermost one).
    Unclosed { open: Span },
}

/// The first closer that does not match, else the innermost opener left open at the end.
pub(super) fn delimiters(src: &str, toks: &[Tok]) -> Option<Delim> {
    let mut stack: Vec<Tok> = Vec::new();
    for t in toks {
        if t.kind != TokKind::Punct {
            continue;
        }
        match t.text(src) {
            "(" | "[" => stack.push(*t),
            c @ (")" | "]") => {
                let want = if c == ")" { "(" } else { "[" };
                match stack.pop() {
                    None => return Some(Delim::Unmatched { close: t.span }),
                    Some(o) if o.text(src) != want => {
                        return Some(Delim::Mismatched {
                            open: o.span,
                            close: t.span,
                        });
                    }
                    Some(_) => {}
                }
            }
            _ => {}
        }
    }
    stack.last().map(|o| Delim::Unclosed { open: o.span })
}

/// True when `at` lies inside an open `(` or `[`.
pub(super) fn inside_brackets(src: &str, toks: &[Tok], at: usize) -> bool {
    let mut depth = 0i64;
    for t in toks.iter().take_while(|t| t.span.start < at) {
        if t.kind == TokKind::Punct {
            match t.text(src) {
                "(" | "[" => depth += 1,
                ")" | "]" => depth -= 1,
                _ => {}
            }
        }
    }
    depth > 0
}
