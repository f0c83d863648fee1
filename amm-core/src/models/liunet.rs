//! `liunet`, `liunet64` and `liunet96`: the networks of L-Softmax (Liu et al. 2016) as the paper
//! adapts them (DESIGN.md §1.5), batch norm replaced by GroupNorm. One conv 3×3 + GroupNorm +
//! ReLU, then three stages of convs 3×3 + GroupNorm + ReLU, each stage followed by maxpool 2;
//! flatten; fc → ReLU → fc. Every convolution pads by 1.
//!
//! | model | data | first conv | stages (convs × width) | fc | features on its data |
//! |---|---|---|---|---|---|
//! | `liunet` | MNIST 28×28 | 64 | 3 × 64, 3 × 64, 3 × 64 | 256 | 3·3·64 = 576 |
//! | `liunet64` | CIFAR-10 32×32 | 64 | 4 × 64, 4 × 96, 4 × 128 | 256 | 4·4·128 = 2048 |
//! | `liunet96` | CIFAR-100 32×32 | 96 | 4 × 96, 4 × 192, 4 × 384 | 512 | 4·4·384 = 6144 |
//!
//! GroupNorm has channels/4 groups everywhere (4 channels a group): 16 groups for MNIST's 64
//! channels, as the authors' MNIST network, and 16, 24, 32 (`liunet64`) or 24, 48, 96
//! (`liunet96`) on CIFAR. The paper says only "group normalization layers of group size 32, as in
//! our MNIST experiments" for CIFAR; amm keeps the MNIST network's 4 channels a group.
//! Parameters are numbered through the whole network: `conv1`/`gn1` .. `conv13`/`gn13` on CIFAR.
use super::lenet::{chw, too_small};
use crate::layers::{conv2d, group_norm, linear, Activation, ConvConfig, Flatten, MaxPool2d, Sequential};
use crate::params::ParamBuilder;
use candle_core::Result;

/// The sizes of a LiuNet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiuNetShape {
    /// The first convolution's width, then the three stages' widths.
    pub widths: [usize; 4],
    /// Convolutions a stage.
    pub convs: usize,
    /// Width of the hidden fully connected layer.
    pub fc: usize,
}

/// The shape of built-in LiuNet `name` (`liunet`, `liunet64`, `liunet96`).
pub fn liunet_shape(name: &str) -> Option<LiuNetShape> {
    Some(match name {
        "liunet" => LiuNetShape { widths: [64; 4], convs: 3, fc: 256 },
        "liunet64" => LiuNetShape { widths: [64, 64, 96, 128], convs: 4, fc: 256 },
        "liunet96" => LiuNetShape { widths: [96, 96, 192, 384], convs: 4, fc: 512 },
        _ => return None,
    })
}

fn build(name: &str, input_shape: &[usize], classes: usize, pb: &mut ParamBuilder) -> Result<Sequential> {
    let shape = liunet_shape(name).ok_or_else(|| candle_core::Error::Msg(format!("no LiuNet named {name}")))?;
    let (c, h, w) = chw(name, input_shape)?;
    if h < 8 || w < 8 {
        return Err(too_small(name, 8, h, w));
    }
    let mut seq = Sequential::new();
    let mut i = 0;
    let mut layer = |seq: &mut Sequential, in_c: usize, out_c: usize| -> Result<()> {
        i += 1;
        seq.push(conv2d(in_c, out_c, 3, ConvConfig::pad(1), &mut pb.pp(format!("conv{i}")))?);
        seq.push(group_norm(out_c / 4, out_c, &mut pb.pp(format!("gn{i}")))?);
        seq.push(Activation::Relu);
        Ok(())
    };
    layer(&mut seq, c, shape.widths[0])?;
    let mut in_c = shape.widths[0];
    for &width in &shape.widths[1..] {
        for _ in 0..shape.convs {
            layer(&mut seq, in_c, width)?;
            in_c = width;
        }
        seq.push(MaxPool2d::new(2));
    }
    seq.push(Flatten);
    seq.push(linear(in_c * (h / 8) * (w / 8), shape.fc, &mut pb.pp("fc1"))?);
    seq.push(Activation::Relu);
    seq.push(linear(shape.fc, classes, &mut pb.pp("fc2"))?);
    Ok(seq)
}

/// The MNIST LiuNet.
pub fn liunet(input_shape: &[usize], classes: usize, pb: &mut ParamBuilder) -> Result<Sequential> {
    build("liunet", input_shape, classes, pb)
}

/// The CIFAR-10 LiuNet.
pub fn liunet64(input_shape: &[usize], classes: usize, pb: &mut ParamBuilder) -> Result<Sequential> {
    build("liunet64", input_shape, classes, pb)
}

/// The CIFAR-100 LiuNet.
pub fn liunet96(input_shape: &[usize], classes: usize, pb: &mut ParamBuilder) -> Result<Sequential> {
    build("liunet96", input_shape, classes, pb)
}
