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
            Evaluation::ReconstructionMse => out.push((
                "reconstruction_mse".into(),
                generation::reconstruction_mse(s, test)?,
            )),
            Evaluation::AnomalyAuprc { heldout } => out.push((
                format!("anomaly_auprc_heldout_{heldout}"),
                generation::anomaly_auprc(s, test, heldout as u32)?,
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
