//! One AMM training step, top to bottom:
//!
//! batch → forward → data loss → proxy (differentiable DeepFool) → aggregation → shrinkage →
//! loss → backward → gradient clipping → optimizer.
use crate::layer::{Ctx, Mode};
use crate::loss::ClassLoss;
use crate::model::Model;
use crate::optim::Optimize;
use crate::params::ParamStore;
use crate::regularizer::Regularizer;
use crate::tensor::{argmax_rows, to_host};
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

/// What one step measured.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct StepStats {
    pub loss: f64,
    /// The data term (cross-entropy or hinge).
    pub ce: f64,
    pub reg: f64,
    /// Fraction of the batch misclassified by the training forward.
    pub train_error: f64,
    /// Samples regularized (correctly / wrongly classified).
    pub reg_correct: usize,
    pub reg_wrong: usize,
    /// λ·terms truncated at the clip.
    pub reg_clipped: usize,
    /// Fraction of the batch the attack flipped.
    pub attack_success: f64,
    pub attack_iters: usize,
    /// Rows pushed through the model's input VJP by the attack (both passes).
    pub vjp_rows: usize,
    /// Samples per regularizer graph when the step ran in chunks; 0: one graph.
    #[serde(default)]
    pub reg_chunk: usize,
    pub grad_norm: f64,
    pub grad_clipped: bool,
}

/// The loss became NaN or infinite.
#[derive(Debug)]
pub struct Diverged {
    pub term: &'static str,
    pub value: f64,
}

impl std::fmt::Display for Diverged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the {} term diverged (value {}); lower the learning rate, λ (weight) or the shrinkage's c/d, or lower its clip",
            self.term, self.value
        )
    }
}
impl std::error::Error for Diverged {}

/// Runs one training step on `(x, y)` and updates the model in place.
#[allow(clippy::too_many_arguments)]
pub fn train_step(
    model: &dyn Model,
    reg: Option<&Regularizer>,
    loss: &dyn ClassLoss,
    opt: &mut dyn Optimize,
    clip: f64,
    x: &Tensor,
    y: &[u32],
    step_seed: u64,
) -> anyhow::Result<StepStats> {
    let b = x.dim(0)?;
    // batch → forward (dropout masks drawn for this step; batch norm on batch statistics)
    let ctx = Ctx::new(Mode::Train, step_seed, b);
    let fwd = model.forward(x, &ctx)?;
    let pred = argmax_rows(&to_host(&fwd.logits)?, model.classes());
    let train_error = pred.iter().zip(y).filter(|(p, y)| p != y).count() as f64 / b as f64;

    // → data loss; a model with a hand-written backward (`backward.rs`) takes it on its logits
    // detached, and walks its layers back from the logits' gradient itself
    let logits = if model.has_train_backward() { Some(Var::from_tensor(&fwd.logits.detach())?) } else { None };
    let data = loss.loss(logits.as_ref().map_or(&fwd.logits, |z| z.as_tensor()), y)?;

    // → proxy → aggregation → shrinkage (same dropout masks; batch norm on running statistics);
    // a pipeline whose terms are per-sample (AVG) runs in chunks, each chunk's graph
    // differentiated as soon as it is built, so that one chunk's graph is alive at a time
    let attack = ctx.with_mode(Mode::Attack);
    let mut chunk_grads: Vec<Option<Tensor>> = vec![None; model.params().vars().len()];
    let chunk = reg.and_then(|r| r.chunk_rows(b, fwd.saved.bytes() / b.max(1)));
    let reg_out = match (reg, chunk) {
        (Some(r), Some(rows)) => {
            Some(r.compute_in_chunks(model, x, y, &attack, rows, |part| add_grads(&mut chunk_grads, &part.backward()?, model.params()))?)
        }
        (Some(r), None) => Some(r.compute(model, x, y, &attack, None)?),
        (None, _) => None,
    };

    // → loss
    let ce_value = match &data {
        Some(t) => to_host(t)?[0],
        None => 0.0,
    };
    let reg_value = reg_out.as_ref().map_or(0.0, |r| r.value);
    if !ce_value.is_finite() {
        return Err(Diverged { term: loss.term(), value: ce_value }.into());
    }
    if !reg_value.is_finite() {
        return Err(Diverged { term: "regularizer", value: reg_value }.into());
    }
    let total = match (&data, &reg_out) {
        (Some(d), Some(r)) => (d + &r.loss)?,
        (Some(d), None) => d.clone(),
        (None, Some(r)) => r.loss.clone(),
        (None, None) => anyhow::bail!("nothing to train: loss = none and no regularizer (set train.loss or reg.pipeline)"),
    };

    // → backward (plus the chunks' and the hand-written gradients) → clip → optimizer
    let mut grads = total.backward()?;
    if let Some(gz) = logits.as_ref().and_then(|z| grads.remove(z.as_tensor())) {
        let hand =
            model.train_backward(&fwd, &gz)?.ok_or_else(|| anyhow::anyhow!("{}: no hand-written backward after all", model.describe()))?;
        add_all(&mut chunk_grads, hand)?;
    }
    if chunk.is_some() || logits.is_some() {
        add_grads(&mut chunk_grads, &grads, model.params())?;
        for ((_, var), g) in model.params().vars().iter().zip(chunk_grads) {
            if let Some(g) = g {
                grads.insert(var.as_tensor(), g);
            }
        }
    }
    let info = opt.step(&grads, clip)?;
    if !info.grad_norm.is_finite() {
        return Err(Diverged { term: "gradient", value: info.grad_norm }.into());
    }

    let (reg_correct, reg_wrong, reg_clipped, attack_success, attack_iters, vjp_rows) = match &reg_out {
        Some(r) => {
            let (c, w) = r.selected_split();
            let s = r.success.iter().filter(|&&s| s).count() as f64 / b as f64;
            (c, w, r.clipped, s, r.iterations, r.vjp_rows)
        }
        None => (0, 0, 0, 0.0, 0, 0),
    };
    Ok(StepStats {
        loss: ce_value + reg_value,
        ce: ce_value,
        reg: reg_value,
        train_error,
        reg_correct,
        reg_wrong,
        reg_clipped,
        attack_success,
        attack_iters,
        vjp_rows,
        reg_chunk: chunk.unwrap_or(0),
        grad_norm: info.grad_norm,
        grad_clipped: info.clipped,
    })
}

/// `acc[i] += g[params[i]]` for every parameter that `g` holds a gradient for. Detached: a
/// gradient's op keeps the graph it came from alive, and each chunk's graph must go.
fn add_grads(acc: &mut [Option<Tensor>], g: &GradStore, params: &ParamStore) -> candle_core::Result<()> {
    add_all(acc, params.vars().iter().map(|(_, var)| g.get(var.as_tensor()).map(Tensor::detach)))
}

/// `acc[i] += g[i]` wherever `g[i]` is some.
fn add_all(acc: &mut [Option<Tensor>], g: impl IntoIterator<Item = Option<Tensor>>) -> candle_core::Result<()> {
    for (acc, g) in acc.iter_mut().zip(g) {
        if let Some(g) = g {
            *acc = Some(match acc.take() {
                Some(a) => (a + g)?,
                None => g,
            });
        }
    }
    Ok(())
}
