//! `amm gradcheck --model NAME --reg PIPELINE`: the regularizer's weight gradient against central
//! finite differences in f64, on random inputs, with the second-order contribution measured.
use amm_core::anyhow::{anyhow, bail, Result};
use amm_core::candle_core::{DType, Device};
use amm_core::data::Rng;
use amm_core::dsl;
use amm_core::gradcheck::{gradcheck, random_batch, GradcheckOptions};
use amm_core::serde_json;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The model: a name or a call (`mlp(widths=[32, 32])`).
    #[arg(long)]
    model: String,
    /// The regularizer pipeline.
    #[arg(long, default_value = "deepfool(l2, 5) |> avg |> exp(c=2, d=1) |> weight(1)")]
    reg: String,
    #[arg(long, default_value_t = 8)]
    batch: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Per-sample input shape, e.g. 1x28x28 or 64 (default: a small shape the model accepts).
    #[arg(long)]
    input: Option<String>,
    #[arg(long, default_value_t = 10)]
    classes: usize,
    /// Entries compared against finite differences, spread over the parameter tensors.
    #[arg(long, default_value_t = 24)]
    entries: usize,
    /// Largest acceptable relative error.
    #[arg(long, default_value_t = 1e-4)]
    tolerance: f64,
    /// Print one JSON object {max_rel_err, hog_rel_diff, checked, ...}.
    #[arg(long)]
    json: bool,
}

fn default_input(model: &str) -> Vec<usize> {
    match model {
        // The smallest inputs each architecture accepts, so every model checks in seconds.
        "lenet" => vec![1, 16, 16],
        "liunet" => vec![1, 8, 8],
        "convnet" | "nin" | "resnet20" => vec![3, 8, 8],
        _ => vec![1, 8, 8],
    }
}

pub fn run(a: Args) -> Result<ExitCode> {
    let reg = super::registry();
    let grid = dsl::experiment_from_overrides(&[format!("model.arch={}", a.model), format!("reg.pipeline={}", a.reg)], &reg)
        .map_err(|d| anyhow!("{d}"))?;
    let cfg = &grid.cells[0].config;
    let Some(pipeline) = &cfg.reg else { bail!("--reg none has no gradient to check") };
    let shape = match &a.input {
        Some(s) => s
            .split(['x', ','])
            .map(|d| d.trim().parse::<usize>().map_err(|_| anyhow!("--input {s}: use dimensions like 1x28x28")))
            .collect::<Result<Vec<_>>>()?,
        None => default_input(&cfg.model.name),
    };
    let mut rng = Rng::new(a.seed).fork(1);
    let model = reg.build_model(&cfg.model, &shape, a.classes, &mut rng, DType::F64, &Device::Cpu)?;
    let regularizer = reg.build_regularizer(pipeline)?;
    let (x, y) = random_batch(model.as_ref(), a.batch, a.seed)?;
    amm_core::autograd::ensure_second_order(model.as_ref(), &x)?;
    let t0 = std::time::Instant::now();
    let r = gradcheck(
        model.as_ref(),
        &regularizer,
        &x,
        &y,
        &GradcheckOptions { seed: a.seed, max_entries: Some(a.entries), ..Default::default() },
    )?;
    let hog_on = pipeline.proxy.args.bool("hog").unwrap_or(false);
    // With high-order gradients on, a zero difference means the second-order terms vanished.
    let hog_ok = !hog_on || r.hog_rel_diff > 1e-8;
    // Kink crossings are rare; many of them would make the check meaningless.
    let kinks_ok = r.skipped_kinks * 5 <= r.checked + r.skipped_kinks;
    // A batch where nothing was regularized checks nothing.
    let ok = r.max_rel_err <= a.tolerance && hog_ok && kinks_ok && r.checked > 0 && r.selected > 0;
    if a.json {
        let mut v = serde_json::to_value(&r)?;
        let o = v.as_object_mut().expect("object");
        o.insert("ok".into(), ok.into());
        o.insert("model".into(), cfg.model.to_string().into());
        o.insert("reg".into(), pipeline.to_string().into());
        o.insert("input".into(), serde_json::json!(shape));
        o.insert("seconds".into(), t0.elapsed().as_secs_f64().into());
        println!("{v}");
    } else {
        println!("model {} on inputs {:?}, {} classes; reg {}", cfg.model, shape, a.classes, pipeline);
        println!("batch {}: {} regularized, loss {:.6}", r.batch, r.selected, r.loss);
        println!("checked {} weight-gradient entries against central differences (f64): max rel err {:.3e}", r.checked, r.max_rel_err);
        if r.skipped_kinks > 0 {
            println!("  {} entries skipped: ±h crossed a ReLU kink (finite differences at h and h/2 disagree)", r.skipped_kinks);
        }
        if let Some((name, i, fd, an)) = &r.worst {
            println!("  worst: {name}[{i}]: finite differences {fd:.10e}, analytic {an:.10e}");
        }
        println!(
            "second-order share of the gradient ‖g − g(hog=false)‖/‖g‖ = {:.3e}{}",
            r.hog_rel_diff,
            if hog_on { "" } else { " (hog=false: expected 0)" }
        );
        println!("{} in {:.1} s", if ok { "OK" } else { "FAILED" }, t0.elapsed().as_secs_f64());
        if r.selected == 0 {
            eprintln!("error: no sample of this batch was regularized (every attack failed or was filtered), so nothing was checked; try another --seed or a larger --batch");
        }
        if !hog_ok {
            eprintln!("error: the second-order terms vanished (hog=true but g equals the hog=false gradient)");
        }
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
