//! Flattens `(N, C, H, W)` (or any shape) to `(N, features)`.
use crate::layer::{Ctx, Layer, Rows, Saved};
use candle_core::{Result, Tensor};

#[derive(Clone, Copy, Debug, Default)]
pub struct Flatten;

impl Layer for Flatten {
    fn forward(&self, x: &Tensor, _ctx: &Ctx) -> Result<(Tensor, Saved)> {
        let dims = x.dims().to_vec();
        Ok((x.flatten_from(1)?, Saved::Shape(dims)))
    }
    fn vjp(&self, saved: &Saved, v: &Tensor, _rows: &Rows) -> Result<Tensor> {
        match saved {
            Saved::Shape(dims) => {
                let mut shape = dims.clone();
                shape[0] = v.dim(0)?;
                v.reshape(shape)
            }
            _ => Err(candle_core::Error::Msg("flatten: missing saved shape".into())),
        }
    }
    /// No parameters: the default backward, its VJP.
    fn has_train_backward(&self) -> bool {
        true
    }
    fn describe(&self) -> String {
        "flatten".into()
    }
    fn graph(&self) -> Option<crate::export::Node> {
        Some(crate::export::Node::Flatten)
    }
}
