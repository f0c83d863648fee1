//! Normalisation layers (candle's fused `layer_norm`/`rms_norm` have no backward at all,
//! ../shared/notes/candle.md).
//!
//! - [`GroupNorm`] normalises each sample on its own, so DeepFool's samples stay independent. Its
//!   VJP uses the x̂ and 1/σ of the forward, which stay in the graph: the second-order terms
//!   through the statistics are exact. On the CPU it runs amm's kernels (`kernels::group_norm`,
//!   closed under differentiation), elsewhere the same formulas in candle's ops.
//! - [`BatchNorm2d`] is "frozen" batch norm: the cross-entropy pass (`Mode::Train`) normalises
//!   with the batch statistics and updates the running ones; the attack passes and evaluation use
//!   the running statistics, where the layer is a per-channel affine map.
use crate::backward::ParamGrads;
use crate::kernels;
use crate::layer::{Ctx, Layer, Mode, Rows, Saved};
use crate::params::ParamBuilder;
use candle_core::{Result, Tensor, Var};

/// `(1, C, 1, ...)` for broadcasting a per-channel vector over an input of rank `rank`.
fn channel_shape(c: usize, rank: usize) -> Vec<usize> {
    let mut s = vec![1; rank.max(2)];
    s[1] = c;
    s
}

/// Group normalisation over `(N, C, ...)`: each sample's channels are split into `groups`
/// groups, normalised over the group's elements (eps 1e-5), then scaled by γ and shifted by β
/// per channel.
#[derive(Clone, Debug)]
pub struct GroupNorm {
    groups: usize,
    eps: f64,
    weight: Tensor,
    bias: Tensor,
}

impl GroupNorm {
    pub fn new(groups: usize, weight: Tensor, bias: Tensor) -> Self {
        Self { groups, eps: 1e-5, weight, bias }
    }
}

/// A `GroupNorm` over `channels` channels with γ = 1, β = 0.
pub fn group_norm(groups: usize, channels: usize, pb: &mut ParamBuilder) -> Result<GroupNorm> {
    if groups == 0 || !channels.is_multiple_of(groups) {
        return Err(candle_core::Error::Msg(format!("group norm: {channels} channels cannot be split into {groups} groups")));
    }
    let weight = pb.constant("weight", &[channels], 1.0)?;
    let bias = pb.zeros("bias", &[channels])?;
    Ok(GroupNorm::new(groups, weight, bias))
}

impl GroupNorm {
    /// The forward in candle's ops: what runs on other devices (and the kernels' reference).
    fn forward_candle(&self, x: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let dims = x.dims().to_vec();
        let (n, c) = (dims[0], dims[1]);
        let m = x.elem_count() / (n * self.groups);
        let xg = x.reshape((n, self.groups, m))?;
        let xc = xg.broadcast_sub(&xg.mean_keepdim(2)?)?;
        let inv = (xc.sqr()?.mean_keepdim(2)? + self.eps)?.sqrt()?.recip()?;
        let xhat = xc.broadcast_mul(&inv)?;
        let cs = channel_shape(c, dims.len());
        let y =
            xhat.reshape(dims.as_slice())?.broadcast_mul(&self.weight.reshape(cs.as_slice())?)?.broadcast_add(&self.bias.reshape(cs)?)?;
        Ok((y, xhat, inv))
    }

    /// The input VJP in candle's ops, `xhat` `(R, G, m)` and `inv` `(R, G, 1)`.
    fn vjp_candle(&self, v: &Tensor, xhat: &Tensor, inv: &Tensor) -> Result<Tensor> {
        let dims = v.dims().to_vec();
        let r = dims[0];
        let m = v.elem_count() / (r * self.groups);
        let u = v.broadcast_mul(&self.weight.reshape(channel_shape(dims[1], dims.len()))?)?.reshape((r, self.groups, m))?;
        let mux = (&u * xhat)?.mean_keepdim(2)?;
        let dx = u.broadcast_sub(&u.mean_keepdim(2)?)?.sub(&xhat.broadcast_mul(&mux)?)?.broadcast_mul(inv)?;
        dx.reshape(dims)
    }
}

impl Layer for GroupNorm {
    /// On the CPU: [`kernels::group_normalize`] and [`kernels::channel_affine`], with
    /// [`kernels::group_inv_std`] saved for the VJP outside the cross-entropy pass (nothing
    /// differentiates through that pass's VJP, so it saves nothing).
    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<(Tensor, Saved)> {
        if !kernels::norm_fits(x) {
            let (y, xhat, inv) = self.forward_candle(x)?;
            return Ok((y, Saved::Tensors(vec![xhat, inv])));
        }
        let xhat = kernels::group_normalize(x, self.groups, self.eps)?;
        let y = kernels::channel_affine(&xhat, &self.weight, Some(&self.bias))?;
        if ctx.mode == Mode::Train {
            // No VJP (its statistics cost a pass), but the input and x̂ for the backward.
            return Ok((y, Saved::Train(vec![x.clone(), xhat], Box::new(Saved::None))));
        }
        let inv = kernels::group_inv_std(x, self.groups, self.eps)?;
        Ok((y, Saved::Tensors(vec![xhat, inv])))
    }
    /// dx = (1/σ)·(u − mean_g(u) − x̂·mean_g(u·x̂)) with u = v·γ.
    fn vjp(&self, saved: &Saved, v: &Tensor, rows: &Rows) -> Result<Tensor> {
        let t = match saved.for_vjp() {
            Saved::Tensors(t) => t,
            Saved::None => {
                return Err(candle_core::Error::Msg(
                    "group norm: no input VJP after a Mode::Train forward (it saves nothing); run the attack in Mode::Attack".into(),
                ))
            }
            _ => return Err(candle_core::Error::Msg("group norm: vjp without its saved statistics".into())),
        };
        let [xhat, inv] = t.as_slice() else {
            return Err(candle_core::Error::Msg("group norm: vjp without its saved statistics".into()));
        };
        let (xhat, inv) = (rows.gather(xhat)?, rows.gather(inv)?);
        if inv.rank() == 3 {
            // Saved by the candle-op forward: (N, G, m) and (N, G, 1); the kernels' is (N, G).
            return self.vjp_candle(v, &xhat, &inv);
        }
        let u = kernels::channel_affine(v, &self.weight, None)?;
        kernels::group_norm_vjp(&u, &xhat, &inv, self.groups)
    }
    /// On the CPU kernels' path, where the forward keeps `x` and `x̂`.
    fn has_train_backward(&self) -> bool {
        kernels::on_cpu(&self.weight)
    }
    /// `gγ = Σ g·x̂`, `gβ = Σ g` per channel and `gx` the normalisation's VJP of `γ·g`: what the
    /// kernels' own backward passes compute, fused ([`kernels::group_norm_backward`]).
    fn train_backward(&self, saved: &Saved, g: &Tensor, input: bool, grads: &mut ParamGrads) -> Result<Option<Tensor>> {
        let [x, xhat] = saved.kept("group norm")? else {
            return Err(candle_core::Error::Msg("group norm: backward without its saved input and x̂".into()));
        };
        let (gx, dgamma, dbeta) =
            kernels::group_norm_backward(&x.detach(), &xhat.detach(), g, &self.weight.detach(), self.groups, self.eps)?;
        grads.add(&self.weight, dgamma)?;
        grads.add(&self.bias, dbeta)?;
        Ok(input.then_some(gx))
    }
    fn describe(&self) -> String {
        format!("groupnorm({}, {})", self.groups, self.weight.elem_count())
    }
    fn graph(&self) -> Option<crate::export::Node> {
        Some(crate::export::Node::GroupNorm { groups: self.groups, eps: self.eps, weight: self.weight.clone(), bias: self.bias.clone() })
    }
}

/// "Frozen" batch normalisation over `(N, C, ...)` (eps 1e-5, momentum 0.1).
///
/// `Mode::Train`: normalise with the batch's statistics (biased variance) and update the running
/// statistics in place (unbiased variance, as PyTorch). This pass has no input VJP: the batch
/// statistics couple the samples, and the attack never runs in this mode. `Mode::Attack` and
/// `Mode::Eval`: `y = (x − running_mean)·γ/√(running_var + eps) + β`, whose VJP is `v·γ/√(…)`.
#[derive(Clone, Debug)]
pub struct BatchNorm2d {
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    eps: f64,
    momentum: f64,
}

impl BatchNorm2d {
    pub fn new(weight: Tensor, bias: Tensor, running_mean: Var, running_var: Var) -> Self {
        Self { weight, bias, running_mean, running_var, eps: 1e-5, momentum: 0.1 }
    }
    pub fn running_mean(&self) -> &Tensor {
        self.running_mean.as_tensor()
    }
    pub fn running_var(&self) -> &Tensor {
        self.running_var.as_tensor()
    }

    fn train_forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let c = dims[1];
        let cs = channel_shape(c, dims.len());
        let count = x.elem_count() / c;
        let xt = x.transpose(0, 1)?.reshape((c, count))?;
        let mean = xt.mean_keepdim(1)?;
        let xc = xt.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(1)?;
        let scale = (var.clone() + self.eps)?.sqrt()?.recip()?.broadcast_mul(&self.weight.reshape((c, 1))?)?;
        let y = x.broadcast_sub(&mean.reshape(cs.as_slice())?)?.broadcast_mul(&scale.reshape(cs.as_slice())?)?;
        let y = y.broadcast_add(&self.bias.reshape(cs)?)?;
        let unbiased = if count > 1 { (var.detach() * (count as f64 / (count - 1) as f64))? } else { var.detach() };
        let mo = self.momentum;
        let rm = ((self.running_mean.as_tensor().detach() * (1.0 - mo))? + (mean.detach().flatten_all()? * mo)?)?;
        let rv = ((self.running_var.as_tensor().detach() * (1.0 - mo))? + (unbiased.flatten_all()? * mo)?)?;
        self.running_mean.set(&rm)?;
        self.running_var.set(&rv)?;
        Ok(y)
    }
}

/// A frozen `BatchNorm2d` over `channels` channels: γ = 1, β = 0, running mean 0 and variance 1
/// (buffers `running_mean`, `running_var`).
pub fn batch_norm2d(channels: usize, pb: &mut ParamBuilder) -> Result<BatchNorm2d> {
    let weight = pb.constant("weight", &[channels], 1.0)?;
    let bias = pb.zeros("bias", &[channels])?;
    let running_mean = pb.buffer("running_mean", &[channels], 0.0)?;
    let running_var = pb.buffer("running_var", &[channels], 1.0)?;
    Ok(BatchNorm2d::new(weight, bias, running_mean, running_var))
}

impl Layer for BatchNorm2d {
    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<(Tensor, Saved)> {
        if ctx.mode == Mode::Train {
            return Ok((self.train_forward(x)?, Saved::None));
        }
        let dims = x.dims();
        let cs = channel_shape(dims[1], dims.len());
        // The buffers are detached: they are state, not parameters (the values are read now;
        // candle is eager, so a later in-place update cannot reach this graph).
        let scale = (self.running_var.as_tensor().detach() + self.eps)?.sqrt()?.recip()?.mul(&self.weight)?.reshape(cs.as_slice())?;
        let mean = self.running_mean.as_tensor().detach().reshape(cs.as_slice())?;
        let y = x.broadcast_sub(&mean)?.broadcast_mul(&scale)?.broadcast_add(&self.bias.reshape(cs)?)?;
        Ok((y, Saved::Tensors(vec![scale])))
    }
    fn vjp(&self, saved: &Saved, v: &Tensor, _rows: &Rows) -> Result<Tensor> {
        match saved {
            Saved::Tensors(t) if t.len() == 1 => v.broadcast_mul(&t[0]),
            Saved::None => Err(candle_core::Error::Msg(
                "batchnorm: no input VJP after a Mode::Train forward (batch statistics couple the samples); run the attack in Mode::Attack"
                    .into(),
            )),
            other => Err(candle_core::Error::Msg(format!("batchnorm: vjp got {other:?} instead of its saved scale"))),
        }
    }
    fn describe(&self) -> String {
        format!("batchnorm({}, frozen)", self.weight.elem_count())
    }
    fn graph(&self) -> Option<crate::export::Node> {
        Some(crate::export::Node::BatchNorm {
            eps: self.eps,
            weight: self.weight.clone(),
            bias: self.bias.clone(),
            mean: self.running_mean.as_tensor().clone(),
            var: self.running_var.as_tensor().clone(),
        })
    }
}
