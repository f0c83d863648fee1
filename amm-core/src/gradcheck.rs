//! Finite-difference checks of amm's gradients, in f64: the engine's tests and `amm gradcheck`.
//!
//! The regularizer is a piecewise-smooth function of the weights: DeepFool's choices (which
//! samples step, which class each step aims at), the attack's success, the aggregation's
//! selection and the clipping are piecewise constant. The check evaluates the value at `θ ± h`
//! **from scratch** ([`Regularizer::decide`]: every DeepFool iterate recomputed, nothing reused
//! from the evaluation at `θ`, the terms summed on the host) and compares the decisions with
//! those at `θ`: an entry where one flips is reported as skipped, never as a pass. So the check
//! differences exactly the value amm reports, and a gradient that drops part of its derivative
//! (`chain=none`, `hog=false`) fails it.
use crate::data::Rng;
use crate::layer::{Ctx, Layer, Mode, Rows};
use crate::model::Model;
use crate::proxy::Chain;
use crate::regularizer::{RegTrace, Regularizer};
use crate::tensor::to_host;
use candle_core::{Device, Result, Tensor, Var};

/// Options of [`gradcheck`].
#[derive(Clone, Debug)]
pub struct GradcheckOptions {
    /// Entries checked per parameter tensor (chosen at random, seeded).
    pub per_tensor: usize,
    /// Central-difference step.
    pub h: f64,
    pub seed: u64,
    /// At most this many entries in all, spread over the tensors (`None`: `per_tensor` each).
    pub max_entries: Option<usize>,
    /// With `max_entries`: give every tensor at least one entry, even past `max_entries`.
    pub every_tensor: bool,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        Self { per_tensor: 4, h: 1e-6, seed: 0, max_entries: None, every_tensor: true }
    }
}

/// The outcome of [`gradcheck`].
#[derive(Clone, Debug, serde::Serialize)]
pub struct GradcheckReport {
    /// ‖FD − analytic‖ / ‖FD‖ over the checked entries: the headline figure.
    pub rel_err: f64,
    /// max over checked entries of |FD − analytic| / max(|FD|, |analytic|, 1e-3·‖g‖∞).
    pub max_rel_err: f64,
    /// ‖g − g_hog=false‖ / ‖g‖ over all parameters: how much the second-order terms contribute.
    pub hog_rel_diff: f64,
    /// ‖g − g_chain=none‖ / ‖g‖: how much the dependence of the iterates on the earlier steps
    /// contributes (`None` for proxies without a chain).
    pub chain_rel_diff: Option<f64>,
    /// Entries compared against finite differences.
    pub checked: usize,
    /// Entries skipped because a discrete decision (a DeepFool step's class or active samples,
    /// the attack's success, the selection, the clipping) differs at `θ ± h` from `θ`.
    pub skipped_decisions: usize,
    /// Entries skipped because ±h crossed a kink that is no decision (a ReLU or max-pool switch
    /// inside the network): central differences at h and h/2 disagree.
    pub skipped_kinks: usize,
    /// Checked entries per parameter tensor: (name, entries, max rel err).
    pub tensors: Vec<(String, usize, f64)>,
    /// The regularizer's value.
    pub loss: f64,
    /// Samples regularized / in the batch.
    pub selected: usize,
    pub batch: usize,
    /// DeepFool iterations run.
    pub iterations: usize,
    /// The worst entry: (parameter, flat index, FD, analytic).
    pub worst: Option<(String, usize, f64, f64)>,
    /// The analytic gradient that was checked, one host vector per parameter tensor.
    #[serde(skip)]
    pub gradient: Vec<Vec<f64>>,
}

/// The regularizer's weight gradient, one host vector per parameter tensor (zeros where the loss
/// does not depend on it).
pub fn grads_of(model: &dyn Model, loss: &Tensor) -> Result<Vec<Vec<f64>>> {
    let g = loss.backward()?;
    model
        .params()
        .vars()
        .iter()
        .map(|(_, v)| match g.get(v.as_tensor()) {
            Some(t) => to_host(t),
            None => Ok(vec![0.0; v.elem_count()]),
        })
        .collect()
}

fn set_entry(var: &Var, idx: usize, value: f64) -> Result<()> {
    let mut v = to_host(var.as_tensor())?;
    v[idx] = value;
    var.set(&Tensor::from_vec(v, var.shape(), var.device())?.to_dtype(var.dtype())?)
}

/// ‖a − b‖ / ‖a‖ over all tensors.
pub fn rel_diff(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    let (mut num, mut den) = (0.0, 0.0);
    for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
        num += (x - y) * (x - y);
        den += x * x;
    }
    if den > 0.0 {
        (num / den).sqrt()
    } else {
        0.0
    }
}

/// The gradient of `reg` replayed with the decisions of `trace` (every iterate recomputed).
fn replayed_grads(model: &dyn Model, reg: &Regularizer, x: &Tensor, y: &[u32], ctx: &Ctx, trace: &RegTrace) -> Result<Vec<Vec<f64>>> {
    let out = reg.compute(model, x, y, ctx, Some(trace))?;
    grads_of(model, &out.loss)
}

/// Checks the regularizer's weight gradient on `(x, y)` against central finite differences of
/// its value recomputed from scratch.
pub fn gradcheck(model: &dyn Model, reg: &Regularizer, x: &Tensor, y: &[u32], opts: &GradcheckOptions) -> Result<GradcheckReport> {
    let b = x.dim(0)?;
    let ctx = Ctx::new(Mode::Attack, opts.seed, b);
    let out = reg.compute(model, x, y, &ctx, None)?;
    let g = grads_of(model, &out.loss)?;
    let hog_rel_diff = rel_diff(&g, &replayed_grads(model, &reg.without_hog(), x, y, &ctx, &out.trace)?);
    let chain_rel_diff = match reg.with_chain(Chain::None) {
        Some(r) => Some(rel_diff(&g, &replayed_grads(model, &r, x, y, &ctx, &out.trace)?)),
        None => None,
    };
    let g_inf = g.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));

    // The value at the current weights, from scratch: `None` if a decision differs from θ's.
    let eval = || -> Result<Option<f64>> {
        let v = reg.decide(model, x, y, &ctx)?;
        Ok(v.trace.same_decisions(&out.trace).then_some(v.varying))
    };
    let mut rng = Rng::new(opts.seed).fork(0x9c);
    let (mut max_rel_err, mut checked, mut skipped_kinks, mut skipped_decisions, mut worst) = (0.0f64, 0usize, 0usize, 0usize, None);
    let (mut diff2, mut fd2) = (0.0f64, 0.0f64);
    let vars = model.params().vars();
    // How many entries each tensor gets: `per_tensor`, or `max_entries` (with one for every
    // tensor first, if asked) dealt round-robin in a seeded order.
    let mut quota = vec![opts.per_tensor.max(1); vars.len()];
    if let Some(total) = opts.max_entries {
        let base = usize::from(opts.every_tensor);
        quota = vec![base; vars.len()];
        let order = rng.permutation(vars.len());
        for k in 0..total.saturating_sub(base * vars.len()) {
            quota[order[k % vars.len().max(1)]] += 1;
        }
    }
    let mut tensors = Vec::with_capacity(vars.len());
    for (((name, var), grad), &q) in vars.iter().zip(&g).zip(&quota) {
        let n = var.elem_count();
        let mut idx: Vec<usize> = if n <= q { (0..n).collect() } else { (0..q).map(|_| rng.index(n)).collect() };
        idx.sort_unstable();
        idx.dedup();
        let orig = to_host(var.as_tensor())?;
        let (mut t_checked, mut t_err) = (0usize, 0.0f64);
        for i in idx {
            let central = |h: f64| -> Result<Option<f64>> {
                set_entry(var, i, orig[i] + h)?;
                let lp = eval();
                set_entry(var, i, orig[i] - h)?;
                let lm = eval();
                set_entry(var, i, orig[i])?;
                Ok(match (lp?, lm?) {
                    (Some(p), Some(m)) => Some((p - m) / (2.0 * h)),
                    _ => None,
                })
            };
            let (Some(fd1), Some(fd)) = (central(opts.h)?, central(opts.h / 2.0)?) else {
                skipped_decisions += 1;
                continue;
            };
            let an = grad[i];
            // A smooth function gives the same central difference at h and h/2 (up to O(h²));
            // a jump inside [θ−h, θ+h] gives differences that scale as 1/h.
            if (fd1 - fd).abs() > 1e-4 * fd.abs().max(fd1.abs()).max(1e-3 * g_inf) {
                skipped_kinks += 1;
                continue;
            }
            let rel = (fd - an).abs() / fd.abs().max(an.abs()).max(1e-3 * g_inf).max(1e-300);
            diff2 += (fd - an) * (fd - an);
            fd2 += fd * fd;
            checked += 1;
            t_checked += 1;
            t_err = t_err.max(rel);
            if rel >= max_rel_err {
                max_rel_err = rel;
                worst = Some((name.clone(), i, fd, an));
            }
        }
        tensors.push((name.clone(), t_checked, t_err));
    }
    Ok(GradcheckReport {
        rel_err: if fd2 > 0.0 { (diff2 / fd2).sqrt() } else { diff2.sqrt() },
        max_rel_err,
        hog_rel_diff,
        chain_rel_diff,
        checked,
        skipped_decisions,
        skipped_kinks,
        tensors,
        loss: out.value,
        selected: out.selected.len(),
        batch: b,
        iterations: out.iterations,
        worst,
        gradient: g,
    })
}

/// Brings batch-norm running statistics to those of `x` (Train-mode forwards update them with
/// momentum 0.1), as a trained model would have them; a no-op for models without buffers.
/// Without it a freshly initialised frozen-BN network normalises nothing and its logits explode.
pub fn calibrate_batch_norm(model: &dyn Model, x: &Tensor) -> Result<()> {
    if model.params().buffers().is_empty() {
        return Ok(());
    }
    let b = x.dim(0)?;
    for _ in 0..40 {
        model.forward(x, &Ctx::new(Mode::Train, 0, b))?;
    }
    Ok(())
}

/// A random f64 input of `batch` samples of `shape` and labels that mix correctly classified
/// samples (even indices: the model's own prediction) with misclassified ones.
pub fn random_batch(model: &dyn Model, batch: usize, seed: u64) -> Result<(Tensor, Vec<u32>)> {
    let mut rng = Rng::new(seed).fork(0xba7c);
    let mut shape = vec![batch];
    shape.extend_from_slice(model.input_shape());
    let n: usize = shape.iter().product();
    let x = Tensor::from_vec((0..n).map(|_| rng.normal()).collect::<Vec<f64>>(), shape, &Device::Cpu)?;
    calibrate_batch_norm(model, &x)?;
    let logits = to_host(&model.forward(&x, &Ctx::eval(batch))?.logits)?;
    let pred = crate::tensor::argmax_rows(&logits, model.classes());
    let c = model.classes() as u64;
    let y = (0..batch).map(|i| if i % 2 == 0 { pred[i] } else { ((pred[i] as u64 + 1 + rng.below(c - 1)) % c) as u32 }).collect();
    Ok((x, y))
}

/// Checks a layer's input VJP against candle's autograd and against central differences, for
/// `rows` cotangent rows per sample. Returns the largest relative error of the two comparisons.
pub fn check_layer_vjp(layer: &dyn Layer, input_shape: &[usize], batch: usize, rows_per_sample: usize, seed: u64) -> Result<(f64, f64)> {
    let mut rng = Rng::new(seed);
    let mut shape = vec![batch];
    shape.extend_from_slice(input_shape);
    let n: usize = shape.iter().product();
    let x = Tensor::from_vec((0..n).map(|_| rng.normal()).collect::<Vec<f64>>(), shape.clone(), &Device::Cpu)?;
    let ctx = Ctx::new(Mode::Attack, seed, batch);
    let (y, saved) = layer.forward(&x, &ctx)?;
    let index: Vec<u32> = (0..batch as u32).flat_map(|s| std::iter::repeat_n(s, rows_per_sample)).collect();
    let rows = Rows::new(&index, batch, &Device::Cpu)?;
    let mut vshape = y.dims().to_vec();
    vshape[0] = index.len();
    let vn: usize = vshape.iter().product();
    let v = Tensor::from_vec((0..vn).map(|_| rng.normal()).collect::<Vec<f64>>(), vshape, &Device::Cpu)?;
    let got = to_host(&layer.vjp(&saved, &v, &rows)?)?;

    // Autograd: the rows' inputs as one replicated batch.
    let xr = Var::from_tensor(&x.index_select(&rows.index, 0)?)?;
    let (yr, _) = layer.forward(xr.as_tensor(), &ctx.subset(&index))?;
    let s = (yr * &v)?.sum_all()?;
    let auto = to_host(s.backward()?.get(xr.as_tensor()).expect("input gradient"))?;
    let scale = auto.iter().fold(1e-12f64, |m, a| m.max(a.abs()));
    let err_auto = got.iter().zip(&auto).fold(0.0f64, |m, (a, b)| m.max((a - b).abs() / scale));

    // Central differences of v·layer(x) for a few input entries of each row.
    let per_row: usize = input_shape.iter().product();
    let xr_host = to_host(xr.as_tensor())?;
    let h = 1e-6;
    let mut err_fd = 0.0f64;
    for r in 0..index.len() {
        for _ in 0..3 {
            let j = r * per_row + rng.index(per_row);
            let f = |delta: f64| -> Result<f64> {
                let mut xv = xr_host.clone();
                xv[j] += delta;
                let xt = Tensor::from_vec(xv, xr.shape(), &Device::Cpu)?;
                let (yv, _) = layer.forward(&xt, &ctx.subset(&index))?;
                Ok(to_host(&(yv * &v)?.sum_all()?)?[0])
            };
            let fd = (f(h)? - f(-h)?) / (2.0 * h);
            err_fd = err_fd.max((fd - got[j]).abs() / scale);
        }
    }
    Ok((err_auto, err_fd))
}
