//! Fast Minimum-Norm attack (Pintor, Roli, Brendel, Biggio, NeurIPS 2021), untargeted, for L2,
//! L∞ and L1, following the authors' reference implementation (adv_lib `fmn`):
//!
//! at step `k` (of `K`), with `α_k`, `γ_k` cosine-annealed from `α₀`, `γ₀` to `α_K = α₀/100`,
//! `γ_K = 0.001`, and the loss `L = −(z_y − max_{j≠y} z_j)` at `x + δ`:
//! - keep `x + δ` if it is adversarial and smaller than the best so far;
//! - `ε ← min(ε(1 − γ_k), ‖δ_best‖)` if adversarial; otherwise `ε ← ε(1 + γ_k)` once an adversarial
//!   has been found, or `‖δ‖ + |L| / ‖∇L‖_q` (the linearised distance) before that — here, unlike
//!   the reference, at least `ε(1 + γ_k)`: the linearised distance alone stalls just inside the
//!   boundary when clipping at the box shortens the step or the boundary is exactly linear (on
//!   digits the reference rule fooled 23% of the samples in 100 steps, this one all of them);
//!   `ε` never exceeds the largest perturbation the box allows;
//! - `δ ← Π_ε(δ + α_k ∇L/‖∇L‖₂)`, then `δ ← clip(x + δ) − x`.
use super::{cosine, fooled, logit_margin, project_ball, row_norms, Attack, Bounds, Kind, Probe, TINY};
use crate::model::Model;
use crate::proxy::Norm;
use candle_core::{Result, Tensor};

/// Settings of [`Fmn`].
#[derive(Clone, Debug, PartialEq)]
pub struct FmnConfig {
    /// Steps `K` (the paper uses 1000; 100 is the default here, as in foolbox).
    pub steps: usize,
    /// Initial step size `α₀`.
    pub alpha: f64,
    /// Final step size (`α₀ / 100` by default).
    pub alpha_final: f64,
    /// Initial ε step `γ₀`.
    pub gamma: f64,
    /// Final ε step.
    pub gamma_final: f64,
}

impl Default for FmnConfig {
    fn default() -> Self {
        Self { steps: 100, alpha: 1.0, alpha_final: 0.01, gamma: 0.05, gamma_final: 0.001 }
    }
}

/// The FMN attack.
#[derive(Clone, Debug)]
pub struct Fmn {
    label: String,
    norm: Norm,
    pub cfg: FmnConfig,
}

impl Fmn {
    pub fn new(label: impl Into<String>, norm: Norm, cfg: FmnConfig) -> Self {
        Self { label: label.into(), norm, cfg }
    }
}

impl Attack for Fmn {
    fn label(&self) -> &str {
        &self.label
    }
    fn norm(&self) -> Norm {
        self.norm
    }
    fn kind(&self) -> Kind {
        Kind::MinNorm
    }
    fn describe(&self) -> String {
        let c = &self.cfg;
        format!(
            "fmn({}, steps={}, alpha={}, alpha_final={}, gamma={}, gamma_final={})",
            self.norm.name(),
            c.steps,
            c.alpha,
            c.alpha_final,
            c.gamma,
            c.gamma_final
        )
    }

    fn run(&self, model: &dyn Model, x: &Tensor, y: &[u32], bounds: Option<&Bounds>, _eps: f64) -> Result<Tensor> {
        let probe = Probe::new(model, x, bounds)?;
        let (n, k) = (probe.n, probe.classes);
        if n == 0 {
            return Ok(x.clone());
        }
        let c = &self.cfg;
        let xf = x.flatten_from(1)?.detach();
        let worst = probe.worst_norm(&xf, self.norm)?;
        let mut delta = xf.zeros_like()?;
        let mut eps = vec![f64::INFINITY; n];
        let mut best_norm = vec![f64::INFINITY; n];
        let mut best = xf.clone();
        let mut found = vec![false; n];
        for i in 0..=c.steps {
            let p = (&xf + &delta)?;
            let (fwd, logits) = probe.forward(&p)?;
            let dnorm = row_norms(&delta, self.norm)?;
            let (margin, other) = logit_margin(&logits, y, k);
            let adv = fooled(&logits, y, k);
            let better: Vec<bool> = (0..n).map(|s| adv[s] && dnorm[s] < best_norm[s]).collect();
            for s in 0..n {
                if better[s] {
                    best_norm[s] = dnorm[s];
                }
                found[s] |= adv[s];
            }
            best = probe.select(&better, &p, &best)?;
            if i == c.steps {
                break;
            }
            let cs = cosine(i, c.steps);
            let alpha = c.alpha_final + (c.alpha - c.alpha_final) * cs;
            let gamma = c.gamma_final + (c.gamma - c.gamma_final) * cs;
            // L = −(z_y − z_other): ascend it
            let mut dl = vec![0.0; n * k];
            for s in 0..n {
                if other[s] != y[s] {
                    dl[s * k + y[s] as usize] = -1.0;
                    dl[s * k + other[s] as usize] = 1.0;
                }
            }
            let g = probe.grad(&fwd, dl)?;
            let gdual = row_norms(&g, self.norm.dual())?;
            for s in 0..n {
                let e = if adv[s] {
                    (eps[s] * (1.0 - gamma)).min(best_norm[s])
                } else if found[s] {
                    eps[s] * (1.0 + gamma)
                } else {
                    // the reference uses the linearised distance alone; where that estimate falls
                    // short (clipping at the box, exactly linear boundaries) it would stall just
                    // inside the boundary, so ε also grows by (1 + γ) per step
                    let lin = dnorm[s] + margin[s].abs() / gdual[s].max(TINY);
                    if eps[s].is_finite() {
                        lin.max(eps[s] * (1.0 + gamma))
                    } else {
                        lin
                    }
                };
                eps[s] = e.min(worst[s]);
            }
            let step = (super::l2_normalize(&g)? * alpha)?;
            delta = project_ball(&(&delta + step)?, &eps, self.norm)?;
            delta = probe.clip_delta(&xf, &delta)?;
        }
        best.reshape(probe.shape.as_slice())
    }
}
