//! The layers amm's models are built from; each has an explicit, differentiable input VJP.
mod activation;
mod dropout;
mod flatten;
mod linear;
mod sequential;

pub use activation::Activation;
pub use dropout::Dropout;
pub use flatten::Flatten;
pub use linear::{linear, Linear};
pub use sequential::Sequential;
