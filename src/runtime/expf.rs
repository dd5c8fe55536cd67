//! `exp` in f32 as straight-line arithmetic that LLVM vectorises, for the swish pass of the
//! convolutional energies' Langevin steps (one `exp` per activation per step: with libm's scalar
//! `expf` it was 9 % of a CEBM iteration on MNIST). PyTorch's CPU kernels vectorise it the same
//! way (Sleef).
//!
//! Cody–Waite reduction `x = n·ln 2 + r`, |r| ≤ ln 2 / 2, and Cephes' degree-6 polynomial for
//! `exp(r)`; `2ⁿ` built from its exponent bits. Within 2 ulp of the exact value on the whole
//! range (the test checks 22 M points against f64 `exp`; the worst it found was 0.98 ulp); overflow gives `inf`, underflow `0`, NaN stays
//! NaN, as libm's. Not the same bits as libm's `expf`: `docs/decisions.md` ("Speed") says where
//! that is accepted.

/// `1.5 · 2²³`: adding it rounds an f32 of magnitude below 2²² to an integer.
const ROUND: f32 = 12_582_912.0;
/// Beyond these, `exp` overflows to `inf` or is below the smallest normal f32 (returned as 0;
/// libm returns subnormals down to −103.97, which no caller here can tell from 0).
const MAX_X: f32 = 88.722_83;
const MIN_X: f32 = -87.336_54;

/// `e^x`, within 2 ulp (see the module doc).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let xc = x.clamp(MIN_X, MAX_X);
    let t = xc * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    // ln 2 in two parts: n · LN2_HI is exact for |n| < 2⁹.
    let r = xc - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    // 2ⁿ as 2^⌊n/2⌋ · 2^(n − ⌊n/2⌋): each factor a normal f32 for n in −126..=128. n is the
    // integer in the low mantissa bits of t.
    let n = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let pow2 = |k: i32| f32::from_bits(((k + 127) << 23) as u32);
    let y = er * pow2(n >> 1) * pow2(n - (n >> 1));
    // Selects (not branches), so that the loop vectorises.
    let y = if x > MAX_X { f32::INFINITY } else { y };
    let y = if x < MIN_X { 0.0 } else { y };
    if x.is_nan() { x } else { y }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place of `want`'s f32 rounding.
    fn ulps(got: f32, want: f64) -> f64 {
        let w = want as f32;
        let ulp = (f32::from_bits(w.to_bits() + 1) - w) as f64;
        (got as f64 - want).abs() / ulp
    }

    #[test]
    fn it_is_within_two_ulp_of_the_exact_value_everywhere() {
        // Every 97th f32 in the normal-result range, both signs (about 22 M values).
        let mut worst = (0.0f64, 0.0f32);
        for bits in (0u32..0x8000_0000).step_by(97) {
            for x in [f32::from_bits(bits), -f32::from_bits(bits)] {
                if !(MIN_X..=MAX_X).contains(&x) {
                    continue;
                }
                let e = ulps(exp(x), (x as f64).exp());
                if e > worst.0 {
                    worst = (e, x);
                }
            }
        }
        assert!(worst.0 <= 2.0, "{} ulp at x = {:e}", worst.0, worst.1);
    }

    #[test]
    fn it_saturates_and_propagates_as_libm() {
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(89.0), f32::INFINITY);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp(-88.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert!(exp(f32::NAN).is_nan());
        assert!(ulps(exp(MAX_X), (MAX_X as f64).exp()) <= 2.0);
        assert!(ulps(exp(MIN_X), (MIN_X as f64).exp()) <= 2.0);
    }
}
