//! # swish-net: an amm plugin model WITHOUT an input VJP
//!
//! Registers the model `swishnet(widths=[64, 64])`: an MLP with the smooth activation
//! `swish(z) = z · σ(z)`. It writes only the forward pass; [`Model::input_vjp`] returns `None`.
//! amm then takes the input gradient from candle's double backward (`amm_core::autograd`): a
//! first `backward()` gives `∂logits/∂x`, kept in the graph, and the loss's `backward()`
//! differentiates it again into the weights.
//!
//! That needs candle's graph-keeping mode (`CANDLE_GRAD_DO_NOT_DETACH`), which candle reads once
//! per thread. `amm train` and `amm gradcheck` call `amm_core::autograd::ensure_second_order`
//! before the first backward pass: it turns the mode on and refuses to train if the second-order
//! terms would be lost. The price is speed: the double backward runs the network once more per
//! VJP, one cotangent row at a time, instead of a batched reverse network (compare with the
//! `tanh-mlp` example).
//!
//! The forward uses only ops whose backward candle writes in differentiable ops (matmul, add,
//! mul, exp, recip). Avoid `softmax_last_dim`, `candle_nn::LayerNorm`/`RmsNorm`, `max_pool2d`
//! and narrow-index `gather` here: their (double) backward is missing or wrong in candle 0.11
//! (../shared/notes/candle.md).
use amm_core::anyhow;
use amm_core::candle_core::{Result, Tensor};
use amm_core::dsl::{Kind, ParamSpec, ParamType, Schema, Value};
use amm_core::layer::{Ctx, Rows, Saved};
use amm_core::model::{Forward, Model};
use amm_core::params::{ParamBuilder, ParamStore};
use amm_core::plugin::Registrar;
use amm_core::registry::{Factory, ModelRequest};
use std::sync::Arc;

/// The model: `(weight, bias)` per layer, the last one giving the logits.
pub struct SwishNet {
    layers: Vec<(Tensor, Tensor)>,
    params: ParamStore,
    input_shape: Vec<usize>,
    classes: usize,
}

/// `z · σ(z)`, with `σ(z) = 1 / (1 + e^{−z})` spelled out in differentiable ops.
fn swish(z: &Tensor) -> Result<Tensor> {
    let sigmoid = (z.neg()?.exp()? + 1.0)?.recip()?;
    z * sigmoid
}

impl SwishNet {
    pub fn new(req: ModelRequest, widths: &[usize]) -> Result<Self> {
        let mut params = ParamStore::new();
        let mut pb = ParamBuilder::new(&mut params, req.rng, req.dtype, req.device);
        let mut d: usize = req.input_shape.iter().product();
        let mut layers = Vec::new();
        for (i, &w) in widths.iter().chain(std::iter::once(&req.classes)).enumerate() {
            let mut p = pb.pp(format!("fc{}", i + 1));
            layers.push((p.kaiming("weight", &[w, d], d)?, p.zeros("bias", &[w])?));
            d = w;
        }
        Ok(Self { layers, params, input_shape: req.input_shape.to_vec(), classes: req.classes })
    }
}

impl Model for SwishNet {
    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Forward> {
        let mut h = x.flatten_from(1)?;
        let last = self.layers.len() - 1;
        for (i, (w, b)) in self.layers.iter().enumerate() {
            h = h.matmul(&w.t()?)?.broadcast_add(b)?;
            if i < last {
                h = swish(&h)?;
            }
        }
        // `input` and `ctx` let the autograd fallback replay this forward at new points.
        Ok(Forward { input: x.clone(), logits: h, saved: Saved::None, ctx: ctx.clone() })
    }

    /// No explicit VJP: amm falls back to candle's double backward.
    fn input_vjp(&self, _fwd: &Forward, _v: &Tensor, _rows: &Rows) -> Result<Option<Tensor>> {
        Ok(None)
    }

    fn params(&self) -> &ParamStore {
        &self.params
    }
    fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }
    fn classes(&self) -> usize {
        self.classes
    }
    fn describe(&self) -> String {
        let dims: Vec<String> = self.layers.iter().map(|(w, _)| w.dims()[0].to_string()).collect();
        format!("swishnet({} -> {})", self.input_shape.iter().product::<usize>(), dims.join(" -> "))
    }
}

/// Registers `swishnet`.
pub fn register(r: &mut Registrar) -> anyhow::Result<()> {
    r.register(
        Schema::new(
            Kind::Model,
            "swishnet",
            vec![ParamSpec::optional(
                "widths",
                ParamType::IntList,
                Value::List(vec![Value::Int(64), Value::Int(64)]),
                "hidden layer widths",
            )],
            "swish MLP without an input VJP: trained through candle's double backward (plugin example, plugins/swish-net)",
        ),
        Factory::Model(Arc::new(|req: ModelRequest| {
            let widths = req.args.usize_list("widths").map_err(anyhow::Error::msg)?;
            Ok(Box::new(SwishNet::new(req, &widths)?) as Box<dyn Model>)
        })),
    )
}

amm_core::declare_plugin!(register);
