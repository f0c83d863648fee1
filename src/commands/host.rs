//! What every command works with: the registry of built-ins and plugins (loaded once per process,
//! from `--plugin`, `--plugin-dir`, `./plugins` and `$AMM_PLUGIN_PATH`) and the device.
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

/// The built-ins and every plugin, built once per process.
static REGISTRY: std::sync::OnceLock<Result<(Registry, Vec<amm_core::PluginInfo>), String>> = std::sync::OnceLock::new();

fn load_registry() -> Result<(Registry, Vec<amm_core::PluginInfo>)> {
    // This binary must run with the libamm_core.so it was linked against (plugins are checked
    // against the loaded library, so a mismatch here would go unnoticed otherwise).
    amm_core::plugin::check_host(amm_core::plugin::BUILD_ID_NUL)?;
    let mut reg = Registry::with_builtins();
    let args = plugin_args();
    let candidates = amm_core::plugin::discover(&args.files, &args.dirs, true)?;
    // Plugins are tried first in a child (`amm plugins probe`), so one that crashes cannot take amm down.
    let probe = amm_core::plugin::probe::ProbeCommand::this_executable(&["plugins", "probe"]);
    let report = amm_core::plugin::load_all(&candidates, &mut reg, &probe);
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    Ok((reg, report.into_result()?))
}

/// The plugins loaded by [`registry`] (loading them on first use).
pub fn plugins() -> Vec<amm_core::PluginInfo> {
    registry_and_plugins().1
}

fn registry_and_plugins() -> (Registry, Vec<amm_core::PluginInfo>) {
    match REGISTRY.get_or_init(|| load_registry().map_err(|e| format!("{e:#}"))) {
        Ok(r) => r.clone(),
        Err(e) => {
            // Every command starts by asking for the registry; a plugin that cannot be loaded
            // ends the command before it does anything.
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

/// The registry every command works with: the built-ins and the plugins named by `--plugin`,
/// `--plugin-dir`, `./plugins` and `$AMM_PLUGIN_PATH` (docs/PLUGINS.md).
pub fn registry() -> Registry {
    registry_and_plugins().0
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
