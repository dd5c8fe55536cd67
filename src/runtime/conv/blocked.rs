//! The convolutions' three products with the columns computed a cache-sized block of rows at a
//! time, never materialised whole.
//!
//! The GEMM path of the parent module writes the whole `cols` matrix (or `dcols`) to memory and
//! reads it back: for the CEBM's second layer on MNIST that is 10 M values per pass, 61 passes per
//! training iteration, while its weight matrix is only 512 × 32. Where the weights are small, each
//! rayon task here instead takes a fixed group of images and, block by block, builds a few hundred
//! rows of columns in a buffer that stays in the core's L2 cache and multiplies them at once
//! (single-threaded GEMMs, [`super::super::gemm`]). Large weight matrices (the DCGAN's middle
//! layers) keep the parent's path: there each block would stream the weights from memory again.
//!
//! The three kernels are the parent's, in the small-grid / large-image terms of [`Geom`]:
//! * [`gather_gemm`]: `small = im2col(big) · w` (conv forward, transposed-conv input gradient);
//! * [`gemm_scatter`]: `big = col2im(small · w)` (conv input gradient, transposed-conv forward);
//! * [`weight_grad`]: `smallᵀ · im2col(big)` (both kernel gradients).
//!
//! `small` is channels-first `[n, c_small, hs·ws]`, the layout of the tensors themselves.

use super::{Geom, add_bias_in_place, col2im_row, im2col_row};
use crate::runtime::gemm::{View, ViewMut, matmul};
use crate::runtime::host::{HostFloat, par_chunks_filled};
use rayon::prelude::*;

/// Values of one block of columns: 256 KiB in f32, so that the block and a small weight matrix
/// share the L2 cache.
pub(super) const BLOCK_ELEMS: usize = 1 << 16;
/// At most this many tasks per call. The images are split by this count alone (not by the thread
/// count), so the weight gradient's partial sums, and with them its bits, are the same on every
/// machine.
const TASKS: usize = 16;
/// The blocked kernels take weight matrices of at most this many values (256 KiB in f32, as a
/// block of columns). With 512 KiB (the lebm generator's 128 → 64 layer) the iteration was 9 %
/// slower than with the whole-chunk path.
pub(super) const MAX_WEIGHT_ELEMS: usize = 1 << 16;

/// Images per task.
pub(super) fn images_per_task(g: &Geom) -> usize {
    g.n.div_ceil(TASKS).max(1)
}

/// Rows of columns per block of `block_elems` values.
fn block_rows(g: &Geom, block_elems: usize) -> usize {
    (block_elems / g.row_len().max(1)).max(1)
}

/// Rows `r0..r0 + rows` of the columns of `big`'s images into `cols` (row-major).
fn gather_cols<T: HostFloat>(g: &Geom, big: &[T], r0: usize, cols: &mut [T]) {
    let (per_image, img) = (g.hs * g.ws, g.c * g.hb * g.wb);
    for (q, dst) in cols.chunks_exact_mut(g.row_len()).enumerate() {
        let (nn, ij) = ((r0 + q) / per_image, (r0 + q) % per_image);
        im2col_row(g, &big[nn * img..(nn + 1) * img], ij / g.ws, ij % g.ws, dst);
    }
}

/// The rows `r0..r0 + n` cut at image boundaries: `(q, image, ij, len)`, where block row `q` is
/// row `ij` of `image` and the next `len` rows stay in that image.
fn image_runs(
    per_image: usize,
    r0: usize,
    n: usize,
) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    let mut q = 0;
    std::iter::from_fn(move || {
        (q < n && per_image > 0).then(|| {
            let (image, ij) = ((r0 + q) / per_image, (r0 + q) % per_image);
            let run = (q, image, ij, (per_image - ij).min(n - q));
            q += run.3;
            run
        })
    })
}

/// Images of at least this many rows are multiplied in place, a run of rows of one image at a
/// time (the GEMMs read and write the channels-first tensors through strides); smaller ones are
/// gathered into row-major blocks first, so that one GEMM covers several images.
const MIN_RUN: usize = 128;

/// A task's buffers for blocks of `block` rows: the gathered rows of the small grid (`c` values
/// each; none where images of `per_image` rows are multiplied in place) and the columns (`row`
/// values each).
fn scratch<T: HostFloat>(per_image: usize, block: usize, c: usize, row: usize) -> (Vec<T>, Vec<T>) {
    let gathered = if per_image < MIN_RUN { block } else { 0 };
    (vec![T::zero(); gathered * c], vec![T::zero(); block * row])
}

/// Rows `ij..ij + len` of `image` of a channels-first `small` (`c` channels) as a `[len, c]`
/// view.
fn run_view<'a, T>(
    g: &Geom,
    small: &'a [T],
    c: usize,
    (image, ij, len): (usize, usize, usize),
) -> View<'a, T> {
    let per_image = g.hs * g.ws;
    View {
        data: &small[image * c * per_image + ij..(image + 1) * c * per_image],
        rows: len,
        cols: c,
        rs: 1,
        cs: per_image,
    }
}

/// Rows `r0..` of a channels-first `small` (`c` channels) as a row-major `[rows, c]` block. Each
/// channel's run of rows is read contiguously; the block it is written into stays in L1.
fn gather_rows<T: HostFloat>(g: &Geom, small: &[T], c: usize, r0: usize, rows: &mut [T]) {
    let per_image = g.hs * g.ws;
    for (q, image, ij, len) in image_runs(per_image, r0, rows.len() / c.max(1)) {
        let img = &small[image * c * per_image..(image + 1) * c * per_image];
        for ch in 0..c {
            let src = &img[ch * per_image + ij..ch * per_image + ij + len];
            for (dst, v) in rows[q * c + ch..].iter_mut().step_by(c).zip(src) {
                *dst = *v;
            }
        }
    }
}

/// The transpose of [`gather_rows`]: a row-major `[rows, c]` block into rows `r0..` of `small`.
fn scatter_rows<T: HostFloat>(g: &Geom, rows: &[T], c: usize, r0: usize, small: &mut [T]) {
    let per_image = g.hs * g.ws;
    for (q, image, ij, len) in image_runs(per_image, r0, rows.len() / c.max(1)) {
        let img = &mut small[image * c * per_image..(image + 1) * c * per_image];
        for ch in 0..c {
            let dst = &mut img[ch * per_image + ij..ch * per_image + ij + len];
            for (d, v) in dst.iter_mut().zip(rows[q * c + ch..].iter().step_by(c)) {
                *d = *v;
            }
        }
    }
}

/// `small[n, o, (i, j)] = Σ im2col(big)[(n, i, j), q] · w[q, o] (+ bias[o])` for
/// `w: [C·k², c_small]`.
pub(super) fn gather_gemm<T: HostFloat>(
    g: &Geom,
    block_elems: usize,
    big: &[T],
    w: View<T>,
    bias: Option<&[T]>,
) -> Vec<T> {
    let (row, o) = (g.row_len(), w.cols);
    let (per_image, img) = (g.hs * g.ws, g.c * g.hb * g.wb);
    let per = images_per_task(g);
    let block = block_rows(g, block_elems);
    par_chunks_filled(g.n * o * per_image, per * o * per_image, |t, small| {
        let big = &big[t * per * img..];
        let rows = small.len() / o.max(1);
        let (mut prod, mut cols) = scratch(per_image, block.min(rows), o, row);
        for r0 in (0..rows).step_by(block) {
            let nr = block.min(rows - r0);
            let cols = &mut cols[..nr * row];
            gather_cols(g, big, r0, cols);
            if per_image < MIN_RUN {
                let prod = &mut prod[..nr * o];
                let cols = View::row_major(&*cols, nr, row);
                matmul(ViewMut::row_major(prod, nr, o), cols, w, false);
                scatter_rows(g, prod, o, r0, small);
                continue;
            }
            // Each run as small[image]ᵀ[:, ij..] = wᵀ · colsᵀ: [o, len] with row stride hs·ws.
            for (q, image, ij, len) in image_runs(per_image, r0, nr) {
                let at = image * o * per_image + ij;
                let dst = ViewMut {
                    data: &mut small[at..(image + 1) * o * per_image],
                    rows: o,
                    cols: len,
                    rs: per_image,
                };
                let cols = View::row_major(&cols[q * row..(q + len) * row], len, row);
                matmul(dst, w.t(), cols.t(), false);
            }
        }
        if let Some(bias) = bias {
            add_bias_in_place(small, bias, per_image);
        }
    })
}

/// `big = col2im(rows(small) · w) (+ bias per channel of big)` for `w: [c_small, C·k²]`.
pub(super) fn gemm_scatter<T: HostFloat>(
    g: &Geom,
    block_elems: usize,
    small: &[T],
    w: View<T>,
    bias: Option<&[T]>,
) -> Vec<T> {
    let (row, c_small) = (g.row_len(), w.rows);
    let (per_image, img) = (g.hs * g.ws, g.c * g.hb * g.wb);
    let per = images_per_task(g);
    let block = block_rows(g, block_elems);
    par_chunks_filled(g.n * img, per * img, |t, big| {
        let small = &small[t * per * c_small * per_image..];
        let rows = big.len() / img.max(1) * per_image;
        let (mut lhs, mut cols) = scratch(per_image, block.min(rows), c_small, row);
        for r0 in (0..rows).step_by(block) {
            let nr = block.min(rows - r0);
            let cols = &mut cols[..nr * row];
            if per_image < MIN_RUN {
                let lhs = &mut lhs[..nr * c_small];
                gather_rows(g, small, c_small, r0, lhs);
                let lhs = View::row_major(&*lhs, nr, c_small);
                matmul(ViewMut::row_major(&mut *cols, nr, row), lhs, w, false);
            } else {
                for (q, image, ij, len) in image_runs(per_image, r0, nr) {
                    let dst = ViewMut::row_major(&mut cols[q * row..(q + len) * row], len, row);
                    matmul(dst, run_view(g, small, c_small, (image, ij, len)), w, false);
                }
            }
            for (q, src) in cols.chunks_exact(row).enumerate() {
                let (nn, ij) = ((r0 + q) / per_image, (r0 + q) % per_image);
                let out = &mut big[nn * img..(nn + 1) * img];
                col2im_row(g, src, ij / g.ws, ij % g.ws, out);
            }
        }
        if let Some(bias) = bias {
            add_bias_in_place(big, bias, g.hb * g.wb);
        }
    })
}

/// `Σ rows(small)ᵀ · im2col(big)`: `[c_small, C·k²]`, row-major.
pub(super) fn weight_grad<T: HostFloat>(
    g: &Geom,
    block_elems: usize,
    big: &[T],
    small: &[T],
    c_small: usize,
) -> Vec<T> {
    let row = g.row_len();
    let (per_image, img) = (g.hs * g.ws, g.c * g.hb * g.wb);
    let per = images_per_task(g);
    let block = block_rows(g, block_elems);
    let partials: Vec<Vec<T>> = big
        .par_chunks(per * img)
        .zip(small.par_chunks(per * c_small * per_image))
        .map(|(big, small)| {
            let mut acc = vec![T::zero(); c_small * row];
            let rows = small.len() / c_small.max(1);
            let (mut lhs, mut cols) = scratch(per_image, block.min(rows), c_small, row);
            for r0 in (0..rows).step_by(block) {
                let nr = block.min(rows - r0);
                let cols = &mut cols[..nr * row];
                gather_cols(g, big, r0, cols);
                if per_image < MIN_RUN {
                    let lhs = &mut lhs[..nr * c_small];
                    gather_rows(g, small, c_small, r0, lhs);
                    let lhs = View::row_major(&*lhs, nr, c_small).t();
                    let dst = ViewMut::row_major(&mut acc, c_small, row);
                    matmul(dst, lhs, View::row_major(cols, nr, row), true);
                    continue;
                }
                for (q, image, ij, len) in image_runs(per_image, r0, nr) {
                    let lhs = run_view(g, small, c_small, (image, ij, len)).t();
                    let cols = View::row_major(&cols[q * row..(q + len) * row], len, row);
                    matmul(ViewMut::row_major(&mut acc, c_small, row), lhs, cols, true);
                }
            }
            acc
        })
        .collect();
    // Summed in task order: the same bits for any thread count.
    let mut parts = partials.into_iter();
    let mut total = parts
        .next()
        .unwrap_or_else(|| vec![T::zero(); c_small * row]);
    for part in parts {
        total.iter_mut().zip(&part).for_each(|(a, b)| *a += *b);
    }
    total
}
