//! The hot pieces of an AMM step, on the peer's setting (MLP 784-800-800-10, batch 100, f32):
//! the batched class gradients, one DeepFool iteration, the regularizer's backward, a whole step;
//! a convolution's forward + backward, amm's kernel against candle's `conv2d`; and the step's
//! GEMM shapes, amm's `matmul` node (its AVX-512 kernel where the processor has one) against
//! candle's `matmul` (the `gemm` crate).
//!     cargo bench -p amm-core --bench engine            (-- gemm: only the GEMM shapes)
use amm_core::candle_core::{DType, Device, Tensor};
use amm_core::data::Rng;
use amm_core::dsl::{self, Loss};
use amm_core::layer::{Ctx, Mode, Rows};
use amm_core::model::Model;
use amm_core::optim::{Method, Optimizer};
use amm_core::proxy::{DeepFool, DeepFoolConfig, Norm, Pass, Proxy};
use amm_core::tensor::class_diff_seeds;
use amm_core::Registry;
use criterion::{criterion_group, criterion_main, Criterion};

const B: usize = 100;

fn setup() -> (Registry, Box<dyn Model>, Tensor, Vec<u32>) {
    let reg = Registry::with_builtins();
    let g = dsl::experiment_from_overrides(&["model.arch=mlp(widths=[800, 800])".into()], &reg).unwrap();
    let m = reg.build_model(&g.cells[0].config.model, &[1, 28, 28], 10, &mut Rng::new(0).fork(1), DType::F32, &Device::Cpu).unwrap();
    let mut rng = Rng::new(3);
    let x: Vec<f32> = (0..B * 784).map(|_| (rng.normal().abs() * 0.5) as f32).collect();
    let y: Vec<u32> = (0..B).map(|_| rng.below(10) as u32).collect();
    (reg, m, Tensor::from_vec(x, (B, 1, 28, 28), &Device::Cpu).unwrap(), y)
}

fn benches(c: &mut Criterion) {
    let (reg, m, x, y) = setup();
    let ctx = Ctx::new(Mode::Attack, 0, B);

    // 900 rows (9 class differences per sample) through the reverse network, values only.
    let fwd = m.forward(&x, &ctx).unwrap();
    let pairs: Vec<(u32, u32)> = (0..B).flat_map(|_| (1..10).map(|k| (k, 0))).collect();
    let index: Vec<u32> = (0..B as u32).flat_map(|s| std::iter::repeat_n(s, 9)).collect();
    let seeds = class_diff_seeds(&pairs, 10, DType::F32, &Device::Cpu).unwrap();
    let rows = Rows::new(&index, B, &Device::Cpu).unwrap();
    c.bench_function("class gradients: forward + 900-row input VJP", |b| {
        b.iter(|| {
            let f = m.forward(&x, &ctx).unwrap();
            m.input_vjp(&f, &seeds, &rows).unwrap().unwrap()
        })
    });
    let _ = fwd;

    let one = DeepFool::new(DeepFoolConfig {
        norm: Norm::L2,
        iters: 1,
        overshoot: 0.02,
        candidates: 10,
        hog: true,
        chain: amm_core::proxy::Chain::Full,
        keep_failed: true,
        require_flip: true,
    });
    c.bench_function("one DeepFool iteration (decide, no graph)", |b| b.iter(|| one.run(m.as_ref(), &x, &y, &ctx, Pass::Decide).unwrap()));

    let spec = dsl::parse_pipeline("deepfool(l2, 5) |> min(class, 0.2) |> exp(c=2, d=1) |> weight(32)", &reg).unwrap()[0].clone().unwrap();
    let r = reg.build_regularizer(&spec).unwrap();
    c.bench_function("regularizer forward + backward (MIN+EXP, u=5)", |b| {
        b.iter(|| {
            let out = r.compute(m.as_ref(), &x, &y, &ctx, None).unwrap();
            out.loss.backward().unwrap()
        })
    });

    let mut opt = Optimizer::new(Method::Sgd, m.params(), 0.0, 0.9, 1e-4);
    let ce = reg.build_loss(&Loss::Ce).unwrap();
    let mut step = 0u64;
    c.bench_function("whole AMM step", |b| {
        b.iter(|| {
            step += 1;
            amm_core::step::train_step(m.as_ref(), Some(&r), ce.as_ref(), &mut opt, 10.0, &x, &y, step).unwrap()
        })
    });
    c.bench_function("whole CE step", |b| {
        b.iter(|| amm_core::step::train_step(m.as_ref(), None, ce.as_ref(), &mut opt, 10.0, &x, &y, 0).unwrap())
    });
}

/// LeNet's second convolution (20 → 50 channels, 5×5, on 12×12), batch 100: forward and the
/// backward into the input and the kernel.
fn conv(c: &mut Criterion) {
    use amm_core::candle_core::Var;
    let mut rng = Rng::new(5);
    let mut randn = |shape: &[usize]| {
        let n: usize = shape.iter().product();
        Tensor::from_vec((0..n).map(|_| rng.normal() as f32).collect::<Vec<f32>>(), shape, &Device::Cpu).unwrap()
    };
    let x = Var::from_tensor(&randn(&[B, 20, 12, 12])).unwrap();
    let w = Var::from_tensor(&randn(&[50, 20, 5, 5])).unwrap();
    c.bench_function("conv 20->50 5x5, forward + backward: amm kernel", |b| {
        b.iter(|| amm_core::kernels::conv2d(x.as_tensor(), w.as_tensor(), None, 1, 0).unwrap().sum_all().unwrap().backward().unwrap())
    });
    c.bench_function("conv 20->50 5x5, forward + backward: candle conv2d", |b| {
        b.iter(|| x.as_tensor().conv2d(w.as_tensor(), 0, 1, 1, 1).unwrap().sum_all().unwrap().backward().unwrap())
    });
}

/// The products of an MLP step at batch 100: the forward `x · wᵀ`, the weight gradient `gᵀ · x`
/// and DeepFool's 2,300 VJP rows `v · w`.
fn gemm(c: &mut Criterion) {
    let mut rng = Rng::new(6);
    let mut randn =
        |r: usize, k: usize| Tensor::from_vec((0..r * k).map(|_| rng.normal() as f32).collect::<Vec<f32>>(), (r, k), &Device::Cpu).unwrap();
    let (x, w, g, v) = (randn(B, 784), randn(800, 784), randn(B, 800), randn(2300, 800));
    let w2 = randn(800, 800);
    let cases: [(&str, Tensor, Tensor); 3] = [
        ("gemm 100x784 . (800x784)^T (forward)", x.clone(), w.t().unwrap()),
        ("gemm (100x800)^T . 100x784 (weight gradient)", g.t().unwrap(), x),
        ("gemm 2300x800 . 800x800 (VJP rows)", v, w2),
    ];
    for (name, a, b) in &cases {
        c.bench_function(&format!("{name}: amm matmul"), |bench| bench.iter(|| amm_core::kernels::matmul(a, b).unwrap()));
        c.bench_function(&format!("{name}: candle matmul"), |bench| bench.iter(|| a.matmul(b).unwrap()));
    }
}

criterion_group! {
    name = engine;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(8));
    targets = benches, conv, gemm
}
criterion_main!(engine);
