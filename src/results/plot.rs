//! Figures (SVG and PNG, with plotters) of an experiment's runs, in the shape of the paper's:
//!
//! - `convergence`: test error and margin against epoch, one line per configuration, mean over
//!   seeds with a shaded ±std band (Figs. 2–3);
//! - `train_size`, `label_noise`: final test error and margin against the training-set size or
//!   the label-noise fraction, one line per regularizer configuration (Figs. 4–5);
//! - `boundaries`: for 2-D data and linear models, the training points, the learned boundary and
//!   the margin band, one panel per configuration (Fig. 1);
//! - `robust_accuracy`: accuracy under every attack of `eval.attacks` against ε, one line per
//!   configuration.
//!
//! Each is written as SVG and PNG (see [`super::figure`]); the drawing is in [`super::lines`]
//! and [`super::boundaries`].
use super::boundaries::boundaries;
use super::figure::save;
use super::lines::{LinesFigure, Panel, Points};
use super::metrics::{mean_std, metric_format};
use super::report::{Config, Report};
use amm_core::anyhow::{Context, Result};
use amm_core::Registry;
use std::path::{Path, PathBuf};

/// Writes every figure the report's runs allow into `out`; returns the files written.
pub fn report_figures(report: &Report, reg: &Registry, out: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut written = Vec::new();
    if let Some(fig) = convergence(report)? {
        written.extend(save(&fig, out, "convergence")?);
    }
    for (key, stem, x_desc) in [
        ("data.train_size", "train_size", "training samples"),
        ("data.label_noise", "label_noise", "label noise (fraction of training labels)"),
    ] {
        if report.varying.iter().any(|k| k == key) {
            if let Some(fig) = against(report, key, x_desc) {
                written.extend(save(&fig, out, stem)?);
            }
        }
    }
    if let Some(fig) = boundaries(report, reg)? {
        written.extend(save(&fig, out, "boundaries")?);
    }
    if let Some(fig) = robustness(report) {
        written.extend(save(&fig, out, "robust_accuracy")?);
    }
    Ok(written)
}

/// Robust accuracy (every attack of `eval.attacks` together) against ε, mean ± std over seeds,
/// one line per configuration: from the `robust` summary each run's result.json carries.
fn robustness(report: &Report) -> Option<LinesFigure> {
    let (mut labels, mut lines, mut norm) = (Vec::new(), Vec::new(), String::new());
    for c in &report.configs {
        let mut per_eps: std::collections::BTreeMap<u64, (f64, Vec<f64>)> = Default::default();
        for cell in report.cells_of(c) {
            let Some(r) = cell.result().and_then(|r| r.get("robust")) else { continue };
            norm = r.get("norm").and_then(|n| n.as_str()).unwrap_or("l2").to_string();
            let (Some(eps), Some(acc)) = (r.get("eps").and_then(|e| e.as_array()), r.get("robust_accuracy").and_then(|a| a.as_array()))
            else {
                continue;
            };
            for (e, a) in eps.iter().zip(acc) {
                if let (Some(e), Some(a)) = (e.as_f64(), a.as_f64()) {
                    per_eps.entry(e.to_bits()).or_insert((e, Vec::new())).1.push(100.0 * a);
                }
            }
        }
        if per_eps.is_empty() {
            continue;
        }
        let mut line: Points = per_eps.values().filter_map(|(e, v)| mean_std(v).map(|(m, s)| (*e, m, s.unwrap_or(0.0)))).collect();
        line.sort_by(|a, b| a.0.total_cmp(&b.0));
        lines.push(line);
        labels.push(report.label(c, &[]));
    }
    if lines.is_empty() {
        return None;
    }
    Some(LinesFigure {
        panels: vec![Panel {
            title: "robust accuracy (all attacks)".into(),
            x_desc: format!("ε ({norm})"),
            y_desc: "robust accuracy (%)".into(),
            x_log: false,
            x_int: false,
            x_keys: true,
            markers: true,
            lines,
        }],
        labels,
    })
}

/// Test errors (%) and margins of one epoch over seeds.
type ErrMargin = (Vec<f64>, Vec<f64>);

/// Per epoch, mean ± std over the runs in `dirs` of the test error (%) and the margin.
fn epoch_lines(dirs: &[&Path]) -> Result<Option<(Points, Points)>> {
    let mut per_epoch: std::collections::BTreeMap<usize, ErrMargin> = Default::default();
    for dir in dirs {
        let h = amm_core::train::read_metrics(dir).with_context(|| format!("reading {}", dir.display()))?;
        for m in h {
            if let Some(t) = &m.test {
                let e = per_epoch.entry(m.epoch).or_default();
                e.0.push(100.0 * t.error);
                e.1.push(t.margin);
            }
        }
    }
    if per_epoch.is_empty() {
        return Ok(None);
    }
    let line = |pick: fn(&ErrMargin) -> &Vec<f64>| -> Points {
        per_epoch
            .iter()
            .filter_map(|(&ep, v)| mean_std(pick(v)).map(|(m, s)| (ep as f64, m, if m.is_finite() { s.unwrap_or(0.0) } else { 0.0 })))
            .filter(|q| q.1.is_finite())
            .collect()
    };
    Ok(Some((line(|v| &v.0), line(|v| &v.1))))
}

/// Test error and margin against epoch, one line per labelled group of runs.
fn convergence_of(groups: &[(String, Vec<&Path>)]) -> Result<Option<LinesFigure>> {
    let mut labels = Vec::new();
    let (mut err, mut margin) = (Vec::new(), Vec::new());
    for (label, dirs) in groups {
        if let Some((e, m)) = epoch_lines(dirs)? {
            err.push(e);
            margin.push(m);
            labels.push(label.clone());
        }
    }
    if labels.is_empty() {
        return Ok(None);
    }
    let panel = |title: &str, y: &str, lines| Panel {
        title: title.into(),
        x_desc: "epoch".into(),
        y_desc: y.into(),
        x_log: false,
        x_int: true,
        x_keys: false,
        markers: false,
        lines,
    };
    Ok(Some(LinesFigure {
        panels: vec![panel("test error", "test error (%)", err), panel("margin (mean DeepFool L2)", "margin", margin)],
        labels,
    }))
}

/// Mean ± std over seeds, per epoch, of test error (%) and margin.
fn convergence(report: &Report) -> Result<Option<LinesFigure>> {
    let groups: Vec<(String, Vec<&Path>)> =
        report.configs.iter().map(|c| (report.label(c, &[]), report.cells_of(c).map(|cell| cell.dir.as_path()).collect())).collect();
    convergence_of(&groups)
}

/// A grid's summary: test error and margin against epoch, one line per run, as `STEM.svg` and
/// `STEM.png` in `dir`. Writes nothing when no run has evaluated yet.
pub fn runs_convergence(dir: &Path, stem: &str, runs: &[(String, PathBuf)]) -> Result<Vec<PathBuf>> {
    let groups: Vec<(String, Vec<&Path>)> = runs.iter().map(|(name, d)| (name.clone(), vec![d.as_path()])).collect();
    match convergence_of(&groups)? {
        Some(fig) => save(&fig, dir, stem),
        None => Ok(Vec::new()),
    }
}

/// Final test error and margin against a setting (`data.train_size`, `data.label_noise`), one
/// line per configuration of the other settings.
fn against(report: &Report, key: &str, x_desc: &str) -> Option<LinesFigure> {
    let mut groups: Vec<(String, Vec<&Config>)> = Vec::new();
    for c in &report.configs {
        let l = report.label(c, &[key]);
        match groups.iter_mut().find(|(g, _)| *g == l) {
            Some((_, v)) => v.push(c),
            None => groups.push((l, vec![c])),
        }
    }
    let x_of = |c: &Config| -> Option<f64> {
        if key == "data.train_size" {
            // `all` is the dataset's size: the runs record what they trained on.
            let n: Vec<f64> = report.cells_of(c).filter_map(|cell| cell.metric("train_samples")).collect();
            if let Some((m, _)) = mean_std(&n) {
                return Some(m);
            }
        }
        c.get(key)?.parse().ok()
    };
    let (mut err, mut margin, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    for (label, configs) in groups {
        let (mut e, mut m): (Points, Points) = (Vec::new(), Vec::new());
        for c in configs {
            let Some(x) = x_of(c) else { continue };
            for (metric, dst) in [("test_error", &mut e), ("margin", &mut m)] {
                let f = metric_format(metric);
                let xs: Vec<f64> = report.cells_of(c).filter_map(|cell| cell.metric(metric)).map(|v| v * f.scale).collect();
                if let Some((mean, sd)) = mean_std(&xs) {
                    dst.push((x, mean, sd.unwrap_or(0.0)));
                }
            }
        }
        if e.is_empty() && m.is_empty() {
            continue;
        }
        e.sort_by(|a, b| a.0.total_cmp(&b.0));
        m.sort_by(|a, b| a.0.total_cmp(&b.0));
        err.push(e);
        margin.push(m);
        labels.push(label);
    }
    if labels.is_empty() {
        return None;
    }
    let xs: Vec<f64> = err.iter().flatten().map(|q| q.0).collect();
    let x_log = key == "data.train_size" && {
        let lo = xs.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = xs.iter().cloned().fold(0.0, f64::max);
        lo > 0.0 && hi / lo >= 8.0
    };
    let what = if key == "data.train_size" { "training-set size" } else { "label noise" };
    let panel = |title: String, y: &str, lines| Panel {
        title,
        x_desc: x_desc.into(),
        y_desc: y.into(),
        x_log,
        x_int: false,
        x_keys: true,
        markers: true,
        lines,
    };
    Some(LinesFigure {
        panels: vec![panel(format!("test error vs {what}"), "test error (%)", err), panel(format!("margin vs {what}"), "margin", margin)],
        labels,
    })
}
