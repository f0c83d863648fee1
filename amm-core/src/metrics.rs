//! What a run records: the metrics of each epoch (`metrics.jsonl`, `metrics.csv`) and the
//! run's result (`result.json`), with their readers. The trainer writes them; `amm report`,
//! `amm eval` and resumed runs read them.
use crate::eval::EvalMetrics;
use crate::rundir::{self, METRICS_CSV, METRICS_JSONL};
use crate::step::StepStats;
use anyhow::{bail, Result};
use std::path::Path;

/// The sums over one epoch's steps that its [`EpochMetrics`] are the means of.
#[derive(Default)]
pub(crate) struct EpochTotals {
    pub steps: usize,
    pub stats: StepStats,
    pub clipped_steps: usize,
    /// Milliseconds spent in the steps.
    pub ms: f64,
}

impl EpochTotals {
    pub fn add(&mut self, st: &StepStats, ms: f64) {
        let a = &mut self.stats;
        a.loss += st.loss;
        a.ce += st.ce;
        a.reg += st.reg;
        a.train_error += st.train_error;
        a.reg_correct += st.reg_correct;
        a.reg_wrong += st.reg_wrong;
        a.reg_clipped += st.reg_clipped;
        a.attack_success += st.attack_success;
        self.clipped_steps += st.grad_clipped as usize;
        self.ms += ms;
    }

    /// The epoch's metrics: the means per step, and the evaluation.
    pub fn metrics(&self, epoch: usize, lr: f64, train_seconds: f64, val_error: Option<f64>, test: Option<EvalMetrics>) -> EpochMetrics {
        let (a, k) = (&self.stats, self.steps as f64);
        EpochMetrics {
            epoch,
            lr,
            loss: a.loss / k,
            ce: a.ce / k,
            reg: a.reg / k,
            train_error: a.train_error / k,
            reg_correct: a.reg_correct as f64 / k,
            reg_wrong: a.reg_wrong as f64 / k,
            reg_clipped: a.reg_clipped as f64 / k,
            attack_success: a.attack_success / k,
            grad_clipped: self.clipped_steps as f64 / k,
            ms_per_step: self.ms / k,
            train_seconds,
            val_error,
            test,
        }
    }
}

/// Metrics of one epoch (one line of `metrics.jsonl`).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct EpochMetrics {
    /// 1-based.
    pub epoch: usize,
    pub lr: f64,
    pub loss: f64,
    pub ce: f64,
    pub reg: f64,
    pub train_error: f64,
    /// Mean samples regularized per step (correct / misclassified).
    pub reg_correct: f64,
    pub reg_wrong: f64,
    /// Mean λ·terms clipped per step.
    pub reg_clipped: f64,
    pub attack_success: f64,
    /// Fraction of steps whose gradient was clipped.
    pub grad_clipped: f64,
    pub ms_per_step: f64,
    /// Training time so far (evaluation excluded).
    pub train_seconds: f64,
    pub val_error: Option<f64>,
    pub test: Option<EvalMetrics>,
}

/// The final metrics of a run (`result.json`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct RunResult {
    pub name: String,
    pub seed: u64,
    pub model: String,
    pub reg: String,
    pub data: String,
    pub epochs: usize,
    pub test_error: f64,
    pub margin: f64,
    pub margin_min: f64,
    pub margin_median: f64,
    pub margin_rel: f64,
    pub attack_success: f64,
    pub margin_long: Option<f64>,
    pub val_error: Option<f64>,
    pub best_epoch: Option<usize>,
    pub train_seconds: f64,
    pub ms_per_step: f64,
    pub params: usize,
    pub train_samples: usize,
    pub test_samples: usize,
    /// Robustness of the final model (`eval.attacks`): per attack the minimal norms and success
    /// rate, the best known margin, robust accuracy per ε (robust.json has everything).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub robust: Option<serde_json::Value>,
    /// `eval.train_margin`: the final model's mean and smallest DeepFool margin over the
    /// training samples (measured as the test margin is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_margin: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_margin_min: Option<f64>,
    /// What looks wrong with a run that finished (a collapse: error at chance, no boundary
    /// found); also printed when the run ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl RunResult {
    /// Checks what a finished run must hold: finite metrics, rates in [0, 1].
    pub(crate) fn validate(&self) -> std::result::Result<(), String> {
        for (k, v) in [
            ("test_error", self.test_error),
            ("margin", self.margin),
            ("margin_median", self.margin_median),
            ("margin_min", self.margin_min),
            ("margin_rel", self.margin_rel),
            ("attack_success", self.attack_success),
            ("train_seconds", self.train_seconds),
            ("ms_per_step", self.ms_per_step),
        ] {
            if !v.is_finite() {
                return Err(format!("`{k}` is {v}"));
            }
        }
        for (k, v) in [("test_error", self.test_error), ("attack_success", self.attack_success)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("`{k}` = {v} is not a rate in [0, 1]"));
            }
        }
        if self.epochs == 0 {
            return Err("`epochs` is 0".into());
        }
        Ok(())
    }
}

/// Reads and validates a `result.json`: a truncated, hand-edited or poisoned file is an error
/// that names it, never a row of results.
pub fn read_result(path: &Path) -> Result<RunResult> {
    let text = std::fs::read_to_string(path).map_err(|e| rundir::io_error(e, format_args!("reading {}", path.display())))?;
    let r: RunResult = serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{} is damaged: not a run result ({e})", path.display()))?;
    r.validate().map_err(|e| anyhow::anyhow!("{} is damaged: {e}", path.display()))?;
    Ok(r)
}

impl EpochMetrics {
    /// The metrics that are NaN or infinite: a diverged epoch.
    pub fn non_finite(&self) -> Vec<&'static str> {
        let mut bad = Vec::new();
        for (k, v) in [("loss", self.loss), ("ce", self.ce), ("reg", self.reg), ("train_error", self.train_error)] {
            if !v.is_finite() {
                bad.push(k);
            }
        }
        if self.val_error.is_some_and(|v| !v.is_finite()) {
            bad.push("val_error");
        }
        if let Some(t) = &self.test {
            for (k, v) in [("test error", t.error), ("test margin", t.margin), ("test margin_median", t.margin_median)] {
                if !v.is_finite() {
                    bad.push(k);
                }
            }
        }
        bad
    }
}

pub(crate) fn write_metrics(dir: &Path, history: &[EpochMetrics]) -> Result<()> {
    let mut jsonl = String::new();
    let mut csv = String::from("epoch,lr,loss,ce,reg,train_error,val_error,test_error,margin,margin_median,margin_min,attack_success,reg_correct,reg_wrong,reg_clipped,grad_clipped,ms_per_step,train_seconds\n");
    for m in history {
        jsonl.push_str(&serde_json::to_string(m)?);
        jsonl.push('\n');
        let t = m.test.as_ref();
        let o = |v: Option<f64>| v.map(|v| format!("{v}")).unwrap_or_default();
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            m.epoch,
            m.lr,
            m.loss,
            m.ce,
            m.reg,
            m.train_error,
            o(m.val_error),
            o(t.map(|t| t.error)),
            o(t.map(|t| t.margin)),
            o(t.map(|t| t.margin_median)),
            o(t.map(|t| t.margin_min)),
            o(t.map(|t| t.attack_success)),
            m.reg_correct,
            m.reg_wrong,
            m.reg_clipped,
            m.grad_clipped,
            m.ms_per_step,
            m.train_seconds
        ));
    }
    rundir::write_atomic(&dir.join(METRICS_JSONL), jsonl.as_bytes())?;
    rundir::write_atomic(&dir.join(METRICS_CSV), csv.as_bytes())
}

/// Reads the metrics history of a run directory; a line that does not parse is an error.
pub fn read_metrics(dir: &Path) -> Result<Vec<EpochMetrics>> {
    let (history, bad) = read_metrics_lenient(dir)?;
    match bad.first() {
        Some(b) => bail!("{b}"),
        None => Ok(history),
    }
}

/// Reads the metrics history, skipping lines that do not parse (or repeat an epoch); returns
/// the good lines and one message per skipped line (`FILE:LINE: why`).
pub fn read_metrics_lenient(dir: &Path) -> Result<(Vec<EpochMetrics>, Vec<String>)> {
    let p = dir.join(METRICS_JSONL);
    if !p.exists() {
        return Ok((Vec::new(), Vec::new()));
    }
    let text = std::fs::read(&p).map_err(|e| rundir::io_error(e, format_args!("reading {}", p.display())))?;
    let text = String::from_utf8_lossy(&text);
    let (mut good, mut bad): (Vec<EpochMetrics>, Vec<String>) = (Vec::new(), Vec::new());
    for (i, l) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        match serde_json::from_str::<EpochMetrics>(l) {
            Ok(m) if m.non_finite().is_empty() && good.last().is_none_or(|g| g.epoch < m.epoch) => good.push(m),
            Ok(m) if !m.non_finite().is_empty() => {
                bad.push(format!("{}:{}: epoch {} has non-finite {}", p.display(), i + 1, m.epoch, m.non_finite().join(", ")))
            }
            Ok(m) => bad.push(format!("{}:{}: epoch {} out of order", p.display(), i + 1, m.epoch)),
            Err(e) => bad.push(format!("{}:{}: not a metrics line ({e})", p.display(), i + 1)),
        }
    }
    Ok((good, bad))
}
