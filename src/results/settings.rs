//! A run's settings as the table shows them: every field of its config but the seed, pipelines
//! and models as short source text (`deepfool(l2) |> min |> exp(c=3)`), and the order of values
//! (numbers before words, pipelines stage by stage in the registry's order).
use amm_core::dsl::{Catalog, PipelineSpec, RunConfig, StageSpec, Value as DslValue};
use amm_core::serde_json::Value;
use amm_core::Registry;
use std::cmp::Ordering;
use std::fmt::Write as _;

/// A number as the spec language writes it (`0.2`, `1e-4`, `3`).
pub fn num(x: f64) -> String {
    DslValue::Float(x).to_string()
}

fn values_equal(a: &DslValue, b: &DslValue) -> bool {
    match (a, b) {
        (DslValue::Int(_) | DslValue::Float(_), DslValue::Int(_) | DslValue::Float(_)) => {
            let f = |v: &DslValue| match v {
                DslValue::Int(i) => *i as f64,
                DslValue::Float(x) => *x,
                _ => f64::NAN,
            };
            f(a) == f(b)
        }
        (DslValue::List(x), DslValue::List(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| values_equal(a, b)),
        _ => a == b,
    }
}

/// Parameters added after runs had been made, with the behaviour those runs had: `deepfool`'s
/// iterates were constants (`chain=none`) before the exact gradient.
const LEGACY: [(&str, &str, &str); 1] = [("deepfool", "chain", "none")];

/// A stage as short source text: required parameters by position, others by name and only
/// where they differ from the default (`deepfool(l2)`, `min`, `exp(c=3)`). Stages the registry
/// does not know print in full.
pub fn compact_stage(s: &StageSpec, reg: &Registry) -> String {
    let Some(schema) = reg.schema(s.kind, &s.name) else { return s.to_string() };
    let mut parts = Vec::new();
    let mut positional = true;
    for p in &schema.params {
        let Some(v) = s.args.get(&p.name) else {
            positional = false;
            // A spec written before the parameter existed: say what that amm did.
            if let Some((_, _, was)) = LEGACY.iter().find(|(stage, param, _)| *stage == s.name && *param == p.name) {
                parts.push(format!("{}={was}", p.name));
            }
            continue;
        };
        match &p.default {
            None if positional => parts.push(v.to_string()),
            None => parts.push(format!("{}={v}", p.name)),
            Some(d) if values_equal(d, v) => positional = false,
            Some(_) => {
                positional = false;
                parts.push(format!("{}={v}", p.name));
            }
        }
    }
    // Arguments the schema does not list (a newer spec) are kept, by name.
    for (k, v) in s.args.iter() {
        if !schema.params.iter().any(|p| p.name == k) {
            parts.push(format!("{k}={v}"));
        }
    }
    if parts.is_empty() {
        s.name.clone()
    } else {
        format!("{}({})", s.name, parts.join(", "))
    }
}

/// A pipeline as short source text (see [`compact_stage`]).
pub fn compact_pipeline(p: &PipelineSpec, reg: &Registry) -> String {
    let mut s = format!("{} |> {}", compact_stage(&p.proxy, reg), compact_stage(&p.aggregation, reg));
    if p.normalize {
        s.push_str(" |> normalize");
    }
    let _ = write!(s, " |> {}", compact_stage(&p.shrinkage, reg));
    if p.weight != 1.0 {
        let _ = write!(s, " |> weight({})", num(p.weight));
    }
    s
}

/// Every setting of a run config but its seed, in display order.
pub fn settings(c: &RunConfig, reg: &Registry) -> Vec<(String, String)> {
    let opt = |v: Option<usize>| v.map_or("all".to_string(), |n| n.to_string());
    let d = &c.data;
    let t = &c.train;
    let e = &c.eval;
    let v: Vec<(&str, String)> = vec![
        ("data.name", d.name.clone()),
        ("data.path", d.path.clone().unwrap_or_else(|| "default".into())),
        ("data.train_size", opt(d.train_size)),
        ("data.test_size", opt(d.test_size)),
        ("data.label_noise", num(d.label_noise)),
        ("data.val_size", d.val_size.to_string()),
        ("data.mean_subtract", d.mean_subtract.to_string()),
        ("data.crop", d.crop.to_string()),
        ("data.flip", d.flip.to_string()),
        ("model", compact_stage(&c.model, reg)),
        ("train.epochs", t.epochs.to_string()),
        ("train.batch", t.batch.to_string()),
        ("train.optimizer", t.optimizer.to_string()),
        ("train.lr", num(t.lr)),
        ("train.schedule", t.schedule.to_string()),
        ("train.momentum", num(t.momentum)),
        ("train.weight_decay", num(t.weight_decay)),
        ("train.clip", num(t.clip)),
        ("train.loss", t.loss.to_string()),
        ("train.dtype", t.dtype.to_string()),
        ("train.threads", t.threads.to_string()),
        ("reg", c.reg.as_ref().map_or("none".to_string(), |p| compact_pipeline(p, reg))),
        ("eval.iters", e.iters.to_string()),
        ("eval.overshoot", num(e.overshoot)),
        ("eval.long_iters", e.long_iters.to_string()),
        ("eval.every", e.every.to_string()),
        ("eval.samples", e.samples.to_string()),
    ];
    v.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Settings of a spec.json that is not a run config of this amm: its leaves, dotted.
pub fn generic_settings(spec: &Value) -> Vec<(String, String)> {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    if p != "seed" && p != "out" {
                        walk(&p, v, out);
                    }
                }
            }
            Value::String(s) => out.push((prefix.to_string(), s.clone())),
            Value::Null => out.push((prefix.to_string(), "none".into())),
            other => out.push((prefix.to_string(), other.to_string())),
        }
    }
    let mut out = Vec::new();
    walk("", spec, &mut out);
    out
}

/// Orders setting values: numbers by value before words, words alphabetically.
pub fn cmp_setting(a: &str, b: &str) -> Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.total_cmp(&y),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        _ => a.cmp(b),
    }
}

/// Orders pipelines stage by stage: by the stage's place in the registry (avg before min; lin,
/// inv, exp as the paper's tables), then by its arguments in the schema's order, then λ.
pub fn cmp_pipeline(a: &PipelineSpec, b: &PipelineSpec, reg: &Registry) -> Ordering {
    let stage = |x: &StageSpec, y: &StageSpec| {
        let pos = |s: &StageSpec| reg.position(s.kind, &s.name).unwrap_or(usize::MAX);
        pos(x).cmp(&pos(y)).then_with(|| x.name.cmp(&y.name)).then_with(|| {
            let names = reg.schema(x.kind, &x.name).map(|s| s.params.iter().map(|p| p.name.clone()).collect::<Vec<_>>());
            let names = names.unwrap_or_else(|| x.args.iter().map(|(k, _)| k.to_string()).collect());
            let arg = |s: &StageSpec, k: &str| s.args.get(k).map(|v| v.to_string()).unwrap_or_default();
            names.iter().map(|k| cmp_setting(&arg(x, k), &arg(y, k))).find(|o| o.is_ne()).unwrap_or(Ordering::Equal)
        })
    };
    stage(&a.proxy, &b.proxy)
        .then_with(|| stage(&a.aggregation, &b.aggregation))
        .then_with(|| a.normalize.cmp(&b.normalize))
        .then_with(|| stage(&a.shrinkage, &b.shrinkage))
        .then_with(|| a.weight.total_cmp(&b.weight))
}
