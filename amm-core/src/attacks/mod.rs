//! Evaluation attacks: tighter estimates of the distance to the decision boundary than the
//! paper's 5-iteration DeepFool, and fixed-budget attacks for robust accuracy.
//!
//! Every attack runs in evaluation mode ([`Ctx::eval`]) on a batch, computes values only (every
//! tensor it keeps is detached, nothing is differentiated into the weights) and returns the
//! perturbed points. Input gradients of a per-sample loss come from ONE batched input-VJP call per
//! step ([`Probe::grad`]): the loss's derivative with respect to the logits is computed on the host
//! (a `(N, classes)` matrix, one seed row per sample) and pushed through
//! [`crate::autograd::input_vjp`], so built-in and plugin models (with or without an explicit VJP)
//! are attacked the same way.
//!
//! Attacks are untargeted with respect to the label `y`: a point is adversarial when the model's
//! prediction there differs from `y`. When the data has a valid input range ([`Bounds`]), every
//! point an attack evaluates or returns lies inside it.
//!
//! | attack | kind | norms |
//! |---|---|---|
//! | [`DeepFoolAttack`] (Moosavi-Dezfooli et al. 2016) | minimal norm | L2, L∞, L1 |
//! | [`Fmn`] (Pintor et al. 2021) | minimal norm | L2, L∞, L1 |
//! | [`Ddn`] (Rony et al. 2019) | minimal norm | L2 |
//! | [`Apgd`] CE and targeted DLR (Croce & Hein 2020) | fixed ε | L2, L∞ |
//!
//! They are built from text through the registry like every other named thing
//! ([`crate::Registry::build_attacks`], registered in [`register`]), so plugins can add attacks.
mod apgd;
mod ddn;
mod deepfool;
mod fmn;
mod register;

pub use apgd::{Apgd, ApgdConfig, ApgdLoss};
pub use ddn::{Ddn, DdnConfig};
pub use deepfool::{DeepFoolAttack, DeepFoolAttackConfig};
pub use fmn::{Fmn, FmnConfig};
pub use register::register;

use crate::autograd::input_vjp;
use crate::layer::{Ctx, Rows};
use crate::model::{Forward, Model};
use crate::proxy::Norm;
use crate::tensor::{argmax_rows, from_host, to_host};
use candle_core::{DType, Device, Result, Tensor};

/// Guards divisions by norms.
pub(crate) const TINY: f64 = 1e-12;

/// Whether an attack searches for the smallest adversarial perturbation or attacks within a budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Returns the smallest adversarial perturbation it found (any norm).
    MinNorm,
    /// Returns an adversarial point within `‖δ‖ ≤ ε` when it finds one.
    FixedEps,
}

/// An evaluation attack.
pub trait Attack: Send + Sync {
    /// Short label (`fmn`, `deepfool(iters=5)`), unique within one evaluation.
    fn label(&self) -> &str;
    fn norm(&self) -> Norm;
    fn kind(&self) -> Kind;
    /// Perturbed points for `x` `(N, input_shape...)` with labels `y`: for a minimal-norm attack
    /// the smallest adversarial point it found (where it found none, its last attempt or `x`);
    /// for a fixed-ε attack an adversarial point within `eps` (or its best attempt). Always inside
    /// `bounds`. `eps` is ignored by minimal-norm attacks. Whether a point is adversarial is for
    /// the caller to check ([`verify`]): that check, not the attack's own bookkeeping, is reported.
    fn run(&self, model: &dyn Model, x: &Tensor, y: &[u32], bounds: Option<&Bounds>, eps: f64) -> Result<Tensor>;
    /// Every setting, for logs and `robust.json`.
    fn describe(&self) -> String;
}

/// The valid input box, per feature, in model input space (`[lo − mean, hi − mean]` for data
/// whose pixels lie in `[lo, hi]` before mean subtraction).
#[derive(Clone, Debug, PartialEq)]
pub struct Bounds {
    pub lo: Vec<f32>,
    pub hi: Vec<f32>,
}

impl Bounds {
    /// The box of prepared data: `domain` (before mean subtraction) shifted by `mean`; `None` when
    /// the data has no domain.
    pub fn from_domain(domain: Option<(f32, f32)>, mean: Option<&[f32]>, dim: usize) -> Option<Bounds> {
        let (lo, hi) = domain?;
        let m = |j: usize| mean.map_or(0.0, |m| m[j]);
        Some(Bounds { lo: (0..dim).map(|j| lo - m(j)).collect(), hi: (0..dim).map(|j| hi - m(j)).collect() })
    }
    /// The same box for every one of `dim` features.
    pub fn uniform(lo: f32, hi: f32, dim: usize) -> Bounds {
        Bounds { lo: vec![lo; dim], hi: vec![hi; dim] }
    }
    fn tensors(&self, dtype: DType, device: &Device) -> Result<(Tensor, Tensor)> {
        let d = self.lo.len();
        let lo = Tensor::from_slice(&self.lo, (1, d), device)?.to_dtype(dtype)?;
        let hi = Tensor::from_slice(&self.hi, (1, d), device)?.to_dtype(dtype)?;
        Ok((lo, hi))
    }
}

/// What [`verify`] found for one attack's output.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Prediction at the perturbed point.
    pub pred: Vec<u32>,
    /// Whether the prediction there differs from the label.
    pub adversarial: Vec<bool>,
    /// `‖x_adv − x‖_p` per sample.
    pub norms: Vec<f64>,
    /// Whether the point lies in the box (always true without bounds), to a relative 1e-6.
    pub in_bounds: Vec<bool>,
}

/// Checks an attack's output independently of the attack: forward at `x_adv`, compare with `y`,
/// measure `‖x_adv − x‖_p`. These are the numbers that get reported.
pub fn verify(model: &dyn Model, x: &Tensor, x_adv: &Tensor, y: &[u32], norm: Norm, bounds: Option<&Bounds>) -> Result<Outcome> {
    let n = x.dim(0)?;
    let logits = to_host(&model.forward(x_adv, &Ctx::eval(n))?.logits)?;
    let pred = argmax_rows(&logits, model.classes());
    let adversarial = fooled(&logits, y, model.classes());
    let delta = (x_adv.flatten_from(1)? - x.flatten_from(1)?)?;
    let norms = row_norms(&delta, norm)?;
    let in_bounds = match bounds {
        None => vec![true; n],
        Some(b) => {
            let v = to_host(&x_adv.flatten_from(1)?)?;
            let d = b.lo.len();
            v.chunks(d.max(1))
                .map(|row| {
                    row.iter().enumerate().all(|(j, &p)| {
                        let tol = 1e-6 * (1.0 + p.abs());
                        p >= b.lo[j] as f64 - tol && p <= b.hi[j] as f64 + tol
                    })
                })
                .collect()
        }
    };
    Ok(Outcome { pred, adversarial, norms, in_bounds })
}

/// ‖·‖_p of each row of a `(N, D)` tensor, on the host.
pub fn row_norms(t: &Tensor, norm: Norm) -> Result<Vec<f64>> {
    let t = t.flatten_from(1)?.to_dtype(DType::F64)?;
    let v = match norm {
        Norm::L2 => t.sqr()?.sum(1)?.sqrt()?,
        Norm::Linf => t.abs()?.max(1)?,
        Norm::L1 => t.abs()?.sum(1)?,
    };
    v.to_vec1::<f64>()
}

/// Per-batch state shared by the attacks: the model, flat `(N, D)` views, the box, and the
/// batched loss gradient.
pub(crate) struct Probe<'a> {
    pub model: &'a dyn Model,
    /// `(N, input_shape...)`.
    pub shape: Vec<usize>,
    pub n: usize,
    pub classes: usize,
    pub dtype: DType,
    pub device: Device,
    /// `(1, D)` each.
    pub bounds: Option<(Tensor, Tensor)>,
    rows: Rows,
}

impl<'a> Probe<'a> {
    pub fn new(model: &'a dyn Model, x: &Tensor, bounds: Option<&Bounds>) -> Result<Self> {
        let n = x.dim(0)?;
        let device = x.device().clone();
        let dtype = x.dtype();
        let bounds = bounds.map(|b| b.tensors(dtype, &device)).transpose()?;
        let rows = Rows::new(&(0..n as u32).collect::<Vec<_>>(), n, &device)?;
        Ok(Self { model, shape: x.dims().to_vec(), n, classes: model.classes(), dtype, device, bounds, rows })
    }

    /// Forward at the flat points `p` `(N, D)`: the pass (for [`Probe::grad`]) and the logits on
    /// the host.
    pub fn forward(&self, p: &Tensor) -> Result<(Forward, Vec<f64>)> {
        let fwd = self.model.forward(&p.reshape(self.shape.as_slice())?, &Ctx::eval(self.n))?;
        let logits = to_host(&fwd.logits)?;
        Ok((fwd, logits))
    }

    /// `Σᵢ ∂ℓᵢ/∂xᵢ` as a flat `(N, D)` tensor, for the per-sample loss whose derivative with
    /// respect to the logits is `dl` (`N × classes`, row-major): one batched input VJP.
    pub fn grad(&self, fwd: &Forward, dl: Vec<f64>) -> Result<Tensor> {
        let v = from_host(dl, &[self.n, self.classes], fwd.logits.dtype(), &self.device)?;
        input_vjp(self.model, fwd, &v, &self.rows)?.detach().flatten_from(1)
    }

    /// A per-sample column `(N, 1)`.
    pub fn col(&self, v: &[f64]) -> Result<Tensor> {
        from_host(v.to_vec(), &[v.len(), 1], self.dtype, &self.device)
    }

    /// Rows of `a` where `mask` holds, of `b` elsewhere (same shape `(N, ...)`).
    pub fn select(&self, mask: &[bool], a: &Tensor, b: &Tensor) -> Result<Tensor> {
        select_rows(mask, a, b)
    }

    /// The point `p` clipped into the box.
    pub fn clip(&self, p: &Tensor) -> Result<Tensor> {
        match &self.bounds {
            None => Ok(p.clone()),
            Some((lo, hi)) => p.broadcast_maximum(lo)?.broadcast_minimum(hi),
        }
    }

    /// `clip(x + δ) − x`: the part of `δ` that stays inside the box.
    pub fn clip_delta(&self, x: &Tensor, delta: &Tensor) -> Result<Tensor> {
        match &self.bounds {
            None => Ok(delta.clone()),
            Some(_) => self.clip(&(x + delta)?)? - x,
        }
    }

    /// The largest `‖δ‖_p` with `x + δ` inside the box (∞ without one): no useful perturbation
    /// is longer.
    pub fn worst_norm(&self, x: &Tensor, norm: Norm) -> Result<Vec<f64>> {
        match &self.bounds {
            None => Ok(vec![f64::INFINITY; self.n]),
            Some((lo, hi)) => {
                let far = x.broadcast_sub(lo)?.maximum(&hi.broadcast_sub(x)?)?;
                row_norms(&far, norm)
            }
        }
    }
}

/// Rows of `a` where `mask` holds, of `b` elsewhere (same shape `(N, ...)`), exactly.
pub(crate) fn select_rows(mask: &[bool], a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if mask.iter().all(|&m| m) {
        return Ok(a.clone());
    }
    if !mask.iter().any(|&m| m) {
        return Ok(b.clone());
    }
    let m: Vec<u8> = mask.iter().map(|&m| m as u8).collect();
    let m = Tensor::from_vec(m, (mask.len(), 1), a.device())?.broadcast_as(a.shape())?;
    m.where_cond(a, b)
}

/// Softmax of each row of a host matrix.
pub(crate) fn softmax_rows(logits: &[f64], k: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(logits.len());
    for row in logits.chunks(k) {
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = row.iter().map(|&z| (z - m).exp()).collect();
        let s: f64 = e.iter().sum();
        out.extend(e.into_iter().map(|v| v / s));
    }
    out
}

/// Per-sample cross-entropy and its derivative with respect to the logits.
pub(crate) fn ce_loss(logits: &[f64], y: &[u32], k: usize) -> (Vec<f64>, Vec<f64>) {
    let mut d = softmax_rows(logits, k);
    let mut loss = Vec::with_capacity(y.len());
    for (i, &yi) in y.iter().enumerate() {
        let p = d[i * k + yi as usize];
        loss.push(-(p.max(1e-300)).ln());
        d[i * k + yi as usize] -= 1.0;
    }
    (loss, d)
}

/// `z_y − max_{j≠y} z_j` per sample (positive while correctly classified) and the index of the
/// runner-up class.
pub(crate) fn logit_margin(logits: &[f64], y: &[u32], k: usize) -> (Vec<f64>, Vec<u32>) {
    let mut m = Vec::with_capacity(y.len());
    let mut other = Vec::with_capacity(y.len());
    for (i, row) in logits.chunks(k).enumerate() {
        let yi = y[i] as usize;
        let mut best = usize::MAX;
        for j in 0..k {
            if j != yi && (best == usize::MAX || row[j] > row[best]) {
                best = j;
            }
        }
        if best == usize::MAX {
            m.push(f64::INFINITY);
            other.push(yi as u32);
        } else {
            m.push(row[yi] - row[best]);
            other.push(best as u32);
        }
    }
    (m, other)
}

/// Whether each sample is adversarial: some other class's logit exceeds the label's by more than
/// [`DECISION_TOL`] `· max(1, max_j |z_j|)`, so that the verdict does not depend on rounding (a
/// batch of another size, another BLAS blocking).
pub fn fooled(logits: &[f64], y: &[u32], k: usize) -> Vec<bool> {
    logits
        .chunks(k)
        .zip(y)
        .map(|(row, &y)| {
            let scale = row.iter().fold(1.0f64, |m, z| m.max(z.abs()));
            let other = row.iter().enumerate().filter(|(j, _)| *j != y as usize).map(|(_, &z)| z).fold(f64::NEG_INFINITY, f64::max);
            other - row[y as usize] > DECISION_TOL * scale
        })
        .collect()
}

/// The relative logit gap a point needs to count as adversarial (see [`fooled`]).
pub const DECISION_TOL: f64 = 1e-5;

/// `g / ‖g‖₂` per row (rows with zero gradient stay zero).
pub(crate) fn l2_normalize(g: &Tensor) -> Result<Tensor> {
    let n = (g.sqr()?.sum_keepdim(1)?.sqrt()? + TINY)?;
    g.broadcast_div(&n)
}

/// The steepest-ascent direction of unit `p`-norm for gradient `g` (L2: `g/‖g‖₂`; L∞:
/// `sign(g)`; L1: all mass on the largest |g_j|).
pub(crate) fn steepest(g: &Tensor, norm: Norm) -> Result<Tensor> {
    match norm {
        Norm::L2 => l2_normalize(g),
        Norm::Linf => g.sign(),
        Norm::L1 => {
            let d = g.dim(1)?;
            let idx = g.abs()?.argmax_keepdim(1)?;
            let cols = Tensor::arange(0u32, d as u32, g.device())?.unsqueeze(0)?;
            let onehot = cols.broadcast_eq(&idx)?.to_dtype(g.dtype())?;
            onehot * g.sign()?
        }
    }
}

/// Projects each row of `δ` `(N, D)` onto the `p`-ball of radius `eps[i]`.
pub(crate) fn project_ball(delta: &Tensor, eps: &[f64], norm: Norm) -> Result<Tensor> {
    let (dtype, dev) = (delta.dtype(), delta.device().clone());
    let col = |v: Vec<f64>| from_host(v, &[eps.len(), 1], dtype, &dev);
    match norm {
        Norm::L2 => {
            let n = row_norms(delta, Norm::L2)?;
            let f: Vec<f64> = n.iter().zip(eps).map(|(&n, &e)| if n > e { e / n } else { 1.0 }).collect();
            delta.broadcast_mul(&col(f)?)
        }
        Norm::Linf => {
            let e = col(eps.to_vec())?;
            delta.broadcast_minimum(&e)?.broadcast_maximum(&e.neg()?)
        }
        Norm::L1 => {
            let d = delta.dim(1)?;
            let mut v = to_host(delta)?;
            for (row, &e) in v.chunks_mut(d.max(1)).zip(eps) {
                project_l1_row(row, e);
            }
            from_host(v, &[eps.len(), d], dtype, &dev)
        }
    }
}

/// Euclidean projection of `v` onto the L1 ball of radius `eps` (Duchi et al. 2008).
pub(crate) fn project_l1_row(v: &mut [f64], eps: f64) {
    let l1: f64 = v.iter().map(|x| x.abs()).sum();
    if l1 <= eps {
        return;
    }
    if eps <= 0.0 {
        v.iter_mut().for_each(|x| *x = 0.0);
        return;
    }
    let mut u: Vec<f64> = v.iter().map(|x| x.abs()).collect();
    u.sort_by(|a, b| b.total_cmp(a));
    let (mut cum, mut theta) = (0.0, 0.0);
    for (j, &uj) in u.iter().enumerate() {
        cum += uj;
        let t = (cum - eps) / (j + 1) as f64;
        if uj > t {
            theta = t;
        } else {
            break;
        }
    }
    for x in v.iter_mut() {
        *x = x.signum() * (x.abs() - theta).max(0.0);
    }
}

/// `(1 + cos(π t / T)) / 2`: cosine annealing from 1 (t = 0) to 0 (t = T).
pub(crate) fn cosine(t: usize, total: usize) -> f64 {
    (1.0 + (std::f64::consts::PI * t as f64 / total.max(1) as f64).cos()) / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l1_projection_is_the_closest_point() {
        let mut v = vec![3.0, -1.0, 0.5];
        project_l1_row(&mut v, 2.0);
        assert!((v.iter().map(|x: &f64| x.abs()).sum::<f64>() - 2.0).abs() < 1e-12, "{v:?}");
        assert_eq!(v, vec![2.0, 0.0, 0.0]);
        let mut w = vec![1.0, 1.0];
        project_l1_row(&mut w, 1.0);
        assert_eq!(w, vec![0.5, 0.5]);
    }
}
