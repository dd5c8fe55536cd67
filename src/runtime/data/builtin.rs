//! The built-in data sets: the embedded UCI digits, and MNIST / Fashion-MNIST read from the idx
//! files `scripts/setup-data.sh` puts under `data/`.

use super::csv::{LabelColumn, parse_csv};
use super::error::{DataError, Origin, fmt_shape};
use super::idx::{IdxType, gunzip_if_gzipped, read_idx};
use super::{Dataset, RawRange};
use crate::check::{BuiltinData, Split};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

static DIGITS_CSV_GZ: &[u8] = include_bytes!("../../../assets/digits.csv.gz");

/// All 1,797 UCI 8×8 digits (pixels 0..16), in file order, labels 0..9.
pub fn digits() -> Dataset {
    let path = Path::new("<embedded assets/digits.csv.gz>");
    let bytes = gunzip_if_gzipped(DIGITS_CSV_GZ.to_vec(), path, Origin::User)
        .expect("internal error: the embedded digits do not decompress");
    let table = parse_csv(&bytes, path, LabelColumn::Last)
        .expect("internal error: the embedded digits do not parse");
    assert_eq!(table.width, 64, "internal error: embedded digits width");
    Dataset {
        features: table.features,
        shape: vec![1, 8, 8],
        labels: table.labels,
        classes: 10,
        name: "digits".into(),
        raw_range: RawRange::Fixed { lo: 0.0, hi: 16.0 },
    }
}

/// The idx files of a set, relative to the data directory.
pub fn idx_files(set: BuiltinData, split: Split) -> Option<(PathBuf, PathBuf)> {
    let dir = match set {
        BuiltinData::Digits => return None,
        BuiltinData::Mnist | BuiltinData::FashionMnist => PathBuf::from(set.name()),
    };
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    Some((
        dir.join(format!("{prefix}-images-idx3-ubyte")),
        dir.join(format!("{prefix}-labels-idx1-ubyte")),
    ))
}

/// SHA-256 of the decompressed idx files (`scripts/setup-data.sh` lists the same sums).
pub const CHECKSUMS: [(BuiltinData, &str, &str); 8] = [
    (
        BuiltinData::Mnist,
        "train-images-idx3-ubyte",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    ),
    (
        BuiltinData::Mnist,
        "train-labels-idx1-ubyte",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    ),
    (
        BuiltinData::Mnist,
        "t10k-images-idx3-ubyte",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    ),
    (
        BuiltinData::Mnist,
        "t10k-labels-idx1-ubyte",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
    (
        BuiltinData::FashionMnist,
        "train-images-idx3-ubyte",
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    ),
    (
        BuiltinData::FashionMnist,
        "train-labels-idx1-ubyte",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    ),
    (
        BuiltinData::FashionMnist,
        "t10k-images-idx3-ubyte",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    ),
    (
        BuiltinData::FashionMnist,
        "t10k-labels-idx1-ubyte",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ),
];

/// `data_dir/REL`, or `data_dir/REL.gz` when only that exists (e.g. `data_dir` =
/// `/usr/share/datasets`, where the Debian package keeps Fashion-MNIST gzipped).
fn locate(data_dir: &Path, rel: &Path) -> PathBuf {
    let plain = data_dir.join(rel);
    if plain.exists() {
        return plain;
    }
    let mut gz = plain.clone().into_os_string();
    gz.push(".gz");
    let gz = PathBuf::from(gz);
    if gz.exists() { gz } else { plain }
}

/// MNIST or Fashion-MNIST, one split. Checks the magic numbers, the exact sizes (60,000 or
/// 10,000 examples of 28×28 unsigned bytes) and that labels are 0..9; not the checksums (see
/// [`verify_checksums`]).
pub(crate) fn load_idx_set(
    set: BuiltinData,
    split: Split,
    data_dir: &Path,
) -> Result<Dataset, DataError> {
    let Some((images_rel, labels_rel)) = idx_files(set, split) else {
        panic!("internal error: `{}` is not an idx data set", set.name());
    };
    let n = match split {
        Split::Train => 60_000,
        Split::Test => 10_000,
    };
    let [_, h, w] = set.image_shape();
    let images_path = locate(data_dir, &images_rel);
    let labels_path = locate(data_dir, &labels_rel);
    let images = read_idx(&images_path, Origin::Setup)?;
    if images.ty != IdxType::U8 || images.dims != [n, h, w] {
        return Err(DataError::corrupt(
            images_path,
            format!(
                "expected {n} images of {h}×{w} unsigned bytes, the header says {} of {}",
                fmt_shape(&images.dims),
                images.ty.name()
            ),
            Origin::Setup,
        ));
    }
    let labels = read_idx(&labels_path, Origin::Setup)?;
    if labels.ty != IdxType::U8 || labels.dims != [n] {
        return Err(DataError::corrupt(
            labels_path,
            format!(
                "expected {n} labels as unsigned bytes, the header says {} of {}",
                fmt_shape(&labels.dims),
                labels.ty.name()
            ),
            Origin::Setup,
        ));
    }
    let labels = labels.labels().expect("u8 labels");
    if let Some((i, l)) = labels.iter().enumerate().find(|(_, l)| **l >= 10) {
        return Err(DataError::corrupt(
            labels_path,
            format!("label {i} is {l}, not a digit class 0..9"),
            Origin::Setup,
        ));
    }
    let split_name = match split {
        Split::Train => "train",
        Split::Test => "test",
    };
    Ok(Dataset {
        features: images.values(),
        shape: set.image_shape().to_vec(),
        labels: Some(labels),
        classes: set.classes(),
        name: format!("{}:{split_name}", set.name()),
        raw_range: RawRange::Fixed { lo: 0.0, hi: 255.0 },
    })
}

/// Checks the SHA-256 of the four idx files of MNIST or Fashion-MNIST (of the decompressed
/// bytes, when a file is gzipped) and returns the files checked. Hashes about 55 MB (≈0.2 s
/// optimised): use it in a self-check, not on every load.
pub fn verify_set_checksums(set: BuiltinData, data_dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut checked = Vec::new();
    for (s, file, want) in CHECKSUMS.iter().filter(|(s, _, _)| *s == set) {
        let path = locate(data_dir, &Path::new(s.name()).join(file));
        let bytes = DataError::read(&path, Origin::Setup)?;
        let bytes = gunzip_if_gzipped(bytes, &path, Origin::Setup)?;
        let got: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if got != *want {
            return Err(DataError::corrupt(
                path,
                format!("its SHA-256 is {got}, expected {want}"),
                Origin::Setup,
            ));
        }
        checked.push(path);
    }
    Ok(checked)
}

/// [`verify_set_checksums`] for both MNIST and Fashion-MNIST.
pub fn verify_checksums(data_dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut checked = verify_set_checksums(BuiltinData::Mnist, data_dir)?;
    checked.extend(verify_set_checksums(BuiltinData::FashionMnist, data_dir)?);
    Ok(checked)
}
