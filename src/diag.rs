//! Diagnostics shared by every stage: the collected report and its rendering, and the
//! "did you mean" suggestion used wherever a name is looked up.
//!
//! Each stage defines its own `miette::Diagnostic` enum (codes `ebmc::<stage>::<what>`); this module
//! only collects them and renders them against the spec's source.

use crate::source::SourceFile;
use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme, NarratableReportHandler};

/// Any stage's diagnostic, boxed so that all stages' errors can be reported together.
pub type BoxedDiagnostic = Box<dyn Diagnostic + Send + Sync + 'static>;

/// All diagnostics of one spec, with the source they point into.
#[derive(Debug)]
pub struct Diagnostics {
    pub source: SourceFile,
    pub items: Vec<BoxedDiagnostic>,
}

/// How [`Diagnostics::render`] draws.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenderStyle {
    /// Unicode boxes and colors (a terminal).
    Fancy,
    /// Unicode boxes, no colors: the stable form the snapshot tests store.
    Plain,
    /// Screen-reader friendly prose.
    Narrated,
}

impl Diagnostics {
    pub fn new(source: SourceFile) -> Self {
        Diagnostics {
            source,
            items: Vec::new(),
        }
    }

    pub fn push(&mut self, d: impl Diagnostic + Send + Sync + 'static) {
        self.items.push(Box::new(d));
    }

    pub fn extend<D: Diagnostic + Send + Sync + 'static>(
        &mut self,
        ds: impl IntoIterator<Item = D>,
    ) {
        self.items
            .extend(ds.into_iter().map(|d| Box::new(d) as BoxedDiagnostic));
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// The stable codes of all diagnostics, in order.
    pub fn codes(&self) -> Vec<String> {
        self.items
            .iter()
            .map(|d| d.code().map(|c| c.to_string()).unwrap_or_default())
            .collect()
    }

    /// Renders every diagnostic against the source, separated by blank lines.
    pub fn render(&self, style: RenderStyle) -> String {
        let source = self.source.named_source();
        let mut out = String::new();
        for d in &self.items {
            let with_source = WithSource {
                inner: d.as_ref(),
                source: &source,
            };
            let mut s = String::new();
            let res = match style {
                RenderStyle::Fancy => GraphicalReportHandler::new()
                    .with_width(100)
                    .render_report(&mut s, &with_source),
                RenderStyle::Plain => {
                    GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
                        .with_width(100)
                        .render_report(&mut s, &with_source)
                }
                RenderStyle::Narrated => {
                    NarratableReportHandler::new().render_report(&mut s, &with_source)
                }
            };
            if res.is_err() {
                s = format!("{d}\n");
            }
            out.push_str(s.trim_end());
            out.push_str("\n\n");
        }
        out
    }
}

/// A stage's diagnostic with the spec's source attached for rendering.
struct WithSource<'a> {
    inner: &'a (dyn Diagnostic + Send + Sync),
    source: &'a miette::NamedSource<String>,
}

impl std::fmt::Debug for WithSource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.inner, f)
    }
}
impl std::fmt::Display for WithSource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self.inner, f)
    }
}
impl std::error::Error for WithSource<'_> {}
impl Diagnostic for WithSource<'_> {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.inner.code()
    }
    fn severity(&self) -> Option<miette::Severity> {
        self.inner.severity()
    }
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.inner.help()
    }
    fn url<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.inner.url()
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(self.source)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        self.inner.labels()
    }
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        self.inner.related()
    }
    fn diagnostic_source(&self) -> Option<&dyn Diagnostic> {
        self.inner.diagnostic_source()
    }
}

/// The closest candidate to `name` (Jaro-Winkler ≥ 0.8 or an edit distance of at most 2), as a
/// help line: ``did you mean `prior`?``.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    closest(name, candidates).map(|c| format!("did you mean `{c}`?"))
}

/// The closest candidate to `name`, if any is close enough to be a likely typo.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let jw = strsim::jaro_winkler(name, c);
        let lev = strsim::levenshtein(name, c);
        let close = jw >= 0.8 || (lev <= 2 && lev < c.len().max(name.len()));
        if close && best.is_none_or(|(b, _)| jw > b) {
            best = Some((jw, c));
        }
    }
    best.map(|(_, c)| c)
}

/// Lists names for a help line: `` `a`, `b` or `c` ``.
pub fn one_of<S: AsRef<str>>(names: &[S]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{}`", n.as_ref())).collect();
    match quoted.len() {
        0 => String::new(),
        1 => quoted[0].clone(),
        n => format!("{} or {}", quoted[..n - 1].join(", "), quoted[n - 1]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            closest("priro", ["prior", "likelihood", "energy"]),
            Some("prior")
        );
        assert_eq!(closest("lr", ["lr", "betas"]), Some("lr"));
        assert_eq!(closest("zzzzzz", ["prior", "likelihood"]), None);
    }

    #[test]
    fn lists_names() {
        assert_eq!(one_of(&["a"]), "`a`");
        assert_eq!(one_of(&["a", "b", "c"]), "`a`, `b` or `c`");
    }
}
