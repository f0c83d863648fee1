//! `amm check`: the repository's specs, located diagnostics, JSON errors, grids, hostile input.
mod common;
use common::*;

/// Every spec file of the repository, with the number of cells it expands to.
const SPECS: [(&str, u64); 10] = [
    ("specs/deep-defense.amm", 1),
    ("specs/quickstart.amm", 2),
    ("specs/paper/base.amm", 1),
    ("specs/paper/claims.amm", 24),
    ("specs/paper/fig1.amm", 12),
    ("specs/paper/fig4.amm", 18),
    ("specs/paper/fig5.amm", 24),
    ("specs/paper/table1.amm", 21),
    ("specs/paper/table2.amm", 6),
    ("specs/paper/tune.amm", 19),
];

#[test]
fn repository_specs_pass_with_their_cell_counts() {
    let root = repo();
    for (file, cells) in SPECS {
        let r = amm(&root, &["check", file, "--json"]);
        r.ok();
        let v = r.json();
        assert_eq!(v["ok"], true, "{}", r.describe());
        assert_eq!(v["cells"], cells, "{file}: cells\n{}", r.describe());
        assert_eq!(v["errors"], serde_json::json!([]), "{}", r.describe());
    }
    // Several files at once: the cells add up, and the text mode lists each file.
    let files: Vec<&str> = SPECS.iter().map(|(f, _)| *f).collect();
    let total: u64 = SPECS.iter().map(|(_, c)| c).sum();
    let r = amm(&root, &with(&["check"], &files));
    r.ok();
    for (f, c) in SPECS {
        r.stdout_has(&format!("{f}: {c} cell"));
    }
    r.stdout_has(&format!("ok: {total} cells"));
}

#[test]
fn every_spec_file_in_the_repository_is_listed_above() {
    // A new spec file must be added to SPECS (and so be checked).
    let mut found = Vec::new();
    for sub in ["specs", "specs/paper"] {
        for e in std::fs::read_dir(repo().join(sub)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "amm") {
                found.push(format!("{sub}/{}", p.file_name().unwrap().to_string_lossy()));
            }
        }
    }
    found.sort();
    let mut listed: Vec<String> = SPECS.iter().map(|(f, _)| f.to_string()).collect();
    listed.sort();
    assert_eq!(found, listed);
}

#[test]
fn overrides_apply_to_checked_files() {
    let root = repo();
    let r = amm(&root, &["check", "specs/quickstart.amm", "--set", "train.lr={0.1, 0.01}", "--json"]);
    r.ok();
    assert_eq!(r.json()["cells"], 4, "{}", r.describe());
    let r = amm(&root, &["check", "specs/quickstart.amm", "--set", "train.epochs=0", "--json"]);
    assert_eq!(r.code, Some(1), "{}", r.describe());
    let v = r.json();
    assert_eq!(v["ok"], false);
    let msg = v["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("epochs") || v["errors"][0]["help"].to_string().contains("epochs") || msg.contains(">= 1"), "{v}");
}

const BAD: &str = "# a spec with three mistakes\n\
[data]\n\
name = digits\n\
colour = red\n\
\n\
[reg]\n\
pipeline = deepfool(l2, 5) |> min(class, 1.5) |> exq(2, 1)\n\
\n\
[train]\n\
epochs = 2\n";

/// (line, column, a piece of the message, the offending text under the caret)
const BAD_ERRORS: [(u64, u64, &str, &str); 3] =
    [(4, 1, "unknown key `colour`", "colour"), (7, 42, "must be a number in (0, 1]", "1.5"), (7, 50, "unknown shrinkage `exq`", "exq")];

/// Checks a rustc-style diagnostic: ` --> file:line:col`, then `N | source`, then a caret line
/// whose `^` sits exactly under column `col` of the source.
#[track_caller]
fn assert_located(stderr: &str, file: &str, line: u64, col: u64, under: &str) {
    let loc = format!("{file}:{line}:{col}");
    let lines: Vec<&str> = stderr.lines().collect();
    let at = lines.iter().position(|l| l.trim_start().starts_with("-->") && l.trim_end().ends_with(&loc));
    let at = at.unwrap_or_else(|| panic!("no ` --> {loc}` in\n{stderr}"));
    let src_prefix = format!("{line} | ");
    let src_i = (at + 1..lines.len().min(at + 4))
        .find(|&i| lines[i].starts_with(&src_prefix))
        .unwrap_or_else(|| panic!("no source line `{src_prefix}...` after {loc}\n{stderr}"));
    let src = lines[src_i];
    let caret = lines[src_i + 1];
    assert!(caret.trim_start().starts_with('|'), "no caret line under the source of {loc}\n{stderr}");
    let caret_col = caret.find('^').unwrap_or_else(|| panic!("no `^` under the source of {loc}\n{stderr}"));
    let text_start = src_prefix.len();
    assert_eq!(caret_col - text_start + 1, col as usize, "caret not under column {col}:\n{src}\n{caret}");
    let carets = caret[caret_col..].chars().take_while(|&c| c == '^').count();
    let chars: Vec<char> = src.chars().collect();
    let pointed: String = chars[caret_col..caret_col + carets.min(chars.len() - caret_col)].iter().collect();
    assert_eq!(pointed, under, "the carets of {loc} underline {pointed:?}\n{src}\n{caret}");
}

#[test]
fn bad_file_reports_every_error_with_place_source_caret_and_fix() {
    let d = tempdir();
    std::fs::write(d.path().join("bad.amm"), BAD).unwrap();
    let r = amm(d.path(), &["check", "bad.amm"]);
    r.fails();
    assert_eq!(r.code, Some(1), "{}", r.describe());
    assert!(r.stdout.is_empty(), "errors go to stderr\n{}", r.describe());
    for (line, col, msg, under) in BAD_ERRORS {
        r.stderr_has(msg);
        assert_located(&r.stderr, "bad.amm", line, col, under);
    }
    r.stderr_has("pipeline = deepfool(l2, 5) |> min(class, 1.5) |> exq(2, 1)");
    r.stderr_has("colour = red");
    r.stderr_has("did you mean `exp`");
    r.stderr_has("3 previous errors");
    // The errors come in source order.
    let pos: Vec<usize> = BAD_ERRORS.iter().map(|(_, _, m, _)| r.stderr.find(m).unwrap()).collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{}", r.describe());
}

#[test]
fn bad_file_json_errors_have_file_line_column_message() {
    let d = tempdir();
    let path = d.path().join("bad.amm");
    std::fs::write(&path, BAD).unwrap();
    let path = path_str(&path);
    let r = amm(d.path(), &["check", &path, "--json"]);
    assert_eq!(r.code, Some(1), "{}", r.describe());
    r.no_panic();
    let v = r.json();
    assert_eq!(v["ok"], false);
    assert_eq!(v["cells"], 0);
    let errors = v["errors"].as_array().expect("errors array");
    assert_eq!(errors.len(), BAD_ERRORS.len(), "{v}");
    for (e, (line, col, msg, _)) in errors.iter().zip(BAD_ERRORS) {
        assert_eq!(e["file"], path.as_str(), "{e}");
        assert_eq!(e["line"], line, "{e}");
        assert_eq!(e["column"], col, "{e}");
        assert!(e["message"].as_str().unwrap().contains(msg), "{e}");
    }
    assert!(errors[2]["help"].as_str().unwrap_or_default().contains("did you mean `exp`"), "{v}");
}

#[test]
fn errors_in_an_included_file_name_that_file() {
    let d = tempdir();
    std::fs::write(d.path().join("base.amm"), "[train]\nepochs = 3\nlr = -1\n").unwrap();
    std::fs::write(d.path().join("main.amm"), "include \"base.amm\"\n[model]\narch = mlp\n").unwrap();
    let r = amm(d.path(), &["check", "main.amm", "--json"]);
    assert_eq!(r.code, Some(1), "{}", r.describe());
    let v = r.json();
    let e = &v["errors"][0];
    assert!(e["file"].as_str().unwrap().ends_with("base.amm"), "{v}");
    assert_eq!(e["line"], 3, "{v}");
    assert_eq!(e["column"], 6, "{v}");
    // an include that does not exist
    std::fs::write(d.path().join("main.amm"), "include \"nope.amm\"\n").unwrap();
    let r = amm(d.path(), &["check", "main.amm"]);
    r.fails().stderr_has("nope.amm").stderr_has("main.amm:1:");
    // a cycle
    std::fs::write(d.path().join("a.amm"), "include \"b.amm\"\n").unwrap();
    std::fs::write(d.path().join("b.amm"), "include \"a.amm\"\n").unwrap();
    amm(d.path(), &["check", "a.amm"]).fails();
}

#[test]
fn reg_alternatives_count_cells() {
    let d = tempdir();
    let r = amm(d.path(), &["check", "--reg", "deepfool(l2, {1,3,5}) |> avg |> exp(2,1)", "--json"]);
    r.ok();
    assert_eq!(r.json(), serde_json::json!({"ok": true, "cells": 3, "errors": []}));
    // text mode prints each resolved pipeline
    let r = amm(d.path(), &["check", "--reg", "deepfool(l2, {1,3,5}) |> avg |> exp(2,1)"]);
    r.ok().stdout_has("ok: 3 cells");
    for i in [1, 3, 5] {
        r.stdout_has(&format!("iters={i}"));
    }
    // the grids of docs/SPEC-language.md
    for (p, n) in [
        ("deepfool(l2, 5) |> {avg, min(class, 0.2)} |> {lin(1, 1), inv(1, 1), exp(2, 1)}", 6),
        ("deepfool(l2) |> {avg, min(class, {0.1, 0.2})} |> exp", 3),
        ("{none, deepfool(l2, 5) |> avg |> exp(2, 1)}", 2),
        ("deepfool(l2) |> {avg |> normalize, min} |> exp", 2),
        ("none", 1),
    ] {
        let r = amm(d.path(), &["check", "--reg", p, "--json"]);
        r.ok();
        assert_eq!(r.json()["cells"], n, "{p}\n{}", r.describe());
    }
}

#[test]
fn reg_errors_are_located_in_the_pipeline() {
    let d = tempdir();
    let r = amm(d.path(), &["check", "--reg", "deepfool(l2, 5) |> exq(2, 1)", "--json"]);
    assert_eq!(r.code, Some(1), "{}", r.describe());
    let v = r.json();
    assert_eq!(v["errors"][0]["line"], 1, "{v}");
    assert_eq!(v["errors"][0]["column"], 20, "{v}");
    assert!(v["errors"][0]["help"].as_str().unwrap().contains("did you mean `exp`"), "{v}");
    let r = amm(d.path(), &["check", "--reg", "deepfool(l2, 5) |> exq(2, 1)"]);
    r.fails().stderr_has("did you mean `exp`");
    assert_located(&r.stderr, "<pipeline>", 1, 20, "exq");
    // order errors
    for bad in ["avg |> exp", "deepfool(l2) |> avg", "deepfool(l2) |> exp |> avg", "deepfool(l9) |> exp", "weight(2)"] {
        let r = amm(d.path(), &["check", "--reg", bad]);
        r.fails();
        assert_eq!(r.code, Some(1), "{bad}\n{}", r.describe());
    }
}

#[test]
fn nothing_to_check_and_missing_file() {
    let d = tempdir();
    amm(d.path(), &["check"]).fails().stderr_has("nothing to check");
    let r = amm(d.path(), &["check", "missing.amm"]);
    r.fails().stderr_has("missing.amm");
    // unknown flag: clap's usage error, exit 2
    let r = amm(d.path(), &["check", "--frobnicate"]);
    assert_eq!(r.code, Some(2), "{}", r.describe());
}

/// Hostile input: an error (exit 1 or 2), never a panic, a crash or a hang.
#[track_caller]
fn assert_refused(dir: &std::path::Path, args: &[&str]) -> Run {
    let t = std::time::Instant::now();
    let r = amm(dir, args);
    if args.contains(&"--json") {
        assert_eq!(r.code, Some(1), "{}", r.describe());
        r.no_panic();
        let v = r.json();
        assert_eq!(v["ok"], false, "{}", r.describe());
        let e = &v["errors"][0];
        assert!(e["line"].as_u64().is_some_and(|l| l >= 1) && e["message"].is_string(), "{}", r.describe());
    } else {
        r.fails();
    }
    assert!(t.elapsed().as_secs_f64() < 15.0, "took {:?}\n{}", t.elapsed(), r.describe());
    r
}

#[test]
fn hostile_files_get_errors_not_panics() {
    let d = tempdir();
    let p = d.path();
    let write = |name: &str, bytes: &[u8]| std::fs::write(p.join(name), bytes).unwrap();

    // 200,000 nested brackets, as a value and as a pipeline
    write("deep.amm", format!("[data]\nname = {}\n", "{".repeat(200_000)).as_bytes());
    assert_refused(p, &["check", "deep.amm"]).stderr_has("deep.amm:2:").stderr_has("nesting");
    write("deep2.amm", format!("[reg]\npipeline = {}\n", "(".repeat(200_000)).as_bytes());
    assert_refused(p, &["check", "deep2.amm"]);
    write("deep3.amm", format!("[model]\narch = mlp(widths={})\n", "[".repeat(200_000)).as_bytes());
    assert_refused(p, &["check", "deep3.amm", "--json"]);
    let deep_reg = format!("deepfool(l2, {}1{})", "{".repeat(60_000), "}".repeat(60_000));
    assert_refused(p, &["check", "--reg", &deep_reg]);

    // random bytes (seeded), with and without a valid UTF-8 prefix
    let mut rng = Mix(42);
    for k in 0..4 {
        let bytes: Vec<u8> = (0..4096).map(|_| rng.next() as u8).collect();
        write(&format!("random{k}.amm"), &bytes);
        assert_refused(p, &["check", &format!("random{k}.amm")]);
    }
    write("nul.amm", b"[data]\nname = dig\0its\n");
    assert_refused(p, &["check", "nul.amm"]);
    // random printable ASCII: parse errors, located
    let alphabet = b" {}[]()|>=,.#\"\nabc123-_";
    let ascii: Vec<u8> = (0..4096).map(|_| alphabet[(rng.next() % alphabet.len() as u64) as usize]).collect();
    write("ascii.amm", &ascii);
    assert_refused(p, &["check", "ascii.amm", "--json"]);

    // empty and broken pipelines
    for bad in
        ["", " ", "|>", "deepfool(l2) |> |> exp", "deepfool(l2) |>", "{}", "{,}", "deepfool(", "\"unterminated", "deepfool(l2, 5e999999)"]
    {
        let r = assert_refused(p, &["check", "--reg", bad]);
        assert_eq!(r.code, Some(1), "{bad:?}\n{}", r.describe());
    }
    write("empty-pipeline.amm", b"[reg]\npipeline =\n");
    assert_refused(p, &["check", "empty-pipeline.amm"]).stderr_has("empty-pipeline.amm:2:");
    write("string.amm", b"[experiment]\nname = \"never closed\n");
    assert_refused(p, &["check", "string.amm"]);

    // a huge line and a huge grid
    write("long.amm", format!("[experiment]\nname = \"{}\"\nbogus = 1\n", "x".repeat(2_000_000)).as_bytes());
    assert_refused(p, &["check", "long.amm"]);
    let many: Vec<String> = (1..=400).map(|i| i.to_string()).collect();
    let grid = format!("[train]\nepochs = {{{0}}}\nbatch = {{{0}}}\n", many.join(", "));
    write("grid.amm", grid.as_bytes());
    assert_refused(p, &["check", "grid.amm"]).stderr_has("160000 cells").stderr_has("train.epochs (400)").stderr_has("train.batch (400)");
    // a directory instead of a file
    std::fs::create_dir(p.join("dir.amm")).unwrap();
    assert_refused(p, &["check", "dir.amm"]);
}

#[test]
fn an_empty_file_is_a_valid_spec_of_defaults() {
    let d = tempdir();
    std::fs::write(d.path().join("empty.amm"), "").unwrap();
    let r = amm(d.path(), &["check", "empty.amm", "--json"]);
    r.ok();
    assert_eq!(r.json()["cells"], 1);
}

/// `amm args...` in `dir`, killed after `secs` seconds (and the test failed): a spec that blocks
/// amm (an included FIFO) must not hang the suite.
#[track_caller]
fn amm_within(dir: &std::path::Path, args: &[&str], secs: u64) -> Run {
    use std::process::Stdio;
    let t = std::time::Instant::now();
    let mut child = command(dir, args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("running the amm binary");
    while child.try_wait().expect("waiting for amm").is_none() {
        if t.elapsed().as_secs() >= secs {
            let _ = child.kill();
            let _ = child.wait();
            panic!("amm {args:?} still running after {secs} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let o = child.wait_with_output().expect("amm's output");
    Run {
        args: args.iter().map(|a| a.to_string()).collect(),
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// A spec beyond a limit: exit code 1 (not a panic's 101, not a signal) within seconds, and a
/// rustc-style error naming the file, line and column, in text and in JSON.
#[track_caller]
fn assert_limit(dir: &std::path::Path, file: &str, line: u64, col: u64, message: &str) -> Run {
    let r = amm_within(dir, &["check", file, "--json"], 60);
    assert_eq!(r.code, Some(1), "{}", r.describe());
    r.no_panic();
    let v = r.json();
    let e = &v["errors"][0];
    assert_eq!((e["line"].as_u64(), e["column"].as_u64()), (Some(line), Some(col)), "{}", r.describe());
    assert!(e["file"].as_str().is_some_and(|f| f.ends_with(file)), "{}", r.describe());
    assert!(e["message"].as_str().is_some_and(|m| m.contains(message)), "{}", r.describe());
    assert!(e["help"].as_str().is_some_and(|h| !h.is_empty()), "every limit says how to fix it\n{}", r.describe());
    let r = amm_within(dir, &["check", file], 60);
    assert_eq!(r.code, Some(1), "{}", r.describe());
    r.no_panic().stderr_has(&format!("{file}:{line}:{col}")).stderr_has(message).stderr_has("= help:");
    r
}

#[test]
fn a_grid_axis_beyond_the_bound_is_an_error_at_the_axis() {
    let d = tempdir();
    let values: Vec<String> = (0..=100_000).map(|i| i.to_string()).collect();
    // The seeds alone (once a panic: "a grid this large has an axis").
    std::fs::write(d.path().join("seeds.amm"), format!("[train]\nepochs = 1\n\n[experiment]\nseeds = [{}]\n", values.join(", "))).unwrap();
    assert_limit(d.path(), "seeds.amm", 5, 9, "the grid has 100001 cells, more than 100000").stderr_has("axes: seeds (100001)");
    // Alternatives of a key.
    let lrs: Vec<String> = (1..=100_001).map(|i| i.to_string()).collect();
    std::fs::write(d.path().join("lr.amm"), format!("[train]\nlr = {{{}}}\n", lrs.join(", "))).unwrap();
    assert_limit(d.path(), "lr.amm", 2, 6, "the grid has 100001 cells").stderr_has("train.lr (100001) x seeds (1)");
}

#[test]
fn models_too_large_to_build_are_errors_at_check_time() {
    let d = tempdir();
    // A capacity-overflow panic, and a 40 GB allocation that aborted, in `amm train`.
    for (name, widths, col, message) in [
        ("max.amm", "[9223372036854775807]", 20, "a layer width of 9223372036854775807, more than 1000000"),
        ("wide.amm", "[64, 100000000]", 24, "a layer width of 100000000, more than 1000000"),
    ] {
        std::fs::write(d.path().join(name), format!("[model]\narch = mlp(widths={widths})\n")).unwrap();
        assert_limit(d.path(), name, 2, col, message);
        // `amm train` refuses it the same way, before loading data or allocating.
        let model = format!("mlp(widths={widths})");
        let r = amm_within(d.path(), &["train", "--data", "digits", "--model", &model, "--epochs", "1", "--out", "t", "--quiet"], 60);
        assert_eq!(r.code, Some(1), "{}", r.describe());
        r.no_panic().stderr_has(message);
    }
    // Widths within the bound, too many parameters for the dataset: located at the model.
    std::fs::write(d.path().join("deep.amm"), "[data]\nname = cifar10\n[model]\narch = mlp(widths=[1000000, 1000000])\n").unwrap();
    assert_limit(d.path(), "deep.amm", 4, 8, "trainable parameters for cifar10 (inputs 3x32x32, 10 classes), more than 2147483648");
}

#[test]
fn a_model_too_large_for_data_known_only_at_training_is_refused_before_allocation() {
    // csv data has the shape of its files: `amm check` cannot know it, `amm train` measures the
    // model against it before building it.
    let d = tempdir();
    let data = d.path().join("wide");
    std::fs::create_dir(&data).unwrap();
    let header: Vec<String> = (0..3000).map(|i| format!("f{i}")).chain(["label".to_string()]).collect();
    let row = |label: u32| (0..3000).map(|_| "0.5".to_string()).chain([label.to_string()]).collect::<Vec<_>>().join(",");
    let csv = format!("{}\n{}\n{}\n", header.join(","), row(0), row(1));
    std::fs::write(data.join("train.csv"), &csv).unwrap();
    std::fs::write(data.join("test.csv"), &csv).unwrap();
    std::fs::write(d.path().join("csv.amm"), "[data]\nname = csv\npath = \"wide\"\n[model]\narch = mlp(widths=[1000000])\n").unwrap();
    let r = amm_within(d.path(), &["check", "csv.amm", "--json"], 60);
    assert_eq!(r.json()["ok"], true, "{}", r.describe());
    let r = amm_within(
        d.path(),
        &["train", "--data", "csv:wide", "--model", "mlp(widths=[1000000])", "--epochs", "1", "--out", "t", "--quiet"],
        120,
    );
    assert_eq!(r.code, Some(1), "{}", r.describe());
    r.no_panic().stderr_has("3003000002 trainable parameters for the data (inputs 3000, 2 classes), more than 2147483648");
}

#[test]
fn threads_beyond_the_bound_are_an_error() {
    let d = tempdir();
    std::fs::write(d.path().join("threads.amm"), "[train]\nthreads = 100000\n").unwrap();
    assert_limit(d.path(), "threads.amm", 2, 11, "`train.threads` must be an integer in [0, 1024], got `100000`");
    std::fs::write(d.path().join("ok.amm"), "[train]\nthreads = 1024\n").unwrap();
    let r = amm_within(d.path(), &["check", "ok.amm", "--json"], 60);
    assert_eq!(r.json()["ok"], true, "{}", r.describe());
}

#[cfg(unix)]
#[test]
fn includes_of_fifos_and_devices_are_errors_not_hangs() {
    let d = tempdir();
    let fifo = d.path().join("fifo.amm");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("running mkfifo");
    assert!(made.success(), "mkfifo failed");
    // Nobody writes the FIFO: reading it blocked `amm check` forever.
    std::fs::write(d.path().join("main.amm"), "[train]\nepochs = 1\ninclude \"fifo.amm\"\n").unwrap();
    assert_limit(d.path(), "main.amm", 3, 9, "fifo.amm`: it is a FIFO").stderr_has("regular files");
    // /dev/zero never ends: reading it grew memory without bound.
    std::fs::write(d.path().join("zero.amm"), "# zeros\ninclude \"/dev/zero\"\n").unwrap();
    assert_limit(d.path(), "zero.amm", 2, 9, "cannot include `/dev/zero`: it is a device");
    // A regular file beyond 1 MiB.
    std::fs::write(d.path().join("big.amm"), "# padding\n".repeat(120_000)).unwrap();
    std::fs::write(d.path().join("top.amm"), "include \"big.amm\"\n").unwrap();
    assert_limit(d.path(), "top.amm", 1, 9, "big.amm` is larger than 1 MiB (1200000 bytes)");
}
