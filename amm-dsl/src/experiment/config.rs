//! What an experiment file resolves to: the config of one run, its cells and the grid.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::schema::{Catalog, Kind};
use crate::spec::{PipelineSpec, StageSpec};
use crate::validate::default_args;
use crate::value::{Args, Value};

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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    /// SGD with momentum.
    Sgd,
    /// Adam.
    Adam,
    /// An optimizer a plugin registered, with its arguments.
    Registered(StageSpec),
}

impl Optimizer {
    /// The optimizer as the call the registry builds (`sgd`).
    pub fn stage(&self) -> StageSpec {
        let name = match self {
            Optimizer::Sgd => "sgd",
            Optimizer::Adam => "adam",
            Optimizer::Registered(spec) => return spec.clone(),
        };
        StageSpec { kind: Kind::Optimizer, name: name.into(), args: Args::new() }
    }

    /// The optimizer of a validated call.
    pub fn from_stage(spec: StageSpec) -> Optimizer {
        match spec.name.as_str() {
            "sgd" if spec.args.is_empty() => Optimizer::Sgd,
            "adam" if spec.args.is_empty() => Optimizer::Adam,
            _ => Optimizer::Registered(spec),
        }
    }
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
    /// A schedule a plugin registered, with its arguments.
    Registered(StageSpec),
}

/// The classification loss.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Loss {
    /// Cross-entropy.
    Ce,
    /// Multi-class hinge.
    Hinge,
    /// No classification loss (the regularizer alone).
    None,
    /// A loss a plugin registered, with its arguments.
    Registered(StageSpec),
}

// The built-in schedules and losses keep their own variants so that the configs (and the cell
// folders named by their hash) of earlier runs stay the same; the registry builds every one of
// them from its call.
impl Schedule {
    /// The schedule as the call the registry builds (`step(milestones=[50, 80], gamma=0.1)`).
    pub fn stage(&self) -> StageSpec {
        let mut args = Args::new();
        let name = match self {
            Schedule::Constant => "constant",
            Schedule::Cosine => "cosine",
            Schedule::Step { milestones, gamma } => {
                args.insert("milestones", Value::List(milestones.iter().map(|&m| Value::Int(m as i64)).collect()));
                args.insert("gamma", Value::Float(*gamma));
                "step"
            }
            Schedule::Registered(spec) => return spec.clone(),
        };
        StageSpec { kind: Kind::Schedule, name: name.into(), args }
    }

    /// The schedule of a validated call.
    pub fn from_stage(spec: StageSpec) -> Result<Schedule, String> {
        Ok(match spec.name.as_str() {
            "constant" => Schedule::Constant,
            "cosine" => Schedule::Cosine,
            "step" => {
                let milestones = spec.args.int_list("milestones")?;
                if milestones.iter().any(|&m| m < 1) || !milestones.windows(2).all(|w| w[0] < w[1]) {
                    return Err("milestones must be increasing epochs >= 1".into());
                }
                Schedule::Step { milestones: milestones.into_iter().map(|m| m as usize).collect(), gamma: spec.args.f64("gamma")? }
            }
            _ => Schedule::Registered(spec),
        })
    }
}

impl Loss {
    /// The loss as the call the registry builds (`ce`).
    pub fn stage(&self) -> StageSpec {
        let name = match self {
            Loss::Ce => "ce",
            Loss::Hinge => "hinge",
            Loss::None => "none",
            Loss::Registered(spec) => return spec.clone(),
        };
        StageSpec { kind: Kind::Loss, name: name.into(), args: Args::new() }
    }

    /// The loss of a validated call.
    pub fn from_stage(spec: StageSpec) -> Loss {
        match spec.name.as_str() {
            "ce" if spec.args.is_empty() => Loss::Ce,
            "hinge" if spec.args.is_empty() => Loss::Hinge,
            "none" if spec.args.is_empty() => Loss::None,
            _ => Loss::Registered(spec),
        }
    }
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
    /// Test samples per evaluation batch (the margin's DeepFool, the validation error, the
    /// attacks). Skipped in the serialized spec at its default, so older run directories keep
    /// their spec.
    #[serde(default = "default_eval_batch", skip_serializing_if = "is_default_eval_batch")]
    pub batch: usize,
}

pub(super) fn default_eval_batch() -> usize {
    500
}

pub(super) fn is_default_eval_batch(b: &usize) -> bool {
    *b == default_eval_batch()
}

pub(super) fn is_false(b: &bool) -> bool {
    !*b
}

pub(super) fn default_norm() -> String {
    "l2".into()
}

pub(super) fn is_l2(s: &str) -> bool {
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
        match self {
            Optimizer::Registered(spec) => write!(f, "{spec}"),
            other => f.write_str(&other.stage().name),
        }
    }
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loss::Registered(spec) => write!(f, "{spec}"),
            other => f.write_str(&other.stage().name),
        }
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
            Schedule::Registered(spec) => write!(f, "{spec}"),
        }
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
            batch: default_eval_batch(),
        },
    }
}
