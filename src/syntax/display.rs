//! Canonical source text for syntax trees: `normal(x | g(z), 0.3)`, `-dot(t(x), stats(z))`,
//! `a + b * c`, `(a + b)^2`. Parentheses are printed only where the grammar needs them, so the output
//! parses back to the same tree (up to spans; `log normal(...)` prints as `log(normal(...))`).

use std::fmt::{self, Display, Formatter, Write};

use super::ast::*;

/// Binding strength, lowest first.
const PREC_ADD: u8 = 1;
const PREC_MUL: u8 = 2;
const PREC_NEG: u8 = 3;
const PREC_POW: u8 = 4;
const PREC_ATOM: u8 = 5;

fn binop_prec(op: BinOp) -> u8 {
    match op {
        BinOp::Add | BinOp::Sub => PREC_ADD,
        BinOp::Mul | BinOp::Div => PREC_MUL,
        BinOp::Pow => PREC_POW,
    }
}

fn prec(e: &Expr) -> u8 {
    match &e.kind {
        ExprKind::Binary { op, .. } => binop_prec(*op),
        ExprKind::Unary { .. } => PREC_NEG,
        _ => PREC_ATOM,
    }
}

/// Writes `e`, parenthesized when it binds less tightly than `min`.
fn operand(f: &mut Formatter<'_>, e: &Expr, min: u8) -> fmt::Result {
    if prec(e) < min {
        write!(f, "({e})")
    } else {
        write!(f, "{e}")
    }
}

fn comma_list<T: Display>(f: &mut Formatter<'_>, items: &[T]) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}

fn number(f: &mut Formatter<'_>, value: f64, is_integer: bool) -> fmt::Result {
    if is_integer {
        write!(f, "{value}")
    } else {
        // `{:?}` keeps a `.` or an exponent (`1.0`, `2e-5`), so the literal stays non-integer.
        write!(f, "{value:?}")
    }
}

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ExprKind::Number { value, is_integer } => number(f, *value, *is_integer),
            ExprKind::Name(id) => f.write_str(&id.name),
            ExprKind::Unary {
                op: UnaryOp::Neg,
                arg,
            } => {
                f.write_char('-')?;
                operand(f, arg, PREC_NEG)
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let p = binop_prec(*op);
                // Left-associative operators need parentheses around an equal-precedence right
                // operand; `^` (right-associative) around an equal-precedence left one.
                let (lmin, rmin) = if *op == BinOp::Pow {
                    (p + 1, p)
                } else {
                    (p, p + 1)
                };
                operand(f, lhs, lmin)?;
                if *op == BinOp::Pow {
                    f.write_char('^')?;
                } else {
                    write!(f, " {} ", op.symbol())?;
                }
                operand(f, rhs, rmin)
            }
            ExprKind::Call(call) => write!(f, "{call}"),
            ExprKind::Index { base, index } => {
                operand(f, base, PREC_ATOM)?;
                write!(f, "[{index}]")
            }
            ExprKind::Tuple(items) => {
                f.write_char('(')?;
                comma_list(f, items)?;
                f.write_char(')')
            }
            ExprKind::List(items) => {
                f.write_char('[')?;
                comma_list(f, items)?;
                f.write_char(']')
            }
        }
    }
}

impl Display for Arg {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if let Some(name) = &self.name {
            write!(f, "{} = ", name.name)?;
        }
        write!(f, "{}", self.value)
    }
}

impl Display for Call {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(&self.callee.name)?;
        if !self.parenthesized && self.given.is_none() && self.args.is_empty() {
            return Ok(());
        }
        f.write_char('(')?;
        if let Some(given) = &self.given {
            write!(f, "{given} | ")?;
        }
        comma_list(f, &self.args)?;
        f.write_char(')')
    }
}

impl Display for TypeExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}[", self.name.name)?;
        comma_list(f, &self.dims)?;
        f.write_char(']')
    }
}

impl Display for VarDecl {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if self.observed.is_some() {
            f.write_str("observed ")?;
        }
        write!(f, "{}", self.ty)?;
        if let Some(r) = &self.range {
            write!(f, " in [{}, {}]", r.lo, r.hi)?;
        }
        if let Some(d) = &self.reference {
            write!(f, " ~ {d}")?;
        }
        Ok(())
    }
}

impl Display for ParamDecl {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.ty)?;
        if let Some(init) = &self.init {
            write!(f, " = {init}")?;
        }
        Ok(())
    }
}

impl Display for ChainItem {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.value)?;
        if let Some(at) = &self.at {
            write!(f, "@{at}")?;
        }
        Ok(())
    }
}

impl Display for Stage {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name.name)?;
        if !self.parenthesized && self.chain.is_empty() && self.args.is_empty() {
            return Ok(());
        }
        f.write_char('(')?;
        for (i, item) in self.chain.iter().enumerate() {
            if i > 0 {
                f.write_str(" -> ")?;
            }
            write!(f, "{item}")?;
        }
        for (i, arg) in self.args.iter().enumerate() {
            if i > 0 || !self.chain.is_empty() {
                f.write_str(", ")?;
            }
            write!(f, "{arg}")?;
        }
        f.write_char(')')
    }
}

impl Display for NetworkDef {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for (i, stage) in self.stages.iter().enumerate() {
            if i > 0 {
                f.write_str(" -> ")?;
            }
            write!(f, "{stage}")?;
        }
        Ok(())
    }
}
