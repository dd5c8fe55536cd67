//! Source files and byte spans.
//!
//! Every span in ebmc is a byte range into the spec file as it was read, so a diagnostic from any stage
//! can point into the YAML. Expressions live inside YAML scalars; a [`SpanMap`] translates offsets
//! inside a scalar's *value* to offsets in the *file*.

use std::sync::Arc;

/// A half-open byte range `start..end` into a [`SourceFile`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub const fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    /// An empty span at `at` (for "expected something here" labels).
    pub const fn point(at: usize) -> Self {
        Span { start: at, end: at }
    }

    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The smallest span covering both.
    pub fn join(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

impl From<Span> for miette::SourceSpan {
    fn from(s: Span) -> Self {
        miette::SourceSpan::new(s.start.into(), s.len())
    }
}

/// A spec file's name and full text, shared by every diagnostic that points into it.
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub name: Arc<str>,
    pub text: Arc<str>,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        SourceFile {
            name: Arc::from(name.into()),
            text: Arc::from(text.into()),
        }
    }

    /// The file as miette source code, for attaching to a report.
    pub fn named_source(&self) -> miette::NamedSource<String> {
        miette::NamedSource::new(&*self.name, self.text.to_string())
    }
}

/// Maps byte offsets inside a YAML scalar's value to byte offsets in the file.
///
/// Plain scalars on one line and `|` block scalars map exactly; quoted and folded scalars do not
/// (escapes and line folding change offsets), so every offset inside them maps to the whole scalar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpanMap {
    /// Value byte `i` is file byte `base + i`.
    Offset(usize),
    /// Piecewise: `(value_offset, file_offset)` pairs sorted by value offset; each piece is a line of
    /// a block scalar and maps linearly from its start.
    Segments(Vec<(usize, usize)>),
    /// No exact mapping: everything maps to this span (the whole scalar).
    Whole(Span),
}

impl SpanMap {
    /// The file span of the value span `s`.
    pub fn map(&self, s: Span) -> Span {
        match self {
            SpanMap::Offset(base) => Span::new(base + s.start, base + s.end),
            SpanMap::Segments(segs) => {
                Span::new(Self::offset_in(segs, s.start), Self::offset_in(segs, s.end))
            }
            SpanMap::Whole(w) => *w,
        }
    }

    fn offset_in(segs: &[(usize, usize)], at: usize) -> usize {
        let i = segs.partition_point(|&(v, _)| v <= at);
        match i.checked_sub(1).and_then(|i| segs.get(i)) {
            Some(&(v, f)) => f + (at - v),
            None => segs.first().map_or(at, |&(_, f)| f),
        }
    }

    /// True when spans inside the value map to exact file positions.
    pub fn is_exact(&self) -> bool {
        !matches!(self, SpanMap::Whole(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_map_shifts() {
        assert_eq!(SpanMap::Offset(10).map(Span::new(2, 5)), Span::new(12, 15));
    }

    #[test]
    fn segments_map_each_line() {
        // value "ab\ncd" where line 1 starts at file 100 and line 2 at file 110
        let m = SpanMap::Segments(vec![(0, 100), (3, 110)]);
        assert_eq!(m.map(Span::new(0, 2)), Span::new(100, 102));
        assert_eq!(m.map(Span::new(3, 5)), Span::new(110, 112));
        assert_eq!(m.map(Span::new(1, 4)), Span::new(101, 111));
    }

    #[test]
    fn whole_maps_everything_to_the_scalar() {
        let m = SpanMap::Whole(Span::new(7, 20));
        assert_eq!(m.map(Span::new(0, 1)), Span::new(7, 20));
        assert!(!m.is_exact());
    }
}
