//! The forward product of a strided convolution with many input channels as a sum of GEMMs that
//! read the input itself ("implicit GEMM"): no columns matrix is built.
//!
//! With stride `s`, output `(i, j)` reads input `(s·i + ki − p, s·j + kj − p)`. Writing the tap
//! as `ki = s·di + a`, that is element `(i + di, j + dj)` of the *phase plane* `(a, b)`: the
//! (zero-padded) input rows `s·u + a − p` and columns `s·v + b − p`. Each phase plane is stored
//! with rows of `V = ws + ⌈k/s⌉ − 1` values and the output position `(i, j)` is numbered `i·V + j`,
//! so for one tap the input values of all output positions (of several images, planes one after
//! the other) form one contiguous run starting at `di·V + dj`. The product is then one GEMM per
//! tap, `y += w_tap · run`, of depth `C` (the input channels), whose left operand the `gemm` crate
//! reads in place. Positions `j ≥ ws` and the rows between images are computed and dropped.
//!
//! Against the blocked columns ([`super::blocked`]) this saves writing `C·k²` values per output
//! position and the crate's element-by-element packing of them, at the price of GEMMs of depth
//! `C` instead of `C·k²` and of the dropped positions; [`applies`] says where that pays.

use super::add_bias_in_place;
use super::blocked::images_per_task;
use super::{Geom, copy_strided_from};
use crate::runtime::gemm::{View, ViewMut, matmul};
use crate::runtime::host::{HostFloat, par_chunks_filled};
use crate::runtime::shifted;

/// Fewer input channels make the crate's per-tap GEMMs too shallow (the CEBM's first layer has
/// one); the kernel takes every tap at once and has no such limit.
const MIN_CHANNELS: usize = 16;
/// At least this fraction of the computed positions must be kept, with the crate's per-tap GEMMs.
/// On MNIST the CEBM's 14 × 14 layer keeps 88 % and its forward product took 15 % less time than
/// with the columns; its 7 × 7 layer keeps 78 % and took 27 % more.
const MIN_KEPT: f64 = 0.8;
/// The same with the [`shifted`] kernel, which stores each output once after the whole depth.
const MIN_KEPT_KERNEL: f64 = 0.5;

/// Images per group of the crate's GEMMs: their runs and products stay in the L2 cache.
const GROUP: usize = 8;
/// Images per task of the [`shifted`] kernel with `o` output channels: its phase planes and
/// sums per image.
fn kernel_images_per_task(g: &Geom, o: usize) -> usize {
    let pl = Planes::new(g, 1, 0);
    let rows = o.next_multiple_of(shifted::tile(o).rows);
    super::kernel_images_per_task(g.n, (g.s * g.s * g.c + rows) * pl.u * pl.v)
}

/// The layout of one task's phase planes.
struct Planes {
    /// Rows and row length of a phase plane of one image.
    u: usize,
    v: usize,
    /// Values per channel of a phase: the images' planes and `slack` zeros, so that every tap's
    /// run over the computed positions stays inside.
    channel: usize,
}

impl Planes {
    /// The planes of `images` images, each channel followed by `slack` zeros.
    fn new(g: &Geom, images: usize, slack: usize) -> Self {
        let d = g.k.div_ceil(g.s);
        let (u, v) = (g.hs + d - 1, g.ws + d - 1);
        Planes {
            u,
            v,
            channel: images * u * v + slack,
        }
    }

    /// Positions of `images` consecutive images up to the last kept one of the last image. With
    /// any tap's offset `di·v + dj` added they stay below `images·u·v`.
    fn kept_span(&self, g: &Geom, images: usize) -> usize {
        (images.max(1) - 1) * self.u * self.v + (g.hs - 1) * self.v + g.ws
    }

    /// Where tap `(ki, kj)` of channel `c` starts in the planes (of the first image).
    fn tap_start(&self, g: &Geom, ki: usize, kj: usize, c: usize) -> usize {
        let (a, di, b, dj) = (ki % g.s, ki / g.s, kj % g.s, kj / g.s);
        ((a * g.s + b) * g.c + c) * self.channel + di * self.v + dj
    }

    /// Copies the kept positions of `images` images from `acc` (`[rows ≥ o, stride]`, position
    /// `(n, i, j)` at `n·u·v + i·v + j`) into `small` (`[images, o, hs·ws]`).
    fn keep<T: HostFloat>(
        &self,
        g: &Geom,
        acc: &[T],
        stride: usize,
        images: usize,
        small: &mut [T],
    ) {
        let o = small.len() / (images * g.hs * g.ws).max(1);
        for n in 0..images {
            for oc in 0..o {
                for i in 0..g.hs {
                    let at = oc * stride + n * self.u * self.v + i * self.v;
                    let to = ((n * o + oc) * g.hs + i) * g.ws;
                    small[to..to + g.ws].copy_from_slice(&acc[at..at + g.ws]);
                }
            }
        }
    }
}

/// Whether [`gather_gemm`] should compute `g`'s forward product, with `o` output channels.
pub(super) fn applies<T: HostFloat>(g: &Geom, o: usize) -> bool {
    if g.hs == 0 || g.ws == 0 || g.s == 0 {
        return false;
    }
    let (images, min_kept) = match T::shifted_kernel() {
        Some(_) => (kernel_images_per_task(g, o), MIN_KEPT_KERNEL),
        None if g.c < MIN_CHANNELS => return false,
        None => (images_per_task(g).min(g.n.max(1)).min(GROUP), MIN_KEPT),
    };
    let computed = Planes::new(g, images, 0).kept_span(g, images);
    (images * g.hs * g.ws) as f64 >= min_kept * computed as f64
}

/// `small[n, o, (i, j)] = Σ im2col(big)[(n, i, j), q] · w[o, q] (+ bias[o])` for
/// `w: [c_small, C·k²]`, as [`super::blocked::gather_gemm`] computes it.
pub(super) fn gather_gemm<T: HostFloat>(
    g: &Geom,
    big: &[T],
    w: View<T>,
    bias: Option<&[T]>,
) -> Vec<T> {
    let o = w.rows;
    let product = Product::new(g, w);
    let (per_image, img) = (g.hs * g.ws, g.c * g.hb * g.wb);
    let per = match product {
        Product::Kernel { .. } => kernel_images_per_task(g, o),
        Product::Gemm { .. } => images_per_task(g),
    };
    par_chunks_filled(g.n * o * per_image, per * o * per_image, |task, small| {
        let images = small.len() / (o * per_image).max(1);
        let big = &big[task * per * img..(task * per + images) * img];
        match &product {
            Product::Kernel { sum, w, rows } => {
                let block = shifted::tile(*rows).positions;
                let pl = Planes::new(g, images, block);
                let phases = phase_planes(g, &pl, big, images);
                let positions = pl.kept_span(g, images).next_multiple_of(block);
                let offs = taps_by_channel(g)
                    .map(|(ki, kj, c)| pl.tap_start(g, ki, kj, c))
                    .collect::<Vec<_>>();
                let mut acc = vec![T::zero(); rows * positions];
                sum(&mut acc, *rows, positions, w, &phases, &offs);
                pl.keep(g, &acc, positions, images, small);
            }
            Product::Gemm { taps } => gemm_groups(g, big, taps, o, images, small),
        }
        if let Some(bias) = bias {
            add_bias_in_place(small, bias, per_image);
        }
    })
}

/// The taps and channels in the order of the kernel's depth: `(ki, kj, c)`.
fn taps_by_channel(g: &Geom) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
    (0..g.k).flat_map(move |ki| (0..g.k).flat_map(move |kj| (0..g.c).map(move |c| (ki, kj, c))))
}

/// How the forward product is computed, with the weights laid out for it.
enum Product<T: 'static> {
    /// The [`shifted`] kernel; `w` is `[k²·C, rows]` (tap, channel; output channel), with zero
    /// columns up to `rows`, a multiple of the kernel's [`shifted::tile`].
    Kernel {
        sum: shifted::Kernel<T>,
        w: Vec<T>,
        rows: usize,
    },
    /// The crate's GEMMs, one per tap of a row-major `[o, C]` matrix.
    Gemm { taps: Vec<Vec<T>> },
}

impl<T: HostFloat> Product<T> {
    fn new(g: &Geom, w: View<T>) -> Self {
        let (o, kk) = (w.rows, g.k * g.k);
        let at = |oc: usize, c: usize, t: usize| w.data[oc * w.rs + (c * kk + t) * w.cs];
        if let Some(sum) = T::shifted_kernel() {
            let rows = o.next_multiple_of(shifted::tile(o).rows);
            let mut packed = Vec::with_capacity(kk * g.c * rows);
            for (ki, kj, c) in taps_by_channel(g) {
                packed.extend((0..o).map(|oc| at(oc, c, ki * g.k + kj)));
                packed.resize(packed.len() + rows - o, T::zero());
            }
            return Product::Kernel {
                sum,
                w: packed,
                rows,
            };
        }
        let taps = (0..kk)
            .map(|t| {
                (0..o)
                    .flat_map(|oc| (0..g.c).map(move |c| at(oc, c, t)))
                    .collect()
            })
            .collect();
        Product::Gemm { taps }
    }
}

/// The crate's path of one task: per group of images, one GEMM per tap into `[o, positions]`.
fn gemm_groups<T: HostFloat>(
    g: &Geom,
    big: &[T],
    taps: &[Vec<T>],
    o: usize,
    images: usize,
    small: &mut [T],
) {
    let per_image = g.hs * g.ws;
    let group = GROUP.min(images.max(1));
    // Room for whole groups: the last one's runs may reach past the last image.
    let pl = Planes::new(g, images.next_multiple_of(group), 8);
    let phases = phase_planes(g, &pl, big, images);
    // Rounded up to a multiple of 8: the crate then reads the runs without packing them.
    let gm = pl.kept_span(g, group).next_multiple_of(8);
    // `[o, gm]`, row-major: the crate computes it as its transpose, with the runs as the left
    // operand.
    let mut acc = vec![T::zero(); o * gm];
    for n0 in (0..images).step_by(group) {
        let mut first = true;
        for ki in 0..g.k {
            for kj in 0..g.k {
                let runs = View {
                    data: &phases[pl.tap_start(g, ki, kj, 0) + n0 * pl.u * pl.v..],
                    rows: g.c,
                    cols: gm,
                    rs: pl.channel,
                    cs: 1,
                };
                let wt = View::row_major(&taps[ki * g.k + kj], o, g.c);
                matmul(ViewMut::row_major(&mut acc, o, gm), wt, runs, !first);
                first = false;
            }
        }
        // The kept positions, channels first.
        let m = (n0 + group).min(images) - n0;
        let to = &mut small[n0 * o * per_image..(n0 + m) * o * per_image];
        pl.keep(g, &acc, gm, m, to);
    }
}

/// The phase planes of `images` images of `big`: phase `(a, b)`, channel `c`, image `n`, row `u`,
/// column `v` at `((a·s + b)·C + c)·channel + n·u_len·v_len + u·v_len + v`, holding input row
/// `s·u + a − p`, column `s·v + b − p` (zero outside the input and in the slack).
fn phase_planes<T: HostFloat>(g: &Geom, pl: &Planes, big: &[T], images: usize) -> Vec<T> {
    let (plane, img) = (g.hb * g.wb, g.c * g.hb * g.wb);
    let mut out = vec![T::zero(); g.s * g.s * g.c * pl.channel];
    for a in 0..g.s {
        for b in 0..g.s {
            // The plane columns `v` whose input column `s·v + b − p` lies inside the image.
            let v0 = g.p.saturating_sub(b).div_ceil(g.s).min(pl.v);
            let v1 = (g.wb + g.p).saturating_sub(b).div_ceil(g.s).clamp(v0, pl.v);
            for c in 0..g.c {
                let base = ((a * g.s + b) * g.c + c) * pl.channel;
                for n in 0..images {
                    for u in 0..pl.u {
                        let Some(r) = (g.s * u + a).checked_sub(g.p).filter(|r| *r < g.hb) else {
                            continue;
                        };
                        let src = &big[n * img + c * plane + r * g.wb..][..g.wb];
                        let row = base + (n * pl.u + u) * pl.v;
                        let dst = &mut out[row + v0..row + v1];
                        let x0 = g.s * v0 + b - g.p;
                        copy_strided_from(dst, &src[x0..], g.s);
                    }
                }
            }
        }
    }
    out
}
