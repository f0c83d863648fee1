//! The DeepFool step (DESIGN.md §1.1): the smallest move, in the attack's p-norm, onto the
//! linearised boundary `g + wᵀr = 0` of the chosen class pair, scaled by `1 + overshoot`. One
//! function for the training proxy (where `w` and `g` stay in the graph, so the loss
//! differentiates through the step) and for the evaluation attack (plain values), with the choice
//! of candidate classes they share.
use super::Norm;
use candle_core::{Result, Tensor};

/// Guards the divisions by ‖w‖.
pub const EPS: f64 = 1e-12;

/// `(1 + overshoot) · |g| / ‖w‖_q^… · …` per row: `w` is `(R, ...)` (one gradient difference per
/// row), `g` `(R,)` the logit gaps; returns `(R, ...)`.
pub fn minimal_step(norm: Norm, overshoot: f64, w: &Tensor, g: &Tensor) -> Result<Tensor> {
    let shape = w.dims().to_vec();
    let wf = w.flatten_from(1)?;
    let scale = 1.0 + overshoot;
    let ag = g.abs()?;
    let s = match norm {
        Norm::L2 => {
            let coef = ((ag / (wf.sqr()?.sum(1)? + EPS)?)? * scale)?;
            wf.broadcast_mul(&coef.unsqueeze(1)?)?
        }
        Norm::Linf => {
            let coef = ((ag / (wf.abs()?.sum(1)? + EPS)?)? * scale)?;
            sign_of(&wf)?.broadcast_mul(&coef.unsqueeze(1)?)?
        }
        Norm::L1 => {
            let d = wf.dim(1)?;
            let idx = wf.abs()?.argmax_keepdim(1)?;
            let cols = Tensor::arange(0u32, d as u32, wf.device())?.unsqueeze(0)?;
            let onehot = cols.broadcast_eq(&idx)?.to_dtype(wf.dtype())?;
            let wj = (&wf * &onehot)?.sum(1)?;
            let coef = ((ag / (wj.abs()? + EPS)?)? * scale)?;
            onehot.broadcast_mul(&(coef * sign_of(&wj)?)?.unsqueeze(1)?)?
        }
    };
    s.reshape(shape)
}

/// The indices of the `k` largest entries of `row`, largest first (ties: the lower index): the
/// candidate classes of DeepFool, by the clean logits.
pub fn top_k(row: &[f64], k: usize) -> Vec<u32> {
    let mut idx: Vec<u32> = (0..row.len() as u32).collect();
    idx.sort_by(|&a, &b| row[b as usize].total_cmp(&row[a as usize]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// ±1 by sign (0 counts as +): a constant, as sign is piecewise constant.
pub fn sign_of(t: &Tensor) -> Result<Tensor> {
    (t.ge(0.0)?.to_dtype(t.dtype())? * 2.0)? - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Hand-computed steps: w = (3, 4), g = −2, overshoot 0.
    #[test]
    fn steps_land_on_the_linearised_boundary() {
        let dev = Device::Cpu;
        let w = Tensor::new(&[[3.0f64, 4.0]], &dev).unwrap();
        let g = Tensor::new(&[-2.0f64], &dev).unwrap();
        let v = |n| minimal_step(n, 0.0, &w, &g).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
        // L2: |g| w / ‖w‖² = 2·(3, 4)/25
        let l2 = v(Norm::L2);
        assert!((l2[0] - 0.24).abs() < 1e-12 && (l2[1] - 0.32).abs() < 1e-12, "{l2:?}");
        // L∞: |g| / ‖w‖₁ · sign(w) = 2/7 each
        let li = v(Norm::Linf);
        assert!(li.iter().all(|x| (x - 2.0 / 7.0).abs() < 1e-12), "{li:?}");
        // L1: all on the largest |w_j| (j = 1): |g| / 4 = 0.5
        let l1 = v(Norm::L1);
        assert!(l1[0] == 0.0 && (l1[1] - 0.5).abs() < 1e-12, "{l1:?}");
        // each step closes the gap: wᵀr = |g|
        for s in [l2, li] {
            assert!((3.0 * s[0] + 4.0 * s[1] - 2.0).abs() < 1e-12);
        }
    }
}
