//! Errors with a place: byte spans, source maps, and rustc-style rendering.
//!
//! Every stage of the crate (scanner, pest parser, validation, grid expansion) reports a
//! [`Problem`]: a message, an optional help line and a byte [`Span`] into one source text.
//! A [`SourceMap`] turns a problem into a [`Diagnostic`] that knows its file, line, column
//! and the source line to show under the message:
//!
//! ```text
//! error: unknown shrinkage `exq`
//!  --> specs/x.amm:3:31
//!   |
//! 3 | pipeline = deepfool(l2, 5) |> exq(2, 1)
//!   |                               ^^^
//!   = help: did you mean `exp`? (shrinkages: lin, exp, inv, hinge)
//! ```

use std::fmt;

/// The most characters of a source line shown in a rendered error; longer lines are cut to a
/// window around the caret so a 10 MB line never ends up in a terminal.
const SNIPPET_WIDTH: usize = 100;
/// The most diagnostics kept from one load; the rest are counted in a final note.
pub const MAX_DIAGNOSTICS: usize = 50;

/// A half-open byte range `start..end` into one source text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// The span `start..end`.
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    /// The smallest span covering `self` and `other`.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

/// An error located in one source, before it knows which file that source is.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Problem {
    /// Where the caret goes.
    pub span: Span,
    /// What is wrong, one line.
    pub message: String,
    /// How to fix it, one line (rendered as `= help: ...`).
    pub help: Option<String>,
}

impl Problem {
    /// A problem without help text.
    pub fn new(span: Span, message: impl Into<String>) -> Problem {
        Problem { span, message: message.into(), help: None }
    }

    /// Adds a help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Problem {
        self.help = Some(help.into());
        self
    }

    /// Adds a help line when there is one.
    pub fn with_help_opt(mut self, help: Option<String>) -> Problem {
        self.help = help;
        self
    }
}

/// One source text with its name (a path, `<pipeline>`, or `--set key=value`) and the byte
/// offsets of its line starts, so that spans become `line:column` in O(log n).
#[derive(Clone, Debug)]
pub struct SourceMap {
    name: String,
    text: String,
    line_starts: Vec<usize>,
}

impl SourceMap {
    /// Indexes `text`, known as `name` in rendered errors.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> SourceMap {
        let text = text.into();
        let mut line_starts = vec![0];
        line_starts.extend(text.bytes().enumerate().filter(|&(_, b)| b == b'\n').map(|(i, _)| i + 1));
        SourceMap { name: name.into(), text, line_starts }
    }

    /// The name errors show after `-->`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The source text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = floor_char_boundary(&self.text, offset.min(self.text.len()));
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        (line + 1, self.text[start..offset].chars().count() + 1)
    }

    /// Locates a problem in this source.
    pub fn diagnostic(&self, problem: Problem) -> Diagnostic {
        let start = floor_char_boundary(&self.text, problem.span.start.min(self.text.len()));
        let (line, column) = self.line_col(start);
        let line_start = self.line_starts[line - 1];
        let line_end = self.text[line_start..].find('\n').map_or(self.text.len(), |i| line_start + i);
        let line_text = self.text[line_start..line_end].trim_end_matches('\r');
        let end = floor_char_boundary(&self.text, problem.span.end.clamp(start, line_end));
        let caret_len = self.text[start..end].chars().count().max(1);
        let (snippet, caret_col) = window(line_text, column - 1, caret_len);
        Diagnostic {
            file: self.name.clone(),
            line,
            column,
            message: problem.message,
            help: problem.help,
            source_line: snippet,
            caret_column: caret_col,
            caret_len: caret_len.min(SNIPPET_WIDTH),
        }
    }
}

/// The largest char boundary `<= i`.
fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Cuts `line` to at most [`SNIPPET_WIDTH`] characters around the caret at character `col`,
/// replaces control characters so random bytes cannot garble a terminal, and returns the cut
/// line with the caret's new column (0-based).
fn window(line: &str, col: usize, caret_len: usize) -> (String, usize) {
    let total = line.chars().count();
    let (from, prefix) = if total <= SNIPPET_WIDTH || col < SNIPPET_WIDTH / 2 { (0, "") } else { (col - SNIPPET_WIDTH / 3, "...") };
    let keep = SNIPPET_WIDTH.max(col - from + caret_len.min(SNIPPET_WIDTH));
    let suffix = if total > from + keep { "..." } else { "" };
    let body: String = line.chars().skip(from).take(keep).map(|c| if c.is_control() && c != '\t' { '\u{fffd}' } else { c }).collect();
    (format!("{prefix}{body}{suffix}"), col - from + prefix.chars().count())
}

/// One located error, ready to render.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// A path, `<pipeline>`, `<--reg>`, or `--set key=value`.
    pub file: String,
    /// 1-based line; 0 when the error has no place in a source (e.g. a missing file).
    pub line: usize,
    /// 1-based column in characters.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
    /// The source line (cut to a window around the caret when long).
    pub source_line: String,
    /// 0-based character column of the caret in `source_line`.
    pub caret_column: usize,
    /// Number of `^` to draw.
    pub caret_len: usize,
}

impl Diagnostic {
    /// An error that belongs to a file as a whole (e.g. it cannot be read).
    pub fn whole_file(file: impl Into<String>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: file.into(),
            line: 0,
            column: 0,
            message: message.into(),
            help: None,
            source_line: String::new(),
            caret_column: 0,
            caret_len: 0,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        if self.line == 0 {
            writeln!(f, " --> {}", self.file)?;
        } else {
            let number = self.line.to_string();
            let pad = " ".repeat(number.len());
            writeln!(f, "{pad}--> {}:{}:{}", self.file, self.line, self.column)?;
            writeln!(f, "{pad} |")?;
            writeln!(f, "{number} | {}", self.source_line)?;
            // Keep tabs in the padding so the caret lines up under tabbed source.
            let lead: String = self.source_line.chars().take(self.caret_column).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
            writeln!(f, "{pad} | {lead}{}", "^".repeat(self.caret_len.max(1)))?;
        }
        if let Some(help) = &self.help {
            let pad = " ".repeat(self.line.max(1).to_string().len());
            writeln!(f, "{pad} = help: {help}")?;
        }
        Ok(())
    }
}

/// The errors of one load as they are found: problems stay problems (a span into one of the
/// load's sources) until [`Report::finish`] turns the ones shown into [`Diagnostic`]s. Locating
/// a problem costs the length of its line, so 50,000 errors on one 1 MB line located up front
/// took minutes; only the [`MAX_DIAGNOSTICS`] shown are located now.
#[derive(Debug, Default)]
pub(crate) struct Report {
    entries: Vec<Entry>,
}

#[derive(Debug)]
enum Entry {
    /// A problem in source `.0`.
    Problem(usize, Problem),
    /// An error located already (a file that cannot be read, not UTF-8).
    Ready(Diagnostic),
}

impl Report {
    /// The diagnostics of `problems`, all in the one source `src` named `origin` (a text given
    /// on the command line, a single value).
    pub(crate) fn of(origin: &str, src: &str, problems: Vec<Problem>) -> Diagnostics {
        let mut report = Report::default();
        for p in problems {
            report.problem(0, p);
        }
        report.finish(&[SourceMap::new(origin, src)])
    }

    /// A problem in `sources[source]` (the slice given to [`Report::finish`]).
    pub(crate) fn problem(&mut self, source: usize, p: Problem) {
        self.entries.push(Entry::Problem(source, p));
    }

    /// An error located already.
    pub(crate) fn diagnostic(&mut self, d: Diagnostic) {
        self.entries.push(Entry::Ready(d));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The errors in order: by file (in order of first appearance), line and column, exact
    /// duplicates dropped (the same mistake reached through several grid cells), at most
    /// [`MAX_DIAGNOSTICS`] with a last note saying how many were cut. Only those shown are
    /// located.
    pub(crate) fn finish(self, sources: &[SourceMap]) -> Diagnostics {
        fn name<'a>(sources: &'a [SourceMap], e: &'a Entry) -> &'a str {
            match e {
                Entry::Problem(src, _) => sources[*src].name(),
                Entry::Ready(d) => d.file.as_str(),
            }
        }
        let name = |e: &Entry| name(sources, e).to_string();
        let mut rank: Vec<String> = Vec::new();
        for e in &self.entries {
            let n = name(e);
            if !rank.contains(&n) {
                rank.push(n);
            }
        }
        // (file rank, line, position in the line, message); for a problem the position is the
        // byte offset in its line, which orders as the column does.
        let key = |e: &Entry| -> (usize, usize, usize) {
            let r = rank.iter().position(|f| *f == name(e)).unwrap_or(0);
            match e {
                Entry::Problem(src, p) => {
                    let map = &sources[*src];
                    let start = floor_char_boundary(&map.text, p.span.start.min(map.text.len()));
                    let line = map.line_starts.partition_point(|&s| s <= start);
                    (r, line, start - map.line_starts[line - 1])
                }
                Entry::Ready(d) => (r, d.line, d.column),
            }
        };
        let mut keyed: Vec<((usize, usize, usize), Entry)> = self.entries.into_iter().map(|e| (key(&e), e)).collect();
        keyed.sort_by_key(|(k, _)| *k);
        let mut seen = std::collections::HashSet::new();
        keyed.retain(|(k, e)| {
            let message = match e {
                Entry::Problem(_, p) => &p.message,
                Entry::Ready(d) => &d.message,
            };
            seen.insert((*k, message.clone()))
        });
        let total = keyed.len();
        let shown = if total > MAX_DIAGNOSTICS { MAX_DIAGNOSTICS - 1 } else { total };
        let cut_file = keyed.get(shown).map(|(_, e)| name(e));
        let mut list: Vec<Diagnostic> = keyed
            .into_iter()
            .take(shown)
            .map(|(_, e)| match e {
                Entry::Problem(src, p) => sources[src].diagnostic(p),
                Entry::Ready(d) => d,
            })
            .collect();
        if let (true, Some(file)) = (total > MAX_DIAGNOSTICS, cut_file) {
            list.push(Diagnostic::whole_file(file, format!("{} more errors not shown", total - shown)));
        }
        Diagnostics(list)
    }
}

/// All errors of one parse or load, in source order; the `Err` of every entry point.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// The messages alone, handy in tests.
    pub fn messages(&self) -> Vec<&str> {
        self.0.iter().map(|d| d.message.as_str()).collect()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        if self.0.len() > 1 {
            write!(f, "\nerror: aborting due to {} previous errors", self.0.len())?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters() {
        let map = SourceMap::new("x", "ab\ncé d\n");
        assert_eq!(map.line_col(0), (1, 1));
        assert_eq!(map.line_col(3), (2, 1));
        assert_eq!(map.line_col(6), (2, 3));
        assert_eq!(map.line_col(100), (3, 1));
    }

    #[test]
    fn renders_caret_under_span() {
        let map = SourceMap::new("f.amm", "a = 1\nb = exq(2)\n");
        let d = map.diagnostic(Problem::new(Span::new(10, 13), "unknown").with_help("try"));
        assert_eq!(d.to_string(), "error: unknown\n --> f.amm:2:5\n  |\n2 | b = exq(2)\n  |     ^^^\n  = help: try\n");
    }

    #[test]
    fn long_lines_are_windowed() {
        let line = "x".repeat(1_000_000) + "BAD" + &"y".repeat(1_000_000);
        let map = SourceMap::new("f", line);
        let d = map.diagnostic(Problem::new(Span::new(1_000_000, 1_000_003), "m"));
        assert_eq!(d.column, 1_000_001);
        assert!(d.source_line.len() < 200);
        let caret: String = d.source_line.chars().skip(d.caret_column).take(3).collect();
        assert_eq!(caret, "BAD");
    }
}
