//! Lowering tests: every spec of the project lowers to a valid program; the function contract, the
//! symbol tables, sharing and parameter names hold on the paper specs.

use super::lower;
use crate::check::{CheckedSpec, Shape};
use crate::diag::RenderStyle;
use crate::ir::{Op, ParamInit, Program, validate::validate};
use crate::source::SourceFile;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every spec that must lower: `specs/`, `specs/variants/`, `tests/cases/ok/`.
fn spec_files() -> Vec<PathBuf> {
    crate::repo_spec_paths(&["specs", "specs/variants", "tests/cases/ok"])
}

fn check(path: &Path) -> CheckedSpec {
    let name = path
        .strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string();
    let text = std::fs::read_to_string(path).expect("spec is readable");
    let source = SourceFile::new(name, text);
    crate::check_source(&source).unwrap_or_else(|d| {
        panic!(
            "{} should check:\n{}",
            source.name,
            d.render(RenderStyle::Plain)
        )
    })
}

fn lowered(rel: &str) -> (CheckedSpec, Program) {
    let spec = check(&root().join(rel));
    let program = lower(&spec);
    validate(&program).unwrap_or_else(|e| panic!("{rel}: {e}"));
    (spec, program)
}

fn function_names(p: &Program) -> Vec<&str> {
    p.functions.iter().map(|f| f.name.as_str()).collect()
}

/// `(argument names, output shapes)` of a function.
fn signature(p: &Program, name: &str) -> (Vec<String>, Vec<(String, Shape)>) {
    let f = p
        .function(name)
        .unwrap_or_else(|| panic!("no function {name}"));
    let args = f.inputs.iter().map(|(n, _)| n.clone()).collect();
    let outs = f
        .outputs
        .iter()
        .map(|(n, id)| (n.clone(), p.node(*id).shape.clone()))
        .collect();
    (args, outs)
}

fn b(dims: &[usize]) -> Shape {
    Shape::batched(dims.to_vec())
}

fn outs(list: &[(&str, Shape)]) -> Vec<(String, Shape)> {
    list.iter()
        .map(|(n, s)| (n.to_string(), s.clone()))
        .collect()
}

#[test]
fn every_spec_lowers_to_a_valid_program() {
    let files = spec_files();
    assert!(files.len() >= 25, "found only {} spec files", files.len());
    for path in files {
        let spec = check(&path);
        let program = lower(&spec);
        let name = path.display();
        validate(&program).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(program.name, spec.name);
        assert!(!program.functions.is_empty(), "{name}: no functions");
        // Arguments are variables, named and shaped as declared.
        for f in &program.functions {
            for (arg, id) in &f.inputs {
                let var = spec
                    .variables
                    .iter()
                    .find(|v| &v.name == arg)
                    .expect("argument is a variable");
                assert_eq!(
                    program.node(*id).op,
                    Op::Input(arg.clone()),
                    "{name}: {}",
                    f.name
                );
                assert_eq!(
                    program.node(*id).shape,
                    Shape::batched(var.shape.clone()),
                    "{name}: {}",
                    f.name
                );
            }
            assert!(!f.notes.is_empty(), "{name}: {} has no notes", f.name);
        }
        // The printer accepts it, and lowering is deterministic.
        assert_eq!(
            crate::ir::print::print(&program),
            crate::ir::print::print(&lower(&spec))
        );
    }
}

#[test]
fn each_model_gets_its_function_set() {
    let latent = [
        "prior_log_density",
        "log_likelihood",
        "generator",
        "posterior_log_density",
    ];
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("specs/lebm_digits.yaml", latent.to_vec()),
        ("specs/lebm_mnist.yaml", latent.to_vec()),
        ("specs/variants/lebm_bernoulli_digits.yaml", latent.to_vec()),
        (
            "specs/variants/lebm_cluster_digits.yaml",
            vec![
                "prior_log_density",
                "prior_table",
                "classifier",
                "log_likelihood",
                "generator",
                "posterior_log_density",
            ],
        ),
        (
            "specs/ssl_digits.yaml",
            vec![
                "prior_log_density",
                "prior_table",
                "classifier",
                "prior_log_density_labelled",
                "log_likelihood",
                "generator",
                "posterior_log_density",
                "encoder",
            ],
        ),
        ("specs/cebm_gaussian.yaml", vec!["energy"]),
        ("specs/cebm_gmm.yaml", vec!["energy_table", "energy"]),
        (
            "specs/variants/cebm_gmm_learned_weights.yaml",
            vec!["energy_table", "energy"],
        ),
        ("tests/cases/ok/explicit_marginal.yaml", latent.to_vec()),
    ];
    for (file, expected) in cases {
        let (_, p) = lowered(file);
        assert_eq!(function_names(&p), expected, "{file}");
    }
}

#[test]
fn gmm_energy_is_a_table_over_the_ten_components_and_its_marginal() {
    let (_, p) = lowered("specs/cebm_gmm.yaml");
    let (args, table) = signature(&p, "energy_table");
    assert_eq!(args, ["x", "z"]);
    assert_eq!(table, outs(&[("table", b(&[10]))]));
    let (args, energy) = signature(&p, "energy");
    assert_eq!(args, ["x", "z"]);
    assert_eq!(energy, outs(&[("energy", b(&[]))]));
    // The marginal reads the table through a logsumexp over the component axis.
    let e = p.function("energy").unwrap().outputs[0].1;
    let reached = crate::ir::print::reachable(&p, [e]);
    assert!(
        reached
            .iter()
            .any(|id| p.node(*id).op == Op::LogSumExp { axis: 0 })
    );
    assert!(reached.contains(&p.function("energy_table").unwrap().outputs[0].1));
    // mu[y] becomes mu itself: no gather, the unbatched [10, 128] parameter broadcasts.
    assert!(p.nodes.iter().all(
        |n| !matches!(n.op, Op::Select { axis: 0, .. } if n.shape.dims == [128] && !n.shape.batched)
    ));
    assert!(
        p.function("energy")
            .unwrap()
            .notes
            .iter()
            .any(|n| n.contains("summed out exactly"))
    );
}

#[test]
fn ssl_prior_sums_the_label_out_and_classifies() {
    let (_, p) = lowered("specs/ssl_digits.yaml");
    assert_eq!(
        signature(&p, "prior_log_density"),
        (vec!["z".into()], outs(&[("log_density", b(&[]))]))
    );
    assert_eq!(
        signature(&p, "prior_table"),
        (vec!["z".into()], outs(&[("table", b(&[10]))]))
    );
    assert_eq!(
        signature(&p, "classifier"),
        (vec!["z".into()], outs(&[("probs", b(&[10]))]))
    );
    assert_eq!(
        signature(&p, "prior_log_density_labelled"),
        (
            vec!["z".into(), "y".into()],
            outs(&[("log_density", b(&[]))])
        )
    );
    assert_eq!(
        signature(&p, "log_likelihood"),
        (
            vec!["x".into(), "z".into()],
            outs(&[("log_likelihood", b(&[]))])
        )
    );
    assert_eq!(
        signature(&p, "generator"),
        (vec!["z".into()], outs(&[("mean", b(&[64]))]))
    );
    assert_eq!(signature(&p, "posterior_log_density").0, ["x", "z"]);
    assert_eq!(
        signature(&p, "encoder"),
        (
            vec!["x".into()],
            outs(&[("mean", b(&[16])), ("log_std", b(&[16]))])
        )
    );
    // dot(y, f(z)) is f(z) itself: the table is the last Linear of f.
    let table = p.function("prior_table").unwrap().outputs[0].1;
    assert_eq!(p.node(table).op, Op::Linear);
    let notes = &p.function("prior_log_density").unwrap().notes;
    assert!(
        notes
            .iter()
            .any(|n| n.contains("summed out exactly: logsumexp over its 10 values")),
        "{notes:?}"
    );
}

#[test]
fn a_network_called_twice_on_the_same_argument_is_built_once() {
    for file in ["specs/cebm_gaussian.yaml", "specs/cebm_gmm.yaml"] {
        let (_, p) = lowered(file);
        let count = |pred: &dyn Fn(&Op) -> bool| p.nodes.iter().filter(|n| pred(&n.op)).count();
        // t has four convolutions and one linear layer; t(x)[0] and t(x)[1] share them.
        assert_eq!(count(&|op| matches!(op, Op::Conv2d { .. })), 4, "{file}");
        assert_eq!(count(&|op| *op == Op::Linear), 1, "{file}");
        assert_eq!(
            count(&|op| matches!(op, Op::Select { index: 0, .. })),
            1,
            "{file}"
        );
        assert_eq!(
            count(&|op| matches!(op, Op::Select { index: 1, .. })),
            1,
            "{file}"
        );
    }
}

#[test]
fn parameters_are_named_by_spec_path_with_fan_in_init() {
    for path in spec_files() {
        let spec = check(&path);
        let p = lower(&spec);
        let mut expected: Vec<(String, Vec<usize>)> = spec
            .parameters
            .iter()
            .map(|q| (format!("parameters.{}", q.name), q.shape.clone()))
            .collect();
        for net in &spec.networks {
            expected.extend(net.parameter_names());
        }
        let got: Vec<(String, Vec<usize>)> = p
            .params
            .iter()
            .map(|q| (q.path.clone(), q.dims.clone()))
            .collect();
        assert_eq!(got, expected, "{}", path.display());
    }
    let (_, p) = lowered("specs/lebm_digits.yaml");
    // g: unflatten, then a transposed convolution 16 → 64 with kernel 4: fan-in = weight.size(1)·k·k.
    let w = p.param("networks.g.layer1.weight").expect("deconv weight");
    assert_eq!(
        (w.dims.clone(), w.init.clone()),
        (vec![16, 64, 4, 4], ParamInit::FanIn(64 * 16))
    );
    assert_eq!(
        p.param("networks.g.layer1.bias").unwrap().init,
        ParamInit::FanIn(64 * 16)
    );
    assert_eq!(
        p.param("networks.f.layer0.weight").unwrap().init,
        ParamInit::FanIn(16)
    );
    let (_, p) = lowered("specs/cebm_gmm.yaml");
    assert_eq!(
        p.param("networks.t.layer2.weight").unwrap().init,
        ParamInit::FanIn(32 * 4 * 4)
    );
    assert_eq!(
        p.param("parameters.mu").unwrap().init,
        ParamInit::Normal {
            mean: 0.0,
            std: 1.0
        }
    );
    assert_eq!(
        p.param("parameters.log_sigma").unwrap().init,
        ParamInit::Constant(0.0)
    );
}

#[test]
fn network_shapes_follow_the_layers() {
    let (_, p) = lowered("specs/lebm_mnist.yaml");
    assert_eq!(
        signature(&p, "generator").1,
        outs(&[("mean", b(&[1, 28, 28]))])
    );
    let (_, p) = lowered("specs/variants/lebm_bernoulli_digits.yaml");
    let mean = p.function("generator").unwrap().outputs[0].1;
    assert_eq!(p.node(mean).op, Op::Unary(crate::ir::Unary::Sigmoid));
    assert_eq!(p.node(mean).shape, b(&[1, 8, 8]));
    let (_, p) = lowered("tests/cases/ok/network_composition.yaml");
    assert_eq!(
        signature(&p, "energy"),
        (vec!["x".into(), "z".into()], outs(&[("energy", b(&[]))]))
    );
}

#[test]
fn an_unlabelled_symbol_gets_a_classifier_but_no_labelled_prior() {
    let (_, p) = lowered("tests/cases/ok/unsupervised_symbol.yaml");
    assert_eq!(
        signature(&p, "classifier"),
        (vec!["z".into()], outs(&[("probs", b(&[10]))]))
    );
    assert!(p.function("prior_log_density_labelled").is_none());
}

#[test]
fn a_learned_mixture_weight_enters_the_table_as_log_probabilities() {
    let (_, p) = lowered("specs/variants/cebm_gmm_learned_weights.yaml");
    assert_eq!(
        signature(&p, "energy_table").1,
        outs(&[("table", b(&[10]))])
    );
    // log categorical(y | softmax(logits_pi)) is log_softmax(logits_pi): a [10] vector, unbatched.
    let table = p.function("energy_table").unwrap().outputs[0].1;
    let reached = crate::ir::print::reachable(&p, [table]);
    assert!(
        reached
            .iter()
            .any(|id| p.node(*id).op == Op::LogSoftmax { axis: 0 }
                && p.node(*id).shape == Shape::fixed(vec![10]))
    );
}

// ---------------------------------------------------------------------------------------------
// Numeric checks with the f64 reference evaluator: the derived functions agree with the formulas
// computed by hand from the evaluated tables.

mod numeric {
    use super::lowered;
    use crate::ir::Program;
    use crate::ir::eval::{Tensor, eval_function, init_params};

    const HALF_LOG_2PI: f64 = 0.918_938_533_204_672_8;

    /// Deterministic values in [-1.5, 1.5] (a small LCG: the test needs variety, not quality).
    fn values(shape: Vec<usize>, seed: u64) -> Tensor {
        let mut state = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let n = shape.iter().product();
        let data = (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((state >> 11) as f64 / (1u64 << 53) as f64) * 3.0 - 1.5
            })
            .collect();
        Tensor::new(shape, data)
    }

    fn onehot(batch: usize, k: usize) -> (Tensor, Vec<usize>) {
        let labels: Vec<usize> = (0..batch).map(|i| (3 * i + 1) % k).collect();
        let mut data = vec![0.0; batch * k];
        for (i, l) in labels.iter().enumerate() {
            data[i * k + l] = 1.0;
        }
        (Tensor::new(vec![batch, k], data), labels)
    }

    fn eval1(
        p: &Program,
        f: &str,
        inputs: &[(&str, Tensor)],
        params: &crate::ir::eval::ParamValues,
    ) -> Tensor {
        eval_function(p, f, inputs, params).remove(0).1
    }

    fn row(t: &Tensor, i: usize) -> &[f64] {
        let k = t.shape[1];
        &t.data[i * k..(i + 1) * k]
    }

    fn logsumexp(v: &[f64]) -> f64 {
        let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
    }

    /// Agreement to 1e-9, relative (absolute near 0). Both sides are f64: the evaluator's graph and
    /// the hand formula compute the same sums of a few to 128 terms of size ≲ 100 (a logsumexp over
    /// ≤ 10 components, −log N over ≤ 128 dimensions) in different orders, so they differ by
    /// round-off only, about n·ε ≈ 128 · 1.1e-16 ≈ 1e-14 relative (~1e-15 for the few-term
    /// logsumexps), and differences of such sums (`t[c] − t[0]`) lose at most a factor ~100 to
    /// cancellation. 1e-9 leaves four orders of magnitude above that, so the test does not flake;
    /// and it is tight: any lowering mistake the tests look for (a dropped log K ≈ 2.3 or ½ log 2π
    /// ≈ 0.92 per dimension, a wrong component or sign, f32 instead of f64 at ~1e-7) moves the
    /// values by far more than 1e-9.
    fn close(a: f64, b: f64, what: &str) {
        assert!(
            (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs())),
            "{what}: {a} vs {b}"
        );
    }

    #[test]
    fn ssl_marginal_prior_classifier_and_labelled_prior_agree_with_the_table() {
        let (_, p) = lowered("specs/ssl_digits.yaml");
        let params = init_params(&p, 7);
        let (batch, k, d) = (5, 10, 16);
        let z = values(vec![batch, d], 1);
        let (y, labels) = onehot(batch, k);
        let table = eval1(&p, "prior_table", &[("z", z.clone())], &params);
        assert_eq!(table.shape, [batch, k]);
        let marginal = eval1(&p, "prior_log_density", &[("z", z.clone())], &params);
        let probs = eval1(&p, "classifier", &[("z", z.clone())], &params);
        let labelled = eval1(
            &p,
            "prior_log_density_labelled",
            &[("z", z.clone()), ("y", y)],
            &params,
        );
        for b in 0..batch {
            let zb = &z.data[b * d..(b + 1) * d];
            let log_p0: f64 = zb.iter().map(|v| -0.5 * v * v - HALF_LOG_2PI).sum();
            let t = row(&table, b);
            let lse = logsumexp(t);
            close(
                marginal.data[b],
                lse - (k as f64).ln() + log_p0,
                "marginal prior",
            );
            for (prob, entry) in row(&probs, b).iter().zip(t) {
                close(*prob, (entry - lse).exp(), "classifier");
            }
            // labelled − marginal = log p(y | z)
            close(
                labelled.data[b] - marginal.data[b],
                t[labels[b]] - lse,
                "labelled prior",
            );
        }
    }

    #[test]
    fn gmm_table_columns_are_the_component_energies_and_the_energy_their_marginal() {
        let (spec, p) = lowered("specs/cebm_gmm.yaml");
        let mut params = init_params(&p, 3);
        let (k, d) = (10, 128);
        params.insert("parameters.log_sigma".into(), values(vec![k, d], 9));
        let batch = 3;
        let x = values(vec![batch, 1, 8, 8], 4);
        let z = values(vec![batch, d], 5);
        let inputs = [("x", x), ("z", z.clone())];
        let table = eval1(&p, "energy_table", &inputs, &params);
        let energy = eval1(&p, "energy", &inputs, &params);
        assert_eq!(
            spec.variables
                .iter()
                .find(|v| v.name == "y")
                .unwrap()
                .cardinality(),
            Some(k)
        );
        let (mu, log_sigma) = (&params["parameters.mu"], &params["parameters.log_sigma"]);
        // −log N(z; mu_k, sigma_k²), the only part of the energy that depends on the component.
        let neg_log_normal = |b: usize, c: usize| -> f64 {
            (0..d)
                .map(|i| {
                    let (m, ls) = (mu.data[c * d + i], log_sigma.data[c * d + i]);
                    let r = (z.data[b * d + i] - m) / ls.exp();
                    0.5 * r * r + ls + HALF_LOG_2PI
                })
                .sum()
        };
        for b in 0..batch {
            let t = row(&table, b);
            for c in 1..k {
                close(
                    t[c] - t[0],
                    neg_log_normal(b, c) - neg_log_normal(b, 0),
                    "component energy difference",
                );
            }
            let neg: Vec<f64> = t.iter().map(|e| -e).collect();
            close(
                energy.data[b],
                -logsumexp(&neg) + (k as f64).ln(),
                "marginal energy",
            );
        }
    }

    #[test]
    fn likelihoods_match_their_densities_at_the_generator_mean() {
        // normal(x | g(z), 0.3) over 64 features
        let (_, p) = lowered("specs/ssl_digits.yaml");
        let params = init_params(&p, 11);
        let (x, z) = (values(vec![2, 64], 21), values(vec![2, 16], 22));
        let ll = eval1(
            &p,
            "log_likelihood",
            &[("x", x.clone()), ("z", z.clone())],
            &params,
        );
        let mean = eval1(&p, "generator", &[("z", z)], &params);
        for b in 0..2 {
            let want: f64 = (0..64)
                .map(|i| {
                    let r = (x.data[b * 64 + i] - mean.data[b * 64 + i]) / 0.3;
                    -0.5 * r * r - 0.3f64.ln() - HALF_LOG_2PI
                })
                .sum();
            close(ll.data[b], want, "normal log-likelihood");
        }
        // bernoulli(x | logits = g(z)) over an 8×8 image; the generator's mean is sigmoid(logits)
        let (_, p) = lowered("specs/variants/lebm_bernoulli_digits.yaml");
        let params = init_params(&p, 12);
        let x = values(vec![2, 1, 8, 8], 23);
        let x = Tensor::new(x.shape, x.data.iter().map(|v| (v + 1.5) / 3.0).collect());
        let z = values(vec![2, 16], 24);
        let ll = eval1(
            &p,
            "log_likelihood",
            &[("x", x.clone()), ("z", z.clone())],
            &params,
        );
        let mean = eval1(&p, "generator", &[("z", z)], &params);
        for b in 0..2 {
            let want: f64 = (0..64)
                .map(|i| {
                    let (xv, m) = (x.data[b * 64 + i], mean.data[b * 64 + i]);
                    xv * m.ln() + (1.0 - xv) * (1.0 - m).ln()
                })
                .sum();
            close(ll.data[b], want, "bernoulli log-likelihood");
        }
    }

    #[test]
    fn learned_mixture_weights_shift_each_column_by_minus_log_pi() {
        let (_, p) = lowered("specs/variants/cebm_gmm_learned_weights.yaml");
        let mut params = init_params(&p, 5);
        let logits = values(vec![10], 31);
        params.insert("parameters.logits_pi".into(), logits.clone());
        let inputs = [
            ("x", values(vec![2, 1, 8, 8], 32)),
            ("z", values(vec![2, 64], 33)),
        ];
        let with = eval1(&p, "energy_table", &inputs, &params);
        params.insert("parameters.logits_pi".into(), Tensor::zeros(vec![10]));
        let uniform = eval1(&p, "energy_table", &inputs, &params);
        let log_pi: Vec<f64> = logits
            .data
            .iter()
            .map(|l| l - logsumexp(&logits.data))
            .collect();
        for b in 0..2 {
            for ((w, u), lp) in row(&with, b).iter().zip(row(&uniform, b)).zip(&log_pi) {
                close(w - u, -lp - (10f64).ln(), "mixture weight");
            }
        }
    }
}

#[test]
fn no_dead_nodes_are_built() {
    for path in spec_files() {
        let p = lower(&check(&path));
        let roots = p
            .functions
            .iter()
            .flat_map(|f| f.outputs.iter().map(|(_, id)| *id));
        let live = crate::ir::print::reachable(&p, roots).len();
        assert_eq!(
            live,
            p.nodes.len(),
            "{}: {} nodes, {live} reachable",
            path.display(),
            p.nodes.len()
        );
    }
}

/// A spec written inline (forms no project spec uses).
fn lowered_text(model: &str, parameters: &str) -> (CheckedSpec, Program) {
    let text = format!(
        "ebmc: 1\nname: inline\nvariables:\n  x: observed real[64] in [-1, 1]\n  y: onehot[3]\n  z: real[4] ~ normal(0.5, 2)\n\
         parameters:\n  mu: real[3, 4] = normal(0, 1)\n{parameters}networks:\n  f: mlp(z -> 5 -> 3)\n  g: mlp(z -> 5 -> 64)\n\
         model:\n{model}  likelihood: normal(x | g(z), 0.5)\n\
         learn:\n  algorithm: short_run_mle\n  prior_sampler: langevin(steps = 5, step_size = 0.1)\n\
         \x20 posterior_sampler: langevin(steps = 5, step_size = 0.1)\n  optimizers:\n    default: adam(lr = 1e-3)\n"
    );
    let source = SourceFile::new("inline.yaml", text);
    let spec = crate::check_source(&source).unwrap_or_else(|d| {
        panic!(
            "inline spec should check:\n{}",
            d.render(RenderStyle::Plain)
        )
    });
    let program = lower(&spec);
    validate(&program).unwrap_or_else(|e| panic!("{e}"));
    (spec, program)
}

#[test]
fn symbol_forms_lower_to_tables() {
    let priors = [
        "f(z)[y] - 0.5 * sum(sq(z - mu[y]))",
        "dot(y, f(z)) + log categorical(y | softmax(w))",
        "sum(dot(y, f(z)), y) + logsumexp(-sum(sq(z - mu[y]), 0), y)",
        "-dot(stats(z), stats(mu[y]))",
        "logsumexp(z - mu[y]) + sum(log_softmax(f(z))) * 0 + dot(y, f(z))",
    ];
    for prior in priors {
        let (_, p) = lowered_text(&format!("  prior: {prior}\n"), "  w: real[3] = 0\n");
        assert!(p.function("prior_log_density").is_some(), "{prior}");
        let depends_on_y = !prior.starts_with("sum(");
        assert_eq!(p.function("prior_table").is_some(), depends_on_y, "{prior}");
        if depends_on_y {
            assert_eq!(
                signature(&p, "prior_table").1,
                outs(&[("table", b(&[3]))]),
                "{prior}"
            );
        }
    }
}

#[test]
fn an_indexed_table_matches_the_formula() {
    use crate::ir::eval::{eval_function, init_params};
    let (_, p) = lowered_text("  prior: f(z)[y] - 0.5 * sum(sq(z - mu[y]))\n", "");
    let params = init_params(&p, 1);
    let z =
        crate::ir::eval::Tensor::new(vec![2, 4], vec![0.3, -1.2, 0.7, 0.1, -0.4, 0.9, 1.1, -0.6]);
    let table = eval_function(&p, "prior_table", &[("z", z.clone())], &params)
        .remove(0)
        .1;
    let prior = eval_function(&p, "prior_log_density", &[("z", z.clone())], &params)
        .remove(0)
        .1;
    let mu = &params["parameters.mu"];
    let (w1, b1, w2, b2) = (
        &params["networks.f.layer0.weight"],
        &params["networks.f.layer0.bias"],
        &params["networks.f.layer2.weight"],
        &params["networks.f.layer2.bias"],
    );
    for n in 0..2 {
        let zn = &z.data[n * 4..n * 4 + 4];
        let h: Vec<f64> = (0..5)
            .map(|j| {
                let a = b1.data[j] + (0..4).map(|i| w1.data[j * 4 + i] * zn[i]).sum::<f64>();
                if a > 0.0 { a } else { 0.2 * a }
            })
            .collect();
        let mut column = Vec::new();
        for k in 0..3 {
            let f = b2.data[k] + (0..5).map(|j| w2.data[k * 5 + j] * h[j]).sum::<f64>();
            let q: f64 = (0..4).map(|i| (zn[i] - mu.data[k * 4 + i]).powi(2)).sum();
            let want = f - 0.5 * q;
            assert!(
                (table.data[n * 3 + k] - want).abs() < 1e-9,
                "table[{n}, {k}]"
            );
            column.push(want);
        }
        // marginal: logsumexp − log 3 + log N(z; 0.5, 2²)
        let m = column.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + column.iter().map(|c| (c - m).exp()).sum::<f64>().ln();
        let log_p0: f64 = zn
            .iter()
            .map(|v| -((v - 0.5) / 2.0).powi(2) / 2.0 - 2f64.ln() - 0.918_938_533_204_672_8)
            .sum();
        assert!((prior.data[n] - (lse - 3f64.ln() + log_p0)).abs() < 1e-9);
    }
}
