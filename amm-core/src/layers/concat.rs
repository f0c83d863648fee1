//! DenseNet's connection `y = cat([x, body(x)], channels)`: the input passes on unchanged, with
//! what the body computes from it appended as new channels (dim 1). The VJP splits the cotangent
//! at the input's channel count: the first `C_in` channels are the identity's share, the rest go
//! back through the body, and the two are summed.
use super::Sequential;
use crate::backward::ParamGrads;
use crate::layer::{Ctx, Layer, Rows, Saved};
use candle_core::{Result, Tensor};

#[derive(Debug)]
pub struct Concat {
    body: Sequential,
}

impl Concat {
    pub fn new(body: Sequential) -> Self {
        Self { body }
    }
}

fn saved_parts(saved: &Saved) -> Result<(&Saved, usize)> {
    if let Saved::Seq(s) = saved {
        if let [sb, Saved::Shape(c)] = s.as_slice() {
            if let [c] = c.as_slice() {
                return Ok((sb, *c));
            }
        }
    }
    Err(candle_core::Error::Msg("concat: vjp without its saved body and input channels".into()))
}

impl Layer for Concat {
    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<(Tensor, Saved)> {
        let (yb, sb) = self.body.forward(x, ctx)?;
        let c = x.dim(1)?;
        Ok((Tensor::cat(&[x, &yb], 1)?, Saved::Seq(vec![sb, Saved::Shape(vec![c])])))
    }
    fn vjp(&self, saved: &Saved, v: &Tensor, rows: &Rows) -> Result<Tensor> {
        let (sb, c) = saved_parts(saved)?;
        let total = v.dim(1)?;
        if total <= c {
            return Err(candle_core::Error::Msg(format!("concat: a cotangent of {total} channels for an input of {c}")));
        }
        let db = self.body.vjp(sb, &v.narrow(1, c, total - c)?, rows)?;
        db + v.narrow(1, 0, c)?
    }
    fn has_train_backward(&self) -> bool {
        self.body.has_train_backward()
    }
    fn train_backward(&self, saved: &Saved, g: &Tensor, input: bool, grads: &mut ParamGrads) -> Result<Option<Tensor>> {
        let (sb, c) = saved_parts(saved)?;
        let total = g.dim(1)?;
        if total <= c {
            return Err(candle_core::Error::Msg(format!("concat: a cotangent of {total} channels for an input of {c}")));
        }
        let db = self.body.train_backward(sb, &g.narrow(1, c, total - c)?.contiguous()?, input, grads)?;
        match db {
            Some(db) => Ok(Some((db + g.narrow(1, 0, c)?)?)),
            None => Ok(None),
        }
    }
    fn describe(&self) -> String {
        format!("concat[x, {}]", self.body.describe())
    }
    fn graph(&self) -> Option<crate::export::Node> {
        Some(crate::export::Node::Concat { body: Box::new(self.body.graph()?) })
    }
}
