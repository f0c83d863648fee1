//! A checked GEMM for kernels that need GEMMs on slices of their own buffers, with their own
//! choice of threading: the AVX-512 kernel for f32 where the processor has it (`avx512.rs`),
//! else the `gemm` crate (the one candle uses).
//!
//! Dependencies go one way: this module calls into `avx512.rs` (a leaf that knows nothing of
//! this one), and both take the matrix view of `mat.rs`, re-exported here for the kernels that
//! call `gemm`.
#![deny(unsafe_op_in_unsafe_fn)]
pub(super) use super::mat::Mat;
use super::Store;
use candle_core::Result;

/// Whether f32 GEMMs run on amm's AVX-512 kernel rather than the `gemm` crate's AVX2 ones: the
/// processor has AVX-512 and `AMM_GEMM` is not `gemm` (set it to compare the two; `native`
/// is the default, any other value is reported on stderr and ignored).
pub fn native_gemm() -> bool {
    use std::sync::OnceLock;
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        let has = super::avx512::available();
        #[cfg(not(target_arch = "x86_64"))]
        let has = false;
        super::env_switch("AMM_GEMM", "native", "gemm", has)
    })
}

/// `dst (= or +=) a · b` for a row-major `dst`, on one thread or split over the pool.
pub(super) fn gemm<T: Store>(dst: &mut [T], a: Mat<T>, b: Mat<T>, accumulate: bool, parallel: bool) -> Result<()> {
    // `checked_mul`: a view with a zero stride (a broadcast) may have any number of rows or
    // columns, and a wrapped-around product must not pass for `dst`'s length.
    if a.cols != b.rows || a.rows.checked_mul(b.cols) != Some(dst.len()) || !a.fits() || !b.fits() {
        candle_core::bail!("gemm: ({}×{}) · ({}×{}) into {} values does not fit its buffers", a.rows, a.cols, b.rows, b.cols, dst.len());
    }
    if a.rows == 0 || b.cols == 0 {
        return Ok(());
    }
    if a.cols == 0 {
        if !accumulate {
            dst.fill(T::default());
        }
        return Ok(());
    }
    let threads = if parallel { rayon::current_num_threads() } else { 1 };
    if T::try_native_gemm(dst, a, b, accumulate, threads) {
        return Ok(());
    }
    let parallelism = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    let one = T::one();
    // SAFETY: the `gemm` crate reads `lhs[i * rs + p * cs]` and `rhs[p * rs + j * cs]` and
    // writes `dst[i * b.cols + j]` for `i < a.rows`, `j < b.cols`, `p < a.cols`: `fits` checked
    // above that every such offset of `a` and `b` lies inside its slice (without overflow) and
    // that the strides fit the `isize`s passed, and `dst` is exactly `a.rows × b.cols` values,
    // row-major (column stride 1, row stride `b.cols` ≤ `dst.len()`, so the cast is lossless);
    // `dst` is borrowed mutably, so it aliases neither input, and it is not read when
    // `accumulate` is false; `T` is f32 or f64 (the only `Store` types), which the crate
    // supports (it panics on any other type rather than misbehaving).
    unsafe {
        gemm::gemm(
            a.rows,
            b.cols,
            a.cols,
            dst.as_mut_ptr(),
            1,
            b.cols as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            one,
            one,
            false,
            false,
            false,
            parallelism,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_matches_a_naive_product_with_transposes_and_accumulation() {
        let a: Vec<f64> = (0..6).map(|i| i as f64 - 2.0).collect(); // 2×3
        let b: Vec<f64> = (0..12).map(|i| (i * i) as f64 * 0.5).collect(); // 3×4
        let naive = |a: &Mat<f64>, b: &Mat<f64>| -> Vec<f64> {
            let mut out = vec![0.0; a.rows * b.cols];
            for r in 0..a.rows {
                for c in 0..b.cols {
                    out[r * b.cols + c] = (0..a.cols).map(|k| a.data[r * a.rs + k * a.cs] * b.data[k * b.rs + c * b.cs]).sum();
                }
            }
            out
        };
        let (ma, mb) = (Mat::new(&a, 2, 3), Mat::new(&b, 3, 4));
        for parallel in [false, true] {
            let mut d = vec![1.0; 8];
            gemm(&mut d, ma, mb, false, parallel).unwrap();
            assert_eq!(d, naive(&ma, &mb));
            gemm(&mut d, ma, mb, true, parallel).unwrap();
            assert_eq!(d, naive(&ma, &mb).iter().map(|x| 2.0 * x).collect::<Vec<_>>());
            // (bᵀ · aᵀ) = (a · b)ᵀ
            let mut t = vec![0.0; 8];
            gemm(&mut t, mb.t(), ma.t(), false, parallel).unwrap();
            assert_eq!(t, naive(&mb.t(), &ma.t()));
        }
        let mut small = vec![0.0; 7];
        assert!(gemm(&mut small, ma, mb, false, false).unwrap_err().to_string().contains("does not fit"));
    }
}
