//! Batched DeepFool (L2, L∞, L1) whose perturbation is differentiable with respect to the weights
//! (DESIGN.md §1.1), and its one-step special case, the linearised distance of Elsayed et al.
//!
//! Per iteration, for the samples still active:
//! 1. forward at the point `x + r`;
//! 2. choose the pair `(l, o)`: correct samples aim at the candidate `l` minimising
//!    `|g_l| / ‖w_l‖_q` away from their clean prediction `o`; misclassified samples aim at their
//!    label `l = y` away from the current prediction `o`;
//! 3. `w = ∇ₓf_l − ∇ₓf_o` from ONE batched input-VJP call (one row per sample, plus the candidate
//!    rows when choosing), `g = f_l − f_o`;
//! 4. `r += (1 + overshoot) · step(w, g)`.
//!
//! The discrete decisions (the candidates, the pair per step, which samples are still active)
//! are constants; everything else is a function of the weights, and [`Chain`] says how much of it
//! the graph keeps:
//! - `full` (default): the point `x + r` stays in the graph, so the logits *and* the input
//!   gradients at `x + r` depend on the weights through the earlier steps: the exact derivative
//!   of the value, for every network.
//! - `authors`: the logits at `x + r` stay attached, the input gradients are taken at the
//!   detached point (the authors' code). Built as the forward at the detached point plus
//!   `g += w̄·(r − r̄)`, whose value is 0 and whose gradient is `∇ₓg·∂r/∂θ`, the logits' own. The
//!   same derivative as `full` where input gradients are piecewise constant in `x` (ReLU,
//!   max-pooling, frozen batch norm); it drops `∂w/∂x·∂r/∂θ` with tanh or group norm.
//! - `none`: the points are constants (an ablation): each step depends on the weights only
//!   through `w` and `g` at its own point.
//!
//! A replay (the second pass of MIN) recomputes every iterate from `x` with the recorded
//! decisions, so it is the same function of the weights as the fresh pass.
//! The candidate rows only inform the choice of `l`; the step's row is a separate
//! one-row-per-sample VJP, so the backward pass never walks through the other K−2 rows.
//!
//! The same loop is the DeepFool evaluation attack (`attacks/deepfool.rs`, through
//! [`DeepFool::search`] with a [`Search`]): values only, stopping at the attack's decision
//! tolerance, and optionally confined to the data's box.
use super::step::{minimal_step, top_k, EPS};
use super::{Chain, Norm, Pass, Proxy, ProxyOut, Step, Trace};
use crate::attacks::fooled;
use crate::autograd::input_vjp;
use crate::layer::{Ctx, Rows};
use crate::model::{Forward, Model};
use crate::tensor::{argmax_rows, class_diff_seeds, placement, to_host};
use candle_core::{Result, Tensor};

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
    /// How much of the dependence of the iterates on the weights the graph keeps.
    pub chain: Chain,
    /// Keep samples the attack did not flip (`failed=keep`).
    pub keep_failed: bool,
    /// Stop each sample when it flips and report success. `false` gives the linearised distance:
    /// one step from `x`, every sample counted.
    pub require_flip: bool,
}

impl DeepFoolConfig {
    /// The paper's evaluation attack: untargeted-style DeepFool with per-step overshoot 0.02.
    pub fn l2(iters: usize) -> Self {
        Self {
            norm: Norm::L2,
            iters,
            overshoot: 0.02,
            candidates: 10,
            hog: true,
            chain: Chain::Full,
            keep_failed: false,
            require_flip: true,
        }
    }
    /// The one-step linearised distance `|g_l| / ‖w_l‖_q` (Elsayed et al.).
    pub fn linearised(norm: Norm, candidates: usize, hog: bool) -> Self {
        Self { norm, iters: 1, overshoot: 0.0, candidates, hog, chain: Chain::Full, keep_failed: true, require_flip: false }
    }
}

/// The DeepFool margin proxy (also the `linear` proxy, with [`DeepFoolConfig::linearised`]).
#[derive(Clone, Debug)]
pub struct DeepFool {
    pub cfg: DeepFoolConfig,
}

/// What the evaluation attack asks of [`DeepFool::search`] beyond the proxy: every sample leaves
/// its label `y` (samples already adversarial do not move), a sample is done when
/// [`fooled`](crate::attacks::fooled) says so (a logit gap of `DECISION_TOL`, not a bare argmax
/// flip), and with a box `(lo, hi)` of shape `(1, d)` each step is clipped into it and the
/// coordinates at a bound that the step would push outward are left out of the linearisation
/// (without that, DeepFool keeps stepping into the bound and stalls).
#[derive(Clone, Copy, Debug, Default)]
pub struct Search<'a> {
    pub bounds: Option<&'a (Tensor, Tensor)>,
}

impl Search<'_> {
    /// `w` with the blocked coordinates of the points `pts` zeroed.
    fn unblocked(&self, w: Tensor, pts: &Tensor) -> Result<Tensor> {
        let Some((lo, hi)) = self.bounds else { return Ok(w) };
        let shape = w.dims().to_vec();
        let (wf, pts) = (w.flatten_from(1)?, pts.flatten_from(1)?);
        let f = |t: Tensor| t.to_dtype(wf.dtype());
        let blocked = ((f(pts.broadcast_le(lo)?)? * f(wf.lt(0.0)?)?)? + (f(pts.broadcast_ge(hi)?)? * f(wf.gt(0.0)?)?)?)?;
        (&wf * (1.0 - blocked.clamp(0.0, 1.0)?)?)?.reshape(shape)
    }

    /// The point `x + r` clipped into the box. The next forward runs at this point, not at
    /// `x + (point − x)`, whose rounding can leave a coordinate a hair inside a bound where the
    /// blocked-coordinate test no longer sees it.
    fn point(&self, x: &Tensor, r: &Tensor) -> Result<Tensor> {
        let p = (x + r)?;
        let Some((lo, hi)) = self.bounds else { return Ok(p) };
        p.flatten_from(1)?.broadcast_maximum(lo)?.broadcast_minimum(hi)?.reshape(x.dims())
    }
}

impl DeepFool {
    pub fn new(cfg: DeepFoolConfig) -> Self {
        Self { cfg }
    }

    /// `w` and `g` for the pairs at the rows of `fwd`: in the graph if `graph` (`w` only with
    /// `hog`), else detached at once, which frees the VJP's intermediate tensors (a CNN's are
    /// rows × its activations, gigabytes at 900 rows).
    fn w_and_g(
        &self,
        model: &dyn Model,
        fwd: &Forward,
        rows: &Rows,
        pairs: &[(u32, u32)],
        graph: bool,
        search: Option<&Search>,
    ) -> Result<(Tensor, Tensor)> {
        let seeds = class_diff_seeds(pairs, model.classes(), fwd.logits.dtype(), fwd.logits.device())?;
        let mut w = input_vjp(model, fwd, &seeds, rows)?;
        if !self.cfg.hog || !graph {
            w = w.detach();
        }
        if let Some(s) = search {
            w = s.unblocked(w, &rows.gather(&fwd.input)?)?;
        }
        let g = (rows.gather(&fwd.logits)? * seeds)?.sum(1)?;
        Ok((w, if graph { g } else { g.detach() }))
    }

    /// Chooses `(l, o)` for each active sample at the points of `fwd`: a correct sample aims at
    /// the candidate minimising `|g_l| / ‖w_l‖_q` (values only: the choice is constant), a
    /// misclassified one at its label. Returns the pairs, each sample's best candidate
    /// `(score, class, candidate row)`, the candidates' `(w, g)` (detached) and the VJP rows used.
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn choose(
        &self,
        model: &dyn Model,
        fwd: &Forward,
        fwd_samples: &[u32],
        act_rows: &[u32],
        act_samples: &[u32],
        preds: &[u32],
        pred0: &[u32],
        correct: &[bool],
        y: &[u32],
        cands: &[Vec<u32>],
        search: Option<&Search>,
    ) -> Result<(Vec<(u32, u32)>, Vec<Option<(f64, u32, u32)>>, Option<(Tensor, Tensor)>, usize)> {
        let n = correct.len();
        let mut cand_rows = Vec::new();
        let mut cand_pairs = Vec::new();
        for (&row, &s) in act_rows.iter().zip(act_samples) {
            if correct[s as usize] {
                for &kk in &cands[s as usize] {
                    cand_rows.push(row);
                    cand_pairs.push((kk, pred0[s as usize]));
                }
            }
        }
        let mut best: Vec<Option<(f64, u32, u32)>> = vec![None; n];
        let mut cand_wg = None;
        if !cand_rows.is_empty() {
            let rows = Rows::new(&cand_rows, fwd_samples.len(), fwd.logits.device())?;
            let (w, g) = self.w_and_g(model, fwd, &rows, &cand_pairs, false, search)?;
            let wn = to_host(&self.cfg.norm.dual().of_rows(&w)?)?;
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
        let pairs = act_rows
            .iter()
            .zip(act_samples)
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
        Ok((pairs, best, cand_wg, cand_rows.len()))
    }
}

/// Places the rows of `t` `(m, ...)` at positions `pos` of an `n`-row zero tensor, differentiably.
fn scatter_rows(t: &Tensor, pos: &[u32], n: usize) -> Result<Tensor> {
    let shape = t.dims().to_vec();
    let p = placement(pos, n, t.dtype(), t.device())?;
    let mut out_shape = shape.clone();
    out_shape[0] = n;
    p.matmul(&t.flatten_from(1)?)?.reshape(out_shape)
}

impl DeepFool {
    /// The loop of the proxy ([`Proxy::run`] is `search(.., None)`) and, with a [`Search`], of the
    /// evaluation attack (values only: [`Pass::Decide`]). Returns the proxy's result and the
    /// perturbation `r` (values).
    ///
    /// Long (about 200 lines) on purpose: one iteration's decisions (who steps, towards which
    /// class), its graph (`chain`, `hog`) and its replay read from the same variables, and the
    /// order between them is what makes the replay the same function as the fresh pass; split
    /// into functions, each would take and return most of this state.
    pub fn search(
        &self,
        model: &dyn Model,
        x: &Tensor,
        y: &[u32],
        ctx: &Ctx,
        pass: Pass,
        search: Option<&Search>,
    ) -> Result<(ProxyOut, Tensor)> {
        let cfg = &self.cfg;
        if search.is_some() && !matches!(pass, Pass::Decide) {
            candle_core::bail!("deepfool: the evaluation search computes values only (Pass::Decide)")
        }
        let (graph, frozen) = match pass {
            Pass::Decide => (false, None),
            Pass::Full => (true, None),
            Pass::Replay(t) => (true, Some(t)),
        };
        let dev = x.device().clone();
        let n = x.dim(0)?;
        let c = model.classes();
        let mut fwd = model.forward(x, ctx)?;
        let clean = to_host(&fwd.logits)?;
        // The attack leaves the label; a sample it would count as adversarial already stays put.
        let pred0 = if search.is_some() { y.to_vec() } else { argmax_rows(&clean, c) };
        let correct: Vec<bool> = match (frozen, search) {
            (Some(t), _) => t.correct.clone(),
            (None, Some(_)) => fooled(&clean, y, c).into_iter().map(|f| !f).collect(),
            (None, None) => (0..n).map(|i| pred0[i] == y[i]).collect(),
        };
        let k = cfg.candidates.min(c);
        let cands: Vec<Vec<u32>> = match frozen {
            Some(_) => Vec::new(),
            None => (0..n).map(|i| top_k(&clean[i * c..(i + 1) * c], k).into_iter().filter(|&j| j != pred0[i]).collect()).collect(),
        };

        let mut success = vec![false; n];
        let mut r_val = x.zeros_like()?;
        // The search's current points (in the box).
        let mut at = x.clone();
        let mut r_graph = if graph { Some(x.zeros_like()?) } else { None };
        // `chain=authors`: r − r̄ at the rows of `fwd` (value 0, gradient ∂r/∂θ).
        let mut drift: Option<Tensor> = None;
        let mut steps: Vec<Step> = Vec::new();
        let mut fwd_samples: Vec<u32> = (0..n as u32).collect();
        let mut it = 0;
        let mut vjp_rows = 0;
        loop {
            // Which samples step now, and towards which class: recorded, or decided here.
            let (act_rows, act_samples, pairs, best, cand_wg) = match frozen {
                Some(t) => {
                    let Some(st) = t.steps.get(it) else { break };
                    let rows = st
                        .samples
                        .iter()
                        .map(|s| {
                            fwd_samples.iter().position(|f| f == s).map(|r| r as u32).ok_or_else(|| {
                                candle_core::Error::Msg(format!(
                                    "deepfool replay: sample {s} steps at iteration {it} but did not at {}",
                                    it.max(1) - 1
                                ))
                            })
                        })
                        .collect::<Result<Vec<u32>>>()?;
                    (rows, st.samples.clone(), st.pairs.clone(), Vec::new(), None)
                }
                None => {
                    let logits = to_host(&fwd.logits)?;
                    let preds = argmax_rows(&logits, c);
                    let (mut act_rows, mut act_samples) = (Vec::new(), Vec::new());
                    for (row, &s) in fwd_samples.iter().enumerate() {
                        let s_us = s as usize;
                        let (done, still) = match search {
                            Some(_) => {
                                let done = fooled(&logits[row * c..(row + 1) * c], &y[s_us..=s_us], c)[0];
                                (done, !done && correct[s_us] && !cands[s_us].is_empty())
                            }
                            None => {
                                let still =
                                    !cfg.require_flip || if correct[s_us] { preds[row] == pred0[s_us] } else { preds[row] != y[s_us] };
                                (!still, still)
                            }
                        };
                        success[s_us] |= done;
                        if still {
                            act_rows.push(row as u32);
                            act_samples.push(s);
                        }
                    }
                    if act_samples.is_empty() || it == cfg.iters {
                        break;
                    }
                    let (pairs, best, cand_wg, rows) =
                        self.choose(model, &fwd, &fwd_samples, &act_rows, &act_samples, &preds, &pred0, &correct, y, &cands, search)?;
                    vjp_rows += rows;
                    (act_rows, act_samples, pairs, best, cand_wg)
                }
            };

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
                        let (wf, gf) = self.w_and_g(model, &fwd, &fresh_rows, &fresh_pairs, false, search)?;
                        wall = Tensor::cat(&[&wall, &wf], 0)?;
                        gall = Tensor::cat(&[&gall, &gf], 0)?;
                    }
                    let order = Tensor::new(order.as_slice(), &dev)?;
                    (wall.index_select(&order, 0)?, gall.index_select(&order, 0)?)
                }
                _ => {
                    vjp_rows += act_rows.len();
                    let (w, g) = self.w_and_g(model, &fwd, &rows, &pairs, graph, search)?;
                    match &drift {
                        // f(x + r) to first order around the detached point: its value is g,
                        // its gradient through r is (∇f_l − ∇f_o)·∂r/∂θ.
                        Some(d) => {
                            let dr = rows.gather(d)?.flatten_from(1)?;
                            let corr = (w.detach().flatten_from(1)? * dr)?.sum(1)?;
                            (w, (g + corr)?)
                        }
                        None => (w, g),
                    }
                }
            };
            let step = minimal_step(self.cfg.norm, self.cfg.overshoot, &w, &g)?;
            let placed = scatter_rows(&step, &act_samples, n)?;
            r_val = (r_val + placed.detach())?;
            if let Some(s) = search {
                at = s.point(x, &r_val)?;
                r_val = (&at - x)?;
            }
            if let Some(r) = r_graph.take() {
                r_graph = Some((r + placed)?);
            }
            steps.push(Step { samples: act_samples.clone(), points: rows.gather(&fwd.input)?.detach(), pairs });
            it += 1;
            if !cfg.require_flip && it == cfg.iters {
                break;
            }
            // The next forward, at the new points of the samples that stepped. A replay knows
            // who steps next; the fresh pass's last forward only decides who flipped (values).
            let last = match frozen {
                Some(t) => {
                    if it == t.steps.len() {
                        break;
                    }
                    false
                }
                None => it == cfg.iters,
            };
            let idx = Tensor::new(act_samples.as_slice(), &dev)?;
            let p = match (&r_graph, cfg.chain) {
                (Some(r), Chain::Full) if !last => (x + r)?.index_select(&idx, 0)?,
                _ => match search {
                    Some(_) => at.index_select(&idx, 0)?,
                    None => (x + &r_val)?.index_select(&idx, 0)?.detach(),
                },
            };
            drift = match (&r_graph, cfg.chain) {
                (Some(r), Chain::Authors) if !last => {
                    let ra = r.index_select(&idx, 0)?;
                    Some((&ra - ra.detach())?)
                }
                _ => None,
            };
            fwd = model.forward(&p, &ctx.subset(&act_samples))?;
            fwd_samples = act_samples;
        }
        if let Some(t) = frozen {
            success = t.success.clone();
        } else if !cfg.require_flip {
            success = vec![true; n];
        }
        let rho_values = to_host(&cfg.norm.of_rows(&r_val)?)?;
        let rho = match r_graph {
            Some(r) => Some(cfg.norm.of_rows(&r)?),
            None => None,
        };
        let trace = match frozen {
            Some(t) => t.clone(),
            None => Trace { steps, batch: n, correct: correct.clone(), success: success.clone() },
        };
        Ok((ProxyOut { rho, rho_values, correct, success, iterations: it, vjp_rows, trace }, r_val))
    }
}

impl Proxy for DeepFool {
    fn run(&self, model: &dyn Model, x: &Tensor, y: &[u32], ctx: &Ctx, pass: Pass) -> Result<ProxyOut> {
        Ok(self.search(model, x, y, ctx, pass, None)?.0)
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
    fn with_chain(&self, chain: Chain) -> Option<Box<dyn Proxy>> {
        Some(Box::new(DeepFool::new(DeepFoolConfig { chain, ..self.cfg.clone() })))
    }
    fn per_sample(&self) -> bool {
        true
    }
    fn describe(&self) -> String {
        let c = &self.cfg;
        if c.require_flip {
            format!(
                "deepfool({}, {}, overshoot={}, candidates={}, chain={}, hog={}, failed={})",
                c.norm.name(),
                c.iters,
                c.overshoot,
                c.candidates,
                c.chain.name(),
                c.hog,
                if c.keep_failed { "keep" } else { "drop" }
            )
        } else {
            format!("linear({}, candidates={}, hog={})", c.norm.name(), c.candidates, c.hog)
        }
    }
}
