//! The matrix product `a · b` of two 2-D tensors as one node on amm's GEMM.
//!
//! candle's `matmul` runs the `gemm` crate; this node runs [`super::gemm`], which takes the
//! AVX-512 kernel where the processor has one, and accepts transposed views without copying
//! them. Its backward is two more products of this node (`g · bᵀ`, `aᵀ · g`), so gradients of
//! gradients stay in it, and it computes them only for tracked operands.
use super::gemm::{gemm, Mat};
use super::{on_cpu, Store};
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

/// `a · b` for `a` `(m, k)` and `b` `(k, n)`; other ranks, devices and dtypes go to candle's
/// `matmul`.
///
/// ```
/// use amm_core::candle_core::{Device, Tensor};
/// let a = Tensor::new(&[[1f32, 2.0], [3.0, 4.0]], &Device::Cpu)?;
/// let b = Tensor::new(&[[1f32, 0.0, 1.0], [0.0, 1.0, 1.0]], &Device::Cpu)?;
/// let y = amm_core::kernels::matmul(&a, &b)?;
/// assert_eq!(y.to_vec2::<f32>()?, [[1.0, 2.0, 3.0], [3.0, 4.0, 7.0]]);
/// // Transposed operands are views, not copies.
/// assert_eq!(amm_core::kernels::matmul(&b.t()?, &a.t()?)?.to_vec2::<f32>()?, [[1.0, 3.0], [2.0, 4.0], [3.0, 7.0]]);
/// # Ok::<(), amm_core::candle_core::Error>(())
/// ```
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if on_cpu(a) && a.rank() == 2 && b.rank() == 2 && a.dtype() == b.dtype() && b.device().is_cpu() {
        a.apply_op2(b, MatMul)
    } else {
        a.matmul(b)
    }
}

struct MatMul;

/// `a · b` into a fresh row-major buffer (also linear's forward, with `wᵀ` as `b`).
pub(super) fn product<T: Store>(a: &[T], la: &Layout, b: &[T], lb: &Layout) -> Result<Vec<T>> {
    let (a, b) = (Mat::of(a, la)?, Mat::of(b, lb)?);
    if a.cols != b.rows {
        candle_core::bail!("matmul: ({}×{}) · ({}×{})", a.rows, a.cols, b.rows, b.cols);
    }
    // SAFETY: the GEMM, not accumulating, writes all of `y` (zero-filled for a depth of 0).
    let mut y = unsafe { super::uninit(a.rows * b.cols) };
    gemm(&mut y, a, b, false, true)?;
    Ok(y)
}

impl CustomOp2 for MatMul {
    fn name(&self) -> &'static str {
        "matmul"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let shape = (l1.dims()[0], l2.dims()[1]);
        Ok((typed!("matmul", (s1, s2), |a, b| product(a, l1, b, l2)?), shape.into()))
    }
    fn bwd(&self, a: &Tensor, b: &Tensor, _y: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let ga = if a.track_op() { Some(matmul(g, &b.t()?)?) } else { None };
        let gb = if b.track_op() { Some(matmul(&a.t()?, g)?) } else { None };
        Ok((ga, gb))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autograd::second_order_available;
    use crate::kernels::assert_close;
    use candle_core::{DType, Device, Var};

    /// The node gives candle's values and gradients to second order, for plain and transposed
    /// operands, and no gradient to a constant operand.
    #[test]
    fn matmul_node_matches_candles_matmul_to_all_orders() {
        assert!(second_order_available().unwrap(), "run the tests through cargo (.cargo/config.toml sets CANDLE_GRAD_DO_NOT_DETACH)");
        let dev = Device::Cpu;
        let a = Var::from_tensor(&Tensor::randn(0f64, 1.0, (5, 7), &dev).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::randn(0f64, 1.0, (7, 3), &dev).unwrap()).unwrap();
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let what = format!("ta={ta} tb={tb}");
            // A transposed operand is the transpose of a contiguous tensor: a strided view.
            let op =
                |v: &Var, t: bool| if t { v.as_tensor().t().unwrap().contiguous().unwrap().t().unwrap() } else { v.as_tensor().clone() };
            let (x, y) = (op(&a, ta), op(&b, tb));
            assert_eq!(x.is_contiguous(), !ta);
            let (node, reference) = (matmul(&x, &y).unwrap(), x.matmul(&y).unwrap());
            assert_close(&node, &reference, &what);
            let loss = |z: &Tensor| -> Tensor {
                let l = z.powf(3.0).unwrap().sum_all().unwrap();
                let g = l.backward().unwrap();
                let ga = g.get(a.as_tensor()).unwrap().sqr().unwrap().sum_all().unwrap();
                let gb = g.get(b.as_tensor()).unwrap().sqr().unwrap().sum_all().unwrap();
                ((l + ga).unwrap() + gb).unwrap()
            };
            let (g_node, g_ref) = (loss(&node).backward().unwrap(), loss(&reference).backward().unwrap());
            assert_close(g_node.get(a.as_tensor()).unwrap(), g_ref.get(a.as_tensor()).unwrap(), &what);
            assert_close(g_node.get(b.as_tensor()).unwrap(), g_ref.get(b.as_tensor()).unwrap(), &what);
        }
        let c = Tensor::randn(0f64, 1.0, (5, 7), &dev).unwrap();
        let g = matmul(&c, b.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(g.get(&c).is_none() && g.get(b.as_tensor()).is_some(), "a constant operand got a gradient");
    }

    /// f32 (the AVX-512 kernel where the processor has one) agrees with candle's matmul up to
    /// rounding, at a size that runs on both threads; shape mismatches are errors.
    #[test]
    fn f32_products_and_errors() {
        let dev = Device::Cpu;
        let a = Tensor::randn(0f32, 1.0, (130, 300), &dev).unwrap();
        let w = Tensor::randn(0f32, 1.0, (90, 300), &dev).unwrap();
        let d = (matmul(&a, &w.t().unwrap()).unwrap() - a.matmul(&w.t().unwrap()).unwrap()).unwrap();
        assert!(d.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() < 1e-3);
        let e = matmul(&a, &w).unwrap_err().to_string();
        assert!(e.contains("(130×300) · (90×300)"), "{e}");
        // Other ranks go to candle.
        let batched = Tensor::ones((2, 3, 4), DType::F32, &dev).unwrap();
        assert_eq!(matmul(&batched, &Tensor::ones((2, 4, 5), DType::F32, &dev).unwrap()).unwrap().dims(), [2, 3, 5]);
    }
}
