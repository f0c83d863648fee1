//! Progress display: bars on a terminal, one plain line per epoch otherwise, nothing when quiet.
use amm_core::data::Prepared;
use amm_core::dsl::RunConfig;
use amm_core::model::Model;
use amm_core::step::StepStats;
use amm_core::train::{EpochMetrics, Progress};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

pub struct Display {
    quiet: bool,
    tty: bool,
    label: String,
    bar: Option<ProgressBar>,
    epochs: usize,
    // running means of the epoch for the bar
    n: usize,
    loss: f64,
    err: f64,
    ms: f64,
}

impl Display {
    pub fn new(quiet: bool, label: &str) -> Self {
        Self {
            quiet,
            tty: std::io::stderr().is_terminal(),
            label: label.to_string(),
            bar: None,
            epochs: 0,
            n: 0,
            loss: 0.0,
            err: 0.0,
            ms: 0.0,
        }
    }
}

fn pct(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

impl Progress for Display {
    fn start(&mut self, cfg: &RunConfig, model: &dyn Model, data: &Prepared, resumed_at: usize) {
        if self.quiet {
            return;
        }
        let reg = cfg.reg.as_ref().map_or("none".to_string(), |r| r.to_string());
        eprintln!(
            "{}{} on {} ({} train / {} val / {} test, {:?}), {} params, seed {}, reg: {}{}",
            self.label,
            cfg.model,
            cfg.data.name,
            data.train.len(),
            data.val.len(),
            data.test.len(),
            data.shape,
            model.params().count(),
            cfg.seed,
            reg,
            if resumed_at > 0 { format!(", resuming after epoch {resumed_at}") } else { String::new() }
        );
    }
    fn epoch_start(&mut self, epoch: usize, epochs: usize, steps: usize) {
        self.epochs = epochs;
        (self.n, self.loss, self.err, self.ms) = (0, 0.0, 0.0, 0.0);
        if self.quiet || !self.tty {
            return;
        }
        let bar = ProgressBar::new(steps as u64);
        bar.set_style(ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}").expect("valid template").progress_chars("=> "));
        bar.set_prefix(format!("{}epoch {epoch}/{epochs}", self.label));
        self.bar = Some(bar);
    }
    fn step(&mut self, _step: usize, s: &StepStats, ms: f64) {
        self.n += 1;
        self.loss += s.loss;
        self.err += s.train_error;
        self.ms += ms;
        if let Some(b) = &self.bar {
            let n = self.n as f64;
            b.set_message(format!("loss {:.4}  err {}  {:.1} ms/step", self.loss / n, pct(self.err / n), self.ms / n));
            b.inc(1);
        }
    }
    fn evaluating(&mut self) {
        if let Some(b) = &self.bar {
            b.set_message("evaluating (test error, DeepFool margins)...");
        }
    }
    fn epoch_end(&mut self, m: &EpochMetrics) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        if self.quiet {
            return;
        }
        let mut line = format!(
            "{}epoch {:>3}/{}  loss {:.4}  ce {:.4}  reg {:.4}  train err {}",
            self.label,
            m.epoch,
            self.epochs,
            m.loss,
            m.ce,
            m.reg,
            pct(m.train_error)
        );
        if let Some(v) = m.val_error {
            line.push_str(&format!("  val err {}", pct(v)));
        }
        if let Some(t) = &m.test {
            line.push_str(&format!("  test err {}  margin {:.4}", pct(t.error), t.margin));
        }
        line.push_str(&format!("  {:.1} ms/step", m.ms_per_step));
        eprintln!("{line}");
    }
    fn note(&mut self, message: &str) {
        if !self.quiet {
            eprintln!("{}{message}", self.label);
        }
    }
    fn warn(&mut self, message: &str) {
        // Shown even with --quiet: a warning is not progress.
        match &self.bar {
            Some(b) => b.suspend(|| eprintln!("{}warning: {message}", self.label)),
            None => eprintln!("{}warning: {message}", self.label),
        }
    }
}
