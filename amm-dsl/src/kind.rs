//! The kinds of named things a catalog holds (proxy, model, attack, ...).

use serde::{Deserialize, Serialize};

/// What a named thing is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A margin proxy (`deepfool`, `linear`): the first stage of a pipeline.
    Proxy,
    /// Which samples are regularized (`avg`, `min`).
    Aggregation,
    /// The per-sample penalty of the margin (`lin`, `exp`, `inv`, `hinge`).
    Shrinkage,
    /// A network architecture (`mlp`, `lenet`).
    Model,
    /// A dataset (`digits`, `fashion-mnist`).
    Dataset,
    /// An optimizer (`sgd`, `adam`): `train.optimizer`.
    Optimizer,
    /// A learning-rate schedule (`constant`, `step`, `cosine`): `train.schedule`.
    Schedule,
    /// A classification loss (`ce`, `hinge`, `none`): `train.loss`.
    Loss,
    /// An evaluation attack (`fmn`, `apgd`): `eval.attacks`, `amm eval --attacks`.
    Attack,
}

impl Kind {
    /// All kinds, in pipeline order then the rest.
    pub const ALL: [Kind; 9] = [
        Kind::Proxy,
        Kind::Aggregation,
        Kind::Shrinkage,
        Kind::Model,
        Kind::Dataset,
        Kind::Optimizer,
        Kind::Schedule,
        Kind::Loss,
        Kind::Attack,
    ];

    /// The lowercase name (`"proxy"`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Proxy => "proxy",
            Kind::Aggregation => "aggregation",
            Kind::Shrinkage => "shrinkage",
            Kind::Model => "model",
            Kind::Dataset => "dataset",
            Kind::Optimizer => "optimizer",
            Kind::Schedule => "schedule",
            Kind::Loss => "loss",
            Kind::Attack => "attack",
        }
    }

    /// The plural (`"proxies"`).
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Proxy => "proxies",
            Kind::Aggregation => "aggregations",
            Kind::Shrinkage => "shrinkages",
            Kind::Model => "models",
            Kind::Dataset => "datasets",
            Kind::Optimizer => "optimizers",
            Kind::Schedule => "schedules",
            Kind::Loss => "losses",
            Kind::Attack => "attacks",
        }
    }

    /// With its article (`"an aggregation"`).
    pub fn with_article(self) -> &'static str {
        match self {
            Kind::Proxy => "a proxy",
            Kind::Aggregation => "an aggregation",
            Kind::Shrinkage => "a shrinkage",
            Kind::Model => "a model",
            Kind::Dataset => "a dataset",
            Kind::Optimizer => "an optimizer",
            Kind::Schedule => "a schedule",
            Kind::Loss => "a loss",
            Kind::Attack => "an attack",
        }
    }
}
