//! `few_label(shots, repeats)`: the few-label protocol of paper 003 (`cebm/eval.py`,
//! `few_label_classification`). For each shot count k and repeat r, k labelled training examples
//! per class are drawn with seed r (`data::labelled_subset`), a logistic regression is fitted on
//! their features and scored on the whole test split; the same subsets on raw pixels give the
//! baseline beside it. `all` uses the whole training set once (it has nothing random).
//!
//! Features: the posterior mean the compiler derived (`posterior_mean_std`; for a mixture bias the
//! mean of the arg-max-responsibility component, as the authors' `latent_params`), or an
//! amortized encoder's mean.
//!
//! Classifier (the authors use scikit-learn's liblinear one-vs-rest with C = 1 on raw features):
//! multinomial logistic regression with an L2 penalty, minimising
//! `(1/n) [Σ_i −log softmax(W x_i + b)_{y_i} + α/2 ‖W‖²]` with α = 1 (scikit-learn's C = 1) by
//! L-BFGS from `argmin` (More–Thuente line search). Features are standardised with the mean and
//! standard deviation of the labelled subset, as scikit-learn users do with a `StandardScaler` (a
//! feature constant on the subset is only centred). `linfa-logistic` was tried first: it minimises
//! the *summed* loss with the same L-BFGS, and on these problems its first line search often failed
//! silently (it returned the zero model, 10 % accuracy, or stopped at 0.89 training accuracy on
//! the digits); scaling the objective by 1/n (same minimiser) makes the first step O(1).

use super::EVAL_BATCH;
use super::generation::tensor;
use crate::runtime::data::{self, Dataset};
use crate::runtime::error::{Context, Result, RuntimeError};
use crate::runtime::exec::ParamMode;
use crate::runtime::train::Session;
use argmin::core::{CostFunction, Executor, Gradient, State};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use candle_core::{D, DType, Tensor};
use ndarray::{Array2, ArrayView2, Axis};
use std::cell::RefCell;

/// The L2 weight α (scikit-learn's C = 1/α).
const ALPHA: f64 = 1.0;
/// L-BFGS iterations at most, and the gradient norm (of the 1/n-scaled loss) that stops it.
const MAX_ITERATIONS: u64 = 1000;
const GRADIENT_TOLERANCE: f64 = 1e-6;

/// Row-major features of a data set: `rows × dim` numbers.
pub struct Features {
    pub values: Vec<f32>,
    pub dim: usize,
}

impl Features {
    fn rows(&self, idx: &[usize]) -> Vec<f32> {
        idx.iter()
            .flat_map(|&i| &self.values[i * self.dim..(i + 1) * self.dim])
            .copied()
            .collect()
    }

    fn of_pixels(d: &Dataset) -> Features {
        Features {
            values: d.features.clone(),
            dim: d.dim(),
        }
    }
}

/// A fitted classifier with the standardisation it was fitted with.
pub struct Classifier {
    mean: Vec<f64>,
    scale: Vec<f64>,
    /// `[dim + 1, classes]`: the weights, then the intercepts as the last row.
    weights: Array2<f64>,
}

impl Classifier {
    /// Fits on `x` (`y.len()` rows of `dim` features); classes are `0..=max(y)`.
    pub fn fit(x: &[f32], dim: usize, y: &[u32]) -> Result<Classifier> {
        let (mean, scale) = moments(x, dim);
        let records = standardise(x, dim, &mean, &scale)?;
        let classes = y.iter().max().map_or(1, |&c| c as usize + 1);
        let problem = Softmax {
            x: records,
            y: y.iter().map(|&c| c as usize).collect(),
            classes,
            cache: RefCell::new(None),
        };
        let fail = |e: argmin::core::Error| RuntimeError::Candle {
            context: "fitting the logistic regression (argmin L-BFGS)".into(),
            message: e.to_string(),
        };
        let solver = LBFGS::new(MoreThuenteLineSearch::new(), 10)
            .with_tolerance_grad(GRADIENT_TOLERANCE)
            .map_err(fail)?;
        let start = vec![0.0; (dim + 1) * classes];
        let result = Executor::new(problem, solver)
            .configure(|s| s.param(start).max_iters(MAX_ITERATIONS))
            .run()
            .map_err(fail)?;
        let best = result.state.get_best_param().cloned().unwrap_or_default();
        let weights =
            Array2::from_shape_vec((dim + 1, classes), best).map_err(|e| RuntimeError::Candle {
                context: "logistic regression weights".into(),
                message: e.to_string(),
            })?;
        Ok(Classifier {
            mean,
            scale,
            weights,
        })
    }

    /// The fraction of rows of `x` whose predicted class is `y`.
    pub fn accuracy(&self, x: &[f32], dim: usize, y: &[u32]) -> Result<f64> {
        let logits = logits(
            &standardise(x, dim, &self.mean, &self.scale)?,
            &self.weights,
        );
        let right = logits
            .outer_iter()
            .zip(y)
            .filter(|(row, c)| argmax(row.iter()) == **c as usize)
            .count();
        Ok(right as f64 / y.len().max(1) as f64)
    }
}

fn argmax<'a>(v: impl Iterator<Item = &'a f64>) -> usize {
    v.enumerate()
        .fold((0, f64::NEG_INFINITY), |best, (i, &a)| {
            if a > best.1 { (i, a) } else { best }
        })
        .0
}

/// `x W + b` with `w = [W; b]`.
fn logits(x: &Array2<f64>, w: &Array2<f64>) -> Array2<f64> {
    let d = x.ncols();
    x.dot(&w.slice(ndarray::s![..d, ..])) + w.row(d)
}

/// The 1/n-scaled penalised multinomial log-loss; cost and gradient are computed together and the
/// last pair kept, since the line search asks for both at the same point.
/// The last evaluated (parameters, cost, gradient).
type CostCache = RefCell<Option<(Vec<f64>, f64, Vec<f64>)>>;

struct Softmax {
    x: Array2<f64>,
    y: Vec<usize>,
    classes: usize,
    cache: CostCache,
}

impl Softmax {
    fn evaluate(&self, p: &[f64]) -> (f64, Vec<f64>) {
        if let Some((at, cost, grad)) = self.cache.borrow().as_ref()
            && at.as_slice() == p
        {
            return (*cost, grad.clone());
        }
        let (n, d) = self.x.dim();
        let w = ArrayView2::from_shape((d + 1, self.classes), p).expect("parameter length");
        let mut probs = logits(&self.x, &w.to_owned());
        let mut loss = 0.0;
        for (mut row, &c) in probs.outer_iter_mut().zip(&self.y) {
            let top = row.fold(f64::NEG_INFINITY, |a, &b| a.max(b));
            let lse = top + row.mapv(|v| (v - top).exp()).sum().ln();
            loss += lse - row[c];
            row.mapv_inplace(|v| (v - lse).exp());
            row[c] -= 1.0;
        }
        let weights = w.slice(ndarray::s![..d, ..]);
        let nf = n.max(1) as f64;
        let cost = (loss + 0.5 * ALPHA * weights.mapv(|v| v * v).sum()) / nf;
        let mut grad = Array2::zeros((d + 1, self.classes));
        grad.slice_mut(ndarray::s![..d, ..])
            .assign(&((self.x.t().dot(&probs) + &weights * ALPHA) / nf));
        grad.row_mut(d).assign(&(probs.sum_axis(Axis(0)) / nf));
        let grad = grad.into_raw_vec_and_offset().0;
        *self.cache.borrow_mut() = Some((p.to_vec(), cost, grad.clone()));
        (cost, grad)
    }
}

impl CostFunction for Softmax {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, p: &Vec<f64>) -> std::result::Result<f64, argmin::core::Error> {
        Ok(self.evaluate(p).0)
    }
}

impl Gradient for Softmax {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;

    fn gradient(&self, p: &Vec<f64>) -> std::result::Result<Vec<f64>, argmin::core::Error> {
        Ok(self.evaluate(p).1)
    }
}

/// Per-feature mean and standard deviation of `x`; a feature constant on `x` gets scale 1.
fn moments(x: &[f32], dim: usize) -> (Vec<f64>, Vec<f64>) {
    let n = (x.len() / dim).max(1) as f64;
    let mut mean = vec![0f64; dim];
    for row in x.chunks_exact(dim) {
        mean.iter_mut()
            .zip(row)
            .for_each(|(m, &v)| *m += v as f64 / n);
    }
    let mut var = vec![0f64; dim];
    for row in x.chunks_exact(dim) {
        for ((s, &v), m) in var.iter_mut().zip(row).zip(&mean) {
            *s += (v as f64 - m).powi(2) / n;
        }
    }
    let scale = var
        .iter()
        .map(|v| if v.sqrt() > 1e-6 { v.sqrt() } else { 1.0 })
        .collect();
    (mean, scale)
}

fn standardise(x: &[f32], dim: usize, mean: &[f64], scale: &[f64]) -> Result<Array2<f64>> {
    let v: Vec<f64> = x
        .chunks_exact(dim)
        .flat_map(|row| {
            row.iter()
                .zip(mean)
                .zip(scale)
                .map(|((&v, m), s)| (v as f64 - m) / s)
        })
        .collect();
    Array2::from_shape_vec((x.len() / dim, dim), v).map_err(|e| RuntimeError::Candle {
        context: "few-label features".into(),
        message: e.to_string(),
    })
}

/// The posterior-mean features of the examples `rows` of `d`, laid out as rows of all of `d`: the
/// rows not asked for stay zero and are never read (few-label fits read only their subsets, so a
/// 10-shot evaluation on MNIST encodes 100s of training images, not 60,000).
pub fn posterior_features(s: &Session, d: &Dataset, rows: &[usize]) -> Result<Features> {
    let mut values = Vec::new();
    let mut dim = 0;
    for idx in rows.chunks(EVAL_BATCH) {
        let x = tensor(s, d, idx)?;
        let mean = posterior_mean(s, &x)?;
        dim = mean.dim(1).ctx("features")?;
        let batch = mean
            .to_dtype(DType::F32)
            .and_then(|m| m.flatten_all())
            .and_then(|m| m.to_vec1::<f32>())
            .ctx("features")?;
        values.resize(d.len() * dim, 0.0);
        for (&i, row) in idx.iter().zip(batch.chunks(dim)) {
            values[i * dim..(i + 1) * dim].copy_from_slice(row);
        }
    }
    Ok(Features { values, dim })
}

/// The posterior mean `[B, D]` at a batch of x.
pub fn posterior_mean(s: &Session, x: &Tensor) -> Result<Tensor> {
    let params = ParamMode::Detached(&s.params);
    let given = [(s.observed.as_str(), x)];
    if s.exec.has_function("posterior_mean_std") {
        let outs = s.exec.call("posterior_mean_std", &given, &params)?;
        let get = |name: &str| outs.iter().find(|(n, _)| n == name).map(|(_, t)| t.clone());
        let mean = get("mean").expect("posterior_mean_std returns `mean`");
        return match get("responsibilities") {
            Some(r) => argmax_component(&mean, &r),
            None => Ok(mean),
        };
    }
    if s.exec.has_function("encoder") {
        return s.exec.call1("encoder", &given, &params);
    }
    Err(RuntimeError::Unsupported {
        what: "few-label features without a closed-form posterior (`posterior_mean_std`) or an encoder".into(),
    })
}

/// `mean[b, k*, :]` with k* the arg-max of `resp[b, :]`.
fn argmax_component(mean: &Tensor, resp: &Tensor) -> Result<Tensor> {
    let (b, _, d) = mean.dims3().ctx("mixture posterior mean")?;
    resp.argmax_keepdim(D::Minus1)
        .and_then(|k| k.reshape((b, 1, 1)))
        .and_then(|k| k.broadcast_as((b, 1, d)))
        .and_then(|k| k.contiguous())
        .and_then(|k| mean.contiguous()?.gather(&k, 1))
        .and_then(|m| m.squeeze(1))
        .ctx("arg-max component of the mixture posterior")
}

/// The labelled training subsets of one shot count: `repeats` seeded draws of k per class, or the
/// whole training set once for `all` (it has nothing random).
fn subsets(train: &Dataset, shots: Option<usize>, repeats: usize) -> Result<Vec<Vec<usize>>> {
    let Some(k) = shots else {
        return Ok(vec![(0..train.len()).collect()]);
    };
    (0..repeats as u64)
        .map(|r| {
            data::labelled_subset(train, k, r).map_err(|e| RuntimeError::Unsupported {
                what: format!("few_label with {k} shots: {e}"),
            })
        })
        .collect()
}

/// Test accuracies of one feature set, one per labelled subset.
fn accuracies(
    f: &Features,
    test_f: &Features,
    train: &Dataset,
    test: &Dataset,
    subsets: &[Vec<usize>],
) -> Result<Vec<f64>> {
    let train_y = labels(train)?;
    let test_y = labels(test)?;
    subsets
        .iter()
        .map(|idx| {
            let y: Vec<u32> = idx.iter().map(|&i| train_y[i]).collect();
            let clf = Classifier::fit(&f.rows(idx), f.dim, &y)?;
            clf.accuracy(&test_f.values, test_f.dim, test_y)
        })
        .collect()
}

fn labels(d: &Dataset) -> Result<&[u32]> {
    d.labels
        .as_deref()
        .ok_or_else(|| RuntimeError::Unsupported {
            what: format!("few_label on `{}`, which has no labels", d.name),
        })
}

/// Mean and population standard deviation (numpy's default, as the authors report).
fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    (
        m,
        (v.iter().map(|a| (a - m).powi(2)).sum::<f64>() / n).sqrt(),
    )
}

/// The evaluation: `few_label_<k>_{mean,sd}` and `raw_pixels_<k>_{mean,sd}` (k a number or `all`).
pub fn few_label(
    s: &Session,
    train: &Dataset,
    test: &Dataset,
    shots: &[Option<usize>],
    repeats: usize,
) -> Result<Vec<(String, f64)>> {
    let draws = shots
        .iter()
        .map(|&k| subsets(train, k, repeats))
        .collect::<Result<Vec<_>>>()?;
    let mut needed: Vec<usize> = draws.iter().flatten().flatten().copied().collect();
    needed.sort_unstable();
    needed.dedup();
    let all_test: Vec<usize> = (0..test.len()).collect();
    let (feat, test_feat) = (
        posterior_features(s, train, &needed)?,
        posterior_features(s, test, &all_test)?,
    );
    let (pix, test_pix) = (Features::of_pixels(train), Features::of_pixels(test));
    let mut out = Vec::new();
    for (&k, subsets) in shots.iter().zip(&draws) {
        let name = k.map_or("all".to_string(), |k| k.to_string());
        for (prefix, f, tf) in [
            ("few_label", &feat, &test_feat),
            ("raw_pixels", &pix, &test_pix),
        ] {
            let (m, sd) = mean_sd(&accuracies(f, tf, train, test, subsets)?);
            out.push((format!("{prefix}_{name}_mean"), m));
            out.push((format!("{prefix}_{name}_sd"), sd));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two Gaussian blobs per class in 3 classes, separable along different axes.
    fn blobs(n: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
        let mut rng = crate::runtime::rng::Rng::new(seed);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in 0..n {
            let c = (i % 3) as u32;
            for j in 0..4 {
                let centre = if j == c as usize { 3.0 } else { 0.0 };
                x.push((centre + rng.normal_f64()) as f32 * 10.0 + 5.0);
            }
            y.push(c);
        }
        (x, y)
    }

    #[test]
    fn logistic_regression_separates_blobs_on_any_scale() {
        let (x, y) = blobs(300, 1);
        let clf = Classifier::fit(&x, 4, &y).unwrap();
        let (xt, yt) = blobs(300, 2);
        let acc = clf.accuracy(&xt, 4, &yt).unwrap();
        // Bayes accuracy of these blobs is about 0.93.
        assert!(acc > 0.85, "{acc}");
        // Constant labels on random features predict at chance.
        let chance = clf.accuracy(&xt, 4, &vec![0; yt.len()]).unwrap();
        assert!(chance < 0.5, "{chance}");
    }

    #[test]
    fn a_constant_feature_is_only_centred() {
        let x = vec![1.0, 0.0, 1.0, 1.0, 1.0, 2.0, 1.0, 3.0];
        let clf = Classifier::fit(&x, 2, &[0, 0, 1, 1]).unwrap();
        assert_eq!(clf.scale[0], 1.0);
        assert!(clf.accuracy(&x, 2, &[0, 0, 1, 1]).unwrap() == 1.0);
    }

    #[test]
    fn mean_sd_is_the_population_one() {
        let (m, sd) = mean_sd(&[1.0, 3.0]);
        assert_eq!((m, sd), (2.0, 1.0));
    }
}
