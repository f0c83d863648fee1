//! Lists of evaluation attacks (`eval.attacks = "fmn, apgd(restarts=2)"`, `amm eval --attacks`):
//! calls written like every other stage and checked against the catalog's attacks, so a typo gets
//! the same located error, with a caret and a did-you-mean, as one in a pipeline.

use crate::ast::{Expr, ExprKind};
use crate::diagnostic::{Diagnostics, Problem, Report, Span};
use crate::parser::parse_items_text;
use crate::printer::expr_to_string;
use crate::scan::{scan, Mode};
use crate::schema::{Catalog, Kind};
use crate::spec::StageSpec;
use crate::validate::validate_stage;

/// One attack of a list: the validated call and its label.
#[derive(Clone, Debug, PartialEq)]
pub struct AttackCall {
    /// The attack and its arguments, defaults filled in.
    pub spec: StageSpec,
    /// How results name it: the name alone (`fmn`), or the call as written without spaces when it
    /// has arguments (`fmn(steps=20,gamma=0.1)`), so two settings of one attack stay apart.
    pub label: String,
}

/// Parses and validates an attack list such as `deepfool, fmn(steps=200), apgd`; `origin` names
/// the source in errors (`--attacks`, a file).
///
/// ```
/// use amm_dsl::{attacks::parse_attacks, testing};
///
/// let catalog = testing::catalog();
/// let list = parse_attacks("--attacks", "deepfool, fmn(steps=20, gamma=0.1)", &catalog).unwrap();
/// assert_eq!(list[1].label, "fmn(steps=20,gamma=0.1)");
/// assert_eq!(list[1].spec.args.usize("steps"), Ok(20));
///
/// let err = parse_attacks("--attacks", "fmn, cw", &catalog).unwrap_err();
/// assert_eq!(err.0[0].message, "unknown attack `cw`");
/// assert_eq!((err.0[0].line, err.0[0].column), (1, 6));
/// ```
pub fn parse_attacks(origin: &str, src: &str, catalog: &dyn Catalog) -> Result<Vec<AttackCall>, Diagnostics> {
    check_attack_text(src, 0, catalog).map_err(|problems| Report::of(origin, src, problems))
}

/// Checks the attack list `text`, which starts at byte `base` of its source (the inside of a
/// string in an experiment file), so that spans point into that source.
pub(crate) fn check_attack_text(text: &str, base: usize, catalog: &dyn Catalog) -> Result<Vec<AttackCall>, Vec<Problem>> {
    let (pieces, problems) = scan(text, Mode::Whole);
    let shift = |p: Problem| Problem { span: Span::new(p.span.start + base, p.span.end + base), ..p };
    if !problems.is_empty() {
        return Err(problems.into_iter().map(shift).collect());
    }
    let items = if pieces.is_empty() { Vec::new() } else { parse_items_text(text, base).map_err(|p| vec![p])? };
    if items.is_empty() {
        return Err(vec![Problem::new(Span::new(base, base + text.len()), "the attack list is empty")
            .with_help(format!("name one or more attacks, separated by commas ({})", names(catalog)))]);
    }
    let label_of = |e: &Expr| -> String {
        let (start, end) = (e.span.start - base, e.span.end - base);
        text[start..end].chars().filter(|c| !c.is_whitespace()).collect()
    };
    check_attack_items(&items, catalog, &label_of)
}

/// Checks an attack list given as a value, `[fmn, apgd]` or one call `fmn`, and returns it as the
/// text [`parse_attacks`] reads (how `eval.attacks` is stored).
pub(crate) fn check_attack_value(e: &Expr, catalog: &dyn Catalog) -> Result<String, Vec<Problem>> {
    let items = match &e.kind {
        ExprKind::List(items) => items.as_slice(),
        _ => std::slice::from_ref(e),
    };
    if items.is_empty() {
        return Err(vec![Problem::new(e.span, "the attack list is empty")
            .with_help(format!("name one or more attacks, or write \"\" for none ({})", names(catalog)))]);
    }
    let label_of = |e: &Expr| -> String { expr_to_string(e).chars().filter(|c| !c.is_whitespace()).collect() };
    check_attack_items(items, catalog, &label_of)?;
    Ok(items.iter().map(expr_to_string).collect::<Vec<_>>().join(", "))
}

fn names(catalog: &dyn Catalog) -> String {
    format!("attacks: {}", catalog.names(Kind::Attack).join(", "))
}

fn check_attack_items(items: &[Expr], catalog: &dyn Catalog, label_of: &dyn Fn(&Expr) -> String) -> Result<Vec<AttackCall>, Vec<Problem>> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for e in items {
        match validate_stage(e, Kind::Attack, catalog) {
            Ok(spec) => {
                let with_args = matches!(&e.kind, ExprKind::Call(c) if c.args.as_ref().is_some_and(|a| !a.node.is_empty()));
                let label = if with_args { label_of(e) } else { spec.name.clone() };
                if out.iter().any(|a: &AttackCall| a.label == label) {
                    problems.push(
                        Problem::new(e.span, format!("attack `{label}` appears twice in the list"))
                            .with_help("give each attack once, or give the second other arguments"),
                    );
                    continue;
                }
                out.push(AttackCall { spec, label });
            }
            Err(ps) => problems.extend(ps),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::catalog;

    fn err(text: &str) -> (String, usize, usize) {
        let d = parse_attacks("<t>", text, &catalog()).unwrap_err();
        (d.0[0].message.clone(), d.0[0].line, d.0[0].column)
    }

    #[test]
    fn lists_parse_with_labels_and_defaults() {
        let l = parse_attacks("<t>", "deepfool, fmn(steps=20, gamma=0.1),apgd", &catalog()).unwrap();
        let labels: Vec<&str> = l.iter().map(|a| a.label.as_str()).collect();
        assert_eq!(labels, ["deepfool", "fmn(steps=20,gamma=0.1)", "apgd"]);
        assert_eq!(l[0].spec.args.usize("iters"), Ok(50));
        assert_eq!(l[1].spec.args.f64("gamma"), Ok(0.1));
        assert_eq!(parse_attacks("<t>", "apgd-ce, apgd-t(targets=3)", &catalog()).unwrap().len(), 2);
    }

    #[test]
    fn mistakes_are_located() {
        assert_eq!(err("fmn, cw"), ("unknown attack `cw`".into(), 1, 6));
        let (m, _, col) = err("fmn(stepz=3)");
        assert_eq!((m.as_str(), col), ("`fmn` has no parameter `stepz`", 5));
        assert!(err("fmn(steps=many)").0.contains("steps"), "{:?}", err("fmn(steps=many)"));
        assert_eq!(err("fmn, fmn").0, "attack `fmn` appears twice in the list");
        assert_eq!(err("  ").0, "the attack list is empty");
        assert_eq!(err("fmn(").1, 1);
        assert_eq!(err("mlp").0, "`mlp` is a model, not an attack");
    }
}
