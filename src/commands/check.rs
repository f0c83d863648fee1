//! `amm check FILE... | --reg PIPELINE [--json]`.
use amm_core::anyhow::Result;
use amm_core::dsl::{self, Diagnostics};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Experiment files (.amm) to check.
    files: Vec<PathBuf>,
    /// Check a regularizer pipeline given as text instead.
    #[arg(long)]
    reg: Option<String>,
    /// Overrides applied to the files, as `amm run` would (`train.epochs=3`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Print one JSON object {ok, cells, errors: [{file, line, column, message}]}.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let reg = super::host::registry();
    if a.files.is_empty() && a.reg.is_none() {
        amm_core::anyhow::bail!("nothing to check: give spec files, or --reg \"PIPELINE\"");
    }
    let mut cells = 0usize;
    let mut diags: Vec<dsl::Diagnostic> = Vec::new();
    let mut lines = Vec::new();
    if let Some(p) = &a.reg {
        match dsl::parse_pipeline(p, &reg) {
            Ok(v) => {
                cells += v.len();
                for s in &v {
                    lines.push(s.as_ref().map_or("none".to_string(), |s| s.to_string()));
                }
            }
            Err(Diagnostics(d)) => diags.extend(d),
        }
    }
    for f in &a.files {
        match dsl::load_experiment(f, &a.set, &reg) {
            Ok(g) => {
                cells += g.cells.len();
                lines.push(format!("{}: {} cell{}", f.display(), g.cells.len(), if g.cells.len() == 1 { "" } else { "s" }));
            }
            Err(Diagnostics(d)) => diags.extend(d),
        }
    }
    let ok = diags.is_empty();
    if a.json {
        let errors: Vec<_> = diags
            .iter()
            .map(|d| serde_json::json!({"file": d.file, "line": d.line, "column": d.column, "message": d.message, "help": d.help}))
            .collect();
        println!("{}", serde_json::json!({"ok": ok, "cells": cells, "errors": errors}));
    } else if ok {
        for l in lines {
            println!("{l}");
        }
        println!("ok: {cells} cell{}", if cells == 1 { "" } else { "s" });
    } else {
        eprintln!("{}", Diagnostics(diags.clone()));
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

use amm_core::serde_json;
