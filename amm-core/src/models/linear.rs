//! `linear`: a linear classifier, the paper's 2D toy model.
use crate::layers::{linear, Flatten, Sequential};
use crate::params::ParamBuilder;
use candle_core::Result;

pub fn linear_model(input_shape: &[usize], classes: usize, pb: &mut ParamBuilder) -> Result<Sequential> {
    let d: usize = input_shape.iter().product();
    Ok(Sequential::new().then(Flatten).then(linear(d, classes, &mut pb.pp("fc"))?))
}
