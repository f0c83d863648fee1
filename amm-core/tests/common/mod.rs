//! Helpers shared by amm-core's integration tests.
use amm_core::candle_core::{Result, Tensor};
use amm_core::layer::{Ctx, Rows};
use amm_core::model::{Forward, Model};
use amm_core::params::ParamStore;

/// A model that hides its input VJP, as a plugin model relying on candle's autograd would.
pub struct NoVjp(pub Box<dyn Model>);

impl Model for NoVjp {
    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Forward> {
        self.0.forward(x, ctx)
    }
    fn input_vjp(&self, _: &Forward, _: &Tensor, _: &Rows) -> Result<Option<Tensor>> {
        Ok(None)
    }
    fn params(&self) -> &ParamStore {
        self.0.params()
    }
    fn input_shape(&self) -> &[usize] {
        self.0.input_shape()
    }
    fn classes(&self) -> usize {
        self.0.classes()
    }
    fn describe(&self) -> String {
        format!("no-vjp {}", self.0.describe())
    }
}
