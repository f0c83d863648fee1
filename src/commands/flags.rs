//! The flags that `amm train`, `amm run` and `amm grid` share: how to run the cells (resume,
//! parallel jobs, one cell, status) and the Slurm options.

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
    /// Run up to N cells at once, each in its own process (the cores are split between them).
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Run only cell K (0-based) of the grid: what `--jobs` and Slurm array tasks run.
    #[arg(long, value_name = "K")]
    pub cell: Option<usize>,
    /// List the cells as done, running, failed, interrupted or missing, and exit.
    #[arg(long)]
    pub status: bool,
    #[command(flatten)]
    pub slurm: SlurmArgs,
}

/// `--slurm` and its options.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct SlurmArgs {
    /// Write an sbatch job-array script for the missing cells and submit it (or print it, if
    /// `sbatch` is not found or with --dry-run).
    #[arg(long)]
    pub slurm: bool,
    /// Slurm partition of the array jobs (sbatch --partition) [default: the cluster's default].
    #[arg(long, requires = "slurm")]
    pub partition: Option<String>,
    /// Wall-time limit per cell, e.g. 04:00:00.
    #[arg(long, requires = "slurm")]
    pub time: Option<String>,
    /// CPUs per cell.
    #[arg(long, requires = "slurm", default_value_t = 2)]
    pub cpus: usize,
    /// At most K array tasks at once (the `%K` of --array).
    #[arg(long = "max-parallel", requires = "slurm")]
    pub max_parallel: Option<usize>,
    /// Print the script instead of submitting it.
    #[arg(long = "dry-run", requires = "slurm")]
    pub dry_run: bool,
}
