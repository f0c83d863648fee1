//! Validated specs: a stage with its complete arguments, and a regularizer pipeline.
//!
//! These are what the trainer builds from. They print as canonical source
//! (see [`printer`](crate::printer)) that parses back to an equal value.

use serde::{Deserialize, Serialize};

use crate::kind::Kind;
use crate::value::Args;

/// One validated stage: its kind, name and every parameter (defaults applied).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageSpec {
    /// What it is.
    pub kind: Kind,
    /// Its catalog name.
    pub name: String,
    /// All its parameters, in the schema's order.
    pub args: Args,
}

/// One validated regularizer: `proxy |> aggregation |> [normalize] |> shrinkage |> weight`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PipelineSpec {
    /// The margin proxy (`deepfool`).
    pub proxy: StageSpec,
    /// Which samples are regularized (`avg` when the spec leaves it out).
    pub aggregation: StageSpec,
    /// Whether `rho / ||x||` is used instead of `rho`.
    pub normalize: bool,
    /// The penalty of the margin (`exp`).
    pub shrinkage: StageSpec,
    /// The weight lambda (1 when the spec leaves it out).
    pub weight: f64,
}
