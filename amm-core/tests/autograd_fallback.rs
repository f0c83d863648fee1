//! Models without an explicit input VJP use candle's double backward. candle 0.11.1 keeps the
//! second-order terms only with CANDLE_GRAD_DO_NOT_DETACH, read once per thread; without it they
//! vanish with no error. `cargo test` sets the variable for every test process
//! (.cargo/config.toml), so the check of the trap runs this binary again as a child process
//! without it: the variable is process-global and cached per thread, and amm never changes the
//! environment while threads run.
mod common;
use amm_core::autograd::{ensure_second_order, second_order_available};
use amm_core::candle_core::{DType, Device, Tensor};
use amm_core::data::Rng;
use amm_core::dsl;
use amm_core::gradcheck::{gradcheck, random_batch, GradcheckOptions};
use amm_core::layer::{Ctx, Mode};
use amm_core::model::Model;
use amm_core::tensor::to_host;
use amm_core::Registry;
use common::AsPlugin;

const PIPE: &str = "deepfool(l2, 4) |> min(class, 0.5) |> exp(c=2, d=1) |> weight(3)";

fn setup(arch: &str) -> (Box<dyn Model>, AsPlugin, amm_core::Regularizer, Tensor, Vec<u32>) {
    let reg = Registry::with_builtins();
    let g = dsl::experiment_from_overrides(&[format!("model.arch={arch}"), format!("reg.pipeline={PIPE}")], &reg).unwrap();
    let c = &g.cells[0].config;
    let build = || reg.build_model(&c.model, &[6], 4, &mut Rng::new(3).fork(1), DType::F64, &Device::Cpu).unwrap();
    let (explicit, fallback) = (build(), AsPlugin::no_vjp(build()));
    let r = reg.build_regularizer(c.reg.as_ref().unwrap()).unwrap();
    let (x, y) = random_batch(explicit.as_ref(), 8, 5).unwrap();
    (explicit, fallback, r, x, y)
}

fn grad(m: &dyn Model, r: &amm_core::Regularizer, x: &Tensor, y: &[u32]) -> Vec<f64> {
    let out = r.compute(m, x, y, &Ctx::new(Mode::Attack, 1, x.dim(0).unwrap()), None).unwrap();
    let g = out.loss.backward().unwrap();
    m.params().vars().iter().flat_map(|(_, v)| to_host(g.get(v.as_tensor()).unwrap()).unwrap()).collect()
}

fn rel(a: &[f64], b: &[f64]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(u, v)| (u - v) * (u - v)).sum();
    let den: f64 = a.iter().map(|u| u * u).sum();
    (num / den).sqrt()
}

const TRAP: &str = "without_the_variable_candle_drops_second_order_terms_and_amm_refuses";

#[test]
fn without_the_variable_candle_drops_second_order_terms_and_amm_refuses() {
    if std::env::var_os("AMM_FALLBACK_CHILD").is_none() {
        // The parent: run this very test in a child process without the variable.
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", TRAP, "--test-threads", "1"])
            .env_remove("CANDLE_GRAD_DO_NOT_DETACH")
            .env("AMM_FALLBACK_CHILD", "1")
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && text.contains("1 passed"), "the child run failed or ran nothing:\n{text}");
        return;
    }
    // The child: candle drops the second-order terms silently (the trap), and amm refuses to
    // train such a model.
    assert!(std::env::var("CANDLE_GRAD_DO_NOT_DETACH").is_err(), "the child must run without CANDLE_GRAD_DO_NOT_DETACH");
    std::thread::spawn(|| {
        assert!(!second_order_available().unwrap(), "candle now keeps second-order terms by default: revisit autograd.rs");
        for arch in ["mlp(widths=[10, 10])", "mlp(widths=[10], act=tanh)"] {
            let (explicit, fallback, r, x, y) = setup(arch);
            let d = rel(&grad(explicit.as_ref(), &r, &x, &y), &grad(&fallback, &r, &x, &y));
            assert!(d > 1e-3, "{arch}: the fallback without the variable should lose the second-order terms, differs by only {d:e}");
            let err = ensure_second_order(&fallback, &x).unwrap_err().to_string();
            assert!(err.contains("silently drop the second-order terms"), "{err}");
        }
    })
    .join()
    .unwrap();
}

#[test]
fn with_the_variable_the_fallback_matches_the_explicit_vjp_and_finite_differences() {
    assert!(
        std::env::var("CANDLE_GRAD_DO_NOT_DETACH").is_ok(),
        "run the tests through cargo (.cargo/config.toml sets CANDLE_GRAD_DO_NOT_DETACH)"
    );
    std::thread::spawn(|| {
        for arch in ["mlp(widths=[10, 10])", "mlp(widths=[10], act=tanh)"] {
            let (explicit, fallback, r, x, y) = setup(arch);
            ensure_second_order(&fallback, &x).unwrap();
            let d = rel(&grad(explicit.as_ref(), &r, &x, &y), &grad(&fallback, &r, &x, &y));
            assert!(d < 1e-10, "{arch}: fallback differs from the explicit VJP by {d:e}");
            let rep = gradcheck(&fallback, &r, &x, &y, &GradcheckOptions { max_entries: Some(16), ..Default::default() }).unwrap();
            assert!(rep.max_rel_err < 1e-5 && rep.hog_rel_diff > 1e-3, "{arch}: {rep:?}");
        }
    })
    .join()
    .unwrap();
}
