//! `amm`: train, check and evaluate networks with Adversarial Margin Maximization.

// Every print in the binary goes through `output`, which never panics on a failed write.
macro_rules! println {
    () => { $crate::output::stdout(format_args!("\n")) };
    ($($t:tt)*) => { $crate::output::stdout(format_args!("{}\n", format_args!($($t)*))) };
}
macro_rules! print {
    ($($t:tt)*) => { $crate::output::stdout(format_args!($($t)*)) };
}
macro_rules! eprintln {
    () => { $crate::output::stderr(format_args!("\n")) };
    ($($t:tt)*) => { $crate::output::stderr(format_args!("{}\n", format_args!($($t)*))) };
}
macro_rules! eprint {
    ($($t:tt)*) => { $crate::output::stderr(format_args!($($t)*)) };
}

mod commands;
mod output;
mod progress;
mod results;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "amm", version, about = "Adversarial Margin Maximization: large-margin training with a differentiable DeepFool", long_about = None)]
struct Cli {
    /// Load a plugin (a shared library built against this amm); repeatable. Loading runs its code.
    #[arg(long, global = true, value_name = "PATH")]
    plugin: Vec<std::path::PathBuf>,
    /// Load every plugin in DIR (default: ./plugins and the directories in $AMM_PLUGIN_PATH).
    #[arg(long = "plugin-dir", global = true, value_name = "DIR")]
    plugin_dir: Vec<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check spec files (or a pipeline) against the registry; report every error.
    Check(commands::check::Args),
    /// List every registered proxy, aggregation, shrinkage, model and dataset.
    List(commands::list::Args),
    /// Train one run (or every cell, if the flags hold alternatives) from flags.
    Train(commands::train::TrainArgs),
    /// Run every cell of an experiment file and compare them.
    Run(commands::train::RunArgs),
    /// The same as `run`, for grids: `--jobs N`, `--status`, `--cell K`, `--slurm`.
    Grid(commands::train::RunArgs),
    /// Evaluate a saved run, checkpoint or weights file.
    Eval(commands::eval::Args),
    /// Export a trained model to ONNX or PyTorch (docs/INTEROP.md).
    Export(commands::export::Args),
    /// Check a model's and pipeline's gradients against finite differences (f64).
    Gradcheck(commands::gradcheck::Args),
    /// Time cross-entropy and AMM training steps.
    Bench(commands::bench::Args),
    /// Tables (md, csv, LaTeX) and figures (SVG, PNG) of an experiment's runs: mean ± std over seeds.
    Report(commands::report::Args),
    /// Inspect plugins: `amm plugins list [--json]`.
    #[command(subcommand)]
    Plugins(commands::plugins::Cmd),
}

/// Keeps large tensor buffers in the heap. glibc serves every block above its mmap threshold
/// with a fresh mmap and returns it with munmap; a training step allocates and frees many
/// multi-megabyte tensors, and each munmap in a multi-threaded process costs page faults and a
/// TLB shootdown on every core (measured: about a third of a CE step's cycles; docs/PERFORMANCE.md).
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_TOP_PAD: i32 = -2;
        const M_MMAP_THRESHOLD: i32 = -3;
        // SAFETY: mallopt only changes glibc's allocation policy; called before any thread starts.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, 32 << 20); // glibc's maximum: blocks up to 32 MiB come from the heap
            mallopt(M_TRIM_THRESHOLD, 256 << 20); // keep up to 256 MiB of freed heap for reuse
            mallopt(M_TOP_PAD, 64 << 20); // grow a heap 64 MiB at a time (see below)
        }
        // Without the top pad, the kernels' unwritten outputs (`kernels::uninit`) land on fresh
        // pages, whose faults cost 2-3% of a ResNet-20 CE step.
    }
}

/// Keeps the compute threads at the number of cores. candle runs element-wise ops on its own
/// barrier pool, whose workers spin 25,000 rounds after each op before they sleep; on a 2-core
/// machine that spinning took the core the next GEMM needed (measured: an AMM step 93 → 67 ms
/// and a CE step 10.4 → 7.4 ms with this and [`main`]'s pool; docs/PERFORMANCE.md).
/// candle also asks for the thread count at every matmul, and without `RAYON_NUM_THREADS` it
/// recounts the cores from /proc and /sys each time (3% of a CE step's cycles in perf).
/// A value the user sets wins.
fn tune_threads() {
    // Before any thread starts: nothing reads the environment concurrently.
    if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
        std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", "256");
    }
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", amm_core::candle_core::utils::get_num_threads().to_string());
    }
}

fn main() -> ExitCode {
    tune_allocator();
    tune_threads();
    let cli = Cli::parse();
    // A plugin model without an explicit input VJP trains through candle's double backward, which
    // keeps second-order terms only with CANDLE_GRAD_DO_NOT_DETACH (autograd.rs). Built-in models
    // never need it, so it is set only when plugins will load.
    if std::env::var_os("CANDLE_GRAD_DO_NOT_DETACH").is_none()
        && amm_core::plugin::discover(&cli.plugin, &cli.plugin_dir, true).is_ok_and(|c| !c.is_empty())
    {
        // SAFETY: still single-threaded (nothing has started a thread yet), so nothing reads the
        // environment concurrently.
        unsafe { amm_core::autograd::enable_second_order() };
    }
    commands::set_plugins(commands::PluginArgs { files: cli.plugin, dirs: cli.plugin_dir });
    let cmd = cli.command;
    let go = move || match cmd {
        Command::Check(a) => commands::check::run(a),
        Command::List(a) => commands::list::run(a),
        Command::Train(a) => commands::train::train(a),
        Command::Run(a) | Command::Grid(a) => commands::train::run(a),
        Command::Eval(a) => commands::eval::run(a),
        Command::Export(a) => commands::export::run(a),
        Command::Gradcheck(a) => commands::gradcheck::run(a),
        Command::Bench(a) => commands::bench::run(a),
        Command::Report(a) => commands::report::run(a),
        Command::Plugins(c) => commands::plugins::run(c),
    };
    // The command runs on a worker of candle's thread pool, so that a GEMM splits over that
    // thread and one more instead of parking this thread and waking two others (see tune_threads).
    let result = amm_core::candle_core::utils::with_threadpool(go);
    match result {
        Ok(code) => code,
        Err(e) => {
            // Spec diagnostics carry their own `error:` (with file, line and caret).
            let msg = format!("{e:#}");
            if msg.starts_with("error:") {
                eprintln!("{msg}");
            } else {
                eprintln!("error: {msg}");
            }
            ExitCode::FAILURE
        }
    }
}
