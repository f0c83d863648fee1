//! `liunet`: the MNIST network of the paper (DESIGN.md §1.5): conv 64 3×3 + GroupNorm(16) +
//! ReLU, then three stages of 3 × (conv 64 3×3 + GroupNorm(16) + ReLU), each followed by
//! maxpool 2; fc 256 → ReLU → fc. All convolutions pad by 1, so on 28×28 inputs the flattened
//! features are 3·3·64 = 576.
use super::lenet::{chw, too_small};
use crate::layers::{conv2d, group_norm, linear, Activation, ConvConfig, Flatten, MaxPool2d, Sequential};
use crate::params::ParamBuilder;
use candle_core::Result;

const WIDTH: usize = 64;
const GROUPS: usize = 16;

pub fn liunet(input_shape: &[usize], classes: usize, pb: &mut ParamBuilder) -> Result<Sequential> {
    let (c, h, w) = chw("liunet", input_shape)?;
    if h < 8 || w < 8 {
        return Err(too_small("liunet", 8, h, w));
    }
    let mut seq = Sequential::new();
    let mut in_c = c;
    for i in 1..=10 {
        seq.push(conv2d(in_c, WIDTH, 3, ConvConfig::pad(1), &mut pb.pp(format!("conv{i}")))?);
        seq.push(group_norm(GROUPS, WIDTH, &mut pb.pp(format!("gn{i}")))?);
        seq.push(Activation::Relu);
        if i % 3 == 1 && i > 1 {
            seq.push(MaxPool2d::new(2));
        }
        in_c = WIDTH;
    }
    let features = WIDTH * (h / 8) * (w / 8);
    seq.push(Flatten);
    seq.push(linear(features, 256, &mut pb.pp("fc1"))?);
    seq.push(Activation::Relu);
    seq.push(linear(256, classes, &mut pb.pp("fc2"))?);
    Ok(seq)
}
