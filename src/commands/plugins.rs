//! `amm plugins list [--json]`: the loaded plugins, their files and versions, and what each
//! registered; `amm plugins bundle`: copy the shared libraries amm runs on next to an installed
//! binary (docs/PLUGINS.md); `amm plugins probe` (hidden): the child process in which amm tries
//! plugins before it opens them itself.
use amm_core::anyhow::{anyhow, bail, Context, Result};
use amm_core::dsl::Catalog;
use amm_core::plugin;
use amm_core::serde_json;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Every loaded plugin (from --plugin, --plugin-dir, ./plugins and $AMM_PLUGIN_PATH), its
    /// file and versions, and what it registered.
    List {
        /// One JSON array with an object per registered item: {name, kind, file, amm_version, ...}.
        #[arg(long)]
        json: bool,
    },
    /// Copy libamm_core.so and Rust's libstd (the ones this amm runs on) into DEST, by default
    /// `<directory of amm>/../lib/amm`, where the binary looks first: makes a `cargo install`ed amm
    /// independent of the build directory and of toolchain updates.
    Bundle {
        #[arg(long, value_name = "DIR")]
        dest: Option<PathBuf>,
    },
    /// Internal: the crash probe amm runs before it opens plugins (amm_core::plugin::probe):
    /// loads each FILE in turn in this process and reports each outcome on stdout.
    #[command(hide = true)]
    Probe {
        /// The libamm_core build of the amm that asks; the probe refuses to judge for another.
        #[arg(long)]
        host_build: String,
        files: Vec<PathBuf>,
    },
}

pub fn run(c: Cmd) -> Result<ExitCode> {
    match c {
        Cmd::List { json } => list(json),
        Cmd::Bundle { dest } => bundle(dest),
        // Never through `super::host::registry()`: the probe loads exactly the files it is given.
        Cmd::Probe { host_build, files } => plugin::probe::serve(&host_build, &files).map(|()| ExitCode::SUCCESS),
    }
}

fn list(json: bool) -> Result<ExitCode> {
    let reg = super::host::registry();
    let plugins = super::host::plugins();
    if json {
        let mut items = Vec::new();
        for p in &plugins {
            for (kind, name) in &p.items {
                let doc = reg.schema(*kind, name).map(|s| s.doc.clone()).unwrap_or_default();
                items.push(serde_json::json!({
                    "name": name,
                    "kind": kind.name(),
                    "file": p.file.display().to_string(),
                    "amm_version": p.amm_version,
                    "rustc_version": p.rustc_version,
                    "build_id": p.build_id,
                    "plugin": p.name,
                    "plugin_version": p.version,
                    "candle_check": p.candle_check,
                    "doc": doc,
                }));
            }
        }
        println!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "host: amm {} built by {} (plugin API {}, libamm_core build {})",
        plugin::amm_version(),
        plugin::rustc_version(),
        plugin::API_VERSION,
        plugin::build_id()
    );
    for lib in ["libamm_core", "libstd-"] {
        if let Some(p) = plugin::loaded_library(lib) {
            println!("  {lib:<12} {}", p.display());
        }
    }
    let args = super::host::plugin_args();
    let mut searched: Vec<String> = args.files.iter().map(|f| format!("--plugin {}", f.display())).collect();
    searched.extend(args.dirs.iter().map(|d| format!("--plugin-dir {}", d.display())));
    searched.extend(plugin::default_dirs().iter().map(|d| format!("{}{}", d.display(), if d.is_dir() { "" } else { " (absent)" })));
    println!("searched: {}", searched.join(", "));
    if plugins.is_empty() {
        println!("no plugins loaded");
    }
    for p in &plugins {
        println!("\nplugin {} {}: {}", p.name, p.version, p.file.display());
        println!("  built against amm {} by {} (libamm_core build {})", p.amm_version, p.rustc_version, p.build_id);
        println!("  {}", p.candle_check);
        for (kind, name) in &p.items {
            let s = reg.schema(*kind, name).ok_or_else(|| anyhow!("{name} vanished from the registry"))?;
            println!("  {:<12} {:<40} {}", kind.name(), s.signature(), s.doc);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn bundle(dest: Option<PathBuf>) -> Result<ExitCode> {
    // Never bundle a libamm_core.so this binary was not built against.
    plugin::check_host(plugin::BUILD_ID_NUL)?;
    let exe = std::env::current_exe().context("locating the amm binary")?;
    let dest = match dest {
        Some(d) => d,
        None => exe.parent().and_then(|b| b.parent()).ok_or_else(|| anyhow!("{} has no parent directory", exe.display()))?.join("lib/amm"),
    };
    std::fs::create_dir_all(&dest).with_context(|| format!("creating {}", dest.display()))?;
    for lib in ["libamm_core", "libstd-"] {
        let Some(src) = plugin::loaded_library(lib) else { bail!("cannot find the loaded {lib}*.so in /proc/self/maps") };
        let name = src.file_name().expect("a file");
        let to = dest.join(name);
        if std::fs::canonicalize(&src).ok() == std::fs::canonicalize(&to).ok() {
            println!("{} is already in place", to.display());
            continue;
        }
        // Write a new file and rename it over the old one: a running amm may have it mapped.
        let tmp = dest.join(format!(".{}.tmp", name.to_string_lossy()));
        std::fs::copy(&src, &tmp).with_context(|| format!("copying {} to {}", src.display(), tmp.display()))?;
        std::fs::rename(&tmp, &to)?;
        println!("copied {} -> {}", src.display(), to.display());
    }
    println!(
        "{} now finds its libraries in {} (plugins must be built against this same libamm_core build {})",
        exe.display(),
        dest.display(),
        plugin::build_id()
    );
    Ok(ExitCode::SUCCESS)
}
