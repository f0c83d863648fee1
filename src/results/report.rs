//! An experiment's runs grouped into configurations (the cells that share everything but the
//! seed), sorted reference first, with the settings that vary between them and their labels.
use super::runs::{find_run_dirs, load_cell, Cell, Status};
use super::settings::{cmp_pipeline, cmp_setting, generic_settings, settings};
use amm_core::anyhow::{bail, Result};
use amm_core::Registry;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

/// The cells that share everything but the seed.
#[derive(Clone, Debug)]
pub struct Config {
    /// Every setting, in display order: `("data.train_size", "1000")`.
    pub settings: Vec<(String, String)>,
    /// Indices into [`Report::cells`], by seed.
    pub cells: Vec<usize>,
}

impl Config {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.settings.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn is_reference(&self) -> bool {
        self.get("reg") == Some("none")
    }
}

/// The runs of an experiment folder, grouped into configurations.
pub struct Report {
    pub cells: Vec<Cell>,
    /// Sorted: reference first, then by the varying settings.
    pub configs: Vec<Config>,
    /// The settings that differ between configurations (never empty: `reg` when none does).
    pub varying: Vec<String>,
}

impl Report {
    pub fn load(roots: &[PathBuf], reg: &Registry, only: &[String]) -> Result<Report> {
        let mut cells: Vec<Cell> = Vec::new();
        for root in roots {
            for d in find_run_dirs(root)? {
                let mut c = load_cell(root, &d)?;
                if roots.len() > 1 {
                    c.rel = root.join(&c.rel).to_string_lossy().into_owned();
                }
                cells.push(c);
            }
        }
        // Group by the spec without its seed.
        let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, c) in cells.iter().enumerate() {
            let mut s = c.spec.clone();
            if let Some(o) = s.as_object_mut() {
                // Which experiment ran a run, and where it was written, say nothing about it.
                o.remove("seed");
                o.remove("out");
                o.remove("name");
            }
            groups.entry(s.to_string()).or_default().push(i);
        }
        let mut configs: Vec<Config> = groups
            .into_values()
            .map(|mut idx| {
                idx.sort_by(|&a, &b| cells[a].seed.cmp(&cells[b].seed).then(cells[a].rel.cmp(&cells[b].rel)));
                let first = &cells[idx[0]];
                let settings = match &first.config {
                    Some(c) => settings(c, reg),
                    None => generic_settings(&first.spec),
                };
                Config { settings, cells: idx }
            })
            .collect();
        if !only.is_empty() {
            configs.retain(|c| {
                let r = c.get("reg").unwrap_or("none");
                // `=TEXT` is the whole regularizer, TEXT any part of it.
                only.iter().any(|o| match o.trim().strip_prefix('=') {
                    Some(exact) => r == exact.trim(),
                    None => r.contains(o.trim()),
                })
            });
            if configs.is_empty() {
                bail!("--only {}: no configuration's regularizer contains any of these", only.join(","));
            }
        }
        // The settings that vary, in the order of the first configuration's settings.
        let mut keys: Vec<String> = Vec::new();
        for c in &configs {
            for (k, _) in &c.settings {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
        let mut varying: Vec<String> = keys
            .into_iter()
            .filter(|k| {
                let first = configs[0].get(k);
                configs.iter().any(|c| c.get(k) != first)
            })
            .collect();
        if varying.is_empty() {
            varying.push("reg".into());
        }
        let pipeline = |c: &Config| cells[c.cells[0]].config.as_ref().and_then(|r| r.reg.as_ref());
        configs.sort_by(|a, b| {
            b.is_reference().cmp(&a.is_reference()).then_with(|| {
                varying
                    .iter()
                    .map(|k| match (k.as_str(), pipeline(a), pipeline(b)) {
                        ("reg", Some(x), Some(y)) => cmp_pipeline(x, y, reg),
                        _ => cmp_setting(a.get(k).unwrap_or(""), b.get(k).unwrap_or("")),
                    })
                    .find(|o| o.is_ne())
                    .unwrap_or(Ordering::Equal)
            })
        });
        Ok(Report { cells, configs, varying })
    }

    /// The cells of a configuration.
    pub fn cells_of<'a>(&'a self, c: &'a Config) -> impl Iterator<Item = &'a Cell> + 'a {
        c.cells.iter().map(move |&i| &self.cells[i])
    }

    /// A configuration's name from its varying settings (except `skip`): the bare value when
    /// one setting varies, `key=value` pairs otherwise.
    pub fn label(&self, c: &Config, skip: &[&str]) -> String {
        let keys: Vec<&String> = self.varying.iter().filter(|k| !skip.contains(&k.as_str())).collect();
        match keys.as_slice() {
            [] => c.get("reg").unwrap_or("run").to_string(),
            [k] => c.get(k).unwrap_or("").to_string(),
            ks => ks.iter().map(|k| format!("{k}={}", c.get(k).unwrap_or(""))).collect::<Vec<_>>().join(", "),
        }
    }

    /// Cells without a result, for the notes under the table.
    pub fn unfinished(&self) -> Vec<&Cell> {
        self.configs.iter().flat_map(|c| self.cells_of(c)).filter(|c| c.result().is_none()).collect()
    }

    /// Lines about unfinished cells, each prefixed (`% ` in LaTeX); empty when all finished.
    pub fn notes(&self, prefix: &str) -> String {
        let un = self.unfinished();
        if un.is_empty() {
            return String::new();
        }
        let mut s = format!("{prefix}Not finished: {} of {} runs\n", un.len(), self.cells.len());
        for c in un {
            let what = match &c.status {
                Status::Failed(e) => format!("failed: {}", e.lines().next().unwrap_or("")),
                Status::Running(k, n) => format!("running or interrupted (epoch {k} of {n})"),
                Status::Missing => "missing (not started)".to_string(),
                Status::Damaged(e) => format!("damaged, left out: {e}"),
                Status::Done(_) => unreachable!("finished cells are filtered out"),
            };
            let _ = writeln!(s, "{prefix}- {} (seed {}): {what}", c.rel, c.seed);
        }
        s
    }
}
