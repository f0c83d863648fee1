//! DeepFool (Moosavi-Dezfooli et al. 2016) as an evaluation attack: values only, any number of
//! iterations, L2 / L∞ / L1, the box respected, the perturbed points returned.
//!
//! The step is the one of the margin proxy (`proxy/deepfool.rs`, DESIGN.md §1.1), so that
//! `deepfool(iters=5)` reproduces the paper's margin on correctly classified samples when the data
//! has no box: candidates are the top classes by the clean logits, the class `l` minimising
//! `|g_l| / ‖w_l‖_q` is chosen at every iteration, and each step is scaled by `1 + overshoot`.
//! With a box, each step is clipped into it (`r ← clip(x + r + step) − x`), and coordinates that
//! sit at a bound and would be pushed outward are left out of the linearisation (the gradient is
//! projected on the feasible directions): without that, DeepFool keeps stepping into the bound and
//! stalls (on digits, 50 iterations fooled 42% of the samples instead of all of them). Inside the
//! box, and without one, the attack is plain DeepFool.
use super::{fooled, row_norms, Attack, Bounds, Kind, Probe, TINY};
use crate::layer::{Ctx, Rows};
use crate::model::Model;
use crate::proxy::{minimal_step, top_k, Norm};
use crate::tensor::{class_diff_seeds, from_host, to_host};
use candle_core::{Result, Tensor};

/// Settings of [`DeepFoolAttack`].
#[derive(Clone, Debug, PartialEq)]
pub struct DeepFoolAttackConfig {
    /// Maximum iterations (DeepFool's `max_iter`, 50 in the original code and foolbox).
    pub iters: usize,
    /// Per-step overshoot (0.02, as in the paper's margin and the original code).
    pub overshoot: f64,
    /// Classes considered, the top ones by the clean logits (0 = all).
    pub candidates: usize,
}

impl Default for DeepFoolAttackConfig {
    fn default() -> Self {
        Self { iters: 50, overshoot: 0.02, candidates: 0 }
    }
}

/// Untargeted DeepFool.
#[derive(Clone, Debug)]
pub struct DeepFoolAttack {
    label: String,
    norm: Norm,
    pub cfg: DeepFoolAttackConfig,
}

impl DeepFoolAttack {
    pub fn new(label: impl Into<String>, norm: Norm, cfg: DeepFoolAttackConfig) -> Self {
        Self { label: label.into(), norm, cfg }
    }
}

impl Attack for DeepFoolAttack {
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
        let cand = if c.candidates == 0 { "all".to_string() } else { c.candidates.to_string() };
        format!("deepfool({}, iters={}, overshoot={}, candidates={cand})", self.norm.name(), c.iters, c.overshoot)
    }

    fn run(&self, model: &dyn Model, x: &Tensor, y: &[u32], bounds: Option<&Bounds>, _eps: f64) -> Result<Tensor> {
        let probe = Probe::new(model, x, bounds)?;
        let (n, k, dev) = (probe.n, probe.classes, probe.device.clone());
        if n == 0 {
            return Ok(x.clone());
        }
        let xf = x.flatten_from(1)?.detach();
        let per_sample = &probe.shape[1..];
        let clean = to_host(&model.forward(x, &Ctx::eval(n))?.logits)?;
        let kk = if self.cfg.candidates == 0 { k } else { self.cfg.candidates.min(k) };
        let cands: Vec<Vec<u32>> =
            (0..n).map(|i| top_k(&clean[i * k..(i + 1) * k], kk).into_iter().filter(|&j| j != y[i]).collect()).collect();

        let mut r = xf.zeros_like()?;
        let mut point = xf.clone();
        let mut active: Vec<u32> = (0..n as u32).collect();
        let mut it = 0;
        loop {
            let idx = Tensor::new(active.as_slice(), &dev)?;
            let p = point.index_select(&idx, 0)?;
            let mut s = vec![active.len()];
            s.extend_from_slice(per_sample);
            let fwd = model.forward(&p.reshape(s)?, &Ctx::eval(active.len()))?;
            let logits = to_host(&fwd.logits)?;
            let ya: Vec<u32> = active.iter().map(|&s| y[s as usize]).collect();
            let done = fooled(&logits, &ya, k);
            let (mut rows, mut still) = (Vec::new(), Vec::new());
            for (row, &s) in active.iter().enumerate() {
                if !done[row] && !cands[s as usize].is_empty() {
                    rows.push(row as u32);
                    still.push(s);
                }
            }
            if still.is_empty() || it == self.cfg.iters {
                break;
            }
            // every candidate row of every active sample in one VJP
            let (mut cand_rows, mut pairs, mut owner) = (Vec::new(), Vec::new(), Vec::new());
            for (j, (&row, &s)) in rows.iter().zip(&still).enumerate() {
                for &c in &cands[s as usize] {
                    cand_rows.push(row);
                    pairs.push((c, y[s as usize]));
                    owner.push(j);
                }
            }
            let rr = Rows::new(&cand_rows, active.len(), &dev)?;
            let seeds = class_diff_seeds(&pairs, k, fwd.logits.dtype(), &dev)?;
            let mut w = crate::autograd::input_vjp(model, &fwd, &seeds, &rr)?.detach().flatten_from(1)?;
            if let Some((lo, hi)) = &probe.bounds {
                // coordinates at a bound that the step would push outward cannot move: leave them
                // out of the linearisation (the box-aware variant; nothing changes inside the box)
                let pts = rr.gather(&p)?;
                let f = |t: Tensor| t.to_dtype(w.dtype());
                let blocked = ((f(pts.broadcast_le(lo)?)? * f(w.lt(0.0)?)?)? + (f(pts.broadcast_ge(hi)?)? * f(w.gt(0.0)?)?)?)?;
                w = (&w * (1.0 - blocked.clamp(0.0, 1.0)?)?)?;
            }
            let wn = row_norms(&w, self.norm.dual())?;
            let mut best: Vec<Option<(f64, usize, f64)>> = vec![None; still.len()];
            for (c, &(a, b)) in pairs.iter().enumerate() {
                let row = cand_rows[c] as usize;
                let g = logits[row * k + a as usize] - logits[row * k + b as usize];
                let score = g.abs() / (wn[c] + TINY);
                let o = owner[c];
                if best[o].is_none_or(|(bs, _, _)| score < bs) {
                    best[o] = Some((score, c, g));
                }
            }
            let pick: Vec<u32> = best.iter().map(|b| b.expect("a candidate").1 as u32).collect();
            let gaps: Vec<f64> = best.iter().map(|b| b.expect("a candidate").2).collect();
            let wl = w.index_select(&Tensor::new(pick.as_slice(), &dev)?, 0)?;
            let gaps = from_host(gaps, &[still.len()], wl.dtype(), &dev)?;
            let step = minimal_step(self.norm, self.cfg.overshoot, &wl, &gaps)?;
            let sidx = Tensor::new(still.as_slice(), &dev)?;
            r = r.index_add(&sidx, &step, 0)?;
            point = probe.clip(&(&xf + &r)?)?;
            if probe.bounds.is_some() {
                r = (&point - &xf)?;
            }
            active = still;
            it += 1;
        }
        point.reshape(probe.shape.as_slice())
    }
}
