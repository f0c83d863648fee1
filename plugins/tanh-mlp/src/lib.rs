//! # tanh-mlp: an amm plugin model with its own input VJP
//!
//! Registers the model `tanhmlp(width=64, depth=2, residual=true)`:
//!
//! ```text
//! x ─ flatten ─ linear(d→width) ─ tanh ─┬─[block]─ … ─[block]─ linear(width→classes) ─ logits
//! block:  h ↦ h + tanh(W h + b)   (or tanh(W h + b) with residual=false)
//! ```
//!
//! amm's margin proxies need `vᵀ ∂logits/∂x` for several cotangent rows per sample, and the
//! training loss differentiates *through* it into the weights. [`Model::input_vjp`] therefore
//! writes the reverse pass by hand, in ordinary candle ops, so that candle's ordinary first-order
//! `backward()` of the loss yields the second-order terms (fast, no double backward). The tanh
//! derivatives `1 − a²` the forward saves stay in the graph, so those terms are exact;
//! `amm gradcheck --plugin … --model tanhmlp` checks this against finite differences.
//!
//! Build and use (docs/PLUGINS.md):
//! ```text
//! cargo build --release -p tanh-mlp
//! amm plugins list --plugin target/release/libtanh_mlp.so
//! amm train --plugin target/release/libtanh_mlp.so --model 'tanhmlp(width=128)' --data digits
//! ```
use amm_core::anyhow;
use amm_core::candle_core::{Result, Tensor};
use amm_core::dsl::{Args, Kind, ParamSpec, ParamType, Schema, Value};
use amm_core::layer::{Ctx, Rows, Saved};
use amm_core::model::{Forward, Model};
use amm_core::params::{ParamBuilder, ParamStore};
use amm_core::plugin::Registrar;
use amm_core::registry::{Factory, ModelRequest};
use std::sync::Arc;

/// A dense layer `y = x Wᵀ + b`.
struct Dense {
    w: Tensor,
    b: Tensor,
}

impl Dense {
    /// Normal weights with variance `gain / fan_in`, zero bias, named `name.weight`/`name.bias`.
    fn new(pb: &mut ParamBuilder, name: &str, fan_in: usize, fan_out: usize, gain: f64) -> Result<Self> {
        let mut pb = pb.pp(name);
        // `kaiming` draws N(0, 2 / fan): pass the fan that gives variance gain / fan_in.
        let fan = ((2.0 * fan_in as f64) / gain).round().max(1.0) as usize;
        Ok(Self { w: pb.kaiming("weight", &[fan_out, fan_in], fan)?, b: pb.zeros("bias", &[fan_out])? })
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.matmul(&self.w.t()?)?.broadcast_add(&self.b)
    }
    /// The input VJP of the layer: `v W`.
    fn vjp(&self, v: &Tensor) -> Result<Tensor> {
        v.matmul(&self.w)
    }
}

/// The model.
pub struct TanhMlp {
    input: Dense,
    blocks: Vec<Dense>,
    output: Dense,
    residual: bool,
    params: ParamStore,
    input_shape: Vec<usize>,
    classes: usize,
}

impl TanhMlp {
    pub fn new(req: ModelRequest, width: usize, depth: usize, residual: bool) -> Result<Self> {
        let d: usize = req.input_shape.iter().product();
        let mut params = ParamStore::new();
        let mut pb = ParamBuilder::new(&mut params, req.rng, req.dtype, req.device);
        let input = Dense::new(&mut pb, "fc_in", d, width, 1.0)?;
        // Residual branches start small so that depth does not blow the activations up.
        let gain = if residual { 1.0 / depth.max(1) as f64 } else { 1.0 };
        let blocks = (0..depth.saturating_sub(1))
            .map(|i| Dense::new(&mut pb, &format!("block{}", i + 1), width, width, gain))
            .collect::<Result<_>>()?;
        let output = Dense::new(&mut pb, "fc_out", width, req.classes, 1.0)?;
        Ok(Self { input, blocks, output, residual, params, input_shape: req.input_shape.to_vec(), classes: req.classes })
    }
}

impl Model for TanhMlp {
    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Forward> {
        // Saved: the derivative 1 − a² of every tanh, in order.
        let mut derivs = Vec::with_capacity(self.blocks.len() + 1);
        let a = self.input.forward(&x.flatten_from(1)?)?.tanh()?;
        derivs.push((1.0 - a.sqr()?)?);
        let mut h = a;
        for block in &self.blocks {
            let a = block.forward(&h)?.tanh()?;
            derivs.push((1.0 - a.sqr()?)?);
            h = if self.residual { (h + a)? } else { a };
        }
        let logits = self.output.forward(&h)?;
        Ok(Forward { input: x.clone(), logits, saved: Saved::Tensors(derivs), ctx: ctx.clone() })
    }

    fn input_vjp(&self, fwd: &Forward, v: &Tensor, rows: &Rows) -> Result<Option<Tensor>> {
        let Saved::Tensors(derivs) = &fwd.saved else {
            return Err(amm_core::candle_core::Error::Msg("tanhmlp: input_vjp got a foreign forward".into()));
        };
        // Row r of v belongs to sample rows.index[r]: gather the per-sample factors to rows.
        let mut g = self.output.vjp(v)?;
        for (block, d) in self.blocks.iter().zip(&derivs[1..]).rev() {
            let through = block.vjp(&(&g * rows.gather(d)?)?)?;
            g = if self.residual { (g + through)? } else { through };
        }
        let g = self.input.vjp(&(&g * rows.gather(&derivs[0])?)?)?;
        let mut shape = vec![g.dim(0)?];
        shape.extend_from_slice(&self.input_shape);
        Ok(Some(g.reshape(shape)?))
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
        let (w, d) = self.input.w.dims2().unwrap_or((0, 0));
        format!("tanhmlp({d}->{w}, {} blocks{}, ->{})", self.blocks.len(), if self.residual { " residual" } else { "" }, self.classes)
    }
}

fn arg<T>(r: std::result::Result<T, String>) -> anyhow::Result<T> {
    r.map_err(anyhow::Error::msg)
}

/// Registers `tanhmlp` (called by amm after the version handshake).
pub fn register(r: &mut Registrar) -> anyhow::Result<()> {
    r.register(
        Schema::new(
            Kind::Model,
            "tanhmlp",
            vec![
                ParamSpec::optional("width", ParamType::int_min(1), Value::Int(64), "hidden width"),
                ParamSpec::optional("depth", ParamType::int_min(1), Value::Int(2), "number of tanh layers"),
                ParamSpec::optional("residual", ParamType::Bool, Value::Bool(true), "skip connections around the hidden blocks"),
            ],
            "residual tanh MLP with a hand-written input VJP (plugin example, plugins/tanh-mlp)",
        ),
        Factory::Model(Arc::new(|req: ModelRequest| {
            let a: &Args = req.args;
            let (width, depth, residual) = (arg(a.usize("width"))?, arg(a.usize("depth"))?, arg(a.bool("residual"))?);
            Ok(Box::new(TanhMlp::new(req, width, depth, residual)?) as Box<dyn Model>)
        })),
    )
}

amm_core::declare_plugin!(register);

#[cfg(test)]
mod tests {
    use super::*;
    use amm_core::candle_core::{DType, Device, Var};
    use amm_core::data::Rng;

    /// The hand-written VJP equals candle's autograd gradient of vᵀ logits.
    #[test]
    fn vjp_matches_autograd() {
        let shape = [2usize, 3];
        let (mut init, mut rng) = (Rng::new(1), Rng::new(3));
        let args = amm_core::dsl::Args::default();
        let req = ModelRequest { input_shape: &shape, classes: 4, args: &args, rng: &mut init, dtype: DType::F64, device: &Device::Cpu };
        let model = TanhMlp::new(req, 7, 3, true).unwrap();
        let xs: Vec<f64> = (0..5 * 6).map(|_| rng.normal()).collect();
        let x = Var::from_tensor(&Tensor::from_vec(xs, (5, 2, 3), &Device::Cpu).unwrap()).unwrap();
        let vs: Vec<f64> = (0..5 * 4).map(|_| rng.normal()).collect();
        let v = Tensor::from_vec(vs, (5, 4), &Device::Cpu).unwrap();
        let fwd = model.forward(x.as_tensor(), &Ctx::eval(5)).unwrap();
        let rows = Rows::new(&[0, 1, 2, 3, 4], 5, &Device::Cpu).unwrap();
        let mine = model.input_vjp(&fwd, &v, &rows).unwrap().unwrap();
        let grads = (fwd.logits * &v).unwrap().sum_all().unwrap().backward().unwrap();
        let auto = grads.get(x.as_tensor()).unwrap();
        let diff = (mine - auto).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
        assert!(diff < 1e-12, "max |explicit − autograd| = {diff}");
    }
}
