//! `accuracy`: test-split classification with the derived classifier at the inferred z, as in the
//! authors' code: prediction = argmax p(y | z = mean q(z | x)), no MCMC at test time.
//!
//! Beside it, when the run keeps a few labelled examples (`data.labels_per_class`), the
//! supervised-only baseline: a fresh session of the same spec and seed (so the same initial
//! encoder and prior network) trained on the same labelled examples with only the labelled step of
//! `amortized_ssl` (same loss, weight, labelled batch size, optimizers and learning-rate schedule),
//! for the same number of iterations, without unlabelled data. No early stopping: with a few labels
//! there is no labelled validation set to stop on.

use super::EVAL_BATCH;
use crate::runtime::data::Dataset;
use crate::runtime::error::{Context, Result, RuntimeError};
use crate::runtime::exec::ParamMode;
use crate::runtime::train::Session;
use crate::runtime::train::amortized_ssl::{accuracy_of, encode, labelled_step};
use candle_core::Tensor;

/// `accuracy` and, with labelled examples, `accuracy_supervised_only`.
pub fn accuracy(s: &Session, train: &Dataset, test: &Dataset) -> Result<Vec<(String, f64)>> {
    let mut out = vec![("accuracy".to_string(), test_accuracy(s, test)?)];
    if let Some(base) = supervised_only(s, train)? {
        out.push((
            "accuracy_supervised_only".to_string(),
            test_accuracy(&base, test)?,
        ));
    }
    Ok(out)
}

/// Fraction of `test` classified correctly by argmax p(y | z = mean q(z | x)).
pub fn test_accuracy(s: &Session, test: &Dataset) -> Result<f64> {
    let Some(labels) = &test.labels else {
        return Err(RuntimeError::Unsupported {
            what: format!("`accuracy` on `{}`, which has no labels", test.name),
        });
    };
    let params = ParamMode::Detached(&s.params);
    let mut right = 0.0;
    for start in (0..test.len()).step_by(EVAL_BATCH) {
        let idx: Vec<usize> = (start..(start + EVAL_BATCH).min(test.len())).collect();
        let mut shape = vec![idx.len()];
        shape.extend(&test.shape);
        let x = Tensor::from_vec(test.batch(&idx), shape, &s.device)
            .and_then(|t| t.to_dtype(s.dtype))
            .ctx("accuracy: test batch")?;
        let (mean, _) = encode(s, &x, &params)?;
        let probs = s.exec.call1("classifier", &[(&s.latent, &mean)], &params)?;
        right += accuracy_of(&probs, &labels[start..start + idx.len()])? * idx.len() as f64;
    }
    Ok(right / test.len().max(1) as f64)
}

/// The supervised-only baseline session, trained; `None` without labelled examples.
fn supervised_only<'a>(s: &Session<'a>, train: &Dataset) -> Result<Option<Session<'a>>> {
    let Some(labelled) = &s.labelled else {
        return Ok(None);
    };
    let program = s.exec.program();
    let mut base = Session::new(s.spec, program, s.seed, s.device.clone(), s.dtype)?;
    base.labelled = Some(labelled.clone());
    let learn = &s.spec.learn;
    let batch = learn.batch.min(train.len()).max(1);
    let per_epoch = (train.len() / batch).max(1);
    for step in 0..learn.iterations {
        labelled_step(&mut base, batch)?;
        if (step + 1) % per_epoch == 0 {
            base.end_epoch();
        }
    }
    Ok(Some(base))
}
