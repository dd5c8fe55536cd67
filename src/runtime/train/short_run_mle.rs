//! `short_run_mle` (paper 002, Algorithm 1, with the update order of the authors' code): both
//! chains run with the current parameters, then the generator step, then the prior step on the same
//! (pre-update) samples. Chains are short-run: re-initialised from p0 every iteration.

use super::{Batch, Session, StepMetrics};
use crate::runtime::error::{Context, Result};
use crate::runtime::exec::ParamMode;
use candle_core::Tensor;
use std::time::Instant;

pub(crate) fn step(s: &mut Session, batch: &Batch) -> Result<StepMetrics> {
    let b = batch.x.dim(0).ctx("batch size")?;
    let (latent, x_name) = (s.latent.clone(), s.observed.clone());
    let has_prior = s.spec.model.prior.is_some();

    // Both chains with the current parameters (no tape inside the chains). Each phase is timed:
    // the report's seconds per phase are the built-in profile.
    let clock = Instant::now();
    let z_post = {
        let z0 = s.draw_reference(b)?;
        let cfg = s
            .spec
            .learn
            .posterior_sampler
            .clone()
            .expect("checked: short_run_mle has a posterior sampler");
        s.posterior_chain(&batch.x, z0, &cfg)?
    };
    let sec_posterior = clock.elapsed().as_secs_f64();
    let clock = Instant::now();
    let z_prior = match (&s.spec.learn.prior_sampler, has_prior) {
        (Some(cfg), true) => {
            let cfg = cfg.clone();
            let z0 = s.draw_reference(b)?;
            Some(s.prior_chain(z0, &cfg)?)
        }
        _ => None,
    };

    let sec_prior = clock.elapsed().as_secs_f64();
    let clock = Instant::now();
    // Losses on the samples (detached: the chains ran on detached parameters).
    let tracked = ParamMode::Tracked(&s.params);
    let log_lik = s.exec.call1(
        "log_likelihood",
        &[(&x_name, &batch.x), (&latent, &z_post)],
        &tracked,
    )?;
    let loss_g = log_lik
        .mean_all()
        .ctx("generator loss")?
        .neg()
        .ctx("generator loss")?;
    let mut metrics = vec![("loss_g".to_string(), scalar(&loss_g)?)];
    let mut total = loss_g;
    if let Some(z_prior) = &z_prior {
        // f appears through the prior log-density; log p0 has no parameters, so its difference
        // contributes nothing to the gradient but keeps the reported quantity readable.
        let lp_post = s
            .exec
            .call1("prior_log_density", &[(&latent, &z_post)], &tracked)?
            .mean_all()
            .ctx("prior loss")?;
        let lp_prior = s
            .exec
            .call1("prior_log_density", &[(&latent, z_prior)], &tracked)?
            .mean_all()
            .ctx("prior loss")?;
        let loss_e = (&lp_prior - &lp_post).ctx("prior loss")?;
        metrics.push(("loss_e".into(), scalar(&loss_e)?));
        metrics.push(("prior_post".into(), scalar(&lp_post)?));
        metrics.push(("prior_prior".into(), scalar(&lp_prior)?));
        total = (total + loss_e).ctx("total loss")?;
    }
    let mse = s.reconstruction_error(&batch.x, &z_post)?;
    metrics.push(("mse".into(), mse));
    s.apply_gradients(&total)?;
    metrics.push(("sec_posterior".into(), sec_posterior));
    metrics.push(("sec_prior".into(), sec_prior));
    metrics.push(("sec_update".into(), clock.elapsed().as_secs_f64()));
    Ok(metrics)
}

pub(crate) fn scalar(t: &Tensor) -> Result<f64> {
    t.to_dtype(candle_core::DType::F64)
        .ctx("reading a scalar")?
        .to_scalar::<f64>()
        .ctx("reading a scalar")
}
