//! The training loop: data, model and regularizer from a [`RunConfig`], epochs of
//! [`train_step`], evaluation, metrics, checkpoints, `--resume`, and `result.json`.
//!
//! Determinism: initial weights, shuffles, augmentation and dropout masks all derive from the
//! run's seed and the epoch/step number, and checkpoints hold the model, batch-norm statistics and
//! optimizer state at an epoch boundary, so a resumed run ends exactly where an uninterrupted one
//! does.
use crate::card::{ModelCard, MEAN_KEY};
use crate::data::{prepare, PrepareOptions, Prepared, Rng};
use crate::dsl::{DType as CfgDType, RunConfig};
use crate::eval::{evaluate, EvalMetrics, EvalOptions};
use crate::loss::ClassLoss;
use crate::model::Model;
use crate::optim::Optimize;
use crate::registry::Registry;
use crate::regularizer::Regularizer;
use crate::rundir::{self, BEST, LAST, PREV, RESULT};
use crate::schedule::LrSchedule;
use crate::step::{train_step, StepStats};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

pub use crate::metrics::{read_metrics, read_metrics_lenient, read_result, EpochMetrics, RunResult};
use crate::metrics::{write_metrics, EpochTotals};

/// What `eval.attacks` asks for: the norm, the attacks and the budgets.
type RobustPlan = (crate::proxy::Norm, Vec<Box<dyn crate::attacks::Attack>>, Vec<f64>);

/// The attacks `eval.attacks` asks for, built before training so a bad list fails at once.
fn robust_attacks(cfg: &RunConfig, registry: &Registry) -> Result<Option<RobustPlan>> {
    if cfg.eval.attacks.trim().is_empty() {
        return Ok(None);
    }
    let norm = crate::proxy::Norm::parse(&cfg.eval.norm).with_context(|| format!("eval.norm = {}: use l2, linf or l1", cfg.eval.norm))?;
    let list = registry.build_attacks("eval.attacks", &cfg.eval.attacks, norm)?;
    let eps = if cfg.eval.eps.trim().is_empty() {
        crate::robust::default_eps(norm)
    } else {
        cfg.eval
            .eps
            .split(',')
            .map(|e| e.trim().parse::<f64>().with_context(|| format!("eval.eps = \"{}\": `{e}` is not a number", cfg.eval.eps)))
            .collect::<Result<_>>()?
    };
    Ok(Some((norm, list, eps)))
}

/// Refuses augmentation the data cannot take: crop and flip act on images (`[C, H, W]`), and a
/// crop padding of the image's size or more would shift whole images out of view.
fn check_augmentation(cfg: &RunConfig, shape: &[usize]) -> Result<()> {
    let d = &cfg.data;
    if d.crop == 0 && !d.flip {
        return Ok(());
    }
    let &[_, h, w] = shape else {
        bail!("data.crop / data.flip augment images, but {} samples have shape {shape:?}; remove them", d.name);
    };
    if d.crop >= h.min(w) {
        bail!(
            "data.crop = {} pads by as much as the {h}x{w} images of {}: use a padding smaller than {} (the paper uses 4 on 32x32)",
            d.crop,
            d.name,
            h.min(w)
        );
    }
    Ok(())
}

/// Receives progress; the loop never prints.
pub trait Progress {
    fn start(&mut self, _cfg: &RunConfig, _model: &dyn Model, _data: &Prepared, _resumed_at: usize) {}
    fn epoch_start(&mut self, _epoch: usize, _epochs: usize, _steps: usize) {}
    fn step(&mut self, _step: usize, _stats: &StepStats, _ms: f64) {}
    fn evaluating(&mut self) {}
    fn epoch_end(&mut self, _m: &EpochMetrics) {}
    /// Something the user should know that does not stop the run.
    fn warn(&mut self, _message: &str) {}
    /// A fact about the run worth one line (where its initial weights came from).
    fn note(&mut self, _message: &str) {}
}

/// Progress that shows nothing.
pub struct Silent;
impl Progress for Silent {}

/// Where and how to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub out: PathBuf,
    pub resume: bool,
    pub device: Device,
}

pub fn dtype_of(cfg: &RunConfig) -> DType {
    match cfg.train.dtype {
        CfgDType::F32 => DType::F32,
        CfgDType::F64 => DType::F64,
    }
}

/// Loads and prepares the run's data.
pub fn load_data(cfg: &RunConfig, registry: &Registry) -> Result<Prepared> {
    let d = &cfg.data;
    let ds = registry.load_dataset(&d.name, d.path.as_deref().map(Path::new))?;
    let opts = PrepareOptions {
        seed: cfg.seed,
        train_size: d.train_size,
        test_size: d.test_size,
        label_noise: d.label_noise,
        val_size: d.val_size,
        mean_subtract: d.mean_subtract,
    };
    Ok(prepare(ds, &opts)?)
}

/// Builds the run's model with its seeded initial weights.
pub fn build_model(cfg: &RunConfig, registry: &Registry, data: &Prepared, device: &Device) -> Result<Box<dyn Model>> {
    let mut rng = Rng::new(cfg.seed).fork(1);
    registry.build_model(&cfg.model, &data.shape, data.classes, &mut rng, dtype_of(cfg), device)
}

pub fn eval_options(cfg: &RunConfig) -> EvalOptions {
    EvalOptions {
        iters: cfg.eval.iters,
        overshoot: cfg.eval.overshoot,
        long_iters: cfg.eval.long_iters,
        samples: cfg.eval.samples,
        batch: cfg.eval.batch,
    }
}

fn step_seed(seed: u64, epoch: usize, step: usize) -> u64 {
    Rng::new(seed).fork(0x5e_0000_0000 + ((epoch as u64) << 24) + step as u64).next_u64()
}

fn checkpoint(
    model: &dyn Model,
    opt: &dyn Optimize,
    epoch: usize,
    best_val: Option<f64>,
) -> Result<std::collections::HashMap<String, Tensor>> {
    let mut t: std::collections::HashMap<String, Tensor> =
        model.params().tensors().into_iter().map(|(k, v)| (format!("model.{k}"), v)).collect();
    t.extend(opt.state()?);
    t.insert("meta.epoch".into(), Tensor::new(&[epoch as f64], &Device::Cpu)?);
    t.insert("meta.best_val".into(), Tensor::new(&[best_val.unwrap_or(f64::NAN)], &Device::Cpu)?);
    Ok(t)
}

/// The checkpoint's card (safetensors metadata) and the mean tensor that make it usable alone.
fn self_description(cfg: &RunConfig, data: &Prepared, epoch: usize) -> Result<(HashMap<String, String>, Tensor)> {
    let card = ModelCard::new(&cfg.model, &data.shape, data.classes, &data.name, data.mean.is_some(), epoch);
    Ok((card.to_metadata(), crate::card::mean_tensor(data.mean.as_deref(), &data.shape)?))
}

fn meta(t: &std::collections::HashMap<String, Tensor>, key: &str) -> Result<f64> {
    let v = t.get(key).with_context(|| format!("checkpoint has no `{key}`"))?;
    Ok(v.to_dtype(DType::F64)?.to_vec1::<f64>()?[0])
}

/// Loads the newest checkpoint that is intact and finite: [`LAST`], else [`PREV`]. Returns it,
/// its file, and why the newer one was refused (for the user).
fn load_resume_checkpoint(dir: &Path) -> Result<(std::collections::HashMap<String, Tensor>, PathBuf, Option<String>)> {
    let mut refused: Option<String> = None;
    for name in [LAST, PREV] {
        let p = dir.join(name);
        if !p.exists() {
            continue;
        }
        match rundir::load_tensors(&p).and_then(|t| check_finite(&t, &p).map(|_| t)) {
            Ok(t) => return Ok((t, p, refused)),
            Err(e) => {
                refused = Some(match refused {
                    Some(r) => format!("{r}; {e:#}"),
                    None => format!("{e:#}"),
                })
            }
        }
    }
    bail!(
        "{}: no intact checkpoint to resume from ({}); delete the folder to start the run again",
        dir.display(),
        refused.unwrap_or_else(|| "none found".into())
    )
}

/// Refuses a checkpoint whose model weights hold NaN or infinity.
fn check_finite(t: &std::collections::HashMap<String, Tensor>, file: &Path) -> Result<()> {
    let mut names: Vec<&String> = t.keys().filter(|k| k.starts_with("model.")).collect();
    names.sort();
    for k in names {
        if !finite(&t[k])? {
            bail!("{}: tensor `{k}` holds NaN or infinite values", file.display());
        }
    }
    Ok(())
}

/// Whether every value of `t` is finite (one reduction; NaN and ±inf propagate into the sum).
fn finite(t: &Tensor) -> Result<bool> {
    if !t.dtype().is_float() {
        return Ok(true);
    }
    let s = t.to_dtype(DType::F64)?.abs()?.sum_all()?.to_scalar::<f64>()?;
    Ok(s.is_finite())
}

/// Fault injection for the reliability tests (tests/reliability.rs): `AMM_FAILPOINT=NAME=EPOCH`
/// makes the run fail as NAME says after that epoch (`nan-weights-after-epoch`: the weights
/// become NaN, as in a divergence on the epoch's last step; `exit-after-epoch`: the process
/// dies, as under SIGKILL, right after the epoch's checkpoint).
fn failpoint(name: &str) -> Option<usize> {
    let v = std::env::var("AMM_FAILPOINT").ok()?;
    let (n, e) = v.split_once('=')?;
    if n == name {
        e.parse().ok()
    } else {
        None
    }
}

/// Signs that a finished run learned nothing useful, as sentences.
fn collapse_warnings(last: &EpochMetrics, test: &EvalMetrics, classes: usize) -> Vec<String> {
    let mut w = Vec::new();
    let chance = 1.0 - 1.0 / classes.max(1) as f64;
    // No better than guessing on both splits; a run that has merely not learned much yet (one
    // epoch on a small subset) stays below this.
    if classes > 1 && test.error >= 0.98 * chance && last.train_error >= 0.9 * chance {
        w.push(format!(
            "the run collapsed: test error {:.1}% and training error {:.1}% are at chance level ({:.1}% for {classes} classes); lower train.lr or the regularizer's weight",
            100.0 * test.error,
            100.0 * last.train_error,
            100.0 * chance
        ));
    }
    if test.attack_success == 0.0 {
        w.push(
            "DeepFool found the decision boundary for no test sample: the model may output constants, so the margin is meaningless".into(),
        );
    } else if test.margin < 1e-6 {
        w.push(format!("the mean test margin {:.3e} is zero in effect: the decision boundary passes through the data", test.margin));
    }
    w
}

/// Trains one run of `cfg` into `opts.out` and returns its result (also written to `result.json`).
///
/// A run that fails once it has claimed its folder writes `failed.json` (the error, and for a
/// divergence the epoch of the last finite checkpoint) and never a `result.json`.
pub fn run(cfg: &RunConfig, registry: &Registry, opts: &RunOptions, progress: &mut dyn Progress) -> Result<RunResult> {
    let dir = &opts.out;
    let spec = serde_json::to_value(cfg)?;
    let resuming = rundir::check_dir(dir, &spec, opts.resume)?;
    if dir.exists() {
        let n = rundir::clean_stale_tmp(dir);
        if n > 0 {
            progress.warn(&format!(
                "removed {n} temporary file{} left by an interrupted write in {}",
                if n == 1 { "" } else { "s" },
                dir.display()
            ));
        }
    }
    if opts.resume && dir.join(RESULT).exists() {
        match read_result(&dir.join(RESULT)) {
            Ok(r) => return Ok(r),
            Err(e) => {
                let aside = rundir::move_aside(&dir.join(RESULT))?;
                progress.warn(&format!("{e:#}; moved it to {} and finishing the run again", aside.display()));
            }
        }
    }
    let _ = std::fs::remove_file(dir.join(rundir::FAILED));
    let claimed = dir.join(rundir::SPEC).exists();
    let out = train(cfg, registry, opts, progress, &spec, resuming);
    if let Err(e) = &out {
        // Only a folder this run has claimed gets a failed.json (not one that belongs to another spec).
        if claimed || dir.join(rundir::SPEC).exists() {
            let last_good = rundir::load_tensors(&dir.join(LAST)).ok().and_then(|t| meta(&t, "meta.epoch").ok()).map(|e| e as usize);
            let _ = rundir::write_json(
                &dir.join(rundir::FAILED),
                &serde_json::json!({"name": cfg.name, "seed": cfg.seed, "error": format!("{e:#}"), "last_good_epoch": last_good}),
            );
        }
    }
    out
}

/// What a run trains with, built from its config before anything is written, so that a bad
/// setting fails before the run folder is claimed.
struct Parts {
    data: Prepared,
    dtype: DType,
    model: Box<dyn Model>,
    reg: Option<Regularizer>,
    attacks: Option<RobustPlan>,
    schedule: Arc<dyn LrSchedule>,
    loss: Arc<dyn ClassLoss>,
    opt: Box<dyn Optimize>,
}

fn build_parts(cfg: &RunConfig, registry: &Registry, device: &Device) -> Result<Parts> {
    let data = load_data(cfg, registry)?;
    let model = build_model(cfg, registry, &data, device)?;
    let reg = cfg.reg.as_ref().map(|p| registry.build_regularizer(p)).transpose()?;
    let attacks = robust_attacks(cfg, registry)?;
    let schedule = registry.build_schedule(&cfg.train.schedule)?;
    let loss = registry.build_loss(&cfg.train.loss)?;
    let t = &cfg.train;
    check_augmentation(cfg, &data.shape)?;
    let opt = registry.build_optimizer(&t.optimizer, model.params(), t.lr, t.momentum, t.weight_decay)?;
    Ok(Parts { data, dtype: dtype_of(cfg), model, reg, attacks, schedule, loss, opt })
}

/// Where training stands: the epochs done, their metrics, the best validation error.
#[derive(Default)]
struct State {
    start: usize,
    history: Vec<EpochMetrics>,
    best_val: Option<f64>,
}

/// The state of the checkpoint `--resume` continues from, loaded into the model and optimizer.
fn resume(dir: &Path, p: &mut Parts, progress: &mut dyn Progress) -> Result<State> {
    let (ck, file, refused) = load_resume_checkpoint(dir)?;
    p.model.params().load_tensors(&ck, "model.")?;
    // The inputs stay centred as the checkpoint's weights saw them (an `init`'s mean).
    crate::init::centre_on(crate::init::input_mean(&ck)?.as_deref(), &mut p.data, &file)?;
    p.opt.load_state(&ck)?;
    let start = meta(&ck, "meta.epoch")? as usize;
    if let Some(why) = refused {
        progress.warn(&format!("{why}; resuming from {} (epoch {start}) instead", file.display()));
    }
    let bv = meta(&ck, "meta.best_val")?;
    let (mut history, bad) = read_metrics_lenient(dir)?;
    for b in bad {
        progress.warn(&format!("{b}: skipped (the checkpoint is intact; that epoch's metrics are lost)"));
    }
    history.retain(|m| m.epoch <= start);
    Ok(State { start, history, best_val: if bv.is_nan() { None } else { Some(bv) } })
}

/// The step loop of one epoch (batch → [`train_step`], DESIGN.md §2) over a seeded shuffle, with
/// the sums the epoch's metrics are made of.
fn train_epoch(
    cfg: &RunConfig,
    p: &mut Parts,
    epoch: usize,
    dir: &Path,
    device: &Device,
    progress: &mut dyn Progress,
) -> Result<EpochTotals> {
    let (data, shape) = (&p.data, &p.data.shape);
    let d: usize = shape.iter().product();
    let n = data.train.len();
    let batch = cfg.train.batch.min(n.max(1));
    let order = Rng::new(cfg.seed).fork(100 + epoch as u64).permutation(n);
    let mut aug = Rng::new(cfg.seed).fork(10_000 + epoch as u64);
    let mut totals = EpochTotals { steps: n.div_ceil(batch), ..Default::default() };
    let mut xbuf: Vec<f32> = Vec::with_capacity(batch * d);
    for (si, chunk) in order.chunks(batch).enumerate() {
        xbuf.clear();
        for &i in chunk {
            xbuf.extend_from_slice(&data.train.x[i * d..(i + 1) * d]);
        }
        if cfg.data.crop > 0 || cfg.data.flip {
            crate::data::augment_batch(&mut xbuf, shape, cfg.data.crop, cfg.data.flip, &mut aug);
        }
        let y: Vec<u32> = chunk.iter().map(|&i| data.train.y[i]).collect();
        let mut s = vec![chunk.len()];
        s.extend_from_slice(shape);
        let x = Tensor::from_slice(&xbuf, s, device)?.to_dtype(p.dtype)?;
        let t0 = Instant::now();
        let seed = step_seed(cfg.seed, epoch, si);
        let st = train_step(p.model.as_ref(), p.reg.as_ref(), p.loss.as_ref(), p.opt.as_mut(), cfg.train.clip, &x, &y, seed).with_context(
            || {
                // Name the checkpoint only if one was written (this run or the one it resumed).
                let kept = if dir.join(LAST).exists() {
                    format!("the last good checkpoint (epoch {epoch}) is {}", dir.join(LAST).display())
                } else {
                    "no checkpoint was written yet".to_string()
                };
                format!("epoch {}, step {}: training stopped; {kept}", epoch + 1, si + 1)
            },
        )?;
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        progress.step(si + 1, &st, ms);
        totals.add(&st, ms);
    }
    Ok(totals)
}

/// Refuses an epoch whose metrics or weights are not finite: nothing of it is written.
fn check_diverged(m: &EpochMetrics, model: &dyn Model, dir: &Path) -> Result<()> {
    let bad = m.non_finite();
    let weights_ok = model.params().tensors().iter().try_fold(true, |ok, (_, t)| Ok::<_, anyhow::Error>(ok && finite(t)?))?;
    if bad.is_empty() && weights_ok {
        return Ok(());
    }
    let what = if weights_ok { bad.join(", ") } else { "the weights".to_string() };
    let kept = if rundir::has_checkpoint(dir) {
        format!("the last finite checkpoint (epoch {}) is kept in {}", m.epoch - 1, dir.join(LAST).display())
    } else {
        "no checkpoint was written yet".into()
    };
    bail!(
        "epoch {}: training diverged ({what} became NaN or infinite); {kept}; nothing of this epoch was written. Lower train.lr, set train.clip, or lower the regularizer's weight",
        m.epoch
    )
}

/// The epoch's scalars in TensorBoard's event file (for TensorBoard / W&B users).
fn log_scalars(tb: &mut crate::tensorboard::EventWriter, m: &EpochMetrics) -> Result<()> {
    let e = m.epoch as i64;
    let test = m.test.as_ref();
    for (tag, v) in [
        ("loss", Some(m.loss)),
        ("ce", Some(m.ce)),
        ("reg", Some(m.reg)),
        ("train_error", Some(m.train_error)),
        ("lr", Some(m.lr)),
        ("ms_per_step", Some(m.ms_per_step)),
        ("val_error", m.val_error),
        ("test_error", test.map(|t| t.error)),
        ("margin", test.map(|t| t.margin)),
        ("margin_median", test.map(|t| t.margin_median)),
        ("attack_success", test.map(|t| t.attack_success)),
    ] {
        if let Some(v) = v {
            tb.scalar(tag, e, v)?;
        }
    }
    tb.flush()?;
    Ok(())
}

/// The run: [`train_epoch`] for each epoch, each followed by evaluation, metrics and
/// checkpoints, then the final evaluation ([`finish`]).
fn train(
    cfg: &RunConfig,
    registry: &Registry,
    opts: &RunOptions,
    progress: &mut dyn Progress,
    spec: &serde_json::Value,
    resuming: bool,
) -> Result<RunResult> {
    let (dir, device, t) = (&opts.out, &opts.device, &cfg.train);
    let mut p = build_parts(cfg, registry, device)?;
    rundir::write_spec(dir, spec)?;
    let mut state = if resuming { resume(dir, &mut p, progress)? } else { State::default() };
    if let (Some(init), false) = (&cfg.train.init, resuming) {
        let w = crate::init::read(Path::new(init))?;
        w.load_into(p.model.as_ref(), &cfg.model.to_string())?;
        // The weights expect inputs centred as in their own training.
        w.centre(&mut p.data)?;
        progress.note(&format!("initial weights from {}", w.file.display()));
    }
    progress.start(cfg, p.model.as_ref(), &p.data, state.start);
    if p.reg.is_some() && !p.data.train.is_empty() {
        let mut s = vec![1];
        s.extend_from_slice(&p.data.shape);
        let x1 = Tensor::from_slice(&p.data.train.x[..p.data.train.dim()], s, device)?.to_dtype(p.dtype)?;
        crate::autograd::ensure_second_order(p.model.as_ref(), &x1)?;
    }

    let mut train_seconds = state.history.last().map_or(0.0, |m| m.train_seconds);
    let eval_opts = eval_options(cfg);
    // A resumed run adds a new event file.
    let mut tb = crate::tensorboard::EventWriter::create(&dir.join("tensorboard"))?;
    for epoch in state.start..t.epochs {
        p.opt.set_lr(t.lr * p.schedule.factor(epoch, t.epochs));
        let steps = p.data.train.len().div_ceil(t.batch.min(p.data.train.len().max(1)));
        progress.epoch_start(epoch + 1, t.epochs, steps);
        let totals = train_epoch(cfg, &mut p, epoch, dir, device, progress)?;
        train_seconds += totals.ms / 1e3;
        if failpoint("nan-weights-after-epoch") == Some(epoch + 1) {
            let (_, v) = &p.model.params().vars()[0];
            v.set(&(v.as_tensor() * f64::NAN)?)?;
        }
        let last = epoch + 1 == t.epochs;
        let evaluate_now = last || (epoch + 1) % cfg.eval.every.max(1) == 0;
        progress.evaluating();
        let (model, data, shape) = (p.model.as_ref(), &p.data, &p.data.shape);
        let val_error =
            if data.val.is_empty() { None } else { Some(crate::eval::error(model, &data.val, shape, p.dtype, device, cfg.eval.batch)?) };
        let test = if evaluate_now { Some(evaluate(model, &data.test, shape, p.dtype, device, &eval_opts)?) } else { None };
        let m = totals.metrics(epoch + 1, p.opt.lr(), train_seconds, val_error, test);
        check_diverged(&m, model, dir)?;
        progress.epoch_end(&m);
        log_scalars(&mut tb, &m)?;
        state.history.push(m);
        write_metrics(dir, &state.history)?;
        let improved = match (val_error, state.best_val) {
            (Some(_), None) => true,
            (Some(v), Some(b)) => v < b,
            _ => false,
        };
        if improved {
            state.best_val = val_error;
        }
        let mut ck = checkpoint(model, p.opt.as_ref(), epoch + 1, state.best_val)?;
        let (card, mean) = self_description(cfg, data, epoch + 1)?;
        ck.insert(MEAN_KEY.into(), mean);
        if improved {
            rundir::save_tensors_with(&dir.join(BEST), &ck, &card)?;
        }
        rundir::rotate_and_save(dir, &ck, &card)?;
        if failpoint("exit-after-epoch") == Some(epoch + 1) {
            std::process::exit(137);
        }
    }
    finish(cfg, &p, &state.history, train_seconds, opts, progress)
}

/// The final evaluation (the last epoch's, or a fresh one), the attacks of `eval.attacks`, the
/// training margins if asked for, and `result.json`.
fn finish(
    cfg: &RunConfig,
    p: &Parts,
    history: &[EpochMetrics],
    train_seconds: f64,
    opts: &RunOptions,
    progress: &mut dyn Progress,
) -> Result<RunResult> {
    let (dir, device, model, data) = (&opts.out, &opts.device, p.model.as_ref(), &p.data);
    let (shape, dtype, eval_opts) = (&data.shape, p.dtype, eval_options(cfg));
    let last = history.last().context("the run has no epochs (train.epochs must be at least 1)")?;
    let test = match &last.test {
        Some(t) => t.clone(),
        None => evaluate(model, &data.test, shape, dtype, device, &eval_opts)?,
    };
    let robust = match &p.attacks {
        Some((norm, list, eps)) => {
            let bounds = crate::attacks::Bounds::from_domain(data.domain, data.mean.as_deref(), data.dim());
            let ro = crate::robust::RobustOptions {
                eps: eps.clone(),
                samples: cfg.eval.samples,
                batch: cfg.eval.batch,
                ..crate::robust::RobustOptions::new(*norm)
            };
            let r = crate::robust::evaluate(model, &data.test, shape, dtype, device, bounds.as_ref(), list, &ro)?;
            crate::robust::write(dir, &r, &Default::default())?;
            Some(r.summary())
        }
        None => None,
    };
    let train_margins = if cfg.eval.train_margin {
        let m = evaluate(model, &data.train, shape, dtype, device, &EvalOptions { samples: 0, ..eval_opts.clone() })?;
        Some((m.margin, m.margin_min))
    } else {
        None
    };
    let best_epoch = history
        .iter()
        .filter_map(|m| m.val_error.map(|v| (m.epoch, v)))
        .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
        .map(|(e, _)| e);
    let result = RunResult {
        name: cfg.name.clone(),
        seed: cfg.seed,
        model: cfg.model.to_string(),
        reg: cfg.reg.as_ref().map_or("none".to_string(), |r| r.to_string()),
        data: cfg.data.name.clone(),
        epochs: cfg.train.epochs,
        test_error: test.error,
        margin: test.margin,
        margin_min: test.margin_min,
        margin_median: test.margin_median,
        margin_rel: test.margin_rel,
        attack_success: test.attack_success,
        margin_long: test.margin_long,
        val_error: last.val_error,
        best_epoch,
        train_seconds,
        ms_per_step: history.iter().map(|m| m.ms_per_step).sum::<f64>() / history.len() as f64,
        params: model.params().count(),
        train_samples: data.train.len(),
        test_samples: test.samples,
        robust,
        train_margin: train_margins.map(|m| m.0),
        train_margin_min: train_margins.map(|m| m.1),
        warnings: collapse_warnings(last, &test, data.classes),
    };
    for w in &result.warnings {
        progress.warn(w);
    }
    result.validate().map_err(|e| anyhow::anyhow!("the final evaluation is not usable ({e}); result.json was not written"))?;
    rundir::write_json(&dir.join(RESULT), &result)?;
    Ok(result)
}
