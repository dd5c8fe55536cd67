//! `contrastive_divergence` (paper 003 with the authors' `Train_EBM`): per minibatch, noisy data
//! `x + data_noise · ε`, model samples by SGLD from the replay buffer on the data-space energy the
//! compiler derived (the marginal E(x) of a conjugate latent), then one optimizer step on
//! `mean E(data) − mean E(model) + energy_reg · (mean E(data)² + mean E(model)²)`.
//! The run loop's guard stops the run when a metric exceeds 1e8 in magnitude (the authors abort
//! when |loss| > 1e8).

use super::{Batch, Session, StepMetrics, scalar};
use crate::runtime::error::{Context, Result};
use crate::runtime::exec::ParamMode;
use crate::runtime::replay::{self, BUFFER_KEY, DataEnergy};
use candle_core::Tensor;

pub(crate) fn step(s: &mut Session, batch: &Batch) -> Result<StepMetrics> {
    let f = replay::data_energy(&s.exec, &s.observed)?;
    let noise = s.spec.learn.data_noise;
    let x_data = if noise > 0.0 {
        let eps = s
            .rng
            .normal(batch.x.dims(), 0.0, noise, &s.device, s.dtype)?;
        (&batch.x + eps).ctx("data noise")?
    } else {
        batch.x.clone()
    };
    let x_model = sample_model(s, f, batch.x.dims())?;

    let tracked = ParamMode::Tracked(&s.params);
    let x_name = s.observed.as_str();
    let e_data = s.exec.call1(f.energy, &[(x_name, &x_data)], &tracked)?;
    let e_model = s.exec.call1(f.energy, &[(x_name, &x_model)], &tracked)?;
    let ctx = "contrastive divergence loss";
    let (m_data, m_model) = (e_data.mean_all().ctx(ctx)?, e_model.mean_all().ctx(ctx)?);
    let squares = (e_data.sqr().ctx(ctx)?.mean_all().ctx(ctx)?
        + e_model.sqr().ctx(ctx)?.mean_all().ctx(ctx)?)
    .ctx(ctx)?;
    let reg = squares.affine(s.spec.learn.energy_reg, 0.0).ctx(ctx)?;
    let loss = ((&m_data - &m_model).ctx(ctx)? + &reg).ctx(ctx)?;
    let metrics = vec![
        ("loss".to_string(), scalar(&loss)?),
        ("e_data".to_string(), scalar(&m_data)?),
        ("e_model".to_string(), scalar(&m_model)?),
        ("reg".to_string(), scalar(&reg)?),
    ];
    s.apply_gradients(&loss)?;
    Ok(metrics)
}

/// As many model samples as `shape[0]` (examples of shape `shape[1..]`): chains from the replay
/// buffer (created on first use), run with the current parameters and written back.
fn sample_model(s: &mut Session, f: DataEnergy, shape: &[usize]) -> Result<Tensor> {
    let cfg = s
        .spec
        .learn
        .sampler
        .clone()
        .expect("checked: contrastive_divergence has a sampler");
    let buffer = match s.algorithm_state.get(BUFFER_KEY) {
        Some(t) => t.clone(),
        None => replay::new_buffer(&cfg, &shape[1..], &mut s.rng, &s.device, s.dtype)?,
    };
    let (idx, x0) = replay::draw(&buffer, shape[0], &cfg, &mut s.rng)?;
    let params = ParamMode::Detached(&s.params);
    let (x, _) = replay::sgld(&s.exec, f, &s.observed, x0, &cfg, &params, &mut s.rng)?;
    let buffer = replay::write_back(&buffer, &idx, &x)?;
    s.algorithm_state.insert(BUFFER_KEY.to_string(), buffer);
    Ok(x)
}
