//! `mlp`: fully connected ReLU (or tanh) network; the paper's MNIST MLP is `widths = [800, 800]`.
use crate::layers::{linear, Activation, Dropout, Flatten, Sequential};
use crate::params::ParamBuilder;
use candle_core::Result;

pub fn mlp(
    input_shape: &[usize],
    classes: usize,
    widths: &[usize],
    act: Activation,
    dropout: f64,
    pb: &mut ParamBuilder,
) -> Result<Sequential> {
    let mut seq = Sequential::new().then(Flatten);
    let mut d: usize = input_shape.iter().product();
    for (i, &w) in widths.iter().enumerate() {
        seq.push(linear(d, w, &mut pb.pp(format!("fc{}", i + 1)))?);
        seq.push(act);
        if dropout > 0.0 {
            seq.push(Dropout::new(dropout, i as u64));
        }
        d = w;
    }
    seq.push(linear(d, classes, &mut pb.pp(format!("fc{}", widths.len() + 1)))?);
    Ok(seq)
}
