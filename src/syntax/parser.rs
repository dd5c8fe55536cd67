//! The pest parser and the AST builder. Every span put into the AST or an error is a file offset
//! (`map.map(local)`); pest's types stay in this module.

use std::sync::LazyLock;

use pest::Parser;
use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::{Pair, Pairs};
use pest::pratt_parser::{Assoc, Op, PrattParser};
use pest_derive::Parser;

use super::SyntaxError;
use super::ast::*;
use super::lex::{self, Delim, Tok, TokKind};
use crate::source::{Span, SpanMap};

#[derive(Parser)]
#[grammar = "grammar/ebmc.pest"]
pub(super) struct EbmcParser;

/// Precedence, lowest first: `+ -`, `* /`, unary `-`, `^` (right), postfix `[i]`.
static PRATT: LazyLock<PrattParser<Rule>> = LazyLock::new(|| {
    PrattParser::new()
        .op(Op::infix(Rule::add, Assoc::Left) | Op::infix(Rule::sub, Assoc::Left))
        .op(Op::infix(Rule::mul, Assoc::Left) | Op::infix(Rule::div, Assoc::Left))
        .op(Op::prefix(Rule::neg))
        .op(Op::infix(Rule::pow, Assoc::Right))
        .op(Op::postfix(Rule::index))
});

/// What an entry point parses; used in messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum What {
    Expr,
    VarDecl,
    ParamDecl,
    Network,
    Call,
}

impl What {
    fn rule(self) -> Rule {
        match self {
            What::Expr => Rule::expr_input,
            What::VarDecl => Rule::var_decl,
            What::ParamDecl => Rule::param_decl,
            What::Network => Rule::network,
            What::Call => Rule::call_input,
        }
    }

    /// The thing being parsed, with its article.
    pub(super) fn context(self) -> &'static str {
        match self {
            What::Expr => "an expression",
            What::VarDecl => "a variable declaration",
            What::ParamDecl => "a parameter declaration",
            What::Network => "a network definition",
            What::Call => "a call",
        }
    }

    fn example(self) -> &'static str {
        match self {
            What::Expr => "normal(x | g(z), 0.3)",
            What::VarDecl => "real[16] ~ normal(0, 1)",
            What::ParamDecl => "real[10, 128] = normal(0, 1)",
            What::Network => "mlp(z -> 200 -> 1, act = lrelu(0.2))",
            What::Call => "adam(lr = 1e-4)",
        }
    }
}

pub fn parse_expr(text: &str, map: &SpanMap) -> Result<Expr, SyntaxError> {
    run(text, map, What::Expr, |b, entry| {
        b.expr(b.child(entry.into_inner(), Rule::expr)?)
    })
}

pub fn parse_var_decl(text: &str, map: &SpanMap) -> Result<VarDecl, SyntaxError> {
    run(text, map, What::VarDecl, |b, entry| {
        b.var_decl(entry.into_inner())
    })
}

pub fn parse_param_decl(text: &str, map: &SpanMap) -> Result<ParamDecl, SyntaxError> {
    run(text, map, What::ParamDecl, |b, entry| {
        b.param_decl(entry.into_inner())
    })
}

pub fn parse_network(text: &str, map: &SpanMap) -> Result<NetworkDef, SyntaxError> {
    run(text, map, What::Network, |b, entry| {
        b.network(entry.into_inner())
    })
}

pub fn parse_call(text: &str, map: &SpanMap) -> Result<Call, SyntaxError> {
    run(text, map, What::Call, |b, entry| {
        let pair = b.next(&mut entry.into_inner())?;
        match pair.as_rule() {
            Rule::call => b.call(pair),
            _ => b.bare_call(pair),
        }
    })
}

/// Nesting up to this depth is parsed on the caller's stack; deeper input (up to
/// [`lex::MAX_DEPTH`]) on a helper thread with [`DEEP_STACK`] bytes of stack, since pest and the
/// builder recurse once or more per level (several KiB per level in unoptimised builds).
const INLINE_DEPTH: usize = 24;
const DEEP_STACK: usize = 64 << 20;

/// Runs the guards, pest and `build` on the entry rule's pair; errors get the inexact note when
/// the map is not exact.
fn run<T: Send>(
    text: &str,
    map: &SpanMap,
    what: What,
    build: impl FnOnce(&Builder<'_>, Pair<'_, Rule>) -> Result<T, SyntaxError> + Send,
) -> Result<T, SyntaxError> {
    let b = Builder::new(text, map, what);
    let depth = b.guard()?;
    let work = || {
        b.entry()
            .and_then(|entry| build(&b, entry))
            .map_err(|e| b.finish(e))
    };
    if depth <= INLINE_DEPTH {
        return work();
    }
    std::thread::scope(|scope| {
        match std::thread::Builder::new()
            .name("ebmc-parse".into())
            .stack_size(DEEP_STACK)
            .spawn_scoped(scope, work)
        {
            Ok(handle) => handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            // No thread to be had: refuse the input rather than risk the caller's stack.
            Err(_) => Err(b.finish(b.too_deep(Span::point(0)))),
        }
    })
}

/// The local span of a pair, without the trailing whitespace pest may include.
fn local(pair: &Pair<'_, Rule>) -> Span {
    let s = pair.as_span();
    let t = s.as_str().trim_end_matches(lex::is_ws);
    Span::new(s.start(), s.start() + t.len())
}

fn binop(rule: Rule) -> Option<BinOp> {
    Some(match rule {
        Rule::add => BinOp::Add,
        Rule::sub => BinOp::Sub,
        Rule::mul => BinOp::Mul,
        Rule::div => BinOp::Div,
        Rule::pow => BinOp::Pow,
        _ => return None,
    })
}

struct Builder<'a> {
    src: &'a str,
    map: &'a SpanMap,
    what: What,
}

impl<'a> Builder<'a> {
    fn new(src: &'a str, map: &'a SpanMap, what: What) -> Self {
        Builder { src, map, what }
    }

    fn span(&self, pair: &Pair<'_, Rule>) -> Span {
        self.map.map(local(pair))
    }

    /// Adds the inexact-location note when the map is not exact.
    fn finish(&self, e: SyntaxError) -> SyntaxError {
        if self.map.is_exact() { e } else { e.inexact() }
    }

    /// Checks what must be checked before pest sees the text: emptiness and nesting depth.
    /// Returns the nesting depth.
    fn guard(&self) -> Result<usize, SyntaxError> {
        let context = self.what.context();
        let src = self.src;
        if src.trim_matches(lex::is_ws).is_empty() {
            return Err(self.finish(SyntaxError::Empty {
                context,
                span: self.map.map(Span::new(0, src.len())),
                help: Some(format!(
                    "write {context} here, e.g. `{}`",
                    self.what.example()
                )),
            }));
        }
        match lex::nesting(src, &lex::tokens(src)) {
            (_, Some(at)) => Err(self.finish(self.too_deep(at))),
            (depth, None) => Ok(depth),
        }
    }

    /// Runs pest; returns the entry rule's pair, or the error in human terms.
    fn entry(&self) -> Result<Pair<'a, Rule>, SyntaxError> {
        match EbmcParser::parse(self.what.rule(), self.src) {
            Ok(mut pairs) => pairs.next().ok_or_else(|| self.bug(Span::point(0))),
            Err(e) => Err(self.convert(&e, &lex::tokens(self.src))),
        }
    }

    fn too_deep(&self, at: Span) -> SyntaxError {
        SyntaxError::TooDeep {
            context: self.what.context(),
            span: self.map.map(at),
            limit: lex::MAX_DEPTH,
            help: Some(
                "remove redundant parentheses or split the formula into simpler parts".into(),
            ),
        }
    }

    /// A structure the grammar guarantees was missing. Never expected; reported instead of a panic.
    fn bug(&self, at: Span) -> SyntaxError {
        SyntaxError::UnexpectedToken {
            context: self.what.context(),
            found: "input".into(),
            expected: "valid syntax".into(),
            span: self.map.map(at),
            help: Some("this is a bug in ebmc's parser; please report it with this input".into()),
        }
    }

    fn next<'i>(
        &self,
        pairs: &mut impl Iterator<Item = Pair<'i, Rule>>,
    ) -> Result<Pair<'i, Rule>, SyntaxError> {
        pairs
            .next()
            .ok_or_else(|| self.bug(Span::point(self.src.len())))
    }

    fn child<'i>(
        &self,
        mut pairs: Pairs<'i, Rule>,
        rule: Rule,
    ) -> Result<Pair<'i, Rule>, SyntaxError> {
        pairs
            .find(|p| p.as_rule() == rule)
            .ok_or_else(|| self.bug(Span::point(self.src.len())))
    }

    // ------------------------------------------------------------------ expressions

    fn expr(&self, pair: Pair<'_, Rule>) -> Result<Expr, SyntaxError> {
        PRATT
            .map_primary(|p| self.primary(p))
            .map_prefix(|op, rhs| {
                let rhs = rhs?;
                Ok(Expr {
                    span: self.span(&op).join(rhs.span),
                    kind: ExprKind::Unary {
                        op: UnaryOp::Neg,
                        arg: Box::new(rhs),
                    },
                })
            })
            .map_infix(|lhs, op, rhs| {
                let (lhs, rhs) = (lhs?, rhs?);
                let Some(op) = binop(op.as_rule()) else {
                    return Err(self.bug(local(&op)));
                };
                Ok(Expr {
                    span: lhs.span.join(rhs.span),
                    kind: ExprKind::Binary {
                        op,
                        lhs: Box::new(lhs),
                        rhs: Box::new(rhs),
                    },
                })
            })
            .map_postfix(|base, op| {
                let base = base?;
                let span = base.span.join(self.span(&op));
                let index = self.expr(self.child(op.into_inner(), Rule::expr)?)?;
                Ok(Expr {
                    span,
                    kind: ExprKind::Index {
                        base: Box::new(base),
                        index: Box::new(index),
                    },
                })
            })
            .parse(pair.into_inner())
    }

    fn primary(&self, pair: Pair<'_, Rule>) -> Result<Expr, SyntaxError> {
        // `primary` wraps exactly one operand.
        let pair = match pair.as_rule() {
            Rule::primary => self.next(&mut pair.into_inner())?,
            _ => pair,
        };
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::number => self.number(&pair)?,
            Rule::ident => ExprKind::Name(self.ident(&pair)),
            Rule::call => ExprKind::Call(self.call(pair)?),
            Rule::log_call => {
                let mut inner = pair.into_inner();
                let kw = self.next(&mut inner)?;
                let call = self.call(self.next(&mut inner)?)?;
                let value = Expr {
                    span: call.span,
                    kind: ExprKind::Call(call),
                };
                ExprKind::Call(Call {
                    callee: Ident {
                        name: "log".into(),
                        span: self.span(&kw),
                    },
                    given: None,
                    args: vec![Arg {
                        name: None,
                        span: value.span,
                        value,
                    }],
                    parenthesized: true,
                    span,
                })
            }
            Rule::group => {
                let mut items = self.exprs(pair.into_inner())?;
                if items.len() == 1 {
                    // `(e)` is `e`, its span widened over the parentheses.
                    let mut e = items.remove(0);
                    e.span = span;
                    return Ok(e);
                }
                ExprKind::Tuple(items)
            }
            Rule::list => ExprKind::List(self.exprs(pair.into_inner())?),
            _ => return Err(self.bug(local(&pair))),
        };
        Ok(Expr { kind, span })
    }

    /// Every `expr` child, in order (skipping punctuation).
    fn exprs(&self, pairs: Pairs<'_, Rule>) -> Result<Vec<Expr>, SyntaxError> {
        pairs
            .filter(|p| p.as_rule() == Rule::expr)
            .map(|p| self.expr(p))
            .collect()
    }

    fn number(&self, pair: &Pair<'_, Rule>) -> Result<ExprKind, SyntaxError> {
        let text = pair.as_str();
        let is_integer = !text.contains(['.', 'e', 'E']);
        match text.parse::<f64>() {
            Ok(value) if value.is_finite() => Ok(ExprKind::Number { value, is_integer }),
            _ => Err(SyntaxError::InvalidNumber {
                context: self.what.context(),
                literal: text.to_string(),
                span: self.span(pair),
                help: Some("the number is too large for a 64-bit float".into()),
            }),
        }
    }

    fn ident(&self, pair: &Pair<'_, Rule>) -> Ident {
        Ident {
            name: pair.as_str().to_string(),
            span: self.span(pair),
        }
    }

    fn call(&self, pair: Pair<'_, Rule>) -> Result<Call, SyntaxError> {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let callee = self.ident(&self.next(&mut inner)?);
        let mut given = None;
        let mut args = Vec::new();
        for p in inner {
            match p.as_rule() {
                Rule::named_arg => args.push(self.named_arg(p)?),
                Rule::expr => args.push(self.positional(p)?),
                Rule::bar => given = args.pop().map(|a: Arg| Box::new(a.value)),
                _ => {}
            }
        }
        Ok(Call {
            callee,
            given,
            args,
            parenthesized: true,
            span,
        })
    }

    /// A bare name where a call is expected: `reconstruction_mse`, `~ normal`.
    fn bare_call(&self, pair: Pair<'_, Rule>) -> Result<Call, SyntaxError> {
        if pair.as_rule() != Rule::ident {
            return Err(self.bug(local(&pair)));
        }
        let callee = self.ident(&pair);
        Ok(Call {
            span: callee.span,
            callee,
            given: None,
            args: Vec::new(),
            parenthesized: false,
        })
    }

    fn positional(&self, pair: Pair<'_, Rule>) -> Result<Arg, SyntaxError> {
        let value = self.expr(pair)?;
        Ok(Arg {
            name: None,
            span: value.span,
            value,
        })
    }

    fn named_arg(&self, pair: Pair<'_, Rule>) -> Result<Arg, SyntaxError> {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let name = self.ident(&self.next(&mut inner)?);
        let value = self.expr(self.child(inner, Rule::expr)?)?;
        Ok(Arg {
            name: Some(name),
            value,
            span,
        })
    }

    // ------------------------------------------------------------------ declarations

    fn type_expr(&self, pair: Pair<'_, Rule>) -> Result<TypeExpr, SyntaxError> {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let name = self.ident(&self.next(&mut inner)?);
        let dims = self.exprs(inner)?;
        Ok(TypeExpr { name, dims, span })
    }

    fn var_decl(&self, pairs: Pairs<'_, Rule>) -> Result<VarDecl, SyntaxError> {
        let mut observed = None;
        let mut ty = None;
        let mut range = None;
        let mut reference = None;
        let mut span: Option<Span> = None;
        for p in pairs {
            if p.as_rule() == Rule::EOI {
                continue;
            }
            let s = self.span(&p);
            span = Some(span.map_or(s, |a| a.join(s)));
            match p.as_rule() {
                Rule::observed_kw => observed = Some(s),
                Rule::type_expr => ty = Some(self.type_expr(p)?),
                Rule::range => {
                    let [lo, hi]: [Expr; 2] = self
                        .exprs(p.into_inner())?
                        .try_into()
                        .map_err(|_| self.bug(s))?;
                    range = Some(Range { lo, hi, span: s });
                }
                Rule::reference => {
                    let target =
                        self.next(&mut p.into_inner().filter(|q| q.as_rule() != Rule::tilde))?;
                    reference = Some(match target.as_rule() {
                        Rule::call => self.call(target)?,
                        _ => self.bare_call(target)?,
                    });
                }
                _ => {}
            }
        }
        let span = span.unwrap_or_default();
        let ty = ty.ok_or_else(|| self.bug(span))?;
        Ok(VarDecl {
            observed,
            ty,
            range,
            reference,
            span,
        })
    }

    fn param_decl(&self, pairs: Pairs<'_, Rule>) -> Result<ParamDecl, SyntaxError> {
        let mut ty = None;
        let mut init = None;
        for p in pairs {
            match p.as_rule() {
                Rule::type_expr => ty = Some(self.type_expr(p)?),
                Rule::expr => init = Some(self.expr(p)?),
                _ => {}
            }
        }
        let ty: TypeExpr = ty.ok_or_else(|| self.bug(Span::point(0)))?;
        let span = init.as_ref().map_or(ty.span, |e| ty.span.join(e.span));
        Ok(ParamDecl { ty, init, span })
    }

    // ------------------------------------------------------------------ networks

    fn network(&self, pairs: Pairs<'_, Rule>) -> Result<NetworkDef, SyntaxError> {
        let stages = pairs
            .filter(|p| p.as_rule() == Rule::stage)
            .map(|p| self.stage(p))
            .collect::<Result<Vec<_>, _>>()?;
        let span = match (stages.first(), stages.last()) {
            (Some(a), Some(b)) => a.span.join(b.span),
            _ => return Err(self.bug(Span::point(0))),
        };
        Ok(NetworkDef { stages, span })
    }

    fn stage(&self, pair: Pair<'_, Rule>) -> Result<Stage, SyntaxError> {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let name = self.ident(&self.next(&mut inner)?);
        let mut chain = Vec::new();
        let mut args = Vec::new();
        let mut parenthesized = false;
        for p in inner {
            match p.as_rule() {
                Rule::lparen => parenthesized = true,
                Rule::chain => {
                    chain = p
                        .into_inner()
                        .filter(|q| q.as_rule() == Rule::chain_item)
                        .map(|q| self.chain_item(q))
                        .collect::<Result<_, _>>()?
                }
                Rule::named_arg => args.push(self.named_arg(p)?),
                Rule::expr => args.push(self.positional(p)?),
                _ => {}
            }
        }
        Ok(Stage {
            name,
            chain,
            args,
            parenthesized,
            span,
        })
    }

    fn chain_item(&self, pair: Pair<'_, Rule>) -> Result<ChainItem, SyntaxError> {
        let span = self.span(&pair);
        let mut exprs = self.exprs(pair.into_inner())?.into_iter();
        let value = exprs.next().ok_or_else(|| self.bug(span))?;
        Ok(ChainItem {
            value,
            at: exprs.next(),
            span,
        })
    }

    // ------------------------------------------------------------------ errors

    /// Turns a pest error into a human one.
    fn convert(&self, err: &pest::error::Error<Rule>, toks: &[Tok]) -> SyntaxError {
        let src = self.src;
        let context = self.what.context();
        let pos = match err.location {
            InputLocation::Pos(p) => p,
            InputLocation::Span((s, _)) => s,
        };
        let positives: &[Rule] = match &err.variant {
            ErrorVariant::ParsingError { positives, .. } => positives,
            // pest's own stack or call limit.
            ErrorVariant::CustomError { .. } => {
                return self.too_deep(Span::point(pos.min(src.len())));
            }
        };
        let end = src.trim_end_matches(lex::is_ws).len();
        let m = |s: Span| self.map.map(s);

        // A malformed number at or before the failure.
        if let Some(t) = toks
            .iter()
            .find(|t| t.kind == TokKind::Number { valid: false } && t.span.start <= pos)
        {
            let literal = t.text(src).to_string();
            return SyntaxError::InvalidNumber {
                context,
                help: Some(lex::number_help(&literal)),
                literal,
                span: m(t.span),
            };
        }

        // Delimiters.
        let ch = |s: Span| src[s.start..].chars().next().unwrap_or('?');
        let partner = |c: char| match c {
            '(' => ')',
            ')' => '(',
            '[' => ']',
            _ => '[',
        };
        match lex::delimiters(src, toks) {
            Some(Delim::Unmatched { close }) if close.start <= pos => {
                let c = ch(close);
                return SyntaxError::UnmatchedDelimiter {
                    context,
                    close: c,
                    open: partner(c),
                    span: m(close),
                    help: Some(format!(
                        "remove it, or add the missing `{}` before it",
                        partner(c)
                    )),
                };
            }
            Some(Delim::Mismatched { open, close }) if close.start <= pos => {
                let (o, c) = (ch(open), ch(close));
                return SyntaxError::MismatchedDelimiter {
                    context,
                    open: o,
                    close: c,
                    open_span: m(open),
                    span: m(close),
                    help: Some(format!("close `{o}` with `{}`", partner(o))),
                };
            }
            Some(Delim::Unclosed { open }) if pos >= end => {
                let o = ch(open);
                return SyntaxError::UnclosedDelimiter {
                    context,
                    open: o,
                    close: partner(o),
                    open_span: m(open),
                    span: m(Span::point(end)),
                    help: Some(format!("add the missing `{}`", partner(o))),
                };
            }
            _ => {}
        }

        let expected = expected_phrase(positives);
        let at = toks.iter().position(|t| t.span.end > pos);
        // `log x`: the `log` prefix form needs a call after it.
        let before: Vec<&str> = toks
            .iter()
            .filter(|t| t.span.end <= pos)
            .rev()
            .take(2)
            .map(|t| t.text(src))
            .collect();
        let log_help = (expected == "`(`" && before.len() == 2 && before[1] == "log" && lex::is_name(before[0])).then(|| {
            format!("`log {0}` needs a call after `log`, as in `log normal(z | m, s)`; for a logarithm write `log({0})`", before[0])
        });
        let Some(tok) = at.and_then(|i| toks.get(i)).filter(|_| pos < end) else {
            let help = log_help.or_else(|| self.context_help(&expected));
            return SyntaxError::UnexpectedEnd {
                context,
                expected,
                span: m(Span::point(end)),
                help,
            };
        };
        let text = tok.text(src);

        // Operators from other languages.
        if tok.kind == TokKind::Punct && matches!(text, "**" | ":=" | "==") {
            let help = if text == "**" {
                "use `^` for powers: `z^2`".to_string()
            } else if self.what == What::ParamDecl
                && !lex::inside_brackets(src, toks, tok.span.start)
            {
                "write the initial value after a single `=`: `real[16] = 0`".to_string()
            } else {
                "named arguments use a single `=`: `lr = 1e-4`".to_string()
            };
            return SyntaxError::WrongOperator {
                context,
                found: text.to_string(),
                span: m(tok.span),
                help: Some(help),
            };
        }

        // `f(a b)`: two arguments or items with only whitespace between them.
        let prev = at.and_then(|i| i.checked_sub(1)).and_then(|i| toks.get(i));
        if positives.contains(&Rule::comma)
            && matches!(tok.kind, TokKind::Ident | TokKind::Number { .. })
            && !(self.what == What::VarDecl && matches!(text, "in" | "observed"))
            && prev.is_some_and(|p| {
                p.span.end < tok.span.start
                    && (matches!(p.kind, TokKind::Ident | TokKind::Number { .. })
                        || matches!(p.text(src), ")" | "]"))
            })
            && lex::inside_brackets(src, toks, tok.span.start)
        {
            let help = if positives.contains(&Rule::eq) {
                "separate arguments with `,`, or name an argument with `=`: `lr = 1e-4`"
            } else {
                "separate arguments and list items with `,`"
            };
            return SyntaxError::MissingComma {
                context,
                span: m(tok.span),
                help: Some(help.into()),
            };
        }

        let help = if self.what == What::VarDecl && text == "observed" {
            Some("`observed` comes first: `observed image[1, 28, 28]`".to_string())
        } else if log_help.is_some() {
            log_help
        } else {
            self.context_help(&expected)
        };
        SyntaxError::UnexpectedToken {
            context,
            found: lex::describe(tok, src),
            expected,
            span: m(tok.span),
            help,
        }
    }

    /// The general shape of what is parsed, for declarations, networks and calls.
    fn context_help(&self, expected: &str) -> Option<String> {
        match self.what {
            What::Expr => None,
            w if expected.contains(w.example()) => None,
            w => Some(format!(
                "{} looks like `{}`",
                capitalize(w.context()),
                w.example()
            )),
        }
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map_or_else(String::new, |f| f.to_uppercase().chain(c).collect())
}

/// How a rule reads in "expected ..." (with a sort key), or `None` for rules never worth naming.
fn rule_phrase(rule: Rule) -> Option<(u8, &'static str)> {
    Some(match rule {
        Rule::expr
        | Rule::primary
        | Rule::neg
        | Rule::log_call
        | Rule::group
        | Rule::list
        | Rule::chain
        | Rule::chain_item => (0, "an expression"),
        Rule::call => (1, "a call such as `f(z)`"),
        Rule::named_arg => (2, "a named argument such as `lr = 1e-4`"),
        Rule::type_expr | Rule::type_name => (0, "a type such as `real[16]`"),
        Rule::stage | Rule::stage_name => (0, "a stage such as `linear(10)` or `flatten`"),
        Rule::ident => (3, "a name"),
        Rule::number => (4, "a number"),
        Rule::observed_kw => (5, "`observed`"),
        Rule::add | Rule::sub | Rule::mul | Rule::div | Rule::pow | Rule::infix => {
            (6, "an operator")
        }
        Rule::index | Rule::lbrack => (7, "`[`"),
        Rule::eq => (8, "`=`"),
        Rule::bar => (9, "`|`"),
        Rule::at => (10, "`@`"),
        Rule::arrow => (11, "`->`"),
        Rule::range | Rule::in_kw => (12, "`in [LO, HI]`"),
        Rule::reference | Rule::tilde => (13, "`~` and a distribution"),
        Rule::lparen => (14, "`(`"),
        Rule::comma => (15, "`,`"),
        Rule::rparen => (16, "`)`"),
        Rule::rbrack => (17, "`]`"),
        Rule::EOI => (18, "the end of the text"),
        // Entry rules are reported when nothing at all matched at the start.
        Rule::expr_input => (0, "an expression"),
        Rule::var_decl => (0, "`observed` or a type such as `real[16]`"),
        Rule::param_decl => (0, "a type such as `real[16]`"),
        Rule::network => (0, "a stage such as `linear(10)` or `flatten`"),
        Rule::call_input => (0, "a call such as `adam(lr = 1e-4)`"),
        Rule::WHITESPACE
        | Rule::ident_char
        | Rule::log_kw
        | Rule::call_args
        | Rule::arg
        | Rule::stage_args => return None,
    })
}

/// "an operator, `,` or `)`".
fn expected_phrase(positives: &[Rule]) -> String {
    let mut phrases: Vec<(u8, &str)> = positives.iter().filter_map(|&r| rule_phrase(r)).collect();
    phrases.sort();
    phrases.dedup();
    // After a complete operand, `[` (indexing) and `(` (a call, after a name) are implied by "an
    // operator" and only add noise; likewise "a name" (a named argument) next to "an expression".
    if phrases.iter().any(|p| p.1 == "an operator") {
        phrases.retain(|p| p.1 != "`[`" && p.1 != "`(`");
    }
    if phrases.iter().any(|p| p.1 == "an expression") {
        phrases.retain(|p| p.1 != "a name");
    }
    let words: Vec<&str> = phrases.into_iter().map(|p| p.1).collect();
    match words.as_slice() {
        [] => "something else".into(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}
