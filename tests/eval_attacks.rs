//! `amm eval --attacks`: tighter margins and robust accuracy from the command line, the files it
//! writes into a new folder of the run (never over an earlier evaluation), and clear errors;
//! without `--attacks` nothing is written.
mod common;
use common::*;
use std::path::Path;

/// A finished 3-epoch digits run in `cwd/run`.
fn finished_run(cwd: &Path) {
    let mut args = with(&["train"], &tiny());
    args.extend(["--reg", "deepfool(l2, 3) |> avg |> exp(2, 1)", "--epochs", "3", "--out", "run", "--json"].map(String::from));
    amm(cwd, &args).ok();
}

#[test]
fn eval_attacks_json_reports_every_attack_and_writes_the_curve() {
    let d = tempdir();
    finished_run(d.path());
    let r =
        amm(d.path(), &["eval", "run", "--attacks", "deepfool,fmn,ddn,apgd(iters=20)", "--eps", "1.0,0.25", "--samples", "100", "--json"]);
    r.ok();
    let v = r.json();
    // the legacy fields are still there, and agree with the new ones
    assert_eq!(v["samples"], 100);
    let clean = num(&v, "clean_error");
    assert!((clean - num(&v, "test_error")).abs() < 1e-12, "{v}");
    assert!((num(&v, "clean_accuracy") + clean - 1.0).abs() < 1e-12);
    assert_eq!(v["norm"], "l2");
    assert_eq!(v["bounded"], true, "digits pixels lie in [0, 1]");
    let names: Vec<&str> = v["attacks"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    assert_eq!(names, ["deepfool", "fmn", "ddn", "apgd-ce(iters=20)", "apgd-t(iters=20)"]);
    for name in &names {
        let a = &v[*name];
        for k in ["median_norm", "mean_norm", "success_rate"] {
            assert!(a[k].is_number(), "{name}.{k} in {a}");
        }
        let rate = num(a, "success_rate");
        assert!((0.0..=1.0).contains(&rate));
        assert_eq!(a["robust_accuracy"].as_array().unwrap().len(), 2);
    }
    for name in ["deepfool", "fmn", "ddn"] {
        assert!(num(&v[name], "median_norm") >= num(&v["best_known"], "median_norm"), "{v}");
        assert_eq!(v[name]["kind"], "min-norm");
    }
    // robust accuracy: at most the clean accuracy, smaller at the larger budget (eps = [1.0, 0.25])
    let acc: Vec<f64> = v["robust_accuracy"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    assert!(acc[0] <= acc[1] && acc[1] <= num(&v, "clean_accuracy"), "{v}");

    // the files: robust.json (the same numbers, plus the curve) and robust.csv
    let j = read_json(&d.path().join("run/eval-1/robust.json"));
    assert_eq!(j["clean_error"], v["clean_error"]);
    assert_eq!(j["attacks"][1]["attack"], "fmn");
    assert_eq!(j["attacks"][1]["median_norm"], v["fmn"]["median_norm"]);
    assert!(j["curve"].as_array().unwrap().len() > 100);
    assert!(j["checkpoint"].as_str().unwrap().ends_with("checkpoint-last.safetensors"));
    let csv = std::fs::read_to_string(d.path().join("run/eval-1/robust.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("attack,eps,robust_accuracy"));
    let mut seen = std::collections::BTreeMap::<String, Vec<(f64, f64)>>::new();
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        let name = f[..f.len() - 2].join(",").trim_matches('"').to_string();
        seen.entry(name).or_default().push((f[f.len() - 2].parse().unwrap(), f[f.len() - 1].parse().unwrap()));
    }
    for name in ["deepfool", "fmn", "ddn", "best-known", "all-attacks"] {
        let pts = &seen[name];
        assert!(pts.len() > 100, "{name}: a dense curve");
        assert_eq!(pts[0], (0.0, num(&v, "clean_accuracy")), "{name} starts at the clean accuracy");
        assert!(pts.windows(2).all(|w| w[0].0 < w[1].0 && w[1].1 <= w[0].1), "{name}: not monotone");
    }
    // fixed-ε attacks: at 0 and the requested budgets only
    let apgd: Vec<f64> = seen["apgd-t(iters=20)"].iter().map(|p| p.0).collect();
    assert_eq!(apgd, [0.0, 0.25, 1.0]);
    let samples = std::fs::read_to_string(d.path().join("run/eval-1/robust_samples.csv")).unwrap();
    assert_eq!(samples.lines().count(), 101);
    assert!(samples.starts_with("index,label,pred,deepfool,fmn,ddn,"));
    assert_eq!(read_json(&d.path().join("run/eval-1/eval.json"))["fmn"]["median_norm"], v["fmn"]["median_norm"]);

    // a second evaluation gets its own folder; the first one's files stay as they were
    let before = std::fs::read(d.path().join("run/eval-1/robust.json")).unwrap();
    amm(d.path(), &["eval", "run", "--attacks", "deepfool", "--samples", "20"]).ok().stdout_has("eval-2");
    assert!(d.path().join("run/eval-2/robust.json").exists());
    assert_eq!(std::fs::read(d.path().join("run/eval-1/robust.json")).unwrap(), before);
    // --out puts them where the user says
    amm(d.path(), &["eval", "run", "--attacks", "deepfool", "--samples", "20", "--out", "mine"]).ok();
    assert!(d.path().join("mine/robust.json").exists() && d.path().join("mine/eval.json").exists());
}

#[test]
fn eval_attacks_text_output() {
    let d = tempdir();
    finished_run(d.path());
    let r = amm(d.path(), &["eval", "run", "--attacks", "deepfool(iters=5),fmn(steps=30)", "--samples", "60"]);
    r.ok();
    r.stdout_has("margin (DF-5)").stdout_has("robustness (l2 norm, 60 samples");
    r.stdout_has("deepfool(iters=5)").stdout_has("fmn(steps=30)").stdout_has("best known margin").stdout_has("robust accuracy at ε");
    r.stdout_has("all attacks").stdout_has("robust.csv");
    // `--attacks` alone runs every attack; other norms
    let r = amm(d.path(), &["eval", "run", "--attacks", "--norm", "linf", "--eps", "0.05,0.1", "--samples", "20", "--json"]);
    r.ok();
    let v = r.json();
    assert_eq!(v["norm"], "linf");
    let names: Vec<&str> = v["attacks"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    assert_eq!(names, ["deepfool", "fmn", "ddn", "apgd-ce", "apgd-t"].iter().filter(|n| **n != "ddn").copied().collect::<Vec<_>>());
    let r = amm(d.path(), &["eval", "run", "--attacks", "deepfool,fmn", "--norm", "l1", "--samples", "20", "--json"]);
    r.ok();
    assert!(num(&r.json()["fmn"], "success_rate") > 0.9);
}

#[test]
fn eval_without_attacks_is_unchanged_and_attack_errors_are_clear() {
    let d = tempdir();
    finished_run(d.path());
    let r = amm(d.path(), &["eval", "run", "--json"]);
    r.ok();
    let v = r.json();
    assert!(v.get("clean_error").is_none() && v.get("attacks").is_none(), "{v}");
    let r = amm(d.path(), &["eval", "run"]);
    r.ok();
    assert!(!r.stdout.contains("robust"), "{}", r.describe());
    assert!(!d.path().join("run/robust.json").exists() && !d.path().join("run/eval-1").exists());

    amm(d.path(), &["eval", "run", "--attacks", "cw"]).fails().stderr_has("unknown attack `cw`");
    amm(d.path(), &["eval", "run", "--attacks", "ddn", "--norm", "linf"]).fails().stderr_has("does not support the linf norm");
    amm(d.path(), &["eval", "run", "--attacks", "apgd", "--norm", "l1"]).fails().stderr_has("apgd");
    amm(d.path(), &["eval", "run", "--attacks", "fmn(stepz=3)"]).fails().stderr_has("`fmn` has no parameter `stepz`");
    amm(d.path(), &["eval", "run", "--attacks", "fmn(steps=many)"]).fails().stderr_has("`steps` must be an integer");
    amm(d.path(), &["eval", "run", "--attacks", "fmn", "--norm", "l3"]).fails().stderr_has("unknown norm `l3`");
    amm(d.path(), &["eval", "run", "--eps", "0.5"]).fails().stderr_has("--attacks");
    amm(d.path(), &["eval", "run", "--attacks", "fmn", "--eps", "-1"]).fails().stderr_has("--eps");
    amm(d.path(), &["eval", "run", "--attacks", "fmn,fmn"]).fails().stderr_has("twice");
}

/// Grids can ask for robustness metrics per cell (`eval.attacks`), and `amm report` tabulates them
/// by their dotted path in result.json.
#[test]
fn grid_cells_carry_robustness_metrics_into_report_tables() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("grid");
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_amm"))
        .args(["train", "--data", "digits", "--model", "mlp(widths=[32])", "--epochs", "2", "--quiet"])
        .args(["--reg", "{none, deepfool(l2, 3) |> avg |> exp(c=2, d=1) |> weight(4)}"])
        .args([
            "--set",
            "eval.attacks=\"fmn,apgd\"",
            "--set",
            "eval.eps=\"0.5,1\"",
            "--set",
            "eval.samples=60",
            "--set",
            "eval.long_iters=0",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let cells: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().path()).filter(|p| p.join("result.json").exists()).collect();
    assert_eq!(cells.len(), 2);
    for c in &cells {
        let r: amm_core::serde_json::Value =
            amm_core::serde_json::from_str(&std::fs::read_to_string(c.join("result.json")).unwrap()).unwrap();
        let fmn = r["robust"]["attacks"]["fmn"]["median_norm"].as_f64().unwrap();
        let best = r["robust"]["best_known_median"].as_f64().unwrap();
        assert!(best > 0.0 && best <= fmn + 1e-12, "{r}");
        assert_eq!(r["robust"]["robust_accuracy"].as_array().unwrap().len(), 2);
        assert!(c.join("robust.csv").exists());
    }
    let rep = std::process::Command::new(env!("CARGO_BIN_EXE_amm"))
        .arg("report")
        .arg(&out)
        .args(["--metrics", "test_error,robust.best_known_median"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&rep.stdout);
    assert!(
        rep.status.success() && table.contains("best-known margin (median)") && table.lines().count() == 4,
        "{table}{}",
        String::from_utf8_lossy(&rep.stderr)
    );
}
