//! The layer abstraction: a forward pass that remembers what its input VJP needs, and the
//! input VJP itself, written in ordinary (differentiable) candle ops.
//!
//! Why explicit VJPs: DeepFool needs the input gradient of several class differences for every
//! sample, and the training loss must differentiate *through* those gradients into the weights.
//! Running the VJP as a "reverse network" of plain tensor ops over `R` cotangent rows (several per
//! sample) gives all of them in one batched chain, and an ordinary first-order `backward()` of the
//! loss then yields the second-order terms (../shared/notes/candle.md, Q3).
use crate::backward::ParamGrads;
use candle_core::{Result, Tensor};

/// How a forward pass treats the layers whose behaviour depends on the phase of a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The cross-entropy pass of a training step: dropout masks applied, batch norm uses batch
    /// statistics.
    Train,
    /// The attack and regularizer passes of a training step: the same dropout masks (samples stay
    /// independent of each other), batch norm uses its running statistics.
    Attack,
    /// Evaluation: no dropout, running statistics.
    Eval,
}

/// Per-call context of a forward pass.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub mode: Mode,
    /// Seed of this step's dropout masks: every pass of one step draws the same masks.
    pub step_seed: u64,
    /// Which samples of the step's batch this forward sees (`None` = all of them, in order).
    /// Masks are drawn for the whole batch and then restricted, so a pass over a subset of the
    /// samples (the second pass of MIN) sees exactly the masks of the full pass.
    pub samples: Option<Vec<u32>>,
    /// Size of the step's whole batch.
    pub batch: usize,
}

impl Ctx {
    pub fn eval(batch: usize) -> Self {
        Self { mode: Mode::Eval, step_seed: 0, samples: None, batch }
    }
    pub fn new(mode: Mode, step_seed: u64, batch: usize) -> Self {
        Self { mode, step_seed, samples: None, batch }
    }
    /// The same step restricted to `samples` (indices into the full batch, or into the current
    /// subset if this context is already restricted).
    pub fn subset(&self, samples: &[u32]) -> Self {
        let samples = match &self.samples {
            None => samples.to_vec(),
            Some(cur) => samples.iter().map(|&i| cur[i as usize]).collect(),
        };
        Self { samples: Some(samples), ..self.clone() }
    }
    pub fn with_mode(&self, mode: Mode) -> Self {
        Self { mode, ..self.clone() }
    }
}

/// What a layer's forward keeps for its input VJP.
#[derive(Clone, Debug)]
pub enum Saved {
    None,
    /// A per-sample factor multiplied into the cotangent (tanh derivative, dropout, pooling).
    Factor(Tensor),
    /// The layer's input (ReLU, max pooling: their VJPs recompute the mask from it).
    Input(Tensor),
    /// The input's shape (flatten, pooling).
    Shape(Vec<usize>),
    /// Anything else a layer needs, in an order it defines.
    Tensors(Vec<Tensor>),
    /// A container's children.
    Seq(Vec<Saved>),
    /// What a [`Mode::Train`] forward keeps for [`Layer::train_backward`] (the layer's input for
    /// its weight gradient, a normalisation's normalised input), around what the VJP needs.
    Train(Vec<Tensor>, Box<Saved>),
}

impl Saved {
    /// Bytes held by the saved tensors (shared storage counted once per reference).
    pub fn bytes(&self) -> usize {
        let t = |t: &Tensor| t.elem_count() * t.dtype().size_in_bytes();
        match self {
            Saved::None | Saved::Shape(_) => 0,
            Saved::Factor(x) | Saved::Input(x) => t(x),
            Saved::Tensors(v) => v.iter().map(t).sum(),
            Saved::Seq(v) => v.iter().map(Saved::bytes).sum(),
            // The kept tensors are left out: the training forward's own graph holds them
            // anyway, and the regularizer's chunks are sized from what the VJPs keep.
            Saved::Train(_, s) => s.bytes(),
        }
    }
    /// What the VJP needs: `self` without what a training forward kept for its backward.
    pub fn for_vjp(&self) -> &Saved {
        match self {
            Saved::Train(_, s) => s,
            s => s,
        }
    }
    /// The tensors a training forward kept for [`Layer::train_backward`], or an error naming
    /// `layer`.
    pub fn kept(&self, layer: &str) -> Result<&[Tensor]> {
        match self {
            Saved::Train(t, _) => Ok(t),
            other => Err(candle_core::Error::Msg(format!("{layer}: a hand-written backward needs a Mode::Train forward, got {other:?}"))),
        }
    }
}

/// The cotangent rows of an input VJP: row `r` belongs to sample `index[r]` of the forward batch.
#[derive(Clone, Debug)]
pub struct Rows {
    /// `(R,)` u32 indices into the forward batch.
    pub index: Tensor,
    /// True when `R` equals the batch and row `r` is sample `r`: gathers can be skipped.
    pub identity: bool,
}

impl Rows {
    pub fn new(index: &[u32], batch: usize, device: &candle_core::Device) -> Result<Self> {
        let identity = index.len() == batch && index.iter().enumerate().all(|(i, &s)| i as u32 == s);
        Ok(Self { index: Tensor::new(index, device)?, identity })
    }
    /// Gathers the per-sample tensor `t` (first dim = batch) to one entry per row.
    pub fn gather(&self, t: &Tensor) -> Result<Tensor> {
        if self.identity {
            Ok(t.clone())
        } else {
            t.contiguous()?.index_select(&self.index, 0)
        }
    }
    /// Every sample of a batch of `n`, in order.
    pub fn all(n: usize, device: &candle_core::Device) -> Result<Self> {
        Ok(Self { index: Tensor::arange(0u32, n as u32, device)?, identity: true })
    }
    pub fn len(&self) -> usize {
        self.index.dims1().unwrap_or(0)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A layer with an explicit, differentiable input VJP.
pub trait Layer: std::fmt::Debug + Send + Sync {
    /// The forward pass; returns the output and what [`Layer::vjp`] needs.
    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<(Tensor, Saved)>;
    /// The input vector-Jacobian product for `v` of shape `(R, out...)`, one row per entry of
    /// `rows`; returns `(R, in...)`. Built from ordinary candle ops, so it is differentiable with
    /// respect to the weights and to everything the forward saved.
    fn vjp(&self, saved: &Saved, v: &Tensor, rows: &Rows) -> Result<Tensor>;
    /// Short description for `amm list` and error messages.
    fn describe(&self) -> String;
    /// Whether [`Layer::train_backward`] is written for this layer and everything in it: then a
    /// training step differentiates the data loss by hand instead of through candle's backward
    /// (`backward.rs`). The default, `false`, keeps a layer with parameters on candle's backward
    /// until it writes its own.
    fn has_train_backward(&self) -> bool {
        false
    }
    /// The first-order backward of a [`Mode::Train`] forward: adds the gradient of each of this
    /// layer's parameters for the output cotangent `g` into `grads`, and returns the input's
    /// cotangent when `input` is set (the first layer's input is the data, which needs none).
    /// The default is that of a layer without parameters: its VJP.
    fn train_backward(&self, saved: &Saved, g: &Tensor, input: bool, _grads: &mut ParamGrads) -> Result<Option<Tensor>> {
        if !input {
            return Ok(None);
        }
        Ok(Some(self.vjp(saved, g, &Rows::all(g.dim(0)?, g.device())?)?.detach()))
    }
    /// This layer at inference time, for export; `None` (the default): it cannot be exported.
    fn graph(&self) -> Option<crate::export::Node> {
        None
    }
}

pub(crate) fn saved_factor(saved: &Saved, layer: &str) -> Result<Tensor> {
    match saved {
        Saved::Factor(t) => Ok(t.clone()),
        other => Err(candle_core::Error::Msg(format!("{layer}: vjp got {other:?} instead of its saved factor"))),
    }
}
