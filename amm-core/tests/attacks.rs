//! Evaluation attacks (DeepFool, FMN, DDN, APGD-CE/T) and the robustness evaluation:
//! closed-form distances on linear models, agreement with the paper's DeepFool margin, a trained
//! MLP (FMN/DDN tighter than 5-step DeepFool), monotone robust accuracy, and perturbed points that
//! really fool the model at the reported norm, inside the data's box.
mod common;
use amm_core::attacks::{verify, Attack, Bounds, DeepFoolAttack, DeepFoolAttackConfig, Kind};
use amm_core::candle_core::{DType, Device, Tensor};
use amm_core::data::{Prepared, Rng};
use amm_core::layers::Linear;
use amm_core::model::{Model, Network};
use amm_core::params::ParamStore;
use amm_core::proxy::Norm;
use amm_core::robust::{self, RobustOptions};
use amm_core::tensor::{argmax_rows, to_host};
use amm_core::{Ctx, Registry};
use common::AsPlugin;
use std::sync::OnceLock;

// ---------------------------------------------------------------------------------------------
// A linear model: the distance to the boundary is known in closed form.

struct LinearCase {
    model: Network,
    x: Tensor,
    y: Vec<u32>,
    w: Vec<f64>,
    logits: Vec<f64>,
    d: usize,
    k: usize,
}

fn linear_case(seed: u64, n: usize, d: usize, k: usize, scale: f64) -> LinearCase {
    let mut rng = Rng::new(seed);
    let w: Vec<f64> = (0..k * d).map(|_| scale * rng.normal()).collect();
    let b: Vec<f64> = (0..k).map(|_| 0.3 * scale * rng.normal()).collect();
    let xs: Vec<f64> = (0..n * d).map(|_| rng.normal()).collect();
    let dev = Device::Cpu;
    let weight = Tensor::from_vec(w.clone(), (k, d), &dev).unwrap();
    let bias = Tensor::from_vec(b, k, &dev).unwrap();
    let model = Network { body: Box::new(Linear::new(weight, Some(bias))), params: ParamStore::new(), input_shape: vec![d], classes: k };
    let x = Tensor::from_vec(xs, (n, d), &dev).unwrap();
    let logits = to_host(&model.forward(&x, &Ctx::eval(n)).unwrap().logits).unwrap();
    // the labels are the predictions: every sample is correctly classified
    let y = argmax_rows(&logits, k);
    let case = LinearCase { model, x, y, w, logits, d, k };
    // keep the samples at an L2 distance in [0.2, 3] (DDN starts at ε = 1 and moves it by 5% a step)
    let keep: Vec<u32> = (0..n).filter(|&i| (0.2..=3.0).contains(&case.distance(i, Norm::L2))).map(|i| i as u32).collect();
    assert!(keep.len() >= n / 3, "{} of {n} samples kept", keep.len());
    let x = case.x.index_select(&Tensor::new(keep.as_slice(), &dev).unwrap(), 0).unwrap();
    let logits: Vec<f64> = keep.iter().flat_map(|&i| case.logits[i as usize * k..(i as usize + 1) * k].to_vec()).collect();
    let y = keep.iter().map(|&i| case.y[i as usize]).collect();
    LinearCase { x, y, logits, ..case }
}

impl LinearCase {
    /// `min_{j≠c} (f_c − f_j) / ‖w_c − w_j‖_q`, q the dual of `norm`: the exact distance.
    fn distance(&self, i: usize, norm: Norm) -> f64 {
        let (d, k) = (self.d, self.k);
        let c = self.y[i] as usize;
        (0..k)
            .filter(|&j| j != c)
            .map(|j| {
                let diff: Vec<f64> = (0..d).map(|t| self.w[c * d + t] - self.w[j * d + t]).collect();
                (self.logits[i * k + c] - self.logits[i * k + j]) / norm.dual().of_slice(&diff)
            })
            .fold(f64::INFINITY, f64::min)
    }
}

/// Every sample fooled, never below the closed-form distance d; returns the ratios found / d.
#[track_caller]
fn ratios(case: &LinearCase, attack: &dyn Attack) -> Vec<f64> {
    let adv = attack.run(&case.model, &case.x, &case.y, None, 0.0).unwrap();
    let o = verify(&case.model, &case.x, &adv, &case.y, attack.norm(), None).unwrap();
    (0..case.y.len())
        .map(|i| {
            let exact = case.distance(i, attack.norm());
            assert!(o.adversarial[i], "{}: sample {i} not fooled (exact distance {exact})", attack.describe());
            let ratio = o.norms[i] / exact;
            assert!(ratio >= 1.0 - 1e-6, "{}: sample {i}: norm {} below the exact distance {exact}?", attack.describe(), o.norms[i]);
            if std::env::var("ATK_DEBUG").is_ok() {
                eprintln!("{} sample {i}: exact {exact} found {} ratio {ratio}", attack.describe(), o.norms[i]);
            }
            ratio
        })
        .collect()
}

/// Every sample within [d, (1 + tol) d] of the closed-form distance d.
#[track_caller]
fn assert_minimal(case: &LinearCase, attack: &dyn Attack, tol: f64) {
    let worst = ratios(case, attack).into_iter().fold(0.0f64, f64::max) - 1.0;
    assert!(worst <= tol, "{}: worst relative excess {worst} > {tol}", attack.describe());
}

fn deepfool(norm: Norm) -> DeepFoolAttack {
    // DeepFool lands one overshoot beyond the hyperplane: the paper's 0.02 would be 2% here
    DeepFoolAttack::new("deepfool", norm, DeepFoolAttackConfig { overshoot: 0.002, ..Default::default() })
}

#[test]
fn minimal_norm_attacks_find_the_closed_form_distance_of_a_binary_linear_model() {
    // one hyperplane: d = |f_1 − f_0| / ‖w_1 − w_0‖_q, for L2, L∞ and L1
    let case = linear_case(1, 64, 20, 2, 1.0);
    for norm in [Norm::L2, Norm::Linf, Norm::L1] {
        assert_minimal(&case, &deepfool(norm), 0.01);
        // the sparse L1 optimum is approached slowly by FMN's L2-normalised steps: the paper's 1000
        // steps get within 1% (100 steps: within 2%)
        let list = match norm {
            Norm::L2 => "fmn,ddn",
            Norm::Linf => "fmn",
            Norm::L1 => "fmn(steps=1000)",
        };
        for a in Registry::with_builtins().build_attacks("<test>", list, norm).unwrap() {
            assert_minimal(&case, a.as_ref(), 0.01);
        }
    }
}

#[test]
fn on_a_multiclass_linear_model_deepfool_is_exact_and_fmn_ddn_come_close() {
    // the adversarial region is a union of half-spaces: DeepFool ranks every hyperplane and lands
    // on the nearest one; FMN and DDN follow the runner-up logit and the cross-entropy gradient and
    // may settle on another foot of a perpendicular (a local minimum of the norm), never below d
    let case = linear_case(2, 64, 20, 6, 1.0);
    for norm in [Norm::L2, Norm::Linf, Norm::L1] {
        assert_minimal(&case, &deepfool(norm), 0.01);
    }
    for (list, norm) in [("fmn,ddn", Norm::L2), ("fmn", Norm::Linf), ("fmn", Norm::L1)] {
        for a in Registry::with_builtins().build_attacks("<test>", list, norm).unwrap() {
            let r = ratios(&case, a.as_ref());
            let med = robust::median(&r);
            let within = r.iter().filter(|&&q| q <= 1.01).count() as f64 / r.len() as f64;
            assert!(med <= 1.01 && within >= 0.75, "{}: median ratio {med}, {within} within 1%", a.describe());
        }
    }
}

#[test]
fn apgd_robust_accuracy_on_a_linear_model_matches_the_closed_form() {
    let case = linear_case(3, 64, 20, 6, 1.0);
    let n = case.y.len();
    let exact: Vec<f64> = (0..n).map(|i| case.distance(i, Norm::L2)).collect();
    let mut sorted = exact.clone();
    sorted.sort_by(f64::total_cmp);
    let eps = sorted[n / 2];
    for a in Registry::with_builtins().build_attacks("<test>", "apgd", Norm::L2).unwrap() {
        let adv = a.run(&case.model, &case.x, &case.y, None, eps).unwrap();
        let o = verify(&case.model, &case.x, &adv, &case.y, Norm::L2, None).unwrap();
        for (i, &d) in exact.iter().enumerate() {
            assert!(o.norms[i] <= eps * (1.0 + 1e-9), "{}: sample {i} outside the ball", a.label());
            if d > eps {
                assert!(!o.adversarial[i], "no adversarial point exists within ε");
            }
            // APGD-T aims at every class in turn: on a linear model it finds every reachable boundary
            if a.label() == "apgd-t" && d < 0.98 * eps {
                assert!(o.adversarial[i], "apgd-t missed sample {i}: distance {d} < ε = {eps}");
            }
        }
    }
}

#[test]
fn deepfool_attack_reproduces_the_paper_margin_without_a_box() {
    // on correctly classified samples, deepfool(iters=5) is the DeepFool of `amm eval`'s margin
    let reg = Registry::with_builtins();
    let grid = amm_core::dsl::experiment_from_overrides(&["model.arch=mlp(widths=[16, 16])".to_string()], &reg).unwrap();
    let mut rng = Rng::new(5).fork(1);
    let model = reg.build_model(&grid.cells[0].config.model, &[12], 4, &mut rng, DType::F64, &Device::Cpu).unwrap();
    let mut r = Rng::new(9);
    let x = Tensor::from_vec((0..40 * 12).map(|_| r.normal()).collect::<Vec<f64>>(), (40, 12), &Device::Cpu).unwrap();
    let pred = argmax_rows(&to_host(&model.forward(&x, &Ctx::eval(40)).unwrap().logits).unwrap(), 4);
    let (rho, ok) = amm_core::eval::deepfool_margins(model.as_ref(), &x, Norm::L2, 5, 0.02).unwrap();
    let df = DeepFoolAttack::new("df", Norm::L2, DeepFoolAttackConfig { iters: 5, ..Default::default() });
    let adv = df.run(model.as_ref(), &x, &pred, None, 0.0).unwrap();
    let o = verify(model.as_ref(), &x, &adv, &pred, Norm::L2, None).unwrap();
    // the proxy stops at the first flip of the argmax; the attack wants a logit gap of 1e-5 first
    // (attacks::DECISION_TOL), so a sample flipped by a hair may take it one step further
    let mut same = 0;
    for i in 0..40 {
        if o.adversarial[i] {
            assert!(ok[i], "sample {i}: the attack cannot succeed where the proxy failed");
        }
        if o.adversarial[i] == ok[i] && (o.norms[i] - rho[i]).abs() <= 1e-9 * rho[i].max(1.0) {
            same += 1;
        }
    }
    assert!(same >= 36, "only {same} of 40 samples agree with the paper's DeepFool");
}

// ---------------------------------------------------------------------------------------------
// A trained MLP on digits (trained once per test binary).

struct Trained {
    data: Prepared,
    model: Box<dyn Model>,
    bounds: Bounds,
}

fn trained() -> &'static Trained {
    static T: OnceLock<Trained> = OnceLock::new();
    T.get_or_init(|| {
        let reg = Registry::with_builtins();
        let overrides: Vec<String> = [
            "data.name=digits",
            "model.arch=mlp(widths=[32])",
            "train.epochs=12",
            "train.lr=0.05",
            "eval.long_iters=0",
            "eval.samples=50",
            "eval.every=100",
        ]
        .map(String::from)
        .to_vec();
        let grid = amm_core::dsl::experiment_from_overrides(&overrides, &reg).unwrap_or_else(|d| panic!("{d}"));
        let cfg = &grid.cells[0].config;
        let out = std::env::temp_dir().join(format!("amm-attacks-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let opts = amm_core::train::RunOptions { out: out.clone(), resume: false, device: Device::Cpu };
        amm_core::train::run(cfg, &reg, &opts, &mut amm_core::train::Silent).unwrap();
        let data = amm_core::train::load_data(cfg, &reg).unwrap();
        let model = amm_core::train::build_model(cfg, &reg, &data, &Device::Cpu).unwrap();
        let t = amm_core::rundir::load_tensors(&out.join(amm_core::rundir::LAST)).unwrap();
        model.params().load_tensors(&t, "model.").unwrap();
        let _ = std::fs::remove_dir_all(&out);
        let bounds = Bounds::from_domain(data.domain, data.mean.as_deref(), data.dim()).expect("digits has a domain");
        Trained { data, model, bounds }
    })
}

fn run_robust(t: &Trained, list: &str, eps: &[f64], samples: usize) -> robust::RobustReport {
    let atk = Registry::with_builtins().build_attacks("<test>", list, Norm::L2).unwrap();
    let opts = RobustOptions { eps: eps.to_vec(), samples, ..RobustOptions::new(Norm::L2) };
    robust::evaluate(t.model.as_ref(), &t.data.test, &t.data.shape, DType::F32, &Device::Cpu, Some(&t.bounds), &atk, &opts).unwrap()
}

#[test]
fn fmn_and_ddn_are_at_least_as_tight_as_five_step_deepfool_on_a_trained_mlp() {
    let t = trained();
    let r = run_robust(t, "deepfool(iters=5),fmn,ddn", &[0.5, 1.0], 200);
    assert!(r.clean_accuracy > 0.8, "the MLP did not learn: {r:?}");
    let df = r.attack("deepfool(iters=5)").unwrap();
    for name in ["fmn", "ddn"] {
        let a = r.attack(name).unwrap();
        assert!(a.success_rate > 0.99, "{name}: {a:?}");
        assert!(a.median_norm <= df.median_norm, "{name} median {} > deepfool-5 median {}", a.median_norm, df.median_norm);
        assert!(a.median_norm > 0.0);
    }
    // the best known margin is the smallest of them, sample by sample
    assert!(r.best_known.median_norm <= r.attack("fmn").unwrap().median_norm);
    for i in 0..r.samples {
        let m = r.per_sample.norms.iter().map(|v| v[i]).fold(f64::INFINITY, f64::min);
        assert_eq!(r.per_sample.best[i], m);
    }
}

#[test]
fn robust_accuracy_is_monotone_in_eps() {
    let t = trained();
    let eps = [1.0, 0.25, 2.0, 0.5, 0.0];
    let r = run_robust(t, "deepfool,fmn(steps=40),apgd(iters=20, targets=3)", &eps, 100);
    let mut order: Vec<usize> = (0..eps.len()).collect();
    order.sort_by(|&a, &b| eps[a].total_cmp(&eps[b]));
    let check = |name: &str, acc: &[f64]| {
        for w in order.windows(2) {
            assert!(acc[w[1]] <= acc[w[0]], "{name}: accuracy {} at ε={} > {} at ε={}", acc[w[1]], eps[w[1]], acc[w[0]], eps[w[0]]);
        }
        let zero = order[0];
        assert_eq!(acc[zero], r.clean_accuracy, "{name}: at ε=0 robust accuracy is the clean accuracy");
    };
    check("all attacks", &r.robust_accuracy);
    check("best known", &r.best_known.robust_accuracy);
    for a in &r.attacks {
        check(&a.attack, &a.robust_accuracy);
        for (x, y) in r.robust_accuracy.iter().zip(&a.robust_accuracy) {
            assert!(x <= y, "every attack together is at least as strong as {}", a.attack);
        }
    }
    // the curves too
    let mut names: Vec<&str> = r.curve.iter().map(|p| p.attack.as_str()).collect();
    names.dedup();
    assert!(names.contains(&"best-known") && names.contains(&"all-attacks") && names.iter().any(|n| n.starts_with("apgd-t")), "{names:?}");
    for name in names {
        let pts: Vec<_> = r.curve.iter().filter(|p| p.attack == name).collect();
        assert!(pts.windows(2).all(|w| w[0].eps < w[1].eps && w[1].robust_accuracy <= w[0].robust_accuracy), "{name}: {pts:?}");
    }
    let sum = r.summary();
    assert_eq!(sum["robust_accuracy"].as_array().unwrap().len(), eps.len());
    assert!(sum["attacks"]["deepfool"]["median_norm"].is_number(), "{sum}");
    let csv = robust::curve_csv(&r);
    assert!(csv.starts_with("attack,eps,robust_accuracy\n") && csv.contains("\nall-attacks,"), "{csv}");
}

#[test]
fn perturbed_points_fool_the_model_at_the_reported_norm_inside_the_box() {
    let t = trained();
    let n = 60;
    let eps = 1.0;
    let list = "deepfool,fmn(steps=50),ddn(steps=50),apgd-ce(iters=25),apgd-t(iters=10, targets=2)";
    let r = run_robust(t, list, &[eps], n);
    let d = t.data.dim();
    let x = Tensor::from_slice(&t.data.test.x[..n * d], (n, 1, 8, 8), &Device::Cpu).unwrap();
    let y = &t.data.test.y[..n];
    let pred = argmax_rows(&to_host(&t.model.forward(&x, &Ctx::eval(n)).unwrap().logits).unwrap(), 10);
    let correct: Vec<u32> = (0..n as u32).filter(|&i| pred[i as usize] == y[i as usize]).collect();
    let xc = x.index_select(&Tensor::new(correct.as_slice(), &Device::Cpu).unwrap(), 0).unwrap();
    let yc: Vec<u32> = correct.iter().map(|&i| y[i as usize]).collect();
    let m = correct.len();
    for (ai, a) in Registry::with_builtins().build_attacks("<test>", list, Norm::L2).unwrap().iter().enumerate() {
        let adv = a.run(t.model.as_ref(), &xc, &yc, Some(&t.bounds), eps).unwrap();
        // an independent check: forward one sample at a time, norms on the host
        let xa = to_host(&adv).unwrap();
        let x0 = to_host(&xc).unwrap();
        let mut fooled = 0;
        for j in 0..m {
            let p = Tensor::from_slice(&adv.flatten_from(1).unwrap().get(j).unwrap().to_vec1::<f32>().unwrap(), (1, 1, 8, 8), &Device::Cpu)
                .unwrap();
            let pj = argmax_rows(&to_host(&t.model.forward(&p, &Ctx::eval(1)).unwrap().logits).unwrap(), 10)[0];
            let norm = (0..d).map(|q| (xa[j * d + q] - x0[j * d + q]).powi(2)).sum::<f64>().sqrt();
            for q in 0..d {
                let v = xa[j * d + q];
                assert!(
                    v >= t.bounds.lo[q] as f64 - 1e-6 && v <= t.bounds.hi[q] as f64 + 1e-6,
                    "{}: sample {j} leaves the pixel range at feature {q}",
                    a.label()
                );
            }
            let reported = r.per_sample.norms[ai][correct[j] as usize];

            if reported.is_finite() {
                fooled += 1;
                assert_ne!(pj, yc[j], "{}: sample {j} reported fooled at norm {reported}, but the prediction is the label", a.label());
                assert!((norm - reported).abs() <= 1e-5 * norm.max(1e-3), "{}: sample {j}: norm {norm} vs reported {reported}", a.label());
                if a.kind() == Kind::FixedEps {
                    assert!(norm <= eps * (1.0 + 1e-4), "{}: outside the ε-ball: {norm}", a.label());
                }
            }
        }
        assert!(fooled > 0, "{} fooled nothing", a.label());
        let s = r.attack(a.label()).unwrap();
        assert_eq!(s.fooled, fooled);
        assert_eq!(s.fooled + s.never_fooled, m);
    }
}

#[test]
fn models_without_an_explicit_vjp_are_attacked_the_same_way() {
    let reg = Registry::with_builtins();
    let grid = amm_core::dsl::experiment_from_overrides(&["model.arch=mlp(widths=[16])".to_string()], &reg).unwrap();
    let build = || {
        let mut rng = Rng::new(11).fork(1);
        reg.build_model(&grid.cells[0].config.model, &[10], 5, &mut rng, DType::F64, &Device::Cpu).unwrap()
    };
    let (explicit, fallback) = (build(), AsPlugin::no_vjp(build()));
    let mut r = Rng::new(12);
    let x = Tensor::from_vec((0..30 * 10).map(|_| r.uniform()).collect::<Vec<f64>>(), (30, 10), &Device::Cpu).unwrap();
    let y = argmax_rows(&to_host(&explicit.forward(&x, &Ctx::eval(30)).unwrap().logits).unwrap(), 5);
    let bounds = Bounds::uniform(0.0, 1.0, 10);
    for a in Registry::with_builtins()
        .build_attacks("<test>", "deepfool,fmn(steps=30),ddn(steps=30),apgd(iters=10, targets=2)", Norm::L2)
        .unwrap()
    {
        let one = to_host(&a.run(explicit.as_ref(), &x, &y, Some(&bounds), 0.3).unwrap()).unwrap();
        let two = to_host(&a.run(&fallback, &x, &y, Some(&bounds), 0.3).unwrap()).unwrap();
        let diff = one.iter().zip(&two).map(|(p, q)| (p - q).abs()).fold(0.0, f64::max);
        assert!(diff < 1e-9, "{}: explicit VJP and autograd disagree by {diff}", a.label());
    }
}
