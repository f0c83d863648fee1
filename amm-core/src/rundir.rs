//! A run directory: the resolved spec, per-epoch metrics (JSONL and CSV), checkpoints and the
//! final `result.json`. Every file is written atomically (temporary file, fsync, rename), so a run
//! killed at any moment leaves either the old or the new version of each file, never half of one.
//! Checkpoints carry a checksum of their tensors, so a damaged one is detected, never trusted;
//! the checkpoint before the last is kept as a fallback.
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const SPEC: &str = "spec.json";
pub const METRICS_JSONL: &str = "metrics.jsonl";
pub const METRICS_CSV: &str = "metrics.csv";
pub const LAST: &str = "checkpoint-last.safetensors";
/// The checkpoint before [`LAST`]: what a resume falls back to when the last one is damaged.
pub const PREV: &str = "checkpoint-prev.safetensors";
pub const BEST: &str = "checkpoint-best.safetensors";
pub const RESULT: &str = "result.json";
pub const FAILED: &str = "failed.json";

/// An I/O error with what was being done, naming a full disk as such (its most common cause
/// in long runs, and the one a user can fix).
pub fn io_error(e: std::io::Error, doing: impl std::fmt::Display) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::StorageFull || e.kind() == std::io::ErrorKind::QuotaExceeded {
        anyhow::anyhow!("{doing}: the disk is full ({e}); free some space and run the same command with --resume")
    } else {
        anyhow::anyhow!("{doing}: {e}")
    }
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io_error(e, format_args!("creating {}", dir.display())))?;
    let tmp = tmp_path(path);
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_error(e, format_args!("writing {}", path.display())));
    }
    commit(&tmp, path)
}

/// Removes the temporary files (`.NAME.tmpPID`) that killed writers left in `dir`: those whose
/// process is gone. Returns how many were removed.
pub fn clean_stale_tmp(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix('.').and_then(|n| n.rsplit_once(".tmp")).and_then(|(_, p)| p.parse::<u32>().ok()) else {
            continue;
        };
        let alive = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
        if !alive && std::fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
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

/// The safetensors metadata key of the checksum.
pub const CHECKSUM_KEY: &str = "amm.checksum";

/// FNV-1a (64 bit) over every tensor's name, dtype, shape and bytes, in name order: it detects
/// any changed byte of the data, which safetensors' own header checks do not.
fn checksum<'a>(tensors: impl Iterator<Item = (&'a str, String, &'a [usize], std::borrow::Cow<'a, [u8]>)>) -> String {
    let mut items: Vec<_> = tensors.collect();
    items.sort_by(|a, b| a.0.cmp(b.0));
    let mut h: u64 = 0xcbf29ce484222325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    };
    for (name, dtype, shape, data) in &items {
        eat(name.as_bytes());
        eat(dtype.as_bytes());
        for d in shape.iter() {
            eat(&(*d as u64).to_le_bytes());
        }
        eat(data);
    }
    format!("fnv1a64:{h:016x}")
}

/// Saves named tensors as safetensors, atomically, with a checksum in the metadata
/// ([`load_tensors`] verifies it).
pub fn save_tensors(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<()> {
    save_tensors_with(path, tensors, &HashMap::new())
}

/// [`save_tensors`] with extra metadata entries (strings) in the file's header.
pub fn save_tensors_with(path: &Path, tensors: &HashMap<String, Tensor>, metadata: &HashMap<String, String>) -> Result<()> {
    use safetensors::View;
    if let Some(d) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).map_err(|e| io_error(e, format_args!("creating {}", d.display())))?;
    }
    // Contiguous CPU copies: what View reads, and what the checksum must see.
    let cpu: Vec<(&String, Tensor)> =
        tensors.iter().map(|(k, t)| Ok((k, t.to_device(&Device::Cpu)?.contiguous()?))).collect::<Result<_>>()?;
    let sum = checksum(cpu.iter().map(|(k, t)| (k.as_str(), format!("{:?}", t.dtype()), t.dims(), t.data())));
    let mut meta = metadata.clone();
    meta.insert(CHECKSUM_KEY.into(), sum);
    let bytes = safetensors::serialize(cpu.iter().map(|(k, t)| (k.as_str(), t)), Some(meta))
        .with_context(|| format!("encoding {}", path.display()))?;
    write_atomic(path, &canonical_header(bytes).with_context(|| format!("encoding {}", path.display()))?)
}

/// The file with its JSON header's keys in sorted order. safetensors writes the metadata from a
/// `HashMap`, whose order changes from process to process; sorted, the same tensors and metadata
/// always give the same bytes (runs with the same seed write identical checkpoints). The header
/// keeps its length (the same keys and values, compact), so the data offsets stay valid.
fn canonical_header(mut bytes: Vec<u8>) -> Result<Vec<u8>> {
    fn sorted(v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::String(k.clone()).to_string());
                    out.push(':');
                    sorted(&m[k], out);
                }
                out.push('}');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let n = u64::from_le_bytes(bytes.get(..8).context("no header")?.try_into()?) as usize;
    let header = bytes.get(8..8 + n).context("a truncated header")?;
    let mut text = String::with_capacity(n);
    sorted(&serde_json::from_slice(header)?, &mut text);
    anyhow::ensure!(text.len() <= n, "the sorted header is longer than the written one");
    bytes[8..8 + text.len()].copy_from_slice(text.as_bytes());
    bytes[8 + text.len()..8 + n].fill(b' ');
    Ok(bytes)
}

/// Loads a safetensors file; a checksum in its metadata must match the data ("damaged" error
/// naming the file otherwise). Files without one (older amm, other tools) load as they are.
pub fn load_tensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    Ok(load_tensors_meta(path)?.0)
}

/// [`load_tensors`] and the file's metadata.
pub fn load_tensors_meta(path: &Path) -> Result<(HashMap<String, Tensor>, HashMap<String, String>)> {
    let bytes = std::fs::read(path).map_err(|e| io_error(e, format_args!("reading {}", path.display())))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| anyhow::anyhow!("{} is not a readable safetensors file ({e}): it is damaged or of another format", path.display()))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let meta: HashMap<String, String> = header.metadata().clone().unwrap_or_default();
    if let Some(stored) = meta.get(CHECKSUM_KEY) {
        let names = st.names();
        let views: Vec<_> = names.iter().map(|&n| (n, st.tensor(n))).collect();
        let mut items = Vec::with_capacity(views.len());
        for (n, v) in &views {
            let v = v.as_ref().map_err(|e| anyhow::anyhow!("{}: tensor `{n}`: {e}", path.display()))?;
            items.push((*n, to_candle_dtype(v.dtype()), v.shape(), std::borrow::Cow::Borrowed(v.data())));
        }
        let computed = checksum(items.into_iter());
        if &computed != stored {
            bail!(
                "{} is damaged: its checksum does not match its contents (stored {stored}, computed {computed}); the file was changed after amm wrote it",
                path.display()
            );
        }
    }
    let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).with_context(|| format!("reading {}", path.display()))?;
    Ok((tensors, meta))
}

/// The candle dtype a safetensors dtype loads as (its Debug name is what the checksum hashes).
fn to_candle_dtype(d: safetensors::Dtype) -> String {
    use safetensors::Dtype as S;
    match d {
        S::U8 => "U8",
        S::U32 => "U32",
        S::I64 => "I64",
        S::BF16 => "BF16",
        S::F16 => "F16",
        S::F32 => "F32",
        S::F64 => "F64",
        _ => "other",
    }
    .to_string()
}

/// Renames a damaged file to `NAME.damaged` (`NAME.damaged.2`, ... if taken) so that it is kept
/// for inspection but no longer trusted; returns the new path.
pub fn move_aside(path: &Path) -> Result<PathBuf> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut k = 1;
    let mut to = path.with_file_name(format!("{name}.damaged"));
    while to.exists() {
        k += 1;
        to = path.with_file_name(format!("{name}.damaged.{k}"));
    }
    std::fs::rename(path, &to).map_err(|e| io_error(e, format_args!("moving {} aside", path.display())))?;
    Ok(to)
}

/// Whether `dir` holds a checkpoint to resume from ([`LAST`], or [`PREV`] when a kill came
/// between their rotation and the next write).
pub fn has_checkpoint(dir: &Path) -> bool {
    dir.join(LAST).exists() || dir.join(PREV).exists()
}

/// Saves the epoch's checkpoint as [`LAST`], keeping the one it replaces as [`PREV`].
pub fn rotate_and_save(dir: &Path, tensors: &HashMap<String, Tensor>, metadata: &HashMap<String, String>) -> Result<()> {
    let last = dir.join(LAST);
    if last.exists() {
        std::fs::rename(&last, dir.join(PREV)).map_err(|e| io_error(e, format_args!("renaming {}", last.display())))?;
    }
    save_tensors_with(&last, tensors, metadata)
}

/// The spec as it identifies a run: everything but where it is written (`out`), so a run
/// folder that is moved or copied stays resumable.
pub fn identity(spec: &serde_json::Value) -> serde_json::Value {
    let mut v = spec.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("out");
    }
    v
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
        let diff = json_diff(&identity(&old), &identity(spec));
        if !diff.is_empty() {
            bail!(
                "{} holds a run of a different spec; refusing to mix them. What changed:\n  {}\nWrite this run elsewhere (--out DIR, or experiment.out in a spec), or delete the folder.",
                dir.display(),
                diff.join("\n  ")
            );
        }
        if dir.join(RESULT).exists() && !resume {
            bail!("{} already holds a finished run (result.json); write this one elsewhere (--out DIR, or experiment.out in a spec), or delete the folder", dir.display());
        }
        if !resume && has_checkpoint(dir) {
            bail!("{} holds an interrupted run; pass --resume to continue it, or delete the directory", dir.display());
        }
    }
    Ok(resume && has_checkpoint(dir))
}

/// Records the spec of the run in `dir` (once its data and model have loaded).
pub fn write_spec(dir: &Path, spec: &serde_json::Value) -> Result<()> {
    let p = dir.join(SPEC);
    if p.exists() {
        return Ok(());
    }
    write_json(&p, spec)
}
