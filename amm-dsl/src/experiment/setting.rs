//! Checking a key's value (types, models, schedules, pipelines, seeds) and writing it into a
//! run config.

use super::config::{DType, Loss, Optimizer, RunConfig, Schedule};
use super::files::MAX_THREADS;
use super::keys::{key_type, KeyType};

use crate::ast::{Expr, ExprKind};
use crate::attacks::{check_attack_text, check_attack_value};
use crate::diagnostic::Problem;
use crate::schema::{Catalog, Kind, ParamType};
use crate::spec::{PipelineSpec, StageSpec};
use crate::validate::{check_value, unknown_name, validate_pipeline, validate_stage};
use crate::value::Value;

/// A key's value after checking.
#[derive(Clone, Debug)]
pub(super) enum Setting {
    Value(Value),
    OptStr(Option<String>),
    OptSize(Option<usize>),
    Model(StageSpec),
    Schedule(Schedule),
    Loss(Loss),
    Optimizer(Optimizer),
    Pipeline(Option<PipelineSpec>),
}

pub(super) fn usize_of(v: &Value) -> usize {
    match v {
        Value::Int(i) => usize::try_from(*i).expect("checked >= 0"),
        _ => unreachable!("checked to be an integer"),
    }
}

pub(super) fn f64_of(v: &Value) -> f64 {
    v.as_f64().expect("checked to be a number")
}

pub(super) fn ident_of(v: &Value) -> &str {
    match v {
        Value::Ident(s) | Value::Str(s) => s,
        _ => unreachable!("checked to be a name"),
    }
}

/// One alternative of a key: its checked setting and its source text (the axis value).
pub(super) type Choice = (Setting, String);

/// Writes a checked setting into a run config.
pub(super) fn apply(cfg: &mut RunConfig, key: &str, s: &Setting) {
    match s {
        Setting::OptStr(p) if key == "train.init" => cfg.train.init = p.clone(),
        Setting::OptStr(p) => cfg.data.path = p.clone(),
        Setting::OptSize(n) if key == "data.train_size" => cfg.data.train_size = *n,
        Setting::OptSize(n) => cfg.data.test_size = *n,
        Setting::Model(m) => cfg.model = m.clone(),
        Setting::Schedule(sch) => cfg.train.schedule = sch.clone(),
        Setting::Loss(l) => cfg.train.loss = l.clone(),
        Setting::Optimizer(o) => cfg.train.optimizer = o.clone(),
        Setting::Pipeline(p) => cfg.reg = p.clone(),
        Setting::Value(v) => match key {
            "experiment.name" => cfg.name = ident_of(v).to_string(),
            "experiment.out" => cfg.out = ident_of(v).to_string(),
            "data.name" => cfg.data.name = ident_of(v).to_string(),
            "data.label_noise" => cfg.data.label_noise = f64_of(v),
            "data.val_size" => cfg.data.val_size = usize_of(v),
            "data.mean_subtract" => cfg.data.mean_subtract = *v == Value::Bool(true),
            "data.crop" => cfg.data.crop = usize_of(v),
            "data.flip" => cfg.data.flip = *v == Value::Bool(true),
            "train.epochs" => cfg.train.epochs = usize_of(v),
            "train.batch" => cfg.train.batch = usize_of(v),
            "train.lr" => cfg.train.lr = f64_of(v),
            "train.momentum" => cfg.train.momentum = f64_of(v),
            "train.weight_decay" => cfg.train.weight_decay = f64_of(v),
            "train.clip" => cfg.train.clip = f64_of(v),
            "train.dtype" => {
                cfg.train.dtype = match ident_of(v) {
                    "f64" => DType::F64,
                    _ => DType::F32,
                }
            }
            "train.threads" => cfg.train.threads = usize_of(v),
            "eval.iters" => cfg.eval.iters = usize_of(v),
            "eval.overshoot" => cfg.eval.overshoot = f64_of(v),
            "eval.long_iters" => cfg.eval.long_iters = usize_of(v),
            "eval.every" => cfg.eval.every = usize_of(v),
            "eval.samples" => cfg.eval.samples = usize_of(v),
            "eval.attacks" => cfg.eval.attacks = ident_of(v).to_string(),
            "eval.norm" => cfg.eval.norm = ident_of(v).to_string(),
            "eval.eps" => cfg.eval.eps = ident_of(v).to_string(),
            "eval.train_margin" => cfg.eval.train_margin = *v == Value::Bool(true),
            "eval.batch" => cfg.eval.batch = usize_of(v),
            other => unreachable!("no plain value for {other}"),
        },
    }
}

/// `train.schedule`: a registered schedule; the built-in `step` also needs increasing milestones.
fn check_schedule(e: &Expr, catalog: &dyn Catalog) -> Result<Schedule, Vec<Problem>> {
    let spec = validate_stage(e, Kind::Schedule, catalog)?;
    Schedule::from_stage(spec).map_err(|m| vec![Problem::new(e.span, m).with_help("e.g. step(milestones=[50, 80], gamma=0.1)")])
}

/// Checks one concrete value of `key`.
pub(super) fn check_setting(key: &str, e: &Expr, catalog: &dyn Catalog) -> Result<Setting, Vec<Problem>> {
    let one = |p: Problem| vec![p];
    match key_type(key) {
        KeyType::Param(ty) if key == "train.threads" => check_value(e, &ty, key).map(Setting::Value).map_err(|p| {
            one(p.with_help(format!(
                "0 uses every core; more threads than cores only slow training down, and more than {MAX_THREADS} \
                 cannot be started on most systems"
            )))
        }),
        KeyType::Param(ty) => check_value(e, &ty, key).map(Setting::Value).map_err(one),
        KeyType::OptStr => check_value(e, &ParamType::Str, key).map(|v| Setting::OptStr(Some(ident_of(&v).to_string()))).map_err(one),
        KeyType::OptSize => {
            if e.as_ident() == Some("all") {
                return Ok(Setting::OptSize(None));
            }
            check_value(e, &ParamType::int_min(1), key)
                .map(|v| Setting::OptSize(Some(usize_of(&v))))
                .map_err(|p| one(p.with_help("or `all`")))
        }
        KeyType::Dataset => {
            let name = match &e.kind {
                ExprKind::Str(s) => Some(s.as_str()),
                _ => e.as_ident(),
            };
            match name {
                Some(n) if catalog.schema(Kind::Dataset, n).is_some() => Ok(Setting::Value(Value::Str(n.to_string()))),
                Some(n) => Err(one(unknown_name(Kind::Dataset, n, e.span, catalog))),
                None => Err(one(Problem::new(e.span, format!("expected a dataset name, found {}", e.describe()))
                    .with_help(format!("datasets: {}", catalog.names(Kind::Dataset).join(", "))))),
            }
        }
        KeyType::Model => validate_stage(e, Kind::Model, catalog).map(Setting::Model),
        KeyType::Schedule => check_schedule(e, catalog).map(Setting::Schedule),
        KeyType::Loss => validate_stage(e, Kind::Loss, catalog).map(|s| Setting::Loss(Loss::from_stage(s))),
        KeyType::Optimizer => validate_stage(e, Kind::Optimizer, catalog).map(|s| Setting::Optimizer(Optimizer::from_stage(s))),
        KeyType::Pipeline => validate_pipeline(e, catalog).map(Setting::Pipeline),
        // A string keeps its text (the attacks are named by it in results); a list is stored as
        // the same text.
        KeyType::Attacks => match &e.kind {
            ExprKind::Str(s) if s.trim().is_empty() => Ok(Setting::Value(Value::Str(String::new()))),
            ExprKind::Str(s) => {
                // An escape makes the text shorter than its source, whose offsets then no longer
                // match the text's: the mistake is shown under the whole string instead.
                let checked = if e.span.end - e.span.start == s.len() + 2 {
                    check_attack_text(s, e.span.start + 1, catalog)
                } else {
                    check_attack_text(s, 0, catalog).map_err(|ps| ps.into_iter().map(|p| Problem { span: e.span, ..p }).collect())
                };
                checked.map(|_| Setting::Value(Value::Str(s.clone())))
            }
            _ => check_attack_value(e, catalog).map(|s| Setting::Value(Value::Str(s))),
        },
        KeyType::Seeds => unreachable!("seeds are read by `seeds_of`"),
    }
}

/// `experiment.seeds`: a list of distinct integers >= 0 (a single integer is one seed).
pub(super) fn seeds_of(e: &Expr) -> Result<Vec<u64>, Problem> {
    let items: Vec<&Expr> = match &e.kind {
        ExprKind::List(items) => items.iter().collect(),
        ExprKind::Int(_) => vec![e],
        ExprKind::Alternatives(_) => {
            return Err(Problem::new(e.span, "`experiment.seeds` is a list, not alternatives")
                .with_help("the seeds are a grid axis already: write `seeds = [0, 1, 2]`"))
        }
        _ => {
            return Err(Problem::new(e.span, format!("`experiment.seeds` must be a list of integers >= 0, got {}", e.describe()))
                .with_help("e.g. `seeds = [0, 1, 2]`"))
        }
    };
    if items.is_empty() {
        return Err(Problem::new(e.span, "`experiment.seeds` is empty").with_help("e.g. `seeds = [0]`"));
    }
    let mut seeds = Vec::with_capacity(items.len());
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    for item in items {
        match item.kind {
            ExprKind::Int(i) if i >= 0 => {
                let s = i as u64;
                if !seen.insert(s) {
                    return Err(Problem::new(item.span, format!("seed {s} is listed twice")));
                }
                seeds.push(s);
            }
            _ => return Err(Problem::new(item.span, format!("a seed must be an integer >= 0, got {}", item.describe()))),
        }
    }
    Ok(seeds)
}
