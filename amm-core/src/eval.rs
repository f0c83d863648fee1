//! Evaluation: test error and the margin as the paper reports it — the mean ‖r‖₂ of an
//! untargeted 5-iteration DeepFool with per-step overshoot 0.02 over all test images — plus the
//! smallest and median margin, ρ/‖x‖, the attack's success rate and a longer attack's margin.
use crate::data::Split;
use crate::layer::Ctx;
use crate::model::Model;
use crate::proxy::{DeepFool, DeepFoolConfig, Norm, Pass, Proxy};
use crate::tensor::{argmax_rows, to_host};
use candle_core::{DType, Device, Result, Tensor};

/// Evaluation settings.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    pub iters: usize,
    pub overshoot: f64,
    /// Iterations of the second, longer attack (0 = skip).
    pub long_iters: usize,
    /// Evaluate the first N test samples only (0 = all).
    pub samples: usize,
    pub batch: usize,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self { iters: 5, overshoot: 0.02, long_iters: 50, samples: 0, batch: 500 }
    }
}

/// The metrics of one evaluation.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct EvalMetrics {
    pub error: f64,
    /// Mean ‖r‖₂ of the `iters`-step DeepFool over every evaluated sample.
    pub margin: f64,
    pub margin_min: f64,
    pub margin_median: f64,
    /// Mean ‖r‖₂ / ‖x‖₂.
    pub margin_rel: f64,
    /// Fraction of samples the attack flipped.
    pub attack_success: f64,
    /// Mean ‖r‖₂ of the `long_iters`-step DeepFool (absent when skipped).
    pub margin_long: Option<f64>,
    pub samples: usize,
}

/// Error only (no attack), for the validation split.
pub fn error(model: &dyn Model, split: &Split, shape: &[usize], dtype: DType, device: &Device, batch: usize) -> Result<f64> {
    let d: usize = shape.iter().product();
    let n = split.len();
    let mut wrong = 0;
    for start in (0..n).step_by(batch.max(1)) {
        let end = (start + batch).min(n);
        let x = batch_of(split, start, end, shape, d, dtype, device)?;
        let logits = to_host(&model.forward(&x, &Ctx::eval(end - start))?.logits)?;
        let pred = argmax_rows(&logits, model.classes());
        wrong += pred.iter().zip(&split.y[start..end]).filter(|(p, y)| p != y).count();
    }
    Ok(if n == 0 { f64::NAN } else { wrong as f64 / n as f64 })
}

fn batch_of(split: &Split, start: usize, end: usize, shape: &[usize], d: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let mut s = vec![end - start];
    s.extend_from_slice(shape);
    Tensor::from_slice(&split.x[start * d..end * d], s, device)?.to_dtype(dtype)
}

/// Untargeted DeepFool margins (no graph): every sample is attacked away from its prediction.
/// Returns (ρ, success) per sample.
pub fn deepfool_margins(model: &dyn Model, x: &Tensor, norm: Norm, iters: usize, overshoot: f64) -> Result<(Vec<f64>, Vec<bool>)> {
    let n = x.dim(0)?;
    let logits = to_host(&model.forward(x, &Ctx::eval(n))?.logits)?;
    let pred = argmax_rows(&logits, model.classes());
    let df = DeepFool::new(DeepFoolConfig {
        norm,
        iters,
        overshoot,
        candidates: model.classes(),
        hog: false,
        chain: crate::proxy::Chain::None,
        keep_failed: true,
        require_flip: true,
    });
    let out = df.run(model, x, &pred, &Ctx::eval(n), Pass::Decide)?;
    Ok((out.rho_values, out.success))
}

/// One test sample as `amm eval --per-sample` reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct SampleRow {
    /// Index in the split.
    pub index: usize,
    pub label: u32,
    pub prediction: u32,
    /// The paper's margin: ‖r‖₂ of the evaluation DeepFool (infinite if it found no boundary).
    pub margin: f64,
    /// Whether that DeepFool changed the prediction.
    pub flipped: bool,
    pub logits: Vec<f32>,
}

/// Test error and margins on `split`.
pub fn evaluate(
    model: &dyn Model,
    split: &Split,
    shape: &[usize],
    dtype: DType,
    device: &Device,
    opts: &EvalOptions,
) -> Result<EvalMetrics> {
    Ok(evaluate_samples(model, split, shape, dtype, device, opts)?.0)
}

/// [`evaluate`], and every sample's row.
pub fn evaluate_samples(
    model: &dyn Model,
    split: &Split,
    shape: &[usize],
    dtype: DType,
    device: &Device,
    opts: &EvalOptions,
) -> Result<(EvalMetrics, Vec<SampleRow>)> {
    let d: usize = shape.iter().product();
    let n = if opts.samples > 0 { opts.samples.min(split.len()) } else { split.len() };
    let (mut wrong, mut rhos, mut rels, mut longs, mut flipped) = (0usize, Vec::with_capacity(n), 0.0, Vec::new(), 0usize);
    let mut rows = Vec::with_capacity(n);
    let k = model.classes();
    for start in (0..n).step_by(opts.batch.max(1)) {
        let end = (start + opts.batch).min(n);
        let x = batch_of(split, start, end, shape, d, dtype, device)?;
        let logits = to_host(&model.forward(&x, &Ctx::eval(end - start))?.logits)?;
        let pred = argmax_rows(&logits, model.classes());
        wrong += pred.iter().zip(&split.y[start..end]).filter(|(p, y)| p != y).count();
        let (rho, ok) = deepfool_margins(model, &x, Norm::L2, opts.iters, opts.overshoot)?;
        let xn = to_host(&Norm::L2.of_rows(&x)?)?;
        for i in 0..rho.len() {
            rels += rho[i] / xn[i].max(1e-12);
        }
        flipped += ok.iter().filter(|&&s| s).count();
        for (i, (&p, l)) in pred.iter().zip(logits.chunks(k)).enumerate() {
            let logits = l.iter().map(|&v| v as f32).collect();
            rows.push(SampleRow { index: start + i, label: split.y[start + i], prediction: p, margin: rho[i], flipped: ok[i], logits });
        }
        rhos.extend(rho);
        if opts.long_iters > 0 {
            longs.extend(deepfool_margins(model, &x, Norm::L2, opts.long_iters, opts.overshoot)?.0);
        }
    }
    let mut sorted = rhos.clone();
    sorted.sort_by(f64::total_cmp);
    let mean = |v: &[f64]| if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 };
    let median = if sorted.is_empty() {
        f64::NAN
    } else if sorted.len() % 2 == 1 {
        sorted[sorted.len() / 2]
    } else {
        0.5 * (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2])
    };
    let metrics = EvalMetrics {
        error: wrong as f64 / n.max(1) as f64,
        margin: mean(&rhos),
        margin_min: sorted.first().copied().unwrap_or(f64::NAN),
        margin_median: median,
        margin_rel: rels / n.max(1) as f64,
        attack_success: flipped as f64 / n.max(1) as f64,
        margin_long: if longs.is_empty() { None } else { Some(mean(&longs)) },
        samples: n,
    };
    Ok((metrics, rows))
}

/// `index,label,prediction,margin,flipped,logit_0,…`: the rows as CSV.
pub fn samples_csv(rows: &[SampleRow], classes: usize) -> String {
    let mut out = String::from("index,label,prediction,margin,flipped");
    for c in 0..classes {
        out.push_str(&format!(",logit_{c}"));
    }
    out.push('\n');
    for r in rows {
        out.push_str(&format!("{},{},{},{},{}", r.index, r.label, r.prediction, r.margin, r.flipped as u8));
        for l in &r.logits {
            out.push_str(&format!(",{l}"));
        }
        out.push('\n');
    }
    out
}
