//! Training: the state every algorithm shares ([`Session`]: executor, parameters, optimizers, RNG)
//! and the algorithms' steps. The loop that feeds minibatches, logs and checkpoints is in `run.rs`.

pub(crate) mod amortized_ssl;
mod contrastive_divergence;
pub mod run;
mod short_run_mle;

use crate::check::{Algorithm, CheckedSpec, Langevin, Reference};
use crate::ir::Program;
use crate::runtime::error::{Context, Result, RuntimeError};
use crate::runtime::exec::{Executor, ParamMode};
use crate::runtime::optim::Optimizer;
use crate::runtime::params::Params;
use crate::runtime::rng::Rng;
use crate::runtime::sampler::{Target, langevin};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;

pub(crate) use short_run_mle::scalar;

/// Named scalar metrics of one step, in a stable order.
pub type StepMetrics = Vec<(String, f64)>;

/// One minibatch: features (already scaled to the declared range) and, when known, labels.
pub struct Batch {
    pub x: Tensor,
    pub labels: Option<Vec<u32>>,
}

/// An optimizer and the parameter paths it updates.
pub struct Group {
    pub key: String,
    pub paths: Vec<String>,
    pub optimizer: Optimizer,
}

/// Everything a learning step reads and updates.
pub struct Session<'a> {
    pub spec: &'a CheckedSpec,
    pub exec: Executor,
    pub params: Params,
    pub groups: Vec<Group>,
    pub rng: Rng,
    /// The seed the session was created with (a baseline trained beside it starts the same way).
    pub seed: u64,
    pub device: Device,
    pub dtype: DType,
    /// Name and event shape of the continuous latent (if any) and of the observed features.
    pub latent: String,
    pub latent_shape: Vec<usize>,
    pub observed: String,
    /// State an algorithm keeps across iterations (replay buffers, persistent chains), saved in
    /// checkpoints under `algo.<name>` so a resumed run continues exactly.
    pub algorithm_state: HashMap<String, Tensor>,
    /// Labelled training examples (features, labels) when `data.labels_per_class` keeps a few.
    pub labelled: Option<(Tensor, Vec<u32>)>,
    /// Where the built-in data sets live (`RunOptions::data_dir`): evaluations that load another
    /// set (`ood_auroc`) read it from here.
    pub data_dir: std::path::PathBuf,
}

impl<'a> Session<'a> {
    pub fn new(
        spec: &'a CheckedSpec,
        program: &Program,
        seed: u64,
        device: Device,
        dtype: DType,
    ) -> Result<Self> {
        let mut rng = Rng::new(seed);
        let params = Params::new(program, &mut rng, &device, dtype)?;
        let groups = spec
            .learn
            .optimizers
            .iter()
            .map(|u| {
                let mut selectors: Vec<String> = u
                    .networks
                    .iter()
                    .map(|n| format!("networks.{}.", spec.network(*n).name))
                    .collect();
                selectors.extend(
                    u.parameters
                        .iter()
                        .map(|p| format!("parameters.{}", spec.parameter(*p).name)),
                );
                let paths = params.select(&selectors);
                Group {
                    key: u.key.clone(),
                    optimizer: Optimizer::new(&u.key, &u.optimizer, paths.clone()),
                    paths,
                }
            })
            .collect();
        let latent = spec
            .variables
            .iter()
            .find(|v| !v.observed && v.is_continuous());
        let observed = spec
            .variables
            .iter()
            .find(|v| v.observed && v.is_continuous());
        Ok(Session {
            spec,
            exec: Executor::new(program),
            params,
            groups,
            rng,
            seed,
            device,
            dtype,
            latent: latent.map(|v| v.name.clone()).unwrap_or_default(),
            latent_shape: latent.map(|v| v.shape.clone()).unwrap_or_default(),
            observed: observed.map(|v| v.name.clone()).unwrap_or_default(),
            algorithm_state: HashMap::new(),
            labelled: None,
            data_dir: std::path::PathBuf::from("data"),
        })
    }

    /// One iteration of the spec's algorithm.
    pub fn step(&mut self, batch: &Batch) -> Result<StepMetrics> {
        match self.spec.learn.algorithm {
            Algorithm::ShortRunMle => short_run_mle::step(self, batch),
            Algorithm::ContrastiveDivergence => contrastive_divergence::step(self, batch),
            Algorithm::AmortizedSsl => amortized_ssl::step(self, batch),
        }
    }

    /// `b` draws of the latent from its reference density p0.
    pub fn draw_reference(&mut self, b: usize) -> Result<Tensor> {
        let (mean, std) = match self
            .spec
            .variables
            .iter()
            .find(|v| v.name == self.latent)
            .and_then(|v| v.reference.clone())
        {
            Some(Reference::Normal { mean, std }) => (mean, std),
            None => (0.0, 1.0),
        };
        let mut shape = vec![b];
        shape.extend(&self.latent_shape);
        self.rng.normal(&shape, mean, std, &self.device, self.dtype)
    }

    /// Moves `z0` along a Langevin chain on the prior (the derived `prior_grad`), parameters
    /// detached: no tape inside the chain.
    pub fn prior_chain(&mut self, z0: Tensor, cfg: &Langevin) -> Result<Tensor> {
        let target = Target {
            grad_fn: "prior_grad",
            moved: &self.latent,
            given: &[],
        };
        let params = ParamMode::Detached(&self.params);
        langevin(&self.exec, &target, z0, cfg, &params, &mut self.rng)
    }

    /// Moves `z0` along a Langevin chain on the posterior given the observed `x` (the derived
    /// `posterior_grad`), parameters detached.
    pub fn posterior_chain(&mut self, x: &Tensor, z0: Tensor, cfg: &Langevin) -> Result<Tensor> {
        let given = [(self.observed.as_str(), x)];
        let target = Target {
            grad_fn: "posterior_grad",
            moved: &self.latent,
            given: &given,
        };
        let params = ParamMode::Detached(&self.params);
        langevin(&self.exec, &target, z0, cfg, &params, &mut self.rng)
    }

    /// Mean squared error between x and the generator's mean at z (per pixel).
    pub fn reconstruction_error(&self, x: &Tensor, z: &Tensor) -> Result<f64> {
        let mean = self.exec.call1(
            "generator",
            &[(&self.latent, z)],
            &ParamMode::Detached(&self.params),
        )?;
        let d = (mean - x).ctx("reconstruction error")?;
        scalar(
            &d.sqr()
                .ctx("reconstruction error")?
                .mean_all()
                .ctx("reconstruction error")?,
        )
    }

    /// Backpropagates `loss` to the parameters and steps every optimizer on its own group.
    pub fn apply_gradients(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward().ctx("backward pass")?;
        for g in &mut self.groups {
            g.optimizer.step(&grads, &self.params)?;
        }
        Ok(())
    }

    /// Backpropagates `loss` and steps the optimizers on the parameters in `paths` only (the
    /// gradients of all others are dropped): for algorithms with several updates per iteration.
    pub fn apply_gradients_to(&mut self, loss: &Tensor, paths: &[String]) -> Result<()> {
        let mut grads = loss.backward().ctx("backward pass")?;
        for (path, var) in self.params.iter() {
            if !paths.iter().any(|p| p == path) {
                grads.remove(var.as_tensor());
            }
        }
        for g in &mut self.groups {
            g.optimizer.step(&grads, &self.params)?;
        }
        Ok(())
    }

    /// Called at the end of every epoch: the optimizers' learning-rate decay.
    pub fn end_epoch(&mut self) {
        for g in &mut self.groups {
            g.optimizer.decay_lr();
        }
    }

    /// Parameters, optimizer moments and the RNG state: everything a resumed run needs.
    pub fn state(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = self.params.snapshot()?;
        for g in &self.groups {
            out.extend(g.optimizer.state()?);
        }
        out.insert("rng.state".into(), self.rng.state_tensor()?);
        for (k, v) in &self.algorithm_state {
            out.insert(format!("algo.{k}"), v.clone());
        }
        Ok(out)
    }

    /// Restores [`Session::state`].
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        self.params.load_from(state)?;
        for g in &mut self.groups {
            g.optimizer.load_state(state, &self.params)?;
        }
        let rng = state
            .get("rng.state")
            .ok_or_else(|| RuntimeError::CorruptState {
                what: "checkpoint".into(),
                message: "no `rng.state` entry".into(),
            })?;
        self.rng = Rng::from_state_tensor(rng)?;
        self.algorithm_state = state
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    k.strip_prefix("algo.")?.to_string(),
                    v.to_device(&self.device).ok()?,
                ))
            })
            .collect();
        Ok(())
    }
}
