//! `big = col2im(small · w)` (a convolution's input gradient, a transposed convolution's forward
//! pass) as [`shifted`] sums over the small grid, one per phase of the large image: no columns,
//! no scatter-adds.
//!
//! Large-image pixel `(r, q)` with `r + p = s·U + a`, `q + p = s·V + b` (phase `(a, b)`) receives
//! tap `ki = a + s·di` from small row `i = U − di` (likewise `kj = b + s·dj`, `j = V − dj`), for
//! `di, dj < d = ⌈k/s⌉`. So phase `(a, b)` is a sum over `(di, dj, o)` of the small grid shifted
//! by `(di, dj)`, weighted by `w[o, c, a + s·di, b + s·dj]`. The small grid is stored zero-padded:
//! per channel, each image has `d − 1` zero rows above its `hs` rows, and each row `d − 1` zero
//! columns after its `ws` values, so row `U`, column `V` of a phase (`U < hs + d − 1`,
//! `V < ws + d − 1`) reads `(U − di, V − dj)` at a fixed offset, zero where that is outside.
//! Each phase's sums are then written to their pixels, each pixel once.
//!
//! Against [`super::blocked::gemm_scatter`] this computes `(hs + d − 1)(ws + d − 1)·s²` positions
//! per image for `hb·wb` pixels (the CEBM's 28 × 28 layer: 900 for 784) and needs the kernel
//! ([`applies`]).

use super::add_bias_in_place;
use super::{Geom, copy_strided_to};
use crate::runtime::gemm::View;
use crate::runtime::host::{HostFloat, par_chunks_filled};
use crate::runtime::shifted;

/// At least this fraction of the computed products must be the columns' (`col2im` adds `k²`
/// products per small position and large channel); the rest are the padding positions, the zero
/// rows of the kernel's row tiles, and taps that read the zero border. On MNIST, the CEBM's
/// 28 × 28 layer keeps 86 % and took 12 % less time than [`super::blocked::gemm_scatter`]; its
/// 14 × 14 and 7 × 7 layers keep 75 % and 71 % and took 5 % and 36 % more. From a 1 × 1 grid
/// (lebm_digits' first generator layer) only one of the `k²` taps reads a value: 6 %.
const MIN_KEPT: f64 = 0.8;
/// With fewer than 8 large-image channels the kernel's tile is one row: no load is reused, and
/// the sums run at 25–35 GFLOP/s from the L2 cache. That pays only against columns narrower than
/// this, which the crate multiplies far below its rate: the CEBM's first layer (9 columns) took
/// 0.83 ms per chain call instead of 1.5, the lebm_mnist generator's last layer (16) 0.86
/// instead of 0.47.
const MAX_ONE_ROW_COLUMNS: usize = 15;

/// The padded small grid and the phases' positions.
struct Padded {
    /// Taps per axis, `⌈k/s⌉`.
    d: usize,
    /// Rows per image and values per row.
    hi: usize,
    wp: usize,
    /// Values per channel: `d − 1` leading zeros, the images, and zeros after them for the
    /// runs of the last block of positions.
    channel: usize,
    /// Positions computed per phase (a multiple of the kernel's tile for `C` rows).
    positions: usize,
}

impl Padded {
    fn new(g: &Geom, images: usize) -> Self {
        let d = g.k.div_ceil(g.s);
        let (hi, wp) = (g.hs + d - 1, g.ws + d - 1);
        let positions = (images * hi * wp).next_multiple_of(shifted::tile(g.c).positions);
        Padded {
            d,
            hi,
            wp,
            channel: (d - 1) + positions + (d - 1) * (wp + 1),
            positions,
        }
    }

    /// Where tap `(di, dj)` of small channel `o` starts: position `(U, V)` reads
    /// `(U − di, V − dj)`.
    fn tap_start(&self, di: usize, dj: usize, o: usize) -> usize {
        o * self.channel + (self.d - 1) + (self.d - 1 - di) * self.wp - dj
    }

    /// `small` (`[images, o, hs, ws]`) zero-padded, channel by channel.
    fn fill<T: HostFloat>(&self, g: &Geom, small: &[T], o: usize, images: usize) -> Vec<T> {
        let mut out = vec![T::zero(); o * self.channel];
        for n in 0..images {
            for oc in 0..o {
                let plane = &small[(n * o + oc) * g.hs * g.ws..][..g.hs * g.ws];
                let base = oc * self.channel + (self.d - 1) + n * self.hi * self.wp;
                for (i, row) in plane.chunks_exact(g.ws).enumerate() {
                    let at = base + (i + self.d - 1) * self.wp;
                    out[at..at + g.ws].copy_from_slice(row);
                }
            }
        }
        out
    }
}

/// Phase `(a, b)`'s taps `(di, dj)`: those with `a + s·di < k` and `b + s·dj < k`.
fn phase_taps(g: &Geom, d: usize, a: usize, b: usize) -> impl Iterator<Item = (usize, usize)> {
    let (k, s) = (g.k, g.s);
    (0..d).filter(move |di| a + s * di < k).flat_map(move |di| {
        (0..d)
            .filter(move |dj| b + s * dj < k)
            .map(move |dj| (di, dj))
    })
}

/// The large image's channels padded to the kernel's tile: the rows of each phase's sums.
fn padded_rows(g: &Geom) -> usize {
    g.c.next_multiple_of(shifted::tile(g.c).rows)
}

/// Images per task: their padded small grids (`o` channels) and one phase's sums per image.
fn images_per_task(g: &Geom, o: usize) -> usize {
    let pl = Padded::new(g, 1);
    super::kernel_images_per_task(g.n, (o + padded_rows(g)) * pl.hi * pl.wp)
}

/// Whether [`gemm_scatter`] computes `g`'s product (with `o` small channels) for `T`.
pub(super) fn applies<T: HostFloat>(g: &Geom, o: usize) -> bool {
    if T::shifted_kernel().is_none() || g.s == 0 || g.k == 0 || g.hs == 0 || g.ws == 0 {
        return false;
    }
    if shifted::tile(g.c).rows == 1 && g.c * g.k * g.k > MAX_ONE_ROW_COLUMNS {
        return false;
    }
    let images = images_per_task(g, o).min(g.n.max(1));
    let pl = Padded::new(g, images);
    let d = g.k.div_ceil(g.s);
    let taps: usize = (0..g.s * g.s)
        .map(|ab| phase_taps(g, d, ab / g.s, ab % g.s).count())
        .sum();
    // Per small channel: products computed, and those of the columns.
    let computed = (pl.positions * padded_rows(g) * taps) as f64;
    let columns = (images * g.hs * g.ws * g.k * g.k * g.c) as f64;
    columns >= MIN_KEPT * computed
}

/// `big = col2im(rows(small) · w) (+ bias per channel of big)` for `w: [o, C·k²]`, as
/// [`super::blocked::gemm_scatter`] computes it; only where [`applies`].
pub(super) fn gemm_scatter<T: HostFloat>(
    g: &Geom,
    small: &[T],
    w: View<T>,
    bias: Option<&[T]>,
) -> Vec<T> {
    let sum = T::shifted_kernel().expect("scatter::applies checks for the kernel");
    let (o, kk) = (w.rows, g.k * g.k);
    let rows = padded_rows(g);
    let d = g.k.div_ceil(g.s);
    // Per phase, the weights `[(di, dj, o), rows]`: column `c` of tap (a + s·di, b + s·dj).
    let weights: Vec<Vec<T>> = (0..g.s * g.s)
        .map(|ab| {
            let (a, b) = (ab / g.s, ab % g.s);
            let mut packed = Vec::new();
            for (di, dj) in phase_taps(g, d, a, b) {
                let t = (a + g.s * di) * g.k + b + g.s * dj;
                for oc in 0..o {
                    let row = &w.data[oc * w.rs + t * w.cs..];
                    packed.extend((0..g.c).map(|c| row[c * kk * w.cs]));
                    packed.resize(packed.len() + rows - g.c, T::zero());
                }
            }
            packed
        })
        .collect();
    let (per_small, img) = (o * g.hs * g.ws, g.c * g.hb * g.wb);
    let per = images_per_task(g, o);
    par_chunks_filled(g.n * img, per * img, |task, big| {
        let images = big.len() / img.max(1);
        let small = &small[task * per * per_small..][..images * per_small];
        let pl = &Padded::new(g, images);
        let padded = pl.fill(g, small, o, images);
        let mut acc = vec![T::zero(); rows * pl.positions];
        for (ab, w) in weights.iter().enumerate() {
            let (a, b) = (ab / g.s, ab % g.s);
            let offs: Vec<usize> = phase_taps(g, d, a, b)
                .flat_map(|(di, dj)| (0..o).map(move |oc| pl.tap_start(di, dj, oc)))
                .collect();
            if offs.is_empty() {
                continue; // no tap reaches this phase: its pixels stay zero
            }
            sum(&mut acc, rows, pl.positions, w, &padded, &offs);
            write_phase(g, pl, (a, b), &acc, images, big);
        }
        if let Some(bias) = bias {
            add_bias_in_place(big, bias, g.hb * g.wb);
        }
    })
}

/// Writes phase `(a, b)`'s sums (`acc: [rows ≥ C, positions]`) to its pixels of `big`.
fn write_phase<T: HostFloat>(
    g: &Geom,
    pl: &Padded,
    (a, b): (usize, usize),
    acc: &[T],
    images: usize,
    big: &mut [T],
) {
    // The phase's rows `U` and columns `V` whose pixels `s·U + a − p` lie inside the image
    // (and inside the computed rows and columns; pixels past those receive no tap).
    let range = |a: usize, len: usize, lim: usize| {
        let lo = g.p.saturating_sub(a).div_ceil(g.s);
        let hi = (len + g.p).saturating_sub(a).div_ceil(g.s).min(lim);
        (lo, hi.max(lo))
    };
    let (u0, u1) = range(a, g.hb, pl.hi);
    let (v0, v1) = range(b, g.wb, pl.wp);
    if v0 == v1 {
        return;
    }
    let (plane, q0) = (g.hb * g.wb, g.s * v0 + b - g.p);
    for n in 0..images {
        for c in 0..g.c {
            let dst = &mut big[(n * g.c + c) * plane..][..plane];
            for u in u0..u1 {
                let src = &acc[c * pl.positions + (n * pl.hi + u) * pl.wp..];
                let row = (g.s * u + a - g.p) * g.wb;
                copy_strided_to(&mut dst[row + q0..row + g.wb], g.s, &src[v0..v1]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shapes of the decisions measured on the CEBM and the lebm generators.
    #[test]
    fn applies_where_the_columns_products_dominate() {
        let geom = |c, hb, hs, k, s, p| Geom {
            n: 50,
            c,
            hb,
            wb: hb,
            hs,
            ws: hs,
            k,
            s,
            p,
        };
        let cebm_second = geom(32, 28, 14, 4, 2, 1);
        // Never without the kernel (f64 has none).
        assert!(!applies::<f64>(&cebm_second, 32));
        if f32::shifted_kernel().is_none() {
            eprintln!("no AVX-512 here: the per-phase sums are never chosen");
            return;
        }
        assert!(applies::<f32>(&cebm_second, 32), "86 % of the products");
        assert!(
            applies::<f32>(&geom(1, 28, 28, 3, 1, 1), 32),
            "one row, 9 columns"
        );
        assert!(!applies::<f32>(&geom(32, 14, 7, 4, 2, 1), 64), "75 %");
        assert!(
            !applies::<f32>(&geom(1, 28, 14, 4, 2, 1), 64),
            "one row, 16 columns"
        );
        assert!(
            !applies::<f32>(&geom(64, 4, 1, 4, 1, 0), 16),
            "1 × 1 grid: 6 %"
        );
    }
}
