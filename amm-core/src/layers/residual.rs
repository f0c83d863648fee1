//! A residual block `y = body(x) + shortcut(x)` (the ReLU after the sum is a separate
//! [`Activation`](super::Activation)). The VJP of a sum is the sum of the branches' VJPs.
use super::Sequential;
use crate::backward::ParamGrads;
use crate::layer::{Ctx, Layer, Rows, Saved};
use candle_core::{Result, Tensor};

#[derive(Debug)]
pub struct Residual {
    body: Sequential,
    /// `None`: the identity.
    shortcut: Option<Sequential>,
}

impl Residual {
    pub fn new(body: Sequential, shortcut: Option<Sequential>) -> Self {
        Self { body, shortcut }
    }
}

impl Layer for Residual {
    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<(Tensor, Saved)> {
        let (yb, sb) = self.body.forward(x, ctx)?;
        let (ys, ss) = match &self.shortcut {
            Some(s) => s.forward(x, ctx)?,
            None => (x.clone(), Saved::None),
        };
        Ok(((yb + ys)?, Saved::Seq(vec![sb, ss])))
    }
    fn vjp(&self, saved: &Saved, v: &Tensor, rows: &Rows) -> Result<Tensor> {
        let Saved::Seq(s) = saved else {
            return Err(candle_core::Error::Msg("residual: vjp without its saved branches".into()));
        };
        let [sb, ss] = s.as_slice() else {
            return Err(candle_core::Error::Msg("residual: vjp without its saved branches".into()));
        };
        let db = self.body.vjp(sb, v, rows)?;
        match &self.shortcut {
            Some(s) => db + s.vjp(ss, v, rows)?,
            None => db + v,
        }
    }
    fn has_train_backward(&self) -> bool {
        self.body.has_train_backward() && self.shortcut.as_ref().is_none_or(|s| s.has_train_backward())
    }
    fn train_backward(&self, saved: &Saved, g: &Tensor, input: bool, grads: &mut ParamGrads) -> Result<Option<Tensor>> {
        let Saved::Seq(s) = saved else {
            return Err(candle_core::Error::Msg("residual: backward without its saved branches".into()));
        };
        let [sb, ss] = s.as_slice() else {
            return Err(candle_core::Error::Msg("residual: backward without its saved branches".into()));
        };
        let db = self.body.train_backward(sb, g, input, grads)?;
        let ds = match &self.shortcut {
            Some(s) => s.train_backward(ss, g, input, grads)?,
            None => input.then(|| g.clone()),
        };
        match (db, ds) {
            (Some(db), Some(ds)) => Ok(Some((db + ds)?)),
            _ => Ok(None),
        }
    }
    fn describe(&self) -> String {
        match &self.shortcut {
            Some(s) => format!("residual[{} | {}]", self.body.describe(), s.describe()),
            None => format!("residual[{}]", self.body.describe()),
        }
    }
    fn graph(&self) -> Option<crate::export::Node> {
        let shortcut = match &self.shortcut {
            Some(s) => Some(Box::new(s.graph()?)),
            None => None,
        };
        Some(crate::export::Node::Residual { body: Box::new(self.body.graph()?), shortcut })
    }
}
