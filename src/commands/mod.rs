//! One module per `amm` subcommand.
pub mod check;
pub mod eval;
pub mod gradcheck;
pub mod grid;
pub mod list;
pub mod slurm;
pub mod train;

use amm_core::anyhow::{bail, Result};
use amm_core::Registry;

/// The `--plugin` / `--plugin-dir` flags, given once for the whole command line.
#[derive(Clone, Debug, Default)]
pub struct PluginArgs {
    pub files: Vec<std::path::PathBuf>,
    pub dirs: Vec<std::path::PathBuf>,
}

static PLUGINS: std::sync::OnceLock<PluginArgs> = std::sync::OnceLock::new();

pub fn set_plugins(p: PluginArgs) {
    let _ = PLUGINS.set(p);
}

pub fn plugin_args() -> PluginArgs {
    PLUGINS.get().cloned().unwrap_or_default()
}

/// The registry every command works with: the built-ins (plugins: see `plugin_args`).
pub fn registry() -> Registry {
    Registry::with_builtins()
}

/// Parses `--device cpu|cuda[:N]`.
pub fn device(spec: &str) -> Result<amm_core::candle_core::Device> {
    match spec {
        "cpu" => Ok(amm_core::candle_core::Device::Cpu),
        s if s.starts_with("cuda") => {
            let n: usize = s
                .strip_prefix("cuda")
                .and_then(|r| r.strip_prefix(':'))
                .unwrap_or("0")
                .parse()
                .map_err(|_| amm_core::anyhow::anyhow!("bad device `{s}`: use cpu or cuda:N"))?;
            if !amm_core::candle_core::utils::cuda_is_available() {
                bail!("--device {s}: this amm was built without CUDA; rebuild with `cargo build --release --features cuda`");
            }
            Ok(amm_core::candle_core::Device::new_cuda(n)?)
        }
        s => bail!("unknown device `{s}`: use cpu or cuda:N"),
    }
}
