//! Experiment files (`.amm`): sections, keys, includes, overrides, and the run grid.
//!
//! ```text
//! # specs/mnist-ablation.amm
//! include "base.amm"              # relative to this file; later keys override earlier ones
//!
//! [experiment]
//! seeds = [0, 1, 2]               # the seed axis
//!
//! [train]
//! lr = {0.01, 0.005}              # alternatives: a grid axis
//!
//! [reg]
//! pipeline = deepfool(l2, 5) |> {avg, min(class, 0.2)} |> exp(c=2, d=1) |> weight(32)
//! ```
//!
//! A file is cut into statements by the scanner (a value may continue over lines inside
//! brackets or around `|>`), each statement is parsed on its own so each bad line gets its own
//! error, keys are checked against [`KEYS`], then `--set key=value` overrides are applied. The
//! grid is the cross product of every key's alternatives and the seeds, bounded by
//! [`MAX_CELLS`](crate::expand::MAX_CELLS) cells.
mod config;
mod files;
mod keys;
mod loader;
mod setting;

pub use config::{default_config, Cell, DType, DataConfig, EvalConfig, Grid, Loss, Optimizer, RunConfig, Schedule, TrainConfig};
pub use files::{MAX_SPEC_BYTES, MAX_THREADS};
pub use keys::{KeyDoc, KEYS, SECTIONS};
pub use loader::{experiment_from_overrides, experiment_from_source, load_experiment};
