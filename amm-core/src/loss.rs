//! The data terms of the training loss, registered like every other stage (`train.loss = ce`).
use crate::tensor::from_host;
use candle_core::{Result, Tensor};

/// A classification loss: the data term of a training step.
pub trait ClassLoss: Send + Sync {
    /// The mean loss of `logits` `(B, C)` against labels, differentiable in the logits; `None`
    /// for no data term (the regularizer alone).
    fn loss(&self, logits: &Tensor, y: &[u32]) -> Result<Option<Tensor>>;
    /// How a divergence of this term is reported (`cross-entropy`).
    fn term(&self) -> &'static str;
}

/// A loss from a function.
pub(crate) struct FnLoss {
    pub(crate) f: fn(&Tensor, &[u32]) -> Result<Tensor>,
    pub(crate) term: &'static str,
}
impl ClassLoss for FnLoss {
    fn loss(&self, logits: &Tensor, y: &[u32]) -> Result<Option<Tensor>> {
        (self.f)(logits, y).map(Some)
    }
    fn term(&self) -> &'static str {
        self.term
    }
}

/// No data term.
pub(crate) struct NoLoss;
impl ClassLoss for NoLoss {
    fn loss(&self, _: &Tensor, _: &[u32]) -> Result<Option<Tensor>> {
        Ok(None)
    }
    fn term(&self) -> &'static str {
        "loss"
    }
}

/// Mean cross-entropy of `logits` `(B, C)` against labels.
pub fn cross_entropy(logits: &Tensor, y: &[u32]) -> Result<Tensor> {
    let t = Tensor::new(y, logits.device())?;
    candle_nn::loss::cross_entropy(logits, &t)
}

/// Multi-class hinge (PyTorch's `MultiMarginLoss`): mean over samples of
/// `Σ_{k≠y} max(0, 1 − f_y + f_k) / C`.
pub fn multiclass_hinge(logits: &Tensor, y: &[u32]) -> Result<Tensor> {
    let (b, c) = logits.dims2()?;
    let mut onehot = vec![0f64; b * c];
    for (i, &yi) in y.iter().enumerate() {
        onehot[i * c + yi as usize] = 1.0;
    }
    let onehot = from_host(onehot, &[b, c], logits.dtype(), logits.device())?;
    let fy = (logits * &onehot)?.sum_keepdim(1)?;
    let m = ((logits.broadcast_sub(&fy)? + 1.0)?.relu()? * (1.0 - &onehot)?)?;
    m.sum_all()? / (b * c) as f64
}
