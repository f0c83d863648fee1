//! `nin`: Network in Network for CIFAR (Lin et al. 2014), as in its Caffe/Torch CIFAR-10 model:
//! conv 5×5 192 → 1×1 160 → 1×1 96 → maxpool → dropout 0.5; conv 5×5 192 → 1×1 192 → 1×1 192 →
//! avgpool → dropout 0.5; conv 3×3 192 → 1×1 192 → 1×1 classes → global average pool, with a
//! ReLU after every convolution (the last one included, as in the original). Convolutions pad to
//! keep the size.
//!
//! Difference from the original: both pools use kernel = stride = 2 instead of 3×3 windows with
//! stride 2, because amm's exact pooling VJPs (and candle's pooling backward) support only
//! non-overlapping windows.
use super::lenet::{chw, too_small};
use crate::layers::{conv2d, Activation, AvgPool2d, ConvConfig, Dropout, GlobalAvgPool, MaxPool2d, Sequential};
use crate::params::ParamBuilder;
use candle_core::Result;

pub fn nin(input_shape: &[usize], classes: usize, pb: &mut ParamBuilder) -> Result<Sequential> {
    let (c, h, w) = chw("nin", input_shape)?;
    if h < 4 || w < 4 {
        return Err(too_small("nin", 4, h, w));
    }
    // (out channels, kernel) of each block's three convolutions.
    let blocks: [[(usize, usize); 3]; 3] =
        [[(192, 5), (160, 1), (96, 1)], [(192, 5), (192, 1), (192, 1)], [(192, 3), (192, 1), (classes, 1)]];
    let mut seq = Sequential::new();
    let mut in_c = c;
    for (b, block) in blocks.iter().enumerate() {
        for (i, &(out_c, k)) in block.iter().enumerate() {
            let name = format!("conv{}_{}", b + 1, i + 1);
            seq.push(conv2d(in_c, out_c, k, ConvConfig::pad(k / 2), &mut pb.pp(name))?);
            seq.push(Activation::Relu);
            in_c = out_c;
        }
        match b {
            0 => seq.push(MaxPool2d::new(2)),
            1 => seq.push(AvgPool2d::new(2)),
            _ => seq.push(GlobalAvgPool),
        }
        if b < 2 {
            seq.push(Dropout::new(0.5, b as u64));
        }
    }
    Ok(seq)
}
