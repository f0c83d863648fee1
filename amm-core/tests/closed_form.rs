//! The regularizer's value (and its bias gradient) on a linear three-class model, where DeepFool's
//! first step is the exact distance to the nearest boundary, against numbers worked out by hand
//! below: ρ, every shrinkage, λ, the clip, and both aggregations.
//!
//! The model: 2-D inputs, logits f = W x + b with w₀ = (1, 0), w₁ = (0, 1), w₂ = (−1, −1), b = 0.
//! Four samples (overshoot 0.02, so every ρ is 1.02 × a distance):
//!
//! | sample | x | label | f | prediction | nearest boundary | distance | ρ |
//! |---|---|---|---|---|---|---|---|
//! | A | (2, 0.5) | 0 | (2, 0.5, −2.5) | 0, correct | class 1: 1.5/‖w₁−w₀‖ = 1.5/√2 (class 2: 4.5/√5) | 1.06066 | 1.08187 |
//! | B | (0.2, 1) | 0 | (0.2, 1, −1.2) | 1, misclassified | towards its label 0: 0.8/√2 | 0.56569 | 0.57700 |
//! | C | (−1, −2) | 2 | (−1, −2, 3) | 2, correct | class 0: 4/√5 (class 1: 5/√5) | 1.78885 | 1.82463 |
//! | D | (3, 0) | 0 | (3, 0, −3) | 0, correct | class 1: 3/√2 (class 2: 6/√5) | 2.12132 | 2.16375 |
//!
//! After the one step each sample has flipped (A → (1.235, 1.265), class 1; B → (0.608, 0.592),
//! class 0; C → (0.632, −1.184), class 0; D → (1.47, 1.53), class 1), so u = 5 stops after one
//! iteration and gives the same ρ.
use amm_core::candle_core::{DType, Device, Tensor};
use amm_core::data::Rng;
use amm_core::dsl;
use amm_core::gradcheck::grads_of;
use amm_core::layer::{Ctx, Mode};
use amm_core::model::Model;
use amm_core::tensor::to_host;
use amm_core::Registry;

const S2: f64 = std::f64::consts::SQRT_2;

/// ρ of A, B, C, D by hand.
fn rho() -> [f64; 4] {
    let s5 = 5f64.sqrt();
    [1.02 * 1.5 / S2, 1.02 * 0.8 / S2, 1.02 * 4.0 / s5, 1.02 * 3.0 / S2]
}

fn setup() -> (Registry, Box<dyn Model>, Tensor, Vec<u32>) {
    let reg = Registry::with_builtins();
    let grid = dsl::experiment_from_overrides(&["model.arch=linear".into()], &reg).unwrap();
    let m = reg.build_model(&grid.cells[0].config.model, &[2], 3, &mut Rng::new(0), DType::F64, &Device::Cpu).unwrap();
    let w = Tensor::new(&[[1.0f64, 0.0], [0.0, 1.0], [-1.0, -1.0]], &Device::Cpu).unwrap();
    m.params().get("fc.weight").unwrap().set(&w).unwrap();
    m.params().get("fc.bias").unwrap().set(&Tensor::zeros(3, DType::F64, &Device::Cpu).unwrap()).unwrap();
    let x = Tensor::new(&[[2.0f64, 0.5], [0.2, 1.0], [-1.0, -2.0], [3.0, 0.0]], &Device::Cpu).unwrap();
    (reg, m, x, vec![0, 0, 2, 0])
}

/// The regularizer's value and its result on the hand-made batch.
fn value(pipe: &str) -> amm_core::RegOut {
    let (reg, m, x, y) = setup();
    let spec = dsl::parse_pipeline(pipe, &reg).unwrap_or_else(|d| panic!("{d}")).into_iter().next().unwrap().unwrap();
    let r = reg.build_regularizer(&spec).unwrap();
    r.compute(m.as_ref(), &x, &y, &Ctx::new(Mode::Attack, 0, 4), None).unwrap()
}

#[track_caller]
fn close(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() <= 1e-12 * want.abs().max(1.0), "{what}: amm {got}, by hand {want}");
}

#[test]
fn rho_is_the_distance_to_the_nearest_boundary() {
    for u in [1, 5] {
        let out = value(&format!("deepfool(l2, {u}) |> avg |> lin(c=1, d=1)"));
        assert_eq!(out.correct, [true, false, true, true]);
        assert_eq!(out.success, [true; 4]);
        assert_eq!(out.iterations, 1, "every sample flips after one step");
        for (i, want) in rho().iter().enumerate() {
            close(out.rho[i], *want, &format!("ρ of sample {i}, u = {u}"));
        }
    }
}

#[test]
fn every_shrinkage_with_avg() {
    let [a, b, c, d] = rho();
    // lin(c=1, d=1): −ρ for correct samples, +ρ for the misclassified B; λ = 3; / B = 4.
    close(value("deepfool(l2, 5) |> avg |> lin(c=1, d=1) |> weight(3)").value, 3.0 * (-a + b - c - d) / 4.0, "lin");
    // lin with c = 0.5, d = 2 (a swapped c/d would give another number).
    close(value("deepfool(l2, 5) |> avg |> lin(c=0.5, d=2)").value, (-0.5 * a + 2.0 * b - 0.5 * c - 0.5 * d) / 4.0, "lin(c=0.5, d=2)");
    // exp(c=2, d=1): e^(−2ρ) correct, e^(ρ) misclassified.
    let e = ((-2.0 * a).exp() + b.exp() + (-2.0 * c).exp() + (-2.0 * d).exp()) / 4.0;
    close(value("deepfool(l2, 5) |> avg |> exp(c=2, d=1)").value, e, "exp");
    // inv(c=1, d=0.5): 1/(1 + ρ) correct, 1/(1 − 0.5ρ) misclassified.
    let i = (1.0 / (1.0 + a) + 1.0 / (1.0 - 0.5 * b) + 1.0 / (1.0 + c) + 1.0 / (1.0 + d)) / 4.0;
    close(value("deepfool(l2, 5) |> avg |> inv(c=1, d=0.5)").value, i, "inv");
    // hinge(gamma=2): max(0, 2 − ρ) correct (D's 2.16 gives 0), 2 + ρ misclassified.
    let h = ((2.0 - a) + (2.0 + b) + (2.0 - c) + 0.0) / 4.0;
    close(value("deepfool(l2, 5) |> avg |> hinge(gamma=2)").value, h, "hinge");
}

#[test]
fn the_clip_truncates_large_terms_only_where_asked() {
    let [a, b, c, d] = rho();
    // λ = 60: 60·e^(−2ρ) stays below 50 for every correct sample (A: 6.9); B's 60·e^(0.577)
    // = 106.9 is truncated to 50.
    let e = (60.0 * (-2.0 * a).exp() + 50.0 + 60.0 * (-2.0 * c).exp() + 60.0 * (-2.0 * d).exp()) / 4.0;
    let out = value("deepfool(l2, 5) |> avg |> exp(c=2, d=1) |> weight(60)");
    close(out.value, e, "exp, λ = 60, default clip 50");
    assert_eq!(out.clipped, 1);
    // lin is not truncated by default: λ = 100 gives |100·ρ_D| = 216 > 50 unchanged.
    let out = value("deepfool(l2, 5) |> avg |> lin(c=1, d=1) |> weight(100)");
    close(out.value, 100.0 * (-a + b - c - d) / 4.0, "lin, λ = 100, no clip");
    assert_eq!(out.clipped, 0);
    // ... unless a clip is given: every λ·ρ term beyond ±50 becomes ±50 (A: −108, B: 57.7, C: −182, D: −216).
    let out = value("deepfool(l2, 5) |> avg |> lin(c=1, d=1, clip=50) |> weight(100)");
    close(out.value, (-50.0 + 50.0 - 50.0 - 50.0) / 4.0, "lin, λ = 100, clip 50");
    assert_eq!(out.clipped, 4);
}

#[test]
fn min_keeps_the_per_class_smallest_within_the_batch_fraction() {
    let [a, b, c, _] = rho();
    // frac 0.5: k = 2. Correct samples A (class 0, 1.08), C (class 2, 1.82), D (class 0, 2.16):
    // per-class argmins {A, C} ∩ the two smallest {A, C} = {A, C}. Misclassified: B, the only one.
    let out = value("deepfool(l2, 5) |> min(class, 0.5) |> exp(c=2, d=1)");
    assert_eq!(out.selected, [0, 1, 2]);
    close(out.value, ((-2.0 * a).exp() + b.exp() + (-2.0 * c).exp()) / 4.0, "min 0.5");
    // frac 0.25: k = 1: {A, C} ∩ {A} = {A}; B stays.
    let out = value("deepfool(l2, 5) |> min(class, 0.25) |> exp(c=2, d=1)");
    assert_eq!(out.selected, [0, 1]);
    close(out.value, ((-2.0 * a).exp() + b.exp()) / 4.0, "min 0.25");
}

/// The bias gradient of AVG + LIN by hand: ρ_A = 1.02 (f₀ − f₁)/√2 at A, so ∂ρ_A/∂b₀ = 1.02/√2
/// and ∂ρ_A/∂b₁ = −1.02/√2; likewise ρ_B = 1.02 (f₁ − f₀)/√2, ρ_C = 1.02 (f₂ − f₀)/√5,
/// ρ_D = 1.02 (f₀ − f₁)/√2. The value is (−ρ_A + ρ_B − ρ_C − ρ_D)/4.
#[test]
fn lin_bias_gradient_by_hand() {
    let (reg, m, x, y) = setup();
    let spec = dsl::parse_pipeline("deepfool(l2, 5) |> avg |> lin(c=1, d=1)", &reg).unwrap().into_iter().next().unwrap().unwrap();
    let r = reg.build_regularizer(&spec).unwrap();
    let out = r.compute(m.as_ref(), &x, &y, &Ctx::new(Mode::Attack, 0, 4), None).unwrap();
    let g = grads_of(m.as_ref(), &out.loss).unwrap();
    let names: Vec<&str> = m.params().vars().iter().map(|(n, _)| n.as_str()).collect();
    let bias = &g[names.iter().position(|n| *n == "fc.bias").unwrap()];
    let (k2, k5) = (1.02 / S2, 1.02 / 5f64.sqrt());
    let want = [(-k2 - k2 + k5 - k2) / 4.0, (k2 + k2 + k2) / 4.0, -k5 / 4.0];
    for j in 0..3 {
        close(bias[j], want[j], &format!("∂/∂b{j}"));
    }
    assert_eq!(to_host(&out.loss).unwrap().len(), 1);
}
