//! `amm train` (a run from flags) and `amm run FILE.amm` (every cell of an experiment).
use crate::progress::Display;
use amm_core::anyhow::{bail, Context, Result};
use amm_core::dsl::{self, Cell, Grid};
use amm_core::serde_json;
use amm_core::train::{self, RunOptions, RunResult};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Flags shared by `train` and `run`.
#[derive(clap::Args, Clone)]
pub struct Common {
    /// Any key of an experiment file (`train.epochs=3`, `reg.pipeline=...`); repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Continue interrupted runs from their last checkpoint (finished cells are skipped anyway).
    #[arg(long)]
    pub resume: bool,
    /// Print the final metrics as JSON (one object per run; an array for several cells).
    #[arg(long)]
    pub json: bool,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
    /// cpu, or cuda:N (needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Dataset: NAME or NAME:PATH (digits, fashion-mnist[:DIR], mnist:DIR, cifar10:DIR, cifar100:DIR, svhn:DIR, csv:DIR, toy2d).
    #[arg(long)]
    data: Option<String>,
    /// Model: a name or a call, e.g. `mlp(widths=[256, 256])`.
    #[arg(long)]
    model: Option<String>,
    /// Regularizer pipeline, or `none`; `{a, b}` alternatives make a grid.
    #[arg(long)]
    reg: Option<String>,
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long)]
    batch: Option<usize>,
    #[arg(long)]
    lr: Option<f64>,
    /// The seed (or the first of --seeds).
    #[arg(long)]
    seed: Option<u64>,
    /// Run N seeds: seed, seed+1, ...
    #[arg(long)]
    seeds: Option<u64>,
    /// ce, hinge or none.
    #[arg(long)]
    loss: Option<String>,
    #[arg(long)]
    train_size: Option<usize>,
    #[arg(long)]
    label_noise: Option<f64>,
    /// Output directory.
    #[arg(long)]
    out: Option<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// The experiment file.
    file: PathBuf,
    #[command(flatten)]
    common: Common,
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The overrides the flags of `amm train` stand for.
fn overrides(a: &TrainArgs) -> Vec<String> {
    let mut o = Vec::new();
    if let Some(d) = &a.data {
        let (name, path) = match d.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (d.as_str(), None),
        };
        o.push(format!("data.name={}", quote(name)));
        if let Some(p) = path {
            o.push(format!("data.path={}", quote(p)));
        }
    }
    if let Some(m) = &a.model {
        o.push(format!("model.arch={m}"));
    }
    if let Some(r) = &a.reg {
        o.push(format!("reg.pipeline={r}"));
    }
    let mut num = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            o.push(format!("{k}={v}"));
        }
    };
    num("train.epochs", a.epochs.map(|v| v.to_string()));
    num("train.batch", a.batch.map(|v| v.to_string()));
    num("train.lr", a.lr.map(|v| format!("{v:?}")));
    num("train.loss", a.loss.clone());
    num("data.train_size", a.train_size.map(|v| v.to_string()));
    num("data.label_noise", a.label_noise.map(|v| format!("{v:?}")));
    let first = a.seed.unwrap_or(0);
    match a.seeds {
        Some(n) => {
            num("experiment.seeds", Some(format!("[{}]", (first..first + n.max(1)).map(|s| s.to_string()).collect::<Vec<_>>().join(", "))))
        }
        None => num("experiment.seeds", a.seed.map(|s| format!("[{s}]"))),
    }
    if let Some(out) = &a.out {
        o.push(format!("experiment.out={}", quote(out)));
    }
    o
}

pub fn train(a: TrainArgs) -> Result<ExitCode> {
    let reg = super::registry();
    let mut o = overrides(&a);
    o.extend(a.common.set.iter().cloned());
    let grid = dsl::experiment_from_overrides(&o, &reg).map_err(|d| amm_core::anyhow::anyhow!("{d}"))?;
    run_grid(&grid, &a.common)
}

pub fn run(a: RunArgs) -> Result<ExitCode> {
    let reg = super::registry();
    if !a.file.exists() {
        bail!("{}: no such file", a.file.display());
    }
    let grid = dsl::load_experiment(&a.file, &a.common.set, &reg).map_err(|d| amm_core::anyhow::anyhow!("{d}"))?;
    run_grid(&grid, &a.common)
}

/// A short, stable hash of a cell's resolved spec (FNV-1a), so cell folders never collide.
pub fn spec_hash(cell: &Cell) -> String {
    let s = serde_json::to_string(&cell.config).unwrap_or_default();
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{:08x}", (h >> 32) as u32 ^ h as u32)
}

/// The folder of a cell: the experiment's `out`, or a sub-folder per cell when there are several.
pub fn cell_dir(grid: &Grid, cell: &Cell) -> PathBuf {
    let out = PathBuf::from(&cell.config.out);
    if grid.cells.len() == 1 {
        out
    } else {
        out.join(format!("{}-{}", cell.slug(), spec_hash(cell)))
    }
}

fn set_threads(n: usize) {
    if n > 0 {
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
}

fn run_grid(grid: &Grid, c: &Common) -> Result<ExitCode> {
    let device = super::device(&c.device)?;
    let reg = super::registry();
    let many = grid.cells.len() > 1;
    let mut results: Vec<(String, RunResult)> = Vec::new();
    let mut failures = 0;
    for (i, cell) in grid.cells.iter().enumerate() {
        set_threads(cell.config.train.threads);
        let dir = cell_dir(grid, cell);
        let label = if many { format!("[{}/{}] ", i + 1, grid.cells.len()) } else { String::new() };
        let name = cell.axes.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
        if dir.join(amm_core::rundir::RESULT).exists() && (many || c.resume) {
            let r: RunResult = serde_json::from_str(&std::fs::read_to_string(dir.join(amm_core::rundir::RESULT))?)?;
            if !c.quiet {
                eprintln!("{label}{name}: done already ({}), skipped", dir.display());
            }
            results.push((name, r));
            continue;
        }
        if many && !c.quiet {
            eprintln!("{label}{name} -> {}", dir.display());
        }
        let resume = c.resume || (many && dir.join(amm_core::rundir::LAST).exists());
        let mut display = Display::new(c.quiet, &label);
        match train::run(&cell.config, &reg, &RunOptions { out: dir.clone(), resume, device: device.clone() }, &mut display) {
            Ok(r) => results.push((name, r)),
            Err(e) if many => {
                failures += 1;
                eprintln!("{label}{name}: FAILED: {e:#}");
                amm_core::rundir::write_json(&dir.join(amm_core::rundir::FAILED), &serde_json::json!({"error": format!("{e:#}")}))?;
            }
            Err(e) => return Err(e.context(format!("run in {}", dir.display()))),
        }
    }
    if c.json {
        let objs: Vec<_> = results.iter().map(|(n, r)| with_cell(n, r)).collect();
        if objs.len() == 1 {
            println!("{}", serde_json::to_string_pretty(&objs[0])?);
        } else {
            println!("{}", serde_json::to_string_pretty(&objs)?);
        }
    } else {
        print_table(&results);
    }
    if many {
        if let Some(out) = grid.cells.first().map(|c| PathBuf::from(&c.config.out)) {
            let dirs: Vec<(String, PathBuf)> = grid
                .cells
                .iter()
                .map(|cell| (cell.axes.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "), cell_dir(grid, cell)))
                .collect();
            match crate::commands::train::summary_plot(&out.join("summary.svg"), &dirs) {
                Ok(()) if !c.quiet => eprintln!("plot: {}", out.join("summary.svg").display()),
                Ok(()) => {}
                Err(e) => eprintln!("warning: could not write the plot: {e:#}"),
            }
        }
    }
    Ok(if failures == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn with_cell(name: &str, r: &RunResult) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("cell".into(), serde_json::Value::String(name.to_string()));
    }
    v
}

fn print_table(results: &[(String, RunResult)]) {
    if results.is_empty() {
        return;
    }
    let w = results.iter().map(|(n, _)| n.len()).max().unwrap_or(4).max(4);
    println!("{:<w$}  {:>10}  {:>8}  {:>8}  {:>8}  {:>9}  {:>9}", "run", "test err", "margin", "median", "min", "DF ok", "train s");
    for (n, r) in results {
        println!(
            "{:<w$}  {:>9.2}%  {:>8.4}  {:>8.4}  {:>8.4}  {:>8.1}%  {:>9.1}",
            if n.is_empty() { &r.name } else { n },
            100.0 * r.test_error,
            r.margin,
            r.margin_median,
            r.margin_min,
            100.0 * r.attack_success,
            r.train_seconds
        );
    }
}

/// Test error and margin per epoch of several runs, side by side (SVG).
pub fn summary_plot(path: &Path, runs: &[(String, PathBuf)]) -> Result<()> {
    use plotters::prelude::*;
    // (run, [(epoch, test error %, margin)])
    type Series = (String, Vec<(f64, f64, f64)>);
    let mut series: Vec<Series> = Vec::new();
    for (name, dir) in runs {
        let h = train::read_metrics(dir).with_context(|| format!("reading {}", dir.display()))?;
        let pts: Vec<(f64, f64, f64)> =
            h.iter().filter_map(|m| m.test.as_ref().map(|t| (m.epoch as f64, 100.0 * t.error, t.margin))).collect();
        if !pts.is_empty() {
            series.push((name.clone(), pts));
        }
    }
    if series.is_empty() {
        return Ok(());
    }
    let max_ep = series.iter().flat_map(|(_, p)| p.iter().map(|x| x.0)).fold(1.0, f64::max);
    let max_err = series.iter().flat_map(|(_, p)| p.iter().map(|x| x.1)).fold(1.0, f64::max) * 1.1;
    let max_m = series.iter().flat_map(|(_, p)| p.iter().map(|x| x.2)).fold(1e-3, f64::max) * 1.1;
    let root = SVGBackend::new(path, (1100, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(550);
    for (area, title, ymax, pick) in [(left, "test error (%)", max_err, 1usize), (right, "margin (mean DeepFool L2)", max_m, 2usize)] {
        let mut chart = ChartBuilder::on(&area)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(1f64..max_ep.max(2.0), 0f64..ymax)?;
        chart.configure_mesh().x_desc("epoch").y_desc(title).draw()?;
        for (i, (name, pts)) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(pts.iter().map(|p| (p.0, if pick == 1 { p.1 } else { p.2 })), color.stroke_width(2)))?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
    }
    root.present()?;
    Ok(())
}
