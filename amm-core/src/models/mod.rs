//! The built-in architectures (DESIGN.md §1.5), each a [`Network`](crate::model::Network).
mod linear;
mod mlp;

pub use linear::linear_model;
pub use mlp::mlp;
