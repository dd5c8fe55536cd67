//! The evaluations a spec names in `evaluate:`, run on a trained session. Each returns flat
//! `metric → value` pairs for `eval.json` and the report; pictures go into the run directory.

mod accuracy;
mod few_label;
mod generation;
mod latent;
mod ood;

pub use generation::{auprc, samples};

use crate::check::Evaluation;
use crate::runtime::data::Dataset;
use crate::runtime::error::Result;
use crate::runtime::rundir::{self, RunDir};
use crate::runtime::train::Session;

/// Examples per evaluation batch.
pub(crate) const EVAL_BATCH: usize = 200;

pub fn run_all(
    s: &mut Session,
    train: &Dataset,
    test: &Dataset,
    dir: &RunDir,
) -> Result<Vec<(String, f64)>> {
    let mut out = Vec::new();
    for e in s.spec.evaluate.clone() {
        match e {
            // An energy model without a generator samples x by SGLD on its data-space energy.
            Evaluation::Samples { n }
                if !s.exec.has_function("generator") && s.spec.model.energy.is_some() =>
            {
                ood::samples(s, n, dir, rundir::SAMPLES_FILE)?
            }
            Evaluation::Samples { n } => samples(s, n, dir, rundir::SAMPLES_FILE)?,
            Evaluation::ReconstructionMse { test_size } => out.push((
                "reconstruction_mse".into(),
                generation::reconstruction_mse(s, &first(test, test_size))?,
            )),
            Evaluation::AnomalyAuprc { heldout, test_size } => out.push((
                format!("anomaly_auprc_heldout_{heldout}"),
                generation::anomaly_auprc(s, &first(test, test_size), heldout as u32)?,
            )),
            Evaluation::Accuracy => out.extend(accuracy::accuracy(s, train, test)?),
            Evaluation::FewLabel { shots, repeats } => {
                out.extend(few_label::few_label(s, train, test, &shots, repeats)?)
            }
            Evaluation::OodAuroc { against } => out.extend(ood::ood_auroc(s, test, against)?),
            Evaluation::LatentKlMi => out.extend(latent::latent_kl_mi(s, test)?),
        }
    }
    Ok(out)
}

/// The first `n` examples of `test` (all when `n` is `None` or not smaller).
fn first(test: &Dataset, n: Option<usize>) -> std::borrow::Cow<'_, Dataset> {
    match n {
        Some(n) if n < test.len() => {
            std::borrow::Cow::Owned(test.subset(&(0..n).collect::<Vec<_>>()))
        }
        _ => std::borrow::Cow::Borrowed(test),
    }
}
