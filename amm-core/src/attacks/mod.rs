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
mod apgd;
mod ddn;
mod deepfool;
mod fmn;

pub use apgd::{Apgd, ApgdConfig, ApgdLoss};
pub use ddn::{Ddn, DdnConfig};
pub use deepfool::{DeepFoolAttack, DeepFoolAttackConfig};
pub use fmn::{Fmn, FmnConfig};

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

// ---------------------------------------------------------------------------------------------
// Building attacks from text: `deepfool`, `fmn(steps=200)`, `apgd-t(restarts=2)`.

/// One parsed item of an attack list: a name and its `key=value` options.
#[derive(Clone, Debug, PartialEq)]
pub struct AttackSpec {
    pub name: String,
    pub options: Vec<(String, String)>,
    /// The text as written, without spaces.
    pub text: String,
}

/// The attack names [`build`] knows (`apgd` stands for `apgd-ce` and `apgd-t`).
pub const NAMES: &[&str] = &["deepfool", "fmn", "ddn", "apgd", "apgd-ce", "apgd-t"];

/// Splits `deepfool,fmn(steps=200, gamma=0.1),apgd` into items (commas inside parentheses do not
/// split).
pub fn parse_list(list: &str) -> anyhow::Result<Vec<AttackSpec>> {
    let mut items = Vec::new();
    let (mut depth, mut cur) = (0i32, String::new());
    for ch in list.chars() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            anyhow::bail!("attack list `{list}`: unbalanced `)`");
        }
        if ch == ',' && depth == 0 {
            items.push(std::mem::take(&mut cur));
        } else {
            cur.push(ch);
        }
    }
    if depth != 0 {
        anyhow::bail!("attack list `{list}`: unbalanced `(`");
    }
    items.push(cur);
    let mut out = Vec::new();
    for it in items {
        let text: String = it.chars().filter(|c| !c.is_whitespace()).collect();
        if text.is_empty() {
            continue;
        }
        let (name, opts) = match text.split_once('(') {
            None => (text.clone(), Vec::new()),
            Some((name, rest)) => {
                let inner = rest.strip_suffix(')').ok_or_else(|| anyhow::anyhow!("attack `{text}`: expected `)` at the end"))?;
                let mut opts = Vec::new();
                for kv in inner.split(',').filter(|s| !s.is_empty()) {
                    let (k, v) = kv.split_once('=').ok_or_else(|| anyhow::anyhow!("attack `{text}`: option `{kv}` is not key=value"))?;
                    opts.push((k.to_string(), v.to_string()));
                }
                (name.to_string(), opts)
            }
        };
        let name = name.to_ascii_lowercase();
        let name = match name.as_str() {
            "df" => "deepfool".to_string(),
            "apgd_ce" | "apgdce" => "apgd-ce".to_string(),
            "apgd_t" | "apgdt" => "apgd-t".to_string(),
            _ => name,
        };
        if !NAMES.contains(&name.as_str()) {
            anyhow::bail!("unknown attack `{name}` (known: {})", NAMES.join(", "));
        }
        out.push(AttackSpec { name, options: opts, text });
    }
    if out.is_empty() {
        anyhow::bail!("the attack list is empty (known attacks: {})", NAMES.join(", "));
    }
    Ok(out)
}

/// Reads the options of one attack, refusing unknown keys.
pub(crate) struct Opts<'a> {
    spec: &'a AttackSpec,
    used: Vec<bool>,
}

impl<'a> Opts<'a> {
    fn new(spec: &'a AttackSpec) -> Self {
        Self { spec, used: vec![false; spec.options.len()] }
    }
    fn raw(&mut self, keys: &[&str]) -> Option<&'a str> {
        let spec: &'a AttackSpec = self.spec;
        for (i, (k, v)) in spec.options.iter().enumerate() {
            if keys.contains(&k.as_str()) {
                self.used[i] = true;
                return Some(v.as_str());
            }
        }
        None
    }
    pub fn f64(&mut self, keys: &[&str], default: f64) -> anyhow::Result<f64> {
        match self.raw(keys) {
            None => Ok(default),
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| anyhow::anyhow!("attack `{}`: `{}` must be a number, got `{v}`", self.spec.text, keys[0])),
        }
    }
    pub fn usize(&mut self, keys: &[&str], default: usize) -> anyhow::Result<usize> {
        match self.raw(keys) {
            None => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .map_err(|_| anyhow::anyhow!("attack `{}`: `{}` must be an integer >= 0, got `{v}`", self.spec.text, keys[0])),
        }
    }
    fn finish(self, known: &[&str]) -> anyhow::Result<()> {
        for (i, (k, _)) in self.spec.options.iter().enumerate() {
            if !self.used[i] {
                anyhow::bail!("attack `{}`: unknown option `{k}` (options: {})", self.spec.text, known.join(", "));
            }
        }
        Ok(())
    }
}

fn norm_check(name: &str, norm: Norm, ok: &[Norm]) -> anyhow::Result<()> {
    if !ok.contains(&norm) {
        let names: Vec<&str> = ok.iter().map(|n| n.name()).collect();
        anyhow::bail!("attack `{name}` does not support the {} norm (it supports: {})", norm.name(), names.join(", "));
    }
    Ok(())
}

/// Builds the attacks of a list for `norm` with the published defaults unless options say
/// otherwise. Labels are the names (`fmn`), or the text as written when it has options
/// (`deepfool(iters=5)`); `apgd` gives `apgd-ce` and `apgd-t`. Labels must be unique.
pub fn build(specs: &[AttackSpec], norm: Norm) -> anyhow::Result<Vec<Box<dyn Attack>>> {
    let mut out: Vec<Box<dyn Attack>> = Vec::new();
    for s in specs {
        let label = |base: &str| if s.options.is_empty() { base.to_string() } else { s.text.replacen(&s.name, base, 1) };
        match s.name.as_str() {
            "deepfool" => {
                let mut o = Opts::new(s);
                let d = DeepFoolAttackConfig::default();
                let cfg = DeepFoolAttackConfig {
                    iters: o.usize(&["iters", "steps"], d.iters)?,
                    overshoot: o.f64(&["overshoot"], d.overshoot)?,
                    candidates: o.usize(&["candidates"], d.candidates)?,
                };
                o.finish(&["iters", "overshoot", "candidates"])?;
                out.push(Box::new(DeepFoolAttack::new(label("deepfool"), norm, cfg)));
            }
            "fmn" => {
                norm_check("fmn", norm, &[Norm::L2, Norm::Linf, Norm::L1])?;
                let mut o = Opts::new(s);
                let d = FmnConfig::default();
                let alpha = o.f64(&["alpha", "alpha_init"], d.alpha)?;
                let cfg = FmnConfig {
                    steps: o.usize(&["steps", "iters"], d.steps)?,
                    alpha,
                    alpha_final: o.f64(&["alpha_final"], alpha / 100.0)?,
                    gamma: o.f64(&["gamma", "gamma_init"], d.gamma)?,
                    gamma_final: o.f64(&["gamma_final"], d.gamma_final)?,
                };
                o.finish(&["steps", "alpha", "alpha_final", "gamma", "gamma_final"])?;
                out.push(Box::new(Fmn::new(label("fmn"), norm, cfg)));
            }
            "ddn" => {
                norm_check("ddn", norm, &[Norm::L2])?;
                let mut o = Opts::new(s);
                let d = DdnConfig::default();
                let cfg = DdnConfig {
                    steps: o.usize(&["steps", "iters"], d.steps)?,
                    init_norm: o.f64(&["init_norm"], d.init_norm)?,
                    gamma: o.f64(&["gamma"], d.gamma)?,
                    alpha: o.f64(&["alpha"], d.alpha)?,
                    alpha_final: o.f64(&["alpha_final"], d.alpha_final)?,
                };
                o.finish(&["steps", "init_norm", "gamma", "alpha", "alpha_final"])?;
                out.push(Box::new(Ddn::new(label("ddn"), cfg)));
            }
            "apgd" | "apgd-ce" | "apgd-t" => {
                norm_check(&s.name, norm, &[Norm::L2, Norm::Linf])?;
                let mut o = Opts::new(s);
                let d = ApgdConfig::default();
                let cfg = ApgdConfig {
                    iters: o.usize(&["iters", "steps", "n_iter"], d.iters)?,
                    restarts: o.usize(&["restarts", "n_restarts"], d.restarts)?,
                    rho: o.f64(&["rho"], d.rho)?,
                    momentum: o.f64(&["momentum", "alpha"], d.momentum)?,
                    step: o.f64(&["step", "eta"], d.step)?,
                    targets: o.usize(&["targets", "n_target_classes"], d.targets)?,
                    seed: o.usize(&["seed"], d.seed as usize)? as u64,
                };
                o.finish(&["iters", "restarts", "rho", "momentum", "step", "targets", "seed"])?;
                if cfg.restarts == 0 {
                    anyhow::bail!("attack `{}`: restarts must be at least 1", s.text);
                }
                if s.name != "apgd-t" {
                    out.push(Box::new(Apgd::new(label("apgd-ce"), norm, ApgdLoss::Ce, cfg.clone())));
                }
                if s.name != "apgd-ce" {
                    out.push(Box::new(Apgd::new(label("apgd-t"), norm, ApgdLoss::DlrTargeted, cfg)));
                }
            }
            other => anyhow::bail!("unknown attack `{other}` (known: {})", NAMES.join(", ")),
        }
    }
    let mut seen = std::collections::HashSet::new();
    for a in &out {
        if !seen.insert(a.label().to_string()) {
            anyhow::bail!("attack `{}` appears twice in the list", a.label());
        }
    }
    Ok(out)
}

/// [`parse_list`] then [`build`].
pub fn from_list(list: &str, norm: Norm) -> anyhow::Result<Vec<Box<dyn Attack>>> {
    build(&parse_list(list)?, norm)
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

    #[test]
    fn lists_parse() {
        let s = parse_list("deepfool, fmn(steps=20, gamma=0.1),apgd").unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[1].options, vec![("steps".into(), "20".into()), ("gamma".into(), "0.1".into())]);
        let a = build(&s, Norm::L2).unwrap();
        let labels: Vec<&str> = a.iter().map(|a| a.label()).collect();
        assert_eq!(labels, ["deepfool", "fmn(steps=20,gamma=0.1)", "apgd-ce", "apgd-t"]);
        assert!(from_list("nope", Norm::L2).err().expect("an error").to_string().contains("unknown attack"));
        assert!(from_list("fmn(stepz=3)", Norm::L2).err().expect("an error").to_string().contains("unknown option `stepz`"));
        assert!(from_list("ddn", Norm::Linf).err().expect("an error").to_string().contains("l2"));
        assert!(from_list("fmn,fmn", Norm::L2).err().expect("an error").to_string().contains("twice"));
    }
}
