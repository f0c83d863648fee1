//! A finished 2-D linear run read back for its figure: the training points (the dataset loaded
//! again, as the run saw it) and the boundary of its last checkpoint.
use amm_core::anyhow::{anyhow, Context, Result};
use amm_core::candle_core::DType;
use amm_core::dsl::RunConfig;
use amm_core::Registry;
use std::path::Path;

/// A two-class linear model on 2-D data, in input coordinates.
pub struct Linear2d {
    /// Training points (the data's mean added back) and their (training) labels.
    pub points: Vec<(f64, f64, u32)>,
    /// The boundary `w·p + c = 0` and the margin γ (distance of the closest correctly
    /// classified training point); None when the checkpoint could not be read.
    pub boundary: Option<([f64; 2], f64, Option<f64>)>,
}

/// The run in `dir` with config `cfg`, when it is a linear model on toy2d or CSV data with two
/// classes in two dimensions (else None).
pub fn read(cfg: &RunConfig, dir: &Path, reg: &Registry) -> Option<Linear2d> {
    if cfg.model.name != "linear" || cfg.data.name != "toy2d" && cfg.data.name != "csv" {
        return None;
    }
    let data = match amm_core::train::load_data(cfg, reg) {
        Ok(d) if d.shape == [2] && d.classes == 2 => d,
        _ => return None,
    };
    let mean = data.mean.clone().unwrap_or_else(|| vec![0.0; 2]);
    let points: Vec<(f64, f64, u32)> =
        data.train.x.chunks(2).zip(&data.train.y).map(|(p, &y)| (p[0] as f64 + mean[0] as f64, p[1] as f64 + mean[1] as f64, y)).collect();
    let boundary = read_linear(dir).ok().map(|(w, b)| {
        // In input coordinates: w·(p − mean) + b = w·p + (b − w·mean).
        let c = b - w[0] * mean[0] as f64 - w[1] * mean[1] as f64;
        let norm = w[0].hypot(w[1]).max(1e-300);
        let gamma = points
            .iter()
            .map(|q| (w[0] * q.0 + w[1] * q.1 + c, q.2))
            .filter(|(s, y)| (*s > 0.0) == (*y == 1))
            .map(|(s, _)| s.abs() / norm)
            .fold(None, |m: Option<f64>, d| Some(m.map_or(d, |m| m.min(d))));
        (w, c, gamma)
    });
    Some(Linear2d { points, boundary })
}

/// A two-class linear model's `w = W₁ − W₀` and `b = b₁ − b₀` (class 1 where `w·x + b > 0`).
fn read_linear(dir: &Path) -> Result<([f64; 2], f64)> {
    let t = amm_core::rundir::load_tensors(&dir.join(amm_core::rundir::LAST))?;
    let get = |k: &str| t.get(k).with_context(|| format!("checkpoint has no `{k}`"));
    let w = get("model.fc.weight")?.to_dtype(DType::F64)?.to_vec2::<f64>()?;
    let b = get("model.fc.bias")?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
    if w.len() != 2 || w.iter().any(|r| r.len() != 2) || b.len() != 2 {
        return Err(anyhow!("not a 2-class model on 2-D inputs"));
    }
    Ok(([w[1][0] - w[0][0], w[1][1] - w[0][1]], b[1] - b[0]))
}
