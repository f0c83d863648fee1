//! Experiment files: defaults, sections, includes, overrides and grid expansion.

use std::fs;
use std::path::Path;

use amm_dsl::{
    default_config, experiment_from_overrides, experiment_from_source, load_experiment, testing, DType, Grid, Loss, Optimizer, Schedule,
    Value, KEYS, SECTIONS,
};

fn load(src: &str, overrides: &[&str]) -> Grid {
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    experiment_from_source(Path::new("specs/exp.amm"), src.as_bytes(), &overrides, &testing::catalog()).unwrap_or_else(|d| panic!("{d}"))
}

#[test]
fn an_empty_file_is_all_defaults() {
    let grid = load("", &[]);
    assert_eq!(grid.cells.len(), 1);
    let cell = &grid.cells[0];
    assert_eq!(cell.config, default_config("exp", &testing::catalog()));
    assert_eq!(cell.config.out, "runs/exp");
    assert_eq!(cell.config.model.to_string(), "mlp(widths=[800, 800], act=relu, dropout=0)");
    assert_eq!(cell.axes, [("seed".to_string(), "0".to_string())]);
    assert_eq!(grid.files, [Path::new("specs/exp.amm")]);
    // Comments and blank lines only.
    assert_eq!(load("# nothing\n\n   # here\n", &[]).cells.len(), 1);
}

#[test]
fn every_key_is_read() {
    let src = r#"
[experiment]
name = "mnist-mlp"
out = "runs/x"
seeds = [3, 4]

[data]
name = fashion-mnist
path = "/data/fm"
train_size = 5000
test_size = all
label_noise = 0.2
val_size = 500
mean_subtract = false
crop = 4
flip = true

[model]
arch = mlp(widths=[256, 256], act=tanh)

[train]
epochs = 100
batch = 64
optimizer = adam
lr = 5e-3
schedule = step(milestones=[50, 80], gamma=0.1)
momentum = 0.8
weight_decay = 0
clip = 0
loss = hinge
dtype = f64
threads = 2

[reg]
pipeline = deepfool(l2, 5) |> min(class, 0.2) |> exp(c=2, d=1) |> weight(32)

[eval]
iters = 10
overshoot = 0.05
long_iters = 0
every = 5
samples = 1000
"#;
    let grid = load(src, &[]);
    assert_eq!(grid.cells.len(), 2);
    let c = &grid.cells[1].config;
    assert_eq!((c.name.as_str(), c.out.as_str(), c.seed), ("mnist-mlp", "runs/x", 4));
    let d = &c.data;
    assert_eq!(d.name, "fashion-mnist");
    assert_eq!(d.path.as_deref(), Some("/data/fm"));
    assert_eq!((d.train_size, d.test_size), (Some(5000), None));
    assert_eq!((d.label_noise, d.val_size, d.mean_subtract, d.crop, d.flip), (0.2, 500, false, 4, true));
    assert_eq!(c.model.args.int_list("widths"), Ok(vec![256, 256]));
    assert_eq!(c.model.args.ident("act"), Ok("tanh"));
    let t = &c.train;
    assert_eq!((t.epochs, t.batch, t.optimizer.clone(), t.lr), (100, 64, Optimizer::Adam, 5e-3));
    assert_eq!(t.schedule, Schedule::Step { milestones: vec![50, 80], gamma: 0.1 });
    assert_eq!((t.momentum, t.weight_decay, t.clip), (0.8, 0.0, 0.0));
    assert_eq!((t.loss.clone(), t.dtype, t.threads), (Loss::Hinge, DType::F64, 2));
    let reg = c.reg.as_ref().unwrap();
    assert_eq!((reg.aggregation.name.as_str(), reg.weight), ("min", 32.0));
    let e = &c.eval;
    assert_eq!((e.iters, e.overshoot, e.long_iters, e.every, e.samples), (10, 0.05, 0, 5, 1000));
    // Run configs serialize and come back equal.
    let json = serde_json::to_string(&grid.cells[1]).unwrap();
    assert_eq!(serde_json::from_str::<amm_dsl::Cell>(&json).unwrap(), grid.cells[1]);
}

#[test]
fn dotted_keys_work_anywhere_and_later_keys_win() {
    let grid = load("train.epochs = 3\n[data]\nname = mnist\ntrain.epochs = 4\neval.every = 2\n", &[]);
    let c = &grid.cells[0].config;
    assert_eq!((c.train.epochs, c.data.name.as_str(), c.eval.every), (4, "mnist", 2));
}

#[test]
fn values_continue_over_lines() {
    let src = "[reg]\npipeline = {\n  none,                              # reference\n  deepfool(l2, 5)\n    |> avg\n    |> exp(2, 1),\n}\n[train]\nschedule = step(\n  milestones = [50, 80],\n  gamma = 0.1,\n)\nepochs = 2\n";
    let grid = load(src, &[]);
    assert_eq!(grid.cells.len(), 2);
    assert!(grid.cells[0].config.reg.is_none());
    assert_eq!(grid.cells[1].axes[0], ("reg.pipeline".to_string(), "deepfool(l2, 5) |> avg |> exp(2, 1)".to_string()));
    assert_eq!(grid.cells[1].config.train.epochs, 2);
}

#[test]
fn grid_is_the_cross_product_of_alternatives_and_seeds() {
    let src = "\
experiment.seeds = [0, 1, 2]
[train]
lr = {0.1, 0.01}
[data]
train_size = {1000, 5000, all}
[reg]
pipeline = deepfool(l2, 5) |> {avg, min(class, 0.2)} |> {lin(1, 1), inv(1, 1), exp(2, 1)}
";
    let grid = load(src, &[]);
    assert_eq!(grid.cells.len(), 2 * 3 * 6 * 3);
    let first = &grid.cells[0];
    let axes: Vec<&str> = first.axes.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(axes, ["data.train_size", "train.lr", "reg.pipeline", "seed"]);
    assert_eq!(first.axes[2].1, "deepfool(l2, 5) |> avg |> lin(1, 1)");
    // Seeds vary fastest, then the later keys.
    assert_eq!(grid.cells[1].config.seed, 1);
    assert_eq!(grid.cells[3].axes[2].1, "deepfool(l2, 5) |> avg |> inv(1, 1)");
    let last = grid.cells.last().unwrap();
    assert_eq!(last.config.data.train_size, None);
    assert_eq!(last.axes[0].1, "all");
    assert_eq!(last.config.train.lr, 0.01);
    assert_eq!(last.slug(), "data.train_size=all,train.lr=0.01,reg.pipeline=deepfool_l2_5_min_class_0.2_exp_2_1,seed=2");
    // Every cell is distinct.
    for (i, a) in grid.cells.iter().enumerate() {
        for b in &grid.cells[i + 1..] {
            assert_ne!(a.axes, b.axes);
        }
    }
}

#[test]
fn overrides_are_applied_last() {
    let grid = load(
        "[train]\nepochs = 100\nlr = {0.1, 0.01}\n",
        &[
            "train.epochs=3",
            "reg.pipeline=deepfool(l2,5) |> avg |> exp(2,1)",
            "model.arch=mlp(widths=[64])",
            "data.name=fashion-mnist",
            "experiment.seeds=[0,1]",
            "train.lr=0.5",
            "experiment.out=runs/my run",
            "data.path=/tmp/data",
            "experiment.name=quick",
        ],
    );
    assert_eq!(grid.cells.len(), 2);
    let c = &grid.cells[1].config;
    assert_eq!((c.train.epochs, c.train.lr, c.seed), (3, 0.5, 1));
    assert!(c.reg.is_some());
    assert_eq!(c.model.args.get("widths"), Some(&Value::List(vec![Value::Int(64)])));
    assert_eq!(c.data.name, "fashion-mnist");
    assert_eq!(c.out, "runs/my run");
    assert_eq!(c.name, "quick");
    assert_eq!(c.data.path.as_deref(), Some("/tmp/data"));
}

#[test]
fn experiment_from_overrides_alone() {
    let cat = testing::catalog();
    let grid = experiment_from_overrides(&["train.lr={0.1,0.01}".into(), "train.epochs=3".into()], &cat).unwrap();
    assert_eq!(grid.cells.len(), 2);
    assert_eq!(grid.cells[0].config.name, "run");
    assert_eq!(grid.cells[0].config.out, "runs/run");
    assert_eq!(grid.cells[1].axes, [("train.lr".into(), "0.01".into()), ("seed".into(), "0".into())]);
    assert!(grid.files.is_empty());
    let grid = experiment_from_overrides(&["experiment.name=abl".into()], &cat).unwrap();
    assert_eq!(grid.cells[0].config.out, "runs/abl");
}

#[test]
fn includes_are_relative_and_overridable() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("common")).unwrap();
    fs::write(
        dir.path().join("common/base.amm"),
        "[train]\nepochs = 100\nlr = 0.005\nschedule = step(milestones=[50, 80])\n[model]\narch = mlp\n",
    )
    .unwrap();
    fs::write(dir.path().join("common/data.amm"), "include \"base.amm\"\n[data]\nname = mnist\n").unwrap();
    fs::write(
        dir.path().join("ablation.amm"),
        "include \"common/data.amm\"\n[train]\nepochs = 50\n[reg]\npipeline = deepfool(l2) |> exp\n",
    )
    .unwrap();
    let grid = load_experiment(&dir.path().join("ablation.amm"), &[], &testing::catalog()).unwrap();
    let c = &grid.cells[0].config;
    assert_eq!((c.train.epochs, c.train.lr, c.data.name.as_str()), (50, 0.005, "mnist"));
    assert_eq!(c.name, "ablation");
    assert_eq!(grid.files.len(), 3);
    // A key before the include is overridden by it: order matters, like Hydra.
    fs::write(dir.path().join("order.amm"), "[train]\nepochs = 7\ninclude \"common/base.amm\"\n").unwrap();
    let grid = load_experiment(&dir.path().join("order.amm"), &[], &testing::catalog()).unwrap();
    assert_eq!(grid.cells[0].config.train.epochs, 100);
}

#[test]
fn include_cycles_and_errors_in_included_files() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a.amm"), "include \"b.amm\"\n").unwrap();
    fs::write(dir.path().join("b.amm"), "[train]\nepochs = 3\ninclude \"a.amm\"\n").unwrap();
    let d = load_experiment(&dir.path().join("a.amm"), &[], &testing::catalog()).unwrap_err();
    assert_eq!(d.0.len(), 1);
    assert_eq!(d.0[0].message, "include cycle: a.amm -> b.amm -> a.amm");
    assert!(d.0[0].file.ends_with("b.amm"));
    assert_eq!((d.0[0].line, d.0[0].column), (3, 9));

    fs::write(dir.path().join("self.amm"), "include \"self.amm\"\n").unwrap();
    let d = load_experiment(&dir.path().join("self.amm"), &[], &testing::catalog()).unwrap_err();
    assert_eq!(d.0[0].message, "include cycle: self.amm -> self.amm");

    fs::write(dir.path().join("bad.amm"), "[train]\nepochs = zero\n").unwrap();
    fs::write(dir.path().join("top.amm"), "include \"bad.amm\"\n[data]\nname = cifar11\n").unwrap();
    let d = load_experiment(&dir.path().join("top.amm"), &[], &testing::catalog()).unwrap_err();
    assert_eq!(d.0.len(), 2);
    assert!(d.0[0].file.ends_with("top.amm"), "{d}");
    assert!(d.0[1].file.ends_with("bad.amm"), "{d}");
    assert_eq!((d.0[1].line, d.0[1].column), (2, 10));

    let d = load_experiment(&dir.path().join("nope.amm"), &[], &testing::catalog()).unwrap_err();
    assert!(d.0[0].message.starts_with("cannot read"), "{d}");
    assert_eq!(d.0[0].line, 0);
}

#[test]
fn keys_table_matches_the_loader() {
    let cat = testing::catalog();
    let defaults = default_config("run", &cat);
    for k in KEYS {
        let (section, _) = k.key.split_once('.').unwrap();
        assert!(SECTIONS.contains(&section), "{}", k.key);
        assert!(!k.doc.is_empty() && !k.ty.is_empty());
        // Where the documented default is source text, setting it changes nothing.
        if matches!(k.key, "experiment.name" | "experiment.out" | "data.path" | "train.init") {
            continue;
        }
        let set = format!("{}={}", k.key, k.default);
        let grid = experiment_from_overrides(std::slice::from_ref(&set), &cat).unwrap_or_else(|d| panic!("{set}\n{d}"));
        assert_eq!(grid.cells[0].config, defaults, "{set}");
    }
}
