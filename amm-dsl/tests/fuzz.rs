//! Fuzzing the shipped specs and pipelines: random mutations (byte flips, deletions, grammar
//! tokens, duplicated lines, huge numbers, deep nesting) must never panic or hang, and every
//! error they cause must be located: a file named, a line and a column inside its text.
//!
//! 256 cases per test by default (a few seconds in debug); `PROPTEST_CASES=100000 cargo test -p
//! amm-dsl --test fuzz --release` runs a longer hunt.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use amm_dsl::{experiment_from_overrides, experiment_from_source, load_experiment, parse_pipeline_from, testing, Diagnostics};
use proptest::prelude::*;
use proptest::sample::Index;

/// The most a single case may take. Nearly all take milliseconds; a mutation that multiplies a
/// shipped grid up to the bounds (100,000 cells, 4,000,000 parts) is checked in 1 to 4 s in a
/// debug build on a loaded 2-core machine.
const CASE_LIMIT: Duration = Duration::from_secs(10);

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
}

/// Every `.amm` file under `specs/`, with its text (read once).
fn shipped_specs() -> &'static [(PathBuf, String)] {
    static SPECS: OnceLock<Vec<(PathBuf, String)>> = OnceLock::new();
    SPECS.get_or_init(read_specs)
}

fn read_specs() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "amm") {
                let text = std::fs::read_to_string(&p).unwrap();
                out.push((p, text));
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs"), &mut out);
    assert!(out.len() >= 9, "the shipped specs are missing: {out:?}");
    out
}

/// Pipelines as people write them, and every pipeline of the shipped specs in canonical form
/// (computed once).
fn shipped_pipelines() -> &'static [String] {
    static PIPELINES: OnceLock<Vec<String>> = OnceLock::new();
    PIPELINES.get_or_init(collect_pipelines)
}

fn collect_pipelines() -> Vec<String> {
    let mut out: Vec<String> = [
        "deepfool(l2, 5) |> min(class, 0.2) |> exp(c=2, d=1) |> weight(32)",
        "deepfool(l2, 5) |> avg |> normalize |> exp(c=25, d=5) |> weight(15)",
        "deepfool(l2, 5, hog=false) |> avg |> exp(c=2, d=1)",
        "linear(l2) |> avg |> hinge(1.0)",
        "none",
        "deepfool(l2, 5) |> {avg, min(class, 0.2)} |> {lin(1, 1), inv(1, 1), exp(2, 1)}",
        "deepfool(l2) |> {avg, min(class, {0.1, 0.2})} |> exp",
        "{none, deepfool(l2, 5) |> avg |> exp(2, 1)}",
        "deepfool(l2) |> {avg |> normalize, min} |> exp",
        "deepfool(linf, iters=3, overshoot=0.02, candidates=10, chain=authors, failed=keep)\n  |> min(frac=.5) # comment\n  |> lin(clip=none)",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (path, _) in shipped_specs() {
        if let Ok(grid) = load_experiment(path, &[], &testing::catalog()) {
            for cell in grid.cells {
                let p = cell.config.reg.map_or_else(|| "none".to_string(), |p| p.to_string());
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
    }
    out
}

/// Pieces of the language (and of hostile input) that insertions draw from.
#[rustfmt::skip]
const TOKENS: &[&str] = &[
    "(", ")", "[", "]", "{", "}", ",", "=", "|>", "|", ">", "\"", "#", "\n", "\r\n", " ", "\t", ".", "-", "+", "\\", "\0", "é",
    "\u{202e}", "\u{fffd}", "include \"base.amm\"\n", "include \"table1.amm\"\n", "include \"\"\n", "include \".\"\n",
    "include \"/dev/zero\"\n", "include \"/nonexistent/x.amm\"\n", "include", "[train]\n", "[reg]\n", "[model]\n", "[bogus]\n",
    "[experiment]\n", "train.lr = ", "experiment.seeds = [0, 1]\n", "experiment.seeds = {0, 1}\n", "seeds = []\n", "threads = ",
    "train.threads = 100000\n", "model.arch = ", "arch = mlp(widths=[9223372036854775807])\n", "mlp(widths=[100000000])",
    "widths=[", "mlp", "lenet", "{a, b}", "{1, 2, 3}", "{}", "[]", "()", "none", "normalize", "weight(", "weight(32)",
    "deepfool(l2, 5)", "min(class, 0.2)", "exp(c=2, d=1)", "step(milestones=[50, 80], gamma=0.1)", "all", "true", "false",
    "c=", "=2", "l2", "\"a \\\"b\\\"\"", "\"unterminated", "0", "1", "-1", ".5", "1e-3", "2.",
];

/// Numbers at and beyond the edges of i64, u64, f64 and the limits.
const HUGE: &[&str] = &[
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
    "99999999999999999999999999999999999999999",
    "1e308",
    "1e309",
    "-1e309",
    "1e-400",
    "4294967296",
    "100001",
    "1000001",
    "2147483649",
    "0.00000000000000000000000000001",
];

/// One mutation; positions are taken modulo the text length when applied.
#[derive(Clone, Debug)]
enum Edit {
    /// Flip one bit of one byte.
    Flip(usize, u8),
    /// Delete up to `n` bytes.
    Delete(usize, usize),
    /// Insert a token of the language (or of hostile input).
    Insert(usize, &'static str),
    /// Repeat one line `n` more times.
    Duplicate(usize, usize),
    /// Insert a huge number.
    Huge(usize, &'static str),
    /// Insert `n` opening brackets, closed again (around a `1`) or not.
    Nest(usize, u8, usize, bool),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        1 => (any::<usize>(), 0u8..8).prop_map(|(i, b)| Edit::Flip(i, b)),
        1 => (any::<usize>(), 1usize..40).prop_map(|(i, n)| Edit::Delete(i, n)),
        4 => (any::<usize>(), prop::sample::select(TOKENS)).prop_map(|(i, t)| Edit::Insert(i, t)),
        1 => (any::<usize>(), 1usize..60).prop_map(|(i, n)| Edit::Duplicate(i, n)),
        2 => (any::<usize>(), prop::sample::select(HUGE)).prop_map(|(i, t)| Edit::Huge(i, t)),
        1 => (any::<usize>(), 0u8..3, 1usize..100, any::<bool>()).prop_map(|(i, b, n, c)| Edit::Nest(i, b, n, c)),
    ]
}

fn apply(src: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut b = src.to_vec();
    for e in edits {
        // A position between bytes (0 to len).
        let at = |i: usize, len: usize| i % (len + 1);
        match *e {
            Edit::Flip(i, bit) if !b.is_empty() => {
                let k = i % b.len();
                b[k] ^= 1 << bit;
            }
            Edit::Flip(..) => {}
            Edit::Delete(i, n) => {
                let k = at(i, b.len());
                let end = (k + n).min(b.len());
                b.drain(k..end);
            }
            Edit::Insert(i, t) | Edit::Huge(i, t) => {
                let k = at(i, b.len());
                b.splice(k..k, t.bytes());
            }
            Edit::Duplicate(i, n) => {
                let starts: Vec<usize> =
                    std::iter::once(0).chain(b.iter().enumerate().filter(|(_, &c)| c == b'\n').map(|(k, _)| k + 1)).collect();
                let s = starts[i % starts.len()];
                let e = b[s..].iter().position(|&c| c == b'\n').map_or(b.len(), |p| s + p + 1);
                let mut line = b[s..e].to_vec();
                if !line.ends_with(b"\n") {
                    // The last line, without a newline: the copies go after a new one.
                    line.insert(0, b'\n');
                }
                let copies = line.repeat(n);
                b.splice(e..e, copies);
            }
            Edit::Nest(i, which, n, closed) => {
                let (open, close) = [("{", "}"), ("[", "]"), ("(", ")")][which as usize % 3];
                let k = at(i, b.len());
                let mut ins = open.repeat(n);
                if closed {
                    ins.push('1');
                    ins.push_str(&close.repeat(n));
                }
                b.splice(k..k, ins.into_bytes());
            }
        }
    }
    b
}

/// Runs `f` on another thread: a panic comes back with its message, a hang as an error after
/// five times [`CASE_LIMIT`] (a case slower than the limit but finished fails the elapsed-time
/// assertion instead, with its time).
fn bounded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> Result<(T, Duration), TestCaseError> {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let t = Instant::now();
        let r = f();
        let _ = tx.send((r, t.elapsed()));
    });
    match rx.recv_timeout(CASE_LIMIT * 5) {
        Ok(r) => Ok(r),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            let payload = handle.join().err();
            let msg = payload
                .as_ref()
                .and_then(|p| p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())))
                .unwrap_or_default();
            Err(TestCaseError::fail(format!("{what}: panicked: {msg}")))
        }
        Err(mpsc::RecvTimeoutError::Timeout) => Err(TestCaseError::fail(format!("{what}: still running after {:?}", CASE_LIMIT * 5))),
    }
}

/// Every diagnostic names a file whose text `text_of` knows, and a line and column inside it.
fn assert_located(d: &Diagnostics, text_of: &dyn Fn(&str) -> Option<String>) -> Result<(), TestCaseError> {
    prop_assert!(!d.0.is_empty(), "an error without diagnostics");
    for diag in &d.0 {
        prop_assert!(!diag.file.is_empty(), "no file: {diag}");
        if diag.line == 0 && diag.message.ends_with(" more errors not shown") {
            continue;
        }
        prop_assert!(diag.line >= 1 && diag.column >= 1, "not located: {diag:?}");
        let text = text_of(&diag.file);
        prop_assert!(text.is_some(), "unknown file {:?}: {diag}", diag.file);
        let text = text.unwrap_or_default();
        let lines: Vec<&str> = text.split('\n').collect();
        prop_assert!(diag.line <= lines.len(), "line {} of {} lines: {diag}", diag.line, lines.len());
        let width = lines[diag.line - 1].chars().count();
        prop_assert!(diag.column <= width + 1, "column {} of a line of {width} characters: {diag}", diag.column);
    }
    Ok(())
}

/// The text of a file a diagnostic names: the mutated file, or a shipped file it included.
fn file_text(root: &Path, mutated: &str, name: &str) -> Option<String> {
    if Path::new(name) == root {
        return Some(mutated.to_string());
    }
    std::fs::read(name).ok().map(|b| String::from_utf8_lossy(&b).into_owned())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn mutated_shipped_specs_get_located_errors(which in any::<Index>(), edits in prop::collection::vec(edit(), 1..8)) {
        let specs = shipped_specs();
        let (path, text) = &specs[which.index(specs.len())];
        let bytes = apply(text.as_bytes(), &edits);
        let (root, src) = (path.clone(), bytes.clone());
        let (result, took) = bounded(&path.display().to_string(), move || {
            experiment_from_source(&root, &src, &[], &testing::sized_catalog())
        })?;
        prop_assert!(took < CASE_LIMIT, "took {took:?}");
        if let Err(d) = result {
            let mutated = String::from_utf8_lossy(&bytes).into_owned();
            assert_located(&d, &|name| file_text(path, &mutated, name))?;
        }
    }

    #[test]
    fn mutated_pipelines_get_located_errors(which in any::<Index>(), edits in prop::collection::vec(edit(), 1..8)) {
        let pipelines = shipped_pipelines();
        let original = &pipelines[which.index(pipelines.len())];
        let text = String::from_utf8_lossy(&apply(original.as_bytes(), &edits)).into_owned();
        let src = text.clone();
        let ((alone, set), took) = bounded(original, move || {
            let catalog = testing::sized_catalog();
            let alone = parse_pipeline_from("<--reg>", &src, &catalog);
            let set = experiment_from_overrides(&[format!("reg.pipeline={src}")], &catalog);
            (alone, set)
        })?;
        prop_assert!(took < CASE_LIMIT, "took {took:?}");
        if let Err(d) = alone {
            assert_located(&d, &|name| (name == "<--reg>").then(|| text.clone()))?;
        }
        if let Err(d) = set {
            assert_located(&d, &|name| name.strip_prefix("--set ").map(str::to_string))?;
        }
    }
}

/// The mutations do what they say (a fuzz whose mutations did nothing would pass anything).
#[test]
fn mutations_mutate() {
    let src = b"a = 1\nb = 2\n";
    assert_eq!(apply(src, &[Edit::Insert(0, "[train]\n")]), b"[train]\na = 1\nb = 2\n");
    assert_eq!(apply(src, &[Edit::Huge(src.len() + 1 + 4, "1e309")]), b"a = 1e3091\nb = 2\n");
    assert_eq!(apply(src, &[Edit::Delete(0, 4)]), b"1\nb = 2\n");
    assert_eq!(apply(src, &[Edit::Delete(12, 4)]), src);
    assert_eq!(apply(src, &[Edit::Duplicate(1, 2)]), b"a = 1\nb = 2\nb = 2\nb = 2\n");
    assert_eq!(apply(b"x", &[Edit::Duplicate(0, 2)]), b"x\nx\nx");
    assert_eq!(apply(src, &[Edit::Nest(4, 0, 3, true)]), b"a = {{{1}}}1\nb = 2\n");
    assert_eq!(apply(src, &[Edit::Nest(4, 2, 2, false)]), b"a = ((1\nb = 2\n");
    assert_eq!(apply(src, &[Edit::Flip(4, 0)]), b"a = 0\nb = 2\n");
    assert_eq!(apply(b"", &[Edit::Flip(4, 0)]), b"");
}
