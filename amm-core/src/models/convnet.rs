//! `convnet`: the light CIFAR ConvNet of the paper (its CIFAR "LeNet", DESIGN.md §1.5):
//! 3 × (conv 5×5 pad 2 → maxpool 2 → ReLU) with 32, 32 and 64 channels; fc 64 → ReLU → fc.
//! On 32×32 inputs the flattened features are 4·4·64 = 1024.
use super::lenet::{chw, too_small};
use crate::layers::{conv2d, linear, Activation, ConvConfig, Flatten, MaxPool2d, Sequential};
use crate::params::ParamBuilder;
use candle_core::Result;

pub fn convnet(input_shape: &[usize], classes: usize, pb: &mut ParamBuilder) -> Result<Sequential> {
    let (c, h, w) = chw("convnet", input_shape)?;
    if h < 8 || w < 8 {
        return Err(too_small("convnet", 8, h, w));
    }
    let mut seq = Sequential::new();
    let mut in_c = c;
    for (i, &width) in [32, 32, 64].iter().enumerate() {
        seq.push(conv2d(in_c, width, 5, ConvConfig::pad(2), &mut pb.pp(format!("conv{}", i + 1)))?);
        seq.push(MaxPool2d::new(2));
        seq.push(Activation::Relu);
        in_c = width;
    }
    seq.push(Flatten);
    seq.push(linear(64 * (h / 8) * (w / 8), 64, &mut pb.pp("fc1"))?);
    seq.push(Activation::Relu);
    seq.push(linear(64, classes, &mut pb.pp("fc2"))?);
    Ok(seq)
}
