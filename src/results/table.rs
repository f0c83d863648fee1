//! The report's table: one row per configuration (its varying settings, the finished seeds `n`,
//! mean ± std of each metric) as GitHub Markdown, CSV (mean and std in separate columns) or a
//! LaTeX booktabs tabular, each followed by the notes on unfinished runs.
use super::metrics::{fmt_fixed, mean_std, metric_format, MetricFormat};
use super::report::{Config, Report};
use super::runs::{Cell, Status};

/// A report's rows for some metrics, ready to render.
pub struct Table<'a> {
    report: &'a Report,
    rows: Vec<Row>,
    specs: Vec<MetricFormat>,
}

impl<'a> Table<'a> {
    /// Each configuration's statistics for `metrics`, in the report's order.
    pub fn new(report: &'a Report, metrics: &[String]) -> Table<'a> {
        let rows: Vec<Row> = report.configs.iter().map(|c| Self::row(report, c, metrics)).collect();
        let specs: Vec<MetricFormat> = metrics.iter().map(|m| metric_format(m)).collect();
        Table { report, rows, specs }
    }

    fn row(report: &Report, c: &Config, metrics: &[String]) -> Row {
        let cells: Vec<&Cell> = report.cells_of(c).collect();
        let stats = metrics
            .iter()
            .map(|m| {
                let f = metric_format(m);
                let xs: Vec<f64> = cells.iter().filter_map(|cell| cell.metric(m)).map(|x| x * f.scale).collect();
                mean_std(&xs)
            })
            .collect();
        Row {
            axes: report.varying.iter().map(|k| c.get(k).unwrap_or("").to_string()).collect(),
            n: cells.iter().filter(|c| c.result().is_some()).count(),
            failed: cells.iter().filter(|c| matches!(c.status, Status::Failed(_))).count(),
            missing: cells.iter().filter(|c| matches!(c.status, Status::Running(..) | Status::Missing)).count(),
            stats,
        }
    }

    /// A GitHub Markdown table, columns padded, the notes under it.
    pub fn markdown(&self) -> String {
        let (rows, specs) = (&self.rows, &self.specs);
        let mut header: Vec<String> = self.report.varying.clone();
        header.push("n".into());
        header.extend(specs.iter().map(|s| s.header.clone()));
        let body: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                let mut v: Vec<String> = r.axes.iter().map(|a| a.replace('|', "\\|")).collect();
                v.push(r.n.to_string());
                v.extend(r.stats.iter().zip(specs).map(|(st, f)| match st {
                    None => "-".to_string(),
                    Some((m, None)) => fmt_fixed(*m, f.decimals),
                    Some((m, Some(s))) => format!("{} ± {}", fmt_fixed(*m, f.decimals), fmt_fixed(*s, f.decimals)),
                }));
                v
            })
            .collect();
        let ncol = header.len();
        let width = |i: usize| body.iter().map(|r| r[i].chars().count()).chain([header[i].chars().count(), 3]).max().unwrap_or(3);
        let widths: Vec<usize> = (0..ncol).map(width).collect();
        let left = self.report.varying.len();
        let line = |cells: &[String]| {
            let parts: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let pad = widths[i] - c.chars().count();
                    if i < left {
                        format!("{c}{}", " ".repeat(pad))
                    } else {
                        format!("{}{c}", " ".repeat(pad))
                    }
                })
                .collect();
            format!("| {} |\n", parts.join(" | "))
        };
        let mut s = line(&header);
        let rule: Vec<String> = (0..ncol)
            .map(|i| if i < left { format!(":{}", "-".repeat(widths[i] - 1)) } else { format!("{}:", "-".repeat(widths[i] - 1)) })
            .collect();
        s.push_str(&format!("| {} |\n", rule.join(" | ")));
        for r in &body {
            s.push_str(&line(r));
        }
        let notes = self.report.notes("");
        if !notes.is_empty() {
            s.push('\n');
            s.push_str(&notes);
        }
        s
    }

    /// Comma-separated values, mean and std in separate columns (no notes: they go to stderr).
    pub fn csv(&self) -> String {
        let (rows, specs) = (&self.rows, &self.specs);
        let mut header: Vec<String> = self.report.varying.clone();
        header.extend(["n", "failed", "missing"].map(String::from));
        for f in specs {
            header.push(format!("{}_mean", f.csv));
            header.push(format!("{}_std", f.csv));
        }
        let mut s = header.iter().map(|h| csv_field(h)).collect::<Vec<_>>().join(",");
        s.push('\n');
        for r in rows {
            let mut v: Vec<String> = r.axes.iter().map(|a| csv_field(a)).collect();
            v.extend([r.n, r.failed, r.missing].map(|x| x.to_string()));
            for (st, f) in r.stats.iter().zip(specs) {
                match st {
                    None => v.extend([String::new(), String::new()]),
                    Some((m, sd)) => {
                        v.push(fmt_fixed(*m, f.decimals));
                        v.push(sd.map(|x| fmt_fixed(x, f.decimals)).unwrap_or_default());
                    }
                }
            }
            s.push_str(&v.join(","));
            s.push('\n');
        }
        s
    }

    /// A LaTeX booktabs tabular, the notes as `%` comments under it.
    pub fn latex(&self) -> String {
        let (rows, specs) = (&self.rows, &self.specs);
        let left = self.report.varying.len();
        let mut s = format!("\\begin{{tabular}}{{{}r{}}}\n\\toprule\n", "l".repeat(left), "c".repeat(specs.len()));
        let mut header: Vec<String> = self.report.varying.iter().map(|k| latex_escape(k)).collect();
        header.push("$n$".into());
        header.extend(specs.iter().map(|f| latex_escape(&f.header)));
        s.push_str(&header.join(" & "));
        s.push_str(" \\\\\n\\midrule\n");
        for r in rows {
            let mut v: Vec<String> = r
                .axes
                .iter()
                .map(|a| if a.parse::<f64>().is_ok() { a.clone() } else { format!("\\texttt{{{}}}", latex_escape(a)) })
                .collect();
            v.push(r.n.to_string());
            v.extend(r.stats.iter().zip(specs).map(|(st, f)| match st {
                None => "--".to_string(),
                Some((m, None)) => format!("${}$", fmt_fixed(*m, f.decimals)),
                Some((m, Some(sd))) => format!("${} \\pm {}$", fmt_fixed(*m, f.decimals), fmt_fixed(*sd, f.decimals)),
            }));
            s.push_str(&v.join(" & "));
            s.push_str(" \\\\\n");
        }
        s.push_str("\\bottomrule\n\\end{tabular}\n");
        s.push_str(&self.report.notes("% "));
        s
    }
}

/// One configuration's line of the table.
struct Row {
    axes: Vec<String>,
    n: usize,
    failed: usize,
    missing: usize,
    /// Per metric: (mean, sample std when n ≥ 2), None when no finished run has it.
    stats: Vec<Option<(f64, Option<f64>)>>,
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn latex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\textbackslash{}"),
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            '~' => out.push_str("\\textasciitilde{}"),
            '^' => out.push_str("\\textasciicircum{}"),
            c => out.push(c),
        }
    }
    out
}
