//! The convolutional layers and CNN models: every input VJP against candle's autograd and central
//! differences, and every model's regularizer gradient (with its second-order terms) against
//! finite differences. All in f64 on the CPU.
use amm_core::aggregate::Avg;
use amm_core::candle_core::{DType, Device, Result, Tensor, Var};
use amm_core::data::Rng;
use amm_core::gradcheck::{check_layer_vjp, gradcheck, random_batch, GradcheckOptions};
use amm_core::layers::{
    batch_norm2d, conv2d, group_norm, Activation, AvgPool2d, BatchNorm2d, Concat, Conv2d, ConvConfig, GlobalAvgPool, GroupNorm, MaxPool2d,
    Residual, Sequential,
};
use amm_core::models::{convnet, densenet, densenet40, lenet, liunet, liunet64, liunet96, nin, resnet, resnet20, ResBlock, ResNorm};
use amm_core::params::{ParamBuilder, ParamStore};
use amm_core::proxy::{DeepFool, DeepFoolConfig, Norm};
use amm_core::regularizer::Regularizer;
use amm_core::shrink::{Shape, TwoSided};
use amm_core::tensor::to_host;
use amm_core::{Ctx, Layer, Mode, Network, Rows, Saved};
use std::sync::Arc;
use std::time::Instant;

const TOL: f64 = 1e-6;

/// Builds something from a fresh f64 parameter builder.
fn build<T>(seed: u64, f: impl FnOnce(&mut ParamBuilder) -> Result<T>) -> Result<(T, ParamStore)> {
    let mut store = ParamStore::new();
    let mut rng = Rng::new(seed);
    let t = {
        let mut pb = ParamBuilder::new(&mut store, &mut rng, DType::F64, &Device::Cpu);
        f(&mut pb)?
    };
    Ok((t, store))
}

fn randn(shape: &[usize], scale: f64, offset: f64, seed: u64) -> Result<Tensor> {
    let mut rng = Rng::new(seed);
    let n: usize = shape.iter().product();
    Tensor::from_vec((0..n).map(|_| offset + scale * rng.normal()).collect::<Vec<f64>>(), shape, &Device::Cpu)
}

/// `check_layer_vjp` with 1 and 3 rows per sample; returns the largest error seen.
fn check(name: &str, layer: &dyn Layer, input: &[usize], batch: usize) -> f64 {
    let mut worst = 0.0f64;
    for rows in [1, 3] {
        let (auto, fd) = check_layer_vjp(layer, input, batch, rows, 7 + rows as u64).unwrap_or_else(|e| panic!("{name} {input:?}: {e}"));
        println!("{name:<40} {input:?} rows/sample {rows}: vs autograd {auto:.2e}, vs FD {fd:.2e}");
        assert!(auto < TOL && fd < TOL, "{name} {input:?} rows {rows}: autograd {auto:e}, FD {fd:e}");
        worst = worst.max(auto).max(fd);
    }
    worst
}

#[test]
fn conv_vjp() -> Result<()> {
    // (in, out, k, stride, padding, groups, H, W)
    let cases = [
        (3, 4, 3, 1, 1, 1, 7, 7),
        (3, 4, 3, 1, 0, 1, 6, 6),
        (3, 5, 5, 1, 2, 1, 8, 8),
        (4, 6, 3, 1, 1, 2, 7, 9),
        (3, 4, 1, 1, 1, 1, 5, 5), // padding >= k: the conv_transpose2d form at stride 1
        (3, 4, 3, 2, 1, 1, 7, 7),
        (3, 4, 3, 2, 1, 1, 8, 8), // output_padding 1
        (4, 6, 3, 2, 0, 2, 9, 9),
        (4, 6, 5, 2, 2, 2, 8, 8),
        (3, 4, 1, 2, 0, 1, 7, 7), // a ResNet shortcut
    ];
    let mut worst = 0.0f64;
    for (i, &(cin, cout, k, s, p, g, h, w)) in cases.iter().enumerate() {
        let cfg = ConvConfig::pad(p).stride(s).groups(g);
        let (conv, _) = build(i as u64, |pb| conv2d(cin, cout, k, cfg, pb))?;
        let name = format!("conv {cin}->{cout} k{k} s{s} p{p} g{g}");
        worst = worst.max(check(&name, &conv, &[cin, h, w], 3));
        // The candle-op form (other devices, groups > 1) equals what ran above.
        let x = randn(&[2, cin, h, w], 1.0, 0.0, 5)?;
        let (y, saved) = conv.forward(&x, &Ctx::eval(2))?;
        let v = randn(y.dims(), 1.0, 0.0, 6)?;
        let ours = conv.vjp(&saved, &v, &Rows::new(&[0, 1], 2, &Device::Cpu)?)?;
        let diff = (ours - conv.vjp_candle(&v, h, w)?)?.abs()?.max_all()?.to_scalar::<f64>()?;
        assert!(diff < 1e-12, "{name}: the candle-op VJP differs by {diff}");
    }
    println!("conv: max error {worst:.2e}");
    Ok(())
}

/// Non-square inputs whose H and W need different output paddings: candle's own conv2d backward
/// cannot do them (it derives one output padding from H), so only finite differences here.
#[test]
fn conv_vjp_mixed_parity_fd() -> Result<()> {
    let (conv, _) = build(3, |pb| conv2d(2, 3, 3, ConvConfig::pad(1).stride(2), pb))?;
    let x = randn(&[2, 2, 7, 8], 1.0, 0.0, 1)?;
    let ctx = Ctx::eval(2);
    let (y, saved) = conv.forward(&x, &ctx)?;
    let v = randn(y.dims(), 1.0, 0.0, 2)?;
    let rows = Rows::new(&[0, 1], 2, &Device::Cpu)?;
    let got = to_host(&conv.vjp(&saved, &v, &rows)?)?;
    assert_eq!(got.len(), x.elem_count());
    let xh = to_host(&x)?;
    let h = 1e-6;
    let mut worst = 0.0f64;
    for j in (0..xh.len()).step_by(7) {
        let f = |d: f64| -> Result<f64> {
            let mut xv = xh.clone();
            xv[j] += d;
            let (y, _) = conv.forward(&Tensor::from_vec(xv, x.shape(), &Device::Cpu)?, &ctx)?;
            to_host(&(y * &v)?.sum_all()?).map(|v| v[0])
        };
        let fd = (f(h)? - f(-h)?) / (2.0 * h);
        worst = worst.max((fd - got[j]).abs());
    }
    println!("conv 7x8 stride 2: max abs error vs FD {worst:.2e}");
    assert!(worst < TOL);
    Ok(())
}

#[test]
fn pool_vjp() {
    let mut worst = 0.0f64;
    for (k, shape) in [(2, [3, 8, 8]), (2, [3, 7, 7]), (3, [2, 9, 8]), (2, [2, 5, 6])] {
        worst = worst.max(check(&format!("maxpool {k}"), &MaxPool2d::new(k), &shape, 3));
    }
    println!("maxpool: max error {worst:.2e}");
    let mut worst = 0.0f64;
    for (k, shape) in [(2, [3, 8, 8]), (2, [2, 7, 9]), (3, [2, 8, 7])] {
        worst = worst.max(check(&format!("avgpool {k}"), &AvgPool2d::new(k), &shape, 3));
    }
    println!("avgpool: max error {worst:.2e}");
    let worst = check("global avgpool", &GlobalAvgPool, &[3, 5, 6], 3);
    println!("global avgpool: max error {worst:.2e}");
}

/// Ties (a window of zeros after a ReLU): the whole cotangent goes to the first maximum, in the
/// VJP and in autograd of the forward alike.
#[test]
fn maxpool_ties_go_to_the_first_maximum() -> Result<()> {
    let x = Tensor::from_vec(vec![0.0f64, 0.0, 0.0, 0.0, 1.0, 3.0, 3.0, 2.0], (1, 2, 2, 2), &Device::Cpu)?;
    let pool = MaxPool2d::new(2);
    let xv = Var::from_tensor(&x)?;
    let (y, saved) = pool.forward(xv.as_tensor(), &Ctx::eval(1))?;
    assert_eq!(to_host(&y)?, vec![0.0, 3.0]);
    let v = Tensor::from_vec(vec![2.0f64, 5.0], (1, 2, 1, 1), &Device::Cpu)?;
    let vjp = to_host(&pool.vjp(&saved, &v, &Rows::new(&[0], 1, &Device::Cpu)?)?)?;
    assert_eq!(vjp, vec![2.0, 0.0, 0.0, 0.0, 0.0, 5.0, 0.0, 0.0]);
    let auto = to_host((y * v)?.sum_all()?.backward()?.get(xv.as_tensor()).expect("grad"))?;
    assert_eq!(auto, vjp);
    Ok(())
}

fn random_group_norm(groups: usize, c: usize, seed: u64) -> Result<GroupNorm> {
    Ok(GroupNorm::new(groups, randn(&[c], 0.5, 1.0, seed)?, randn(&[c], 0.5, 0.0, seed + 1)?))
}

fn random_batch_norm(c: usize, seed: u64) -> Result<BatchNorm2d> {
    let rv = (randn(&[c], 0.5, 0.0, seed + 3)?.sqr()? + 0.5)?;
    Ok(BatchNorm2d::new(
        randn(&[c], 0.5, 1.0, seed)?,
        randn(&[c], 0.5, 0.0, seed + 1)?,
        Var::from_tensor(&randn(&[c], 0.5, 0.0, seed + 2)?)?,
        Var::from_tensor(&rv)?,
    ))
}

#[test]
fn norm_vjp() -> Result<()> {
    let mut worst = 0.0f64;
    for (g, shape) in [(2, [4, 5, 5]), (1, [3, 4, 4]), (6, [6, 3, 3]), (4, [8, 7, 6])] {
        let gn = random_group_norm(g, shape[0], 11)?;
        worst = worst.max(check(&format!("groupnorm {g} groups"), &gn, &shape, 3));
    }
    println!("groupnorm: max error {worst:.2e}");
    let (gn, _) = build(1, |pb| group_norm(2, 4, pb))?;
    check("groupnorm (built, γ=1 β=0)", &gn, &[4, 5, 5], 2);
    let worst = check("frozen batchnorm (Attack mode)", &random_batch_norm(4, 21)?, &[4, 5, 6], 3);
    println!("frozen batchnorm: max error {worst:.2e}");
    Ok(())
}

/// Train mode: batch statistics, running statistics updated (momentum 0.1, unbiased variance),
/// no input VJP.
#[test]
fn batchnorm_train_mode() -> Result<()> {
    let (bn, store) = build(1, |pb| batch_norm2d(3, pb))?;
    assert_eq!(store.buffers().len(), 2);
    assert_eq!(store.vars().len(), 2);
    let x = randn(&[4, 3, 5, 5], 2.0, 1.5, 9)?;
    let xv = Var::from_tensor(&x)?;
    let (y, saved) = bn.forward(xv.as_tensor(), &Ctx::new(Mode::Train, 0, 4))?;
    // Per channel: mean 0, biased variance ≈ 1 (γ = 1, β = 0).
    let yc = y.transpose(0, 1)?.reshape((3, 100))?;
    for m in to_host(&yc.mean(1)?)? {
        assert!(m.abs() < 1e-12);
    }
    for v in to_host(&yc.sqr()?.mean(1)?)? {
        assert!((v - 1.0).abs() < 1e-4); // var/(var + eps)
    }
    let xc = x.transpose(0, 1)?.reshape((3, 100))?;
    let mean = to_host(&xc.mean(1)?)?;
    let var = to_host(&xc.broadcast_sub(&xc.mean_keepdim(1)?)?.sqr()?.sum(1)?)?;
    let (rm, rv) = (to_host(bn.running_mean())?, to_host(bn.running_var())?);
    for c in 0..3 {
        assert!((rm[c] - 0.1 * mean[c]).abs() < 1e-12);
        assert!((rv[c] - (0.9 + 0.1 * var[c] / 99.0)).abs() < 1e-12);
    }
    let rows = Rows::new(&[0, 1, 2, 3], 4, &Device::Cpu)?;
    assert!(bn.vjp(&saved, &y, &rows).is_err());
    // The cross-entropy pass differentiates through the batch statistics: an output that does
    // not depend on the input has no input gradient.
    let g = y.sum_all()?.backward()?;
    let gx = to_host(g.get(xv.as_tensor()).expect("input gradient"))?;
    assert!(gx.iter().all(|v| v.abs() < 1e-9));
    // Eval mode then uses the updated statistics.
    let (ye, _) = bn.forward(&x, &Ctx::eval(4))?;
    let expect = x
        .broadcast_sub(&Tensor::new(rm.as_slice(), &Device::Cpu)?.reshape((1, 3, 1, 1))?)?
        .broadcast_div(&(Tensor::new(rv.as_slice(), &Device::Cpu)?.reshape((1, 3, 1, 1))? + 1e-5)?.sqrt()?)?;
    let d = to_host(&(ye - expect)?.abs()?.max_keepdim(0)?.flatten_all()?.max(0)?)?;
    assert!(d[0] < 1e-12);
    Ok(())
}

#[test]
fn residual_vjp() -> Result<()> {
    let ((identity, down), _) = build(5, |pb| {
        let body = Sequential::new()
            .then(conv2d(4, 4, 3, ConvConfig::pad(1), &mut pb.pp("a"))?)
            .then(group_norm(2, 4, &mut pb.pp("gn"))?)
            .then(Activation::Relu)
            .then(conv2d(4, 4, 3, ConvConfig::pad(1), &mut pb.pp("b"))?);
        let identity = Residual::new(body, None);
        let body = Sequential::new()
            .then(conv2d(4, 6, 3, ConvConfig::pad(1).stride(2), &mut pb.pp("c"))?)
            .then(Activation::Tanh)
            .then(conv2d(6, 6, 3, ConvConfig::pad(1), &mut pb.pp("d"))?);
        let shortcut =
            Sequential::new().then(conv2d(4, 6, 1, ConvConfig::default().stride(2), &mut pb.pp("s"))?).then(random_batch_norm(6, 3)?);
        Ok((identity, Residual::new(body, Some(shortcut))))
    })?;
    let a = check("residual, identity shortcut", &identity, &[4, 6, 6], 3);
    let b = check("residual, 1x1 stride-2 shortcut + BN", &down, &[4, 7, 7], 3);
    println!("residual: max error {:.2e}", a.max(b));
    Ok(())
}

#[test]
fn concat_vjp() -> Result<()> {
    // A dense layer (norm -> relu -> conv) on its own, and two in a row as in a dense block.
    let ((one, two), _) = build(6, |pb| {
        let layer = |c: usize, pb: &mut ParamBuilder| -> Result<Concat> {
            Ok(Concat::new(Sequential::new().then(group_norm(2, c, &mut pb.pp("gn"))?).then(Activation::Relu).then(conv2d(
                c,
                4,
                3,
                ConvConfig::pad(1).no_bias(),
                &mut pb.pp("conv"),
            )?)))
        };
        let one = layer(4, &mut pb.pp("a"))?;
        let two = Sequential::new().then(layer(4, &mut pb.pp("b"))?).then(layer(8, &mut pb.pp("c"))?).then(random_batch_norm(12, 4)?);
        Ok((one, two))
    })?;
    let a = check("concat[x, gn -> relu -> conv]", &one, &[4, 5, 5], 3);
    let b = check("two dense layers + BN", &two, &[4, 6, 6], 3);
    println!("concat: max error {:.2e}", a.max(b));
    // The input passes through unchanged in the first channels.
    let x = randn(&[2, 4, 5, 5], 1.0, 0.0, 9)?;
    let (y, saved) = one.forward(&x, &Ctx::eval(2))?;
    assert_eq!(y.dims(), &[2, 8, 5, 5]);
    assert_eq!(to_host(&y.narrow(1, 0, 4)?)?, to_host(&x)?);
    let rows = Rows::new(&[0, 1], 2, &Device::Cpu)?;
    assert!(one.vjp(&Saved::None, &y, &rows).is_err());
    assert!(one.vjp(&saved, &x, &rows).is_err(), "a cotangent without the appended channels");
    Ok(())
}

type Builder = fn(&[usize], usize, &mut ParamBuilder) -> Result<Sequential>;

fn network(build_fn: Builder, input: &[usize], classes: usize, seed: u64) -> Result<Network> {
    let (body, params) = build(seed, |pb| build_fn(input, classes, pb))?;
    Ok(Network { body: Box::new(body), params, input_shape: input.to_vec(), classes })
}

fn regularizer() -> Regularizer {
    Regularizer {
        proxy: Arc::new(DeepFool::new(DeepFoolConfig { norm: Norm::L2, keep_failed: true, ..DeepFoolConfig::l2(3) })),
        aggregation: Arc::new(Avg),
        shrinkage: Arc::new(TwoSided { shape: Shape::Exp, c: 0.5, d: 0.3, clip: 50.0 }),
        normalize: false,
        weight: 2.0,
        two_pass: None,
        chunk: Some(0),
    }
}

/// The whole model's input VJP against autograd and FD, then its regularizer gradient against FD.
fn check_model(name: &str, build_fn: Builder, input: &[usize], batch: usize) -> Result<()> {
    let t0 = Instant::now();
    let net = network(build_fn, input, 10, 1)?;
    let (auto, fd) = check_layer_vjp(net.body.as_ref(), input, 3, 3, 5)?;
    println!("{name} {input:?}: input VJP vs autograd {auto:.2e}, vs FD {fd:.2e} ({:.1} s)", t0.elapsed().as_secs_f64());
    assert!(auto < TOL && fd < TOL, "{name}: input VJP autograd {auto:e} FD {fd:e}");
    let t1 = Instant::now();
    let (x, y) = random_batch(&net, batch, 3)?;
    let r = gradcheck(&net, &regularizer(), &x, &y, &GradcheckOptions { per_tensor: 1, ..Default::default() })?;
    println!(
        "{name} {input:?}: regularizer gradient max rel err {:.2e} over {} entries, hog rel diff {:.2e}, loss {:.4}, worst {:?} ({:.1} s)",
        r.max_rel_err,
        r.checked,
        r.hog_rel_diff,
        r.loss,
        r.worst,
        t1.elapsed().as_secs_f64()
    );
    assert!(r.max_rel_err < 1e-5, "{name}: {r:?}");
    assert!(r.hog_rel_diff > 1e-3, "{name}: second-order terms missing: {r:?}");
    Ok(())
}

#[test]
fn model_lenet() -> Result<()> {
    check_model("lenet", lenet, &[1, 16, 16], 4)
}

#[test]
fn model_liunet() -> Result<()> {
    check_model("liunet", liunet, &[1, 8, 8], 4)
}

#[test]
fn model_convnet() -> Result<()> {
    check_model("convnet", convnet, &[3, 8, 8], 4)
}

#[test]
fn model_nin() -> Result<()> {
    check_model("nin", nin, &[3, 8, 8], 4)
}

#[test]
fn model_resnet20_group_norm() -> Result<()> {
    check_model("resnet20 gn", |s, c, pb| resnet20(s, c, ResNorm::Group, pb), &[3, 8, 8], 4)
}

#[test]
fn model_resnet20_frozen_bn() -> Result<()> {
    check_model("resnet20 bn", |s, c, pb| resnet20(s, c, ResNorm::FrozenBn, pb), &[3, 8, 8], 4)
}

#[test]
fn model_resnet_bottleneck_group_norm() -> Result<()> {
    check_model("resnet11 bottleneck gn", |s, c, pb| resnet(s, c, 11, Some(ResBlock::Bottleneck), ResNorm::Group, pb), &[3, 8, 8], 4)
}

#[test]
fn model_resnet_bottleneck_frozen_bn() -> Result<()> {
    check_model("resnet11 bottleneck bn", |s, c, pb| resnet(s, c, 11, Some(ResBlock::Bottleneck), ResNorm::FrozenBn, pb), &[3, 8, 8], 4)
}

#[test]
fn model_densenet_group_norm() -> Result<()> {
    check_model("densenet10 k4 gn", |s, c, pb| densenet(s, c, 10, 4, ResNorm::Group, pb), &[3, 8, 8], 4)
}

#[test]
fn model_densenet_frozen_bn() -> Result<()> {
    check_model("densenet7 k3 bn", |s, c, pb| densenet(s, c, 7, 3, ResNorm::FrozenBn, pb), &[3, 8, 8], 4)
}

#[test]
fn model_shapes_and_errors() -> Result<()> {
    let cases: [(&str, Builder, [usize; 3], usize); 7] = [
        ("lenet", lenet, [1, 28, 28], 431_080),
        ("liunet", liunet, [1, 28, 28], 484_554),
        ("convnet", convnet, [3, 32, 32], 0),
        ("nin", nin, [3, 32, 32], 0),
        ("liunet64", liunet64, [3, 32, 32], 0),
        ("liunet96", liunet96, [3, 32, 32], 0),
        ("densenet40", |s, c, pb| densenet40(s, c, ResNorm::FrozenBn, pb), [3, 32, 32], 0),
    ];
    for (name, f, shape, params) in cases {
        let net = network(f, &shape, 10, 0)?;
        let x = randn(&[2, shape[0], shape[1], shape[2]], 1.0, 0.0, 0)?;
        let (y, _) = net.body.forward(&x, &Ctx::eval(2))?;
        assert_eq!(y.dims(), &[2, 10], "{name}");
        println!("{name}: {} parameters; {}", net.params.count(), net.body.describe());
        if params > 0 {
            assert_eq!(net.params.count(), params, "{name}");
        }
    }
    for norm in [ResNorm::Group, ResNorm::FrozenBn] {
        let (body, params) = build(0, |pb| resnet20(&[3, 32, 32], 10, norm, pb))?;
        let x = randn(&[2, 3, 32, 32], 1.0, 0.0, 0)?;
        assert_eq!(body.forward(&x, &Ctx::eval(2))?.0.dims(), &[2, 10]);
        println!("resnet20 {norm:?}: {} parameters, {} buffers", params.count(), params.buffers().len());
    }
    let err = build(0, |pb| lenet(&[1, 8, 8], 10, pb)).unwrap_err().to_string();
    assert!(err.contains("lenet needs inputs of at least 16×16 (got 8×8)"), "{err}");
    for f in [liunet as Builder, convnet, liunet64, liunet96] {
        assert!(build(0, |pb| f(&[1, 7, 7], 10, pb)).is_err());
    }
    assert!(build(0, |pb| nin(&[3, 3, 3], 10, pb)).is_err());
    assert!(build(0, |pb| lenet(&[784], 10, pb)).is_err());
    Ok(())
}

/// The saved state a VJP gets must be what the layer saved (a clear error otherwise).
#[test]
fn vjp_rejects_foreign_saved_state() -> Result<()> {
    let (conv, _): (Conv2d, _) = build(0, |pb| conv2d(1, 1, 3, ConvConfig::default(), pb))?;
    let v = Tensor::zeros((1, 1, 2, 2), DType::F64, &Device::Cpu)?;
    let rows = Rows::new(&[0], 1, &Device::Cpu)?;
    assert!(conv.vjp(&Saved::None, &v, &rows).is_err());
    assert!(MaxPool2d::new(2).vjp(&Saved::None, &v, &rows).is_err());
    Ok(())
}
