//! The amm spec language: regularizer pipelines and experiment files.
//!
//! ```text
//! deepfool(l2, 5) |> min(class, 0.2) |> exp(c=2, d=1) |> weight(32)
//! ```
//!
//! Text goes through [`scan`] (nesting bound, brackets, statements), the pest grammar
//! `amm.pest` ([`parser`]) into a spanned [`ast`], is expanded over its alternatives
//! ([`expand`]), checked against a [`Catalog`] ([`validate`]) into [`PipelineSpec`]s and
//! [`RunConfig`]s, and every error comes back as [`Diagnostics`] with file, line, column, a
//! caret and a suggestion. Stage names are not in the grammar: amm-core's registry implements
//! [`Catalog`].

pub mod ast;
pub mod attacks;
pub mod diagnostic;
pub mod expand;
pub mod experiment;
pub mod kind;
pub mod parser;
pub mod pipeline;
pub mod printer;
pub mod scan;
pub mod schema;
pub mod size;
pub mod spec;
pub mod suggest;
pub mod testing;
pub mod validate;
pub mod value;

pub use attacks::{parse_attacks, AttackCall};
pub use diagnostic::{Diagnostic, Diagnostics, Span};
pub use expand::{MAX_CELLS, MAX_EXPANDED_PARTS};
pub use experiment::{
    default_config, experiment_from_overrides, experiment_from_source, load_experiment, Cell, DType, DataConfig, EvalConfig, Grid, KeyDoc,
    Loss, Optimizer, RunConfig, Schedule, TrainConfig, KEYS, MAX_SPEC_BYTES, MAX_THREADS, SECTIONS,
};
pub use pipeline::{parse_pipeline, parse_pipeline_from};
pub use scan::MAX_DEPTH;
pub use schema::{builtin_stage, Builtin, Catalog, Kind, ParamSpec, ParamType, Schema, SimpleCatalog, BUILTIN_NAMES};
pub use size::{DataShape, ModelProblem, MAX_LAYER_WIDTH, MAX_MODEL_PARAMS};
pub use spec::{PipelineSpec, StageSpec};
pub use value::{Args, Value};
