//! The fully connected map `x · wᵀ + b` as one node, and the column sum its bias gradient needs.
//!
//! candle's `x.matmul(&w.t()?)?.broadcast_add(&b)?` is four nodes: the transpose's backward adds
//! the weight's gradient into zeros through a strided copy, the bias's backward reduces over the
//! batch with candle's generic (index-per-element) reduction, and the input's gradient is
//! computed even for a constant input (the data, DeepFool's detached points): a
//! (batch × out) · (out × in) GEMM per forward in the graph. Here the backward returns `gᵀ · x` in
//! `w`'s layout, the bias's gradient by a row-wise sum, and `g · w` only for a tracked input.
use super::matmul::product;
use super::{matmul, on_cpu, slice, Store, CHUNK};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

/// `x · wᵀ (+ b)` for `x` `(m, k)`, `w` `(n, k)` (candle-nn's layout) and `b` `(n)`.
///
/// ```
/// use amm_core::candle_core::{Device, Tensor};
/// let dev = Device::Cpu;
/// let x = Tensor::new(&[[1f32, 2.0]], &dev)?;
/// let w = Tensor::new(&[[1f32, 0.0], [0.0, 1.0], [1.0, 1.0]], &dev)?;
/// let b = Tensor::new(&[0f32, 10.0, 100.0], &dev)?;
/// let y = amm_core::kernels::linear(&x, &w, Some(&b))?;
/// assert_eq!(y.to_vec2::<f32>()?, [[1.0, 12.0, 103.0]]);
/// # Ok::<(), amm_core::candle_core::Error>(())
/// ```
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let fits =
        on_cpu(x) && x.rank() == 2 && w.rank() == 2 && w.dtype() == x.dtype() && b.is_none_or(|b| b.rank() == 1 && b.dtype() == x.dtype());
    if !fits {
        return linear_candle(x, w, b);
    }
    match b {
        Some(b) => x.apply_op3(w, &b.contiguous()?, LinearOp),
        None => x.apply_op2(w, LinearOp),
    }
}

/// [`linear`] with candle's ops: what runs on other devices and dtypes.
pub fn linear_candle(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let y = x.matmul(&w.t()?)?;
    match b {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}

/// `Σ_rows g`: `(m, n)` → `(n)`. Its gradient broadcasts back over the rows.
pub fn col_sum(g: &Tensor) -> Result<Tensor> {
    if on_cpu(g) && g.rank() == 2 {
        g.contiguous()?.apply_op1(ColSum)
    } else {
        g.sum(0)
    }
}

struct LinearOp;

impl LinearOp {
    fn product(s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, usize)> {
        let ((_, k), (n, k2)) = (l1.shape().dims2()?, l2.shape().dims2()?);
        if k != k2 {
            candle_core::bail!("linear: input width {k} but weights of shape ({n}, {k2})");
        }
        let wt = l2.transpose(0, 1)?;
        Ok((typed!("linear", (s1, s2), |x, w| product(x, l1, w, &wt)?), n))
    }

    fn backward(x: &Tensor, w: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let gx = if x.track_op() { Some(matmul(g, w)?) } else { None };
        let gw = if w.track_op() { Some(matmul(&g.t()?, x)?) } else { None };
        Ok((gx, gw))
    }
}

impl CustomOp2 for LinearOp {
    fn name(&self) -> &'static str {
        "linear"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (y, n) = Self::product(s1, l1, s2, l2)?;
        Ok((y, (l1.dims()[0], n).into()))
    }
    fn bwd(&self, x: &Tensor, w: &Tensor, _y: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Self::backward(x, w, g)
    }
}

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "linear-bias"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (mut y, n) = Self::product(s1, l1, s2, l2)?;
        if l3.dims() != [n] {
            candle_core::bail!("linear: a bias of shape {:?} for {n} outputs", l3.dims());
        }
        match (&mut y, s3) {
            (CpuStorage::F32(y), CpuStorage::F32(b)) => add_rows(y, slice(b, l3, "linear")?),
            (CpuStorage::F64(y), CpuStorage::F64(b)) => add_rows(y, slice(b, l3, "linear")?),
            _ => candle_core::bail!("linear: the bias must have the input's dtype"),
        }
        Ok((y, (l1.dims()[0], n).into()))
    }
    fn bwd(&self, x: &Tensor, w: &Tensor, b: &Tensor, _y: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (gx, gw) = Self::backward(x, w, g)?;
        let gb = if b.track_op() { Some(col_sum(g)?) } else { None };
        Ok((gx, gw, gb))
    }
}

/// `y[r] += b` for every row `r` of the row-major `y`.
fn add_rows<T: Copy + std::ops::AddAssign + Send + Sync>(y: &mut [T], b: &[T]) {
    use rayon::prelude::*;
    if b.is_empty() {
        return;
    }
    let add = |row: &mut [T]| row.iter_mut().zip(b).for_each(|(y, &b)| *y += b);
    if y.len() <= CHUNK {
        y.chunks_exact_mut(b.len()).for_each(add);
    } else {
        y.par_chunks_exact_mut(b.len()).with_min_len(CHUNK / b.len()).for_each(add);
    }
}

struct ColSum;

impl CustomOp1 for ColSum {
    fn name(&self) -> &'static str {
        "col-sum"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        fn sum<T: Copy + Default + std::ops::AddAssign>(v: &[T], n: usize) -> Vec<T> {
            let mut acc = vec![T::default(); n];
            for row in v.chunks_exact(n.max(1)) {
                acc.iter_mut().zip(row).for_each(|(a, &x)| *a += x);
            }
            acc
        }
        let (_, n) = l.shape().dims2()?;
        let out = typed!("col-sum", (s), |v| sum(slice(v, l, "col-sum")?, n));
        Ok((out, n.into()))
    }
    fn bwd(&self, arg: &Tensor, _res: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(g.broadcast_as(arg.shape())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autograd::second_order_available;
    use crate::kernels::assert_close;
    use candle_core::{DType, Device, Var};

    /// The one-node linear map gives candle's values and gradients (first and second order, with
    /// and without a bias, with a tracked or a constant input), and a constant input gets no
    /// gradient.
    #[test]
    fn linear_node_matches_candles_ops_to_all_orders() {
        assert!(second_order_available().unwrap(), "run the tests through cargo (.cargo/config.toml sets CANDLE_GRAD_DO_NOT_DETACH)");
        let dev = Device::Cpu;
        let w = Var::from_tensor(&Tensor::randn(0f64, 1.0, (3, 7), &dev).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::randn(0f64, 1.0, 3, &dev).unwrap()).unwrap();
        let x0 = Tensor::randn(0f64, 1.0, (5, 7), &dev).unwrap();
        let probe = Var::zeros((5, 7), DType::F64, &dev).unwrap();
        for (tracked, bias) in [(false, false), (true, false), (false, true), (true, true)] {
            let what = format!("tracked={tracked} bias={bias}");
            let x = if tracked { (&x0 + probe.as_tensor()).unwrap() } else { x0.clone() };
            let bias_t = bias.then(|| b.as_tensor());
            let y = linear(&x, w.as_tensor(), bias_t).unwrap();
            // The fallback for other devices is the reference.
            let reference = linear_candle(&x, w.as_tensor(), bias_t).unwrap();
            assert_close(&y, &reference, &what);
            // A loss with a second-order term: Σ y³ + ‖∂(Σ y³)/∂(w, b, probe)‖².
            let loss = |y: &Tensor| -> Tensor {
                let l = y.powf(3.0).unwrap().sum_all().unwrap();
                let g = l.backward().unwrap();
                let mut total = (l + g.get(w.as_tensor()).unwrap().sqr().unwrap().sum_all().unwrap()).unwrap();
                if bias {
                    total = (total + g.get(b.as_tensor()).unwrap().sqr().unwrap().sum_all().unwrap()).unwrap();
                }
                if tracked {
                    total = (total + g.get(probe.as_tensor()).unwrap().sqr().unwrap().sum_all().unwrap()).unwrap();
                }
                total
            };
            let (g_node, g_ref) = (loss(&y).backward().unwrap(), loss(&reference).backward().unwrap());
            assert_close(g_node.get(w.as_tensor()).unwrap(), g_ref.get(w.as_tensor()).unwrap(), &what);
            if bias {
                assert_close(g_node.get(b.as_tensor()).unwrap(), g_ref.get(b.as_tensor()).unwrap(), &what);
            }
            if tracked {
                assert_close(g_node.get(probe.as_tensor()).unwrap(), g_ref.get(probe.as_tensor()).unwrap(), &what);
            } else {
                // First order: no GEMM for the constant input's gradient.
                let first = |y: &Tensor| y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
                assert!(first(&y).get(&x).is_none(), "{what}: the constant input got a gradient");
                assert!(first(&reference).get(&x).is_some(), "candle's matmul computes the input's gradient (what this node saves)");
            }
        }
    }

    /// An output above one task's chunk adds the bias in parallel: same values.
    #[test]
    fn large_outputs_take_the_parallel_bias_path() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (64, 30), &dev).unwrap();
        let w = Tensor::randn(0f32, 1.0, (600, 30), &dev).unwrap();
        let b = Tensor::randn(0f32, 1.0, 600, &dev).unwrap();
        const { assert!(64 * 600 > CHUNK) };
        let d = (linear(&x, &w, Some(&b)).unwrap() - linear_candle(&x, &w, Some(&b)).unwrap()).unwrap();
        assert!(d.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() < 1e-4);
    }

    /// Shapes that do not fit are errors naming the kernel; a column sum's gradient broadcasts.
    #[test]
    fn linear_errors_and_col_sum() {
        let dev = Device::Cpu;
        let x = Tensor::ones((2, 4), DType::F32, &dev).unwrap();
        let w = Tensor::ones((3, 5), DType::F32, &dev).unwrap();
        let e = linear(&x, &w, None).unwrap_err().to_string();
        assert!(e.contains("input width 4"), "{e}");
        let w = Tensor::ones((3, 4), DType::F32, &dev).unwrap();
        let b = Tensor::ones(2, DType::F32, &dev).unwrap();
        let e = linear(&x, &w, Some(&b)).unwrap_err().to_string();
        assert!(e.contains("bias of shape [2]"), "{e}");
        let g = Var::from_tensor(&Tensor::randn(0f64, 1.0, (4, 3), &dev).unwrap()).unwrap();
        assert_close(&col_sum(g.as_tensor()).unwrap(), &g.as_tensor().sum(0).unwrap(), "col_sum");
        let k = Tensor::new(&[1f64, 2.0, 3.0], &dev).unwrap();
        let grads = (col_sum(g.as_tensor()).unwrap() * &k).unwrap().sum_all().unwrap().backward().unwrap();
        assert_close(grads.get(g.as_tensor()).unwrap(), &k.broadcast_as((4, 3)).unwrap(), "col_sum gradient");
    }
}
