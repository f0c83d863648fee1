//! From text to [`ast`](crate::ast): the pest parser, one `parse_<rule>` per grammar rule,
//! and syntax errors in words a user understands.
//!
//! Callers hand in one statement (cut by [`scan`](crate::scan)) and its byte offset in the
//! source, so every span in the tree is an offset into the whole file.

use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::Pair;
use pest::Parser as _;

use crate::ast::{clip, Arg, Call, Expr, ExprKind, Spanned, Statement};
use crate::diagnostic::{Problem, Span};

/// The pest parser generated from `amm.pest`.
#[derive(pest_derive::Parser)]
#[grammar = "amm.pest"]
pub struct AmmParser;

type PResult<T> = Result<T, Problem>;

/// Parses a value or pipeline that fills all of `text`; spans are shifted by `base`.
pub fn parse_expr_text(text: &str, base: usize) -> PResult<Expr> {
    let mut pairs = run(Rule::expr_input, text, base)?;
    let input = pairs.next().expect("expr_input matched");
    parse_expr(first_inner(input), base)
}

/// Parses comma-separated values that fill all of `text` (no brackets around them); spans are
/// shifted by `base`.
pub fn parse_items_text(text: &str, base: usize) -> PResult<Vec<Expr>> {
    let mut pairs = run(Rule::items_input, text, base)?;
    let input = pairs.next().expect("items_input matched");
    input.into_inner().filter(|p| p.as_rule() != Rule::EOI).map(|p| parse_term(p, base)).collect()
}

/// Parses one experiment-file statement that fills all of `text`.
pub fn parse_statement_text(text: &str, base: usize) -> PResult<Statement> {
    let mut pairs = run(Rule::statement_input, text, base)?;
    let input = pairs.next().expect("statement_input matched");
    parse_statement(first_inner(input), base)
}

/// Parses a `key=value` override that fills all of `text`.
pub fn parse_override_text(text: &str, base: usize) -> PResult<(Spanned<String>, Expr)> {
    let mut pairs = run(Rule::override_input, text, base)?;
    let mut inner = pairs.next().expect("override_input matched").into_inner();
    let key = parse_key(inner.next().expect("key"), base);
    let value = parse_expr(inner.next().expect("expr"), base)?;
    Ok((key, value))
}

fn first_inner(pair: Pair<'_, Rule>) -> Pair<'_, Rule> {
    pair.into_inner().next().expect("the grammar puts a rule here")
}

fn run(rule: Rule, text: &str, base: usize) -> PResult<pest::iterators::Pairs<'_, Rule>> {
    static DETAIL: std::sync::Once = std::sync::Once::new();
    // Collect the tokens pest tried at the failure point, so errors can name `,` or `)`.
    DETAIL.call_once(|| pest::set_error_detail(true));
    AmmParser::parse(rule, text).map_err(|e| syntax_problem(&e, text, base))
}

fn span_of(pair: &Pair<'_, Rule>, base: usize) -> Span {
    let s = pair.as_span();
    Span::new(base + s.start(), base + s.end())
}

// ============================================================================================
// One function per rule
// ============================================================================================

/// `statement_input` body: `section | include | assignment`.
pub fn parse_statement(pair: Pair<'_, Rule>, base: usize) -> PResult<Statement> {
    match pair.as_rule() {
        Rule::section => Ok(Statement::Section(parse_section(pair, base))),
        Rule::include => parse_include(pair, base),
        Rule::assignment => parse_assignment(pair, base),
        r => unreachable!("statement cannot be {r:?}"),
    }
}

/// `section = "[" ident "]"`.
pub fn parse_section(pair: Pair<'_, Rule>, base: usize) -> Spanned<String> {
    let span = span_of(&pair, base);
    Spanned::new(first_inner(pair).as_str().to_string(), span)
}

/// `include = "include" string`.
pub fn parse_include(pair: Pair<'_, Rule>, base: usize) -> PResult<Statement> {
    let string = first_inner(pair);
    let span = span_of(&string, base);
    Ok(Statement::Include(Spanned::new(parse_string(string), span)))
}

/// `assignment = key "=" expr`.
pub fn parse_assignment(pair: Pair<'_, Rule>, base: usize) -> PResult<Statement> {
    let mut inner = pair.into_inner();
    let key = parse_key(inner.next().expect("key"), base);
    let value = parse_expr(inner.next().expect("expr"), base)?;
    Ok(Statement::Assign { key, value })
}

/// `key = ident ("." ident)*`.
pub fn parse_key(pair: Pair<'_, Rule>, base: usize) -> Spanned<String> {
    Spanned::new(pair.as_str().to_string(), span_of(&pair, base))
}

/// `expr = term ("|>" term)*`; one term is returned as itself.
pub fn parse_expr(pair: Pair<'_, Rule>, base: usize) -> PResult<Expr> {
    debug_assert_eq!(pair.as_rule(), Rule::expr);
    let span = span_of(&pair, base);
    let mut terms = pair.into_inner().map(|p| parse_term(p, base)).collect::<PResult<Vec<_>>>()?;
    if terms.len() == 1 {
        Ok(terms.pop().expect("one term"))
    } else {
        Ok(Expr { kind: ExprKind::Pipeline(terms), span })
    }
}

/// `term = alternatives | list | boolean | number | string | call`.
pub fn parse_term(pair: Pair<'_, Rule>, base: usize) -> PResult<Expr> {
    let span = span_of(&pair, base);
    let kind = match pair.as_rule() {
        Rule::alternatives => ExprKind::Alternatives(parse_exprs(pair, base)?),
        Rule::list => ExprKind::List(pair.into_inner().map(|p| parse_term(p, base)).collect::<PResult<_>>()?),
        Rule::boolean => ExprKind::Bool(parse_boolean(pair)),
        Rule::number => parse_number(pair, base)?,
        Rule::string => ExprKind::Str(parse_string(pair)),
        Rule::call => ExprKind::Call(parse_call(pair, base)?),
        r => unreachable!("term cannot be {r:?}"),
    };
    Ok(Expr { kind, span })
}

/// The `expr` children of `alternatives`.
fn parse_exprs(pair: Pair<'_, Rule>, base: usize) -> PResult<Vec<Expr>> {
    pair.into_inner().map(|p| parse_expr(p, base)).collect()
}

/// `boolean = "true" | "false"`.
pub fn parse_boolean(pair: Pair<'_, Rule>) -> bool {
    pair.as_str() == "true"
}

/// `number`: an integer without `.` or exponent, else a finite float.
pub fn parse_number(pair: Pair<'_, Rule>, base: usize) -> PResult<ExprKind> {
    let text = pair.as_str();
    let span = span_of(&pair, base);
    let digits = text.strip_prefix('+').unwrap_or(text);
    if !text.contains(['.', 'e', 'E']) {
        return digits.parse::<i64>().map(ExprKind::Int).map_err(|_| {
            Problem::new(span, format!("integer `{}` is out of range", clip(text))).with_help(format!(
                "integers go from {} to {}",
                i64::MIN,
                i64::MAX
            ))
        });
    }
    match digits.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(ExprKind::Float(x)),
        _ => Err(Problem::new(span, format!("number `{}` is out of range", clip(text))).with_help("numbers must be finite 64-bit floats")),
    }
}

/// `string = "\"" string_inner "\""`, escapes resolved.
pub fn parse_string(pair: Pair<'_, Rule>) -> String {
    let inner = first_inner(pair).as_str();
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `call = ident arguments?`.
pub fn parse_call(pair: Pair<'_, Rule>, base: usize) -> PResult<Call> {
    let mut inner = pair.into_inner();
    let name = inner.next().expect("ident");
    let name = Spanned::new(name.as_str().to_string(), span_of(&name, base));
    let args = inner.next().map(|p| parse_arguments(p, base)).transpose()?;
    Ok(Call { name, args })
}

/// `arguments = "(" (argument ("," argument)*)? ")"`.
pub fn parse_arguments(pair: Pair<'_, Rule>, base: usize) -> PResult<Spanned<Vec<Arg>>> {
    let span = span_of(&pair, base);
    let args = pair.into_inner().map(|p| parse_argument(p, base)).collect::<PResult<Vec<_>>>()?;
    Ok(Spanned::new(args, span))
}

/// `argument = (ident "=")? term`.
pub fn parse_argument(pair: Pair<'_, Rule>, base: usize) -> PResult<Arg> {
    let span = span_of(&pair, base);
    let mut inner = pair.into_inner();
    let first = inner.next().expect("argument has a child");
    let (name, value) = if first.as_rule() == Rule::ident {
        let name = Spanned::new(first.as_str().to_string(), span_of(&first, base));
        (Some(name), inner.next().expect("value after ="))
    } else {
        (None, first)
    };
    Ok(Arg { name, value: parse_term(value, base)?, span })
}

// ============================================================================================
// Syntax errors
// ============================================================================================

/// What a rule means, in the words of the error message (never `Rule::xyz`).
pub fn rule_words(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::EOI => "end of input",
        Rule::WHITESPACE | Rule::COMMENT | Rule::ident_char => return None,
        Rule::ident | Rule::call => "a name",
        Rule::boolean => "`true` or `false`",
        Rule::number => "a number",
        Rule::string | Rule::string_inner => "a string",
        Rule::expr | Rule::term => "a value",
        Rule::alternatives => "alternatives `{...}`",
        Rule::list => "a list `[...]`",
        Rule::arguments => "arguments `(...)`",
        Rule::argument => "an argument",
        Rule::section => "a section header `[name]`",
        Rule::include => "`include \"file\"`",
        Rule::key => "a key",
        Rule::assignment => "`key = value`",
        Rule::override_input | Rule::expr_input | Rule::statement_input | Rule::items_input => return None,
    })
}

/// Turns a pest error into a [`Problem`]: "expected `,` or `)`, found `5`".
///
/// pest's own rule list names the rule that *contains* the failure (e.g. `arguments` when a
/// `,` is missing), so the message is built from the literal tokens tried at the furthest
/// position instead: punctuation is named, value starts collapse to "a value".
fn syntax_problem(err: &pest::error::Error<Rule>, text: &str, base: usize) -> Problem {
    let mut pos = match err.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let mut expected: Vec<String> = Vec::new();
    fn push(expected: &mut Vec<String>, w: &str) {
        if !expected.iter().any(|e| e == w) {
            expected.push(w.to_string());
        }
    }
    if let Some(attempts) = err.parse_attempts() {
        pos = pos.max(attempts.max_position);
        // `ParsingToken` is not exported; its Display is the literal.
        let tokens: Vec<String> = attempts.expected_tokens().iter().map(|t| t.to_string()).collect();
        let has = |t: &str| tokens.iter().any(|x| x == t);
        if has("include") {
            push(&mut expected, "a key");
            push(&mut expected, "a section header `[name]`");
            push(&mut expected, "`include \"file\"`");
        } else if has("[") || has("{") || has("true") {
            push(&mut expected, "a value");
        }
        let closers = [",", ")", "]", "}"];
        let closing = closers.iter().any(|c| has(c));
        for t in [",", ")", "]", "}", "=", "(", "|>"] {
            // After a complete argument or item, naming `(`, `=` and `|>` too only confuses.
            if has(t) && (!closing || closers.contains(&t)) {
                push(&mut expected, &format!("`{t}`"));
            }
        }
        if expected.is_empty() {
            for stack in attempts.call_stacks() {
                if let Some(w) = stack.deepest.get_rule().and_then(|r| rule_words(*r)) {
                    push(&mut expected, w);
                }
            }
        }
    }
    if expected.is_empty() {
        if let ErrorVariant::ParsingError { positives, .. } = &err.variant {
            for w in positives.iter().filter_map(|r| rule_words(*r)) {
                push(&mut expected, w);
            }
        }
    }
    let (found, len) = found_at(text, pos);
    let message = match expected.as_slice() {
        [] => format!("unexpected {found}"),
        [one] => format!("expected {one}, found {found}"),
        [init @ .., last] => format!("expected {} or {last}, found {found}", init.join(", ")),
    };
    Problem::new(Span::new(base + pos, base + pos + len), message)
}

/// Describes the text at `pos` ("`abc`", "`;`", "end of input") and its length in bytes.
fn found_at(text: &str, pos: usize) -> (String, usize) {
    let rest = &text[pos.min(text.len())..];
    let Some(c) = rest.chars().next() else {
        return ("end of input".into(), 0);
    };
    if c.is_alphanumeric() || c == '_' {
        let len = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.')).unwrap_or(rest.len());
        (format!("`{}`", clip(&rest[..len])), len)
    } else if c == '\n' {
        ("end of line".into(), 1)
    } else if c.is_control() {
        (format!("character {:?}", c), c.len_utf8())
    } else {
        (format!("`{c}`"), c.len_utf8())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::printer::expr_to_string;

    fn expr(src: &str) -> Expr {
        parse_expr_text(src, 0).unwrap_or_else(|p| panic!("{src}: {p:?}"))
    }

    fn err(src: &str) -> Problem {
        parse_expr_text(src, 0).expect_err(src)
    }

    fn call(name: &str, s: usize, args: Option<(Vec<Arg>, Span)>) -> ExprKind {
        let n = Spanned::new(name.to_string(), Span::new(s, s + name.len()));
        ExprKind::Call(Call { name: n, args: args.map(|(a, sp)| Spanned::new(a, sp)) })
    }

    #[test]
    fn each_rule_consumes_whole_input() {
        for (rule, src) in [
            (Rule::ident, "fashion-mnist"),
            (Rule::number, "-1.5e-3"),
            (Rule::number, ".5"),
            (Rule::boolean, "false"),
            (Rule::string, r#""a \"b\" \\""#),
            (Rule::list, "[800, 800,]"),
            (Rule::alternatives, "{avg, min(class, 0.2)}"),
            (Rule::call, "exp(c=2, d=1)"),
            (Rule::expr, "deepfool(l2, 5) |> avg |> exp(2, 1)"),
            (Rule::section, "[train]"),
            (Rule::include, "include \"base.amm\""),
            (Rule::assignment, "train.lr = {0.1, 0.01}"),
        ] {
            let pairs = AmmParser::parse(rule, src).unwrap_or_else(|e| panic!("{src}: {e}"));
            assert_eq!(pairs.as_str(), src, "{rule:?} must consume `{src}`");
        }
    }

    #[test]
    fn ast_of_a_call_with_positional_and_named_args() {
        let e = expr("exp(2, d=1)");
        let expected = Expr {
            kind: call(
                "exp",
                0,
                Some((
                    vec![
                        Arg { name: None, value: Expr { kind: ExprKind::Int(2), span: Span::new(4, 5) }, span: Span::new(4, 5) },
                        Arg {
                            name: Some(Spanned::new("d".into(), Span::new(7, 8))),
                            value: Expr { kind: ExprKind::Int(1), span: Span::new(9, 10) },
                            span: Span::new(7, 10),
                        },
                    ],
                    Span::new(3, 11),
                )),
            ),
            span: Span::new(0, 11),
        };
        assert_eq!(e, expected);
    }

    #[test]
    fn ast_of_a_pipeline_with_alternatives() {
        let e = expr("deepfool(l2) |> {avg, min}");
        let ExprKind::Pipeline(stages) = &e.kind else { panic!("{e:?}") };
        assert_eq!(stages.len(), 2);
        assert_eq!(stages[1].span, Span::new(16, 26));
        let ExprKind::Alternatives(alts) = &stages[1].kind else { panic!() };
        assert_eq!(alts[0].kind, call("avg", 17, None));
        assert_eq!(alts[1].kind, call("min", 22, None));
    }

    #[test]
    fn literals() {
        assert_eq!(expr("5").kind, ExprKind::Int(5));
        assert_eq!(expr("-3").kind, ExprKind::Int(-3));
        assert_eq!(expr("1e-3").kind, ExprKind::Float(1e-3));
        assert_eq!(expr("0.02").kind, ExprKind::Float(0.02));
        assert_eq!(expr("true").kind, ExprKind::Bool(true));
        assert_eq!(expr("trueish").as_ident(), Some("trueish"));
        assert_eq!(expr("\"a\\n\\\"b\"").kind, ExprKind::Str("a\n\"b".into()));
        assert_eq!(expr("fashion-mnist").as_ident(), Some("fashion-mnist"));
        assert_eq!(expr("[]").kind, ExprKind::List(vec![]));
    }

    #[test]
    fn comments_and_newlines_are_spacing() {
        let e = expr("deepfool(l2) # proxy\n  |> avg\n  |> exp(2, 1) # shrinkage");
        assert_eq!(expr_to_string(&e), "deepfool(l2) |> avg |> exp(2, 1)");
    }

    #[test]
    fn syntax_errors_say_what_was_expected() {
        let p = err("deepfool(l2 5)");
        assert_eq!(p.span, Span::new(12, 13));
        assert_eq!(p.message, "expected `,` or `)`, found `5`");
        let p = err("deepfool(l2) |>");
        assert_eq!(p.message, "expected a value, found end of input");
        let p = err("deepfool(l2) avg");
        assert_eq!(p.message, "expected `|>`, found `avg`");
        assert_eq!(p.span, Span::new(13, 16));
        let p = err("exp(c=)");
        assert_eq!(p.message, "expected a value, found `)`");
        let p = err("99999999999999999999");
        assert_eq!(p.message, "integer `99999999999999999999` is out of range");
        let p = err("1e999");
        assert_eq!(p.message, "number `1e999` is out of range");
    }

    #[test]
    fn statement_errors() {
        let p = parse_statement_text("lr 0.1", 10).unwrap_err();
        assert_eq!(p.span.start, 13);
        assert_eq!(p.message, "expected `=`, found `0.1`");
        let p = parse_statement_text("[train", 0).unwrap_err();
        assert_eq!(p.message, "expected `]`, found end of input");
    }
}
