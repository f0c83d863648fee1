//! `resnet20`, `resnet56` and `resnet(depth, block, norm)`: the CIFAR ResNets of He et al.
//! (2016, §4.2) with the normalisation amm can attack through, and the bottleneck blocks the
//! authors' code uses for the deeper ones.
//!
//! conv 3×3 16 + norm + ReLU; three stages of n blocks, the first block of stages 2 and 3 with
//! stride 2; global average pool; fc. Convolutions have no bias (the norm's β replaces it).
//! - A basic block is `relu(norm(conv3×3(relu(norm(conv3×3(x))))) + shortcut(x))` with 16, 32
//!   and 64 channels in the three stages; depth 6n + 2 (ResNet-20: n = 3).
//! - A bottleneck block is `relu(norm(conv1×1(relu(norm(conv3×3(relu(norm(conv1×1(x)))))))) +
//!   shortcut(x))`: 1×1 to `planes` (16, 32, 64), 3×3 at `planes` with the block's stride, 1×1 to
//!   4·planes (64, 128, 256); depth 9n + 2 (ResNet-56: n = 6).
//!
//! Where the shape changes the shortcut is a 1×1 convolution with the block's stride followed by
//! a norm ("option B"), elsewhere the identity.
//!
//! Which block (`block=auto`, the default): basic blocks below depth 44 and bottleneck blocks
//! from 44 up, as the authors' code (Wei Yang's CIFAR `resnet.py`). Unlike the older version of
//! that file, which keeps n = (depth − 2)/6 for its bottleneck nets (so that its "ResNet-56" has
//! 9 bottleneck blocks a stage, 83 weighted layers), amm counts the layers: a bottleneck net of
//! depth 9n + 2 has n blocks a stage and `depth` weighted layers (its newer version's rule). So
//! `resnet(depth=44)` fits neither rule and is refused; `block=basic` gives He et al.'s basic
//! ResNet-44/56/110 at any depth 6n + 2, `block=bottleneck` any depth 9n + 2.
//!
//! The norm is either GroupNorm with channels/4 groups (4 channels per group: 4, 8 and 16 groups
//! in the basic stages, as LiuNet's 64 channels in 16 groups) or frozen BatchNorm (batch
//! statistics in the cross-entropy pass, running statistics in the attack passes).
use super::lenet::chw;
use crate::dsl::ModelProblem;
use crate::layers::{batch_norm2d, conv2d, group_norm, linear, Activation, ConvConfig, GlobalAvgPool, Residual, Sequential};
use crate::params::ParamBuilder;
use candle_core::Result;

/// The normalisation layer of a ResNet (and of a DenseNet).
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
    pub(super) fn push(self, seq: &mut Sequential, channels: usize, pb: &mut ParamBuilder) -> Result<()> {
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

/// The output channels of a bottleneck block are `EXPANSION`·planes.
const EXPANSION: usize = 4;

/// The bottleneck block: `norm3(conv3(relu(norm2(conv2(relu(norm1(conv1(x))))))))` plus the
/// shortcut; 1×1 to `planes`, 3×3 with `stride`, 1×1 to 4·planes.
fn bottleneck_block(in_c: usize, planes: usize, stride: usize, norm: ResNorm, pb: &mut ParamBuilder) -> Result<Residual> {
    let out_c = planes * EXPANSION;
    let mut body = Sequential::new();
    body.push(conv2d(in_c, planes, 1, ConvConfig::default().no_bias(), &mut pb.pp("conv1"))?);
    norm.push(&mut body, planes, &mut pb.pp("norm1"))?;
    body.push(Activation::Relu);
    body.push(conv2d(planes, planes, 3, ConvConfig::pad(1).stride(stride).no_bias(), &mut pb.pp("conv2"))?);
    norm.push(&mut body, planes, &mut pb.pp("norm2"))?;
    body.push(Activation::Relu);
    body.push(conv2d(planes, out_c, 1, ConvConfig::default().no_bias(), &mut pb.pp("conv3"))?);
    norm.push(&mut body, out_c, &mut pb.pp("norm3"))?;
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

/// The residual block of a ResNet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResBlock {
    /// Two 3×3 convolutions; depth 6n + 2.
    Basic,
    /// 1×1, 3×3, 1×1 with a 4× wider output; depth 9n + 2.
    Bottleneck,
}

impl ResBlock {
    /// `auto` is `None`: the block follows from the depth (see [`resnet_plan`]).
    pub fn parse(s: &str) -> Option<Option<Self>> {
        match s {
            "auto" => Some(None),
            "basic" => Some(Some(ResBlock::Basic)),
            "bottleneck" => Some(Some(ResBlock::Bottleneck)),
            _ => None,
        }
    }
    /// Weighted layers per block: a depth is `layers·3·n + 2`.
    fn layers(self) -> usize {
        match self {
            ResBlock::Basic => 2,
            ResBlock::Bottleneck => 3,
        }
    }
    /// Output channels over the stage's width (16, 32, 64).
    pub fn expansion(self) -> usize {
        match self {
            ResBlock::Basic => 1,
            ResBlock::Bottleneck => EXPANSION,
        }
    }
    /// The block of `block=auto` at `depth`: the authors' rule.
    fn auto(depth: usize) -> Self {
        if depth >= 44 {
            ResBlock::Bottleneck
        } else {
            ResBlock::Basic
        }
    }
    /// `n` blocks a stage give this depth, if it is one.
    fn blocks(self, depth: usize) -> Option<usize> {
        let per_stage = 3 * self.layers();
        (depth > 2 && (depth - 2).is_multiple_of(per_stage)).then(|| (depth - 2) / per_stage)
    }
}

/// The block and the blocks per stage of a ResNet of `depth` weighted layers; `block: None`
/// (`auto`) chooses basic blocks below 44 and bottleneck blocks from 44 up. The error points at
/// `depth` and names the nearest depths that work.
pub fn resnet_plan(depth: usize, block: Option<ResBlock>) -> std::result::Result<(ResBlock, usize), ModelProblem> {
    let chosen = |d: usize| block.unwrap_or(ResBlock::auto(d));
    if let Some(n) = chosen(depth).blocks(depth) {
        return Ok((chosen(depth), n));
    }
    let fits = |d: &usize| chosen(*d).blocks(*d).is_some();
    let below = (1..depth).rev().find(fits);
    let above = (depth.saturating_add(1)..depth.saturating_add(20)).find(fits);
    let near: Vec<String> = below.into_iter().chain(above).map(|d| format!("depth={d}")).collect();
    let mut help = format!("use {}", near.join(" or "));
    let message = match block {
        None => {
            // The other block, where this depth suits it.
            if let Some((_, name)) = [(ResBlock::Basic, "basic"), (ResBlock::Bottleneck, "bottleneck")]
                .into_iter()
                .find(|(b, _)| *b != ResBlock::auto(depth) && b.blocks(depth).is_some())
            {
                help.push_str(&format!(", or block={name} for this depth"));
            }
            format!("resnet depth must be 6n+2 below 44 or 9n+2 from 44 up, got {depth}")
        }
        Some(ResBlock::Basic) => format!("resnet depth with block=basic must be 6n+2 (n >= 1), got {depth}"),
        Some(ResBlock::Bottleneck) => format!("resnet depth with block=bottleneck must be 9n+2 (n >= 1), got {depth}"),
    };
    Err(ModelProblem { message, help: Some(help), arg: Some(("depth".into(), None)) })
}

/// A CIFAR ResNet of `depth` weighted layers (20, 32, 56, 110 with `block: None`).
pub fn resnet(
    input_shape: &[usize],
    classes: usize,
    depth: usize,
    block: Option<ResBlock>,
    norm: ResNorm,
    pb: &mut ParamBuilder,
) -> Result<Sequential> {
    let (c, h, w) = chw("resnet", input_shape)?;
    let (block, n) = resnet_plan(depth, block).map_err(|p| candle_core::Error::Msg(p.to_string()))?;
    if h < 4 || w < 4 {
        return Err(super::lenet::too_small("resnet", 4, h, w));
    }
    let mut seq = Sequential::new();
    seq.push(conv2d(c, 16, 3, ConvConfig::pad(1).no_bias(), &mut pb.pp("conv1"))?);
    norm.push(&mut seq, 16, &mut pb.pp("norm1"))?;
    seq.push(Activation::Relu);
    let mut in_c = 16;
    for (s, &planes) in [16, 32, 64].iter().enumerate() {
        for b in 0..n {
            let stride = if s > 0 && b == 0 { 2 } else { 1 };
            let pb = &mut pb.pp(format!("stage{}.block{}", s + 1, b + 1));
            seq.push(match block {
                ResBlock::Basic => basic_block(in_c, planes, stride, norm, pb)?,
                ResBlock::Bottleneck => bottleneck_block(in_c, planes, stride, norm, pb)?,
            });
            seq.push(Activation::Relu);
            in_c = planes * block.expansion();
        }
    }
    seq.push(GlobalAvgPool);
    seq.push(linear(in_c, classes, &mut pb.pp("fc"))?);
    Ok(seq)
}

/// ResNet-20 (basic blocks, n = 3).
pub fn resnet20(input_shape: &[usize], classes: usize, norm: ResNorm, pb: &mut ParamBuilder) -> Result<Sequential> {
    resnet(input_shape, classes, 20, None, norm, pb)
}

/// ResNet-56 as the authors build it (bottleneck blocks, n = 6).
pub fn resnet56(input_shape: &[usize], classes: usize, norm: ResNorm, pb: &mut ParamBuilder) -> Result<Sequential> {
    resnet(input_shape, classes, 56, None, norm, pb)
}
