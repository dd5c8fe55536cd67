//! The idx format of MNIST: a big-endian header `0x00 0x00 TYPE NDIM`, NDIM `u32` sizes, then the
//! data row-major. Gzipped files (`1f 8b`) are decompressed first.

use super::error::{DataError, Origin, fmt_shape};
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IdxType {
    U8,
    I8,
    I16,
    I32,
    F32,
    F64,
}

impl IdxType {
    fn from_code(code: u8) -> Option<IdxType> {
        Some(match code {
            0x08 => IdxType::U8,
            0x09 => IdxType::I8,
            0x0B => IdxType::I16,
            0x0C => IdxType::I32,
            0x0D => IdxType::F32,
            0x0E => IdxType::F64,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            IdxType::U8 | IdxType::I8 => 1,
            IdxType::I16 => 2,
            IdxType::I32 | IdxType::F32 => 4,
            IdxType::F64 => 8,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            IdxType::U8 => "unsigned bytes",
            IdxType::I8 => "signed bytes",
            IdxType::I16 => "i16",
            IdxType::I32 => "i32",
            IdxType::F32 => "f32",
            IdxType::F64 => "f64",
        }
    }
}

/// A whole idx file: its dimensions, element type and the raw (big-endian) data bytes.
#[derive(Debug)]
pub(crate) struct IdxArray {
    pub dims: Vec<usize>,
    pub ty: IdxType,
    data: Vec<u8>,
}

impl IdxArray {
    pub fn values(&self) -> Vec<f32> {
        let d = &self.data;
        match self.ty {
            IdxType::U8 => d.iter().map(|&b| b as f32).collect(),
            IdxType::I8 => d.iter().map(|&b| b as i8 as f32).collect(),
            IdxType::I16 => d
                .chunks_exact(2)
                .map(|c| i16::from_be_bytes([c[0], c[1]]) as f32)
                .collect(),
            IdxType::I32 => d
                .chunks_exact(4)
                .map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]) as f32)
                .collect(),
            IdxType::F32 => d
                .chunks_exact(4)
                .map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            IdxType::F64 => d
                .chunks_exact(8)
                .map(|c| f64::from_be_bytes(c.try_into().expect("8 bytes")) as f32)
                .collect(),
        }
    }

    /// The values as class labels (non-negative integers), or the first offending value.
    pub fn labels(&self) -> Result<Vec<u32>, String> {
        let to_label = |i: usize, v: f64| {
            if v >= 0.0 && v.fract() == 0.0 && v <= u32::MAX as f64 {
                Ok(v as u32)
            } else {
                Err(format!("label {i} is {v}, not a non-negative integer"))
            }
        };
        match self.ty {
            IdxType::U8 => Ok(self.data.iter().map(|&b| b as u32).collect()),
            IdxType::F64 => self
                .data
                .chunks_exact(8)
                .enumerate()
                .map(|(i, c)| to_label(i, f64::from_be_bytes(c.try_into().expect("8 bytes"))))
                .collect(),
            IdxType::I32 => self
                .data
                .chunks_exact(4)
                .enumerate()
                .map(|(i, c)| to_label(i, i32::from_be_bytes([c[0], c[1], c[2], c[3]]) as f64))
                .collect(),
            _ => self
                .values()
                .into_iter()
                .enumerate()
                .map(|(i, v)| to_label(i, v as f64))
                .collect(),
        }
    }
}

/// Decompresses gzip data (recognised by its magic bytes); other data are returned unchanged.
pub(crate) fn gunzip_if_gzipped(
    bytes: Vec<u8>,
    path: &Path,
    origin: Origin,
) -> Result<Vec<u8>, DataError> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len() * 4);
    let mut decoder = flate2::read::MultiGzDecoder::new(&bytes[..]);
    std::io::Read::read_to_end(&mut decoder, &mut out).map_err(|e| {
        DataError::corrupt(
            path.to_path_buf(),
            format!("it starts like a gzip file but does not decompress ({e})"),
            origin,
        )
    })?;
    Ok(out)
}

/// Reads and checks an idx file: the magic number, and that the file holds exactly the bytes
/// its header announces.
pub(crate) fn read_idx(path: &Path, origin: Origin) -> Result<IdxArray, DataError> {
    let bytes = DataError::read(path, origin)?;
    let bytes = gunzip_if_gzipped(bytes, path, origin)?;
    parse_idx(bytes, path, origin)
}

pub(crate) fn parse_idx(
    mut bytes: Vec<u8>,
    path: &Path,
    origin: Origin,
) -> Result<IdxArray, DataError> {
    let corrupt = |problem: String| DataError::corrupt(path.to_path_buf(), problem, origin);
    if bytes.len() < 4 {
        return Err(corrupt(format!(
            "it is {} bytes long, shorter than the 4-byte idx magic number",
            bytes.len()
        )));
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let ty = IdxType::from_code(bytes[2]);
    let ndim = bytes[3] as usize;
    let Some(ty) = ty.filter(|_| bytes[0] == 0 && bytes[1] == 0 && ndim >= 1) else {
        return Err(corrupt(format!(
            "bad magic number 0x{magic:08x} (an idx file starts 0x0000TTNN: type TT 08 for \
             unsigned bytes, NN dimensions ≥ 1; MNIST images have 0x00000803, labels 0x00000801)"
        )));
    };
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(corrupt(format!(
            "truncated: the header announces {ndim} dimensions ({header} header bytes) but the \
             file has only {} bytes",
            bytes.len()
        )));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| {
            let o = 4 + 4 * i;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    let expected = dims
        .iter()
        .try_fold(ty.size(), |acc, &d| acc.checked_mul(d))
        .and_then(|n| n.checked_add(header));
    let Some(expected) = expected else {
        return Err(corrupt(format!(
            "the header announces dimensions {} that do not fit in memory",
            fmt_shape(&dims)
        )));
    };
    if bytes.len() != expected {
        let what = if bytes.len() < expected {
            "truncated"
        } else {
            "too long"
        };
        return Err(corrupt(format!(
            "{what}: dimensions {} of {} need {expected} bytes with the header, but the data \
             have {}",
            fmt_shape(&dims),
            ty.name(),
            bytes.len()
        )));
    }
    bytes.drain(..header);
    Ok(IdxArray {
        dims,
        ty,
        data: bytes,
    })
}

/// Builds an idx file's bytes (for tests and tools): unsigned bytes with the given dimensions.
#[cfg(test)]
pub(crate) fn encode_idx_u8(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}
