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
        let y = if x.device().is_cpu() && x.rank() == 2 && self.weight.rank() == 2 {
            x.apply_op2(&self.weight, LinearMatmul)?
        } else {
            x.matmul(&self.weight.t()?)?
        };
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

/// `x · wᵀ` as one graph node. candle's `x.matmul(&w.t()?)` adds a transpose node, whose
/// backward adds the weight's gradient into a zero tensor through a strided copy, and computes
/// `x`'s gradient even when `x` is constant (the data, DeepFool's detached points): one
/// (batch × out) · (out × in) GEMM per forward in the graph. Here the backward returns
/// `gᵀ · x` straight in `w`'s layout and `g · w` only when `x` is tracked. It is made of tensor
/// ops, so higher-order gradients through it stay exact (tested against candle's own path).
struct LinearMatmul;

impl candle_core::CustomOp2 for LinearMatmul {
    fn name(&self) -> &'static str {
        "linear-matmul"
    }

    fn cpu_fwd(
        &self,
        s1: &candle_core::CpuStorage,
        l1: &candle_core::Layout,
        s2: &candle_core::CpuStorage,
        l2: &candle_core::Layout,
    ) -> Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use candle_core::backend::BackendStorage;
        let ((m, k), (n, k2)) = (l1.shape().dims2()?, l2.shape().dims2()?);
        if k != k2 {
            candle_core::bail!("linear-matmul: input width {k} but weights of shape ({n}, {k2})");
        }
        Ok((s1.matmul(s2, (1, m, n, k), l1, &l2.transpose(0, 1)?)?, (m, n).into()))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _y: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let gx = if x.track_op() { Some(g.matmul(w)?) } else { None };
        Ok((gx, Some(g.t()?.matmul(x)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    /// The one-node linear map gives candle's values and gradients (first and second order, with
    /// a tracked or a constant input), and a constant input gets no gradient.
    #[test]
    fn linear_node_matches_candles_matmul_to_all_orders() {
        crate::autograd::enable_second_order();
        assert!(crate::autograd::second_order_available().unwrap());
        let dev = Device::Cpu;
        let w = Var::from_tensor(&Tensor::randn(0f64, 1.0, (3, 7), &dev).unwrap()).unwrap();
        let x0 = Tensor::randn(0f64, 1.0, (5, 7), &dev).unwrap();
        let probe = Var::zeros((5, 7), DType::F64, &dev).unwrap();
        let lin = Linear::new(w.as_tensor().clone(), None);
        for tracked in [false, true] {
            let x = if tracked { (&x0 + probe.as_tensor()).unwrap() } else { x0.clone() };
            let (y, _) = lin.forward(&x, &Ctx::eval(5)).unwrap();
            let reference = x.matmul(&w.as_tensor().t().unwrap()).unwrap();
            let close = |a: &Tensor, b: &Tensor| {
                let d = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
                assert!(d < 1e-12, "tracked={tracked}: differs by {d}");
            };
            close(&y, &reference);
            // A loss with a second-order term: Σ y² + ‖∂(Σ y²)/∂w‖² (+ ‖∂/∂probe‖² when tracked).
            let loss = |y: &Tensor| -> Tensor {
                let l = y.sqr().unwrap().sum_all().unwrap();
                let g = l.backward().unwrap();
                let mut total = (l + g.get(w.as_tensor()).unwrap().sqr().unwrap().sum_all().unwrap()).unwrap();
                if tracked {
                    total = (total + g.get(probe.as_tensor()).unwrap().sqr().unwrap().sum_all().unwrap()).unwrap();
                }
                total
            };
            let (g_node, g_ref) = (loss(&y).backward().unwrap(), loss(&reference).backward().unwrap());
            close(g_node.get(w.as_tensor()).unwrap(), g_ref.get(w.as_tensor()).unwrap());
            if tracked {
                close(g_node.get(probe.as_tensor()).unwrap(), g_ref.get(probe.as_tensor()).unwrap());
            } else {
                // First order: no GEMM for the constant input's gradient. (The second-order graph
                // does differentiate `gᵀ · x`, with candle's own matmul.)
                let first = |y: &Tensor| y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
                assert!(first(&y).get(&x).is_none(), "the constant input got a gradient");
                assert!(first(&reference).get(&x).is_some(), "candle's matmul computes the input's gradient (what this node saves)");
            }
        }
    }
}
