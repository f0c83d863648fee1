//! Optimizers with PyTorch's semantics (coupled weight decay), global-norm gradient clipping, and
//! learning-rate schedules. State is kept as named tensors so checkpoints can save it.
use crate::dsl::{Optimizer as OptKind, Schedule};
use crate::params::ParamStore;
use candle_core::{backprop::GradStore, Result, Tensor, Var};
use std::collections::HashMap;

/// SGD with momentum (PyTorch's form) or Adam, both with L2 weight decay added to the gradient.
pub struct Optimizer {
    kind: OptKind,
    vars: Vec<(String, Var)>,
    pub lr: f64,
    momentum: f64,
    weight_decay: f64,
    /// SGD: momentum buffers. Adam: first moments.
    m: Vec<Option<Tensor>>,
    /// Adam: second moments.
    v: Vec<Option<Tensor>>,
    /// Steps taken (Adam's bias correction).
    pub t: u64,
}

/// What one optimizer step saw.
#[derive(Clone, Copy, Debug, Default)]
pub struct StepInfo {
    /// Global L2 norm of the gradient before clipping (weight decay excluded).
    pub grad_norm: f64,
    pub clipped: bool,
}

impl Optimizer {
    pub fn new(kind: OptKind, params: &ParamStore, lr: f64, momentum: f64, weight_decay: f64) -> Self {
        let vars = params.vars().to_vec();
        let n = vars.len();
        Self { kind, vars, lr, momentum, weight_decay, m: vec![None; n], v: vec![None; n], t: 0 }
    }

    /// Clips the gradient to global norm `clip` (0 = off), then updates the parameters.
    pub fn step(&mut self, grads: &GradStore, clip: f64) -> Result<StepInfo> {
        let gs: Vec<Option<Tensor>> = self.vars.iter().map(|(_, v)| grads.get(v.as_tensor()).map(|g| g.detach())).collect();
        let mut sq = 0f64;
        for g in gs.iter().flatten() {
            sq += g.sqr()?.sum_all()?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
        }
        let grad_norm = sq.sqrt();
        let scale = if clip > 0.0 && grad_norm > clip { clip / (grad_norm + 1e-6) } else { 1.0 };
        self.t += 1;
        for (i, g) in gs.into_iter().enumerate() {
            let Some(g) = g else { continue };
            let var = &self.vars[i].1;
            let theta = var.as_tensor().detach();
            let mut d = if scale != 1.0 { (g * scale)? } else { g };
            if self.weight_decay != 0.0 {
                d = (d + (&theta * self.weight_decay)?)?;
            }
            let update = match self.kind {
                OptKind::Sgd => {
                    let buf = match self.m[i].take() {
                        Some(b) if self.momentum != 0.0 => ((b * self.momentum)? + &d)?,
                        _ => d,
                    };
                    self.m[i] = Some(buf.clone());
                    (buf * self.lr)?
                }
                OptKind::Adam => {
                    let (b1, b2, eps) = (0.9, 0.999, 1e-8);
                    let m = match self.m[i].take() {
                        Some(m) => ((m * b1)? + (&d * (1.0 - b1))?)?,
                        None => (&d * (1.0 - b1))?,
                    };
                    let v = match self.v[i].take() {
                        Some(v) => ((v * b2)? + (d.sqr()? * (1.0 - b2))?)?,
                        None => (d.sqr()? * (1.0 - b2))?,
                    };
                    let mhat = (&m / (1.0 - b1.powi(self.t as i32)))?;
                    let vhat = (&v / (1.0 - b2.powi(self.t as i32)))?;
                    self.m[i] = Some(m);
                    self.v[i] = Some(v);
                    ((mhat / (vhat.sqrt()? + eps)?)? * self.lr)?
                }
            };
            var.set(&(theta - update)?)?;
        }
        Ok(StepInfo { grad_norm, clipped: scale != 1.0 })
    }

    /// State tensors for a checkpoint (`opt.m.<param>`, `opt.v.<param>`, `opt.t`).
    pub fn state(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for (i, (name, var)) in self.vars.iter().enumerate() {
            if let Some(m) = &self.m[i] {
                out.insert(format!("opt.m.{name}"), m.clone());
            }
            if let Some(v) = &self.v[i] {
                out.insert(format!("opt.v.{name}"), v.clone());
            }
            let _ = var;
        }
        out.insert("opt.t".into(), Tensor::new(&[self.t as f64], &candle_core::Device::Cpu)?);
        Ok(out)
    }

    /// Restores [`Optimizer::state`].
    pub fn load_state(&mut self, t: &HashMap<String, Tensor>) -> Result<()> {
        for (i, (name, var)) in self.vars.iter().enumerate() {
            let conv = |x: &Tensor| x.to_dtype(var.dtype())?.to_device(var.device());
            self.m[i] = t.get(&format!("opt.m.{name}")).map(conv).transpose()?;
            self.v[i] = t.get(&format!("opt.v.{name}")).map(conv).transpose()?;
        }
        if let Some(s) = t.get("opt.t") {
            self.t = s.to_dtype(candle_core::DType::F64)?.to_vec1::<f64>()?[0] as u64;
        }
        Ok(())
    }
}

/// The learning rate of `epoch` (0-based) under `schedule`.
pub fn learning_rate(base: f64, schedule: &Schedule, epoch: usize, epochs: usize) -> f64 {
    match schedule {
        Schedule::Constant => base,
        Schedule::Step { milestones, gamma } => base * gamma.powi(milestones.iter().filter(|&&m| epoch >= m).count() as i32),
        Schedule::Cosine => base * 0.5 * (1.0 + (std::f64::consts::PI * epoch as f64 / epochs.max(1) as f64).cos()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_schedule_decays_at_milestones() {
        let s = Schedule::Step { milestones: vec![50, 80], gamma: 0.1 };
        assert_eq!(learning_rate(0.01, &s, 49, 100), 0.01);
        assert!((learning_rate(0.01, &s, 50, 100) - 0.001).abs() < 1e-15);
        assert!((learning_rate(0.01, &s, 80, 100) - 0.0001).abs() < 1e-15);
        assert!((learning_rate(1.0, &Schedule::Cosine, 50, 100) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn sgd_matches_pytorch_momentum_with_weight_decay() {
        // One parameter, f(θ) = θ²/2 → g = θ. PyTorch: d = g + wd·θ; buf = μ·buf + d; θ -= lr·buf.
        let mut store = ParamStore::new();
        let mut rng = crate::data::Rng::new(0);
        let mut pb = crate::params::ParamBuilder::new(&mut store, &mut rng, candle_core::DType::F64, &candle_core::Device::Cpu);
        let p = pb.constant("p", &[1], 1.0).unwrap();
        let mut opt = Optimizer::new(OptKind::Sgd, &store, 0.1, 0.9, 0.01);
        let (mut theta, mut buf) = (1.0f64, 0.0f64);
        for i in 0..3 {
            let loss = (p.sqr().unwrap() * 0.5).unwrap().sum_all().unwrap();
            opt.step(&loss.backward().unwrap(), 0.0).unwrap();
            let d = theta + 0.01 * theta;
            buf = if i == 0 { d } else { 0.9 * buf + d };
            theta -= 0.1 * buf;
            let got = p.to_vec1::<f64>().unwrap()[0];
            assert!((got - theta).abs() < 1e-15, "step {i}: {got} vs {theta}");
        }
    }
}
