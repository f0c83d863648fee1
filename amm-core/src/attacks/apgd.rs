//! Auto-PGD (Croce & Hein, ICML 2020) at a fixed budget ε, L2 and L∞, with the cross-entropy loss
//! (APGD-CE) or the targeted DLR loss over the top classes (APGD-T), following the authors'
//! reference implementation (`autoattack/autopgd_base.py`):
//!
//! - random start on the sphere of radius ε (L∞: uniform noise scaled so its largest entry is ε;
//!   L2: a normalised Gaussian), clipped to the box;
//! - step size `η⁽⁰⁾ = 2ε`; the update with momentum 0.75:
//!   `z = P(x_k + η s(∇))`, `x_{k+1} = P(x_k + 0.75 (z − x_k) + 0.25 (x_k − x_{k−1}))`
//!   (no momentum on the first step), `s` = sign (L∞) or `∇/‖∇‖₂` (L2),
//!   `P` = projection on the ε-ball then the box;
//! - checkpoints after 22% of the iterations, then at intervals shrinking by 3% down to 6%; at a
//!   checkpoint a sample halves its step and restarts from its best point when the loss increased in
//!   at most ρ = 75% of the steps since the last checkpoint, or when the step was not reduced at the
//!   last checkpoint and the best loss has not improved since;
//! - restarts run only on the samples not fooled yet; APGD-T runs once per target class (the 2nd to
//!   the `targets+1`-th largest clean logits) on the samples still not fooled.
//!
//! A sample counts as fooled when ANY iterate was misclassified, and that iterate is returned.
use super::{ce_loss, fooled, project_ball, select_rows, steepest, Attack, Bounds, Kind, Probe};
use crate::data::Rng;
use crate::layer::Ctx;
use crate::model::Model;
use crate::proxy::Norm;
use crate::tensor::{from_host, to_host};
use candle_core::{Result, Tensor};

/// Which loss APGD maximises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApgdLoss {
    /// Cross-entropy (APGD-CE).
    Ce,
    /// The targeted difference-of-logits ratio (APGD-T):
    /// `−(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2)` with `π` the classes by decreasing logit.
    DlrTargeted,
}

/// Settings of [`Apgd`].
#[derive(Clone, Debug, PartialEq)]
pub struct ApgdConfig {
    /// Iterations per run (100).
    pub iters: usize,
    /// Runs per sample (1; for APGD-T, per target class).
    pub restarts: usize,
    /// Oscillation threshold ρ (0.75).
    pub rho: f64,
    /// Momentum α (0.75).
    pub momentum: f64,
    /// Initial step as a multiple of ε (2).
    pub step: f64,
    /// Target classes of APGD-T (9).
    pub targets: usize,
    /// Seed of the random starts.
    pub seed: u64,
}

impl Default for ApgdConfig {
    fn default() -> Self {
        Self { iters: 100, restarts: 1, rho: 0.75, momentum: 0.75, step: 2.0, targets: 9, seed: 0 }
    }
}

/// APGD-CE or APGD-T.
#[derive(Clone, Debug)]
pub struct Apgd {
    label: String,
    norm: Norm,
    pub loss: ApgdLoss,
    pub cfg: ApgdConfig,
}

impl Apgd {
    pub fn new(label: impl Into<String>, norm: Norm, loss: ApgdLoss, cfg: ApgdConfig) -> Self {
        Self { label: label.into(), norm, loss, cfg }
    }

    /// Per-sample loss and its derivative with respect to the logits.
    fn loss(&self, logits: &[f64], y: &[u32], target: Option<&[u32]>, k: usize) -> (Vec<f64>, Vec<f64>) {
        match (self.loss, target) {
            (ApgdLoss::Ce, _) | (_, None) => ce_loss(logits, y, k),
            (ApgdLoss::DlrTargeted, Some(t)) => dlr_targeted(logits, y, t, k),
        }
    }

    /// One run on the flat samples `xf` `(m, D)`; returns (last adversarial iterate or best-loss
    /// point, fooled).
    #[allow(clippy::too_many_arguments)]
    fn single(
        &self,
        model: &dyn Model,
        xf: &Tensor,
        shape: &[usize],
        y: &[u32],
        target: Option<&[u32]>,
        bounds: Option<&Bounds>,
        eps: f64,
        rng: &mut Rng,
    ) -> Result<(Tensor, Vec<bool>)> {
        let m = y.len();
        let d = xf.dim(1)?;
        let mut s = vec![m];
        s.extend_from_slice(shape);
        let probe = Probe::new(model, &xf.reshape(s)?, bounds)?;
        let k = probe.classes;
        let c = &self.cfg;
        let ni = c.iters;
        let n_iter_2 = ((0.22 * ni as f64) as usize).max(1);
        let n_iter_min = ((0.06 * ni as f64) as usize).max(1);
        let size_decr = ((0.03 * ni as f64) as usize).max(1);
        let eps_v = vec![eps; m];
        let proj = |p: &Tensor| -> Result<Tensor> { probe.clip(&(xf + project_ball(&(p - xf)?, &eps_v, self.norm)?)?) };

        let noise: Vec<f64> = match self.norm {
            Norm::Linf => (0..m * d).map(|_| 2.0 * rng.uniform() - 1.0).collect(),
            _ => (0..m * d).map(|_| rng.normal()).collect(),
        };
        let t = from_host(noise, &[m, d], probe.dtype, &probe.device)?;
        let t = match self.norm {
            Norm::Linf => t.broadcast_div(&(t.abs()?.max_keepdim(1)? + 1e-12)?)?,
            _ => super::l2_normalize(&t)?,
        };
        let mut x_adv = probe.clip(&(xf + (t * eps)?)?)?;
        let (fwd, logits) = probe.forward(&x_adv)?;
        let (loss0, dl) = self.loss(&logits, y, target, k);
        let mut grad = probe.grad(&fwd, dl)?;
        let mut is_fooled = fooled(&logits, y, k);
        let mut x_best_adv = x_adv.clone();
        let mut x_best = x_adv.clone();
        let mut grad_best = grad.clone();
        let mut loss_best = loss0.clone();
        let mut step = vec![c.step * eps; m];
        let mut x_old = x_adv.clone();
        let mut kk = n_iter_2;
        let mut counter = 0;
        let mut loss_best_last = loss_best.clone();
        let mut reduced_last = vec![true; m];
        let mut loss_steps: Vec<Vec<f64>> = Vec::with_capacity(ni);
        for i in 0..ni {
            let grad2 = (&x_adv - &x_old)?;
            x_old = x_adv.clone();
            let a = if i > 0 { c.momentum } else { 1.0 };
            let z = proj(&(&x_adv + steepest(&grad, self.norm)?.broadcast_mul(&probe.col(&step)?)?)?)?;
            let moved = ((&x_adv + ((&z - &x_adv)? * a)?)? + (grad2 * (1.0 - a))?)?;
            x_adv = proj(&moved)?;

            let (fwd, logits) = probe.forward(&x_adv)?;
            let (loss, dl) = self.loss(&logits, y, target, k);
            grad = probe.grad(&fwd, dl)?;
            let now = fooled(&logits, y, k);
            x_best_adv = probe.select(&now, &x_adv, &x_best_adv)?;
            for (f, n) in is_fooled.iter_mut().zip(&now) {
                *f |= *n;
            }
            let improved: Vec<bool> = (0..m).map(|j| loss[j] > loss_best[j]).collect();
            x_best = probe.select(&improved, &x_adv, &x_best)?;
            grad_best = probe.select(&improved, &grad, &grad_best)?;
            for j in 0..m {
                if improved[j] {
                    loss_best[j] = loss[j];
                }
            }
            loss_steps.push(loss);
            counter += 1;
            if counter == kk {
                let mut fl = vec![false; m];
                for j in 0..m {
                    let mut ups = 0usize;
                    for back in 0..kk {
                        let cur = i as isize - back as isize;
                        let prev = if cur >= 1 { loss_steps[cur as usize - 1][j] } else { loss0[j] };
                        if cur >= 0 && loss_steps[cur as usize][j] > prev {
                            ups += 1;
                        }
                    }
                    let osc = ups as f64 <= kk as f64 * c.rho;
                    let no_impr = !reduced_last[j] && loss_best_last[j] >= loss_best[j];
                    fl[j] = osc || no_impr;
                }
                reduced_last = fl.clone();
                loss_best_last = loss_best.clone();
                if fl.iter().any(|&f| f) {
                    for j in 0..m {
                        if fl[j] {
                            step[j] /= 2.0;
                        }
                    }
                    x_adv = probe.select(&fl, &x_best, &x_adv)?;
                    grad = probe.select(&fl, &grad_best, &grad)?;
                }
                kk = kk.saturating_sub(size_decr).max(n_iter_min);
                counter = 0;
            }
        }
        let out = probe.select(&is_fooled, &x_best_adv, &x_best)?;
        Ok((out, is_fooled))
    }
}

/// The targeted DLR loss and its derivative with respect to the logits. With fewer than four
/// classes the denominator is 1 (the plain logit difference).
fn dlr_targeted(logits: &[f64], y: &[u32], t: &[u32], k: usize) -> (Vec<f64>, Vec<f64>) {
    let mut loss = Vec::with_capacity(y.len());
    let mut d = vec![0.0; logits.len()];
    for (i, row) in logits.chunks(k).enumerate() {
        let (yi, ti) = (y[i] as usize, t[i] as usize);
        let diff = row[yi] - row[ti];
        let g = &mut d[i * k..(i + 1) * k];
        if k >= 4 {
            let mut order: Vec<usize> = (0..k).collect();
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
            let den = row[order[0]] - 0.5 * (row[order[2]] + row[order[3]]) + 1e-12;
            loss.push(-diff / den);
            g[yi] -= 1.0 / den;
            g[ti] += 1.0 / den;
            let dd = diff / (den * den);
            g[order[0]] += dd;
            g[order[2]] -= 0.5 * dd;
            g[order[3]] -= 0.5 * dd;
        } else {
            loss.push(-diff);
            g[yi] -= 1.0;
            g[ti] += 1.0;
        }
    }
    (loss, d)
}

impl Attack for Apgd {
    fn label(&self) -> &str {
        &self.label
    }
    fn norm(&self) -> Norm {
        self.norm
    }
    fn kind(&self) -> Kind {
        Kind::FixedEps
    }
    fn describe(&self) -> String {
        let c = &self.cfg;
        let name = match self.loss {
            ApgdLoss::Ce => "apgd-ce".to_string(),
            ApgdLoss::DlrTargeted => format!("apgd-t(targets={}, ", c.targets),
        };
        let name = if name.ends_with(", ") { name } else { format!("{name}(") };
        format!(
            "{name}{}, iters={}, restarts={}, rho={}, momentum={}, step={}eps, seed={})",
            self.norm.name(),
            c.iters,
            c.restarts,
            c.rho,
            c.momentum,
            c.step,
            c.seed
        )
    }

    fn run(&self, model: &dyn Model, x: &Tensor, y: &[u32], bounds: Option<&Bounds>, eps: f64) -> Result<Tensor> {
        let n = x.dim(0)?;
        if n == 0 || eps <= 0.0 {
            return Ok(x.clone());
        }
        let shape = x.dims()[1..].to_vec();
        let dev = x.device().clone();
        let xf = x.flatten_from(1)?.detach();
        let k = model.classes();
        let clean = to_host(&model.forward(x, &Ctx::eval(n))?.logits)?;
        let mut done = fooled(&clean, y, k);
        let mut out = xf.clone();
        let runs: Vec<Option<usize>> = match self.loss {
            ApgdLoss::Ce => vec![None],
            ApgdLoss::DlrTargeted => (1..=self.cfg.targets.min(k.saturating_sub(1))).map(Some).collect(),
        };
        let base = Rng::new(self.cfg.seed);
        for (ri, rank) in runs.iter().enumerate() {
            for restart in 0..self.cfg.restarts {
                let todo: Vec<u32> = (0..n as u32).filter(|&i| !done[i as usize]).collect();
                if todo.is_empty() {
                    break;
                }
                let idx = Tensor::new(todo.as_slice(), &dev)?;
                let xs = xf.index_select(&idx, 0)?;
                let ys: Vec<u32> = todo.iter().map(|&i| y[i as usize]).collect();
                let ts: Option<Vec<u32>> = rank.map(|r| {
                    todo.iter()
                        .map(|&i| {
                            let row = &clean[i as usize * k..(i as usize + 1) * k];
                            let mut order: Vec<usize> = (0..k).collect();
                            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
                            order[r] as u32
                        })
                        .collect()
                });
                let mut rng = base.fork((ri * 1000 + restart) as u64);
                let (adv, ok) = self.single(model, &xs, &shape, &ys, ts.as_deref(), bounds, eps, &mut rng)?;
                // place the attempts of this run (fooled ones win; others keep the latest attempt)
                let placed = out.zeros_like()?.index_add(&idx, &adv, 0)?;
                let mut mask = vec![false; n];
                todo.iter().for_each(|&i| mask[i as usize] = true);
                out = select_rows(&mask, &placed, &out)?;
                for (j, &i) in todo.iter().enumerate() {
                    done[i as usize] |= ok[j];
                }
            }
        }
        let mut s = vec![n];
        s.extend_from_slice(&shape);
        out.reshape(s)
    }
}
