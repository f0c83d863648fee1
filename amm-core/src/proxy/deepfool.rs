//! Batched DeepFool (L2, L∞, L1) whose perturbation is differentiable with respect to the weights
//! (DESIGN.md §1.1), and its one-step special case, the linearised distance of Elsayed et al.
//!
//! Per iteration, for the samples still active:
//! 1. forward at the point `x + r` (the point is detached from earlier steps, the logits are not,
//!    as in the authors' code);
//! 2. choose the pair `(l, o)`: correct samples aim at the candidate `l` minimising
//!    `|g_l| / ‖w_l‖_q` away from their clean prediction `o`; misclassified samples aim at their
//!    label `l = y` away from the current prediction `o`;
//! 3. `w = ∇ₓf_l − ∇ₓf_o` from ONE batched input-VJP call (one row per sample, plus the candidate
//!    rows when choosing), `g = f_l − f_o`;
//! 4. `r += (1 + overshoot) · step(w, g)`.
//!
//! The candidate rows only inform the (non-differentiable) choice of `l`; the step's row is a
//! separate one-row-per-sample VJP, so the backward pass never walks through the other K−2 rows.
use super::{Norm, Pass, Proxy, ProxyOut, Step, Trace};
use crate::autograd::input_vjp;
use crate::layer::{Ctx, Rows};
use crate::model::{Forward, Model};
use crate::tensor::{argmax_rows, class_diff_seeds, placement, to_host};
use candle_core::{Result, Tensor};

/// Guards the divisions by ‖w‖.
const EPS: f64 = 1e-12;

/// Settings of [`DeepFool`].
#[derive(Clone, Debug, PartialEq)]
pub struct DeepFoolConfig {
    pub norm: Norm,
    /// Maximum number of iterations `u`.
    pub iters: usize,
    /// Per-step overshoot: each step is scaled by `1 + overshoot`.
    pub overshoot: f64,
    /// Number of top classes (by the clean logits) a correct sample may aim at.
    pub candidates: usize,
    /// Differentiate through `w` (the second-order terms). `false` is the paper's ablation.
    pub hog: bool,
    /// Keep samples the attack did not flip (`failed=keep`).
    pub keep_failed: bool,
    /// Stop each sample when it flips and report success. `false` gives the linearised distance:
    /// one step from `x`, every sample counted.
    pub require_flip: bool,
}

impl DeepFoolConfig {
    /// The paper's evaluation attack: untargeted-style DeepFool with per-step overshoot 0.02.
    pub fn l2(iters: usize) -> Self {
        Self { norm: Norm::L2, iters, overshoot: 0.02, candidates: 10, hog: true, keep_failed: false, require_flip: true }
    }
    /// The one-step linearised distance `|g_l| / ‖w_l‖_q` (Elsayed et al.).
    pub fn linearised(norm: Norm, candidates: usize, hog: bool) -> Self {
        Self { norm, iters: 1, overshoot: 0.0, candidates, hog, keep_failed: true, require_flip: false }
    }
}

/// The DeepFool margin proxy (also the `linear` proxy, with [`DeepFoolConfig::linearised`]).
#[derive(Clone, Debug)]
pub struct DeepFool {
    pub cfg: DeepFoolConfig,
}

impl DeepFool {
    pub fn new(cfg: DeepFoolConfig) -> Self {
        Self { cfg }
    }

    /// `(1 + overshoot) · |g| / ‖w‖_q^… · …`: the minimal step to the linearised boundary.
    fn step(&self, w: &Tensor, g: &Tensor) -> Result<Tensor> {
        let shape = w.dims().to_vec();
        let wf = w.flatten_from(1)?;
        let scale = 1.0 + self.cfg.overshoot;
        let ag = g.abs()?;
        let s = match self.cfg.norm {
            Norm::L2 => {
                let coef = ((ag / (wf.sqr()?.sum(1)? + EPS)?)? * scale)?;
                wf.broadcast_mul(&coef.unsqueeze(1)?)?
            }
            Norm::Linf => {
                let coef = ((ag / (wf.abs()?.sum(1)? + EPS)?)? * scale)?;
                let sign = sign_of(&wf)?;
                sign.broadcast_mul(&coef.unsqueeze(1)?)?
            }
            Norm::L1 => {
                let d = wf.dim(1)?;
                let idx = wf.abs()?.argmax_keepdim(1)?;
                let cols = Tensor::arange(0u32, d as u32, wf.device())?.unsqueeze(0)?;
                let onehot = cols.broadcast_eq(&idx)?.to_dtype(wf.dtype())?;
                let wj = (&wf * &onehot)?.sum(1)?;
                let coef = ((ag / (wj.abs()? + EPS)?)? * scale)?;
                onehot.broadcast_mul(&(coef * sign_of(&wj)?)?.unsqueeze(1)?)?
            }
        };
        s.reshape(shape)
    }

    /// `w` and `g` for the pairs at the rows of `fwd`: in the graph if `graph` (`w` only with
    /// `hog`), else detached at once, which frees the VJP's intermediate tensors (a CNN's are
    /// rows × its activations, gigabytes at 900 rows).
    fn w_and_g(&self, model: &dyn Model, fwd: &Forward, rows: &Rows, pairs: &[(u32, u32)], graph: bool) -> Result<(Tensor, Tensor)> {
        let seeds = class_diff_seeds(pairs, model.classes(), fwd.logits.dtype(), fwd.logits.device())?;
        let mut w = input_vjp(model, fwd, &seeds, rows)?;
        if !self.cfg.hog || !graph {
            w = w.detach();
        }
        let g = (rows.gather(&fwd.logits)? * seeds)?.sum(1)?;
        Ok((w, if graph { g } else { g.detach() }))
    }

    fn replay(&self, model: &dyn Model, ctx: &Ctx, trace: &Trace, x: &Tensor) -> Result<Tensor> {
        let n = trace.batch;
        let mut r = x.zeros_like()?;
        for st in &trace.steps {
            let fwd = model.forward(&st.points, &ctx.subset(&st.samples))?;
            let rows = Rows::new(&(0..st.samples.len() as u32).collect::<Vec<_>>(), st.samples.len(), x.device())?;
            let (w, g) = self.w_and_g(model, &fwd, &rows, &st.pairs, true)?;
            let step = self.step(&w, &g)?;
            r = (r + scatter_rows(&step, &st.samples, n)?)?;
        }
        Ok(r)
    }
}

/// ±1 by sign (0 counts as +): a constant, as sign is piecewise constant.
fn sign_of(t: &Tensor) -> Result<Tensor> {
    (t.ge(0.0)?.to_dtype(t.dtype())? * 2.0)? - 1.0
}

/// Places the rows of `t` `(m, ...)` at positions `pos` of an `n`-row zero tensor, differentiably.
fn scatter_rows(t: &Tensor, pos: &[u32], n: usize) -> Result<Tensor> {
    let shape = t.dims().to_vec();
    let p = placement(pos, n, t.dtype(), t.device())?;
    let mut out_shape = shape.clone();
    out_shape[0] = n;
    p.matmul(&t.flatten_from(1)?)?.reshape(out_shape)
}

/// The indices of the `k` largest entries of `row`, largest first.
fn top_k(row: &[f64], k: usize) -> Vec<u32> {
    let mut idx: Vec<u32> = (0..row.len() as u32).collect();
    idx.sort_by(|&a, &b| row[b as usize].total_cmp(&row[a as usize]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

impl Proxy for DeepFool {
    fn run(&self, model: &dyn Model, x: &Tensor, y: &[u32], ctx: &Ctx, pass: Pass) -> Result<ProxyOut> {
        let cfg = &self.cfg;
        let dev = x.device().clone();
        let n = x.dim(0)?;
        if let Pass::Replay(trace) = pass {
            let r = self.replay(model, ctx, trace, x)?;
            let rho = cfg.norm.of_rows(&r)?;
            let rho_values = to_host(&rho)?;
            return Ok(ProxyOut {
                rho: Some(rho),
                rho_values,
                correct: trace.correct.clone(),
                success: trace.success.clone(),
                iterations: trace.steps.len(),
                vjp_rows: trace.steps.iter().map(|s| s.samples.len()).sum(),
                trace: trace.clone(),
            });
        }
        let graph = matches!(pass, Pass::Full);
        let c = model.classes();
        let mut fwd = model.forward(x, ctx)?;
        let clean = to_host(&fwd.logits)?;
        let pred0 = argmax_rows(&clean, c);
        let correct: Vec<bool> = (0..n).map(|i| pred0[i] == y[i]).collect();
        let k = cfg.candidates.min(c);
        let cands: Vec<Vec<u32>> =
            (0..n).map(|i| top_k(&clean[i * c..(i + 1) * c], k).into_iter().filter(|&j| j != pred0[i]).collect()).collect();

        let mut success = vec![false; n];
        let mut r_val = x.zeros_like()?;
        let mut r_graph = if graph { Some(x.zeros_like()?) } else { None };
        let mut steps: Vec<Step> = Vec::new();
        let mut fwd_samples: Vec<u32> = (0..n as u32).collect();
        let mut it = 0;
        let mut vjp_rows = 0;
        loop {
            // Which samples are still active at their current point.
            let logits = to_host(&fwd.logits)?;
            let preds = argmax_rows(&logits, c);
            let (mut act_rows, mut act_samples) = (Vec::new(), Vec::new());
            for (row, &s) in fwd_samples.iter().enumerate() {
                let s_us = s as usize;
                let still = !cfg.require_flip || if correct[s_us] { preds[row] == pred0[s_us] } else { preds[row] != y[s_us] };
                if still {
                    act_rows.push(row as u32);
                    act_samples.push(s);
                } else {
                    success[s_us] = true;
                }
            }
            if act_samples.is_empty() || it == cfg.iters {
                break;
            }

            // Choose (l, o) per active sample; candidate rows only for correct samples.
            let mut cand_rows = Vec::new();
            let mut cand_pairs = Vec::new();
            for (&row, &s) in act_rows.iter().zip(&act_samples) {
                if correct[s as usize] {
                    for &kk in &cands[s as usize] {
                        cand_rows.push(row);
                        cand_pairs.push((kk, pred0[s as usize]));
                    }
                }
            }
            // Per sample: (score, class, its row among the candidates).
            let mut best: Vec<Option<(f64, u32, u32)>> = vec![None; n];
            let mut cand_wg = None;
            if !cand_rows.is_empty() {
                vjp_rows += cand_rows.len();
                let rows = Rows::new(&cand_rows, fwd_samples.len(), &dev)?;
                // Only values: the decision is constant, so no pass keeps the candidates' graph.
                let (w, g) = self.w_and_g(model, &fwd, &rows, &cand_pairs, false)?;
                let wn = to_host(&cfg.norm.dual().of_rows(&w)?)?;
                let gv = to_host(&g)?;
                for (j, &row) in cand_rows.iter().enumerate() {
                    let s = fwd_samples[row as usize] as usize;
                    let score = gv[j].abs() / (wn[j] + EPS);
                    if best[s].is_none_or(|(b, _, _)| score < b) {
                        best[s] = Some((score, cand_pairs[j].0, j as u32));
                    }
                }
                cand_wg = Some((w, g));
            }
            let pairs: Vec<(u32, u32)> = act_rows
                .iter()
                .zip(&act_samples)
                .map(|(&row, &s)| {
                    let s = s as usize;
                    if correct[s] {
                        // A correct sample always has a candidate unless there is one class.
                        (best[s].map_or(pred0[s], |b| b.1), pred0[s])
                    } else {
                        (y[s], preds[row as usize])
                    }
                })
                .collect();

            // The step, one VJP row per active sample.
            let rows = Rows::new(&act_rows, fwd_samples.len(), &dev)?;
            let (w, g) = match cand_wg {
                // Without a graph, a correct sample's row is its chosen candidate's, computed
                // above; only the others need one. (With a graph, taking rows out of the
                // candidates' VJP would make the backward run through all of its rows.)
                Some((wc, gc)) if !graph => {
                    // Row of each active sample in [candidates; fresh rows].
                    let (mut order, mut fresh) = (Vec::with_capacity(act_rows.len()), Vec::new());
                    let base = wc.dim(0)? as u32;
                    for (i, &s) in act_samples.iter().enumerate() {
                        match best[s as usize].filter(|_| correct[s as usize]) {
                            Some(b) => order.push(b.2),
                            None => {
                                order.push(base + fresh.len() as u32);
                                fresh.push(i);
                            }
                        }
                    }
                    let (mut wall, mut gall) = (wc, gc);
                    if !fresh.is_empty() {
                        vjp_rows += fresh.len();
                        let fresh_rows = Rows::new(&fresh.iter().map(|&i| act_rows[i]).collect::<Vec<_>>(), fwd_samples.len(), &dev)?;
                        let fresh_pairs: Vec<(u32, u32)> = fresh.iter().map(|&i| pairs[i]).collect();
                        let (wf, gf) = self.w_and_g(model, &fwd, &fresh_rows, &fresh_pairs, false)?;
                        wall = Tensor::cat(&[&wall, &wf], 0)?;
                        gall = Tensor::cat(&[&gall, &gf], 0)?;
                    }
                    let order = Tensor::new(order.as_slice(), &dev)?;
                    (wall.index_select(&order, 0)?, gall.index_select(&order, 0)?)
                }
                _ => {
                    vjp_rows += act_rows.len();
                    self.w_and_g(model, &fwd, &rows, &pairs, graph)?
                }
            };
            let step = self.step(&w, &g)?;
            let points = rows.gather(&fwd.input)?.detach();
            let placed = scatter_rows(&step, &act_samples, n)?;
            r_val = (r_val + placed.detach())?;
            if let Some(r) = r_graph.take() {
                r_graph = Some((r + placed)?);
            }
            steps.push(Step { samples: act_samples.clone(), points, pairs });
            it += 1;
            if !cfg.require_flip && it == cfg.iters {
                break;
            }
            // Forward at the new points of the active samples.
            let idx = Tensor::new(act_samples.as_slice(), &dev)?;
            let p = (x + &r_val)?.index_select(&idx, 0)?.detach();
            fwd = model.forward(&p, &ctx.subset(&act_samples))?;
            fwd_samples = act_samples;
        }
        if !cfg.require_flip {
            success = vec![true; n];
        }
        let rho_val_t = cfg.norm.of_rows(&r_val)?;
        let rho_values = to_host(&rho_val_t)?;
        let rho = match r_graph {
            Some(r) => Some(cfg.norm.of_rows(&r)?),
            None => None,
        };
        let trace = Trace { steps, batch: n, correct: correct.clone(), success: success.clone() };
        Ok(ProxyOut { rho, rho_values, correct, success, iterations: it, vjp_rows, trace })
    }
    fn norm(&self) -> Norm {
        self.cfg.norm
    }
    fn drops_failed(&self) -> bool {
        !self.cfg.keep_failed
    }
    fn without_hog(&self) -> Box<dyn Proxy> {
        Box::new(DeepFool::new(DeepFoolConfig { hog: false, ..self.cfg.clone() }))
    }
    fn describe(&self) -> String {
        let c = &self.cfg;
        if c.require_flip {
            format!(
                "deepfool({}, {}, overshoot={}, candidates={}, hog={}, failed={})",
                c.norm.name(),
                c.iters,
                c.overshoot,
                c.candidates,
                c.hog,
                if c.keep_failed { "keep" } else { "drop" }
            )
        } else {
            format!("linear({}, candidates={}, hog={})", c.norm.name(), c.candidates, c.hog)
        }
    }
}
