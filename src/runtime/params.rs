//! The learned tensors of a program: one `candle_core::Var` per spec path (`networks.g.layer2.weight`),
//! kept in a `BTreeMap` so that every iteration over them (initialisation, saving, optimizer groups)
//! has one deterministic order.
//!
//! Initial values come from ebmc's [`Rng`] (never candle's RNG), drawn in sorted-path order, so the
//! same seed gives the same parameters on every device.

use super::error::{Context, Result, RuntimeError};
use super::rng::{Rng, host_tensor};
use crate::ir::{ParamInit, Program};
use candle_core::{DType, Device, Tensor, Var};
use std::collections::{BTreeMap, HashMap};

/// The parameters of a program on one device, in one dtype.
#[derive(Clone, Debug)]
pub struct Params {
    vars: BTreeMap<String, Var>,
    device: Device,
    dtype: DType,
}

impl Params {
    /// Creates and initialises every parameter of `program` (in sorted-path order, from `rng`).
    pub fn new(program: &Program, rng: &mut Rng, device: &Device, dtype: DType) -> Result<Self> {
        let mut infos: Vec<_> = program.params.iter().collect();
        infos.sort_by(|a, b| a.path.cmp(&b.path));
        let mut vars = BTreeMap::new();
        for info in infos {
            let n: usize = info.dims.iter().product();
            let data = match info.init {
                ParamInit::Constant(c) => vec![c; n],
                ParamInit::Normal { mean, std } => rng.normal_vec(n, mean, std),
                ParamInit::Uniform { lo, hi } => rng.uniform_vec(n, lo, hi),
                ParamInit::FanIn(fan_in) => {
                    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
                    rng.uniform_vec(n, -bound, bound)
                }
            };
            let t = host_tensor(data, &info.dims, device, dtype)?;
            let var =
                Var::from_tensor(&t).with_ctx(|| format!("creating parameter `{}`", info.path))?;
            vars.insert(info.path.clone(), var);
        }
        Ok(Params {
            vars,
            device: device.clone(),
            dtype,
        })
    }

    /// Parameters with the given values (copied into fresh variables), e.g. for tests.
    pub fn from_tensors(
        values: &HashMap<String, Tensor>,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let mut vars = BTreeMap::new();
        for (path, t) in values {
            let t = t
                .to_device(device)
                .and_then(|t| t.to_dtype(dtype))
                .with_ctx(|| format!("creating parameter `{path}`"))?;
            let var = Var::from_tensor(&t).with_ctx(|| format!("creating parameter `{path}`"))?;
            vars.insert(path.clone(), var);
        }
        Ok(Params {
            vars,
            device: device.clone(),
            dtype,
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn len(&self) -> usize {
        self.vars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// The total number of learned numbers.
    pub fn num_elements(&self) -> usize {
        self.vars.values().map(|v| v.elem_count()).sum()
    }

    /// The paths, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.vars.keys().map(|k| k.as_str())
    }

    /// `(path, var)` in sorted order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Var)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn contains(&self, path: &str) -> bool {
        self.vars.contains_key(path)
    }

    /// The variable of `path`; panics (internal error) if the program has no such parameter.
    pub fn get(&self, path: &str) -> &Var {
        self.vars
            .get(path)
            .unwrap_or_else(|| panic!("internal error: no parameter `{path}`"))
    }

    pub fn try_get(&self, path: &str) -> Option<&Var> {
        self.vars.get(path)
    }

    /// Each parameter's current value without the autograd tape. The tensors share storage with the
    /// variables: an optimizer step shows up in them (use [`Params::snapshot`] to keep old values).
    pub fn detached(&self) -> HashMap<String, Tensor> {
        self.vars
            .iter()
            .map(|(k, v)| (k.clone(), v.as_detached_tensor()))
            .collect()
    }

    /// The values to save (shared storage, no tape), by path.
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        self.detached()
    }

    /// A copy of every value (unaffected by later updates).
    pub fn snapshot(&self) -> Result<HashMap<String, Tensor>> {
        self.vars
            .iter()
            .map(|(k, v)| {
                Ok((
                    k.clone(),
                    v.as_detached_tensor()
                        .copy()
                        .with_ctx(|| format!("copying parameter `{k}`"))?,
                ))
            })
            .collect()
    }

    /// Sets every parameter from `values` (converted to this device and dtype). Every parameter
    /// must be present with its exact shape; keys that are not parameters are ignored (a checkpoint
    /// also holds optimizer and RNG state).
    pub fn load_from(&self, values: &HashMap<String, Tensor>) -> Result<()> {
        // Check everything first, so that a bad checkpoint leaves the parameters untouched.
        for (path, var) in &self.vars {
            let Some(t) = values.get(path) else {
                return Err(RuntimeError::ParamMismatch {
                    path: path.clone(),
                    message: "missing from the saved values".into(),
                });
            };
            if t.dims() != var.dims() {
                return Err(RuntimeError::ParamMismatch {
                    path: path.clone(),
                    message: format!(
                        "saved with shape {:?}, the program needs {:?}",
                        t.dims(),
                        var.dims()
                    ),
                });
            }
        }
        for (path, var) in &self.vars {
            let t = values[path]
                .to_device(&self.device)
                .and_then(|t| t.to_dtype(self.dtype))
                .with_ctx(|| format!("loading parameter `{path}`"))?;
            // A tensor sharing the variable's storage (loading our own values) is already there.
            if t.same_storage_as(var.as_tensor()) {
                continue;
            }
            var.set(&t)
                .with_ctx(|| format!("loading parameter `{path}`"))?;
        }
        Ok(())
    }

    /// The paths selected by `selectors`: a selector picks the path equal to it and every path under
    /// it (`networks.f` picks `networks.f.layer0.weight`, not `networks.ff.x`). Sorted, no duplicates.
    pub fn select<S: AsRef<str>>(&self, selectors: &[S]) -> Vec<String> {
        self.vars
            .keys()
            .filter(|path| selectors.iter().any(|s| under(path, s.as_ref())))
            .cloned()
            .collect()
    }

    /// The variables of [`Params::select`], in the same order.
    pub fn select_vars<S: AsRef<str>>(&self, selectors: &[S]) -> Vec<(String, Var)> {
        self.select(selectors)
            .into_iter()
            .map(|p| {
                let v = self.vars[&p].clone();
                (p, v)
            })
            .collect()
    }
}

/// Whether `path` is `prefix` or lies under it (`prefix.` ...).
fn under(path: &str, prefix: &str) -> bool {
    path == prefix
        || (path.starts_with(prefix)
            && (prefix.ends_with('.') || path[prefix.len()..].starts_with('.')))
}

/// Helper on tensors: whether two tensors share storage (and so one cannot be `Var::set` from the
/// other).
trait SameStorage {
    fn same_storage_as(&self, other: &Tensor) -> bool;
}

impl SameStorage for Tensor {
    fn same_storage_as(&self, other: &Tensor) -> bool {
        // candle exposes no public storage comparison; compare the tensor ids of the detached views
        // through their `Arc` storage addresses.
        let (a, _) = self.storage_and_layout();
        let (b, _) = other.storage_and_layout();
        std::ptr::eq(&*a as *const _, &*b as *const _)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::ParamInfo;

    fn program() -> Program {
        Program {
            params: vec![
                ParamInfo {
                    path: "networks.f.layer0.weight".into(),
                    dims: vec![4, 3],
                    init: ParamInit::FanIn(3),
                },
                ParamInfo {
                    path: "networks.f.layer0.bias".into(),
                    dims: vec![4],
                    init: ParamInit::Constant(0.5),
                },
                ParamInfo {
                    path: "networks.ff.w".into(),
                    dims: vec![2],
                    init: ParamInit::Uniform { lo: 2.0, hi: 3.0 },
                },
                ParamInfo {
                    path: "parameters.mu".into(),
                    dims: vec![10, 2],
                    init: ParamInit::Normal {
                        mean: 1.0,
                        std: 0.1,
                    },
                },
            ],
            ..Program::default()
        }
    }

    fn values(p: &Params) -> Vec<(String, Vec<f64>)> {
        p.iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    v.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn same_seed_identical_params() {
        let dev = Device::Cpu;
        let a = Params::new(&program(), &mut Rng::new(5), &dev, DType::F64).unwrap();
        let b = Params::new(&program(), &mut Rng::new(5), &dev, DType::F64).unwrap();
        let c = Params::new(&program(), &mut Rng::new(6), &dev, DType::F64).unwrap();
        assert_eq!(values(&a), values(&b));
        assert_ne!(values(&a), values(&c));
        // The declaration order does not matter (sorted-path order).
        let mut rev = program();
        rev.params.reverse();
        let d = Params::new(&rev, &mut Rng::new(5), &dev, DType::F64).unwrap();
        assert_eq!(values(&a), values(&d));
        // Inits respected.
        let v: HashMap<String, Vec<f64>> = values(&a).into_iter().collect();
        assert!(v["networks.f.layer0.bias"].iter().all(|x| *x == 0.5));
        let bound = 1.0 / 3f64.sqrt();
        assert!(
            v["networks.f.layer0.weight"]
                .iter()
                .all(|x| x.abs() < bound)
        );
        assert!(v["networks.ff.w"].iter().all(|x| (2.0..3.0).contains(x)));
        let mu = &v["parameters.mu"];
        let m = mu.iter().sum::<f64>() / mu.len() as f64;
        assert!((m - 1.0).abs() < 0.1);
        assert_eq!(a.num_elements(), 12 + 4 + 2 + 20);
    }

    #[test]
    fn select_by_prefix() {
        let p = Params::new(&program(), &mut Rng::new(1), &Device::Cpu, DType::F32).unwrap();
        assert_eq!(
            p.select(&["networks.f"]),
            vec!["networks.f.layer0.bias", "networks.f.layer0.weight"]
        );
        assert_eq!(
            p.select(&["networks.ff", "parameters.mu"]),
            vec!["networks.ff.w", "parameters.mu"]
        );
        assert_eq!(p.select(&["networks."]).len(), 3);
        assert!(p.select(&["net"]).is_empty());
    }

    #[test]
    fn load_round_trip_and_mismatch() {
        let dev = Device::Cpu;
        let a = Params::new(&program(), &mut Rng::new(1), &dev, DType::F64).unwrap();
        let b = Params::new(&program(), &mut Rng::new(2), &dev, DType::F64).unwrap();
        let saved = a.snapshot().unwrap();
        b.load_from(&saved).unwrap();
        assert_eq!(values(&a), values(&b));
        // Loading its own (shared-storage) values is a no-op.
        b.load_from(&b.tensors()).unwrap();
        assert_eq!(values(&a), values(&b));
        // From f32 values: converted.
        let f32s: HashMap<String, Tensor> = saved
            .iter()
            .map(|(k, v)| (k.clone(), v.to_dtype(DType::F32).unwrap()))
            .collect();
        b.load_from(&f32s).unwrap();
        let mut bad = saved.clone();
        bad.insert(
            "parameters.mu".into(),
            Tensor::zeros((2, 10), DType::F64, &dev).unwrap(),
        );
        let err = b.load_from(&bad).unwrap_err();
        assert_eq!(err.code_str(), "ebmc::run::param_mismatch");
        assert!(err.to_string().contains("parameters.mu"), "{err}");
        let mut missing = saved;
        missing.remove("networks.ff.w");
        let err = b.load_from(&missing).unwrap_err();
        assert!(err.to_string().contains("networks.ff.w"), "{err}");
    }
}
