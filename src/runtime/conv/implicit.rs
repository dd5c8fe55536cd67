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

use super::Geom;
use super::add_bias_in_place;
use super::blocked::images_per_task;
use crate::runtime::gemm::{View, ViewMut, matmul};
use crate::runtime::host::{HostFloat, par_chunks_filled};

/// Fewer input channels make GEMMs too shallow (the CEBM's first layer has one).
const MIN_CHANNELS: usize = 16;
/// At least this fraction of the computed positions must be kept. On MNIST the CEBM's 14 × 14
/// layer keeps 88 % and its forward product took 15 % less time than with the columns; its
/// 7 × 7 layer keeps 78 % and took 27 % more.
const MIN_KEPT: f64 = 0.8;

/// Images per group of GEMMs: their runs and products stay in the L2 cache.
const GROUP: usize = 8;

/// The layout of one task's phase planes.
struct Planes {
    /// Rows and row length of a phase plane of one image.
    u: usize,
    v: usize,
    /// Values per channel of a phase: the images' planes and 8 values of slack, so that every
    /// tap's run over a group of images ([`Planes::positions`]) stays inside.
    channel: usize,
}

impl Planes {
    /// The planes of `images` images.
    fn new(g: &Geom, images: usize) -> Self {
        let d = g.k.div_ceil(g.s);
        let (u, v) = (g.hs + d - 1, g.ws + d - 1);
        Planes {
            u,
            v,
            channel: images * u * v + 8,
        }
    }

    /// Positions computed for `images` consecutive images: up to the last kept one of the last
    /// image, rounded up to a multiple of 8 (the crate then reads the runs without packing them).
    fn positions(&self, g: &Geom, images: usize) -> usize {
        let m = (images.max(1) - 1) * self.u * self.v + (g.hs - 1) * self.v + g.ws;
        m.next_multiple_of(8)
    }
}

/// Whether [`gather_gemm`] should compute `g`'s forward product.
pub(super) fn applies(g: &Geom) -> bool {
    if g.c < MIN_CHANNELS || g.hs == 0 || g.ws == 0 || g.s == 0 {
        return false;
    }
    let images = images_per_task(g).min(g.n.max(1)).min(GROUP);
    let computed = Planes::new(g, images).positions(g, images);
    (images * g.hs * g.ws) as f64 >= MIN_KEPT * computed as f64
}

/// `small[n, o, (i, j)] = Σ im2col(big)[(n, i, j), q] · w[o, q] (+ bias[o])` for
/// `w: [c_small, C·k²]`, as [`super::blocked::gather_gemm`] computes it.
pub(super) fn gather_gemm<T: HostFloat>(
    g: &Geom,
    big: &[T],
    w: View<T>,
    bias: Option<&[T]>,
) -> Vec<T> {
    let (o, kk) = (w.rows, g.k * g.k);
    // Per tap, `w[:, c, ki, kj]` as a row-major `[o, C]` matrix (read by the crate in place).
    let taps: Vec<Vec<T>> = (0..kk)
        .map(|t| {
            let at = |oc: usize, c: usize| w.data[oc * w.rs + (c * kk + t) * w.cs];
            (0..o)
                .flat_map(|oc| (0..g.c).map(move |c| at(oc, c)))
                .collect()
        })
        .collect();
    let (per_image, img) = (g.hs * g.ws, g.c * g.hb * g.wb);
    let per = images_per_task(g);
    par_chunks_filled(g.n * o * per_image, per * o * per_image, |task, small| {
        let images = small.len() / (o * per_image).max(1);
        let big = &big[task * per * img..(task * per + images) * img];
        let group = GROUP.min(images.max(1));
        // Room for whole groups: the last one's runs may reach past the last image.
        let pl = Planes::new(g, images.next_multiple_of(group));
        let phases = phase_planes(g, &pl, big, images);
        let phase_len = g.c * pl.channel;
        let gm = pl.positions(g, group);
        // `[o, gm]`, row-major: the crate computes it as its transpose, with the runs as the left
        // operand.
        let mut acc = vec![T::zero(); o * gm];
        for n0 in (0..images).step_by(group) {
            let mut first = true;
            for ki in 0..g.k {
                for kj in 0..g.k {
                    let (a, di, b, dj) = (ki % g.s, ki / g.s, kj % g.s, kj / g.s);
                    let start = (a * g.s + b) * phase_len + n0 * pl.u * pl.v + di * pl.v + dj;
                    let runs = View {
                        data: &phases[start..],
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
            for n in n0..(n0 + group).min(images) {
                for oc in 0..o {
                    for i in 0..g.hs {
                        let at = oc * gm + (n - n0) * pl.u * pl.v + i * pl.v;
                        let to = ((n * o + oc) * g.hs + i) * g.ws;
                        small[to..to + g.ws].copy_from_slice(&acc[at..at + g.ws]);
                    }
                }
            }
        }
        if let Some(bias) = bias {
            add_bias_in_place(small, bias, per_image);
        }
    })
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
                        for (d, x) in dst.iter_mut().zip(src[x0..].iter().step_by(g.s)) {
                            *d = *x;
                        }
                    }
                }
            }
        }
    }
    out
}
