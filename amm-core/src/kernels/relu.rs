//! ReLU and its VJP as one node each. candle's `relu` backward builds a zero tensor, a
//! comparison, a dtype conversion and a product; and a layer that saves the mask `x ≥ 0` for its
//! input VJP pays a comparison and a conversion in every forward, needed or not.
use super::{map1, map2, on_cpu, slice, Store};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

/// `max(x, 0)`. Its gradient is [`relu_backward`] (candle's convention: relu'(0) = 1).
///
/// ```
/// use amm_core::candle_core::{Device, Tensor};
/// let x = Tensor::new(&[-1f32, 0.0, 2.0], &Device::Cpu)?;
/// assert_eq!(amm_core::kernels::relu(&x)?.to_vec1::<f32>()?, [0.0, 0.0, 2.0]);
/// # Ok::<(), amm_core::candle_core::Error>(())
/// ```
pub fn relu(x: &Tensor) -> Result<Tensor> {
    if on_cpu(x) {
        x.contiguous()?.apply_op1(Relu)
    } else {
        x.relu()
    }
}

/// `g · [x ≥ 0]`: the VJP of [`relu`] at `x` (same shapes). Differentiable in `g`; constant in `x`.
pub fn relu_backward(g: &Tensor, x: &Tensor) -> Result<Tensor> {
    if g.shape() != x.shape() {
        candle_core::bail!("relu-backward: cotangent of shape {:?} for an input of shape {:?}", g.dims(), x.dims());
    }
    if on_cpu(g) && g.dtype() == x.dtype() {
        // Detached: the mask is constant in `x`, and a tracked `x` that got no gradient from
        // this node would stop candle's backward ("grad not populated").
        g.contiguous()?.apply_op2(&x.detach().contiguous()?, ReluBackward)
    } else {
        relu_backward_candle(g, x)
    }
}

/// [`relu_backward`] with candle's ops: what runs on other devices and dtypes.
pub fn relu_backward_candle(g: &Tensor, x: &Tensor) -> Result<Tensor> {
    g * x.ge(0.0)?.to_dtype(g.dtype())?
}

struct Relu;

impl CustomOp1 for Relu {
    fn name(&self) -> &'static str {
        "relu"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        // `x < 0` rather than `x.max(0)`: a NaN passes through, so divergence stays visible.
        let out = typed!("relu", (s), |v| map1(slice(v, l, "relu")?, |x| if x < 0.0 { 0.0 } else { x }));
        Ok((out, l.shape().clone()))
    }
    fn bwd(&self, x: &Tensor, _y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(relu_backward(g, x)?))
    }
}

struct ReluBackward;

impl CustomOp2 for ReluBackward {
    fn name(&self) -> &'static str {
        "relu-backward"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let name = "relu-backward";
        let out = typed!(name, (s1, s2), |g, x| map2(slice(g, l1, name)?, slice(x, l2, name)?, |g, x| if x >= 0.0 { g } else { 0.0 }));
        Ok((out, l1.shape().clone()))
    }
    /// Linear in `g` with the same mask; the mask's derivative in `x` is zero almost everywhere.
    fn bwd(&self, _g: &Tensor, x: &Tensor, _out: &Tensor, gg: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(relu_backward(gg, x)?), None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::assert_close;
    use candle_core::{DType, Device, Var};

    /// Values and first- and second-order gradients equal candle's `relu` (zeros in the input
    /// included: relu'(0) = 1 on both sides), and the VJP equals candle's mask product.
    #[test]
    fn relu_matches_candle_to_second_order() {
        assert!(
            crate::autograd::second_order_available().unwrap(),
            "run the tests through cargo (.cargo/config.toml sets CANDLE_GRAD_DO_NOT_DETACH)"
        );
        let dev = Device::Cpu;
        let mut x0: Vec<f64> = Tensor::randn(0f64, 1.0, 60, &dev).unwrap().to_vec1().unwrap();
        x0[3] = 0.0;
        x0[17] = 0.0;
        let x = Var::from_tensor(&Tensor::from_vec(x0, (6, 10), &dev).unwrap()).unwrap();
        let w = Tensor::randn(0f64, 1.0, (6, 10), &dev).unwrap();
        let ours = relu(x.as_tensor()).unwrap();
        let theirs = x.as_tensor().relu().unwrap();
        assert_close(&ours, &theirs, "value");
        // Σ w·relu(x)² plus the squared norm of its gradient: the second term differentiates
        // the backward (relu_backward in g) again.
        let loss = |y: &Tensor| -> Tensor {
            let l = (y.sqr().unwrap() * &w).unwrap().sum_all().unwrap();
            let g = l.backward().unwrap().get(x.as_tensor()).unwrap().clone();
            (l + g.sqr().unwrap().sum_all().unwrap()).unwrap()
        };
        let (a, b) = (loss(&ours).backward().unwrap(), loss(&theirs).backward().unwrap());
        assert_close(a.get(x.as_tensor()).unwrap(), b.get(x.as_tensor()).unwrap(), "second-order gradient");
        let v = Tensor::randn(0f64, 1.0, (6, 10), &dev).unwrap();
        // The fallback for other devices is the reference.
        assert_close(&relu_backward(&v, x.as_tensor()).unwrap(), &relu_backward_candle(&v, x.as_tensor()).unwrap(), "vjp");
    }

    /// Large tensors take the parallel path (forward and VJP); NaN passes through the forward.
    #[test]
    fn relu_parallel_path_and_nan() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (3, super::super::CHUNK), &dev).unwrap();
        let d = (relu(&x).unwrap() - x.relu().unwrap()).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(d, 0.0);
        let g = Tensor::randn(0f32, 1.0, x.shape(), &dev).unwrap();
        let d = (relu_backward(&g, &x).unwrap() - relu_backward_candle(&g, &x).unwrap()).unwrap();
        assert_eq!(d.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
        let n = Tensor::new(&[f32::NAN, -1.0], &dev).unwrap();
        assert!(relu(&n).unwrap().to_vec1::<f32>().unwrap()[0].is_nan());
        let bad = relu_backward(&Tensor::zeros(3, DType::F32, &dev).unwrap(), &Tensor::zeros(4, DType::F32, &dev).unwrap());
        assert!(bad.unwrap_err().to_string().contains("relu-backward"));
    }
}
