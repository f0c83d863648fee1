//! The built-in architectures (DESIGN.md §1.5), each a [`Network`](crate::model::Network).
mod convnet;
mod densenet;
mod lenet;
mod linear;
mod liunet;
mod mlp;
mod nin;
mod register;
mod resnet;

pub use convnet::convnet;
pub use densenet::{densenet, densenet40, densenet_plan, DENSENET_STEM};
pub use lenet::lenet;
pub use linear::linear_model;
pub use liunet::{liunet, liunet64, liunet96, liunet_shape, LiuNetShape};
pub use mlp::mlp;
pub use nin::nin;
pub use register::{check_model, network, param_count, register};
pub use resnet::{resnet, resnet20, resnet56, resnet_plan, ResBlock, ResNorm};
