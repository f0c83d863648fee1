//! Grid expansion: alternatives `{a, b}` become one concrete expression per choice.
//!
//! Alternatives may stand wherever a stage or a value stands and nest inside each other:
//! `{avg, min(class, {0.1, 0.2})}` is 3 choices; several alternatives in one expression give
//! their cross product, the first varying slowest. An alternative that is itself a pipeline
//! (`deepfool(l2) |> {avg |> normalize, min} |> exp`) splices its stages into the
//! surrounding pipeline. [`count`] is computed first (saturating, no allocation) so a grid
//! larger than [`MAX_CELLS`] is refused before anything is built.

use crate::ast::{Arg, Call, Expr, ExprKind, Spanned};

/// The largest grid accepted (cells of an experiment, or expansions of one pipeline).
pub const MAX_CELLS: u64 = 100_000;

/// The most parts (stages, arguments, values: see [`parts`]) the expansions of a grid may hold
/// together. Expanding and checking take time in proportion: a 300 KB pipeline of 50,000
/// stages and 16 alternatives (65,536 copies of those stages) is refused instead of running
/// for hours, and a 100,000-cell grid of 20-part pipelines is still checked in about a second.
pub const MAX_EXPANDED_PARTS: u64 = 4_000_000;

/// How many concrete expressions `e` expands to (saturating at `u64::MAX`).
pub fn count(e: &Expr) -> u64 {
    match &e.kind {
        ExprKind::Alternatives(items) => items.iter().fold(0u64, |n, i| n.saturating_add(count(i))),
        ExprKind::Pipeline(items) | ExprKind::List(items) => product(items),
        ExprKind::Call(Call { args: Some(args), .. }) => args.node.iter().fold(1u64, |n, a| n.saturating_mul(count(&a.value))),
        _ => 1,
    }
}

fn product(items: &[Expr]) -> u64 {
    items.iter().fold(1u64, |n, i| n.saturating_mul(count(i)))
}

/// The parts of the largest concrete expression `e` stands for (saturating): one per stage,
/// call, argument and value.
pub fn parts(e: &Expr) -> u64 {
    let sum = |items: &mut dyn Iterator<Item = &Expr>| items.fold(1u64, |n, i| n.saturating_add(parts(i)));
    match &e.kind {
        ExprKind::Alternatives(items) => items.iter().map(parts).max().unwrap_or(0),
        ExprKind::Pipeline(items) | ExprKind::List(items) => sum(&mut items.iter()),
        ExprKind::Call(Call { args: Some(args), .. }) => sum(&mut args.node.iter().map(|a| &a.value)),
        _ => 1,
    }
}

/// Whether `e` contains alternatives anywhere.
pub fn has_alternatives(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Alternatives(_) => true,
        ExprKind::Pipeline(items) | ExprKind::List(items) => items.iter().any(has_alternatives),
        ExprKind::Call(Call { args: Some(args), .. }) => args.node.iter().any(|a| has_alternatives(&a.value)),
        _ => false,
    }
}

/// Every concrete expression (without alternatives) that `e` stands for, in grid order.
/// Call [`count`] first: the result has exactly that many elements.
pub fn expand(e: &Expr) -> Vec<Expr> {
    if !has_alternatives(e) {
        return vec![e.clone()];
    }
    match &e.kind {
        ExprKind::Alternatives(items) => items.iter().flat_map(expand).collect(),
        ExprKind::Pipeline(items) => cross(items.iter().map(expand).collect())
            .into_iter()
            .map(|stages| {
                let mut flat = Vec::with_capacity(stages.len());
                for s in stages {
                    match s.kind {
                        ExprKind::Pipeline(inner) => flat.extend(inner),
                        _ => flat.push(s),
                    }
                }
                Expr { kind: ExprKind::Pipeline(flat), span: e.span }
            })
            .collect(),
        ExprKind::List(items) => {
            cross(items.iter().map(expand).collect()).into_iter().map(|items| Expr { kind: ExprKind::List(items), span: e.span }).collect()
        }
        ExprKind::Call(Call { name, args: Some(args) }) => {
            let choices = args.node.iter().map(|a| expand(&a.value)).collect();
            cross(choices)
                .into_iter()
                .map(|values| {
                    let new_args =
                        args.node.iter().zip(values).map(|(a, value)| Arg { name: a.name.clone(), value, span: a.span }).collect();
                    Expr { kind: ExprKind::Call(Call { name: name.clone(), args: Some(Spanned::new(new_args, args.span)) }), span: e.span }
                })
                .collect()
        }
        _ => vec![e.clone()],
    }
}

/// The cross product of `choices`, the first position varying slowest. Each combination is
/// built once, in time linear in its length (growing prefixes one position at a time cloned
/// them over and over: quadratic in the length of a 50,000-stage pipeline).
pub fn cross<T: Clone>(choices: Vec<Vec<T>>) -> Vec<Vec<T>> {
    let total = choices.iter().fold(1usize, |n, c| n.saturating_mul(c.len()));
    let mut out = Vec::with_capacity(total);
    let mut pick = vec![0usize; choices.len()];
    for _ in 0..total {
        out.push(pick.iter().zip(&choices).map(|(&i, options)| options[i].clone()).collect());
        // The next combination: the last position varies fastest.
        for (i, options) in pick.iter_mut().zip(&choices).rev() {
            *i += 1;
            if *i < options.len() {
                break;
            }
            *i = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::parse_expr_text;
    use crate::printer::expr_to_string;

    fn expansions(src: &str) -> Vec<String> {
        let e = parse_expr_text(src, 0).unwrap();
        let all = expand(&e);
        assert_eq!(all.len() as u64, count(&e), "{src}");
        all.iter().map(expr_to_string).collect()
    }

    #[test]
    fn cross_products_in_reading_order() {
        assert_eq!(expansions("p |> {a, b} |> {x, y}"), vec!["p |> a |> x", "p |> a |> y", "p |> b |> x", "p |> b |> y"]);
        assert_eq!(expansions("deepfool(l2, {1, 3, 5})"), vec!["deepfool(l2, 1)", "deepfool(l2, 3)", "deepfool(l2, 5)"]);
        assert_eq!(expansions("{avg, min(class, {0.1, 0.2})}"), vec!["avg", "min(class, 0.1)", "min(class, 0.2)"]);
        assert_eq!(expansions("[{1, 2}, 3]"), vec!["[1, 3]", "[2, 3]"]);
    }

    #[test]
    fn alternative_pipelines_splice() {
        assert_eq!(expansions("p |> {a |> n, b} |> s"), vec!["p |> a |> n |> s", "p |> b |> s"]);
        assert_eq!(expansions("{none, p |> a |> s}"), vec!["none", "p |> a |> s"]);
    }

    #[test]
    fn cross_is_the_product_in_order() {
        assert_eq!(cross(vec![vec![1, 2], vec![3], vec![4, 5]]), vec![vec![1, 3, 4], vec![1, 3, 5], vec![2, 3, 4], vec![2, 3, 5]]);
        assert_eq!(cross::<u8>(vec![]), vec![Vec::<u8>::new()]);
        assert_eq!(cross(vec![vec![1], vec![]]), Vec::<Vec<i32>>::new());
    }

    #[test]
    fn parts_of_the_largest_expansion() {
        let e = parse_expr_text("deepfool(l2, 5) |> {avg, min(class, {0.1, 0.2})} |> exp", 0).unwrap();
        // The pipeline, deepfool and its two arguments, min and its two, exp.
        assert_eq!(parts(&e), 1 + 3 + 3 + 1);
        assert_eq!(parts(&parse_expr_text("[1, 2, 3]", 0).unwrap()), 4);
    }

    #[test]
    fn count_saturates() {
        let src = format!("p |> {}", vec!["{a, b, c, d}"; 64].join(" |> "));
        let e = parse_expr_text(&src, 0).unwrap();
        assert_eq!(count(&e), u64::MAX);
    }
}
