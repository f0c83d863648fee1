//! `amm gradcheck`: the regularizer's weight gradient against finite differences, for every
//! registered model, norm and pipeline shape; the second-order terms are present and switchable.
mod common;
use common::*;

/// The models gradcheck is run on, with small inputs and batches to keep each check short. A
/// model with parameters may be listed with them (`densenet(depth=7, growth=4)`): the smallest
/// network of that architecture.
const MODELS: [(&str, &[&str]); 16] = [
    ("linear", &[]),
    ("mlp", &[]),
    ("lenet", &["--batch", "4", "--entries", "12"]),
    ("liunet", &["--batch", "4", "--entries", "8", "--input", "1x8x8"]),
    ("convnet", &["--batch", "4", "--entries", "12", "--input", "3x8x8"]),
    ("nin", &["--batch", "4", "--entries", "8", "--input", "3x8x8"]),
    ("resnet20", &["--batch", "4", "--entries", "8", "--input", "3x8x8"]),
    ("resnet20(norm=frozen_bn)", &["--batch", "4", "--entries", "8", "--input", "3x8x8"]),
    // The CIFAR models at their smallest inputs and with 3 classes (fewer DeepFool rows): each
    // has 56 to 176 parameter tensors, every one checked. They take 35 to 70 s each in a debug
    // build, so their tests are ignored in the default suite (run them with `cargo test --release
    // --test gradcheck -- --include-ignored`); the default suite checks the same builders and
    // layers on the smallest nets below (liunet64/96 are the `liunet` builder above).
    ("liunet64", &["--batch", "4", "--entries", "8", "--classes", "3", "--input", "3x8x8"]),
    ("liunet96", &["--batch", "2", "--entries", "8", "--classes", "3", "--input", "3x8x8"]),
    ("resnet56", &["--batch", "4", "--entries", "8", "--classes", "3", "--input", "3x4x4"]),
    ("resnet(depth=11, block=bottleneck, norm=frozen_bn)", &["--batch", "4", "--entries", "8", "--classes", "3", "--input", "3x4x4"]),
    ("densenet40", &["--batch", "4", "--entries", "8", "--classes", "3", "--input", "3x4x4"]),
    ("densenet(depth=7, growth=4, norm=frozen_bn)", &["--batch", "4", "--entries", "8", "--input", "3x8x8"]),
    // The smallest bottleneck ResNet and DenseNet with GroupNorm, the norm of resnet56 and densenet40.
    ("resnet(depth=11, block=bottleneck)", &["--batch", "4", "--entries", "8", "--classes", "3", "--input", "3x4x4"]),
    ("densenet(depth=7, growth=4)", &["--batch", "4", "--entries", "8", "--input", "3x8x8"]),
];

#[track_caller]
fn passes(model: &str, extra: &[&str]) -> Value {
    let d = tempdir();
    let r = amm(d.path(), &with(&["gradcheck", "--model", model, "--json"], extra));
    r.ok();
    let v = r.json();
    assert_eq!(v["ok"], true, "{model} {extra:?}: {v}");
    assert!(num(&v, "max_rel_err") < 1e-4, "{model} {extra:?}: {v}");
    let (checked, kinks) = (num(&v, "checked"), num(&v, "skipped_kinks"));
    assert!(checked > 0.0, "{model}: nothing checked: {v}");
    assert!(kinks * 5.0 <= checked + kinks, "{model}: too many kinks: {v}");
    assert!(num(&v, "selected") > 0.0, "{model}: no sample regularized: {v}");
    assert!(num(&v, "loss").is_finite());
    v
}

#[test]
fn every_registered_model_is_listed_here() {
    let d = tempdir();
    let r = amm(d.path(), &["list", "--json"]);
    r.ok();
    let listed: Vec<String> =
        r.json().as_array().unwrap().iter().filter(|e| e["kind"] == "model").map(|e| e["name"].as_str().unwrap().to_string()).collect();
    for m in &listed {
        let covers = |n: &str| n == m || n.strip_prefix(m.as_str()).is_some_and(|rest| rest.starts_with('('));
        assert!(MODELS.iter().any(|(n, _)| covers(n)), "model `{m}` has no gradcheck test: add it to MODELS");
    }
}

fn model_test(i: usize) {
    let (model, extra) = MODELS[i];
    let v = passes(model, extra);
    assert!(num(&v, "hog_rel_diff") > 1e-4, "{model}: the second-order terms should matter: {v}");
    assert!(v["reg"].as_str().unwrap().contains("hog=true"), "{v}");
}

#[test]
fn gradcheck_linear() {
    model_test(0);
}
#[test]
fn gradcheck_mlp() {
    model_test(1);
}
#[test]
fn gradcheck_lenet() {
    model_test(2);
}
#[test]
fn gradcheck_liunet() {
    model_test(3);
}
#[test]
fn gradcheck_convnet() {
    model_test(4);
}
#[test]
fn gradcheck_nin() {
    model_test(5);
}
#[test]
fn gradcheck_resnet20() {
    model_test(6);
}
#[test]
fn gradcheck_resnet20_frozen_bn() {
    let v = passes(MODELS[7].0, MODELS[7].1);
    assert!(v["model"].as_str().unwrap().contains("frozen_bn"), "{v}");
    assert!(num(&v, "hog_rel_diff") > 1e-4, "{v}");
}
#[test]
#[ignore = "35-70 s in a debug build; cargo test --release --test gradcheck -- --include-ignored"]
fn gradcheck_liunet64() {
    model_test(8);
}
#[test]
#[ignore = "35-70 s in a debug build; cargo test --release --test gradcheck -- --include-ignored"]
fn gradcheck_liunet96() {
    model_test(9);
}
#[test]
#[ignore = "35-70 s in a debug build; cargo test --release --test gradcheck -- --include-ignored"]
fn gradcheck_resnet56() {
    model_test(10);
}
#[test]
fn gradcheck_resnet_bottleneck_frozen_bn() {
    model_test(11);
}
#[test]
#[ignore = "35-70 s in a debug build; cargo test --release --test gradcheck -- --include-ignored"]
fn gradcheck_densenet40() {
    model_test(12);
}
#[test]
fn gradcheck_densenet_frozen_bn() {
    model_test(13);
}
#[test]
fn gradcheck_resnet_bottleneck() {
    model_test(14);
}
#[test]
fn gradcheck_densenet() {
    model_test(15);
}

#[test]
fn hog_false_has_no_second_order_terms() {
    let d = tempdir();
    for model in ["mlp(widths=[16])", "lenet"] {
        let r = amm(
            d.path(),
            &["gradcheck", "--model", model, "--reg", "deepfool(l2, 5, hog=false) |> avg |> exp(2,1)", "--json", "--batch", "4"],
        );
        r.no_panic();
        let v = r.json();
        // exactly 0 for the MLP; the convolutions' replayed pass may differ by rounding
        let tol = if model.starts_with("mlp") { 0.0 } else { 1e-12 };
        assert!(num(&v, "hog_rel_diff") <= tol, "{model}: {v}");
        assert!(num(&v, "selected") > 0.0, "{model}: {v}");
        assert!(v["reg"].as_str().unwrap().contains("hog=false"), "{v}");
    }
}

#[test]
fn other_norms_pass() {
    for norm in ["linf", "l1"] {
        let v = passes("mlp(widths=[16])", &["--reg", &format!("deepfool({norm}, 5) |> avg |> exp(2,1)")]);
        assert!(v["reg"].as_str().unwrap().contains(&format!("norm={norm}")), "{v}");
        assert!(num(&v, "hog_rel_diff") > 1e-4, "{norm}: {v}");
        let v = passes(
            "lenet",
            &["--batch", "8", "--entries", "8", "--reg", &format!("deepfool({norm}, 10) |> min(class, 0.5) |> exp(2, 1, clip=1e9)")],
        );
        assert!(num(&v, "hog_rel_diff") > 1e-4, "{norm}: {v}");
    }
}

#[test]
fn every_aggregation_and_shrinkage_passes() {
    for reg in [
        "deepfool(l2, 3) |> min(class, 0.5) |> exp(2, 1)",
        "deepfool(l2, 3) |> min(class, 0.5) |> inv(1, 1)",
        "deepfool(l2, 3) |> avg |> lin(1, 1) |> weight(3)",
        "deepfool(l2, 3) |> avg |> hinge(1)",
        "deepfool(l2, 3) |> avg |> normalize |> exp(c=25, d=5)",
        "deepfool(l2, 3, candidates=3) |> avg |> exp(2, 1)",
        "linear(l2, hog=true) |> avg |> hinge(1)",
    ] {
        passes("mlp(widths=[16])", &["--reg", reg]);
    }
}

#[test]
fn clipped_terms_do_not_make_a_correct_gradient_fail() {
    // The same pipeline passes with clip=1e9 (other_norms_pass); with the default clip=50 one
    // misclassified sample's term is clipped to the constant 50 and the rest is ~1e-10.
    passes("lenet", &["--batch", "8", "--entries", "8", "--reg", "deepfool(l1, 10) |> min(class, 0.5) |> exp(2, 1)"]);
}

#[test]
fn text_output_and_errors() {
    let d = tempdir();
    let r = amm(d.path(), &["gradcheck", "--model", "linear"]);
    r.ok().stdout_has("OK").stdout_has("rel err").stdout_has("chain share");
    amm(d.path(), &["gradcheck", "--model", "linear", "--reg", "none"]).fails().stderr_has("no gradient to check");
    amm(d.path(), &["gradcheck", "--model", "mlpp"]).fails().stderr_has("did you mean `mlp`");
    amm(d.path(), &["gradcheck", "--model", "lenet", "--input", "1x8x8"]).fails().stderr_has("16");
    amm(d.path(), &["gradcheck", "--model", "linear", "--input", "axb"]).fails().stderr_has("--input");
    amm(d.path(), &["gradcheck", "--model", "linear", "--reg", "deepfool(l2) |> exq"]).fails().stderr_has("did you mean `exp`");
}

/// The run directory (the folder holding spec.json): the experiment folder of a single run, or
/// its one cell.
fn run_dir(out: &std::path::Path) -> std::path::PathBuf {
    if out.join("spec.json").exists() {
        return out.to_path_buf();
    }
    let mut dirs: Vec<_> =
        std::fs::read_dir(out).unwrap().filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.join("spec.json").exists()).collect();
    assert_eq!(dirs.len(), 1, "one run in {}", out.display());
    dirs.pop().unwrap()
}

/// The acceptance test, on the embedded digits: a trained AMM model, real data, a batch
/// of 100, f64: the default (full) chain agrees with finite differences of the value recomputed
/// from scratch to 1e-6; `chain=none` is reported as not the derivative; `--dump` writes the
/// value and the gradient under the checkpoint's names; `--weights` gives the same check.
#[test]
fn a_trained_run_on_real_data() {
    let d = tempdir();
    let pipe = "deepfool(l2, 5) |> min(class, 0.2) |> exp(c=2, d=1) |> weight(32)";
    amm(d.path(), &with(&["train"], &with(&tiny(), &["--out", "exp", "--epochs", "2", "--reg", pipe]))).ok();
    let run = run_dir(&d.path().join("exp"));
    let run_s = path_str(&run);
    let dump = d.path().join("g.safetensors");
    let base = ["gradcheck", "--run", &run_s, "--data", "digits", "--batch", "100", "--dtype", "f64", "--entries", "16"];
    let r = amm(d.path(), &with(&base, &["--json", "--dump", &path_str(&dump)]));
    r.ok();
    let v = r.json();
    assert_eq!(v["ok"], true, "{v}");
    assert!(num(&v, "rel_err") <= 1e-6, "{v}");
    assert!(num(&v, "checked") >= 12.0 && num(&v, "selected") > 0.0 && num(&v, "iterations") >= 2.0, "{v}");
    assert!(v["reg"].as_str().unwrap().contains("chain=full"), "the run's pipeline, with the default chain: {v}");
    assert!(v["batch_from"].as_str().unwrap().contains("first 100 training samples of digits"), "{v}");
    assert!(num(&v, "chain_rel_diff") > 1e-3 && num(&v, "hog_rel_diff") > 1e-4, "{v}");

    // The dump: the value, one gradient per parameter under the checkpoint's name, the batch.
    let t = amm_core::candle_core::safetensors::load(&dump, &amm_core::candle_core::Device::Cpu).unwrap();
    let value = t["value"].to_vec1::<f64>().unwrap()[0];
    assert!((value - num(&v, "loss")).abs() <= 1e-12 * value.abs(), "{value} vs {v}");
    let ck =
        amm_core::candle_core::safetensors::load(run.join("checkpoint-last.safetensors"), &amm_core::candle_core::Device::Cpu).unwrap();
    for name in ["model.fc1.weight", "model.fc1.bias", "model.fc2.weight", "model.fc2.bias"] {
        assert_eq!(t[name].dims(), ck[name].dims(), "{name}");
    }
    assert_eq!(t["batch.x"].dims()[0], 100);

    // chain=none: reported as a mismatch, exit code 1.
    let none = "deepfool(l2, 5, chain=none) |> min(class, 0.2) |> exp(c=2, d=1) |> weight(32)";
    let r = amm(d.path(), &with(&base, &["--reg", none]));
    r.fails().stdout_has("FAILED").stderr_has("not the derivative of the regularizer");

    // The same weights through --weights and --model.
    let ck_s = path_str(&run.join("checkpoint-last.safetensors"));
    let r = amm(
        d.path(),
        &["gradcheck", "--weights", &ck_s, "--model", "mlp(widths=[32])", "--data", "digits", "--reg", pipe, "--batch", "100", "--json"],
    );
    let w = r.ok().json();
    assert_eq!(w["ok"], true, "{w}");
    assert_eq!(num(&w, "loss"), num(&v, "loss"), "same weights, same batch, same value");

    // Errors name the problem.
    amm(d.path(), &["gradcheck", "--run", "nowhere"]).fails().stderr_has("no such run directory");
    amm(d.path(), &["gradcheck", "--run", &run_s, "--model", "mlp"]).fails().stderr_has("a run has its model");
    amm(d.path(), &["gradcheck", "--run", &run_s, "--dtype", "f16"]).fails().stderr_has("use f64 or f32");
    amm(d.path(), &["gradcheck"]).fails().stderr_has("--run DIR");
}
