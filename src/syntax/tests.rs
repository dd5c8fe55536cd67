//! Tests of the grammar (rule by rule), the AST builder (precedence, spans), the error conversion
//! (codes, labels, help) and the canonical printer.

use miette::Diagnostic;
use pest::Parser;

use super::ast::*;
use super::parser::{EbmcParser, Rule};
use super::*;
use crate::source::{Span, SpanMap};

// ---------------------------------------------------------------------------------------- helpers

/// Parses `input` with `rule` alone and checks that the whole input was consumed.
fn consumes(rule: Rule, input: &str) -> Result<(), String> {
    let pairs = EbmcParser::parse(rule, input).map_err(|e| e.to_string())?;
    // Rules that produce no pairs (silent rules of plain characters) consume one character here.
    let end = pairs.map(|p| p.as_span().end()).max();
    match end {
        Some(end) if end == input.len() => Ok(()),
        None if input.chars().count() == 1 => Ok(()),
        Some(end) => Err(format!("stopped at byte {end} of {}", input.len())),
        None => Err("produced nothing".into()),
    }
}

/// `assert_rule!(rule, [accepted...], [rejected...])`: each accepted string is parsed by the rule
/// alone and consumed whole; each rejected one is not.
macro_rules! assert_rule {
    ($rule:expr, [$($ok:expr),* $(,)?], [$($bad:expr),* $(,)?]) => {{
        let rule: Rule = $rule;
        let oks: &[&str] = &[$($ok),*];
        let bads: &[&str] = &[$($bad),*];
        for ok in oks {
            if let Err(e) = consumes(rule, ok) {
                panic!("{rule:?} should accept {ok:?}: {e}");
            }
        }
        for bad in bads {
            assert!(consumes(rule, bad).is_err(), "{rule:?} should reject {bad:?}");
        }
    }};
}

/// Generates one test per grammar rule and the list of tested rules.
macro_rules! rule_tests {
    ($($rule:ident { accept: [$($ok:expr),* $(,)?], reject: [$($bad:expr),* $(,)?] $(,)? })*) => {
        #[allow(non_snake_case)]
        mod rule {
            use super::*;
            $(
                #[test]
                fn $rule() {
                    assert_rule!(Rule::$rule, [$($ok),*], [$($bad),*]);
                }
            )*
            pub const TESTED: &[Rule] = &[$(Rule::$rule),*];
        }
    };
}

fn off() -> SpanMap {
    SpanMap::Offset(0)
}

fn expr(s: &str) -> Expr {
    parse_expr(s, &off()).unwrap_or_else(|e| panic!("{s:?} should parse: {e:?}"))
}

fn expr_err(s: &str) -> SyntaxError {
    match parse_expr(s, &off()) {
        Ok(e) => panic!("{s:?} should fail, parsed as {e}"),
        Err(e) => e,
    }
}

/// A compact s-expression of the tree: `(+ a (* b c))`, `(normal x | m s)`, `(= lr 1e-4)`.
fn sexp(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Number {
            value,
            is_integer: true,
        } => format!("{value}"),
        ExprKind::Number {
            value,
            is_integer: false,
        } => format!("{value:?}"),
        ExprKind::Name(id) => id.name.clone(),
        ExprKind::Unary { arg, .. } => format!("(neg {})", sexp(arg)),
        ExprKind::Binary { op, lhs, rhs } => {
            format!("({} {} {})", op.symbol(), sexp(lhs), sexp(rhs))
        }
        ExprKind::Call(c) => call_sexp(c),
        ExprKind::Index { base, index } => format!("(idx {} {})", sexp(base), sexp(index)),
        ExprKind::Tuple(items) => list_sexp("tuple", items),
        ExprKind::List(items) => list_sexp("list", items),
    }
}

fn list_sexp(head: &str, items: &[Expr]) -> String {
    let mut s = format!("({head}");
    for i in items {
        s.push(' ');
        s.push_str(&sexp(i));
    }
    s.push(')');
    s
}

fn call_sexp(c: &Call) -> String {
    if !c.parenthesized {
        return c.callee.name.clone();
    }
    let mut s = format!("({}", c.callee.name);
    if let Some(g) = &c.given {
        s.push_str(&format!(" {} |", sexp(g)));
    }
    for a in &c.args {
        match &a.name {
            Some(n) => s.push_str(&format!(" (= {} {})", n.name, sexp(&a.value))),
            None => s.push_str(&format!(" {}", sexp(&a.value))),
        }
    }
    s.push(')');
    s
}

fn sx(s: &str) -> String {
    sexp(&expr(s))
}

/// The text a span covers in `src` (for `Offset(0)` maps).
fn at(src: &str, span: Span) -> &str {
    &src[span.start..span.end]
}

fn labels(e: &SyntaxError) -> Vec<(Option<String>, Span)> {
    e.labels()
        .map(|ls| {
            ls.map(|l| {
                (
                    l.label().map(str::to_string),
                    Span::new(l.offset(), l.offset() + l.len()),
                )
            })
            .collect()
        })
        .unwrap_or_default()
}

fn code(e: &SyntaxError) -> String {
    e.code().map(|c| c.to_string()).unwrap_or_default()
}

// ------------------------------------------------------------------------------------ rule tests

rule_tests! {
    WHITESPACE { accept: [" ", "\t", "\n", "\r"], reject: ["x", "#"] }
    ident_char { accept: ["a", "Z", "_", "0"], reject: ["-", " ", "."] }
    ident {
        accept: ["x", "_a", "reconstruction_mse", "A1_b2", "observed", "log", "in", "z2"],
        reject: ["1x", "a-b", "a.b", "", "é", "a b", "-a"],
    }
    number {
        accept: ["3", "0.3", "2e-5", "1.5E+3", "10", "1e10", "007", "0.5e3"],
        reject: [".5", "3.", "1e", "-1", "1.2.3", "e5", "1e+", "1x", ""],
    }
    observed_kw { accept: ["observed"], reject: ["observedd", "Observed", "observed_x", "obs"] }
    in_kw { accept: ["in"], reject: ["inside", "In", "i"] }
    log_kw { accept: ["log"], reject: ["logs", "log_p", "lo"] }
    lparen { accept: ["("], reject: [")", "["] }
    rparen { accept: [")"], reject: ["(", "]"] }
    lbrack { accept: ["["], reject: ["]", "("] }
    rbrack { accept: ["]"], reject: ["[", ")"] }
    comma { accept: [","], reject: [";", "."] }
    bar { accept: ["|"], reject: ["||", "/"] }
    eq { accept: ["="], reject: ["==", ":=", "-"] }
    arrow { accept: ["->"], reject: ["-", ">", "=>", "- >"] }
    at { accept: ["@"], reject: ["a", "@@"] }
    tilde { accept: ["~"], reject: ["-", "~~"] }
    neg { accept: ["-"], reject: ["->", "+", "--"] }
    add { accept: ["+"], reject: ["-", "++"] }
    sub { accept: ["-"], reject: ["->", "+"] }
    mul { accept: ["*"], reject: ["**", "/"] }
    div { accept: ["/"], reject: ["//", "*"] }
    pow { accept: ["^"], reject: ["**", "^^"] }
    infix { accept: ["+", "-", "*", "/", "^"], reject: ["**", "->", "%", "="] }
    index { accept: ["[0]", "[y]", "[ i + 1 ]", "[f(z)[0]]"], reject: ["[]", "[1, 2]", "[", "0]"] }
    expr {
        accept: [
            "x", "3", "f(z)", "-x", "--x", "a + b * c ^ d", "-z^2", "a - b - c", "2 ^ 3 ^ 2",
            "normal(x | g(z), 0.3)", "-dot(t(x), stats(z))", "mu[y]", "f(z)[0]", "f(z)[0][1]",
            "log normal(z | m, s)", "log categorical(y | p)", "log(x)", "[z, z^2]", "(0.5, 0.999)",
            "(a + b) * c", "2^-1", "a*b/c-d+e", "sum(e, y)", "x\n  + y", "a -b", "f (z)", "[]",
        ],
        reject: [
            "", "a +", "a b", "a ** b", "f(z", "a -> b", "x |", "a = b", "(a,)", "()", "log normal",
            "log x", "a[]", "a[1, 2]", "1x", ".5", "x,", "f(z))", "a @ b", "~x",
        ],
    }
    primary {
        accept: ["f(z)", "(a)", "(a, b)", "[1]", "3", "x", "log normal(z | m, s)"],
        reject: ["-x", "a + b", "", ")", "x[0]"],
    }
    log_call {
        accept: ["log normal(z | m, s)", "log categorical(y | p)", "log  f()", "log\nf(x)"],
        reject: ["log(x)", "log x", "lognormal(x)", "log normal", "log log f(x)", "log 3"],
    }
    call {
        accept: [
            "f(z)", "f()", "normal(x | g(z), 0.3)", "bernoulli(x | logits = l)",
            "adam(lr = 1e-4, betas = (0.5, 0.999))", "f (z)", "f(a, b = 1, c)", "f( a )",
            "samples(64)", "langevin(steps = 60, step_size = 0.4)", "sgld(init = uniform(-1, 1))",
            "f(\n  a,\n  b\n)", "f([1, 10, all])", "f(x | y)",
        ],
        reject: [
            "f", "f(", "f(a,)", "f(,)", "f(x |)", "f(a = 1 | b)", "f(x | y | z)", "(f)(x)",
            "f(a b)", "3(x)", "f(a == 1)", "f(a := 1)", "f(|x)", "f(z)[0]",
        ],
    }
    call_args { accept: ["x | m, s", "lr = 1", "a, b", "a", "x | logits = l", "a, b = 2"], reject: ["", "| a", "a |", "a = 1 | b"] }
    arg { accept: ["a = 1", "a + 1", "(1, 2)", "f(x)"], reject: ["", "= 1", "a ="] }
    named_arg {
        accept: ["lr = 1e-4", "act = lrelu(0.2)", "betas = (0.5, 0.999)", "a=b", "x = [1, 2]"],
        reject: ["lr == 1", "1 = 2", "lr := 1", "lr =", "f(x) = 1", "lr"],
    }
    group { accept: ["(a)", "(a, b)", "(0.5, 0.999)", "((a))", "( a , b , c )"], reject: ["()", "(a,)", "(a b)", "(a", "(,)"] }
    list { accept: ["[]", "[1]", "[1, 10, all]", "[-1, 1]", "[ [1], [2] ]"], reject: ["[1,]", "[,]", "[1 2]", "[1"] }
    type_expr {
        accept: ["real[16]", "image[1, 28, 28]", "onehot[10]", "image", "real[2 * 8]", "real [ 16 ]"],
        reject: ["real[]", "real[16", "[16]", "16[3]", "real[16,]", "real(16)", "in[3]"],
    }
    type_name { accept: ["real", "image", "x_1", "inside", "observedd"], reject: ["1real", "real[3]", "", "in", "observed"] }
    stage_name { accept: ["mlp", "flatten"], reject: ["3", "mlp(", ""] }
    range { accept: ["in [-1, 1]", "in[0,1]", "in [ 0 , 1 ]"], reject: ["in [1]", "in [1, 2, 3]", "in (0, 1)", "inside [0, 1]", "in"] }
    reference { accept: ["~ normal(0, 1)", "~ uniform", "~normal(0,1)"], reject: ["~", "~ 3", "normal(0, 1)", "~ -x"] }
    stage {
        accept: [
            "flatten", "linear(10)", "linear(2 * 128)", "mlp(z -> 200 -> 1, act = lrelu(0.2))", "f()",
            "mlp(act = relu)", "conv(x -> 32 -> 64@14)", "encoder(x -> 512 -> normal(z))", "mlp(z -> 1, 3)",
            "deconv(z -> 128@7 -> 64@14 -> 1@28, act = lrelu(0.1), out = tanh)",
            "conv(x -> 32, kernel = [3, 3], stride = 1)",
        ],
        reject: ["mlp(z -> )", "mlp(-> 1)", "10", "mlp(z -> 1,)", "mlp(z, -> 1)", "mlp(z -> 1 act = relu)", "(mlp)"],
    }
    stage_args { accept: ["z -> 1, act = relu", "act = relu", "2 * 128", "x -> 1, 3"], reject: ["", ", a", "z ->"] }
    chain { accept: ["z -> 200 -> 1", "x", "64@14", "x -> 1@28", "x->y"], reject: ["z ->", "@3", "-> x", "a -> -> b"] }
    chain_item { accept: ["64@14", "2 * 128", "normal(z)", "a @ b", "-1", "2*64@7*2"], reject: ["64@", "@14", "a -> b", "1@2@3"] }
    expr_input { accept: ["f(z)", "  f(z)  ", "a +\n  b", "normal(x | g(z), 0.3)"], reject: ["", " ", "f(z) g(z)"] }
    var_decl {
        accept: [
            "observed image[1, 28, 28] in [-1, 1]", "real[16] ~ normal(0, 1)", "observed onehot[10]",
            "observedd[3]", "observed real[3] in [0, 1] ~ normal(0, 1)", "real[16]", "real[16] ~ normal",
            "  observed\n  image[1, 28, 28]\n  in [-1, 1]", "observed image in [-1, 1]", "image", "real ~ normal(0, 1)",
        ],
        reject: [
            "observed", "", "observed observed[3]", "observed in [-1, 1]", "real[]", "real[3] observed", "real[16] ~", "real[16] in [0]",
            "real[16] ~ normal(0, 1) in [0, 1]", "observedreal[3] in [0 1]", "real[16] = 0",
        ],
    }
    param_decl {
        accept: ["real[10, 128] = normal(0, 1)", "real[3] = 0", "real[3]", "real[3] = -0.5", "real[2] = [1, 2]"],
        reject: ["real[3] =", "real[3] == 0", "= 0", "real[] = 0", "real[3] ~ normal(0, 1)"],
    }
    network {
        accept: [
            "mlp(z -> 200 -> 200 -> 1, act = lrelu(0.2))", "conv(x -> 32) -> linear(10)", "flatten",
            "flatten -> linear(10) -> tanh", "deconv(z -> 128@7 -> 64@14 -> 1@28, act = lrelu(0.1), out = tanh)",
            "encoder(x -> 512 -> 512 -> normal(z))", "linear(2 * 128)",
            "conv(x -> 32 -> 64@14,\n     kernel = 3)\n-> flatten",
        ],
        reject: ["", "mlp(z -> 1) ->", "-> mlp(z)", "mlp(z -> 1) linear(3)", "3", "mlp(z -> 1), linear(2)"],
    }
    call_input {
        accept: [
            "langevin(steps = 60, step_size = 0.4)", "adam(lr = 2e-5, betas = (0.5, 0.999))", "samples(64)",
            "reconstruction_mse", "f()", "sgd(lr = 0.1)", "x(a = [1, 10, all])",
        ],
        reject: ["", "3", "f(", "a b", "f(x) + 1", "-f(x)", "f(x)[0]"],
    }
    EOI { accept: [""], reject: ["x"] }
}

#[test]
fn every_grammar_rule_has_accept_and_reject_cases() {
    for r in Rule::all_rules() {
        assert!(rule::TESTED.contains(r), "no rule test for {r:?}");
    }
}

// ------------------------------------------------------------------------------------ precedence

#[test]
fn precedence_and_associativity() {
    let cases = [
        ("a + b * c ^ d", "(+ a (* b (^ c d)))"),
        ("-z^2", "(neg (^ z 2))"),
        ("a - b - c", "(- (- a b) c)"),
        ("2 ^ 3 ^ 2", "(^ 2 (^ 3 2))"),
        ("a / b * c", "(* (/ a b) c)"),
        ("a * b / c", "(/ (* a b) c)"),
        ("a + b - c", "(- (+ a b) c)"),
        ("-a * b", "(* (neg a) b)"),
        ("-a + b", "(+ (neg a) b)"),
        ("-a[0]", "(neg (idx a 0))"),
        ("f(z)[0]", "(idx (f z) 0)"),
        ("a^b[0]", "(^ a (idx b 0))"),
        ("2^-1", "(^ 2 (neg 1))"),
        ("(a + b) * c", "(* (+ a b) c)"),
        ("- - a", "(neg (neg a))"),
        ("a - -b", "(- a (neg b))"),
        ("a * -b", "(* a (neg b))"),
        ("x[1][2]", "(idx (idx x 1) 2)"),
        ("(a)", "a"),
        ("((a))", "a"),
        ("(a, b)", "(tuple a b)"),
        ("[]", "(list)"),
        ("[z, z^2]", "(list z (^ z 2))"),
        ("a*b^c^d/e", "(/ (* a (^ b (^ c d))) e)"),
        ("(-a)^2", "(^ (neg a) 2)"),
        ("(a^b)^c", "(^ (^ a b) c)"),
        ("mu[y] + 1", "(+ (idx mu y) 1)"),
        ("(a + b)[0]", "(idx (+ a b) 0)"),
    ];
    for (src, want) in cases {
        assert_eq!(sx(src), want, "{src}");
    }
}

#[test]
fn calls_given_named_and_log_sugar() {
    let cases = [
        ("normal(x | g(z), 0.3)", "(normal x | (g z) 0.3)"),
        ("bernoulli(x | logits = l)", "(bernoulli x | (= logits l))"),
        ("bernoulli(x | p)", "(bernoulli x | p)"),
        ("log normal(z | m, s)", "(log (normal z | m s))"),
        ("log categorical(y | p)", "(log (categorical y | p))"),
        ("log normal(z | m, s) + 1", "(+ (log (normal z | m s)) 1)"),
        (
            "-log normal(z | m, s)^2",
            "(neg (^ (log (normal z | m s)) 2))",
        ),
        ("log(x)", "(log x)"),
        ("log", "log"),
        ("log + 1", "(+ log 1)"),
        ("-dot(t(x), stats(z))", "(neg (dot (t x) (stats z)))"),
        (
            "adam(lr = 1e-4, betas = (0.5, 0.999))",
            "(adam (= lr 0.0001) (= betas (tuple 0.5 0.999)))",
        ),
        ("f()", "(f)"),
        ("f(a, b = 1, c)", "(f a (= b 1) c)"),
        ("sum(e, y)", "(sum e y)"),
        ("dot(y, f(z))", "(dot y (f z))"),
        ("f(x | a + b)", "(f x | (+ a b))"),
        ("f(x - 1 | m)", "(f (- x 1) | m)"),
    ];
    for (src, want) in cases {
        assert_eq!(sx(src), want, "{src}");
    }
}

#[test]
fn number_literals() {
    let num = |s: &str| match expr(s).kind {
        ExprKind::Number { value, is_integer } => (value, is_integer),
        k => panic!("{s}: {k:?}"),
    };
    assert_eq!(num("3"), (3.0, true));
    assert_eq!(num("0.3"), (0.3, false));
    assert_eq!(num("2e-5"), (2e-5, false));
    assert_eq!(num("1.5E+3"), (1500.0, false));
    assert_eq!(num("1e3"), (1000.0, false));
    assert_eq!(num("1.0"), (1.0, false));
    assert_eq!(num("007"), (7.0, true));
}

#[test]
fn log_call_and_parenthesized_flags() {
    let e = expr("log normal(z | m, s)");
    let ExprKind::Call(c) = &e.kind else { panic!() };
    assert_eq!(c.callee.name, "log");
    assert!(c.parenthesized);
    assert!(c.given.is_none());
    assert_eq!(c.args.len(), 1);
    let ExprKind::Call(inner) = &c.args[0].value.kind else {
        panic!()
    };
    assert_eq!(inner.callee.name, "normal");
    assert!(inner.given.is_some());

    let bare = parse_call("reconstruction_mse", &off()).unwrap();
    assert!(!bare.parenthesized);
    assert!(bare.args.is_empty());
    let empty = parse_call("samples()", &off()).unwrap();
    assert!(empty.parenthesized);
    assert!(empty.args.is_empty());
}

// ----------------------------------------------------------------------------- declarations

#[test]
fn variable_declarations() {
    let src = "observed image[1, 28, 28] in [-1, 1]";
    let d = parse_var_decl(src, &off()).unwrap();
    assert_eq!(d.observed.map(|s| at(src, s)), Some("observed"));
    assert_eq!(d.ty.name.name, "image");
    assert_eq!(
        d.ty.dims.iter().map(sexp).collect::<Vec<_>>(),
        ["1", "28", "28"]
    );
    let r = d.range.as_ref().unwrap();
    assert_eq!((sexp(&r.lo), sexp(&r.hi)), ("(neg 1)".into(), "1".into()));
    assert_eq!(at(src, r.span), "in [-1, 1]");
    assert!(d.reference.is_none());
    assert_eq!(at(src, d.span), src);

    let src = "real[16] ~ normal(0, 1)";
    let d = parse_var_decl(src, &off()).unwrap();
    assert!(d.observed.is_none());
    let reference = d.reference.as_ref().unwrap();
    assert_eq!(call_sexp(reference), "(normal 0 1)");
    assert_eq!(at(src, reference.span), "normal(0, 1)");
    assert_eq!(at(src, d.ty.span), "real[16]");

    // `observed` is a keyword only when it stands alone at the start.
    let d = parse_var_decl("observedd[3]", &off()).unwrap();
    assert!(d.observed.is_none());
    assert_eq!(d.ty.name.name, "observedd");

    let d = parse_var_decl("real[16] ~ normal", &off()).unwrap();
    assert!(!d.reference.unwrap().parenthesized);

    // A bare type (shape from the data) has no dims and a tight span.
    let src = "observed image in [-1, 1]";
    let d = parse_var_decl(src, &off()).unwrap();
    assert!(d.ty.dims.is_empty());
    assert_eq!(at(src, d.ty.span), "image");
    assert_eq!(at(src, d.range.unwrap().span), "in [-1, 1]");
}

#[test]
fn observed_alone_asks_for_a_type() {
    let e = parse_var_decl("observed", &off()).unwrap_err();
    assert_eq!(code(&e), "ebmc::syntax::unexpected_end");
    let SyntaxError::UnexpectedEnd { expected, .. } = &e else {
        panic!()
    };
    assert_eq!(expected, "a type such as `real[16]`");

    let e = parse_var_decl("real[3] observed", &off()).unwrap_err();
    assert_eq!(code(&e), "ebmc::syntax::unexpected_token");
    assert!(
        e.help_text().unwrap().contains("`observed` comes first"),
        "{e:?}"
    );
}

#[test]
fn parameter_declarations() {
    let src = "real[10, 128] = normal(0, 1)";
    let p = parse_param_decl(src, &off()).unwrap();
    assert_eq!(p.ty.to_string(), "real[10, 128]");
    assert_eq!(sexp(p.init.as_ref().unwrap()), "(normal 0 1)");
    assert_eq!(at(src, p.span), src);
    let p = parse_param_decl(" real[3] ", &off()).unwrap();
    assert!(p.init.is_none());
    assert_eq!(p.span, Span::new(1, 8));
    let p = parse_param_decl("real[3] = 0.5", &off()).unwrap();
    assert_eq!(sexp(p.init.as_ref().unwrap()), "0.5");
}

// ---------------------------------------------------------------------------------- networks

fn net(s: &str) -> NetworkDef {
    parse_network(s, &off()).unwrap_or_else(|e| panic!("{s:?} should parse: {e:?}"))
}

#[test]
fn network_stages_and_chains() {
    let src = "mlp(z -> 200 -> 200 -> 1, act = lrelu(0.2))";
    let n = net(src);
    assert_eq!(n.stages.len(), 1);
    let s = &n.stages[0];
    assert_eq!(s.name.name, "mlp");
    assert!(s.parenthesized);
    assert_eq!(
        s.chain.iter().map(|c| sexp(&c.value)).collect::<Vec<_>>(),
        ["z", "200", "200", "1"]
    );
    assert_eq!(s.args.len(), 1);
    assert_eq!(s.args[0].name.as_ref().unwrap().name, "act");
    assert_eq!(sexp(&s.args[0].value), "(lrelu 0.2)");
    assert_eq!(at(src, s.span), src);
    assert_eq!(at(src, n.span), src);

    let n = net("linear(2 * 128)");
    assert_eq!(n.stages[0].chain.len(), 1);
    assert_eq!(sexp(&n.stages[0].chain[0].value), "(* 2 128)");

    let n = net("encoder(x -> 512 -> normal(z))");
    assert_eq!(sexp(&n.stages[0].chain[2].value), "(normal z)");

    let src = "deconv(z -> 128@7 -> 64@14 -> 1@28, act = lrelu(0.1), out = tanh)";
    let n = net(src);
    let chain = &n.stages[0].chain;
    assert_eq!(chain.len(), 4);
    assert!(chain[0].at.is_none());
    assert_eq!(sexp(chain[1].at.as_ref().unwrap()), "7");
    assert_eq!(at(src, chain[2].span), "64@14");
    assert_eq!(n.stages[0].args.len(), 2);

    let src = "conv(x -> 32) -> flatten -> linear(10)";
    let n = net(src);
    assert_eq!(
        n.stages
            .iter()
            .map(|s| s.name.name.as_str())
            .collect::<Vec<_>>(),
        ["conv", "flatten", "linear"]
    );
    assert!(!n.stages[1].parenthesized);
    assert!(n.stages[1].chain.is_empty());
    assert_eq!(at(src, n.stages[1].span), "flatten");
    assert_eq!(at(src, n.span), src);

    // Positional arguments after the chain are kept for the checker to reject.
    let n = net("mlp(z -> 1, 3, act = relu)");
    assert_eq!(n.stages[0].args.len(), 2);
    assert!(n.stages[0].args[0].name.is_none());

    // Options without a chain.
    let n = net("mlp(act = relu)");
    assert!(n.stages[0].chain.is_empty());
    assert_eq!(n.stages[0].args.len(), 1);

    let n = net("flatten()");
    assert!(n.stages[0].parenthesized);
    assert!(n.stages[0].chain.is_empty());
}

// ----------------------------------------------------------------------------------- calls

#[test]
fn call_entry_point() {
    let c = parse_call("adam(lr = 2e-5, betas = (0.5, 0.999))", &off()).unwrap();
    assert_eq!(
        call_sexp(&c),
        "(adam (= lr 2e-5) (= betas (tuple 0.5 0.999)))"
    );
    let c = parse_call("x(a = [1, 10, all], b = uniform(-1, 1))", &off()).unwrap();
    assert_eq!(
        call_sexp(&c),
        "(x (= a (list 1 10 all)) (= b (uniform (neg 1) 1)))"
    );
    let c = parse_call("  samples(64)\n", &off()).unwrap();
    assert_eq!(c.span, Span::new(2, 13));
}

// ------------------------------------------------------------------------------------ spans

#[test]
fn spans_are_tight_and_shifted_by_offset() {
    let m = SpanMap::Offset(100);
    let e = parse_expr("f(z) + 1", &m).unwrap();
    assert_eq!(e.span, Span::new(100, 108));
    let ExprKind::Binary { lhs, rhs, .. } = &e.kind else {
        panic!()
    };
    assert_eq!(lhs.span, Span::new(100, 104));
    assert_eq!(rhs.span, Span::new(107, 108));
    let ExprKind::Call(c) = &lhs.kind else {
        panic!()
    };
    assert_eq!(c.span, Span::new(100, 104));
    assert_eq!(c.callee.span, Span::new(100, 101));
    assert_eq!(c.args[0].span, Span::new(102, 103));

    // Leading and trailing whitespace is not part of any span.
    let e = parse_expr("  -z^2  ", &m).unwrap();
    assert_eq!(e.span, Span::new(102, 106));
    let ExprKind::Unary { arg, .. } = &e.kind else {
        panic!()
    };
    assert_eq!(arg.span, Span::new(103, 106));

    let src = "normal(x | g(z), 0.3)";
    let e = parse_expr(src, &off()).unwrap();
    let ExprKind::Call(c) = &e.kind else { panic!() };
    assert_eq!(at(src, c.given.as_ref().unwrap().span), "x");
    assert_eq!(at(src, c.args[0].span), "g(z)");
    assert_eq!(at(src, c.args[1].span), "0.3");

    let src = "adam(lr = 1e-4 , betas = ( 0.5, 0.999 ) )";
    let c = parse_call(src, &off()).unwrap();
    assert_eq!(at(src, c.args[0].span), "lr = 1e-4");
    assert_eq!(at(src, c.args[0].name.as_ref().unwrap().span), "lr");
    assert_eq!(at(src, c.args[1].span), "betas = ( 0.5, 0.999 )");
    assert_eq!(at(src, c.args[1].value.span), "( 0.5, 0.999 )");
    assert_eq!(at(src, c.span), src);

    // A parenthesized expression's span covers its parentheses.
    let src = "(a + b) * c";
    let e = parse_expr(src, &off()).unwrap();
    assert_eq!(at(src, e.span), src);
    let ExprKind::Binary { lhs, .. } = &e.kind else {
        panic!()
    };
    assert_eq!(at(src, lhs.span), "(a + b)");

    let src = "f(z)[0] + mu[ y ]";
    let e = parse_expr(src, &off()).unwrap();
    let ExprKind::Binary { lhs, rhs, .. } = &e.kind else {
        panic!()
    };
    assert_eq!(at(src, lhs.span), "f(z)[0]");
    assert_eq!(at(src, rhs.span), "mu[ y ]");

    let src = "log normal(z | m, s) - 1";
    let e = parse_expr(src, &off()).unwrap();
    let ExprKind::Binary { lhs, .. } = &e.kind else {
        panic!()
    };
    let ExprKind::Call(c) = &lhs.kind else {
        panic!()
    };
    assert_eq!(at(src, c.span), "log normal(z | m, s)");
    assert_eq!(at(src, c.callee.span), "log");
    assert_eq!(at(src, c.args[0].span), "normal(z | m, s)");
}

#[test]
fn spans_follow_segments_of_block_scalars() {
    // value "mlp(z -> 200,\n  act = relu)": line 1 at file 50, line 2 (value offset 14) at file 80.
    let text = "mlp(z -> 200,\n  act = relu)";
    let m = SpanMap::Segments(vec![(0, 50), (14, 80)]);
    let n = parse_network(text, &m).unwrap();
    let s = &n.stages[0];
    assert_eq!(s.name.span, Span::new(50, 53));
    assert_eq!(s.chain[1].span, Span::new(59, 62));
    let act = &s.args[0];
    assert_eq!(act.name.as_ref().unwrap().span, Span::new(82, 85));
    assert_eq!(act.value.span, Span::new(88, 92));
    assert_eq!(s.span, Span::new(50, 93));

    let text = "a +\nb";
    let m = SpanMap::Segments(vec![(0, 10), (4, 30)]);
    let e = parse_expr(text, &m).unwrap();
    assert_eq!(e.span, Span::new(10, 31));

    // Errors are mapped too.
    let e = parse_expr("a +\nb b", &m).unwrap_err();
    assert_eq!(e.span(), Span::new(32, 33));
}

#[test]
fn declarations_have_shifted_spans() {
    let m = SpanMap::Offset(1000);
    let d = parse_var_decl("observed image[1, 28, 28] in [-1, 1] ~ normal(0, 1)", &m).unwrap();
    assert_eq!(d.observed, Some(Span::new(1000, 1008)));
    assert_eq!(d.ty.span, Span::new(1009, 1025));
    assert_eq!(d.ty.name.span, Span::new(1009, 1014));
    assert_eq!(d.range.as_ref().unwrap().span, Span::new(1026, 1036));
    assert_eq!(d.reference.as_ref().unwrap().span, Span::new(1039, 1051));
    assert_eq!(d.span, Span::new(1000, 1051));
}

// ------------------------------------------------------------------------------------ errors

#[test]
fn empty_scalars() {
    for (src, span) in [
        ("", Span::new(10, 10)),
        ("   ", Span::new(10, 13)),
        ("\n", Span::new(10, 11)),
    ] {
        for r in [
            parse_expr(src, &SpanMap::Offset(10)).map(drop),
            parse_var_decl(src, &SpanMap::Offset(10)).map(drop),
            parse_param_decl(src, &SpanMap::Offset(10)).map(drop),
            parse_network(src, &SpanMap::Offset(10)).map(drop),
            parse_call(src, &SpanMap::Offset(10)).map(drop),
        ] {
            let e = r.unwrap_err();
            assert_eq!(code(&e), "ebmc::syntax::empty");
            assert_eq!(e.span(), span);
            assert!(e.help_text().is_some());
        }
    }
    let e = parse_network("", &off()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "expected a network definition, found an empty value"
    );
}

#[test]
fn unexpected_token() {
    let src = "f(z) g";
    let e = expr_err(src);
    assert_eq!(code(&e), "ebmc::syntax::unexpected_token");
    assert_eq!(e.to_string(), "unexpected name `g` in an expression");
    assert_eq!(at(src, e.span()), "g");
    assert_eq!(
        labels(&e)[0].0.as_deref(),
        Some("expected an operator or the end of the text")
    );

    let src = "a + ,";
    let e = expr_err(src);
    assert_eq!(code(&e), "ebmc::syntax::unexpected_token");
    assert_eq!(e.to_string(), "unexpected `,` in an expression");
    assert_eq!(at(src, e.span()), ",");
    let SyntaxError::UnexpectedToken { expected, .. } = &e else {
        panic!()
    };
    assert_eq!(expected, "an expression");

    let e = expr_err("a $ b");
    assert_eq!(e.to_string(), "unexpected character `$` in an expression");
    assert_eq!(e.span(), Span::new(2, 3));

    let e = expr_err("é");
    assert_eq!(e.to_string(), "unexpected character `é` in an expression");
    assert_eq!(e.span(), Span::new(0, 2));

    let e = parse_network("mlp(z -> 1) linear(3)", &SpanMap::Offset(7)).unwrap_err();
    assert_eq!(code(&e), "ebmc::syntax::unexpected_token");
    assert_eq!(
        e.to_string(),
        "unexpected name `linear` in a network definition"
    );
    assert_eq!(e.span(), Span::new(19, 25));
    let SyntaxError::UnexpectedToken { expected, help, .. } = &e else {
        panic!()
    };
    assert_eq!(expected, "`->` or the end of the text");
    assert!(
        help.as_deref()
            .unwrap()
            .starts_with("A network definition looks like")
    );
}

#[test]
fn unexpected_end() {
    let src = "a +";
    let e = expr_err(src);
    assert_eq!(code(&e), "ebmc::syntax::unexpected_end");
    assert_eq!(e.to_string(), "unexpected end of input in an expression");
    assert_eq!(e.span(), Span::point(3));
    assert_eq!(
        labels(&e),
        vec![(Some("expected an expression".into()), Span::point(3))]
    );

    let e = parse_var_decl("real[16] ~  ", &SpanMap::Offset(5)).unwrap_err();
    assert_eq!(code(&e), "ebmc::syntax::unexpected_end");
    assert_eq!(e.span(), Span::point(15));
    assert_eq!(
        e.to_string(),
        "unexpected end of input in a variable declaration"
    );

    let e = parse_network("mlp(z -> 1) ->", &off()).unwrap_err();
    assert_eq!(code(&e), "ebmc::syntax::unexpected_end");
    let SyntaxError::UnexpectedEnd { expected, .. } = &e else {
        panic!()
    };
    assert_eq!(expected, "a stage such as `linear(10)` or `flatten`");
}

#[test]
fn unclosed_delimiter_labels_opener_and_end() {
    let src = "normal(x | g(z), 0.3";
    let e = expr_err(src);
    assert_eq!(code(&e), "ebmc::syntax::unclosed_delimiter");
    assert_eq!(e.to_string(), "unclosed `(` in an expression");
    let ls = labels(&e);
    assert_eq!(ls.len(), 2);
    assert_eq!(
        ls[0],
        (Some("this `(` is never closed".into()), Span::new(6, 7))
    );
    assert_eq!(ls[1], (Some("expected `)` here".into()), Span::point(20)));

    // The innermost open delimiter is the one reported.
    let src = "f([1, 2";
    let e = expr_err(src);
    assert_eq!(code(&e), "ebmc::syntax::unclosed_delimiter");
    assert_eq!(labels(&e)[0].1, Span::new(2, 3));
    assert_eq!(
        labels(&e)[1],
        (Some("expected `]` here".into()), Span::point(7))
    );

    let e = parse_network("mlp(z -> 200, act = relu  ", &SpanMap::Offset(40)).unwrap_err();
    assert_eq!(code(&e), "ebmc::syntax::unclosed_delimiter");
    assert_eq!(e.to_string(), "unclosed `(` in a network definition");
    assert_eq!(labels(&e)[0].1, Span::new(43, 44));
    assert_eq!(labels(&e)[1].1, Span::point(64));

    // The type's `[` is closed by the range's `]`, so brackets balance but for the range's `[`;
    // pest stops at `in`, which is what gets reported.
    let src = "image[1, 28, 28 in [-1, 1]";
    let e = parse_var_decl(src, &off()).unwrap_err();
    assert_eq!(code(&e), "ebmc::syntax::unexpected_token");
    assert_eq!(at(src, e.span()), "in");
    let SyntaxError::UnexpectedToken { expected, .. } = &e else {
        panic!()
    };
    assert_eq!(expected, "an operator, `,` or `]`");
}

#[test]
fn unmatched_and_mismatched_delimiters() {
    let src = "f(z))";
    let e = expr_err(src);
    assert_eq!(code(&e), "ebmc::syntax::unmatched_delimiter");
    assert_eq!(e.to_string(), "unmatched `)` in an expression");
    assert_eq!(e.span(), Span::new(4, 5));

    let e = expr_err("a + ]");
    assert_eq!(code(&e), "ebmc::syntax::unmatched_delimiter");
    assert_eq!(e.span(), Span::new(4, 5));

    let src = "f(a]";
    let e = expr_err(src);
    assert_eq!(code(&e), "ebmc::syntax::mismatched_delimiter");
    assert_eq!(e.to_string(), "mismatched `]` in an expression");
    let ls = labels(&e);
    assert_eq!(ls[0].1, Span::new(1, 2));
    assert_eq!(ls[1].1, Span::new(3, 4));
    assert_eq!(e.help_text(), Some("close `(` with `)`"));
}

#[test]
fn invalid_numbers() {
    for (src, lit, help) in [
        ("1e", "1e", "exponent"),
        ("f(3.)", "3.", "`3.0`"),
        (".5 + x", ".5", "`0.5`"),
        ("x * 12abc", "12abc", "cannot start with a digit"),
        ("1.2.3", "1.2.3", "numbers are written like"),
        ("2e-", "2e-", "exponent"),
        ("adam(lr = 1e-x)", "1e-x", "numbers are written like"),
    ] {
        let e = expr_err(src);
        assert_eq!(code(&e), "ebmc::syntax::invalid_number", "{src}");
        let SyntaxError::InvalidNumber { literal, .. } = &e else {
            panic!()
        };
        assert_eq!(literal, lit, "{src}");
        assert_eq!(at(src, e.span()), lit, "{src}");
        assert!(
            e.help_text().unwrap().contains(help),
            "{src}: {:?}",
            e.help_text()
        );
    }
    let e = expr_err("1e999");
    assert_eq!(code(&e), "ebmc::syntax::invalid_number");
    assert!(e.help_text().unwrap().contains("too large"));
    let e = parse_var_decl("real[1.] ~ normal(0, 1)", &off()).unwrap_err();
    assert_eq!(code(&e), "ebmc::syntax::invalid_number");
}

#[test]
fn wrong_operators() {
    let src = "z ** 2";
    let e = expr_err(src);
    assert_eq!(code(&e), "ebmc::syntax::wrong_operator");
    assert_eq!(at(src, e.span()), "**");
    assert_eq!(e.help_text(), Some("use `^` for powers: `z^2`"));

    for src in [
        "adam(lr == 1e-4)",
        "adam(lr := 1e-4)",
        "adam(betas = (1, 2), lr == 3)",
    ] {
        let e = parse_call(src, &off()).unwrap_err();
        assert_eq!(code(&e), "ebmc::syntax::wrong_operator", "{src}");
        assert!(e.help_text().unwrap().contains("single `=`"), "{src}");
        assert_eq!(at(src, e.span()).len(), 2);
    }
    let e = parse_network("mlp(z -> 1, act == relu)", &off()).unwrap_err();
    assert_eq!(code(&e), "ebmc::syntax::wrong_operator");
    let e = parse_param_decl("real[3] == 0", &off()).unwrap_err();
    assert_eq!(code(&e), "ebmc::syntax::wrong_operator");
    assert!(e.help_text().unwrap().contains("`real[16] = 0`"));
}

#[test]
fn missing_commas() {
    let src = "f(a b)";
    let e = expr_err(src);
    assert_eq!(code(&e), "ebmc::syntax::missing_comma");
    assert_eq!(e.to_string(), "missing `,` in an expression");
    assert_eq!(at(src, e.span()), "b");

    let src = "mlp(z -> 200 act = relu)";
    let e = parse_network(src, &off()).unwrap_err();
    assert_eq!(code(&e), "ebmc::syntax::missing_comma");
    assert_eq!(at(src, e.span()), "act");

    let src = "observed image[1 28, 28]";
    let e = parse_var_decl(src, &off()).unwrap_err();
    assert_eq!(code(&e), "ebmc::syntax::missing_comma");
    assert_eq!(at(src, e.span()), "28");

    let src = "adam(betas = (0.5 0.999))";
    let e = parse_call(src, &off()).unwrap_err();
    assert_eq!(code(&e), "ebmc::syntax::missing_comma");
    assert_eq!(at(src, e.span()), "0.999");

    let src = "[f(x) y]";
    assert_eq!(code(&expr_err(src)), "ebmc::syntax::missing_comma");

    // Not inside brackets: an ordinary unexpected token.
    assert_eq!(code(&expr_err("a b")), "ebmc::syntax::unexpected_token");
}

#[test]
fn too_deep_nesting_is_an_error_not_a_crash() {
    let deep = "(".repeat(10_000);
    let e = expr_err(&deep);
    assert_eq!(code(&e), "ebmc::syntax::too_deep");
    assert_eq!(e.span(), Span::new(256, 257));

    let nested = format!("{}x{}", "(".repeat(300), ")".repeat(300));
    assert_eq!(code(&expr_err(&nested)), "ebmc::syntax::too_deep");
    let nested = format!("{}x{}", "f(".repeat(300), ")".repeat(300));
    assert_eq!(code(&expr_err(&nested)), "ebmc::syntax::too_deep");
    let negs = format!("{}x", "-".repeat(10_000));
    assert_eq!(code(&expr_err(&negs)), "ebmc::syntax::too_deep");
    let pows = format!("{}2", "2^".repeat(10_000));
    assert_eq!(code(&expr_err(&pows)), "ebmc::syntax::too_deep");
    let sums = format!("{}1", "1 + ".repeat(10_000));
    assert_eq!(code(&expr_err(&sums)), "ebmc::syntax::too_deep");
    let brackets = "[".repeat(5_000);
    for r in [
        parse_var_decl(&brackets, &off()).map(drop),
        parse_param_decl(&brackets, &off()).map(drop),
        parse_network(&format!("mlp({brackets}"), &off()).map(drop),
        parse_call(&format!("f({brackets}"), &off()).map(drop),
    ] {
        assert_eq!(code(&r.unwrap_err()), "ebmc::syntax::too_deep");
    }
}

#[test]
fn nesting_up_to_the_limit_parses() {
    // 250 levels of calls and brackets, in a test thread's small stack.
    let nested = format!("{}x{}", "f([".repeat(125), "])".repeat(125));
    let e = expr(&nested);
    assert!(e.to_string().starts_with("f([f(["));
    let nested = format!("{}x{}", "(".repeat(256), ")".repeat(256));
    assert_eq!(sx(&nested), "x");
    let negs = format!("{}x", "-".repeat(200));
    assert!(sx(&negs).starts_with("(neg (neg"));
    // Wide is fine: operators and items separated by commas do not nest.
    let wide = format!("[{}]", vec!["a + b * c"; 5_000].join(", "));
    let ExprKind::List(items) = expr(&wide).kind else {
        panic!()
    };
    assert_eq!(items.len(), 5_000);
}

#[test]
fn quoted_scalars_add_the_inexact_note() {
    let whole = Span::new(5, 30);
    let m = SpanMap::Whole(whole);
    let cases: Vec<(SyntaxError, &str)> = vec![
        (parse_expr("", &m).unwrap_err(), "ebmc::syntax::empty"),
        (
            parse_expr("f(z) g", &m).unwrap_err(),
            "ebmc::syntax::unexpected_token",
        ),
        (
            parse_expr("a +", &m).unwrap_err(),
            "ebmc::syntax::unexpected_end",
        ),
        (
            parse_expr("f(z", &m).unwrap_err(),
            "ebmc::syntax::unclosed_delimiter",
        ),
        (
            parse_expr("f(z))", &m).unwrap_err(),
            "ebmc::syntax::unmatched_delimiter",
        ),
        (
            parse_expr("f(z]", &m).unwrap_err(),
            "ebmc::syntax::mismatched_delimiter",
        ),
        (
            parse_expr("1e", &m).unwrap_err(),
            "ebmc::syntax::invalid_number",
        ),
        (
            parse_expr("z ** 2", &m).unwrap_err(),
            "ebmc::syntax::wrong_operator",
        ),
        (
            parse_expr("f(a b)", &m).unwrap_err(),
            "ebmc::syntax::missing_comma",
        ),
        (
            parse_expr(&"(".repeat(1000), &m).unwrap_err(),
            "ebmc::syntax::too_deep",
        ),
        (
            parse_network("mlp(z -> 1) x", &m).unwrap_err(),
            "ebmc::syntax::unexpected_token",
        ),
    ];
    for (e, want) in cases {
        assert_eq!(code(&e), want);
        let help = e.help_text().unwrap();
        assert!(help.ends_with(INEXACT_NOTE), "{want}: {help}");
        for (_, span) in labels(&e) {
            assert_eq!(span, whole, "{want}");
        }
    }
    // Specific help is kept in front of the note.
    let e = parse_expr("z ** 2", &m).unwrap_err();
    assert_eq!(
        e.help_text().unwrap(),
        format!("use `^` for powers: `z^2`; {INEXACT_NOTE}")
    );
    // Exact maps get no note.
    assert!(
        !expr_err("f(z) g")
            .help_text()
            .unwrap_or("")
            .contains(INEXACT_NOTE)
    );
}

#[test]
fn messages_never_name_grammar_rules() {
    let internal = [
        "named_arg",
        "type_expr",
        "chain_item",
        "log_call",
        "expr_input",
        "call_args",
        "stage_args",
        "lparen",
        "rparen",
        "lbrack",
        "rbrack",
        "observed_kw",
        "in_kw",
        "log_kw",
        "ident",
        "EOI",
        "WHITESPACE",
        "param_decl",
        "var_decl",
        "call_input",
        "primary",
        "infix",
    ];
    let bad = [
        "",
        "a +",
        "f(",
        "f(z) g",
        "(",
        ")",
        "]",
        "a ** b",
        "f(a b)",
        "f(a,)",
        "x |",
        "normal(x |)",
        "log x",
        "a = b",
        "~x",
        "@",
        "f(x)(y)",
        "1e",
        "[1,]",
        "()",
        "f(a == 1)",
        "a[1, 2]",
        "- >",
    ];
    let mut all = Vec::new();
    for s in bad {
        all.push(parse_expr(s, &off()));
        all.push(parse_call(s, &off()).map(|c| Expr {
            span: c.span,
            kind: ExprKind::Call(c),
        }));
    }
    let decl_bad = [
        "observed",
        "real",
        "real[16",
        "real[16] ~",
        "real[16] in [1]",
        "observed real[3] ~ 3",
        "= 3",
    ];
    let mut errors: Vec<SyntaxError> = all.into_iter().filter_map(Result::err).collect();
    for s in decl_bad {
        errors.extend(parse_var_decl(s, &off()).err());
        errors.extend(parse_param_decl(s, &off()).err());
    }
    for s in [
        "mlp(z -> )",
        "-> x",
        "mlp(z ->, 1)",
        "mlp(",
        "mlp(z -> 1) -> ",
        "3",
    ] {
        errors.extend(parse_network(s, &off()).err());
    }
    assert!(errors.len() > 50);
    for e in errors {
        let mut text = e.to_string();
        for (l, _) in labels(&e) {
            text.push_str(&l.unwrap_or_default());
        }
        text.push_str(e.help_text().unwrap_or(""));
        for r in internal {
            assert!(!text.contains(r), "{text:?} names the rule {r}");
        }
        assert!(!text.contains("something else"), "{text:?}");
    }
}

// ----------------------------------------------------------------------------- the spec's text

#[test]
fn every_example_of_the_language_doc_parses() {
    for s in [
        "f(z)",
        "normal(x | g(z), 0.3)",
        "mu[y]",
        "f(z)[0]",
        "dot(a, b)",
        "sum(e)",
        "sum(e, 1)",
        "sum(e, y)",
        "logsumexp(e, y)",
        "logsumexp(e, 1)",
        "log(e)",
        "exp(e)",
        "softplus(e)",
        "sigmoid(e)",
        "tanh(e)",
        "sq(e)",
        "sqrt(e)",
        "stats(z)",
        "[z, z^2]",
        "bernoulli(x | p)",
        "bernoulli(x | logits = l)",
        "log normal(z | m, s)",
        "log categorical(y | p)",
        "dot(y, f(z))",
        "-dot(t(x), stats(z))",
        "3",
        "0.3",
        "2e-5",
        "1.5E+3",
    ] {
        parse_expr(s, &off()).unwrap_or_else(|e| panic!("{s}: {e:?}"));
    }
    for s in [
        "observed image[1, 28, 28] in [-1, 1]",
        "real[16] ~ normal(0, 1)",
        "real[16]",
        "observed onehot[10]",
        "onehot[10]",
    ] {
        parse_var_decl(s, &off()).unwrap_or_else(|e| panic!("{s}: {e:?}"));
    }
    for s in [
        "real[10, 128] = normal(0, 1)",
        "real[10, 128] = uniform(-1, 1)",
        "real[4] = 0",
        "real[4]",
    ] {
        parse_param_decl(s, &off()).unwrap_or_else(|e| panic!("{s}: {e:?}"));
    }
    for s in [
        "mlp(z -> 200 -> 200 -> 1, act = lrelu(0.2))",
        "deconv(z -> 128@7 -> 64@14 -> 1@28, act = lrelu(0.1), out = tanh)",
        "mlp(z -> 200 -> 200 -> 1)",
        "linear(10)",
        "linear(2 * 128)",
        "conv(x -> 32 -> 64@14)",
        "conv(x -> 32 -> 64@14, kernel = 3, stride = [1, 2], padding = 1, act = lrelu(0.2))",
        "encoder(x -> 512 -> 512 -> normal(z))",
        "flatten",
        "tanh",
        "conv(x -> 32) -> linear(10)",
        "conv(x -> 32) -> flatten -> linear(10)",
        "mlp(z -> 1, act = swish, out = identity)",
    ] {
        parse_network(s, &off()).unwrap_or_else(|e| panic!("{s}: {e:?}"));
    }
    for s in [
        "langevin(steps = 60, step_size = 0.4)",
        "langevin(steps = 20, step_size = 0.1)",
        "adam(lr = 2e-5, betas = (0.5, 0.999))",
        "adam(lr = 1e-4, betas = (0.5, 0.999))",
        "samples(64)",
        "reconstruction_mse",
        "sgd(lr = 0.1)",
        "sgld(steps = 60, step_size = 2.0, noise = 7.5e-3, buffer = 5000, reinit = 0.05, init = uniform(-1, 1))",
        "langevin(steps = 60, step_size = 0.4, persistent = 100)",
        "adam(lr = 1e-3, weight_decay = 0, decay = 1.0)",
        "x(v = [1, 10, all])",
    ] {
        parse_call(s, &off()).unwrap_or_else(|e| panic!("{s}: {e:?}"));
    }
}

#[test]
fn every_grammar_scalar_of_the_shipped_specs_parses() {
    for s in [
        "observed image in [-1, 1]",
        "real[128]",
        "onehot[10]",
        "real[64]",
        "observed image[1, 8, 8] in [-1, 1]",
        "observed image[1, 8, 8] in [0, 1]",
        "observed real[64] in [-1, 1]",
        "observed onehot[10]",
        "observed real[784] in [-1, 1]",
        "real[32] ~ normal(0, 1)",
    ] {
        parse_var_decl(s, &off()).unwrap_or_else(|e| panic!("{s}: {e:?}"));
    }
    for s in [
        "real[10, 128] = normal(0, 1)",
        "real[10, 128] = 0",
        "real[10] = 0",
    ] {
        parse_param_decl(s, &off()).unwrap_or_else(|e| panic!("{s}: {e:?}"));
    }
    for s in [
        "conv(x -> 32 -> 32 -> 64 -> 64, kernel = [3, 4, 4, 4], stride = [1, 2, 2, 2], padding = 1, act = swish) -> linear([2, 128])",
        "mlp(z -> 100 -> 100 -> 1, act = lrelu(0.2))",
        "deconv(z -> 64@4 -> 1@8, act = lrelu(0.2), out = tanh)",
        "mlp(z -> 256 -> 256 -> 64, act = lrelu(0.2), out = tanh)",
        "encoder(x -> 256 -> 256 -> normal(z), act = lrelu(0.2))",
    ] {
        parse_network(s, &off()).unwrap_or_else(|e| panic!("{s}: {e:?}"));
    }
    for s in [
        "-dot(t(x)[0], z) + dot(sq(t(x)[1]), sq(z)) - log normal(z | 0, 1)",
        "-dot(t(x)[0], z) + dot(sq(t(x)[1]), sq(z)) - log normal(z | mu[y], exp(log_sigma[y]))",
        "-dot(t(x)[0], z) + dot(sq(t(x)[1]), sq(z))\n  - log normal(z | mu[y], exp(log_sigma[y]))\n  - log categorical(y | softmax(logits_pi))\n",
        "bernoulli(x | logits = g(z))",
        "q",
    ] {
        parse_expr(s, &off()).unwrap_or_else(|e| panic!("{s}: {e:?}"));
    }
    for s in [
        "sgld(steps = 60, step_size = 2.0, noise = 7.5e-3, buffer = 5000, reinit = 0.05)",
        "adam(lr = 5e-5)",
        "few_label(shots = [1, 10, 100, all], repeats = 10)",
        "latent_kl_mi",
        "anomaly_auprc(heldout = 1)",
        "accuracy",
        "langevin(steps = 60, step_size = 0.4, persistent = 10000)",
        "adam(lr = 1e-4, betas = (0.9, 0.999))",
    ] {
        parse_call(s, &off()).unwrap_or_else(|e| panic!("{s}: {e:?}"));
    }
    // The energy of the block scalar, as the sum it is.
    let e = expr("-dot(a, z) + dot(b, c)\n  - log normal(z | m, s)\n  - log categorical(y | p)");
    assert_eq!(
        sexp(&e),
        "(- (- (+ (neg (dot a z)) (dot b c)) (log (normal z | m s))) (log (categorical y | p)))"
    );
}

// ----------------------------------------------------------------------------------- display

#[test]
fn display_prints_canonical_text() {
    for (src, want) in [
        ("normal(x | g(z), 0.3)", "normal(x | g(z), 0.3)"),
        ("-dot(t(x),stats(z))", "-dot(t(x), stats(z))"),
        ("a+b*c", "a + b * c"),
        ("(a + b) * c", "(a + b) * c"),
        ("a - (b - c)", "a - (b - c)"),
        ("(a - b) - c", "a - b - c"),
        ("(a ^ b) ^ c", "(a^b)^c"),
        ("a ^ (b ^ c)", "a^b^c"),
        ("(-a)^2", "(-a)^2"),
        ("-(a^2)", "-a^2"),
        ("-(a + b)", "-(a + b)"),
        ("- - a", "--a"),
        ("2^-1", "2^(-1)"),
        ("(a + b)[0]", "(a + b)[0]"),
        ("f(z)[0]", "f(z)[0]"),
        ("log normal(z | m, s)", "log(normal(z | m, s))"),
        (
            "adam(lr=2e-5, betas=(0.5,0.999))",
            "adam(lr = 2e-5, betas = (0.5, 0.999))",
        ),
        ("[1, 10, all]", "[1, 10, all]"),
        ("[]", "[]"),
        ("1.0", "1.0"),
        ("1.5E+3", "1500.0"),
        ("a / (b * c)", "a / (b * c)"),
        ("a / b * c", "a / b * c"),
        ("f()", "f()"),
    ] {
        assert_eq!(expr(src).to_string(), want, "{src}");
    }
    let d = parse_var_decl("observed  image[1,28,28]  in [-1,1]", &off()).unwrap();
    assert_eq!(d.to_string(), "observed image[1, 28, 28] in [-1, 1]");
    let p = parse_param_decl("real[10,128]=normal(0,1)", &off()).unwrap();
    assert_eq!(p.to_string(), "real[10, 128] = normal(0, 1)");
    let n = parse_network("deconv(z->128@7->1@28,act=lrelu(0.1))->flatten", &off()).unwrap();
    assert_eq!(
        n.to_string(),
        "deconv(z -> 128@7 -> 1@28, act = lrelu(0.1)) -> flatten"
    );
    let c = parse_call("reconstruction_mse", &off()).unwrap();
    assert_eq!(c.to_string(), "reconstruction_mse");
}

/// Spans ignored: `Display` output parses back to the same printed text and the same tree shape.
fn round_trips(src: &str) {
    let e = expr(src);
    let printed = e.to_string();
    let again = expr(&printed);
    assert_eq!(sexp(&again), sexp(&e), "{src} -> {printed}");
    assert_eq!(again.to_string(), printed);
}

#[test]
fn display_round_trips() {
    for s in [
        "a + b * c ^ d",
        "-z^2",
        "a - b - c",
        "2 ^ 3 ^ 2",
        "(a - b) * -(c + d)[0]",
        "f(x | g(-y)^2, s = (1, [2]))",
        "log normal(z | m, s) - 0.5 * sq(z)",
        "-(-(-x))",
        "((a))",
        "a / (b / c)",
        "(a^b)[1]",
        "1e-300 + 0.1",
    ] {
        round_trips(s);
    }
}

// ------------------------------------------------------------------------------- robustness

mod robustness {
    use super::*;
    use proptest::prelude::*;

    /// Strings over the language's alphabet (and a few strangers), biased to near-valid input.
    fn soup() -> impl Strategy<Value = String> {
        let atoms = prop::sample::select(vec![
            "x", "f", "log", "observed", "in", "real", "normal", "0", "3.5", "2e-5", "1e", ".",
            "(", ")", "[", "]", ",", "|", "=", "==", "->", "-", "+", "*", "**", "/", "^", "@", "~",
            " ", "\n", "é", "$", ":",
        ]);
        prop::collection::vec(atoms, 0..40).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn never_panics_and_errors_point_inside(s in soup()) {
            let m = SpanMap::Offset(3);
            let check = |r: Result<(), SyntaxError>| {
                if let Err(e) = r {
                    for (_, span) in labels(&e) {
                        assert!(span.start >= 3 && span.end <= 3 + s.len() && span.start <= span.end, "{s:?}: {e:?}");
                    }
                    assert!(!e.to_string().is_empty());
                }
            };
            check(parse_expr(&s, &m).map(drop));
            check(parse_var_decl(&s, &m).map(drop));
            check(parse_param_decl(&s, &m).map(drop));
            check(parse_network(&s, &m).map(drop));
            check(parse_call(&s, &m).map(drop));
            if let Ok(e) = parse_expr(&s, &off()) {
                let printed = e.to_string();
                let again = parse_expr(&printed, &off()).unwrap_or_else(|err| panic!("{s:?} -> {printed:?}: {err:?}"));
                prop_assert_eq!(sexp(&again), sexp(&e));
            }
        }

        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,60}") {
            let m = SpanMap::Offset(0);
            let _ = parse_expr(&s, &m);
            let _ = parse_var_decl(&s, &m);
            let _ = parse_param_decl(&s, &m);
            let _ = parse_network(&s, &m);
            let _ = parse_call(&s, &m);
        }
    }
}
