//! Where a grid's cells live and what state each is in on disk: the folder of a cell (axes and a
//! hash of its spec), its lock, and done / damaged / failed / running / interrupted / missing.
//! Used by the grid runner, Slurm submission and fine-tuning between cells.
use amm_core::anyhow::{Context, Result};
use amm_core::dsl::{Cell, Grid};
use amm_core::rundir::{self, FAILED, RESULT};
use amm_core::serde_json;
use amm_core::train;
use std::fs::File;
use std::path::{Path, PathBuf};

/// A short, stable hash of text (FNV-1a, folded to 32 bits).
pub fn short_hash(s: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{:08x}", (h >> 32) as u32 ^ h as u32)
}

/// A short, stable hash of a cell's resolved spec without its `out`, so cell folders never
/// collide and a grid folder can be moved (set `experiment.out` to where it is now).
pub fn spec_hash(cell: &Cell) -> String {
    short_hash(&serde_json::to_string(&rundir::identity(&serde_json::to_value(&cell.config).unwrap_or_default())).unwrap_or_default())
}

/// The hash folders had before `out` left the identity: still found, so older grids resume.
fn legacy_spec_hash(cell: &Cell) -> String {
    short_hash(&serde_json::to_string(&cell.config).unwrap_or_default())
}

/// The folder of a cell: the experiment's `out`, or `<out>/<axes>-<hash>` when there are several.
pub fn cell_dir(grid: &Grid, cell: &Cell) -> PathBuf {
    let out = PathBuf::from(&cell.config.out);
    if grid.cells.len() == 1 {
        return out;
    }
    let dir = out.join(format!("{}-{}", cell.slug(), spec_hash(cell)));
    let legacy = out.join(format!("{}-{}", cell.slug(), legacy_spec_hash(cell)));
    if !dir.exists() && legacy.exists() {
        legacy
    } else {
        dir
    }
}

pub fn cell_name(cell: &Cell) -> String {
    cell.axes.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
}

/// The state of a cell on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Done,
    /// A result.json that does not hold a valid result: moved aside and rerun by the next run.
    Damaged,
    Failed,
    /// Locked by a live process.
    Running,
    /// Has a checkpoint but nobody runs it: the next run resumes it.
    Interrupted,
    Missing,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Done => "done",
            State::Damaged => "damaged",
            State::Failed => "failed",
            State::Running => "running",
            State::Interrupted => "interrupted",
            State::Missing => "missing",
        }
    }
}

/// An exclusive lock on a cell, held while it runs.
pub struct CellLock(#[allow(dead_code)] File);

pub fn try_lock(dir: &Path) -> Result<Option<CellLock>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let f = File::options().create(true).truncate(false).write(true).open(dir.join(".lock"))?;
    match f.try_lock() {
        Ok(()) => Ok(Some(CellLock(f))),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

pub fn state(dir: &Path) -> State {
    if dir.join(RESULT).exists() {
        return if train::read_result(&dir.join(RESULT)).is_ok() { State::Done } else { State::Damaged };
    }
    if dir.exists() {
        if let Ok(None) = try_lock(dir) {
            return State::Running;
        }
    }
    if dir.join(FAILED).exists() {
        State::Failed
    } else if rundir::has_checkpoint(dir) {
        State::Interrupted
    } else {
        State::Missing
    }
}
