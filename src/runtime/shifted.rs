//! Sums of products over shifted runs of one slice, the implicit convolutions' inner product:
//!
//! `out[o, p] = Σ_t w[t, o] · src[offs[t] + p]` for rows `o < rows` and positions `p < positions`.
//!
//! A strided convolution written over phase planes ([`super::conv`]'s implicit paths) is such a
//! sum: `t` runs over every tap and channel, `offs[t]` is where that tap's plane starts. The
//! `gemm` crate computes it as one GEMM of depth `channels` per tap, each reading and writing the
//! whole output again; here a register tile of outputs ([`Tile`]) takes the whole depth
//! (every tap and channel) before it is stored once. On the dev machine (AVX-512, 2 × 256-bit FMA
//! pipes) that runs at ~116 GFLOP/s per core where the crate's per-tap GEMMs reached ~76.
//!
//! Only an AVX-512 kernel exists: with AVX2's 16 registers the tile shrinks to 4 × 24 and the
//! broadcasts of `w` dominate (~42 GFLOP/s, slower than the crate). Callers ask [`available`]
//! (through [`super::host::HostFloat::shifted_kernel`]) and use the crate's GEMMs otherwise
//! (other CPUs, f64).

/// The register tile [`sum`] computes at a time: `rows` output rows of `positions` positions.
/// Callers pad the rows (zero columns of `w`) and the positions (every run
/// `offs[t]..offs[t] + positions` inside `src`) to multiples of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tile {
    pub rows: usize,
    pub positions: usize,
}

/// Eight rows of three 16-lane vectors: each run vector loaded serves eight FMAs.
const WIDE: Tile = Tile {
    rows: 8,
    positions: 48,
};
/// One row of eight vectors, for fewer than eight rows (a one-channel image's input gradient):
/// padding those to eight would compute up to eight times the work.
const TALL: Tile = Tile {
    rows: 1,
    positions: 128,
};

/// The tile of a sum with `rows` output rows (before padding; the padded count has the same).
pub fn tile(rows: usize) -> Tile {
    if rows < WIDE.rows { TALL } else { WIDE }
}

/// Whether [`sum`] has a kernel on this CPU.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// [`sum`]'s signature, as [`super::host::HostFloat::shifted_kernel`] hands it out.
pub type Kernel<T> = fn(&mut [T], usize, usize, &[T], &[T], &[usize]);

/// `out[o·positions + p] = Σ_t w[t·rows + o] · src[offs[t] + p]` (overwriting `out`).
///
/// # Panics
/// Where no kernel exists ([`available`]: callers ask first), or when `rows` or `positions` is
/// not a multiple of [`tile`]`(rows)`, or a slice is too short for the shapes (callers' bugs).
pub fn sum(out: &mut [f32], rows: usize, positions: usize, w: &[f32], src: &[f32], offs: &[usize]) {
    let t = tile(rows);
    assert!(
        rows.is_multiple_of(t.rows) && positions.is_multiple_of(t.positions),
        "shifted sum: {rows} rows, {positions} positions"
    );
    assert!(
        out.len() >= rows * positions && w.len() == offs.len() * rows,
        "shifted sum: out {} or w {} too short",
        out.len(),
        w.len()
    );
    assert!(
        offs.iter().all(|&o| o + positions <= src.len()),
        "shifted sum: a run reaches past the source"
    );
    assert!(available(), "shifted sum: no kernel on this CPU");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F was detected; the asserts above keep every load and store in bounds.
    unsafe {
        if t == WIDE {
            avx512::sum::<{ WIDE.rows }, { WIDE.positions / 16 }>(
                out, rows, positions, w, src, offs,
            )
        } else {
            avx512::sum::<{ TALL.rows }, { TALL.positions / 16 }>(
                out, rows, positions, w, src, offs,
            )
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// [`super::sum`] with tiles of `R` rows × `V` vectors on checked shapes.
    ///
    /// # Safety
    /// AVX-512F must be available and the shapes as [`super::sum`] asserts for this tile.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn sum<const R: usize, const V: usize>(
        out: &mut [f32],
        rows: usize,
        positions: usize,
        w: &[f32],
        src: &[f32],
        offs: &[usize],
    ) {
        let (src, out) = (src.as_ptr(), out.as_mut_ptr());
        // Position blocks outside: a block's runs (depth × block values) stay in the L2 cache
        // while every row tile reads them.
        for p0 in (0..positions).step_by(16 * V) {
            for o0 in (0..rows).step_by(R) {
                let mut acc = [[_mm512_setzero_ps(); V]; R];
                for (t, &off) in offs.iter().enumerate() {
                    // SAFETY (all pointer arithmetic): `off + p0 + 16·V ≤ src.len()` and
                    // `t·rows + o0 + R ≤ w.len()`, as asserted by the caller.
                    let run = unsafe { src.add(off + p0) };
                    let mut b = [_mm512_setzero_ps(); V];
                    for (j, b) in b.iter_mut().enumerate() {
                        *b = unsafe { _mm512_loadu_ps(run.add(16 * j)) };
                    }
                    let wt = &w[t * rows + o0..t * rows + o0 + R];
                    for (acc, &wv) in acc.iter_mut().zip(wt) {
                        let wv = _mm512_set1_ps(wv);
                        for (a, b) in acc.iter_mut().zip(&b) {
                            *a = _mm512_fmadd_ps(wv, *b, *a);
                        }
                    }
                }
                for (i, acc) in acc.iter().enumerate() {
                    for (j, a) in acc.iter().enumerate() {
                        // SAFETY: `(o0 + i)·positions + p0 + 16·j + 16 ≤ rows·positions`.
                        unsafe {
                            _mm512_storeu_ps(out.add((o0 + i) * positions + p0 + 16 * j), *a)
                        };
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7919 + seed * 104_729) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    /// The kernel against the plain sum, on offsets that overlap and are not aligned, with both
    /// tiles.
    #[test]
    fn matches_the_plain_sum() {
        if !available() {
            eprintln!("no AVX-512 here: the shifted kernel is not exercised");
            return;
        }
        for rows in [16, 3, 1] {
            let t = tile(rows);
            let positions = 2 * t.positions;
            let offs = [0, 1, 17, 5, 300, 63, 64, 2];
            let src = values(300 + positions, 1);
            let w = values(offs.len() * rows, 2);
            let mut out = vec![f32::NAN; rows * positions];
            sum(&mut out, rows, positions, &w, &src, &offs);
            for o in 0..rows {
                for p in 0..positions {
                    let want: f64 = (offs.iter().enumerate())
                        .map(|(t, &off)| w[t * rows + o] as f64 * src[off + p] as f64)
                        .sum();
                    let got = out[o * positions + p] as f64;
                    assert!(
                        (got - want).abs() < 1e-5,
                        "{rows} rows, ({o}, {p}): {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "reaches past")]
    fn a_run_past_the_source_is_refused() {
        let mut out = vec![0.0; 8 * 48];
        sum(&mut out, 8, 48, &[0.0; 8], &[0.0; 48], &[1]);
    }
}
