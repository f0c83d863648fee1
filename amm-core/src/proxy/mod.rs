//! Margin proxies: per-sample estimates `ρ = ‖r‖_p` of the distance to the decision boundary,
//! differentiable with respect to the weights.
//!
//! A proxy runs in one of three passes (see [`Pass`]). Every non-differentiable choice it makes
//! (candidate classes, the class each step aims at, which samples are still active) is recorded
//! in a [`Trace`]; replaying a trace recomputes the same function of the weights with those
//! choices frozen, every iterate recomputed from `x`. The second pass of MIN relies on that; the
//! finite-difference checks instead recompute everything from scratch and compare the decisions.
mod deepfool;
mod step;

pub use deepfool::{DeepFool, DeepFoolConfig, Search};
pub use step::{minimal_step, top_k};

use crate::layer::Ctx;
use crate::model::Model;
use candle_core::{Result, Tensor};

/// The p of the perturbation norm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Norm {
    L2,
    Linf,
    L1,
}

impl Norm {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "l2" => Some(Norm::L2),
            "linf" => Some(Norm::Linf),
            "l1" => Some(Norm::L1),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Norm::L2 => "l2",
            Norm::Linf => "linf",
            Norm::L1 => "l1",
        }
    }
    /// ‖·‖_p of each row of `t` `(n, ...)`: differentiable.
    pub fn of_rows(self, t: &Tensor) -> Result<Tensor> {
        let t = t.flatten_from(1)?;
        match self {
            Norm::L2 => (t.sqr()?.sum(1)? + 1e-20)?.sqrt(),
            Norm::Linf => {
                // L∞ steps move every coordinate by the same amount, so the maximum is reached by
                // many coordinates that move together; candle's `max` would give each of them the
                // whole gradient. Average over the ties instead (exact for coordinates that tie
                // structurally, a valid subgradient otherwise).
                let a = t.abs()?;
                let m = a.max_keepdim(1)?.detach();
                let ties = a.broadcast_ge(&(&m * (1.0 - 1e-12))?)?.to_dtype(a.dtype())?;
                let count = ties.sum(1)?;
                (a * &ties)?.sum(1)? / count
            }
            Norm::L1 => t.abs()?.sum(1),
        }
    }
    /// ‖v‖_p of a host vector.
    pub fn of_slice(self, v: &[f64]) -> f64 {
        match self {
            Norm::L2 => v.iter().map(|x| x * x).sum::<f64>().sqrt(),
            Norm::Linf => v.iter().fold(0.0, |m, x| m.max(x.abs())),
            Norm::L1 => v.iter().map(|x| x.abs()).sum(),
        }
    }
    /// The dual norm (q with 1/p + 1/q = 1), used to rank candidate classes.
    pub fn dual(self) -> Norm {
        match self {
            Norm::L2 => Norm::L2,
            Norm::Linf => Norm::L1,
            Norm::L1 => Norm::Linf,
        }
    }
}

/// How much of the iterates' dependence on the weights the graph keeps (`deepfool(..., chain=)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Chain {
    /// The points `x + r` stay in the graph: the exact derivative of the value.
    Full,
    /// The logits at `x + r` stay in the graph, the input gradients are taken at the detached
    /// point (the authors' code): exact for piecewise-linear networks only.
    Authors,
    /// The points are constants (an ablation; amm's behaviour before the exact gradient).
    None,
}

impl Chain {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "full" => Some(Chain::Full),
            "authors" => Some(Chain::Authors),
            "none" => Some(Chain::None),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Chain::Full => "full",
            Chain::Authors => "authors",
            Chain::None => "none",
        }
    }
}

/// Which kind of pass a proxy runs.
#[derive(Clone, Copy, Debug)]
pub enum Pass<'a> {
    /// Make every decision and compute values only; nothing is kept for a backward pass.
    Decide,
    /// Decide and build the graph to the weights (the single-pass regularizer).
    Full,
    /// Replay recorded decisions (restricted to some samples) and build the graph.
    Replay(&'a Trace),
}

/// What one DeepFool iteration decided.
#[derive(Clone, Debug)]
pub struct Step {
    /// Samples (indices into the proxy's batch) that took this step.
    pub samples: Vec<u32>,
    /// The points `x + r` (values) at which the step's gradients were taken, one per sample.
    /// DeepFool's replay recomputes them; a plugin proxy may use them.
    pub points: Tensor,
    /// For each sample, the pair `(l, o)`: the step moves towards class `l` away from class `o`.
    pub pairs: Vec<(u32, u32)>,
}

/// Every decision a proxy made on one batch.
#[derive(Clone, Debug)]
pub struct Trace {
    pub steps: Vec<Step>,
    pub batch: usize,
    /// Whether each sample's clean prediction was right.
    pub correct: Vec<bool>,
    /// Whether the attack reached its goal for each sample.
    pub success: Vec<bool>,
}

impl Trace {
    /// The same trace for the samples `keep` (indices into the batch), renumbered `0..keep.len()`.
    pub fn subset(&self, keep: &[u32]) -> Result<Trace> {
        let mut steps = Vec::with_capacity(self.steps.len());
        for st in &self.steps {
            let mut samples = Vec::new();
            let mut rows = Vec::new();
            let mut pairs = Vec::new();
            for (new, &s) in keep.iter().enumerate() {
                if let Some(r) = st.samples.iter().position(|&t| t == s) {
                    samples.push(new as u32);
                    rows.push(r as u32);
                    pairs.push(st.pairs[r]);
                }
            }
            if samples.is_empty() {
                break;
            }
            let idx = Tensor::new(rows.as_slice(), st.points.device())?;
            let points = st.points.index_select(&idx, 0)?;
            steps.push(Step { samples, points, pairs });
        }
        let pick = |v: &[bool]| keep.iter().map(|&i| v[i as usize]).collect();
        Ok(Trace { steps, batch: keep.len(), correct: pick(&self.correct), success: pick(&self.success) })
    }
}

/// A proxy's result on a batch of `n` samples.
#[derive(Clone, Debug)]
pub struct ProxyOut {
    /// `(n,)` ρ per sample, in the graph (absent after [`Pass::Decide`]).
    pub rho: Option<Tensor>,
    /// ρ per sample on the host.
    pub rho_values: Vec<f64>,
    /// Whether the clean prediction was right.
    pub correct: Vec<bool>,
    /// Whether the attack reached its goal (correct samples: left the clean prediction;
    /// misclassified samples: reached the label).
    pub success: Vec<bool>,
    /// Iterations run.
    pub iterations: usize,
    /// Cotangent rows pushed through the model's input VJP (the work done: candidate rows for
    /// choosing the target class plus one row per active sample and iteration).
    pub vjp_rows: usize,
    pub trace: Trace,
}

/// A margin proxy.
pub trait Proxy: Send + Sync {
    fn run(&self, model: &dyn Model, x: &Tensor, y: &[u32], ctx: &Ctx, pass: Pass) -> Result<ProxyOut>;
    fn norm(&self) -> Norm;
    /// Whether samples the attack did not flip are left out of the regularizer.
    fn drops_failed(&self) -> bool;
    /// The same proxy with high-order gradients switched off (`w_k` treated as a constant).
    fn without_hog(&self) -> Box<dyn Proxy>;
    /// The same proxy with another [`Chain`], where the proxy has that notion (for
    /// `amm gradcheck`'s chain share); `None` otherwise.
    fn with_chain(&self, _chain: Chain) -> Option<Box<dyn Proxy>> {
        None
    }
    /// Whether each sample's ρ and decisions depend on that sample alone (given the model and the
    /// sample's [`Ctx`] entries), so that a batch may run in chunks with the same result.
    fn per_sample(&self) -> bool {
        false
    }
    fn describe(&self) -> String;
}
