//! Loading an experiment: statements, includes and overrides into checked settings, then the grid.

use super::config::{default_config, Cell, Grid};
use super::files::{read_spec, MAX_INCLUDE_DEPTH};
use super::keys::{resolve_key, unknown_section, KEYS, SECTIONS};
use super::setting::{apply, check_setting, ident_of, seeds_of, Choice, Setting};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::ast::{clip, Call, Expr, ExprKind, Statement};
use crate::diagnostic::{Diagnostic, Diagnostics, Problem, Report, SourceMap, Span};
use crate::expand::{count, cross, expand, parts, MAX_CELLS, MAX_EXPANDED_PARTS};
use crate::parser::{parse_override_text, parse_statement_text};
use crate::pipeline::{big, too_many_parts};
use crate::printer::expr_to_string;
use crate::scan::{scan, Mode};
use crate::schema::{Catalog, Kind, ParamSpec, ParamType};
use crate::size::{DataShape, ModelProblem};
use crate::spec::StageSpec;
use crate::suggest::did_you_mean;

/// The value of a key and where it was written.
#[derive(Clone, Debug)]
pub(super) struct Assigned {
    source: usize,
    value: Expr,
}

pub(super) struct Loader<'c> {
    catalog: &'c dyn Catalog,
    sources: Vec<SourceMap>,
    files: Vec<PathBuf>,
    report: Report,
    assigned: BTreeMap<&'static str, Assigned>,
    /// The include chain being read (canonical paths), for cycle detection.
    stack: Vec<PathBuf>,
}

/// The section a statement is in.
#[derive(Clone, Copy)]
pub(super) enum Section {
    None,
    Known(&'static str),
    /// An unknown `[section]`: reported once at the header; its keys are skipped.
    Bad,
}

impl<'c> Loader<'c> {
    fn new(catalog: &'c dyn Catalog) -> Self {
        Loader { catalog, sources: Vec::new(), files: Vec::new(), report: Report::default(), assigned: BTreeMap::new(), stack: Vec::new() }
    }

    fn report(&mut self, source: usize, p: Problem) {
        self.report.problem(source, p);
    }

    /// The errors found, located.
    fn errors(self) -> Diagnostics {
        self.report.finish(&self.sources)
    }

    /// Reads one file; `site` is the `include` statement that named it.
    fn load_file(&mut self, path: &Path, bytes: Option<&[u8]>, site: Option<(usize, Span)>) {
        let shown = path.display().to_string();
        let fail = |this: &mut Self, message: String, help: Option<String>| match site {
            Some((src, span)) => this.report(src, Problem::new(span, message).with_help_opt(help)),
            None => {
                let mut d = Diagnostic::whole_file(shown.clone(), message);
                d.help = help;
                this.report.diagnostic(d);
            }
        };
        if self.stack.len() >= MAX_INCLUDE_DEPTH {
            return fail(self, format!("includes nested deeper than {MAX_INCLUDE_DEPTH} levels"), None);
        }
        let read;
        let bytes = match bytes {
            Some(b) => b,
            None => match read_spec(path, site.is_some()) {
                Ok(b) => {
                    read = b;
                    &read[..]
                }
                Err((message, help)) => return fail(self, message, help),
            },
        };
        let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if let Some(at) = self.stack.iter().position(|p| *p == canonical) {
            let chain: Vec<String> = self.stack[at..]
                .iter()
                .chain(std::iter::once(&canonical))
                .map(|p| p.file_name().map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned()))
                .collect();
            return fail(
                self,
                format!("include cycle: {}", chain.join(" -> ")),
                Some("a file cannot include itself, directly or through other files".into()),
            );
        }
        let text = match std::str::from_utf8(bytes) {
            Ok(t) => t.to_string(),
            Err(e) => {
                let at = e.valid_up_to();
                let map = SourceMap::new(shown.clone(), String::from_utf8_lossy(bytes));
                self.report.diagnostic(
                    map.diagnostic(
                        Problem::new(Span::new(at, at + 1), format!("the file is not valid UTF-8 (byte 0x{:02x})", bytes[at]))
                            .with_help("spec files are UTF-8 text"),
                    ),
                );
                return;
            }
        };
        let source = self.sources.len();
        self.sources.push(SourceMap::new(shown, text.clone()));
        self.files.push(path.to_path_buf());
        self.stack.push(canonical);
        let (pieces, problems) = scan(&text, Mode::Statements);
        for p in problems {
            self.report(source, p);
        }
        let mut section = Section::None;
        for piece in pieces.iter().filter(|p| p.ok) {
            let stmt = match parse_statement_text(&text[piece.span.start..piece.span.end], piece.span.start) {
                Ok(s) => s,
                Err(p) => {
                    self.report(source, p);
                    continue;
                }
            };
            match stmt {
                Statement::Section(name) => {
                    section = match SECTIONS.iter().find(|s| **s == name.node) {
                        Some(s) => Section::Known(s),
                        None => {
                            let inner = Span::new(name.span.start + 1, name.span.end - 1);
                            self.report(source, unknown_section(&name.node, inner));
                            Section::Bad
                        }
                    }
                }
                Statement::Include(file) => {
                    let base = path.parent().unwrap_or(Path::new(""));
                    let target = base.join(&file.node);
                    self.load_file(&target, None, Some((source, file.span)));
                }
                Statement::Assign { key, value } => {
                    let sec = match section {
                        Section::Bad if !key.node.contains('.') => continue,
                        Section::Known(s) => Some(s),
                        _ => None,
                    };
                    match resolve_key(sec, &key.node, key.span) {
                        Ok(full) => {
                            self.assigned.insert(full, Assigned { source, value });
                        }
                        Err(p) => self.report(source, p),
                    }
                }
            }
        }
        self.stack.pop();
    }

    /// Applies one `key=value` override.
    fn load_override(&mut self, text: &str) {
        let source = self.sources.len();
        self.sources.push(SourceMap::new(format!("--set {text}"), text));
        let Some(eq) = text.find('=') else {
            let span = Span::new(0, text.len());
            return self.report(source, Problem::new(span, "expected `key=value`").with_help("e.g. `train.epochs=3`"));
        };
        let written = text[..eq].trim();
        let key_start = text.len() - text.trim_start().len();
        let key_span = Span::new(key_start, key_start + written.len());
        let full = if written.contains('.') {
            resolve_key(None, written, key_span)
        } else {
            let homes: Vec<&str> = KEYS.iter().map(|k| k.key).filter(|k| k.split_once('.').is_some_and(|(_, n)| n == written)).collect();
            let help = match homes.first() {
                Some(full) => format!("write `{full}={}`", text[eq + 1..].trim()),
                None => format!("{}keys are section.key, e.g. train.epochs", did_you_mean(written, KEYS.iter().map(|k| k.key))),
            };
            Err(Problem::new(key_span, format!("`{}` needs its section", clip(written))).with_help(help))
        };
        let full = match full {
            Ok(f) => f,
            Err(p) => return self.report(source, p),
        };
        let raw = text[eq + 1..].trim();
        let raw_start = eq + 1 + (text[eq + 1..].len() - text[eq + 1..].trim_start().len());
        let raw_span = Span::new(raw_start, raw_start + raw.len());
        let (_, problems) = scan(text, Mode::Whole);
        let parsed = if problems.is_empty() { parse_override_text(text, 0).map(|(_, v)| v).map_err(|p| vec![p]) } else { Err(problems) };
        let value = match parsed {
            Ok(v) => v,
            // Free text for string keys: `--set experiment.out=runs/a b`.
            Err(_) if matches!(full, "experiment.name" | "experiment.out" | "data.path" | "train.init") && !raw.is_empty() => {
                Expr { kind: ExprKind::Str(raw.to_string()), span: raw_span }
            }
            Err(problems) => {
                for p in problems {
                    self.report(source, p);
                }
                return;
            }
        };
        self.assigned.insert(full, Assigned { source, value });
    }

    /// Refuses models too large to build, for each dataset of the grid whose shape its name
    /// fixes (and with a lower bound where none does). The error points at the argument at
    /// fault (`widths=[...]`'s element) or at the model.
    fn check_models(&mut self, models: &[(usize, Expr, StageSpec)], datasets: &[String]) {
        let mut shapes: Vec<Option<DataShape>> = Vec::new();
        for name in datasets {
            let shape = self.catalog.data_shape(name);
            if !shapes.contains(&shape) {
                shapes.push(shape);
            }
        }
        if shapes.is_empty() {
            shapes.push(None);
        }
        for (source, e, spec) in models {
            for shape in &shapes {
                if let Err(p) = self.catalog.check_model(spec, shape.as_ref()) {
                    let params = self.catalog.schema(Kind::Model, &spec.name).map_or(&[][..], |s| &s.params[..]);
                    let span = model_problem_span(e, params, &p);
                    self.report(*source, Problem::new(span, p.message).with_help_opt(p.help));
                    break;
                }
            }
        }
    }

    /// Checks every key and builds the grid.
    fn build(mut self, default_name: &str) -> Result<Grid, Diagnostics> {
        let mut seeds = vec![0u64];
        let seeds_at = self.assigned.get("experiment.seeds").cloned();
        if let Some(a) = &seeds_at {
            match seeds_of(&a.value) {
                Ok(s) => seeds = s,
                Err(p) => self.report(a.source, p),
            }
        }
        // Bound the grid before expanding anything.
        let axes: Vec<(&'static str, Assigned, u64)> = KEYS
            .iter()
            .filter(|k| k.key != "experiment.seeds")
            .filter_map(|k| self.assigned.get(k.key).map(|a| (k.key, a.clone(), count(&a.value))))
            .collect();
        let total = axes.iter().fold(seeds.len() as u64, |n, (_, _, c)| n.saturating_mul(*c));
        if total > MAX_CELLS {
            let mut named: Vec<String> = axes.iter().filter(|(_, _, c)| *c > 1).map(|(k, _, c)| format!("{k} ({})", big(*c))).collect();
            named.push(format!("seeds ({})", seeds.len()));
            // The error points at the widest axis: a key's alternatives, or the seeds.
            let widest = axes
                .iter()
                .map(|(_, a, c)| (a, *c))
                .chain(seeds_at.as_ref().map(|a| (a, seeds.len() as u64)))
                .max_by_key(|(_, c)| *c)
                .map(|(a, _)| a.clone());
            let problem = Problem::new(Span::default(), format!("the grid has {} cells, more than {MAX_CELLS}", big(total)))
                .with_help(format!("axes: {}", named.join(" x ")));
            match widest {
                Some(a) => self.report(a.source, Problem { span: a.value.span, ..problem }),
                // Unreachable (a grid beyond one cell has an axis), but never a panic.
                None => {
                    let mut d = Diagnostic::whole_file(default_name, problem.message);
                    d.help = problem.help;
                    self.report.diagnostic(d);
                }
            }
            return Err(self.errors());
        }
        // Bound the work of expanding and checking the alternatives (their parts in all).
        let work: Vec<(&Assigned, u64, u64)> = axes.iter().filter(|(_, _, c)| *c > 1).map(|(_, a, c)| (a, *c, parts(&a.value))).collect();
        if work.iter().fold(0u64, |n, (_, c, p)| n.saturating_add(c.saturating_mul(*p))) > MAX_EXPANDED_PARTS {
            if let Some((a, c, p)) = work.iter().max_by_key(|(_, c, p)| c.saturating_mul(*p)) {
                let (source, problem) = (a.source, too_many_parts("the value", *c, *p, a.value.span));
                self.report(source, problem);
                return Err(self.errors());
            }
        }
        let mut checked: Vec<(&'static str, bool, Vec<Choice>)> = Vec::new();
        // The models and datasets of the grid, for the size check of each pair.
        let mut models: Vec<(usize, Expr, StageSpec)> = Vec::new();
        let mut datasets: Vec<String> = Vec::new();
        for (key, a, n) in &axes {
            let mut options = Vec::new();
            // One mistake reached through many alternatives is reported once, and kept once:
            // 50,000 expansions with a dozen errors each would otherwise be 600,000 diagnostics.
            let mut reported = std::collections::HashSet::new();
            for e in expand(&a.value) {
                match check_setting(key, &e, self.catalog) {
                    Ok(s) => {
                        match &s {
                            Setting::Model(m) => models.push((a.source, e.clone(), m.clone())),
                            Setting::Value(v) if *key == "data.name" => datasets.push(ident_of(v).to_string()),
                            _ => {}
                        }
                        options.push((s, expr_to_string(&e)))
                    }
                    Err(ps) => {
                        for p in ps {
                            if !reported.contains(&p) {
                                reported.insert(p.clone());
                                self.report(a.source, p);
                            }
                        }
                    }
                }
            }
            checked.push((key, *n > 1, options));
        }
        if !self.assigned.contains_key("data.name") {
            datasets.push(default_config(default_name, self.catalog).data.name);
        }
        self.check_models(&models, &datasets);
        if !self.report.is_empty() {
            return Err(self.errors());
        }
        let base = default_config(default_name, self.catalog);
        let choices = cross(checked.iter().map(|(_, _, o)| (0..o.len()).collect()).collect());
        let mut cells = Vec::with_capacity(choices.len() * seeds.len());
        for choice in choices {
            let mut config = base.clone();
            let mut axes = Vec::new();
            let mut out_set = false;
            for ((key, is_axis, options), &i) in checked.iter().zip(&choice) {
                let (setting, text) = &options[i];
                apply(&mut config, key, setting);
                out_set |= *key == "experiment.out";
                if *is_axis {
                    axes.push((key.to_string(), text.clone()));
                }
            }
            if !out_set {
                config.out = format!("runs/{}", config.name);
            }
            for &seed in &seeds {
                let mut config = config.clone();
                config.seed = seed;
                let mut axes = axes.clone();
                axes.push(("seed".to_string(), seed.to_string()));
                cells.push(Cell { config, axes });
            }
        }
        Ok(Grid { cells, files: self.files })
    }
}

/// Where a model's size problem is in the model's source: the element of a list argument, the
/// argument, or the whole model (also when the argument is not written and takes its default).
pub(super) fn model_problem_span(e: &Expr, params: &[ParamSpec], p: &ModelProblem) -> Span {
    let (ExprKind::Call(Call { args: Some(args), .. }), Some((name, index))) = (&e.kind, &p.arg) else {
        return e.span;
    };
    let named = args.node.iter().find(|a| a.name.as_ref().is_some_and(|n| n.node == *name));
    // A positional argument takes the parameter of its position, as `bind_args` assigns them:
    // a bare parameter name (`mlp(act, [64])`) keeps that parameter's default and takes no
    // position, unless it is a value the next position accepts.
    let positional = || {
        let mut next = 0;
        for a in args.node.iter().take_while(|a| a.name.is_none()) {
            if let Some(n) = a.value.as_ident() {
                let takes_name = params.get(next).is_some_and(|p| match &p.ty {
                    ParamType::Choice(names) => names.iter().any(|c| c == n),
                    ParamType::Str => true,
                    _ => false,
                });
                if !takes_name && params.iter().any(|p| p.name == n) {
                    continue;
                }
            }
            if params.get(next).is_some_and(|p| p.name == *name) {
                return Some(a);
            }
            next += 1;
        }
        None
    };
    let Some(arg) = named.or_else(positional) else {
        return e.span;
    };
    match (&arg.value.kind, index) {
        (ExprKind::List(items), Some(i)) => items.get(*i).map_or(arg.value.span, |item| item.span),
        _ => arg.value.span,
    }
}

pub(super) fn stem(path: &Path) -> String {
    path.file_stem().map_or_else(|| "run".to_string(), |s| s.to_string_lossy().into_owned())
}

/// Loads an experiment file and its includes, applies `overrides` (`train.epochs=3`), checks
/// everything against `catalog` and expands the grid.
///
/// ```
/// use amm_dsl::{load_experiment, testing};
///
/// let dir = std::env::temp_dir().join(format!("amm-dsl-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// std::fs::write(dir.join("base.amm"), "[train]\nepochs = 100\nlr = 0.005\n").unwrap();
/// std::fs::write(
///     dir.join("ablation.amm"),
///     "include \"base.amm\"\n\
///      experiment.seeds = [0, 1]\n\
///      [reg]\n\
///      pipeline = deepfool(l2, 5) |> {avg, min(class, 0.2)} |> exp(c=2, d=1) |> weight(32)\n",
/// )
/// .unwrap();
/// let grid = load_experiment(&dir.join("ablation.amm"), &["train.epochs=3".into()], &testing::catalog()).unwrap();
/// assert_eq!(grid.cells.len(), 4); // 2 aggregations x 2 seeds
/// let cell = &grid.cells[3];
/// assert_eq!(cell.config.name, "ablation");
/// assert_eq!(cell.config.train.epochs, 3);
/// assert_eq!(cell.config.train.lr, 0.005);
/// assert_eq!(cell.axes[1], ("seed".to_string(), "1".to_string()));
/// assert_eq!(cell.config.reg.as_ref().unwrap().aggregation.name, "min");
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn load_experiment(path: &Path, overrides: &[String], catalog: &dyn Catalog) -> Result<Grid, Diagnostics> {
    let mut loader = Loader::new(catalog);
    loader.load_file(path, None, None);
    if loader.sources.is_empty() {
        return Err(loader.errors());
    }
    for o in overrides {
        loader.load_override(o);
    }
    loader.build(&stem(path))
}

/// Like [`load_experiment`], with the file's bytes given (`path` names it and anchors its
/// includes).
pub fn experiment_from_source(path: &Path, source: &[u8], overrides: &[String], catalog: &dyn Catalog) -> Result<Grid, Diagnostics> {
    let mut loader = Loader::new(catalog);
    loader.load_file(path, Some(source), None);
    if loader.sources.is_empty() {
        return Err(loader.errors());
    }
    for o in overrides {
        loader.load_override(o);
    }
    loader.build(&stem(path))
}

/// An experiment without a file: the defaults and `overrides` (the flags of `amm train`).
/// Its name is `run` unless `experiment.name` is set.
pub fn experiment_from_overrides(overrides: &[String], catalog: &dyn Catalog) -> Result<Grid, Diagnostics> {
    let mut loader = Loader::new(catalog);
    for o in overrides {
        loader.load_override(o);
    }
    loader.build("run")
}
