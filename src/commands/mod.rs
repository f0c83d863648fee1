//! One module per `amm` subcommand (bench, check, eval, export, gradcheck, list, plugins, report,
//! train/run/grid), over the pieces they share: `host` (registry and device), `flags`, `saved`
//! (opening saved runs and weights), `cells` (a grid cell's folder and state), `grid` (running
//! cells), `finetune` (cells that start from other cells) and `slurm`.
pub mod bench;
pub mod cells;
pub mod check;
pub mod eval;
pub mod export;
pub mod finetune;
pub mod flags;
pub mod gradcheck;
pub mod grid;
pub mod host;
pub mod list;
pub mod plugins;
pub mod report;
pub mod saved;
pub mod slurm;
pub mod train;

// What main.rs uses.
pub use host::{registry, set_plugins, PluginArgs};
