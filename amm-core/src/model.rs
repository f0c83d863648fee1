//! A classifier as amm sees it: logits, and the input VJP of any set of class-combination rows.
use crate::backward::ParamGrads;
use crate::layer::{Ctx, Layer, Mode, Rows, Saved};
use crate::params::ParamStore;
use candle_core::{Result, Tensor};

/// The result of a forward pass: the logits and what the input VJP needs.
#[derive(Clone, Debug)]
pub struct Forward {
    /// The input the forward saw (needed by the autograd fallback).
    pub input: Tensor,
    /// `(N, classes)`.
    pub logits: Tensor,
    pub saved: Saved,
    /// The context of the forward (the autograd fallback replays it).
    pub ctx: Ctx,
}

/// A classifier trained by amm.
///
/// `input_vjp` must be differentiable with respect to the parameters (write it in ordinary candle
/// ops). A model that cannot provide one returns `None` from [`Model::input_vjp`]; the engine then
/// falls back to candle's double backward (see `autograd.rs`).
pub trait Model: Send + Sync {
    /// Logits for `x` of shape `(N, input_shape...)`.
    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Forward>;
    /// `vᵀ ∂logits/∂x` for each row of `v` `(R, classes)`, row `r` taken at sample `rows.index[r]`
    /// of `fwd`; returns `(R, input_shape...)`, or `None` if this model has no explicit VJP.
    fn input_vjp(&self, fwd: &Forward, v: &Tensor, rows: &Rows) -> Result<Option<Tensor>>;
    fn params(&self) -> &ParamStore;
    /// Per-sample input shape, e.g. `[1, 28, 28]` or `[784]`.
    fn input_shape(&self) -> &[usize];
    fn classes(&self) -> usize;
    /// One line for logs: the layer chain.
    fn describe(&self) -> String;
    /// The model at inference time, for export (`amm export`); `None` (the default): it cannot be
    /// exported.
    fn graph(&self) -> Option<crate::export::Node> {
        None
    }
    /// Whether [`Model::train_backward`] is written for this model. The default, `false`: a
    /// training step differentiates the data loss with candle's backward.
    fn has_train_backward(&self) -> bool {
        false
    }
    /// The gradients of `g`, the cotangent of the logits of a [`Mode::Train`] forward, in each
    /// parameter (in the order of [`ParamStore::vars`]; `None` for one the logits do not depend
    /// on), computed by hand instead of by candle's backward (`backward.rs`). The default: `None`.
    fn train_backward(&self, _fwd: &Forward, _g: &Tensor) -> Result<Option<Vec<Option<Tensor>>>> {
        Ok(None)
    }
}

/// A model made of one [`Layer`] chain (every built-in model).
#[derive(Debug)]
pub struct Network {
    pub body: Box<dyn Layer>,
    pub params: ParamStore,
    pub input_shape: Vec<usize>,
    pub classes: usize,
}

impl Model for Network {
    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Forward> {
        let (logits, saved) = self.body.forward(x, ctx)?;
        Ok(Forward { input: x.clone(), logits, saved, ctx: ctx.clone() })
    }
    fn input_vjp(&self, fwd: &Forward, v: &Tensor, rows: &Rows) -> Result<Option<Tensor>> {
        self.body.vjp(&fwd.saved, v, rows).map(Some)
    }
    fn params(&self) -> &ParamStore {
        &self.params
    }
    fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }
    fn classes(&self) -> usize {
        self.classes
    }
    fn describe(&self) -> String {
        self.body.describe()
    }
    fn graph(&self) -> Option<crate::export::Node> {
        self.body.graph()
    }
    fn has_train_backward(&self) -> bool {
        self.body.has_train_backward()
    }
    fn train_backward(&self, fwd: &Forward, g: &Tensor) -> Result<Option<Vec<Option<Tensor>>>> {
        if fwd.ctx.mode != Mode::Train || !self.body.has_train_backward() {
            return Ok(None);
        }
        let mut grads = ParamGrads::default();
        self.body.train_backward(&fwd.saved, &g.detach(), false, &mut grads)?;
        Ok(Some(self.params.vars().iter().map(|(_, v)| grads.get(v.as_tensor()).cloned()).collect()))
    }
}
