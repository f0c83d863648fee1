//! The data terms of the training loss.
use crate::tensor::from_host;
use candle_core::{Result, Tensor};

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
