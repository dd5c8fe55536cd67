//! Times candle's CPU `conv_transpose2d` / `conv2d` against `ebmc::runtime::conv` (GEMM + col2im)
//! on the generator layers of `specs/lebm_mnist.yaml` and of the paper's DCGAN, f32, batch 100.
//! Run with `cargo run --release --example convt_speed` (`RAYON_NUM_THREADS` pins the threads).

use candle_core::{Device, Tensor, Var};
use ebmc::runtime::conv;
use std::time::Instant;

/// (name, c_in, c_out, input size, k, stride, padding)
const LAYERS: &[(&str, usize, usize, usize, usize, usize, usize)] = &[
    ("lebm  16->128 k7 s1 p0 1x1", 16, 128, 1, 7, 1, 0),
    ("lebm 128->64  k4 s2 p1 7x7", 128, 64, 7, 4, 2, 1),
    ("lebm  64->1   k4 s2 p1 14x14", 64, 1, 14, 4, 2, 1),
    ("dcgan 100->512 k4 s1 p0 1x1", 100, 512, 1, 4, 1, 0),
    ("dcgan 512->256 k4 s2 p1 4x4", 512, 256, 4, 4, 2, 1),
    ("dcgan 256->128 k4 s2 p1 8x8", 256, 128, 8, 4, 2, 1),
    ("dcgan 128->3   k4 s2 p1 16x16", 128, 3, 16, 4, 2, 1),
];
const BATCH: usize = 100;
const REPS: usize = 10;

/// Median times (ms) of `a` and `b`, run alternately (so that both see the same machine load).
fn medians_ms(mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64) {
    a(); // warm-up
    b();
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for _ in 0..REPS {
        let s = Instant::now();
        a();
        ta.push(s.elapsed().as_secs_f64() * 1e3);
        let s = Instant::now();
        b();
        tb.push(s.elapsed().as_secs_f64() * 1e3);
    }
    let med = |mut t: Vec<f64>| {
        t.sort_by(f64::total_cmp);
        (t[REPS / 2 - 1] + t[REPS / 2]) / 2.0
    };
    (med(ta), med(tb))
}

fn main() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    println!(
        "threads: {}, f32, batch {BATCH}, median of {REPS}; GFLOP/s = 2·MACs/time (fwd+bwd: 3× the MACs)",
        candle_core::utils::get_num_threads()
    );
    println!(
        "{:<30} {:>8} | {:>17} {:>17} | {:>17} {:>17} | {:>17} {:>17}",
        "layer",
        "GMAC",
        "convT fwd candle",
        "ours",
        "fwd+bwd candle",
        "ours",
        "VJP conv2d candle",
        "ours"
    );
    let (mut tot_c, mut tot_o, mut tot_cb, mut tot_ob) = (0.0, 0.0, 0.0, 0.0);
    for &(name, ci, co, h, k, s, p) in LAYERS {
        let x = Tensor::randn(0f32, 1.0, (BATCH, ci, h, h), &dev)?;
        let w = Tensor::randn(0f32, 0.05, (ci, co, k, k), &dev)?;
        let ho = (h - 1) * s + k - 2 * p;
        let macs = (BATCH * ci * co * k * k * h * h) as f64;
        let gf = |ms: f64, m: f64| 2.0 * m * macs / (ms * 1e6);
        // Forward.
        let want = x.conv_transpose2d(&w, p, 0, s, 1)?;
        let got = conv::conv_transpose2d(&x, &w, s, p, 0)?;
        let diff = (want.sub(&got)?.abs()?.max_all()?.to_scalar::<f32>()?) as f64;
        assert!(diff < 1e-3, "{name}: max diff {diff}");
        let (fc, fo) = medians_ms(
            || {
                x.conv_transpose2d(&w, p, 0, s, 1).unwrap();
            },
            || {
                conv::conv_transpose2d(&x, &w, s, p, 0).unwrap();
            },
        );
        // Forward + backward (tracked x and w; loss Σ y, so that dL/dy = 1 keeps candle's
        // broadcast ops out of the timing).
        let (xv, wv) = (Var::from_tensor(&x)?, Var::from_tensor(&w)?);
        let (bc, bo) = medians_ms(
            || {
                let y = xv
                    .as_tensor()
                    .conv_transpose2d(wv.as_tensor(), p, 0, s, 1)
                    .unwrap();
                y.backward().unwrap();
            },
            || {
                let y = conv::conv_transpose2d(xv.as_tensor(), wv.as_tensor(), s, p, 0).unwrap();
                y.backward().unwrap();
            },
        );
        // The input gradient of this layer as the derived VJP computes it: conv2d(g, w).
        let g = Tensor::randn(0f32, 1.0, (BATCH, co, ho, ho), &dev)?;
        let (vc, vo) = medians_ms(
            || {
                g.conv2d(&w, p, s, 1, 1).unwrap();
            },
            || {
                conv::conv2d(&g, &w, s, p).unwrap();
            },
        );
        println!(
            "{name:<30} {:>8.3} | {fc:>7.1} ms {:>5.1} GF {fo:>7.1} ms {:>5.1} GF | {bc:>7.1} ms {:>5.1} GF {bo:>7.1} ms {:>5.1} GF | {vc:>7.1} ms {:>5.1} GF {vo:>7.1} ms {:>5.1} GF",
            macs / 1e9,
            gf(fc, 1.0),
            gf(fo, 1.0),
            gf(bc, 3.0),
            gf(bo, 3.0),
            gf(vc, 1.0),
            gf(vo, 1.0),
        );
        tot_c += fc;
        tot_o += fo;
        tot_cb += bc;
        tot_ob += bo;
    }
    println!(
        "totals (all layers): fwd candle {tot_c:.1} ms, ours {tot_o:.1} ms; fwd+bwd candle {tot_cb:.1} ms, ours {tot_ob:.1} ms"
    );
    Ok(())
}
