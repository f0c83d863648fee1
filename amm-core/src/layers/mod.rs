//! The layers amm's models are built from; each has an explicit, differentiable input VJP.
mod activation;
mod concat;
mod conv;
mod dropout;
mod flatten;
mod linear;
mod norm;
mod pool;
mod residual;
mod sequential;

pub use activation::Activation;
pub use concat::Concat;
pub use conv::{conv2d, Conv2d, ConvConfig};
pub use dropout::Dropout;
pub use flatten::Flatten;
pub use linear::{linear, Linear};
pub use norm::{batch_norm2d, group_norm, BatchNorm2d, GroupNorm};
pub use pool::{AvgPool2d, GlobalAvgPool, MaxPool2d};
pub use residual::Residual;
pub use sequential::Sequential;
