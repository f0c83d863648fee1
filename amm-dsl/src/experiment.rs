//! Experiment files (`.amm`): sections, keys, includes, overrides, and the run grid.
//!
//! ```text
//! # specs/mnist-ablation.amm
//! include "base.amm"              # relative to this file; later keys override earlier ones
//!
//! [experiment]
//! seeds = [0, 1, 2]               # the seed axis
//!
//! [train]
//! lr = {0.01, 0.005}              # alternatives: a grid axis
//!
//! [reg]
//! pipeline = deepfool(l2, 5) |> {avg, min(class, 0.2)} |> exp(c=2, d=1) |> weight(32)
//! ```
//!
//! A file is cut into statements by the scanner (a value may continue over lines inside
//! brackets or around `|>`), each statement is parsed on its own so each bad line gets its own
//! error, keys are checked against [`KEYS`], then `--set key=value` overrides are applied. The
//! grid is the cross product of every key's alternatives and the seeds, bounded by
//! [`MAX_CELLS`](crate::expand::MAX_CELLS) cells.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ast::{clip, Call, Expr, ExprKind, Statement};
use crate::diagnostic::{Diagnostic, Diagnostics, Problem, Report, SourceMap, Span};
use crate::expand::{count, cross, expand, parts, MAX_CELLS, MAX_EXPANDED_PARTS};
use crate::parser::{parse_override_text, parse_statement_text};
use crate::pipeline::{big, too_many_parts};
use crate::printer::expr_to_string;
use crate::scan::{scan, Mode};
use crate::schema::{Catalog, Kind, ParamSpec, ParamType};
use crate::size::{DataShape, ModelProblem};
use crate::spec::{PipelineSpec, StageSpec};
use crate::suggest::did_you_mean;
use crate::validate::{bind_args, check_value, default_args, unknown_name, validate_pipeline, validate_stage};
use crate::value::Value;

// ============================================================================================
// Output types
// ============================================================================================

/// Everything one training run needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// `experiment.name`.
    pub name: String,
    /// `experiment.out`: the experiment's output folder.
    pub out: String,
    /// This cell's seed (one of `experiment.seeds`).
    pub seed: u64,
    /// `[data]`.
    pub data: DataConfig,
    /// `model.arch`.
    pub model: StageSpec,
    /// `[train]`.
    pub train: TrainConfig,
    /// `reg.pipeline`; `None` trains the reference model.
    pub reg: Option<PipelineSpec>,
    /// `[eval]`.
    pub eval: EvalConfig,
}

/// `[data]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataConfig {
    /// Dataset name (a catalog dataset).
    pub name: String,
    /// Where its files are; `None` = the dataset's standard place.
    pub path: Option<String>,
    /// Training images used; `None` = all.
    pub train_size: Option<usize>,
    /// Test images used; `None` = all.
    pub test_size: Option<usize>,
    /// Fraction of training labels replaced by random labels.
    pub label_noise: f64,
    /// Training images held out for validation.
    pub val_size: usize,
    /// Subtract the per-pixel training mean.
    pub mean_subtract: bool,
    /// Padding (pixels) of the random-crop augmentation; 0 = off.
    pub crop: usize,
    /// Random horizontal flips.
    pub flip: bool,
}

/// The optimizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    /// SGD with momentum.
    Sgd,
    /// Adam.
    Adam,
}

/// The learning-rate schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// The same rate throughout.
    Constant,
    /// Multiply by `gamma` at each milestone epoch.
    Step {
        /// Epochs (increasing) at which the rate drops.
        milestones: Vec<usize>,
        /// The factor of each drop.
        gamma: f64,
    },
    /// Cosine annealing to zero over the epochs.
    Cosine,
}

/// The classification loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Loss {
    /// Cross-entropy.
    Ce,
    /// Multi-class hinge.
    Hinge,
    /// No classification loss (the regularizer alone).
    None,
}

/// Floating-point precision of training.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// 32-bit.
    F32,
    /// 64-bit.
    F64,
}

/// `[train]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Epochs.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch: usize,
    /// Optimizer.
    pub optimizer: Optimizer,
    /// Initial learning rate.
    pub lr: f64,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// SGD momentum.
    pub momentum: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Global gradient-norm clip; 0 = off.
    pub clip: f64,
    /// Classification loss.
    pub loss: Loss,
    /// Precision.
    pub dtype: DType,
    /// CPU threads; 0 = all cores.
    pub threads: usize,
    /// Weights to start from (a run directory, a checkpoint or exported weights); `None`: the
    /// seeded initialisation. Skipped in the serialized spec when absent, so older run
    /// directories keep their spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<String>,
}

/// `[eval]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalConfig {
    /// DeepFool iterations of the reported margin.
    pub iters: usize,
    /// Per-step overshoot of that attack.
    pub overshoot: f64,
    /// Iterations of the longer, tighter attack; 0 = skip.
    pub long_iters: usize,
    /// Evaluate every N epochs.
    pub every: usize,
    /// Test images evaluated; 0 = the whole test set.
    pub samples: usize,
    /// Robustness attacks run on the final model (`fmn,apgd`); empty = none. Skipped in the
    /// serialized spec when empty, so older run directories keep their spec.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub attacks: String,
    /// Their norm: l2, linf or l1.
    #[serde(default = "default_norm", skip_serializing_if = "is_l2")]
    pub norm: String,
    /// Budgets for robust accuracy (`0.5,1,2`); empty = the defaults of the norm.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub eps: String,
    /// Also measure the final model's margin on the training set (the 2D toy's "largest
    /// possible margin of the data" is a property of the training points).
    #[serde(default, skip_serializing_if = "is_false")]
    pub train_margin: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn default_norm() -> String {
    "l2".into()
}

fn is_l2(s: &str) -> bool {
    s == "l2"
}

/// One grid cell: a run and the alternatives that made it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// The run.
    pub config: RunConfig,
    /// For each key that had alternatives, and `seed`: the value taken, as source text.
    pub axes: Vec<(String, String)>,
}

impl Cell {
    /// A folder name made of the axes, safe on every file system:
    /// `train.lr=0.01,reg.pipeline=deepfool_l2_5_avg_exp_2_1,seed=0`. Characters other than
    /// letters, digits, `.` and `-` in values become `_` (runs collapsed); very different cells
    /// could in principle share a slug, so callers that need uniqueness add the cell index.
    pub fn slug(&self) -> String {
        let clean = |v: &str| {
            let mut out = String::new();
            for c in v.chars() {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-') {
                    out.push(c);
                } else if !out.ends_with('_') {
                    out.push('_');
                }
            }
            out.trim_matches('_').to_string()
        };
        let mut s = self.axes.iter().map(|(k, v)| format!("{k}={}", clean(v))).collect::<Vec<_>>().join(",");
        s.truncate(200);
        s
    }
}

/// The runs of an experiment.
#[derive(Clone, Debug, PartialEq)]
pub struct Grid {
    /// One cell per combination of alternatives and seed, seeds varying fastest.
    pub cells: Vec<Cell>,
    /// The experiment file and every file it includes.
    pub files: Vec<PathBuf>,
}

impl fmt::Display for Optimizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Optimizer::Sgd => "sgd",
            Optimizer::Adam => "adam",
        })
    }
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Loss::Ce => "ce",
            Loss::Hinge => "hinge",
            Loss::None => "none",
        })
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
        })
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Constant => f.write_str("constant"),
            Schedule::Cosine => f.write_str("cosine"),
            Schedule::Step { milestones, gamma } => {
                let ms: Vec<Value> = milestones.iter().map(|&m| Value::Int(m as i64)).collect();
                write!(f, "step(milestones={}, gamma={})", Value::List(ms), Value::Float(*gamma))
            }
        }
    }
}

// ============================================================================================
// Keys
// ============================================================================================

/// One documented key of an experiment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyDoc {
    /// `section.key`.
    pub key: &'static str,
    /// The accepted values, in words.
    pub ty: &'static str,
    /// The default, as source text (or in words).
    pub default: &'static str,
    /// One line.
    pub doc: &'static str,
}

/// The sections of an experiment file, in order.
pub const SECTIONS: &[&str] = &["experiment", "data", "model", "train", "reg", "eval"];

const fn key(key: &'static str, ty: &'static str, default: &'static str, doc: &'static str) -> KeyDoc {
    KeyDoc { key, ty, default, doc }
}

/// Every key of an experiment file, in section order (the CLI prints and documents them).
pub const KEYS: &[KeyDoc] = &[
    key("experiment.name", "a string", "the file name without extension", "name of the experiment"),
    key("experiment.out", "a string", "runs/<name>", "output folder; each grid cell gets a sub-folder"),
    key("experiment.seeds", "a list of integers >= 0", "[0]", "random seeds: every cell runs once per seed"),
    key("data.name", "a dataset (digits, fashion-mnist, mnist, cifar10, cifar100, svhn, csv, toy2d)", "digits", "the dataset"),
    key("data.path", "a string", "none (the dataset's standard place)", "folder or file of the dataset"),
    key("data.train_size", "an integer >= 1, or all", "all", "training images used"),
    key("data.test_size", "an integer >= 1, or all", "all", "test images used"),
    key("data.label_noise", "a number in [0, 1)", "0", "fraction of training labels replaced by random labels"),
    key("data.val_size", "an integer >= 0", "0", "training images held out for validation"),
    key("data.mean_subtract", "true or false", "true", "subtract the per-pixel training mean"),
    key("data.crop", "an integer >= 0", "0", "padding in pixels of the random-crop augmentation (0 = off)"),
    key("data.flip", "true or false", "false", "random horizontal flips"),
    key("model.arch", "a model, e.g. mlp(widths=[256, 256])", "mlp", "the network architecture"),
    key("train.epochs", "an integer >= 1", "10", "training epochs"),
    key("train.batch", "an integer >= 1", "100", "mini-batch size"),
    key("train.optimizer", "one of sgd, adam", "sgd", "the optimizer"),
    key("train.lr", "a number > 0", "0.01", "initial learning rate"),
    key("train.schedule", "constant, step(milestones=[50, 80], gamma=0.1) or cosine", "constant", "learning-rate schedule"),
    key("train.momentum", "a number in [0, 1)", "0.9", "SGD momentum"),
    key("train.weight_decay", "a number >= 0", "1e-4", "weight decay"),
    key("train.clip", "a number >= 0", "10", "global gradient-norm clip (0 = off)"),
    key("train.loss", "one of ce, hinge, none", "ce", "classification loss"),
    key("train.dtype", "one of f32, f64", "f32", "floating-point precision"),
    key("train.threads", "an integer in [0, 1024]", "0", "CPU threads (0 = all cores)"),
    key(
        "train.init",
        "a string: a run directory, a checkpoint or exported weights.safetensors",
        "none (the seeded initialisation)",
        "weights to start from (fine-tuning); the optimizer starts fresh",
    ),
    key("reg.pipeline", "a pipeline, e.g. deepfool(l2, 5) |> min(class, 0.2) |> exp(2, 1) |> weight(32)", "none", "the regularizer"),
    key("eval.iters", "an integer >= 1", "5", "DeepFool iterations of the reported margin"),
    key("eval.overshoot", "a number >= 0", "0.02", "per-step overshoot of that attack"),
    key("eval.long_iters", "an integer >= 0", "50", "iterations of a longer, tighter attack (0 = skip)"),
    key("eval.every", "an integer >= 1", "1", "evaluate every N epochs"),
    key("eval.samples", "an integer >= 0", "0", "test images evaluated (0 = the whole test set)"),
    key(
        "eval.attacks",
        "a string: attacks as in `amm eval --attacks`, e.g. \"fmn,apgd\"",
        "\"\"",
        "robustness attacks run on the final model (empty: none); their metrics go to result.json",
    ),
    key("eval.norm", "one of l2, linf, l1", "l2", "the norm of those attacks"),
    key("eval.eps", "a string of numbers, e.g. \"0.5,1,2\"", "\"\"", "budgets for robust accuracy (empty: the norm's usual values)"),
    key(
        "eval.train_margin",
        "true or false",
        "false",
        "also measure the final margin on the training set (train_margin, train_margin_min in result.json)",
    ),
];

/// How a key's value is checked.
enum KeyType {
    Param(ParamType),
    OptStr,
    OptSize,
    Seeds,
    Dataset,
    Model,
    Schedule,
    Pipeline,
}

fn key_type(key: &str) -> KeyType {
    use ParamType as P;
    let int = P::int_min;
    KeyType::Param(match key {
        "experiment.name" | "experiment.out" | "eval.attacks" | "eval.eps" => P::Str,
        "eval.norm" => P::choice(&["l2", "linf", "l1"]),
        "experiment.seeds" => return KeyType::Seeds,
        "data.name" => return KeyType::Dataset,
        "data.path" | "train.init" => return KeyType::OptStr,
        "data.train_size" | "data.test_size" => return KeyType::OptSize,
        "data.label_noise" | "train.momentum" => P::float_in(0.0, false, 1.0, true),
        "data.val_size" | "data.crop" | "eval.long_iters" | "eval.samples" => int(0),
        "train.threads" => P::Int { min: Some(0), max: Some(MAX_THREADS as i64) },
        "data.mean_subtract" | "data.flip" | "eval.train_margin" => P::Bool,
        "model.arch" => return KeyType::Model,
        "train.epochs" | "train.batch" | "eval.iters" | "eval.every" => int(1),
        "train.optimizer" => P::choice(&["sgd", "adam"]),
        "train.lr" => P::float_min(0.0, true),
        "train.schedule" => return KeyType::Schedule,
        "train.weight_decay" | "train.clip" | "eval.overshoot" => P::float_min(0.0, false),
        "train.loss" => P::choice(&["ce", "hinge", "none"]),
        "train.dtype" => P::choice(&["f32", "f64"]),
        "reg.pipeline" => return KeyType::Pipeline,
        other => unreachable!("key_type is total over KEYS, not {other}"),
    })
}

fn find_key(full: &str) -> Option<&'static str> {
    KEYS.iter().map(|k| k.key).find(|k| *k == full)
}

fn keys_of(section: &str) -> Vec<&'static str> {
    KEYS.iter().filter_map(|k| k.key.strip_prefix(section)?.strip_prefix('.')).collect()
}

/// Resolves a key as written (`lr` under `[train]`, or `train.lr`) to its full name.
fn resolve_key(section: Option<&str>, written: &str, span: Span) -> Result<&'static str, Problem> {
    let (sec, name, sec_span) = match written.split_once('.') {
        Some((s, k)) => (s, k, Span::new(span.start, span.start + s.len())),
        None => match section {
            Some(s) => (s, written, span),
            None => {
                let homes: Vec<&str> =
                    KEYS.iter().filter(|k| k.key.split_once('.').is_some_and(|(_, n)| n == written)).map(|k| k.key).collect();
                let help = match homes.first() {
                    Some(full) => {
                        let (s, _) = full.split_once('.').expect("keys are dotted");
                        format!("put it under [{s}], or write `{full}`")
                    }
                    None => format!("keys are written under a [section] or as section.key; sections: {}", SECTIONS.join(", ")),
                };
                return Err(Problem::new(span, format!("key `{}` is outside a section", clip(written))).with_help(help));
            }
        },
    };
    if !SECTIONS.contains(&sec) {
        return Err(unknown_section(sec, sec_span));
    }
    if let Some(full) = find_key(&format!("{sec}.{name}")) {
        return Ok(full);
    }
    let keys = keys_of(sec);
    let elsewhere = KEYS
        .iter()
        .find(|k| k.key.split_once('.').is_some_and(|(_, n)| n == name))
        .map(|k| format!("`{name}` belongs to [{}]: write `{}`; ", &k.key[..k.key.len() - name.len() - 1], k.key))
        .unwrap_or_default();
    Err(Problem::new(span, format!("unknown key `{}` in [{sec}]", clip(name))).with_help(format!(
        "{elsewhere}{}(keys of [{sec}]: {})",
        did_you_mean(name, keys.iter().copied()),
        keys.join(", ")
    )))
}

fn unknown_section(name: &str, span: Span) -> Problem {
    Problem::new(span, format!("unknown section `{}`", clip(name))).with_help(format!(
        "{}(sections: {})",
        did_you_mean(name, SECTIONS.iter().copied()),
        SECTIONS.join(", ")
    ))
}

// ============================================================================================
// Checked values
// ============================================================================================

/// A key's value after checking.
#[derive(Clone, Debug)]
enum Setting {
    Value(Value),
    OptStr(Option<String>),
    OptSize(Option<usize>),
    Model(StageSpec),
    Schedule(Schedule),
    Pipeline(Option<PipelineSpec>),
}

fn usize_of(v: &Value) -> usize {
    match v {
        Value::Int(i) => usize::try_from(*i).expect("checked >= 0"),
        _ => unreachable!("checked to be an integer"),
    }
}

fn f64_of(v: &Value) -> f64 {
    v.as_f64().expect("checked to be a number")
}

fn ident_of(v: &Value) -> &str {
    match v {
        Value::Ident(s) | Value::Str(s) => s,
        _ => unreachable!("checked to be a name"),
    }
}

/// One alternative of a key: its checked setting and its source text (the axis value).
type Choice = (Setting, String);

/// Writes a checked setting into a run config.
fn apply(cfg: &mut RunConfig, key: &str, s: &Setting) {
    match s {
        Setting::OptStr(p) if key == "train.init" => cfg.train.init = p.clone(),
        Setting::OptStr(p) => cfg.data.path = p.clone(),
        Setting::OptSize(n) if key == "data.train_size" => cfg.data.train_size = *n,
        Setting::OptSize(n) => cfg.data.test_size = *n,
        Setting::Model(m) => cfg.model = m.clone(),
        Setting::Schedule(sch) => cfg.train.schedule = sch.clone(),
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
            "train.optimizer" => {
                cfg.train.optimizer = match ident_of(v) {
                    "adam" => Optimizer::Adam,
                    _ => Optimizer::Sgd,
                }
            }
            "train.lr" => cfg.train.lr = f64_of(v),
            "train.momentum" => cfg.train.momentum = f64_of(v),
            "train.weight_decay" => cfg.train.weight_decay = f64_of(v),
            "train.clip" => cfg.train.clip = f64_of(v),
            "train.loss" => {
                cfg.train.loss = match ident_of(v) {
                    "hinge" => Loss::Hinge,
                    "none" => Loss::None,
                    _ => Loss::Ce,
                }
            }
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
            other => unreachable!("no plain value for {other}"),
        },
    }
}

fn schedule_params(name: &str) -> Option<Vec<ParamSpec>> {
    match name {
        "constant" | "cosine" => Some(vec![]),
        "step" => Some(vec![
            ParamSpec::required("milestones", ParamType::IntList, "epochs at which the rate drops"),
            ParamSpec::optional("gamma", ParamType::float_min(0.0, true), Value::Float(0.1), "factor of each drop"),
        ]),
        _ => None,
    }
}

fn check_schedule(e: &Expr) -> Result<Schedule, Vec<Problem>> {
    const NAMES: [&str; 3] = ["constant", "step", "cosine"];
    let ExprKind::Call(call) = &e.kind else {
        return Err(vec![Problem::new(e.span, format!("expected a schedule, found {}", e.describe()))
            .with_help("schedules: constant, step(milestones=[50, 80], gamma=0.1), cosine")]);
    };
    let name = call.name.node.as_str();
    let Some(params) = schedule_params(name) else {
        return Err(vec![Problem::new(call.name.span, format!("unknown schedule `{}`", clip(name)))
            .with_help(format!("{}(schedules: constant, step, cosine)", did_you_mean(name, NAMES)))]);
    };
    let args = bind_args(call, &params, e.span)?;
    Ok(match name {
        "step" => {
            let milestones = args.int_list("milestones").map_err(|m| vec![Problem::new(e.span, m)])?;
            let ascending = milestones.windows(2).all(|w| w[0] < w[1]);
            if milestones.iter().any(|&m| m < 1) || !ascending {
                return Err(vec![Problem::new(e.span, "milestones must be increasing epochs >= 1")
                    .with_help("e.g. step(milestones=[50, 80], gamma=0.1)")]);
            }
            Schedule::Step {
                milestones: milestones.into_iter().map(|m| m as usize).collect(),
                gamma: args.f64("gamma").map_err(|m| vec![Problem::new(e.span, m)])?,
            }
        }
        "cosine" => Schedule::Cosine,
        _ => Schedule::Constant,
    })
}

/// Checks one concrete value of `key`.
fn check_setting(key: &str, e: &Expr, catalog: &dyn Catalog) -> Result<Setting, Vec<Problem>> {
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
        KeyType::Schedule => check_schedule(e).map(Setting::Schedule),
        KeyType::Pipeline => validate_pipeline(e, catalog).map(Setting::Pipeline),
        KeyType::Seeds => unreachable!("seeds are read by `seeds_of`"),
    }
}

/// `experiment.seeds`: a list of distinct integers >= 0 (a single integer is one seed).
fn seeds_of(e: &Expr) -> Result<Vec<u64>, Problem> {
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

// ============================================================================================
// Loading
// ============================================================================================

/// Where includes stop: deeper chains are surely a mistake.
const MAX_INCLUDE_DEPTH: usize = 32;

/// The largest spec file read: 1 MiB. Real specs are a few hundred bytes; a grid axis of
/// 100,000 integers (the most cells a grid may have) fits.
pub const MAX_SPEC_BYTES: u64 = 1 << 20;

/// The most CPU threads `train.threads` may ask for (0 means every core).
pub const MAX_THREADS: usize = 1024;

/// What a file that is not a regular file is, in words.
fn file_kind(t: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// Opens `path` for reading; for an include, without blocking (a FIFO with no writer would
/// block `open` forever; the caller refuses it after a look at the open file).
fn open_spec(path: &Path, include: bool) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    if include {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    #[cfg(not(unix))]
    let _ = include;
    options.open(path)
}

/// Reads a spec file, at most [`MAX_SPEC_BYTES`] of it. An included file must be a regular file:
/// a FIFO blocks forever and `/dev/zero` never ends. The file named on the command line may also
/// be a pipe (`amm check <(...)`), read with the same bound. Errors are `(message, help)`.
fn read_spec(path: &Path, include: bool) -> Result<Vec<u8>, (String, Option<String>)> {
    use std::io::Read;
    let shown = path.display();
    let cannot = |e: std::io::Error| (format!("cannot read `{shown}`: {e}"), None);
    let refuse = |kind: &str| {
        (
            format!("cannot {} `{shown}`: it is {kind}", if include { "include" } else { "read" }),
            Some("spec files are regular files (.amm); FIFOs and devices could block or never end".to_string()),
        )
    };
    let too_large = |len: Option<u64>| {
        let size = len.map_or_else(String::new, |n| format!(" ({n} bytes)"));
        (
            format!("`{shown}` is larger than {} MiB{size}", MAX_SPEC_BYTES >> 20),
            Some(format!("a spec file holds at most {MAX_SPEC_BYTES} bytes; split a grid this large into several experiments")),
        )
    };
    // Look before opening (`metadata` follows links and never blocks), and again at what was
    // opened, in case the path changed in between.
    let check = |meta: &std::fs::Metadata| {
        if meta.is_dir() || (include && !meta.is_file()) {
            return Err(refuse(file_kind(meta.file_type())));
        }
        if meta.is_file() && meta.len() > MAX_SPEC_BYTES {
            return Err(too_large(Some(meta.len())));
        }
        Ok(())
    };
    check(&std::fs::metadata(path).map_err(cannot)?)?;
    let file = open_spec(path, include).map_err(cannot)?;
    check(&file.metadata().map_err(cannot)?)?;
    let mut bytes = Vec::new();
    file.take(MAX_SPEC_BYTES + 1).read_to_end(&mut bytes).map_err(cannot)?;
    if bytes.len() as u64 > MAX_SPEC_BYTES {
        return Err(too_large(None));
    }
    Ok(bytes)
}

/// The value of a key and where it was written.
#[derive(Clone, Debug)]
struct Assigned {
    source: usize,
    value: Expr,
}

struct Loader<'c> {
    catalog: &'c dyn Catalog,
    sources: Vec<SourceMap>,
    files: Vec<PathBuf>,
    report: Report,
    assigned: BTreeMap<&'static str, Assigned>,
    /// The include chain being read (canonical paths), for cycle detection.
    stack: Vec<PathBuf>,
}

/// The section a statement is in.
#[derive(Clone, Copy)]
enum Section {
    None,
    Known(&'static str),
    /// An unknown `[section]`: reported once at the header; its keys are skipped.
    Bad,
}

impl<'c> Loader<'c> {
    fn new(catalog: &'c dyn Catalog) -> Self {
        Loader { catalog, sources: Vec::new(), files: Vec::new(), report: Report::default(), assigned: BTreeMap::new(), stack: Vec::new() }
    }

    fn report(&mut self, source: usize, p: Problem) {
        self.report.problem(source, p);
    }

    /// The errors found, located.
    fn errors(self) -> Diagnostics {
        self.report.finish(&self.sources)
    }

    /// Reads one file; `site` is the `include` statement that named it.
    fn load_file(&mut self, path: &Path, bytes: Option<&[u8]>, site: Option<(usize, Span)>) {
        let shown = path.display().to_string();
        let fail = |this: &mut Self, message: String, help: Option<String>| match site {
            Some((src, span)) => this.report(src, Problem::new(span, message).with_help_opt(help)),
            None => {
                let mut d = Diagnostic::whole_file(shown.clone(), message);
                d.help = help;
                this.report.diagnostic(d);
            }
        };
        if self.stack.len() >= MAX_INCLUDE_DEPTH {
            return fail(self, format!("includes nested deeper than {MAX_INCLUDE_DEPTH} levels"), None);
        }
        let read;
        let bytes = match bytes {
            Some(b) => b,
            None => match read_spec(path, site.is_some()) {
                Ok(b) => {
                    read = b;
                    &read[..]
                }
                Err((message, help)) => return fail(self, message, help),
            },
        };
        let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if let Some(at) = self.stack.iter().position(|p| *p == canonical) {
            let chain: Vec<String> = self.stack[at..]
                .iter()
                .chain(std::iter::once(&canonical))
                .map(|p| p.file_name().map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned()))
                .collect();
            return fail(
                self,
                format!("include cycle: {}", chain.join(" -> ")),
                Some("a file cannot include itself, directly or through other files".into()),
            );
        }
        let text = match std::str::from_utf8(bytes) {
            Ok(t) => t.to_string(),
            Err(e) => {
                let at = e.valid_up_to();
                let map = SourceMap::new(shown.clone(), String::from_utf8_lossy(bytes));
                self.report.diagnostic(
                    map.diagnostic(
                        Problem::new(Span::new(at, at + 1), format!("the file is not valid UTF-8 (byte 0x{:02x})", bytes[at]))
                            .with_help("spec files are UTF-8 text"),
                    ),
                );
                return;
            }
        };
        let source = self.sources.len();
        self.sources.push(SourceMap::new(shown, text.clone()));
        self.files.push(path.to_path_buf());
        self.stack.push(canonical);
        let (pieces, problems) = scan(&text, Mode::Statements);
        for p in problems {
            self.report(source, p);
        }
        let mut section = Section::None;
        for piece in pieces.iter().filter(|p| p.ok) {
            let stmt = match parse_statement_text(&text[piece.span.start..piece.span.end], piece.span.start) {
                Ok(s) => s,
                Err(p) => {
                    self.report(source, p);
                    continue;
                }
            };
            match stmt {
                Statement::Section(name) => {
                    section = match SECTIONS.iter().find(|s| **s == name.node) {
                        Some(s) => Section::Known(s),
                        None => {
                            let inner = Span::new(name.span.start + 1, name.span.end - 1);
                            self.report(source, unknown_section(&name.node, inner));
                            Section::Bad
                        }
                    }
                }
                Statement::Include(file) => {
                    let base = path.parent().unwrap_or(Path::new(""));
                    let target = base.join(&file.node);
                    self.load_file(&target, None, Some((source, file.span)));
                }
                Statement::Assign { key, value } => {
                    let sec = match section {
                        Section::Bad if !key.node.contains('.') => continue,
                        Section::Known(s) => Some(s),
                        _ => None,
                    };
                    match resolve_key(sec, &key.node, key.span) {
                        Ok(full) => {
                            self.assigned.insert(full, Assigned { source, value });
                        }
                        Err(p) => self.report(source, p),
                    }
                }
            }
        }
        self.stack.pop();
    }

    /// Applies one `key=value` override.
    fn load_override(&mut self, text: &str) {
        let source = self.sources.len();
        self.sources.push(SourceMap::new(format!("--set {text}"), text));
        let Some(eq) = text.find('=') else {
            let span = Span::new(0, text.len());
            return self.report(source, Problem::new(span, "expected `key=value`").with_help("e.g. `train.epochs=3`"));
        };
        let written = text[..eq].trim();
        let key_start = text.len() - text.trim_start().len();
        let key_span = Span::new(key_start, key_start + written.len());
        let full = if written.contains('.') {
            resolve_key(None, written, key_span)
        } else {
            let homes: Vec<&str> = KEYS.iter().map(|k| k.key).filter(|k| k.split_once('.').is_some_and(|(_, n)| n == written)).collect();
            let help = match homes.first() {
                Some(full) => format!("write `{full}={}`", text[eq + 1..].trim()),
                None => format!("{}keys are section.key, e.g. train.epochs", did_you_mean(written, KEYS.iter().map(|k| k.key))),
            };
            Err(Problem::new(key_span, format!("`{}` needs its section", clip(written))).with_help(help))
        };
        let full = match full {
            Ok(f) => f,
            Err(p) => return self.report(source, p),
        };
        let raw = text[eq + 1..].trim();
        let raw_start = eq + 1 + (text[eq + 1..].len() - text[eq + 1..].trim_start().len());
        let raw_span = Span::new(raw_start, raw_start + raw.len());
        let (_, problems) = scan(text, Mode::Whole);
        let parsed = if problems.is_empty() { parse_override_text(text, 0).map(|(_, v)| v).map_err(|p| vec![p]) } else { Err(problems) };
        let value = match parsed {
            Ok(v) => v,
            // Free text for string keys: `--set experiment.out=runs/a b`.
            Err(_) if matches!(full, "experiment.name" | "experiment.out" | "data.path" | "train.init") && !raw.is_empty() => {
                Expr { kind: ExprKind::Str(raw.to_string()), span: raw_span }
            }
            Err(problems) => {
                for p in problems {
                    self.report(source, p);
                }
                return;
            }
        };
        self.assigned.insert(full, Assigned { source, value });
    }

    /// Refuses models too large to build, for each dataset of the grid whose shape its name
    /// fixes (and with a lower bound where none does). The error points at the argument at
    /// fault (`widths=[...]`'s element) or at the model.
    fn check_models(&mut self, models: &[(usize, Expr, StageSpec)], datasets: &[String]) {
        let mut shapes: Vec<Option<DataShape>> = Vec::new();
        for name in datasets {
            let shape = self.catalog.data_shape(name);
            if !shapes.contains(&shape) {
                shapes.push(shape);
            }
        }
        if shapes.is_empty() {
            shapes.push(None);
        }
        for (source, e, spec) in models {
            for shape in &shapes {
                if let Err(p) = self.catalog.check_model(spec, shape.as_ref()) {
                    let params = self.catalog.schema(Kind::Model, &spec.name).map_or(&[][..], |s| &s.params[..]);
                    let span = model_problem_span(e, params, &p);
                    self.report(*source, Problem::new(span, p.message).with_help_opt(p.help));
                    break;
                }
            }
        }
    }

    /// Checks every key and builds the grid.
    fn build(mut self, default_name: &str) -> Result<Grid, Diagnostics> {
        let mut seeds = vec![0u64];
        let seeds_at = self.assigned.get("experiment.seeds").cloned();
        if let Some(a) = &seeds_at {
            match seeds_of(&a.value) {
                Ok(s) => seeds = s,
                Err(p) => self.report(a.source, p),
            }
        }
        // Bound the grid before expanding anything.
        let axes: Vec<(&'static str, Assigned, u64)> = KEYS
            .iter()
            .filter(|k| k.key != "experiment.seeds")
            .filter_map(|k| self.assigned.get(k.key).map(|a| (k.key, a.clone(), count(&a.value))))
            .collect();
        let total = axes.iter().fold(seeds.len() as u64, |n, (_, _, c)| n.saturating_mul(*c));
        if total > MAX_CELLS {
            let mut named: Vec<String> = axes.iter().filter(|(_, _, c)| *c > 1).map(|(k, _, c)| format!("{k} ({})", big(*c))).collect();
            named.push(format!("seeds ({})", seeds.len()));
            // The error points at the widest axis: a key's alternatives, or the seeds.
            let widest = axes
                .iter()
                .map(|(_, a, c)| (a, *c))
                .chain(seeds_at.as_ref().map(|a| (a, seeds.len() as u64)))
                .max_by_key(|(_, c)| *c)
                .map(|(a, _)| a.clone());
            let problem = Problem::new(Span::default(), format!("the grid has {} cells, more than {MAX_CELLS}", big(total)))
                .with_help(format!("axes: {}", named.join(" x ")));
            match widest {
                Some(a) => self.report(a.source, Problem { span: a.value.span, ..problem }),
                // Unreachable (a grid beyond one cell has an axis), but never a panic.
                None => {
                    let mut d = Diagnostic::whole_file(default_name, problem.message);
                    d.help = problem.help;
                    self.report.diagnostic(d);
                }
            }
            return Err(self.errors());
        }
        // Bound the work of expanding and checking the alternatives (their parts in all).
        let work: Vec<(&Assigned, u64, u64)> = axes.iter().filter(|(_, _, c)| *c > 1).map(|(_, a, c)| (a, *c, parts(&a.value))).collect();
        if work.iter().fold(0u64, |n, (_, c, p)| n.saturating_add(c.saturating_mul(*p))) > MAX_EXPANDED_PARTS {
            if let Some((a, c, p)) = work.iter().max_by_key(|(_, c, p)| c.saturating_mul(*p)) {
                let (source, problem) = (a.source, too_many_parts("the value", *c, *p, a.value.span));
                self.report(source, problem);
                return Err(self.errors());
            }
        }
        let mut checked: Vec<(&'static str, bool, Vec<Choice>)> = Vec::new();
        // The models and datasets of the grid, for the size check of each pair.
        let mut models: Vec<(usize, Expr, StageSpec)> = Vec::new();
        let mut datasets: Vec<String> = Vec::new();
        for (key, a, n) in &axes {
            let mut options = Vec::new();
            // One mistake reached through many alternatives is reported once, and kept once:
            // 50,000 expansions with a dozen errors each would otherwise be 600,000 diagnostics.
            let mut reported = std::collections::HashSet::new();
            for e in expand(&a.value) {
                match check_setting(key, &e, self.catalog) {
                    Ok(s) => {
                        match &s {
                            Setting::Model(m) => models.push((a.source, e.clone(), m.clone())),
                            Setting::Value(v) if *key == "data.name" => datasets.push(ident_of(v).to_string()),
                            _ => {}
                        }
                        options.push((s, expr_to_string(&e)))
                    }
                    Err(ps) => {
                        for p in ps {
                            if !reported.contains(&p) {
                                reported.insert(p.clone());
                                self.report(a.source, p);
                            }
                        }
                    }
                }
            }
            checked.push((key, *n > 1, options));
        }
        if !self.assigned.contains_key("data.name") {
            datasets.push(default_config(default_name, self.catalog).data.name);
        }
        self.check_models(&models, &datasets);
        if !self.report.is_empty() {
            return Err(self.errors());
        }
        let base = default_config(default_name, self.catalog);
        let choices = cross(checked.iter().map(|(_, _, o)| (0..o.len()).collect()).collect());
        let mut cells = Vec::with_capacity(choices.len() * seeds.len());
        for choice in choices {
            let mut config = base.clone();
            let mut axes = Vec::new();
            let mut out_set = false;
            for ((key, is_axis, options), &i) in checked.iter().zip(&choice) {
                let (setting, text) = &options[i];
                apply(&mut config, key, setting);
                out_set |= *key == "experiment.out";
                if *is_axis {
                    axes.push((key.to_string(), text.clone()));
                }
            }
            if !out_set {
                config.out = format!("runs/{}", config.name);
            }
            for &seed in &seeds {
                let mut config = config.clone();
                config.seed = seed;
                let mut axes = axes.clone();
                axes.push(("seed".to_string(), seed.to_string()));
                cells.push(Cell { config, axes });
            }
        }
        Ok(Grid { cells, files: self.files })
    }
}

/// Where a model's size problem is in the model's source: the element of a list argument, the
/// argument, or the whole model (also when the argument is not written and takes its default).
fn model_problem_span(e: &Expr, params: &[ParamSpec], p: &ModelProblem) -> Span {
    let (ExprKind::Call(Call { args: Some(args), .. }), Some((name, index))) = (&e.kind, &p.arg) else {
        return e.span;
    };
    let named = args.node.iter().find(|a| a.name.as_ref().is_some_and(|n| n.node == *name));
    // A positional argument takes the parameter of its position, as `bind_args` assigns them:
    // a bare parameter name (`mlp(act, [64])`) keeps that parameter's default and takes no
    // position, unless it is a value the next position accepts.
    let positional = || {
        let mut next = 0;
        for a in args.node.iter().take_while(|a| a.name.is_none()) {
            if let Some(n) = a.value.as_ident() {
                let takes_name = params.get(next).is_some_and(|p| match &p.ty {
                    ParamType::Choice(names) => names.iter().any(|c| c == n),
                    ParamType::Str => true,
                    _ => false,
                });
                if !takes_name && params.iter().any(|p| p.name == n) {
                    continue;
                }
            }
            if params.get(next).is_some_and(|p| p.name == *name) {
                return Some(a);
            }
            next += 1;
        }
        None
    };
    let Some(arg) = named.or_else(positional) else {
        return e.span;
    };
    match (&arg.value.kind, index) {
        (ExprKind::List(items), Some(i)) => items.get(*i).map_or(arg.value.span, |item| item.span),
        _ => arg.value.span,
    }
}

/// The run config of an empty experiment named `name`.
pub fn default_config(name: &str, catalog: &dyn Catalog) -> RunConfig {
    RunConfig {
        name: name.to_string(),
        out: format!("runs/{name}"),
        seed: 0,
        data: DataConfig {
            name: "digits".into(),
            path: None,
            train_size: None,
            test_size: None,
            label_noise: 0.0,
            val_size: 0,
            mean_subtract: true,
            crop: 0,
            flip: false,
        },
        model: StageSpec {
            kind: Kind::Model,
            name: "mlp".into(),
            args: catalog.schema(Kind::Model, "mlp").map(|s| default_args(&s.params)).unwrap_or_default(),
        },
        train: TrainConfig {
            epochs: 10,
            batch: 100,
            optimizer: Optimizer::Sgd,
            lr: 0.01,
            schedule: Schedule::Constant,
            momentum: 0.9,
            weight_decay: 1e-4,
            clip: 10.0,
            loss: Loss::Ce,
            dtype: DType::F32,
            threads: 0,
            init: None,
        },
        reg: None,
        eval: EvalConfig {
            iters: 5,
            overshoot: 0.02,
            long_iters: 50,
            every: 1,
            samples: 0,
            attacks: String::new(),
            norm: default_norm(),
            eps: String::new(),
            train_margin: false,
        },
    }
}

fn stem(path: &Path) -> String {
    path.file_stem().map_or_else(|| "run".to_string(), |s| s.to_string_lossy().into_owned())
}

/// Loads an experiment file and its includes, applies `overrides` (`train.epochs=3`), checks
/// everything against `catalog` and expands the grid.
///
/// ```
/// use amm_dsl::{load_experiment, testing};
///
/// let dir = std::env::temp_dir().join(format!("amm-dsl-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// std::fs::write(dir.join("base.amm"), "[train]\nepochs = 100\nlr = 0.005\n").unwrap();
/// std::fs::write(
///     dir.join("ablation.amm"),
///     "include \"base.amm\"\n\
///      experiment.seeds = [0, 1]\n\
///      [reg]\n\
///      pipeline = deepfool(l2, 5) |> {avg, min(class, 0.2)} |> exp(c=2, d=1) |> weight(32)\n",
/// )
/// .unwrap();
/// let grid = load_experiment(&dir.join("ablation.amm"), &["train.epochs=3".into()], &testing::catalog()).unwrap();
/// assert_eq!(grid.cells.len(), 4); // 2 aggregations x 2 seeds
/// let cell = &grid.cells[3];
/// assert_eq!(cell.config.name, "ablation");
/// assert_eq!(cell.config.train.epochs, 3);
/// assert_eq!(cell.config.train.lr, 0.005);
/// assert_eq!(cell.axes[1], ("seed".to_string(), "1".to_string()));
/// assert_eq!(cell.config.reg.as_ref().unwrap().aggregation.name, "min");
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn load_experiment(path: &Path, overrides: &[String], catalog: &dyn Catalog) -> Result<Grid, Diagnostics> {
    let mut loader = Loader::new(catalog);
    loader.load_file(path, None, None);
    if loader.sources.is_empty() {
        return Err(loader.errors());
    }
    for o in overrides {
        loader.load_override(o);
    }
    loader.build(&stem(path))
}

/// Like [`load_experiment`], with the file's bytes given (`path` names it and anchors its
/// includes).
pub fn experiment_from_source(path: &Path, source: &[u8], overrides: &[String], catalog: &dyn Catalog) -> Result<Grid, Diagnostics> {
    let mut loader = Loader::new(catalog);
    loader.load_file(path, Some(source), None);
    if loader.sources.is_empty() {
        return Err(loader.errors());
    }
    for o in overrides {
        loader.load_override(o);
    }
    loader.build(&stem(path))
}

/// An experiment without a file: the defaults and `overrides` (the flags of `amm train`).
/// Its name is `run` unless `experiment.name` is set.
pub fn experiment_from_overrides(overrides: &[String], catalog: &dyn Catalog) -> Result<Grid, Diagnostics> {
    let mut loader = Loader::new(catalog);
    for o in overrides {
        loader.load_override(o);
    }
    loader.build("run")
}
