//! ebmc's own seeded random number generator (candle's CPU RNG cannot be seeded).
//!
//! One [`Rng`] (ChaCha8, seeded from a `u64`) drives everything random in a run: parameter
//! initialisation, sampler noise, minibatch order, buffer resets. Random tensors are generated on
//! the host in f64 and then moved to the device, so a seed gives the same numbers on CPU and CUDA
//! (rounded to the working dtype). [`Rng::state`] / [`Rng::from_state`] serialize the exact
//! position in the stream, so a resumed run continues where it stopped.

use super::error::{Context, Result, RuntimeError};
use candle_core::{DType, Device, Tensor};
use rand::seq::SliceRandom;
use rand::{Rng as _, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

/// The version byte leading a serialized state.
const STATE_VERSION: u8 = 1;
/// version (1) + seed (32) + stream (8) + word position (16).
const STATE_LEN: usize = 1 + 32 + 8 + 16;

/// A seeded, serializable random number generator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    inner: ChaCha8Rng,
}

impl Rng {
    /// The generator for `seed` (ChaCha8 keyed by `seed_from_u64`: stable across platforms and
    /// releases of rand_chacha 0.9).
    pub fn new(seed: u64) -> Self {
        Rng {
            inner: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// An independent generator seeded from this one (advances this one by one `u64`).
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.inner.next_u64())
    }

    /// A family of independent generators keyed by one draw of this one (advances this one by one
    /// `u64`); see [`Family`].
    pub fn family(&mut self) -> Family {
        Family {
            key: self.inner.next_u64(),
        }
    }

    /// The underlying ChaCha8 generator, for the `rand` APIs.
    pub fn inner_mut(&mut self) -> &mut ChaCha8Rng {
        &mut self.inner
    }

    /// Uniform in `[0, 1)` (53 random bits).
    pub fn uniform_f64(&mut self) -> f64 {
        self.inner.random::<f64>()
    }

    /// A standard normal draw.
    pub fn normal_f64(&mut self) -> f64 {
        self.inner.sample::<f64, _>(StandardNormal)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "internal error: Rng::below(0)");
        self.inner.random_range(0..n)
    }

    /// `true` with probability `p`.
    pub fn bernoulli(&mut self, p: f64) -> bool {
        self.uniform_f64() < p
    }

    /// One draw of N(mean, std²): the element that [`Rng::normal_vec`] and [`Rng::normal`] produce,
    /// for loops that consume draws one by one (no buffer).
    pub fn normal_draw(&mut self, mean: f64, std: f64) -> f64 {
        mean + std * self.normal_f64()
    }

    /// `n` draws of N(mean, std²).
    pub fn normal_vec(&mut self, n: usize, mean: f64, std: f64) -> Vec<f64> {
        (0..n).map(|_| self.normal_draw(mean, std)).collect()
    }

    /// `n` draws of U[lo, hi).
    pub fn uniform_vec(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..n)
            .map(|_| lo + (hi - lo) * self.uniform_f64())
            .collect()
    }

    /// A tensor of N(mean, std²) draws, generated on the host and moved to `device`.
    pub fn normal(
        &mut self,
        shape: &[usize],
        mean: f64,
        std: f64,
        device: &Device,
        dtype: DType,
    ) -> Result<Tensor> {
        let n = shape.iter().product();
        let data = self.normal_vec(n, mean, std);
        host_tensor(data, shape, device, dtype)
    }

    /// A tensor of U[lo, hi) draws, generated on the host and moved to `device`.
    pub fn uniform(
        &mut self,
        shape: &[usize],
        lo: f64,
        hi: f64,
        device: &Device,
        dtype: DType,
    ) -> Result<Tensor> {
        let n = shape.iter().product();
        let data = self.uniform_vec(n, lo, hi);
        host_tensor(data, shape, device, dtype)
    }

    /// `k` indices in `0..n`: with `replace`, independent uniform draws; without, `k ≤ n` distinct
    /// indices in random order.
    pub fn index_sample(&mut self, n: usize, k: usize, replace: bool) -> Vec<usize> {
        if replace {
            assert!(
                n > 0 || k == 0,
                "internal error: sampling {k} indices out of 0"
            );
            (0..k).map(|_| self.inner.random_range(0..n)).collect()
        } else {
            assert!(
                k <= n,
                "internal error: sampling {k} distinct indices out of {n}"
            );
            rand::seq::index::sample(&mut self.inner, n, k).into_vec()
        }
    }

    /// Shuffles `xs` in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, xs: &mut [T]) {
        xs.shuffle(&mut self.inner);
    }

    /// A random permutation of `0..n`.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        self.shuffle(&mut p);
        p
    }

    /// The exact state: key, stream and position in the stream (57 bytes).
    pub fn state(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(STATE_LEN);
        out.push(STATE_VERSION);
        out.extend_from_slice(&self.inner.get_seed());
        out.extend_from_slice(&self.inner.get_stream().to_le_bytes());
        out.extend_from_slice(&self.inner.get_word_pos().to_le_bytes());
        out
    }

    /// The generator saved by [`Rng::state`]; it continues the exact stream.
    pub fn from_state(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != STATE_LEN || bytes[0] != STATE_VERSION {
            return Err(RuntimeError::CorruptState {
                what: "random number generator state".into(),
                message: format!(
                    "expected {STATE_LEN} bytes of version {STATE_VERSION}, found {} bytes{}",
                    bytes.len(),
                    bytes
                        .first()
                        .map(|v| format!(" of version {v}"))
                        .unwrap_or_default()
                ),
            });
        }
        let seed: [u8; 32] = bytes[1..33].try_into().expect("length checked");
        let stream = u64::from_le_bytes(bytes[33..41].try_into().expect("length checked"));
        let pos = u128::from_le_bytes(bytes[41..57].try_into().expect("length checked"));
        let mut inner = ChaCha8Rng::from_seed(seed);
        inner.set_stream(stream);
        inner.set_word_pos(pos);
        Ok(Rng { inner })
    }

    /// The state as a tensor of bytes (`u8`), for a safetensors checkpoint.
    pub fn state_tensor(&self) -> Result<Tensor> {
        let s = self.state();
        let n = s.len();
        Tensor::from_vec(s, n, &Device::Cpu).ctx("saving the random number generator state")
    }

    /// The generator saved by [`Rng::state_tensor`].
    pub fn from_state_tensor(t: &Tensor) -> Result<Self> {
        let bytes = t
            .flatten_all()
            .and_then(|t| t.to_dtype(DType::U8))
            .and_then(|t| t.to_vec1::<u8>())
            .ctx("reading the random number generator state")?;
        Rng::from_state(&bytes)
    }
}

/// Independent generators indexed by `u64`: member `i` is stream `i` of ChaCha8 under one key, so
/// what a member draws does not depend on which other members are used, or when. A Langevin chain
/// gives each example (row) its own member, so its noise is the same however the rows are split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Family {
    key: u64,
}

impl Family {
    pub fn member(&self, i: u64) -> Rng {
        let mut inner = ChaCha8Rng::seed_from_u64(self.key);
        inner.set_stream(i);
        Rng { inner }
    }
}

impl RngCore for Rng {
    fn next_u32(&mut self) -> u32 {
        self.inner.next_u32()
    }

    fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        self.inner.fill_bytes(dst)
    }
}

/// A tensor of the given host values on `device`, in `dtype` (values are rounded on the host for
/// f32, so CPU and CUDA get identical numbers).
pub fn host_tensor(
    data: Vec<f64>,
    shape: &[usize],
    device: &Device,
    dtype: DType,
) -> Result<Tensor> {
    let r = match dtype {
        DType::F64 => Tensor::from_vec(data, shape, device),
        DType::F32 => {
            let v: Vec<f32> = data.into_iter().map(|x| x as f32).collect();
            Tensor::from_vec(v, shape, device)
        }
        other => Tensor::from_vec(data, shape, device).and_then(|t| t.to_dtype(other)),
    };
    r.ctx("moving random values to the device")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trip_continues_the_stream() {
        let mut a = Rng::new(7);
        // Leave the generator at an odd word inside a block.
        let _ = a.normal_vec(37, 0.0, 1.0);
        let _ = a.next_u32();
        let saved = a.state();
        assert_eq!(saved.len(), STATE_LEN);
        let mut b = Rng::from_state(&saved).unwrap();
        assert_eq!(a, b);
        for _ in 0..5 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_eq!(a.normal_vec(100, 0.0, 1.0), b.normal_vec(100, 0.0, 1.0));
        assert_eq!(a.index_sample(50, 10, false), b.index_sample(50, 10, false));
        // Through a tensor too.
        let t = a.state_tensor().unwrap();
        let mut c = Rng::from_state_tensor(&t).unwrap();
        assert_eq!(a.uniform_vec(10, -1.0, 1.0), c.uniform_vec(10, -1.0, 1.0));
    }

    #[test]
    fn family_members_are_distinct_streams_that_do_not_depend_on_each_other() {
        let mut root = Rng::new(3);
        let before = root.clone();
        let family = root.family();
        assert_ne!(root, before, "the family's key is a draw of the root");
        assert_eq!(before.clone().family(), family, "same position, same key");
        let (mut a, mut b) = (family.member(0), family.member(1));
        let xs = a.normal_vec(50, 0.0, 1.0);
        assert_ne!(xs, b.normal_vec(50, 0.0, 1.0));
        // Member 0 draws the same whatever member 1 did, and a fresh copy starts over.
        assert_eq!(xs, family.member(0).normal_vec(50, 0.0, 1.0));
        assert_ne!(xs[..], family.member(0).normal_vec(100, 0.0, 1.0)[50..]);
        // A state round trip keeps the stream number.
        let mut c = family.member(7);
        let _ = c.next_u64();
        let mut d = Rng::from_state(&c.state()).unwrap();
        assert_eq!(c.next_u64(), d.next_u64());
    }

    #[test]
    fn corrupt_state_is_an_error() {
        let err = Rng::from_state(&[1, 2, 3]).unwrap_err();
        assert_eq!(err.code_str(), "ebmc::run::corrupt_state");
    }

    #[test]
    fn same_seed_same_numbers() {
        let dev = Device::Cpu;
        let a = Rng::new(3)
            .normal(&[4, 5], 1.0, 2.0, &dev, DType::F64)
            .unwrap();
        let b = Rng::new(3)
            .normal(&[4, 5], 1.0, 2.0, &dev, DType::F64)
            .unwrap();
        assert_eq!(a.to_vec2::<f64>().unwrap(), b.to_vec2::<f64>().unwrap());
        let c = Rng::new(4)
            .normal(&[4, 5], 1.0, 2.0, &dev, DType::F64)
            .unwrap();
        assert_ne!(a.to_vec2::<f64>().unwrap(), c.to_vec2::<f64>().unwrap());
        // f32 is the rounded f64 stream.
        let d = Rng::new(3)
            .normal(&[4, 5], 1.0, 2.0, &dev, DType::F32)
            .unwrap();
        let a32: Vec<f32> = a
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap()
            .iter()
            .map(|x| *x as f32)
            .collect();
        assert_eq!(d.flatten_all().unwrap().to_vec1::<f32>().unwrap(), a32);
    }

    #[test]
    fn distributions_look_right() {
        let mut r = Rng::new(11);
        let n = 200_000;
        let xs = r.normal_vec(n, 2.0, 3.0);
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!((mean - 2.0).abs() < 0.03, "{mean}");
        assert!((var.sqrt() - 3.0).abs() < 0.03, "{var}");
        let us = r.uniform_vec(n, -1.0, 3.0);
        assert!(us.iter().all(|u| (-1.0..3.0).contains(u)));
        let mean = us.iter().sum::<f64>() / n as f64;
        assert!((mean - 1.0).abs() < 0.02, "{mean}");
        let mut idx = r.index_sample(100, 100, false);
        idx.sort();
        assert_eq!(idx, (0..100).collect::<Vec<_>>());
        let with = r.index_sample(3, 1000, true);
        assert!(with.iter().all(|i| *i < 3));
        assert!((0..3).all(|k| with.contains(&k)));
        let p = r.permutation(10);
        let mut s = p.clone();
        s.sort();
        assert_eq!(s, (0..10).collect::<Vec<_>>());
    }
}
