//! Robustness evaluation: a set of [`attacks`](crate::attacks) over a split.
//!
//! Every attack's output is checked independently ([`verify`]): a sample counts as fooled only if
//! the model's prediction at the returned point differs from the label, the point lies in the box,
//! and (fixed-ε attacks) its norm is within ε; the norm reported is `‖x_adv − x‖_p` of that point.
//!
//! Per sample and attack, the *found norm* is 0 for samples misclassified without attack, the
//! norm of the attack's adversarial point when it found one, and +∞ otherwise. From those:
//! - per attack, over the correctly classified samples: the success rate, the number never fooled,
//!   the mean found norm over the fooled ones and the median found norm (+∞ counted, so the median
//!   is +∞ — `null` in JSON — when fewer than half were fooled);
//! - the best known margin: per sample, the smallest norm over every minimal-norm attack;
//! - robust accuracy at ε: the fraction of ALL samples (misclassified ones count as not robust)
//!   whose found norm exceeds ε, per attack and over every attack together; it is non-increasing in
//!   ε by construction (an adversarial point found at budget ε is one at every larger budget);
//! - the accuracy-against-ε curve (`robust.csv`): minimal-norm attacks, the best known margin and
//!   the combination of all attacks on a dense grid plus the requested ε; fixed-ε attacks at the
//!   requested ε only.
use crate::attacks::{verify, Attack, Bounds, Kind};
use crate::data::Split;
use crate::layer::Ctx;
use crate::model::Model;
use crate::proxy::Norm;
use crate::tensor::{argmax_rows, to_host};
use candle_core::{DType, Device, Result, Tensor};
use std::path::Path;
use std::time::Instant;

/// `robust.json` in a run directory.
pub const ROBUST_JSON: &str = "robust.json";
/// `robust.csv` in a run directory: `attack,eps,robust_accuracy`.
pub const ROBUST_CSV: &str = "robust.csv";
/// `robust_samples.csv`: the found norm of every sample and attack.
pub const ROBUST_SAMPLES_CSV: &str = "robust_samples.csv";

/// A fixed-ε attack's adversarial point may exceed ε by this much (relative) from rounding.
const EPS_TOL: f64 = 1e-4;

/// Settings of [`evaluate`].
#[derive(Clone, Debug)]
pub struct RobustOptions {
    pub norm: Norm,
    /// Budgets for robust accuracy (and the runs of fixed-ε attacks).
    pub eps: Vec<f64>,
    /// The first N samples of the split only (0 = all).
    pub samples: usize,
    pub batch: usize,
    /// Points of the dense part of the curve.
    pub curve_points: usize,
}

impl RobustOptions {
    pub fn new(norm: Norm) -> Self {
        Self { norm, eps: default_eps(norm), samples: 0, batch: 500, curve_points: 100 }
    }
}

/// The default budgets: the usual ones for [0,1] images (L2: MNIST/CIFAR style; L∞: 1/255 .. 0.3).
pub fn default_eps(norm: Norm) -> Vec<f64> {
    match norm {
        Norm::L2 => vec![0.25, 0.5, 1.0, 1.5, 2.0],
        Norm::Linf => vec![1.0 / 255.0, 2.0 / 255.0, 4.0 / 255.0, 8.0 / 255.0, 0.1, 0.3],
        Norm::L1 => vec![1.0, 2.5, 5.0, 10.0],
    }
}

/// One attack's results.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct AttackStats {
    /// The attack's label (`fmn`, `deepfool(iters=5)`).
    pub attack: String,
    /// Every setting.
    pub config: String,
    pub kind: Kind,
    /// Mean found norm over the correctly classified samples the attack fooled (NaN/null if none).
    pub mean_norm: f64,
    /// Median found norm over the correctly classified samples, +∞ (null) for those never fooled.
    pub median_norm: f64,
    /// Fooled / correctly classified (fixed-ε attacks: at any of the requested ε).
    pub success_rate: f64,
    pub fooled: usize,
    /// Correctly classified samples the attack never fooled.
    pub never_fooled: usize,
    /// Samples for which this attack's norm is the best known margin (minimal-norm attacks).
    pub best_count: usize,
    /// Robust accuracy at each requested ε (same order as [`RobustReport::eps`]).
    pub robust_accuracy: Vec<f64>,
    pub seconds: f64,
}

/// The per-sample smallest norm over every minimal-norm attack, summarised.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct BestKnown {
    pub mean_norm: f64,
    pub median_norm: f64,
    pub min_norm: f64,
    pub never_fooled: usize,
    pub robust_accuracy: Vec<f64>,
}

/// One point of an accuracy-against-ε curve.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct CurvePoint {
    /// An attack's label, `best-known` or `all-attacks`.
    pub attack: String,
    pub eps: f64,
    pub robust_accuracy: f64,
}

/// Per-sample results (for `robust_samples.csv` and the tests).
#[derive(Clone, Debug, Default)]
pub struct PerSample {
    pub label: Vec<u32>,
    pub pred: Vec<u32>,
    /// `[attack][sample]` found norms.
    pub norms: Vec<Vec<f64>>,
    pub best: Vec<f64>,
    pub all: Vec<f64>,
}

/// Everything [`evaluate`] measured.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct RobustReport {
    pub norm: Norm,
    pub samples: usize,
    pub correct: usize,
    pub clean_error: f64,
    pub clean_accuracy: f64,
    /// Whether the attacks were confined to the data's valid input box.
    pub bounded: bool,
    pub eps: Vec<f64>,
    pub attacks: Vec<AttackStats>,
    pub best_known: BestKnown,
    /// Robust accuracy at each ε against every attack together.
    pub robust_accuracy: Vec<f64>,
    pub curve: Vec<CurvePoint>,
    #[serde(skip)]
    pub per_sample: PerSample,
}

impl RobustReport {
    pub fn attack(&self, label: &str) -> Option<&AttackStats> {
        self.attacks.iter().find(|a| a.attack == label)
    }

    /// The headline numbers, for a run's `result.json` and grid tables: `norm`, `eps`,
    /// `clean_error`, `best_known_median`, `best_known_mean`, `robust_accuracy` (all attacks, per
    /// ε) and, per attack label, `{median_norm, mean_norm, success_rate, never_fooled}`.
    pub fn summary(&self) -> serde_json::Value {
        let attacks: serde_json::Map<String, serde_json::Value> = self
            .attacks
            .iter()
            .map(|a| {
                let v = serde_json::json!({
                    "median_norm": a.median_norm,
                    "mean_norm": a.mean_norm,
                    "success_rate": a.success_rate,
                    "never_fooled": a.never_fooled,
                });
                (a.attack.clone(), v)
            })
            .collect();
        serde_json::json!({
            "norm": self.norm.name(),
            "eps": self.eps,
            "clean_error": self.clean_error,
            "best_known_median": self.best_known.median_norm,
            "best_known_mean": self.best_known.mean_norm,
            "robust_accuracy": self.robust_accuracy,
            "attacks": attacks,
        })
    }
}

fn batch_of(split: &Split, start: usize, end: usize, shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
    let d: usize = shape.iter().product();
    let mut s = vec![end - start];
    s.extend_from_slice(shape);
    Tensor::from_slice(&split.x[start * d..end * d], s, device)?.to_dtype(dtype)
}

/// Median of `v` (+∞ entries allowed); NaN when empty.
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else if s[m - 1].is_infinite() || s[m].is_infinite() {
        s[m].max(s[m - 1])
    } else {
        0.5 * (s[m - 1] + s[m])
    }
}

fn mean_finite(v: &[f64]) -> f64 {
    let f: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if f.is_empty() {
        f64::NAN
    } else {
        f.iter().sum::<f64>() / f.len() as f64
    }
}

/// Fraction of `n` samples whose found norm exceeds `eps` (misclassified samples have norm 0).
fn accuracy_at(norms: &[f64], eps: f64, n: usize) -> f64 {
    if n == 0 {
        return f64::NAN;
    }
    norms.iter().filter(|&&v| v > eps).count() as f64 / n as f64
}

/// Runs `attacks` (all for `opts.norm`) over the first `opts.samples` samples of `split`.
#[allow(clippy::too_many_arguments)]
pub fn evaluate(
    model: &dyn Model,
    split: &Split,
    shape: &[usize],
    dtype: DType,
    device: &Device,
    bounds: Option<&Bounds>,
    attacks: &[Box<dyn Attack>],
    opts: &RobustOptions,
) -> anyhow::Result<RobustReport> {
    for a in attacks {
        if a.norm() != opts.norm {
            anyhow::bail!("attack `{}` is for {}, the evaluation for {}", a.label(), a.norm().name(), opts.norm.name());
        }
    }
    if let Some(e) = opts.eps.iter().find(|e| !(e.is_finite() && **e >= 0.0)) {
        anyhow::bail!("ε must be a number >= 0, got {e}");
    }
    let n = if opts.samples > 0 { opts.samples.min(split.len()) } else { split.len() };
    let na = attacks.len();
    let mut eps_sorted = opts.eps.clone();
    eps_sorted.sort_by(f64::total_cmp);
    eps_sorted.dedup();
    let mut norms = vec![vec![f64::INFINITY; n]; na];
    let mut label = Vec::with_capacity(n);
    let mut pred_all = Vec::with_capacity(n);
    let mut seconds = vec![0.0; na];
    let batch = opts.batch.max(1);
    for start in (0..n).step_by(batch) {
        let end = (start + batch).min(n);
        let x = batch_of(split, start, end, shape, dtype, device)?;
        let y = &split.y[start..end];
        let logits = to_host(&model.forward(&x, &Ctx::eval(end - start))?.logits)?;
        let pred = argmax_rows(&logits, model.classes());
        let correct: Vec<u32> = (0..(end - start) as u32).filter(|&i| pred[i as usize] == y[i as usize]).collect();
        for (i, (&p, &l)) in pred.iter().zip(y).enumerate() {
            if p != l {
                norms.iter_mut().for_each(|v| v[start + i] = 0.0);
            }
        }
        label.extend_from_slice(y);
        pred_all.extend_from_slice(&pred);
        if correct.is_empty() {
            continue;
        }
        let idx = Tensor::new(correct.as_slice(), device)?;
        let xc = x.index_select(&idx, 0)?;
        let yc: Vec<u32> = correct.iter().map(|&i| y[i as usize]).collect();
        for (ai, a) in attacks.iter().enumerate() {
            let t0 = Instant::now();
            let found = found_norms(a.as_ref(), model, &xc, &yc, bounds, opts.norm, &eps_sorted)?;
            for (&i, v) in correct.iter().zip(found) {
                norms[ai][start + i as usize] = v;
            }
            seconds[ai] += t0.elapsed().as_secs_f64();
        }
    }

    let per_sample = PerSample { label, pred: pred_all, norms, best: Vec::new(), all: Vec::new() };
    Ok(report(per_sample, attacks, &seconds, bounds.is_some(), opts))
}

/// The norm `attack` needed to fool each (correctly classified) sample of `x`, verified at the
/// point it returned (infinite where it failed). A fixed-ε attack runs at each ε in turn, on the
/// samples not fooled at a smaller one, and reports the ε that fooled the sample.
fn found_norms(
    attack: &dyn Attack,
    model: &dyn Model,
    x: &Tensor,
    y: &[u32],
    bounds: Option<&Bounds>,
    norm: Norm,
    eps_sorted: &[f64],
) -> anyhow::Result<Vec<f64>> {
    let mut found = vec![f64::INFINITY; y.len()];
    match attack.kind() {
        Kind::MinNorm => {
            let adv = attack.run(model, x, y, bounds, 0.0)?;
            let o = verify(model, x, &adv, y, norm, bounds)?;
            for (j, f) in found.iter_mut().enumerate() {
                if o.adversarial[j] && o.in_bounds[j] {
                    *f = o.norms[j];
                }
            }
        }
        Kind::FixedEps => {
            // samples fooled at a smaller ε are fooled at every larger one
            let mut todo: Vec<usize> = (0..y.len()).collect();
            for &e in eps_sorted {
                if todo.is_empty() || e <= 0.0 {
                    continue;
                }
                let sub: Vec<u32> = todo.iter().map(|&j| j as u32).collect();
                let xs = x.index_select(&Tensor::new(sub.as_slice(), x.device())?, 0)?;
                let ys: Vec<u32> = todo.iter().map(|&j| y[j]).collect();
                let adv = attack.run(model, &xs, &ys, bounds, e)?;
                let o = verify(model, &xs, &adv, &ys, norm, bounds)?;
                let mut left = Vec::new();
                for (q, &j) in todo.iter().enumerate() {
                    if o.adversarial[q] && o.in_bounds[q] && o.norms[q] <= e * (1.0 + EPS_TOL) {
                        found[j] = o.norms[q].min(e);
                    } else {
                        left.push(j);
                    }
                }
                todo = left;
            }
        }
    }
    Ok(found)
}

/// The report from the norms found per attack and sample: each attack's statistics, the best
/// known norm per sample (over the minimal-norm attacks), robust accuracy and its curve.
fn report(mut per_sample: PerSample, attacks: &[Box<dyn Attack>], seconds: &[f64], bounded: bool, opts: &RobustOptions) -> RobustReport {
    let (label, pred_all, norms) = (&per_sample.label, &per_sample.pred, &per_sample.norms);
    let (n, na) = (label.len(), attacks.len());
    let mut eps_sorted = opts.eps.clone();
    eps_sorted.sort_by(f64::total_cmp);
    eps_sorted.dedup();
    let is_correct: Vec<bool> = (0..n).map(|i| pred_all[i] == label[i]).collect();
    let n_correct = is_correct.iter().filter(|&&c| c).count();
    let over_correct = |v: &[f64]| -> Vec<f64> { v.iter().zip(&is_correct).filter(|(_, &c)| c).map(|(&x, _)| x).collect() };
    let min_over = |pick: &dyn Fn(usize) -> bool| -> Vec<f64> {
        (0..n).map(|i| (0..na).filter(|&a| pick(a)).map(|a| norms[a][i]).fold(f64::INFINITY, f64::min)).collect()
    };
    let min_norm_attacks = |a: usize| attacks[a].kind() == Kind::MinNorm;
    let best = min_over(&min_norm_attacks);
    let all = min_over(&|_| true);
    let acc_list = |v: &[f64]| -> Vec<f64> { opts.eps.iter().map(|&e| accuracy_at(v, e, n)).collect() };

    let mut stats = Vec::with_capacity(na);
    for (ai, a) in attacks.iter().enumerate() {
        let c = over_correct(&norms[ai]);
        let fooled = c.iter().filter(|v| v.is_finite()).count();
        let best_count = if a.kind() == Kind::MinNorm {
            (0..n).filter(|&i| is_correct[i] && norms[ai][i].is_finite() && norms[ai][i] <= best[i] * (1.0 + 1e-9)).count()
        } else {
            0
        };
        stats.push(AttackStats {
            attack: a.label().to_string(),
            config: a.describe(),
            kind: a.kind(),
            mean_norm: mean_finite(&c),
            median_norm: median(&c),
            success_rate: if n_correct == 0 { f64::NAN } else { fooled as f64 / n_correct as f64 },
            fooled,
            never_fooled: n_correct - fooled,
            best_count,
            robust_accuracy: acc_list(&norms[ai]),
            seconds: seconds[ai],
        });
    }
    let bc = over_correct(&best);
    let best_known = BestKnown {
        mean_norm: mean_finite(&bc),
        median_norm: median(&bc),
        min_norm: bc.iter().copied().fold(f64::INFINITY, f64::min),
        never_fooled: bc.iter().filter(|v| !v.is_finite()).count(),
        robust_accuracy: acc_list(&best),
    };

    // the curve: a dense grid for minimal-norm results, the requested ε for everything
    let top = over_correct(&all).into_iter().filter(|v| v.is_finite()).fold(eps_sorted.last().copied().unwrap_or(0.0), f64::max);
    let top = if top > 0.0 { top * 1.05 } else { 1.0 };
    let pts = opts.curve_points.max(1);
    let mut dense: Vec<f64> = (0..=pts).map(|i| top * i as f64 / pts as f64).chain(eps_sorted.iter().copied()).collect();
    dense.sort_by(f64::total_cmp);
    dense.dedup();
    let mut sparse = vec![0.0];
    sparse.extend(eps_sorted.iter().copied().filter(|&e| e > 0.0));
    let mut curve = Vec::new();
    let mut push = |name: &str, v: &[f64], grid: &[f64]| {
        for &e in grid {
            curve.push(CurvePoint { attack: name.to_string(), eps: e, robust_accuracy: accuracy_at(v, e, n) });
        }
    };
    for (ai, a) in attacks.iter().enumerate() {
        push(a.label(), &norms[ai], if a.kind() == Kind::MinNorm { &dense } else { &sparse });
    }
    let any_min = attacks.iter().any(|a| a.kind() == Kind::MinNorm);
    if any_min {
        push("best-known", &best, &dense);
    }
    push("all-attacks", &all, if any_min { &dense } else { &sparse });

    let robust_accuracy = acc_list(&all);
    (per_sample.best, per_sample.all) = (best, all);
    RobustReport {
        norm: opts.norm,
        samples: n,
        correct: n_correct,
        clean_error: if n == 0 { f64::NAN } else { 1.0 - n_correct as f64 / n as f64 },
        clean_accuracy: if n == 0 { f64::NAN } else { n_correct as f64 / n as f64 },
        bounded,
        eps: opts.eps.clone(),
        attacks: stats,
        best_known,
        robust_accuracy,
        curve,
        per_sample,
    }
}

/// `robust.csv`: `attack,eps,robust_accuracy`, one line per curve point.
pub fn curve_csv(r: &RobustReport) -> String {
    let mut s = String::from("attack,eps,robust_accuracy\n");
    for p in &r.curve {
        s.push_str(&format!("{},{},{}\n", csv_field(&p.attack), p.eps, p.robust_accuracy));
    }
    s
}

/// `robust_samples.csv`: `index,label,pred,<attack>...,best_known,all_attacks` (found norms; `inf`
/// where never fooled).
pub fn samples_csv(r: &RobustReport) -> String {
    let p = &r.per_sample;
    let mut s = String::from("index,label,pred");
    for a in &r.attacks {
        s.push(',');
        s.push_str(&csv_field(&a.attack));
    }
    s.push_str(",best_known,all_attacks\n");
    for i in 0..p.label.len() {
        s.push_str(&format!("{i},{},{}", p.label[i], p.pred[i]));
        for v in &p.norms {
            s.push_str(&format!(",{}", v[i]));
        }
        s.push_str(&format!(",{},{}\n", p.best[i], p.all[i]));
    }
    s
}

fn csv_field(s: &str) -> String {
    if s.contains(',') || s.contains('"') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Writes `robust.json` (the report plus `extra` fields), `robust.csv` and `robust_samples.csv`
/// into `dir`.
pub fn write(dir: &Path, r: &RobustReport, extra: &serde_json::Map<String, serde_json::Value>) -> anyhow::Result<()> {
    let mut v = serde_json::to_value(r)?;
    if let Some(o) = v.as_object_mut() {
        for (k, x) in extra {
            o.insert(k.clone(), x.clone());
        }
    }
    crate::rundir::write_atomic(&dir.join(ROBUST_JSON), serde_json::to_string_pretty(&v)?.as_bytes())?;
    crate::rundir::write_atomic(&dir.join(ROBUST_CSV), curve_csv(r).as_bytes())?;
    crate::rundir::write_atomic(&dir.join(ROBUST_SAMPLES_CSV), samples_csv(r).as_bytes())?;
    Ok(())
}
