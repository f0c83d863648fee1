//! The input VJP of models that do not write their own: candle's double backward.
//!
//! candle 0.11.1 keeps the graph of gradients (so a second `backward()` sees the second-order
//! terms) only when `CANDLE_GRAD_DO_NOT_DETACH` is set, and reads that variable once per thread,
//! at the thread's first `backward()`. Without it the second-order terms vanish with no error
//! (../shared/notes/candle.md, Q1). So the fallback is used only after
//! [`second_order_available`] has confirmed, on this thread, that they are present.
use crate::layer::Rows;
use crate::model::{Forward, Model};
use candle_core::{DType, Device, Result, Tensor, Var};

/// `vᵀ ∂logits/∂x` per row: the model's own VJP, or candle's double backward if it has none.
pub fn input_vjp(model: &dyn Model, fwd: &Forward, v: &Tensor, rows: &Rows) -> Result<Tensor> {
    if let Some(t) = model.input_vjp(fwd, v, rows)? {
        return Ok(t);
    }
    autograd_input_vjp(model, fwd, v, rows)
}

/// The fallback: replicate each row's point, add a zero probe, forward, backward the seeds.
/// The point keeps its graph (DeepFool's `chain=full`), so the gradient depends on the weights
/// through it as well; a detached point gives the VJP at a constant point.
pub fn autograd_input_vjp(model: &dyn Model, fwd: &Forward, v: &Tensor, rows: &Rows) -> Result<Tensor> {
    let points = rows.gather(&fwd.input)?;
    let probe = Var::zeros(points.shape(), points.dtype(), points.device())?;
    let p = (points + probe.as_tensor())?;
    let idx = rows.index.to_vec1::<u32>()?;
    let out = model.forward(&p, &fwd.ctx.subset(&idx))?;
    let s = (out.logits * v)?.sum_all()?;
    let grads = s.backward()?;
    grads
        .get(probe.as_tensor())
        .cloned()
        .ok_or_else(|| candle_core::Error::Msg(format!("model `{}`: its logits do not depend on its input", model.describe())))
}

/// Whether `model` writes its own input VJP (probed on `x`, one sample is enough).
pub fn has_explicit_vjp(model: &dyn Model, x: &Tensor) -> Result<bool> {
    let x1 = x.narrow(0, 0, 1)?;
    let fwd = model.forward(&x1, &crate::layer::Ctx::eval(1))?;
    let v = Tensor::ones_like(&fwd.logits)?;
    let rows = Rows::new(&[0], 1, x.device())?;
    Ok(model.input_vjp(&fwd, &v, &rows)?.is_some())
}

/// Makes sure the input gradients of `model` can be differentiated again on this thread: nothing
/// to do for models with an explicit VJP; for the others, checks that candle's graph-keeping mode
/// is on (the `amm` binary turns it on at startup when it loads plugins, and `cargo test` through
/// `.cargo/config.toml`) and that second-order terms really are present, refusing to train
/// otherwise.
pub fn ensure_second_order(model: &dyn Model, x: &Tensor) -> anyhow::Result<()> {
    if has_explicit_vjp(model, x)? {
        return Ok(());
    }
    if !second_order_available()? {
        anyhow::bail!(
            "model `{}` has no explicit input VJP, so amm uses candle's double backward, but this thread already ran a \
             backward pass without CANDLE_GRAD_DO_NOT_DETACH and candle would silently drop the second-order terms; \
             start the process with CANDLE_GRAD_DO_NOT_DETACH=1 in the environment (amm sets it at startup when it loads plugins; \
             a program that embeds amm calls amm_core::autograd::enable_second_order first thing in main)",
            model.describe()
        );
    }
    Ok(())
}

/// Asks candle to keep gradient graphs (sets `CANDLE_GRAD_DO_NOT_DETACH=1`). Must run before the
/// first `backward()` of every thread that uses the fallback (candle caches the variable per
/// thread).
///
/// # Safety
///
/// It writes the process environment: call it before the process starts any other thread (first
/// thing in `main`), when nothing can read or write the environment concurrently; glibc's
/// `setenv` racing a `getenv` is undefined behaviour.
pub unsafe fn enable_second_order() {
    std::env::set_var("CANDLE_GRAD_DO_NOT_DETACH", "1");
}

/// Whether candle's double backward keeps second-order terms on the calling thread: checks
/// d/dθ ∂tanh(θx)/∂x against its closed form. (A single op such as (θx)² would not do: candle
/// detaches only the incoming upstream gradient, so the trap needs a chain of two ops to show.)
pub fn second_order_available() -> Result<bool> {
    let dev = Device::Cpu;
    let (th, xv) = (1.5f64, 0.4f64);
    let theta = Var::new(&[th], &dev)?;
    let x = Var::new(&[xv], &dev)?;
    let y = (theta.as_tensor() * x.as_tensor())?.tanh()?.sum_all()?;
    let g = y.backward()?;
    let Some(dx) = g.get(x.as_tensor()) else { return Ok(false) };
    let g2 = dx.sum_all()?.backward()?;
    let Some(dtheta) = g2.get(theta.as_tensor()) else { return Ok(false) };
    let got = dtheta.to_dtype(DType::F64)?.to_vec1::<f64>()?[0];
    let t = (th * xv).tanh();
    let want = (1.0 - t * t) - 2.0 * th * xv * t * (1.0 - t * t);
    Ok((got - want).abs() < 1e-9)
}
