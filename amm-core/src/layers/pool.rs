//! Pooling with kernel = stride (`k × k` windows that do not overlap), and global average pooling.
//!
//! Why not candle's `max_pool2d`: its backward is wrong even at first order (it gives each
//! maximum 1/k² of the gradient, ../shared/notes/candle.md), and neither candle pooling has a
//! backward for overlapping windows. amm pools through `reshape`, so the forward, its autograd and
//! the hand-written VJP are exact and agree. Like PyTorch, a border that does not fill a whole
//! window (H or W not a multiple of k) is dropped; the VJP gives it a zero gradient.
use crate::kernels;
use crate::layer::{Ctx, Layer, Rows, Saved};
use candle_core::{Result, Tensor};

fn pool_dims(x: &Tensor, k: usize, what: &str) -> Result<(usize, usize, usize, usize, usize, usize)> {
    let (n, c, h, w) = x.dims4()?;
    if k == 0 || h < k || w < k {
        return Err(candle_core::Error::Msg(format!("{what}: a {h}x{w} input is smaller than the {k}x{k} window")));
    }
    Ok((n, c, h, w, h / k, w / k))
}

/// `x` cut to whole windows: `(N, C, Ho·k, Wo·k)`.
fn crop(x: &Tensor, ho: usize, wo: usize, k: usize) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let x = if h != ho * k { x.narrow(2, 0, ho * k)? } else { x.clone() };
    if w != wo * k {
        x.narrow(3, 0, wo * k)
    } else {
        Ok(x)
    }
}

/// `(R, C, Ho·k, Wo·k)` zero-padded at the bottom and right to `(R, C, h, w)`.
fn uncrop(t: Tensor, h: usize, w: usize) -> Result<Tensor> {
    let (_, _, th, tw) = t.dims4()?;
    let t = if th != h { t.pad_with_zeros(2, 0, h - th)? } else { t };
    if tw != w {
        t.pad_with_zeros(3, 0, w - tw)
    } else {
        Ok(t)
    }
}

/// Max pooling over `k × k` windows with stride `k`.
#[derive(Clone, Copy, Debug)]
pub struct MaxPool2d {
    k: usize,
}

impl MaxPool2d {
    pub fn new(k: usize) -> Self {
        Self { k }
    }

    /// The pooling made of candle's ops (other devices and dtypes): the output is
    /// `Σ window · mask`, with `mask` the constant one-hot of each window's first maximum, so
    /// autograd of the forward routes gradients exactly as the VJP does. Public so that tests
    /// compare it with the CPU kernels.
    pub fn forward_candle(&self, x: &Tensor) -> Result<(Tensor, Saved)> {
        let k = self.k;
        let (n, c, h, w, ho, wo) = pool_dims(x, k, "maxpool")?;
        // (N, C, Ho, k, Wo, k) -> (N, C, Ho, Wo, k·k): one window per last axis.
        let win = crop(x, ho, wo, k)?.reshape((n, c, ho, k, wo, k))?.permute((0, 1, 2, 4, 3, 5))?.reshape((n, c, ho, wo, k * k))?;
        let first = win.argmax_keepdim(4)?;
        let slots = Tensor::arange(0u32, (k * k) as u32, x.device())?;
        let mask = first.broadcast_eq(&slots)?.to_dtype(x.dtype())?;
        let y = (win * &mask)?.sum(4)?;
        Ok((y, Saved::Seq(vec![Saved::Factor(mask), Saved::Shape(vec![n, c, h, w])])))
    }
}

impl Layer for MaxPool2d {
    /// On the CPU: [`kernels::pool_gather`] of `x` at its windows' maxima
    /// ([`kernels::pool_argmax`]), saving those positions (a byte per output) for the VJP.
    fn forward(&self, x: &Tensor, _ctx: &Ctx) -> Result<(Tensor, Saved)> {
        if kernels::pool_fits(x, self.k) {
            let (_, _, h, w, _, _) = pool_dims(x, self.k, "maxpool")?;
            let at = kernels::pool_argmax(x, self.k)?;
            let y = kernels::pool_gather(x, &at, self.k)?;
            return Ok((y, Saved::Seq(vec![Saved::Tensors(vec![at]), Saved::Shape(vec![h, w])])));
        }
        self.forward_candle(x)
    }
    fn vjp(&self, saved: &Saved, v: &Tensor, rows: &Rows) -> Result<Tensor> {
        if let Saved::Seq(s) = saved {
            if let [Saved::Tensors(at), Saved::Shape(hw)] = s.as_slice() {
                if let ([at], [h, w]) = (at.as_slice(), hw.as_slice()) {
                    return kernels::pool_scatter(v, &rows.gather(at)?, self.k, (*h, *w));
                }
            }
        }
        let Saved::Seq(s) = saved else {
            return Err(candle_core::Error::Msg("maxpool: vjp without its saved mask".into()));
        };
        let (Some(Saved::Factor(mask)), Some(Saved::Shape(dims))) = (s.first(), s.get(1)) else {
            return Err(candle_core::Error::Msg("maxpool: vjp without its saved mask".into()));
        };
        let k = self.k;
        let (r, c, ho, wo) = v.dims4()?;
        let d = v.unsqueeze(4)?.broadcast_mul(&rows.gather(mask)?)?;
        let d = d.reshape((r, c, ho, wo, k, k))?.permute((0, 1, 2, 4, 3, 5))?.reshape((r, c, ho * k, wo * k))?;
        uncrop(d, dims[2], dims[3])
    }
    /// No parameters: the default backward, its VJP.
    fn has_train_backward(&self) -> bool {
        true
    }
    fn describe(&self) -> String {
        format!("maxpool({})", self.k)
    }
    fn graph(&self) -> Option<crate::export::Node> {
        Some(crate::export::Node::MaxPool { k: self.k })
    }
}

/// Average pooling over `k × k` windows with stride `k`.
#[derive(Clone, Copy, Debug)]
pub struct AvgPool2d {
    k: usize,
}

impl AvgPool2d {
    pub fn new(k: usize) -> Self {
        Self { k }
    }
}

impl Layer for AvgPool2d {
    fn forward(&self, x: &Tensor, _ctx: &Ctx) -> Result<(Tensor, Saved)> {
        let k = self.k;
        let (n, c, h, w, ho, wo) = pool_dims(x, k, "avgpool")?;
        let y = (crop(x, ho, wo, k)?.reshape((n, c, ho, k, wo, k))?.sum(5)?.sum(3)? / (k * k) as f64)?;
        Ok((y, Saved::Shape(vec![n, c, h, w])))
    }
    fn vjp(&self, saved: &Saved, v: &Tensor, _rows: &Rows) -> Result<Tensor> {
        let Saved::Shape(dims) = saved else {
            return Err(candle_core::Error::Msg("avgpool: vjp without its saved shape".into()));
        };
        let k = self.k;
        let (r, c, ho, wo) = v.dims4()?;
        let d = (v / (k * k) as f64)?.reshape((r, c, ho, 1, wo, 1))?.broadcast_as((r, c, ho, k, wo, k))?.reshape((r, c, ho * k, wo * k))?;
        uncrop(d, dims[2], dims[3])
    }
    /// No parameters: the default backward, its VJP.
    fn has_train_backward(&self) -> bool {
        true
    }
    fn describe(&self) -> String {
        format!("avgpool({})", self.k)
    }
    fn graph(&self) -> Option<crate::export::Node> {
        Some(crate::export::Node::AvgPool { k: self.k })
    }
}

/// The mean over all spatial positions: `(N, C, H, W) -> (N, C)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct GlobalAvgPool;

impl Layer for GlobalAvgPool {
    fn forward(&self, x: &Tensor, _ctx: &Ctx) -> Result<(Tensor, Saved)> {
        let dims = x.dims().to_vec();
        Ok((x.flatten_from(2)?.mean(2)?, Saved::Shape(dims)))
    }
    fn vjp(&self, saved: &Saved, v: &Tensor, _rows: &Rows) -> Result<Tensor> {
        let Saved::Shape(dims) = saved else {
            return Err(candle_core::Error::Msg("global avgpool: vjp without its saved shape".into()));
        };
        let (r, c) = v.dims2()?;
        let mut shape = dims.clone();
        shape[0] = r;
        let spatial: usize = dims[2..].iter().product();
        let mut ones = vec![r, c];
        ones.resize(dims.len(), 1);
        (v / spatial as f64)?.reshape(ones)?.broadcast_as(shape)?.contiguous()
    }
    /// No parameters: the default backward, its VJP.
    fn has_train_backward(&self) -> bool {
        true
    }
    fn describe(&self) -> String {
        "global-avgpool".into()
    }
    fn graph(&self) -> Option<crate::export::Node> {
        Some(crate::export::Node::GlobalAvgPool)
    }
}
