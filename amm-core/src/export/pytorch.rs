//! PyTorch export: a folder with `model.py` (plain `torch.nn.Module`s, one per built-in
//! architecture, written by hand from the paper's descriptions and checked against amm's outputs),
//! `config.json` (which one, with which arguments), `weights.safetensors` (amm's parameter names
//! without the `model.` prefix, plus the `input_mean` buffer), optional `samples.safetensors`
//! (raw test inputs with amm's logits, to check a port) and a README with the lines that load it.
use super::Exportable;
use crate::init::EXPORT_MEAN_KEY;
use anyhow::Result;
use candle_core::{DType, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// The PyTorch modules, written next to the weights.
pub const MODEL_PY: &str = include_str!("model.py");
pub const WEIGHTS: &str = "weights.safetensors";
pub const SAMPLES: &str = "samples.safetensors";
pub const CONFIG: &str = "config.json";

/// Test inputs with amm's outputs on them.
pub struct Samples {
    /// Raw inputs `(N, input_shape...)`, before any mean subtraction.
    pub inputs: Tensor,
    pub labels: Vec<u32>,
    /// amm's logits `(N, classes)`.
    pub logits: Tensor,
    /// Their indices in the test set.
    pub indices: Vec<usize>,
}

/// The weights as a PyTorch `state_dict`: float32, names without prefix, plus `input_mean`.
pub fn state_dict(e: &Exportable) -> Result<HashMap<String, Tensor>> {
    let mut t: HashMap<String, Tensor> =
        e.model.params().tensors().into_iter().map(|(k, v)| Ok((k, v.to_dtype(DType::F32)?))).collect::<Result<_>>()?;
    t.insert(EXPORT_MEAN_KEY.into(), e.mean_tensor()?);
    Ok(t)
}

/// Writes the export folder `dir`.
pub fn write(e: &Exportable, samples: Option<&Samples>, dir: &Path) -> Result<()> {
    // Refuse what PyTorch could not rebuild before writing anything.
    e.graph()?;
    std::fs::create_dir_all(dir).map_err(|err| crate::rundir::io_error(err, format_args!("creating {}", dir.display())))?;
    let c = &e.card;
    let config = serde_json::json!({
        "model": e.arch.name,
        "args": crate::card::args_json(e.arch),
        "spec": c.model,
        "input_shape": c.input_shape,
        "classes": c.classes,
        "dataset": c.dataset,
        "mean_subtracted": c.mean_subtracted,
        "amm_version": c.amm_version,
        "epoch": c.epoch,
    });
    crate::rundir::write_json(&dir.join(CONFIG), &config)?;
    crate::rundir::save_tensors_with(&dir.join(WEIGHTS), &state_dict(e)?, &c.to_metadata())?;
    crate::rundir::write_atomic(&dir.join("model.py"), MODEL_PY.as_bytes())?;
    if let Some(s) = samples {
        write_samples(s, &dir.join(SAMPLES))?;
    }
    crate::rundir::write_atomic(&dir.join("README.md"), readme(e, samples.is_some()).as_bytes())
}

/// Writes `inputs` (F32), `logits` (F32), `labels` and `indices` (I64) to `path`.
pub fn write_samples(s: &Samples, path: &Path) -> Result<()> {
    let n = s.labels.len();
    let dev = &candle_core::Device::Cpu;
    let mut t = HashMap::new();
    t.insert("inputs".to_string(), s.inputs.to_dtype(DType::F32)?);
    t.insert("logits".to_string(), s.logits.to_dtype(DType::F32)?);
    t.insert("labels".to_string(), Tensor::from_vec(s.labels.iter().map(|&l| l as i64).collect::<Vec<_>>(), n, dev)?);
    t.insert("indices".to_string(), Tensor::from_vec(s.indices.iter().map(|&i| i as i64).collect::<Vec<_>>(), n, dev)?);
    crate::rundir::save_tensors(path, &t)
}

fn readme(e: &Exportable, samples: bool) -> String {
    let c = &e.card;
    let check = if samples {
        format!(
            "\n`{SAMPLES}` holds the first test inputs (raw) with the logits amm computed; \
             `python tools/interop/check.py torch .` (in amm's repository) compares PyTorch's with them.\n"
        )
    } else {
        String::new()
    };
    format!(
        "# {} exported by amm {}\n\n\
         `{}` trained on {} for {} epochs. Inputs: raw `(N, {})` float32 (pixels in [0, 1]); \
         the module subtracts `input_mean` itself. Output: logits `(N, {})`.\n\n\
         ```python\n\
         import json, model, safetensors.torch\n\
         net = model.build(json.load(open(\"{CONFIG}\"))).eval()\n\
         net.load_state_dict(safetensors.torch.load_file(\"{WEIGHTS}\"), strict=True)\n\
         ```\n{check}\n\
         Weights changed in PyTorch come back into amm with \
         `safetensors.torch.save_file(net.state_dict(), \"new.safetensors\")`, then \
         `amm eval new.safetensors --data {}` or `amm train --init new.safetensors ...`.\n",
        e.arch.name,
        c.amm_version,
        c.model,
        c.dataset,
        c.epoch,
        c.input_shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "),
        c.classes,
        c.dataset,
    )
}
