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
pub fn autograd_input_vjp(model: &dyn Model, fwd: &Forward, v: &Tensor, rows: &Rows) -> Result<Tensor> {
    let points = rows.gather(&fwd.input)?.detach();
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

/// Asks candle to keep gradient graphs. Must run before the first `backward()` of every thread
/// that uses the fallback (candle caches the variable per thread).
pub fn enable_second_order() {
    std::env::set_var("CANDLE_GRAD_DO_NOT_DETACH", "1");
}

/// Whether candle's double backward keeps second-order terms on the calling thread: checks
/// d/dθ Σ ∂(θx)²/∂x = 4θx against its closed form.
pub fn second_order_available() -> Result<bool> {
    let dev = Device::Cpu;
    let theta = Var::new(&[1.5f64], &dev)?;
    let x = Var::new(&[2.0f64], &dev)?;
    let y = (theta.as_tensor() * x.as_tensor())?.sqr()?.sum_all()?;
    let g = y.backward()?;
    let Some(dx) = g.get(x.as_tensor()) else { return Ok(false) };
    let l = dx.sum_all()?;
    let g2 = l.backward()?;
    let Some(dtheta) = g2.get(theta.as_tensor()) else { return Ok(false) };
    let got = dtheta.to_dtype(DType::F64)?.to_vec1::<f64>()?[0];
    Ok((got - 4.0 * 1.5 * 2.0).abs() < 1e-9)
}
