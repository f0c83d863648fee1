//! Fully connected layer `y = x Wᵀ + b` (weights stored `(out, in)` as in candle-nn).
use crate::layer::{Ctx, Layer, Rows, Saved};
use crate::params::ParamBuilder;
use candle_core::{Result, Tensor};

#[derive(Clone, Debug)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
}

/// A `Linear` with Kaiming-normal weights and zero bias.
pub fn linear(in_dim: usize, out_dim: usize, pb: &mut ParamBuilder) -> Result<Linear> {
    let weight = pb.kaiming("weight", &[out_dim, in_dim], in_dim)?;
    let bias = pb.zeros("bias", &[out_dim])?;
    Ok(Linear::new(weight, Some(bias)))
}

impl Layer for Linear {
    fn forward(&self, x: &Tensor, _ctx: &Ctx) -> Result<(Tensor, Saved)> {
        let wt = self.weight.t()?;
        // A constant input (the data, or DeepFool's detached points) needs no gradient, but
        // candle's matmul backward computes one anyway: a (batch × out) · (out × in) GEMM per
        // forward in the graph, a sixth of a CE step's FLOPs for the MLP's first layer.
        let y = if !x.track_op() && x.device().is_cpu() && x.rank() == 2 { x.apply_op2(&wt, ConstInputMatmul)? } else { x.matmul(&wt)? };
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        Ok((y, Saved::None))
    }
    fn vjp(&self, _saved: &Saved, v: &Tensor, _rows: &Rows) -> Result<Tensor> {
        v.matmul(&self.weight)
    }
    fn describe(&self) -> String {
        let (o, i) = self.weight.dims2().unwrap_or((0, 0));
        format!("linear({i}->{o})")
    }
}

/// `x · w` for an `x` the graph does not track: candle's matmul, with a backward that returns
/// only `w`'s gradient (`xᵀ · g`, candle's own formula, so the same bits). The backward is made
/// of tensor ops, so higher-order gradients through it stay exact.
struct ConstInputMatmul;

impl candle_core::CustomOp2 for ConstInputMatmul {
    fn name(&self) -> &'static str {
        "const-input-matmul"
    }

    fn cpu_fwd(
        &self,
        s1: &candle_core::CpuStorage,
        l1: &candle_core::Layout,
        s2: &candle_core::CpuStorage,
        l2: &candle_core::Layout,
    ) -> Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use candle_core::backend::BackendStorage;
        let ((m, k), (k2, n)) = (l1.shape().dims2()?, l2.shape().dims2()?);
        if k != k2 {
            candle_core::bail!("const-input-matmul: inner dimensions {k} and {k2} differ");
        }
        Ok((s1.matmul(s2, (1, m, n, k), l1, l2)?, (m, n).into()))
    }

    fn bwd(&self, x: &Tensor, _w: &Tensor, _y: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((None, Some(x.t()?.matmul(g)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    /// With a constant input, the weight gradient (first and second order) is candle's matmul's,
    /// bit for bit, and the input gets none.
    #[test]
    fn constant_input_skips_its_gradient_and_keeps_the_weights_exact() {
        crate::autograd::enable_second_order();
        assert!(crate::autograd::second_order_available().unwrap());
        let dev = Device::Cpu;
        let x = Tensor::randn(0f64, 1.0, (5, 7), &dev).unwrap();
        let w = Var::from_tensor(&Tensor::randn(0f64, 1.0, (3, 7), &dev).unwrap()).unwrap();
        let lin = Linear::new(w.as_tensor().clone(), None);
        let ctx = Ctx::eval(5);
        let (y, _) = lin.forward(&x, &ctx).unwrap();
        let reference = x.matmul(&w.as_tensor().t().unwrap()).unwrap();
        assert_eq!(y.to_vec2::<f64>().unwrap(), reference.to_vec2::<f64>().unwrap());
        // A loss with a second-order term: (Σ y²) + ‖∂(Σ y²)/∂w‖², differentiated again.
        let loss = |y: &Tensor| -> Tensor {
            let l = y.sqr().unwrap().sum_all().unwrap();
            let gw = l.backward().unwrap();
            (l + gw.get(w.as_tensor()).unwrap().sqr().unwrap().sum_all().unwrap()).unwrap()
        };
        let g_custom = loss(&y).backward().unwrap();
        let g_ref = loss(&reference).backward().unwrap();
        let (a, b) = (g_custom.get(w.as_tensor()).unwrap(), g_ref.get(w.as_tensor()).unwrap());
        assert_eq!(a.to_dtype(DType::F64).unwrap().to_vec2::<f64>().unwrap(), b.to_vec2::<f64>().unwrap());
        assert!(g_custom.get(&x).is_none(), "the constant input got a gradient");
        assert!(g_ref.get(&x).is_some(), "candle's matmul computes the input's gradient (what this op saves)");
    }
}
