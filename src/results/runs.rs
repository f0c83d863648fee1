//! The run folders of an experiment and what became of each: finished (result.json), damaged,
//! failed (failed.json), running or interrupted (metrics.jsonl so far) or not started.
use amm_core::anyhow::{bail, Context, Result};
use amm_core::dsl::RunConfig;
use amm_core::rundir::{FAILED, METRICS_JSONL, RESULT, SPEC};
use amm_core::serde_json::{self, Value};
use std::path::{Path, PathBuf};

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

/// One run folder, read; `rel` is its path relative to `root`.
pub fn load_cell(root: &Path, dir: &Path) -> Result<Cell> {
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
