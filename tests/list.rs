//! `amm list`: the registry as text, JSON and markdown; everything listed is usable.
mod common;
use common::*;

fn entries() -> Vec<Value> {
    let d = tempdir();
    let r = amm(d.path(), &["list", "--json"]);
    r.ok();
    r.json().as_array().expect("`amm list --json` prints an array").clone()
}

fn names(items: &[Value], kind: &str) -> Vec<String> {
    items.iter().filter(|e| e["kind"] == kind).map(|e| e["name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn json_lists_every_builtin_with_its_parameters() {
    let items = entries();
    let mut seen = std::collections::HashSet::new();
    for e in &items {
        let kind = e["kind"].as_str().expect("kind");
        let name = e["name"].as_str().expect("name");
        assert!(
            ["proxy", "aggregation", "shrinkage", "model", "dataset", "optimizer", "schedule", "loss", "attack"].contains(&kind),
            "{e}"
        );
        assert!(!name.is_empty() && e["doc"].as_str().is_some_and(|d| !d.is_empty()), "{e}");
        assert!(e["origin"].is_string(), "{e}");
        assert!(seen.insert((kind.to_string(), name.to_string())), "listed twice: {kind} {name}");
        for p in e["params"].as_array().expect("params") {
            assert!(p["name"].is_string() && p["type"].is_string() && p["doc"].is_string(), "{e}");
            assert!(p["default"].is_null() || p["default"].is_string(), "{e}");
        }
    }
    let has = |kind: &str, want: &[&str]| {
        let got = names(&items, kind);
        for w in want {
            assert!(got.iter().any(|g| g == w), "{kind} `{w}` missing from {got:?}");
        }
    };
    has("proxy", &["deepfool", "linear"]);
    has("aggregation", &["avg", "min"]);
    has("shrinkage", &["lin", "exp", "inv", "hinge"]);
    has(
        "model",
        &[
            "linear",
            "mlp",
            "lenet",
            "liunet",
            "liunet64",
            "liunet96",
            "convnet",
            "nin",
            "resnet20",
            "resnet56",
            "resnet",
            "densenet40",
            "densenet",
        ],
    );
    // the general ResNet and DenseNet with their parameters and defaults
    let params = |name: &str| -> Vec<(String, String)> {
        let e = items.iter().find(|e| e["kind"] == "model" && e["name"] == name).unwrap_or_else(|| panic!("model {name}"));
        e["params"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["name"].as_str().unwrap().into(), p["default"].as_str().unwrap().into()))
            .collect()
    };
    let pairs = |v: &[(&str, &str)]| v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
    assert_eq!(params("resnet"), pairs(&[("depth", "20"), ("norm", "group"), ("block", "auto")]));
    assert_eq!(params("densenet"), pairs(&[("depth", "40"), ("growth", "12"), ("norm", "group")]));
    assert_eq!(params("resnet56"), pairs(&[("norm", "group")]));
    has("dataset", &["digits", "fashion-mnist", "mnist", "cifar10", "cifar100", "svhn", "csv", "toy2d"]);
    has("attack", &["deepfool", "fmn", "ddn", "apgd", "apgd-ce", "apgd-t"]);
    has("optimizer", &["sgd", "adam"]);
    has("schedule", &["constant", "step", "cosine"]);
    has("loss", &["ce", "hinge", "none"]);

    // deepfool's parameters, with the paper's defaults
    let df = items.iter().find(|e| e["kind"] == "proxy" && e["name"] == "deepfool").unwrap();
    let param = |n: &str| df["params"].as_array().unwrap().iter().find(|p| p["name"] == n).cloned().unwrap_or_else(|| panic!("{n}: {df}"));
    assert!(param("norm")["default"].is_null(), "norm is required: {df}");
    assert_eq!(param("iters")["default"], "5");
    assert_eq!(param("overshoot")["default"], "0.02");
    assert_eq!(param("hog")["default"], "true");
    let exp = items.iter().find(|e| e["kind"] == "shrinkage" && e["name"] == "exp").unwrap();
    let ps: Vec<_> =
        exp["params"].as_array().unwrap().iter().map(|p| (p["name"].as_str().unwrap(), p["default"].as_str().unwrap())).collect();
    assert_eq!(ps[..2], [("c", "2"), ("d", "1")], "{exp}");
}

#[test]
fn text_listing_names_everything() {
    let d = tempdir();
    let r = amm(d.path(), &["list"]);
    r.ok();
    for e in entries() {
        r.stdout_has(&format!("  {}", e["name"].as_str().unwrap()));
    }
    r.stdout_has("pipeline built-ins");
    let r = amm(d.path(), &["list", "--json", "--markdown"]);
    assert_eq!(r.code, Some(2), "--json and --markdown conflict\n{}", r.describe());
}

/// Everything listed can be written in a spec: every proxy × aggregation × shrinkage pipeline,
/// every model, dataset, optimizer, schedule, loss and attack pass `amm check`.
#[test]
fn everything_listed_passes_check() {
    let items = entries();
    let d = tempdir();
    let (proxies, aggs, shrinks) = (names(&items, "proxy"), names(&items, "aggregation"), names(&items, "shrinkage"));
    let calls: Vec<String> = proxies.iter().map(|p| format!("{p}(l2)")).collect();
    let grid = format!("{{{}}} |> {{{}}} |> {{{}}}", calls.join(", "), aggs.join(", "), shrinks.join(", "));
    let r = amm(d.path(), &["check", "--reg", &grid, "--json"]);
    r.ok();
    assert_eq!(r.json()["cells"], proxies.len() * aggs.len() * shrinks.len(), "{grid}\n{}", r.describe());
    // (kind, the line that uses an item of it)
    type Use = (&'static str, fn(&str) -> String);
    let uses: [Use; 6] = [
        ("model", |m| format!("[model]\narch = {m}\n")),
        ("dataset", |n| format!("[data]\nname = {n}\n")),
        ("optimizer", |o| format!("[train]\noptimizer = {o}\n")),
        ("schedule", |s| format!("[train]\nschedule = {}\n", if s == "step" { "step(milestones=[2, 3])" } else { s })),
        ("loss", |l| format!("[train]\nloss = {l}\n")),
        ("attack", |a| format!("[eval]\nattacks = [{a}]\n")),
    ];
    let mut files = Vec::new();
    for (kind, line) in uses {
        for name in names(&items, kind) {
            let f = format!("{kind}-{name}.amm");
            std::fs::write(d.path().join(&f), line(&name)).unwrap();
            files.push(f);
        }
    }
    let r = amm(d.path(), &with(&["check", "--json"], &files));
    r.ok();
    assert_eq!(r.json()["cells"], files.len(), "{}", r.describe());
}
