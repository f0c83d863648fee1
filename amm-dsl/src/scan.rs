//! The pre-scanner: bracket balance, a nesting bound, and statement splitting, before pest.
//!
//! pest parses by recursive descent, so `{{{{…` 200,000 levels deep would overflow the stack.
//! This linear, non-recursive pass runs first and refuses nesting deeper than [`MAX_DEPTH`]
//! at the exact bracket, reports unclosed, unmatched and mismatched brackets and unterminated
//! strings with better words than a parser could, and splits an experiment file into
//! statements so that each bad line gets its own error (recovery) while a value may still
//! continue over several lines:
//!
//! - inside an open bracket, unless the next line starts a new statement (`key =`,
//!   `[section]` or `include`; inside a call's parentheses only when it is not indented,
//!   since `c = 2` may be a named argument there);
//! - after a line that ends with `|>`, or before a line that starts with `|>`.

use crate::diagnostic::{Problem, Span};

/// The deepest bracket nesting accepted; real specs need 3 or 4.
pub const MAX_DEPTH: usize = 64;

/// How the scanner cuts its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The whole input is one value (a pipeline given on its own, an override).
    Whole,
    /// An experiment file: one statement per logical line.
    Statements,
}

/// A statement found by the scanner: its byte range, and whether its brackets and strings
/// were sound (unsound ones already have a [`Problem`] and are not handed to pest).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    /// Byte range of the statement, from its first to its last significant character.
    pub span: Span,
    /// False when the scanner already reported a problem in it.
    pub ok: bool,
}

fn closer(open: u8) -> u8 {
    match open {
        b'(' => b')',
        b'[' => b']',
        _ => b'}',
    }
}

/// Scans `src` and returns its statements with the problems found on the way. One loop over the
/// characters with its state (brackets, strings, comments, `|>` continuations) in locals: long,
/// but splitting it would scatter one state machine over several functions.
pub fn scan(src: &str, mode: Mode) -> (Vec<Piece>, Vec<Problem>) {
    let b = src.as_bytes();
    let mut pieces = Vec::new();
    let mut problems = Vec::new();
    let mut stack: Vec<(u8, usize)> = Vec::new();
    let mut overflow = 0usize; // openers beyond MAX_DEPTH, counted but not stored
    let mut start: Option<usize> = None;
    let mut last = 0usize; // end of the last significant byte
    let mut failed = false;
    let mut i = 0;

    let mut finish = |start: &mut Option<usize>,
                      stack: &mut Vec<(u8, usize)>,
                      overflow: &mut usize,
                      failed: &mut bool,
                      last: usize,
                      problems: &mut Vec<Problem>| {
        if let Some(s) = start.take() {
            if !*failed {
                if let Some(&(open, pos)) = stack.last() {
                    problems.push(
                        Problem::new(Span::new(pos, pos + 1), format!("unclosed `{}`", open as char))
                            .with_help(format!("add `{}` to close it", closer(open) as char)),
                    );
                    *failed = true;
                }
            }
            pieces.push(Piece { span: Span::new(s, last.max(s)), ok: !*failed });
        }
        stack.clear();
        *overflow = 0;
        *failed = false;
    };

    while i < b.len() {
        let c = b[i];
        match c {
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'\n' => {
                if mode == Mode::Statements && start.is_some() {
                    let next = next_line_start(b, i + 1);
                    let continues = if !stack.is_empty() || overflow > 0 {
                        // Inside a call, `name = value` may be an indented named argument:
                        // only an unindented line starts a new statement there.
                        let in_call = stack.last().is_some_and(|&(o, _)| o == b'(');
                        let indented = next > 0 && b[next - 1] != b'\n';
                        (in_call && indented) || !starts_statement(b, next)
                    } else {
                        (last >= 2 && &b[last - 2..last] == b"|>") || b[next..].starts_with(b"|>")
                    };
                    if !continues {
                        finish(&mut start, &mut stack, &mut overflow, &mut failed, last, &mut problems);
                    }
                }
                i += 1;
                continue;
            }
            b' ' | b'\t' | b'\r' => {
                i += 1;
                continue;
            }
            _ => {}
        }
        start.get_or_insert(i);
        match c {
            b'"' => {
                let mut j = i + 1;
                loop {
                    if j >= b.len() || b[j] == b'\n' {
                        if !failed {
                            problems.push(
                                Problem::new(Span::new(i, i + 1), "unterminated string").with_help("close it with `\"` on the same line"),
                            );
                        }
                        failed = true;
                        break;
                    }
                    match b[j] {
                        b'\\' if j + 1 < b.len() && b[j + 1] != b'\n' => j += 2,
                        b'"' => {
                            j += 1;
                            break;
                        }
                        _ => j += 1,
                    }
                }
                last = j;
                i = j;
                continue;
            }
            b'(' | b'[' | b'{' => {
                if stack.len() + overflow >= MAX_DEPTH {
                    if overflow == 0 && !failed {
                        problems.push(
                            Problem::new(Span::new(i, i + 1), format!("nesting deeper than {MAX_DEPTH} levels"))
                                .with_help("specs never need this much nesting; flatten the value"),
                        );
                    }
                    failed = true;
                    overflow += 1;
                } else {
                    stack.push((c, i));
                }
            }
            b')' | b']' | b'}' => {
                if overflow > 0 {
                    overflow -= 1;
                } else if let Some((open, pos)) = stack.pop() {
                    if closer(open) != c && !failed {
                        let (line, col) = line_col(b, pos);
                        problems.push(Problem::new(Span::new(i, i + 1), format!("mismatched `{}`", c as char)).with_help(format!(
                            "expected `{}` to close the `{}` at {line}:{col}",
                            closer(open) as char,
                            open as char
                        )));
                        failed = true;
                    }
                } else if !failed {
                    problems.push(Problem::new(Span::new(i, i + 1), format!("unmatched `{}`", c as char)));
                    failed = true;
                }
            }
            _ => {}
        }
        i += 1;
        last = i;
    }
    finish(&mut start, &mut stack, &mut overflow, &mut failed, last, &mut problems);
    (pieces, problems)
}

/// 1-based line and column of byte `pos` (only used in rare help texts).
fn line_col(b: &[u8], pos: usize) -> (usize, usize) {
    let before = &b[..pos];
    let line = before.iter().filter(|&&c| c == b'\n').count() + 1;
    let line_start = before.iter().rposition(|&c| c == b'\n').map_or(0, |p| p + 1);
    let col = String::from_utf8_lossy(&b[line_start..pos]).chars().count() + 1;
    (line, col)
}

/// The first significant byte at or after `i`, skipping blank and comment-only lines.
fn next_line_start(b: &[u8], mut i: usize) -> usize {
    loop {
        while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\r' | b'\n') {
            i += 1;
        }
        if i < b.len() && b[i] == b'#' {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        return i;
    }
}

/// Whether a statement starts at `i`: `key =`, `[section]` or `include "…"`.
fn starts_statement(b: &[u8], i: usize) -> bool {
    let ident_len = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.')).count();
    if i >= b.len() {
        return false;
    }
    if b[i] == b'[' {
        let n = ident_len(i + 1);
        return n > 0 && b.get(i + 1 + n) == Some(&b']');
    }
    if !(b[i].is_ascii_alphabetic() || b[i] == b'_') {
        return false;
    }
    let n = ident_len(i);
    if &b[i..i + n] == b"include" && matches!(b.get(i + n), Some(b' ' | b'\t' | b'"')) {
        return true;
    }
    let mut j = i + n;
    while j < b.len() && matches!(b[j], b' ' | b'\t') {
        j += 1;
    }
    b.get(j) == Some(&b'=')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(src: &str) -> Vec<&str> {
        scan(src, Mode::Statements).0.iter().map(|p| &src[p.span.start..p.span.end]).collect()
    }

    #[test]
    fn splits_lines_and_joins_continuations() {
        let src = "[train]\nlr = 0.1 # c\n\nwidths = [\n  1,\n  2,\n]\np = a\n  |> b |>\n  c\nq = 1";
        assert_eq!(texts(src), vec!["[train]", "lr = 0.1", "widths = [\n  1,\n  2,\n]", "p = a\n  |> b |>\n  c", "q = 1"]);
    }

    #[test]
    fn unclosed_bracket_recovers_at_next_statement() {
        let src = "a = [1, 2\nb = 3\nc = (4]\n";
        let (pieces, problems) = scan(src, Mode::Statements);
        assert_eq!(pieces.len(), 3);
        assert_eq!(pieces.iter().map(|p| p.ok).collect::<Vec<_>>(), vec![false, true, false]);
        assert_eq!(problems[0].message, "unclosed `[`");
        assert_eq!(problems[0].span, Span::new(4, 5));
        assert_eq!(problems[1].message, "mismatched `]`");
    }

    #[test]
    fn named_arguments_inside_calls_do_not_split() {
        assert_eq!(texts("m = exp(\n c = 2,\n d = 1)\n"), vec!["m = exp(\n c = 2,\n d = 1)"]);
        let (pieces, problems) = scan("m = exp(\nc = 2\n", Mode::Statements);
        assert_eq!(pieces.len(), 2);
        assert_eq!(problems[0].message, "unclosed `(`");
    }

    #[test]
    fn deep_nesting_is_refused_once() {
        let src = "{".repeat(200_000);
        let (pieces, problems) = scan(&src, Mode::Whole);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].span.start, MAX_DEPTH);
        assert!(!pieces[0].ok);
    }

    #[test]
    fn strings_hide_brackets_and_comments() {
        let (pieces, problems) = scan("a = \"(#]\" # ]", Mode::Statements);
        assert!(problems.is_empty());
        assert!(pieces[0].ok);
        let (_, problems) = scan("a = \"abc\nb = 1", Mode::Statements);
        assert_eq!(problems[0].message, "unterminated string");
    }
}
