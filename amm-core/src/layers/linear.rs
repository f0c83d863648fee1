//! Fully connected layer `y = x Wᵀ + b` (weights stored `(out, in)` as in candle-nn).
use crate::backward::ParamGrads;
use crate::layer::{Ctx, Layer, Mode, Rows, Saved};
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
    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<(Tensor, Saved)> {
        let y = crate::kernels::linear(x, &self.weight, self.bias.as_ref())?;
        if ctx.mode == Mode::Train {
            return Ok((y, Saved::Train(vec![x.clone()], Box::new(Saved::None))));
        }
        Ok((y, Saved::None))
    }
    fn vjp(&self, _saved: &Saved, v: &Tensor, _rows: &Rows) -> Result<Tensor> {
        crate::kernels::matmul(v, &self.weight)
    }
    fn has_train_backward(&self) -> bool {
        true
    }
    /// `gW = gᵀ·x`, `gb = Σ_rows g`, `gx = g·W`: what the linear kernel's own backward computes.
    fn train_backward(&self, saved: &Saved, g: &Tensor, input: bool, grads: &mut ParamGrads) -> Result<Option<Tensor>> {
        let [x] = saved.kept("linear")? else {
            return Err(candle_core::Error::Msg(format!("{}: backward without its saved input", self.describe())));
        };
        let w = self.weight.detach();
        grads.add(&self.weight, crate::kernels::matmul(&g.t()?, &x.detach())?)?;
        if let Some(b) = &self.bias {
            grads.add(b, crate::kernels::col_sum(g)?)?;
        }
        if !input {
            return Ok(None);
        }
        Ok(Some(crate::kernels::matmul(g, &w)?))
    }
    fn describe(&self) -> String {
        let (o, i) = self.weight.dims2().unwrap_or((0, 0));
        format!("linear({i}->{o})")
    }
    fn graph(&self) -> Option<crate::export::Node> {
        Some(crate::export::Node::Linear { weight: self.weight.clone(), bias: self.bias.clone() })
    }
}
