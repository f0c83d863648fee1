//! The hand-written backward of a training forward (`backward.rs`): for every built-in model, the
//! gradients of the cross-entropy equal those of candle's backward, and central finite
//! differences of the loss recomputed from scratch; a model it does not cover (batch statistics)
//! says so and trains through candle's backward.
mod common;

use amm_core::candle_core::{Tensor, Var};
use amm_core::gradcheck::random_batch;
use amm_core::layer::{Ctx, Mode};
use amm_core::loss::cross_entropy;
use amm_core::model::Model;
use amm_core::tensor::to_host;
use amm_core::Registry;
use common::{model, AsPlugin};

const STEP_SEED: u64 = 9;

/// Per parameter: (name, candle's gradient, the hand-written one).
fn both(m: &dyn Model, x: &Tensor, y: &[u32]) -> Vec<(String, Vec<f64>, Vec<f64>)> {
    let ctx = Ctx::new(Mode::Train, STEP_SEED, x.dim(0).unwrap());
    let fwd = m.forward(x, &ctx).unwrap();
    let candle = cross_entropy(&fwd.logits, y).unwrap().backward().unwrap();
    let z = Var::from_tensor(&fwd.logits.detach()).unwrap();
    let gz = cross_entropy(z.as_tensor(), y).unwrap().backward().unwrap().remove(z.as_tensor()).unwrap();
    let hand = m.train_backward(&fwd, &gz).unwrap().expect("a hand-written backward");
    m.params()
        .vars()
        .iter()
        .zip(hand)
        .map(|((name, v), h)| {
            let c = candle.get(v.as_tensor()).unwrap_or_else(|| panic!("{name}: candle has no gradient"));
            let h = h.unwrap_or_else(|| panic!("{name}: the hand-written backward has no gradient"));
            (name.clone(), to_host(c).unwrap(), to_host(&h).unwrap())
        })
        .collect()
}

fn ce(m: &dyn Model, x: &Tensor, y: &[u32]) -> f64 {
    let ctx = Ctx::new(Mode::Train, STEP_SEED, x.dim(0).unwrap());
    to_host(&cross_entropy(&m.forward(x, &ctx).unwrap().logits, y).unwrap()).unwrap()[0]
}

#[test]
fn every_built_in_model_matches_candle_and_finite_differences() {
    let reg = Registry::with_builtins();
    for (src, input) in [
        ("linear", vec![5]),
        ("mlp(widths=[12, 12])", vec![6]),
        ("mlp(widths=[12, 12], act=tanh)", vec![6]),
        ("mlp(widths=[12, 12], dropout=0.3)", vec![6]),
        ("lenet", vec![1, 16, 16]),
        ("liunet", vec![1, 8, 8]),
        ("convnet", vec![3, 8, 8]),
        ("nin", vec![3, 8, 8]),
        ("resnet20", vec![3, 8, 8]),
        ("resnet(depth=11, block=bottleneck)", vec![3, 8, 8]),
        ("densenet(depth=7, growth=4)", vec![3, 8, 8]),
    ] {
        let m = model(&reg, src, &input, 5);
        assert!(m.has_train_backward(), "{src}: no hand-written backward");
        let (x, y) = random_batch(m.as_ref(), 6, 7).unwrap();
        let grads = both(m.as_ref(), &x, &y);
        let scale = grads.iter().flat_map(|(_, c, _)| c.iter()).fold(0f64, |a, &v| a.max(v.abs()));
        assert!(scale > 0.0, "{src}: zero gradient");
        for (name, c, h) in &grads {
            let diff = c.iter().zip(h).fold(0f64, |a, (c, h)| a.max((c - h).abs()));
            assert!(diff <= 1e-12 * scale, "{src} {name}: hand-written backward differs from candle's by {diff} (scale {scale})");
        }
        // Central differences of the whole loss, recomputed from scratch, on the first entry of
        // every tensor (ReLU and max-pool kinks are possible: two step sizes must agree first).
        let mut checked = 0;
        for ((name, var), (_, _, h)) in m.params().vars().iter().zip(&grads) {
            let orig = var.as_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap();
            let at = |d: f64| {
                let mut v = orig.clone();
                v[0] += d;
                var.set(&Tensor::from_vec(v, var.shape(), var.device()).unwrap()).unwrap();
                let l = ce(m.as_ref(), &x, &y);
                var.set(&Tensor::from_vec(orig.clone(), var.shape(), var.device()).unwrap()).unwrap();
                l
            };
            let fd = |e: f64| (at(e) - at(-e)) / (2.0 * e);
            let (f1, f2) = (fd(1e-6), fd(5e-7));
            if (f1 - f2).abs() > 1e-5 * f1.abs().max(1e-3 * scale) {
                continue; // a kink inside ±h
            }
            // Relative, with a floor of 1e-3 of the largest gradient: the loss's rounding over 2h.
            let err = (f1 - h[0]).abs() / f1.abs().max(h[0].abs()).max(1e-3 * scale);
            assert!(err < 1e-5, "{src} {name}[0]: finite differences {f1}, hand-written backward {}", h[0]);
            checked += 1;
        }
        assert!(checked * 5 >= grads.len() * 4, "{src}: only {checked} of {} tensors checked (kinks)", grads.len());
    }
}

/// Batch norm on batch statistics couples the samples and has no hand-written backward: the
/// model says so, and a training step differentiates it with candle's backward.
#[test]
fn batch_statistics_fall_back_to_candle() {
    let reg = Registry::with_builtins();
    let m = model(&reg, "resnet20(norm=frozen_bn)", &[3, 8, 8], 5);
    assert!(!m.has_train_backward());
    let (x, _) = random_batch(m.as_ref(), 4, 7).unwrap();
    let fwd = m.forward(&x, &Ctx::new(Mode::Train, STEP_SEED, 4)).unwrap();
    assert!(m.train_backward(&fwd, &fwd.logits.ones_like().unwrap()).unwrap().is_none());
}

/// One training step (cross-entropy alone, with MIN, with AVG in chunks) moves the weights to the
/// same place through the hand-written backward as through candle's.
#[test]
fn a_step_equals_the_step_through_candle() {
    let reg = Registry::with_builtins();
    let (arch, input) = ("resnet(depth=8)", [3, 8, 8]);
    let x_y = random_batch(model(&reg, arch, &input, 5).as_ref(), 9, 6).unwrap();
    let pipe = |src: &str| {
        let spec = amm_core::dsl::parse_pipeline(src, &reg).unwrap().into_iter().next().unwrap().unwrap();
        reg.build_regularizer(&spec).unwrap()
    };
    let min = pipe("deepfool(l2, 3) |> min(class, 0.5) |> exp(c=2, d=1) |> weight(3)");
    let avg = amm_core::Regularizer { chunk: Some(4), ..pipe("deepfool(l2, 3, failed=keep) |> avg |> exp(c=2, d=1) |> weight(3)") };
    for (what, r) in [("cross-entropy", None), ("min", Some(&min)), ("avg in chunks", Some(&avg))] {
        let step = |hand: bool| -> Vec<f64> {
            let m = model(&reg, arch, &input, 5);
            let m: Box<dyn Model> = if hand { m } else { Box::new(AsPlugin { inner: m, vjp: true }) };
            assert_eq!(m.has_train_backward(), hand);
            let mut opt = amm_core::optim::Optimizer::new(amm_core::optim::Method::Sgd, m.params(), 0.5, 0.0, 0.0);
            let ce = reg.build_loss(&amm_core::dsl::Loss::Ce).unwrap();
            let st = amm_core::step::train_step(m.as_ref(), r, ce.as_ref(), &mut opt, 0.0, &x_y.0, &x_y.1, 2).unwrap();
            assert_eq!(st.reg > 0.0, r.is_some(), "{what}");
            m.params().vars().iter().flat_map(|(_, v)| to_host(v.as_tensor()).unwrap()).collect()
        };
        let (a, b) = (step(true), step(false));
        let w0: Vec<f64> = model(&reg, arch, &input, 5).params().vars().iter().flat_map(|(_, v)| to_host(v.as_tensor()).unwrap()).collect();
        let moved: f64 = a.iter().zip(&w0).map(|(a, b)| (a - b).abs()).sum();
        let diff: f64 = a.iter().zip(&b).map(|(a, b)| (a - b).abs()).sum();
        assert!(moved > 1e-3 && diff <= 1e-12 * moved, "{what}: moved {moved:e}, the two steps differ by {diff:e}");
    }
}
