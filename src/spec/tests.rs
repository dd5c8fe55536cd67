use super::yaml::{self, Node, NodeKind, Style};
use super::*;

/// Loads `text`, panicking with the errors when it fails.
fn ok(text: &str) -> SpecDoc {
    match load_text(text) {
        Ok(doc) => doc,
        Err(errors) => panic!("expected the spec to load, got {errors:#?}"),
    }
}

/// Loads `text`, which must fail; returns the errors.
fn errs(text: &str) -> Vec<SpecError> {
    match load_text(text) {
        Ok(doc) => panic!("expected errors, the spec loaded: {doc:#?}"),
        Err(errors) => errors,
    }
}

fn code(e: &SpecError) -> String {
    use miette::Diagnostic;
    e.code().map(|c| c.to_string()).unwrap_or_default()
}

fn codes(errors: &[SpecError]) -> Vec<String> {
    errors.iter().map(code).collect()
}

fn help(e: &SpecError) -> String {
    use miette::Diagnostic;
    e.help().map(|h| h.to_string()).unwrap_or_default()
}

/// The text a span covers.
fn at(text: &str, s: Span) -> &str {
    &text[s.start..s.end]
}

/// Every sub-span of every line of `value` maps to the same text in the file.
fn assert_exact_map(file: &str, value: &str, map: &SpanMap) {
    assert!(map.is_exact(), "map {map:?} is not exact");
    let mut line_start = 0;
    for line in value.split('\n') {
        let bounds: Vec<usize> = line
            .char_indices()
            .map(|(i, _)| line_start + i)
            .chain([line_start + line.len()])
            .collect();
        for (a, &i) in bounds.iter().enumerate() {
            for &j in &bounds[a..] {
                let s = Span::new(i, j);
                let mapped = map.map(s);
                assert_eq!(
                    file.get(mapped.start..mapped.end),
                    Some(&value[i..j]),
                    "value {i}..{j} mapped to {mapped:?} in {file:?}"
                );
            }
        }
        line_start += line.len() + 1;
    }
}

const MINIMAL: &str = "ebmc: 1\nlearn:\n  algorithm: short_run_mle\n";

const EXAMPLE: &str = "\
ebmc: 1
name: lebm_mnist
data:
  train: mnist:train
  test: mnist:test
variables:
  x: observed image[1, 28, 28] in [-1, 1]
  z: real[16] ~ normal(0, 1)
networks:
  f: mlp(z -> 200 -> 200 -> 1, act = lrelu(0.2))
  g: deconv(z -> 128@7 -> 64@14 -> 1@28, act = lrelu(0.1), out = tanh)
model:
  prior: f(z)
  likelihood: normal(x | g(z), 0.3)
learn:
  algorithm: short_run_mle
  iterations: 2000
  batch: 100
  prior_sampler: langevin(steps = 60, step_size = 0.4)
  posterior_sampler: langevin(steps = 20, step_size = 0.1)
  optimizers:
    f: adam(lr = 2e-5, betas = (0.5, 0.999))
    g: adam(lr = 1e-4, betas = (0.5, 0.999))
evaluate: [samples(64), reconstruction_mse]
";

#[test]
fn loads_the_language_example() {
    let doc = ok(EXAMPLE);
    assert_eq!(doc.ebmc.as_ref().map(|v| v.value), Some(1));
    assert_eq!(
        doc.name.as_ref().map(|v| v.value.as_str()),
        Some("lebm_mnist")
    );
    assert_eq!(
        doc.data.train.as_ref().map(|v| v.value.as_str()),
        Some("mnist:train")
    );
    let names: Vec<&str> = doc
        .variables
        .entries
        .iter()
        .map(|e| e.key.value.as_str())
        .collect();
    assert_eq!(names, ["x", "z"]);
    assert_eq!(at(EXAMPLE, doc.variables.key.unwrap()), "variables");
    assert_eq!(at(EXAMPLE, doc.networks.entries[1].key.span), "g");
    let prior = doc.model.prior.as_ref().unwrap();
    assert_eq!(at(EXAMPLE, prior.span), "f(z)");
    assert_eq!(doc.learn.iterations.as_ref().map(|v| v.value), Some(2000));
    assert_eq!(
        doc.learn
            .optimizers
            .get("g")
            .map(|e| e.value.value.as_str()),
        Some("adam(lr = 1e-4, betas = (0.5, 0.999))")
    );
    let items: Vec<&str> = doc
        .evaluate
        .items
        .iter()
        .map(|t| at(EXAMPLE, t.span))
        .collect();
    assert_eq!(items, ["samples(64)", "reconstruction_mse"]);
    assert_eq!(at(EXAMPLE, doc.model.key.unwrap()), "model");
    assert!(doc.parameters.key.is_none() && doc.parameters.entries.is_empty());
}

// ---------------------------------------------------------------- scalar spans and span maps

/// The tree's scalar at `path` (keys of nested mappings).
fn node_at<'a>(root: &'a Node, path: &[&str]) -> &'a Node {
    let mut n = root;
    for key in path {
        let NodeKind::Map { entries } = &n.kind else {
            panic!("not a mapping at {key}")
        };
        n = &entries
            .iter()
            .find(|(k, _)| k.scalar().is_some_and(|s| s.value == *key))
            .expect(key)
            .1;
    }
    n
}

fn tree(text: &str) -> Node {
    let parsed = yaml::parse(text);
    assert!(parsed.errors.is_empty(), "{:#?}", parsed.errors);
    parsed.root.expect("a document")
}

#[test]
fn plain_scalar_on_one_line_maps_exactly() {
    let text = "ebmc: 1\nmodel:\n  prior: dot(y, f(z))   # the tilt\n  energy: é + sq(ŷ)\n";
    let root = tree(text);
    for path in [["model", "prior"], ["model", "energy"]] {
        let n = node_at(&root, &path);
        let s = n.scalar().unwrap();
        assert_eq!(s.style, Style::Plain);
        assert_eq!(at(text, n.span), s.value);
        assert!(matches!(s.map, SpanMap::Offset(_)));
        assert_exact_map(text, &s.value, &s.map);
    }
    assert_eq!(
        at(text, node_at(&root, &["model", "energy"]).span),
        "é + sq(ŷ)"
    );
}

#[test]
fn plain_scalars_in_a_flow_list_map_exactly() {
    let text = "evaluate: [ samples(64) ,reconstruction_mse,  few_label ]\nname: ü\n";
    let doc = ok(&format!("ebmc: 1\n{text}"));
    let file = format!("ebmc: 1\n{text}");
    let got: Vec<&str> = doc
        .evaluate
        .items
        .iter()
        .map(|t| at(&file, t.span))
        .collect();
    assert_eq!(got, ["samples(64)", "reconstruction_mse", "few_label"]);
    for t in &doc.evaluate.items {
        assert!(matches!(t.map, SpanMap::Offset(_)));
        assert_exact_map(&file, &t.value, &t.map);
    }
}

#[test]
fn keys_have_exact_spans() {
    let text = "ebmc: 1\nnetworks:\n  \"q\": encoder(x -> 512 -> normal(z))\n  f_1: mlp(z -> 1)\n";
    let doc = ok(text);
    assert_eq!(at(text, doc.networks.entries[0].key.span), "\"q\"");
    assert_eq!(doc.networks.entries[0].key.value, "q");
    assert_eq!(at(text, doc.networks.entries[1].key.span), "f_1");
    assert_eq!(at(text, doc.ebmc.as_ref().unwrap().span), "1");
}

#[test]
fn literal_block_scalar_maps_each_line() {
    let cases = [
        "model:\n  energy: |\n    sum(sq(x))\n      + dot(é, f(z))\n\n    - 3\n",
        "model:\n  energy: |-\n    a\n    b\n",
        "model:\n  energy: |+\n    a\n\n\n",
        "model:\n  energy: |\n\n\n    after blanks\n    x\n",
        "model:\n  energy: |2  # indent given\n       extra\n    base\n",
        "model:\r\n  energy: |\r\n    crlf(a)\r\n    + b\r\n",
        "model:\n  energy: |\n    no final newline",
        "model:\n  energy: |\n    tab\tinside\n    \tlead\n",
    ];
    for case in cases {
        let root = tree(case);
        let n = node_at(&root, &["model", "energy"]);
        let s = n.scalar().unwrap();
        assert_eq!(s.style, Style::Literal, "{case:?}");
        assert!(
            matches!(s.map, SpanMap::Segments(_)),
            "{case:?}: {:?}",
            s.map
        );
        assert_exact_map(case, &s.value, &s.map);
        // The span is the content, without the trailing line breaks.
        let first_line = s.value.lines().find(|l| !l.is_empty()).unwrap();
        assert!(
            at(case, n.span)
                .trim_start()
                .starts_with(first_line.trim_start()),
            "{case:?}: {:?}",
            at(case, n.span)
        );
        assert!(!at(case, n.span).ends_with('\n'));
    }
}

#[test]
fn literal_block_in_a_list_and_at_the_end_of_file() {
    let text = "ebmc: 1\nevaluate:\n  - |\n    samples(\n      64)\n  - reconstruction_mse";
    let doc = ok(text);
    let t = &doc.evaluate.items[0];
    assert_eq!(t.value, "samples(\n  64)\n");
    assert_exact_map(text, &t.value, &t.map);
    assert_eq!(
        t.map.map(Span::new(11, 13)),
        Span::new(text.find("64").unwrap(), text.find("64").unwrap() + 2)
    );
    assert_exact_map(
        text,
        &doc.evaluate.items[1].value,
        &doc.evaluate.items[1].map,
    );
}

#[test]
fn empty_literal_block_points_at_its_indicator() {
    let text = "ebmc: 1\nmodel:\n  prior: |\nlearn: {algorithm: x}\n";
    let doc = ok(text);
    let p = doc.model.prior.unwrap();
    assert_eq!(p.value, "");
    assert_eq!(at(text, p.span), "|");
}

#[test]
fn inexact_scalars_map_to_the_whole_scalar() {
    let text = "model:\n  prior: 'f(z)'\n  likelihood: \"normal(x | g(z), 0.3)\"\n  energy: >\n    sum(x)\n    + 1\n  inference: a\n    b\n";
    let root = tree(text);
    let expect = [
        ("prior", Style::SingleQuoted, "'f(z)'"),
        (
            "likelihood",
            Style::DoubleQuoted,
            "\"normal(x | g(z), 0.3)\"",
        ),
        ("energy", Style::Folded, "sum(x)\n    + 1"),
        ("inference", Style::Plain, "a\n    b"),
    ];
    for (key, style, span_text) in expect {
        let n = node_at(&root, &["model", key]);
        let s = n.scalar().unwrap();
        assert_eq!(s.style, style, "{key}");
        assert_eq!(at(text, n.span), span_text, "{key}");
        assert_eq!(s.map, SpanMap::Whole(n.span), "{key}");
    }
    assert_eq!(
        node_at(&root, &["model", "inference"])
            .scalar()
            .unwrap()
            .value,
        "a b"
    );
}

#[test]
fn anchors_are_not_part_of_the_span() {
    let text = "model:\n  prior: &p f(z)\n  energy: &e 'g(z)'\n";
    let root = tree(text);
    assert_eq!(at(text, node_at(&root, &["model", "prior"]).span), "f(z)");
    assert_eq!(
        at(text, node_at(&root, &["model", "energy"]).span),
        "'g(z)'"
    );
}

#[test]
fn text_fields_accept_numbers_and_booleans_as_text() {
    let text = "ebmc: 1\nmodel:\n  prior: 0\n  energy: true\nnetworks:\n  f: 3\n";
    let doc = ok(text);
    assert_eq!(doc.model.prior.as_ref().unwrap().value, "0");
    assert_eq!(doc.model.energy.as_ref().unwrap().value, "true");
    assert_eq!(doc.networks.entries[0].value.value, "3");
}

// ---------------------------------------------------------------- structure errors

#[test]
fn unknown_key_suggests_the_closest() {
    let text = "ebmc: 1\nmodel:\n  priro: f(z)\n";
    let e = errs(text);
    assert_eq!(codes(&e), ["ebmc::spec::unknown_key"]);
    assert_eq!(at(text, e[0].span()), "priro");
    assert_eq!(help(&e[0]), "did you mean `prior`?");
}

#[test]
fn unknown_key_without_a_close_one_lists_the_keys() {
    let e = errs("ebmc: 1\ndata:\n  zzzzzz: 1\n");
    assert_eq!(codes(&e), ["ebmc::spec::unknown_key"]);
    assert_eq!(
        help(&e[0]),
        "valid keys here: `train`, `test`, `labels_per_class` or `seed`"
    );
}

#[test]
fn misplaced_key_says_where_it_belongs() {
    let e = errs("ebmc: 1\nmodel:\nprior: f(z)\n");
    assert_eq!(codes(&e), ["ebmc::spec::unknown_key"]);
    assert_eq!(
        help(&e[0]),
        "`prior` belongs under `model:`: check the indentation of this line"
    );
    let e = errs("ebmc: 1\nlearn:\n  algorithm: x\n  evaluate: [samples(4)]\n");
    assert_eq!(
        help(&e[0]),
        "`evaluate` belongs under the top level: check the indentation of this line"
    );
    let e = errs("ebmc: 1\nseed: 3\n");
    assert_eq!(
        help(&e[0]),
        "`seed` belongs under `data:` or `learn:`: check the indentation of this line"
    );
}

#[test]
fn duplicate_key_has_two_labels() {
    let text = "ebmc: 1\nmodel:\n  prior: f(z)\n  prior: g(z)\n";
    let e = errs(text);
    assert_eq!(codes(&e), ["ebmc::spec::duplicate_key"]);
    let SpecError::DuplicateKey { key, first, second } = &e[0] else {
        unreachable!()
    };
    assert_eq!(key, "prior");
    assert_eq!(
        (first.start, second.start),
        (text.find("prior").unwrap(), text.rfind("prior").unwrap())
    );
    use miette::Diagnostic;
    assert_eq!(e[0].labels().unwrap().count(), 2);
    // also in name maps
    let e = errs("ebmc: 1\nvariables:\n  x: real[2]\n  x: real[3]\n");
    assert_eq!(codes(&e), ["ebmc::spec::duplicate_key"]);
}

#[test]
fn tab_indentation_is_located_exactly() {
    let cases = [
        "ebmc: 1\nlearn:\n\talgorithm: x\n",
        "ebmc: 1\nlearn:\n  algorithm: x\n\titerations: 3\n",
        "\tebmc: 1\n",
        "ebmc: 1\nevaluate:\n  - a\n\t- b\n",
    ];
    for text in cases {
        let e = errs(text);
        assert_eq!(codes(&e), ["ebmc::spec::tab"], "{text:?}: {e:#?}");
        assert_eq!(
            e[0].span(),
            Span::new(text.find('\t').unwrap(), text.find('\t').unwrap() + 1),
            "{text:?}"
        );
        assert_eq!(help(&e[0]), "indent with spaces");
    }
    let text = "ebmc:\t1\n";
    let e = errs(text);
    assert_eq!(codes(&e), ["ebmc::spec::tab"]);
    assert_eq!(e[0].span().start, 5);
    assert_eq!(help(&e[0]), "use a space instead of the tab");
}

#[test]
fn tabs_inside_values_are_fine() {
    let text = "ebmc: 1\nmodel:\n  energy: |\n    a\n    \t+ b\n  prior: \"x\ty\"\nlearn: {algorithm: x}\n";
    ok(text);
}

#[test]
fn yaml_syntax_errors_point_at_the_scanner_marker() {
    let text = "ebmc: 1\nname: \"unterminated\n";
    let e = errs(text);
    assert_eq!(codes(&e), ["ebmc::spec::yaml_syntax"]);
    assert_eq!(e[0].span().start, text.find('"').unwrap());
    assert_eq!(
        e[0].to_string(),
        "YAML syntax error: this quoted string is never closed"
    );
    let text = "ebmc: 1\nlearn:\n  prior_sampler: langevin(steps: 60)\n";
    let e = errs(text);
    assert_eq!(codes(&e), ["ebmc::spec::yaml_syntax"]);
    assert!(help(&e[0]).contains("`=`"), "{}", help(&e[0]));
    // byte offsets, not char indices
    let text = "name: ééé\nb: [\n";
    let e = errs(text);
    assert_eq!(codes(&e), ["ebmc::spec::yaml_syntax"]);
    assert!(
        e[0].span().start > text.find('[').unwrap(),
        "{:?}",
        e[0].span()
    );
}

#[test]
fn empty_and_non_mapping_documents() {
    for text in ["", "\n\n", "# just a comment\n", "---\n", "~\n"] {
        assert_eq!(codes(&errs(text)), ["ebmc::spec::empty"], "{text:?}");
    }
    for text in ["[]", "- a\n- b\n", "hello\n", "'x'"] {
        assert_eq!(
            codes(&errs(text)),
            ["ebmc::spec::not_a_mapping"],
            "{text:?}"
        );
    }
}

#[test]
fn second_document_alias_and_tag_are_errors() {
    let text = "ebmc: 1\n---\nebmc: 1\n";
    let e = errs(text);
    assert_eq!(codes(&e), ["ebmc::spec::multiple_documents"]);
    assert_eq!(at(text, e[0].span()), "---");
    let text = "ebmc: 1\nmodel:\n  prior: &p f(z)\n  energy: *p\n";
    let e = errs(text);
    assert_eq!(codes(&e), ["ebmc::spec::alias_unsupported"]);
    assert_eq!(at(text, e[0].span()), "*p");
    let e = errs("ebmc: 1\nname: !!str 3\n");
    assert_eq!(codes(&e), ["ebmc::spec::tag_unsupported"]);
    assert!(help(&e[0]).contains("`!!str`"));
}

#[test]
fn version_missing_or_unsupported() {
    let e = errs("learn: {algorithm: x}\n");
    assert_eq!(codes(&e), ["ebmc::spec::missing_version"]);
    assert_eq!(e[0].span(), Span::point(0));
    assert_eq!(help(&e[0]), "add `ebmc: 1` at the top");
    let text = "ebmc: 2\n";
    let e = errs(text);
    assert_eq!(codes(&e), ["ebmc::spec::unsupported_version"]);
    assert_eq!(at(text, e[0].span()), "2");
    let e = errs("ebmc: \"1\"\n");
    assert_eq!(codes(&e), ["ebmc::spec::wrong_type"]);
    assert_eq!(help(&e[0]), "remove the quotes");
}

// ---------------------------------------------------------------- wrong value kinds

/// One error of `code` on the text `span_text`, with this message and help.
fn one_error(body: &str, code_: &str, span_text: &str, message: &str, help_: Option<&str>) {
    let text = format!("ebmc: 1\n{body}");
    let e = errs(&text);
    assert_eq!(codes(&e), [code_], "{body:?}: {e:#?}");
    assert_eq!(at(&text, e[0].span()), span_text, "{body:?}");
    assert_eq!(e[0].to_string(), message, "{body:?}");
    if let Some(h) = help_ {
        assert_eq!(help(&e[0]), h, "{body:?}");
    }
}

#[test]
fn integers_reject_floats_strings_and_booleans() {
    let wt = "ebmc::spec::wrong_type";
    one_error(
        "learn:\n  iterations: 1e3\n",
        wt,
        "1e3",
        "expected an integer, found a number",
        Some("write `1000`"),
    );
    one_error(
        "learn:\n  batch: 10.5\n",
        wt,
        "10.5",
        "expected an integer, found a number",
        Some("use a whole number"),
    );
    one_error(
        "learn:\n  batch: \"100\"\n",
        wt,
        "\"100\"",
        "expected an integer, found a string",
        Some("remove the quotes"),
    );
    one_error(
        "learn:\n  batch: many\n",
        wt,
        "many",
        "expected an integer, found a string",
        None,
    );
    one_error(
        "learn:\n  batch: |\n    100\n",
        wt,
        "100",
        "expected an integer, found a string",
        Some("write the number after the `:`, without `|` or `>`"),
    );
    one_error(
        "data:\n  seed: true\n",
        wt,
        "true",
        "expected an integer, found a boolean",
        None,
    );
    one_error(
        "data:\n  seed: [1]\n",
        wt,
        "[1]",
        "expected an integer, found a list",
        None,
    );
    one_error(
        "data:\n  seed: 99999999999999999999\n",
        "ebmc::spec::out_of_range",
        "99999999999999999999",
        "`seed` does not fit in a 64-bit integer",
        None,
    );
}

#[test]
fn integers_accept_yaml_integer_forms() {
    let doc = ok(
        "ebmc: 1\ndata:\n  seed: -7\n  labels_per_class: 0x10\nlearn:\n  batch: +5\n  iterations: 0o17\n",
    );
    assert_eq!(doc.data.seed.unwrap().value, -7);
    assert_eq!(doc.data.labels_per_class.unwrap().value, 16);
    assert_eq!(doc.learn.batch.unwrap().value, 5);
    assert_eq!(doc.learn.iterations.unwrap().value, 15);
}

#[test]
fn numbers_accept_integers_and_floats_only() {
    let doc = ok(
        "ebmc: 1\nlearn:\n  labeled_weight: 2\n  energy_reg: 5e-3\n  mi_weight: .5\n  data_noise: 1.\n",
    );
    assert_eq!(doc.learn.labeled_weight.unwrap().value, 2.0);
    assert_eq!(doc.learn.energy_reg.unwrap().value, 5e-3);
    assert_eq!(doc.learn.mi_weight.unwrap().value, 0.5);
    assert_eq!(doc.learn.data_noise.unwrap().value, 1.0);
    let wt = "ebmc::spec::wrong_type";
    one_error(
        "learn:\n  mi_weight: lots\n",
        wt,
        "lots",
        "expected a number, found a string",
        None,
    );
    one_error(
        "learn:\n  mi_weight: '0.5'\n",
        wt,
        "'0.5'",
        "expected a number, found a string",
        Some("remove the quotes"),
    );
    one_error(
        "learn:\n  mi_weight: .inf\n",
        "ebmc::spec::out_of_range",
        ".inf",
        "`mi_weight` must be a finite number",
        None,
    );
}

#[test]
fn collections_where_a_value_is_expected() {
    let wt = "ebmc::spec::wrong_type";
    one_error(
        "model:\n  prior: {a: 1}\n",
        wt,
        "{a: 1}",
        "expected an expression, found a mapping",
        None,
    );
    one_error(
        "model:\n  prior:\n    a: 1\n",
        wt,
        "a: 1",
        "expected an expression, found a mapping",
        None,
    );
    one_error(
        "name: [a, b]\n",
        wt,
        "[a, b]",
        "expected a string, found a list",
        None,
    );
    one_error(
        "learn:\n  prior_sampler:\n    langevin(steps: 60\n",
        wt,
        "langevin(steps: 60",
        "expected a call, found a mapping",
        Some(
            "YAML read `: ` as a mapping: write named arguments with `=` (`steps = 60`), or quote the value",
        ),
    );
}

#[test]
fn sections_lists_and_name_maps_need_their_shape() {
    let wt = "ebmc::spec::wrong_type";
    one_error(
        "data: digits\n",
        wt,
        "digits",
        "expected a mapping, found a string",
        Some("`data` is a section: write its keys on the lines below, indented"),
    );
    one_error(
        "evaluate: samples(64)\n",
        wt,
        "samples(64)",
        "expected a list, found a string",
        Some("write a list: `evaluate: [samples(64)]`"),
    );
    one_error(
        "variables: x\n",
        wt,
        "x",
        "expected a mapping of names, found a string",
        Some("write one `name: declaration` per line under `variables:`, indented"),
    );
    one_error(
        "evaluate:\n  - [a]\n",
        wt,
        "[a]",
        "expected a call, found a list",
        None,
    );
    // empty sections, maps and lists are fine
    let doc = ok("ebmc: 1\ndata:\nvariables:\nevaluate:\n");
    assert!(doc.data.key.is_some() && doc.variables.key.is_some() && doc.evaluate.key.is_some());
}

#[test]
fn null_values_are_reported_on_the_key() {
    let text = "ebmc: 1\nmodel:\n  prior:\n  energy: null\n";
    let e = errs(text);
    assert_eq!(
        codes(&e),
        ["ebmc::spec::empty_value", "ebmc::spec::empty_value"]
    );
    assert_eq!(at(text, e[0].span()), "prior");
    assert_eq!(e[0].to_string(), "`prior` has no value");
    assert_eq!(
        help(&e[0]),
        "write an expression after `prior:`, or remove the line"
    );
    assert_eq!(at(text, e[1].span()), "energy");
    let text = "ebmc: 1\nvariables:\n  z:\nevaluate:\n  -\n  - a\n";
    let e = errs(text);
    assert_eq!(
        codes(&e),
        ["ebmc::spec::empty_value", "ebmc::spec::empty_value"]
    );
    assert_eq!(at(text, e[0].span()), "z");
    assert_eq!(at(text, e[1].span()), "-");
    assert_eq!(e[1].to_string(), "an item of `evaluate` has no value");
}

#[test]
fn names_must_be_identifiers() {
    let text =
        "ebmc: 1\nnetworks:\n  my-net: mlp(z -> 1)\n  2f: mlp(z -> 1)\n  ok_1: mlp(z -> 1)\n";
    let e = errs(text);
    assert_eq!(
        codes(&e),
        ["ebmc::spec::invalid_name", "ebmc::spec::invalid_name"]
    );
    assert_eq!(at(text, e[0].span()), "my-net");
    assert!(help(&e[0]).ends_with("write `my_net`"), "{}", help(&e[0]));
    assert!(help(&e[1]).ends_with("write `_2f`"), "{}", help(&e[1]));
}

#[test]
fn non_scalar_keys_are_errors() {
    let e = errs("ebmc: 1\n? [a]\n: 1\n");
    assert_eq!(codes(&e), ["ebmc::spec::expected_key"]);
    let e = errs("ebmc: 1\n: 1\n");
    assert_eq!(codes(&e), ["ebmc::spec::expected_key"]);
}

#[test]
fn flow_items_split_at_commas_are_detected() {
    let text = "ebmc: 1\nevaluate: [samples(64), few_label(shots = 1, repeats = 10), reconstruction_mse]\n";
    let e = errs(text);
    assert_eq!(codes(&e), ["ebmc::spec::split_flow_item"]);
    assert_eq!(at(text, e[0].span()), "few_label(shots = 1, repeats = 10)");
    assert!(
        help(&e[0]).contains("`- few_label(shots = 1, repeats = 10)`"),
        "{}",
        help(&e[0])
    );
    // `[` inside the parentheses: YAML itself fails
    let text = "ebmc: 1\nevaluate: [few_label(shots = [1, 10], repeats = 10)]\n";
    let e = errs(text);
    assert_eq!(codes(&e), ["ebmc::spec::split_flow_item"]);
    assert_eq!(
        at(text, e[0].span()),
        "few_label(shots = [1, 10], repeats = 10)"
    );
    assert!(
        help(&e[0]).contains("`- few_label(shots = [1, 10], repeats = 10)`"),
        "{}",
        help(&e[0])
    );
    // in a flow mapping: each split value once, none of the pieces as a key (`betas = (0.5`,
    // `0.9))`: invalid names, duplicates the second time), and a help for a mapping
    let text = "ebmc: 1\nlearn:\n  optimizers: {f: adam(lr = 1, betas = (0.5, 0.9)), g: adam(lr = 2, betas = (0.5, 0.9))}\n";
    let e = errs(text);
    assert_eq!(
        codes(&e),
        ["ebmc::spec::split_flow_item", "ebmc::spec::split_flow_item"],
        "{e:#?}"
    );
    assert_eq!(at(text, e[0].span()), "adam(lr = 1, betas = (0.5, 0.9))");
    assert_eq!(at(text, e[1].span()), "adam(lr = 2, betas = (0.5, 0.9))");
    assert!(
        help(&e[0]).contains("`{...}` mapping")
            && help(&e[0]).contains("one key per line (`f: adam(lr = 1, betas = (0.5, 0.9))`)")
            && help(&e[0]).contains("(`f: 'adam(lr = 1, betas = (0.5, 0.9))'`)"),
        "{}",
        help(&e[0])
    );
    assert!(help(&e[1]).contains("`g: adam(lr = 2"), "{}", help(&e[1]));
    // `[` inside the parentheses of a mapping's value: YAML itself fails
    let e = errs("ebmc: 1\nlearn:\n  optimizers: {f: adam(lr = 1, betas = [0.5, 0.9])}\n");
    assert_eq!(codes(&e), ["ebmc::spec::split_flow_item"]);
    assert!(help(&e[0]).contains("`{...}` mapping"), "{}", help(&e[0]));
    // a real duplicate in a flow mapping is still one
    let text =
        "ebmc: 1\nlearn:\n  optimizers: {f: adam(lr = 1, betas = (0.5, 0.9)), f: sgd(lr = 1)}\n";
    let e = errs(text);
    assert_eq!(
        codes(&e),
        ["ebmc::spec::split_flow_item", "ebmc::spec::duplicate_key"]
    );
    assert_eq!(
        e[1].span(),
        Span::new(text.rfind("f:").unwrap(), text.rfind("f:").unwrap() + 1)
    );
    // quoted, a flow mapping's value keeps its commas
    let doc = ok("ebmc: 1\nlearn:\n  optimizers: {f: 'adam(lr = 1, betas = (0.5, 0.9))'}\n");
    assert_eq!(
        doc.learn.optimizers.entries[0].value.value,
        "adam(lr = 1, betas = (0.5, 0.9))"
    );
    // the block form and quotes work
    let doc =
        ok("ebmc: 1\nevaluate:\n  - few_label(shots = [1, 10], repeats = 10)\n  - 'a(1, 2)'\n");
    assert_eq!(
        doc.evaluate.items[0].value,
        "few_label(shots = [1, 10], repeats = 10)"
    );
    assert_eq!(doc.evaluate.items[1].value, "a(1, 2)");
}

#[test]
fn all_errors_are_collected() {
    let text = "ebmc: 1\nmodel:\n  priro: f(z)\nlearn:\n  algorithm: short_run_mle\n  iterations: 1e3\nnetworks:\n  my-net: mlp(z -> 1)\n";
    let e = errs(text);
    assert_eq!(
        codes(&e),
        [
            "ebmc::spec::unknown_key",
            "ebmc::spec::wrong_type",
            "ebmc::spec::invalid_name"
        ]
    );
}

#[test]
fn minimal_spec_loads_with_defaults_absent() {
    let doc = ok(MINIMAL);
    assert!(doc.name.is_none() && doc.data.key.is_none() && doc.evaluate.items.is_empty());
    assert_eq!(doc.learn.algorithm.unwrap().value, "short_run_mle");
}

// ---------------------------------------------------------------- robustness

/// Parses and loads `text` and checks that: every node span and error label lies on char boundaries
/// inside the text; every exact span map of a scalar maps each line of its value to the same text in
/// the file; every diagnostic renders.
fn survives(text: &str) {
    fn walk(text: &str, n: &Node) {
        assert!(
            text.get(n.span.start..n.span.end).is_some(),
            "node span {:?}",
            n.span
        );
        match &n.kind {
            NodeKind::Scalar(s) if s.map.is_exact() && s.value.len() < 2000 => {
                assert_exact_map(text, &s.value, &s.map);
            }
            NodeKind::Map { entries } => entries
                .iter()
                .flat_map(|(k, v)| [k, v])
                .for_each(|c| walk(text, c)),
            NodeKind::Seq { items } => items.iter().for_each(|c| walk(text, c)),
            _ => {}
        }
    }
    if let Some(root) = yaml::parse(text).root {
        walk(text, &root);
    }
    let result = load_text(text);
    if let Err(errors) = &result {
        assert!(!errors.is_empty());
        for e in errors {
            use miette::Diagnostic;
            for l in e.labels().into_iter().flatten() {
                let (s, n) = (l.offset(), l.len());
                assert!(
                    text.get(s..s + n).is_some(),
                    "label {s}+{n} outside {:?}: {e:?}",
                    &text[..text.len().min(80)]
                );
            }
        }
        let source = crate::source::SourceFile::new("t.yaml", text);
        let mut d = crate::diag::Diagnostics::new(source);
        d.extend(errors.iter().cloned());
        let _ = d.render(crate::diag::RenderStyle::Plain);
    }
    if let Ok(doc) = &result {
        let m = &doc.model;
        let l = &doc.learn;
        let singles = [
            &m.prior,
            &m.likelihood,
            &m.energy,
            &m.inference,
            &l.prior_sampler,
            &l.posterior_sampler,
            &l.sampler,
        ];
        let maps = [
            &doc.variables,
            &doc.parameters,
            &doc.networks,
            &l.optimizers,
        ];
        let texts = singles
            .into_iter()
            .flatten()
            .chain(&doc.evaluate.items)
            .chain(
                maps.into_iter()
                    .flat_map(|m| m.entries.iter().map(|e| &e.value)),
            );
        for t in texts {
            assert!(text.get(t.span.start..t.span.end).is_some());
            if t.map.is_exact() && t.value.len() < 2000 {
                assert_exact_map(text, &t.value, &t.map);
            }
        }
    }
}

#[test]
fn odd_inputs_never_panic() {
    let long = format!("ebmc: 1\nname: {}\n", "x".repeat(200_000));
    let long_flow = format!("ebmc: 1\nevaluate: [{}]\n", "a, ".repeat(20_000));
    let deep_flow = "[".repeat(100_000);
    let deep_map = "{a: ".repeat(100_000);
    let deep_block = format!("{}x\n", "- ".repeat(50_000));
    let deep_indent: String = (0..200)
        .map(|i| format!("{}a{i}:\n", " ".repeat(i)))
        .collect();
    let inputs: Vec<&str> = vec![
        "",
        "---",
        "---\n---\n",
        "...",
        "[]",
        "{}",
        ": :",
        "{",
        "}",
        "[",
        "\"\t\"",
        "\t",
        "\u{feff}ebmc: 1\n",
        "ebmc: 1\r\nlearn:\r\n  algorithm: x\r\n",
        "&a",
        "*a",
        "!x",
        "? ",
        "- - -",
        "|",
        ">",
        "ebmc: |",
        "%YAML 1.2\n",
        "%TAG ! tag:x,2000:\n--- !a\nb: 1\n",
        "a: 'x''y'\n",
        "a: \"\\u00e9\\x\"\n",
        "ebmc: 1\nmodel: {prior: [f(z), energy: 1}\n",
        "é: ü\nñ:\n  - ø\n",
        "ebmc: 1\nvariables:\n  é: real[1]\n",
        &long,
        &long_flow,
        &deep_flow,
        &deep_map,
        &deep_block,
        &deep_indent,
    ];
    for text in inputs {
        survives(text);
    }
    assert_eq!(codes(&errs(&deep_flow)), ["ebmc::spec::too_deep"]);
    assert_eq!(codes(&errs(&deep_block)), ["ebmc::spec::too_deep"]);
    assert_eq!(codes(&errs(&deep_indent)), ["ebmc::spec::too_deep"]);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
    #[test]
    fn random_yaml_ish_text_never_panics(text in "[a-zé:\\-\\[\\]{}#&*!|>'\" \t\n(),=0-9?%.~]{0,80}") {
        survives(&text);
    }

    #[test]
    fn random_specs_from_pieces_never_panic(pieces in proptest::collection::vec(proptest::sample::select(vec![
        "ebmc: 1\n", "model:\n", "  prior: f(z)\n", "  prior: |\n", "  energy: |-\n", "  likelihood: |+\n",
        "    a(b)\n", "      c é\n", "\n", "   \n", "    \td\n", "\t", "learn:\n", "  - x\n", "  - |\n",
        "evaluate: [a(1, 2), b]\n", "  iterations: 1e3\n", "  \"q\": 'x'\n", "---\n", "  ", ": ", "é", "[", "{",
        "\r\n", "  inference: |2\n", "     z\n", "# c\n", "  energy: >\n", "x", " y",
    ]), 0..14)) {
        survives(&pieces.concat());
    }
}

// ---------------------------------------------------------------- schema and reference

#[test]
fn field_kinds_match_the_rust_types() {
    assert!(SpecDoc::kinds_match());
    assert!(DataSection::kinds_match());
    assert!(ModelSection::kinds_match());
    assert!(LearnSection::kinds_match());
}

#[test]
fn defaults_and_choices_parse_as_their_kind() {
    fn walk(fields: &[FieldDoc]) {
        for f in fields {
            if let FieldDefault::Value(v) = f.default {
                assert!(
                    schema::yaml_value(&f.kind, v).is_some(),
                    "default of `{}`",
                    f.key
                );
            }
            for c in f.choices {
                assert!(
                    schema::yaml_value(&f.kind, c).is_some(),
                    "choice of `{}`",
                    f.key
                );
            }
            assert!(!f.doc.contains('\n'), "doc of `{}` is one line", f.key);
            if let FieldKind::Section(sub) = f.kind {
                walk(sub);
            }
        }
    }
    walk(SpecDoc::FIELDS);
}

#[test]
fn json_schema_describes_every_key() {
    let s = json_schema();
    assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert_eq!(s["additionalProperties"], false);
    assert_eq!(s["required"], serde_json::json!(["ebmc", "learn"]));
    assert_eq!(s["properties"]["ebmc"]["enum"], serde_json::json!([1]));
    let learn = &s["properties"]["learn"];
    assert_eq!(learn["additionalProperties"], false);
    assert_eq!(learn["required"], serde_json::json!(["algorithm"]));
    assert_eq!(learn["properties"]["iterations"]["default"], 1000);
    assert_eq!(learn["properties"]["energy_reg"]["default"], 5e-3);
    assert_eq!(learn["properties"]["algorithm"]["enum"][0], "short_run_mle");
    assert_eq!(
        learn["properties"]["optimizers"]["propertyNames"]["pattern"],
        NAME_PATTERN
    );
    assert_eq!(
        s["properties"]["data"]["properties"]["train"]["default"],
        "digits"
    );
    assert_eq!(s["properties"]["evaluate"]["type"], "array");
    // every object forbids unknown keys, every property has a description
    fn check(v: &serde_json::Value) {
        if let Some(props) = v.get("properties").and_then(|p| p.as_object()) {
            assert_eq!(v["additionalProperties"], false);
            for (k, p) in props {
                assert!(
                    p["description"].as_str().is_some_and(|d| !d.is_empty()),
                    "{k}"
                );
                check(p);
            }
        }
    }
    check(&s);
}

#[test]
fn every_field_is_in_the_reference() {
    let md = reference_markdown();
    for f in SpecDoc::FIELDS
        .iter()
        .chain(DataSection::FIELDS)
        .chain(ModelSection::FIELDS)
        .chain(LearnSection::FIELDS)
    {
        assert!(md.contains(&format!("| `{}` |", f.key)), "{}", f.key);
    }
}

#[test]
fn reference_doc_is_fresh() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/spec-reference.md");
    let want = reference_markdown();
    if std::env::var_os("EBMC_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &want).expect("write docs/spec-reference.md");
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "docs/spec-reference.md is stale (the spec field tables changed): regenerate it with \
         `EBMC_BLESS=1 cargo test --lib spec::tests::reference_doc_is_fresh`"
    );
}
