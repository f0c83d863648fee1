//! Printing back to source: canonical text of specs, and of syntax trees.
//!
//! - [`StageSpec`] prints every argument by name in schema order: `exp(c=2, d=1, clip=50)`;
//!   a stage without parameters prints bare (`avg`).
//! - [`PipelineSpec`] prints `proxy |> aggregation [|> normalize] |> shrinkage [|> weight(λ)]`
//!   (the weight only when it is not 1); parsing the text gives an equal spec.
//! - [`expr_to_string`] prints an expression as the user wrote it, spacing normalized; grid
//!   cells use it to name the alternative they took (`deepfool(l2, 5) |> avg |> exp(2, 1)`).

use std::fmt::{self, Write as _};

use crate::ast::{Call, Expr, ExprKind};
use crate::spec::{PipelineSpec, StageSpec};
use crate::value::{write_float, write_str};

impl fmt::Display for StageSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if self.args.is_empty() {
            return Ok(());
        }
        f.write_str("(")?;
        for (i, (k, v)) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k}={v}")?;
        }
        f.write_str(")")
    }
}

impl fmt::Display for PipelineSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} |> {}", self.proxy, self.aggregation)?;
        if self.normalize {
            f.write_str(" |> normalize")?;
        }
        write!(f, " |> {}", self.shrinkage)?;
        if self.weight != 1.0 {
            f.write_str(" |> weight(")?;
            write_float(f, self.weight)?;
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// An expression as source text with normalized spacing.
pub fn expr_to_string(e: &Expr) -> String {
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = write_expr(&mut s, e);
    s
}

struct Float(f64);
impl fmt::Display for Float {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_float(f, self.0)
    }
}

struct Str<'a>(&'a str);
impl fmt::Display for Str<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_str(f, self.0)
    }
}

fn write_list(out: &mut String, items: &[Expr], open: &str, sep: &str, close: &str) -> fmt::Result {
    out.push_str(open);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        write_expr(out, item)?;
    }
    out.push_str(close);
    Ok(())
}

fn write_expr(out: &mut String, e: &Expr) -> fmt::Result {
    match &e.kind {
        ExprKind::Pipeline(stages) => write_list(out, stages, "", " |> ", ""),
        ExprKind::Alternatives(items) => write_list(out, items, "{", ", ", "}"),
        ExprKind::List(items) => write_list(out, items, "[", ", ", "]"),
        ExprKind::Call(Call { name, args }) => {
            out.push_str(&name.node);
            if let Some(args) = args {
                out.push('(');
                for (i, a) in args.node.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    if let Some(n) = &a.name {
                        write!(out, "{}=", n.node)?;
                    }
                    write_expr(out, &a.value)?;
                }
                out.push(')');
            }
            Ok(())
        }
        ExprKind::Int(i) => write!(out, "{i}"),
        ExprKind::Float(x) => write!(out, "{}", Float(*x)),
        ExprKind::Bool(b) => write!(out, "{b}"),
        ExprKind::Str(s) => write!(out, "{}", Str(s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::parse_expr_text;

    #[test]
    fn expressions_print_as_written() {
        for src in ["deepfool(l2, 5) |> {avg, min(class, 0.2)} |> exp(c=2, d=1)", "[800, 800]", "\"a\\\"b\"", "{0.1, 1e-7, true}"] {
            assert_eq!(expr_to_string(&parse_expr_text(src, 0).unwrap()), src);
        }
        let e = parse_expr_text("exp( 2 ,d = 1.50 )", 0).unwrap();
        assert_eq!(expr_to_string(&e), "exp(2, d=1.5)");
    }
}
