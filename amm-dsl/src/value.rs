//! Checked argument values ([`Value`]) and the complete argument set of a stage ([`Args`]).
//!
//! `Args` keeps its entries in the order of the stage's parameters, so a printed stage reads
//! `exp(c=2, d=1, clip=50)` as the catalog documents it; it serializes as a JSON object.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A literal value, as it appears in source and in run configs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Value {
    /// `5`, `-3`.
    Int(i64),
    /// `0.02`, `1e-3` (always finite).
    Float(f64),
    /// `true`, `false`.
    Bool(bool),
    /// A bare name: `l2`, `class`, `drop`.
    Ident(String),
    /// `"a string"`.
    Str(String),
    /// `[800, 800]`.
    List(Vec<Value>),
}

impl Value {
    /// The number, for `Int` and `Float`.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Int(i) => Some(i as f64),
            Value::Float(x) => Some(x),
            _ => None,
        }
    }
}

/// Writes a float so that it parses back to the same `f64` (shortest round-trip form; an
/// exponent for very large or small magnitudes). Integral floats print without `.0`: where a
/// float is expected an integer literal is accepted, so `2` reads back as `2.0`.
pub(crate) fn write_float(f: &mut fmt::Formatter<'_>, x: f64) -> fmt::Result {
    let a = x.abs();
    if a != 0.0 && !(1e-5..1e16).contains(&a) {
        write!(f, "{x:e}")
    } else {
        write!(f, "{x}")
    }
}

/// Writes a string literal with the escapes the grammar knows.
pub(crate) fn write_str(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("\"")
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write_float(f, *x),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Ident(s) => f.write_str(s),
            Value::Str(s) => write_str(f, s),
            Value::List(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// The complete arguments of one stage: every parameter of its schema, defaults applied,
/// in the schema's order. The getters say what is wrong in a `String` error.
#[derive(Clone, Debug, Default)]
pub struct Args(Vec<(String, Value)>);

impl PartialEq for Args {
    /// Order-insensitive: two argument sets are equal when they hold the same entries.
    fn eq(&self, other: &Args) -> bool {
        self.0.len() == other.0.len() && self.0.iter().all(|(k, v)| other.get(k).is_some_and(|w| w == v))
    }
}

impl Args {
    /// No arguments.
    pub fn new() -> Args {
        Args(Vec::new())
    }

    /// Sets `name` (replacing an earlier value, keeping its place).
    pub fn insert(&mut self, name: impl Into<String>, value: Value) {
        let name = name.into();
        match self.0.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// The entries in parameter order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn need(&self, name: &str) -> Result<&Value, String> {
        self.get(name).ok_or_else(|| format!("missing argument `{name}`"))
    }

    fn wrong(name: &str, want: &str, v: &Value) -> String {
        format!("argument `{name}` must be {want}, got `{v}`")
    }

    /// A number (an `Int` is accepted).
    pub fn f64(&self, name: &str) -> Result<f64, String> {
        let v = self.need(name)?;
        v.as_f64().ok_or_else(|| Self::wrong(name, "a number", v))
    }

    /// An integer.
    pub fn i64(&self, name: &str) -> Result<i64, String> {
        match self.need(name)? {
            Value::Int(i) => Ok(*i),
            v => Err(Self::wrong(name, "an integer", v)),
        }
    }

    /// A non-negative integer.
    pub fn usize(&self, name: &str) -> Result<usize, String> {
        match self.need(name)? {
            Value::Int(i) if *i >= 0 => usize::try_from(*i).map_err(|e| e.to_string()),
            v => Err(Self::wrong(name, "a non-negative integer", v)),
        }
    }

    /// A boolean.
    pub fn bool(&self, name: &str) -> Result<bool, String> {
        match self.need(name)? {
            Value::Bool(b) => Ok(*b),
            v => Err(Self::wrong(name, "true or false", v)),
        }
    }

    /// A bare name (a choice such as `l2`).
    pub fn ident(&self, name: &str) -> Result<&str, String> {
        match self.need(name)? {
            Value::Ident(s) => Ok(s),
            v => Err(Self::wrong(name, "a name", v)),
        }
    }

    /// A string (a bare name is accepted).
    pub fn str(&self, name: &str) -> Result<&str, String> {
        match self.need(name)? {
            Value::Str(s) | Value::Ident(s) => Ok(s),
            v => Err(Self::wrong(name, "a string", v)),
        }
    }

    /// A list of integers.
    pub fn int_list(&self, name: &str) -> Result<Vec<i64>, String> {
        match self.need(name)? {
            Value::List(items) => items
                .iter()
                .map(|v| match v {
                    Value::Int(i) => Ok(*i),
                    v => Err(Self::wrong(name, "a list of integers", v)),
                })
                .collect(),
            v => Err(Self::wrong(name, "a list of integers", v)),
        }
    }

    /// A list of non-negative integers as sizes (layer widths, milestones).
    pub fn usize_list(&self, name: &str) -> Result<Vec<usize>, String> {
        self.int_list(name)?.into_iter().map(|i| usize::try_from(i).map_err(|_| format!("argument `{name}`: {i} is negative"))).collect()
    }
}

impl FromIterator<(String, Value)> for Args {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Args {
        let mut args = Args::new();
        for (k, v) in iter {
            args.insert(k, v);
        }
        args
    }
}

impl Serialize for Args {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Args {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Args, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Args;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of argument names to values")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Args, A::Error> {
                let mut args = Args::new();
                while let Some((k, v)) = m.next_entry::<String, Value>()? {
                    args.insert(k, v);
                }
                Ok(args)
            }
        }
        d.deserialize_map(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_source_syntax() {
        let v = Value::List(vec![
            Value::Int(800),
            Value::Float(0.02),
            Value::Float(2.0),
            Value::Float(1e-7),
            Value::Str("a\"b".into()),
            Value::Ident("l2".into()),
            Value::Bool(true),
        ]);
        assert_eq!(v.to_string(), r#"[800, 0.02, 2, 1e-7, "a\"b", l2, true]"#);
    }

    #[test]
    fn getters() {
        let args: Args = [
            ("c".to_string(), Value::Int(2)),
            ("w".to_string(), Value::List(vec![Value::Int(3)])),
            ("n".to_string(), Value::Ident("l2".into())),
        ]
        .into_iter()
        .collect();
        assert_eq!(args.f64("c"), Ok(2.0));
        assert_eq!(args.usize("c"), Ok(2));
        assert_eq!(args.int_list("w"), Ok(vec![3]));
        assert_eq!(args.ident("n"), Ok("l2"));
        assert_eq!(args.str("n"), Ok("l2"));
        assert_eq!(args.bool("c"), Err("argument `c` must be true or false, got `2`".into()));
        assert_eq!(args.f64("x"), Err("missing argument `x`".into()));
    }

    #[test]
    fn serde_keeps_order_and_types() {
        let args: Args = [("z".to_string(), Value::Float(1.0)), ("a".to_string(), Value::Ident("x".into()))].into_iter().collect();
        let json = serde_json::to_string(&args).unwrap();
        assert_eq!(json, r#"{"z":{"float":1.0},"a":{"ident":"x"}}"#);
        let back: Args = serde_json::from_str(&json).unwrap();
        assert_eq!(back, args);
        assert_eq!(back.iter().next().unwrap().0, "z");
    }
}
