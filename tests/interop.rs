//! Models in and out of amm (docs/INTEROP.md): self-contained checkpoints, `amm export` to ONNX
//! and PyTorch checked against onnxruntime and PyTorch on the same inputs, weights files
//! evaluated alone, and `--init` fine-tuning.
//!
//! The onnxruntime checks need `python3 -c "import onnxruntime, numpy"` (`pip install onnxruntime
//! numpy`; .ci/run installs them and sets AMM_REQUIRE_ONNXRUNTIME=1, which turns a missing
//! onnxruntime into a failure). The PyTorch checks run where torch is importable (by
//! `$AMM_TORCH_PYTHON`, else /opt/ref-venv/bin/python, else python3); CI does not install torch
//! (a 2 GB wheel), so there they are reported as skipped, loudly, and
//! `tools/interop/roundtrip.sh` runs the whole round trip where torch is.
mod common;
use amm_core::rundir;
use common::*;
use std::path::Path;
use std::process::Command;

const CHECK: &str = "tools/interop/check.py";

fn python_with(module: &str, candidates: &[String]) -> Option<String> {
    candidates
        .iter()
        .find(|p| Command::new(p).args(["-c", &format!("import {module}")]).output().is_ok_and(|o| o.status.success()))
        .cloned()
}

/// The Python that has onnxruntime, or `None` after saying loudly why the check is skipped.
fn onnx_python() -> Option<String> {
    let found = python_with("onnxruntime, numpy", &["python3".to_string()]);
    if found.is_none() {
        assert!(
            std::env::var_os("AMM_REQUIRE_ONNXRUNTIME").is_none(),
            "AMM_REQUIRE_ONNXRUNTIME is set but python3 cannot import onnxruntime and numpy (pip install onnxruntime numpy)"
        );
        eprintln!("SKIPPED: the onnxruntime comparison (python3 cannot import onnxruntime; pip install onnxruntime numpy)");
    }
    found
}

/// The Python that has torch and safetensors, or `None` after saying loudly why.
fn torch_python() -> Option<String> {
    let mut c: Vec<String> = std::env::var("AMM_TORCH_PYTHON").into_iter().collect();
    c.extend(["/opt/ref-venv/bin/python".to_string(), "python3".to_string()]);
    let found = python_with("torch, safetensors", &c);
    if found.is_none() {
        eprintln!("SKIPPED: the PyTorch comparison (no Python with torch and safetensors; run tools/interop/roundtrip.sh where torch is)");
    }
    found
}

fn python(py: &str, args: &[&str]) -> String {
    let out = Command::new(py).arg(repo().join(CHECK)).args(args).output().expect("python runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{CHECK} {args:?} failed:\n{text}");
    text
}

/// One epoch of `model` on `data` (a few hundred samples) into `cwd/out`.
fn train(cwd: &Path, data: &str, model: &str, out: &str, extra: &[&str]) {
    let mut args = vec!["train", "--data", data, "--model", model, "--epochs", "1", "--train-size", "200", "--batch", "50"];
    args.extend(["--set", "data.test_size=64", "--set", "eval.long_iters=0", "--out", out, "-q"]);
    args.extend(extra);
    amm(cwd, &args).ok();
}

/// `amm eval PATH --per-sample` rows as (prediction, logits).
fn per_sample(cwd: &Path, args: &[&str]) -> Vec<(u32, Vec<f64>)> {
    let csv = cwd.join("per-sample.csv");
    let mut a: Vec<String> = ["eval"].iter().chain(args).map(|s| s.to_string()).collect();
    a.extend(["--samples", "64", "--long-iters", "0", "--per-sample", &path_str(&csv)].map(String::from));
    amm(cwd, &a).ok();
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header[..5], ["index", "label", "prediction", "margin", "flipped"]);
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[2].parse().unwrap(), f[5..].iter().map(|v| v.parse().unwrap()).collect())
        })
        .collect()
}

/// Same predictions, logits within `tol`.
fn assert_close(a: &[(u32, Vec<f64>)], b: &[(u32, Vec<f64>)], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert_eq!(x.0, y.0, "{what}: sample {i} predicted differently");
        let worst = x.1.iter().zip(&y.1).map(|(p, q)| (p - q).abs()).fold(0.0, f64::max);
        assert!(worst <= tol, "{what}: sample {i}: logits differ by {worst}");
    }
}

#[test]
fn checkpoints_describe_themselves() {
    let d = tempdir();
    train(d.path(), "digits", "mlp(widths=[32])", "run", &[]);
    let (t, meta) = rundir::load_tensors_meta(&d.path().join("run").join(rundir::LAST)).unwrap();
    let model = &meta["amm.model"];
    assert!(model.starts_with("mlp(") && model.contains("widths=[32]") && model.contains("act=relu"), "{model}");
    assert_eq!(meta["amm.input_shape"], "[1,8,8]");
    assert_eq!(meta["amm.classes"], "10");
    assert_eq!(meta["amm.dataset"], "digits");
    assert_eq!(meta["amm.preprocess"], "subtract-mean");
    assert_eq!(meta["amm.epoch"], "1");
    assert_eq!(meta["amm.version"], env!("CARGO_PKG_VERSION"));
    // the stored mean is the training part's pixel mean: 200 digits, so not zero, within [0, 1]
    let mean = t["preprocess.mean"].flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(mean.len(), 64);
    assert!(mean.iter().all(|m| (0.0..=1.0).contains(m)) && mean.iter().any(|&m| m > 0.1), "{mean:?}");
}

/// Every built-in model, exported both ways, gives amm's predictions and logits (1e-4) in
/// onnxruntime and PyTorch on real test inputs.
#[test]
fn exports_match_onnxruntime_and_pytorch_for_every_builtin_model() {
    let d = tempdir();
    let mnist = d.path().join("mnist");
    write_mnist(
        &mnist,
        300,
        64,
        28,
        false,
        ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"],
    );
    let mnist = format!("mnist:{}", path_str(&mnist));
    let cases: [(&str, &str); 12] = [
        ("digits", "linear"),
        ("digits", "mlp(widths=[32, 16], act=tanh, dropout=0.2)"),
        (&mnist, "lenet"),
        ("digits", "liunet"),
        ("digits", "convnet"),
        ("digits", "nin"),
        ("digits", "resnet20"),
        ("digits", "resnet20(norm=frozen_bn)"),
        (&mnist, "mlp"),
        ("digits", "liunet64"),
        ("digits", "resnet(depth=11, block=bottleneck, norm=frozen_bn)"),
        ("digits", "densenet(depth=10, growth=4)"),
    ];
    let (onnx_py, torch_py) = (onnx_python(), torch_python());
    for (i, (data, model)) in cases.iter().enumerate() {
        let run = format!("run{i}");
        train(d.path(), data, model, &run, &[]);
        let onnx = format!("m{i}.onnx");
        amm(d.path(), &["export", &run, "--format", "onnx", "--out", &onnx]).ok().stdout_has("samples with amm's logits");
        let pt = format!("pt{i}");
        amm(d.path(), &["export", &run, "--format", "pytorch", "--out", &pt]).ok();
        for f in ["model.py", "config.json", "weights.safetensors", "samples.safetensors", "README.md"] {
            assert!(d.path().join(&pt).join(f).is_file(), "{model}: {pt}/{f}");
        }
        let onnx_path = path_str(&d.path().join(&onnx));
        let samples = path_str(&d.path().join(format!("m{i}.samples.safetensors")));
        if let Some(py) = &onnx_py {
            python(py, &["onnx", &onnx_path, &samples]);
        }
        if let Some(py) = &torch_py {
            python(py, &["torch", &path_str(&d.path().join(&pt))]);
        }
        // the exported weights alone evaluate like the run
        let from_run = per_sample(d.path(), &[&run]);
        let from_export = per_sample(d.path(), &[&format!("{pt}/weights.safetensors"), "--data", data]);
        // (the weights alone re-centre the inputs on their stored mean: equal up to rounding)
        assert_close(&from_run, &from_export, 1e-5, model);
    }
}

/// PyTorch-changed weights come back: amm's predictions on them are PyTorch's.
#[test]
fn weights_changed_in_pytorch_evaluate_the_same_in_amm() {
    let Some(py) = torch_python() else { return };
    let d = tempdir();
    train(d.path(), "digits", "convnet", "run", &[]);
    amm(d.path(), &["export", "run", "--format", "pytorch", "--out", "pt"]).ok();
    let changed = path_str(&d.path().join("changed.safetensors"));
    let torch_csv = path_str(&d.path().join("torch.csv"));
    python(&py, &["modify", &path_str(&d.path().join("pt")), &changed, "--csv", &torch_csv]);
    // no amm metadata in a file PyTorch wrote: the model must be named
    amm(d.path(), &["eval", &changed, "--data", "digits"]).fails().stderr_has("--model");
    let amm_csv = path_str(&d.path().join("amm.csv"));
    amm(
        d.path(),
        &["eval", &changed, "--model", "convnet", "--data", "digits", "--samples", "64", "--long-iters", "0", "--per-sample", &amm_csv],
    )
    .ok();
    python(&py, &["compare-csv", &amm_csv, &torch_csv]);
}

#[test]
fn init_starts_from_the_given_weights_and_lists_every_mismatch() {
    let d = tempdir();
    train(d.path(), "digits", "convnet", "ref", &[]);
    let before = per_sample(d.path(), &["ref"]);
    // a learning rate too small to move anything: the fine-tuned model is the reference
    train(d.path(), "digits", "convnet", "ft", &["--init", "ref", "--lr", "1e-12", "--reg", "deepfool(l2, 2) |> avg |> exp(2, 1)"]);
    let after = per_sample(d.path(), &["ft"]);
    assert_close(&before, &after, 1e-4, "fine-tuned at lr 1e-12");
    // without --init the same run starts elsewhere
    train(d.path(), "digits", "convnet", "fresh", &["--lr", "1e-12", "--seed", "5"]);
    assert_ne!(per_sample(d.path(), &["fresh"]), before);
    // the spec records it, and an export of the reference works as an init too
    assert_eq!(read_json(&d.path().join("ft/spec.json"))["train"]["init"], "ref");
    amm(d.path(), &["export", "ref", "--format", "pytorch", "--out", "pt", "--samples", "0"]).ok();
    train(d.path(), "digits", "convnet", "ft2", &["--init", "pt/weights.safetensors", "--lr", "1e-12"]);
    assert_close(&per_sample(d.path(), &["ft2"]), &before, 1e-4, "fine-tuned from the export");

    let r = amm(d.path(), &["train", "--data", "digits", "--model", "liunet", "--init", "ref", "--epochs", "1", "--out", "bad", "-q"]);
    r.fails().stderr_has("ref/checkpoint-last.safetensors: these weights do not fit the model");
    r.stderr_has("missing `conv4.weight` [64, 64, 3, 3]")
        .stderr_has("`conv1.weight` has shape [32, 1, 5, 5], the model's is [64, 1, 3, 3]")
        .no_panic();
    r.stderr_has("(they are a convnet").stderr_has("missing `gn10.bias`");
    let r = amm(
        d.path(),
        &["train", "--data", "digits", "--model", "mlp(widths=[32])", "--init", "ref", "--epochs", "1", "--out", "bad2", "-q"],
    );
    r.fails()
        .stderr_has("unexpected `conv1.weight` (not in the model)")
        .stderr_has("`fc1.weight` has shape [64, 64], the model's is [32, 64]");
    amm(d.path(), &["train", "--data", "digits", "--init", "nowhere", "--epochs", "1", "-q"])
        .fails()
        .stderr_has("nowhere: no such run directory or checkpoint (or weights file)");
}

#[test]
fn export_errors_are_clear() {
    let d = tempdir();
    amm(d.path(), &["export", "nowhere", "--format", "onnx", "--out", "x.onnx"]).fails().stderr_has("nowhere: no such run directory");
    std::fs::write(d.path().join("w.safetensors"), b"not safetensors").unwrap();
    amm(d.path(), &["export", "w.safetensors", "--format", "onnx", "--out", "x.onnx"]).fails().no_panic();
    amm(d.path(), &["export", "x", "--format", "keras", "--out", "y"]).fails().stderr_has("possible values: onnx, pytorch");
}

/// The paper's two steps in one grid: each AMM cell fine-tunes from the reference of its seed,
/// which the grid runs first (in parallel too).
#[test]
fn a_grid_cell_fine_tunes_from_another_cells_result() {
    let d = tempdir();
    let spec = |init: &str| {
        format!(
            "[experiment]\nseeds = [0, 1]\n[data]\nname = digits\ntrain_size = 150\ntest_size = 32\n[model]\narch = mlp(widths=[16])\n\
             [train]\nepochs = 1\ninit = \"{init}\"\n[reg]\npipeline = {{ deepfool(l2, 2) |> avg |> exp(2, 1), none }}\n[eval]\nlong_iters = 0\n"
        )
    };
    std::fs::write(d.path().join("two.amm"), spec("cell:reg.pipeline=none")).unwrap();
    amm(d.path(), &["grid", "two.amm", "--jobs", "2", "-q"]).ok();
    let runs = d.path().join("runs/two");
    let mut seen = 0;
    for e in std::fs::read_dir(&runs).unwrap().flatten().filter(|e| e.path().is_dir()) {
        let name = e.file_name().to_string_lossy().to_string();
        let init = read_json(&e.path().join("spec.json"))["train"]["init"].clone();
        if name.starts_with("reg.pipeline=none") {
            assert!(init.is_null(), "{name}: the reference starts from scratch");
        } else {
            let seed = if name.contains("seed=0") { "seed=0" } else { "seed=1" };
            let from = init.as_str().unwrap_or_else(|| panic!("{name}: no init"));
            assert!(from.contains("reg.pipeline=none") && from.contains(seed), "{name} starts from {from}");
            let log = std::fs::read_to_string(e.path().join("log.txt")).unwrap();
            assert!(log.contains("initial weights from"), "{log}");
            seen += 1;
        }
    }
    assert_eq!(seen, 2);
    // run again: everything is done, nothing differs
    amm(d.path(), &["grid", "two.amm"]).ok().stderr_has("done already");

    std::fs::write(d.path().join("bad.amm"), spec("cell:train.lr=0.5")).unwrap();
    amm(d.path(), &["grid", "bad.amm"]).fails().stderr_has("`train.lr` is not an axis of this grid (its axes: reg.pipeline)");
    std::fs::write(d.path().join("bad2.amm"), spec("cell:reg.pipeline=hinge")).unwrap();
    amm(d.path(), &["grid", "bad2.amm"]).fails().stderr_has("no cell of the grid has reg.pipeline = hinge");
}
