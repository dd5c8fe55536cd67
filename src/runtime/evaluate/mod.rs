//! The evaluations a spec names in `evaluate:`, run on a trained session. Each returns flat
//! `metric → value` pairs for `eval.json` and the report; pictures go into the run directory.

mod generation;

pub use generation::{auprc, samples};

use crate::check::Evaluation;
use crate::runtime::data::Dataset;
use crate::runtime::error::{Result, RuntimeError};
use crate::runtime::rundir::{self, RunDir};
use crate::runtime::train::Session;

/// Examples per evaluation batch.
pub(crate) const EVAL_BATCH: usize = 200;

pub fn run_all(s: &mut Session, train: &Dataset, test: &Dataset, dir: &RunDir) -> Result<Vec<(String, f64)>> {
    let mut out = Vec::new();
    for e in s.spec.evaluate.clone() {
        match e {
            Evaluation::Samples { n } => samples(s, n, dir, rundir::SAMPLES_FILE)?,
            Evaluation::ReconstructionMse => out.push(("reconstruction_mse".into(), generation::reconstruction_mse(s, test)?)),
            Evaluation::AnomalyAuprc { heldout } => {
                out.push((format!("anomaly_auprc_heldout_{heldout}"), generation::anomaly_auprc(s, test, heldout as u32)?))
            }
            other => {
                let _ = train;
                return Err(RuntimeError::Unsupported { what: format!("the evaluation {other:?} (not implemented yet)") });
            }
        }
    }
    Ok(out)
}
