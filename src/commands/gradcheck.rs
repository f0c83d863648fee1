//! `amm gradcheck`: the regularizer's weight gradient against central finite differences of its
//! value recomputed from scratch, with the second-order share (`hog`) and the chain share
//! measured. On random inputs and fresh weights (`--model`), or on a trained model and real data
//! (`--run DIR` or `--weights FILE`, `--data SPEC`, the first `--batch` training samples).
use super::saved::{data_spec, open_run};
use amm_core::anyhow::{anyhow, bail, Context, Result};
use amm_core::candle_core::{DType, Device, Tensor};
use amm_core::data::Rng;
use amm_core::dsl::{self, RunConfig};
use amm_core::gradcheck::{gradcheck, random_batch, GradcheckOptions, GradcheckReport};
use amm_core::model::Model;
use amm_core::{rundir, serde_json, train, Registry};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The model: a name or a call (`mlp(widths=[32, 32])`); with --run, the run's model.
    #[arg(long)]
    model: Option<String>,
    /// The regularizer pipeline [default: the run's, else deepfool(l2, 5) |> avg |> exp(c=2, d=1) |> weight(1)].
    #[arg(long)]
    reg: Option<String>,
    /// A run directory (or a checkpoint inside one): its model, weights, data and pipeline.
    #[arg(long, conflicts_with = "weights")]
    run: Option<PathBuf>,
    /// A weights file (safetensors, names as in checkpoints, with or without `model.`) for --model.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Real data: NAME or NAME:PATH (e.g. fashion-mnist, mnist:DIR); the batch is the first
    /// --batch training samples, prepared as training prepares them (mean subtracted).
    #[arg(long)]
    data: Option<String>,
    /// Samples in the batch.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Precision of the check: f64 (finite differences need it) or f32.
    #[arg(long, default_value = "f64")]
    dtype: String,
    /// Seed of the random model and inputs.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Per-sample input shape for random inputs, e.g. 1x28x28 or 64 (default: a small shape the
    /// model accepts).
    #[arg(long)]
    input: Option<String>,
    /// Classes of a model checked on random inputs.
    #[arg(long, default_value_t = 10)]
    classes: usize,
    /// Entries compared against finite differences, spread over the parameter tensors (at least
    /// one in every tensor).
    #[arg(long, default_value_t = 24)]
    entries: usize,
    /// Largest acceptable ‖FD − analytic‖/‖FD‖ over the checked entries (each entry's own relative
    /// error may be up to 100× this: finite differences of small entries are noisier).
    #[arg(long, default_value_t = 1e-6)]
    tolerance: f64,
    /// Write the regularizer's value and weight gradient (and the batch) to this safetensors
    /// file: `value` (1,), one tensor per parameter named as in checkpoints (`model.fc1.weight`),
    /// `batch.x`, `batch.y`.
    #[arg(long, value_name = "OUT.safetensors")]
    dump: Option<PathBuf>,
    /// Print one JSON object {ok, max_rel_err, hog_rel_diff, chain_rel_diff, checked, ...}.
    #[arg(long)]
    json: bool,
}

const DEFAULT_REG: &str = "deepfool(l2, 5) |> avg |> exp(c=2, d=1) |> weight(1)";

fn default_input(model: &str) -> Vec<usize> {
    match model {
        // The smallest inputs each architecture accepts, so every model checks in seconds.
        "lenet" => vec![1, 16, 16],
        "liunet" => vec![1, 8, 8],
        "convnet" | "nin" | "liunet64" | "liunet96" | "resnet20" | "resnet56" | "resnet" | "densenet40" | "densenet" => vec![3, 8, 8],
        _ => vec![1, 8, 8],
    }
}

/// Loads `file` into the model: names as in checkpoints (`model.` prefix) or bare.
fn load_weights(model: &dyn Model, file: &Path) -> Result<()> {
    let tensors = rundir::load_tensors(file).with_context(|| format!("{}: not a safetensors weights file", file.display()))?;
    let prefix = if tensors.keys().any(|k| k.starts_with("model.")) { "model." } else { "" };
    model.params().load_tensors(&tensors, prefix).with_context(|| format!("loading {}", file.display()))
}

/// The configuration the check runs: the run's (with --data/--reg/--dtype overrides), or one
/// made from the flags.
fn config(a: &Args, reg: &Registry) -> Result<(RunConfig, Option<PathBuf>)> {
    let dtype = match a.dtype.as_str() {
        "f64" | "f32" => a.dtype.clone(),
        d => bail!("--dtype {d}: use f64 or f32"),
    };
    let (mut cfg, ck) = match &a.run {
        Some(path) => {
            if a.model.is_some() {
                bail!("--model: a run has its model; drop --model (or use --weights FILE --model M)");
            }
            let run = open_run(path, false).with_context(|| format!("--run {}", path.display()))?;
            (run.cfg, Some(run.checkpoint))
        }
        None => {
            let Some(model) = &a.model else { bail!("give --model NAME, or --run DIR for a trained model") };
            let mut o = vec![format!("model.arch={model}")];
            if let Some(d) = &a.data {
                let (name, path) = data_spec(d, reg)?;
                o.push(format!("data.name={name}"));
                if let Some(p) = path {
                    o.push(format!("data.path=\"{}\"", p.replace('\\', "\\\\").replace('"', "\\\"")));
                }
            }
            let grid = dsl::experiment_from_overrides(&o, reg).map_err(|d| anyhow!("{d}"))?;
            (grid.cells[0].config.clone(), a.weights.clone())
        }
    };
    if let (Some(_), Some(d)) = (&a.run, &a.data) {
        (cfg.data.name, cfg.data.path) = data_spec(d, reg).with_context(|| format!("--data {d}"))?;
    }
    let pipeline = match (&a.reg, &cfg.reg) {
        (Some(p), _) => p.clone(),
        (None, Some(p)) => p.to_string(),
        (None, None) => DEFAULT_REG.to_string(),
    };
    let grid = dsl::experiment_from_overrides(&[format!("reg.pipeline={pipeline}"), format!("train.dtype={dtype}")], reg)
        .map_err(|d| anyhow!("{d}"))?;
    let base = &grid.cells[0].config;
    if base.reg.is_none() {
        bail!("--reg none has no gradient to check");
    }
    cfg.reg = base.reg.clone();
    cfg.train.dtype = base.train.dtype;
    Ok((cfg, ck))
}

/// The model (with its weights), the batch and where the batch came from.
struct Subject {
    model: Box<dyn Model>,
    x: Tensor,
    y: Vec<u32>,
    what: String,
}

fn model_and_batch(a: &Args, cfg: &RunConfig, ck: Option<&Path>, reg: &Registry) -> Result<Subject> {
    let dtype = train::dtype_of(cfg);
    let real = a.run.is_some() || a.data.is_some();
    if a.batch == 0 {
        bail!("--batch 0: the batch needs at least one sample");
    }
    if real {
        let data = train::load_data(cfg, reg)?;
        let model = train::build_model(cfg, reg, &data, &Device::Cpu)?;
        if let Some(ck) = ck {
            load_weights(model.as_ref(), ck)?;
        }
        let n = a.batch.min(data.train.len());
        if n < a.batch {
            eprintln!("warning: --batch {}: the training split has only {n} samples", a.batch);
        }
        let d = data.train.dim();
        let mut shape = vec![n];
        shape.extend_from_slice(&data.shape);
        let x = Tensor::from_slice(&data.train.x[..n * d], shape, &Device::Cpu)?.to_dtype(dtype)?;
        let y = data.train.y[..n].to_vec();
        let what = format!("the first {n} training samples of {}", cfg.data.name);
        Ok(Subject { model, x, y, what })
    } else {
        let shape = match &a.input {
            Some(s) => s
                .split(['x', ','])
                .map(|d| d.trim().parse::<usize>().map_err(|_| anyhow!("--input {s}: use dimensions like 1x28x28")))
                .collect::<Result<Vec<_>>>()?,
            None => default_input(&cfg.model.name),
        };
        let mut rng = Rng::new(a.seed).fork(1);
        let model = reg.build_model(&cfg.model, &shape, a.classes, &mut rng, dtype, &Device::Cpu)?;
        if let Some(w) = ck {
            load_weights(model.as_ref(), w)?;
        }
        let (x, y) = random_batch(model.as_ref(), a.batch, a.seed)?;
        let x = x.to_dtype(dtype)?;
        let what = format!("{} random inputs of shape {shape:?} ({} classes)", a.batch, a.classes);
        Ok(Subject { model, x, y, what })
    }
}

/// Writes the checked value and gradient (checkpoint names) and the batch.
fn dump(path: &Path, model: &dyn Model, r: &GradcheckReport, x: &Tensor, y: &[u32]) -> Result<()> {
    let mut t: HashMap<String, Tensor> = HashMap::new();
    t.insert("value".into(), Tensor::new(&[r.loss], &Device::Cpu)?);
    for ((name, var), grad) in model.params().vars().iter().zip(&r.gradient) {
        t.insert(format!("model.{name}"), Tensor::from_slice(grad, var.shape(), &Device::Cpu)?);
    }
    t.insert("batch.x".into(), x.to_dtype(DType::F64)?);
    t.insert("batch.y".into(), Tensor::new(y, &Device::Cpu)?);
    rundir::save_tensors(path, &t).with_context(|| format!("--dump {}", path.display()))
}

pub fn run(a: Args) -> Result<ExitCode> {
    let reg = super::host::registry();
    let (cfg, ck) = config(&a, &reg)?;
    let pipeline = cfg.reg.clone().expect("config() requires a pipeline");
    let regularizer = reg.build_regularizer(&pipeline)?;
    let Subject { model, x, y, what } = model_and_batch(&a, &cfg, ck.as_deref(), &reg)?;
    amm_core::autograd::ensure_second_order(model.as_ref(), &x)?;
    let t0 = std::time::Instant::now();
    let r = gradcheck(
        model.as_ref(),
        &regularizer,
        &x,
        &y,
        &GradcheckOptions { seed: a.seed, max_entries: Some(a.entries), ..Default::default() },
    )?;
    if let Some(p) = &a.dump {
        dump(p, model.as_ref(), &r, &x, &y)?;
    }
    let hog_on = pipeline.proxy.args.bool("hog").unwrap_or(false);
    let verdict = Verdict::of(&r, hog_on, a.tolerance);
    if a.json {
        let mut v = serde_json::to_value(&r)?;
        let o = v.as_object_mut().expect("object");
        o.insert("ok".into(), verdict.ok().into());
        o.insert("model".into(), cfg.model.to_string().into());
        o.insert("reg".into(), pipeline.to_string().into());
        o.insert("batch_from".into(), what.into());
        o.insert("dtype".into(), a.dtype.clone().into());
        o.insert("seconds".into(), t0.elapsed().as_secs_f64().into());
        println!("{v}");
    } else {
        print_report(&r, &cfg, &pipeline.to_string(), &what, hog_on);
        if let Some(p) = &a.dump {
            println!("value and gradient written to {}", p.display());
        }
        println!("{} in {:.1} s", if verdict.ok() { "OK" } else { "FAILED" }, t0.elapsed().as_secs_f64());
        verdict.explain(&r, a.tolerance);
    }
    Ok(if verdict.ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// What makes a check pass.
struct Verdict {
    within: bool,
    hog_ok: bool,
    enough: bool,
    regularized: bool,
}

impl Verdict {
    fn of(r: &GradcheckReport, hog_on: bool, tolerance: f64) -> Self {
        let skipped = r.skipped_kinks + r.skipped_decisions;
        Verdict {
            within: r.rel_err <= tolerance && r.max_rel_err <= 100.0 * tolerance,
            // With high-order gradients on, a zero difference means the second-order terms vanished.
            hog_ok: !hog_on || r.hog_rel_diff > 1e-8,
            // Flips are rare; many of them would make the check meaningless.
            enough: r.checked > 0 && skipped * 5 <= r.checked + skipped,
            // A batch where nothing was regularized checks nothing.
            regularized: r.selected > 0,
        }
    }
    fn ok(&self) -> bool {
        self.within && self.hog_ok && self.enough && self.regularized
    }
    fn explain(&self, r: &GradcheckReport, tolerance: f64) {
        if !self.regularized {
            eprintln!("error: no sample of this batch was regularized (every attack failed or was filtered), so nothing was checked; try another --seed or a larger --batch");
        }
        if !self.within {
            eprintln!(
                "error: the gradient differs from finite differences of the value by {:.3e} (worst entry {:.3e}; tolerance {tolerance:e}, {:.0e} per entry): it is not the derivative of the regularizer",
                r.rel_err,
                r.max_rel_err,
                100.0 * tolerance
            );
        }
        if !self.hog_ok {
            eprintln!("error: the second-order terms vanished (hog=true but g equals the hog=false gradient)");
        }
        if !self.enough {
            eprintln!(
                "error: {} entries checked, {} skipped: too few to conclude; try another --seed or more --entries",
                r.checked,
                r.skipped_kinks + r.skipped_decisions
            );
        }
    }
}

/// Why fewer samples than the batch enter the regularizer (AVG promises every sample).
fn why_fewer(r: &GradcheckReport, pipeline: &str) -> &'static str {
    if r.selected >= r.batch {
        ""
    } else if pipeline.contains("min(") {
        " (MIN keeps the per-class extremes, and failed=drop leaves out samples DeepFool did not flip)"
    } else if pipeline.contains("failed=keep") {
        " (samples without a finite margin are left out)"
    } else {
        " (AVG takes every sample DeepFool flipped within its iterations; failed=drop, the default, leaves out the others: failed=keep keeps them)"
    }
}

fn print_report(r: &GradcheckReport, cfg: &RunConfig, pipeline: &str, what: &str, hog_on: bool) {
    println!("model {} on {what}; reg {pipeline}", cfg.model);
    println!(
        "batch {}: {} of the {} samples regularized{}, {} DeepFool iterations, value {:.10}",
        r.batch,
        r.selected,
        r.batch,
        why_fewer(r, pipeline),
        r.iterations,
        r.loss
    );
    println!(
        "checked {} weight-gradient entries against central differences of the value recomputed from scratch: rel err {:.3e} (worst entry {:.3e})",
        r.checked, r.rel_err, r.max_rel_err
    );
    for (name, n, e) in &r.tensors {
        println!("  {name:<28} {n:>3} entries  max rel err {e:.3e}");
    }
    if r.skipped_decisions > 0 {
        println!("  {} entries skipped: a discrete decision (class, active samples, selection, clip) flips within ±h", r.skipped_decisions);
    }
    if r.skipped_kinks > 0 {
        println!("  {} entries skipped: ±h crossed a ReLU/max-pool kink (finite differences at h and h/2 disagree)", r.skipped_kinks);
    }
    if let Some((name, i, fd, an)) = &r.worst {
        println!("  worst: {name}[{i}]: finite differences {fd:.10e}, analytic {an:.10e}");
    }
    println!("second-order share ‖g − g(hog=false)‖/‖g‖ = {:.3e}{}", r.hog_rel_diff, if hog_on { "" } else { " (hog=false: expected 0)" });
    if let Some(c) = r.chain_rel_diff {
        let none = pipeline.contains("chain=none");
        println!("chain share ‖g − g(chain=none)‖/‖g‖ = {c:.3e}{}", if none { " (chain=none: expected 0)" } else { "" });
    }
}
