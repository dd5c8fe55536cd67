//! Checkpoints: named tensors (parameters, optimizer moments, persistent chains, ...) plus a JSON
//! value (step, RNG state, anything else) in one safetensors file, written atomically.
//!
//! The JSON value is stored in the safetensors metadata header (`__metadata__`) under the key
//! `ebmc` (as JSON text; safetensors metadata values are strings), with `ebmc_format: "1"`. Tensors
//! and metadata live in one file that is replaced by a rename, so they are always consistent: a crash
//! during a save leaves the previous checkpoint whole (and a stale `<file>.tmp`, replaced by the next
//! save). The file is a standard safetensors file: `candle_core::safetensors::load` and the Python
//! `safetensors` package read it.
//!
//! We serialize the file ourselves (the format is an 8-byte little-endian header length, the JSON
//! header padded with spaces to a multiple of 8, then the tensors' bytes), because candle's `save`
//! takes no metadata. Loading goes through candle, which validates the layout.

use super::rundir::atomic_write;
use candle_core::{DType, Device, Tensor};
use miette::Diagnostic;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::path::Path;
use thiserror::Error;

/// The metadata key holding the checkpoint's JSON value.
pub const META_KEY: &str = "ebmc";
/// The metadata key holding the checkpoint format version.
pub const FORMAT_KEY: &str = "ebmc_format";
pub const FORMAT_VERSION: &str = "1";

/// The largest header accepted (safetensors' own limit).
const MAX_HEADER: u64 = 100_000_000;

/// A checkpoint that cannot be read or written.
#[derive(Debug, Error, Diagnostic)]
pub enum CheckpointError {
    /// Missing, truncated, corrupt or not written by ebmc.
    #[error("bad checkpoint `{path}`: {reason}")]
    #[diagnostic(code(ebmc::run::bad_checkpoint))]
    Bad {
        path: String,
        reason: String,
        #[help]
        help: String,
    },

    /// Saving failed (the previous checkpoint, if any, is left as it was).
    #[error("cannot write the checkpoint `{path}`: {message}")]
    #[diagnostic(code(ebmc::run::io))]
    Write {
        path: String,
        message: String,
        #[help]
        help: Option<String>,
    },
}

fn bad(path: &Path, reason: impl Into<String>, help: impl Into<String>) -> CheckpointError {
    CheckpointError::Bad {
        path: path.display().to_string(),
        reason: reason.into(),
        help: help.into(),
    }
}

const DAMAGED_HELP: &str = "the file is damaged (an interrupted copy, or a disk problem): restore it \
     from a backup, or start a new run; a `.tmp` file beside it is an unfinished save and can be deleted";

fn write_err(path: &Path, message: impl Into<String>, help: Option<String>) -> CheckpointError {
    CheckpointError::Write {
        path: path.display().to_string(),
        message: message.into(),
        help,
    }
}

/// The first line of a candle error (with `RUST_BACKTRACE` set, its `Display` holds a backtrace).
fn short(e: impl std::fmt::Display) -> String {
    e.to_string()
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string()
}

/// Saves `tensors` and `meta` to `path` atomically (temp file in the same directory, fsync, rename).
pub fn save(
    path: &Path,
    tensors: &HashMap<String, Tensor>,
    meta: &Value,
) -> Result<(), CheckpointError> {
    let bytes = serialize(path, tensors, meta).map_err(|m| write_err(path, m, None))?;
    atomic_write(path, &bytes).map_err(|e| {
        let help = match e.kind() {
            io::ErrorKind::StorageFull => Some("free some disk space".to_string()),
            io::ErrorKind::PermissionDenied => Some("check the run directory's permissions".into()),
            _ => None,
        };
        write_err(path, e.to_string(), help)
    })
}

/// The safetensors dtype name of a dtype ebmc writes.
fn dtype_name(d: DType) -> Option<&'static str> {
    Some(match d {
        DType::U8 => "U8",
        DType::U32 => "U32",
        DType::I16 => "I16",
        DType::I32 => "I32",
        DType::I64 => "I64",
        DType::BF16 => "BF16",
        DType::F16 => "F16",
        DType::F32 => "F32",
        DType::F64 => "F64",
        DType::F8E4M3 => "F8_E4M3",
        _ => return None,
    })
}

/// The file's bytes. `path` names the checkpoint (half-precision tensors go through a scratch file
/// beside it).
fn serialize(
    path: &Path,
    tensors: &HashMap<String, Tensor>,
    meta: &Value,
) -> Result<Vec<u8>, String> {
    // Larger elements first keeps every tensor aligned (the header is padded to 8 bytes).
    let mut items: Vec<(&String, &Tensor)> = tensors.iter().collect();
    items.sort_by(|(an, a), (bn, b)| {
        b.dtype()
            .size_in_bytes()
            .cmp(&a.dtype().size_in_bytes())
            .then(an.cmp(bn))
    });
    let mut header = Map::new();
    header.insert(
        "__metadata__".into(),
        json!({ META_KEY: meta.to_string(), FORMAT_KEY: FORMAT_VERSION }),
    );
    let mut data = Vec::new();
    for (name, t) in items {
        if name == "__metadata__" {
            return Err("a tensor cannot be named `__metadata__`".into());
        }
        let Some(dtype) = dtype_name(t.dtype()) else {
            return Err(format!(
                "tensor `{name}` has dtype {}, which checkpoints do not support",
                t.dtype().as_str()
            ));
        };
        let start = data.len();
        append_bytes(&mut data, t, path).map_err(|e| format!("tensor `{name}`: {e}"))?;
        let expected = t.elem_count() * t.dtype().size_in_bytes();
        if data.len() - start != expected {
            return Err(format!(
                "tensor `{name}`: internal error, please report (size)"
            ));
        }
        header.insert(
            name.clone(),
            json!({ "dtype": dtype, "shape": t.dims(), "data_offsets": [start, data.len()] }),
        );
    }
    let mut head = serde_json::to_vec(&Value::Object(header)).map_err(short)?;
    head.resize(head.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + head.len() + data.len());
    out.extend_from_slice(&(head.len() as u64).to_le_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(&data);
    Ok(out)
}

/// Appends a tensor's elements, little-endian, in row-major order (copied from the device).
fn append_bytes(out: &mut Vec<u8>, t: &Tensor, path: &Path) -> Result<(), String> {
    let flat = t.flatten_all().map_err(short)?;
    macro_rules! le {
        ($ty:ty) => {{
            for x in flat.to_vec1::<$ty>().map_err(short)? {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }};
    }
    match t.dtype() {
        DType::U8 => out.extend_from_slice(&flat.to_vec1::<u8>().map_err(short)?),
        DType::U32 => le!(u32),
        DType::I16 => le!(i16),
        DType::I32 => le!(i32),
        DType::I64 => le!(i64),
        DType::F32 => le!(f32),
        DType::F64 => le!(f64),
        // The half types are not nameable without the `half` crate: let candle write them.
        _ => out.extend_from_slice(&bytes_via_candle(t, path)?),
    }
    Ok(())
}

/// A tensor's raw bytes, through candle's safetensors writer and a scratch file beside `path`.
fn bytes_via_candle(t: &Tensor, path: &Path) -> Result<Vec<u8>, String> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".scratch.tmp");
    let scratch = path.with_file_name(name);
    let map = HashMap::from([("t".to_string(), t.clone())]);
    let result = candle_core::safetensors::save(&map, &scratch)
        .map_err(short)
        .and_then(|()| fs::read(&scratch).map_err(short));
    let _ = fs::remove_file(&scratch);
    let bytes = result?;
    let (n, _) = header_len(&bytes).map_err(|e| format!("internal error, please report ({e})"))?;
    Ok(bytes[8 + n..].to_vec())
}

/// The header length, checked against the buffer.
fn header_len(bytes: &[u8]) -> Result<(usize, u64), String> {
    let Some(len) = bytes.get(..8) else {
        return Err(format!(
            "the file is truncated: {} bytes, shorter than the 8-byte header length",
            bytes.len()
        ));
    };
    let mut b = [0u8; 8];
    b.copy_from_slice(len);
    let n = u64::from_le_bytes(b);
    if n > MAX_HEADER {
        return Err(format!("its header length ({n} bytes) is impossible"));
    }
    if 8 + n > bytes.len() as u64 {
        return Err(format!(
            "the file is truncated: its header alone needs {} bytes, the file has {}",
            8 + n,
            bytes.len()
        ));
    }
    Ok((n as usize, n))
}

/// The JSON header of a safetensors buffer whose first 8 + n bytes are present.
fn parse_header(bytes: &[u8], n: usize) -> Result<Map<String, Value>, String> {
    let text = std::str::from_utf8(&bytes[8..8 + n])
        .map_err(|_| "its header is not UTF-8 text".to_string())?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("its header is not a JSON object".into()),
        Err(e) => Err(format!("its header is not valid JSON ({e})")),
    }
}

/// The `ebmc` metadata value of a header.
fn meta_of(header: &Map<String, Value>) -> Result<Value, (String, String)> {
    let not_ebmc = || {
        (
            "it has no `ebmc` metadata, so it was not written by ebmc".to_string(),
            "resume from a run directory that `ebmc run` wrote".to_string(),
        )
    };
    let md = header
        .get("__metadata__")
        .and_then(Value::as_object)
        .ok_or_else(not_ebmc)?;
    let text = md
        .get(META_KEY)
        .and_then(Value::as_str)
        .ok_or_else(not_ebmc)?;
    match md.get(FORMAT_KEY).and_then(Value::as_str) {
        Some(FORMAT_VERSION) => {}
        Some(v) => {
            return Err((
                format!(
                    "it has checkpoint format `{v}`; this ebmc reads format `{FORMAT_VERSION}`"
                ),
                "use the ebmc version that wrote the run".into(),
            ));
        }
        None => return Err(not_ebmc()),
    }
    serde_json::from_str(text).map_err(|e| {
        (
            format!("its `ebmc` metadata is not valid JSON ({e})"),
            DAMAGED_HELP.to_string(),
        )
    })
}

/// Checks the tensor entries of a header against the data size; returns the number of tensors.
fn check_entries(header: &Map<String, Value>, data_len: usize) -> Result<usize, String> {
    let mut count = 0;
    let mut end = 0u64;
    for (name, info) in header {
        if name == "__metadata__" {
            continue;
        }
        count += 1;
        let dtype = info.get("dtype").and_then(Value::as_str).unwrap_or("");
        let known = [
            "U8", "U32", "I16", "I32", "I64", "BF16", "F16", "F32", "F64", "F8_E4M3",
        ];
        if !known.contains(&dtype) {
            return Err(format!(
                "tensor `{name}` has an unsupported dtype `{dtype}`"
            ));
        }
        let e = info
            .get("data_offsets")
            .and_then(Value::as_array)
            .and_then(|a| a.get(1))
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("tensor `{name}` has no valid `data_offsets`"))?;
        end = end.max(e);
    }
    if end != data_len as u64 {
        return Err(if end > data_len as u64 {
            format!(
                "the file is truncated: its tensors need {end} bytes of data, it holds {data_len}"
            )
        } else {
            format!(
                "the file has {} unexpected bytes at its end",
                data_len as u64 - end
            )
        });
    }
    Ok(count)
}

/// Loads a checkpoint: its tensors on `device` and its JSON value.
pub fn load(
    path: &Path,
    device: &Device,
) -> Result<(HashMap<String, Tensor>, Value), CheckpointError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(bad(
                path,
                "the file does not exist",
                "resume from a run directory that holds `checkpoint.safetensors` (a run writes it \
                 at its first checkpoint)",
            ));
        }
        Err(e) => return Err(bad(path, format!("cannot read it: {e}"), DAMAGED_HELP)),
    };
    let (n, _) = header_len(&bytes).map_err(|r| bad(path, r, DAMAGED_HELP))?;
    let header = parse_header(&bytes, n).map_err(|r| bad(path, r, DAMAGED_HELP))?;
    let meta = meta_of(&header).map_err(|(r, h)| bad(path, r, h))?;
    let count =
        check_entries(&header, bytes.len() - 8 - n).map_err(|r| bad(path, r, DAMAGED_HELP))?;
    let tensors = candle_core::safetensors::load_buffer(&bytes, device)
        .map_err(|e| bad(path, short(e), DAMAGED_HELP))?;
    if tensors.len() != count {
        return Err(bad(
            path,
            format!(
                "its header lists {count} tensors, {} could be read",
                tensors.len()
            ),
            DAMAGED_HELP,
        ));
    }
    Ok((tensors, meta))
}

/// Reads only the JSON value of a checkpoint (its header), e.g. the step to resume from.
pub fn read_meta(path: &Path) -> Result<Value, CheckpointError> {
    let mut f = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(bad(
                path,
                "the file does not exist",
                "resume from a run directory that holds `checkpoint.safetensors`",
            ));
        }
        Err(e) => return Err(bad(path, format!("cannot read it: {e}"), DAMAGED_HELP)),
    };
    let mut len = [0u8; 8];
    f.read_exact(&mut len)
        .map_err(|_| bad(path, "the file is truncated (no header)", DAMAGED_HELP))?;
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER {
        return Err(bad(path, "its header length is impossible", DAMAGED_HELP));
    }
    let mut buf = len.to_vec();
    f.take(n)
        .read_to_end(&mut buf)
        .map_err(|e| bad(path, format!("cannot read it: {e}"), DAMAGED_HELP))?;
    let (n, _) = header_len(&buf).map_err(|r| bad(path, r, DAMAGED_HELP))?;
    let header = parse_header(&buf, n).map_err(|r| bad(path, r, DAMAGED_HELP))?;
    meta_of(&header).map_err(|(r, h)| bad(path, r, h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::rundir::{tests::scratch, tmp_path};

    fn sample() -> HashMap<String, Tensor> {
        let dev = Device::Cpu;
        let f32s = [
            0.1f32,
            -0.0,
            f32::MIN_POSITIVE / 3.0,
            f32::MAX,
            f32::NAN,
            -f32::INFINITY,
        ];
        let f64s = [
            std::f64::consts::PI,
            -1e-310,
            f64::from_bits(0x7ff8_0000_0000_1234),
            1.0,
        ];
        HashMap::from([
            (
                "networks.f.layer0.weight".to_string(),
                Tensor::from_slice(&f32s, (2, 3), &dev).unwrap(),
            ),
            (
                "optim.f.m".to_string(),
                Tensor::from_slice(&f64s, (4,), &dev).unwrap(),
            ),
            (
                "rng.words".to_string(),
                Tensor::from_slice(&[1u32, u32::MAX, 7], (3,), &dev).unwrap(),
            ),
            (
                "chains.step".to_string(),
                Tensor::from_slice(&[i64::MIN, -1, i64::MAX], (3, 1), &dev).unwrap(),
            ),
            ("scalar".to_string(), Tensor::new(2.5f32, &dev).unwrap()),
            (
                "labels".to_string(),
                Tensor::from_slice(&[0u8, 255, 3], (3,), &dev).unwrap(),
            ),
            (
                // A non-contiguous view.
                "transposed".to_string(),
                Tensor::arange(0f32, 6.0, &dev)
                    .unwrap()
                    .reshape((2, 3))
                    .unwrap()
                    .t()
                    .unwrap(),
            ),
        ])
    }

    fn bits(t: &Tensor) -> Vec<u64> {
        let f = t.flatten_all().unwrap();
        match t.dtype() {
            DType::F32 => f
                .to_vec1::<f32>()
                .unwrap()
                .iter()
                .map(|x| x.to_bits() as u64)
                .collect(),
            DType::F64 => f
                .to_vec1::<f64>()
                .unwrap()
                .iter()
                .map(|x| x.to_bits())
                .collect(),
            DType::U32 => f
                .to_vec1::<u32>()
                .unwrap()
                .iter()
                .map(|&x| x as u64)
                .collect(),
            DType::I64 => f
                .to_vec1::<i64>()
                .unwrap()
                .iter()
                .map(|&x| x as u64)
                .collect(),
            DType::U8 => f
                .to_vec1::<u8>()
                .unwrap()
                .iter()
                .map(|&x| x as u64)
                .collect(),
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn round_trip_is_bit_exact() {
        let dir = scratch("ckpt-roundtrip");
        let p = dir.join("checkpoint.safetensors");
        let tensors = sample();
        let meta = json!({"step": 120, "rng": {"seed": u64::MAX, "word_pos": "123456789012345678901"},
                          "optimizers": ["f", "g"]});
        save(&p, &tensors, &meta).unwrap();
        let (loaded, m) = load(&p, &Device::Cpu).unwrap();
        assert_eq!(m, meta);
        assert_eq!(loaded.len(), tensors.len());
        for (name, t) in &tensors {
            let l = &loaded[name];
            assert_eq!(l.dtype(), t.dtype(), "{name}");
            assert_eq!(l.dims(), t.dims(), "{name}");
            assert_eq!(bits(l), bits(t), "{name}");
        }
        assert_eq!(read_meta(&p).unwrap(), meta);
        // A standard safetensors file: candle reads it too.
        let plain = candle_core::safetensors::load(&p, &Device::Cpu).unwrap();
        assert_eq!(plain.len(), tensors.len());
        assert!(!tmp_path(&p).exists());
    }

    #[test]
    fn half_precision_round_trips() {
        let dir = scratch("ckpt-half");
        let p = dir.join("checkpoint.safetensors");
        let t = Tensor::from_slice(&[1.0f32, -2.5, 0.125], (3,), &Device::Cpu).unwrap();
        let tensors = HashMap::from([
            ("h".to_string(), t.to_dtype(DType::F16).unwrap()),
            ("b".to_string(), t.to_dtype(DType::BF16).unwrap()),
            ("f".to_string(), t.clone()),
        ]);
        save(&p, &tensors, &json!(null)).unwrap();
        let (loaded, meta) = load(&p, &Device::Cpu).unwrap();
        assert_eq!(meta, Value::Null);
        assert_eq!(loaded["h"].dtype(), DType::F16);
        assert_eq!(loaded["b"].dtype(), DType::BF16);
        for k in ["h", "b", "f"] {
            let v = loaded[k]
                .to_dtype(DType::F32)
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            assert_eq!(v, vec![1.0, -2.5, 0.125], "{k}");
        }
        // No scratch file left behind.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
    }

    #[test]
    fn empty_checkpoint_round_trips() {
        let dir = scratch("ckpt-empty");
        let p = dir.join("c.safetensors");
        save(&p, &HashMap::new(), &json!({"step": 0})).unwrap();
        let (t, m) = load(&p, &Device::Cpu).unwrap();
        assert!(t.is_empty());
        assert_eq!(m["step"], 0);
    }

    #[test]
    fn truncated_or_corrupt_files_are_errors_not_panics() {
        let dir = scratch("ckpt-truncated");
        let p = dir.join("checkpoint.safetensors");
        save(&p, &sample(), &json!({"step": 3})).unwrap();
        let full = fs::read(&p).unwrap();
        let n = u64::from_le_bytes(full[..8].try_into().unwrap()) as usize;
        let q = dir.join("cut.safetensors");
        let mut cuts: Vec<usize> = vec![0, 1, 7, 8, 9, 8 + n / 2, 8 + n - 1, 8 + n, 8 + n + 1];
        cuts.extend((8 + n..full.len()).step_by(7));
        cuts.push(full.len() - 1);
        for cut in cuts {
            fs::write(&q, &full[..cut]).unwrap();
            let e = load(&q, &Device::Cpu).unwrap_err();
            assert_eq!(
                e.code().unwrap().to_string(),
                "ebmc::run::bad_checkpoint",
                "cut {cut}"
            );
            assert!(e.to_string().contains("cut.safetensors"), "{e}");
            assert!(e.help().is_some());
        }
        // Extra bytes at the end.
        let mut longer = full.clone();
        longer.extend_from_slice(b"xx");
        fs::write(&q, &longer).unwrap();
        assert!(load(&q, &Device::Cpu).is_err());
        // Every single byte of the header flipped: an error or (if the JSON stays valid and
        // consistent) a successful load, never a panic.
        for i in 0..8 + n {
            let mut c = full.clone();
            c[i] ^= 0x5a;
            fs::write(&q, &c).unwrap();
            let _ = load(&q, &Device::Cpu);
            let _ = read_meta(&q);
        }
        let e = load(&dir.join("missing.safetensors"), &Device::Cpu).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
    }

    #[test]
    fn a_file_without_ebmc_metadata_is_rejected() {
        let dir = scratch("ckpt-foreign");
        let p = dir.join("foreign.safetensors");
        let t = HashMap::from([("w".to_string(), Tensor::new(&[1f32], &Device::Cpu).unwrap())]);
        candle_core::safetensors::save(&t, &p).unwrap();
        let e = load(&p, &Device::Cpu).unwrap_err();
        assert!(e.to_string().contains("not written by ebmc"), "{e}");
    }

    #[test]
    fn an_interrupted_save_keeps_the_old_checkpoint() {
        let dir = scratch("ckpt-interrupted");
        let p = dir.join("checkpoint.safetensors");
        save(&p, &sample(), &json!({"step": 10})).unwrap();
        // A save that died half way: a partial temp file beside the checkpoint.
        let full = fs::read(&p).unwrap();
        fs::write(tmp_path(&p), &full[..full.len() / 2]).unwrap();
        let (_, meta) = load(&p, &Device::Cpu).unwrap();
        assert_eq!(meta["step"], 10);
        // The next save replaces the temp file and the checkpoint.
        save(&p, &sample(), &json!({"step": 20})).unwrap();
        assert!(!tmp_path(&p).exists());
        assert_eq!(load(&p, &Device::Cpu).unwrap().1["step"], 20);
        // A save that fails (its directory is gone) reports an error.
        let gone = dir.join("gone/checkpoint.safetensors");
        let e = save(&gone, &sample(), &json!({})).unwrap_err();
        assert_eq!(e.code().unwrap().to_string(), "ebmc::run::io");
    }

    #[test]
    fn reserved_names_are_refused() {
        let dir = scratch("ckpt-reserved");
        let p = dir.join("c.safetensors");
        let t = HashMap::from([(
            "__metadata__".to_string(),
            Tensor::new(&[1f32], &Device::Cpu).unwrap(),
        )]);
        assert!(save(&p, &t, &json!({})).is_err());
        assert!(!p.exists());
    }
}
