//! What a checkpoint carries besides its weights, so that the weights can be used alone: the model
//! spec, the input shape, the classes, the preprocessing (the subtracted mean is stored as the
//! tensor [`MEAN_KEY`]), the dataset, amm's version and the epoch. It is written into the
//! safetensors metadata of every checkpoint (and of exported weights) under `amm.*` keys; files
//! written before it existed simply have no card.
use crate::dsl::{StageSpec, Value};
use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;

/// The tensor holding the per-feature mean subtracted from the raw inputs (shape = input shape).
pub const MEAN_KEY: &str = "preprocess.mean";

/// The self-description of a saved model.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelCard {
    /// The model as spec text, e.g. `mlp(widths=[800, 800], act=relu, dropout=0)`.
    pub model: String,
    /// Per-sample input shape.
    pub input_shape: Vec<usize>,
    pub classes: usize,
    /// The dataset it was trained on.
    pub dataset: String,
    /// Whether the inputs are centred on the stored mean before the network sees them.
    pub mean_subtracted: bool,
    /// The amm that wrote it.
    pub amm_version: String,
    /// Epochs trained.
    pub epoch: usize,
}

const KEYS: [&str; 7] = ["amm.model", "amm.input_shape", "amm.classes", "amm.dataset", "amm.preprocess", "amm.version", "amm.epoch"];

impl ModelCard {
    /// The card of a run's model after `epoch` epochs.
    pub fn new(model: &StageSpec, input_shape: &[usize], classes: usize, dataset: &str, mean_subtracted: bool, epoch: usize) -> Self {
        Self {
            model: model.to_string(),
            input_shape: input_shape.to_vec(),
            classes,
            dataset: dataset.to_string(),
            mean_subtracted,
            amm_version: env!("CARGO_PKG_VERSION").to_string(),
            epoch,
        }
    }

    /// The safetensors metadata entries.
    pub fn to_metadata(&self) -> HashMap<String, String> {
        let shape = serde_json::to_string(&self.input_shape).unwrap_or_default();
        let pre = if self.mean_subtracted { "subtract-mean" } else { "none" };
        let values = [
            self.model.clone(),
            shape,
            self.classes.to_string(),
            self.dataset.clone(),
            pre.into(),
            self.amm_version.clone(),
            self.epoch.to_string(),
        ];
        KEYS.iter().map(|k| k.to_string()).zip(values).collect()
    }

    /// The card in `meta` (`what` names the file in errors); `None` for files without one.
    pub fn from_metadata(meta: &HashMap<String, String>, what: &str) -> Result<Option<Self>> {
        if !meta.contains_key("amm.model") {
            return Ok(None);
        }
        let get = |k: &str| meta.get(k).with_context(|| format!("{what}: its metadata has `amm.model` but no `{k}`"));
        let bad = |k: &str| format!("{what}: metadata `{k}` is not valid");
        Ok(Some(Self {
            model: get("amm.model")?.clone(),
            input_shape: serde_json::from_str(get("amm.input_shape")?).with_context(|| bad("amm.input_shape"))?,
            classes: get("amm.classes")?.parse().with_context(|| bad("amm.classes"))?,
            dataset: get("amm.dataset")?.clone(),
            mean_subtracted: match get("amm.preprocess")?.as_str() {
                "subtract-mean" => true,
                "none" => false,
                other => anyhow::bail!("{what}: unknown preprocessing `{other}` (this amm knows subtract-mean and none)"),
            },
            amm_version: get("amm.version")?.clone(),
            epoch: get("amm.epoch")?.parse().with_context(|| bad("amm.epoch"))?,
        }))
    }
}

/// The mean as a tensor of the input's shape (zeros when nothing is subtracted).
pub fn mean_tensor(mean: Option<&[f32]>, input_shape: &[usize]) -> Result<Tensor> {
    let d: usize = input_shape.iter().product();
    let v = mean.map_or_else(|| vec![0f32; d], <[f32]>::to_vec);
    anyhow::ensure!(v.len() == d, "the input mean has {} features, the input shape {input_shape:?} has {d}", v.len());
    Ok(Tensor::from_vec(v, input_shape, &Device::Cpu)?)
}

/// The mean stored under `key` in `tensors`, as a flat vector.
pub fn stored_mean(tensors: &HashMap<String, Tensor>, key: &str) -> Result<Option<Vec<f32>>> {
    tensors.get(key).map(|t| Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)).transpose()
}

/// A model's arguments as JSON (for `config.json` of a PyTorch export).
pub fn args_json(model: &StageSpec) -> serde_json::Value {
    fn value(v: &Value) -> serde_json::Value {
        match v {
            Value::Int(i) => (*i).into(),
            Value::Float(x) => (*x).into(),
            Value::Bool(b) => (*b).into(),
            Value::Ident(s) | Value::Str(s) => s.clone().into(),
            Value::List(l) => l.iter().map(value).collect(),
        }
    }
    model.args.iter().map(|(k, v)| (k.to_string(), value(v))).collect::<serde_json::Map<_, _>>().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metadata_round_trips_and_old_files_have_no_card() {
        let card = ModelCard {
            model: "mlp(widths=[800, 800], act=relu, dropout=0)".into(),
            input_shape: vec![1, 28, 28],
            classes: 10,
            dataset: "fashion-mnist".into(),
            mean_subtracted: true,
            amm_version: "0.1.0".into(),
            epoch: 40,
        };
        let meta = card.to_metadata();
        assert_eq!(meta["amm.input_shape"], "[1,28,28]");
        assert_eq!(ModelCard::from_metadata(&meta, "f").unwrap(), Some(card));
        assert_eq!(ModelCard::from_metadata(&HashMap::new(), "f").unwrap(), None);
        let mut broken = meta.clone();
        broken.insert("amm.preprocess".into(), "whiten".into());
        assert!(ModelCard::from_metadata(&broken, "f.safetensors")
            .unwrap_err()
            .to_string()
            .contains("f.safetensors: unknown preprocessing `whiten`"));
    }

    #[test]
    fn the_mean_tensor_has_the_input_shape() {
        let t = mean_tensor(Some(&[1.0, 2.0, 3.0, 4.0]), &[1, 2, 2]).unwrap();
        assert_eq!(t.dims(), &[1, 2, 2]);
        assert_eq!(mean_tensor(None, &[3]).unwrap().to_vec1::<f32>().unwrap(), vec![0.0; 3]);
        assert!(mean_tensor(Some(&[1.0]), &[2]).is_err());
    }
}
