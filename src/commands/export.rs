//! `amm export RUN --format onnx|pytorch --out PATH`: a trained model for other tools, with its
//! preprocessing inside (raw inputs in, logits out) and, by default, the first test samples with
//! amm's logits so the port can be checked (docs/INTEROP.md).
use super::saved::{load_weights, LoadedWeights};
use amm_core::anyhow::Result;
use amm_core::card::ModelCard;
use amm_core::export::{pytorch, Exportable};
use amm_core::{train, Ctx};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Format {
    /// An ONNX model (opset 13): input `input` (N, C, H, W) raw, output `logits`.
    Onnx,
    /// A folder with model.py, config.json, weights.safetensors and a README.
    Pytorch,
}

#[derive(clap::Args)]
pub struct Args {
    /// A run directory, a checkpoint inside one, or weights with amm's metadata.
    path: PathBuf,
    /// onnx or pytorch.
    #[arg(long)]
    format: Format,
    /// The .onnx file, or the folder of a PyTorch export.
    #[arg(long)]
    out: PathBuf,
    /// Export the run's best checkpoint on the validation split instead of its last one.
    #[arg(long)]
    best: bool,
    /// The model of a weights file that does not name it, e.g. `lenet`.
    #[arg(long)]
    model: Option<String>,
    /// Store the first N test inputs with amm's logits beside the export (0 = none), for
    /// `tools/interop/check.py`; they need the run's dataset.
    #[arg(long, default_value_t = 64, value_name = "N")]
    samples: usize,
    /// The dataset of those samples: NAME or NAME:PATH [default: the run's].
    #[arg(long)]
    data: Option<String>,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let reg = super::host::registry();
    // The data gives the input shape and classes (and the samples): the dataset must be there.
    let LoadedWeights { cfg, weights, data, model, .. } =
        load_weights(&a.path, a.best, a.model.as_deref(), a.data.as_deref(), &reg, &amm_core::candle_core::Device::Cpu)?;
    let epoch = weights.card.as_ref().map_or(0, |c| c.epoch);
    let card = ModelCard::new(&cfg.model, &data.shape, data.classes, &data.name, data.mean.is_some(), epoch);
    let e = Exportable { model: model.as_ref(), card, arch: &cfg.model, mean: data.mean.clone() };
    let samples = if a.samples > 0 { Some(samples(&e, &data, a.samples, train::dtype_of(&cfg))?) } else { None };
    match a.format {
        Format::Onnx => {
            e.write_onnx(&a.out)?;
            println!("wrote {} ({}, input (N, {}), output logits (N, {}))", a.out.display(), cfg.model, dims(&data.shape), data.classes);
            if let Some(s) = &samples {
                let f = samples_path(&a.out);
                pytorch::write_samples(s, &f)?;
                println!("wrote {} ({} test samples with amm's logits)", f.display(), s.labels.len());
            }
        }
        Format::Pytorch => {
            pytorch::write(&e, samples.as_ref(), &a.out)?;
            println!(
                "wrote {}/{{model.py, {}, {}, README.md{}}}",
                a.out.display(),
                pytorch::CONFIG,
                pytorch::WEIGHTS,
                if samples.is_some() { ", samples.safetensors" } else { "" }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn dims(shape: &[usize]) -> String {
    shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
}

/// `model.onnx` → `model.samples.safetensors`.
pub fn samples_path(onnx: &Path) -> PathBuf {
    onnx.with_extension("samples.safetensors")
}

/// The first `n` test samples, raw, with the model's logits.
fn samples(e: &Exportable, data: &amm_core::data::Prepared, n: usize, dtype: amm_core::candle_core::DType) -> Result<pytorch::Samples> {
    use amm_core::candle_core::Tensor;
    let n = n.min(data.test.len());
    let d = data.dim();
    let mut shape = vec![n];
    shape.extend_from_slice(&data.shape);
    let centred = &data.test.x[..n * d];
    let raw: Vec<f32> = match &data.mean {
        Some(m) => centred.chunks(d).flat_map(|row| row.iter().zip(m).map(|(x, m)| x + m)).collect(),
        None => centred.to_vec(),
    };
    let dev = amm_core::candle_core::Device::Cpu;
    let x = Tensor::from_slice(centred, shape.as_slice(), &dev)?.to_dtype(dtype)?;
    let logits = e.model.forward(&x, &Ctx::eval(n))?.logits;
    Ok(pytorch::Samples {
        inputs: Tensor::from_vec(raw, shape, &dev)?,
        labels: data.test.y[..n].to_vec(),
        logits,
        indices: (0..n).collect(),
    })
}
