//! `amm train` and `amm run`: outputs, run directories, determinism, refusals, divergence, grids.
mod common;
use common::*;
use std::path::Path;

const AMM_REG: &str = "deepfool(l2, 3) |> avg |> exp(c=2, d=1) |> weight(4)";

fn train<S: AsRef<str>>(dir: &Path, out: &str, extra: &[S]) -> Run {
    amm(dir, &with(&with(&["train"], &tiny()), &with(&["--out", out], extra)))
}

#[test]
fn train_prints_json_and_writes_a_complete_run_directory() {
    let d = tempdir();
    let r = train(d.path(), "run", &["--reg", "none", "--epochs", "2", "--json"]);
    r.ok();
    assert!(r.stderr.is_empty(), "--quiet prints nothing on stderr\n{}", r.describe());
    let v = r.json();
    assert!(v.is_object(), "one JSON object for one run: {v}");
    let err = num(&v, "test_error");
    assert!((0.0..=1.0).contains(&err), "{v}");
    assert!(err < 0.9, "two epochs on digits should beat chance: {v}");
    let (margin, min, median) = (num(&v, "margin"), num(&v, "margin_min"), num(&v, "margin_median"));
    assert!(margin > 0.0 && min >= 0.0 && min <= median && min <= margin, "{v}");
    assert!(num(&v, "train_seconds") > 0.0 && num(&v, "ms_per_step") > 0.0, "{v}");
    assert_eq!(v["epochs"], 2);
    assert_eq!(v["data"], "digits");
    assert_eq!(v["reg"], "none");
    assert_eq!(v["seed"], 0);
    assert_eq!(v["train_samples"], 1297);
    assert_eq!(v["test_samples"], 500);
    assert_eq!(v["params"], 64 * 32 + 32 + 32 * 10 + 10);
    assert!(v["margin_long"].is_null(), "eval.long_iters=0 skips the long attack: {v}");
    assert!(v["val_error"].is_null() && v["best_epoch"].is_null(), "{v}");

    let run = d.path().join("run");
    for f in ["spec.json", "metrics.jsonl", "metrics.csv", "checkpoint-last.safetensors", "result.json"] {
        assert!(run.join(f).is_file(), "{f} missing from the run directory");
    }
    assert!(!run.join("checkpoint-best.safetensors").exists(), "no validation split, no best checkpoint");
    let result = read_json(&run.join("result.json"));
    let mut printed = v.clone();
    printed.as_object_mut().unwrap().remove("cell");
    assert_eq!(result, printed, "stdout and result.json hold the same metrics");

    let m = metrics(&run);
    assert_eq!(m.len(), 2);
    for (i, line) in m.iter().enumerate() {
        assert_eq!(line["epoch"], i + 1);
        assert_eq!(line["reg"], 0.0, "reg none: {line}");
        assert!((num(line, "loss") - num(line, "ce")).abs() < 1e-12, "{line}");
        assert!(line["test"].is_object(), "evaluated every epoch: {line}");
    }
    assert!(num(&m[1], "loss") < num(&m[0], "loss"), "the loss falls: {m:?}");
    assert_eq!(m[1]["test"]["error"], result["test_error"]);
    assert_eq!(m[1]["test"]["margin"], result["margin"]);

    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 3, "header and one row per epoch:\n{csv}");
    let col = |name: &str| rows[0].iter().position(|c| *c == name).unwrap_or_else(|| panic!("no `{name}` column:\n{csv}"));
    assert_eq!(rows[1][col("epoch")], "1");
    assert_eq!(rows[2][col("epoch")], "2");
    assert_eq!(rows[2][col("test_error")].parse::<f64>().unwrap(), err);
    assert!(rows.iter().all(|r| r.len() == rows[0].len()), "{csv}");

    let spec = read_json(&run.join("spec.json"));
    assert_eq!(spec["train"]["epochs"], 2);
    assert_eq!(spec["model"]["name"], "mlp");
    assert_eq!(spec["eval"]["long_iters"], 0);
}

#[test]
fn amm_regularizer_is_active_and_enlarges_the_margin() {
    let d = tempdir();
    let r = train(d.path(), "amm", &["--reg", AMM_REG, "--epochs", "2", "--json"]);
    r.ok();
    let v = r.json();
    assert!(v["reg"].as_str().unwrap().starts_with("deepfool(norm=l2, iters=3"), "{v}");
    for line in metrics(&d.path().join("amm")) {
        let (loss, ce, reg) = (num(&line, "loss"), num(&line, "ce"), num(&line, "reg"));
        assert!(reg > 0.0, "exp shrinkage terms are positive: {line}");
        assert!((loss - ce - reg).abs() < 1e-9 * loss.abs().max(1.0), "loss = ce + reg: {line}");
        assert!(num(&line, "reg_correct") + num(&line, "reg_wrong") > 0.0, "samples regularized: {line}");
        assert!(num(&line, "attack_success") > 0.0, "{line}");
    }
    // the same run without the regularizer has a smaller margin
    let r0 = train(d.path(), "ref", &["--reg", "none", "--epochs", "2", "--json"]);
    r0.ok();
    let v0 = r0.json();
    assert!(num(&v, "margin") > num(&v0, "margin"), "AMM margin {} vs reference {}", v["margin"], v0["margin"]);
}

#[test]
fn same_seed_reproduces_and_another_seed_differs() {
    let d = tempdir();
    let args = ["--reg", AMM_REG, "--epochs", "2", "--train-size", "600"];
    train(d.path(), "a", &args).ok();
    train(d.path(), "b", &args).ok();
    train(d.path(), "c", &with(&args, &["--seed", "1"])).ok();
    let res = |n: &str| read_json(&d.path().join(n).join("result.json"));
    let (a, b, c) = (res("a"), res("b"), res("c"));
    assert_eq!(without_timing(&a), without_timing(&b), "same seed, same result");
    let (ma, mb) = (metrics(&d.path().join("a")), metrics(&d.path().join("b")));
    assert_eq!(ma.iter().map(without_timing).collect::<Vec<_>>(), mb.iter().map(without_timing).collect::<Vec<_>>());
    assert_eq!(
        std::fs::read(d.path().join("a/checkpoint-last.safetensors")).unwrap(),
        std::fs::read(d.path().join("b/checkpoint-last.safetensors")).unwrap(),
        "same seed, same weights"
    );
    assert_eq!(c["seed"], 1);
    assert_ne!(a["margin"], c["margin"], "another seed gives other weights");
    assert_ne!(metrics(&d.path().join("c"))[0]["loss"], ma[0]["loss"]);
}

#[test]
fn data_sizes_and_validation_split() {
    let d = tempdir();
    let r = train(
        d.path(),
        "v",
        &["--reg", "none", "--epochs", "3", "--train-size", "400", "--set", "data.test_size=100", "--set", "data.val_size=100", "--json"],
    );
    r.ok();
    let v = r.json();
    assert_eq!(v["train_samples"], 400, "{v}");
    assert_eq!(v["test_samples"], 100, "{v}");
    let best = v["best_epoch"].as_u64().expect("best_epoch with a validation split");
    assert!((1..=3).contains(&best), "{v}");
    let val = num(&v, "val_error");
    assert!((0.0..=1.0).contains(&val));
    let m = metrics(&d.path().join("v"));
    assert_eq!(m[2]["val_error"], v["val_error"]);
    let min_val = m.iter().map(|l| num(l, "val_error")).fold(f64::INFINITY, f64::min);
    assert_eq!(num(&m[best as usize - 1], "val_error"), min_val, "best_epoch has the lowest val error");
    assert!(d.path().join("v/checkpoint-best.safetensors").is_file());
}

#[test]
fn refuses_a_directory_holding_a_finished_run() {
    let d = tempdir();
    let args = ["--reg", "none", "--epochs", "1"];
    train(d.path(), "run", &args).ok();
    let before = std::fs::read(d.path().join("run/result.json")).unwrap();
    let r = train(d.path(), "run", &args);
    r.fails().stderr_has("already holds a finished run").stderr_has("run");
    assert_eq!(std::fs::read(d.path().join("run/result.json")).unwrap(), before, "the finished run is untouched");
    assert_eq!(metrics(&d.path().join("run")).len(), 1);
}

#[test]
fn refuses_a_directory_holding_a_different_spec_and_names_the_change() {
    let d = tempdir();
    train(d.path(), "run", &["--reg", "none", "--epochs", "2"]).ok();
    let before = std::fs::read(d.path().join("run/spec.json")).unwrap();
    let r = train(d.path(), "run", &["--reg", "none", "--epochs", "3"]);
    r.fails().stderr_has("different spec").stderr_has("train.epochs: 2 -> 3");
    let r = train(d.path(), "run", &["--reg", AMM_REG, "--epochs", "2"]);
    r.fails().stderr_has("different spec").stderr_has("reg");
    assert_eq!(std::fs::read(d.path().join("run/spec.json")).unwrap(), before);
    // an interrupted run of another spec is refused with --resume too
    std::fs::remove_file(d.path().join("run/result.json")).unwrap();
    let r = train(d.path(), "run", &["--reg", "none", "--epochs", "3", "--resume"]);
    r.fails().stderr_has("different spec").stderr_has("train.epochs: 2 -> 3");
}

#[test]
fn resume_refuses_a_finished_run_of_a_different_spec() {
    let d = tempdir();
    train(d.path(), "run", &["--reg", "none", "--epochs", "2"]).ok();
    let r = train(d.path(), "run", &["--reg", "none", "--epochs", "3", "--resume", "--json"]);
    r.fails().stderr_has("different spec").stderr_has("train.epochs: 2 -> 3");
}

#[test]
fn refuses_an_interrupted_run_without_resume() {
    let d = tempdir();
    train(d.path(), "run", &["--reg", "none", "--epochs", "2"]).ok();
    std::fs::remove_file(d.path().join("run/result.json")).unwrap();
    let r = train(d.path(), "run", &["--reg", "none", "--epochs", "2"]);
    r.fails().stderr_has("interrupted run").stderr_has("--resume");
}

#[test]
fn divergence_stops_with_the_term_and_keeps_the_last_good_checkpoint() {
    let d = tempdir();
    // epoch 1 trains normally; from epoch 2 on the rate is 0.01 × 1e10.
    let r = train(d.path(), "div", &["--reg", "none", "--epochs", "3", "--set", "train.schedule=step(milestones=[1], gamma=1e10)"]);
    r.fails().stderr_has("diverged").stderr_has("cross-entropy").stderr_has("epoch 2");
    let run = d.path().join("div");
    r.stderr_has(&path_str(&Path::new("div").join("checkpoint-last.safetensors")));
    assert!(!run.join("result.json").exists(), "a diverged run has no result");
    let m = metrics(&run);
    assert_eq!(m.len(), 1, "only the good epoch is recorded");
    // the last good checkpoint is epoch 1's and still evaluates
    let e = amm(d.path(), &["eval", "div", "--json"]);
    e.ok();
    let v = e.json();
    assert_eq!(v["test_error"], m[0]["test"]["error"], "{}", e.describe());
    assert!(num(&v, "margin").is_finite());
}

#[test]
fn divergence_of_the_regularizer_names_the_regularizer() {
    let d = tempdir();
    let r = train(d.path(), "div", &["--reg", "deepfool(l2, 3) |> avg |> lin(c=1, d=1, clip=1e308) |> weight(1e308)", "--epochs", "1"]);
    r.fails().stderr_has("diverged").stderr_has("regularizer");
    assert!(!d.path().join("div/result.json").exists());
}

#[test]
fn divergence_before_any_checkpoint_does_not_point_to_a_missing_one() {
    let d = tempdir();
    let r = train(d.path(), "div", &["--reg", "none", "--epochs", "2", "--lr", "1e8"]);
    r.fails().stderr_has("diverged").stderr_has("epoch 1");
    let ck = d.path().join("div/checkpoint-last.safetensors");
    assert!(!ck.exists());
    assert!(
        !r.stderr.contains("last good checkpoint is"),
        "the message names a checkpoint that does not exist ({})\n{}",
        ck.display(),
        r.describe()
    );
}

#[test]
fn nothing_to_train_is_an_error() {
    let d = tempdir();
    let r = train(d.path(), "none", &["--reg", "none", "--loss", "none", "--epochs", "1"]);
    r.fails().stderr_has("nothing to train");
    assert!(!d.path().join("none/result.json").exists());
}

#[test]
fn bad_flags_are_located_errors_and_create_nothing() {
    let d = tempdir();
    let r = train(d.path(), "x", &["--reg", "deepfool(l2, 5) |> exq(2, 1)", "--epochs", "1"]);
    r.fails().stderr_has("unknown shrinkage `exq`").stderr_has("did you mean `exp`").stderr_has("^^^");
    let r = train(d.path(), "x", &["--reg", "none", "--epochs", "0"]);
    r.fails().stderr_has("epochs");
    let r = amm(d.path(), &["train", "--data", "digitz", "--out", "x", "--epochs", "1"]);
    r.fails().stderr_has("digitz").stderr_has("digits");
    let r = train(d.path(), "x", &["--reg", "none", "--loss", "squared", "--epochs", "1"]);
    r.fails().stderr_has("squared");
    assert!(!d.path().join("x").exists(), "a refused command writes no run directory");
}

#[test]
fn grid_of_pipelines_and_seeds_runs_every_cell_in_its_own_directory() {
    let d = tempdir();
    let grid = "{none, deepfool(l2,2) |> avg |> exp(2,1)}";
    let r = train(d.path(), "grid", &["--reg", grid, "--seeds", "2", "--epochs", "1", "--train-size", "500"]);
    r.ok();
    // the table: a header and one row per cell
    let rows: Vec<&str> = r.stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(rows.len(), 5, "{}", r.describe());
    assert!(rows[0].contains("test err") && rows[0].contains("margin"), "{}", r.describe());
    for (row, (reg, seed)) in rows[1..].iter().zip([("none", 0), ("none", 1), ("deepfool(l2, 2)", 0), ("deepfool(l2, 2)", 1)]) {
        assert!(row.contains(&format!("reg.pipeline={reg}")) && row.contains(&format!("seed={seed}")), "{row}\n{}", r.describe());
        assert!(row.contains('%'), "{row}");
    }
    let out = d.path().join("grid");
    let mut cells: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    cells.sort();
    assert_eq!(cells.len(), 4, "{cells:?}");
    let mut seen = std::collections::HashSet::new();
    for c in &cells {
        let res = read_json(&c.join("result.json"));
        assert!(seen.insert((res["reg"].to_string(), res["seed"].to_string())), "two cells ran the same thing: {cells:?}");
        assert_eq!(metrics(c).len(), 1);
        assert_eq!(res["train_samples"], 500);
    }
    // --json: an array of the four results, each naming its cell
    let r = train(d.path(), "grid-json", &["--reg", grid, "--seeds", "2", "--epochs", "1", "--train-size", "500", "--json"]);
    r.ok();
    let v = r.json();
    let arr = v.as_array().expect("an array for several cells");
    assert_eq!(arr.len(), 4);
    let cells: Vec<_> = arr.iter().map(|x| x["cell"].as_str().unwrap().to_string()).collect();
    assert_eq!(cells[0], "reg.pipeline=none seed=0");
    assert_eq!(cells[1], "reg.pipeline=none seed=1");
    assert!(cells[2].contains("deepfool") && cells[2].ends_with("seed=0"), "{cells:?}");
    // the same cells give the same results in both directories
    for x in arr {
        let dir = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.is_dir() && read_json(&p.join("result.json"))["reg"] == x["reg"] && read_json(&p.join("result.json"))["seed"] == x["seed"]
            })
            .expect("matching cell");
        let mut x = x.clone();
        x.as_object_mut().unwrap().remove("cell");
        assert_eq!(without_timing(&x), without_timing(&read_json(&dir.join("result.json"))));
    }
}

#[test]
fn grid_rerun_skips_finished_cells() {
    // Default eval settings (see grid_with_long_attack_off_... for eval.long_iters=0).
    let d = tempdir();
    let args = [
        "--data",
        "digits",
        "--model",
        "mlp(widths=[32])",
        "--quiet",
        "--reg",
        "{none, deepfool(l2,2) |> avg |> exp(2,1)}",
        "--epochs",
        "1",
        "--train-size",
        "300",
        "--out",
        "g",
    ];
    let first = amm(d.path(), &with(&["train"], &with(&args, &["--json"])));
    first.ok();
    assert!(d.path().join("g/summary.svg").is_file(), "a grid writes a summary plot\n{}", first.describe());
    let again = amm(d.path(), &with(&["train"], &with(&args, &["--json"])));
    again.ok();
    assert_eq!(first.json(), again.json(), "finished cells are read back, not retrained");
    let verbose: Vec<&str> = args.iter().copied().filter(|a| *a != "--quiet").collect();
    let r = amm(d.path(), &with(&["train"], &verbose));
    r.ok();
    assert_eq!(r.stderr.matches("done already").count(), 2, "{}", r.describe());
}

#[test]
fn grid_with_long_attack_off_rereads_its_results_and_plots() {
    // margin_long is absent (null) when eval.long_iters=0; the results must still read back.
    let d = tempdir();
    let args = with(
        &with(&["train"], &tiny()),
        &["--reg", "{none, deepfool(l2,2) |> avg |> exp(2,1)}", "--epochs", "1", "--train-size", "300", "--out", "g"],
    );
    let first = amm(d.path(), &args);
    first.ok();
    assert!(!first.stderr.contains("warning"), "{}", first.describe());
    assert!(d.path().join("g/summary.svg").is_file(), "{}", first.describe());
    let again = amm(d.path(), &args);
    again.ok();
    assert_eq!(first.stdout, again.stdout, "the same table, read back from result.json");
    assert!(!again.stderr.contains("warning"), "{}", again.describe());
}

#[test]
fn toy2d_with_the_regularizer_alone_finds_a_large_margin() {
    // The paper's 2D toy: a linear model trained by the AMM term only (no classification loss).
    let d = tempdir();
    let r = amm(
        d.path(),
        &[
            "train",
            "--data",
            "toy2d",
            "--model",
            "linear",
            "--loss",
            "none",
            "--reg",
            "deepfool(l2, 3) |> min(class, 0.2) |> exp(c=2, d=1)",
            "--epochs",
            "50",
            "--lr",
            "0.1",
            "--quiet",
            "--json",
            "--out",
            "toy",
        ],
    );
    r.ok();
    let v = r.json();
    assert_eq!(v["data"], "toy2d");
    assert_eq!(v["params"], 6, "2 inputs × 2 classes + 2 biases: {v}");
    assert_eq!(num(&v, "test_error"), 0.0, "the rectangles are separable: {v}");
    for line in metrics(&d.path().join("toy")) {
        assert_eq!(line["ce"], 0.0, "--loss none: {line}");
        assert!(num(&line, "reg") > 0.0, "{line}");
    }
    // every test point is farther from the boundary than the bisector y = x allows (0.354);
    // the best possible boundary, x = 0, gives 0.5 (DeepFool's overshoot adds a few percent).
    let min = num(&v, "margin_min");
    assert!(min > 0.5 / 2f64.sqrt(), "{v}");
    assert!(min < 0.65, "{v}");
}

#[test]
fn toy2d_default_flags_run() {
    let d = tempdir();
    let r = amm(
        d.path(),
        &[
            "train",
            "--data",
            "toy2d",
            "--model",
            "linear",
            "--loss",
            "none",
            "--reg",
            "deepfool(l2, 3) |> min(class, 0.2) |> exp(c=2, d=1)",
            "--quiet",
            "--json",
            "--out",
            "t",
        ],
    );
    r.ok();
    let v = r.json();
    assert_eq!(v["epochs"], 10);
    assert_eq!(v["train_samples"], 400);
    assert_eq!(metrics(&d.path().join("t")).len(), 10);
}

#[test]
fn hinge_loss_trains() {
    let d = tempdir();
    let r = train(d.path(), "h", &["--reg", "none", "--loss", "hinge", "--epochs", "2", "--json"]);
    r.ok();
    let m = metrics(&d.path().join("h"));
    assert!(num(&m[0], "ce") > 0.0 && num(&m[1], "ce") < num(&m[0], "ce"), "{m:?}");
    assert!(num(&r.json(), "test_error") < 0.9);
}

#[test]
fn progress_goes_to_stderr_one_line_per_epoch() {
    let d = tempdir();
    let r = amm(
        d.path(),
        &[
            "train",
            "--data",
            "digits",
            "--model",
            "mlp(widths=[32])",
            "--reg",
            "none",
            "--epochs",
            "2",
            "--set",
            "eval.long_iters=0",
            "--out",
            "p",
        ],
    );
    r.ok();
    r.stderr_has("epoch   1/2").stderr_has("epoch   2/2").stderr_has("digits");
    r.stdout_has("test err");
    assert!(!r.stdout.contains("epoch   1/2"), "progress is not on stdout\n{}", r.describe());
}

#[test]
fn run_executes_an_experiment_file() {
    let d = tempdir();
    std::fs::write(
        d.path().join("base.amm"),
        "[data]\nname = digits\ntrain_size = 300\ntest_size = 100\n\n[model]\narch = mlp(widths=[16])\n\n[eval]\nlong_iters = 5\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("exp.amm"),
        "include \"base.amm\"\n\n[experiment]\nname = \"tiny\"\nout = \"out/tiny\"\n\n[train]\nepochs = 1\nlr = {0.1, 0.01}\n",
    )
    .unwrap();
    let r = amm(d.path(), &["run", "exp.amm", "--quiet", "--json"]);
    r.ok();
    let v = r.json();
    let arr = v.as_array().expect("two cells");
    assert_eq!(arr.len(), 2);
    assert!(arr[0]["cell"].as_str().unwrap().contains("train.lr=0.1"), "{v}");
    for x in arr {
        assert_eq!(x["name"], "tiny");
        assert_eq!(x["train_samples"], 300);
        assert_eq!(x["test_samples"], 100);
    }
    let cells = std::fs::read_dir(d.path().join("out/tiny")).unwrap().filter(|e| e.as_ref().unwrap().path().is_dir()).count();
    assert_eq!(cells, 2);
    // --set overrides the file
    let r = amm(d.path(), &["run", "exp.amm", "--quiet", "--json", "--set", "train.lr=0.05", "--set", "experiment.out=single"]);
    r.ok();
    assert!(r.json().is_object(), "one cell: one object\n{}", r.describe());
    assert!(d.path().join("single/result.json").is_file());
    amm(d.path(), &["run", "missing.amm"]).fails().stderr_has("missing.amm");
}

#[test]
fn quickstart_spec_runs_for_one_epoch() {
    let d = tempdir();
    let spec = path_str(&repo().join("specs/quickstart.amm"));
    let r = amm(
        d.path(),
        &["run", &spec, "--quiet", "--json", "--set", "train.epochs=1", "--set", "eval.long_iters=0", "--set", "experiment.out=q"],
    );
    r.ok();
    let v = r.json();
    let arr = v.as_array().expect("two cells");
    assert_eq!(arr.len(), 2);
    assert_eq!(arr[0]["reg"], "none");
    assert!(arr[1]["reg"].as_str().unwrap().contains("min(by=class, frac=0.2"), "{v}");
    let cells = std::fs::read_dir(d.path().join("q")).unwrap().filter(|e| e.as_ref().unwrap().path().is_dir()).count();
    assert_eq!(cells, 2, "the cells run under the overridden out, in the working directory");
}

#[test]
fn flags_map_to_their_spec_keys() {
    let d = tempdir();
    let r = amm(
        d.path(),
        &[
            "train",
            "--data",
            "digits",
            "--model",
            "mlp(widths=[24, 12])",
            "--reg",
            "none",
            "--epochs",
            "1",
            "--batch",
            "50",
            "--lr",
            "0.05",
            "--seed",
            "3",
            "--loss",
            "hinge",
            "--train-size",
            "200",
            "--label-noise",
            "0.25",
            "--quiet",
            "--json",
            "--out",
            "f",
            "--set",
            "data.test_size=50",
        ],
    );
    r.ok();
    let spec = read_json(&d.path().join("f/spec.json"));
    assert_eq!(spec["train"]["batch"], 50);
    assert_eq!(spec["train"]["lr"], 0.05);
    assert_eq!(spec["train"]["loss"], "hinge");
    assert_eq!(spec["seed"], 3);
    assert_eq!(spec["data"]["train_size"], 200);
    assert_eq!(spec["data"]["test_size"], 50);
    assert_eq!(spec["data"]["label_noise"], 0.25);
    let v = r.json();
    assert_eq!(v["seed"], 3);
    assert_eq!(v["params"], 64 * 24 + 24 + 24 * 12 + 12 + 12 * 10 + 10);
    // 200 samples in batches of 50: 4 steps an epoch
    assert_eq!(v["train_samples"], 200);
    // out-of-range values are refused before anything runs
    for (flag, value) in [("--label-noise", "1.0"), ("--lr", "0"), ("--batch", "0"), ("--train-size", "0")] {
        let r = amm(d.path(), &["train", "--data", "digits", flag, value, "--epochs", "1", "--quiet", "--out", "bad"]);
        r.fails();
        assert!(!d.path().join("bad").exists(), "{flag} {value}: nothing written\n{}", r.describe());
    }
}

#[test]
fn label_noise_changes_the_run() {
    let d = tempdir();
    let base = ["--reg", "none", "--epochs", "6", "--lr", "0.1", "--train-size", "400"];
    train(d.path(), "clean", &base).ok();
    train(d.path(), "noisy", &with(&base, &["--label-noise", "0.6"])).ok();
    let (c, n) = (metrics(&d.path().join("clean")), metrics(&d.path().join("noisy")));
    // with 60% of the labels random, the training error stays far higher
    assert!(num(&n[5], "train_error") > num(&c[5], "train_error") + 0.2, "clean {} vs noisy {}", c[5], n[5]);
    assert!(num(&c[5], "train_error") < 0.2, "{}", c[5]);
}

/// Every epoch's metrics also go to a TensorBoard event file that TensorBoard's format reader
/// accepts (amm-core/tests/tensorboard.rs checks the reader against files made by Python).
#[test]
fn training_writes_tensorboard_events() {
    let d = tempdir();
    let out = d.path().join("tb");
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_amm"))
        .args(["train", "--data", "toy2d", "--model", "linear", "--epochs", "3", "--quiet", "--out"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let files: Vec<_> = std::fs::read_dir(out.join("tensorboard")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1);
    assert!(files[0].file_name().unwrap().to_string_lossy().starts_with("events.out.tfevents."));
    let scalars = amm_core::tensorboard::read_scalars(&files[0]).unwrap();
    for tag in ["loss", "test_error", "margin"] {
        let steps: Vec<i64> = scalars.iter().filter(|s| s.0 == tag).map(|s| s.1).collect();
        assert_eq!(steps, vec![1, 2, 3], "{tag}");
    }
    let result: amm_core::serde_json::Value =
        amm_core::serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap();
    let last_margin = scalars.iter().rfind(|s| s.0 == "margin").unwrap().2;
    assert!((last_margin - result["margin"].as_f64().unwrap()).abs() < 1e-6);
}

/// `train.threads` reaches candle only through RAYON_NUM_THREADS, which amm never changes while
/// threads run: such a run goes to a child process with the variable set, and finishes normally.
#[test]
fn a_run_with_its_own_thread_count_runs_in_a_child_process() {
    let d = tempdir();
    let mut args = with(&["train"], &tiny());
    args.extend(["--epochs", "1", "--out", "run", "--set", "train.threads=1", "--json"].map(String::from));
    let r = amm(d.path(), &args);
    r.ok();
    assert_eq!(r.json()["epochs"], 1, "{}", r.describe());
    assert!(d.path().join("run/result.json").exists());
    assert_eq!(read_json(&d.path().join("run/spec.json"))["train"]["threads"], 1);
}
