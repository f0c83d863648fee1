//! Element-wise activations. Their VJP multiplies the cotangent by the derivative at the forward
//! input: ReLU's is a constant mask (relu'' = 0), applied by one kernel from the saved input;
//! tanh's `1 - tanh²` stays in the graph so the second-order terms through it are exact.
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
            // The mask `x ≥ 0` is formed only when a VJP asks for it (most forwards need none).
            Activation::Relu => Ok((crate::kernels::relu(x)?, Saved::Input(x.clone()))),
            Activation::Tanh => {
                let y = x.tanh()?;
                let d = (1.0 - y.sqr()?)?;
                Ok((y, Saved::Factor(d)))
            }
        }
    }
    fn vjp(&self, saved: &Saved, v: &Tensor, rows: &Rows) -> Result<Tensor> {
        match (self, saved) {
            (Activation::Relu, Saved::Input(x)) => crate::kernels::relu_backward(v, &rows.gather(x)?),
            _ => v.mul(&rows.gather(&saved_factor(saved, &self.describe())?)?),
        }
    }
    /// No parameters: the default backward, its VJP.
    fn has_train_backward(&self) -> bool {
        true
    }
    fn describe(&self) -> String {
        match self {
            Activation::Relu => "relu".into(),
            Activation::Tanh => "tanh".into(),
        }
    }
    fn graph(&self) -> Option<crate::export::Node> {
        Some(match self {
            Activation::Relu => crate::export::Node::Relu,
            Activation::Tanh => crate::export::Node::Tanh,
        })
    }
}
