//! PNG pictures of a run: grids of images (samples, reconstructions) and loss curves. Pure pixel
//! code on `f32` slices (no candle); files are written atomically.

use super::rundir::atomic_write;
use std::io;
use std::path::Path;

/// The grey of grid borders and empty cells.
pub const BORDER_GREY: u8 = 128;
/// The width of grid borders, in pixels.
pub const BORDER: usize = 2;

/// The largest picture side written (PNG allows more; nobody wants more).
const MAX_SIDE: usize = 1 << 15;

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.into())
}

/// Writes `n` images as a grid PNG: ⌈√n⌉ columns, `BORDER`-pixel grey borders, each image scaled up
/// `upscale` times (nearest neighbour). `images` holds `n × channels × height × width` values
/// (row-major, channels first, like a `[n, c, h, w]` tensor); `channels` is 1 (grey) or 3 (RGB).
/// Values map linearly from `range` to 0..=255 and are clamped; NaN is black.
#[allow(clippy::too_many_arguments)]
pub fn write_grid_png(
    path: &Path,
    images: &[f32],
    n: usize,
    channels: usize,
    height: usize,
    width: usize,
    range: (f32, f32),
    upscale: usize,
) -> Result<(), io::Error> {
    let png = grid_png(images, n, channels, height, width, range, upscale)?;
    atomic_write(path, &png)
}

/// The PNG bytes of [`write_grid_png`].
#[allow(clippy::too_many_arguments)]
pub fn grid_png(
    images: &[f32],
    n: usize,
    channels: usize,
    height: usize,
    width: usize,
    range: (f32, f32),
    upscale: usize,
) -> Result<Vec<u8>, io::Error> {
    if channels != 1 && channels != 3 {
        return Err(invalid(format!(
            "an image grid needs 1 or 3 channels, not {channels}"
        )));
    }
    if n == 0 || height == 0 || width == 0 || upscale == 0 {
        return Err(invalid(format!(
            "an image grid needs at least one image of at least one pixel \
             (n = {n}, {height}×{width}, upscale {upscale})"
        )));
    }
    let (lo, hi) = range;
    if !(lo.is_finite() && hi.is_finite() && hi > lo) {
        return Err(invalid(format!("bad pixel range [{lo}, {hi}]")));
    }
    let per_image = channels
        .checked_mul(height)
        .and_then(|x| x.checked_mul(width))
        .ok_or_else(|| invalid("image size overflows"))?;
    let needed = per_image
        .checked_mul(n)
        .ok_or_else(|| invalid("image size overflows"))?;
    if images.len() != needed {
        return Err(invalid(format!(
            "{n} images of {channels}×{height}×{width} need {needed} values, got {}",
            images.len()
        )));
    }
    let cols = (1..=n).find(|c| c * c >= n).unwrap_or(n);
    let rows = n.div_ceil(cols);
    let cell_h = height
        .checked_mul(upscale)
        .ok_or_else(|| invalid("picture too large"))?;
    let cell_w = width
        .checked_mul(upscale)
        .ok_or_else(|| invalid("picture too large"))?;
    let side = |count: usize, cell: usize| {
        count
            .checked_mul(cell + BORDER)
            .and_then(|x| x.checked_add(BORDER))
            .filter(|&x| x <= MAX_SIDE)
            .ok_or_else(|| invalid("picture too large"))
    };
    let img_w = side(cols, cell_w)?;
    let img_h = side(rows, cell_h)?;
    let out_c = channels;
    let mut pixels = vec![BORDER_GREY; img_w * img_h * out_c];
    let scale = 255.0 / (hi - lo);
    let to_byte = |v: f32| -> u8 {
        if v.is_nan() {
            0
        } else {
            ((v - lo) * scale).round().clamp(0.0, 255.0) as u8
        }
    };
    for k in 0..n {
        let (r, c) = (k / cols, k % cols);
        let y0 = BORDER + r * (cell_h + BORDER);
        let x0 = BORDER + c * (cell_w + BORDER);
        let img = &images[k * per_image..(k + 1) * per_image];
        for y in 0..cell_h {
            for x in 0..cell_w {
                let (sy, sx) = (y / upscale, x / upscale);
                let at = ((y0 + y) * img_w + x0 + x) * out_c;
                for ch in 0..channels {
                    pixels[at + ch] = to_byte(img[(ch * height + sy) * width + sx]);
                }
            }
        }
    }
    let color = if channels == 1 {
        png::ColorType::Grayscale
    } else {
        png::ColorType::Rgb
    };
    encode(&pixels, img_w, img_h, color)
}

fn encode(
    pixels: &[u8],
    width: usize,
    height: usize,
    color: png::ColorType,
) -> Result<Vec<u8>, io::Error> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, width as u32, height as u32);
    enc.set_color(color);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header().map_err(io::Error::other)?;
    w.write_image_data(pixels).map_err(io::Error::other)?;
    w.finish().map_err(io::Error::other)?;
    Ok(out)
}

/// The colors of curve series, in order (then repeating).
pub const CURVE_COLORS: [[u8; 3]; 6] = [
    [31, 119, 180],
    [214, 39, 40],
    [44, 160, 44],
    [255, 127, 14],
    [148, 103, 189],
    [23, 190, 207],
];

/// Writes a line plot of `series` (name, points (x, y)) as an RGB PNG of `width × height` pixels:
/// white background, axes, each series in its color (see [`CURVE_COLORS`]) with its name in a small
/// pixel font in the legend, and the axis ends labelled. Non-finite points break a line.
pub fn write_curve_png(
    path: &Path,
    series: &[(&str, Vec<(f64, f64)>)],
    width: usize,
    height: usize,
) -> Result<(), io::Error> {
    let png = curve_png(series, width, height)?;
    atomic_write(path, &png)
}

/// A simple RGB canvas.
struct Canvas {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

impl Canvas {
    fn new(w: usize, h: usize) -> Self {
        Canvas {
            w,
            h,
            px: vec![255; w * h * 3],
        }
    }

    fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < self.w && (y as usize) < self.h {
            let at = (y as usize * self.w + x as usize) * 3;
            self.px[at..at + 3].copy_from_slice(&c);
        }
    }

    /// Bresenham, `thick` pixels wide (vertically).
    fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: [u8; 3], thick: i64) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        // Bounded by the canvas: endpoints are clamped by the caller.
        loop {
            for t in 0..thick {
                self.set(x, y + t, c);
            }
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    fn rect(&mut self, x: i64, y: i64, w: i64, h: i64, c: [u8; 3]) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.set(xx, yy, c);
            }
        }
    }

    /// Text in the 3×5 font at (x, y) (top left), `scale` pixels per font pixel; returns the width.
    fn text(&mut self, x: i64, y: i64, s: &str, c: [u8; 3], scale: i64) -> i64 {
        let mut cx = x;
        for ch in s.chars() {
            let g = glyph(ch);
            for row in 0..5 {
                for col in 0..3 {
                    if g >> (14 - (row * 3 + col)) & 1 == 1 {
                        self.rect(cx + col * scale, y + row * scale, scale, scale, c);
                    }
                }
            }
            cx += 4 * scale;
        }
        cx - x
    }
}

/// The width of `s` in the 3×5 font.
fn text_width(s: &str, scale: i64) -> i64 {
    s.chars().count() as i64 * 4 * scale
}

/// A 3×5 pixel glyph: 15 bits, row by row from the top, the left pixel first (most significant).
fn glyph(c: char) -> u16 {
    let rows: [u8; 5] = match c.to_ascii_lowercase() {
        '0' => [0b111, 0b101, 0b101, 0b101, 0b111],
        '1' => [0b010, 0b110, 0b010, 0b010, 0b111],
        '2' => [0b111, 0b001, 0b111, 0b100, 0b111],
        '3' => [0b111, 0b001, 0b011, 0b001, 0b111],
        '4' => [0b101, 0b101, 0b111, 0b001, 0b001],
        '5' => [0b111, 0b100, 0b111, 0b001, 0b111],
        '6' => [0b111, 0b100, 0b111, 0b101, 0b111],
        '7' => [0b111, 0b001, 0b010, 0b010, 0b010],
        '8' => [0b111, 0b101, 0b111, 0b101, 0b111],
        '9' => [0b111, 0b101, 0b111, 0b001, 0b111],
        'a' => [0b010, 0b101, 0b111, 0b101, 0b101],
        'b' => [0b110, 0b101, 0b110, 0b101, 0b110],
        'c' => [0b011, 0b100, 0b100, 0b100, 0b011],
        'd' => [0b110, 0b101, 0b101, 0b101, 0b110],
        'e' => [0b111, 0b100, 0b110, 0b100, 0b111],
        'f' => [0b111, 0b100, 0b110, 0b100, 0b100],
        'g' => [0b011, 0b100, 0b101, 0b101, 0b011],
        'h' => [0b101, 0b101, 0b111, 0b101, 0b101],
        'i' => [0b111, 0b010, 0b010, 0b010, 0b111],
        'j' => [0b001, 0b001, 0b001, 0b101, 0b010],
        'k' => [0b101, 0b101, 0b110, 0b101, 0b101],
        'l' => [0b100, 0b100, 0b100, 0b100, 0b111],
        'm' => [0b101, 0b111, 0b111, 0b101, 0b101],
        'n' => [0b110, 0b101, 0b101, 0b101, 0b101],
        'o' => [0b010, 0b101, 0b101, 0b101, 0b010],
        'p' => [0b110, 0b101, 0b110, 0b100, 0b100],
        'q' => [0b010, 0b101, 0b101, 0b110, 0b011],
        'r' => [0b110, 0b101, 0b110, 0b101, 0b101],
        's' => [0b011, 0b100, 0b010, 0b001, 0b110],
        't' => [0b111, 0b010, 0b010, 0b010, 0b010],
        'u' => [0b101, 0b101, 0b101, 0b101, 0b111],
        'v' => [0b101, 0b101, 0b101, 0b101, 0b010],
        'w' => [0b101, 0b101, 0b111, 0b111, 0b101],
        'x' => [0b101, 0b101, 0b010, 0b101, 0b101],
        'y' => [0b101, 0b101, 0b010, 0b010, 0b010],
        'z' => [0b111, 0b001, 0b010, 0b100, 0b111],
        '-' => [0b000, 0b000, 0b111, 0b000, 0b000],
        '+' => [0b000, 0b010, 0b111, 0b010, 0b000],
        '.' => [0b000, 0b000, 0b000, 0b000, 0b010],
        '_' => [0b000, 0b000, 0b000, 0b000, 0b111],
        '(' => [0b001, 0b010, 0b010, 0b010, 0b001],
        ')' => [0b100, 0b010, 0b010, 0b010, 0b100],
        ' ' => [0; 5],
        // Unknown characters: a small box.
        _ => [0b000, 0b111, 0b101, 0b111, 0b000],
    };
    rows.iter().fold(0u16, |acc, r| (acc << 3) | u16::from(*r))
}

/// A short label for an axis end: `1200`, `0.0125`, `-3.5e-05`.
pub fn axis_label(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        let s = format!("{v:.2e}");
        return s;
    }
    let digits = (3 - a.log10().floor() as i64).clamp(0, 6) as usize;
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// The PNG bytes of [`write_curve_png`].
pub fn curve_png(
    series: &[(&str, Vec<(f64, f64)>)],
    width: usize,
    height: usize,
) -> Result<Vec<u8>, io::Error> {
    if !(64..=MAX_SIDE).contains(&width) || !(48..=MAX_SIDE).contains(&height) {
        return Err(invalid(format!(
            "a curve plot needs 64..={MAX_SIDE} × 48..={MAX_SIDE} pixels, not {width}×{height}"
        )));
    }
    let mut cv = Canvas::new(width, height);
    let black = [0, 0, 0];
    let grey = [150, 150, 150];
    // Font pixels: doubled on large plots.
    let scale: i64 = if width >= 400 && height >= 250 { 2 } else { 1 };
    let line_h = 7 * scale;
    let finite = || {
        series
            .iter()
            .flat_map(|(_, p)| p.iter())
            .filter(|(x, y)| x.is_finite() && y.is_finite())
    };
    let (mut x_lo, mut x_hi, mut y_lo, mut y_hi) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in finite() {
        x_lo = x_lo.min(x);
        x_hi = x_hi.max(x);
        y_lo = y_lo.min(y);
        y_hi = y_hi.max(y);
    }
    let have_points = x_lo <= x_hi;
    if !have_points {
        (x_lo, x_hi, y_lo, y_hi) = (0.0, 1.0, 0.0, 1.0);
    }
    if x_hi - x_lo <= 0.0 || !(x_hi - x_lo).is_finite() {
        x_hi = x_lo + 1.0;
    }
    if y_hi - y_lo <= 0.0 || !(y_hi - y_lo).is_finite() {
        let pad = if y_lo == 0.0 { 1.0 } else { y_lo.abs() * 0.1 };
        (y_lo, y_hi) = (y_lo - pad, y_hi + pad);
    }
    // Layout: labels left of the y axis and under the x axis, legend at the top.
    let (w, h) = (width as i64, height as i64);
    let y_labels = [axis_label(y_hi), axis_label(y_lo)];
    let left = 4
        + y_labels
            .iter()
            .map(|l| text_width(l, scale))
            .max()
            .unwrap_or(0)
        + 3;
    let legend_rows = series.len().max(1) as i64;
    let top = 4 + legend_rows.min((h / 4) / line_h) * line_h + 2;
    let bottom = h - 6 - 6 * scale;
    let right = w - 6;
    let (left, top) = (left.min(w / 2), top.min(h / 2));
    let px = |x: f64| left + ((x - x_lo) / (x_hi - x_lo) * (right - left) as f64).round() as i64;
    let py = |y: f64| bottom - ((y - y_lo) / (y_hi - y_lo) * (bottom - top) as f64).round() as i64;
    // Axes.
    cv.line((left, top), (left, bottom), black, 1);
    cv.line((left, bottom), (right, bottom), black, 1);
    for (i, l) in y_labels.iter().enumerate() {
        let y = if i == 0 { top } else { bottom - 5 * scale };
        cv.text(left - 3 - text_width(l, scale), y, l, black, scale);
        cv.line(
            (left - 2, if i == 0 { top } else { bottom }),
            (left, if i == 0 { top } else { bottom }),
            black,
            1,
        );
    }
    let (xl, xh) = (axis_label(x_lo), axis_label(x_hi));
    cv.text(left, bottom + 3 + scale, &xl, black, scale);
    cv.text(
        right - text_width(&xh, scale),
        bottom + 3 + scale,
        &xh,
        black,
        scale,
    );
    // A zero line when zero is inside the y range.
    if y_lo < 0.0 && y_hi > 0.0 {
        let y0 = py(0.0);
        let mut x = left + 1;
        while x < right {
            cv.set(x, y0, grey);
            x += 3;
        }
    }
    // Series and legend.
    for (i, (name, points)) in series.iter().enumerate() {
        let c = CURVE_COLORS[i % CURVE_COLORS.len()];
        let row = i as i64;
        if 4 + (row + 1) * line_h <= top {
            let ly = 4 + row * line_h;
            cv.rect(left + 4, ly + scale, 8 * scale, 3 * scale, c);
            cv.text(left + 4 + 12 * scale, ly, name, c, scale);
        }
        let mut prev: Option<(i64, i64)> = None;
        for &(x, y) in points {
            if !(x.is_finite() && y.is_finite()) {
                prev = None;
                continue;
            }
            let p = (px(x).clamp(0, w - 1), py(y).clamp(0, h - 1));
            match prev {
                Some(q) => cv.line(q, p, c, 2),
                None => cv.rect(p.0, p.1, 2, 2, c),
            }
            prev = Some(p);
        }
    }
    encode(&cv.px, width, height, png::ColorType::Rgb)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::rundir::tests::scratch;
    use std::io::Cursor;

    fn decode(bytes: &[u8]) -> (png::OutputInfo, Vec<u8>) {
        let dec = png::Decoder::new(Cursor::new(bytes.to_vec()));
        let mut reader = dec.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info, buf)
    }

    #[test]
    fn grey_grid_has_the_right_size_and_pixels() {
        let dir = scratch("image-grid");
        let p = dir.join("samples.png");
        // 5 images of 2×3: image k has value k/4 everywhere except pixel (0,0) = -1 (clamped).
        let (n, h, w) = (5, 2, 3);
        let mut v = Vec::new();
        for k in 0..n {
            for i in 0..h * w {
                v.push(if i == 0 { -5.0 } else { k as f32 / 4.0 });
            }
        }
        write_grid_png(&p, &v, n, 1, h, w, (0.0, 1.0), 4).unwrap();
        let (info, px) = decode(&std::fs::read(&p).unwrap());
        // 3 columns, 2 rows; cells 12×8, borders 2.
        assert_eq!(info.width, 3 * (12 + 2) + 2);
        assert_eq!(info.height, 2 * (8 + 2) + 2);
        assert_eq!(info.color_type, png::ColorType::Grayscale);
        let at = |x: usize, y: usize| px[y * info.width as usize + x];
        assert_eq!(at(0, 0), BORDER_GREY);
        assert_eq!(at(2, 2), 0); // clamped corner of image 0
        assert_eq!(at(5, 5), 0); // image 0 = 0.0
        // image 1 (column 1): 0.25 → 64; its corner block is 4×4 pixels.
        let x1 = 2 + 12 + 2;
        assert_eq!(at(x1 + 3, 2 + 3), 0);
        assert_eq!(at(x1 + 4, 2), 64);
        // image 4 (row 1, column 1): 1.0 → 255.
        assert_eq!(at(x1 + 8, 2 + 8 + 2 + 5), 255);
        // The empty sixth cell is border grey.
        assert_eq!(at(2 * 14 + 6, 14), BORDER_GREY);
    }

    #[test]
    fn rgb_grid_keeps_channels() {
        // One 1×2 RGB image in [-1, 1]: pixel 0 red, pixel 1 blue.
        let v = [1.0, -1.0, -1.0, -1.0, /* g */ -1.0, 1.0 /* b */]; // layout c, h, w
        let bytes = grid_png(&v, 1, 3, 1, 2, (-1.0, 1.0), 1).unwrap();
        let (info, px) = decode(&bytes);
        assert_eq!((info.width, info.height), (2 + 2 + 2, 1 + 2 + 2));
        assert_eq!(info.color_type, png::ColorType::Rgb);
        let at = |x: usize, y: usize| &px[(y * info.width as usize + x) * 3..][..3];
        assert_eq!(at(2, 2), [255, 0, 0]);
        assert_eq!(at(3, 2), [0, 0, 255]);
    }

    #[test]
    fn bad_grid_arguments_are_errors() {
        let v = vec![0.0; 12];
        assert!(grid_png(&v, 3, 2, 2, 1, (0.0, 1.0), 1).is_err()); // 2 channels
        assert!(grid_png(&v, 4, 1, 2, 2, (0.0, 1.0), 1).is_err()); // 16 ≠ 12 values
        assert!(grid_png(&v, 3, 1, 2, 2, (1.0, 1.0), 1).is_err()); // empty range
        assert!(grid_png(&v, 3, 1, 2, 2, (0.0, f32::NAN), 1).is_err());
        assert!(grid_png(&v, 0, 1, 2, 2, (0.0, 1.0), 1).is_err());
        assert!(grid_png(&v, 3, 1, 2, 2, (0.0, 1.0), usize::MAX).is_err());
        assert!(grid_png(&[f32::NAN; 4], 1, 1, 2, 2, (0.0, 1.0), 1).is_ok());
    }

    #[test]
    fn curves_decode() {
        let dir = scratch("image-curves");
        let p = dir.join("curves.png");
        let a: Vec<(f64, f64)> = (0..100)
            .map(|i| (i as f64, (i as f64 / 10.0).sin()))
            .collect();
        let mut b: Vec<(f64, f64)> = (0..100)
            .map(|i| (i as f64, 1.0 / (1.0 + i as f64)))
            .collect();
        b[50].1 = f64::NAN;
        write_curve_png(&p, &[("loss_g", a), ("loss_f", b)], 320, 200).unwrap();
        let (info, px) = decode(&std::fs::read(&p).unwrap());
        assert_eq!((info.width, info.height), (320, 200));
        // Both series colors appear.
        for c in &CURVE_COLORS[..2] {
            assert!(px.chunks(3).any(|p| p == c), "{c:?}");
        }
        // Degenerate inputs still give a picture.
        curve_png(&[], 64, 48).unwrap();
        curve_png(&[("x", vec![(1.0, 2.0)])], 64, 48).unwrap();
        curve_png(&[("x", vec![(f64::NAN, f64::INFINITY)])], 100, 100).unwrap();
        curve_png(&[("x", vec![(0.0, -1e300), (1.0, 1e300)])], 100, 100).unwrap();
        assert!(curve_png(&[], 10, 10).is_err());
    }

    #[test]
    fn axis_labels_are_short() {
        assert_eq!(axis_label(0.0), "0");
        assert_eq!(axis_label(2000.0), "2000");
        assert_eq!(axis_label(0.0125), "0.0125");
        assert_eq!(axis_label(-3.5), "-3.5");
        assert_eq!(axis_label(1.5e-5), "1.50e-5");
        assert_eq!(glyph('a'), glyph('A'));
    }
}
