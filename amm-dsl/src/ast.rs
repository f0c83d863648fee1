//! The typed syntax tree, with a byte [`Span`] on every node.
//!
//! The tree is what the user wrote, before names are checked against a catalog and before
//! alternatives are expanded: `deepfool(l2, {1, 3}) |> avg |> exp(2, 1)` is one
//! [`ExprKind::Pipeline`] whose first stage has an [`ExprKind::Alternatives`] argument.

use crate::diagnostic::Span;

/// A value with the span it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Spanned<T> {
    /// The value.
    pub node: T,
    /// Where it was written.
    pub span: Span,
}

impl<T> Spanned<T> {
    /// Wraps `node`.
    pub fn new(node: T, span: Span) -> Spanned<T> {
        Spanned { node, span }
    }
}

/// A stage or a value.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Where it was written.
    pub span: Span,
}

/// The kinds of [`Expr`].
#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// Two or more stages joined by `|>`.
    Pipeline(Vec<Expr>),
    /// `{a, b, ...}`: one grid axis.
    Alternatives(Vec<Expr>),
    /// `[a, b, ...]`.
    List(Vec<Expr>),
    /// `name` or `name(args)`.
    Call(Call),
    /// An integer literal.
    Int(i64),
    /// A float literal (finite).
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
    /// A string literal, escapes resolved.
    Str(String),
}

/// `name` or `name(args)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// The stage, model, or identifier name.
    pub name: Spanned<String>,
    /// The parenthesised arguments; `None` for a bare name.
    pub args: Option<Spanned<Vec<Arg>>>,
}

/// One argument of a call.
#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    /// `Some` for `name=value`.
    pub name: Option<Spanned<String>>,
    /// The value.
    pub value: Expr,
    /// The whole argument.
    pub span: Span,
}

/// One statement of an experiment file.
#[derive(Clone, Debug, PartialEq)]
pub enum Statement {
    /// `[section]`.
    Section(Spanned<String>),
    /// `include "path"`.
    Include(Spanned<String>),
    /// `key = value`.
    Assign {
        /// The key as written (`lr` or `train.lr`).
        key: Spanned<String>,
        /// The value.
        value: Expr,
    },
}

impl Expr {
    /// The name of a bare identifier (`l2`, `avg`), or `None`.
    pub fn as_ident(&self) -> Option<&str> {
        match &self.kind {
            ExprKind::Call(Call { name, args: None }) => Some(&name.node),
            _ => None,
        }
    }

    /// A short description of what the expression is, for "expected X, found Y" messages.
    pub fn describe(&self) -> String {
        match &self.kind {
            ExprKind::Pipeline(_) => "a pipeline".into(),
            ExprKind::Alternatives(_) => "alternatives".into(),
            ExprKind::List(_) => "a list".into(),
            ExprKind::Call(Call { name, args: None }) => format!("`{}`", clip(&name.node)),
            ExprKind::Call(Call { name, .. }) => format!("a call of `{}`", clip(&name.node)),
            ExprKind::Int(i) => format!("the integer {i}"),
            ExprKind::Float(x) => format!("the number {}", crate::value::Value::Float(*x)),
            ExprKind::Bool(b) => format!("`{b}`"),
            ExprKind::Str(s) => format!("the string \"{}\"", clip(s)),
        }
    }
}

/// Cuts a name to 40 characters for messages (a hostile 10 MB name stays out of them).
pub(crate) fn clip(s: &str) -> String {
    if s.chars().count() <= 40 {
        s.to_string()
    } else {
        let head: String = s.chars().take(37).collect();
        format!("{head}...")
    }
}
