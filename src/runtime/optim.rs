//! Optimizers over groups of parameters, with state that a checkpoint can hold (candle's `AdamW`
//! keeps its moments private, so a resumed run could not continue exactly with it).
//!
//! [`Adam`] follows PyTorch's `torch.optim.Adam` step for step: L2 weight decay added to the
//! gradient, bias-corrected moments, `θ ← θ − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + ε)`, with a
//! step count per parameter (a parameter that gets no gradient in a step is left alone, as in
//! PyTorch). [`Sgd`] is plain gradient descent. Each optimizer updates only its own paths, in place
//! (`Var::set`), from new tensors built with real ops.
//!
//! State tensors are named `optim.<group>.<path>.m` / `.v` / `.step` and `optim.<group>.lr`.

use super::error::{Context, Result, RuntimeError};
use super::host::{HostFloat, is_host_float, tensor, try_with_slice, with_slice};
use super::params::Params;
use crate::check;
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor};
use std::collections::{BTreeMap, HashMap};

/// Adam with bias correction (PyTorch's `Adam`, not `AdamW`).
#[derive(Clone, Debug)]
pub struct Adam {
    group: String,
    paths: Vec<String>,
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    /// The learning-rate factor applied by [`Adam::decay_lr`].
    decay: f64,
    state: BTreeMap<String, Moments>,
}

#[derive(Clone, Debug)]
struct Moments {
    m: Tensor,
    v: Tensor,
    step: u64,
}

impl Adam {
    pub fn new(
        group: &str,
        paths: Vec<String>,
        lr: f64,
        betas: (f64, f64),
        weight_decay: f64,
        decay: f64,
    ) -> Self {
        Adam {
            group: group.to_string(),
            paths,
            lr,
            beta1: betas.0,
            beta2: betas.1,
            eps: 1e-8,
            weight_decay,
            decay,
            state: BTreeMap::new(),
        }
    }

    pub fn with_eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// One update of every path of this group that has a gradient in `grads`.
    pub fn step(&mut self, grads: &GradStore, params: &Params) -> Result<()> {
        for path in &self.paths {
            let var = params.get(path);
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let ctx = || format!("Adam step of `{path}` (group {})", self.group);
            let theta = var.as_detached_tensor();
            let g = g.detach();
            let prev = self.state.get(path);
            let step = prev.map_or(1, |s| s.step + 1);
            let c = AdamConsts {
                beta1: self.beta1,
                beta2: self.beta2,
                eps: self.eps,
                weight_decay: self.weight_decay,
                step_size: self.lr / (1.0 - self.beta1.powi(step as i32)),
                inv_sqrt_bc2: 1.0 / (1.0 - self.beta2.powi(step as i32)).sqrt(),
            };
            let moments = prev.map(|s| (&s.m, &s.v));
            let (new, m, v) = if is_host_float(&theta) {
                match theta.dtype() {
                    DType::F32 => adam_host::<f32>(&theta, &g, moments, &c),
                    _ => adam_host::<f64>(&theta, &g, moments, &c),
                }
            } else {
                adam_ops(&theta, &g, moments, &c)
            }
            .with_ctx(ctx)?;
            var.set(&new).with_ctx(ctx)?;
            self.state.insert(path.clone(), Moments { m, v, step });
        }
        Ok(())
    }
}

/// The numbers of one Adam update of one parameter.
struct AdamConsts {
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    /// `lr / (1 − β1ᵗ)`.
    step_size: f64,
    /// `1 / √(1 − β2ᵗ)`.
    inv_sqrt_bc2: f64,
}

/// One Adam update as tensor ops: the new θ, m and v (from zero moments when `moments` is None).
fn adam_ops(
    theta: &Tensor,
    g: &Tensor,
    moments: Option<(&Tensor, &Tensor)>,
    c: &AdamConsts,
) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
    let g = if c.weight_decay != 0.0 {
        g.add(&theta.affine(c.weight_decay, 0.0)?)?
    } else {
        g.clone()
    };
    let (m, v) = match moments {
        Some((m, v)) => (
            m.affine(c.beta1, 0.0)?
                .add(&g.affine(1.0 - c.beta1, 0.0)?)?,
            v.affine(c.beta2, 0.0)?
                .add(&g.sqr()?.affine(1.0 - c.beta2, 0.0)?)?,
        ),
        // From zero moments: m = (1 − β1)·g, v = (1 − β2)·g².
        None => (
            g.affine(1.0 - c.beta1, 0.0)?,
            g.sqr()?.affine(1.0 - c.beta2, 0.0)?,
        ),
    };
    let denom = v.sqrt()?.affine(c.inv_sqrt_bc2, c.eps)?;
    let new = theta.sub(&m.div(&denom)?.affine(c.step_size, 0.0)?)?;
    Ok((new, m, v))
}

/// [`adam_ops`] as one pass over host memory (the ops allocate ten intermediates per parameter
/// and step). Each number is rounded as candle's ops round it, so both give the same bits.
fn adam_host<T: HostFloat>(
    theta: &Tensor,
    g: &Tensor,
    moments: Option<(&Tensor, &Tensor)>,
    c: &AdamConsts,
) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
    let f = T::from_f64;
    let (wd, b1, b2) = (f(c.weight_decay), f(c.beta1), f(c.beta2));
    let (one_b1, one_b2) = (f(1.0 - c.beta1), f(1.0 - c.beta2));
    let (inv_bc2, eps, step_size) = (f(c.inv_sqrt_bc2), f(c.eps), f(c.step_size));
    let zero = T::zero();
    let (theta, g) = (theta.contiguous()?, g.contiguous()?);
    let moments = match moments {
        Some((m, v)) => Some((m.contiguous()?, v.contiguous()?)),
        None => None,
    };
    // Whole-slice passes collected into fresh buffers, which LLVM vectorises (a per-element
    // closure with branches does not). `affine(a, 0)` computes `x·a + 0`: kept as written for the
    // sign of zeros.
    let (m_new, v_new): (Vec<T>, Vec<T>) = try_with_slice(&theta, |ts: &[T]| {
        try_with_slice(&g, |gs: &[T]| {
            let g: Vec<T> = if c.weight_decay != 0.0 {
                ts.iter()
                    .zip(gs)
                    .map(|(&t, &g)| g + (t * wd + zero))
                    .collect()
            } else {
                gs.to_vec()
            };
            let gm = g.iter().map(|&g| g * one_b1 + zero);
            let gv = g.iter().map(|&g| (g * g) * one_b2 + zero);
            match &moments {
                None => Ok((gm.collect(), gv.collect())),
                Some((m, v)) => {
                    let m = try_with_slice(m, |ms: &[T]| {
                        Ok(ms
                            .iter()
                            .zip(gm)
                            .map(|(&m, gm)| (m * b1 + zero) + gm)
                            .collect())
                    })?;
                    let v = try_with_slice(v, |vs: &[T]| {
                        Ok(vs
                            .iter()
                            .zip(gv)
                            .map(|(&v, gv)| (v * b2 + zero) + gv)
                            .collect())
                    })?;
                    Ok((m, v))
                }
            }
        })
    })?;
    let new: Vec<T> = with_slice(&theta, |ts: &[T]| {
        ts.iter()
            .zip(m_new.iter().zip(&v_new))
            .map(|(&t, (&m, &v))| t - ((m / (v.sqrt() * inv_bc2 + eps)) * step_size + zero))
            .collect()
    })?;
    let dims = theta.dims();
    Ok((
        tensor(new, dims)?,
        tensor(m_new, dims)?,
        tensor(v_new, dims)?,
    ))
}

/// Plain gradient descent: `θ ← θ − lr · g`.
#[derive(Clone, Debug)]
pub struct Sgd {
    group: String,
    paths: Vec<String>,
    lr: f64,
}

impl Sgd {
    pub fn new(group: &str, paths: Vec<String>, lr: f64) -> Self {
        Sgd {
            group: group.to_string(),
            paths,
            lr,
        }
    }

    pub fn step(&mut self, grads: &GradStore, params: &Params) -> Result<()> {
        for path in &self.paths {
            let var = params.get(path);
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let ctx = || format!("SGD step of `{path}` (group {})", self.group);
            let new = var
                .as_detached_tensor()
                .sub(&g.detach().affine(self.lr, 0.0).with_ctx(ctx)?)
                .with_ctx(ctx)?;
            var.set(&new).with_ctx(ctx)?;
        }
        Ok(())
    }
}

/// One optimizer of the learning plan, over one group of parameters.
#[derive(Clone, Debug)]
pub enum Optimizer {
    Adam(Adam),
    Sgd(Sgd),
}

impl Optimizer {
    /// The optimizer `config` for the parameter `paths` of `group` (the key in `learn.optimizers`).
    pub fn new(group: &str, config: &check::Optimizer, paths: Vec<String>) -> Self {
        match *config {
            check::Optimizer::Adam {
                lr,
                betas,
                weight_decay,
                decay,
            } => Optimizer::Adam(Adam::new(group, paths, lr, betas, weight_decay, decay)),
            check::Optimizer::Sgd { lr } => Optimizer::Sgd(Sgd::new(group, paths, lr)),
        }
    }

    pub fn group(&self) -> &str {
        match self {
            Optimizer::Adam(a) => &a.group,
            Optimizer::Sgd(s) => &s.group,
        }
    }

    /// The parameter paths this optimizer updates (sorted if built from [`Params::select`]).
    pub fn paths(&self) -> &[String] {
        match self {
            Optimizer::Adam(a) => &a.paths,
            Optimizer::Sgd(s) => &s.paths,
        }
    }

    /// The current learning rate.
    pub fn lr(&self) -> f64 {
        match self {
            Optimizer::Adam(a) => a.lr,
            Optimizer::Sgd(s) => s.lr,
        }
    }

    /// Updates this group's parameters from `grads` (paths without a gradient are left alone).
    pub fn step(&mut self, grads: &GradStore, params: &Params) -> Result<()> {
        match self {
            Optimizer::Adam(a) => a.step(grads, params),
            Optimizer::Sgd(s) => s.step(grads, params),
        }
    }

    /// Multiplies the learning rate by the configured decay (Adam; called once per epoch).
    pub fn decay_lr(&mut self) {
        if let Optimizer::Adam(a) = self {
            a.lr *= a.decay;
        }
    }

    /// The state to checkpoint: learning rate and (Adam) moments and step counts, named
    /// `optim.<group>.lr`, `optim.<group>.<path>.{m,v,step}`. Scalars are f64 tensors of shape
    /// `[1]` on the CPU; moments stay on their device.
    pub fn state(&self) -> Result<HashMap<String, Tensor>> {
        let group = self.group();
        let mut out = HashMap::new();
        out.insert(format!("optim.{group}.lr"), scalar(self.lr())?);
        if let Optimizer::Adam(a) = self {
            for (path, s) in &a.state {
                out.insert(format!("optim.{group}.{path}.m"), s.m.clone());
                out.insert(format!("optim.{group}.{path}.v"), s.v.clone());
                out.insert(format!("optim.{group}.{path}.step"), scalar(s.step as f64)?);
            }
        }
        Ok(out)
    }

    /// Restores [`Optimizer::state`] (moments moved to `params`' device and dtype). Entries of
    /// other groups are ignored; a moment of the wrong shape is an error.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>, params: &Params) -> Result<()> {
        let group = self.group().to_string();
        let lr_key = format!("optim.{group}.lr");
        let lr = match state.get(&lr_key) {
            Some(t) => Some(read_scalar(t, &lr_key)?),
            None => None,
        };
        match self {
            Optimizer::Sgd(s) => {
                if let Some(lr) = lr {
                    s.lr = lr;
                }
            }
            Optimizer::Adam(a) => {
                if let Some(lr) = lr {
                    a.lr = lr;
                }
                let mut restored = BTreeMap::new();
                for path in &a.paths {
                    let key = |what: &str| format!("optim.{group}.{path}.{what}");
                    let (Some(m), Some(v), Some(step)) = (
                        state.get(&key("m")),
                        state.get(&key("v")),
                        state.get(&key("step")),
                    ) else {
                        continue;
                    };
                    let dims = params.get(path).dims().to_vec();
                    let load = |t: &Tensor, k: String| -> Result<Tensor> {
                        if t.dims() != dims.as_slice() {
                            return Err(RuntimeError::CorruptState {
                                what: "optimizer state".into(),
                                message: format!(
                                    "`{k}` has shape {:?}, the parameter has {dims:?}",
                                    t.dims()
                                ),
                            });
                        }
                        t.to_device(params.device())
                            .and_then(|t| t.to_dtype(params.dtype()))
                            .and_then(|t| t.copy())
                            .with_ctx(|| format!("loading `{k}`"))
                    };
                    let m = load(m, key("m"))?;
                    let v = load(v, key("v"))?;
                    let step = read_scalar(step, &key("step"))?;
                    if step < 1.0 || step.fract() != 0.0 {
                        return Err(RuntimeError::CorruptState {
                            what: "optimizer state".into(),
                            message: format!("`{}` is {step}, not a step count", key("step")),
                        });
                    }
                    restored.insert(
                        path.clone(),
                        Moments {
                            m,
                            v,
                            step: step as u64,
                        },
                    );
                }
                a.state = restored;
            }
        }
        Ok(())
    }
}

fn scalar(x: f64) -> Result<Tensor> {
    Tensor::from_vec(vec![x], 1, &Device::Cpu).ctx("saving optimizer state")
}

fn read_scalar(t: &Tensor, key: &str) -> Result<f64> {
    let v = t
        .flatten_all()
        .and_then(|t| t.to_dtype(DType::F64))
        .and_then(|t| t.to_vec1::<f64>())
        .with_ctx(|| format!("reading `{key}`"))?;
    match v[..] {
        [x] => Ok(x),
        _ => Err(RuntimeError::CorruptState {
            what: "optimizer state".into(),
            message: format!("`{key}` holds {} numbers, expected one", v.len()),
        }),
    }
}

#[cfg(test)]
#[path = "optim_tests.rs"]
mod optim_tests;
