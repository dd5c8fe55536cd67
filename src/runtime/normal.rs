//! Standard normal draws for Langevin noise: Box–Muller in f32 on 32-bit ChaCha8 words, as
//! straight-line arithmetic that LLVM vectorises. `rand_distr`'s ziggurat takes a 64-bit word and
//! a table walk per draw, one at a time: 5 ns a draw, 12–16 % of a prior Langevin step (bench
//! workload (a)). Here a pair of draws costs two 32-bit words and one pass of eight lanes.
//!
//! A pair: `u` uniform on (0, 1) and `v` on [0, 1) from the top 24 bits of one word each, then
//! `√(−2 ln u) · (cos 2πv, sin 2πv)`. `ln`, `sin` and `cos` are Cephes' single-precision
//! polynomials (within a few ulp; the tests check them against f64). The smallest `u` is 2⁻²⁵, so
//! no draw exceeds 5.9 in magnitude (probability 4·10⁻⁹ under the exact normal): Langevin noise
//! cannot tell.

use super::rng::Rng;
use rand::Rng as _;

/// Values of each call's pass: word pairs are drawn in blocks of this many draws.
const BLOCK: usize = 256;

/// Fills `out` with standard normal draws from `rng`: per block, the cosine draws of its pairs
/// and then their sine draws (one 32-bit word per draw, a count rounded up to a pair).
pub fn fill(rng: &mut Rng, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2.
        return unsafe { fill_avx2(rng, out) };
    }
    fill_lanes(rng, out)
}

/// [`fill_lanes`] on eight lanes instead of the baseline's four. AVX2 alone, not FMA: the same
/// operations in each lane, so the same bits as the baseline build.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fill_avx2(rng: &mut Rng, out: &mut [f32]) {
    fill_lanes(rng, out)
}

#[inline(always)]
fn fill_lanes(rng: &mut Rng, out: &mut [f32]) {
    let mut words = [0u32; BLOCK];
    let (mut cos, mut sin) = ([0f32; BLOCK / 2], [0f32; BLOCK / 2]);
    for chunk in out.chunks_mut(BLOCK) {
        let pairs = chunk.len().div_ceil(2);
        let words = &mut words[..2 * pairs];
        rng.inner_mut().fill(words);
        let (us, vs) = words.split_at(pairs);
        for (((c, s), &u), &v) in cos.iter_mut().zip(sin.iter_mut()).zip(us).zip(vs) {
            (*c, *s) = box_muller(u, v);
        }
        let (first, second) = chunk.split_at_mut(pairs);
        first.copy_from_slice(&cos[..pairs]);
        second.copy_from_slice(&sin[..second.len()]);
    }
}

/// Two independent standard normals from two uniform 32-bit words.
#[inline(always)]
fn box_muller(u: u32, v: u32) -> (f32, f32) {
    const SCALE: f32 = 1.0 / (1u32 << 24) as f32;
    // Centres of 2²⁴ cells: never 0.
    let u = (u >> 8) as f32 * SCALE + 0.5 * SCALE;
    let v = (v >> 8) as f32 * SCALE;
    let r = (-2.0 * ln(u)).sqrt();
    let (s, c) = sin_cos_turns(v);
    (r * c, r * s)
}

/// `ln x` for normal positive `x` (Cephes `logf`).
#[inline(always)]
fn ln(x: f32) -> f32 {
    let bits = x.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - 127;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    // m in [√½, √2), so that m − 1 is small.
    let big = m > std::f32::consts::SQRT_2;
    m = if big { 0.5 * m } else { m };
    e += i32::from(big);
    let x = m - 1.0;
    let e = e as f32;
    let z = x * x;
    let mut p = 7.037_683_6e-2;
    p = p * x - 1.151_461_1e-1;
    p = p * x + 1.167_699_9e-1;
    p = p * x - 1.242_014_1e-1;
    p = p * x + 1.424_932_3e-1;
    p = p * x - 1.666_805_8e-1;
    p = p * x + 2.000_071_4e-1;
    p = p * x - 2.499_999_4e-1;
    p = p * x + 3.333_333e-1;
    let mut y = x * z * p;
    y += e * -2.121_944_4e-4;
    y += -0.5 * z;
    x + y + e * 0.693_359_4
}

/// `(sin 2πt, cos 2πt)` for `t` in [0, 1) (Cephes `sinf`/`cosf` on a quarter turn).
#[inline(always)]
fn sin_cos_turns(t: f32) -> (f32, f32) {
    // The nearest quarter turn q and the rest, within ±1/8 turn (±π/4).
    // (t ≥ 0: truncation is the floor; `round` is a libm call that stops the loop vectorising.)
    let q = (4.0 * t + 0.5) as i32;
    let x = (t - 0.25 * q as f32) * std::f32::consts::TAU;
    let z = x * x;
    let s = ((-1.951_529_6e-4 * z + 8.332_161e-3) * z - 1.666_665_5e-1) * z * x + x;
    let c = ((2.443_315_7e-5 * z - 1.388_731_6e-3) * z + 4.166_664_6e-2) * z * z - 0.5 * z + 1.0;
    // Rotate by q quarter turns (q = 4 is a whole turn), with selects so that the loop
    // vectorises: q = 1 → (c, −s), 2 → (−s, −c), 3 → (−c, s).
    let q = q & 3;
    let odd = q & 1 == 1;
    let (s, c) = if odd { (c, s) } else { (s, c) };
    let s = if q >= 2 { -s } else { s };
    let c = if q == 1 || q == 2 { -c } else { c };
    (s, c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_is_within_a_few_ulp_on_the_uniforms_it_is_given() {
        let mut worst = 0.0f64;
        for k in 0..(1u32 << 24) {
            let u = (k as f32 + 0.5) / (1u32 << 24) as f32;
            let exact = (u as f64).ln();
            let err = (ln(u) as f64 - exact).abs() / exact.abs().max(1e-30);
            worst = worst.max(err);
        }
        // 4 ulp of f32 in relative terms.
        assert!(
            worst < 4.0 * f32::EPSILON as f64,
            "worst relative error {worst:e}"
        );
    }

    #[test]
    fn sin_and_cos_of_turns_are_within_1e_6_everywhere() {
        let mut worst = 0.0f64;
        for k in 0..(1u32 << 20) {
            let t = k as f32 / (1u32 << 20) as f32;
            let (s, c) = sin_cos_turns(t);
            let a = t as f64 * std::f64::consts::TAU;
            worst = worst
                .max((s as f64 - a.sin()).abs())
                .max((c as f64 - a.cos()).abs());
        }
        assert!(worst < 1e-6, "worst absolute error {worst:e}");
    }

    #[test]
    fn draws_have_the_moments_and_the_distribution_of_a_standard_normal() {
        let mut rng = Rng::new(9);
        let n = 1 << 21;
        let mut xs = vec![0f32; n];
        fill(&mut rng, &mut xs);
        let mean = xs.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
        let var = xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        let kurt =
            xs.iter().map(|&x| (x as f64 - mean).powi(4)).sum::<f64>() / n as f64 / var.powi(2);
        // Standard errors: 1/√n ≈ 7e-4 for the mean, √(2/n) ≈ 1e-3 for the variance, √(24/n) ≈
        // 3.4e-3 for the kurtosis; the bounds are 5 of them.
        assert!(mean.abs() < 3.5e-3, "mean {mean}");
        assert!((var - 1.0).abs() < 5e-3, "variance {var}");
        assert!((kurt - 3.0).abs() < 1.7e-2, "kurtosis {kurt}");
        // Kolmogorov–Smirnov against Φ: the 1 % critical value is 1.63/√n ≈ 1.1e-3.
        xs.sort_by(f32::total_cmp);
        let phi = |x: f64| 0.5 * erfc(-x / std::f64::consts::SQRT_2);
        let d = xs
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                let f = phi(x as f64);
                (f - i as f64 / n as f64)
                    .abs()
                    .max(((i + 1) as f64 / n as f64 - f).abs())
            })
            .fold(0.0, f64::max);
        assert!(d < 1.63 / (n as f64).sqrt(), "KS statistic {d}");
        // The tails: P(|x| > 3) = 0.0027.
        let tail = xs.iter().filter(|x| x.abs() > 3.0).count() as f64 / n as f64;
        assert!((tail - 0.0027).abs() < 2.5e-4, "P(|x| > 3) = {tail}");
    }

    #[test]
    fn the_eight_lane_path_gives_the_bits_of_the_baseline() {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            let (mut a, mut b) = (Rng::new(8), Rng::new(8));
            let (mut wide, mut base) = (vec![0f32; 1001], vec![0f32; 1001]);
            // SAFETY: the CPU has AVX2.
            unsafe { fill_avx2(&mut a, &mut wide) };
            fill_lanes(&mut b, &mut base);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&wide), bits(&base));
        }
    }

    #[test]
    fn a_fill_draws_what_the_same_stream_gives_in_pieces_of_whole_blocks() {
        let (mut a, mut b) = (Rng::new(4), Rng::new(4));
        let mut whole = vec![0f32; 2 * BLOCK];
        fill(&mut a, &mut whole);
        let mut pieces = vec![0f32; 2 * BLOCK];
        let (first, second) = pieces.split_at_mut(BLOCK);
        fill(&mut b, first);
        fill(&mut b, second);
        assert_eq!(whole, pieces);
        // An odd count uses a whole pair.
        let (mut c, mut d) = (Rng::new(4), Rng::new(4));
        let mut odd = [0f32; 3];
        let mut even = [0f32; 4];
        fill(&mut c, &mut odd);
        fill(&mut d, &mut even);
        assert_eq!(odd, even[..3]);
        assert_eq!(c, d);
    }

    /// erfc by its continued-fraction-free Chebyshev fit (Numerical Recipes `erfcc`, relative
    /// error below 1.2e-7), enough for a KS bound of 1e-3.
    fn erfc(x: f64) -> f64 {
        let z = x.abs();
        let t = 1.0 / (1.0 + 0.5 * z);
        let r = t
            * (-z * z - 1.265_512_23
                + t * (1.000_023_68
                    + t * (0.374_091_96
                        + t * (0.096_784_18
                            + t * (-0.186_288_06
                                + t * (0.278_868_07
                                    + t * (-1.135_203_98
                                        + t * (1.488_515_87
                                            + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
                .exp();
        if x >= 0.0 { r } else { 2.0 - r }
    }
}
