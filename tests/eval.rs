//! `amm eval`: a saved run's metrics are reproduced from its checkpoints; clear errors otherwise.
mod common;
use common::*;
use std::path::Path;

/// A finished 3-epoch run with a validation split, in `cwd/run`.
fn finished_run(cwd: &Path, val: bool) -> Value {
    let mut args = with(&["train"], &tiny());
    args.extend(["--reg", "deepfool(l2, 3) |> avg |> exp(2, 1)", "--epochs", "3", "--out", "run", "--json"].map(String::from));
    if val {
        args.extend(["--set", "data.val_size=200"].map(String::from));
    }
    let r = amm(cwd, &args);
    r.ok();
    r.json()
}

#[test]
fn eval_reproduces_the_run_result() {
    let d = tempdir();
    let res = finished_run(d.path(), false);
    let r = amm(d.path(), &["eval", "run", "--json"]);
    r.ok();
    let v = r.json();
    assert_eq!(v["test_error"], res["test_error"], "{v}\n{res}");
    assert_eq!(v["error"], res["test_error"]);
    for k in ["margin", "margin_min", "margin_median", "margin_rel", "attack_success"] {
        let (a, b) = (num(&v, k), num(&res, k));
        assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{k}: eval {a} vs result.json {b}");
    }
    assert_eq!(v["samples"], 500);
    assert!(v["checkpoint"].as_str().unwrap().ends_with("checkpoint-last.safetensors"), "{v}");
    // the same through the checkpoint's path, and from another working directory
    let ck = path_str(&d.path().join("run/checkpoint-last.safetensors"));
    let elsewhere = tempdir();
    let r = amm(elsewhere.path(), &["eval", &ck, "--json"]);
    r.ok();
    assert_eq!(r.json()["test_error"], res["test_error"]);
}

#[test]
fn eval_batch_is_a_setting_of_the_run_and_of_amm_eval() {
    // eval.batch only groups the samples: a ragged batch of 7 gives the run's metrics again
    let d = tempdir();
    let mut args = with(&["train"], &tiny());
    args.extend(["--reg", "deepfool(l2, 3) |> avg |> exp(2, 1)", "--epochs", "1", "--out", "run", "--json"].map(String::from));
    args.extend(["--set", "eval.batch=7"].map(String::from));
    let r = amm(d.path(), &args);
    r.ok();
    let res = r.json();
    let spec: Value = serde_json::from_str(&std::fs::read_to_string(d.path().join("run/spec.json")).unwrap()).unwrap();
    assert_eq!(spec["eval"]["batch"], 7, "{spec}");
    let r = amm(d.path(), &["eval", "run", "--json"]);
    r.ok();
    let seven = r.json();
    assert_eq!(seven["batch"], 7, "the run's eval.batch");
    let r = amm(d.path(), &["eval", "run", "--json", "--batch", "500"]);
    r.ok();
    let whole = r.json();
    assert_eq!(whole["batch"], 500);
    for v in [&seven, &whole] {
        assert_eq!(v["test_error"], res["test_error"], "{v}\n{res}");
        let (a, b) = (num(v, "margin"), num(&res, "margin"));
        assert!((a - b).abs() <= 1e-4 * b, "margin {a} vs the run's {b}");
    }
    amm(d.path(), &["eval", "run", "--batch", "0"]).fails().stderr_has("--batch must be at least 1");
    // its default stays out of the spec, so that earlier run folders keep their hash
    let r = amm(
        d.path(),
        &with(&["train"], &tiny()).into_iter().chain(["--epochs", "1", "--out", "plain"].map(String::from)).collect::<Vec<_>>(),
    );
    r.ok();
    let spec: Value = serde_json::from_str(&std::fs::read_to_string(d.path().join("plain/spec.json")).unwrap()).unwrap();
    assert!(spec["eval"].get("batch").is_none(), "{spec}");
}

#[test]
fn eval_text_and_options() {
    let d = tempdir();
    let res = finished_run(d.path(), false);
    let r = amm(d.path(), &["eval", "run"]);
    r.ok();
    r.stdout_has(&format!("test error      {:.2}%", 100.0 * num(&res, "test_error")));
    r.stdout_has("margin (DF-5)");
    assert!(!r.stdout.contains("DF-50"), "long_iters=0 in the run's spec: no long attack line\n{}", r.describe());
    // fewer samples, other attack lengths
    let r = amm(d.path(), &["eval", "run", "--json", "--samples", "100", "--iters", "1", "--long-iters", "20"]);
    r.ok();
    let v = r.json();
    assert_eq!(v["samples"], 100);
    let long = num(&v, "margin_long");
    assert!(long > 0.0 && long <= num(&v, "margin") * 1.5, "{v}");
    let r = amm(d.path(), &["eval", "run", "--long-iters", "20"]);
    r.ok().stdout_has("margin (DF-20)");
}

#[test]
fn eval_best_checkpoint_matches_the_best_epoch() {
    let d = tempdir();
    let res = finished_run(d.path(), true);
    let best = res["best_epoch"].as_u64().expect("best epoch") as usize;
    let m = metrics(&d.path().join("run"));
    let r = amm(d.path(), &["eval", "run", "--best", "--json"]);
    r.ok();
    let v = r.json();
    assert_eq!(v["test_error"], m[best - 1]["test"]["error"], "best epoch {best}: {v}");
    assert!(v["checkpoint"].as_str().unwrap().ends_with("checkpoint-best.safetensors"));
    let r = amm(d.path(), &["eval", "run/checkpoint-best.safetensors", "--json"]);
    r.ok();
    assert_eq!(r.json()["test_error"], v["test_error"]);
}

#[test]
fn eval_on_another_dataset_of_the_same_shape() {
    // a digits model on csv data with 64 features and 10 classes
    let d = tempdir();
    finished_run(d.path(), false);
    let data = d.path().join("csv64");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("train.csv"), csv_text(50, 64, 10, 1)).unwrap();
    std::fs::write(data.join("test.csv"), csv_text(30, 64, 10, 2)).unwrap();
    let r = amm(d.path(), &["eval", "run", "--json", "--data", &format!("csv:{}", path_str(&data))]);
    r.ok();
    let v = r.json();
    assert_eq!(v["samples"], 30);
    assert!((0.0..=1.0).contains(&num(&v, "test_error")));
    // another shape: a clear error, no panic
    let r = amm(d.path(), &["eval", "run", "--data", "toy2d"]);
    r.fails().stderr_has("shape");
    let r = amm(d.path(), &["eval", "run", "--data", "nope"]);
    r.fails().stderr_has("unknown dataset `nope`");
}

#[test]
fn eval_errors_are_clear() {
    let d = tempdir();
    amm(d.path(), &["eval", "missing", "--json"]).fails().stderr_has("missing").stderr_has("no such run directory or checkpoint");
    finished_run(d.path(), false);
    // no best checkpoint without a validation split
    let r = amm(d.path(), &["eval", "run", "--best"]);
    r.fails().stderr_has("no best checkpoint").stderr_has("validation split");
    // a directory that is not a run
    std::fs::create_dir(d.path().join("empty")).unwrap();
    amm(d.path(), &["eval", "empty"]).fails().stderr_has("checkpoint-last.safetensors");
    // a checkpoint without its spec: it describes itself (docs/INTEROP.md), so it evaluates alone
    std::fs::create_dir(d.path().join("lone")).unwrap();
    std::fs::copy(d.path().join("run/checkpoint-last.safetensors"), d.path().join("lone/model.safetensors")).unwrap();
    amm(d.path(), &["eval", "lone/model.safetensors"]).ok().stdout_has("test error");
    // weights that do not say which model they are (no amm metadata): --model is asked for
    let (t, _) = amm_core::rundir::load_tensors_meta(&d.path().join("run/checkpoint-last.safetensors")).unwrap();
    amm_core::candle_core::safetensors::save(&t, d.path().join("lone/bare.safetensors")).unwrap();
    amm(d.path(), &["eval", "lone/bare.safetensors", "--data", "digits"]).fails().stderr_has("--model");
    // a truncated checkpoint
    std::fs::create_dir(d.path().join("broken")).unwrap();
    std::fs::copy(d.path().join("run/spec.json"), d.path().join("broken/spec.json")).unwrap();
    let bytes = std::fs::read(d.path().join("run/checkpoint-last.safetensors")).unwrap();
    std::fs::write(d.path().join("broken/checkpoint-last.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    amm(d.path(), &["eval", "broken"]).fails().stderr_has("checkpoint-last.safetensors");
    // garbage instead of a checkpoint
    std::fs::write(d.path().join("broken/checkpoint-last.safetensors"), b"not a safetensors file at all").unwrap();
    amm(d.path(), &["eval", "broken"]).fails();
    // a checkpoint of another model
    std::fs::write(
        d.path().join("broken/spec.json"),
        std::fs::read_to_string(d.path().join("run/spec.json")).unwrap().replace("\"int\": 32", "\"int\": 33"),
    )
    .unwrap();
    std::fs::copy(d.path().join("run/checkpoint-last.safetensors"), d.path().join("broken/checkpoint-last.safetensors")).unwrap();
    amm(d.path(), &["eval", "broken"]).fails().stderr_has("shape");
}
