//! 2-D convolution (`weight (out, in/groups, kh, kw)`, optional per-channel bias).
//!
//! On the CPU (groups 1) the forward and the input VJP are amm's convolution kernels
//! ([`crate::kernels::conv2d`], im2col + GEMM in both directions, closed under differentiation).
//! Elsewhere the input VJP is the transposed convolution with the same kernel, written as an
//! ordinary candle op so that the loss differentiates through it into the kernel. Two equivalent
//! forms are used (both checked against autograd and finite differences in the tests):
//! - stride 1 with a square kernel and `padding < k`: a plain `conv2d` of the cotangent with the
//!   flipped, channel-transposed kernel and padding `k − 1 − padding`. candle runs `conv2d` as
//!   im2col + GEMM, much faster on the CPU than its direct-loop `conv_transpose2d`, and it takes
//!   groups natively.
//! - otherwise: `conv_transpose2d` with the `output_padding` that restores the input's exact
//!   spatial size (the forward floors `(H + 2p − k) / s`). candle's `conv_transpose2d` has no
//!   groups argument, so grouped kernels are split with `narrow` and the results joined with `cat`.
use crate::backward::ParamGrads;
use crate::kernels;
use crate::layer::{Ctx, Layer, Mode, Rows, Saved};
use crate::params::ParamBuilder;
use candle_core::{Result, Tensor};

/// Stride, zero padding, groups and bias of a [`Conv2d`] made by [`conv2d`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvConfig {
    pub stride: usize,
    pub padding: usize,
    pub groups: usize,
    /// A zero-initialised per-channel bias (convolutions followed by a normalisation need none).
    pub bias: bool,
}

impl Default for ConvConfig {
    fn default() -> Self {
        Self { stride: 1, padding: 0, groups: 1, bias: true }
    }
}

impl ConvConfig {
    /// Stride 1, no groups, with bias, and the given padding.
    pub fn pad(padding: usize) -> Self {
        Self { padding, ..Self::default() }
    }
    pub fn stride(self, stride: usize) -> Self {
        Self { stride, ..self }
    }
    pub fn groups(self, groups: usize) -> Self {
        Self { groups, ..self }
    }
    pub fn no_bias(self) -> Self {
        Self { bias: false, ..self }
    }
}

#[derive(Clone, Debug)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    stride: usize,
    padding: usize,
    groups: usize,
}

impl Conv2d {
    pub fn new(weight: Tensor, bias: Option<Tensor>, stride: usize, padding: usize, groups: usize) -> Self {
        Self { weight, bias, stride, padding, groups }
    }
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
    /// The spatial output size for an input of `h × w`, or `None` if the kernel does not fit.
    pub fn output_size(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let (_, _, kh, kw) = self.weight.dims4().ok()?;
        let (hp, wp) = (h + 2 * self.padding, w + 2 * self.padding);
        if hp < kh || wp < kw {
            return None;
        }
        Some(((hp - kh) / self.stride + 1, (wp - kw) / self.stride + 1))
    }

    /// The input VJP for an input of `h × w` made of candle's ops: what runs on other devices
    /// and for grouped kernels (public so that tests compare it with the CPU kernel).
    pub fn vjp_candle(&self, v: &Tensor, h: usize, w: usize) -> Result<Tensor> {
        let (_, _, kh, kw) = self.weight.dims4()?;
        if self.stride == 1 && kh == kw && self.padding < kh {
            self.vjp_flipped(v)
        } else {
            self.vjp_transposed(v, h, w)
        }
    }

    /// VJP as a stride-1 convolution with the flipped, transposed kernel.
    fn vjp_flipped(&self, v: &Tensor) -> Result<Tensor> {
        let (out, in_g, k, _) = self.weight.dims4()?;
        let g = self.groups;
        // (out, in/g, k, k) -> (g, out/g, in/g, k, k) -> (g, in/g, out/g, k, k) -> (in, out/g, k, k)
        let wt = self.weight.reshape((g, out / g, in_g, k, k))?.transpose(1, 2)?.reshape((g * in_g, out / g, k, k))?.flip(&[2, 3])?;
        v.conv2d(&wt, k - 1 - self.padding, 1, 1, g)
    }

    /// VJP as `conv_transpose2d`, one call per group.
    fn vjp_transposed(&self, v: &Tensor, h: usize, w: usize) -> Result<Tensor> {
        let (out, _, kh, kw) = self.weight.dims4()?;
        let (_, _, ho, wo) = v.dims4()?;
        let (s, p) = (self.stride, self.padding);
        // conv_transpose2d gives (ho − 1)·s − 2p + k + output_padding; one output_padding serves
        // both axes, so take the larger and cut the other axis back.
        let op_h = h + 2 * p - ((ho - 1) * s + kh);
        let op_w = w + 2 * p - ((wo - 1) * s + kw);
        let op = op_h.max(op_w);
        let og = out / self.groups;
        let parts = (0..self.groups)
            .map(|gi| {
                let (vg, wg) = if self.groups == 1 {
                    (v.clone(), self.weight.clone())
                } else {
                    (v.narrow(1, gi * og, og)?, self.weight.narrow(0, gi * og, og)?)
                };
                vg.conv_transpose2d(&wg, p, op, s, 1)
            })
            .collect::<Result<Vec<_>>>()?;
        let dx = if parts.len() == 1 { parts.into_iter().next().expect("one group") } else { Tensor::cat(&parts, 1)? };
        let (_, _, dh, dw) = dx.dims4()?;
        let dx = if dh != h { dx.narrow(2, 0, h)? } else { dx };
        if dw != w {
            dx.narrow(3, 0, w)
        } else {
            Ok(dx)
        }
    }
}

/// A `Conv2d` from `in_c` to `out_c` channels with a `k × k` kernel: Kaiming-normal weights
/// (fan_in = in_c/groups·k·k) and, if `cfg.bias`, a zero bias.
pub fn conv2d(in_c: usize, out_c: usize, k: usize, cfg: ConvConfig, pb: &mut ParamBuilder) -> Result<Conv2d> {
    let g = cfg.groups.max(1);
    if !in_c.is_multiple_of(g) || !out_c.is_multiple_of(g) {
        return Err(candle_core::Error::Msg(format!("conv2d: {in_c} -> {out_c} channels cannot be split into {g} groups")));
    }
    let weight = pb.kaiming("weight", &[out_c, in_c / g, k, k], in_c / g * k * k)?;
    let bias = if cfg.bias { Some(pb.zeros("bias", &[out_c])?) } else { None };
    Ok(Conv2d::new(weight, bias, cfg.stride.max(1), cfg.padding, g))
}

impl Layer for Conv2d {
    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<(Tensor, Saved)> {
        if kernels::conv_fits(x, self.groups) {
            let y = kernels::conv2d(x, &self.weight, self.bias.as_ref(), self.stride, self.padding)?;
            let shape = Saved::Shape(x.dims().to_vec());
            if ctx.mode == Mode::Train {
                return Ok((y, Saved::Train(vec![x.clone()], Box::new(shape))));
            }
            return Ok((y, shape));
        }
        let y = x.conv2d(&self.weight, self.padding, self.stride, 1, self.groups)?;
        let y = match &self.bias {
            Some(b) => y.broadcast_add(&b.reshape((1, b.elem_count(), 1, 1))?)?,
            None => y,
        };
        Ok((y, Saved::Shape(x.dims().to_vec())))
    }
    fn vjp(&self, saved: &Saved, v: &Tensor, _rows: &Rows) -> Result<Tensor> {
        let Saved::Shape(dims) = saved.for_vjp() else {
            return Err(candle_core::Error::Msg(format!("{}: vjp without its saved input shape", self.describe())));
        };
        let (h, w) = (dims[2], dims[3]);
        if kernels::conv_fits(v, self.groups) {
            return kernels::conv2d_input_grad(v, &self.weight, (h, w), self.stride, self.padding);
        }
        self.vjp_candle(v, h, w)
    }
    /// On the CPU kernels' path (groups 1, f32 or f64 on the CPU), where the forward keeps its
    /// input.
    fn has_train_backward(&self) -> bool {
        self.groups == 1 && kernels::on_cpu(&self.weight)
    }
    fn train_backward(&self, saved: &Saved, g: &Tensor, input: bool, grads: &mut ParamGrads) -> Result<Option<Tensor>> {
        let [x] = saved.kept("conv")? else {
            return Err(candle_core::Error::Msg(format!("{}: backward without its saved input", self.describe())));
        };
        let (x, w) = (x.detach(), self.weight.detach());
        let (_, _, h, wd) = x.dims4()?;
        let (_, _, kh, kw) = w.dims4()?;
        grads.add(&self.weight, kernels::conv2d_weight_grad(&x, g, (kh, kw), self.stride, self.padding)?)?;
        if let Some(b) = &self.bias {
            grads.add(b, kernels::channel_sum(g)?)?;
        }
        if !input {
            return Ok(None);
        }
        Ok(Some(kernels::conv2d_input_grad(g, &w, (h, wd), self.stride, self.padding)?))
    }
    fn describe(&self) -> String {
        let (o, i, kh, kw) = self.weight.dims4().unwrap_or((0, 0, 0, 0));
        let mut s = format!("conv({}->{o}, {kh}x{kw}", i * self.groups);
        if self.stride != 1 {
            s.push_str(&format!(", stride {}", self.stride));
        }
        if self.padding != 0 {
            s.push_str(&format!(", pad {}", self.padding));
        }
        if self.groups != 1 {
            s.push_str(&format!(", groups {}", self.groups));
        }
        s.push(')');
        s
    }
    fn graph(&self) -> Option<crate::export::Node> {
        Some(crate::export::Node::Conv2d {
            weight: self.weight.clone(),
            bias: self.bias.clone(),
            stride: self.stride,
            padding: self.padding,
            groups: self.groups,
        })
    }
}
