//! Helpers shared by amm-core's integration tests.
#![allow(dead_code)] // each test crate uses some of them
use amm_core::candle_core::{DType, Device, Result, Tensor};
use amm_core::data::Rng;
use amm_core::dsl;
use amm_core::layer::{Ctx, Rows};
use amm_core::model::{Forward, Model};
use amm_core::params::ParamStore;
use amm_core::Registry;

/// A built-in model as a plugin model may be: without a hand-written training backward (its
/// data loss goes through candle's backward) and, unless `vjp`, without an input VJP (candle's
/// double backward gives it, `autograd.rs`).
pub struct AsPlugin {
    pub inner: Box<dyn Model>,
    pub vjp: bool,
}

impl AsPlugin {
    /// No input VJP.
    pub fn no_vjp(inner: Box<dyn Model>) -> Self {
        Self { inner, vjp: false }
    }
}

impl Model for AsPlugin {
    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Forward> {
        self.inner.forward(x, ctx)
    }
    fn input_vjp(&self, fwd: &Forward, v: &Tensor, rows: &Rows) -> Result<Option<Tensor>> {
        if self.vjp {
            self.inner.input_vjp(fwd, v, rows)
        } else {
            Ok(None)
        }
    }
    fn params(&self) -> &ParamStore {
        self.inner.params()
    }
    fn input_shape(&self) -> &[usize] {
        self.inner.input_shape()
    }
    fn classes(&self) -> usize {
        self.inner.classes()
    }
    fn describe(&self) -> String {
        match self.vjp {
            true => format!("as-plugin {}", self.inner.describe()),
            false => format!("no-vjp {}", self.inner.describe()),
        }
    }
}

/// A fresh model whose biases are small random numbers, as a trained model's are: with the zero
/// biases of the initialisation, a point where every unit of the last hidden layer is off has all
/// logits equal, and the argmax there is a tie that rounding decides.
pub fn model(reg: &Registry, src: &str, input: &[usize], seed: u64) -> Box<dyn Model> {
    let grid = dsl::experiment_from_overrides(&[format!("model.arch={src}")], reg).unwrap_or_else(|d| panic!("{d}"));
    let mut rng = Rng::new(seed).fork(1);
    let m = reg.build_model(&grid.cells[0].config.model, input, 10, &mut rng, DType::F64, &Device::Cpu).unwrap();
    for (name, var) in m.params().vars() {
        if name.ends_with("bias") {
            let v: Vec<f64> = (0..var.elem_count()).map(|_| 0.1 * rng.normal()).collect();
            var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap()).unwrap();
        }
    }
    m
}
