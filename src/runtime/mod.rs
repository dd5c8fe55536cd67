//! The runtime: executes a compiled program on candle tensors (the only module that uses candle),
//! loads data, runs the learning algorithms and writes the run directory.

pub mod activation;
pub mod checkpoint;
pub mod conv;
pub mod data;
pub mod error;
pub mod evaluate;
pub mod exec;
mod expf;
mod fuse;
mod gemm;
pub mod host;
pub mod image;
pub mod linear;
pub mod normal;
pub mod optim;
pub mod params;
pub mod replay;
pub mod report;
pub mod rng;
pub mod rundir;
pub mod sampler;
pub mod shifted;
pub mod train;

/// The bit patterns of a tensor's values (as f64), for tests that compare two computations bit for bit.
#[cfg(test)]
pub(crate) fn bit_pattern(t: &candle_core::Tensor) -> Vec<u64> {
    let t = t
        .flatten_all()
        .unwrap()
        .to_dtype(candle_core::DType::F64)
        .unwrap();
    t.to_vec1::<f64>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}
