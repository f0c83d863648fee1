//! Errors: `line:column` and message for each kind of mistake, and full rendered reports as
//! snapshots (`tests/snapshots/`).

use std::path::Path;

use amm_dsl::{experiment_from_overrides, experiment_from_source, parse_pipeline, testing, Diagnostics};

fn pipeline_err(src: &str) -> Diagnostics {
    match parse_pipeline(src, &testing::catalog()) {
        Ok(v) => panic!("`{src}` was accepted: {v:?}"),
        Err(d) => d,
    }
}

fn file_err(src: &str) -> Diagnostics {
    match experiment_from_source(Path::new("specs/x.amm"), src.as_bytes(), &[], &testing::catalog()) {
        Ok(g) => panic!("accepted: {g:?}"),
        Err(d) => d,
    }
}

/// (line, column, message, help) of every diagnostic.
fn located(d: &Diagnostics) -> Vec<(usize, usize, &str, Option<&str>)> {
    d.0.iter().map(|d| (d.line, d.column, d.message.as_str(), d.help.as_deref())).collect()
}

#[track_caller]
fn expect_pipeline(src: &str, line: usize, col: usize, message: &str, help: Option<&str>) {
    let d = pipeline_err(src);
    assert_eq!(located(&d)[0], (line, col, message, help), "{src}\n{d}");
}

#[test]
fn unknown_names_suggest_the_nearest() {
    expect_pipeline(
        "deepfool(l2, 5) |> exq(2, 1)",
        1,
        20,
        "unknown shrinkage `exq`",
        Some("did you mean `exp`? (shrinkages: lin, exp, inv, hinge)"),
    );
    expect_pipeline(
        "deepfol(l2) |> avg |> exp",
        1,
        1,
        "unknown proxy `deepfol`",
        Some("did you mean `deepfool`? (proxies: deepfool, linear)"),
    );
    expect_pipeline(
        "deepfool(l2) |> foo |> exp",
        1,
        17,
        "unknown stage `foo`",
        Some("expected an aggregation (avg, min) or a shrinkage (lin, exp, inv, hinge)"),
    );
    expect_pipeline(
        "deepfool(l2) |> mni(class) |> exp",
        1,
        17,
        "unknown aggregation `mni`",
        Some("did you mean `min`? (aggregations: avg, min)"),
    );
    expect_pipeline("deepfool(l3) |> avg |> exp", 1, 10, "`norm` must be one of l2, linf, l1, got `l3`", Some("did you mean `l2`?"));
}

#[test]
fn argument_mistakes() {
    let sig_exp = Some("parameters: c, d, clip");
    expect_pipeline("deepfool(l2, 5) |> avg |> exp(c=2, e=1)", 1, 36, "`exp` has no parameter `e`", sig_exp);
    expect_pipeline(
        "deepfool(l2, 5) |> min(class, 1.5) |> exp(2, 1)",
        1,
        31,
        "`frac` must be a number in (0, 1], got `1.5`",
        Some("signature: min(by=class, frac=0.2, misclassified=argmax)"),
    );
    let sig_df = "signature: deepfool(norm, iters=5, overshoot=0.02, candidates=10, hog=true, chain=full, failed=drop)";
    expect_pipeline("deepfool(l2, 2.5) |> avg |> exp(2,1)", 1, 14, "`iters` must be an integer >= 1, got `2.5`", Some(sig_df));
    expect_pipeline(
        "deepfool |> avg |> exp(2,1)",
        1,
        1,
        "missing argument `norm` of `deepfool`",
        Some(&format!("`norm` is one of l2, linf, l1; {sig_df}")),
    );
    expect_pipeline(
        "deepfool(l2, 5, 0.02, 10, true, full, drop, 7) |> avg |> exp",
        1,
        45,
        "`deepfool` takes at most 7 arguments, got 8",
        Some(sig_df),
    );
    expect_pipeline("deepfool(l2, norm=l2) |> avg |> exp", 1, 14, "`norm` is given twice", Some(sig_df));
    expect_pipeline(
        "deepfool(iters=3, l2) |> avg |> exp",
        1,
        19,
        "positional argument after a named one",
        Some(&format!("write it as name=value; {sig_df}")),
    );
    expect_pipeline("deepfool(l2) |> avg(1) |> exp", 1, 21, "`avg` takes no arguments", Some("signature: avg"));
    expect_pipeline(
        "deepfool(l2) |> avg |> exp |> weight(0)",
        1,
        38,
        "`lambda` must be a number > 0, got `0`",
        Some("signature: weight(lambda)"),
    );
    expect_pipeline(
        "deepfool(l2) |> avg |> exp |> weight",
        1,
        31,
        "missing argument `lambda` of `weight`",
        Some("`lambda` is a number > 0; signature: weight(lambda)"),
    );
    expect_pipeline(
        "deepfool(l2) |> avg |> exp(c=\"x\")",
        1,
        30,
        "`c` must be a number >= 0, got the string \"x\"",
        Some("signature: exp(c=2, d=1, clip=50)"),
    );
    expect_pipeline("deepfool(l2, [1, 2]) |> avg |> exp", 1, 14, "`iters` must be an integer >= 1, got `[1, 2]`", Some(sig_df));
    expect_pipeline("deepfool(l2, avg(1)) |> avg |> exp", 1, 14, "`iters` must be an integer >= 1, got `avg(1)`", Some(sig_df));
}

#[test]
fn stage_order_and_kinds() {
    expect_pipeline(
        "deepfool(l2) |> avg",
        1,
        20,
        "a shrinkage (lin, exp, inv, hinge) must follow the aggregation",
        Some("end the pipeline with e.g. `|> exp(2, 1)`"),
    );
    expect_pipeline(
        "deepfool(l2)",
        1,
        13,
        "a shrinkage (lin, exp, inv, hinge) must follow the proxy",
        Some("end the pipeline with e.g. `|> exp(2, 1)`"),
    );
    expect_pipeline(
        "avg |> exp",
        1,
        1,
        "a pipeline starts with a proxy, not an aggregation (`avg`)",
        Some("e.g. `deepfool(l2, 5) |> avg` (proxies: deepfool, linear)"),
    );
    expect_pipeline(
        "deepfool(l2) |> exp |> avg",
        1,
        24,
        "the aggregation must come before the shrinkage",
        Some("proxy |> aggregation |> shrinkage |> weight"),
    );
    expect_pipeline(
        "deepfool(l2) |> avg |> min |> exp",
        1,
        24,
        "a second aggregation `min`",
        Some("a pipeline has at most one aggregation"),
    );
    expect_pipeline("deepfool(l2) |> avg |> exp |> lin", 1, 31, "a second shrinkage `lin`", Some("a pipeline has exactly one shrinkage"));
    expect_pipeline("deepfool(l2) |> linear(l2) |> exp", 1, 17, "a second proxy `linear`", Some("a pipeline has exactly one proxy, first"));
    expect_pipeline(
        "deepfool(l2) |> weight(3) |> exp",
        1,
        17,
        "`weight` must come after the shrinkage",
        Some("it is the last stage: ... |> exp(2, 1) |> weight(32)"),
    );
    expect_pipeline(
        "deepfool(l2) |> avg |> exp |> weight(2) |> normalize",
        1,
        44,
        "`normalize` follows `weight`",
        Some("`weight(lambda)` must be the last stage"),
    );
    expect_pipeline(
        "deepfool(l2) |> avg |> exp |> normalize",
        1,
        31,
        "`normalize` must come before the shrinkage",
        Some("it changes the margin the shrinkage sees: proxy |> aggregation |> normalize |> shrinkage"),
    );
    expect_pipeline(
        "deepfool(l2) |> avg |> none",
        1,
        24,
        "`none` is the empty regularizer and stands alone",
        Some("write `none` by itself, or as an alternative: `{none, ...}`"),
    );
    expect_pipeline(
        "deepfool(l2) |> mlp |> exp",
        1,
        17,
        "`mlp` is a model, not a stage of a regularizer",
        Some("expected an aggregation (avg, min) or a shrinkage (lin, exp, inv, hinge)"),
    );
    expect_pipeline(
        "deepfool(l2) |> 5 |> exp",
        1,
        17,
        "expected a stage, found the integer 5",
        Some("stages are names or calls, e.g. `avg` or `exp(2, 1)`"),
    );
}

#[test]
fn syntax_errors() {
    expect_pipeline("deepfool(l2 5)", 1, 13, "expected `,` or `)`, found `5`", None);
    expect_pipeline("deepfool(l2) avg", 1, 14, "expected `|>`, found `avg`", None);
    expect_pipeline("{avg min}", 1, 6, "expected `,` or `}`, found `min`", None);
    expect_pipeline("deepfool(l2) |>", 1, 16, "expected a value, found end of input", None);
    expect_pipeline("exp(c=)", 1, 7, "expected a value, found `)`", None);
    expect_pipeline("deepfool(l2) |> avg |> exp(2, 1", 1, 27, "unclosed `(`", Some("add `)` to close it"));
    expect_pipeline("deepfool(l2)) |> avg", 1, 13, "unmatched `)`", None);
    expect_pipeline("deepfool(l2] |> avg", 1, 12, "mismatched `]`", Some("expected `)` to close the `(` at 1:9"));
    expect_pipeline("deepfool(\"l2) |> avg", 1, 10, "unterminated string", Some("close it with `\"` on the same line"));
    expect_pipeline("deepfool(l2)\n  |> avg\n  |> exp(2; 1)", 3, 11, "expected `,` or `)`, found `;`", None);
    expect_pipeline(
        "99999999999999999999",
        1,
        1,
        "integer `99999999999999999999` is out of range",
        Some("integers go from -9223372036854775808 to 9223372036854775807"),
    );
    // No rule names leak into messages.
    for src in ["(", "|>", "a b", "[1 2]", "x(=1)", "x = 1", "@", "{}", "a(b c)"] {
        let d = parse_pipeline(src, &testing::catalog()).unwrap_err();
        let text = d.to_string();
        assert!(!text.contains("Rule") && !text.contains('_') || text.contains("e.g."), "{src}: {text}");
    }
}

#[test]
fn empty_pipeline() {
    expect_pipeline("", 1, 1, "empty pipeline", Some("write e.g. `deepfool(l2, 5) |> avg |> exp(2, 1)`, or `none`"));
    expect_pipeline("  # nothing\n", 1, 1, "empty pipeline", Some("write e.g. `deepfool(l2, 5) |> avg |> exp(2, 1)`, or `none`"));
}

#[test]
fn all_semantic_errors_are_reported_together() {
    let d = pipeline_err("deepfool(l3, 0) |> min(class, 2) |> exp(e=1)");
    let messages = d.messages();
    assert_eq!(
        messages,
        [
            "`norm` must be one of l2, linf, l1, got `l3`",
            "`iters` must be an integer >= 1, got `0`",
            "`frac` must be a number in (0, 1], got `2`",
            "`exp` has no parameter `e`",
        ]
    );
    // One mistake inside alternatives is reported once, not once per cell.
    let d = pipeline_err("deepfool(l2, {1, 2, 3}) |> avg |> exq");
    assert_eq!(d.0.len(), 1);
}

#[test]
fn file_errors_one_per_bad_line() {
    let src = "\
[train]
epochz = 3
lr = -1
lr 0.1
[trian]
x = 1
[data]
name = fashion-mnst
[reg]
pipeline = deepfool(l2, 5) |> exq(2, 1)
[model]
arch = mlp(widths=[256, x])
epochs = 3
";
    let d = file_err(src);
    let found: Vec<(usize, usize, &str)> = located(&d).into_iter().map(|(l, c, m, _)| (l, c, m)).collect();
    assert_eq!(
        found,
        [
            (2, 1, "unknown key `epochz` in [train]"),
            (3, 6, "`train.lr` must be a number > 0, got `-1`"),
            (4, 4, "expected `=`, found `0.1`"),
            (5, 2, "unknown section `trian`"),
            (8, 8, "unknown dataset `fashion-mnst`"),
            (10, 31, "unknown shrinkage `exq`"),
            (12, 25, "`widths` must be a list of integers, got `x`"),
            (13, 1, "unknown key `epochs` in [model]"),
        ]
    );
    assert!(d.0.iter().all(|d| d.file == "specs/x.amm"));
    assert_eq!(d.0[0].help.as_deref(), Some("did you mean `epochs`? (keys of [train]: epochs, batch, optimizer, lr, schedule, momentum, weight_decay, clip, loss, dtype, threads, init)"));
    assert_eq!(d.0[7].help.as_deref(), Some("`epochs` belongs to [train]: write `train.epochs`; (keys of [model]: arch)"));
}

#[test]
fn more_file_errors() {
    let d = file_err("epochs = 3\n");
    assert_eq!(located(&d)[0], (1, 1, "key `epochs` is outside a section", Some("put it under [train], or write `train.epochs`")));
    let d = file_err("trian.lr = 3\n");
    assert_eq!(located(&d)[0].2, "unknown section `trian`");
    assert_eq!(located(&d)[0].1, 1);
    let d = file_err("[train]\nschedule = stpe(milestones=[5])\n");
    assert_eq!(located(&d)[0], (2, 12, "unknown schedule `stpe`", Some("did you mean `step`? (schedules: constant, step, cosine)")));
    let d = file_err("[train]\nschedule = step(milestones=[80, 50])\n");
    assert_eq!(located(&d)[0].2, "milestones must be increasing epochs >= 1");
    let d = file_err("[model]\narch = deepfool(l2)\n");
    assert_eq!(located(&d)[0].2, "`deepfool` is a proxy, not a model");
    let d = file_err("[model]\narch = mlq\n");
    assert_eq!(located(&d)[0].3, Some("did you mean `mlp`? (models: linear, mlp, lenet, liunet, liunet64, liunet96, convnet, nin, resnet20, resnet56, resnet, densenet40, densenet)"));
    let d = file_err("experiment.seeds = {1, 2}\n");
    assert_eq!(located(&d)[0].2, "`experiment.seeds` is a list, not alternatives");
    let d = file_err("experiment.seeds = [0, 1, 0]\n");
    assert_eq!(located(&d)[0], (1, 27, "seed 0 is listed twice", None));
    let d = file_err("[train]\noptimizer = adamw\n");
    assert_eq!(located(&d)[0], (2, 13, "unknown optimizer `adamw`", Some("did you mean `adam`? (optimizers: sgd, adam)")));
    let d = file_err("[data]\ntrain_size = 0\n");
    assert_eq!(located(&d)[0], (2, 14, "`data.train_size` must be an integer >= 1, got `0`", Some("or `all`")));
    let d = file_err("[reg]\npipeline = {none, deepfool(l2) |> avg}\n");
    assert_eq!(located(&d)[0].2, "a shrinkage (lin, exp, inv, hinge) must follow the aggregation");
    let d = file_err("[train]\nlr = [1, 2\nepochs = 3\nbatch = (\n");
    assert_eq!(located(&d).iter().map(|x| (x.0, x.1, x.2)).collect::<Vec<_>>(), [(2, 6, "unclosed `[`"), (4, 9, "unclosed `(`")]);
}

#[test]
fn override_errors_name_the_flag() {
    let cat = testing::catalog();
    let d = experiment_from_overrides(&["train.epochs=x".into()], &cat).unwrap_err();
    assert_eq!(d.0[0].file, "--set train.epochs=x");
    assert_eq!(located(&d)[0], (1, 14, "`train.epochs` must be an integer >= 1, got `x`", None));
    let d = experiment_from_overrides(&["epochs=3".into()], &cat).unwrap_err();
    assert_eq!(located(&d)[0], (1, 1, "`epochs` needs its section", Some("write `train.epochs=3`")));
    let d = experiment_from_overrides(&["train.epoch=3".into()], &cat).unwrap_err();
    assert_eq!(located(&d)[0].2, "unknown key `epoch` in [train]");
    assert!(located(&d)[0].3.unwrap().starts_with("did you mean `epochs`?"));
    let d = experiment_from_overrides(&["train.epochs".into()], &cat).unwrap_err();
    assert_eq!(located(&d)[0].2, "expected `key=value`");
    let d = experiment_from_overrides(&["reg.pipeline=deepfool(l2,5) |> avg |> exq(2,1)".into()], &cat).unwrap_err();
    assert_eq!(located(&d)[0], (1, 39, "unknown shrinkage `exq`", Some("did you mean `exp`? (shrinkages: lin, exp, inv, hinge)")));
}

// ============================================================================================
// Full rendered reports
// ============================================================================================

fn render_pipeline(src: &str) -> String {
    pipeline_err(src).to_string()
}

#[test]
fn snapshot_unknown_shrinkage() {
    insta::assert_snapshot!(render_pipeline("deepfool(l2, 5) |> exq(2, 1)"));
}

#[test]
fn snapshot_bad_range_and_unknown_parameter() {
    insta::assert_snapshot!(render_pipeline("deepfool(l2, 5) |> min(class, 1.5) |> exp(c=2, e=1)"));
}

#[test]
fn snapshot_missing_shrinkage() {
    insta::assert_snapshot!(render_pipeline("deepfool(l2, 5) |> min(class, 0.2)"));
}

#[test]
fn snapshot_syntax_error_in_a_multiline_pipeline() {
    insta::assert_snapshot!(render_pipeline("deepfool(l2, 5)\n  |> avg\n  |> exp(c=2 d=1)"));
}

#[test]
fn snapshot_experiment_file_with_several_mistakes() {
    let src = "\
# MNIST ablation
include \"missing.amm\"

[train]
epochz = 100
lr = {0.01, -0.005}

[reg]
pipeline = deepfool(l2, 5) |> {avg, mni(class, 0.2)} |> exp(c=2, d=1) |> weight(32)
";
    let d = experiment_from_source(Path::new("specs/ablation.amm"), src.as_bytes(), &["train.epochs=ten".into()], &testing::catalog())
        .unwrap_err();
    // The include error carries the OS message; keep the snapshot portable.
    let text = d.to_string().replace("No such file or directory (os error 2)", "<not found>");
    insta::assert_snapshot!(text);
}

#[test]
fn snapshot_nesting_too_deep() {
    let src = format!("deepfool(l2) |> {}", "{".repeat(100));
    insta::assert_snapshot!(render_pipeline(&src));
}

#[test]
fn keys_spelled_as_other_tools_do_get_a_suggestion() {
    let cat = amm_dsl::testing::catalog();
    for (written, meant) in [("train.batchsize=5", "batch"), ("train.batch_size=5", "batch"), ("train.weightDecay=0.1", "weight_decay")] {
        let err = amm_dsl::experiment_from_overrides(&[written.to_string()], &cat).unwrap_err().to_string();
        assert!(err.contains(&format!("did you mean `{meant}`?")), "{written}: {err}");
    }
}

/// `eval.attacks` is checked against the catalog's attacks where it is written: inside its string
/// (the caret under the attack, not the key) or as a list.
#[test]
fn attack_lists_in_files_are_located() {
    let d = file_err("[eval]\nattacks = \"fmn, apgd(restarts=2), cw\"\n");
    assert_eq!((located(&d)[0].0, located(&d)[0].1, located(&d)[0].2), (2, 35, "unknown attack `cw`"), "{d}");
    let d = file_err("[eval]\nattacks = [fmn(stepz=3)]\n");
    assert_eq!((located(&d)[0].0, located(&d)[0].1, located(&d)[0].2), (2, 16, "`fmn` has no parameter `stepz`"), "{d}");
    // with an escape before the mistake, the whole string is underlined, from its quote
    let d = file_err("[eval]\nattacks = \"fmn(\\t steps=3), cw\"\n");
    assert_eq!((located(&d)[0].0, located(&d)[0].1, located(&d)[0].2), (2, 11, "unknown attack `cw`"), "{d}");
    let d = file_err("[eval]\nattacks = \"fmn, fmn\"\n");
    assert_eq!((located(&d)[0].0, located(&d)[0].1, located(&d)[0].2), (2, 17, "attack `fmn` appears twice in the list"), "{d}");
    // both spellings are stored as the text the trainer builds from
    let ok = |src: &str| {
        experiment_from_source(Path::new("x.amm"), src.as_bytes(), &[], &testing::catalog()).unwrap().cells[0].config.eval.attacks.clone()
    };
    assert_eq!(ok("[eval]\nattacks = \"fmn,apgd(restarts=2)\"\n"), "fmn,apgd(restarts=2)");
    assert_eq!(ok("[eval]\nattacks = [fmn, apgd(restarts=2)]\n"), "fmn, apgd(restarts=2)");
    assert_eq!(ok("[eval]\nattacks = \"\"\n"), "");
}
