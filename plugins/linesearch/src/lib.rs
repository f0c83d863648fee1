//! # linesearch: an amm plugin margin proxy (plus an aggregation and a shrinkage)
//!
//! Registers:
//! - proxy `linesearch(iters=3, overshoot=0.02, hog=true)`: the L2 distance from `x` to the
//!   boundary between the clean prediction `o` and a target class `l` along ONE direction, found
//!   by Newton's method on that line instead of DeepFool's sequence of linearised steps.
//!   Correct samples aim at the runner-up class, misclassified ones at their label. With
//!   `h(t) = f_l(x + t·d) − f_o(x + t·d)` and the direction `d = w/‖w‖`, `w = ∇ₓh` at `x`
//!   (an FGSM-like one-shot direction, in L2):
//!   `t₀ = 0`, `t_{k+1} = t_k − h(t_k) / h'(t_k)`, `h'(t) = ∇ₓh(x + t·d) · d`, and `ρ = t_iters`.
//!   With `iters=1` this is the linearised distance `|h(0)| / ‖w‖` of the built-in `linear(l2)`.
//! - aggregation `correct`: regularize only the correctly classified samples;
//! - shrinkage `sqhinge(gamma=1, clip=50)`: `λ·max(0, γ − ρ)²` (correct), `λ·(γ + ρ)²`
//!   (misclassified);
//! - attack `linesearch(iters=20, overshoot=0.02)`: the same search as an evaluation attack
//!   (`amm eval --attacks linesearch`, `eval.attacks = "linesearch, fmn"`);
//! - schedule `warmup(epochs=5)`: the learning rate rises linearly over the first epochs
//!   (factor `(e + 1) / (epochs + 1)` in epoch `e`), then stays (`train.schedule = warmup(2)`);
//! - loss `smoothce(eps=0.1)`: cross-entropy against labels smoothed towards uniform
//!   (`train.loss = smoothce(eps=0.1)`);
//! - optimizer `signsgd`: `θ ← θ − lr·sign(g + weight_decay·θ)` (Bernstein et al. 2018), no
//!   state (`train.optimizer = signsgd`).
//!
//! ## How a proxy plugs into amm's regularizer
//! A proxy runs in three passes ([`Pass`]). `Decide` makes every non-differentiable choice
//! (the classes, which samples are still updating at each Newton step, which samples
//! succeeded) and returns values only; its [`Trace`] records the choices. `Replay(trace)`
//! recomputes ρ as a differentiable function of the weights with those choices frozen: every
//! Newton step again, from `t₀ = 0` along the direction `d(θ)`,
//!
//! ```text
//! t_{k+1}(θ) = t_k − h(x + t_k·d; θ) / (∇ₓh(x + t_k·d; θ) · d),      d(θ) = w(x; θ) / ‖w(x; θ)‖
//! ```
//!
//! with the points `x + t_k·d` in the graph, so `ρ = t_iters` is exactly the value `Decide`
//! reports and its gradient is that value's derivative (second-order through `d` and `∇ₓh`).
//! `Full` is `Decide` followed by `Replay`. `amm gradcheck` recomputes the value from scratch at
//! θ ± h and compares. The input gradients `w` come from `amm_core::autograd::input_vjp`: the
//! model's own VJP, or candle's double backward for models without one. With `hog=false` they
//! are constants (first-order training, the paper's ablation).
use amm_core::aggregate::Aggregation;
use amm_core::anyhow;
use amm_core::attacks::{fooled, Attack, Bounds, Kind as AttackKind};
use amm_core::autograd::input_vjp;
use amm_core::candle_core::backprop::GradStore;
use amm_core::candle_core::{DType, Result, Tensor, Var};
use amm_core::dsl::{Args, Kind, ParamSpec, ParamType, Schema, Value};
use amm_core::layer::{Ctx, Rows};
use amm_core::loss::ClassLoss;
use amm_core::model::{Forward, Model};
use amm_core::optim::{Optimize, StepInfo};
use amm_core::plugin::Registrar;
use amm_core::proxy::{Norm, Pass, Proxy, ProxyOut, Step, Trace};
use amm_core::registry::{AttackRequest, Factory, OptimizerRequest};
use amm_core::schedule::LrSchedule;
use amm_core::shrink::Shrinkage;
use amm_core::tensor::{argmax_rows, class_diff_seeds, from_host, to_host};
use std::collections::HashMap;
use std::sync::Arc;

/// Guards divisions by ‖w‖ and by h'.
const EPS: f64 = 1e-12;

/// The `linesearch` proxy.
#[derive(Clone, Debug)]
pub struct LineSearch {
    /// Newton iterations (≥ 1).
    pub iters: usize,
    /// The success check looks at `x + (1 + overshoot)·ρ·d`.
    pub overshoot: f64,
    /// Differentiate through the input gradients.
    pub hog: bool,
}

/// `(w, g)`: `w = ∇ₓ(f_l − f_o)` per row (a constant unless `graph`), `g = f_l − f_o`.
fn w_and_g(model: &dyn Model, fwd: &Forward, rows: &Rows, pairs: &[(u32, u32)], graph: bool) -> Result<(Tensor, Tensor)> {
    let seeds = class_diff_seeds(pairs, model.classes(), fwd.logits.dtype(), fwd.logits.device())?;
    let w = input_vjp(model, fwd, &seeds, rows)?;
    let w = if graph { w } else { w.detach() };
    let g = (rows.gather(&fwd.logits)? * seeds)?.sum(1)?;
    Ok((w, g))
}

/// Unit rows `(n, D)` of `w`.
fn unit(w: &Tensor) -> Result<Tensor> {
    let w = w.flatten_from(1)?;
    let norm = (w.sqr()?.sum_keepdim(1)? + EPS * EPS)?.sqrt()?;
    w.broadcast_div(&norm)
}

/// Row-wise dot products of two `(n, ...)` tensors.
fn rowdot(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    (a.flatten_from(1)? * b.flatten_from(1)?)?.sum(1)
}

impl LineSearch {
    /// Every decision, values only; with the points just past the boundary found.
    fn decide(&self, model: &dyn Model, x: &Tensor, y: &[u32], ctx: &Ctx) -> Result<(Trace, Vec<f64>, Tensor)> {
        let (n, c, dev, dtype) = (x.dim(0)?, model.classes(), x.device().clone(), x.dtype());
        let all: Vec<u32> = (0..n as u32).collect();
        let rows = Rows::new(&all, n, &dev)?;
        let fwd0 = model.forward(x, ctx)?;
        let clean = to_host(&fwd0.logits)?;
        let pred0 = argmax_rows(&clean, c);
        let correct: Vec<bool> = (0..n).map(|i| pred0[i] == y[i]).collect();
        let pairs: Vec<(u32, u32)> = (0..n)
            .map(|i| {
                let o = pred0[i];
                let l = if correct[i] {
                    let row = &clean[i * c..(i + 1) * c];
                    (0..c as u32).filter(|&j| j != o).max_by(|&a, &b| row[a as usize].total_cmp(&row[b as usize])).unwrap_or(o)
                } else {
                    y[i]
                };
                (l, o)
            })
            .collect();
        let (w0, _) = w_and_g(model, &fwd0, &rows, &pairs, false)?;
        let d = unit(&w0)?.detach();
        let xf = x.flatten_from(1)?.detach();
        let at =
            |t: &[f64]| -> Result<Tensor> { (&xf + d.broadcast_mul(&from_host(t.to_vec(), &[n, 1], dtype, &dev)?)?)?.reshape(x.shape()) };

        let mut t = vec![0.0; n];
        let mut failed: Vec<bool> = pairs.iter().map(|&(l, o)| l == o).collect();
        let mut steps = Vec::with_capacity(self.iters);
        for k in 0..self.iters {
            let points = at(&t)?;
            let fwd = if k == 0 { fwd0.clone() } else { model.forward(&points, ctx)? };
            let (w, g) = w_and_g(model, &fwd, &rows, &pairs, false)?;
            let (hp, gv) = (to_host(&rowdot(&w, &d)?)?, to_host(&g)?);
            // The samples that take this Newton step.
            let mut moving = Vec::new();
            for i in 0..n {
                if failed[i] {
                    continue;
                }
                let next = t[i] - gv[i] / hp[i];
                if hp[i] > EPS && next.is_finite() && next >= 0.0 {
                    t[i] = next;
                    moving.push(i as u32);
                } else {
                    failed[i] = true;
                }
            }
            steps.push(Step { samples: moving, points: points.detach(), pairs: pairs.clone() });
        }
        // The success check: just past the boundary found.
        let past: Vec<f64> = t.iter().map(|v| v * (1.0 + self.overshoot)).collect();
        let past = at(&past)?;
        let preds = argmax_rows(&to_host(&model.forward(&past, ctx)?.logits)?, c);
        let success: Vec<bool> = (0..n).map(|i| !failed[i] && if correct[i] { preds[i] != pred0[i] } else { preds[i] == y[i] }).collect();
        Ok((Trace { steps, batch: n, correct, success }, t, past))
    }

    /// ρ as a differentiable function of the weights, with the decisions of `trace`.
    fn graph(&self, model: &dyn Model, x: &Tensor, ctx: &Ctx, trace: &Trace) -> Result<Tensor> {
        let (n, dev, dtype) = (trace.batch, x.device().clone(), x.dtype());
        let mut t = Tensor::zeros((n, 1), dtype, &dev)?;
        let Some(first) = trace.steps.first() else { return t.squeeze(1) };
        let rows = Rows::new(&(0..n as u32).collect::<Vec<_>>(), n, &dev)?;
        let fwd0 = model.forward(x, ctx)?;
        let (w0, _) = w_and_g(model, &fwd0, &rows, &first.pairs, self.hog)?;
        let d = unit(&w0)?;
        let xf = x.flatten_from(1)?.detach();
        for (k, st) in trace.steps.iter().enumerate() {
            let fwd = if k == 0 { fwd0.clone() } else { model.forward(&(&xf + d.broadcast_mul(&t)?)?.reshape(x.shape())?, ctx)? };
            let (w, g) = w_and_g(model, &fwd, &rows, &st.pairs, self.hog)?;
            let hp = rowdot(&w, &d)?;
            // Samples that do not move at this step keep their t (and get a harmless
            // denominator, so nothing infinite enters the graph).
            let mut m = vec![0.0; n];
            for &i in &st.samples {
                m[i as usize] = 1.0;
            }
            let keep = from_host(m, &[n], dtype, &dev)?;
            let denom = ((hp * &keep)? + (1.0 - &keep)?)?;
            t = (t - ((g * keep)? / denom)?.unsqueeze(1)?)?;
        }
        t.squeeze(1)
    }
}

impl Proxy for LineSearch {
    fn run(&self, model: &dyn Model, x: &Tensor, y: &[u32], ctx: &Ctx, pass: Pass) -> Result<ProxyOut> {
        let (trace, values) = match pass {
            Pass::Replay(trace) => (trace.clone(), None),
            Pass::Decide | Pass::Full => {
                let (trace, t, _) = self.decide(model, x, y, ctx)?;
                (trace, Some(t))
            }
        };
        let rho = match pass {
            Pass::Decide => None,
            Pass::Full | Pass::Replay(_) => Some(self.graph(model, x, ctx, &trace)?),
        };
        let rho_values = match (&rho, values) {
            (Some(r), _) => to_host(r)?,
            (None, Some(v)) => v,
            (None, None) => unreachable!("replay builds the graph"),
        };
        let n = trace.batch;
        // Input-VJP rows computed: one per sample for the direction and one per Newton step,
        // in each pass.
        let vjp_rows = match pass {
            Pass::Decide | Pass::Replay(_) => n * (self.iters + 1),
            Pass::Full => 2 * n * (self.iters + 1),
        };
        Ok(ProxyOut {
            rho,
            rho_values,
            correct: trace.correct.clone(),
            success: trace.success.clone(),
            iterations: self.iters,
            vjp_rows,
            trace,
        })
    }
    fn norm(&self) -> Norm {
        Norm::L2
    }
    fn drops_failed(&self) -> bool {
        true
    }
    fn without_hog(&self) -> Box<dyn Proxy> {
        Box::new(LineSearch { hog: false, ..self.clone() })
    }
    fn describe(&self) -> String {
        format!("linesearch(iters={}, overshoot={}, hog={})", self.iters, self.overshoot, self.hog)
    }
}

/// The `correct` aggregation.
#[derive(Clone, Debug)]
pub struct CorrectOnly;

impl Aggregation for CorrectOnly {
    fn select(&self, rho: &[f64], correct: &[bool], _labels: &[u32]) -> Vec<usize> {
        (0..rho.len()).filter(|&i| correct[i] && !rho[i].is_nan()).collect()
    }
    fn selects_few(&self) -> bool {
        false
    }
    fn describe(&self) -> String {
        "correct".into()
    }
}

/// The `sqhinge` shrinkage.
#[derive(Clone, Debug)]
pub struct SquaredHinge {
    pub gamma: f64,
    pub clip: f64,
}

impl Shrinkage for SquaredHinge {
    fn value(&self, rho: f64, correct: bool) -> f64 {
        if correct {
            (self.gamma - rho).max(0.0).powi(2)
        } else {
            (self.gamma + rho).powi(2)
        }
    }
    fn apply(&self, rho: &Tensor, correct: bool) -> Result<Tensor> {
        if correct {
            (rho.neg()? + self.gamma)?.relu()?.sqr()
        } else {
            (rho + self.gamma)?.sqr()
        }
    }
    fn clip(&self) -> f64 {
        self.clip
    }
    fn describe(&self) -> String {
        format!("sqhinge(gamma={}, clip={})", self.gamma, self.clip)
    }
}

/// Doublings of the step along the line when the point found, kept in the data's range, is not
/// adversarial yet, and bisection steps towards the smallest flip.
const DOUBLINGS: usize = 8;
const BISECTIONS: usize = 10;

/// The same search as an evaluation attack (minimal L2 norm): each correctly classified sample
/// moves along its line to the nearest point found where the prediction flips; a misclassified
/// one is adversarial where it is, and a failed search leaves the sample in place (the caller's
/// check reports it).
struct LineSearchAttack {
    label: String,
    search: LineSearch,
}

impl Attack for LineSearchAttack {
    fn label(&self) -> &str {
        &self.label
    }
    fn norm(&self) -> Norm {
        Norm::L2
    }
    fn kind(&self) -> AttackKind {
        AttackKind::MinNorm
    }
    fn run(&self, model: &dyn Model, x: &Tensor, y: &[u32], bounds: Option<&Bounds>, _eps: f64) -> Result<Tensor> {
        let (n, c, dtype, dev) = (x.dim(0)?, model.classes(), x.dtype(), x.device().clone());
        let (trace, t, past) = self.search.decide(model, x, y, &Ctx::eval(n))?;
        let reach = 1.0 + self.search.overshoot;
        let xf = x.flatten_from(1)?;
        // The unit direction of each searched row; zero for misclassified samples and failed searches.
        let searched: Vec<bool> = (0..n).map(|i| trace.correct[i] && trace.success[i] && t[i] > 0.0).collect();
        let scale: Vec<f64> = (0..n).map(|i| if searched[i] { 1.0 / (reach * t[i]) } else { 0.0 }).collect();
        let dir = (past.flatten_from(1)? - &xf)?.broadcast_mul(&from_host(scale, &[n, 1], dtype, &dev)?)?;
        let range = match bounds {
            None => None,
            Some(b) => {
                let row = |v: &[f32]| from_host(v.iter().map(|&e| e as f64).collect(), &[1, v.len()], dtype, &dev);
                Some((row(&b.lo)?, row(&b.hi)?))
            }
        };
        let at = |s: &[f64]| -> Result<Tensor> {
            let p = (&xf + dir.broadcast_mul(&from_host(s.to_vec(), &[n, 1], dtype, &dev)?)?)?;
            match &range {
                Some((lo, hi)) => p.broadcast_maximum(lo)?.broadcast_minimum(hi),
                None => Ok(p),
            }
        };
        let fooled_at = |s: &[f64]| -> Result<Vec<bool>> {
            let logits = to_host(&model.forward(&at(s)?.reshape(x.shape())?, &Ctx::eval(n))?.logits)?;
            Ok(fooled(&logits, y, c))
        };
        // Keeping points in the data's range can undo the step: go further along the line until
        // the prediction flips (doubling), then bisect down to the smallest flip found.
        let mut lo = vec![0.0; n];
        let mut hi: Vec<f64> = (0..n).map(|i| if searched[i] { reach * t[i] } else { 0.0 }).collect();
        let mut found = vec![false; n];
        for _ in 0..DOUBLINGS {
            let f = fooled_at(&hi)?;
            let mut pending = false;
            for i in 0..n {
                if !searched[i] || found[i] {
                    continue;
                }
                if f[i] {
                    found[i] = true;
                } else {
                    (lo[i], hi[i], pending) = (hi[i], 2.0 * hi[i], true);
                }
            }
            if !pending {
                break;
            }
        }
        for _ in 0..BISECTIONS {
            let mid: Vec<f64> = (0..n).map(|i| if found[i] { (lo[i] + hi[i]) / 2.0 } else { 0.0 }).collect();
            let f = fooled_at(&mid)?;
            for i in (0..n).filter(|&i| found[i]) {
                if f[i] {
                    hi[i] = mid[i];
                } else {
                    lo[i] = mid[i];
                }
            }
        }
        let s: Vec<f64> = (0..n).map(|i| if found[i] { hi[i] } else { 0.0 }).collect();
        at(&s)?.reshape(x.shape())
    }
    fn describe(&self) -> String {
        format!("linesearch(l2, iters={}, overshoot={})", self.search.iters, self.search.overshoot)
    }
}

/// Linear warm-up of the learning rate over the first `epochs` epochs.
struct Warmup {
    epochs: usize,
}

impl LrSchedule for Warmup {
    fn factor(&self, epoch: usize, _: usize) -> f64 {
        if epoch < self.epochs {
            (epoch + 1) as f64 / (self.epochs + 1) as f64
        } else {
            1.0
        }
    }
}

/// Cross-entropy against `(1 − eps)·onehot(y) + eps/C`.
struct SmoothCe {
    eps: f64,
}

impl ClassLoss for SmoothCe {
    fn loss(&self, logits: &Tensor, y: &[u32]) -> Result<Option<Tensor>> {
        let (b, c) = logits.dims2()?;
        let mut target = vec![self.eps / c as f64; b * c];
        for (i, &yi) in y.iter().enumerate() {
            target[i * c + yi as usize] += 1.0 - self.eps;
        }
        let target = from_host(target, &[b, c], logits.dtype(), logits.device())?;
        let logp = amm_core::candle_nn::ops::log_softmax(logits, 1)?;
        Ok(Some(((logp * target)?.sum_all()? / -(b as f64))?))
    }
    fn term(&self) -> &'static str {
        "smoothed cross-entropy"
    }
}

/// signSGD: each weight moves by the learning rate against the sign of its gradient.
struct SignSgd {
    vars: Vec<(String, Var)>,
    lr: f64,
    weight_decay: f64,
}

impl Optimize for SignSgd {
    fn step(&mut self, grads: &GradStore, _clip: f64) -> Result<StepInfo> {
        // The update has the same size whatever the gradient's norm: clipping has nothing to do.
        let mut sq = 0.0;
        for (_, v) in &self.vars {
            let Some(g) = grads.get(v.as_tensor()) else { continue };
            let g = g.detach();
            sq += g.sqr()?.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            let theta = v.as_tensor().detach();
            let d = if self.weight_decay != 0.0 { (g + (&theta * self.weight_decay)?)? } else { g };
            v.set(&(theta - (d.sign()? * self.lr)?)?)?;
        }
        Ok(StepInfo { grad_norm: sq.sqrt(), clipped: false })
    }
    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
    fn state(&self) -> Result<HashMap<String, Tensor>> {
        Ok(HashMap::new())
    }
    fn load_state(&mut self, _: &HashMap<String, Tensor>) -> Result<()> {
        Ok(())
    }
}

fn arg<T>(r: std::result::Result<T, String>) -> anyhow::Result<T> {
    r.map_err(anyhow::Error::msg)
}

/// Registers `linesearch` (a proxy and an attack), `correct`, `sqhinge`, `warmup`, `smoothce` and
/// `signsgd`.
pub fn register(r: &mut Registrar) -> anyhow::Result<()> {
    r.register(
        Schema::new(
            Kind::Proxy,
            "linesearch",
            vec![
                ParamSpec::optional("iters", ParamType::int_min(1), Value::Int(3), "Newton iterations along the line"),
                ParamSpec::optional(
                    "overshoot",
                    ParamType::float_min(0.0, false),
                    Value::Float(0.02),
                    "the success check looks (1 + overshoot)·ρ along the line",
                ),
                ParamSpec::optional("hog", ParamType::Bool, Value::Bool(true), "differentiate through the input gradients"),
            ],
            "L2 distance to the boundary along the one-shot gradient direction, by Newton's method (plugin example, plugins/linesearch)",
        ),
        Factory::Proxy(Arc::new(|a: &Args| {
            Ok(Arc::new(LineSearch { iters: arg(a.usize("iters"))?, overshoot: arg(a.f64("overshoot"))?, hog: arg(a.bool("hog"))? })
                as Arc<dyn Proxy>)
        })),
    )?;
    r.register(
        Schema::new(Kind::Aggregation, "correct", vec![], "regularize only the correctly classified samples (plugin example)"),
        Factory::Aggregation(Arc::new(|_: &Args| Ok(Arc::new(CorrectOnly) as Arc<dyn Aggregation>))),
    )?;
    r.register(
        Schema::new(
            Kind::Shrinkage,
            "sqhinge",
            vec![
                ParamSpec::optional("gamma", ParamType::float_min(0.0, true), Value::Float(1.0), "target margin γ"),
                ParamSpec::optional("clip", ParamType::float_min(0.0, true), Value::Float(50.0), "each λ·term is truncated at ±clip"),
            ],
            "squared hinge: λ·max(0, γ − ρ)² (correct), λ·(γ + ρ)² (misclassified) (plugin example)",
        ),
        Factory::Shrinkage(Arc::new(|a: &Args| {
            Ok(Arc::new(SquaredHinge { gamma: arg(a.f64("gamma"))?, clip: arg(a.f64("clip"))? }) as Arc<dyn Shrinkage>)
        })),
    )?;
    r.register(
        Schema::new(
            Kind::Attack,
            "linesearch",
            vec![
                ParamSpec::optional("iters", ParamType::int_min(1), Value::Int(20), "Newton iterations along the line"),
                ParamSpec::optional(
                    "overshoot",
                    ParamType::float_min(0.0, false),
                    Value::Float(0.02),
                    "the point returned lies (1 + overshoot)·t along the line",
                ),
            ],
            "the line search as an evaluation attack: minimal norm; l2 (plugin example)",
        ),
        Factory::Attack(Arc::new(|r: AttackRequest| {
            if r.norm != Norm::L2 {
                anyhow::bail!("attack `linesearch` does not support the {} norm (it supports: l2)", r.norm.name());
            }
            let search = LineSearch { iters: arg(r.args.usize("iters"))?, overshoot: arg(r.args.f64("overshoot"))?, hog: false };
            Ok(vec![Box::new(LineSearchAttack { label: r.label.to_string(), search }) as Box<dyn Attack>])
        })),
    )?;
    r.register(
        Schema::new(
            Kind::Schedule,
            "warmup",
            vec![ParamSpec::optional("epochs", ParamType::int_min(1), Value::Int(5), "epochs of the linear rise")],
            "linear warm-up of the learning rate, then constant (plugin example)",
        ),
        Factory::Schedule(Arc::new(|a: &Args| Ok(Arc::new(Warmup { epochs: arg(a.usize("epochs"))? }) as Arc<dyn LrSchedule>))),
    )?;
    r.register(
        Schema::new(
            Kind::Loss,
            "smoothce",
            vec![ParamSpec::optional(
                "eps",
                ParamType::float_in(0.0, false, 1.0, true),
                Value::Float(0.1),
                "mass moved to the uniform distribution",
            )],
            "cross-entropy with label smoothing (plugin example)",
        ),
        Factory::Loss(Arc::new(|a: &Args| Ok(Arc::new(SmoothCe { eps: arg(a.f64("eps"))? }) as Arc<dyn ClassLoss>))),
    )?;
    r.register(
        Schema::new(Kind::Optimizer, "signsgd", vec![], "signSGD: θ ← θ − lr·sign(g + weight_decay·θ) (plugin example)"),
        Factory::Optimizer(Arc::new(|q: OptimizerRequest| {
            Ok(Box::new(SignSgd { vars: q.params.vars().to_vec(), lr: q.lr, weight_decay: q.weight_decay }) as Box<dyn Optimize>)
        })),
    )
}

amm_core::declare_plugin!(register);
