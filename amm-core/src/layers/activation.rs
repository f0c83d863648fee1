//! Element-wise activations. Their VJP multiplies the cotangent by the derivative at the forward
//! input: ReLU's is a constant mask (relu'' = 0), tanh's `1 - tanh²` stays in the graph so the
//! second-order terms through it are exact.
use crate::layer::{saved_factor, Ctx, Layer, Rows, Saved};
use candle_core::{Result, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Relu,
    Tanh,
}

impl Layer for Activation {
    fn forward(&self, x: &Tensor, _ctx: &Ctx) -> Result<(Tensor, Saved)> {
        match self {
            // ge(0), as candle's own relu backward: relu'(0) = 1.
            Activation::Relu => Ok((x.relu()?, Saved::Factor(x.ge(0.0)?.to_dtype(x.dtype())?))),
            Activation::Tanh => {
                let y = x.tanh()?;
                let d = (1.0 - y.sqr()?)?;
                Ok((y, Saved::Factor(d)))
            }
        }
    }
    fn vjp(&self, saved: &Saved, v: &Tensor, rows: &Rows) -> Result<Tensor> {
        let f = saved_factor(saved, &self.describe())?;
        v.mul(&rows.gather(&f)?)
    }
    fn describe(&self) -> String {
        match self {
            Activation::Relu => "relu".into(),
            Activation::Tanh => "tanh".into(),
        }
    }
}
