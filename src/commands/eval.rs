//! `amm eval RUN_DIR|CHECKPOINT [--data NAME[:PATH]] [--json]`: test error and margins of a saved
//! model.
use amm_core::anyhow::{bail, Context, Result};
use amm_core::dsl::{self, RunConfig};
use amm_core::eval::evaluate;
use amm_core::rundir;
use amm_core::serde_json;
use amm_core::train;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// A run directory, or a checkpoint (.safetensors) inside one.
    path: PathBuf,
    /// Evaluate on another dataset of the same shape: NAME or NAME:PATH.
    #[arg(long)]
    data: Option<String>,
    /// Use the best checkpoint on the validation split instead of the last one.
    #[arg(long)]
    best: bool,
    /// DeepFool iterations for the margin.
    #[arg(long)]
    iters: Option<usize>,
    /// Iterations of the longer attack (0 = skip).
    #[arg(long)]
    long_iters: Option<usize>,
    /// First N test samples only.
    #[arg(long)]
    samples: Option<usize>,
    #[arg(long)]
    json: bool,
    #[arg(long, default_value = "cpu")]
    device: String,
}

fn locate(path: &Path, best: bool) -> Result<(PathBuf, PathBuf)> {
    if path.is_dir() {
        let ck = path.join(if best { rundir::BEST } else { rundir::LAST });
        if best && !ck.exists() && path.join(rundir::LAST).exists() {
            bail!("{}: this run has no best checkpoint: it had no validation split (set data.val_size)", path.display());
        }
        if !ck.exists() {
            bail!("{}: no checkpoint {} (is this a run directory?)", path.display(), ck.display());
        }
        Ok((path.to_path_buf(), ck))
    } else if path.is_file() {
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        Ok((dir, path.to_path_buf()))
    } else {
        bail!("{}: no such run directory or checkpoint", path.display())
    }
}

pub fn run(a: Args) -> Result<ExitCode> {
    let reg = super::registry();
    let (dir, ck) = locate(&a.path, a.best)?;
    let spec_path = dir.join(rundir::SPEC);
    let mut cfg: RunConfig = serde_json::from_str(
        &std::fs::read_to_string(&spec_path).with_context(|| format!("{}: the run's spec is missing", spec_path.display()))?,
    )
    .with_context(|| format!("{} is not a run spec", spec_path.display()))?;
    if let Some(d) = &a.data {
        let (name, path) = d.split_once(':').map_or((d.as_str(), None), |(n, p)| (n, Some(p.to_string())));
        if dsl::Catalog::schema(&reg, dsl::Kind::Dataset, name).is_none() {
            bail!("unknown dataset `{name}` (see `amm list`)");
        }
        cfg.data.name = name.to_string();
        cfg.data.path = path;
    }
    let device = super::device(&a.device)?;
    let data = train::load_data(&cfg, &reg)?;
    let model = train::build_model(&cfg, &reg, &data, &device)?;
    let tensors = rundir::load_tensors(&ck)?;
    model.params().load_tensors(&tensors, "model.")?;
    let mut opts = train::eval_options(&cfg);
    if let Some(i) = a.iters {
        opts.iters = i;
    }
    if let Some(i) = a.long_iters {
        opts.long_iters = i;
    }
    if let Some(s) = a.samples {
        opts.samples = s;
    }
    let m = evaluate(model.as_ref(), &data.test, &data.shape, train::dtype_of(&cfg), &device, &opts)?;
    if a.json {
        let mut v = serde_json::to_value(&m)?;
        let o = v.as_object_mut().expect("object");
        o.insert("test_error".into(), m.error.into());
        o.insert("checkpoint".into(), ck.display().to_string().into());
        println!("{v}");
    } else {
        println!("{} on {} ({} test samples)", ck.display(), cfg.data.name, m.samples);
        println!("test error      {:.2}%", 100.0 * m.error);
        println!(
            "margin (DF-{})   mean {:.4}  median {:.4}  min {:.4}  rho/||x|| {:.4}  success {:.1}%",
            opts.iters,
            m.margin,
            m.margin_median,
            m.margin_min,
            m.margin_rel,
            100.0 * m.attack_success
        );
        if let Some(l) = m.margin_long {
            println!("margin (DF-{})  mean {:.4}", opts.long_iters, l);
        }
    }
    Ok(ExitCode::SUCCESS)
}
