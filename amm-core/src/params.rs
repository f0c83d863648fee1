//! Named, trainable parameters with seeded initialisation, saved and loaded as safetensors.
//!
//! candle's CPU random generator cannot be seeded, so every initial weight is drawn from amm's
//! own [`Rng`]: the same seed gives bit-identical weights on one machine.
use crate::data::Rng;
use candle_core::{DType, Device, Result, Tensor, Var};
use std::collections::HashMap;
use std::path::Path;

/// All trainable parameters of a model, in creation order, with their dotted names.
#[derive(Clone, Debug, Default)]
pub struct ParamStore {
    vars: Vec<(String, Var)>,
    /// Non-trainable state saved with the model (batch-norm running statistics).
    buffers: Vec<(String, Var)>,
}

impl ParamStore {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn vars(&self) -> &[(String, Var)] {
        &self.vars
    }
    pub fn len(&self) -> usize {
        self.vars.len()
    }
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }
    pub fn get(&self, name: &str) -> Option<&Var> {
        self.vars.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
    /// Total number of scalar parameters.
    pub fn count(&self) -> usize {
        self.vars.iter().map(|(_, v)| v.elem_count()).sum()
    }
    pub(crate) fn push(&mut self, name: String, var: Var) {
        self.vars.push((name, var));
    }
    pub fn buffers(&self) -> &[(String, Var)] {
        &self.buffers
    }
    /// Parameters and buffers by name, as candle's safetensors writer wants them.
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        self.vars.iter().chain(&self.buffers).map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect()
    }
    /// Overwrites every parameter from `tensors`; names and shapes must match exactly.
    pub fn load_tensors(&self, tensors: &HashMap<String, Tensor>, prefix: &str) -> anyhow::Result<()> {
        for (name, var) in self.vars.iter().chain(&self.buffers) {
            let key = format!("{prefix}{name}");
            let t = tensors
                .get(&key)
                .ok_or_else(|| anyhow::anyhow!("checkpoint has no tensor `{key}` (the model differs from the one saved)"))?;
            if t.dims() != var.dims() {
                anyhow::bail!("checkpoint tensor `{key}` has shape {:?}, the model expects {:?}", t.dims(), var.dims());
            }
            var.set(&t.to_dtype(var.dtype())?.to_device(var.device())?)?;
        }
        Ok(())
    }
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        candle_core::safetensors::save(&self.tensors(), path)?;
        Ok(())
    }
}

/// Creates parameters under a name prefix (like candle-nn's `VarBuilder`, but seeded).
pub struct ParamBuilder<'a> {
    store: &'a mut ParamStore,
    rng: &'a mut Rng,
    prefix: String,
    pub dtype: DType,
    pub device: Device,
}

impl<'a> ParamBuilder<'a> {
    pub fn new(store: &'a mut ParamStore, rng: &'a mut Rng, dtype: DType, device: &Device) -> Self {
        Self { store, rng, prefix: String::new(), dtype, device: device.clone() }
    }
    /// A builder whose parameters are named `prefix.name`.
    pub fn pp(&mut self, name: impl std::fmt::Display) -> ParamBuilder<'_> {
        let prefix = if self.prefix.is_empty() { name.to_string() } else { format!("{}.{name}", self.prefix) };
        ParamBuilder { store: self.store, rng: self.rng, prefix, dtype: self.dtype, device: self.device.clone() }
    }
    fn name(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }
    fn make(&mut self, name: &str, shape: &[usize], values: Vec<f64>) -> Result<Tensor> {
        let full = self.name(name);
        if shape.contains(&0) {
            // An empty layer trains nothing and breaks the optimizer's in-place update.
            candle_core::bail!("parameter `{full}` would have shape {shape:?}: every width and channel count must be at least 1");
        }
        let t = Tensor::from_vec(values, shape, &self.device)?.to_dtype(self.dtype)?;
        let var = Var::from_tensor(&t)?;
        let out = var.as_tensor().clone();
        self.store.push(full, var);
        Ok(out)
    }
    /// MSRA / Kaiming normal: N(0, 2 / fan_in).
    pub fn kaiming(&mut self, name: &str, shape: &[usize], fan_in: usize) -> Result<Tensor> {
        let std = (2.0 / fan_in.max(1) as f64).sqrt();
        let n: usize = shape.iter().product();
        let values = (0..n).map(|_| self.rng.normal() * std).collect();
        self.make(name, shape, values)
    }
    pub fn constant(&mut self, name: &str, shape: &[usize], value: f64) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        self.make(name, shape, vec![value; n])
    }
    pub fn zeros(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.constant(name, shape, 0.0)
    }
    /// A non-trainable buffer (saved in checkpoints, never in the optimizer), e.g. running stats.
    /// Update it in place with `Var::set`.
    pub fn buffer(&mut self, name: &str, shape: &[usize], value: f64) -> Result<Var> {
        let n: usize = shape.iter().product();
        let t = Tensor::from_vec(vec![value; n], shape, &self.device)?.to_dtype(self.dtype)?;
        let var = Var::from_tensor(&t)?;
        self.store.buffers.push((self.name(name), var.clone()));
        Ok(var)
    }
}
