//! Finding plugin files: those named with `--plugin`, the `lib*.so` files of `--plugin-dir`
//! directories and of the default directories ([`discover`]).
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Where a plugin file came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// `--plugin PATH`.
    File,
    /// `--plugin-dir DIR`.
    Dir(PathBuf),
    /// `./plugins` or a directory of `$AMM_PLUGIN_PATH`.
    Default(PathBuf),
}

/// A file to load.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub path: PathBuf,
    pub source: Source,
}

/// The default directories: `./plugins`, then those of `$AMM_PLUGIN_PATH` (colon-separated).
pub fn default_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("./plugins")];
    if let Some(p) = std::env::var_os("AMM_PLUGIN_PATH") {
        dirs.extend(std::env::split_paths(&p).filter(|d| !d.as_os_str().is_empty()));
    }
    dirs
}

/// The plugin files in `dir`: every `lib*.so` directly in it (not in subdirectories), by name.
pub fn plugins_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).with_context(|| format!("plugin directory {}", dir.display()))?;
    let mut files: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("lib") && n.ends_with(".so")))
        .collect();
    files.sort();
    Ok(files)
}

/// The files named by `--plugin`, those in `--plugin-dir` directories (which must exist), and
/// with `defaults`, those in [`default_dirs`] that exist.
pub fn discover(files: &[PathBuf], dirs: &[PathBuf], defaults: bool) -> Result<Vec<Candidate>> {
    let mut out: Vec<Candidate> = files.iter().map(|p| Candidate { path: p.clone(), source: Source::File }).collect();
    for d in dirs {
        if !d.is_dir() {
            bail!("--plugin-dir {}: not a directory", d.display());
        }
        out.extend(plugins_in(d)?.into_iter().map(|path| Candidate { path, source: Source::Dir(d.clone()) }));
    }
    if defaults {
        for d in default_dirs() {
            if d.is_dir() {
                out.extend(plugins_in(&d)?.into_iter().map(|path| Candidate { path, source: Source::Default(d.clone()) }));
            }
        }
    }
    Ok(out)
}
