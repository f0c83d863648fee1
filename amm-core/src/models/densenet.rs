//! `densenet40` and `densenet(depth, growth, norm)`: the CIFAR DenseNet of Huang et al. (2017)
//! without bottlenecks or compression (DenseNet-40: depth 40, growth k = 12), as the paper uses it.
//!
//! conv 3×3 to 16 channels; three dense blocks of L = (depth − 4)/3 layers each, with a
//! transition between blocks; then norm → ReLU → global average pool → fc. A dense layer appends
//! `conv3×3(relu(norm(x)))` (k channels) to its input, `cat([x, layer(x)], channels)` (a
//! [`Concat`]); a transition is norm → ReLU → conv 1×1 (same channels) → avgpool 2. Convolutions
//! have no bias. DenseNet-40's channels: 16 → 160 in block 1, 160 → 304 in block 2, 304 → 448 in
//! block 3, 448 into the fc.
//!
//! The norm is frozen BatchNorm, as the paper's DenseNets, or GroupNorm with channels/4 groups
//! (4 channels a group, as `resnet20`). Every channel count is 16 + i·k, so group norm needs a
//! growth that is a multiple of 4 (12 is).
//!
//! Differences from Huang et al.'s code: no dropout (they use none with data augmentation, as the
//! paper does), and the 8×8 average pool before the fc is a global average pool (the same on
//! 32×32 inputs).
use super::lenet::{chw, too_small};
use super::ResNorm;
use crate::dsl::ModelProblem;
use crate::layers::{conv2d, linear, Activation, AvgPool2d, Concat, ConvConfig, GlobalAvgPool, Sequential};
use crate::params::ParamBuilder;
use candle_core::Result;

/// Channels of the first convolution.
pub const DENSENET_STEM: usize = 16;

/// The layers per dense block of a DenseNet of `depth` (3L + 4), checked with `growth` and
/// `norm`; the error points at the argument to change.
pub fn densenet_plan(depth: usize, growth: usize, norm: ResNorm) -> std::result::Result<usize, ModelProblem> {
    let problem = |arg: &str, message: String, help: String| ModelProblem { message, help: Some(help), arg: Some((arg.into(), None)) };
    if depth < 7 || !(depth - 4).is_multiple_of(3) {
        let below = (7..depth).rev().find(|d| (d - 4) % 3 == 0);
        let above = (depth.max(6).saturating_add(1)..).find(|d| (d - 4) % 3 == 0);
        let near: Vec<String> = below.into_iter().chain(above).map(|d| format!("depth={d}")).collect();
        return Err(problem(
            "depth",
            format!("densenet depth must be 3L+4 (L >= 1 layers a dense block), got {depth}"),
            format!("use {} (DenseNet-40: depth=40)", near.join(" or ")),
        ));
    }
    if growth == 0 {
        return Err(problem("growth", "densenet growth must be at least 1".into(), "the paper's DenseNet-40 has growth=12".into()));
    }
    if norm == ResNorm::Group && !growth.is_multiple_of(4) {
        return Err(problem(
            "growth",
            format!("densenet with norm=group needs a growth that is a multiple of 4 (channels/4 groups), got {growth}"),
            "use growth=12, or norm=frozen_bn".into(),
        ));
    }
    Ok((depth - 4) / 3)
}

/// A CIFAR DenseNet of `depth` = 3L + 4 layers with growth `growth`.
pub fn densenet(
    input_shape: &[usize],
    classes: usize,
    depth: usize,
    growth: usize,
    norm: ResNorm,
    pb: &mut ParamBuilder,
) -> Result<Sequential> {
    let (c, h, w) = chw("densenet", input_shape)?;
    let layers = densenet_plan(depth, growth, norm).map_err(|p| candle_core::Error::Msg(p.to_string()))?;
    if h < 4 || w < 4 {
        return Err(too_small("densenet", 4, h, w));
    }
    let mut seq = Sequential::new();
    seq.push(conv2d(c, DENSENET_STEM, 3, ConvConfig::pad(1).no_bias(), &mut pb.pp("conv1"))?);
    let mut ch = DENSENET_STEM;
    for b in 1..=3 {
        for l in 1..=layers {
            let pb = &mut pb.pp(format!("block{b}.layer{l}"));
            let mut body = Sequential::new();
            norm.push(&mut body, ch, &mut pb.pp("norm"))?;
            body.push(Activation::Relu);
            body.push(conv2d(ch, growth, 3, ConvConfig::pad(1).no_bias(), &mut pb.pp("conv"))?);
            seq.push(Concat::new(body));
            ch += growth;
        }
        if b < 3 {
            let pb = &mut pb.pp(format!("trans{b}"));
            norm.push(&mut seq, ch, &mut pb.pp("norm"))?;
            seq.push(Activation::Relu);
            seq.push(conv2d(ch, ch, 1, ConvConfig::default().no_bias(), &mut pb.pp("conv"))?);
            seq.push(AvgPool2d::new(2));
        }
    }
    norm.push(&mut seq, ch, &mut pb.pp("final_norm"))?;
    seq.push(Activation::Relu);
    seq.push(GlobalAvgPool);
    seq.push(linear(ch, classes, &mut pb.pp("fc"))?);
    Ok(seq)
}

/// DenseNet-40 (growth 12, 12 layers a block).
pub fn densenet40(input_shape: &[usize], classes: usize, norm: ResNorm, pb: &mut ParamBuilder) -> Result<Sequential> {
    densenet(input_shape, classes, 40, 12, norm, pb)
}
