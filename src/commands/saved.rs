//! A saved run as `amm eval`, `amm export` and `amm gradcheck` open it: its spec, folder and
//! checkpoint (or weights alone), and `--data NAME[:PATH]` to look at it on other data.
use amm_core::anyhow::{bail, Context, Result};
use amm_core::candle_core::Device;
use amm_core::data::Prepared;
use amm_core::dsl::{self, RunConfig};
use amm_core::init::Weights;
use amm_core::{rundir, serde_json, train, Model, Registry};
use std::path::{Path, PathBuf};

/// A run directory's spec with the checkpoint to load.
pub struct SavedRun {
    pub cfg: RunConfig,
    /// The run directory.
    pub dir: PathBuf,
    pub checkpoint: PathBuf,
}

/// Opens a run directory (its last checkpoint, or its best with `best`) or a checkpoint inside one.
pub fn open_run(path: &Path, best: bool) -> Result<SavedRun> {
    let (dir, checkpoint) = if path.is_dir() {
        let ck = path.join(if best { rundir::BEST } else { rundir::LAST });
        if best && !ck.exists() && path.join(rundir::LAST).exists() {
            bail!("{}: this run has no best checkpoint: it had no validation split (set data.val_size)", path.display());
        }
        if !ck.exists() {
            bail!("{}: no checkpoint {} (is this a run directory?)", path.display(), ck.display());
        }
        (path.to_path_buf(), ck)
    } else if path.is_file() {
        (path.parent().unwrap_or(Path::new(".")).to_path_buf(), path.to_path_buf())
    } else {
        bail!("{}: no such run directory or checkpoint", path.display())
    };
    let spec_path = dir.join(rundir::SPEC);
    let cfg = serde_json::from_str(
        &std::fs::read_to_string(&spec_path).with_context(|| format!("{}: the run's spec is missing", spec_path.display()))?,
    )
    .with_context(|| format!("{} is not a run spec", spec_path.display()))?;
    Ok(SavedRun { cfg, dir, checkpoint })
}

/// Weights with the run they belong to, loaded into their model, and the data centred as they
/// were trained: what `amm eval` and `amm export` work on.
pub struct LoadedWeights {
    pub cfg: RunConfig,
    /// The run directory (or the folder of a weights file alone).
    pub dir: PathBuf,
    pub weights: Weights,
    pub data: Prepared,
    pub model: Box<dyn Model>,
}

/// Loads weights to evaluate or export: a run (directory, or checkpoint inside one, with its
/// spec), or a weights file alone (exported, or changed in PyTorch) whose model comes from its
/// card or from `model` (`--model`), and whose dataset from its card or `data` (`--data`, which
/// also points a run at other data of the same shape).
pub fn load_weights(
    path: &Path,
    best: bool,
    model: Option<&str>,
    data: Option<&str>,
    reg: &Registry,
    device: &Device,
) -> Result<LoadedWeights> {
    let is_run = path.is_dir() || path.parent().unwrap_or(Path::new(".")).join(rundir::SPEC).is_file();
    let (mut cfg, dir, weights) = if is_run && !(path.is_dir() && path.join("weights.safetensors").is_file()) {
        if model.is_some() {
            bail!("--model is for a weights file alone: {} is part of a run, which knows its model", path.display());
        }
        let run = open_run(path, best)?;
        (run.cfg, run.dir, amm_core::init::read(&run.checkpoint)?)
    } else {
        let weights = amm_core::init::read(path)?;
        let cfg = config_of_weights(&weights, model, data, reg)?;
        (cfg, weights.file.parent().unwrap_or(Path::new(".")).to_path_buf(), weights)
    };
    if let Some(d) = data {
        (cfg.data.name, cfg.data.path) = data_spec(d, reg)?;
    }
    let mut prepared =
        train::load_data(&cfg, reg).with_context(|| format!("loading {}, the dataset of {}", cfg.data.name, weights.file.display()))?;
    let built = train::build_model(&cfg, reg, &prepared, device)?;
    weights.load_into(built.as_ref(), &cfg.model.to_string())?;
    weights.centre(&mut prepared)?;
    Ok(LoadedWeights { cfg, dir, weights, data: prepared, model: built })
}

/// The run config of weights without a run: the model and dataset of their card, or the flags.
fn config_of_weights(weights: &Weights, model: Option<&str>, data: Option<&str>, reg: &Registry) -> Result<RunConfig> {
    let file = &weights.file;
    let card = weights.card.as_ref();
    let model = match (model, card) {
        (Some(m), _) => m.to_string(),
        (None, Some(c)) => c.model.clone(),
        (None, None) => bail!(
            "{}: these weights do not say which model they belong to (no amm metadata): give it with --model, e.g. --model lenet",
            file.display()
        ),
    };
    let dataset = match (data, card) {
        (Some(d), _) => d.to_string(),
        (None, Some(c)) => c.dataset.clone(),
        (None, None) => bail!("{}: give the dataset to evaluate on with --data NAME[:PATH]", file.display()),
    };
    let (name, dpath) = data_spec(&dataset, reg)?;
    let mut o = vec![format!("model.arch={model}"), format!("data.name=\"{name}\"")];
    if let Some(p) = dpath {
        o.push(format!("data.path=\"{}\"", p.replace('\\', "\\\\").replace('"', "\\\"")));
    }
    let grid = dsl::experiment_from_overrides(&o, reg).map_err(|d| amm_core::anyhow::anyhow!("{d}"))?;
    Ok(grid.cells.into_iter().next().context("no run")?.config)
}

/// `NAME` or `NAME:PATH` of a registered dataset.
pub fn data_spec(spec: &str, reg: &Registry) -> Result<(String, Option<String>)> {
    let (name, path) = spec.split_once(':').map_or((spec, None), |(n, p)| (n, Some(p.to_string())));
    if dsl::Catalog::schema(reg, dsl::Kind::Dataset, name).is_none() {
        bail!("unknown dataset `{name}` (see `amm list`)");
    }
    Ok((name.to_string(), path))
}
