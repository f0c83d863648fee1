//! `resnet20` (and `resnet` for any depth 6n+2, e.g. ResNet-56): the CIFAR ResNet of He et al.
//! (2016, §4.2) with the normalisation amm can attack through.
//!
//! conv 3×3 16 + norm + ReLU; three stages of n basic blocks with 16, 32 and 64 channels, the
//! first block of stages 2 and 3 with stride 2; global average pool; fc. A basic block is
//! `relu(norm(conv3×3(relu(norm(conv3×3(x))))) + shortcut(x))`. Where the shape changes the
//! shortcut is a 1×1 convolution with stride 2 followed by a norm ("option B"), elsewhere the
//! identity. Convolutions have no bias (the norm's β replaces it).
//!
//! The norm is either GroupNorm with channels/4 groups (4 channels per group: 4, 8 and 16 groups
//! in the three stages, as LiuNet's 64 channels in 16 groups) or frozen BatchNorm (batch
//! statistics in the cross-entropy pass, running statistics in the attack passes).
use super::lenet::chw;
use crate::layers::{batch_norm2d, conv2d, group_norm, linear, Activation, ConvConfig, GlobalAvgPool, Residual, Sequential};
use crate::params::ParamBuilder;
use candle_core::Result;

/// The normalisation layer of a ResNet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResNorm {
    /// GroupNorm with channels/4 groups.
    Group,
    /// Frozen BatchNorm2d.
    FrozenBn,
}

impl ResNorm {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "group" | "gn" => Some(ResNorm::Group),
            "frozen_bn" | "bn" => Some(ResNorm::FrozenBn),
            _ => None,
        }
    }
    fn push(self, seq: &mut Sequential, channels: usize, pb: &mut ParamBuilder) -> Result<()> {
        match self {
            ResNorm::Group => seq.push(group_norm(channels / 4, channels, pb)?),
            ResNorm::FrozenBn => seq.push(batch_norm2d(channels, pb)?),
        }
        Ok(())
    }
}

fn basic_block(in_c: usize, out_c: usize, stride: usize, norm: ResNorm, pb: &mut ParamBuilder) -> Result<Residual> {
    let mut body = Sequential::new();
    body.push(conv2d(in_c, out_c, 3, ConvConfig::pad(1).stride(stride).no_bias(), &mut pb.pp("conv1"))?);
    norm.push(&mut body, out_c, &mut pb.pp("norm1"))?;
    body.push(Activation::Relu);
    body.push(conv2d(out_c, out_c, 3, ConvConfig::pad(1).no_bias(), &mut pb.pp("conv2"))?);
    norm.push(&mut body, out_c, &mut pb.pp("norm2"))?;
    let shortcut = if stride != 1 || in_c != out_c {
        let mut s = Sequential::new();
        s.push(conv2d(in_c, out_c, 1, ConvConfig::default().stride(stride).no_bias(), &mut pb.pp("shortcut.conv"))?);
        norm.push(&mut s, out_c, &mut pb.pp("shortcut.norm"))?;
        Some(s)
    } else {
        None
    };
    Ok(Residual::new(body, shortcut))
}

/// A CIFAR ResNet of `depth` = 6n + 2 layers (20, 32, 44, 56, 110).
pub fn resnet(input_shape: &[usize], classes: usize, depth: usize, norm: ResNorm, pb: &mut ParamBuilder) -> Result<Sequential> {
    let (c, h, w) = chw("resnet", input_shape)?;
    if depth < 8 || !(depth - 2).is_multiple_of(6) {
        return Err(candle_core::Error::Msg(format!("resnet depth must be 6n+2 (20, 32, 44, 56, 110), got {depth}")));
    }
    if h < 4 || w < 4 {
        return Err(super::lenet::too_small("resnet", 4, h, w));
    }
    let n = (depth - 2) / 6;
    let mut seq = Sequential::new();
    seq.push(conv2d(c, 16, 3, ConvConfig::pad(1).no_bias(), &mut pb.pp("conv1"))?);
    norm.push(&mut seq, 16, &mut pb.pp("norm1"))?;
    seq.push(Activation::Relu);
    let mut in_c = 16;
    for (s, &width) in [16, 32, 64].iter().enumerate() {
        for b in 0..n {
            let stride = if s > 0 && b == 0 { 2 } else { 1 };
            seq.push(basic_block(in_c, width, stride, norm, &mut pb.pp(format!("stage{}.block{}", s + 1, b + 1)))?);
            seq.push(Activation::Relu);
            in_c = width;
        }
    }
    seq.push(GlobalAvgPool);
    seq.push(linear(64, classes, &mut pb.pp("fc"))?);
    Ok(seq)
}

/// ResNet-20 (n = 3).
pub fn resnet20(input_shape: &[usize], classes: usize, norm: ResNorm, pb: &mut ParamBuilder) -> Result<Sequential> {
    resnet(input_shape, classes, 20, norm, pb)
}
