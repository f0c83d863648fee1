//! Hostile input: it gets a clear error, never a panic, a stack overflow or a hang.

use std::path::Path;

use amm_dsl::{experiment_from_source, parse_pipeline, testing, Diagnostics, Grid, MAX_DEPTH};

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
