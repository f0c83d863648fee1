//! Regularizer pipelines given on their own (`amm train --reg "…"`, tests, plugins).
//!
//! `scan` (nesting bound, brackets) → pest → AST → grid bound → expand → validate each.

use crate::ast::Expr;
use crate::diagnostic::{Diagnostics, Problem, Report, Span};
use crate::expand::{count, expand, parts, MAX_CELLS, MAX_EXPANDED_PARTS};
use crate::parser::parse_expr_text;
use crate::scan::{scan, Mode};
use crate::schema::Catalog;
use crate::spec::PipelineSpec;
use crate::validate::validate_pipeline;

/// Parses and validates a pipeline, expanding its alternatives: one entry per grid cell, in
/// grid order; `None` is `none`, the empty regularizer (the reference model).
///
/// ```
/// use amm_dsl::{parse_pipeline, testing};
///
/// let catalog = testing::catalog();
/// let grid = parse_pipeline(
///     "deepfool(l2, 5) |> {avg, min(class, 0.2)} |> {lin(1, 1), inv(1, 1), exp(2, 1)}",
///     &catalog,
/// )
/// .unwrap();
/// assert_eq!(grid.len(), 6);
/// let first = grid[0].as_ref().unwrap();
/// assert_eq!(first.shrinkage.args.f64("c"), Ok(1.0));
/// assert_eq!(
///     first.to_string(),
///     "deepfool(norm=l2, iters=5, overshoot=0.02, candidates=10, hog=true, chain=full, failed=drop) \
///      |> avg |> lin(c=1, d=1, clip=none)"
/// );
///
/// let err = parse_pipeline("deepfool(l2, 5) |> exq(2, 1)", &catalog).unwrap_err();
/// assert_eq!(err.0[0].message, "unknown shrinkage `exq`");
/// assert_eq!((err.0[0].line, err.0[0].column), (1, 20));
/// ```
pub fn parse_pipeline(src: &str, catalog: &dyn Catalog) -> Result<Vec<Option<PipelineSpec>>, Diagnostics> {
    parse_pipeline_from("<pipeline>", src, catalog)
}

/// [`parse_pipeline`], naming the source in errors (`<--reg>`, a file name).
pub fn parse_pipeline_from(origin: &str, src: &str, catalog: &dyn Catalog) -> Result<Vec<Option<PipelineSpec>>, Diagnostics> {
    let fail = |problems: Vec<Problem>| Report::of(origin, src, problems);
    let expr = match parse_whole(src) {
        Ok(Some(e)) => e,
        Ok(None) => {
            return Err(fail(vec![
                Problem::new(Span::new(0, 0), "empty pipeline").with_help("write e.g. `deepfool(l2, 5) |> avg |> exp(2, 1)`, or `none`")
            ]))
        }
        Err(problems) => return Err(fail(problems)),
    };
    let n = count(&expr);
    if n > MAX_CELLS {
        return Err(fail(vec![Problem::new(expr.span, format!("the pipeline expands to {} alternatives, more than {MAX_CELLS}", big(n)))
            .with_help("split the grid into several runs")]));
    }
    if n > 1 && n.saturating_mul(parts(&expr)) > MAX_EXPANDED_PARTS {
        return Err(fail(vec![too_many_parts("the pipeline", n, parts(&expr), expr.span)]));
    }
    let mut problems = Vec::new();
    // One mistake reached through many alternatives is kept once (see `experiment`).
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for e in expand(&expr) {
        match validate_pipeline(&e, catalog) {
            Ok(p) => out.push(p),
            Err(ps) => {
                for p in ps {
                    if !seen.contains(&p) {
                        seen.insert(p.clone());
                        problems.push(p);
                    }
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(fail(problems))
    }
}

/// The error for a value whose alternatives hold more than [`MAX_EXPANDED_PARTS`] parts.
pub(crate) fn too_many_parts(what: &str, n: u64, parts: u64, span: Span) -> Problem {
    Problem::new(
        span,
        format!(
            "{what} expands to {n} alternatives of up to {} parts each, more than the {MAX_EXPANDED_PARTS} parts amm checks",
            big(parts)
        ),
    )
    .with_help("use fewer alternatives or a shorter value, or split the grid into several runs")
}

/// A count for messages; saturated counts read "more than 18446744073709551615".
pub(crate) fn big(n: u64) -> String {
    if n == u64::MAX {
        format!("more than {}", u64::MAX)
    } else {
        n.to_string()
    }
}

/// Scans and parses a whole input as one value; `Ok(None)` when it holds nothing but spacing
/// and comments.
pub(crate) fn parse_whole(src: &str) -> Result<Option<Expr>, Vec<Problem>> {
    let (pieces, problems) = scan(src, Mode::Whole);
    if !problems.is_empty() {
        return Err(problems);
    }
    if pieces.is_empty() {
        return Ok(None);
    }
    // Parse the whole text (not the piece) so that spans are offsets into it.
    parse_expr_text(src, 0).map(Some).map_err(|p| vec![p])
}
