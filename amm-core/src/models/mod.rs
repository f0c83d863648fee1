//! The built-in architectures (DESIGN.md §1.5), each a [`Network`](crate::model::Network).
mod convnet;
mod lenet;
mod linear;
mod liunet;
mod mlp;
mod nin;
mod resnet;

pub use convnet::convnet;
pub use lenet::lenet;
pub use linear::linear_model;
pub use liunet::liunet;
pub use mlp::mlp;
pub use nin::nin;
pub use resnet::{resnet, resnet20, ResNorm};
