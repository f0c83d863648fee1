//! Decoupled Direction and Norm (Rony et al., CVPR 2019), untargeted, L2 only, following the
//! authors' reference implementation (adv_lib `ddn`):
//!
//! at step `k` (of `K`), at `x + δ`: keep it if adversarial and smaller than the best so far;
//! `δ ← δ + α_k ∇CE/‖∇CE‖₂` (`α_k` cosine-annealed from 1 to 0.01; a random direction where the
//! gradient vanishes); `ε ← ε(1 − γ)` if `x + δ` was adversarial, else `ε(1 + γ)` (from
//! `init_norm`, capped by the largest perturbation the box allows); `δ ← ε δ/‖δ‖₂`, then
//! `δ ← clip(x + δ) − x`. The 8-bit quantisation of the reference code (`levels=256`) is left out:
//! amm's inputs are continuous and mean-subtracted.
use super::{ce_loss, cosine, fooled, l2_normalize, row_norms, Attack, Bounds, Kind, Probe, TINY};
use crate::data::Rng;
use crate::model::Model;
use crate::proxy::Norm;
use crate::tensor::from_host;
use candle_core::{Result, Tensor};

/// Settings of [`Ddn`].
#[derive(Clone, Debug, PartialEq)]
pub struct DdnConfig {
    /// Steps (100 in the paper's evaluation, 1000 for its best numbers).
    pub steps: usize,
    /// Initial ε (1).
    pub init_norm: f64,
    /// Multiplicative ε step γ (0.05).
    pub gamma: f64,
    /// Initial step size α (1), cosine-annealed to `alpha_final` (0.01).
    pub alpha: f64,
    pub alpha_final: f64,
}

impl Default for DdnConfig {
    fn default() -> Self {
        Self { steps: 100, init_norm: 1.0, gamma: 0.05, alpha: 1.0, alpha_final: 0.01 }
    }
}

/// The DDN attack (L2).
#[derive(Clone, Debug)]
pub struct Ddn {
    label: String,
    pub cfg: DdnConfig,
}

impl Ddn {
    pub fn new(label: impl Into<String>, cfg: DdnConfig) -> Self {
        Self { label: label.into(), cfg }
    }
}

impl Attack for Ddn {
    fn label(&self) -> &str {
        &self.label
    }
    fn norm(&self) -> Norm {
        Norm::L2
    }
    fn kind(&self) -> Kind {
        Kind::MinNorm
    }
    fn describe(&self) -> String {
        let c = &self.cfg;
        format!(
            "ddn(l2, steps={}, init_norm={}, gamma={}, alpha={}, alpha_final={})",
            c.steps, c.init_norm, c.gamma, c.alpha, c.alpha_final
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
        let d = xf.dim(1)?;
        let worst = probe.worst_norm(&xf, Norm::L2)?;
        let mut delta = xf.zeros_like()?;
        let mut eps = vec![c.init_norm; n];
        let mut best_norm = worst.clone();
        let mut best = xf.clone();
        let mut rng = Rng::new(0x0dd0);
        for i in 0..=c.steps {
            let p = (&xf + &delta)?;
            let (fwd, logits) = probe.forward(&p)?;
            let dnorm = row_norms(&delta, Norm::L2)?;
            let adv = fooled(&logits, y, k);
            let better: Vec<bool> = (0..n).map(|s| adv[s] && dnorm[s] < best_norm[s]).collect();
            for s in 0..n {
                if better[s] {
                    best_norm[s] = dnorm[s];
                }
            }
            best = probe.select(&better, &p, &best)?;
            if i == c.steps {
                break;
            }
            let alpha = c.alpha_final + (c.alpha - c.alpha_final) * cosine(i, c.steps);
            let (_, dl) = ce_loss(&logits, y, k);
            let g = probe.grad(&fwd, dl)?;
            let gn = row_norms(&g, Norm::L2)?;
            let mut dir = l2_normalize(&g)?;
            let zero: Vec<bool> = gn.iter().map(|&v| v < TINY).collect();
            if zero.iter().any(|&z| z) {
                let r: Vec<f64> = (0..n * d).map(|_| rng.normal()).collect();
                let r = l2_normalize(&from_host(r, &[n, d], probe.dtype, &probe.device)?)?;
                dir = probe.select(&zero, &r, &dir)?;
            }
            delta = (&delta + (dir * alpha)?)?;
            for s in 0..n {
                eps[s] = if adv[s] { eps[s] * (1.0 - c.gamma) } else { eps[s] * (1.0 + c.gamma) }.min(worst[s]);
            }
            let dn = row_norms(&delta, Norm::L2)?;
            let f: Vec<f64> = eps.iter().zip(&dn).map(|(e, n)| e / n.max(TINY)).collect();
            delta = delta.broadcast_mul(&probe.col(&f)?)?;
            delta = probe.clip_delta(&xf, &delta)?;
        }
        best.reshape(probe.shape.as_slice())
    }
}
