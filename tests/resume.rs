//! `--resume`: a run killed with SIGKILL at any moment and resumed ends exactly where an
//! uninterrupted run of the same flags ends.
mod common;
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

const EPOCHS: usize = 20;

/// The run under test: an AMM MLP on digits with a validation split (so a best checkpoint too).
fn flags(out: &str) -> Vec<String> {
    let epochs = EPOCHS.to_string();
    [
        "train",
        "--data",
        "digits",
        "--model",
        "mlp(widths=[64])",
        "--reg",
        "deepfool(l2, 3) |> avg |> exp(c=2, d=1) |> weight(4)",
        "--epochs",
        &epochs,
        "--set",
        "data.val_size=200",
        "--quiet",
        "--out",
        out,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |s| s.lines().filter(|l| !l.trim().is_empty()).count())
}

/// Starts the run in `out` (with `extra` flags) and SIGKILLs it once `ready` holds, while it is
/// still training. Returns how many epochs the metrics held when it was killed.
fn start_and_kill(cwd: &Path, out: &str, extra: &[&str], ready: impl Fn(&Path) -> bool) -> usize {
    let dir = cwd.join(out);
    let mut child = command(cwd, &with(&flags(out), extra)).spawn().expect("starting amm");
    let t0 = Instant::now();
    loop {
        if ready(&dir) {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before it could be killed; raise EPOCHS");
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "the run never reached the kill point");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    let status = child.wait().unwrap();
    assert!(status.code().is_none(), "killed by a signal, not exited: {status}");
    assert!(!dir.join("result.json").exists(), "the run finished before the kill; raise EPOCHS");
    lines(&dir.join("metrics.jsonl"))
}

fn assert_same_run(a: &Path, b: &Path) {
    let (ra, rb) = (read_json(&a.join("result.json")), read_json(&b.join("result.json")));
    assert_eq!(without_timing(&ra), without_timing(&rb), "resumed result differs from the uninterrupted one");
    let (ma, mb) = (metrics(a), metrics(b));
    assert_eq!(mb.len(), EPOCHS, "one metrics line per epoch, no duplicates");
    for (i, (x, y)) in ma.iter().zip(&mb).enumerate() {
        assert_eq!(y["epoch"], i + 1);
        assert_eq!(without_timing(x), without_timing(y), "epoch {} differs", i + 1);
    }
    let csv = std::fs::read_to_string(b.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), EPOCHS + 1, "{csv}");
    for ck in ["checkpoint-last.safetensors", "checkpoint-best.safetensors"] {
        assert!(std::fs::read(a.join(ck)).unwrap() == std::fs::read(b.join(ck)).unwrap(), "{ck} differs");
    }
}

/// Runs A (uninterrupted) into `cwd/a`.
fn reference(cwd: &Path) {
    let r = amm(cwd, &flags("a"));
    r.ok();
    assert_eq!(metrics(&cwd.join("a")).len(), EPOCHS);
}

#[test]
fn killed_run_resumes_to_the_uninterrupted_result() {
    let d = tempdir();
    reference(d.path());
    // B: killed as soon as its first checkpoint exists
    let at = start_and_kill(d.path(), "b", &[], |dir| dir.join("checkpoint-last.safetensors").exists());
    assert!(at < EPOCHS, "killed at epoch {at}");
    // without --resume the interrupted run is refused, and left as it was
    let r = amm(d.path(), &flags("b"));
    r.fails().stderr_has("--resume");
    let r = amm(d.path(), &with(&flags("b"), &["--resume"]));
    r.ok();
    assert_same_run(&d.path().join("a"), &d.path().join("b"));
    // resuming a finished run changes nothing and reports the same result
    let before = std::fs::read(d.path().join("b/result.json")).unwrap();
    let r = amm(d.path(), &with(&flags("b"), &["--resume", "--json"]));
    r.ok();
    let mut v = r.json();
    v.as_object_mut().unwrap().remove("cell");
    assert_eq!(v, read_json(&d.path().join("b/result.json")));
    assert_eq!(std::fs::read(d.path().join("b/result.json")).unwrap(), before);
    assert_eq!(metrics(&d.path().join("b")).len(), EPOCHS);
}

#[test]
fn killed_many_times_at_arbitrary_points_still_resumes_exactly() {
    let d = tempdir();
    reference(d.path());
    // Kill at later and later points, some of them between the metrics and the checkpoint
    // writes of an epoch, and resume each time.
    let mut seen = 0;
    for (k, delay_ms) in [(1usize, 0u64), (3, 7), (6, 13), (9, 3)] {
        let at = start_and_kill(d.path(), "c", &["--resume"], |dir| {
            if lines(&dir.join("metrics.jsonl")) >= k {
                std::thread::sleep(Duration::from_millis(delay_ms));
                true
            } else {
                false
            }
        });
        assert!(at >= seen, "epochs are never lost: {at} after {seen}");
        seen = at;
    }
    let r = amm(d.path(), &with(&flags("c"), &["--resume"]));
    r.ok();
    assert_same_run(&d.path().join("a"), &d.path().join("c"));
}

#[test]
fn resume_before_the_first_checkpoint_starts_from_scratch() {
    let d = tempdir();
    reference(d.path());
    // a run killed before its first epoch ended: only spec.json (and maybe nothing else)
    std::fs::create_dir(d.path().join("e")).unwrap();
    let mut spec = read_json(&d.path().join("a/spec.json"));
    spec["out"] = Value::String("e".into());
    std::fs::write(d.path().join("e/spec.json"), serde_json::to_string_pretty(&spec).unwrap()).unwrap();
    let r = amm(d.path(), &with(&flags("e"), &["--resume"]));
    r.ok();
    assert_same_run(&d.path().join("a"), &d.path().join("e"));
}

#[test]
fn resume_with_the_long_attack_off() {
    // eval.long_iters=0 leaves margin_long empty in every metrics line; resuming reads them back.
    let d = tempdir();
    let extra = ["--set", "eval.long_iters=0"];
    let r = amm(d.path(), &with(&flags("a"), &extra));
    r.ok();
    start_and_kill(d.path(), "b", &extra, |dir| lines(&dir.join("metrics.jsonl")) >= 2);
    let r = amm(d.path(), &with(&with(&flags("b"), &extra), &["--resume"]));
    r.ok();
    assert_same_run(&d.path().join("a"), &d.path().join("b"));
    assert!(read_json(&d.path().join("b/result.json"))["margin_long"].is_null());
}

#[test]
fn resume_of_a_grid_cell() {
    // Grid cells resume by themselves (no --resume needed) when their run directory has a checkpoint.
    let d = tempdir();
    let grid = |out: &str| -> Vec<String> {
        with(
            &["train", "--data", "digits", "--model", "mlp(widths=[64])", "--epochs", "20", "--quiet", "--out", out, "--json"],
            &["--reg", "{none, deepfool(l2, 2) |> avg |> exp(2, 1)}"],
        )
    };
    let a = amm(d.path(), &grid("ga"));
    a.ok();
    let mut child = command(d.path(), &grid("gb")).spawn().unwrap();
    let t0 = Instant::now();
    // kill while the second cell is training
    loop {
        let started = std::fs::read_dir(d.path().join("gb"))
            .map(|it| {
                it.filter_map(|e| e.ok()).any(|e| {
                    e.path().join("metrics.jsonl").exists()
                        && lines(&e.path().join("metrics.jsonl")) >= 3
                        && e.path().to_string_lossy().contains("deepfool")
                })
            })
            .unwrap_or(false);
        if started {
            break;
        }
        if child.try_wait().unwrap().is_some() {
            panic!("the grid finished before it could be killed");
        }
        assert!(t0.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let b = amm(d.path(), &grid("gb"));
    b.ok();
    let strip = |v: Value| -> Vec<Value> { v.as_array().unwrap().iter().map(without_timing).collect() };
    assert_eq!(strip(a.json()), strip(b.json()));
}
