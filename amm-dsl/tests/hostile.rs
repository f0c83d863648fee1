//! Hostile input: it gets a clear error, never a panic, a stack overflow or a hang.

use std::path::Path;
use std::time::{Duration, Instant};

use amm_dsl::{
    experiment_from_overrides, experiment_from_source, load_experiment, parse_pipeline, testing, Diagnostics, Grid, MAX_DEPTH,
    MAX_EXPANDED_PARTS, MAX_LAYER_WIDTH, MAX_SPEC_BYTES, MAX_THREADS,
};

fn file(src: &[u8]) -> Result<Grid, Diagnostics> {
    experiment_from_source(Path::new("h.amm"), src, &[], &testing::catalog())
}

#[test]
fn deep_nesting_is_refused_before_pest() {
    for open in ["{", "[", "("] {
        let deep = open.repeat(200_000);
        let d = parse_pipeline(&deep, &testing::catalog()).unwrap_err();
        assert_eq!(d.0.len(), 1);
        assert_eq!(d.0[0].message, format!("nesting deeper than {MAX_DEPTH} levels"));
        assert_eq!((d.0[0].line, d.0[0].column), (1, MAX_DEPTH + 1));

        let src = format!("[train]\nepochs = 3\nlr = {deep}\n[data]\nname = mnst\n");
        let d = file(src.as_bytes()).unwrap_err();
        assert_eq!(d.messages(), [format!("nesting deeper than {MAX_DEPTH} levels").as_str(), "unknown dataset `mnst`"]);
        assert_eq!((d.0[0].line, d.0[0].column), (3, 6 + MAX_DEPTH));
    }
    // Balanced but deep: same error, and 64 levels are still fine for the scanner.
    let ok = format!("deepfool(l2, {}5{}) |> avg |> exp", "[".repeat(10), "]".repeat(10));
    let d = parse_pipeline(&ok, &testing::catalog()).unwrap_err();
    assert!(d.0[0].message.starts_with("`iters` must be"), "{d}");
    let limit = format!("{}1{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
    let d = parse_pipeline(&limit, &testing::catalog()).unwrap_err();
    assert_eq!(d.0[0].message, "expected a stage, found a list");
}

#[test]
fn non_utf8_is_reported_with_its_position() {
    let d = file(b"[train]\nepochs = 3\nlr = 0.\xff1\n").unwrap_err();
    assert_eq!(d.0.len(), 1);
    assert_eq!(d.0[0].message, "the file is not valid UTF-8 (byte 0xff)");
    assert_eq!((d.0[0].line, d.0[0].column), (3, 8));
    let d = file(b"\xc3").unwrap_err();
    assert_eq!((d.0[0].line, d.0[0].column), (1, 1));
}

#[test]
fn a_10_mb_line() {
    let long = "a".repeat(10_000_000);
    let d = parse_pipeline(&long, &testing::catalog()).unwrap_err();
    assert_eq!(d.0[0].message, format!("unknown proxy `{}...`", "a".repeat(37)));
    assert!(d.to_string().len() < 1000);

    let list = format!("[{}1]", "1, ".repeat(3_000_000));
    let d = parse_pipeline(&list, &testing::catalog()).unwrap_err();
    assert!(d.to_string().len() < 1000);

    let src = format!("[train]\nlr = {}\n", "9".repeat(10_000_000));
    let d = file(src.as_bytes()).unwrap_err();
    assert!(d.0[0].message.starts_with("integer `999"), "{}", d.0[0].message);
    assert!(d.to_string().len() < 1000);

    let src = format!("[train]\nlr = \"{}", "x".repeat(10_000_000));
    let d = file(src.as_bytes()).unwrap_err();
    assert_eq!(d.0[0].message, "unterminated string");
}

#[test]
fn many_bad_lines_are_capped() {
    let src = "x = 1\n".repeat(10_000);
    let d = file(src.as_bytes()).unwrap_err();
    assert_eq!(d.0.len(), amm_dsl::diagnostic::MAX_DIAGNOSTICS);
    assert_eq!(d.0.last().unwrap().message, "9951 more errors not shown");
}

fn alternatives(n: usize) -> String {
    let items: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
    format!("{{{}}}", items.join(", "))
}

fn pipeline_err(src: &str) -> Diagnostics {
    match parse_pipeline(src, &testing::catalog()) {
        Ok(v) => panic!("accepted, {} pipelines", v.len()),
        Err(d) => d,
    }
}

#[test]
fn grids_are_bounded() {
    let a = alternatives(101);
    let d = pipeline_err(&format!("deepfool(l2) |> avg |> exp({a}, {a}, {a})"));
    assert_eq!(d.0[0].message, "the pipeline expands to 1030301 alternatives, more than 100000");
    let huge = format!("deepfool(l2) |> {}", vec!["{avg, min}"; 70].join(" |> "));
    let d = pipeline_err(&huge);
    assert_eq!(d.0[0].message, "the pipeline expands to more than 18446744073709551615 alternatives, more than 100000");

    let ten = alternatives(10);
    let src = format!(
        "experiment.seeds = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n[train]\nlr = {ten}\nepochs = {ten}\nbatch = {ten}\n[eval]\niters = {}\n",
        alternatives(11)
    );
    let d = match file(src.as_bytes()) {
        Ok(g) => panic!("accepted, {} cells", g.cells.len()),
        Err(d) => d,
    };
    assert_eq!(d.0.len(), 1);
    assert_eq!(d.0[0].message, "the grid has 110000 cells, more than 100000");
    assert_eq!(d.0[0].help.as_deref(), Some("axes: train.epochs (10) x train.batch (10) x train.lr (10) x eval.iters (11) x seeds (10)"));
    assert_eq!((d.0[0].line, d.0[0].column), (7, 9));
    // Just under the bound is fine.
    let src = format!("[train]\nlr = {}\nepochs = {}\n", alternatives(1000), alternatives(100));
    assert_eq!(file(src.as_bytes()).unwrap().cells.len(), 100_000);
}

#[test]
fn random_junk_gets_errors() {
    for junk in ["\u{0}\u{1}\u{7f}", "|>|>|>", "]]]", "=====", "\"", "#", "include", "[", "[]", "[a.b]", "a.b.c = 1", "include 5"] {
        let _ = parse_pipeline(junk, &testing::catalog());
        let _ = file(junk.as_bytes());
    }
    let d = file(b"\x00\x01 = 2").unwrap_err();
    assert!(d.to_string().contains('\u{fffd}'), "{d}");
}

#[test]
fn a_seed_axis_beyond_the_grid_bound_is_located() {
    // 100,001 seeds: the only axis; once a panic ("a grid this large has an axis").
    let seeds: Vec<String> = (0..=100_000).map(|i| i.to_string()).collect();
    let src = format!("[train]\nepochs = 1\n\n[experiment]\nseeds = [{}]\n", seeds.join(", "));
    let t = Instant::now();
    let d = file(src.as_bytes()).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(d.0.len(), 1, "{d}");
    assert_eq!(d.0[0].message, "the grid has 100001 cells, more than 100000");
    assert_eq!(d.0[0].help.as_deref(), Some("axes: seeds (100001)"));
    assert_eq!((d.0[0].file.as_str(), d.0[0].line, d.0[0].column), ("h.amm", 5, 9));
    // The seeds and a key's alternatives: the wider axis carries the error.
    let src = format!("experiment.seeds = [{}]\n[train]\nlr = {{0.1, 0.01}}\n", seeds[..60_000].join(", "));
    let d = file(src.as_bytes()).unwrap_err();
    assert_eq!(d.0[0].help.as_deref(), Some("axes: train.lr (2) x seeds (60000)"));
    assert_eq!((d.0[0].line, d.0[0].column), (1, 20));
    // As an override, and with `amm train --seeds` style lists.
    let d = experiment_from_overrides(&[format!("experiment.seeds=[{}]", seeds.join(","))], &testing::catalog()).unwrap_err();
    assert_eq!((d.0[0].file.as_str(), d.0[0].line, d.0[0].column), (d.0[0].file.as_str(), 1, 18));
    assert!(d.0[0].file.starts_with("--set experiment.seeds=[0,1,2"), "{}", d.0[0].file);
    // 100,000 distinct seeds are fine (and checked for duplicates in linear time).
    let t = Instant::now();
    let src = format!("experiment.seeds = [{}]\n", seeds[..100_000].join(", "));
    assert_eq!(file(src.as_bytes()).unwrap().cells.len(), 100_000);
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
}

#[test]
fn threads_are_bounded() {
    let d = file(b"[train]\nthreads = 100000\n").unwrap_err();
    assert_eq!(d.0[0].message, format!("`train.threads` must be an integer in [0, {MAX_THREADS}], got `100000`"));
    assert!(d.0[0].help.as_deref().unwrap().starts_with("0 uses every core"), "{d}");
    assert_eq!((d.0[0].line, d.0[0].column), (2, 11));
    for ok in ["0", "2", &MAX_THREADS.to_string()] {
        let g = file(format!("[train]\nthreads = {ok}\n").as_bytes()).unwrap();
        assert_eq!(g.cells[0].config.train.threads.to_string(), ok);
    }
}

/// The model of `arch` checked with [`testing::sized_catalog`] (amm-core's rule for `mlp`).
fn model_err(src: &str) -> Diagnostics {
    experiment_from_source(Path::new("m.amm"), src.as_bytes(), &[], &testing::sized_catalog()).unwrap_err()
}

#[test]
fn oversized_models_are_refused_at_the_argument() {
    // The width at fault, in every way an argument can be written.
    for (src, col) in [
        ("[model]\narch = mlp(widths=[9223372036854775807])\n", 20),
        ("[model]\narch = mlp(widths=[64, 100000000], act=tanh)\n", 24),
        ("[model]\narch = mlp([64, 0])\n", 17),
        ("[model]\narch = mlp(act, [-3])\n", 18),
        ("[model]\narch = mlp(dropout=0.5, widths = [\n  64,\n  2000000])\n", 3),
    ] {
        let d = model_err(src);
        assert_eq!(d.0.len(), 1, "{src}\n{d}");
        assert!(d.0[0].message.starts_with("a layer width of "), "{d}");
        assert_eq!(d.0[0].help.as_deref(), Some(format!("each of `widths` is a number of units, from 1 to {MAX_LAYER_WIDTH}").as_str()));
        assert_eq!(d.0[0].column, col, "{src}\n{d}");
    }
    // Too many parameters for the data: the model, naming the dataset.
    let d = model_err("[data]\nname = digits\n[model]\narch = mlp(widths=[1000000, 3000])\n");
    assert_eq!(d.0[0].message, "the model has 3065033010 trainable parameters for digits (inputs 1x8x8, 10 classes), more than 2147483648");
    assert_eq!((d.0[0].line, d.0[0].column), (4, 8));
    // Without a known shape the count is a lower bound, and alternatives are located one by one.
    let d = model_err("[data]\nname = csv\n[model]\narch = {mlp([800]), mlp([1000000, 1000000, 1000000])}\n");
    assert_eq!(d.0.len(), 1, "{d}");
    assert!(d.0[0].message.starts_with("the model has at least 2000006000002 trainable parameters"), "{d}");
    assert_eq!((d.0[0].line, d.0[0].column), (4, 21));
    // Large but buildable models pass.
    let g = experiment_from_source(Path::new("m.amm"), b"model.arch = mlp([1000000])\n", &[], &testing::sized_catalog()).unwrap();
    assert_eq!(g.cells.len(), 1);
}

fn include_err(dir: &Path, target: &str) -> Diagnostics {
    let main = dir.join("main.amm");
    std::fs::write(&main, format!("# top\n[train]\nepochs = 2\n  include \"{target}\"\n")).unwrap();
    // A blocking include must not hang the test: load on another thread and time it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(load_experiment(&main, &[], &testing::catalog()));
    });
    let r = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| panic!("including {target} did not return in 10 s"));
    let d = r.unwrap_err();
    assert_eq!(d.0.len(), 1, "{d}");
    assert!(d.0[0].file.ends_with("main.amm"), "{d}");
    assert_eq!((d.0[0].line, d.0[0].column), (4, 11), "{d}");
    d
}

#[cfg(unix)]
#[test]
fn includes_are_regular_files_of_bounded_size() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.amm");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    let d = include_err(dir.path(), "fifo.amm");
    assert!(d.0[0].message.starts_with("cannot include `") && d.0[0].message.ends_with("fifo.amm`: it is a FIFO"), "{d}");
    assert!(d.0[0].help.as_deref().unwrap().contains("regular files"), "{d}");

    let d = include_err(dir.path(), "/dev/zero");
    assert_eq!(d.0[0].message, "cannot include `/dev/zero`: it is a device");
    let d = include_err(dir.path(), ".");
    assert!(d.0[0].message.ends_with(": it is a directory"), "{d}");

    std::fs::write(dir.path().join("big.amm"), "# padding\n".repeat(120_000)).unwrap();
    let d = include_err(dir.path(), "big.amm");
    assert!(d.0[0].message.ends_with("big.amm` is larger than 1 MiB (1200000 bytes)"), "{d}");
    assert_eq!(
        d.0[0].help.as_deref(),
        Some(format!("a spec file holds at most {MAX_SPEC_BYTES} bytes; split a grid this large into several experiments").as_str())
    );

    // Just under the bound, and a link to a regular file, are read.
    std::fs::write(dir.path().join("ok.amm"), format!("[train]\nlr = 0.5\n{}", "#".repeat(MAX_SPEC_BYTES as usize - 17))).unwrap();
    std::os::unix::fs::symlink(dir.path().join("ok.amm"), dir.path().join("link.amm")).unwrap();
    std::fs::write(dir.path().join("main.amm"), "include \"link.amm\"\n").unwrap();
    let g = load_experiment(&dir.path().join("main.amm"), &[], &testing::catalog()).unwrap();
    assert_eq!(g.cells[0].config.train.lr, 0.5);

    // The file named on the command line may be a pipe or a device, read up to the bound.
    let d = load_experiment(Path::new("/dev/zero"), &[], &testing::catalog()).unwrap_err();
    assert_eq!(d.0[0].message, "`/dev/zero` is larger than 1 MiB");
    let d = load_experiment(&dir.path().join("big.amm"), &[], &testing::catalog()).unwrap_err();
    assert!(d.0[0].message.ends_with("is larger than 1 MiB (1200000 bytes)"), "{d}");
}

/// Runs `f`, failing if it takes more than `secs` seconds (a debug build on a loaded machine:
/// the bounds are generous, the failures they catch took minutes or hours).
#[track_caller]
fn quick<T>(secs: u64, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let r = f();
    assert!(t.elapsed() < Duration::from_secs(secs), "took {:?}", t.elapsed());
    r
}

#[test]
fn many_errors_on_one_long_line_are_located_quickly() {
    // 100,000 errors on one 1.3 MB line: locating each took time in the line's length.
    let src = format!("deepfool(l2) |> exp{}", " |> weight(1)".repeat(100_000));
    let d = quick(10, || parse_pipeline(&src, &testing::catalog()).unwrap_err());
    assert_eq!(d.0.len(), amm_dsl::diagnostic::MAX_DIAGNOSTICS);
    assert_eq!((d.0[0].message.as_str(), d.0[0].line, d.0[0].column), ("`weight` follows `weight`", 1, 37));
    assert_eq!(d.0.last().unwrap().message, "99950 more errors not shown");
    let file = format!("[reg]\npipeline = {src}\n");
    let d = quick(10, || file_err_of(&file));
    assert_eq!((d.0[0].line, d.0[0].column), (2, 48));
    assert_eq!(d.0.last().unwrap().message, "99950 more errors not shown");
}

fn file_err_of(src: &str) -> Diagnostics {
    file(src.as_bytes()).unwrap_err()
}

#[test]
fn alternatives_of_long_values_are_bounded() {
    // 1,024 alternatives of a 20,000-stage pipeline: 40 million parts to expand and check (this
    // ran for more than 15 minutes).
    let src = format!("deepfool(l2, 5){} |> exp{}", " |> {avg, min}".repeat(10), " |> weight(1)".repeat(20_000));
    let d = quick(10, || parse_pipeline(&src, &testing::catalog()).unwrap_err());
    let message =
        format!("the pipeline expands to 1024 alternatives of up to 40015 parts each, more than the {MAX_EXPANDED_PARTS} parts amm checks");
    assert_eq!(d.messages(), [message.as_str()]);
    assert_eq!((d.0[0].line, d.0[0].column), (1, 1));
    let d = quick(10, || file_err_of(&format!("[train]\nlr = {{0.1, 0.2}}\n[reg]\npipeline = {src}\n")));
    assert_eq!(d.0.len(), 1);
    assert!(d.0[0].message.starts_with("the value expands to 1024 alternatives"), "{d}");
    assert_eq!((d.0[0].line, d.0[0].column), (4, 12));
    // The parts of every axis count: two axes of 300 alternatives of 8,000 parts are each
    // within the bound, and beyond it together.
    let three_hundred = (1..=300).map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
    let pipeline = format!("[reg]\npipeline = deepfool(l2){} |> exp(c={{{three_hundred}}})\n", " |> normalize".repeat(8000));
    let model = format!("[model]\narch = mlp(widths=[{}{{{three_hundred}}}])\n", "1, ".repeat(8000));
    let d = quick(10, || file_err_of(&pipeline));
    assert_eq!(d.0[0].message, "`normalize` is given twice");
    assert!(file(model.as_bytes()).is_ok());
    let d = quick(10, || file_err_of(&format!("{pipeline}{model}")));
    assert!(d.0[0].message.starts_with("the value expands to 300 alternatives of up to 80"), "{d}");
    assert_eq!(d.0.len(), 1);
}

#[test]
fn a_mistake_in_many_alternatives_is_reported_once_and_quickly() {
    // Found by tests/fuzz.rs: 49,152 alternatives with a dozen mistakes each were 600,000
    // diagnostics, sorted and deduplicated at the end.
    let src = format!(
        "[reg]\npipeline = deepfool(l2, 5){} |> {{lin(c=1, d=1), inv(c=1, d=1), exp(c=1, d=0.5)}} |> weight(32)\n",
        "\n    |> {avg, min(class, 0.2)}".repeat(14)
    );
    let d = quick(20, || file_err_of(&src));
    assert_eq!(d.0.len(), 26, "{d}");
    assert!(d.0.iter().all(|x| x.message.starts_with("a second aggregation")), "{d}");
    let mut places: Vec<(usize, usize)> = d.0.iter().map(|x| (x.line, x.column)).collect();
    places.dedup();
    assert_eq!(places.len(), 26, "each mistake once: {d}");
}
