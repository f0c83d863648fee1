//! The catalog interface: which stage, model and dataset names exist and what they take.
//!
//! The grammar knows no stage names. Names and parameters come from a [`Catalog`]: amm-core
//! implements it for its registry (built-ins and plugins registered at run time), and tests
//! use a [`SimpleCatalog`]. Only the language built-ins `weight`, `normalize` and `none`
//! are defined here ([`builtin_stage`]).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::size::{DataShape, ModelProblem};
use crate::spec::StageSpec;
use crate::value::Value;

pub use crate::kind::Kind;

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The type of a parameter, with its allowed range.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ParamType {
    /// An integer, optionally bounded (inclusive).
    Int {
        /// Smallest allowed value.
        min: Option<i64>,
        /// Largest allowed value.
        max: Option<i64>,
    },
    /// A number (an integer literal is accepted), optionally bounded.
    Float {
        /// Lower bound.
        min: Option<f64>,
        /// Upper bound.
        max: Option<f64>,
        /// Whether the lower bound itself is excluded.
        min_exclusive: bool,
        /// Whether the upper bound itself is excluded.
        max_exclusive: bool,
    },
    /// `true` or `false`.
    Bool,
    /// A name from a fixed set (`l2`, `linf`, `l1`).
    Choice(Vec<String>),
    /// A string (a bare name is accepted).
    Str,
    /// A list of integers.
    IntList,
    /// A value of the inner type, or `none` (kept as the name `none`): an optional threshold.
    OrNone(Box<ParamType>),
}

impl ParamType {
    /// Any integer.
    pub fn int() -> ParamType {
        ParamType::Int { min: None, max: None }
    }

    /// An integer `>= min`.
    pub fn int_min(min: i64) -> ParamType {
        ParamType::Int { min: Some(min), max: None }
    }

    /// Any number.
    pub fn float() -> ParamType {
        ParamType::Float { min: None, max: None, min_exclusive: false, max_exclusive: false }
    }

    /// A number `>= min`, or `> min` when `exclusive`.
    pub fn float_min(min: f64, exclusive: bool) -> ParamType {
        ParamType::Float { min: Some(min), max: None, min_exclusive: exclusive, max_exclusive: false }
    }

    /// A number in an interval, e.g. `(0, 1]` is `float_in(0, true, 1, false)`.
    pub fn float_in(min: f64, min_exclusive: bool, max: f64, max_exclusive: bool) -> ParamType {
        ParamType::Float { min: Some(min), max: Some(max), min_exclusive, max_exclusive }
    }

    /// `ty`, or `none`.
    pub fn or_none(ty: ParamType) -> ParamType {
        ParamType::OrNone(Box::new(ty))
    }

    /// A name from `names`.
    pub fn choice(names: &[&str]) -> ParamType {
        ParamType::Choice(names.iter().map(|s| s.to_string()).collect())
    }

    /// The allowed values in words: `an integer >= 1`, `a number in (0, 1]`, `one of l2, linf`.
    pub fn describe(&self) -> String {
        match self {
            ParamType::Int { min, max } => match (min, max) {
                (None, None) => "an integer".into(),
                (Some(a), None) => format!("an integer >= {a}"),
                (None, Some(b)) => format!("an integer <= {b}"),
                (Some(a), Some(b)) => format!("an integer in [{a}, {b}]"),
            },
            ParamType::Float { min, max, min_exclusive, max_exclusive } => {
                let num = |x: f64| Value::Float(x).to_string();
                match (min, max) {
                    (None, None) => "a number".into(),
                    (Some(a), None) => {
                        format!("a number {} {}", if *min_exclusive { ">" } else { ">=" }, num(*a))
                    }
                    (None, Some(b)) => {
                        format!("a number {} {}", if *max_exclusive { "<" } else { "<=" }, num(*b))
                    }
                    (Some(a), Some(b)) => format!(
                        "a number in {}{}, {}{}",
                        if *min_exclusive { "(" } else { "[" },
                        num(*a),
                        num(*b),
                        if *max_exclusive { ")" } else { "]" }
                    ),
                }
            }
            ParamType::Bool => "true or false".into(),
            ParamType::Choice(names) => format!("one of {}", names.join(", ")),
            ParamType::Str => "a string".into(),
            ParamType::IntList => "a list of integers".into(),
            ParamType::OrNone(t) => format!("{}, or none", t.describe()),
        }
    }
}

/// One parameter of a stage, model or dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamSpec {
    /// The name used in `name=value`.
    pub name: String,
    /// Type and range.
    pub ty: ParamType,
    /// The default; `None` makes the parameter required.
    pub default: Option<Value>,
    /// One line for `amm help`.
    pub doc: String,
}

impl ParamSpec {
    /// A required parameter.
    pub fn required(name: &str, ty: ParamType, doc: &str) -> ParamSpec {
        ParamSpec { name: name.into(), ty, default: None, doc: doc.into() }
    }

    /// A parameter with a default.
    pub fn optional(name: &str, ty: ParamType, default: Value, doc: &str) -> ParamSpec {
        ParamSpec { name: name.into(), ty, default: Some(default), doc: doc.into() }
    }
}

/// What the catalog knows about one name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    /// Its kind.
    pub kind: Kind,
    /// Its name as written in specs.
    pub name: String,
    /// Its parameters, in positional order.
    pub params: Vec<ParamSpec>,
    /// One line for `amm help`.
    pub doc: String,
}

impl Schema {
    /// A schema.
    pub fn new(kind: Kind, name: &str, params: Vec<ParamSpec>, doc: &str) -> Schema {
        Schema { kind, name: name.into(), params, doc: doc.into() }
    }

    /// `exp(c=2, d=1, clip=50)`-style signature for help texts; required params bare.
    pub fn signature(&self) -> String {
        signature(&self.name, &self.params)
    }
}

/// `name(p, q=default, ...)`, or `name` when there are no parameters.
pub(crate) fn signature(name: &str, params: &[ParamSpec]) -> String {
    if params.is_empty() {
        return name.to_string();
    }
    let ps: Vec<String> = params
        .iter()
        .map(|p| match &p.default {
            Some(d) => format!("{}={d}", p.name),
            None => p.name.clone(),
        })
        .collect();
    format!("{name}({})", ps.join(", "))
}

/// The names a spec may use. amm-core implements this for its registry.
pub trait Catalog {
    /// The schema of `name` as a `kind`.
    fn schema(&self, kind: Kind, name: &str) -> Option<&Schema>;
    /// The names of a kind, in registration order (shown in help texts).
    fn names(&self, kind: Kind) -> Vec<String>;
    /// Every kind `name` exists as (`linear` is a proxy and a model).
    fn kind_of(&self, name: &str) -> Vec<Kind>;
    /// The input shape and classes of dataset `name` where its name alone fixes them
    /// (`digits`: 1x8x8, 10 classes); `None` where only its files tell, or the catalog does not
    /// know. The default knows none.
    fn data_shape(&self, _name: &str) -> Option<DataShape> {
        None
    }
    /// Refuses a model (already checked against its schema) that is too large to build: a
    /// layer size beyond [`MAX_LAYER_WIDTH`](crate::size::MAX_LAYER_WIDTH), more than
    /// [`MAX_MODEL_PARAMS`](crate::size::MAX_MODEL_PARAMS) parameters for `data` (`None`: the
    /// dataset's shape is not known yet; a lower bound still counts). The default accepts
    /// every model.
    fn check_model(&self, _model: &StageSpec, _data: Option<&DataShape>) -> Result<(), ModelProblem> {
        Ok(())
    }
}

/// A catalog that is a list of schemas; used by tests, usable by amm-core.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SimpleCatalog(pub Vec<Schema>);

impl SimpleCatalog {
    /// Adds (or replaces) a schema.
    pub fn add(&mut self, schema: Schema) {
        self.0.retain(|s| !(s.kind == schema.kind && s.name == schema.name));
        self.0.push(schema);
    }
}

impl Catalog for SimpleCatalog {
    fn schema(&self, kind: Kind, name: &str) -> Option<&Schema> {
        self.0.iter().find(|s| s.kind == kind && s.name == name)
    }

    fn names(&self, kind: Kind) -> Vec<String> {
        self.0.iter().filter(|s| s.kind == kind).map(|s| s.name.clone()).collect()
    }

    fn kind_of(&self, name: &str) -> Vec<Kind> {
        let mut kinds: Vec<Kind> = self.0.iter().filter(|s| s.name == name).map(|s| s.kind).collect();
        kinds.sort();
        kinds.dedup();
        kinds
    }
}

/// The language built-ins of a pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    /// `none`: the empty regularizer (the reference model); stands alone.
    None,
    /// `normalize`: use `rho / ||x||` instead of `rho`.
    Normalize,
    /// `weight(lambda)`: the regularizer's weight, last.
    Weight,
}

/// The names of the built-ins.
pub const BUILTIN_NAMES: [&str; 3] = ["none", "normalize", "weight"];

/// The built-in named `name`, with its parameters and doc line.
pub fn builtin_stage(name: &str) -> Option<(Builtin, Vec<ParamSpec>, &'static str)> {
    match name {
        "none" => Some((Builtin::None, vec![], "no regularizer (the reference model)")),
        "normalize" => Some((Builtin::Normalize, vec![], "use rho/||x|| instead of rho (between the proxy and the shrinkage)")),
        "weight" => Some((
            Builtin::Weight,
            vec![ParamSpec::required("lambda", ParamType::float_min(0.0, true), "the weight of the regularizer against the cross-entropy")],
            "the weight lambda of the regularizer (default 1; last stage)",
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_ranges() {
        assert_eq!(ParamType::int_min(1).describe(), "an integer >= 1");
        assert_eq!(ParamType::float_in(0.0, true, 1.0, false).describe(), "a number in (0, 1]");
        assert_eq!(ParamType::float_min(0.0, true).describe(), "a number > 0");
        assert_eq!(ParamType::choice(&["l2", "linf"]).describe(), "one of l2, linf");
    }

    #[test]
    fn kind_display_and_serde() {
        assert_eq!(Kind::Aggregation.to_string(), "aggregation");
        assert_eq!(serde_json::to_string(&Kind::Proxy).unwrap(), "\"proxy\"");
    }

    #[test]
    fn catalog_lookups() {
        let c = crate::testing::catalog();
        assert_eq!(c.kind_of("linear"), vec![Kind::Proxy, Kind::Model]);
        assert_eq!(c.names(Kind::Shrinkage), vec!["lin", "exp", "inv", "hinge"]);
        assert_eq!(c.schema(Kind::Shrinkage, "exp").unwrap().signature(), "exp(c=2, d=1, clip=50)");
    }
}
