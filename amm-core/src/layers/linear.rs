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
        Ok((crate::kernels::linear(x, &self.weight, self.bias.as_ref())?, Saved::None))
    }
    fn vjp(&self, _saved: &Saved, v: &Tensor, _rows: &Rows) -> Result<Tensor> {
        crate::kernels::matmul(v, &self.weight)
    }
    fn describe(&self) -> String {
        let (o, i) = self.weight.dims2().unwrap_or((0, 0));
        format!("linear({i}->{o})")
    }
    fn graph(&self) -> Option<crate::export::Node> {
        Some(crate::export::Node::Linear { weight: self.weight.clone(), bias: self.bias.clone() })
    }
}
