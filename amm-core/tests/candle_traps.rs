//! The candle 0.11.1 traps amm's layers work around (../shared/notes/candle.md). Each test
//! asserts that the trap still exists, so that we notice when candle fixes it (then the test
//! fails and the workaround can be reconsidered), and that amm's replacement is right.
//! (The `CANDLE_GRAD_DO_NOT_DETACH` trap has its own test.)
use amm_core::candle_core::{DType, Device, Result, Tensor, Var, D};
use amm_core::candle_nn;
use amm_core::layers::{GroupNorm, MaxPool2d};
use amm_core::tensor::to_host;
use amm_core::{Ctx, Layer, Rows};

/// `max_pool2d`'s backward gives each maximum 1/(k·k) of the gradient instead of all of it.
#[test]
fn max_pool2d_backward_is_wrong_at_first_order() -> Result<()> {
    let x = Var::from_tensor(&Tensor::arange(1.0f64, 17.0, &Device::Cpu)?.reshape((1, 1, 4, 4))?)?;
    let y = x.as_tensor().max_pool2d(2)?;
    assert_eq!(to_host(&y)?, vec![6.0, 8.0, 14.0, 16.0]);
    let g = to_host(y.sum_all()?.backward()?.get(x.as_tensor()).expect("gradient"))?;
    let maxima = [5, 7, 13, 15];
    for (i, v) in g.iter().enumerate() {
        let want = if maxima.contains(&i) { 0.25 } else { 0.0 };
        assert_eq!(*v, want, "candle's max_pool2d backward changed at {i}: {g:?} (the trap may be fixed)");
    }

    // amm's MaxPool2d: its VJP and autograd of its forward both give 1 at the maxima.
    let pool = MaxPool2d::new(2);
    let (y, saved) = pool.forward(x.as_tensor(), &Ctx::eval(1))?;
    assert_eq!(to_host(&y)?, vec![6.0, 8.0, 14.0, 16.0]);
    let ones = Tensor::ones((1, 1, 2, 2), DType::F64, &Device::Cpu)?;
    let vjp = to_host(&pool.vjp(&saved, &ones, &Rows::new(&[0], 1, &Device::Cpu)?)?)?;
    let auto = to_host(y.sum_all()?.backward()?.get(x.as_tensor()).expect("gradient"))?;
    for i in 0..16 {
        let want = if maxima.contains(&i) { 1.0 } else { 0.0 };
        assert_eq!(vjp[i], want);
        assert_eq!(auto[i], want);
    }
    Ok(())
}

fn f32_input(shape: (usize, usize)) -> Result<Var> {
    let n = shape.0 * shape.1;
    let v: Vec<f32> = (0..n).map(|i| ((i * 7 % 11) as f32 - 5.0) / 3.0).collect();
    Var::from_tensor(&Tensor::from_vec(v, shape, &Device::Cpu)?)
}

fn weights(shape: (usize, usize)) -> Result<Tensor> {
    let n = shape.0 * shape.1;
    Tensor::from_vec((0..n).map(|i| ((i * 5 % 7) as f32 - 3.0) / 2.0).collect::<Vec<f32>>(), shape, &Device::Cpu)
}

/// `softmax_last_dim` (a custom op without backward) gives no gradient and no error;
/// `candle_nn::ops::softmax` (composite) does.
#[test]
fn softmax_last_dim_has_no_gradient() -> Result<()> {
    let x = f32_input((2, 5))?;
    let w = weights((2, 5))?;
    let s = (candle_nn::ops::softmax_last_dim(x.as_tensor())? * &w)?.sum_all()?;
    assert!(s.backward()?.get(x.as_tensor()).is_none(), "softmax_last_dim now has a gradient (the trap may be fixed)");
    let s = (candle_nn::ops::softmax(x.as_tensor(), D::Minus1)? * &w)?.sum_all()?;
    let g = to_host(s.backward()?.get(x.as_tensor()).expect("softmax gradient"))?;
    assert!(g.iter().any(|v| v.abs() > 1e-3));
    // Each row of a softmax gradient sums to zero.
    for row in g.chunks(5) {
        assert!(row.iter().sum::<f64>().abs() < 1e-5);
    }
    Ok(())
}

/// The fused `layer_norm` and `rms_norm` have no backward: no gradient for the input or the
/// scale, and no error. amm's norms are written in ordinary ops.
#[test]
fn fused_layer_norm_and_rms_norm_have_no_gradient() -> Result<()> {
    let x = f32_input((3, 6))?;
    let alpha = Var::from_tensor(&Tensor::ones(6, DType::F32, &Device::Cpu)?)?;
    let beta = Tensor::zeros(6, DType::F32, &Device::Cpu)?;
    let w = weights((3, 6))?;
    let s = (candle_nn::ops::layer_norm(x.as_tensor(), alpha.as_tensor(), &beta, 1e-5)? * &w)?.sum_all()?;
    let g = s.backward()?;
    assert!(g.get(x.as_tensor()).is_none() && g.get(alpha.as_tensor()).is_none(), "layer_norm now has a gradient (the trap may be fixed)");
    let s = (candle_nn::ops::rms_norm(x.as_tensor(), alpha.as_tensor(), 1e-5)? * &w)?.sum_all()?;
    let g = s.backward()?;
    assert!(g.get(x.as_tensor()).is_none() && g.get(alpha.as_tensor()).is_none(), "rms_norm now has a gradient (the trap may be fixed)");

    // amm's GroupNorm with one group is a layer norm over the features: same values, and a
    // gradient that matches its own VJP.
    let gn = GroupNorm::new(1, alpha.as_tensor().clone(), beta.clone());
    let (y, saved) = gn.forward(x.as_tensor(), &Ctx::eval(3))?;
    let fused = candle_nn::ops::layer_norm(x.as_tensor(), alpha.as_tensor(), &beta, 1e-5)?;
    let diff = to_host(&(&y - &fused)?.abs()?.flatten_all()?.max(0)?)?[0];
    assert!(diff < 1e-5, "groupnorm(1) vs layer_norm: {diff}");
    let g = (&y * &w)?.sum_all()?.backward()?;
    let auto = to_host(g.get(x.as_tensor()).expect("groupnorm input gradient"))?;
    assert!(g.get(alpha.as_tensor()).is_some());
    let vjp = to_host(&gn.vjp(&saved, &w, &Rows::new(&[0, 1, 2], 3, &Device::Cpu)?)?)?;
    for (a, b) in auto.iter().zip(&vjp) {
        assert!((a - b).abs() < 1e-5);
    }
    Ok(())
}

/// Second order through `gather` with an index narrower than its source fails (the ScatterAdd
/// backward mixes up shapes); the same selection as a one-hot multiply works and matches finite
/// differences.
///
/// Second-order gradients need `CANDLE_GRAD_DO_NOT_DETACH`, read once per thread at its first
/// `backward()`: set here before this test's thread runs any. (It is process-wide; the other tests
/// of this file give the same first-order results either way.)
#[test]
fn gather_with_narrow_index_fails_at_second_order() -> Result<()> {
    std::env::set_var("CANDLE_GRAD_DO_NOT_DETACH", "1");
    let dev = Device::Cpu;
    let theta =
        Var::from_tensor(&Tensor::from_vec((0..36).map(|i| ((i * 7 % 13) as f64 - 6.0) / 10.0).collect::<Vec<_>>(), (6, 6), &dev)?)?;
    let x0 = Tensor::from_vec((0..18).map(|i| ((i * 5 % 11) as f64 - 5.0) / 4.0).collect::<Vec<_>>(), (3, 6), &dev)?;
    let idx = Tensor::new(&[[0u32, 3], [1, 5], [2, 4]], &dev)?;
    let mut onehot = vec![0f64; 18];
    for (r, cols) in [[0, 3], [1, 5], [2, 4]].iter().enumerate() {
        for c in cols {
            onehot[r * 6 + c] = 1.0;
        }
    }
    let onehot = Tensor::from_vec(onehot, (3, 6), &dev)?;

    // G(θ) = Σ (∂f/∂x)², f = Σ selected (xθ)²: the first gradient goes through the selection.
    let g_of = |theta: &Tensor, narrow_gather: bool| -> Result<Tensor> {
        let x = Var::from_tensor(&x0)?;
        let z = x.as_tensor().matmul(theta)?;
        // The gradient reaching the selection is not a constant (that case works).
        let f = if narrow_gather { z.gather(&idx, 1)?.sqr()?.sum_all()? } else { (z * &onehot)?.sqr()?.sum_all()? };
        let gx = f.backward()?.get(x.as_tensor()).expect("first-order gradient").clone();
        gx.sqr()?.sum_all()
    };

    let err = g_of(theta.as_tensor(), true)?.backward();
    let msg = format!("{:?}", err.as_ref().map(|_| ()));
    assert!(
        err.is_err() && msg.contains("shape mismatch"),
        "second order through a narrow gather now works (the trap may be fixed): {msg}"
    );

    let grads = g_of(theta.as_tensor(), false)?.backward()?;
    let analytic = to_host(grads.get(theta.as_tensor()).expect("second-order gradient"))?;
    let th = to_host(theta.as_tensor())?;
    let h = 1e-6;
    for j in [0usize, 7, 20, 35] {
        let at = |d: f64| -> Result<f64> {
            let mut t = th.clone();
            t[j] += d;
            Ok(to_host(&g_of(&Tensor::from_vec(t, (6, 6), &dev)?, false)?)?[0])
        };
        let fd = (at(h)? - at(-h)?) / (2.0 * h);
        assert!((fd - analytic[j]).abs() <= 1e-6 * fd.abs().max(1.0), "entry {j}: FD {fd} vs {}", analytic[j]);
    }
    Ok(())
}

/// candle's conv2d backward derives the transposed convolution's output padding from H alone, so
/// a strided convolution whose H and W leave different remainders has no input gradient (an
/// error). amm's Conv2d VJP pads each axis itself (checked against finite differences in
/// tests/layers.rs); only the cross-entropy backward of such an input would hit this.
#[test]
fn conv2d_backward_fails_for_mixed_parity_strided_inputs() -> Result<()> {
    let dev = Device::Cpu;
    let x = Var::from_tensor(&Tensor::ones((1, 1, 7, 8), DType::F64, &dev)?)?;
    let k = Tensor::ones((1, 1, 3, 3), DType::F64, &dev)?;
    let y = x.as_tensor().conv2d(&k, 1, 2, 1, 1)?;
    assert_eq!(y.dims(), &[1, 1, 4, 4]);
    let r = y.sum_all()?.backward();
    let msg = format!("{:?}", r.as_ref().map(|g| g.get(x.as_tensor()).map(|t| t.dims().to_vec())));
    assert!(r.is_err(), "conv2d backward now handles 7x8 with stride 2 (the trap may be fixed): {msg}");
    Ok(())
}
