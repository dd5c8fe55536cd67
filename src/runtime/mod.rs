//! The runtime: executes a compiled program on candle tensors (the only module that uses candle),
//! loads data, runs the learning algorithms and writes the run directory.

pub mod checkpoint;
pub mod conv;
pub mod data;
pub mod error;
pub mod evaluate;
pub mod exec;
pub mod image;
pub mod optim;
pub mod params;
pub mod replay;
pub mod report;
pub mod rng;
pub mod rundir;
pub mod sampler;
pub mod train;
