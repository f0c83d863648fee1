//! `amm report`: exact tables (md, csv, LaTeX) of a hand-made experiment folder with known
//! numbers, unfinished cells, `--metrics`, and figures of a real tiny toy2d grid.
use amm_core::serde_json::{self, json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

const AMM: &str = env!("CARGO_BIN_EXE_amm");

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("amm-report-").tempdir().expect("temporary directory")
}

/// Runs `amm ARGS`; returns (exit code, stdout, stderr).
fn amm(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(AMM).args(args).output().expect("running amm");
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[track_caller]
fn ok(args: &[&str]) -> String {
    let (code, out, err) = amm(args);
    assert_eq!(code, 0, "amm {args:?} failed\n--- stdout ---\n{out}\n--- stderr ---\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    out
}

fn stage(kind: &str, name: &str, args: Value) -> Value {
    json!({"kind": kind, "name": name, "args": args})
}

/// `deepfool(l2, 5) |> min(class, 0.2) |> exp(c=shrink_c, d=1) |> weight(8)` as spec.json holds it.
fn amm_pipeline(shrink_c: f64) -> Value {
    json!({
        "proxy": stage("proxy", "deepfool", json!({"norm": {"ident": "l2"}, "iters": {"int": 5}, "overshoot": {"float": 0.02},
            "candidates": {"int": 10}, "hog": {"bool": true}, "chain": {"ident": "full"}, "failed": {"ident": "drop"}})),
        "aggregation": stage("aggregation", "min", json!({"by": {"ident": "class"}, "frac": {"float": 0.2}, "misclassified": {"ident": "argmax"}})),
        "normalize": false,
        "shrinkage": stage("shrinkage", "exp", json!({"c": {"float": shrink_c}, "d": {"float": 1.0}, "clip": {"float": 50.0}})),
        "weight": 8.0,
    })
}

/// A complete resolved spec (an MLP on digits).
fn spec(seed: u64, reg: Value, train_size: Option<usize>) -> Value {
    json!({
        "name": "fake", "out": "runs/fake", "seed": seed,
        "data": {"name": "digits", "path": null, "train_size": train_size, "test_size": null, "label_noise": 0.0, "val_size": 0,
                 "mean_subtract": true, "crop": 0, "flip": false},
        "model": stage("model", "mlp", json!({"widths": {"list": [{"int": 256}, {"int": 256}]}, "act": {"ident": "relu"}, "dropout": {"float": 0.0}})),
        "train": {"epochs": 2, "batch": 50, "optimizer": "sgd", "lr": 0.05, "schedule": "constant", "momentum": 0.9, "weight_decay": 0.0001,
                  "clip": 10.0, "loss": "ce", "dtype": "f32", "threads": 0},
        "reg": reg,
        "eval": {"iters": 5, "overshoot": 0.02, "long_iters": 50, "every": 1, "samples": 0},
    })
}

fn result(seed: u64, test_error: f64, margin: f64, margin_median: f64, ms_per_step: f64) -> Value {
    json!({
        "name": "fake", "seed": seed, "model": "mlp", "reg": "-", "data": "digits", "epochs": 2,
        "test_error": test_error, "margin": margin, "margin_min": 0.01, "margin_median": margin_median, "margin_rel": 0.3,
        "attack_success": 1.0, "margin_long": null, "val_error": null, "best_epoch": null, "train_seconds": 1.5,
        "ms_per_step": ms_per_step, "params": 85002, "train_samples": 1297, "test_samples": 500,
    })
}

fn write(path: &Path, v: &Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_string_pretty(v).unwrap()).unwrap();
}

/// Two epochs of metrics.jsonl ending at the result's numbers.
fn metrics(dir: &Path, test_error: f64, margin: f64) {
    let line = |epoch: usize, e: f64, m: f64| {
        json!({"epoch": epoch, "lr": 0.05, "loss": 0.5, "ce": 0.4, "reg": 0.1, "train_error": 0.1, "reg_correct": 5.0, "reg_wrong": 1.0,
            "reg_clipped": 0.0, "attack_success": 1.0, "grad_clipped": 0.0, "ms_per_step": 3.0, "train_seconds": 0.1 * epoch as f64,
            "val_error": null, "test": {"error": e, "margin": m, "margin_min": 0.01, "margin_median": m, "margin_rel": 0.3,
            "attack_success": 1.0, "margin_long": m, "samples": 500}})
        .to_string()
    };
    std::fs::write(dir.join("metrics.jsonl"), format!("{}\n{}\n", line(1, 2.0 * test_error, 0.5 * margin), line(2, test_error, margin)))
        .unwrap();
}

/// A finished cell: spec.json, result.json and metrics.jsonl.
fn cell(root: &Path, name: &str, spec: Value, res: Value) -> PathBuf {
    let dir = root.join(name);
    write(&dir.join("spec.json"), &spec);
    metrics(&dir, res["test_error"].as_f64().unwrap(), res["margin"].as_f64().unwrap());
    write(&dir.join("result.json"), &res);
    dir
}

/// 2 configurations x 3 seeds. Reference: test error 1.79, 1.85, 1.73 % (mean 1.79, sample std
/// 0.06), margin 0.75, 0.76, 0.77 (0.760 ± 0.010), margin_median 0.7, 0.8, 0.9 (0.800 ± 0.100),
/// ms_per_step 10, 12, 14 (12.00 ± 2.00). AMM: 0.90, 0.87, 0.93 % (0.90 ± 0.03), margin 1.88,
/// 1.90, 1.92 (1.900 ± 0.020), margin_median 1.5 x3 (1.500 ± 0.000), ms_per_step 20, 21, 22
/// (21.00 ± 1.00). Cell folders are named so that sorting them by name would put AMM first.
fn fake_experiment(root: &Path) {
    let reference = [(0.0179, 0.75, 0.7, 10.0), (0.0185, 0.76, 0.8, 12.0), (0.0173, 0.77, 0.9, 14.0)];
    let amm = [(0.0090, 1.88, 1.5, 20.0), (0.0087, 1.90, 1.5, 21.0), (0.0093, 1.92, 1.5, 22.0)];
    for (seed, (e, m, med, ms)) in reference.into_iter().enumerate() {
        let s = seed as u64;
        cell(root, &format!("reg.pipeline=none,seed={s}-0000000{s}"), spec(s, Value::Null, None), result(s, e, m, med, ms));
    }
    for (seed, (e, m, med, ms)) in amm.into_iter().enumerate() {
        let s = seed as u64;
        cell(root, &format!("reg.pipeline=deepfool,seed={s}-1111111{s}"), spec(s, amm_pipeline(3.0), None), result(s, e, m, med, ms));
    }
}

#[test]
fn markdown_table_has_mean_and_sample_std_over_seeds() {
    let t = tempdir();
    fake_experiment(t.path());
    let out = ok(&["report", t.path().to_str().unwrap()]);
    assert_eq!(
        out,
        "\
| reg                                             |   n | test error (%) |        margin |
| :---------------------------------------------- | --: | -------------: | ------------: |
| none                                            |   3 |    1.79 ± 0.06 | 0.760 ± 0.010 |
| deepfool(l2) \\|> min \\|> exp(c=3) \\|> weight(8) |   3 |    0.90 ± 0.03 | 1.900 ± 0.020 |
"
    );
}

/// Table I's rows come in the paper's order (AVG before MIN; LIN, INV, EXP), not alphabetically.
#[test]
fn pipelines_are_listed_in_the_papers_order() {
    let t = tempdir();
    let with = |agg: &str, shrink: &str| {
        let mut p = amm_pipeline(1.0);
        p["aggregation"] = stage("aggregation", agg, if agg == "avg" { json!({}) } else { p["aggregation"]["args"].clone() });
        p["shrinkage"]["name"] = json!(shrink);
        p
    };
    let mut k = 0;
    // Written in reverse so that neither folder names nor writing order give the paper's order.
    for agg in ["min", "avg"] {
        for shrink in ["exp", "inv", "lin"] {
            k += 1;
            cell(t.path(), &format!("c{k}"), spec(0, with(agg, shrink), None), result(0, 0.01 * k as f64, 1.0, 1.0, 1.0));
        }
    }
    cell(t.path(), "c9", spec(0, Value::Null, None), result(0, 0.02, 0.5, 0.5, 1.0));
    let out = ok(&["report", t.path().to_str().unwrap(), "--format", "csv", "--metrics", "test_error"]);
    let rows: Vec<&str> = out.lines().skip(1).map(|l| l.split(',').next().unwrap()).collect();
    let order = ["none", "avg |> lin", "avg |> inv", "avg |> exp", "min |> lin", "min |> inv", "min |> exp"];
    assert_eq!(rows.len(), order.len(), "{out}");
    for (row, want) in rows.iter().zip(order) {
        assert!(row.contains(want), "{row} should contain {want}\n{out}");
    }
}

/// Two experiment folders make one table: a configuration is its spec, whichever experiment
/// (`name`) ran it; `--only` keeps the rows whose regularizer contains a text.
#[test]
fn several_folders_merge_and_only_filters_rows() {
    let t = tempdir();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    fake_experiment(&a);
    let mut other = spec(0, amm_pipeline(7.0), None);
    other["name"] = json!("other");
    cell(&b, "c7", other, result(0, 0.05, 2.5, 2.5, 1.0));
    let out = ok(&["report", a.to_str().unwrap(), b.to_str().unwrap(), "--format", "csv", "--metrics", "test_error"]);
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert!(!out.lines().next().unwrap().contains("name"), "the experiment's name is not a setting: {out}");
    assert!(rows[2].contains("exp(c=7)") && rows[2].contains(",1,"), "{out}");
    let only = ok(&["report", a.to_str().unwrap(), b.to_str().unwrap(), "--format", "csv", "--only", "none,c=7"]);
    let rows: Vec<&str> = only.lines().skip(1).collect();
    assert!(rows.len() == 2 && rows[0].starts_with("none,") && rows[1].contains("exp(c=7)"), "{only}");
    let (code, _, err) = amm(&["report", a.to_str().unwrap(), "--only", "hinge"]);
    assert!(code == 1 && err.contains("--only hinge"), "{err}");
}

#[test]
fn csv_and_latex_tables() {
    let t = tempdir();
    fake_experiment(t.path());
    let dir = t.path().to_str().unwrap();
    assert_eq!(
        ok(&["report", dir, "--format", "csv"]),
        "\
reg,n,failed,missing,test_error_pct_mean,test_error_pct_std,margin_mean,margin_std
none,3,0,0,1.79,0.06,0.760,0.010
deepfool(l2) |> min |> exp(c=3) |> weight(8),3,0,0,0.90,0.03,1.900,0.020
"
    );
    assert_eq!(
        ok(&["report", dir, "--format", "latex"]),
        "\
\\begin{tabular}{lrcc}
\\toprule
reg & $n$ & test error (\\%) & margin \\\\
\\midrule
\\texttt{none} & 3 & $1.79 \\pm 0.06$ & $0.760 \\pm 0.010$ \\\\
\\texttt{deepfool(l2) |> min |> exp(c=3) |> weight(8)} & 3 & $0.90 \\pm 0.03$ & $1.900 \\pm 0.020$ \\\\
\\bottomrule
\\end{tabular}
"
    );
}

#[test]
fn metrics_flag_picks_result_fields() {
    let t = tempdir();
    fake_experiment(t.path());
    let dir = t.path().to_str().unwrap();
    assert_eq!(
        ok(&["report", dir, "--format", "csv", "--metrics", "margin_median,ms_per_step,attack_success,margin_long"]),
        "\
reg,n,failed,missing,margin_median_mean,margin_median_std,ms_per_step_mean,ms_per_step_std,attack_success_pct_mean,attack_success_pct_std,margin_long_mean,margin_long_std
none,3,0,0,0.800,0.100,12.00,2.00,100.0,0.0,,
deepfool(l2) |> min |> exp(c=3) |> weight(8),3,0,0,1.500,0.000,21.00,1.00,100.0,0.0,,
"
    );
    let (code, _, err) = amm(&["report", dir, "--metrics", "test_error,no_such_metric"]);
    assert_ne!(code, 0);
    assert!(err.contains("no_such_metric") && err.contains("margin_median"), "{err}");
}

#[test]
fn unfinished_cells_are_listed() {
    let t = tempdir();
    fake_experiment(t.path());
    let root = t.path();
    // Seed 3 of the AMM configuration failed; seed 4 is running (one epoch written); seed 5 has
    // not started.
    let failed = root.join("reg.pipeline=deepfool,seed=3-22222223");
    write(&failed.join("spec.json"), &spec(3, amm_pipeline(3.0), None));
    write(&failed.join("failed.json"), &json!({"error": "epoch 1, step 2: NaN loss\nmore detail"}));
    let running = root.join("reg.pipeline=deepfool,seed=4-22222224");
    write(&running.join("spec.json"), &spec(4, amm_pipeline(3.0), None));
    metrics(&running, 0.5, 0.5);
    let missing = root.join("reg.pipeline=deepfool,seed=5-22222225");
    write(&missing.join("spec.json"), &spec(5, amm_pipeline(3.0), None));
    let dir = root.to_str().unwrap();
    let md = ok(&["report", dir]);
    assert_eq!(
        md,
        "\
| reg                                             |   n | test error (%) |        margin |
| :---------------------------------------------- | --: | -------------: | ------------: |
| none                                            |   3 |    1.79 ± 0.06 | 0.760 ± 0.010 |
| deepfool(l2) \\|> min \\|> exp(c=3) \\|> weight(8) |   3 |    0.90 ± 0.03 | 1.900 ± 0.020 |

Not finished: 3 of 9 runs
- reg.pipeline=deepfool,seed=3-22222223 (seed 3): failed: epoch 1, step 2: NaN loss
- reg.pipeline=deepfool,seed=4-22222224 (seed 4): running or interrupted (epoch 2 of 2)
- reg.pipeline=deepfool,seed=5-22222225 (seed 5): missing (not started)
"
    );
    let (code, csv, err) = amm(&["report", dir, "--format", "csv"]);
    assert_eq!(code, 0);
    assert!(csv.contains("\ndeepfool(l2) |> min |> exp(c=3) |> weight(8),3,1,2,0.90,0.03,1.900,0.020\n"), "{csv}");
    assert!(err.contains("Not finished: 3 of 9 runs"), "{err}");
    let latex = ok(&["report", dir, "--format", "latex"]);
    assert!(latex.ends_with("\\end{tabular}\n% Not finished: 3 of 9 runs\n% - reg.pipeline=deepfool,seed=3-22222223 (seed 3): failed: epoch 1, step 2: NaN loss\n% - reg.pipeline=deepfool,seed=4-22222224 (seed 4): running or interrupted (epoch 2 of 2)\n% - reg.pipeline=deepfool,seed=5-22222225 (seed 5): missing (not started)\n"), "{latex}");

    // A configuration without any finished run still gets its row.
    let only = root.join("reg.pipeline=deepfool_c5,seed=0-33333330");
    write(&only.join("spec.json"), &spec(0, amm_pipeline(5.0), None));
    let md = ok(&["report", dir]);
    assert!(md.contains("| deepfool(l2) \\|> min \\|> exp(c=5) \\|> weight(8) |   0 |              - |             - |\n"), "{md}");
}

#[test]
fn single_run_and_one_seed() {
    let t = tempdir();
    fake_experiment(t.path());
    let one = t.path().join("reg.pipeline=none,seed=1-00000001");
    assert_eq!(
        ok(&["report", one.to_str().unwrap(), "--format", "csv"]),
        "reg,n,failed,missing,test_error_pct_mean,test_error_pct_std,margin_mean,margin_std\nnone,1,0,0,1.85,,0.760,\n"
    );
    assert_eq!(
        ok(&["report", one.to_str().unwrap()]),
        "| reg  |   n | test error (%) | margin |\n| :--- | --: | -------------: | -----: |\n| none |   1 |           1.85 |  0.760 |\n"
    );
    let (code, _, err) = amm(&["report", t.path().join("nothing-here").to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("no such directory"), "{err}");
}

/// Training-set sizes sort by number (`all` last), nested one level (one folder per
/// experiment), and give the Fig. 4 plot.
#[test]
fn train_size_grid_sorts_numerically_and_plots() {
    let t = tempdir();
    let root = t.path();
    let sizes = [(Some(1000), 0.05), (Some(200), 0.12), (None, 0.02)];
    for (i, (size, err)) in sizes.iter().enumerate() {
        for seed in 0..2u64 {
            for (j, (exp, reg)) in [("ref", Value::Null), ("amm", amm_pipeline(2.0))].into_iter().enumerate() {
                let e = err * (1.0 - 0.3 * j as f64) + 0.002 * seed as f64;
                let mut r = result(seed, e, 0.5 + j as f64, 0.5, 3.0);
                r["train_samples"] = json!(size.unwrap_or(1297));
                cell(&root.join(exp), &format!("cell{i}-seed{seed}"), spec(seed, reg, *size), r);
            }
        }
    }
    let plots = root.join("plots");
    let out = ok(&["report", root.to_str().unwrap(), "--format", "csv", "--plots", plots.to_str().unwrap()]);
    assert_eq!(
        out,
        "\
data.train_size,reg,n,failed,missing,test_error_pct_mean,test_error_pct_std,margin_mean,margin_std
200,none,2,0,0,12.10,0.14,0.500,0.000
1000,none,2,0,0,5.10,0.14,0.500,0.000
all,none,2,0,0,2.10,0.14,0.500,0.000
200,deepfool(l2) |> min |> exp |> weight(8),2,0,0,8.50,0.14,1.500,0.000
1000,deepfool(l2) |> min |> exp |> weight(8),2,0,0,3.60,0.14,1.500,0.000
all,deepfool(l2) |> min |> exp |> weight(8),2,0,0,1.50,0.14,1.500,0.000
"
    );
    for f in ["convergence.svg", "convergence.png", "train_size.svg", "train_size.png"] {
        let len = std::fs::metadata(plots.join(f)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 1000, "{f}: {len} bytes");
    }
    assert!(!plots.join("label_noise.png").exists() && !plots.join("boundaries.png").exists());
}

/// End to end: a real 2x2 grid on toy2d, its table and every figure, the 2-D boundaries included.
#[test]
fn toy2d_grid_end_to_end() {
    let t = tempdir();
    let dir = t.path().join("exp");
    let d = dir.to_str().unwrap();
    ok(&[
        "train",
        "--data",
        "toy2d",
        "--model",
        "linear",
        "--loss",
        "none",
        "--reg",
        "deepfool(l2, 3) |> {avg, min(class, 0.2)} |> {lin(c=1, d=1), exp(c=2, d=1)}",
        "--epochs",
        "3",
        "--seeds",
        "2",
        "--out",
        d,
        "--quiet",
    ]);
    let plots = dir.join("plots");
    let md = ok(&["report", d, "--plots", plots.to_str().unwrap()]);
    let lines: Vec<&str> = md.lines().collect();
    assert_eq!(lines.len(), 6, "{md}");
    assert!(lines[0].starts_with("| reg ") && lines[0].contains("| test error (%) |") && lines[0].contains("margin |"), "{md}");
    for (line, reg) in lines[2..].iter().zip(["avg \\|> lin", "avg \\|> exp", "min \\|> lin", "min \\|> exp"]) {
        assert!(line.starts_with(&format!("| deepfool(l2, iters=3) \\|> {reg} ")), "{md}");
        assert!(line.contains(" |   2 | ") && line.contains(" ± "), "{md}");
    }
    for f in ["convergence", "boundaries"] {
        for ext in ["svg", "png"] {
            let p = plots.join(format!("{f}.{ext}"));
            let bytes = std::fs::read(&p).unwrap_or_default();
            assert!(bytes.len() > 5000, "{}: {} bytes", p.display(), bytes.len());
            if ext == "png" {
                assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
            } else {
                let s = String::from_utf8(bytes).unwrap();
                assert!(s.contains("<svg") && s.contains("learned boundary") == (f == "boundaries"));
            }
        }
    }
}
