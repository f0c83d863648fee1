//! Loading every plugin a command names ([`load_all`]): each file once, crash-probed in a child
//! process first, with the rules that make a failure a warning or an error ([`LoadReport`]).
use super::abi::{NotAPlugin, PluginInfo};
use super::discover::{Candidate, Source};
use super::elf::inspect_elf;
use super::load::{load, loaded};
use super::{loaded_library, probe};
use crate::registry::Registry;
use anyhow::{anyhow, Result};
use std::path::{Path, PathBuf};

/// What [`load_all`] did: the plugins it loaded, the files it skipped (with why), and the errors
/// that must end the command. Every problem is kept, not just the first.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub plugins: Vec<PluginInfo>,
    pub warnings: Vec<String>,
    pub errors: Vec<anyhow::Error>,
}

impl LoadReport {
    /// The plugins, or one error holding every error (one per line, after the first each
    /// starting with `error: `).
    pub fn into_result(self) -> Result<Vec<PluginInfo>> {
        let mut errors = self.errors.into_iter();
        let Some(first) = errors.next() else { return Ok(self.plugins) };
        let rest: Vec<String> = errors.map(|e| format!("\nerror: {e:#}")).collect();
        if rest.is_empty() {
            Err(first)
        } else {
            Err(anyhow!("{first:#}{}", rest.concat()))
        }
    }
}

/// A file to judge: the candidate that named it first, and its canonical path (none if it cannot
/// be resolved: then it fails in [`load`], naming the path given).
type Todo<'a> = (&'a Candidate, Option<PathBuf>);

/// What became of a file that failed.
enum Outcome {
    Warning(String),
    Error(anyhow::Error),
    /// A plugin refused in a --plugin-dir (the directory, the warning): a warning or an
    /// error, decided at the end.
    DirRefused(PathBuf, String, anyhow::Error),
}

/// Loads every candidate into `registry`, each file once, in order. Every file that would run
/// code here is first opened in a child process ([`probe`]): one that crashes there is refused
/// instead of crashing this process.
///
/// A file named with `--plugin` that fails is an error. In a `--plugin-dir`, a file that fails is
/// skipped with a warning and the others load; but if none of that directory's files loads and one
/// of them was a refused plugin (not merely a file that is not a plugin at all), its refusals are
/// errors. Anything in the default directories that fails is skipped with a warning. Once there is
/// an error, no further plugin is opened here (the command will fail), but every file is still
/// judged and reported.
pub fn load_all(candidates: &[Candidate], registry: &mut Registry, probe: &probe::ProbeCommand) -> LoadReport {
    let (todo, aliases) = unique_files(candidates);
    let verdicts = probe_first(&todo, probe);
    let mut report = LoadReport::default();
    let mut outcomes = Vec::new();
    let mut loaded_from: Vec<usize> = Vec::new();
    let mut failed = false;
    for (k, ((c, _), verdict)) in todo.iter().zip(verdicts).enumerate() {
        let result = match verdict {
            Some(Err(e)) => Err(e),
            Some(Ok(())) if failed => continue,
            _ => load(&c.path, registry),
        };
        let e = match result {
            Ok(info) => {
                report.plugins.push(info);
                loaded_from.push(k);
                continue;
            }
            Err(e) => e,
        };
        let not_plugin = e.chain().any(|c| c.is::<NotAPlugin>());
        let skip = |d: &Path, e: &anyhow::Error| format!("skipping {} (found in {}): {e:#}", c.path.display(), d.display());
        outcomes.push(match &c.source {
            Source::File => {
                failed = true;
                Outcome::Error(e)
            }
            Source::Default(d) => Outcome::Warning(skip(d, &e)),
            Source::Dir(d) if not_plugin => Outcome::Warning(skip(d, &e)),
            Source::Dir(d) => Outcome::DirRefused(d.clone(), skip(d, &e), e),
        });
    }
    let dir_loaded =
        |d: &Path| loaded_from.iter().any(|&k| todo[k].0.source == Source::Dir(d.to_path_buf()) || aliases.contains(&(k, d.to_path_buf())));
    for o in outcomes {
        match o {
            Outcome::Warning(w) => report.warnings.push(w),
            Outcome::Error(e) => report.errors.push(e),
            Outcome::DirRefused(d, w, _) if dir_loaded(&d) => report.warnings.push(w),
            Outcome::DirRefused(d, _, e) => {
                report.errors.push(e.context(format!("--plugin-dir {}: no plugin there could be loaded", d.display())))
            }
        }
    }
    report
}

/// Each file once, where it is named first (--plugin before directories), without amm's own
/// libraries found in a scanned directory; and the other directories naming a file kept (its
/// index, the directory), for the "nothing in that directory loaded" rule.
fn unique_files(candidates: &[Candidate]) -> (Vec<Todo<'_>>, Vec<(usize, PathBuf)>) {
    // amm's own libraries may sit in a scanned directory (e.g. --plugin-dir target/release).
    let own: Vec<PathBuf> =
        ["libamm_core", "libstd-"].iter().filter_map(|l| loaded_library(l)).filter_map(|p| std::fs::canonicalize(p).ok()).collect();
    let mut todo: Vec<Todo> = Vec::new();
    let mut aliases: Vec<(usize, PathBuf)> = Vec::new();
    for c in candidates {
        let canon = std::fs::canonicalize(&c.path).ok();
        if let Some(f) = &canon {
            if c.source != Source::File && own.contains(f) {
                continue;
            }
            if let Some(k) = todo.iter().position(|(_, g)| g.as_ref() == Some(f)) {
                if let Source::Dir(d) = &c.source {
                    aliases.push((k, d.clone()));
                }
                continue;
            }
        }
        todo.push((c, canon));
    }
    (todo, aliases)
}

/// Probes, in one child, the files whose loading here would run their code: those that pass the
/// ELF check and are not open in this process yet. The others fail (or are found) in [`load`]
/// without running anything of theirs. One verdict per file, none for those not probed.
fn probe_first(todo: &[Todo], probe: &probe::ProbeCommand) -> Vec<Option<Result<()>>> {
    let open_here: Vec<PathBuf> = loaded().into_iter().map(|i| i.file).collect();
    let probed: Vec<usize> =
        (0..todo.len()).filter(|&k| todo[k].1.as_ref().is_some_and(|f| !open_here.contains(f) && inspect_elf(f).is_ok())).collect();
    let files: Vec<PathBuf> = probed.iter().map(|&k| todo[k].1.clone().expect("probed files exist")).collect();
    let mut verdicts: Vec<Option<Result<()>>> = (0..todo.len()).map(|_| None).collect();
    for (k, v) in probed.into_iter().zip(probe::probe(probe, &files)) {
        verdicts[k] = Some(v);
    }
    verdicts
}
