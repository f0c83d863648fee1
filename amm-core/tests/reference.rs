//! amm against an independent implementation of the regularizer: `tools/reference/`, PyTorch,
//! written from DESIGN.md and the paper's definitions (not from amm's code). Its fixtures hold
//! the weights, a batch (correct and misclassified samples), and for each case the value, the
//! decisions and the weight gradient, all in f64. amm must make the same decisions and agree on
//! the value and on every gradient tensor to 1e-8 relative.
//!
//! The fixtures are committed; regenerating them is one command (tools/reference/README.md).
//! This test only reads them, and fails (never skips) if they are missing.
use amm_core::candle_core::{DType, Device, Tensor};
use amm_core::data::Rng;
use amm_core::dsl;
use amm_core::gradcheck::grads_of;
use amm_core::layer::{Ctx, Mode};
use amm_core::serde_json::{self, Value};
use amm_core::tensor::to_host;
use amm_core::Registry;
use std::collections::HashMap;
use std::path::PathBuf;

const TOLERANCE: f64 = 1e-8;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/reference/fixtures")
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array().map(|a| a.iter().filter_map(|x| x.as_u64()).map(|x| x as usize).collect()).unwrap_or_default()
}

/// Runs every case of fixture `name`; returns (cases, lines describing each).
fn compare(name: &str) -> (usize, Vec<String>) {
    let dir = fixtures();
    let meta_path = dir.join(format!("{name}.json"));
    let text = std::fs::read_to_string(&meta_path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; the reference fixtures are committed with the repository (tools/reference/README.md regenerates them)",
            meta_path.display()
        )
    });
    let meta: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", meta_path.display()));
    let tensors: HashMap<String, Tensor> =
        amm_core::candle_core::safetensors::load(dir.join(format!("{name}.safetensors")), &Device::Cpu).expect("fixture tensors");

    let reg = Registry::with_builtins();
    let arch = meta["model"].as_str().expect("model");
    let grid = dsl::experiment_from_overrides(&[format!("model.arch={arch}")], &reg).unwrap_or_else(|d| panic!("{d}"));
    let shape = usizes(&meta["input_shape"]);
    let classes = meta["classes"].as_u64().expect("classes") as usize;
    let model = reg.build_model(&grid.cells[0].config.model, &shape, classes, &mut Rng::new(0), DType::F64, &Device::Cpu).unwrap();
    let names: Vec<&str> = meta["params"].as_array().expect("params").iter().filter_map(|v| v.as_str()).collect();
    let ours: Vec<&str> = model.params().vars().iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(ours, names, "{name}: amm's parameters differ from the fixture's");
    for (pname, var) in model.params().vars() {
        let t = &tensors[&format!("param.{pname}")];
        assert_eq!(t.dims(), var.dims(), "{name}: {pname}");
        var.set(&t.to_dtype(DType::F64).unwrap()).unwrap();
    }
    let x = tensors["x"].to_dtype(DType::F64).unwrap();
    let y: Vec<u32> = tensors["y"].to_dtype(DType::I64).unwrap().to_vec1::<i64>().unwrap().into_iter().map(|v| v as u32).collect();
    let b = y.len();

    let cases = meta["cases"].as_array().expect("cases");
    let mut lines = Vec::new();
    let mut failures = Vec::new();
    for case in cases {
        let i = case["index"].as_u64().expect("index");
        let pipe = case["pipeline"].as_str().expect("pipeline");
        let spec = dsl::parse_pipeline(pipe, &reg).unwrap_or_else(|d| panic!("{name} case {i}: {d}")).into_iter().next().unwrap().unwrap();
        let r = reg.build_regularizer(&spec).unwrap();
        let out = r.compute(model.as_ref(), &x, &y, &Ctx::new(Mode::Attack, 0, b), None).unwrap();
        let want_value = to_host(&tensors[&format!("case{i}.value")]).unwrap()[0];
        let g = grads_of(model.as_ref(), &out.loss).unwrap();
        let (mut num, mut den, mut worst) = (0.0f64, 0.0f64, 0.0f64);
        let mut g_inf = 0.0f64;
        let mut per_tensor = Vec::new();
        for ((pname, _), ours) in model.params().vars().iter().zip(&g) {
            let theirs = to_host(&tensors[&format!("case{i}.grad.{pname}")]).unwrap();
            let (mut n, mut d) = (0.0, 0.0);
            for (a, b) in ours.iter().zip(&theirs) {
                n += (a - b) * (a - b);
                d += b * b;
                g_inf = g_inf.max(b.abs());
            }
            num += n;
            den += d;
            per_tensor.push((pname.clone(), n, d));
        }
        for (pname, n, d) in &per_tensor {
            // Each tensor relative to itself, or to the whole gradient where it is ~0.
            let rel = n.sqrt() / d.sqrt().max(1e-6 * den.sqrt()).max(1e-300);
            if rel > worst {
                worst = rel;
            }
            if rel > TOLERANCE {
                failures.push(format!("{name} case {i} ({pipe}): {pname} differs by {rel:.3e}"));
            }
        }
        let grad_rel = if den > 0.0 { (num / den).sqrt() } else { num.sqrt() };
        let value_rel = (out.value - want_value).abs() / want_value.abs().max(1e-12);
        let selected = usizes(&case["selected"]);
        let iterations = case["iterations"].as_u64().unwrap_or(0) as usize;
        if out.selected != selected {
            failures.push(format!("{name} case {i} ({pipe}): amm regularized {:?}, the reference {selected:?}", out.selected));
        }
        if out.iterations != iterations {
            failures.push(format!("{name} case {i} ({pipe}): amm ran {} iterations, the reference {iterations}", out.iterations));
        }
        if value_rel > TOLERANCE {
            failures.push(format!("{name} case {i} ({pipe}): value {} vs {want_value} ({value_rel:.3e})", out.value));
        }
        if den == 0.0 {
            failures.push(format!("{name} case {i} ({pipe}): the reference gradient is zero: the case checks nothing"));
        }
        lines.push(format!(
            "{name} case {i:>2}: value rel err {value_rel:.1e}, gradient rel err {grad_rel:.1e} (worst tensor {worst:.1e}), {} selected, {} iterations: {pipe}",
            out.selected.len(),
            out.iterations
        ));
    }
    for l in &lines {
        eprintln!("{l}");
    }
    assert!(failures.is_empty(), "{} mismatches against the reference:\n{}", failures.len(), failures.join("\n"));
    (cases.len(), lines)
}

/// ReLU MLP: {avg, min} × {lin, inv, exp} × hog {on, off} × u {1, 5}, and the chain variants,
/// overshoot and candidates.
#[test]
fn mlp_relu_matches_the_reference() {
    let (n, lines) = compare("mlp_relu");
    assert!(n >= 24, "mlp_relu has only {n} cases");
    for want in ["min(class", "avg", "lin(", "inv(", "exp(", "hog=false", "hog=true", "chain=none", "chain=authors", "overshoot="] {
        assert!(lines.iter().any(|l| l.contains(want)), "no mlp_relu case with {want}");
    }
}

/// tanh MLP: there `chain=full`, `authors` and `none` are three different functions' gradients;
/// each matches the reference's same variant.
#[test]
fn mlp_tanh_matches_the_reference_for_every_chain() {
    let (_, lines) = compare("mlp_tanh");
    for want in ["chain=full", "chain=authors", "chain=none"] {
        assert!(lines.iter().any(|l| l.contains(want)), "no mlp_tanh case with {want}");
    }
}

/// LeNet (convolutions and max-pooling).
#[test]
fn lenet_matches_the_reference() {
    let (n, _) = compare("lenet");
    assert!(n >= 6, "lenet has only {n} cases");
}
