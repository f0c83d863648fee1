//! The metrics of a report: which may be asked for, how each is shown (header, scale,
//! decimals), and the statistics over seeds (mean ± sample standard deviation).
use super::report::Report;
use amm_core::anyhow::{bail, Result};
use amm_core::serde_json::Value;

impl Report {
    /// Fails on a metric no result holds and amm does not write.
    pub fn check_metrics(&self, metrics: &[String]) -> Result<()> {
        if metrics.is_empty() {
            bail!("--metrics: name at least one metric");
        }
        let mut available: Vec<String> = KNOWN_METRICS.iter().map(|s| s.to_string()).collect();
        // Every numeric leaf, nested ones by their dotted path.
        fn leaves(prefix: &str, v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    for (k, x) in m {
                        leaves(&if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") }, x, out);
                    }
                }
                Value::Number(_) if !out.iter().any(|o| o == prefix) => out.push(prefix.to_string()),
                _ => {}
            }
        }
        for c in &self.cells {
            if let Some(r) = c.result() {
                leaves("", r, &mut available);
            }
        }
        for m in metrics {
            if !available.contains(m) {
                bail!("--metrics: no result has a numeric `{m}`; known: {}", available.join(", "));
            }
        }
        Ok(())
    }
}

/// Fields of result.json that may be asked for even before any run finished.
const KNOWN_METRICS: &[&str] = &[
    "test_error",
    "margin",
    "margin_min",
    "margin_median",
    "margin_rel",
    "attack_success",
    "margin_long",
    "val_error",
    "best_epoch",
    "train_seconds",
    "ms_per_step",
    "params",
    "train_samples",
    "test_samples",
    "epochs",
];

/// How a metric is shown: its header, CSV column stem, scale and decimals.
#[derive(Clone, Debug)]
pub struct MetricFormat {
    pub header: String,
    pub csv: String,
    pub scale: f64,
    pub decimals: usize,
}

pub fn metric_format(name: &str) -> MetricFormat {
    let percent = |header: &str, decimals| MetricFormat { header: header.into(), csv: format!("{name}_pct"), scale: 100.0, decimals };
    let plain = |decimals| MetricFormat { header: name.into(), csv: name.into(), scale: 1.0, decimals };
    let named = |header: &str, decimals| MetricFormat { header: header.into(), csv: name.into(), scale: 1.0, decimals };
    match name {
        "robust.best_known_median" => named("best-known margin (median)", 3),
        "robust.best_known_mean" => named("best-known margin (mean)", 3),
        "robust.clean_error" => percent("clean error (%)", 2),
        n if n.starts_with("robust.attacks.") && n.ends_with("_norm") => plain(3),
        "test_error" => percent("test error (%)", 2),
        "val_error" => percent("val error (%)", 2),
        "attack_success" => percent("attack success (%)", 1),
        "margin" | "margin_min" | "margin_median" | "margin_long" | "train_margin" | "train_margin_min" => plain(3),
        "train_seconds" | "best_epoch" | "epochs" => plain(1),
        "ms_per_step" => plain(2),
        "params" | "train_samples" | "test_samples" => plain(0),
        _ => plain(4),
    }
}

/// Mean and sample standard deviation (n − 1; None for one value); None for no values.
pub fn mean_std(xs: &[f64]) -> Option<(f64, Option<f64>)> {
    if xs.is_empty() {
        return None;
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let std = (xs.len() > 1).then(|| (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
    Some((mean, std))
}

/// Fixed decimals, never `-0.00`.
pub fn fmt_fixed(x: f64, decimals: usize) -> String {
    let s = format!("{x:.decimals$}");
    if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
        s[1..].to_string()
    } else {
        s
    }
}
