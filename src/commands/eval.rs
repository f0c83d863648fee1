//! `amm eval RUN_DIR|CHECKPOINT|WEIGHTS [--model M] [--data NAME[:PATH]] [--json]`: test error and
//! margins of a saved model (a run's, or weights alone: exported, or changed in PyTorch); with
//! `--per-sample`, every sample's label, prediction, margin and logits; with `--attacks`, tighter
//! margin estimates (DeepFool, FMN, DDN), robust accuracy at `--eps` (those and APGD-CE/T), the
//! accuracy-against-ε curve in `robust.csv` and everything in `robust.json` (docs/ATTACKS.md),
//! written into a new folder `eval-N` of the run (or `--out`), never over an earlier evaluation.
use super::saved::{load_weights, LoadedWeights};
use amm_core::anyhow::{bail, Context, Result};
use amm_core::attacks::{self, Bounds};
use amm_core::eval::evaluate_samples;
use amm_core::proxy::Norm;
use amm_core::robust::{self, RobustOptions, RobustReport};
use amm_core::rundir;
use amm_core::serde_json;
use amm_core::train;
use amm_core::{dsl, Registry};
use std::path::PathBuf;
use std::process::ExitCode;

/// What `--attacks` with no list (or `--attacks all`) runs: every registered attack that has the
/// norm (plugins' too), each family once (`apgd` and not also `apgd-ce`, `apgd-t`).
fn all_attacks(reg: &Registry, norm: Norm) -> String {
    let mut seen = std::collections::HashSet::new();
    let mut names = Vec::new();
    for name in dsl::Catalog::names(reg, dsl::Kind::Attack) {
        let Ok(built) = reg.build_attacks("--attacks", &name, norm) else { continue };
        if built.iter().any(|a| seen.contains(a.label())) {
            continue;
        }
        seen.extend(built.iter().map(|a| a.label().to_string()));
        names.push(name);
    }
    names.join(",")
}

#[derive(clap::Args)]
pub struct Args {
    /// A run directory, a checkpoint (.safetensors) inside one, an export folder, or a weights
    /// file alone (exported by amm or saved from PyTorch).
    path: PathBuf,
    /// The model of a weights file that does not name it (saved from PyTorch), e.g. `lenet`.
    #[arg(long)]
    model: Option<String>,
    /// Where to write this evaluation's files [default: a new folder eval-N in the run].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Write index, label, prediction, margin (DeepFool, as the paper's), flipped and the logits
    /// of every evaluated test sample to this CSV file.
    #[arg(long, value_name = "FILE.csv")]
    per_sample: Option<PathBuf>,
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
    /// Run evaluation attacks: a comma-separated list of registered attacks (`amm list` shows
    /// them and their parameters: deepfool, fmn, ddn, apgd (= apgd-ce and apgd-t), apgd-ce,
    /// apgd-t and any a plugin adds), each optionally with arguments, e.g.
    /// `deepfool(iters=5),fmn(steps=1000),apgd(restarts=2)`; alone (or `all`), every attack that
    /// has the norm.
    #[arg(long, num_args = 0..=1, default_missing_value = "all", value_name = "LIST")]
    attacks: Option<String>,
    /// The perturbation norm of the attacks: l2, linf or l1.
    #[arg(long, value_name = "NORM")]
    norm: Option<String>,
    /// Budgets for robust accuracy (and APGD), comma-separated [default for l2: 0.25,0.5,1,1.5,2].
    #[arg(long, value_delimiter = ',', value_name = "EPS", allow_negative_numbers = true)]
    eps: Vec<f64>,
    /// Samples per batch of the margin and the attacks [default: the run's eval.batch, 500 unless set]
    #[arg(long, alias = "attack-batch")]
    batch: Option<usize>,
    /// Print one JSON object (the metrics, and the robustness report with --attacks).
    #[arg(long)]
    json: bool,
    /// cpu, or cuda:N (needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub fn run(a: Args) -> Result<ExitCode> {
    // the attack settings are checked before anything is loaded
    let norm = match &a.norm {
        None => Norm::L2,
        Some(n) => Norm::parse(&n.to_ascii_lowercase()).with_context(|| format!("unknown norm `{n}` (use l2, linf or l1)"))?,
    };
    let reg = super::host::registry();
    let attack_list = match &a.attacks {
        Some(list) if list.trim() == "all" => Some(reg.build_attacks("--attacks", &all_attacks(&reg, norm), norm)?),
        Some(list) => Some(reg.build_attacks("--attacks", list, norm)?),
        None => {
            if a.norm.is_some() || !a.eps.is_empty() {
                bail!("--norm and --eps set up the attacks: add --attacks (e.g. --attacks {})", all_attacks(&reg, norm));
            }
            None
        }
    };
    if let Some(e) = a.eps.iter().find(|e| !(e.is_finite() && **e >= 0.0)) {
        bail!("--eps: every budget must be a number >= 0, got {e}");
    }
    let device = super::host::device(&a.device)?;
    let LoadedWeights { cfg, dir, weights, data, model } =
        load_weights(&a.path, a.best, a.model.as_deref(), a.data.as_deref(), &reg, &device)?;
    let ck = weights.file;
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
    match a.batch {
        Some(0) => bail!("--batch must be at least 1"),
        Some(b) => opts.batch = b,
        None => {}
    }
    let (m, rows) = evaluate_samples(model.as_ref(), &data.test, &data.shape, train::dtype_of(&cfg), &device, &opts)?;
    if let Some(f) = &a.per_sample {
        rundir::write_atomic(f, amm_core::eval::samples_csv(&rows, model.classes()).as_bytes())?;
    }
    // This evaluation's folder, made when something goes into it.
    let out = match &a.out {
        Some(o) => o.clone(),
        None => next_eval_dir(&dir),
    };
    let robust = match &attack_list {
        None => None,
        Some(list) => {
            let bounds = Bounds::from_domain(data.domain, data.mean.as_deref(), data.dim());
            let ro = RobustOptions {
                eps: if a.eps.is_empty() { robust::default_eps(norm) } else { a.eps.clone() },
                samples: opts.samples,
                batch: opts.batch,
                ..RobustOptions::new(norm)
            };
            let r = robust::evaluate(model.as_ref(), &data.test, &data.shape, train::dtype_of(&cfg), &device, bounds.as_ref(), list, &ro)?;
            let mut extra = serde_json::Map::new();
            extra.insert("checkpoint".into(), ck.display().to_string().into());
            extra.insert("data".into(), cfg.data.name.clone().into());
            let written = match robust::write(&out, &r, &extra) {
                Ok(()) => Some([robust::ROBUST_JSON, robust::ROBUST_CSV, robust::ROBUST_SAMPLES_CSV].map(|f| out.join(f))),
                Err(e) => {
                    eprintln!("warning: could not write the robustness files into {}: {e:#}", out.display());
                    None
                }
            };
            Some((r, written))
        }
    };
    let mut v = serde_json::to_value(&m)?;
    let o = v.as_object_mut().expect("object");
    o.insert("test_error".into(), m.error.into());
    o.insert("checkpoint".into(), ck.display().to_string().into());
    o.insert("data".into(), cfg.data.name.clone().into());
    o.insert("batch".into(), opts.batch.into());
    if let Some((r, written)) = &robust {
        add_robust_json(o, r, written.as_ref())?;
    }
    if let Some(f) = &a.per_sample {
        o.insert("per_sample_csv".into(), f.display().to_string().into());
    }
    if a.out.is_some() || robust.is_some() {
        rundir::write_json(&out.join("eval.json"), &v)?;
    }
    if a.json {
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
        if let Some((r, written)) = &robust {
            print_robust(r, written.as_ref());
        }
        if let Some(f) = &a.per_sample {
            println!("wrote {} ({} samples)", f.display(), rows.len());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The first `DIR/eval-N` (N = 1, 2, ...) that does not exist yet.
fn next_eval_dir(dir: &std::path::Path) -> PathBuf {
    (1..).map(|n| dir.join(format!("eval-{n}"))).find(|p| !p.exists()).expect("an unused name")
}

/// The robustness fields of `amm eval --json`: `clean_error`, `clean_accuracy`, `norm`, `eps`,
/// `attacks` (the labels, in order), one object per attack label (`median_norm`, `mean_norm`,
/// `success_rate`, `never_fooled`, `robust_accuracy` per ε, ...), `best_known`,
/// `robust_accuracy` (every attack together, per ε) and the files written.
fn add_robust_json(o: &mut serde_json::Map<String, serde_json::Value>, r: &RobustReport, written: Option<&[PathBuf; 3]>) -> Result<()> {
    o.insert("clean_error".into(), r.clean_error.into());
    o.insert("clean_accuracy".into(), r.clean_accuracy.into());
    o.insert("norm".into(), r.norm.name().into());
    o.insert("bounded".into(), r.bounded.into());
    o.insert("correct".into(), r.correct.into());
    o.insert("eps".into(), serde_json::to_value(&r.eps)?);
    o.insert("attacks".into(), r.attacks.iter().map(|s| serde_json::Value::from(s.attack.clone())).collect());
    for s in &r.attacks {
        o.insert(s.attack.clone(), serde_json::to_value(s)?);
    }
    o.insert("best_known".into(), serde_json::to_value(&r.best_known)?);
    o.insert("robust_accuracy".into(), serde_json::to_value(&r.robust_accuracy)?);
    if let Some([json, csv, samples]) = written {
        o.insert("robust_json".into(), json.display().to_string().into());
        o.insert("robust_csv".into(), csv.display().to_string().into());
        o.insert("robust_samples_csv".into(), samples.display().to_string().into());
    }
    Ok(())
}

fn num(v: f64, prec: usize) -> String {
    if v.is_nan() {
        "-".to_string()
    } else if v.is_infinite() {
        "inf".to_string()
    } else {
        format!("{v:.prec$}")
    }
}

fn pct(v: f64) -> String {
    if v.is_nan() {
        "-".to_string()
    } else {
        format!("{:.1}%", 100.0 * v)
    }
}

fn print_robust(r: &RobustReport, written: Option<&[PathBuf; 3]>) {
    println!();
    println!(
        "robustness ({} norm, {} samples, {} correct, clean accuracy {}{})",
        r.norm.name(),
        r.samples,
        r.correct,
        pct(r.clean_accuracy),
        if r.bounded { ", attacks kept in the data's input range" } else { "" }
    );
    let w = r.attacks.iter().map(|s| s.attack.len() + 2).max().unwrap_or(0).max(20);
    println!("{:<w$}  {:>9}  {:>9}  {:>8}  {:>12}  {:>6}  {:>8}", "attack", "median", "mean", "success", "never fooled", "best", "time");
    for s in &r.attacks {
        // a fixed-ε attack's norms are those of the points it found, not minimal ones: not shown
        let min_norm = s.kind == attacks::Kind::MinNorm;
        let best = if min_norm { s.best_count.to_string() } else { "-".to_string() };
        let shown = |v: f64| if min_norm { num(v, 4) } else { "-".to_string() };
        println!(
            "{:<w$}  {:>9}  {:>9}  {:>8}  {:>12}  {:>6}  {:>7.1}s",
            s.attack,
            shown(s.median_norm),
            shown(s.mean_norm),
            pct(s.success_rate),
            s.never_fooled,
            best,
            s.seconds
        );
    }
    let b = &r.best_known;
    if r.attacks.iter().any(|s| s.kind == attacks::Kind::MinNorm) {
        println!(
            "{:<w$}  {:>9}  {:>9}  {:>8}  {:>12}",
            "best known margin",
            num(b.median_norm, 4),
            num(b.mean_norm, 4),
            "",
            b.never_fooled
        );
    }
    print!("{:<w$}  ", "robust accuracy at ε");
    for e in &r.eps {
        print!("{:>8}", num(*e, 4));
    }
    println!();
    for s in &r.attacks {
        print!("{:<w$}  ", format!("  {}", s.attack));
        for v in &s.robust_accuracy {
            print!("{:>8}", pct(*v));
        }
        println!();
    }
    print!("{:<w$}  ", "  all attacks");
    for v in &r.robust_accuracy {
        print!("{:>8}", pct(*v));
    }
    println!();
    if let Some(files) = written {
        println!("wrote {}", files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", "));
    }
}
