//! Pipelines that parse: the examples of the design notes, their grid sizes, the specs they
//! make, and canonical printing.

use amm_dsl::{parse_pipeline, testing, Args, Kind, PipelineSpec, StageSpec, Value};

fn specs(src: &str) -> Vec<Option<PipelineSpec>> {
    parse_pipeline(src, &testing::catalog()).unwrap_or_else(|d| panic!("{src}\n{d}"))
}

fn one(src: &str) -> PipelineSpec {
    let mut all = specs(src);
    assert_eq!(all.len(), 1, "{src}");
    all.pop().unwrap().expect("not none")
}

fn stage(kind: Kind, name: &str, args: &[(&str, Value)]) -> StageSpec {
    StageSpec { kind, name: name.into(), args: args.iter().map(|(k, v)| (k.to_string(), v.clone())).collect::<Args>() }
}

fn f(x: f64) -> Value {
    Value::Float(x)
}

fn id(s: &str) -> Value {
    Value::Ident(s.into())
}

#[test]
fn examples_expand_to_the_stated_number_of_cells() {
    for (src, n) in [
        ("deepfool(l2, 5) |> min(class, 0.2) |> exp(c=2, d=1) |> weight(32)", 1),
        ("deepfool(l2, 5) |> avg |> normalize |> exp(c=25, d=5) |> weight(15)", 1),
        ("deepfool(l2, 5, hog=false) |> avg |> exp(c=2, d=1)", 1),
        ("linear(l2) |> avg |> hinge(1.0)", 1),
        ("deepfool(l2, 5) |> {avg, min(class, 0.2)} |> {lin(1, 1), inv(1, 1), exp(2, 1)}", 6),
        ("deepfool(l2, {1, 3, 5}) |> avg |> exp(2,1)", 3),
        ("deepfool(l2, 5) |> {avg, min(class, {0.1, 0.2})} |> exp(2, 1)", 3),
        ("{none, deepfool(l2,5) |> avg |> exp(2,1)}", 2),
        ("none", 1),
        ("deepfool(l2) |> exp", 1),
        ("deepfool(l2) |> {avg |> normalize, min} |> exp", 2),
    ] {
        assert_eq!(specs(src).len(), n, "{src}");
    }
}

#[test]
fn the_authors_mnist_setting() {
    let p = one("deepfool(l2, 5) |> min(class, 0.2) |> exp(c=2, d=1) |> weight(32)  # MNIST");
    let expected = PipelineSpec {
        proxy: stage(
            Kind::Proxy,
            "deepfool",
            &[
                ("norm", id("l2")),
                ("iters", Value::Int(5)),
                ("overshoot", f(0.02)),
                ("candidates", Value::Int(10)),
                ("hog", Value::Bool(true)),
                ("chain", id("full")),
                ("failed", id("drop")),
            ],
        ),
        aggregation: stage(Kind::Aggregation, "min", &[("by", id("class")), ("frac", f(0.2)), ("misclassified", id("argmax"))]),
        normalize: false,
        shrinkage: stage(Kind::Shrinkage, "exp", &[("c", f(2.0)), ("d", f(1.0)), ("clip", f(50.0))]),
        weight: 32.0,
    };
    assert_eq!(p, expected);
}

#[test]
fn defaults_aggregation_and_weight() {
    let p = one("deepfool(l2) |> exp");
    assert_eq!(p.aggregation.name, "avg");
    assert!(p.aggregation.args.is_empty());
    assert_eq!(p.weight, 1.0);
    assert!(!p.normalize);
}

#[test]
fn normalize_anywhere_between_proxy_and_shrinkage() {
    assert!(one("deepfool(l2) |> normalize |> avg |> exp").normalize);
    assert!(one("deepfool(l2) |> avg |> normalize |> exp").normalize);
    assert!(one("deepfool(l2) |> normalize |> exp").normalize);
}

#[test]
fn short_forms_of_exp() {
    for src in ["deepfool(l2) |> exp(c)", "deepfool(l2) |> exp(2)", "deepfool(l2) |> exp"] {
        // `exp(c)`: a bare parameter name keeps its default.
        let p = one(src);
        assert_eq!(p.shrinkage.args.f64("c"), Ok(2.0), "{src}");
        assert_eq!(p.shrinkage.args.f64("d"), Ok(1.0), "{src}");
    }
    let p = one("deepfool(l2, hog) |> exp(3)");
    assert_eq!(p.proxy.args.bool("hog"), Ok(true));
    let p = one("linear(l2, hog) |> exp");
    assert_eq!(p.proxy.args.bool("hog"), Ok(true));
    let p = one("deepfool(l2) |> exp(3)");
    assert_eq!(p.shrinkage.args.f64("c"), Ok(3.0));
    assert_eq!(p.shrinkage.args.f64("d"), Ok(1.0));
}

#[test]
fn int_given_to_float_keeps_numeric_equality() {
    assert_eq!(one("deepfool(l2) |> exp(2, 1)"), one("deepfool(l2) |> exp(2.0, 1.0)"));
    assert_eq!(one("deepfool(l2) |> exp(2, 1)"), one("deepfool(l2) |> exp(d=1, c=2e0)"));
}

#[test]
fn alternatives_are_in_reading_order() {
    let names: Vec<String> = specs("deepfool(l2, 5) |> {avg, min(class, 0.2)} |> {lin(1, 1), inv(1, 1), exp(2, 1)}")
        .into_iter()
        .map(|p| {
            let p = p.unwrap();
            format!("{}-{}", p.aggregation.name, p.shrinkage.name)
        })
        .collect();
    assert_eq!(names, ["avg-lin", "avg-inv", "avg-exp", "min-lin", "min-inv", "min-exp"]);
    let all = specs("{none, deepfool(l2,5) |> avg |> exp(2,1)}");
    assert!(all[0].is_none());
    assert!(all[1].is_some());
}

#[test]
fn a_name_in_several_kinds_takes_its_place_in_the_pipeline() {
    // `linear` is a proxy and a model; in a pipeline it is the proxy.
    let p = one("linear(linf) |> avg |> hinge(gamma=0.5)");
    assert_eq!(p.proxy.name, "linear");
    assert_eq!(p.proxy.kind, Kind::Proxy);
    assert_eq!(p.shrinkage.args.f64("gamma"), Ok(0.5));
}

#[test]
fn display_is_canonical_and_parses_back() {
    let src = "deepfool(l2, 5, hog=false) |> min(class, 0.2) |> normalize |> exp(c=25, d=5) |> weight(1.5e-3)";
    let p = one(src);
    let text = p.to_string();
    assert_eq!(
        text,
        "deepfool(norm=l2, iters=5, overshoot=0.02, candidates=10, hog=false, chain=full, failed=drop) \
         |> min(by=class, frac=0.2, misclassified=argmax) |> normalize |> exp(c=25, d=5, clip=50) \
         |> weight(0.0015)"
    );
    assert_eq!(one(&text), p);
    assert_eq!(p.shrinkage.to_string(), "exp(c=25, d=5, clip=50)");
    // `lin` and `hinge` are not truncated unless asked: `clip=none`, which parses back.
    let lin = one("deepfool(l2) |> avg |> lin");
    assert_eq!(lin.shrinkage.to_string(), "lin(c=1, d=1, clip=none)");
    assert_eq!(one(&lin.to_string()), lin);
    assert_eq!(one("deepfool(l2) |> avg |> lin(clip=3)").shrinkage.to_string(), "lin(c=1, d=1, clip=3)");
}

#[test]
fn specs_serialize_with_lowercase_kinds() {
    let p = one("deepfool(l2) |> avg |> exp");
    let json = serde_json::to_string(&p).unwrap();
    assert!(json.contains(r#""kind":"proxy""#), "{json}");
    let back: PipelineSpec = serde_json::from_str(&json).unwrap();
    assert_eq!(back, p);
}

#[test]
fn strings_and_multiline_pipelines() {
    let p = one("deepfool(\"l2\")\n  |> avg   # every sample\n  |> exp(2, 1)\n");
    assert_eq!(p.proxy.args.ident("norm"), Ok("l2"));
}
