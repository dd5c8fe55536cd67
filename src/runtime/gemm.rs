//! A safe front to the `gemm` crate (the GEMM under candle's CPU `matmul`) for products of strided
//! views. [`matmul`] runs on the calling thread: the blocked convolutions multiply cache-sized
//! blocks inside their own rayon tasks, so it must neither spawn threads nor need contiguous
//! tensors. [`product`] returns a new matrix computed on all of rayon's threads (the whole-chunk
//! GEMMs of the convolutions' other path).
//!
//! The crate's entry point takes raw pointers and strides; both check that every element of each
//! view lies inside its slice and that no two elements of the destination share memory, which is
//! all the crate needs to stay in bounds and race-free.

use super::host::HostFloat;

/// A matrix view: element `(r, c)` is `data[r·rs + c·cs]`.
#[derive(Clone, Copy, Debug)]
pub struct View<'a, T> {
    pub data: &'a [T],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a, T> View<'a, T> {
    /// The first `rows · cols` values of `data`, row by row.
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        View {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose (no copy).
    pub fn t(self) -> Self {
        View {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }
}

/// A destination: element `(r, c)` is `data[r·rs + c]`, rows not overlapping (`rs ≥ cols`).
#[derive(Debug)]
pub struct ViewMut<'a, T> {
    pub data: &'a mut [T],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
}

impl<'a, T> ViewMut<'a, T> {
    /// The first `rows · cols` values of `data`, row by row.
    pub fn row_major(data: &'a mut [T], rows: usize, cols: usize) -> Self {
        ViewMut {
            data,
            rows,
            cols,
            rs: cols,
        }
    }
}

/// Whether the last element of a `rows × cols` view with strides `(rs, cs)` lies in `0..len`.
fn inside(len: usize, rows: usize, cols: usize, rs: usize, cs: usize) -> bool {
    if rows == 0 || cols == 0 {
        return true;
    }
    let last = (rows - 1)
        .checked_mul(rs)
        .and_then(|a| (cols - 1).checked_mul(cs).and_then(|b| a.checked_add(b)));
    last.is_some_and(|last| last < len)
}

/// Panics unless `a · b` is defined and both views lie inside their slices.
fn check_operands<T>(a: &View<T>, b: &View<T>) {
    assert!(
        a.cols == b.rows,
        "matmul shapes: [{}, {}] · [{}, {}]",
        a.rows,
        a.cols,
        b.rows,
        b.cols
    );
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(
        inside(a.data.len(), m, k, a.rs, a.cs),
        "matmul: lhs out of bounds"
    );
    assert!(
        inside(b.data.len(), k, n, b.rs, b.cs),
        "matmul: rhs out of bounds"
    );
}

/// `dst = a · b`, or `dst += a · b` when `accumulate`, single-threaded.
///
/// # Panics
/// When the shapes disagree or a view reaches outside its slice (a caller's bug).
pub fn matmul<T: HostFloat>(dst: ViewMut<T>, a: View<T>, b: View<T>, accumulate: bool) {
    let (m, n, k) = (dst.rows, dst.cols, a.cols);
    assert!(
        a.rows == m && b.rows == k && b.cols == n,
        "matmul shapes: [{m}, {n}] = [{}, {}] · [{}, {}]",
        a.rows,
        a.cols,
        b.rows,
        b.cols
    );
    assert!(
        inside(dst.data.len(), m, n, dst.rs, 1),
        "matmul: destination out of bounds"
    );
    assert!(m <= 1 || dst.rs >= n, "matmul: destination rows overlap");
    check_operands(&a, &b);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                dst.data[r * dst.rs..r * dst.rs + n].fill(T::zero());
            }
        }
        return;
    }
    // SAFETY: the asserts above put every element the crate reads (`a`, `b`) or writes (`dst`,
    // whose rows do not overlap, so its elements are distinct) inside the borrowed slices; `dst`
    // is borrowed mutably, so it aliases neither operand.
    let dst_ptr = dst.data.as_mut_ptr();
    unsafe { call_gemm(dst_ptr, dst.rs, accumulate, &a, &b, gemm::Parallelism::None) };
}

/// The crate's `dst = a·b` (or `dst += a·b` when `read_dst`) for a destination of `a.rows` rows
/// of `b.cols` values, `dst_rs` apart.
///
/// # Safety
/// The operands passed [`check_operands`] with `a.cols > 0`; `dst` is valid for writes (and, when
/// `read_dst`, reads) of the whole destination, whose rows do not overlap, and aliases neither
/// operand.
unsafe fn call_gemm<T: HostFloat>(
    dst: *mut T,
    dst_rs: usize,
    read_dst: bool,
    a: &View<T>,
    b: &View<T>,
    parallelism: gemm::Parallelism,
) {
    let isize_of = |s: usize| isize::try_from(s).expect("a stride fits in isize");
    // SAFETY: the caller's contract.
    unsafe {
        gemm::gemm(
            a.rows,
            b.cols,
            a.cols,
            dst,
            1,
            isize_of(dst_rs),
            read_dst,
            a.data.as_ptr(),
            isize_of(a.cs),
            isize_of(a.rs),
            b.data.as_ptr(),
            isize_of(b.cs),
            isize_of(b.rs),
            T::one(),
            T::one(),
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// `a · b` as a new row-major `[a.rows, b.cols]` vector, on all of rayon's threads (the whole
/// chunk products of the convolutions' GEMM path, as candle's `matmul` would run them, without
/// zeroing the result first: that `memset` was 5 % of a DCGAN posterior step).
///
/// # Panics
/// As [`matmul`].
pub fn product<T: HostFloat>(a: View<T>, b: View<T>) -> Vec<T> {
    let (m, n, k) = (a.rows, b.cols, a.cols);
    check_operands(&a, &b);
    if m == 0 || n == 0 || k == 0 {
        return vec![T::zero(); m * n];
    }
    let threads = rayon::current_num_threads();
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    let mut out: Vec<T> = Vec::with_capacity(m * n);
    // SAFETY: the operands were checked; the destination is the vector's `m · n` spare elements,
    // row-major, which nothing else references. With `read_dst = false` the crate reads none of
    // them and writes every one (`dst = a·b`, k > 0 here), so all are initialised at `set_len`.
    unsafe {
        call_gemm(out.as_mut_ptr(), n, false, &a, &b, parallelism);
        out.set_len(m * n);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `a · b` by definition, in f64.
    fn naive(a: View<f64>, b: View<f64>) -> Vec<f64> {
        let mut out = vec![0.0; a.rows * b.cols];
        for r in 0..a.rows {
            for c in 0..b.cols {
                out[r * b.cols + c] = (0..a.cols)
                    .map(|q| a.data[r * a.rs + q * a.cs] * b.data[q * b.rs + c * b.cs])
                    .sum();
            }
        }
        out
    }

    fn values(len: usize, seed: usize) -> Vec<f64> {
        (0..len)
            .map(|i| ((i * 7 + seed * 13) % 17) as f64 - 8.0)
            .collect()
    }

    #[test]
    fn products_of_strided_views_match_the_definition() {
        for (m, k, n) in [(1, 1, 1), (5, 3, 4), (37, 19, 23), (64, 128, 32), (3, 0, 2)] {
            // A row-major lhs, and a transposed rhs inside a wider buffer.
            let a_data = values(m * k, 1);
            let b_data = values(n * (k + 3), 2);
            let a = View::row_major(&a_data, m, k);
            let b = View {
                data: &b_data,
                rows: n,
                cols: k,
                rs: k + 3,
                cs: 1,
            }
            .t();
            let want = naive(a, b);
            let mut out = vec![1.0; m * n];
            let dst = ViewMut::row_major(&mut out, m, n);
            matmul(dst, a, b, false);
            assert_eq!(out, want, "{m}×{k}×{n}");
            let dst = ViewMut::row_major(&mut out, m, n);
            matmul(dst, a, b, true);
            assert_eq!(out, want.iter().map(|v| 2.0 * v).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_new_product_matches_the_definition() {
        for (m, k, n) in [
            (1, 1, 1),
            (37, 19, 23),
            (300, 64, 130),
            (3, 0, 2),
            (0, 4, 5),
        ] {
            let (a, b) = (values(m * k, 5), values(k * n, 6));
            let (a, b) = (View::row_major(&a, m, k), View::row_major(&b, n, k).t());
            assert_eq!(product(a, b), naive(a, b), "{m}×{k}×{n}");
        }
    }

    #[test]
    fn a_destination_with_a_row_stride_leaves_the_gaps_alone() {
        let (a, b) = (values(6, 3), values(6, 4));
        let (a, b) = (View::row_major(&a, 2, 3), View::row_major(&b, 3, 2));
        let mut out = vec![7.0; 2 * 5];
        matmul(
            ViewMut {
                data: &mut out,
                rows: 2,
                cols: 2,
                rs: 5,
            },
            a,
            b,
            false,
        );
        let want = naive(a, b);
        assert_eq!(
            out,
            vec![
                want[0], want[1], 7.0, 7.0, 7.0, want[2], want[3], 7.0, 7.0, 7.0
            ]
        );
    }

    #[test]
    #[should_panic(expected = "destination rows overlap")]
    fn overlapping_destination_rows_are_refused() {
        let (a, b) = (vec![1.0f32; 6], vec![1.0f32; 6]);
        let mut out = vec![0.0f32; 4];
        let dst = ViewMut {
            data: &mut out,
            rows: 2,
            cols: 2,
            rs: 1,
        };
        matmul(
            dst,
            View::row_major(&a, 2, 3),
            View::row_major(&b, 3, 2),
            false,
        );
    }

    #[test]
    #[should_panic(expected = "rhs out of bounds")]
    fn a_view_past_its_slice_is_refused() {
        let (a, b) = (vec![1.0f32; 6], vec![1.0f32; 5]);
        let mut out = vec![0.0f32; 4];
        let dst = ViewMut::row_major(&mut out, 2, 2);
        matmul(
            dst,
            View::row_major(&a, 2, 3),
            View::row_major(&b, 3, 2),
            false,
        );
    }
}
