//! A chain of layers; its VJP runs the layers' VJPs in reverse.
use crate::backward::ParamGrads;
use crate::layer::{Ctx, Layer, Rows, Saved};
use candle_core::{Result, Tensor};

#[derive(Debug, Default)]
pub struct Sequential {
    layers: Vec<Box<dyn Layer>>,
}

impl Sequential {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn push(&mut self, layer: impl Layer + 'static) {
        self.layers.push(Box::new(layer));
    }
    pub fn then(mut self, layer: impl Layer + 'static) -> Self {
        self.push(layer);
        self
    }
    pub fn len(&self) -> usize {
        self.layers.len()
    }
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }
}

impl Layer for Sequential {
    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<(Tensor, Saved)> {
        let mut saved = Vec::with_capacity(self.layers.len());
        let mut h = x.clone();
        for l in &self.layers {
            let (y, s) = l.forward(&h, ctx)?;
            saved.push(s);
            h = y;
        }
        Ok((h, Saved::Seq(saved)))
    }
    fn vjp(&self, saved: &Saved, v: &Tensor, rows: &Rows) -> Result<Tensor> {
        let Saved::Seq(saved) = saved else {
            return Err(candle_core::Error::Msg("sequential: vjp without its saved sequence".into()));
        };
        let mut v = v.clone();
        for (l, s) in self.layers.iter().zip(saved).rev() {
            v = l.vjp(s, &v, rows)?;
        }
        Ok(v)
    }
    fn has_train_backward(&self) -> bool {
        self.layers.iter().all(|l| l.has_train_backward())
    }
    fn train_backward(&self, saved: &Saved, g: &Tensor, input: bool, grads: &mut ParamGrads) -> Result<Option<Tensor>> {
        let Saved::Seq(saved) = saved else {
            return Err(candle_core::Error::Msg("sequential: backward without its saved sequence".into()));
        };
        let mut g = Some(g.clone());
        for (i, (l, s)) in self.layers.iter().zip(saved).enumerate().rev() {
            let Some(gi) = g else { break };
            // Detached: each layer's cotangent is dropped as soon as the next one is computed.
            g = l.train_backward(s, &gi, input || i > 0, grads)?.map(|t| t.detach());
        }
        Ok(g)
    }
    fn describe(&self) -> String {
        self.layers.iter().map(|l| l.describe()).collect::<Vec<_>>().join(" -> ")
    }
    fn graph(&self) -> Option<crate::export::Node> {
        Some(crate::export::Node::Seq(self.layers.iter().map(|l| l.graph()).collect::<Option<_>>()?))
    }
}
