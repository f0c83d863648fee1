//! Starting a run from given weights (`amm train --init PATH`, `train.init` in specs): a run
//! directory, an amm checkpoint, or the `weights.safetensors` of a PyTorch export (possibly
//! changed in PyTorch). Only the weights come over: the optimizer starts fresh. Names and shapes
//! must match the model exactly; the error lists every mismatch.
use crate::card::{self, ModelCard, MEAN_KEY};
use crate::data::Prepared;
use crate::model::Model;
use crate::rundir;
use anyhow::{bail, Result};
use candle_core::Tensor;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// The name of the input mean in exported weights (a buffer of the PyTorch module).
pub const EXPORT_MEAN_KEY: &str = "input_mean";

/// Weights read for a model, with what they say about themselves.
#[derive(Debug)]
pub struct Weights {
    /// The file they came from.
    pub file: PathBuf,
    pub tensors: HashMap<String, Tensor>,
    /// `model.` for amm checkpoints, empty for exported weights.
    pub prefix: &'static str,
    /// The card in the file's metadata, if it has one.
    pub card: Option<ModelCard>,
    /// The input mean stored with the weights (zeros: raw inputs), if the file has one.
    stored_mean: Option<Vec<f32>>,
}

/// The weights file `path` stands for: a file as it is; in a directory, an export's
/// `weights.safetensors` or a run's last checkpoint.
pub fn weights_file(path: &Path) -> Result<PathBuf> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    if path.is_dir() {
        for f in ["weights.safetensors", rundir::LAST] {
            if path.join(f).is_file() {
                return Ok(path.join(f));
            }
        }
        bail!(
            "{}: no weights in this folder (expected a run's {} or an export's weights.safetensors); \
             a run that has not finished an epoch has none yet",
            path.display(),
            rundir::LAST
        );
    }
    bail!("{}: no such run directory or checkpoint (or weights file)", path.display())
}

/// Reads the weights at `path` (see [`weights_file`]).
pub fn read(path: &Path) -> Result<Weights> {
    let file = weights_file(path)?;
    let (tensors, meta) = rundir::load_tensors_meta(&file)?;
    let prefix = if tensors.keys().any(|k| k.starts_with("model.")) { "model." } else { "" };
    let card = ModelCard::from_metadata(&meta, &file.display().to_string())?;
    let stored_mean = input_mean(&tensors)?;
    Ok(Weights { file, tensors, prefix, card, stored_mean })
}

/// The input mean stored among `tensors`: a checkpoint's [`MEAN_KEY`] or an export's
/// [`EXPORT_MEAN_KEY`]; `None` if neither is there.
pub fn input_mean(tensors: &HashMap<String, Tensor>) -> Result<Option<Vec<f32>>> {
    match card::stored_mean(tensors, MEAN_KEY)? {
        Some(m) => Ok(Some(m)),
        None => card::stored_mean(tensors, EXPORT_MEAN_KEY),
    }
}

/// Centres `data` on `stored` (an all-zero mean is "nothing subtracted", what an export stores
/// then), as the weights of `file` were trained. Nothing stored (amm checkpoints written before
/// the model card): the data keeps its own mean.
pub fn centre_on(stored: Option<&[f32]>, data: &mut Prepared, file: &Path) -> Result<()> {
    if let Some(m) = stored {
        let mean = m.iter().any(|&v| v != 0.0).then(|| m.to_vec());
        data.use_mean(mean).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    }
    Ok(())
}

impl Weights {
    /// Centres `data` as these weights were trained, if the file says how ([`centre_on`]).
    pub fn centre(&self, data: &mut Prepared) -> Result<()> {
        centre_on(self.stored_mean.as_deref(), data, &self.file)
    }

    /// Every way these weights differ from `model`'s parameters and buffers, one line each.
    pub fn mismatches(&self, model: &dyn Model) -> Vec<String> {
        let p = self.prefix;
        let mut out = Vec::new();
        let mut wanted = BTreeSet::new();
        let store = model.params();
        for (name, var) in store.vars().iter().chain(store.buffers()) {
            wanted.insert(format!("{p}{name}"));
            match self.tensors.get(&format!("{p}{name}")) {
                None => out.push(format!("missing `{name}` {:?}", var.dims())),
                Some(t) if t.dims() != var.dims() => {
                    out.push(format!("`{name}` has shape {:?}, the model's is {:?}", t.dims(), var.dims()))
                }
                Some(_) => {}
            }
        }
        let mut extra: Vec<_> = self
            .tensors
            .keys()
            .filter(|k| !wanted.contains(*k) && k.starts_with(p))
            .filter(|k| !(k.starts_with("opt.") || k.starts_with("meta.") || *k == MEAN_KEY || *k == EXPORT_MEAN_KEY))
            .collect();
        extra.sort();
        out.extend(extra.into_iter().map(|k| format!("unexpected `{}` (not in the model)", &k[p.len()..])));
        out
    }

    /// Copies the weights into `model` (`spec` names it in errors), or fails listing every
    /// mismatch.
    pub fn load_into(&self, model: &dyn Model, spec: &str) -> Result<()> {
        let bad = self.mismatches(model);
        if !bad.is_empty() {
            let also = match &self.card {
                Some(c) => format!(" (they are a {} for {:?} inputs, {} classes)", c.model, c.input_shape, c.classes),
                None => String::new(),
            };
            bail!(
                "{}: these weights do not fit the model {spec}{also}:\n  {}\nuse the same model spec (and a dataset of the same shape) as the run that wrote them",
                self.file.display(),
                bad.join("\n  ")
            );
        }
        model.params().load_tensors(&self.tensors, self.prefix)
    }
}
