//! A run directory: the resolved spec, per-epoch metrics (JSONL and CSV), checkpoints and the
//! final `result.json`. Every file is written atomically (temporary file, fsync, rename), so a run
//! killed at any moment leaves either the old or the new version of each file, never half of one.
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const SPEC: &str = "spec.json";
pub const METRICS_JSONL: &str = "metrics.jsonl";
pub const METRICS_CSV: &str = "metrics.csv";
pub const LAST: &str = "checkpoint-last.safetensors";
pub const BEST: &str = "checkpoint-best.safetensors";
pub const RESULT: &str = "result.json";
pub const FAILED: &str = "failed.json";

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = tmp_path(path);
    {
        let mut f = std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(bytes).with_context(|| format!("writing {}", tmp.display()))?;
        f.sync_all()?;
    }
    commit(&tmp, path)
}

fn tmp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp{}", std::process::id()))
}

fn commit(tmp: &Path, path: &Path) -> Result<()> {
    std::fs::rename(tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(if dir.as_os_str().is_empty() { Path::new(".") } else { dir }) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Writes `value` as pretty JSON, atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut s = serde_json::to_string_pretty(value)?;
    s.push('\n');
    write_atomic(path, s.as_bytes())
}

/// Saves named tensors as safetensors, atomically.
pub fn save_tensors(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<()> {
    let tmp = tmp_path(path);
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    candle_core::safetensors::save(tensors, &tmp).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::File::open(&tmp)?.sync_all()?;
    commit(&tmp, path)
}

pub fn load_tensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load(path, &Device::Cpu).with_context(|| format!("reading checkpoint {}", path.display()))
}

/// The keys in which two JSON documents differ (`train.epochs: 3 -> 5`).
pub fn json_diff(old: &serde_json::Value, new: &serde_json::Value) -> Vec<String> {
    fn walk(prefix: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
        match (a, b) {
            (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
                let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
                keys.sort();
                keys.dedup();
                for k in keys {
                    let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    let null = serde_json::Value::Null;
                    walk(&p, x.get(k).unwrap_or(&null), y.get(k).unwrap_or(&null), out);
                }
            }
            _ if a != b => out.push(format!("{prefix}: {a} -> {b}")),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", old, new, &mut out);
    out
}

/// Checks that `dir` may hold a run of `spec`: empty, or (with `resume`) the same spec. Writes
/// nothing (the spec is written by [`write_spec`] once the run has really started, so a run that
/// fails to load its data does not claim the directory). Returns whether a checkpoint to resume
/// from exists.
pub fn check_dir(dir: &Path, spec: &serde_json::Value, resume: bool) -> Result<bool> {
    let spec_path = dir.join(SPEC);
    if spec_path.exists() {
        let old: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&spec_path)?)
            .with_context(|| format!("{} is not valid JSON", spec_path.display()))?;
        let diff = json_diff(&old, spec);
        if !diff.is_empty() {
            bail!(
                "{} holds a run of a different spec; refusing to mix them. What changed:\n  {}\nUse another output directory, or delete this one.",
                dir.display(),
                diff.join("\n  ")
            );
        }
        if dir.join(RESULT).exists() && !resume {
            bail!("{} already holds a finished run (result.json); use another output directory or delete it", dir.display());
        }
        if !resume && dir.join(LAST).exists() {
            bail!("{} holds an interrupted run; pass --resume to continue it, or delete the directory", dir.display());
        }
    }
    Ok(resume && dir.join(LAST).exists())
}

/// Records the spec of the run in `dir` (once its data and model have loaded).
pub fn write_spec(dir: &Path, spec: &serde_json::Value) -> Result<()> {
    let p = dir.join(SPEC);
    if p.exists() {
        return Ok(());
    }
    write_json(&p, spec)
}
