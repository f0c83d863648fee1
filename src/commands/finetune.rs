//! Cells that start from another cell's result: `train.init = "cell:KEY=VALUE"` names the cell of
//! the same grid whose axes are this cell's with KEY set to VALUE (the same seed, the same other
//! values). The paper's two-step protocol in one grid:
//!
//! ```text
//! [reg]
//! pipeline = { none, deepfool(l2, 5) |> min(class, 0.2) |> exp(c=2, d=1) |> weight(32) }
//! [train]
//! init = "cell:reg.pipeline=none"
//! ```
//!
//! The reference cells name themselves and start from scratch; each AMM cell fine-tunes from the
//! reference of its seed, which the grid runs first. The reference is written as text in the
//! spec (the cell's folder and hash do not depend on where the other cell lives); it becomes the
//! other cell's folder only when the cell runs.
use super::cells::cell_dir;
use amm_core::anyhow::{bail, Result};
use amm_core::dsl::{Cell, Grid, RunConfig};
use amm_core::rundir::RESULT;

const PREFIX: &str = "cell:";

/// The cell (index) that `k`'s `train.init` names, if it names another cell of the grid (which
/// must not start from another cell itself).
pub fn source(grid: &Grid, k: usize) -> Result<Option<usize>> {
    let Some(j) = target(grid, k)? else { return Ok(None) };
    if target(grid, j)?.is_some() {
        bail!("train.init: cell {j}, which cell {k} starts from, starts from another cell itself; chains of fine-tuning are not supported");
    }
    Ok(Some(j))
}

fn target(grid: &Grid, k: usize) -> Result<Option<usize>> {
    let cell = &grid.cells[k];
    let Some(text) = source_text(cell) else { return Ok(None) };
    let Some((key, value)) = text.split_once('=') else {
        bail!("train.init = \"{PREFIX}{text}\": write {PREFIX}KEY=VALUE, e.g. \"cell:reg.pipeline=none\"")
    };
    let (key, value) = (key.trim(), value.trim());
    if !cell.axes.iter().any(|(k, _)| k == key) {
        let axes: Vec<&str> = cell.axes.iter().map(|(k, _)| k.as_str()).filter(|k| *k != "seed").collect();
        bail!("train.init = \"{PREFIX}{text}\": `{key}` is not an axis of this grid (its axes: {})", axes.join(", "));
    }
    let wanted: Vec<(&str, &str)> =
        cell.axes.iter().map(|(k, v)| if k == key { (k.as_str(), value) } else { (k.as_str(), v.as_str()) }).collect();
    let same =
        |c: &Cell| c.axes.len() == wanted.len() && c.axes.iter().zip(&wanted).all(|((k, v), (wk, wv))| k == wk && norm(v) == norm(wv));
    match grid.cells.iter().position(same) {
        Some(j) if j == k => Ok(None),
        Some(j) => Ok(Some(j)),
        None => bail!(
            "train.init = \"{PREFIX}{text}\": no cell of the grid has {key} = {value} (the values of {key} are written as in the spec)"
        ),
    }
}

fn source_text(c: &Cell) -> Option<&str> {
    c.config.train.init.as_deref().and_then(|i| i.strip_prefix(PREFIX))
}

/// Values compared without their spaces: `deepfool(l2,5)` is `deepfool(l2, 5)`.
fn norm(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Cell `k`'s config as it runs: a `cell:` init becomes the other cell's folder (which must hold
/// a finished run), or nothing for a cell that names itself.
pub fn resolved(grid: &Grid, k: usize) -> Result<RunConfig> {
    let mut cfg = grid.cells[k].config.clone();
    if source_text(&grid.cells[k]).is_none() {
        return Ok(cfg);
    }
    match source(grid, k)? {
        None => cfg.train.init = None,
        Some(j) => {
            let dir = cell_dir(grid, &grid.cells[j]);
            if !dir.join(RESULT).exists() {
                bail!(
                    "this cell fine-tunes from cell {j} ({}), which has not finished: run the whole grid, which runs it first",
                    dir.display()
                );
            }
            cfg.train.init = Some(dir.display().to_string());
        }
    }
    Ok(cfg)
}

/// The order to run the cells in: every cell after the cell it starts from.
pub fn order(grid: &Grid) -> Result<Vec<usize>> {
    let mut first = Vec::new();
    let mut then = Vec::new();
    for k in 0..grid.cells.len() {
        if source(grid, k)?.is_some() {
            then.push(k);
        } else {
            first.push(k);
        }
    }
    first.extend(then);
    Ok(first)
}
