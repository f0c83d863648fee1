//! Optimizers with PyTorch's semantics (coupled weight decay) and global-norm gradient clipping
//! (schedules: `schedule.rs`). State is kept as named tensors so checkpoints can save it. The
//! built-ins register here (`train.optimizer = adam`); plugins add theirs through the same
//! [`Optimize`] trait.
use crate::params::ParamStore;
use candle_core::{backprop::GradStore, CpuStorage, Layout, Result, Storage, Tensor, Var};
use std::collections::HashMap;
use std::sync::Mutex;

/// What a training step updates the weights with.
pub trait Optimize: Send {
    /// Clips the gradient to global norm `clip` (0 = off), then updates the parameters.
    fn step(&mut self, grads: &GradStore, clip: f64) -> Result<StepInfo>;
    /// The learning rate of the next step.
    fn lr(&self) -> f64;
    /// Sets it (the schedule does, every epoch).
    fn set_lr(&mut self, lr: f64);
    /// State tensors for a checkpoint, named so that they do not clash with the weights
    /// (`opt.<...>`).
    fn state(&self) -> Result<HashMap<String, Tensor>>;
    /// Restores [`Optimize::state`].
    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()>;
}

/// The update rule of [`Optimizer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// SGD with momentum.
    Sgd,
    /// Adam.
    Adam,
}

/// SGD with momentum (PyTorch's form) or Adam, both with L2 weight decay added to the gradient.
pub struct Optimizer {
    kind: Method,
    vars: Vec<(String, Var)>,
    pub lr: f64,
    momentum: f64,
    weight_decay: f64,
    /// SGD: momentum buffers. Adam: first moments.
    m: Vec<Option<Tensor>>,
    /// Adam: second moments.
    v: Vec<Option<Tensor>>,
    /// SGD on CPU: momentum buffers in host memory, updated by [`FusedSgd`].
    host: Vec<Option<HostBuf>>,
    /// Whether SGD on CPU takes the fused path (off only to test it against the tensor path).
    fused: bool,
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
    pub fn new(kind: Method, params: &ParamStore, lr: f64, momentum: f64, weight_decay: f64) -> Self {
        let vars = params.vars().to_vec();
        let n = vars.len();
        Self { kind, vars, lr, momentum, weight_decay, m: vec![None; n], v: vec![None; n], host: vec![None; n], fused: true, t: 0 }
    }

    /// Clips the gradient to global norm `clip` (0 = off), then updates the parameters.
    pub fn step(&mut self, grads: &GradStore, clip: f64) -> Result<StepInfo> {
        let gs: Vec<Option<Tensor>> = self.vars.iter().map(|(_, v)| grads.get(v.as_tensor()).map(|g| g.detach())).collect();
        let mut sq = 0f64;
        for g in gs.iter().flatten() {
            sq += match host_sum_sq(g) {
                Some(s) => s,
                None => g.sqr()?.sum_all()?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?,
            };
        }
        let grad_norm = sq.sqrt();
        let scale = if clip > 0.0 && grad_norm > clip { clip / (grad_norm + 1e-6) } else { 1.0 };
        self.t += 1;
        for (i, g) in gs.into_iter().enumerate() {
            let Some(g) = g else { continue };
            let var = &self.vars[i].1;
            if self.fused && self.kind == Method::Sgd && var.device().is_cpu() && g.is_contiguous() && var.is_contiguous() {
                // One pass over θ, g and the momentum buffer instead of ~8 tensor ops that each
                // allocate a parameter-sized buffer (a third of a CE step on CPU was these).
                let mut host = match (self.host[i].take(), self.m[i].take()) {
                    (Some(h), _) => h,
                    (None, Some(t)) => HostBuf::from_tensor(&t)?,
                    (None, None) => HostBuf::zeros(var.dtype(), var.elem_count())?,
                };
                let op =
                    FusedSgd { buf: Mutex::new(&mut host), scale, weight_decay: self.weight_decay, momentum: self.momentum, lr: self.lr };
                var.as_tensor().inplace_op2(&g, &op)?;
                self.host[i] = Some(host);
                continue;
            }
            let theta = var.as_tensor().detach();
            let mut d = if scale != 1.0 { (g * scale)? } else { g };
            if self.weight_decay != 0.0 {
                d = (d + (&theta * self.weight_decay)?)?;
            }
            let update = match self.kind {
                Method::Sgd => {
                    let buf = match self.m[i].take() {
                        Some(b) if self.momentum != 0.0 => ((b * self.momentum)? + &d)?,
                        _ => d,
                    };
                    self.m[i] = Some(buf.clone());
                    (buf * self.lr)?
                }
                Method::Adam => {
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
            if let Some(h) = &self.host[i] {
                out.insert(format!("opt.m.{name}"), h.to_tensor(var.shape())?);
            }
            if let Some(v) = &self.v[i] {
                out.insert(format!("opt.v.{name}"), v.clone());
            }
        }
        out.insert("opt.t".into(), Tensor::new(&[self.t as f64], &candle_core::Device::Cpu)?);
        Ok(out)
    }

    /// Restores [`Optimizer::state`].
    pub fn load_state(&mut self, t: &HashMap<String, Tensor>) -> Result<()> {
        for (i, (name, var)) in self.vars.iter().enumerate() {
            let conv = |x: &Tensor| x.to_dtype(var.dtype())?.to_device(var.device());
            self.m[i] = t.get(&format!("opt.m.{name}")).map(conv).transpose()?;
            self.host[i] = None;
            self.v[i] = t.get(&format!("opt.v.{name}")).map(conv).transpose()?;
        }
        if let Some(s) = t.get("opt.t") {
            self.t = s.to_dtype(candle_core::DType::F64)?.to_vec1::<f64>()?[0] as u64;
        }
        Ok(())
    }
}

impl Optimize for Optimizer {
    fn step(&mut self, grads: &GradStore, clip: f64) -> Result<StepInfo> {
        Optimizer::step(self, grads, clip)
    }
    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
    fn state(&self) -> Result<HashMap<String, Tensor>> {
        Optimizer::state(self)
    }
    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        Optimizer::load_state(self, state)
    }
}

/// Σ g² in f64 straight from a contiguous CPU tensor (no temporary); `None` elsewhere.
fn host_sum_sq(g: &Tensor) -> Option<f64> {
    let (storage, layout) = g.storage_and_layout();
    let (a, b) = layout.contiguous_offsets()?;
    match &*storage {
        Storage::Cpu(CpuStorage::F32(v)) => Some(par_sum_sq(&v[a..b], f64::from)),
        Storage::Cpu(CpuStorage::F64(v)) => Some(par_sum_sq(&v[a..b], |x| x)),
        _ => None,
    }
}

/// [`sum_sq`] over the thread pool for large slices. Chunks are fixed, so the sum does not
/// depend on the number of threads.
fn par_sum_sq<T: Copy + Send + Sync>(v: &[T], f: impl Fn(T) -> f64 + Sync + Send) -> f64 {
    use rayon::prelude::*;
    let chunk = 1 << 15;
    if v.len() <= chunk {
        return sum_sq(v, f);
    }
    let parts: Vec<f64> = v.par_chunks(chunk).map(|c| sum_sq(c, &f)).collect();
    parts.iter().sum()
}

/// Σ x² in f64 over 8 independent accumulators (one chain would serialise on the add latency
/// and not vectorise).
fn sum_sq<T: Copy>(v: &[T], f: impl Fn(T) -> f64) -> f64 {
    let mut acc = [0f64; 8];
    let chunks = v.chunks_exact(8);
    let rest: f64 = chunks.remainder().iter().map(|&x| f(x) * f(x)).sum();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += f(x) * f(x);
        }
    }
    acc.iter().sum::<f64>() + rest
}

/// A momentum buffer in host memory.
#[derive(Clone)]
enum HostBuf {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl HostBuf {
    fn zeros(dtype: candle_core::DType, n: usize) -> Result<Self> {
        match dtype {
            candle_core::DType::F32 => Ok(HostBuf::F32(vec![0.0; n])),
            candle_core::DType::F64 => Ok(HostBuf::F64(vec![0.0; n])),
            d => candle_core::bail!("SGD: parameters of dtype {d:?} are not supported (f32 or f64)"),
        }
    }

    fn from_tensor(t: &Tensor) -> Result<Self> {
        let t = t.flatten_all()?;
        match t.dtype() {
            candle_core::DType::F32 => Ok(HostBuf::F32(t.to_vec1()?)),
            _ => Ok(HostBuf::F64(t.to_dtype(candle_core::DType::F64)?.to_vec1()?)),
        }
    }

    fn to_tensor(&self, shape: &candle_core::Shape) -> Result<Tensor> {
        match self {
            HostBuf::F32(v) => Tensor::from_slice(v, shape, &candle_core::Device::Cpu),
            HostBuf::F64(v) => Tensor::from_slice(v, shape, &candle_core::Device::Cpu),
        }
    }
}

/// PyTorch's SGD step on θ in place: `d = s·g + wd·θ; buf = μ·buf + d; θ −= lr·buf`, with the
/// momentum buffer updated in the same pass. The arithmetic and its order are the tensor
/// path's, so both give the same bits (a zero buffer makes the first step `buf = d`, as PyTorch).
struct FusedSgd<'a> {
    buf: Mutex<&'a mut HostBuf>,
    scale: f64,
    weight_decay: f64,
    momentum: f64,
    lr: f64,
}

impl candle_core::InplaceOp2 for FusedSgd<'_> {
    fn name(&self) -> &'static str {
        "fused-sgd"
    }

    fn cpu_fwd(&self, theta: &mut CpuStorage, lt: &Layout, g: &CpuStorage, lg: &Layout) -> Result<()> {
        let mut buf = self.buf.lock().map_err(|_| candle_core::Error::Msg("fused-sgd: poisoned lock".into()))?;
        let ((t0, t1), (g0, g1)) = match (lt.contiguous_offsets(), lg.contiguous_offsets()) {
            (Some(t), Some(g)) if t.1 - t.0 == g.1 - g.0 => (t, g),
            _ => candle_core::bail!("fused-sgd: θ and its gradient must be contiguous and of one size"),
        };
        macro_rules! update {
            ($t:ty, $th:expr, $g:expr, $b:expr) => {{
                use rayon::prelude::*;
                if $b.len() != t1 - t0 {
                    candle_core::bail!("fused-sgd: momentum buffer of {} values for {} parameters", $b.len(), t1 - t0);
                }
                // Branch-free so that it vectorises: ×1 and +0 are exact, so a scale of 1, no
                // weight decay or no momentum give what skipping those terms gives.
                let (s, wd, mu, lr) = (self.scale as $t, self.weight_decay as $t, self.momentum as $t, self.lr as $t);
                let chunk = 1 << 15;
                $th[t0..t1].par_chunks_mut(chunk).zip($g[g0..g1].par_chunks(chunk)).zip($b.par_chunks_mut(chunk)).for_each(
                    |((th, g), b)| {
                        for ((th, &gi), m) in th.iter_mut().zip(g).zip(b.iter_mut()) {
                            let d = gi * s + *th * wd;
                            *m = *m * mu + d;
                            *th -= *m * lr;
                        }
                    },
                );
            }};
        }
        match (theta, g, &mut **buf) {
            (CpuStorage::F32(th), CpuStorage::F32(g), HostBuf::F32(b)) => update!(f32, th, g, b),
            (CpuStorage::F64(th), CpuStorage::F64(g), HostBuf::F64(b)) => update!(f64, th, g, b),
            _ => candle_core::bail!("fused-sgd: θ, its gradient and the momentum buffer must all be f32 or all f64"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fused CPU step gives the tensor path's bits, clipped or not, and survives a
    /// checkpoint round trip of its host-side momentum buffers.
    #[test]
    fn fused_sgd_equals_the_tensor_path_bit_for_bit() {
        let run = |fused: bool, reload_at: Option<usize>| -> Vec<f32> {
            let mut store = ParamStore::new();
            let mut rng = crate::data::Rng::new(7);
            let mut pb = crate::params::ParamBuilder::new(&mut store, &mut rng, candle_core::DType::F32, &candle_core::Device::Cpu);
            let w = pb.kaiming("w", &[64, 33], 4).unwrap();
            let mut opt = Optimizer::new(Method::Sgd, &store, 0.05, 0.9, 1e-3);
            opt.fused = fused;
            for step in 0..6 {
                if reload_at == Some(step) {
                    let state = opt.state().unwrap();
                    opt = Optimizer::new(Method::Sgd, &store, 0.05, 0.9, 1e-3);
                    opt.load_state(&state).unwrap();
                }
                let loss = (w.sqr().unwrap().sqr().unwrap() * 0.25).unwrap().sum_all().unwrap();
                // A clip of 5 is active (the gradient norm starts near 60): the scale ≠ 1 path.
                opt.step(&loss.backward().unwrap(), 5.0).unwrap();
            }
            w.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        };
        let tensor_path = run(false, None);
        let fused = run(true, None);
        assert!(tensor_path.iter().zip(&fused).all(|(a, b)| a.to_bits() == b.to_bits()), "fused SGD differs from the tensor path");
        assert_eq!(run(true, Some(3)), fused, "a checkpoint round trip of the momentum buffers changes the result");
    }

    #[test]
    fn sgd_matches_pytorch_momentum_with_weight_decay() {
        // One parameter, f(θ) = θ²/2 → g = θ. PyTorch: d = g + wd·θ; buf = μ·buf + d; θ -= lr·buf.
        let mut store = ParamStore::new();
        let mut rng = crate::data::Rng::new(0);
        let mut pb = crate::params::ParamBuilder::new(&mut store, &mut rng, candle_core::DType::F64, &candle_core::Device::Cpu);
        let p = pb.constant("p", &[1], 1.0).unwrap();
        let mut opt = Optimizer::new(Method::Sgd, &store, 0.1, 0.9, 0.01);
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
