//! CPU kernels as candle custom ops: one graph node where candle's own ops build several.
//!
//! A small step (an MLP at batch 100) is dominated not by its GEMMs alone but by what candle does
//! around them: every op allocates, and every gradient candle accumulates is added into a fresh
//! zero tensor. Each kernel here replaces a chain of candle ops with one node. Their backward
//! passes are made of tensor ops (other kernels of this module among them), so gradients of
//! gradients through them stay exact; each is tested to second order, against candle's own ops
//! or (convolution) against finite differences. On other devices and dtypes the public functions
//! fall back to candle's ops.

/// Runs `body` on the typed slices of f32 or f64 storages (all of one dtype) and stores the result.
macro_rules! typed {
    ($name:expr, ($($s:ident),+), |$($v:ident),+| $body:expr) => {
        match ($($s,)+) {
            ($(CpuStorage::F32($v),)+) => f32::store($body),
            ($(CpuStorage::F64($v),)+) => f64::store($body),
            _ => candle_core::bail!("{}: f32 or f64 only, one dtype for all operands", $name),
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod avx512;
mod conv;
mod gemm;
mod group_norm;
mod linear;
mod mat;
mod matmul;
mod pool;
mod relu;
mod winograd;

pub use conv::{channel_sum, conv2d, conv2d_input_grad, conv2d_weight_grad, conv_fits};
pub use gemm::native_gemm;
pub use group_norm::{channel_affine, channel_dot, group_inv_std, group_norm_backward, group_norm_vjp, group_normalize, norm_fits};
pub use linear::{col_sum, linear, linear_candle};
pub use matmul::matmul;
pub use pool::{pool_argmax, pool_fits, pool_gather, pool_scatter};
pub use relu::{relu, relu_backward, relu_backward_candle};
pub use winograd::winograd_enabled;

use candle_core::{CpuStorage, DType, Layout, Result, Tensor};

/// A kernel choice from the environment variable `var`: `off` chooses the other path, `on` (or
/// the variable unset) this kernel where the processor has it (`available`); any other value is
/// reported on stderr and the default kept. For comparing the two paths, not for tuning.
fn env_switch(var: &str, on: &str, off: &str, available: bool) -> bool {
    match std::env::var(var).as_deref() {
        Ok(v) if v == off => false,
        Ok(v) if v == on => available,
        Err(_) => available,
        Ok(other) => {
            eprintln!("amm: {var}={other} is neither `{off}` nor `{on}`; using the default ({})", if available { on } else { off });
            available
        }
    }
}

/// Whether `t` can go through the kernels of this module (f32 or f64, on the CPU).
pub fn on_cpu(t: &Tensor) -> bool {
    t.device().is_cpu() && matches!(t.dtype(), DType::F32 | DType::F64)
}

/// The contiguous slice a layout describes, or an error naming the kernel.
fn slice<'a, T>(v: &'a [T], l: &Layout, kernel: &str) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("{kernel}: expects a contiguous input"),
    }
}

/// Elements per rayon task: big enough that a task outweighs its scheduling.
const CHUNK: usize = 1 << 15;

/// A vector of `n` entries left unwritten, for a kernel's output or scratch that the kernel
/// writes in full before reading: zero-filling them first was a `memset` over every output
/// (5–8% of a CNN step).
///
/// # Safety
/// The caller writes every entry before any is read.
// clippy's `uninit_vec` is about types with invalid bit patterns or drop glue; `T` is f32 or
// f64, and candle's CPU backend allocates its outputs the same way (`alloc_uninit`).
#[allow(clippy::uninit_vec)]
unsafe fn uninit<T: Store>(n: usize) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    // SAFETY: the capacity is `n`; `T` is f32 or f64, plain data without drop glue, and the
    // caller writes every entry before reading it (this function's contract).
    unsafe { v.set_len(n) };
    v
}

/// `f` element-wise over a slice, in parallel for large ones.
fn map1<T: Copy + Send + Sync>(a: &[T], f: impl Fn(T) -> T + Sync + Send) -> Vec<T> {
    use rayon::prelude::*;
    if a.len() <= CHUNK {
        return a.iter().map(|&a| f(a)).collect();
    }
    let mut out = Vec::new();
    a.par_iter().with_min_len(CHUNK).map(|&a| f(a)).collect_into_vec(&mut out);
    out
}

/// `f` element-wise over two same-size slices, in parallel for large ones.
fn map2<T: Copy + Send + Sync>(a: &[T], b: &[T], f: impl Fn(T, T) -> T + Sync + Send) -> Vec<T> {
    use rayon::prelude::*;
    if a.len() <= CHUNK {
        return a.iter().zip(b).map(|(&a, &b)| f(a, b)).collect();
    }
    let mut out = Vec::new();
    a.par_iter().zip(b).with_min_len(CHUNK).map(|(&a, &b)| f(a, b)).collect_into_vec(&mut out);
    out
}

/// Storage of f32 or f64 values from a typed vector (the only two dtypes the kernels take).
trait Store:
    Sized
    + Copy
    + Default
    + Send
    + Sync
    + 'static
    + std::ops::AddAssign
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
{
    fn store(v: Vec<Self>) -> CpuStorage;
    fn one() -> Self;
    fn from_f64(v: f64) -> Self;
    /// `self · a + b`, rounded once (one FMA instruction where the caller is compiled for it).
    fn mul_add(self, a: Self, b: Self) -> Self;
    /// Runs `dst (= or +=) a · b` on a faster kernel than the `gemm` crate's, where this
    /// processor has one for this type; returns whether it did.
    fn try_native_gemm(_dst: &mut [Self], _a: gemm::Mat<Self>, _b: gemm::Mat<Self>, _accumulate: bool, _threads: usize) -> bool {
        false
    }
}
impl Store for f32 {
    fn store(v: Vec<f32>) -> CpuStorage {
        CpuStorage::F32(v)
    }
    fn one() -> Self {
        1.0
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    #[inline]
    fn mul_add(self, a: Self, b: Self) -> Self {
        f32::mul_add(self, a, b)
    }
    #[cfg(target_arch = "x86_64")]
    fn try_native_gemm(dst: &mut [f32], a: gemm::Mat<f32>, b: gemm::Mat<f32>, accumulate: bool, threads: usize) -> bool {
        // At a small depth the product is bound by C's loads and stores, not by arithmetic,
        // and the `gemm` crate's kernels do better there.
        if !gemm::native_gemm() || a.cols < 16 {
            return false;
        }
        avx512::gemm(dst, a, b, accumulate, threads);
        true
    }
}
impl Store for f64 {
    fn store(v: Vec<f64>) -> CpuStorage {
        CpuStorage::F64(v)
    }
    fn one() -> Self {
        1.0
    }
    fn from_f64(v: f64) -> Self {
        v
    }
    #[inline]
    fn mul_add(self, a: Self, b: Self) -> Self {
        f64::mul_add(self, a, b)
    }
}

/// Test helper: `a` equals `b` up to rounding (relative to `b`'s largest entry, at least 1).
#[cfg(test)]
fn assert_close(a: &Tensor, b: &Tensor, what: &str) {
    let d = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
    let scale = b.abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap().max(1.0);
    assert!(d <= 1e-12 * scale, "{what}: differs by {d} at scale {scale}");
}
