//! `amm report DIR`: the tables and figures of an experiment's runs.
//!
//! DIR is an experiment's output folder (one sub-folder per cell, possibly nested one level) or
//! a single run folder. Cells are grouped into configurations (the cell's spec without its seed);
//! (`out`, where the runs were written, does not count either);
//! the table has one row per configuration (the reference model, `reg = none`, first), a column
//! per setting that differs between configurations, the number of finished seeds `n`, and
//! mean ± sample standard deviation (n − 1) over seeds of each metric.
use crate::plot;
use amm_core::anyhow::{bail, Context, Result};
use amm_core::dsl::{Catalog, PipelineSpec, RunConfig, StageSpec, Value as DslValue};
use amm_core::rundir::{FAILED, METRICS_JSONL, RESULT, SPEC};
use amm_core::serde_json::{self, Value};
use amm_core::Registry;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A GitHub Markdown table.
    Md,
    /// Comma-separated values, mean and std in separate columns.
    Csv,
    /// A LaTeX booktabs tabular.
    Latex,
}

#[derive(clap::Args)]
pub struct Args {
    /// An experiment's output folder (its cells' run folders), or one run folder; several are
    /// merged into one table (a configuration is its spec, whichever experiment ran it).
    #[arg(required = true, num_args = 1..)]
    dirs: Vec<PathBuf>,
    /// Only the configurations whose regularizer (as the table shows it) contains one of these
    /// texts, e.g. `--only none,"min |> exp",linear`.
    #[arg(long, value_delimiter = ',', value_name = "TEXT")]
    only: Vec<String>,
    /// Table format.
    #[arg(long, value_enum, default_value = "md")]
    format: Format,
    /// Metric columns: numeric fields of result.json (test_error, margin, margin_median,
    /// margin_min, margin_rel, attack_success, margin_long, val_error, train_seconds, ms_per_step, ...).
    #[arg(long, value_delimiter = ',', default_value = "test_error,margin")]
    metrics: Vec<String>,
    /// Also write figures (SVG and PNG) into this folder.
    #[arg(long, value_name = "OUT")]
    plots: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let report = Report::load(&a.dirs, &crate::commands::registry(), &a.only)?;
    let metrics = a.metrics.iter().map(|m| m.trim()).filter(|m| !m.is_empty()).map(String::from).collect::<Vec<_>>();
    report.check_metrics(&metrics)?;
    print!("{}", report.table(&metrics, a.format));
    if a.format == Format::Csv {
        eprint!("{}", report.notes(""));
    }
    if let Some(out) = &a.plots {
        let written = plot::report_figures(&report, out)?;
        for p in written {
            eprintln!("plot: {}", p.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

// ============================================================================================
// Loading
// ============================================================================================

/// What became of one cell.
#[derive(Clone, Debug)]
pub enum Status {
    /// Finished: its result.json.
    Done(Value),
    /// A result.json that is not a valid result (truncated, edited, poisoned): why.
    Damaged(String),
    /// failed.json: the error.
    Failed(String),
    /// Epochs written so far (metrics.jsonl) and the epochs asked for; no result yet.
    Running(usize, usize),
    /// Nothing but the spec.
    Missing,
}

/// One run folder.
#[derive(Clone, Debug)]
pub struct Cell {
    pub dir: PathBuf,
    /// The folder relative to the report's DIR (`.` for a single run).
    pub rel: String,
    pub spec: Value,
    /// The spec as a typed config, when it is one.
    pub config: Option<RunConfig>,
    pub seed: u64,
    pub status: Status,
}

impl Cell {
    pub fn result(&self) -> Option<&Value> {
        match &self.status {
            Status::Done(v) => Some(v),
            _ => None,
        }
    }

    /// A numeric field of result.json (None when absent, null or not finite); a dotted name
    /// reaches into objects (`robust.best_known_median`, `robust.attacks.fmn.median_norm`).
    pub fn metric(&self, name: &str) -> Option<f64> {
        let mut v = self.result()?;
        for part in name.split('.') {
            v = v.get(part)?;
        }
        v.as_f64().filter(|x| x.is_finite())
    }
}

/// The cells that share everything but the seed.
#[derive(Clone, Debug)]
pub struct Config {
    /// Every setting, in display order: `("data.train_size", "1000")`.
    pub settings: Vec<(String, String)>,
    /// Indices into [`Report::cells`], by seed.
    pub cells: Vec<usize>,
}

impl Config {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.settings.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn is_reference(&self) -> bool {
        self.get("reg") == Some("none")
    }
}

/// The runs of an experiment folder, grouped into configurations.
pub struct Report {
    pub cells: Vec<Cell>,
    /// Sorted: reference first, then by the varying settings.
    pub configs: Vec<Config>,
    /// The settings that differ between configurations (never empty: `reg` when none does).
    pub varying: Vec<String>,
}

/// The run folders under `dir`: `dir` itself if it holds a spec.json, else its sub-folders (and
/// their sub-folders) that do, sorted by path.
pub fn find_run_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        bail!("{}: no such directory", dir.display());
    }
    if dir.join(SPEC).is_file() {
        return Ok(vec![dir.to_path_buf()]);
    }
    let subdirs = |d: &Path| -> Result<Vec<PathBuf>> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d)
            .with_context(|| format!("reading {}", d.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        v.sort();
        Ok(v)
    };
    let mut out = Vec::new();
    for d in subdirs(dir)? {
        if d.join(SPEC).is_file() {
            out.push(d);
        } else {
            out.extend(subdirs(&d)?.into_iter().filter(|s| s.join(SPEC).is_file()));
        }
    }
    if out.is_empty() {
        bail!("{}: no run folders (folders with a {SPEC}) here or one or two levels down", dir.display());
    }
    out.sort();
    Ok(out)
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

fn load_cell(root: &Path, dir: &Path) -> Result<Cell> {
    let spec = read_json(&dir.join(SPEC))?;
    let config: Option<RunConfig> = serde_json::from_value(spec.clone()).ok();
    let seed = spec.get("seed").and_then(Value::as_u64).unwrap_or(0);
    let status = if dir.join(FAILED).is_file() {
        let err = read_json(&dir.join(FAILED)).ok().and_then(|v| v.get("error").and_then(Value::as_str).map(String::from));
        Status::Failed(err.unwrap_or_else(|| "unknown error".into()))
    } else if dir.join(RESULT).is_file() {
        match amm_core::train::read_result(&dir.join(RESULT)) {
            Ok(_) => Status::Done(read_json(&dir.join(RESULT))?),
            Err(e) => Status::Damaged(format!("{e:#}")),
        }
    } else {
        let epochs_done =
            std::fs::read_to_string(dir.join(METRICS_JSONL)).map(|t| t.lines().filter(|l| !l.trim().is_empty()).count()).unwrap_or(0);
        let epochs = spec.pointer("/train/epochs").and_then(Value::as_u64).unwrap_or(0) as usize;
        if epochs_done > 0 {
            Status::Running(epochs_done, epochs)
        } else {
            Status::Missing
        }
    };
    let rel = match dir.strip_prefix(root) {
        Ok(p) if p.as_os_str().is_empty() => ".".to_string(),
        Ok(p) => p.to_string_lossy().into_owned(),
        Err(_) => dir.to_string_lossy().into_owned(),
    };
    Ok(Cell { dir: dir.to_path_buf(), rel, spec, config, seed, status })
}

/// A number as the spec language writes it (`0.2`, `1e-4`, `3`).
pub fn num(x: f64) -> String {
    DslValue::Float(x).to_string()
}

fn values_equal(a: &DslValue, b: &DslValue) -> bool {
    match (a, b) {
        (DslValue::Int(_) | DslValue::Float(_), DslValue::Int(_) | DslValue::Float(_)) => {
            let f = |v: &DslValue| match v {
                DslValue::Int(i) => *i as f64,
                DslValue::Float(x) => *x,
                _ => f64::NAN,
            };
            f(a) == f(b)
        }
        (DslValue::List(x), DslValue::List(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| values_equal(a, b)),
        _ => a == b,
    }
}

/// Parameters added after runs had been made, with the behaviour those runs had: `deepfool`'s
/// iterates were constants (`chain=none`) before the exact gradient.
const LEGACY: [(&str, &str, &str); 1] = [("deepfool", "chain", "none")];

/// A stage as short source text: required parameters by position, others by name and only
/// where they differ from the default (`deepfool(l2)`, `min`, `exp(c=3)`). Stages the registry
/// does not know print in full.
pub fn compact_stage(s: &StageSpec, reg: &Registry) -> String {
    let Some(schema) = reg.schema(s.kind, &s.name) else { return s.to_string() };
    let mut parts = Vec::new();
    let mut positional = true;
    for p in &schema.params {
        let Some(v) = s.args.get(&p.name) else {
            positional = false;
            // A spec written before the parameter existed: say what that amm did.
            if let Some((_, _, was)) = LEGACY.iter().find(|(stage, param, _)| *stage == s.name && *param == p.name) {
                parts.push(format!("{}={was}", p.name));
            }
            continue;
        };
        match &p.default {
            None if positional => parts.push(v.to_string()),
            None => parts.push(format!("{}={v}", p.name)),
            Some(d) if values_equal(d, v) => positional = false,
            Some(_) => {
                positional = false;
                parts.push(format!("{}={v}", p.name));
            }
        }
    }
    // Arguments the schema does not list (a newer spec) are kept, by name.
    for (k, v) in s.args.iter() {
        if !schema.params.iter().any(|p| p.name == k) {
            parts.push(format!("{k}={v}"));
        }
    }
    if parts.is_empty() {
        s.name.clone()
    } else {
        format!("{}({})", s.name, parts.join(", "))
    }
}

/// A pipeline as short source text (see [`compact_stage`]).
pub fn compact_pipeline(p: &PipelineSpec, reg: &Registry) -> String {
    let mut s = format!("{} |> {}", compact_stage(&p.proxy, reg), compact_stage(&p.aggregation, reg));
    if p.normalize {
        s.push_str(" |> normalize");
    }
    let _ = write!(s, " |> {}", compact_stage(&p.shrinkage, reg));
    if p.weight != 1.0 {
        let _ = write!(s, " |> weight({})", num(p.weight));
    }
    s
}

/// Every setting of a run config but its seed, in display order.
pub fn settings(c: &RunConfig, reg: &Registry) -> Vec<(String, String)> {
    let opt = |v: Option<usize>| v.map_or("all".to_string(), |n| n.to_string());
    let d = &c.data;
    let t = &c.train;
    let e = &c.eval;
    let v: Vec<(&str, String)> = vec![
        ("data.name", d.name.clone()),
        ("data.path", d.path.clone().unwrap_or_else(|| "default".into())),
        ("data.train_size", opt(d.train_size)),
        ("data.test_size", opt(d.test_size)),
        ("data.label_noise", num(d.label_noise)),
        ("data.val_size", d.val_size.to_string()),
        ("data.mean_subtract", d.mean_subtract.to_string()),
        ("data.crop", d.crop.to_string()),
        ("data.flip", d.flip.to_string()),
        ("model", compact_stage(&c.model, reg)),
        ("train.epochs", t.epochs.to_string()),
        ("train.batch", t.batch.to_string()),
        ("train.optimizer", t.optimizer.to_string()),
        ("train.lr", num(t.lr)),
        ("train.schedule", t.schedule.to_string()),
        ("train.momentum", num(t.momentum)),
        ("train.weight_decay", num(t.weight_decay)),
        ("train.clip", num(t.clip)),
        ("train.loss", t.loss.to_string()),
        ("train.dtype", t.dtype.to_string()),
        ("train.threads", t.threads.to_string()),
        ("reg", c.reg.as_ref().map_or("none".to_string(), |p| compact_pipeline(p, reg))),
        ("eval.iters", e.iters.to_string()),
        ("eval.overshoot", num(e.overshoot)),
        ("eval.long_iters", e.long_iters.to_string()),
        ("eval.every", e.every.to_string()),
        ("eval.samples", e.samples.to_string()),
    ];
    v.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Settings of a spec.json that is not a run config of this amm: its leaves, dotted.
fn generic_settings(spec: &Value) -> Vec<(String, String)> {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    if p != "seed" && p != "out" {
                        walk(&p, v, out);
                    }
                }
            }
            Value::String(s) => out.push((prefix.to_string(), s.clone())),
            Value::Null => out.push((prefix.to_string(), "none".into())),
            other => out.push((prefix.to_string(), other.to_string())),
        }
    }
    let mut out = Vec::new();
    walk("", spec, &mut out);
    out
}

/// Orders setting values: numbers by value before words, words alphabetically.
fn cmp_setting(a: &str, b: &str) -> Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.total_cmp(&y),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        _ => a.cmp(b),
    }
}

/// Orders pipelines stage by stage: by the stage's place in the registry (avg before min; lin,
/// inv, exp as the paper's tables), then by its arguments in the schema's order, then λ.
fn cmp_pipeline(a: &PipelineSpec, b: &PipelineSpec, reg: &Registry) -> Ordering {
    let stage = |x: &StageSpec, y: &StageSpec| {
        let pos = |s: &StageSpec| reg.position(s.kind, &s.name).unwrap_or(usize::MAX);
        pos(x).cmp(&pos(y)).then_with(|| x.name.cmp(&y.name)).then_with(|| {
            let names = reg.schema(x.kind, &x.name).map(|s| s.params.iter().map(|p| p.name.clone()).collect::<Vec<_>>());
            let names = names.unwrap_or_else(|| x.args.iter().map(|(k, _)| k.to_string()).collect());
            let arg = |s: &StageSpec, k: &str| s.args.get(k).map(|v| v.to_string()).unwrap_or_default();
            names.iter().map(|k| cmp_setting(&arg(x, k), &arg(y, k))).find(|o| o.is_ne()).unwrap_or(Ordering::Equal)
        })
    };
    stage(&a.proxy, &b.proxy)
        .then_with(|| stage(&a.aggregation, &b.aggregation))
        .then_with(|| a.normalize.cmp(&b.normalize))
        .then_with(|| stage(&a.shrinkage, &b.shrinkage))
        .then_with(|| a.weight.total_cmp(&b.weight))
}

impl Report {
    pub fn load(roots: &[PathBuf], reg: &Registry, only: &[String]) -> Result<Report> {
        let mut cells: Vec<Cell> = Vec::new();
        for root in roots {
            for d in find_run_dirs(root)? {
                let mut c = load_cell(root, &d)?;
                if roots.len() > 1 {
                    c.rel = root.join(&c.rel).to_string_lossy().into_owned();
                }
                cells.push(c);
            }
        }
        // Group by the spec without its seed.
        let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, c) in cells.iter().enumerate() {
            let mut s = c.spec.clone();
            if let Some(o) = s.as_object_mut() {
                // Which experiment ran a run, and where it was written, say nothing about it.
                o.remove("seed");
                o.remove("out");
                o.remove("name");
            }
            groups.entry(s.to_string()).or_default().push(i);
        }
        let mut configs: Vec<Config> = groups
            .into_values()
            .map(|mut idx| {
                idx.sort_by(|&a, &b| cells[a].seed.cmp(&cells[b].seed).then(cells[a].rel.cmp(&cells[b].rel)));
                let first = &cells[idx[0]];
                let settings = match &first.config {
                    Some(c) => settings(c, reg),
                    None => generic_settings(&first.spec),
                };
                Config { settings, cells: idx }
            })
            .collect();
        if !only.is_empty() {
            configs.retain(|c| {
                let r = c.get("reg").unwrap_or("none");
                only.iter().any(|o| r.contains(o.trim()))
            });
            if configs.is_empty() {
                bail!("--only {}: no configuration's regularizer contains any of these", only.join(","));
            }
        }
        // The settings that vary, in the order of the first configuration's settings.
        let mut keys: Vec<String> = Vec::new();
        for c in &configs {
            for (k, _) in &c.settings {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
        let mut varying: Vec<String> = keys
            .into_iter()
            .filter(|k| {
                let first = configs[0].get(k);
                configs.iter().any(|c| c.get(k) != first)
            })
            .collect();
        if varying.is_empty() {
            varying.push("reg".into());
        }
        let pipeline = |c: &Config| cells[c.cells[0]].config.as_ref().and_then(|r| r.reg.as_ref());
        configs.sort_by(|a, b| {
            b.is_reference().cmp(&a.is_reference()).then_with(|| {
                varying
                    .iter()
                    .map(|k| match (k.as_str(), pipeline(a), pipeline(b)) {
                        ("reg", Some(x), Some(y)) => cmp_pipeline(x, y, reg),
                        _ => cmp_setting(a.get(k).unwrap_or(""), b.get(k).unwrap_or("")),
                    })
                    .find(|o| o.is_ne())
                    .unwrap_or(Ordering::Equal)
            })
        });
        Ok(Report { cells, configs, varying })
    }

    /// The cells of a configuration.
    pub fn cells_of<'a>(&'a self, c: &'a Config) -> impl Iterator<Item = &'a Cell> + 'a {
        c.cells.iter().map(move |&i| &self.cells[i])
    }

    /// A configuration's name from its varying settings (except `skip`): the bare value when
    /// one setting varies, `key=value` pairs otherwise.
    pub fn label(&self, c: &Config, skip: &[&str]) -> String {
        let keys: Vec<&String> = self.varying.iter().filter(|k| !skip.contains(&k.as_str())).collect();
        match keys.as_slice() {
            [] => c.get("reg").unwrap_or("run").to_string(),
            [k] => c.get(k).unwrap_or("").to_string(),
            ks => ks.iter().map(|k| format!("{k}={}", c.get(k).unwrap_or(""))).collect::<Vec<_>>().join(", "),
        }
    }

    /// Fails on a metric no result holds and amm does not write.
    pub fn check_metrics(&self, metrics: &[String]) -> Result<()> {
        if metrics.is_empty() {
            bail!("--metrics: name at least one metric");
        }
        let mut available: Vec<String> = KNOWN_METRICS.iter().map(|s| s.to_string()).collect();
        // Every numeric leaf, nested ones by their dotted path.
        fn leaves(prefix: &str, v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    for (k, x) in m {
                        leaves(&if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") }, x, out);
                    }
                }
                Value::Number(_) if !out.iter().any(|o| o == prefix) => out.push(prefix.to_string()),
                _ => {}
            }
        }
        for c in &self.cells {
            if let Some(r) = c.result() {
                leaves("", r, &mut available);
            }
        }
        for m in metrics {
            if !available.contains(m) {
                bail!("--metrics: no result has a numeric `{m}`; known: {}", available.join(", "));
            }
        }
        Ok(())
    }

    /// Cells without a result, for the notes under the table.
    pub fn unfinished(&self) -> Vec<&Cell> {
        self.configs.iter().flat_map(|c| self.cells_of(c)).filter(|c| c.result().is_none()).collect()
    }

    /// Lines about unfinished cells, each prefixed (`% ` in LaTeX); empty when all finished.
    pub fn notes(&self, prefix: &str) -> String {
        let un = self.unfinished();
        if un.is_empty() {
            return String::new();
        }
        let mut s = format!("{prefix}Not finished: {} of {} runs\n", un.len(), self.cells.len());
        for c in un {
            let what = match &c.status {
                Status::Failed(e) => format!("failed: {}", e.lines().next().unwrap_or("")),
                Status::Running(k, n) => format!("running or interrupted (epoch {k} of {n})"),
                Status::Missing => "missing (not started)".to_string(),
                Status::Damaged(e) => format!("damaged, left out: {e}"),
                Status::Done(_) => unreachable!("finished cells are filtered out"),
            };
            let _ = writeln!(s, "{prefix}- {} (seed {}): {what}", c.rel, c.seed);
        }
        s
    }

    /// The table in a format.
    pub fn table(&self, metrics: &[String], format: Format) -> String {
        let rows: Vec<Row> = self.configs.iter().map(|c| self.row(c, metrics)).collect();
        let specs: Vec<MetricFormat> = metrics.iter().map(|m| metric_format(m)).collect();
        match format {
            Format::Md => self.markdown(&rows, &specs),
            Format::Csv => self.csv(&rows, &specs),
            Format::Latex => self.latex(&rows, &specs),
        }
    }

    fn row(&self, c: &Config, metrics: &[String]) -> Row {
        let cells: Vec<&Cell> = self.cells_of(c).collect();
        let stats = metrics
            .iter()
            .map(|m| {
                let f = metric_format(m);
                let xs: Vec<f64> = cells.iter().filter_map(|cell| cell.metric(m)).map(|x| x * f.scale).collect();
                mean_std(&xs)
            })
            .collect();
        Row {
            axes: self.varying.iter().map(|k| c.get(k).unwrap_or("").to_string()).collect(),
            n: cells.iter().filter(|c| c.result().is_some()).count(),
            failed: cells.iter().filter(|c| matches!(c.status, Status::Failed(_))).count(),
            missing: cells.iter().filter(|c| matches!(c.status, Status::Running(..) | Status::Missing)).count(),
            stats,
        }
    }

    fn markdown(&self, rows: &[Row], specs: &[MetricFormat]) -> String {
        let mut header: Vec<String> = self.varying.clone();
        header.push("n".into());
        header.extend(specs.iter().map(|s| s.header.clone()));
        let body: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                let mut v: Vec<String> = r.axes.iter().map(|a| a.replace('|', "\\|")).collect();
                v.push(r.n.to_string());
                v.extend(r.stats.iter().zip(specs).map(|(st, f)| match st {
                    None => "-".to_string(),
                    Some((m, None)) => fmt_fixed(*m, f.decimals),
                    Some((m, Some(s))) => format!("{} ± {}", fmt_fixed(*m, f.decimals), fmt_fixed(*s, f.decimals)),
                }));
                v
            })
            .collect();
        let ncol = header.len();
        let width = |i: usize| body.iter().map(|r| r[i].chars().count()).chain([header[i].chars().count(), 3]).max().unwrap_or(3);
        let widths: Vec<usize> = (0..ncol).map(width).collect();
        let left = self.varying.len();
        let line = |cells: &[String]| {
            let parts: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let pad = widths[i] - c.chars().count();
                    if i < left {
                        format!("{c}{}", " ".repeat(pad))
                    } else {
                        format!("{}{c}", " ".repeat(pad))
                    }
                })
                .collect();
            format!("| {} |\n", parts.join(" | "))
        };
        let mut s = line(&header);
        let rule: Vec<String> = (0..ncol)
            .map(|i| if i < left { format!(":{}", "-".repeat(widths[i] - 1)) } else { format!("{}:", "-".repeat(widths[i] - 1)) })
            .collect();
        s.push_str(&format!("| {} |\n", rule.join(" | ")));
        for r in &body {
            s.push_str(&line(r));
        }
        let notes = self.notes("");
        if !notes.is_empty() {
            s.push('\n');
            s.push_str(&notes);
        }
        s
    }

    fn csv(&self, rows: &[Row], specs: &[MetricFormat]) -> String {
        let mut header: Vec<String> = self.varying.clone();
        header.extend(["n", "failed", "missing"].map(String::from));
        for f in specs {
            header.push(format!("{}_mean", f.csv));
            header.push(format!("{}_std", f.csv));
        }
        let mut s = header.iter().map(|h| csv_field(h)).collect::<Vec<_>>().join(",");
        s.push('\n');
        for r in rows {
            let mut v: Vec<String> = r.axes.iter().map(|a| csv_field(a)).collect();
            v.extend([r.n, r.failed, r.missing].map(|x| x.to_string()));
            for (st, f) in r.stats.iter().zip(specs) {
                match st {
                    None => v.extend([String::new(), String::new()]),
                    Some((m, sd)) => {
                        v.push(fmt_fixed(*m, f.decimals));
                        v.push(sd.map(|x| fmt_fixed(x, f.decimals)).unwrap_or_default());
                    }
                }
            }
            s.push_str(&v.join(","));
            s.push('\n');
        }
        s
    }

    fn latex(&self, rows: &[Row], specs: &[MetricFormat]) -> String {
        let left = self.varying.len();
        let mut s = format!("\\begin{{tabular}}{{{}r{}}}\n\\toprule\n", "l".repeat(left), "c".repeat(specs.len()));
        let mut header: Vec<String> = self.varying.iter().map(|k| latex_escape(k)).collect();
        header.push("$n$".into());
        header.extend(specs.iter().map(|f| latex_escape(&f.header)));
        s.push_str(&header.join(" & "));
        s.push_str(" \\\\\n\\midrule\n");
        for r in rows {
            let mut v: Vec<String> = r
                .axes
                .iter()
                .map(|a| if a.parse::<f64>().is_ok() { a.clone() } else { format!("\\texttt{{{}}}", latex_escape(a)) })
                .collect();
            v.push(r.n.to_string());
            v.extend(r.stats.iter().zip(specs).map(|(st, f)| match st {
                None => "--".to_string(),
                Some((m, None)) => format!("${}$", fmt_fixed(*m, f.decimals)),
                Some((m, Some(sd))) => format!("${} \\pm {}$", fmt_fixed(*m, f.decimals), fmt_fixed(*sd, f.decimals)),
            }));
            s.push_str(&v.join(" & "));
            s.push_str(" \\\\\n");
        }
        s.push_str("\\bottomrule\n\\end{tabular}\n");
        s.push_str(&self.notes("% "));
        s
    }
}

/// Fields of result.json that may be asked for even before any run finished.
const KNOWN_METRICS: &[&str] = &[
    "test_error",
    "margin",
    "margin_min",
    "margin_median",
    "margin_rel",
    "attack_success",
    "margin_long",
    "val_error",
    "best_epoch",
    "train_seconds",
    "ms_per_step",
    "params",
    "train_samples",
    "test_samples",
    "epochs",
];

struct Row {
    axes: Vec<String>,
    n: usize,
    failed: usize,
    missing: usize,
    /// Per metric: (mean, sample std when n ≥ 2), None when no finished run has it.
    stats: Vec<Option<(f64, Option<f64>)>>,
}

/// How a metric is shown: its header, CSV column stem, scale and decimals.
#[derive(Clone, Debug)]
pub struct MetricFormat {
    pub header: String,
    pub csv: String,
    pub scale: f64,
    pub decimals: usize,
}

pub fn metric_format(name: &str) -> MetricFormat {
    let percent = |header: &str, decimals| MetricFormat { header: header.into(), csv: format!("{name}_pct"), scale: 100.0, decimals };
    let plain = |decimals| MetricFormat { header: name.into(), csv: name.into(), scale: 1.0, decimals };
    let named = |header: &str, decimals| MetricFormat { header: header.into(), csv: name.into(), scale: 1.0, decimals };
    match name {
        "robust.best_known_median" => named("best-known margin (median)", 3),
        "robust.best_known_mean" => named("best-known margin (mean)", 3),
        "robust.clean_error" => percent("clean error (%)", 2),
        n if n.starts_with("robust.attacks.") && n.ends_with("_norm") => plain(3),
        "test_error" => percent("test error (%)", 2),
        "val_error" => percent("val error (%)", 2),
        "attack_success" => percent("attack success (%)", 1),
        "margin" | "margin_min" | "margin_median" | "margin_long" | "train_margin" | "train_margin_min" => plain(3),
        "train_seconds" | "best_epoch" | "epochs" => plain(1),
        "ms_per_step" => plain(2),
        "params" | "train_samples" | "test_samples" => plain(0),
        _ => plain(4),
    }
}

/// Mean and sample standard deviation (n − 1; None for one value); None for no values.
pub fn mean_std(xs: &[f64]) -> Option<(f64, Option<f64>)> {
    if xs.is_empty() {
        return None;
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let std = (xs.len() > 1).then(|| (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
    Some((mean, std))
}

/// Fixed decimals, never `-0.00`.
pub fn fmt_fixed(x: f64, decimals: usize) -> String {
    let s = format!("{x:.decimals$}");
    if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
        s[1..].to_string()
    } else {
        s
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn latex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\textbackslash{}"),
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            '~' => out.push_str("\\textasciitilde{}"),
            '^' => out.push_str("\\textasciicircum{}"),
            c => out.push(c),
        }
    }
    out
}
