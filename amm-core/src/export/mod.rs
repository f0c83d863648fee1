//! Getting models out of amm: ONNX ([`onnx`]) and PyTorch ([`pytorch`]) exports of a model's
//! inference graph ([`graph`]) with its preprocessing. Both take raw inputs (pixels in [0, 1])
//! and return logits, so other tools need nothing from amm to use them.
pub mod graph;
pub mod onnx;
mod onnx_proto;
pub mod pytorch;

pub use graph::Node;

use crate::card::ModelCard;
use crate::model::Model;
use anyhow::{Context, Result};
use candle_core::{Tensor, TensorId};
use std::collections::HashMap;
use std::path::Path;

/// A model with what an export needs to describe it.
pub struct Exportable<'a> {
    pub model: &'a dyn Model,
    pub card: ModelCard,
    /// The model's spec (its name and arguments) for `config.json`.
    pub arch: &'a crate::dsl::StageSpec,
    /// The per-feature mean subtracted from the raw inputs, if any.
    pub mean: Option<Vec<f32>>,
}

impl Exportable<'_> {
    /// The inference graph, or an error naming what cannot be exported.
    pub fn graph(&self) -> Result<Node> {
        self.model.graph().with_context(|| {
            format!(
                "{} cannot be exported: one of its layers does not describe itself for export \
                 (every built-in model can; a plugin's layers need `Layer::graph`)",
                self.model.describe()
            )
        })
    }

    /// Parameter and buffer names by tensor, without amm's checkpoint prefix.
    pub fn names(&self) -> HashMap<TensorId, String> {
        let p = self.model.params();
        p.vars().iter().chain(p.buffers()).map(|(n, v)| (v.as_tensor().id(), n.clone())).collect()
    }

    /// The mean as a tensor of the input shape (zeros when nothing is subtracted).
    pub fn mean_tensor(&self) -> Result<Tensor> {
        crate::card::mean_tensor(self.mean.as_deref(), &self.card.input_shape)
    }

    /// Writes the ONNX model to `path` (atomically).
    pub fn write_onnx(&self, path: &Path) -> Result<()> {
        let graph = self.graph()?;
        let mean = self.mean.as_ref().map(|_| self.mean_tensor()).transpose()?;
        let bytes = onnx::to_onnx(
            &graph,
            &onnx::OnnxInput {
                names: &self.names(),
                input_shape: &self.card.input_shape,
                classes: self.card.classes,
                mean: mean.as_ref(),
                metadata: &self.card.to_metadata(),
            },
        )?;
        crate::rundir::write_atomic(path, &bytes)
    }
}
