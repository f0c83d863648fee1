//! `amm bench`: the time of a cross-entropy step and of an AMM step (warm-up, then median / min /
//! max over N steps), their ratio and the peak memory. Defaults: the setting of the PyTorch peer
//! in ../shared/bench/peer (MLP 784-800-800-10, batch 100, u = 5, MIN + EXP) on random data.
use amm_core::anyhow::{anyhow, bail, Result};
use amm_core::candle_core::{DType, Tensor};
use amm_core::data::Rng;
use amm_core::dsl::{self, Loss};
use amm_core::optim::{Method, Optimizer};
use amm_core::registry::Registry;
use amm_core::serde_json;
use amm_core::step::{train_step, StepStats};
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// The model: a name or a call.
    #[arg(long, default_value = "mlp(widths=[800, 800])")]
    model: String,
    /// The regularizer pipeline of the AMM steps.
    #[arg(long, default_value = "deepfool(l2, 5) |> min(class, 0.2) |> exp(c=2, d=1) |> weight(32)")]
    reg: String,
    /// Samples per step.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Timed steps of each kind.
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// Untimed steps of each kind before the timed ones.
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Real data (NAME[:PATH]) instead of random inputs and labels.
    #[arg(long)]
    data: Option<String>,
    /// Per-sample input shape of the random data.
    #[arg(long, default_value = "1x28x28")]
    input: String,
    /// Classes of the random data.
    #[arg(long, default_value_t = 10)]
    classes: usize,
    /// SGD learning rate of the steps.
    #[arg(long, default_value_t = 0.01)]
    lr: f64,
    /// f32 or f64.
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Force one pass (false) or two (true) for the regularizer (default: MIN uses two).
    #[arg(long)]
    two_pass: Option<bool>,
    /// Samples whose regularizer graph is alive at once when the pipeline is per-sample (AVG);
    /// 0: the whole batch as one graph [default: sized to the model, see `CHUNK_BUDGET`].
    #[arg(long)]
    chunk: Option<usize>,
    /// cpu, or cuda:N (needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Time only one kind of step (for profiling).
    #[arg(long, value_parser = ["ce", "amm"])]
    only: Option<String>,
    /// One JSON object: ce_step_ms, amm_step_ms, ratio, peak_rss_mib, ...
    #[arg(long)]
    json: bool,
}

/// Peak resident memory of this process (VmHWM), in MiB.
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()))
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

struct Timing {
    median_ms: f64,
    mean_ms: f64,
    min_ms: f64,
    max_ms: f64,
}

impl Timing {
    fn json(&self) -> serde_json::Value {
        serde_json::json!({"median_ms": self.median_ms, "mean_ms": self.mean_ms, "min_ms": self.min_ms, "max_ms": self.max_ms})
    }
}

fn timing(mut v: Vec<f64>) -> Timing {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) };
    Timing { median_ms: median, mean_ms: v.iter().sum::<f64>() / n as f64, min_ms: v[0], max_ms: v[n - 1] }
}

/// A few (input, labels) batches.
type Batches = Vec<(Vec<f32>, Vec<u32>)>;

/// The batches the steps cycle through, with the input shape and the number of classes: real
/// data (`--data`), or random inputs |N(0,1)|/2 with random labels.
fn batches(a: &Args, reg: &Registry) -> Result<(Vec<usize>, usize, Batches)> {
    Ok(match &a.data {
        Some(d) => {
            let (name, path) = d.split_once(':').map_or((d.as_str(), None), |(n, p)| (n, Some(p)));
            let ds = reg.load_dataset(name, path.map(std::path::Path::new))?;
            let prep = amm_core::data::prepare(ds, &amm_core::data::PrepareOptions::default())?;
            let dim = prep.dim();
            let n = prep.train.len() / a.batch;
            let batches = (0..n.clamp(1, 20))
                .map(|i| {
                    (
                        prep.train.x[i * a.batch * dim..(i + 1) * a.batch * dim].to_vec(),
                        prep.train.y[i * a.batch..(i + 1) * a.batch].to_vec(),
                    )
                })
                .collect();
            (prep.shape.clone(), prep.classes, batches)
        }
        None => {
            let shape: Vec<usize> = a
                .input
                .split(['x', ','])
                .map(|d| d.trim().parse::<usize>().map_err(|_| anyhow!("--input {}: use e.g. 1x28x28", a.input)))
                .collect::<Result<_>>()?;
            let dim: usize = shape.iter().product();
            let mut rng = Rng::new(7);
            let batches = (0..10)
                .map(|_| {
                    let x = (0..a.batch * dim).map(|_| (rng.normal().abs() * 0.5) as f32).collect();
                    let y = (0..a.batch).map(|_| rng.below(a.classes as u64) as u32).collect();
                    (x, y)
                })
                .collect();
            (shape, a.classes, batches)
        }
    })
}

pub fn run(a: Args) -> Result<ExitCode> {
    if a.steps == 0 {
        bail!("--steps must be at least 1");
    }
    if a.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let reg = super::host::registry();
    let device = super::host::device(&a.device)?;
    let dtype = match a.dtype.as_str() {
        "f32" => DType::F32,
        "f64" => DType::F64,
        d => bail!("--dtype {d}: use f32 or f64"),
    };
    let grid = dsl::experiment_from_overrides(&[format!("model.arch={}", a.model), format!("reg.pipeline={}", a.reg)], &reg)
        .map_err(|d| anyhow!("{d}"))?;
    let cfg = &grid.cells[0].config;
    let pipeline = cfg.reg.as_ref().ok_or_else(|| anyhow!("--reg none: nothing to compare with a CE step"))?;

    let (shape, classes, pool) = batches(&a, &reg)?;
    let tensor = |x: &[f32]| -> Result<Tensor> {
        let mut s = vec![a.batch];
        s.extend_from_slice(&shape);
        Ok(Tensor::from_slice(x, s, &device)?.to_dtype(dtype)?)
    };

    let mut results = Vec::new();
    let mut rows = 0.0;
    let mut iters = 0.0;
    let mut chunk = 0;
    for amm in [false, true] {
        if a.only.as_deref().is_some_and(|o| (o == "amm") != amm) {
            results.push((timing(vec![f64::NAN]), f64::NAN));
            continue;
        }
        // Each kind starts from the same initial weights.
        let model = reg.build_model(&cfg.model, &shape, classes, &mut Rng::new(0).fork(1), dtype, &device)?;
        let mut r = reg.build_regularizer(pipeline)?;
        if a.two_pass.is_some() {
            r.two_pass = a.two_pass;
        }
        if let Some(c) = a.chunk {
            r.chunk = Some(c);
        }
        let r = if amm { Some(r) } else { None };
        if r.is_some() {
            amm_core::autograd::ensure_second_order(model.as_ref(), &tensor(&pool[0].0)?)?;
        }
        let mut opt = Optimizer::new(Method::Sgd, model.params(), a.lr, 0.9, 1e-4);
        let ce = reg.build_loss(&Loss::Ce)?;
        let mut times = Vec::with_capacity(a.steps);
        let mut stats: Vec<StepStats> = Vec::new();
        for i in 0..a.warmup + a.steps {
            let (x, y) = &pool[i % pool.len()];
            let x = tensor(x)?;
            let t0 = Instant::now();
            let st = train_step(model.as_ref(), r.as_ref(), ce.as_ref(), &mut opt, 10.0, &x, y, i as u64)?;
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            if i >= a.warmup {
                times.push(ms);
                stats.push(st);
            }
        }
        if amm {
            rows = stats.iter().map(|s| s.vjp_rows as f64).sum::<f64>() / stats.len() as f64;
            iters = stats.iter().map(|s| s.attack_iters as f64).sum::<f64>() / stats.len() as f64;
            chunk = stats.iter().map(|s| s.reg_chunk).max().unwrap_or(0);
        }
        results.push((timing(times), peak_rss_mib()));
    }
    let (ce, ce_rss) = &results[0];
    let (am, am_rss) = &results[1];
    let ratio = am.median_ms / ce.median_ms;
    let threads = amm_core::candle_core::utils::get_num_threads();
    // Which kernel ran the f32 GEMMs: the timings differ by up to 1.6x between them.
    let gemm = if amm_core::kernels::native_gemm() { "avx512" } else { "gemm-crate" };
    // And how the 3×3 convolutions ran (AMM_WINOGRAD).
    let conv3x3 = if amm_core::kernels::winograd_enabled() { "winograd" } else { "im2col" };
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "ce_step_ms": ce.median_ms, "amm_step_ms": am.median_ms, "ratio": ratio, "peak_rss_mib": am_rss,
                "ce": ce.json(), "amm": am.json(), "ce_peak_rss_mib": ce_rss,
                "vjp_rows_per_step": rows, "attack_iters_per_step": iters, "reg_chunk": chunk,
                "model": cfg.model.to_string(), "reg": pipeline.to_string(), "batch": a.batch, "steps": a.steps, "warmup": a.warmup,
                "data": a.data.clone().unwrap_or_else(|| format!("random {}", a.input)), "dtype": a.dtype, "threads": threads,
                "gemm": gemm, "conv3x3": conv3x3,
            })
        );
    } else {
        println!(
            "{} on {} (batch {}, {}, {} threads, {} GEMM, 3x3 convolutions by {}), reg {}",
            cfg.model,
            a.data.as_deref().unwrap_or("random data"),
            a.batch,
            a.dtype,
            threads,
            gemm,
            conv3x3,
            pipeline
        );
        println!("{:<10} {:>10} {:>10} {:>10} {:>10}", "step", "median ms", "mean", "min", "max");
        for (name, t) in [("CE", ce), ("AMM", am)] {
            println!("{:<10} {:>10.2} {:>10.2} {:>10.2} {:>10.2}", name, t.median_ms, t.mean_ms, t.min_ms, t.max_ms);
        }
        println!("AMM / CE (median): {ratio:.1}x; VJP rows per AMM step {rows:.1}, attack iterations {iters:.2}; peak RSS {am_rss:.0} MiB (after CE steps {ce_rss:.0} MiB)");
        if chunk > 0 {
            println!("the regularizer ran in chunks of {chunk} samples (--chunk 0 for one graph)");
        }
    }
    Ok(ExitCode::SUCCESS)
}
