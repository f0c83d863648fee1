//! # amm-core
//!
//! The differentiable margin engine of amm (Adversarial Margin Maximization): layers with
//! explicit input VJPs, models, the batched differentiable DeepFool, aggregation, shrinkage, the
//! regularizer, training and evaluation, and the one registry through which the spec language,
//! the built-ins and plugins all pass.
//!
//! This crate is a Rust `dylib` and re-exports candle: plugins and the `amm` binary use candle
//! only through it, so one copy of candle's global state (its tensor-id counter) exists in a
//! process (../shared/notes/candle.md, "Dynamic plugins").
// Every unsafe operation sits in its own `unsafe {}` block with a SAFETY comment, also inside
// unsafe fns (kernels/, plugin/).
#![deny(unsafe_op_in_unsafe_fn)]

pub use amm_data as data;
pub use amm_dsl as dsl;
pub use anyhow;
pub use candle_core;
pub use candle_nn;
pub use serde_json;

pub mod aggregate;
pub mod attacks;
pub mod autograd;
pub mod backward;
pub mod builtins;
pub mod card;
pub mod eval;
pub mod export;
pub mod gradcheck;
pub mod init;
pub mod kernels;
pub mod layer;
pub mod layers;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod models;
pub mod optim;
pub mod params;
pub mod plugin;
pub mod proxy;
pub mod registry;
pub mod regularizer;
pub mod robust;
pub mod rundir;
pub mod schedule;
pub mod shrink;
pub mod step;
pub mod tensor;
pub mod tensorboard;
pub mod train;

pub use layer::{Ctx, Layer, Mode, Rows, Saved};
pub use model::{Forward, Model, Network};
pub use plugin::{PluginInfo, Registrar};
pub use registry::Registry;
pub use regularizer::{RegOut, RegTrace, RegValue, Regularizer};
