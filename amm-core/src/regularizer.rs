//! The AMM regularizer: proxy → aggregation → shrinkage → weighted sum.
//!
//! ```text
//! x, y ──▶ proxy (DeepFool, pass 1) ──▶ ρ per sample ──▶ aggregation (which samples)
//!      ──▶ [MIN: pass 2 replays the chosen samples with the graph] ──▶ [ρ/‖x‖]
//!      ──▶ shrinkage, ×λ, clipped at ±clip ──▶ Σ / B
//! ```
use crate::aggregate::Aggregation;
use crate::layer::Ctx;
use crate::model::Model;
use crate::proxy::{Chain, Pass, Proxy, ProxyOut, Step, Trace};
use crate::shrink::Shrinkage;
use crate::tensor::to_host;
use candle_core::{Result, Tensor};
use std::sync::Arc;

/// A validated regularizer pipeline, ready to run.
pub struct Regularizer {
    pub proxy: Arc<dyn Proxy>,
    pub aggregation: Arc<dyn Aggregation>,
    pub shrinkage: Arc<dyn Shrinkage>,
    /// Use ρ/‖x‖_p instead of ρ.
    pub normalize: bool,
    /// λ.
    pub weight: f64,
    /// Force one pass (`Some(false)`) or two (`Some(true)`); `None` lets the aggregation decide
    /// (two passes when it selects few samples, as MIN does).
    pub two_pass: Option<bool>,
    /// Samples whose graph a training step keeps alive at once when every sample's term depends
    /// on that sample alone (AVG; see [`Regularizer::compute_in_chunks`]): `Some(0)` runs the
    /// whole batch as one graph, `Some(n)` chunks of `n`, `None` chunks sized by
    /// [`CHUNK_BUDGET`].
    pub chunk: Option<usize>,
}

/// The automatic chunk's budget: bytes of the clean forward's saved state per chunk (at least 4
/// samples). The graph of a 5-iteration DeepFool and its backward holds about 90× that on
/// ResNet-20 (0.75 MB saved, ~70 MB of graph per sample): its AVG step at batch 100 peaked at
/// 6.2 GiB as one graph and at 1.4 GiB in chunks of 16, in about the same time. An MLP's or
/// LeNet's whole batch fits the budget (an MLP's step ran 2.5× slower in chunks of 16).
pub const CHUNK_BUDGET: usize = 12 << 20;

/// Every decision of one regularizer evaluation, for replay.
#[derive(Clone, Debug)]
pub struct RegTrace {
    pub proxy: Trace,
    /// Regularized samples (indices into the batch), ascending.
    pub selected: Vec<usize>,
    /// For each selected sample, whether its term was clipped.
    pub clipped: Vec<bool>,
}

/// The regularizer's value on a batch with its diagnostics.
#[derive(Clone, Debug)]
pub struct RegOut {
    /// λ Σ terms / B, a scalar in the graph.
    pub loss: Tensor,
    pub value: f64,
    /// The part of `value` that depends on the weights (clipped terms are constants): what a
    /// finite-difference check must difference, or rounding in the constants swamps it.
    pub varying: f64,
    /// ρ per sample as the aggregation saw it (normalized if asked); NaN where left out.
    pub rho: Vec<f64>,
    pub correct: Vec<bool>,
    pub success: Vec<bool>,
    pub selected: Vec<usize>,
    pub clipped: usize,
    pub iterations: usize,
    /// Rows pushed through the input VJP, both passes together.
    pub vjp_rows: usize,
    pub trace: RegTrace,
}

/// The regularizer's value with every decision, computed without a graph (on the host from the
/// proxy's ρ values): what finite differences difference.
#[derive(Clone, Debug)]
pub struct RegValue {
    pub value: f64,
    /// The weight-dependent part of `value` (the clipped terms are constants).
    pub varying: f64,
    pub trace: RegTrace,
}

impl RegTrace {
    /// Whether `other` made every discrete decision as this one: the active samples and the
    /// pair of every DeepFool step, the clean predictions' correctness, the attack's success, the
    /// selection and the clipping.
    pub fn same_decisions(&self, other: &RegTrace) -> bool {
        let (a, b) = (&self.proxy, &other.proxy);
        a.batch == b.batch
            && a.correct == b.correct
            && a.success == b.success
            && a.steps.len() == b.steps.len()
            && a.steps.iter().zip(&b.steps).all(|(s, t)| s.samples == t.samples && s.pairs == t.pairs)
            && self.selected == other.selected
            && self.clipped == other.clipped
    }
}

impl RegOut {
    /// The result on a batch from the results on its consecutive chunks (`x`: the whole batch,
    /// for the device and dtype of the constant `loss`).
    fn concat(parts: Vec<RegOut>, x: &Tensor) -> Result<RegOut> {
        let b: usize = parts.iter().map(|p| p.rho.len()).sum();
        let share = |p: &RegOut| p.rho.len() as f64 / b as f64;
        let value: f64 = parts.iter().map(|p| p.value * share(p)).sum();
        let varying = parts.iter().map(|p| p.varying * share(p)).sum();
        // Step k of each chunk, renumbered into the batch.
        let mut steps: Vec<Vec<Step>> = Vec::new();
        let mut out = RegOut {
            loss: Tensor::new(value, x.device())?.to_dtype(x.dtype())?,
            value,
            varying,
            rho: Vec::with_capacity(b),
            correct: Vec::with_capacity(b),
            success: Vec::with_capacity(b),
            selected: Vec::new(),
            clipped: 0,
            iterations: 0,
            vjp_rows: 0,
            trace: RegTrace {
                proxy: Trace { steps: Vec::new(), batch: b, correct: Vec::new(), success: Vec::new() },
                selected: Vec::new(),
                clipped: Vec::new(),
            },
        };
        let mut offset = 0;
        for p in parts {
            for (k, mut st) in p.trace.proxy.steps.into_iter().enumerate() {
                st.samples.iter_mut().for_each(|i| *i += offset as u32);
                if steps.len() == k {
                    steps.push(Vec::new());
                }
                steps[k].push(st);
            }
            out.selected.extend(p.selected.iter().map(|&i| i + offset));
            out.trace.clipped.extend(p.trace.clipped);
            out.clipped += p.clipped;
            out.iterations = out.iterations.max(p.iterations);
            out.vjp_rows += p.vjp_rows;
            offset += p.rho.len();
            out.rho.extend(p.rho);
            out.correct.extend(p.correct);
            out.success.extend(p.success);
        }
        out.trace.selected = out.selected.clone();
        out.trace.proxy.correct = out.correct.clone();
        out.trace.proxy.success = out.success.clone();
        for group in steps {
            let points: Vec<&Tensor> = group.iter().map(|st| &st.points).collect();
            out.trace.proxy.steps.push(Step {
                samples: group.iter().flat_map(|st| st.samples.iter().copied()).collect(),
                points: Tensor::cat(&points, 0)?,
                pairs: group.iter().flat_map(|st| st.pairs.iter().copied()).collect(),
            });
        }
        Ok(out)
    }

    /// Selected samples whose clean prediction was right / wrong.
    pub fn selected_split(&self) -> (usize, usize) {
        let right = self.selected.iter().filter(|&&i| self.correct[i]).count();
        (right, self.selected.len() - right)
    }
}

fn take(t: &Tensor, idx: &[usize]) -> Result<Tensor> {
    let idx: Vec<u32> = idx.iter().map(|&i| i as u32).collect();
    t.index_select(&Tensor::new(idx.as_slice(), t.device())?, 0)
}

impl Regularizer {
    /// The same regularizer with high-order gradients switched off.
    pub fn without_hog(&self) -> Regularizer {
        self.with_proxy(Arc::from(self.proxy.without_hog()))
    }

    /// The same regularizer with another [`Chain`], if its proxy has that notion.
    pub fn with_chain(&self, chain: Chain) -> Option<Regularizer> {
        self.proxy.with_chain(chain).map(|p| self.with_proxy(Arc::from(p)))
    }

    fn with_proxy(&self, proxy: Arc<dyn Proxy>) -> Regularizer {
        Regularizer {
            proxy,
            aggregation: self.aggregation.clone(),
            shrinkage: self.shrinkage.clone(),
            normalize: self.normalize,
            weight: self.weight,
            two_pass: self.two_pass,
            chunk: self.chunk,
        }
    }

    /// The chunk a training step on `b` samples runs in ([`Regularizer::compute_in_chunks`]),
    /// given the bytes the clean forward saves per sample; `None` for one graph: the pipeline
    /// does not treat samples independently, or the batch fits one chunk.
    pub fn chunk_rows(&self, b: usize, saved_per_sample: usize) -> Option<usize> {
        let rows = match self.chunk {
            Some(n) => n,
            None => (CHUNK_BUDGET / saved_per_sample.max(1)).max(4),
        };
        (rows > 0 && b > rows && self.per_sample()).then_some(rows)
    }

    /// Whether every term depends on its own sample alone: the proxy's and the aggregation's say.
    fn per_sample(&self) -> bool {
        self.proxy.per_sample() && self.aggregation.per_sample()
    }

    /// [`Regularizer::compute`] on consecutive chunks of `rows` samples, each
    /// chunk's share of the loss (its terms / B) handed to `backward` as soon as its graph is
    /// built, so that one chunk's graph is alive at a time. The value, ρ and decisions are those
    /// of the whole batch; the returned `loss` is the value as a constant (its gradient went to
    /// `backward`). Only for pipelines where [`Regularizer::chunk_rows`] gives a chunk: every
    /// term depends on its own sample alone, so the sum over chunks is the whole batch's function.
    pub fn compute_in_chunks(
        &self,
        model: &dyn Model,
        x: &Tensor,
        y: &[u32],
        ctx: &Ctx,
        rows: usize,
        mut backward: impl FnMut(&Tensor) -> Result<()>,
    ) -> Result<RegOut> {
        let b = x.dim(0)?;
        if rows == 0 || !self.per_sample() {
            candle_core::bail!("compute_in_chunks: `{}` does not run in chunks of {rows}", self.describe());
        }
        let mut parts = Vec::with_capacity(b.div_ceil(rows));
        for start in (0..b).step_by(rows) {
            let len = rows.min(b - start);
            let idx: Vec<u32> = (start..start + len).map(|i| i as u32).collect();
            let mut out = self.compute(model, &x.narrow(0, start, len)?, &y[start..start + len], &ctx.subset(&idx), None)?;
            backward(&(&out.loss * (len as f64 / b as f64))?)?;
            // Keeping the loss would keep its graph alive.
            out.loss = out.loss.detach();
            parts.push(out);
        }
        RegOut::concat(parts, x)
    }

    pub fn describe(&self) -> String {
        let mut s = format!("{} |> {}", self.proxy.describe(), self.aggregation.describe());
        if self.normalize {
            s.push_str(" |> normalize");
        }
        s.push_str(&format!(" |> {} |> weight({})", self.shrinkage.describe(), self.weight));
        s
    }

    /// The value on `(x, y)` and its decisions, without building a graph. Independent of
    /// [`Regularizer::compute`]'s graph: the terms are summed on the host in f64 from ρ.
    pub fn decide(&self, model: &dyn Model, x: &Tensor, y: &[u32], ctx: &Ctx) -> Result<RegValue> {
        let b = x.dim(0)?;
        let xnorm = self.x_norms(x)?;
        let out = self.proxy.run(model, x, y, ctx, Pass::Decide)?;
        let rho = self.aggregated_rho(&out, xnorm.as_deref());
        let selected = self.aggregation.select(&rho, &out.correct, y);
        let (mut varying, mut constant, mut clipped) = (0.0, 0.0, Vec::with_capacity(selected.len()));
        for &i in &selected {
            let v = self.lambda_term(rho[i], out.correct[i]);
            let cut = self.is_clipped(v);
            if cut {
                constant += self.clipped_value(v);
            } else {
                varying += v;
            }
            clipped.push(cut);
        }
        Ok(RegValue {
            value: (varying + constant) / b as f64,
            varying: varying / b as f64,
            trace: RegTrace { proxy: out.trace, selected, clipped },
        })
    }

    /// ‖x‖_p per sample, for `normalize` (`None` without it).
    fn x_norms(&self, x: &Tensor) -> Result<Option<Vec<f64>>> {
        Ok(if self.normalize { Some(to_host(&self.proxy.norm().of_rows(x)?)?) } else { None })
    }

    /// ρ per sample as the aggregation sees it: divided by ‖x‖ with `normalize`, NaN for the
    /// samples the proxy leaves out.
    fn aggregated_rho(&self, out: &ProxyOut, xnorm: Option<&[f64]>) -> Vec<f64> {
        (0..out.rho_values.len())
            .map(|i| if self.proxy.drops_failed() && !out.success[i] { f64::NAN } else { out.rho_values[i] * inv_norm(xnorm, i) })
            .collect()
    }

    /// λ·term of one sample on the host.
    fn lambda_term(&self, rho: f64, correct: bool) -> f64 {
        self.weight * self.shrinkage.value(rho, correct)
    }

    /// Whether the clip replaces the λ·term `v` by a constant.
    fn is_clipped(&self, v: f64) -> bool {
        !v.is_finite() || v.abs() > self.shrinkage.clip()
    }

    /// The constant a clipped λ·term `v` becomes: ±clip.
    fn clipped_value(&self, v: f64) -> f64 {
        let clip = self.shrinkage.clip();
        if v < 0.0 {
            -clip
        } else {
            clip
        }
    }

    /// Evaluates the regularizer on `(x, y)` with its graph; with `replay`, every decision comes
    /// from an earlier evaluation (the gradient under another `hog` or `chain`).
    pub fn compute(&self, model: &dyn Model, x: &Tensor, y: &[u32], ctx: &Ctx, replay: Option<&RegTrace>) -> Result<RegOut> {
        let b = x.dim(0)?;
        let xnorm = self.x_norms(x)?;
        let scale = |i: usize| inv_norm(xnorm.as_deref(), i);

        // 1-3. proxy, aggregation, graph for the selected samples.
        let mut vjp_rows = 0;
        let (proxy_trace, selected, rho_all, rho_sel, iterations) = match replay {
            Some(rt) => {
                let sel: Vec<u32> = rt.selected.iter().map(|&i| i as u32).collect();
                let sub = rt.proxy.subset(&sel)?;
                let out = self.proxy.run(model, &take(x, &rt.selected)?, &pick(y, &rt.selected), &ctx.subset(&sel), Pass::Replay(&sub))?;
                vjp_rows += out.vjp_rows;
                let mut rho = vec![f64::NAN; b];
                for (j, &i) in rt.selected.iter().enumerate() {
                    rho[i] = out.rho_values[j] * scale(i);
                }
                (rt.proxy.clone(), rt.selected.clone(), rho, out.rho.expect("replay builds the graph"), out.iterations)
            }
            None => {
                let two_pass = self.two_pass.unwrap_or(self.aggregation.selects_few());
                let first = self.proxy.run(model, x, y, ctx, if two_pass { Pass::Decide } else { Pass::Full })?;
                vjp_rows += first.vjp_rows;
                let rho = self.aggregated_rho(&first, xnorm.as_deref());
                let selected = self.aggregation.select(&rho, &first.correct, y);
                let rho_sel = if selected.is_empty() {
                    Tensor::zeros(0, x.dtype(), x.device())?
                } else if two_pass {
                    let sel: Vec<u32> = selected.iter().map(|&i| i as u32).collect();
                    let sub = first.trace.subset(&sel)?;
                    let out = self.proxy.run(model, &take(x, &selected)?, &pick(y, &selected), &ctx.subset(&sel), Pass::Replay(&sub))?;
                    vjp_rows += out.vjp_rows;
                    out.rho.expect("replay builds the graph")
                } else {
                    take(first.rho.as_ref().expect("a full pass builds the graph"), &selected)?
                };
                (first.trace, selected, rho, rho_sel, first.iterations)
            }
        };
        let rho_sel = match &xnorm {
            Some(_) => {
                let s: Vec<f64> = selected.iter().map(|&i| scale(i)).collect();
                (rho_sel * Tensor::from_vec(s, selected.len(), x.device())?.to_dtype(x.dtype())?)?
            }
            None => rho_sel,
        };

        // 4. shrinkage, λ, clip; the clip decision is made on the host.
        let lambda = self.weight;
        let correct = &proxy_trace.correct;
        let clipped: Vec<bool> = match replay {
            Some(rt) => rt.clipped.clone(),
            None => selected.iter().map(|&i| self.is_clipped(self.lambda_term(rho_all[i], correct[i]))).collect(),
        };
        let mut constant = 0.0;
        let mut parts: Vec<Tensor> = Vec::new();
        for group in [true, false] {
            let rows: Vec<usize> = (0..selected.len()).filter(|&j| correct[selected[j]] == group && !clipped[j]).collect();
            if !rows.is_empty() {
                let t = self.shrinkage.apply(&take(&rho_sel, &rows)?, group)?;
                parts.push((t.sum_all()? * lambda)?);
            }
        }
        for (j, &i) in selected.iter().enumerate() {
            if clipped[j] {
                constant += self.clipped_value(self.lambda_term(rho_all[i], correct[i]));
            }
        }
        let mut sum = Tensor::zeros((), x.dtype(), x.device())?;
        for p in parts {
            sum = (sum + p)?;
        }
        // The weight-dependent part, kept apart from the clipped constants so that differences
        // of it are not swamped by their rounding.
        let varying = to_host(&sum)?[0] / b as f64;
        let loss = ((sum + constant)? / b as f64)?;
        let value = to_host(&loss)?[0];
        let n_clipped = clipped.iter().filter(|&&c| c).count();
        Ok(RegOut {
            loss,
            value,
            varying,
            rho: rho_all,
            correct: proxy_trace.correct.clone(),
            success: proxy_trace.success.clone(),
            selected: selected.clone(),
            clipped: n_clipped,
            iterations,
            vjp_rows,
            trace: RegTrace { proxy: proxy_trace, selected, clipped },
        })
    }
}

/// 1/‖x_i‖ with `normalize` (guarded), else 1.
fn inv_norm(xnorm: Option<&[f64]>, i: usize) -> f64 {
    xnorm.map_or(1.0, |n| 1.0 / n[i].max(1e-12))
}

fn pick(y: &[u32], idx: &[usize]) -> Vec<u32> {
    idx.iter().map(|&i| y[i]).collect()
}
