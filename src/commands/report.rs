//! `amm report DIR`: the tables and figures of an experiment's runs.
//!
//! DIR is an experiment's output folder (one sub-folder per cell, possibly nested one level) or
//! a single run folder. Cells are grouped into configurations (the cell's spec without its seed);
//! (`out`, where the runs were written, does not count either);
//! the table has one row per configuration (the reference model, `reg = none`, first), a column
//! per setting that differs between configurations, the number of finished seeds `n`, and
//! mean ± sample standard deviation (n − 1) over seeds of each metric.
//!
//! The work is the results library's (`crate::results`); this is the command line.
use crate::results::plot;
use crate::results::report::Report;
use crate::results::table::Table;
use amm_core::anyhow::Result;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A GitHub Markdown table.
    Md,
    /// Comma-separated values, mean and std in separate columns.
    Csv,
    /// A LaTeX booktabs tabular.
    Latex,
}

#[derive(clap::Args)]
pub struct Args {
    /// An experiment's output folder (its cells' run folders), or one run folder; several are
    /// merged into one table (a configuration is its spec, whichever experiment ran it).
    #[arg(required = true, num_args = 1..)]
    dirs: Vec<PathBuf>,
    /// Only the configurations whose regularizer (as the table shows it) contains one of these
    /// texts, e.g. `--only none,"min |> exp",linear`; `=TEXT` must be the whole regularizer
    /// (`=none`: the reference alone, not `chain=none`).
    #[arg(long, value_delimiter = ',', value_name = "TEXT")]
    only: Vec<String>,
    /// Table format.
    #[arg(long, value_enum, default_value = "md")]
    format: Format,
    /// Metric columns: numeric fields of result.json (test_error, margin, margin_median,
    /// margin_min, margin_rel, attack_success, margin_long, val_error, train_seconds, ms_per_step, ...).
    #[arg(long, value_delimiter = ',', default_value = "test_error,margin")]
    metrics: Vec<String>,
    /// Also write figures (SVG and PNG) into this folder.
    #[arg(long, value_name = "OUT")]
    plots: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let registry = crate::commands::registry();
    let report = Report::load(&a.dirs, &registry, &a.only)?;
    let metrics = a.metrics.iter().map(|m| m.trim()).filter(|m| !m.is_empty()).map(String::from).collect::<Vec<_>>();
    report.check_metrics(&metrics)?;
    let table = Table::new(&report, &metrics);
    let text = match a.format {
        Format::Md => table.markdown(),
        Format::Csv => table.csv(),
        Format::Latex => table.latex(),
    };
    print!("{text}");
    if a.format == Format::Csv {
        eprint!("{}", report.notes(""));
    }
    if let Some(out) = &a.plots {
        let written = plot::report_figures(&report, &registry, out)?;
        for p in written {
            eprintln!("plot: {}", p.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
