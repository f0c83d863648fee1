//! `amm train` (a run from flags) and `amm run FILE.amm` (every cell of an experiment).
use super::flags::Common;
use amm_core::anyhow::{bail, Result};
use amm_core::dsl;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Dataset [default: digits]: NAME or NAME:PATH (digits, fashion-mnist[:DIR], mnist:DIR, cifar10:DIR, cifar100:DIR, svhn:DIR, csv:DIR, toy2d).
    #[arg(long)]
    data: Option<String>,
    /// Model: a name or a call, e.g. `mlp(widths=[256, 256])` [default: mlp].
    #[arg(long)]
    model: Option<String>,
    /// Regularizer pipeline, or `none`; `{a, b}` alternatives make a grid [default: none].
    #[arg(long)]
    reg: Option<String>,
    /// Training epochs (train.epochs) [default: 10].
    #[arg(long)]
    epochs: Option<usize>,
    /// Mini-batch size (train.batch) [default: 100].
    #[arg(long)]
    batch: Option<usize>,
    /// Initial learning rate (train.lr) [default: 0.01].
    #[arg(long)]
    lr: Option<f64>,
    /// The seed (or the first of --seeds) [default: 0].
    #[arg(long)]
    seed: Option<u64>,
    /// Run N seeds: seed, seed+1, ...
    #[arg(long)]
    seeds: Option<u64>,
    /// Classification loss: ce, hinge or none (train.loss) [default: ce].
    #[arg(long)]
    loss: Option<String>,
    /// Training images used, a class-balanced seeded subset (data.train_size) [default: all].
    #[arg(long)]
    train_size: Option<usize>,
    /// Fraction of training labels replaced by random labels (data.label_noise) [default: 0].
    #[arg(long)]
    label_noise: Option<f64>,
    /// Output folder [default: runs/<data>-<model>-<reg>-<hash of the spec>, printed at the start].
    #[arg(long)]
    out: Option<String>,
    /// Start from these weights (fine-tuning): a run directory, a checkpoint, or exported
    /// weights.safetensors (also from PyTorch); the optimizer starts fresh.
    #[arg(long, value_name = "PATH")]
    init: Option<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// The experiment file.
    file: PathBuf,
    #[command(flatten)]
    common: Common,
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The overrides the flags of `amm train` stand for.
fn overrides(a: &TrainArgs) -> Vec<String> {
    let mut o = Vec::new();
    if let Some(d) = &a.data {
        let (name, path) = match d.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (d.as_str(), None),
        };
        o.push(format!("data.name={}", quote(name)));
        if let Some(p) = path {
            o.push(format!("data.path={}", quote(p)));
        }
    }
    if let Some(m) = &a.model {
        o.push(format!("model.arch={m}"));
    }
    if let Some(r) = &a.reg {
        o.push(format!("reg.pipeline={r}"));
    }
    let mut num = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            o.push(format!("{k}={v}"));
        }
    };
    num("train.epochs", a.epochs.map(|v| v.to_string()));
    num("train.batch", a.batch.map(|v| v.to_string()));
    num("train.lr", a.lr.map(|v| format!("{v:?}")));
    num("train.loss", a.loss.clone());
    num("data.train_size", a.train_size.map(|v| v.to_string()));
    num("data.label_noise", a.label_noise.map(|v| format!("{v:?}")));
    let first = a.seed.unwrap_or(0);
    match a.seeds {
        Some(n) => {
            num("experiment.seeds", Some(format!("[{}]", (first..first + n.max(1)).map(|s| s.to_string()).collect::<Vec<_>>().join(", "))))
        }
        None => num("experiment.seeds", a.seed.map(|s| format!("[{s}]"))),
    }
    if let Some(out) = &a.out {
        o.push(format!("experiment.out={}", quote(out)));
    }
    if let Some(init) = &a.init {
        o.push(format!("train.init={}", quote(init)));
    }
    o
}

pub fn train(a: TrainArgs) -> Result<ExitCode> {
    let reg = super::host::registry();
    let mut o = overrides(&a);
    o.extend(a.common.set.iter().cloned());
    let mut grid = dsl::experiment_from_overrides(&o, &reg).map_err(|d| amm_core::anyhow::anyhow!("{d}"))?;
    let out_given = a.out.is_some() || a.common.set.iter().any(|s| s.trim_start().starts_with("experiment.out"));
    if !out_given {
        let out = default_out(&grid);
        for c in &mut grid.cells {
            c.config.out = out.clone();
        }
    }
    super::grid::execute(&grid, &a.common)
}

/// `runs/<data>-<model>-<reg>-<hash>`: a folder per distinct run, so a second `amm train` with
/// other flags never collides with the first, and the same flags find their folder again
/// (`--resume`). The hash covers every cell's spec.
fn default_out(grid: &dsl::Grid) -> String {
    let Some(first) = grid.cells.first() else { return "runs/run".into() };
    let cfg = &first.config;
    let word = |s: &str| s.split(['(', ' ']).next().unwrap_or("").to_string();
    let reg = if grid.cells.len() > 1 {
        "grid".to_string()
    } else {
        match &cfg.reg {
            None => "ce".into(),
            Some(p) => {
                p.to_string().split("|>").map(|st| word(st.trim())).filter(|w| !w.is_empty() && w != "weight").collect::<Vec<_>>().join("-")
            }
        }
    };
    let ids: Vec<_> =
        grid.cells.iter().map(|c| amm_core::rundir::identity(&amm_core::serde_json::to_value(&c.config).unwrap_or_default())).collect();
    let hash = super::cells::short_hash(&amm_core::serde_json::to_string(&ids).unwrap_or_default());
    format!("runs/{}-{}-{reg}-{hash}", cfg.data.name, word(&cfg.model.to_string()))
}

pub fn run(a: RunArgs) -> Result<ExitCode> {
    let reg = super::host::registry();
    if !a.file.exists() {
        bail!("{}: no such file", a.file.display());
    }
    let grid = dsl::load_experiment(&a.file, &a.common.set, &reg).map_err(|d| amm_core::anyhow::anyhow!("{d}"))?;
    super::grid::execute(&grid, &a.common)
}
