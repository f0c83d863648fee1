//! Property tests: nothing panics, generated valid pipelines are accepted, and every accepted
//! pipeline prints to text that parses back to an equal spec.

use std::path::Path;

use amm_dsl::{experiment_from_overrides, experiment_from_source, parse_pipeline, testing, PipelineSpec};
use proptest::prelude::*;

const VALID_PIPELINES: &[&str] = &[
    "deepfool(l2, 5) |> min(class, 0.2) |> exp(c=2, d=1) |> weight(32)",
    "deepfool(l2, 5) |> avg |> normalize |> exp(c=25, d=5) |> weight(15)",
    "deepfool(l2, 5, hog=false) |> avg |> exp(c=2, d=1)",
    "linear(l2) |> avg |> hinge(1.0)",
    "deepfool(l2, 5) |> {avg, min(class, 0.2)} |> {lin(1, 1), inv(1, 1), exp(2, 1)}",
    "{none, deepfool(linf, {1, 3}) |> avg |> exp(2,1)}  # grid",
];

const VALID_FILE: &str = r#"include "base.amm"
[experiment]
name = "x"
seeds = [0, 1]
[data]
name = fashion-mnist
train_size = {1000, all}
[model]
arch = mlp(widths=[256, 256])
[train]
lr = {0.1, 0.01}
schedule = step(milestones=[50, 80], gamma=0.1)
[reg]
pipeline = deepfool(l2, 5) |> {avg, min(class, 0.2)} |> exp(c=2, d=1) |> weight(32)
"#;

fn mutate(src: &str, edits: &[(usize, u8, char)]) -> String {
    let mut chars: Vec<char> = src.chars().collect();
    for &(pos, op, c) in edits {
        let i = if chars.is_empty() { 0 } else { pos % (chars.len() + 1) };
        match op % 3 {
            0 => chars.insert(i, c),
            1 if i < chars.len() => {
                chars.remove(i);
            }
            _ if i < chars.len() => chars[i] = c,
            _ => chars.push(c),
        }
    }
    chars.into_iter().collect()
}

fn syntax_char() -> impl Strategy<Value = char> {
    prop_oneof![
        prop::sample::select(vec![
            '(', ')', '[', ']', '{', '}', ',', '=', '|', '>', '"', '#', '\n', ' ', '.', '-', 'e', '1', '0', 'a', '\\', '\u{0}', 'é', '\t',
        ]),
        any::<char>(),
    ]
}

/// Every accepted pipeline prints to text that parses back equal.
fn assert_round_trip(p: &PipelineSpec) {
    let text = p.to_string();
    let back = parse_pipeline(&text, &testing::catalog()).unwrap_or_else(|d| panic!("{text}\n{d}"));
    assert_eq!(back.len(), 1, "{text}");
    assert_eq!(back[0].as_ref(), Some(p), "{text}");
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u32..1000).prop_map(|i| i.to_string()),
        (0.0f64..1e3).prop_map(|x| format!("{x}")),
        (1e-9f64..1e-3).prop_map(|x| format!("{x:e}")),
    ]
}

fn arg(name: &'static str, value: String, positional: bool) -> Option<(String, bool)> {
    Some((if positional { value } else { format!("{name}={value}") }, positional))
}

/// Renders `(text, positional)` arguments, positional ones first.
fn call(name: &str, mut args: Vec<Option<(String, bool)>>) -> String {
    let mut args: Vec<(String, bool)> = args.drain(..).flatten().collect();
    // Positional arguments must come first and in order; keep them where they are.
    args.sort_by_key(|(_, positional)| !positional);
    if args.is_empty() {
        name.to_string()
    } else {
        format!("{name}({})", args.into_iter().map(|(a, _)| a).collect::<Vec<_>>().join(", "))
    }
}

prop_compose! {
    fn proxy()(deep in any::<bool>(), norm in prop::sample::select(vec!["l2", "linf", "l1"]), iters in 1u32..20,
               overshoot in number(), cand in 2u32..12, hog in any::<bool>(), keep in any::<bool>(),
               pos in any::<bool>(), mask in any::<u8>()) -> String {
        if deep {
            call("deepfool", vec![
                arg("norm", norm.to_string(), true),
                (mask & 1 != 0).then(|| (if pos { iters.to_string() } else { format!("iters={iters}") }, pos)),
                (mask & 2 != 0).then(|| (format!("overshoot={overshoot}"), false)),
                (mask & 4 != 0).then(|| (format!("candidates={cand}"), false)),
                (mask & 8 != 0).then(|| (format!("hog={hog}"), false)),
                (mask & 16 != 0).then(|| (format!("failed={}", if keep { "keep" } else { "drop" }), false)),
            ])
        } else {
            call("linear", vec![arg("norm", norm.to_string(), !pos), (mask & 1 != 0).then(|| (format!("hog={hog}"), false))])
        }
    }
}

prop_compose! {
    fn aggregation()(which in 0u8..3, frac in 0.001f64..=1.0, all in any::<bool>(), mask in any::<u8>()) -> Option<String> {
        match which {
            0 => None,
            1 => Some("avg".to_string()),
            _ => Some(call("min", vec![
                (mask & 1 != 0).then(|| ("class".to_string(), true)),
                (mask & 2 != 0).then(|| (format!("frac={frac}"), false)),
                (mask & 4 != 0).then(|| (format!("misclassified={}", if all { "all" } else { "argmax" }), false)),
            ])),
        }
    }
}

prop_compose! {
    fn shrinkage()(name in prop::sample::select(vec!["lin", "exp", "inv", "hinge"]), c in number(), d in number(),
                   clip in 0.5f64..100.0, mask in any::<u8>()) -> String {
        if name == "hinge" {
            call(name, vec![(mask & 1 != 0).then(|| (format!("gamma={clip}"), false))])
        } else {
            call(name, vec![
                (mask & 1 != 0).then(|| (c.clone(), true)),
                (mask & 3 == 3).then(|| (d.clone(), true)),
                (mask & 4 != 0).then(|| (format!("clip={clip}"), false)),
            ])
        }
    }
}

prop_compose! {
    fn pipeline()(p in proxy(), a in aggregation(), n in 0u8..3, s in shrinkage(), w in prop::option::of(0.001f64..100.0)) -> String {
        let mut stages = vec![p];
        if n == 1 { stages.push("normalize".into()); }
        if let Some(a) = a { stages.push(a); }
        if n == 2 { stages.push("normalize".into()); }
        stages.push(s);
        if let Some(w) = w { stages.push(format!("weight({w})")); }
        stages.join(" |> ")
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse_pipeline(&text, &testing::catalog());
        let _ = experiment_from_source(Path::new("random.amm"), &bytes, &[], &testing::catalog());
        let _ = experiment_from_overrides(&[text.to_string()], &testing::catalog());
    }

    #[test]
    fn mutated_pipelines_never_panic_and_round_trip(
        which in 0..VALID_PIPELINES.len(),
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), syntax_char()), 0..6),
    ) {
        let src = mutate(VALID_PIPELINES[which], &edits);
        if let Ok(all) = parse_pipeline(&src, &testing::catalog()) {
            for p in all.iter().flatten() {
                assert_round_trip(p);
            }
        } else if let Err(d) = parse_pipeline(&src, &testing::catalog()) {
            let text = d.to_string();
            prop_assert!(!text.contains("Rule::"), "{}", text);
            prop_assert!(d.0.iter().all(|d| d.line >= 1 && d.column >= 1));
        }
    }

    #[test]
    fn mutated_files_never_panic(edits in prop::collection::vec((any::<usize>(), any::<u8>(), syntax_char()), 0..8)) {
        let src = mutate(VALID_FILE, &edits);
        let _ = experiment_from_source(Path::new("/nonexistent/m.amm"), src.as_bytes(), &["train.epochs=2".into()], &testing::catalog());
    }

    #[test]
    fn generated_pipelines_are_accepted_and_round_trip(src in pipeline()) {
        let all = parse_pipeline(&src, &testing::catalog()).unwrap_or_else(|d| panic!("{src}\n{d}"));
        prop_assert_eq!(all.len(), 1);
        let p = all[0].as_ref().expect("not none");
        assert_round_trip(p);
    }

    #[test]
    fn generated_grids_have_the_product_size(a in 1usize..4, b in 1usize..4, seeds in 1usize..4) {
        let lrs: Vec<String> = (1..=a).map(|i| format!("0.{i}")).collect();
        let iters: Vec<String> = (1..=b).map(|i| i.to_string()).collect();
        let seeds_list: Vec<String> = (0..seeds).map(|i| i.to_string()).collect();
        let src = format!(
            "experiment.seeds = [{}]\n[train]\nlr = {{{}}}\n[reg]\npipeline = deepfool(l2, {{{}}}) |> avg |> exp\n",
            seeds_list.join(", "), lrs.join(", "), iters.join(", ")
        );
        let grid = experiment_from_source(Path::new("g.amm"), src.as_bytes(), &[], &testing::catalog()).unwrap();
        prop_assert_eq!(grid.cells.len(), a * b * seeds);
    }
}
