use super::idx::encode_idx_u8;
use super::npy::{encode_npy, encode_npy_f4};
use super::*;
use miette::Diagnostic;
use std::collections::HashSet;

fn code(e: &DataError) -> String {
    e.code().map(|c| c.to_string()).unwrap_or_default()
}

fn help(e: &DataError) -> String {
    e.help().map(|h| h.to_string()).unwrap_or_default()
}

/// A fresh directory for one test's files.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("ebmc-data-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn src(kind: fn(String) -> DataSource, p: &Path) -> DataSource {
    kind(p.to_str().unwrap().to_string())
}

fn config(train: DataSource, test: Option<DataSource>, seed: u64) -> DataConfig {
    DataConfig {
        train,
        test,
        labels_per_class: None,
        seed,
    }
}

fn repo_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data")
}

// --- digits ------------------------------------------------------------------------------------

#[test]
fn embedded_digits_load_with_known_class_counts() {
    let d = digits();
    assert_eq!(d.len(), 1797);
    assert_eq!(d.dim(), 64);
    assert_eq!(d.shape, vec![1, 8, 8]);
    assert_eq!(d.classes, 10);
    assert_eq!(
        d.class_counts(),
        vec![178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    );
    assert_eq!(d.raw_range.max(), 16.0);
    assert!(
        d.features
            .iter()
            .all(|&x| (0.0..=16.0).contains(&x) && x.fract() == 0.0)
    );
    // The first row of the file: a zero.
    assert_eq!(d.label(0), Some(0));
    assert_eq!(
        &d.example(0)[..8],
        &[0.0, 0.0, 5.0, 13.0, 9.0, 1.0, 0.0, 0.0]
    );
}

#[test]
fn digits_split_is_deterministic_disjoint_and_complete() {
    let dir = Path::new("/nonexistent");
    let a = load_builtin(BuiltinData::Digits, Split::Train, 7, dir).unwrap();
    let b = load_builtin(BuiltinData::Digits, Split::Train, 7, dir).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.name, "digits:train");
    let (train, test) = holdout_indices(1797, 7);
    assert_eq!((train.len(), test.len()), (1437, 360));
    let all: HashSet<usize> = train.iter().chain(&test).copied().collect();
    assert_eq!(all.len(), 1797, "disjoint and covering");
    assert_eq!(a.len(), 1437);
    let t = load_builtin(BuiltinData::Digits, Split::Test, 7, dir).unwrap();
    assert_eq!(t.len(), 360);
    assert_eq!(t.example(0), digits().example(test[0]));
    // Another seed, another split; the default config uses digits:test as the test data.
    assert_ne!(holdout_indices(1797, 8).1, test);
    let (tr, te) = load_split(
        &config(
            DataSource::Builtin {
                set: BuiltinData::Digits,
                split: Split::Train,
            },
            None,
            7,
        ),
        dir,
    )
    .unwrap();
    assert_eq!((tr, te), (a, t));
}

#[test]
fn scaling_maps_raw_ends_to_the_range() {
    let d = digits().scaled(-1.0, 1.0);
    assert!(d.features.iter().all(|&x| (-1.0..=1.0).contains(&x)));
    let raw = digits();
    for (r, s) in raw.features.iter().zip(&d.features) {
        if *r == 0.0 {
            assert_eq!(*s, -1.0);
        }
        if *r == 16.0 {
            assert_eq!(*s, 1.0);
        }
    }
    assert_eq!(d.raw_range, RawRange::Fixed { lo: -1.0, hi: 1.0 });
    // Awkward targets still hit both ends exactly.
    let small = Dataset::new(
        "t",
        vec![3],
        vec![0.0, 8.0, 16.0],
        None,
        0,
        RawRange::Fixed { lo: 0.0, hi: 16.0 },
    )
    .scaled(0.1, 0.7);
    assert_eq!(small.features[0], 0.1);
    assert_eq!(small.features[2], 0.7);
    assert!((small.features[1] - 0.4).abs() < 1e-6);
    // Per-feature ranges; a constant feature goes to the middle.
    let pf = Dataset::new(
        "t",
        vec![2],
        vec![1.0, 5.0, 3.0, 5.0],
        None,
        0,
        RawRange::PerFeature {
            lo: vec![1.0, 5.0],
            hi: vec![3.0, 5.0],
        },
    )
    .scaled(0.0, 1.0);
    assert_eq!(pf.features, vec![0.0, 0.5, 1.0, 0.5]);
}

#[test]
fn subset_batch_and_onehot() {
    let d = digits();
    let s = d.subset(&[5, 1, 5]);
    assert_eq!(s.len(), 3);
    assert_eq!(s.example(0), d.example(5));
    assert_eq!(s.example(2), d.example(5));
    assert_eq!(s.labels.as_ref().unwrap(), &vec![5, 1, 5]);
    assert_eq!(d.batch(&[2, 3]).len(), 128);
    let oh = d.onehot_batch(&[1, 2]).unwrap();
    assert_eq!(oh.len(), 20);
    assert_eq!(oh[1], 1.0);
    assert_eq!(oh[10 + 2], 1.0);
    assert_eq!(oh.iter().sum::<f32>(), 2.0);
}

#[test]
fn check_shape_compares_sizes() {
    let d = digits();
    assert!(d.check_shape(&[64], "x").is_ok());
    assert!(d.check_shape(&[1, 8, 8], "x").is_ok());
    let e = d.check_shape(&[1, 28, 28], "x").unwrap_err();
    assert_eq!(code(&e), "ebmc::data::shape_mismatch");
    let msg = e.to_string();
    assert!(
        msg.contains("`x`") && msg.contains("[1, 28, 28]") && msg.contains("[1, 8, 8]"),
        "{msg}"
    );
}

// --- idx ---------------------------------------------------------------------------------------

#[test]
fn idx_reader_reads_images_and_sibling_labels() {
    let t = TempDir::new("idx-ok");
    let pixels: Vec<u8> = (0..12).map(|i| i * 20).collect();
    let images = t.write("toy-images-idx3-ubyte", &encode_idx_u8(&[3, 2, 2], &pixels));
    t.write("toy-labels-idx1-ubyte", &encode_idx_u8(&[3], &[2, 0, 1]));
    let d = load_source(&src(DataSource::Idx, &images), 0, Path::new("/x")).unwrap();
    assert_eq!(d.shape, vec![1, 2, 2]);
    assert_eq!(d.len(), 3);
    assert_eq!(d.example(1), &[80.0, 100.0, 120.0, 140.0]);
    assert_eq!(d.labels, Some(vec![2, 0, 1]));
    assert_eq!(d.classes, 3);
    assert_eq!(d.raw_range, RawRange::Fixed { lo: 0.0, hi: 255.0 });

    // Without a labels file: no labels. A gzipped file reads the same.
    let t2 = TempDir::new("idx-gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &encode_idx_u8(&[3, 4], &pixels)).unwrap();
    let p = t2.write("flat.idx.gz", &gz.finish().unwrap());
    let d = load_source(&src(DataSource::Idx, &p), 0, Path::new("/x")).unwrap();
    assert_eq!(d.shape, vec![4]);
    assert_eq!(d.labels, None);
    assert_eq!(d.features[11], 220.0);
}

#[test]
fn idx_reader_rejects_bad_magic_and_wrong_sizes() {
    let t = TempDir::new("idx-bad");
    let good = encode_idx_u8(&[2, 2, 2], &[1; 8]);
    let load = |p: &Path| load_source(&src(DataSource::Idx, p), 0, Path::new("/x")).unwrap_err();

    let mut bad_magic = good.clone();
    bad_magic[2] = 0x42;
    let e = load(&t.write("magic.idx", &bad_magic));
    assert_eq!(code(&e), "ebmc::data::corrupt");
    assert!(e.to_string().contains("magic.idx"), "{e}");
    assert!(e.to_string().contains("bad magic number 0x00004203"), "{e}");

    let e = load(&t.write("short.idx", &good[..good.len() - 3]));
    assert_eq!(code(&e), "ebmc::data::corrupt");
    assert!(e.to_string().contains("truncated"), "{e}");

    let e = load(&t.write("header.idx", &good[..9]));
    assert!(e.to_string().contains("truncated"), "{e}");

    let mut long = good.clone();
    long.push(0);
    let e = load(&t.write("long.idx", &long));
    assert!(e.to_string().contains("too long"), "{e}");

    let e = load(&t.write("tiny.idx", &[0, 0]));
    assert_eq!(code(&e), "ebmc::data::corrupt");

    // A labels file of the wrong length.
    let images = t.write("x-images-idx3-ubyte", &good);
    t.write("x-labels-idx1-ubyte", &encode_idx_u8(&[3], &[0, 1, 2]));
    let e = load(&images);
    assert_eq!(code(&e), "ebmc::data::corrupt");
    assert!(e.to_string().contains("x-labels-idx1-ubyte"), "{e}");
}

#[test]
fn builtin_idx_sets_check_their_sizes() {
    let t = TempDir::new("idx-builtin");
    std::fs::create_dir_all(t.0.join("mnist")).unwrap();
    // A well-formed idx file with the wrong number of images.
    t.write(
        "mnist/t10k-images-idx3-ubyte",
        &encode_idx_u8(&[2, 28, 28], &[0; 2 * 784]),
    );
    let e = load_builtin(BuiltinData::Mnist, Split::Test, 0, &t.0).unwrap_err();
    assert_eq!(code(&e), "ebmc::data::corrupt");
    assert!(e.to_string().contains("expected 10000 images"), "{e}");
    assert!(help(&e).contains("scripts/setup-data.sh"), "{}", help(&e));
}

#[test]
fn missing_files_name_the_path_and_the_fix() {
    let dir = Path::new("/nonexistent-ebmc-data");
    let e = load_builtin(BuiltinData::FashionMnist, Split::Train, 0, dir).unwrap_err();
    assert_eq!(code(&e), "ebmc::data::missing_file");
    assert!(
        e.to_string()
            .contains("/nonexistent-ebmc-data/fashion-mnist/train-images-idx3-ubyte"),
        "{e}"
    );
    assert!(help(&e).contains("scripts/setup-data.sh"), "{}", help(&e));
    let e = verify_checksums(dir).unwrap_err();
    assert_eq!(code(&e), "ebmc::data::missing_file");
    let e = anomaly_split(1, 0, dir).unwrap_err();
    assert_eq!(code(&e), "ebmc::data::missing_file");
    // A user's file: the advice is about the path.
    let e = load_source(&DataSource::Csv("/nonexistent/x.csv".into()), 0, dir).unwrap_err();
    assert_eq!(code(&e), "ebmc::data::missing_file");
    assert!(e.to_string().contains("/nonexistent/x.csv"), "{e}");
    assert!(!help(&e).contains("setup-data"), "{}", help(&e));
}

// --- csv ---------------------------------------------------------------------------------------

#[test]
fn csv_reader_header_labels_and_fitted_ranges() {
    let t = TempDir::new("csv-ok");
    let p = t.write(
        "t.csv",
        b"a, b ,\"Label\"\r\n1,10,0\n\n2,30,2\r\n3,20,1\n4,40,1.0\n5,50,0\n",
    );
    let d = load_source(&src(DataSource::Csv, &p), 0, Path::new("/x")).unwrap();
    assert_eq!(d.shape, vec![2]);
    assert_eq!(d.len(), 5);
    assert_eq!(d.example(1), &[2.0, 30.0]);
    assert_eq!(d.labels, Some(vec![0, 2, 1, 1, 0]));
    assert_eq!(d.classes, 3);
    assert_eq!(
        d.raw_range,
        RawRange::PerFeature {
            lo: vec![1.0, 10.0],
            hi: vec![5.0, 50.0]
        }
    );
    let s = d.scaled(-1.0, 1.0);
    assert_eq!(s.example(0), &[-1.0, -1.0]);
    assert_eq!(s.example(4), &[1.0, 1.0]);

    // No header: every column is a feature.
    let p = t.write("plain.csv", b"1,2\n3,4\n");
    let d = load_source(&src(DataSource::Csv, &p), 0, Path::new("/x")).unwrap();
    assert_eq!((d.len(), d.dim(), d.labels.clone()), (2, 2, None));
}

#[test]
fn csv_split_fits_the_range_on_the_training_part() {
    let t = TempDir::new("csv-split");
    let mut text = String::from("x,target\n");
    for i in 0..50 {
        text.push_str(&format!("{},{}\n", i * 2, i % 5));
    }
    let p = t.write("d.csv", text.as_bytes());
    let (train, test) =
        load_split(&config(src(DataSource::Csv, &p), None, 3), Path::new("/x")).unwrap();
    assert_eq!((train.len(), test.len()), (40, 10));
    assert_eq!(train.classes, 5);
    assert_eq!(test.raw_range, train.raw_range);
    let RawRange::PerFeature { lo, hi } = &train.raw_range else {
        panic!("{:?}", train.raw_range)
    };
    let (mn, mx) = min_max(train.features.iter().copied());
    assert_eq!((lo[0], hi[0]), (mn, mx));
    // An explicit test file is read whole, and scaled with the training range.
    let q = t.write("e.csv", b"x,target\n-2,0\n200,1\n");
    let (train2, test2) = load_split(
        &config(src(DataSource::Csv, &p), Some(src(DataSource::Csv, &q)), 3),
        Path::new("/x"),
    )
    .unwrap();
    assert_eq!((train2.len(), test2.len()), (50, 2));
    assert_eq!(
        test2.raw_range,
        RawRange::PerFeature {
            lo: vec![0.0],
            hi: vec![98.0]
        }
    );
    assert_eq!(train2.raw_range, test2.raw_range);
}

#[test]
fn csv_reader_reports_line_and_column() {
    let t = TempDir::new("csv-bad");
    let load = |name: &str, text: &str| {
        let p = t.write(name, text.as_bytes());
        load_source(&src(DataSource::Csv, &p), 0, Path::new("/x")).unwrap_err()
    };
    let e = load("v.csv", "a,b,label\n1,2,0\n\n3,x7,1\n");
    assert_eq!(code(&e), "ebmc::data::bad_csv");
    let msg = e.to_string();
    assert!(
        msg.contains("v.csv") && msg.contains("line 4, column 2 (`b`)"),
        "{msg}"
    );
    assert!(msg.contains("`x7` is not a number"), "{msg}");
    let DataError::BadCsv { line, column, .. } = e else {
        panic!()
    };
    assert_eq!((line, column), (4, 2));

    let e = load("w.csv", "1,2,3\n4,5\n");
    assert!(e.to_string().contains("line 2, column 3"), "{e}");
    assert!(e.to_string().contains("expected 3 values"), "{e}");
    let e = load("l.csv", "a,class\n1,0\n2,-1\n");
    assert!(e.to_string().contains("line 3, column 2 (`class`)"), "{e}");
    assert!(e.to_string().contains("not a non-negative integer"), "{e}");
    let e = load("n.csv", "a\n1\nnan\n");
    assert!(e.to_string().contains("line 3, column 1"), "{e}");
    let e = load("e.csv", "\n\n");
    assert_eq!(code(&e), "ebmc::data::bad_csv");
    let e = load("o.csv", "label\n1\n");
    assert!(e.to_string().contains("no feature column"), "{e}");
}

// --- npy ---------------------------------------------------------------------------------------

#[test]
fn npy_reader_reads_arrays_and_sibling_labels() {
    let t = TempDir::new("npy-ok");
    let values: Vec<f32> = (0..6).map(|i| i as f32 * 0.5).collect();
    let p = t.write("x.npy", &encode_npy_f4(&[3, 2], &values));
    let labels: Vec<u8> = [4i64, 0, 4].iter().flat_map(|v| v.to_le_bytes()).collect();
    t.write("x_labels.npy", &encode_npy("<i8", &[3], &labels));
    let d = load_source(&src(DataSource::Npy, &p), 0, Path::new("/x")).unwrap();
    assert_eq!(d.shape, vec![2]);
    assert_eq!(d.features, values);
    assert_eq!(d.labels, Some(vec![4, 0, 4]));
    assert_eq!(d.classes, 5);
    assert_eq!(d.raw_range, RawRange::Global { lo: 0.0, hi: 2.5 });

    // u1 images (n, h, w) → [1, h, w], raw range 0..255.
    let p = t.write("img.npy", &encode_npy("|u1", &[2, 2, 3], &[7; 12]));
    let d = load_source(&src(DataSource::Npy, &p), 0, Path::new("/x")).unwrap();
    assert_eq!(d.shape, vec![1, 2, 3]);
    assert_eq!(d.raw_range, RawRange::Fixed { lo: 0.0, hi: 255.0 });
    assert_eq!(d.labels, None);

    // Big-endian f8 and signed i2.
    let be: Vec<u8> = [1.5f64, -2.0]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    let p = t.write("be.npy", &encode_npy(">f8", &[2], &be));
    let d = load_source(&src(DataSource::Npy, &p), 0, Path::new("/x")).unwrap();
    assert_eq!(
        (d.features.clone(), d.shape.clone()),
        (vec![1.5, -2.0], vec![1])
    );
    let i2: Vec<u8> = [-3i16, 300].iter().flat_map(|v| v.to_le_bytes()).collect();
    let p = t.write("i2.npy", &encode_npy("<i2", &[1, 2], &i2));
    let d = load_source(&src(DataSource::Npy, &p), 0, Path::new("/x")).unwrap();
    assert_eq!(d.features, vec![-3.0, 300.0]);
}

#[test]
fn npy_reader_rejects_bad_files() {
    let t = TempDir::new("npy-bad");
    let load = |name: &str, bytes: &[u8]| {
        let p = t.write(name, bytes);
        load_source(&src(DataSource::Npy, &p), 0, Path::new("/x")).unwrap_err()
    };
    let good = encode_npy_f4(&[2, 2], &[1.0; 4]);
    let e = load("magic.npy", b"PK\x03\x04 not an npy file");
    assert_eq!(code(&e), "ebmc::data::bad_npy");
    assert!(e.to_string().contains("magic.npy"), "{e}");
    let e = load("short.npy", &good[..good.len() - 1]);
    assert!(e.to_string().contains("truncated"), "{e}");
    let e = load("c8.npy", &encode_npy("<c8", &[1], &[0; 8]));
    assert!(e.to_string().contains("`<c8` is not supported"), "{e}");
    let mut f = encode_npy_f4(&[2, 2], &[1.0; 4]);
    let at = f.windows(5).position(|w| w == b"False").unwrap();
    f[at..at + 5].copy_from_slice(b"True ");
    let e = load("f.npy", &f);
    assert!(e.to_string().contains("Fortran"), "{e}");
    // Labels that are not integers.
    let p = t.write("y.npy", &good);
    t.write("y_labels.npy", &encode_npy_f4(&[2], &[0.5, 1.0]));
    let e = load_source(&src(DataSource::Npy, &p), 0, Path::new("/x")).unwrap_err();
    assert_eq!(code(&e), "ebmc::data::bad_npy");
    assert!(e.to_string().contains("y_labels.npy"), "{e}");
}

// --- labelled subsets and the anomaly protocol ---------------------------------------------------

#[test]
fn labelled_subset_is_seeded_and_balanced() {
    let d = load_builtin(BuiltinData::Digits, Split::Train, 0, Path::new("/x")).unwrap();
    let a = labelled_subset(&d, 10, 1).unwrap();
    assert_eq!(a, labelled_subset(&d, 10, 1).unwrap());
    assert_ne!(a, labelled_subset(&d, 10, 2).unwrap());
    assert_eq!(a.len(), 100);
    assert!(a.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(d.subset(&a).class_counts(), vec![10; 10]);
    let e = labelled_subset(&d, 150, 1).unwrap_err();
    assert_eq!(code(&e), "ebmc::data::too_few_labels");
    assert!(help(&e).contains("at most"), "{}", help(&e));
    let unlabelled = Dataset { labels: None, ..d };
    assert_eq!(
        code(&labelled_subset(&unlabelled, 1, 0).unwrap_err()),
        "ebmc::data::no_labels"
    );
}

#[test]
fn anomaly_split_follows_the_protocol() {
    // 10 classes × 10 examples; feature 0 = the example's index, to track examples.
    let n = 100;
    let features: Vec<f32> = (0..n).flat_map(|i| [i as f32, 0.0]).collect();
    let labels: Vec<u32> = (0..n as u32).map(|i| i % 10).collect();
    let pool = Dataset::new(
        "pool",
        vec![2],
        features,
        Some(labels),
        10,
        RawRange::Fixed { lo: 0.0, hi: 255.0 },
    );
    let (train, test, is_anomaly) = anomaly_split_pool(&pool, 3, 42).unwrap();
    assert_eq!(train.len(), 72);
    assert_eq!(test.len(), 28);
    assert_eq!(is_anomaly.len(), 28);
    assert_eq!(is_anomaly.iter().filter(|a| **a).count(), 10);
    assert!(train.labels.as_ref().unwrap().iter().all(|&l| l != 3));
    for (i, &a) in is_anomaly.iter().enumerate() {
        assert_eq!(a, test.label(i) == Some(3));
    }
    let ids = |d: &Dataset| {
        (0..d.len())
            .map(|i| d.example(i)[0] as usize)
            .collect::<Vec<_>>()
    };
    let tr: HashSet<usize> = ids(&train).into_iter().collect();
    let te: HashSet<usize> = ids(&test).into_iter().collect();
    assert_eq!(tr.len() + te.len(), 100, "disjoint, no repeats");
    assert_eq!(tr.union(&te).count(), 100);
    // Seeded: the same seed gives the same split, another seed another one.
    let again = anomaly_split_pool(&pool, 3, 42).unwrap();
    assert_eq!((&again.0, &again.1, &again.2), (&train, &test, &is_anomaly));
    assert_ne!(anomaly_split_pool(&pool, 3, 43).unwrap().0, train);
    // The anomalies are mixed into the test set, not appended.
    assert!(!is_anomaly[18..].iter().all(|a| *a));
    let e = anomaly_split_pool(&pool, 10, 0).unwrap_err();
    assert_eq!(code(&e), "ebmc::data::no_such_class");
}

#[test]
fn seeded_permutation_is_a_permutation() {
    let p = seeded_permutation(1000, 5, 1);
    let mut s = p.clone();
    s.sort_unstable();
    assert_eq!(s, (0..1000).collect::<Vec<_>>());
    assert_eq!(p, seeded_permutation(1000, 5, 1));
    assert_ne!(p, seeded_permutation(1000, 5, 2));
    assert!(seeded_permutation(0, 1, 1).is_empty());
}

// --- real data (only where scripts/setup-data.sh has run) ----------------------------------------

#[test]
fn mnist_loads_with_known_label_counts() {
    let dir = repo_data();
    if !dir.join("mnist").exists() {
        println!("note: data/mnist is absent; run scripts/setup-data.sh to test the real MNIST");
        return;
    }
    let train = load_builtin(BuiltinData::Mnist, Split::Train, 0, &dir).unwrap();
    assert_eq!(
        (train.len(), train.shape.clone()),
        (60_000, vec![1, 28, 28])
    );
    assert_eq!(
        train.class_counts(),
        vec![5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    assert_eq!(
        &train.labels.as_ref().unwrap()[..10],
        &[5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    );
    let mean = train.features.iter().map(|&x| x as f64).sum::<f64>() / train.features.len() as f64;
    assert!((mean - 33.318).abs() < 1e-2, "{mean}");
    let test = load_builtin(BuiltinData::Mnist, Split::Test, 0, &dir).unwrap();
    assert_eq!(
        test.class_counts(),
        vec![980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    assert_eq!(
        verify_set_checksums(BuiltinData::Mnist, &dir)
            .unwrap()
            .len(),
        4
    );
}

#[test]
fn fashion_mnist_loads_balanced() {
    let dir = repo_data();
    if !dir.join("fashion-mnist").exists() {
        println!("note: data/fashion-mnist is absent; run scripts/setup-data.sh to test it");
        return;
    }
    let (train, test) = load_split(
        &config(
            DataSource::Builtin {
                set: BuiltinData::FashionMnist,
                split: Split::Train,
            },
            None,
            0,
        ),
        &dir,
    )
    .unwrap();
    assert_eq!(train.class_counts(), vec![6000; 10]);
    assert_eq!(test.class_counts(), vec![1000; 10]);
    assert_eq!(test.name, "fashion-mnist:test");
    assert_eq!(
        verify_set_checksums(BuiltinData::FashionMnist, &dir)
            .unwrap()
            .len(),
        4
    );
}

#[test]
fn mnist_anomaly_split_sizes() {
    let dir = repo_data();
    if !dir.join("mnist").exists() {
        println!("note: data/mnist is absent; run scripts/setup-data.sh to test the anomaly split");
        return;
    }
    let (train, test, is_anomaly) = anomaly_split(1, 0, &dir).unwrap();
    // 7,877 ones in MNIST (6,742 + 1,135); 62,123 normals; floor(0.8 · 62,123) = 49,698.
    assert_eq!(train.len(), 49_698);
    assert_eq!(test.len(), 62_123 - 49_698 + 7_877);
    assert_eq!(is_anomaly.iter().filter(|a| **a).count(), 7_877);
}

#[test]
fn sklearn_tables_load() {
    let p = repo_data().join("tables/wine.csv");
    if !p.exists() {
        println!("note: data/tables is absent; run scripts/setup-data.sh to test it");
        return;
    }
    let d = load_source(&src(DataSource::Csv, &p), 0, Path::new("/x")).unwrap();
    assert_eq!((d.len(), d.dim(), d.classes), (178, 13, 3));
    assert_eq!(d.class_counts(), vec![59, 71, 48]);
    let p = repo_data().join("tables/breast_cancer.csv");
    let d = load_source(&src(DataSource::Csv, &p), 0, Path::new("/x")).unwrap();
    assert_eq!((d.len(), d.dim(), d.classes), (569, 30, 2));
    assert_eq!(d.class_counts(), vec![212, 357]);
}
