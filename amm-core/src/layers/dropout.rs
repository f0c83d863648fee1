//! Dropout whose mask is drawn once per training step from amm's seeded RNG and reused by every
//! pass of that step: the attack must see the very network the cross-entropy saw.
use crate::data::Rng;
use crate::layer::{saved_factor, Ctx, Layer, Mode, Rows, Saved};
use candle_core::{Result, Tensor};

#[derive(Clone, Debug)]
pub struct Dropout {
    p: f64,
    /// Distinguishes the masks of several dropout layers within one step.
    id: u64,
}

impl Dropout {
    pub fn new(p: f64, id: u64) -> Self {
        Self { p, id }
    }
    /// The mask of the whole step batch for `ctx`, restricted to `ctx.samples`, scaled by 1/(1-p).
    fn mask(&self, ctx: &Ctx, shape: &[usize], x: &Tensor) -> Result<Tensor> {
        let per: usize = shape[1..].iter().product();
        let mut rng = Rng::new(ctx.step_seed).fork(0xd80_0000 + self.id);
        let keep = 1.0 / (1.0 - self.p);
        let full: Vec<f64> = (0..ctx.batch * per).map(|_| if rng.uniform() < self.p { 0.0 } else { keep }).collect();
        let rows: Vec<&[f64]> = match &ctx.samples {
            None => full.chunks(per).take(shape[0]).collect(),
            Some(s) => s.iter().map(|&i| &full[i as usize * per..(i as usize + 1) * per]).collect(),
        };
        let flat: Vec<f64> = rows.concat();
        Tensor::from_vec(flat, shape, x.device())?.to_dtype(x.dtype())
    }
}

impl Layer for Dropout {
    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<(Tensor, Saved)> {
        if ctx.mode == Mode::Eval || self.p == 0.0 {
            let ones = Tensor::ones_like(x)?;
            return Ok((x.clone(), Saved::Factor(ones)));
        }
        let m = self.mask(ctx, x.dims(), x)?;
        Ok((x.mul(&m)?, Saved::Factor(m)))
    }
    fn vjp(&self, saved: &Saved, v: &Tensor, rows: &Rows) -> Result<Tensor> {
        v.mul(&rows.gather(&saved_factor(saved, "dropout")?)?)
    }
    /// No parameters: the default backward, its VJP.
    fn has_train_backward(&self) -> bool {
        true
    }
    fn describe(&self) -> String {
        format!("dropout({})", self.p)
    }
    fn graph(&self) -> Option<crate::export::Node> {
        Some(crate::export::Node::Identity)
    }
}
