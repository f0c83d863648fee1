//! `lenet`: the Caffe-style LeNet of the paper's MNIST experiments (DESIGN.md §1.5): conv 20 5×5
//! → maxpool 2 → conv 50 5×5 → maxpool 2 → fc 500 → ReLU → fc, with no ReLU after the
//! convolutions. On 28×28 inputs the flattened features are 4·4·50 = 800.
use crate::layers::{conv2d, linear, Activation, ConvConfig, Flatten, MaxPool2d, Sequential};
use crate::params::ParamBuilder;
use candle_core::Result;

/// `(C, H, W)` of an image input shape, or an error naming the model.
pub(super) fn chw(model: &str, input_shape: &[usize]) -> Result<(usize, usize, usize)> {
    match input_shape {
        [c, h, w] => Ok((*c, *h, *w)),
        _ => Err(candle_core::Error::Msg(format!("{model} needs image inputs [C, H, W] (got {input_shape:?})"))),
    }
}

/// The error for inputs smaller than a model's minimum.
pub(super) fn too_small(model: &str, min: usize, h: usize, w: usize) -> candle_core::Error {
    candle_core::Error::Msg(format!("{model} needs inputs of at least {min}×{min} (got {h}×{w})"))
}

pub fn lenet(input_shape: &[usize], classes: usize, pb: &mut ParamBuilder) -> Result<Sequential> {
    let (c, h, w) = chw("lenet", input_shape)?;
    if h < 16 || w < 16 {
        return Err(too_small("lenet", 16, h, w));
    }
    let out = |s: usize| ((s - 4) / 2 - 4) / 2;
    let features = 50 * out(h) * out(w);
    Ok(Sequential::new()
        .then(conv2d(c, 20, 5, ConvConfig::default(), &mut pb.pp("conv1"))?)
        .then(MaxPool2d::new(2))
        .then(conv2d(20, 50, 5, ConvConfig::default(), &mut pb.pp("conv2"))?)
        .then(MaxPool2d::new(2))
        .then(Flatten)
        .then(linear(features, 500, &mut pb.pp("fc1"))?)
        .then(Activation::Relu)
        .then(linear(500, classes, &mut pb.pp("fc2"))?))
}
