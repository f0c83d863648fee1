//! amm under faults and hostile input: every case ends in a clear error or a correct result,
//! never a panic, an abort, a signal or a poisoned result. Faults are injected the way they
//! happen (files damaged on disk, processes killed) or, where that cannot be timed from
//! outside, through `AMM_FAILPOINT` (amm-core/src/train.rs).
mod common;
use common::*;
use std::path::Path;

fn tiny_run(out: &Path, epochs: usize) -> Vec<String> {
    with(&with(&["train"], &tiny()), &["--epochs", &epochs.to_string(), "--out", &path_str(out)])
}

fn amm_env<S: AsRef<str>>(cwd: &Path, args: &[S], env: &[(&str, &str)]) -> Run {
    let mut c = command(cwd, args);
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().expect("running amm");
    Run {
        args: args.iter().map(|a| a.as_ref().to_string()).collect(),
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

#[test]
fn a_divergence_on_the_last_step_of_an_epoch_never_writes_a_result() {
    let t = tempdir();
    let out = t.path().join("run");
    let r = amm_env(t.path(), &tiny_run(&out, 3), &[("AMM_FAILPOINT", "nan-weights-after-epoch=2")]);
    r.fails().stderr_has("epoch 2: training diverged").stderr_has("last finite checkpoint (epoch 1)");
    assert!(!out.join("result.json").exists(), "a diverged run wrote result.json");
    let failed = read_json(&out.join("failed.json"));
    assert_eq!(failed["last_good_epoch"], 1, "{failed}");
    // metrics.jsonl holds only finite epochs: a resume reads it without complaint.
    assert_eq!(metrics(&out).len(), 1);
    let st = amm(t.path(), &with(&tiny_run(&out, 3), &["--status"]));
    st.ok().stdout_has("failed");
    // Without the fault, --resume continues from the finite checkpoint and finishes.
    let r = amm(t.path(), &with(&tiny_run(&out, 3), &["--resume"]));
    r.ok();
    assert!(!r.stderr.contains("warning"), "{}", r.describe());
    assert!(!out.join("failed.json").exists());
    assert_eq!(metrics(&out).len(), 3);
    let res = read_json(&out.join("result.json"));
    assert!(num(&res, "test_error") < 0.5, "{res}");
}

#[test]
fn a_collapsed_run_finishes_with_a_warning() {
    let t = tempdir();
    let out = t.path().join("run");
    // A learning rate this large sends the weights far away without reaching infinity.
    let r = amm(t.path(), &with(&tiny_run(&out, 1), &["--lr", "30000"]));
    r.ok().stderr_has("warning: the run collapsed: test error");
    let res = read_json(&out.join("result.json"));
    let w = res["warnings"].as_array().unwrap_or_else(|| panic!("no warnings in {res}"));
    assert!(w.iter().any(|w| w.as_str().unwrap().contains("chance level")), "{res}");
}

/// A two-cell grid of one-epoch runs in `dir`; returns its spec file.
fn two_cell_grid(dir: &Path) -> std::path::PathBuf {
    let spec = dir.join("g.amm");
    std::fs::write(
        &spec,
        "[experiment]\nout = \"g\"\nseeds = [0, 1]\n[data]\nname = digits\n[model]\narch = mlp(widths=[16])\n[train]\nepochs = 1\n[eval]\nlong_iters = 0\n",
    )
    .unwrap();
    spec
}

fn cell_dirs(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("g")).unwrap().flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    v.sort();
    v
}

#[test]
fn damaged_results_are_reported_moved_aside_and_rerun() {
    let t = tempdir();
    let spec = two_cell_grid(t.path());
    let s = path_str(&spec);
    amm(t.path(), &["grid", &s, "--quiet"]).ok();
    let cells = cell_dirs(t.path());
    let good = std::fs::read_to_string(cells[0].join("result.json")).unwrap();
    // A truncated file, and one of the wrong shape.
    std::fs::write(cells[0].join("result.json"), &good[..good.len() / 2]).unwrap();
    std::fs::write(cells[1].join("result.json"), "{\"test_error\": null, \"hello\": 1}").unwrap();
    let st = amm(t.path(), &["grid", &s, "--status"]);
    st.ok().stdout_has("2 damaged");
    let rep = amm(t.path(), &["report", &path_str(&t.path().join("g"))]);
    rep.ok().stdout_has("damaged, left out");
    let r = amm(t.path(), &["grid", &s, "--quiet"]);
    r.ok().stderr_has("is damaged").stderr_has("running it again");
    for c in &cells {
        assert!(c.join("result.json.damaged").exists(), "the damaged file is kept aside in {}", c.display());
        let res = read_json(&c.join("result.json"));
        assert!(num(&res, "test_error") < 1.0, "{res}");
    }
    amm(t.path(), &["grid", &s, "--status"]).ok().stdout_has("2 done");
}

/// Overwrites `n` bytes in the middle of a file (inside the tensor data of a checkpoint).
fn corrupt(path: &Path, n: usize) {
    let mut b = std::fs::read(path).unwrap();
    let mid = b.len() / 2;
    for (i, x) in b[mid..mid + n].iter_mut().enumerate() {
        *x ^= 0x5a ^ (i as u8);
    }
    std::fs::write(path, b).unwrap();
}

/// A three-epoch run killed right after epoch 2's checkpoint, as by SIGKILL.
fn killed_after_epoch_2(cwd: &Path, out: &Path) {
    let r = amm_env(cwd, &tiny_run(out, 3), &[("AMM_FAILPOINT", "exit-after-epoch=2")]);
    assert_eq!(r.code, Some(137), "{}", r.describe());
}

#[test]
fn a_damaged_checkpoint_is_refused_by_eval_and_resume_falls_back() {
    let t = tempdir();
    let out = t.path().join("run");
    killed_after_epoch_2(t.path(), &out);
    corrupt(&out.join("checkpoint-last.safetensors"), 300);
    let e = amm(t.path(), &["eval", &path_str(&out.join("checkpoint-last.safetensors"))]);
    e.fails().stderr_has("checkpoint-last.safetensors is damaged: its checksum does not match");
    let r = amm(t.path(), &with(&tiny_run(&out, 3), &["--resume"]));
    r.ok().stderr_has("is damaged").stderr_has("resuming from").stderr_has("checkpoint-prev.safetensors (epoch 1)");
    assert_eq!(metrics(&out).len(), 3);
}

#[test]
fn a_bad_metrics_line_and_stale_temporary_files_do_not_block_a_resume() {
    let t = tempdir();
    let out = t.path().join("run");
    killed_after_epoch_2(t.path(), &out);
    let m = out.join("metrics.jsonl");
    let text = std::fs::read_to_string(&m).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&m, format!("{}\n{{\"epoch\": 2, \"loss\": nul\n", lines[0])).unwrap();
    // A temporary file of a writer that died (pid 999999999 does not exist).
    let stale = out.join(".result.json.tmp999999999");
    std::fs::write(&stale, "half a file").unwrap();
    let r = amm(t.path(), &with(&tiny_run(&out, 3), &["--resume"]));
    r.ok().stderr_has("metrics.jsonl:2: not a metrics line").stderr_has("removed 1 temporary file");
    assert!(!stale.exists());
    let epochs: Vec<u64> = metrics(&out).iter().map(|l| l["epoch"].as_u64().unwrap()).collect();
    assert_eq!(epochs, vec![1, 3], "epoch 2's line is lost, the rest is kept");
}

#[test]
fn a_resumed_run_logs_the_same_floats_as_an_uninterrupted_one_even_after_a_move() {
    let t = tempdir();
    let whole = t.path().join("whole");
    amm(t.path(), &tiny_run(&whole, 2)).ok();
    let first = t.path().join("first");
    let r = amm_env(t.path(), &tiny_run(&first, 2), &[("AMM_FAILPOINT", "exit-after-epoch=1")]);
    assert_eq!(r.code, Some(137), "{}", r.describe());
    // The folder moves; the run stays resumable there.
    let moved = t.path().join("moved");
    std::fs::rename(&first, &moved).unwrap();
    amm(t.path(), &with(&tiny_run(&moved, 2), &["--resume"])).ok();
    let (a, b) = (metrics(&whole), metrics(&moved));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(without_timing(x), without_timing(y), "bit-identical floats after a resume");
    }
    let (ra, rb) = (read_json(&whole.join("result.json")), read_json(&moved.join("result.json")));
    assert_eq!(ra["margin"], rb["margin"]);
}

#[test]
fn a_closed_pipe_ends_quietly_and_a_full_device_is_named() {
    let t = tempdir();
    let mut c = command(t.path(), &["list"]);
    c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    drop(child.stdout.take()); // the reader goes away at once, like `| head -0`
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    if Path::new("/dev/full").exists() {
        let full = std::fs::File::options().write(true).open("/dev/full").unwrap();
        let o = command(t.path(), &["list"]).stdout(full).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains("writing to standard output") && err.contains("disk is full"), "{err}");
    } else {
        panic!("/dev/full is missing on this machine: the full-device case cannot be tested");
    }
}

#[test]
fn degenerate_data_is_refused_with_the_file_named() {
    let t = tempdir();
    let d = t.path().join("data");
    std::fs::create_dir_all(&d).unwrap();
    let one_class = "a,b,label\n0,1,0\n1,0,0\n";
    std::fs::write(d.join("train.csv"), one_class).unwrap();
    std::fs::write(d.join("test.csv"), one_class).unwrap();
    let data = format!("csv:{}", path_str(&d));
    let base = ["train", "--model", "mlp(widths=[8])", "--quiet", "--epochs", "1", "--out", "o", "--data"];
    let run = |extra: &[&str]| amm(t.path(), &with(&with(&base, &[&data]), extra));
    run(&[]).fails().stderr_has("train.csv").stderr_has("at least two classes");
    std::fs::write(d.join("train.csv"), "a,b,label\n0,1,0\n1,0,1\n").unwrap();
    std::fs::write(d.join("test.csv"), "a,b,label\n0,1,0\n1,0,2\n").unwrap();
    run(&[]).fails().stderr_has("test.csv").stderr_has("line 3: label 2 never occurs in train.csv");
    std::fs::write(d.join("test.csv"), "a,b,label\n0,1,0\n1,0,1\n").unwrap();
    run(&["--set", "data.flip=true"]).fails().stderr_has("data.crop / data.flip augment images");
    let r = amm(t.path(), &with(&base, &["digits:/nonexistent"]));
    r.fails().stderr_has("reads no files").stderr_has("/nonexistent");
    let r = amm(t.path(), &with(&with(&["train"], &tiny()), &["--epochs", "1", "--out", "q", "--set", "data.crop=8"]));
    r.fails().stderr_has("data.crop = 8").stderr_has("8x8");
}

#[test]
fn train_without_out_picks_a_folder_per_run_and_says_where() {
    let t = tempdir();
    let base = ["train", "--data", "digits", "--model", "mlp(widths=[16])", "--epochs", "1", "--set", "eval.long_iters=0"];
    let a = amm(t.path(), &base);
    a.ok().stderr_has("writing to runs/digits-mlp-ce-");
    let b = amm(t.path(), &with(&base, &["--lr", "0.05"]));
    b.ok().stderr_has("writing to runs/digits-mlp-ce-");
    let folder = |r: &Run| r.stderr.lines().find_map(|l| l.strip_prefix("writing to ")).unwrap().to_string();
    assert_ne!(folder(&a), folder(&b), "other flags, another folder");
    assert!(t.path().join(folder(&a)).join("result.json").exists());
    // The same flags again: the folder is found, and the message names --out.
    amm(t.path(), &base).fails().stderr_has("already holds a finished run").stderr_has("--out");
}

#[test]
fn grid_cells_keep_their_own_log() {
    let t = tempdir();
    let spec = two_cell_grid(t.path());
    amm(t.path(), &["grid", &path_str(&spec), "--jobs", "2", "--quiet"]).ok();
    for c in cell_dirs(t.path()) {
        let log = std::fs::read_to_string(c.join("log.txt")).unwrap();
        assert!(log.contains("epoch   1/1"), "{}: {log:?}", c.display());
    }
}

#[test]
fn ctrl_c_on_a_grid_says_what_stopped_and_how_to_continue() {
    let t = tempdir();
    let spec = t.path().join("g.amm");
    std::fs::write(
        &spec,
        "[experiment]\nout = \"g\"\nseeds = [0, 1]\n[data]\nname = digits\n[model]\narch = mlp(widths=[64])\n[train]\nepochs = 500\n[eval]\nlong_iters = 0\n",
    )
    .unwrap();
    let mut c = command(t.path(), &["grid", &path_str(&spec), "--jobs", "2"]);
    c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let child = c.spawn().unwrap();
    // Wait until both cells train (their metrics appear), then interrupt the grid.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let started = std::fs::read_dir(t.path().join("g"))
            .map(|d| d.flatten().filter(|e| e.path().join("metrics.jsonl").exists()).count())
            .unwrap_or(0);
        if started == 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the grid did not start");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // SAFETY: kill(2) on the pid of our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted; these cells stopped") && err.contains("seed=0") && err.contains("seed=1"), "{err}");
    assert!(err.contains("to continue, run: ") && err.contains("--jobs 2"), "{err}");
    // The workers follow their parent within a moment; then both cells wait to be resumed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let st = amm(t.path(), &["grid", &path_str(&spec), "--status"]);
        if st.ok().stdout.contains("2 interrupted") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", st.describe());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
