//! Fast CPU 2-D convolutions: GEMMs plus an `im2col` / `col2im` in plain Rust.
//!
//! candle 0.11's CPU `conv_transpose2d` is a direct loop (~30 GFLOP/s on the 2-core dev machine)
//! while its GEMM reaches ~100 GFLOP/s, and candle's backward of `conv2d` w.r.t. its input goes
//! through that slow `conv_transpose2d`. Here both convolutions share one layout of "columns"
//! `cols: [N·Hs·Ws, C·k·k]`, whose row `(n, i, j)` holds, for every channel `c` and tap `(ki, kj)`,
//! the pixel `(i·s − p + ki, j·s − p + kj)` of a larger image `[N, C, Hb, Wb]` (0 outside it):
//!
//! * `conv_transpose2d(x, w)` = `col2im(xᵀ · w)`: `x` as `[N·H·W, C_in]` times `w` as
//!   `[C_in, C_out·k·k]`, then every entry is scatter-added into the output (the small grid is
//!   the input, the large image the output). Backward: `dcols = im2col(g)`,
//!   `dx = dcols · wᵀ`, `dw = xᵀ · dcols`.
//! * `conv2d(x, w)` = `im2col(x) · wᵀ`, with `w` as `[C_out, C_in·k·k]` (the small grid is the
//!   output). Backward: `dx = col2im(g · w)`, `dw = gᵀ · im2col(x)`.
//!
//! The GEMMs are candle's own `gemm` crate, called on slices ([`super::gemm`]); `im2col`, `col2im`
//! and the layout changes are rayon loops over contiguous slices. Where the weight matrix is
//! small, [`blocked`] builds and multiplies the columns a cache-sized block at a time instead,
//! and [`implicit`] computes the forward products of layers with many input channels from the
//! input itself; both add a bias (off the autograd tape) inside their tasks, while the output is
//! in cache.
//! Otherwise everything runs over chunks of whole images whose columns are a few MiB: they stay
//! in the last-level cache between the GEMM and the scatter, and (being below glibc's mmap
//! threshold) their buffers are reused instead of being faulted in afresh on every call (for the
//! DCGAN layers the full `cols` is 26–52 MB).
//!
//! Autograd: each convolution is one candle node, a [`CustomOp2`] on `(x, w)` whose forward result
//! is computed before the node is made and whose backward returns `dx` and `dw` directly (only
//! those of tracked operands), so candle never stores or accumulates gradients of the columns.
//! No second-order gradients. Only CPU tensors in f32/f64 take this path; other devices (CUDA)
//! and dtypes keep candle's own convolutions.

mod blocked;
mod implicit;
mod scatter;

use super::gemm::{View, product};
use super::host::{
    HostFloat, PAR_GRAIN, Precomputed, is_host_float, par_chunks_filled, par_filled, tensor,
    with_slices,
};
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

/// The geometry shared by `im2col` and `col2im`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Geom {
    /// Batch.
    n: usize,
    /// Channels of the large image.
    c: usize,
    /// Large image (rows × cols).
    hb: usize,
    wb: usize,
    /// Small grid: the rows of the columns matrix, per batch element.
    hs: usize,
    ws: usize,
    /// Kernel size, stride, padding.
    k: usize,
    s: usize,
    p: usize,
}

impl Geom {
    fn rows(&self) -> usize {
        self.n * self.hs * self.ws
    }
    fn row_len(&self) -> usize {
        self.c * self.k * self.k
    }
    /// The taps `t` in `0..k` whose large-image index `base + t − p` lies in `0..len`.
    fn taps(&self, base: usize, len: usize) -> (usize, usize) {
        let lo = self.p.saturating_sub(base).min(self.k);
        let hi = (len + self.p).saturating_sub(base).min(self.k).max(lo);
        (lo, hi)
    }
}

/// Work per rayon task, in element operations; below this the split costs more than it saves.
const GRAIN: usize = 1 << 15;

/// The tasks of the [`super::shifted`] kernel's paths ([`implicit`], [`scatter`]) take as many
/// images as fit their working values (planes or padded grid, and sums) into this many: 512 KiB
/// in f32, half the dev machine's L2 cache per core. Few images leave most of the last block of
/// positions unused (on the CEBM's 3 × 3 layer, 4 images fill 36 of 96).
const KERNEL_TASK_VALUES: usize = 1 << 17;

/// Images per task of a kernel path over `n` images of `per_image` working values each: within
/// [`KERNEL_TASK_VALUES`], and at least one task per thread. The kernel's sums do not depend on
/// how the images are grouped.
fn kernel_images_per_task(n: usize, per_image: usize) -> usize {
    let by_cache = (KERNEL_TASK_VALUES / per_image.max(1)).max(1);
    let tasks = n
        .div_ceil(by_cache)
        .max(rayon::current_num_threads())
        .max(1);
    n.div_ceil(tasks).max(1)
}

/// `dst[i] = src[i·stride]` for every `i` of `dst` (phase planes are every `stride`-th pixel).
fn copy_strided_from<T: Copy>(dst: &mut [T], src: &[T], stride: usize) {
    match stride {
        1 => dst.copy_from_slice(&src[..dst.len()]),
        // Whole pairs where they exist: LLVM turns this loop into shuffles, not `step_by`'s.
        2 => {
            let (pairs, last) = dst.split_at_mut(dst.len().min(src.len() / 2));
            for (d, p) in pairs.iter_mut().zip(src.chunks_exact(2)) {
                *d = p[0];
            }
            debug_assert!(last.len() <= 1, "copy_strided_from: src too short");
            if let Some(d) = last.first_mut() {
                *d = src[2 * pairs.len()];
            }
        }
        _ => {
            for (i, d) in dst.iter_mut().enumerate() {
                *d = src[i * stride];
            }
        }
    }
}

/// `dst[i·stride] = src[i]` for every `i` of `src`.
fn copy_strided_to<T: Copy>(dst: &mut [T], stride: usize, src: &[T]) {
    match stride {
        1 => dst[..src.len()].copy_from_slice(src),
        2 => {
            for (p, v) in dst.chunks_mut(2).zip(src) {
                p[0] = *v;
            }
        }
        _ => {
            for (i, v) in src.iter().enumerate() {
                dst[i * stride] = *v;
            }
        }
    }
}

/// `cols[(n, i, j), (c, ki, kj)] = big[n, c, i·s − p + ki, j·s − p + kj]` (0 outside).
fn im2col<T: WithDType>(g: &Geom, big: &[T]) -> Vec<T> {
    let row = g.row_len();
    let img = g.c * g.hb * g.wb;
    if row == 0 {
        return Vec::new();
    }
    let per = (GRAIN / row).max(1);
    par_chunks_filled(g.rows() * row, row * per, |t, chunk| {
        for (q, dst) in chunk.chunks_mut(row).enumerate() {
            let (nn, ij) = ((t * per + q) / (g.hs * g.ws), (t * per + q) % (g.hs * g.ws));
            im2col_row(g, &big[nn * img..(nn + 1) * img], ij / g.ws, ij % g.ws, dst);
        }
    })
}

/// Row `(i, j)` of [`im2col`] for one image `src` (all its channels) into `dst` (`C·k²` values).
fn im2col_row<T: WithDType>(g: &Geom, src: &[T], i: usize, j: usize, dst: &mut [T]) {
    let zero = T::from_f64(0.0);
    let (k, kk, plane) = (g.k, g.k * g.k, g.hb * g.wb);
    let (ki0, ki1) = g.taps(i * g.s, g.hb);
    let (kj0, kj1) = g.taps(j * g.s, g.wb);
    if ki0 > 0 || ki1 < k || kj0 > 0 || kj1 < k {
        dst.fill(zero);
    }
    if ki0 == ki1 || kj0 == kj1 {
        return;
    }
    let cols0 = j * g.s + kj0 - g.p;
    // Where no column tap is cut off, the common kernel widths copy fixed-size rows.
    let rows = (cols0, ki0, ki1, i * g.s);
    match (k, kj0 == 0 && kj1 == k) {
        (3, true) => copy_tap_rows::<T, 3>(g, src, dst, rows),
        (4, true) => copy_tap_rows::<T, 4>(g, src, dst, rows),
        _ => {
            for ch in 0..g.c {
                for ki in ki0..ki1 {
                    let y = i * g.s + ki - g.p;
                    let at = ch * plane + y * g.wb + cols0;
                    let d = ch * kk + ki * k;
                    dst[d + kj0..d + kj1].copy_from_slice(&src[at..at + kj1 - kj0]);
                }
            }
        }
    }
}

/// One row of [`im2col`] whose column taps are all inside the image, for kernel width `K`:
/// `rows = (x0, ki0, ki1, y0)`, the image column of tap 0, the row taps inside the image and the
/// image row of tap 0 plus the padding. A `copy_from_slice` of a runtime length of 3–4 elements
/// is a `memmove` call per tap row (most of im2col's time for small kernels); fixed-size arrays
/// are copied inline.
fn copy_tap_rows<T: WithDType, const K: usize>(
    g: &Geom,
    src: &[T],
    dst: &mut [T],
    (x0, ki0, ki1, y0): (usize, usize, usize, usize),
) {
    let plane = g.hb * g.wb;
    for (ch, taps) in dst.chunks_exact_mut(K * K).enumerate() {
        let img = &src[ch * plane..(ch + 1) * plane];
        for ki in ki0..ki1 {
            let at = (y0 + ki - g.p) * g.wb + x0;
            let from: &[T; K] = img[at..at + K].try_into().expect("K taps");
            let to: &mut [T; K] = (&mut taps[ki * K..(ki + 1) * K])
                .try_into()
                .expect("K taps");
            *to = *from;
        }
    }
}

/// The adjoint of [`im2col`]: `big[n, c, y, x] = Σ cols[(n, i, j), (c, ki, kj)]` over the
/// `(i, j, ki, kj)` with `i·s − p + ki = y`, `j·s − p + kj = x`.
///
/// One task per image (or per block of its channels when the batch is too small to keep every
/// thread busy) streams through that image's rows of `cols` in order and scatter-adds into its
/// output, which stays in cache. (Walking `cols` one output channel at a time instead reads it
/// with a stride of `C·k·k` elements, which the prefetchers do not follow: it was about 3× slower
/// on the lebm 128→64 layer.)
fn col2im<T: WithDType>(g: &Geom, cols: &[T], big: &mut [T]) {
    let zero = T::from_f64(0.0);
    let (kk, row) = (g.k * g.k, g.row_len());
    let plane = g.hb * g.wb;
    if plane == 0 || g.c == 0 {
        return;
    }
    let threads = rayon::current_num_threads().max(1);
    let blocks = (4 * threads).div_ceil(g.n.max(1)).clamp(1, g.c);
    let per = g.c.div_ceil(blocks);
    let rows_per_image = g.hs * g.ws;
    big.par_chunks_mut(g.c * plane)
        .enumerate()
        .for_each(|(nn, img)| {
            img.par_chunks_mut(per * plane)
                .enumerate()
                .for_each(|(blk, out)| {
                    out.fill(zero);
                    let c0 = blk * per;
                    let nc = out.len() / plane;
                    for ij in 0..rows_per_image {
                        let r = nn * rows_per_image + ij;
                        let src = &cols[r * row + c0 * kk..r * row + (c0 + nc) * kk];
                        col2im_row(g, src, ij / g.ws, ij % g.ws, out);
                    }
                });
        });
}

/// Adds row `(i, j)` of the columns, `src` (the taps of some channels), into `out` (the same
/// channels of one image), as [`col2im`] does.
fn col2im_row<T: WithDType>(g: &Geom, src: &[T], i: usize, j: usize, out: &mut [T]) {
    let (k, kk, plane) = (g.k, g.k * g.k, g.hb * g.wb);
    let (ki0, ki1) = g.taps(i * g.s, g.hb);
    let (kj0, kj1) = g.taps(j * g.s, g.wb);
    if kj0 == kj1 || ki0 == ki1 {
        return;
    }
    let x0 = j * g.s + kj0 - g.p;
    let w = kj1 - kj0;
    // As in im2col: fixed-size rows where no column tap is cut off.
    let rows = (x0, ki0, ki1, i * g.s);
    match (k, w == k) {
        (3, true) => add_tap_rows::<T, 3>(g, src, out, rows),
        (4, true) => add_tap_rows::<T, 4>(g, src, out, rows),
        _ => {
            for (ch, src) in src.chunks_exact(kk).enumerate() {
                let o = &mut out[ch * plane..(ch + 1) * plane];
                for ki in ki0..ki1 {
                    let y = i * g.s + ki - g.p;
                    let o = &mut o[y * g.wb + x0..y * g.wb + x0 + w];
                    let s = &src[ki * k + kj0..ki * k + kj1];
                    for (a, b) in o.iter_mut().zip(s) {
                        *a += *b;
                    }
                }
            }
        }
    }
}

/// The scatter-add of one row of [`col2im`] whose column taps are all inside the image, for kernel
/// width `K` (`rows` as in [`copy_tap_rows`]; `out` holds the channels of `src`).
fn add_tap_rows<T: WithDType, const K: usize>(
    g: &Geom,
    src: &[T],
    out: &mut [T],
    (x0, ki0, ki1, y0): (usize, usize, usize, usize),
) {
    let plane = g.hb * g.wb;
    for (taps, img) in src.chunks_exact(K * K).zip(out.chunks_exact_mut(plane)) {
        for ki in ki0..ki1 {
            let at = (y0 + ki - g.p) * g.wb + x0;
            let to: &mut [T; K] = (&mut img[at..at + K]).try_into().expect("K taps");
            let from: &[T; K] = taps[ki * K..(ki + 1) * K].try_into().expect("K taps");
            for (a, b) in to.iter_mut().zip(from) {
                *a += *b;
            }
        }
    }
}

/// `[N, C, HW]` → `[N·HW, C]` (per image, a transpose).
fn to_channels_last<T: WithDType>(src: &[T], c: usize, hw: usize) -> Vec<T> {
    if c == 0 || hw == 0 {
        return Vec::new();
    }
    let img = c * hw;
    par_chunks_filled(src.len(), img, |n, d| {
        let s = &src[n * img..(n + 1) * img];
        for (ch, plane) in s.chunks_exact(hw).enumerate() {
            for (pos, v) in plane.iter().enumerate() {
                d[pos * c + ch] = *v;
            }
        }
    })
}

/// `[N·HW, C]` → `[N, C, HW]`.
fn to_channels_first<T: WithDType>(src: &[T], c: usize, hw: usize, dst: &mut [T]) {
    if c == 0 || hw == 0 {
        return;
    }
    let img = c * hw;
    dst.par_chunks_mut(img)
        .zip(src.par_chunks(img))
        .for_each(|(d, s)| {
            for (pos, row) in s.chunks_exact(c).enumerate() {
                for (ch, v) in row.iter().enumerate() {
                    d[ch * hw + pos] = *v;
                }
            }
        });
}

/// `acc += src`.
fn add_into<T: WithDType>(acc: &mut [T], src: &[T]) {
    acc.par_chunks_mut(GRAIN)
        .zip(src.par_chunks(GRAIN))
        .for_each(|(a, s)| {
            for (a, s) in a.iter_mut().zip(s) {
                *a += *s;
            }
        });
}

/// A zeroed vector, zeroed in parallel (the callers' outputs are filled chunk by chunk after).
fn zeros<T: WithDType>(len: usize) -> Vec<T> {
    par_chunks_filled(len, PAR_GRAIN, |_, _| {})
}

/// Elements of `cols` per chunk of the forward pass: a few MiB, so that a chunk stays in the
/// last-level cache between the GEMM and the scatter.
const CHUNK_ELEMS: usize = 1 << 20;
/// At least this many GEMM rows per chunk of the forward pass (small GEMMs are less efficient).
const MIN_ROWS: usize = 512;
/// At most this many elements of `cols` per chunk (16 MiB in f32: below glibc's mmap threshold,
/// which is 32 MiB at most, so the buffers are reused rather than faulted in on every call). The
/// backward pass uses chunks of this size: each chunk adds one `C_in·C_out·k²` partial kernel
/// gradient, so fewer chunks are better there.
const MAX_CHUNK_ELEMS: usize = 1 << 22;

/// The shapes of one convolution: `x: [n, c_in, h, w]`, output `[n, c_out, ho, wo]`, kernel `k`.
#[derive(Clone, Copy, Debug)]
struct Conv {
    /// `true`: transposed convolution (`w: [c_in, c_out, k, k]`); else `w: [c_out, c_in, k, k]`.
    transposed: bool,
    n: usize,
    c_in: usize,
    c_out: usize,
    h: usize,
    w: usize,
    ho: usize,
    wo: usize,
    k: usize,
    s: usize,
    p: usize,
    /// Whether the columns are built block by block ([`blocked`], for small weight matrices)
    /// instead of chunk by chunk around whole-chunk GEMMs.
    blocked: bool,
    /// Whether the blocked path computes forward products (`gather_gemm`) with [`implicit`]
    /// GEMMs: `None` where [`implicit::applies`] says they pay (production), `Some` forced (tests).
    implicit: Option<bool>,
    /// Values per block of columns of the blocked path ([`blocked::BLOCK_ELEMS`]; smaller in
    /// tests).
    block_elems: usize,
    /// Chunking: [`CHUNK_ELEMS`], [`MIN_ROWS`], [`MAX_CHUNK_ELEMS`] (smaller in tests).
    chunk_elems: usize,
    min_rows: usize,
    max_chunk_elems: usize,
}

impl Conv {
    /// The `im2col`/`col2im` geometry of `m` images.
    fn geom(&self, m: usize) -> Geom {
        if self.transposed {
            Geom {
                n: m,
                c: self.c_out,
                hb: self.ho,
                wb: self.wo,
                hs: self.h,
                ws: self.w,
                k: self.k,
                s: self.s,
                p: self.p,
            }
        } else {
            Geom {
                n: m,
                c: self.c_in,
                hb: self.h,
                wb: self.w,
                hs: self.ho,
                ws: self.wo,
                k: self.k,
                s: self.s,
                p: self.p,
            }
        }
    }

    fn x_len(&self) -> usize {
        self.c_in * self.h * self.w
    }

    fn y_len(&self) -> usize {
        self.c_out * self.ho * self.wo
    }

    /// The chunks of images, `(first, count)`, of the forward or the backward pass.
    fn chunks(&self, backward: bool) -> Vec<(usize, usize)> {
        // Each image contributes `rows` rows of `width` columns.
        let g = self.geom(1);
        let per_image = (g.rows() * g.row_len()).max(1);
        let most = (self.max_chunk_elems / per_image).max(1);
        let per = if backward {
            most
        } else {
            let by_size = self.chunk_elems / per_image;
            let by_rows = self.min_rows.div_ceil(g.rows().max(1));
            by_size.max(by_rows).min(most)
        };
        let per = per.clamp(1, self.n.max(1));
        (0..self.n)
            .step_by(per)
            .map(|a| (a, per.min(self.n - a)))
            .collect()
    }

    /// `w` as a `[rows, cols]` row-major matrix: `[c_in, c_out·k²]` (transposed) or
    /// `[c_out, c_in·k²]`; the small grid's channels are the rows.
    fn w_rows(&self) -> (usize, usize) {
        let kk = self.k * self.k;
        if self.transposed {
            (self.c_in, self.c_out * kk)
        } else {
            (self.c_out, self.c_in * kk)
        }
    }

    /// Whether the blocked path's forward product of `g` takes [`implicit`] GEMMs.
    fn takes_implicit<T: HostFloat>(&self, g: &Geom, o: usize) -> bool {
        self.implicit
            .unwrap_or_else(|| implicit::applies::<T>(g, o))
    }

    /// Whether the blocked path's scatter product of `g` (with `o` small channels) takes
    /// [`scatter`]'s shifted sums: where they pay, or where forced and `T` has the kernel.
    fn takes_scatter<T: HostFloat>(&self, g: &Geom, o: usize) -> bool {
        match self.implicit {
            None => scatter::applies::<T>(g, o),
            Some(forced) => forced && T::shifted_kernel().is_some(),
        }
    }

    /// The forward pass of [`blocked`], with the bias (when given) added inside the tasks.
    fn forward_blocked<T: HostFloat>(&self, xs: &[T], wm: View<T>, bias: Option<&[T]>) -> Vec<T> {
        let g = self.geom(self.n);
        if self.transposed && self.takes_scatter::<T>(&g, wm.rows) {
            scatter::gemm_scatter(&g, xs, wm, bias)
        } else if self.transposed {
            blocked::gemm_scatter(&g, self.block_elems, xs, wm, bias)
        } else if self.takes_implicit::<T>(&g, wm.rows) {
            implicit::gather_gemm(&g, xs, wm, bias)
        } else {
            blocked::gather_gemm(&g, self.block_elems, xs, wm.t(), bias)
        }
    }

    /// The backward pass of [`blocked`] (as [`Conv::backward`]); all three contiguous.
    fn backward_blocked<T: HostFloat>(
        &self,
        x: &Tensor,
        w: &Tensor,
        gy: &Tensor,
        (want_x, want_w): (bool, bool),
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = self.geom(self.n);
        let (rows, cols) = self.w_rows();
        let (dx, dw) = with_slices::<T, _>(&[x.clone(), w.clone(), gy.clone()], |d| {
            let (xs, wm, gs) = (d[0], View::row_major(d[1], rows, cols), d[2]);
            // The large image and the small grid: (gy, x) transposed, (x, gy) otherwise.
            let (big, small) = if self.transposed { (gs, xs) } else { (xs, gs) };
            let dx = want_x.then(|| {
                if self.transposed && self.takes_implicit::<T>(&g, wm.rows) {
                    implicit::gather_gemm(&g, gs, wm, None)
                } else if self.transposed {
                    blocked::gather_gemm(&g, self.block_elems, gs, wm.t(), None)
                } else if self.takes_scatter::<T>(&g, wm.rows) {
                    scatter::gemm_scatter(&g, gs, wm, None)
                } else {
                    blocked::gemm_scatter(&g, self.block_elems, gs, wm, None)
                }
            });
            let dw = want_w.then(|| blocked::weight_grad(&g, self.block_elems, big, small, rows));
            (dx, dw)
        })?;
        let dx = dx.map(|d| tensor(d, x.dims())).transpose()?;
        let dw = dw.map(|d| tensor(d, w.dims())).transpose()?;
        Ok((dx, dw))
    }

    /// `conv(x, w)`, plus `b` per output channel when given (the blocked path only: see
    /// [`Conv::fuses_bias`]).
    fn forward<T: HostFloat>(&self, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Vec<T>> {
        let mut operands = vec![x.detach().contiguous()?, w.detach().contiguous()?];
        operands.extend(b.map(|b| b.detach().contiguous()).transpose()?);
        let (hw, ohw) = (self.h * self.w, self.ho * self.wo);
        let (rows, cols) = self.w_rows();
        with_slices::<T, _>(&operands, |d| {
            let (xs, wm) = (d[0], View::row_major(d[1], rows, cols));
            if self.blocked {
                return self.forward_blocked(xs, wm, d.get(2).copied());
            }
            let mut y = zeros::<T>(self.n * self.y_len());
            for (a, m) in self.chunks(false) {
                let g = self.geom(m);
                let xc = &xs[a * self.x_len()..(a + m) * self.x_len()];
                let yc = &mut y[a * self.y_len()..(a + m) * self.y_len()];
                if self.transposed {
                    // cols = xᵀ · w, then scatter.
                    let xt = to_channels_last(xc, self.c_in, hw);
                    let cs = product(View::row_major(&xt, m * hw, self.c_in), wm);
                    col2im(&g, &cs, yc);
                } else {
                    // y = im2col(x) · wᵀ, then back to channels first.
                    let cs = im2col(&g, xc);
                    let ys = product(View::row_major(&cs, g.rows(), g.row_len()), wm.t());
                    to_channels_first(&ys, self.c_out, ohw, yc);
                }
            }
            y
        })
    }

    /// Whether the forward pass adds the bias `b` itself: on the blocked path, where each task adds
    /// it to its images while they are in cache (a separate pass reads and writes the whole output
    /// again), and only off the autograd tape (the tracked node has no bias operand).
    fn fuses_bias(&self, x: &Tensor, w: &Tensor, b: &Tensor) -> bool {
        self.blocked
            && !(x.track_op() || w.track_op() || b.track_op())
            && b.device().is_cpu()
            && b.dtype() == x.dtype()
            && b.dims() == [self.c_out]
    }

    /// The gradients w.r.t. `x` and `w` (each only when `want_*`) given the output's `gy`.
    fn backward<T: HostFloat>(
        &self,
        x: &Tensor,
        w: &Tensor,
        gy: &Tensor,
        want_x: bool,
        want_w: bool,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let x = x.detach().contiguous()?;
        let gy = gy.detach().contiguous()?;
        let w = w.detach().contiguous()?;
        if self.blocked {
            return self.backward_blocked::<T>(&x, &w, &gy, (want_x, want_w));
        }
        let (hw, ohw) = (self.h * self.w, self.ho * self.wo);
        let (rows, cols) = self.w_rows();
        let mut dx = if want_x {
            zeros::<T>(self.n * self.x_len())
        } else {
            Vec::new()
        };
        let mut dw: Option<Vec<T>> = None;
        let mut acc = |d: Vec<T>| match dw.as_mut() {
            None => dw = Some(d),
            Some(a) => add_into(a, &d),
        };
        with_slices::<T, _>(&[x.clone(), gy, w.clone()], |d| {
            let (xs, gs, wm) = (d[0], d[1], View::row_major(d[2], rows, cols));
            for (a, m) in self.chunks(true) {
                let g = self.geom(m);
                let xc = &xs[a * self.x_len()..(a + m) * self.x_len()];
                let gc = &gs[a * self.y_len()..(a + m) * self.y_len()];
                if self.transposed {
                    // dcols = im2col(gy); dx = dcols · wᵀ; dw = xᵀ · dcols.
                    let dcols = im2col(&g, gc);
                    let dcols = View::row_major(&dcols, g.rows(), g.row_len());
                    if want_x {
                        let dxc = &mut dx[a * self.x_len()..(a + m) * self.x_len()];
                        to_channels_first(&product(dcols, wm.t()), self.c_in, hw, dxc);
                    }
                    if want_w {
                        let xt = to_channels_last(xc, self.c_in, hw);
                        acc(product(View::row_major(&xt, m * hw, self.c_in).t(), dcols));
                    }
                } else {
                    // gm = gy as [m·Ho·Wo, c_out]; dx = col2im(gm · w); dw = gmᵀ · im2col(x).
                    let gm = to_channels_last(gc, self.c_out, ohw);
                    let gm = View::row_major(&gm, m * ohw, self.c_out);
                    if want_x {
                        let dxc = &mut dx[a * self.x_len()..(a + m) * self.x_len()];
                        col2im(&g, &product(gm, wm), dxc);
                    }
                    if want_w {
                        let cs = im2col(&g, xc);
                        acc(product(gm.t(), View::row_major(&cs, g.rows(), g.row_len())));
                    }
                }
            }
        })?;
        let dx = if want_x {
            Some(tensor(dx, x.dims())?)
        } else {
            None
        };
        let dw = match dw {
            Some(d) => Some(tensor(d, w.dims())?),
            None if want_w => Some(w.zeros_like()?), // an empty batch
            None => None,
        };
        Ok((dx, dw))
    }

    fn out_shape(&self) -> Shape {
        (self.n, self.c_out, self.ho, self.wo).into()
    }

    /// Runs the forward pass and wraps it as one autograd node on `(x, w)` when either is tracked;
    /// adds the bias `b` (`[c_out]`, or one value) when given.
    fn apply(self, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
        let fused = b.filter(|b| self.fuses_bias(x, w, b));
        let storage = match x.dtype() {
            DType::F32 => CpuStorage::F32(self.forward::<f32>(x, w, fused)?),
            DType::F64 => CpuStorage::F64(self.forward::<f64>(x, w, fused)?),
            d => candle_core::bail!("conv: unsupported dtype {d:?}"),
        };
        let y = if !x.track_op() && !w.track_op() {
            match storage {
                CpuStorage::F32(v) => tensor(v, self.out_shape())?,
                CpuStorage::F64(v) => tensor(v, self.out_shape())?,
                _ => unreachable!(),
            }
        } else {
            let result = Precomputed::new(storage, self.out_shape());
            x.apply_op2(w, Node { conv: self, result })?
        };
        plus_bias(y, if fused.is_some() { None } else { b })
    }
}

/// A convolution in the autograd graph. Its forward result was computed beforehand (so that the
/// GEMMs run outside candle's storage locks) and is handed over once by `cpu_fwd`.
struct Node {
    conv: Conv,
    result: Precomputed,
}

impl CustomOp2 for Node {
    fn name(&self) -> &'static str {
        if self.conv.transposed {
            "ebmc-conv-transpose2d"
        } else {
            "ebmc-conv2d"
        }
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.result.take(self.name())
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (want_x, want_w) = (x.track_op(), w.track_op());
        match grad.dtype() {
            DType::F32 => self.conv.backward::<f32>(x, w, grad, want_x, want_w),
            DType::F64 => self.conv.backward::<f64>(x, w, grad, want_x, want_w),
            d => candle_core::bail!("conv backward: unsupported dtype {d:?}"),
        }
    }
}

/// Whether the GEMM path applies: CPU, f32/f64, 4-D, square kernel, matching dtypes.
fn fast_path(x: &Tensor, w: &Tensor) -> bool {
    x.device().is_cpu()
        && w.device().is_cpu()
        && matches!(x.dtype(), DType::F32 | DType::F64)
        && x.dtype() == w.dtype()
        && x.rank() == 4
        && w.rank() == 4
        && w.dim(2).ok() == w.dim(3).ok()
}

/// `x.conv_transpose2d(w, padding, output_padding, stride, 1)` for `x: [N, C_in, H, W]`,
/// `w: [C_in, C_out, k, k]` (PyTorch layout), plus the bias `b` (`[C_out]`, or one value) when
/// given; differentiable w.r.t. all three. Falls back to candle's own off the CPU and for other
/// dtypes.
pub fn conv_transpose2d(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    stride: usize,
    padding: usize,
    output_padding: usize,
) -> Result<Tensor> {
    let y = match plan_transposed(x, w, stride, padding, output_padding)? {
        Some(conv) => return conv.apply(x, w, b),
        None => x.contiguous()?.conv_transpose2d(
            &w.contiguous()?,
            padding,
            output_padding,
            stride,
            1,
        )?,
    };
    plus_bias(y, b)
}

/// `x.conv2d(w, padding, stride, 1, 1)` for `x: [N, C_in, H, W]`, `w: [C_out, C_in, k, k]`, plus
/// the bias `b` (`[C_out]`, or one value) when given; differentiable w.r.t. all three. Falls back
/// to candle's own off the CPU and for other dtypes.
pub fn conv2d(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    let y = match plan(x, w, stride, padding)? {
        Some(conv) => return conv.apply(x, w, b),
        None => x
            .contiguous()?
            .conv2d(&w.contiguous()?, padding, stride, 1, 1)?,
    };
    plus_bias(y, b)
}

/// `out[p] += bias[(p / plane) % bias.len()]`: a bias per channel of channels-first images whose
/// planes have `plane` values (the sums of [`add_bias_host`]).
fn add_bias_in_place<T: WithDType>(out: &mut [T], bias: &[T], plane: usize) {
    for (i, run) in out.chunks_mut(plane.max(1)).enumerate() {
        let b = bias[i % bias.len()];
        run.iter_mut().for_each(|v| *v += b);
    }
}

/// `y`, plus `b` when given ([`add_channel_bias`]).
fn plus_bias(y: Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    match b {
        Some(b) => add_channel_bias(&y, b),
        None => Ok(y),
    }
}

/// `y + b` for `y: [N, C, H, W]` and a bias `b` of `C` values (or one): on the CPU off the
/// autograd tape one parallel pass (candle's `broadcast_add` runs on one thread), the same sums.
fn add_channel_bias(y: &Tensor, b: &Tensor) -> Result<Tensor> {
    let c = if b.elem_count() == 1 { 1 } else { y.dim(1)? };
    let host = is_host_float(y) && y.dtype() == b.dtype() && y.rank() == 4;
    if !host || y.track_op() || b.track_op() || b.elem_count() != c {
        return y.broadcast_add(&b.reshape((1, c, 1, 1))?);
    }
    let (y, b) = (y.contiguous()?, b.contiguous()?);
    match y.dtype() {
        DType::F32 => add_bias_host::<f32>(&y, &b, c),
        _ => add_bias_host::<f64>(&y, &b, c),
    }
}

fn add_bias_host<T: HostFloat>(y: &Tensor, b: &Tensor, c: usize) -> Result<Tensor> {
    let (_, channels, h, w) = y.dims4()?;
    let plane = h * w;
    let out = with_slices::<T, _>(&[y.clone(), b.clone()], |d| {
        let (ys, bs) = (d[0], d[1]);
        par_filled(ys.len(), |start, out| {
            let mut i = 0;
            while i < out.len() {
                let at = start + i;
                let bias = bs[if c == 1 { 0 } else { (at / plane) % channels }];
                let run = (plane - at % plane).min(out.len() - i);
                for (o, v) in out[i..i + run].iter_mut().zip(&ys[at..at + run]) {
                    *o = *v + bias;
                }
                i += run;
            }
        })
    })?;
    tensor(out, y.dims())
}

/// The GEMM plan of a transposed convolution, or `None` where candle's own should run (not on
/// the CPU, another dtype, or shapes that candle rejects: its error message is kept).
fn plan_transposed(
    x: &Tensor,
    w: &Tensor,
    stride: usize,
    padding: usize,
    output_padding: usize,
) -> Result<Option<Conv>> {
    if !fast_path(x, w) {
        return Ok(None);
    }
    let (n, c_in, h, wd) = x.dims4()?;
    let (c_in_w, c_out, k, _) = w.dims4()?;
    let size = |i: usize| (i - 1) * stride + k + output_padding;
    if c_in != c_in_w || c_in == 0 || c_out == 0 || stride == 0 || h == 0 || wd == 0 || k == 0 {
        return Ok(None);
    }
    if size(h) <= 2 * padding || size(wd) <= 2 * padding {
        return Ok(None);
    }
    Ok(Some(Conv {
        transposed: true,
        n,
        c_in,
        c_out,
        h,
        w: wd,
        ho: size(h) - 2 * padding,
        wo: size(wd) - 2 * padding,
        k,
        s: stride,
        p: padding,
        blocked: c_in * c_out * k * k <= blocked::MAX_WEIGHT_ELEMS,
        implicit: None,
        block_elems: blocked::BLOCK_ELEMS,
        chunk_elems: CHUNK_ELEMS,
        min_rows: MIN_ROWS,
        max_chunk_elems: MAX_CHUNK_ELEMS,
    }))
}

/// The GEMM plan of a convolution (see [`plan_transposed`]).
fn plan(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Option<Conv>> {
    if !fast_path(x, w) {
        return Ok(None);
    }
    let (n, c_in, h, wd) = x.dims4()?;
    let (c_out, c_in_w, k, _) = w.dims4()?;
    if c_in != c_in_w || c_in == 0 || c_out == 0 || stride == 0 || k == 0 {
        return Ok(None);
    }
    if h + 2 * padding < k || wd + 2 * padding < k {
        return Ok(None);
    }
    Ok(Some(Conv {
        transposed: false,
        n,
        c_in,
        c_out,
        h,
        w: wd,
        ho: (h + 2 * padding - k) / stride + 1,
        wo: (wd + 2 * padding - k) / stride + 1,
        k,
        s: stride,
        p: padding,
        blocked: c_in * c_out * k * k <= blocked::MAX_WEIGHT_ELEMS,
        implicit: None,
        block_elems: blocked::BLOCK_ELEMS,
        chunk_elems: CHUNK_ELEMS,
        min_rows: MIN_ROWS,
        max_chunk_elems: MAX_CHUNK_ELEMS,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{D, Device, Var};

    const DEV: Device = Device::Cpu;

    /// Deterministic pseudo-random values in [-1, 1) (candle's CPU RNG cannot be seeded).
    fn rand(shape: &[usize], seed: u64) -> Tensor {
        let len: usize = shape.iter().product();
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let v: Vec<f64> = (0..len)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
            })
            .collect();
        Tensor::from_vec(v, shape, &DEV).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        assert_eq!(a.dims(), b.dims());
        a.sub(b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(D::Minus1)
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    }

    /// How a test runs a convolution.
    #[derive(Clone, Copy, Debug)]
    enum Path {
        /// Whole-chunk GEMMs with `Some(k)` images per chunk (`None`: the production chunking).
        Chunked(Option<usize>),
        /// The blocked kernels with this many values per block of columns.
        Blocked(usize),
        /// The blocked path with implicit forward products.
        Implicit,
    }

    /// The paths tried: production chunking, one and two images per chunk, production blocks,
    /// blocks of one row (both with column products), and implicit forward products.
    const PATHS: [Path; 6] = [
        Path::Chunked(None),
        Path::Chunked(Some(1)),
        Path::Chunked(Some(2)),
        Path::Blocked(blocked::BLOCK_ELEMS),
        Path::Blocked(1),
        Path::Implicit,
    ];

    /// Ours, on `path`.
    fn with_path(c: Conv, path: Path, x: &Tensor, w: &Tensor) -> Tensor {
        on_path(c, path).apply(x, w, None).unwrap()
    }

    /// `c` set to take `path`.
    fn on_path(mut c: Conv, path: Path) -> Conv {
        match path {
            Path::Chunked(images) => {
                c.blocked = false;
                if let Some(k) = images {
                    let g = c.geom(1);
                    c.chunk_elems = k * g.rows() * g.row_len();
                    c.max_chunk_elems = c.chunk_elems;
                    c.min_rows = 1;
                    assert_eq!(c.chunks(false).len(), c.n.div_ceil(k));
                    assert_eq!(c.chunks(true).len(), c.n.div_ceil(k));
                }
            }
            Path::Blocked(values) => {
                c.blocked = true;
                c.implicit = Some(false);
                c.block_elems = values;
            }
            Path::Implicit => {
                c.blocked = true;
                c.implicit = Some(true);
            }
        }
        c
    }

    fn convt(x: &Tensor, w: &Tensor, s: usize, p: usize, op: usize, ch: Path) -> Tensor {
        let c = plan_transposed(x, w, s, p, op)
            .unwrap()
            .expect("the GEMM path");
        with_path(c, ch, x, w)
    }

    fn conv(x: &Tensor, w: &Tensor, s: usize, p: usize, ch: Path) -> Tensor {
        let c = plan(x, w, s, p).unwrap().expect("the GEMM path");
        with_path(c, ch, x, w)
    }

    /// (batch, c_in, c_out, size, k, stride, padding, output_padding) for the transposed conv.
    type Case = (usize, usize, usize, usize, usize, usize, usize, usize);

    fn convt_cases() -> Vec<Case> {
        let mut cases = Vec::new();
        for k in [3, 4, 7] {
            for s in [1, 2] {
                for p in [0, 1] {
                    for op in [0, 1] {
                        for (n, h) in [(1, 1), (1, 5), (3, 1), (3, 5), (3, 7)] {
                            cases.push((n, 2, 3, h, k, s, p, op));
                        }
                    }
                }
            }
        }
        // Large enough for several rayon tasks (and several chunks in production).
        cases.push((4, 32, 64, 8, 4, 2, 1, 0));
        cases.push((5, 16, 8, 7, 4, 2, 1, 1));
        cases.push((3, 64, 1, 14, 4, 2, 1, 0));
        cases.push((6, 16, 128, 1, 7, 1, 0, 0));
        cases.push((40, 24, 64, 7, 4, 2, 1, 0));
        cases
    }

    /// (batch, c_in, c_out, size, k, stride, padding) for the convolution.
    fn conv_cases() -> Vec<(usize, usize, usize, usize, usize, usize, usize)> {
        let mut cases = Vec::new();
        for k in [3, 4, 7] {
            for s in [1, 2] {
                for p in [0, 1] {
                    for (n, h) in [(1, 7), (3, 8), (2, 9)] {
                        for (ci, co) in [(2, 3), (1, 5), (24, 40)] {
                            cases.push((n, ci, co, h, k, s, p));
                        }
                    }
                }
            }
        }
        cases.push((40, 32, 16, 14, 4, 2, 1));
        cases
    }

    /// Each dtype with its tolerance against candle's convolution (f32 looser: another summation
    /// order).
    const DTYPE_TOLERANCES: [(DType, f64); 2] = [(DType::F64, 1e-12), (DType::F32, 1e-4)];

    #[test]
    fn conv_transpose2d_forward_matches_candle() {
        for (i, &(n, ci, co, h, k, s, p, op)) in convt_cases().iter().enumerate() {
            let case = convt_cases()[i];
            let x = rand(&[n, ci, h, h], 2 * i as u64);
            let w = rand(&[ci, co, k, k], 2 * i as u64 + 1);
            for (dtype, tol) in DTYPE_TOLERANCES {
                let (x, w) = (x.to_dtype(dtype).unwrap(), w.to_dtype(dtype).unwrap());
                let want = x.conv_transpose2d(&w, p, op, s, 1).unwrap();
                for ch in PATHS {
                    let d = max_diff(&convt(&x, &w, s, p, op, ch), &want);
                    assert!(d < tol, "{dtype:?} {case:?}, path {ch:?}: max diff {d:e}");
                }
                let got = conv_transpose2d(&x, &w, None, s, p, op).unwrap();
                assert_eq!(got.dims(), want.dims());
                let d = max_diff(&got, &want);
                assert!(d < tol, "{dtype:?} {case:?}: max diff {d:e}");
            }
        }
    }

    #[test]
    fn conv2d_forward_matches_candle() {
        for (i, &(n, ci, co, h, k, s, p)) in conv_cases().iter().enumerate() {
            let case = conv_cases()[i];
            let x = rand(&[n, ci, h, h], 100 + 2 * i as u64);
            let w = rand(&[co, ci, k, k], 101 + 2 * i as u64);
            for (dtype, tol) in DTYPE_TOLERANCES {
                let (x, w) = (x.to_dtype(dtype).unwrap(), w.to_dtype(dtype).unwrap());
                let want = x.conv2d(&w, p, s, 1, 1).unwrap();
                for ch in PATHS {
                    let d = max_diff(&conv(&x, &w, s, p, ch), &want);
                    assert!(d < tol, "{dtype:?} {case:?}, path {ch:?}: max diff {d:e}");
                }
                let d = max_diff(&conv2d(&x, &w, None, s, p).unwrap(), &want);
                assert!(d < tol, "{dtype:?} {case:?}: max diff {d:e}");
            }
        }
    }

    /// Gradients of `Σ r · (conv(x, w) + b)` w.r.t. x, w, b (those tracked, as in `track`): ours
    /// against candle's autograd through its own convolution.
    #[allow(clippy::too_many_arguments)]
    fn grads_agree(
        ours: impl Fn(&Tensor, &Tensor) -> Tensor,
        theirs: impl Fn(&Tensor, &Tensor) -> Tensor,
        xs: &[usize],
        ws: &[usize],
        c_out: usize,
        (seed, dtype): (u64, DType),
        track: (bool, bool),
        what: &str,
    ) {
        let rand = |shape: &[usize], seed| rand(shape, seed).to_dtype(dtype).unwrap();
        let x = Var::from_tensor(&rand(xs, seed)).unwrap();
        let w = Var::from_tensor(&rand(ws, seed + 1)).unwrap();
        let b = Var::from_tensor(&rand(&[c_out], seed + 2)).unwrap();
        let xt = if track.0 {
            x.as_tensor().clone()
        } else {
            x.as_detached_tensor()
        };
        let wt = if track.1 {
            w.as_tensor().clone()
        } else {
            w.as_detached_tensor()
        };
        let run = |f: &dyn Fn(&Tensor, &Tensor) -> Tensor| {
            let y = f(&xt, &wt)
                .broadcast_add(&b.as_tensor().reshape((1, c_out, 1, 1)).unwrap())
                .unwrap();
            let r = rand(y.dims(), seed + 3);
            let g = (y * r).unwrap().sum_all().unwrap().backward().unwrap();
            [&x, &w, &b].map(|v| g.get(v.as_tensor()).cloned())
        };
        let (a, e) = (run(&ours), run(&theirs));
        for (name, (a, e)) in ["x", "w", "b"].iter().zip(a.iter().zip(&e)) {
            match (a, e) {
                (Some(a), Some(e)) => {
                    let d = max_diff(a, e);
                    // f32: relative to the gradient's size (sums of up to a few thousand terms).
                    let tol = match dtype {
                        DType::F64 => 1e-10,
                        _ => 1e-5 * (1.0 + max_diff(e, &e.zeros_like().unwrap())),
                    };
                    assert!(d < tol, "{what}, {dtype:?}: d/d{name} differs by {d:e}");
                }
                (None, None) => {}
                _ => panic!("{what}: d/d{name} is present in one gradient store only"),
            }
        }
        assert_eq!(a[0].is_some(), track.0, "{what}");
        assert_eq!(a[1].is_some(), track.1, "{what}");
    }

    const TRACKS: [(bool, bool); 3] = [(true, true), (true, false), (false, true)];

    /// Every path in both dtypes: f32 takes the shifted-sum kernel where the CPU has it.
    fn paths_and_dtypes() -> impl Iterator<Item = (usize, (Path, DType))> {
        PATHS
            .into_iter()
            .flat_map(|p| [(p, DType::F64), (p, DType::F32)])
            .enumerate()
    }

    #[test]
    fn conv_transpose2d_gradients_match_candle() {
        for (i, &(n, ci, co, h, k, s, p, op)) in convt_cases().iter().enumerate() {
            if op >= s {
                // Not a valid PyTorch configuration; candle's own backward then fails (its
                // conv2d of the gradient does not give back the input's size).
                continue;
            }
            for (j, (ch, dtype)) in paths_and_dtypes() {
                let track = TRACKS[(i + j) % 3];
                grads_agree(
                    |x, w| convt(x, w, s, p, op, ch),
                    |x, w| x.conv_transpose2d(w, p, op, s, 1).unwrap(),
                    &[n, ci, h, h],
                    &[ci, co, k, k],
                    co,
                    (1000 + 4 * i as u64, dtype),
                    track,
                    &format!(
                        "convT {:?}, path {ch:?}, tracked {track:?}",
                        convt_cases()[i]
                    ),
                );
            }
        }
    }

    #[test]
    fn conv2d_gradients_match_candle() {
        for (i, &(n, ci, co, h, k, s, p)) in conv_cases().iter().enumerate() {
            for (j, (ch, dtype)) in paths_and_dtypes() {
                let track = TRACKS[(i + j) % 3];
                grads_agree(
                    |x, w| conv(x, w, s, p, ch),
                    |x, w| x.conv2d(w, p, s, 1, 1).unwrap(),
                    &[n, ci, h, h],
                    &[co, ci, k, k],
                    co,
                    (5000 + 4 * i as u64, dtype),
                    track,
                    &format!(
                        "conv2d {:?}, path {ch:?}, tracked {track:?}",
                        conv_cases()[i]
                    ),
                );
            }
        }
    }

    /// `im2col` by its definition, one element at a time.
    fn im2col_by_definition(g: &Geom, big: &[f64]) -> Vec<f64> {
        let mut cols = vec![0.0; g.rows() * g.row_len()];
        for (r, row) in cols.chunks_mut(g.row_len()).enumerate() {
            let (nn, i, j) = (r / (g.hs * g.ws), r / g.ws % g.hs, r % g.ws);
            for (e, v) in row.iter_mut().enumerate() {
                let (ch, ki, kj) = (e / (g.k * g.k), e / g.k % g.k, e % g.k);
                let y = (i * g.s + ki).checked_sub(g.p).filter(|y| *y < g.hb);
                let x = (j * g.s + kj).checked_sub(g.p).filter(|x| *x < g.wb);
                if let (Some(y), Some(x)) = (y, x) {
                    *v = big[((nn * g.c + ch) * g.hb + y) * g.wb + x];
                }
            }
        }
        cols
    }

    /// Kernels 1–5, strides 1–3, paddings 0–2 on a non-square 2×3×9×11 input: kernel widths 3 and
    /// 4 take the fixed-size copies where no column tap is cut off; the others, and the cut-off
    /// positions, the general loop.
    fn every_geometry() -> impl Iterator<Item = Geom> {
        let (hb, wb) = (9, 11);
        (1..=5).flat_map(move |k| {
            (1..=3).flat_map(move |s| {
                (0..=2).map(move |p| Geom {
                    n: 2,
                    c: 3,
                    hb,
                    wb,
                    hs: (hb + 2 * p - k) / s + 1,
                    ws: (wb + 2 * p - k) / s + 1,
                    k,
                    s,
                    p,
                })
            })
        })
    }

    #[test]
    fn im2col_matches_its_definition_for_every_kernel_path() {
        for g in every_geometry() {
            let big = rand(&[g.n, g.c, g.hb, g.wb], 40 + g.k as u64)
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            assert_eq!(im2col(&g, &big), im2col_by_definition(&g, &big), "{g:?}");
        }
    }

    #[test]
    fn col2im_matches_its_definition_for_every_kernel_path() {
        // The adjoint of im2col by definition: every column entry added to its pixel.
        for g in every_geometry() {
            let cols = rand(&[g.rows(), g.row_len()], 60 + g.k as u64)
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            // Where each column entry goes: im2col of the pixel indices (+1; 0 = outside).
            let ids: Vec<f64> = (0..g.n * g.c * g.hb * g.wb)
                .map(|v| v as f64 + 1.0)
                .collect();
            let mut want = vec![0.0; ids.len()];
            for (v, at) in cols.iter().zip(im2col_by_definition(&g, &ids)) {
                if at > 0.0 {
                    want[at as usize - 1] += v;
                }
            }
            let mut got = vec![f64::NAN; ids.len()];
            col2im(&g, &cols, &mut got);
            assert_eq!(got, want, "{g:?}");
        }
    }

    #[test]
    fn im2col_and_col2im_are_adjoint() {
        // <im2col(a), b> = <a, col2im(b)>.
        let g = Geom {
            n: 2,
            c: 3,
            hb: 9,
            wb: 9,
            hs: 5,
            ws: 5,
            k: 4,
            s: 2,
            p: 1,
        };
        let vec = |t: Tensor| t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let a = vec(rand(&[2, 3, 9, 9], 7));
        let b = vec(rand(&[g.rows(), g.row_len()], 8));
        let (ia, mut cb) = (im2col(&g, &a), vec![0.0; a.len()]);
        col2im(&g, &b, &mut cb);
        let l: f64 = ia.iter().zip(&b).map(|(u, v)| u * v).sum();
        let r: f64 = cb.iter().zip(&a).map(|(u, v)| u * v).sum();
        assert!((l - r).abs() < 1e-12, "{l} vs {r}");
    }

    #[test]
    fn strided_copies_match_their_definition() {
        let src: Vec<u32> = (0..23).collect();
        for stride in 1..=3 {
            for len in 0..=src.len().div_ceil(stride) {
                let mut dst = vec![99; len];
                copy_strided_from(&mut dst, &src, stride);
                let want: Vec<u32> = (0..len).map(|i| src[i * stride]).collect();
                assert_eq!(dst, want, "from, stride {stride}, {len} values");
                let mut back = vec![99; (len.max(1) - 1) * stride + 1];
                copy_strided_to(&mut back, stride, &want);
                for (i, v) in back.iter().enumerate() {
                    let want = if i % stride == 0 && i / stride < len {
                        src[i]
                    } else {
                        99
                    };
                    assert_eq!(*v, want, "to, stride {stride}, {len} values, at {i}");
                }
            }
        }
    }

    #[test]
    fn the_bias_pass_gives_the_bits_of_broadcast_add() {
        // Several tasks of the parallel pass, planes cut by task boundaries, one bias or one per
        // channel, both dtypes; a tracked bias takes candle's op (its gradient must exist).
        for dtype in [DType::F32, DType::F64] {
            let y = rand(&[7, 5, 31, 29], 3).to_dtype(dtype).unwrap();
            for c in [5, 1] {
                let b = rand(&[c], 4).to_dtype(dtype).unwrap();
                let want = y.broadcast_add(&b.reshape((1, c, 1, 1)).unwrap()).unwrap();
                let got = add_channel_bias(&y, &b).unwrap();
                let bits = crate::runtime::bit_pattern;
                assert_eq!(bits(&got), bits(&want), "{dtype:?}, {c} biases");
            }
        }
        let b = Var::from_tensor(&rand(&[5], 4)).unwrap();
        let y = rand(&[2, 5, 3, 3], 5);
        let g = add_channel_bias(&y, b.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let gb: Vec<f64> = g.get(b.as_tensor()).unwrap().to_vec1().unwrap();
        assert_eq!(gb, vec![18.0; 5]);
        assert!(add_channel_bias(&y, &rand(&[4], 6)).is_err());
    }

    #[test]
    fn a_bias_added_inside_the_blocked_tasks_gives_the_bits_of_the_separate_pass() {
        let bits = crate::runtime::bit_pattern;
        for dtype in [DType::F32, DType::F64] {
            let t = |shape: &[usize], seed| rand(shape, seed).to_dtype(dtype).unwrap();
            // A convolution ([4, 3, 4, 4]: 4 outputs) and a transposed one (3 outputs).
            let (x, xt, w) = (
                t(&[5, 3, 9, 9], 31),
                t(&[5, 4, 5, 5], 32),
                t(&[4, 3, 4, 4], 33),
            );
            let cases = [
                (plan(&x, &w, 2, 1).unwrap().unwrap(), &x, t(&[4], 34)),
                (
                    plan_transposed(&xt, &w, 2, 1, 1).unwrap().unwrap(),
                    &xt,
                    t(&[3], 35),
                ),
            ];
            for (c, x, b) in cases {
                for path in [
                    Path::Blocked(blocked::BLOCK_ELEMS),
                    Path::Blocked(1),
                    Path::Implicit,
                ] {
                    let c = on_path(c, path);
                    assert!(c.fuses_bias(x, &w, &b));
                    let got = c.apply(x, &w, Some(&b)).unwrap();
                    let y = c.apply(x, &w, None).unwrap();
                    let want = y.broadcast_add(&b.reshape((1, b.dim(0).unwrap(), 1, 1)).unwrap());
                    assert_eq!(bits(&got), bits(&want.unwrap()), "{dtype:?}, {path:?}");
                }
            }
        }
        // A tracked bias is added by candle's op, so that its gradient exists.
        let (x, w) = (rand(&[2, 3, 6, 6], 36), rand(&[4, 3, 3, 3], 37));
        let b = Var::from_tensor(&rand(&[4], 38)).unwrap();
        let c = plan(&x, &w, 1, 1).unwrap().unwrap();
        assert!(c.blocked && !c.fuses_bias(&x, &w, b.as_tensor()));
        let y = conv2d(&x, &w, Some(b.as_tensor()), 1, 1).unwrap();
        let g = y.sum_all().unwrap().backward().unwrap();
        let gb: Vec<f64> = g.get(b.as_tensor()).unwrap().to_vec1().unwrap();
        assert_eq!(gb, vec![72.0; 4]);
    }

    #[test]
    fn detached_inputs_give_an_untracked_result() {
        let x = rand(&[2, 3, 4, 4], 21);
        let w = rand(&[3, 5, 4, 4], 22);
        assert!(!conv_transpose2d(&x, &w, None, 2, 1, 0).unwrap().track_op());
        let w = Var::from_tensor(&w).unwrap();
        assert!(
            conv_transpose2d(&x, w.as_tensor(), None, 2, 1, 0)
                .unwrap()
                .track_op()
        );
    }

    #[test]
    fn other_dtypes_and_bad_shapes_fall_back_to_candle() {
        let x = rand(&[2, 3, 4, 4], 11).to_dtype(DType::BF16).unwrap();
        let w = rand(&[3, 2, 4, 4], 12).to_dtype(DType::BF16).unwrap();
        assert!(plan_transposed(&x, &w, 2, 1, 0).unwrap().is_none());
        let want = x.conv_transpose2d(&w, 1, 0, 2, 1).unwrap();
        let got = conv_transpose2d(&x, &w, None, 2, 1, 0).unwrap();
        let f64s = |t: &Tensor| t.to_dtype(DType::F64).unwrap();
        assert_eq!(max_diff(&f64s(&got), &f64s(&want)), 0.0);
        // Mismatched channels: candle's own error.
        let (x, w) = (rand(&[2, 3, 4, 4], 13), rand(&[4, 2, 4, 4], 14));
        assert!(conv_transpose2d(&x, &w, None, 2, 1, 0).is_err());
        assert!(conv2d(&x, &w, None, 2, 1).is_err());
    }
}
