//! The regularizer's weight gradient against central finite differences (f64) for every model,
//! aggregation, shrinkage and norm; the presence of the second-order terms; one pass = two passes;
//! the same seed gives the same bits.
use amm_core::candle_core::{DType, Device, Tensor};
use amm_core::data::Rng;
use amm_core::dsl::{self, Catalog, PipelineSpec};
use amm_core::gradcheck::{gradcheck, random_batch, GradcheckOptions, GradcheckReport};
use amm_core::layer::{Ctx, Mode};
use amm_core::model::Model;
use amm_core::tensor::to_host;
use amm_core::{Registry, Regularizer};
use common::model;

mod common;

fn pipeline(reg: &Registry, src: &str) -> PipelineSpec {
    let v = dsl::parse_pipeline(src, reg).unwrap_or_else(|d| panic!("{src}: {d}"));
    v.into_iter().next().unwrap().expect("not `none`")
}

fn report(reg: &Registry, m: &dyn Model, pipe: &str, batch: usize, entries: usize) -> GradcheckReport {
    report_with(reg, m, pipe, batch, entries, true)
}

fn report_with(reg: &Registry, m: &dyn Model, pipe: &str, batch: usize, entries: usize, every_tensor: bool) -> GradcheckReport {
    let r = reg.build_regularizer(&pipeline(reg, pipe)).unwrap();
    let (x, y) = random_batch(m, batch, 7).unwrap();
    let opts = GradcheckOptions { max_entries: Some(entries), seed: 3, every_tensor, ..Default::default() };
    gradcheck(m, &r, &x, &y, &opts).unwrap()
}

/// Every tensor is checked (at least one entry each), few entries are skipped, and the gradient
/// is the derivative of the value recomputed from scratch.
fn check(reg: &Registry, m: &dyn Model, pipe: &str, batch: usize, entries: usize) -> GradcheckReport {
    check_with(reg, m, pipe, batch, entries, true)
}

/// [`check`], optionally on `entries` entries only (the rest of a large model's matrix, once
/// its first pipeline has covered every tensor).
fn check_with(reg: &Registry, m: &dyn Model, pipe: &str, batch: usize, entries: usize, every_tensor: bool) -> GradcheckReport {
    let rep = report_with(reg, m, pipe, batch, entries, every_tensor);
    let ctx = format!("{} / {pipe}: {rep:?}", m.describe());
    assert!(rep.selected > 0, "nothing regularized: {ctx}");
    let asked = if every_tensor { entries.max(m.params().len()) } else { entries };
    assert!(rep.checked >= asked * 4 / 5, "too many entries skipped: {ctx}");
    if every_tensor {
        assert!(rep.tensors.iter().all(|t| t.1 > 0), "a tensor without a checked entry: {ctx}");
    }
    assert!(rep.max_rel_err < 1e-5, "gradient differs from finite differences: {ctx}");
    rep
}

const SHRINKAGES: [&str; 4] = ["lin(c=1, d=1)", "exp(c=0.5, d=0.3)", "inv(c=0.5, d=0.1)", "hinge(gamma=3)"];

/// model × {avg, min} × {lin, exp, inv, hinge} × norms. Every parameter tensor gets an entry in
/// every pipeline of a small model, and in the first pipeline of a large one (a CNN has up to 60
/// tensors; each entry costs four evaluations from scratch).
fn matrix(reg: &Registry, m: &dyn Model, norms: &[&str], batch: usize, entries: usize) {
    let mut first = true;
    for norm in norms {
        for agg in ["avg", "min(class, 0.5)"] {
            for shrink in SHRINKAGES {
                let pipe = format!("deepfool({norm}, 3, failed=keep) |> {agg} |> {shrink} |> weight(2)");
                let every = first || m.params().len() <= 12;
                first = false;
                let rep = check_with(reg, m, &pipe, batch, entries, every);
                assert!(rep.hog_rel_diff > 1e-4, "second-order terms missing: {} / {pipe}: {rep:?}", m.describe());
            }
        }
    }
}

#[test]
fn mlp_relu_every_pipeline() {
    let reg = Registry::with_builtins();
    let m = model(&reg, "mlp(widths=[12, 12])", &[6], 1);
    matrix(&reg, m.as_ref(), &["l2", "linf", "l1"], 8, 16);
}

#[test]
fn mlp_tanh_every_pipeline() {
    let reg = Registry::with_builtins();
    let m = model(&reg, "mlp(widths=[12, 12], act=tanh)", &[6], 2);
    matrix(&reg, m.as_ref(), &["l2", "linf", "l1"], 8, 16);
}

#[test]
fn linear_model_every_pipeline() {
    let reg = Registry::with_builtins();
    let m = model(&reg, "linear", &[2], 3);
    matrix(&reg, m.as_ref(), &["l2", "linf"], 8, 12);
}

#[test]
fn mlp_with_dropout_every_pipeline() {
    let reg = Registry::with_builtins();
    let m = model(&reg, "mlp(widths=[12, 12], dropout=0.3)", &[6], 4);
    matrix(&reg, m.as_ref(), &["l2"], 8, 12);
}

fn cnn(name: &str, input: &[usize]) {
    let reg = Registry::with_builtins();
    let m = model(&reg, name, input, 5);
    matrix(&reg, m.as_ref(), &["l2", "linf"], 4, 4);
}

#[test]
fn lenet_every_pipeline() {
    cnn("lenet", &[1, 16, 16]);
}
#[test]
fn liunet_every_pipeline() {
    cnn("liunet", &[1, 8, 8]);
}
#[test]
fn convnet_every_pipeline() {
    cnn("convnet", &[3, 8, 8]);
}
#[test]
fn nin_every_pipeline() {
    cnn("nin", &[3, 8, 8]);
}
#[test]
fn resnet20_group_norm_every_pipeline() {
    cnn("resnet20", &[3, 8, 8]);
}
#[test]
fn resnet20_frozen_bn_every_pipeline() {
    cnn("resnet20(norm=frozen_bn)", &[3, 8, 8]);
}
#[test]
fn resnet_bottleneck_every_pipeline() {
    cnn("resnet(depth=11, block=bottleneck)", &[3, 8, 8]);
}
#[test]
fn densenet_every_pipeline() {
    cnn("densenet(depth=7, growth=4)", &[3, 8, 8]);
}

#[test]
fn linearised_proxy_and_normalize() {
    let reg = Registry::with_builtins();
    let m = model(&reg, "mlp(widths=[12], act=tanh)", &[6], 6);
    for pipe in [
        "linear(l2, hog=true) |> avg |> hinge(gamma=3)",
        "linear(linf, hog=true) |> min(class, 0.5) |> exp(c=0.5, d=0.3)",
        "deepfool(l2, 3) |> avg |> normalize |> exp(c=2, d=1) |> weight(3)",
    ] {
        let rep = check(&reg, m.as_ref(), pipe, 8, 16);
        assert!(rep.hog_rel_diff > 1e-4, "{pipe}: {rep:?}");
    }
    // Elsayed et al.'s default: the input gradients are constants, so the gradient is not the
    // loss's true gradient.
    let rep = report(&reg, m.as_ref(), "linear(l2) |> avg |> hinge(gamma=3)", 8, 16);
    assert_eq!(rep.hog_rel_diff, 0.0);
    assert!(rep.max_rel_err > 1e-3, "{rep:?}");
}

/// The worst bug this product could have: a regularizer whose second-order terms vanish. With
/// hog=true the gradient matches finite differences AND differs clearly from hog=false.
#[test]
fn second_order_terms_are_present_and_matter() {
    let reg = Registry::with_builtins();
    for arch in ["mlp(widths=[16, 16])", "mlp(widths=[16, 16], act=tanh)", "lenet"] {
        let input: &[usize] = if arch == "lenet" { &[1, 16, 16] } else { &[8] };
        let m = model(&reg, arch, input, 8);
        let rep = check(&reg, m.as_ref(), "deepfool(l2, 5) |> min(class, 0.5) |> exp(c=2, d=1) |> weight(4)", 8, 24);
        assert!(rep.hog_rel_diff > 1e-2, "{arch}: second-order share only {:e}", rep.hog_rel_diff);
        // Without them the gradient is measurably not the true one.
        let rep0 = report(&reg, m.as_ref(), "deepfool(l2, 5, hog=false) |> min(class, 0.5) |> exp(c=2, d=1) |> weight(4)", 8, 24);
        assert_eq!(rep0.hog_rel_diff, 0.0);
        assert!(rep0.max_rel_err > 1e-3, "{arch}: hog=false should not match finite differences: {rep0:?}");
    }
}

fn grads(m: &dyn Model, loss: &Tensor) -> Vec<Vec<f64>> {
    let g = loss.backward().unwrap();
    m.params().vars().iter().map(|(_, v)| g.get(v.as_tensor()).map(|t| to_host(t).unwrap()).unwrap_or_default()).collect()
}

/// MIN's second pass builds the graph only for the chosen samples; it must give exactly the loss
/// and gradients of one pass over the whole batch.
#[test]
fn two_pass_equals_one_pass() {
    let reg = Registry::with_builtins();
    for (arch, input) in
        [("mlp(widths=[16, 16])", vec![8]), ("mlp(widths=[16], act=tanh, dropout=0.2)", vec![8]), ("lenet", vec![1, 16, 16])]
    {
        let m = model(&reg, arch, &input, 9);
        let (x, y) = random_batch(m.as_ref(), 12, 4).unwrap();
        for pipe in [
            "deepfool(l2, 5) |> min(class, 0.2) |> exp(c=2, d=1) |> weight(8)",
            "deepfool(linf, 4, failed=keep) |> min(class, 0.3, misclassified=all) |> inv(c=1, d=0.2)",
        ] {
            let spec = pipeline(&reg, pipe);
            let one = Regularizer { two_pass: Some(false), ..reg.build_regularizer(&spec).unwrap() };
            let two = Regularizer { two_pass: Some(true), ..reg.build_regularizer(&spec).unwrap() };
            let ctx = Ctx::new(Mode::Attack, 11, 12);
            let a = one.compute(m.as_ref(), &x, &y, &ctx, None).unwrap();
            let b = two.compute(m.as_ref(), &x, &y, &ctx, None).unwrap();
            assert_eq!(a.selected, b.selected, "{arch} {pipe}");
            assert!(!a.selected.is_empty());
            assert!((a.value - b.value).abs() <= 1e-12 * a.value.abs().max(1.0), "{arch} {pipe}: {} vs {}", a.value, b.value);
            let (ga, gb) = (grads(m.as_ref(), &a.loss), grads(m.as_ref(), &b.loss));
            let (mut num, mut den) = (0.0, 0.0);
            for (u, v) in ga.iter().flatten().zip(gb.iter().flatten()) {
                num += (u - v) * (u - v);
                den += u * u;
            }
            assert!(den > 0.0 && (num / den).sqrt() < 1e-10, "{arch} {pipe}: gradients differ by {:e}", (num / den).sqrt());
        }
    }
}

/// AVG runs a training step in chunks, one chunk's graph alive at a time: the value, every
/// decision and the summed gradient must be the whole batch's (which `check` holds to finite
/// differences), and the weights after a training step the same.
#[test]
fn avg_in_chunks_equals_the_whole_batch() {
    let reg = Registry::with_builtins();
    for (arch, input) in [("mlp(widths=[16], dropout=0.2)", vec![8]), ("lenet", vec![1, 16, 16])] {
        let m = model(&reg, arch, &input, 5);
        let (x, y) = random_batch(m.as_ref(), 11, 6).unwrap();
        let spec = pipeline(&reg, "deepfool(l2, 4, failed=keep) |> avg |> exp(c=2, d=1, clip=4) |> weight(3)");
        let whole = Regularizer { chunk: Some(0), ..reg.build_regularizer(&spec).unwrap() };
        let chunked = Regularizer { chunk: Some(4), ..reg.build_regularizer(&spec).unwrap() };
        assert_eq!((chunked.chunk_rows(11, 1), whole.chunk_rows(11, 1), chunked.chunk_rows(4, 1)), (Some(4), None, None));
        let auto = reg.build_regularizer(&spec).unwrap();
        let min = reg.build_regularizer(&pipeline(&reg, "deepfool(l2, 4) |> min(class, 0.2) |> exp(c=2, d=1)")).unwrap();
        assert_eq!(
            (auto.chunk_rows(100, 1 << 20), auto.chunk_rows(100, 1 << 10), min.chunk_rows(100, 1 << 20)),
            (Some(amm_core::regularizer::CHUNK_BUDGET >> 20), None, None)
        );
        let ctx = Ctx::new(Mode::Attack, 2, 11);
        let a = whole.compute(m.as_ref(), &x, &y, &ctx, None).unwrap();
        let mut gb: Vec<Vec<f64>> = Vec::new();
        let mut chunks = 0;
        let b = chunked
            .compute_in_chunks(m.as_ref(), &x, &y, &ctx, 4, |part| {
                chunks += 1;
                let g = grads(m.as_ref(), part);
                if gb.is_empty() {
                    gb = g;
                } else {
                    gb.iter_mut().zip(g).for_each(|(acc, g)| acc.iter_mut().zip(g).for_each(|(a, g)| *a += g));
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(chunks, 3, "{arch}: 11 samples in chunks of 4");
        assert!(a.trace.same_decisions(&b.trace), "{arch}: the chunks decided otherwise");
        assert_eq!((a.selected.len(), a.clipped, a.iterations), (b.selected.len(), b.clipped, b.iterations), "{arch}");
        assert!(a.clipped > 0 || arch.starts_with("mlp"), "{arch}: want a clipped term");
        for (u, v) in a.rho.iter().zip(&b.rho) {
            assert!((u - v).abs() <= 1e-12 * u.abs().max(1.0), "{arch}: ρ {u} vs {v}");
        }
        assert!((a.value - b.value).abs() <= 1e-12 * a.value.abs().max(1.0), "{arch}: {} vs {}", a.value, b.value);
        assert!((a.varying - b.varying).abs() <= 1e-12 * a.value.abs().max(1.0), "{arch}: {} vs {}", a.varying, b.varying);
        let ga = grads(m.as_ref(), &a.loss);
        let (mut num, mut den) = (0.0, 0.0);
        for (u, v) in ga.iter().flatten().zip(gb.iter().flatten()) {
            num += (u - v) * (u - v);
            den += u * u;
        }
        assert!(den > 0.0 && (num / den).sqrt() < 1e-10, "{arch}: gradients differ by {:e}", (num / den).sqrt());

        // One training step each from the same weights.
        let step = |r: &Regularizer| -> Vec<f64> {
            let m = model(&reg, arch, &input, 5);
            let mut opt = amm_core::optim::Optimizer::new(amm_core::optim::Method::Sgd, m.params(), 0.5, 0.0, 0.0);
            let ce = reg.build_loss(&dsl::Loss::Ce).unwrap();
            let st = amm_core::step::train_step(m.as_ref(), Some(r), ce.as_ref(), &mut opt, 0.0, &x, &y, 2).unwrap();
            assert!(st.reg > 0.0);
            m.params().vars().iter().flat_map(|(_, v)| to_host(v.as_tensor()).unwrap()).collect()
        };
        let (wa, wb, w0) = (step(&whole), step(&chunked), model(&reg, arch, &input, 5));
        let w0: Vec<f64> = w0.params().vars().iter().flat_map(|(_, v)| to_host(v.as_tensor()).unwrap()).collect();
        let moved: f64 = wa.iter().zip(&w0).map(|(a, b)| (a - b).abs()).sum();
        let diff: f64 = wa.iter().zip(&wb).map(|(a, b)| (a - b).abs()).sum();
        assert!(
            moved > 1e-3 && diff < 1e-10 * moved,
            "{arch}: the step moved the weights by {moved:e}, the chunked one differs by {diff:e}"
        );
    }
}

/// Terms beyond the clip are constants: the check still matches, and some terms were clipped.
#[test]
fn clipped_terms_have_zero_gradient() {
    let reg = Registry::with_builtins();
    let m = model(&reg, "mlp(widths=[12])", &[6], 10);
    let pipe = "deepfool(l2, 3, failed=keep) |> avg |> exp(c=0.5, d=3, clip=6) |> weight(5)";
    let r = reg.build_regularizer(&pipeline(&reg, pipe)).unwrap();
    let (x, y) = random_batch(m.as_ref(), 8, 7).unwrap();
    let out = r.compute(m.as_ref(), &x, &y, &Ctx::new(Mode::Attack, 3, 8), None).unwrap();
    assert!(out.clipped > 0 && out.clipped < out.selected.len(), "want some but not all clipped: {}", out.clipped);
    check(&reg, m.as_ref(), pipe, 8, 16);
}

/// On a linear two-class model, one L2 DeepFool step without overshoot is exactly the distance
/// to the decision boundary, |f1 − f0| / ‖w1 − w0‖ (and the dual norms for L∞ and L1).
#[test]
fn deepfool_on_a_linear_model_is_the_exact_distance() {
    use amm_core::proxy::{DeepFool, DeepFoolConfig, Norm, Pass, Proxy};
    let reg = Registry::with_builtins();
    let mut rng = Rng::new(0);
    let grid = dsl::experiment_from_overrides(&["model.arch=linear".into()], &reg).unwrap();
    let m = reg.build_model(&grid.cells[0].config.model, &[5], 2, &mut rng, DType::F64, &Device::Cpu).unwrap();
    let w = to_host(m.params().get("fc.weight").unwrap().as_tensor()).unwrap();
    let b = to_host(m.params().get("fc.bias").unwrap().as_tensor()).unwrap();
    let dw: Vec<f64> = (0..5).map(|j| w[5 + j] - w[j]).collect();
    let x: Vec<f64> = (0..20).map(|_| rng.normal()).collect();
    let xt = Tensor::from_vec(x.clone(), (4, 5), &Device::Cpu).unwrap();
    let logits = to_host(&m.forward(&xt, &Ctx::eval(4)).unwrap().logits).unwrap();
    let pred: Vec<u32> = (0..4).map(|i| (logits[2 * i + 1] > logits[2 * i]) as u32).collect();
    for norm in [Norm::L2, Norm::Linf, Norm::L1] {
        let df = DeepFool::new(DeepFoolConfig {
            norm,
            iters: 1,
            overshoot: 0.0,
            candidates: 2,
            hog: true,
            chain: amm_core::proxy::Chain::Full,
            keep_failed: true,
            require_flip: true,
        });
        let out = df.run(m.as_ref(), &xt, &pred, &Ctx::eval(4), Pass::Decide).unwrap();
        for i in 0..4 {
            let f: f64 = (0..5).map(|j| dw[j] * x[5 * i + j]).sum::<f64>() + b[1] - b[0];
            let dual = norm.dual().of_slice(&dw);
            let want = f.abs() / dual;
            assert!((out.rho_values[i] - want).abs() < 1e-9 * want.max(1.0), "{norm:?} sample {i}: {} vs {want}", out.rho_values[i]);
        }
    }
}

/// The same seed gives bit-identical weights after training steps; another seed does not.
#[test]
fn same_seed_same_bits() {
    let reg = Registry::with_builtins();
    let run = |seed: u64| -> Vec<Vec<f64>> {
        let m = model(&reg, "mlp(widths=[16], dropout=0.2)", &[8], seed);
        let r = reg.build_regularizer(&pipeline(&reg, "deepfool(l2, 3) |> min(class, 0.3) |> exp(c=2, d=1) |> weight(2)")).unwrap();
        let mut opt = amm_core::optim::Optimizer::new(amm_core::optim::Method::Sgd, m.params(), 0.05, 0.9, 1e-4);
        let ce = reg.build_loss(&dsl::Loss::Ce).unwrap();
        for step in 0..3 {
            let (x, y) = random_batch(m.as_ref(), 10, seed * 10 + step).unwrap();
            amm_core::step::train_step(m.as_ref(), Some(&r), ce.as_ref(), &mut opt, 10.0, &x, &y, step).unwrap();
        }
        m.params().vars().iter().map(|(_, v)| to_host(v.as_tensor()).unwrap()).collect()
    };
    let (a, b, c) = (run(1), run(1), run(2));
    let bits = |v: &Vec<Vec<f64>>| v.iter().flatten().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a), bits(&b));
    assert_ne!(bits(&a), bits(&c));
}

#[test]
fn registry_names_every_model_the_issue_asks_for() {
    let reg = Registry::with_builtins();
    for name in [
        "linear",
        "mlp",
        "lenet",
        "liunet",
        "liunet64",
        "liunet96",
        "convnet",
        "nin",
        "resnet20",
        "resnet56",
        "resnet",
        "densenet40",
        "densenet",
    ] {
        assert!(reg.schema(dsl::Kind::Model, name).is_some(), "{name}");
    }
}

/// f32 training runs its products on amm's AVX-512 GEMM (where the processor has AVX-512); the
/// f64 finite-difference checks above run on the `gemm` crate. From the same weights the f32 run
/// takes the f64 run's decisions (checked), and its regularizer's weight gradient must equal the
/// f64 one up to f32 rounding, far below the share of the second-order terms, which therefore
/// survive the f32 kernels.
#[test]
fn f32_gradients_through_the_native_gemm_match_f64() {
    let reg = Registry::with_builtins();
    let (arch, input, batch) = ("mlp(widths=[40, 40])", vec![48], 32);
    let m64 = model(&reg, arch, &input, 21);
    let grid = dsl::experiment_from_overrides(&[format!("model.arch={arch}")], &reg).unwrap();
    let m32 = reg.build_model(&grid.cells[0].config.model, &input, 10, &mut Rng::new(1).fork(1), DType::F32, &Device::Cpu).unwrap();
    for ((_, v64), (_, v32)) in m64.params().vars().iter().zip(m32.params().vars().iter()) {
        v32.set(&v64.as_tensor().to_dtype(DType::F32).unwrap()).unwrap();
    }
    let (x, y) = random_batch(m64.as_ref(), batch, 7).unwrap();
    for pipe in
        ["deepfool(l2, 4) |> min(class, 0.3) |> exp(c=1, d=0.5) |> weight(4)", "deepfool(l2, 3, failed=keep) |> avg |> inv(c=0.5, d=0.1)"]
    {
        let r = reg.build_regularizer(&pipeline(&reg, pipe)).unwrap();
        let ctx = Ctx::new(Mode::Attack, 5, batch);
        let out64 = r.compute(m64.as_ref(), &x, &y, &ctx, None).unwrap();
        let out32 = r.compute(m32.as_ref(), &x.to_dtype(DType::F32).unwrap(), &y, &ctx, None).unwrap();
        assert!(!out64.selected.is_empty() && out32.selected == out64.selected, "{pipe}: the f32 run chose other samples");
        assert_eq!((out32.iterations, out32.vjp_rows), (out64.iterations, out64.vjp_rows), "{pipe}");
        let (g64, g32) = (grads(m64.as_ref(), &out64.loss), grads(m32.as_ref(), &out32.loss));
        let (mut num, mut den) = (0.0, 0.0);
        for (a, b) in g64.iter().flatten().zip(g32.iter().flatten()) {
            num += (a - b) * (a - b);
            den += a * a;
        }
        let err = (num / den).sqrt();
        let hog = report(&reg, m64.as_ref(), pipe, batch, 8).hog_rel_diff;
        assert!(den > 0.0 && err < 1e-5 && err < hog / 100.0, "{pipe}: f32 gradient differs by {err:e}; second-order share {hog:e}");
    }
}

/// Negative controls: a gradient that drops part of the derivative must fail the check.
/// `chain=none` drops the dependence of each iterate on the earlier steps, which matters as soon
/// as DeepFool takes two steps: it fails on the MLP, LeNet and a group-norm net. `chain=authors`
/// drops only ∂w/∂x·∂r/∂θ, zero where input gradients are piecewise constant in x (ReLU,
/// max-pooling): it passes on the ReLU MLP and LeNet and fails with group norm.
#[test]
fn dropped_chain_terms_fail_the_check() {
    let reg = Registry::with_builtins();
    for (arch, input, batch, entries, piecewise_linear) in
        [("mlp(widths=[16, 16])", vec![8], 8, 24, true), ("lenet", vec![1, 16, 16], 4, 16, true), ("liunet", vec![1, 8, 8], 4, 44, false)]
    {
        let m = model(&reg, arch, &input, 12);
        let pipe = |chain: &str| format!("deepfool(l2, 5, chain={chain}) |> avg |> exp(c=2, d=1) |> weight(4)");
        let full = check(&reg, m.as_ref(), &pipe("full"), batch, entries);
        assert!(full.iterations >= 2, "{arch}: DeepFool took {} step(s); the control needs two", full.iterations);
        let share = full.chain_rel_diff.expect("deepfool has a chain");
        assert!(share > 1e-2, "{arch}: the chain contributes only {share:e} of the gradient");
        let none = report(&reg, m.as_ref(), &pipe("none"), batch, entries);
        assert!(none.max_rel_err > 1e-3, "{arch}: chain=none should fail the check: {none:?}");
        let authors = report(&reg, m.as_ref(), &pipe("authors"), batch, entries);
        if piecewise_linear {
            assert!(authors.max_rel_err < 1e-5 && authors.checked > 0, "{arch}: chain=authors is exact here: {authors:?}");
        } else {
            assert!(authors.max_rel_err > 1e-4, "{arch}: chain=authors should fail with group norm: {authors:?}");
        }
    }
}
