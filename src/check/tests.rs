//! Unit tests of the checker: kinds, shapes, network expansion, algorithm requirements, and that
//! one mistake is reported once.

use super::*;

const BASE: &str = "ebmc: 1
variables:
  x: observed image[1, 8, 8] in [-1, 1]
  z: real[16] ~ normal(0, 1)
networks:
  f: mlp(z -> 32 -> 1)
  g: deconv(z -> 8@4 -> 1@8, out = tanh)
model:
  prior: PRIOR
  likelihood: normal(x | g(z), 0.3)
learn:
  algorithm: short_run_mle
  prior_sampler: langevin(steps = 5, step_size = 0.4)
  posterior_sampler: langevin(steps = 5, step_size = 0.1)
  optimizers:
    default: adam(lr = 1e-4)
";

fn check_text(text: &str) -> Result<CheckedSpec, Vec<CheckError>> {
    let doc = crate::spec::load_text(text).unwrap_or_else(|e| panic!("the YAML loads: {e:?}"));
    check(&doc, "test")
}

fn with_prior(prior: &str) -> Result<CheckedSpec, Vec<CheckError>> {
    check_text(&BASE.replace("PRIOR", prior))
}

fn codes(errors: &[CheckError]) -> Vec<String> {
    use miette::Diagnostic;
    errors
        .iter()
        .map(|e| e.code().map(|c| c.to_string()).unwrap_or_default())
        .collect()
}

#[test]
fn a_network_with_one_output_is_one_number_per_example() {
    let spec = with_prior("f(z)").expect("checks");
    let prior = spec.model.prior.expect("a prior");
    assert_eq!(prior.shape, Shape::per_example());
}

#[test]
fn expression_shapes_follow_broadcasting_and_reductions() {
    let spec = with_prior("sum(sq(z)) * 0.5 - sum(z, 0) + f(z)").expect("checks");
    assert_eq!(spec.model.prior.expect("prior").shape, Shape::per_example());
    let errors =
        with_prior("z + f(z) * z").expect_err("[B, 16] + [B, 1]·[B, 16] is a vector, not a term");
    assert_eq!(codes(&errors), ["ebmc::check::wrong_shape"]);
}

#[test]
fn incompatible_shapes_are_reported_with_both_sides() {
    let errors =
        with_prior("sum(z + g(z))").expect_err("[B, 16] and [B, 1, 8, 8] do not broadcast");
    match &errors[..] {
        [CheckError::ShapeMismatch { left, right, .. }] => {
            assert_eq!(left, "[B, 16]");
            assert_eq!(right, "[B, 1, 8, 8]");
        }
        other => panic!("expected one shape mismatch, got {other:?}"),
    }
}

#[test]
fn networks_expand_into_layers_with_inferred_sizes() {
    let spec = with_prior("f(z)").expect("checks");
    let g = &spec.networks[1];
    assert_eq!(g.output_shape, vec![1, 8, 8]);
    assert_eq!(
        g.layers,
        vec![
            Layer::Unflatten { channels: 16 },
            Layer::ConvTranspose2d {
                in_channels: 16,
                out_channels: 8,
                kernel: 4,
                stride: 1,
                padding: 0
            },
            Layer::Activation(Activation::LeakyRelu(0.2)),
            Layer::ConvTranspose2d {
                in_channels: 8,
                out_channels: 1,
                kernel: 4,
                stride: 2,
                padding: 1
            },
            Layer::Activation(Activation::Tanh),
        ]
    );
    let names: Vec<String> = g.parameter_names().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names[0], "networks.g.layer1.weight");
}

#[test]
fn an_observed_shape_left_out_comes_from_the_data() {
    let text = BASE
        .replace("image[1, 8, 8]", "image")
        .replace("variables:", "data:\n  train: mnist\nvariables:");
    let text = text
        .replace("8@4 -> 1@8", "8@7 -> 4@14 -> 1@28")
        .replace("PRIOR", "f(z)");
    let spec = check_text(&text).expect("checks");
    assert_eq!(spec.variables[0].shape, vec![1, 28, 28]);
}

#[test]
fn a_symbol_is_only_used_where_a_symbol_belongs() {
    let text = BASE
        .replace("  z: real[16]", "  y: onehot[4]\n  z: real[16]")
        .replace("mlp(z -> 32 -> 1)", "mlp(z -> 32 -> 4)");
    assert!(check_text(&text.replace("PRIOR", "dot(y, f(z))")).is_ok());
    assert!(check_text(&text.replace("PRIOR", "logsumexp(dot(y, f(z)), y)")).is_ok());
    let errors = check_text(&text.replace("PRIOR", "sum(y * f(z))")).expect_err("y as a value");
    assert_eq!(codes(&errors), ["ebmc::check::discrete_as_continuous"]);
}

#[test]
fn the_variables_a_term_depends_on_exclude_summed_out_symbols() {
    let text = BASE
        .replace("  z: real[16]", "  y: onehot[4]\n  z: real[16]")
        .replace("mlp(z -> 32 -> 1)", "mlp(z -> 32 -> 4)");
    let spec = check_text(&text.replace("PRIOR", "logsumexp(dot(y, f(z)), y)")).expect("checks");
    let vars: Vec<&str> = spec
        .model
        .prior
        .as_ref()
        .expect("prior")
        .variables()
        .iter()
        .map(|v| spec.variable(*v).name.as_str())
        .collect();
    assert_eq!(vars, ["z"]);
}

#[test]
fn a_broken_declaration_is_reported_once_not_at_every_use() {
    let text = BASE
        .replace("mlp(z -> 32 -> 1)", "mlpp(z -> 32 -> 1)")
        .replace("PRIOR", "f(z) + f(z)");
    let errors = check_text(&text).expect_err("unknown layer");
    assert_eq!(codes(&errors), ["ebmc::check::unknown_layer"]);
}

#[test]
fn all_independent_mistakes_are_collected() {
    let text = BASE
        .replace("PRIOR", "ff(z)")
        .replace("step_size = 0.4", "step_size = -1")
        .replace(
            "algorithm: short_run_mle",
            "algorithm: short_run_mle\n  batch: 0",
        );
    let errors = check_text(&text).expect_err("three mistakes");
    assert_eq!(
        codes(&errors),
        [
            "ebmc::check::unknown_function",
            "ebmc::check::invalid_value",
            "ebmc::check::bad_step_size"
        ]
    );
}

#[test]
fn algorithm_requirements_are_checked() {
    let text = BASE
        .replace("  likelihood: normal(x | g(z), 0.3)\n", "")
        .replace("PRIOR", "f(z)");
    let errors = check_text(&text).expect_err("no likelihood");
    assert!(
        matches!(&errors[0], CheckError::MissingRequirement { what, .. } if what == "`model.likelihood`"),
        "{errors:?}"
    );
    let text = BASE
        .replace("PRIOR", "f(z)")
        .replace("short_run_mle", "contrastive_divergence");
    let errors = check_text(&text).expect_err("no energy, and fields it does not use");
    let codes = codes(&errors);
    assert!(
        codes.contains(&"ebmc::check::missing_requirement".to_string()),
        "{codes:?}"
    );
    assert!(
        codes.contains(&"ebmc::check::unused_by_algorithm".to_string()),
        "{codes:?}"
    );
}

#[test]
fn defaults_are_filled_in() {
    let spec = with_prior("f(z)").expect("checks");
    assert_eq!(spec.learn.iterations, 1000);
    assert_eq!(spec.learn.batch, 100);
    assert_eq!(
        spec.data.train,
        DataSource::Builtin {
            set: BuiltinData::Digits,
            split: Split::Train
        }
    );
    let prior = spec.learn.prior_sampler.expect("given");
    assert_eq!(
        prior.noise, prior.step_size,
        "langevin noise defaults to the step size"
    );
    assert_eq!(
        spec.learn.optimizers[0].networks.len(),
        2,
        "`default` covers both networks"
    );
}

#[test]
fn an_anomaly_evaluation_may_score_a_subset_of_the_test_split() {
    let with = |eval: &str| {
        check_text(&format!(
            "{}evaluate: ['{eval}']\n",
            BASE.replace("PRIOR", "f(z)")
        ))
    };
    let all = with("anomaly_auprc(heldout = 1)").expect("checks");
    let some = with("anomaly_auprc(heldout = 1, test_size = 5000)").expect("checks");
    assert!(matches!(
        all.evaluate[..],
        [Evaluation::AnomalyAuprc {
            heldout: 1,
            test_size: None
        }]
    ));
    assert!(matches!(
        some.evaluate[..],
        [Evaluation::AnomalyAuprc {
            heldout: 1,
            test_size: Some(5000)
        }]
    ));
    let errors = with("anomaly_auprc(heldout = 1, test_size = 0)").expect_err("0 images");
    assert_eq!(codes(&errors), ["ebmc::check::invalid_value"]);
}
