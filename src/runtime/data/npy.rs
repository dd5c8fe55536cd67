//! NumPy `.npy` arrays (format versions 1, 2 and 3): C order, element types `f4`, `f8`, `u1`,
//! `u2`, `u4`, `u8`, `i1`, `i2`, `i4`, `i8` and `b1`, either byte order. The first axis indexes
//! the examples.

use super::error::{DataError, Origin, fmt_shape};
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Float,
    Unsigned,
    Signed,
    Bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Dtype {
    pub kind: Kind,
    pub size: usize,
    pub big_endian: bool,
}

impl Dtype {
    fn parse(descr: &str) -> Option<Dtype> {
        let (order, rest) = descr.split_at(descr.chars().next()?.len_utf8());
        let big_endian = match order {
            "<" | "|" | "=" => false,
            ">" => true,
            _ => return None,
        };
        let (kind, size) = (rest.get(..1)?, rest.get(1..)?);
        let kind = match kind {
            "f" => Kind::Float,
            "u" => Kind::Unsigned,
            "i" => Kind::Signed,
            "b" => Kind::Bool,
            _ => return None,
        };
        let size: usize = size.parse().ok()?;
        let ok = match kind {
            Kind::Float => matches!(size, 4 | 8),
            Kind::Unsigned | Kind::Signed => matches!(size, 1 | 2 | 4 | 8),
            Kind::Bool => size == 1,
        };
        ok.then_some(Dtype {
            kind,
            size,
            big_endian,
        })
    }

    pub fn is_u8(self) -> bool {
        self.kind == Kind::Unsigned && self.size == 1
    }

    fn value(self, b: &[u8]) -> f64 {
        let mut a = [0u8; 8];
        a[..self.size].copy_from_slice(b);
        if self.big_endian {
            a[..self.size].reverse();
        }
        match (self.kind, self.size) {
            (Kind::Float, 4) => f32::from_le_bytes([a[0], a[1], a[2], a[3]]) as f64,
            (Kind::Float, _) => f64::from_le_bytes(a),
            (Kind::Unsigned | Kind::Bool, _) => u64::from_le_bytes(a) as f64,
            (Kind::Signed, s) => {
                // Sign-extend from `s` bytes.
                let shift = 64 - 8 * s as u32;
                ((u64::from_le_bytes(a) << shift) as i64 >> shift) as f64
            }
        }
    }
}

/// A whole `.npy` array: its shape, element type and raw data bytes.
#[derive(Debug)]
pub(crate) struct NpyArray {
    pub shape: Vec<usize>,
    pub dtype: Dtype,
    data: Vec<u8>,
}

impl NpyArray {
    pub fn values(&self) -> Vec<f32> {
        let t = self.dtype;
        if t.kind == Kind::Float && t.size == 4 && !t.big_endian {
            return self
                .data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
        }
        if t.is_u8() {
            return self.data.iter().map(|&b| b as f32).collect();
        }
        self.data
            .chunks_exact(t.size)
            .map(|c| t.value(c) as f32)
            .collect()
    }

    /// The values as class labels (non-negative integers), or the first offending value.
    pub fn labels(&self) -> Result<Vec<u32>, String> {
        self.data
            .chunks_exact(self.dtype.size)
            .enumerate()
            .map(|(i, c)| {
                let v = self.dtype.value(c);
                if v >= 0.0 && v.fract() == 0.0 && v <= u32::MAX as f64 {
                    Ok(v as u32)
                } else {
                    Err(format!("label {i} is {v}, not a non-negative integer"))
                }
            })
            .collect()
    }
}

pub(crate) fn read_npy(path: &Path, origin: Origin) -> Result<NpyArray, DataError> {
    let bytes = DataError::read(path, origin)?;
    parse_npy(&bytes, path)
}

pub(crate) fn parse_npy(bytes: &[u8], path: &Path) -> Result<NpyArray, DataError> {
    let bad = |problem: String, help: Option<&str>| DataError::BadNpy {
        path: path.to_path_buf(),
        problem,
        help: help.map(str::to_string),
    };
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad(
            "it does not start with the .npy magic `\\x93NUMPY`".into(),
            Some("save the array with `numpy.save(path, array)`"),
        ));
    }
    let major = bytes[6];
    let (header_len, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => {
            return Err(bad(
                format!("unsupported format version {major}.{}", bytes[7]),
                None,
            ));
        }
    };
    let Some(header) = bytes.get(start..start + header_len) else {
        return Err(bad("truncated header".into(), None));
    };
    let header = String::from_utf8_lossy(header);
    let descr = dict_value(&header, "descr")
        .and_then(quoted)
        .ok_or_else(|| {
            bad(
                format!("no element type (`descr`) in the header `{}`", header.trim()),
                Some("structured arrays (record dtypes) are not supported; save a plain numeric array"),
            )
        })?;
    let dtype = Dtype::parse(descr).ok_or_else(|| {
        bad(
            format!("element type `{descr}` is not supported"),
            Some("supported: f4, f8, u1, u2, u4, u8, i1, i2, i4, i8, b1 (save with `array.astype(numpy.float32)`)"),
        )
    })?;
    match dict_value(&header, "fortran_order").map(|v| v.trim_start()) {
        Some(v) if v.starts_with("False") => {}
        Some(v) if v.starts_with("True") => {
            return Err(bad(
                "the array is in Fortran (column-major) order".into(),
                Some("save a C-order array: `numpy.save(path, numpy.ascontiguousarray(array))`"),
            ));
        }
        _ => return Err(bad("no `fortran_order` in the header".into(), None)),
    }
    let shape = dict_value(&header, "shape")
        .and_then(tuple)
        .ok_or_else(|| bad("no readable `shape` in the header".into(), None))?;
    if shape.is_empty() {
        return Err(bad(
            "it is a 0-d array; the first axis must index the examples".into(),
            None,
        ));
    }
    let data = &bytes[start + header_len..];
    let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let expected = count.and_then(|c| c.checked_mul(dtype.size));
    if expected != Some(data.len()) {
        let what = match expected {
            Some(e) if data.len() < e => "truncated",
            Some(_) => "too long",
            None => "impossible shape",
        };
        return Err(bad(
            format!(
                "{what}: shape {} of {descr} needs {} data bytes, the file has {}",
                fmt_shape(&shape),
                expected.map_or("too many".to_string(), |e| e.to_string()),
                data.len()
            ),
            None,
        ));
    }
    Ok(NpyArray {
        shape,
        dtype,
        data: data.to_vec(),
    })
}

/// The text after `'key':` in the header dict.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    for quote in ['\'', '"'] {
        let k = format!("{quote}{key}{quote}");
        if let Some(i) = header.find(&k) {
            let rest = header[i + k.len()..].trim_start();
            return rest.strip_prefix(':');
        }
    }
    None
}

/// The contents of a leading quoted string.
fn quoted(s: &str) -> Option<&str> {
    let s = s.trim_start();
    let q = s.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let rest = &s[1..];
    rest.find(q).map(|end| &rest[..end])
}

/// A leading tuple of integers: `(60000, 28, 28)`, `(5,)`, `()`.
fn tuple(s: &str) -> Option<Vec<usize>> {
    let s = s.trim_start().strip_prefix('(')?;
    let inner = &s[..s.find(')')?];
    inner
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        // NumPy may write `3L` on old Pythons.
        .map(|p| p.trim_end_matches('L').parse().ok())
        .collect()
}

/// Builds a version-1 `.npy` file (for tests): little-endian f4 values of the given shape.
#[cfg(test)]
pub(crate) fn encode_npy_f4(shape: &[usize], values: &[f32]) -> Vec<u8> {
    encode_npy(
        "<f4",
        shape,
        &values
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<_>>(),
    )
}

#[cfg(test)]
pub(crate) fn encode_npy(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = if shape.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}
