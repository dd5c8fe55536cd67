//! Data: the built-in data sets and the file readers, as plain `Vec<f32>` (the executor makes
//! tensors of them), with seeded splits, labelled subsets and the MNIST anomaly protocol.
//!
//! - `digits`: the 1,797 UCI 8×8 digits embedded in the binary (pixels 0..16), split 80/20 by a
//!   seeded shuffle ([`holdout_indices`], seed `data.seed`).
//! - `mnist`, `fashion-mnist`: the idx files under `DATA_DIR/mnist/` and
//!   `DATA_DIR/fashion-mnist/` that `scripts/setup-data.sh` fetches (a `.gz` next to a missing
//!   plain file is read too). Magic numbers and exact sizes are checked on every load; the
//!   SHA-256 sums only by [`verify_checksums`].
//! - `idx:PATH`, `csv:PATH`, `npy:PATH`: see [`load_source`]. Paths are used as written (a
//!   relative path is relative to the directory ebmc runs in).
//!
//! Features keep their raw values; [`Dataset::scaled`] maps them to the `in [lo, hi]` of the
//! observed variable using [`Dataset::raw_range`].

mod builtin;
mod csv;
mod error;
mod idx;
mod npy;
#[cfg(test)]
mod tests;

pub use builtin::{CHECKSUMS, digits, idx_files, verify_checksums, verify_set_checksums};
pub use error::DataError;

use crate::check::{BuiltinData, DataConfig, DataSource, Split};
use error::{Origin, fmt_shape};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use std::path::{Path, PathBuf};

/// The range the raw feature values are scaled from.
#[derive(Clone, Debug, PartialEq)]
pub enum RawRange {
    /// Given by the data type, the same for every split: digits 0..16, unsigned bytes 0..255,
    /// booleans 0..1; and the target range after [`Dataset::scaled`].
    Fixed { lo: f32, hi: f32 },
    /// Minimum and maximum over the training data, one pair for all features (idx files of
    /// other types than unsigned bytes, `.npy` arrays).
    Global { lo: f32, hi: f32 },
    /// Minimum and maximum of each feature over the training data (CSV columns).
    PerFeature { lo: Vec<f32>, hi: Vec<f32> },
}

impl RawRange {
    /// Whether the range was measured on data (and so must come from the training split).
    pub fn is_fitted(&self) -> bool {
        !matches!(self, RawRange::Fixed { .. })
    }

    /// The largest raw value the range allows (16 for digits, 255 for MNIST).
    pub fn max(&self) -> f32 {
        match self {
            RawRange::Fixed { hi, .. } | RawRange::Global { hi, .. } => *hi,
            RawRange::PerFeature { hi, .. } => hi.iter().copied().fold(f32::MIN, f32::max),
        }
    }

    /// The smallest raw value the range allows.
    pub fn min(&self) -> f32 {
        match self {
            RawRange::Fixed { lo, .. } | RawRange::Global { lo, .. } => *lo,
            RawRange::PerFeature { lo, .. } => lo.iter().copied().fold(f32::MAX, f32::min),
        }
    }
}

/// Examples as one row-major `n × d` block of numbers, with optional integer class labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// `len() × dim()` numbers, row-major.
    pub features: Vec<f32>,
    /// The shape of one example, e.g. `[1, 28, 28]` or `[13]`.
    pub shape: Vec<usize>,
    /// One class per example, `0..classes`.
    pub labels: Option<Vec<u32>>,
    /// Number of classes (10 for the built-in sets; max label + 1 for files; 0 without labels).
    pub classes: usize,
    /// What the data are, for messages and reports: `digits:train`, `csv:data/tables/wine.csv`.
    pub name: String,
    /// The range of the raw values, which [`Dataset::scaled`] maps to the variable's range.
    pub raw_range: RawRange,
}

impl Dataset {
    /// Builds a data set; panics ("internal error") when the sizes do not fit together.
    pub fn new(
        name: impl Into<String>,
        shape: Vec<usize>,
        features: Vec<f32>,
        labels: Option<Vec<u32>>,
        classes: usize,
        raw_range: RawRange,
    ) -> Dataset {
        let d: usize = shape.iter().product();
        assert!(
            d > 0 && features.len().is_multiple_of(d),
            "internal error: {} numbers are not whole examples of shape {}",
            features.len(),
            fmt_shape(&shape)
        );
        if let Some(l) = &labels {
            assert_eq!(l.len(), features.len() / d, "internal error: label count");
            assert!(
                l.iter().all(|&c| (c as usize) < classes),
                "internal error: a label is not below `classes` ({classes})"
            );
        }
        Dataset {
            features,
            shape,
            labels,
            classes,
            name: name.into(),
            raw_range,
        }
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.features.len() / self.dim()
    }

    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }

    /// Numbers per example (the product of [`Dataset::shape`]).
    pub fn dim(&self) -> usize {
        self.shape.iter().product::<usize>().max(1)
    }

    /// Example `i`, `dim()` numbers.
    pub fn example(&self, i: usize) -> &[f32] {
        let d = self.dim();
        &self.features[i * d..(i + 1) * d]
    }

    pub fn label(&self, i: usize) -> Option<u32> {
        self.labels.as_ref().map(|l| l[i])
    }

    /// The chosen examples, in the order given (repeats allowed), as a new data set of the same
    /// kind (same name, shape, classes and raw range).
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        Dataset {
            features: self.batch(indices),
            shape: self.shape.clone(),
            labels: self.label_batch(indices),
            classes: self.classes,
            name: self.name.clone(),
            raw_range: self.raw_range.clone(),
        }
    }

    /// The chosen examples' features, `indices.len() × dim()` numbers row-major.
    pub fn batch(&self, indices: &[usize]) -> Vec<f32> {
        let mut out = Vec::with_capacity(indices.len() * self.dim());
        for &i in indices {
            out.extend_from_slice(self.example(i));
        }
        out
    }

    /// The chosen examples' labels.
    pub fn label_batch(&self, indices: &[usize]) -> Option<Vec<u32>> {
        self.labels
            .as_ref()
            .map(|l| indices.iter().map(|&i| l[i]).collect())
    }

    /// The chosen examples' labels one-hot, `indices.len() × classes` numbers.
    pub fn onehot_batch(&self, indices: &[usize]) -> Option<Vec<f32>> {
        let labels = self.labels.as_ref()?;
        let k = self.classes;
        let mut out = vec![0.0; indices.len() * k];
        for (row, &i) in indices.iter().enumerate() {
            out[row * k + labels[i] as usize] = 1.0;
        }
        Some(out)
    }

    /// How many examples each class has (`classes` counts).
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &l in self.labels.iter().flatten() {
            counts[l as usize] += 1;
        }
        counts
    }

    /// This data set followed by `other` (same example size).
    pub fn concat(mut self, other: Dataset) -> Dataset {
        assert_eq!(self.dim(), other.dim(), "internal error: concat of sizes");
        self.features.extend_from_slice(&other.features);
        self.labels = match (self.labels, other.labels) {
            (Some(mut a), Some(b)) => {
                a.extend(b);
                Some(a)
            }
            _ => None,
        };
        self.classes = self.classes.max(other.classes);
        self
    }

    /// The features mapped linearly from [`Dataset::raw_range`] to `[lo, hi]`: the raw minimum
    /// goes to `lo` and the raw maximum to `hi` exactly. A feature whose fitted range is a single
    /// value maps to the middle `(lo + hi) / 2`. Values outside the raw range (test data of a
    /// fitted range) land outside `[lo, hi]`; nothing is clamped. Afterwards `raw_range` is
    /// `Fixed { lo, hi }`.
    pub fn scaled(mut self, lo: f32, hi: f32) -> Dataset {
        fn map(x: f32, a: f32, b: f32, lo: f32, hi: f32) -> f32 {
            if b > a {
                let t = (x - a) / (b - a);
                lo * (1.0 - t) + hi * t
            } else {
                0.5 * (lo + hi)
            }
        }
        let d = self.dim();
        match &self.raw_range {
            RawRange::Fixed { lo: a, hi: b } | RawRange::Global { lo: a, hi: b } => {
                let (a, b) = (*a, *b);
                for x in &mut self.features {
                    *x = map(*x, a, b, lo, hi);
                }
            }
            RawRange::PerFeature { lo: a, hi: b } => {
                for row in self.features.chunks_exact_mut(d) {
                    for (j, x) in row.iter_mut().enumerate() {
                        *x = map(*x, a[j], b[j], lo, hi);
                    }
                }
            }
        }
        self.raw_range = RawRange::Fixed { lo, hi };
        self
    }

    /// Checks that the examples fit a variable declared with shape `declared`: the number of
    /// values must agree (`real[64]` takes 8×8 digits; the executor reshapes).
    pub fn check_shape(&self, declared: &[usize], var_name: &str) -> Result<(), DataError> {
        let numel: usize = declared.iter().product();
        if numel == self.dim() {
            return Ok(());
        }
        Err(DataError::ShapeMismatch {
            what: format!("the observed variable `{var_name}`"),
            expected: declared.to_vec(),
            data: self.name.clone(),
            found: self.shape.clone(),
            help: format!(
                "declare `{var_name}` with {} values per example, e.g. {}",
                self.dim(),
                fmt_shape(&self.shape)
            ),
        })
    }

    /// Re-measures a fitted raw range on these data (a fixed range stays).
    fn fit_range(&mut self) {
        let d = self.dim();
        match &mut self.raw_range {
            RawRange::Fixed { .. } => {}
            RawRange::Global { lo, hi } => {
                let (a, b) = min_max(self.features.iter().copied());
                (*lo, *hi) = (a, b);
            }
            RawRange::PerFeature { lo, hi } => {
                *lo = vec![f32::MAX; d];
                *hi = vec![f32::MIN; d];
                for row in self.features.chunks_exact(d) {
                    for (j, &x) in row.iter().enumerate() {
                        lo[j] = lo[j].min(x);
                        hi[j] = hi[j].max(x);
                    }
                }
                if self.features.is_empty() {
                    *lo = vec![0.0; d];
                    *hi = vec![0.0; d];
                }
            }
        }
    }
}

fn min_max(values: impl Iterator<Item = f32>) -> (f32, f32) {
    let (lo, hi) = values.fold((f32::MAX, f32::MIN), |(lo, hi), x| (lo.min(x), hi.max(x)));
    if lo > hi { (0.0, 0.0) } else { (lo, hi) }
}

// ---------------------------------------------------------------------------------------------
// Seeded choices

/// Streams of the ChaCha generator, one per purpose, so the same `data.seed` gives independent
/// draws for the split, the labelled subset and the anomaly protocol.
const STREAM_SPLIT: u64 = 1;
const STREAM_LABELS: u64 = 2;
const STREAM_ANOMALY_NORMALS: u64 = 3;
const STREAM_ANOMALY_TEST: u64 = 4;

/// A uniformly random permutation of `0..n`: Fisher–Yates driven by ChaCha8 (seeded with
/// `seed_from_u64(seed)`, stream `stream`), with unbiased bounded draws (Lemire's method) written
/// here, so the result depends only on the ChaCha key stream and not on a `rand` version.
pub fn seeded_permutation(n: usize, seed: u64, stream: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    let mut perm: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = below(&mut rng, i as u64 + 1) as usize;
        perm.swap(i, j);
    }
    perm
}

/// Uniform in `0..n` (n ≥ 1).
fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    let threshold = n.wrapping_neg() % n;
    loop {
        let m = rng.next_u64() as u128 * n as u128;
        if (m as u64) >= threshold {
            return (m >> 64) as u64;
        }
    }
}

/// The fixed seeded 80/20 split of `n` examples: a [`seeded_permutation`]; its first
/// `ceil(n / 5)` indices are the test part, the rest the training part; both sorted.
pub fn holdout_indices(n: usize, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let perm = seeded_permutation(n, seed, STREAM_SPLIT);
    let n_test = n.div_ceil(5);
    let mut test = perm[..n_test].to_vec();
    let mut train = perm[n_test..].to_vec();
    train.sort_unstable();
    test.sort_unstable();
    (train, test)
}

/// `per_class` examples of every class of `train`, chosen by `seed`: the first `per_class` of
/// each class in a [`seeded_permutation`] of all examples. Returns sorted indices.
pub fn labelled_subset(
    train: &Dataset,
    per_class: usize,
    seed: u64,
) -> Result<Vec<usize>, DataError> {
    let Some(labels) = &train.labels else {
        return Err(DataError::NoLabels {
            data: train.name.clone(),
            help: "`data.labels_per_class` needs labelled training data".into(),
        });
    };
    let counts = train.class_counts();
    // Report the smallest class.
    if let Some((class, &available)) = counts
        .iter()
        .enumerate()
        .min_by_key(|(_, c)| **c)
        .filter(|(_, c)| **c < per_class)
    {
        return Err(DataError::TooFewLabels {
            data: train.name.clone(),
            class: class as u32,
            available,
            needed: per_class,
            help: format!(
                "lower `data.labels_per_class` to at most {}",
                counts.iter().min().copied().unwrap_or(0)
            ),
        });
    }
    let mut taken = vec![0; train.classes];
    let mut chosen = Vec::with_capacity(per_class * train.classes);
    for i in seeded_permutation(train.len(), seed, STREAM_LABELS) {
        let c = labels[i] as usize;
        if taken[c] < per_class {
            taken[c] += 1;
            chosen.push(i);
        }
    }
    chosen.sort_unstable();
    Ok(chosen)
}

// ---------------------------------------------------------------------------------------------
// Sources

/// The test data that go with `train` when `data.test` is left out: the test split of a
/// built-in set (`digits` → `digits:test`, `mnist:train` → `mnist:test`, and `mnist:test` stays
/// `mnist:test`). `None` for a file: then [`load_split`] holds out 20 % of the file.
pub fn default_test_source(train: &DataSource) -> Option<DataSource> {
    match train {
        DataSource::Builtin { set, .. } => Some(DataSource::Builtin {
            set: *set,
            split: Split::Test,
        }),
        DataSource::Idx(_) | DataSource::Csv(_) | DataSource::Npy(_) => None,
    }
}

/// The training and test data of a spec.
///
/// - `data.test` given: both sources are loaded whole (a built-in source's `:train`/`:test`
///   picks its split).
/// - `data.test` left out: the test split of a built-in `train` ([`default_test_source`]); for a
///   file, the seeded 80/20 [`holdout_indices`] of the file.
///
/// A fitted raw range (CSV, npy, non-byte idx) is measured on the training data only and the test
/// data get the same one, so both are scaled by the same map. Both sets get the larger `classes`.
pub fn load_split(config: &DataConfig, data_dir: &Path) -> Result<(Dataset, Dataset), DataError> {
    let seed = config.seed;
    let test_source = config
        .test
        .clone()
        .or_else(|| default_test_source(&config.train));
    let (train, mut test) = match test_source {
        Some(test_source) => (
            load_source(&config.train, seed, data_dir)?,
            load_source(&test_source, seed, data_dir)?,
        ),
        None => {
            let whole = load_file(&config.train)?;
            let (tr, te) = holdout_indices(whole.len(), seed);
            let mut train = whole.subset(&tr);
            let mut test = whole.subset(&te);
            train.name = format!("{} (80% training part, seed {seed})", whole.name);
            test.name = format!("{} (20% held out, seed {seed})", whole.name);
            train.fit_range();
            (train, test)
        }
    };
    if train.dim() != test.dim() {
        return Err(DataError::ShapeMismatch {
            what: format!("the training data `{}`", train.name),
            expected: train.shape.clone(),
            data: test.name.clone(),
            found: test.shape.clone(),
            help: "the test data must have examples of the same size as the training data".into(),
        });
    }
    if test.raw_range.is_fitted() {
        test.raw_range = train.raw_range.clone();
    }
    let classes = train.classes.max(test.classes);
    let train = Dataset { classes, ..train };
    test.classes = classes;
    Ok((train, test))
}

/// One source, whole: a built-in split, or a file.
///
/// - `idx:PATH`: any idx element type; a 3-D array `(n, h, w)` gives examples `[1, h, w]`, a 1-D
///   array examples `[1]`, otherwise the dimensions after the first. Labels come from a file
///   next to it, if one exists: the name with `-images-idx3-` → `-labels-idx1-` (MNIST's names),
///   or `images` → `labels`, or `STEM_labels.EXT` / `STEM-labels.EXT`.
/// - `npy:PATH`: the same shape rule; labels from a sibling `.npy` found the same way.
/// - `csv:PATH`: see the `csv` reader: numbers, optional header, label column by name.
/// - Raw range: unsigned bytes are `Fixed 0..255`; CSV columns are fitted per feature; other
///   arrays are fitted globally (on the whole file here; [`load_split`] refits on training data).
pub fn load_source(source: &DataSource, seed: u64, data_dir: &Path) -> Result<Dataset, DataError> {
    match source {
        DataSource::Builtin { set, split } => load_builtin(*set, *split, seed, data_dir),
        _ => load_file(source),
    }
}

/// A built-in data set's split (`seed` picks the digits split; MNIST's split is fixed).
pub fn load_builtin(
    set: BuiltinData,
    split: Split,
    seed: u64,
    data_dir: &Path,
) -> Result<Dataset, DataError> {
    match set {
        BuiltinData::Digits => {
            let all = digits();
            let (train, test) = holdout_indices(all.len(), seed);
            let (indices, which) = match split {
                Split::Train => (train, "train"),
                Split::Test => (test, "test"),
            };
            let mut part = all.subset(&indices);
            part.name = format!("digits:{which}");
            Ok(part)
        }
        BuiltinData::Mnist | BuiltinData::FashionMnist => {
            builtin::load_idx_set(set, split, data_dir)
        }
    }
}

/// Shape of one example of an array whose first axis indexes examples.
fn example_shape(dims: &[usize]) -> Vec<usize> {
    match dims.len() {
        0 | 1 => vec![1],
        3 => vec![1, dims[1], dims[2]],
        _ => dims[1..].to_vec(),
    }
}

/// A labels file next to `path`, if there is one (see [`load_source`]).
fn sibling_labels(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    let mut candidates = Vec::new();
    if name.contains("-images-idx3-") {
        candidates.push(name.replacen("-images-idx3-", "-labels-idx1-", 1));
    }
    if name.contains("images") {
        candidates.push(name.replacen("images", "labels", 1));
    }
    let (stem, ext) = name.find('.').map_or((name, ""), |i| name.split_at(i));
    candidates.push(format!("{stem}_labels{ext}"));
    candidates.push(format!("{stem}-labels{ext}"));
    candidates
        .into_iter()
        .map(|c| path.with_file_name(c))
        .find(|p| p != path && p.is_file())
}

fn classes_of(labels: &Option<Vec<u32>>) -> usize {
    labels
        .as_ref()
        .and_then(|l| l.iter().max())
        .map_or(0, |m| *m as usize + 1)
}

fn load_file(source: &DataSource) -> Result<Dataset, DataError> {
    let mut data = match source {
        DataSource::Builtin { .. } => panic!("internal error: load_file on a built-in set"),
        DataSource::Idx(p) => load_idx_file(Path::new(p))?,
        DataSource::Csv(p) => {
            let path = Path::new(p);
            let table = csv::read_csv(path, Origin::User)?;
            let classes = classes_of(&table.labels);
            Dataset::new(
                format!("csv:{p}"),
                vec![table.width],
                table.features,
                table.labels,
                classes,
                RawRange::PerFeature {
                    lo: Vec::new(),
                    hi: Vec::new(),
                },
            )
        }
        DataSource::Npy(p) => load_npy_file(Path::new(p))?,
    };
    data.fit_range();
    Ok(data)
}

fn load_idx_file(path: &Path) -> Result<Dataset, DataError> {
    let images = idx::read_idx(path, Origin::User)?;
    let n = images.dims[0];
    let labels = match sibling_labels(path) {
        Some(lpath) => {
            let arr = idx::read_idx(&lpath, Origin::User)?;
            if arr.dims != [n] {
                return Err(DataError::corrupt(
                    lpath,
                    format!(
                        "as the labels of `{}` it should hold {n} labels, its dimensions are {}",
                        path.display(),
                        fmt_shape(&arr.dims)
                    ),
                    Origin::User,
                ));
            }
            Some(
                arr.labels()
                    .map_err(|e| DataError::corrupt(lpath, e, Origin::User))?,
            )
        }
        None => None,
    };
    let raw_range = if images.ty == idx::IdxType::U8 {
        RawRange::Fixed { lo: 0.0, hi: 255.0 }
    } else {
        RawRange::Global { lo: 0.0, hi: 0.0 }
    };
    let classes = classes_of(&labels);
    let shape = example_shape(&images.dims);
    if shape.iter().product::<usize>() == 0 {
        return Err(DataError::corrupt(
            path.to_path_buf(),
            format!(
                "its examples are empty (dimensions {})",
                fmt_shape(&images.dims)
            ),
            Origin::User,
        ));
    }
    Ok(Dataset::new(
        format!("idx:{}", path.display()),
        shape,
        images.values(),
        labels,
        classes,
        raw_range,
    ))
}

fn load_npy_file(path: &Path) -> Result<Dataset, DataError> {
    let arr = npy::read_npy(path, Origin::User)?;
    let n = arr.shape[0];
    let labels = match sibling_labels(path) {
        Some(lpath) => {
            let l = npy::read_npy(&lpath, Origin::User)?;
            let bad = |problem: String| DataError::BadNpy {
                path: lpath.clone(),
                problem,
                help: Some(format!(
                    "a labels file next to `{}` must be a 1-D integer array of {n} class numbers",
                    path.display()
                )),
            };
            if l.shape != [n] {
                return Err(bad(format!(
                    "it has shape {} but should hold {n} labels",
                    fmt_shape(&l.shape)
                )));
            }
            Some(l.labels().map_err(bad)?)
        }
        None => None,
    };
    let raw_range = if arr.dtype.is_u8() {
        RawRange::Fixed { lo: 0.0, hi: 255.0 }
    } else if arr.dtype.kind == npy::Kind::Bool {
        RawRange::Fixed { lo: 0.0, hi: 1.0 }
    } else {
        RawRange::Global { lo: 0.0, hi: 0.0 }
    };
    let shape = example_shape(&arr.shape);
    if shape.iter().product::<usize>() == 0 {
        return Err(DataError::BadNpy {
            path: path.to_path_buf(),
            problem: format!("its examples are empty (shape {})", fmt_shape(&arr.shape)),
            help: None,
        });
    }
    let classes = classes_of(&labels);
    Ok(Dataset::new(
        format!("npy:{}", path.display()),
        shape,
        arr.values(),
        labels,
        classes,
        raw_range,
    ))
}

// ---------------------------------------------------------------------------------------------
// MNIST anomaly protocol

/// The MNIST anomaly-detection split (MEG's protocol, which the latent-EBM paper follows): all
/// 70,000 MNIST images pooled (train then test), digit `heldout` removed, the normals shuffled
/// with `seed`; the first 80 % (floor) of them are the training data, and the test data are the
/// remaining normals plus every `heldout` image, shuffled again. Returns `(train normals, test,
/// is_anomaly)` with `is_anomaly[i]` for test example `i`; labels stay the digits. See
/// [`anomaly_split_pool`].
pub fn anomaly_split(
    heldout: u32,
    seed: u64,
    data_dir: &Path,
) -> Result<(Dataset, Dataset, Vec<bool>), DataError> {
    let train = builtin::load_idx_set(BuiltinData::Mnist, Split::Train, data_dir)?;
    let test = builtin::load_idx_set(BuiltinData::Mnist, Split::Test, data_dir)?;
    let mut pool = train.concat(test);
    pool.name = "mnist".into();
    anomaly_split_pool(&pool, heldout, seed)
}

/// [`anomaly_split`] on any labelled pool (tests use a small synthetic one).
pub fn anomaly_split_pool(
    pool: &Dataset,
    heldout: u32,
    seed: u64,
) -> Result<(Dataset, Dataset, Vec<bool>), DataError> {
    let Some(labels) = &pool.labels else {
        return Err(DataError::NoLabels {
            data: pool.name.clone(),
            help: "the anomaly protocol needs labelled data to hold a class out".into(),
        });
    };
    if heldout as usize >= pool.classes {
        return Err(DataError::NoSuchClass {
            data: pool.name.clone(),
            class: heldout,
            classes: pool.classes,
        });
    }
    let (normals, anomalies): (Vec<usize>, Vec<usize>) =
        (0..pool.len()).partition(|&i| labels[i] != heldout);
    let order = seeded_permutation(normals.len(), seed, STREAM_ANOMALY_NORMALS);
    let shuffled: Vec<usize> = order.iter().map(|&k| normals[k]).collect();
    let n_train = normals.len() * 4 / 5;
    let mut test_pool: Vec<usize> = shuffled[n_train..].to_vec();
    test_pool.extend_from_slice(&anomalies);
    let test_order = seeded_permutation(test_pool.len(), seed, STREAM_ANOMALY_TEST);
    let test_indices: Vec<usize> = test_order.iter().map(|&k| test_pool[k]).collect();
    let mut train = pool.subset(&shuffled[..n_train]);
    let mut test = pool.subset(&test_indices);
    train.name = format!(
        "{} without digit {heldout} (anomaly training normals)",
        pool.name
    );
    test.name = format!("{} anomaly test, digit {heldout} anomalous", pool.name);
    let is_anomaly = test_indices.iter().map(|&i| labels[i] == heldout).collect();
    Ok((train, test, is_anomaly))
}
