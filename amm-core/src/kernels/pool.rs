//! Max pooling over non-overlapping `k × k` windows as two kernels, adjoint to each other:
//! `pool_gather(t, x)` takes, in each window, the entry of `t` where `x` has its first maximum;
//! `pool_scatter(g, x)` puts each `g` back at that place (zeros elsewhere, the cropped border
//! included). The max pool is `pool_gather(x, x)` with the second `x` constant: the choice of the
//! maximum is piecewise constant, so the gradients of each kernel are the other one.
//!
//! The reshape-based pooling in `layers/pool.rs` (what runs elsewhere) costs a window permute, an
//! argmax, a comparison, a conversion, a product and a sum in every forward, and its backward as
//! many full-size tensors.
use super::{on_cpu, slice, Store};
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

/// Whether the kernels take `x` (4-D, f32 or f64, on the CPU).
pub fn pool_fits(x: &Tensor) -> bool {
    on_cpu(x) && x.rank() == 4
}

/// `(N, C, H, W)` → `(N, C, H/k, W/k)`: per window, `t` at the first maximum of `x`.
pub fn pool_gather(t: &Tensor, x: &Tensor, k: usize) -> Result<Tensor> {
    t.contiguous()?.apply_op2(&x.detach().contiguous()?, Gather { k })
}

/// `(N, C, H/k, W/k)` → `(N, C, H, W)`: each `g` at its window's first maximum of `x`.
pub fn pool_scatter(g: &Tensor, x: &Tensor, k: usize) -> Result<Tensor> {
    g.contiguous()?.apply_op2(&x.detach().contiguous()?, Scatter { k })
}

/// Calls `f(window, flat index of its first maximum)` for every window of one `h × w` plane.
fn windows<T: PartialOrd + Copy>(x: &[T], h: usize, w: usize, k: usize, mut f: impl FnMut(usize, usize)) {
    if k == 2 {
        return windows2(x, h, w, f);
    }
    let wo = w / k;
    for i in 0..h / k {
        // The k input rows of this row of windows.
        let band = &x[i * k * w..(i + 1) * k * w];
        for j in 0..wo {
            let (mut best, mut top) = (j * k, band[j * k]);
            for a in 0..k {
                let start = a * w + j * k;
                for (b, &v) in band[start..start + k].iter().enumerate() {
                    if v > top {
                        (best, top) = (start + b, v);
                    }
                }
            }
            f(i * wo + j, i * k * w + best);
        }
    }
}

/// [`windows`] for `k = 2`, the pooling of every built-in CNN: the choices of a line of windows
/// are computed first, branch-free (so that they vectorise), then handed to `f` (the generic
/// loops over each window cost 9% of a ConvNet step).
fn windows2<T: PartialOrd + Copy>(x: &[T], h: usize, w: usize, mut f: impl FnMut(usize, usize)) {
    let wo = w / 2;
    let mut pick = vec![0u8; wo];
    for i in 0..h / 2 {
        let (r0, r1) = (&x[2 * i * w..][..w], &x[(2 * i + 1) * w..][..w]);
        for (j, p) in pick.iter_mut().enumerate() {
            // The first maximum in the order of `windows`: the upper row, then the lower one.
            let (a, b, c, d) = (r0[2 * j], r0[2 * j + 1], r1[2 * j], r1[2 * j + 1]);
            let (m, at) = if b > a { (b, 1u8) } else { (a, 0) };
            let (m, at) = if c > m { (c, 2) } else { (m, at) };
            *p = if d > m { 3 } else { at };
        }
        for (j, &p) in pick.iter().enumerate() {
            let p = p as usize;
            f(i * wo + j, 2 * i * w + (p >> 1) * w + 2 * j + (p & 1));
        }
    }
}

fn dims(l: &Layout, k: usize, kernel: &str) -> Result<[usize; 4]> {
    let (n, c, h, w) = l.shape().dims4()?;
    if k == 0 || h < k || w < k {
        candle_core::bail!("{kernel}: a {h}x{w} input is smaller than the {k}x{k} window");
    }
    Ok([n, c, h, w])
}

struct Gather {
    k: usize,
}

impl CustomOp2 for Gather {
    fn name(&self) -> &'static str {
        "pool-gather"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        fn run<T: Store + PartialOrd>(t: &[T], x: &[T], [n, c, h, w]: [usize; 4], k: usize) -> Vec<T> {
            use rayon::prelude::*;
            let per = (h / k) * (w / k);
            // SAFETY: `windows` visits every window of every plane, and each writes its entry.
            let mut y = unsafe { super::uninit(n * c * per) };
            y.par_chunks_mut(per).zip(t.par_chunks(h * w).zip(x.par_chunks(h * w))).for_each(|(y, (t, x))| {
                windows(x, h, w, k, |o, at| y[o] = t[at]);
            });
            y
        }
        let (name, k) = (self.name(), self.k);
        let d = dims(l2, k, name)?;
        if l1.dims() != d {
            candle_core::bail!("{name}: values of shape {:?} for an input of shape {d:?}", l1.dims());
        }
        let y = typed!(name, (s1, s2), |t, x| run(slice(t, l1, name)?, slice(x, l2, name)?, d, k));
        Ok((y, (d[0], d[1], d[2] / k, d[3] / k).into()))
    }
    fn bwd(&self, _t: &Tensor, x: &Tensor, _y: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(pool_scatter(g, x, self.k)?), None))
    }
}

struct Scatter {
    k: usize,
}

impl CustomOp2 for Scatter {
    fn name(&self) -> &'static str {
        "pool-scatter"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        fn run<T: Store + PartialOrd>(g: &[T], x: &[T], [_, _, h, w]: [usize; 4], k: usize) -> Vec<T> {
            use rayon::prelude::*;
            let per = (h / k) * (w / k);
            // SAFETY: each plane is zero-filled before anything reads or scatters into it.
            let mut out = unsafe { super::uninit(x.len()) };
            out.par_chunks_mut(h * w).zip(g.par_chunks(per).zip(x.par_chunks(h * w))).for_each(|(out, (g, x))| {
                // Zeroed a plane at a time, so that the scatter lands in cache (one pass over
                // the output where a zero-filled allocation made two).
                out.fill(T::default());
                windows(x, h, w, k, |o, at| out[at] = g[o]);
            });
            out
        }
        let (name, k) = (self.name(), self.k);
        let d = dims(l2, k, name)?;
        if l1.dims() != [d[0], d[1], d[2] / k, d[3] / k] {
            candle_core::bail!("{name}: a cotangent of shape {:?} for an input of shape {d:?}", l1.dims());
        }
        let out = typed!(name, (s1, s2), |g, x| run(slice(g, l1, name)?, slice(x, l2, name)?, d, k));
        Ok((out, (d[0], d[1], d[2], d[3]).into()))
    }
    fn bwd(&self, _g: &Tensor, x: &Tensor, _out: &Tensor, gg: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(pool_gather(gg, x, self.k)?), None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autograd::second_order_available;
    use crate::kernels::assert_close;
    use crate::layer::{Ctx, Layer, Rows};
    use crate::layers::MaxPool2d;
    use candle_core::{Device, Var};

    /// Values, first- and second-order gradients and the layer's VJP equal the reshape-based
    /// pooling made of candle's ops, with ties (the first maximum wins) and a cropped border.
    #[test]
    fn kernels_match_the_candle_pooling_to_second_order() {
        assert!(second_order_available().unwrap(), "run the tests through cargo (.cargo/config.toml sets CANDLE_GRAD_DO_NOT_DETACH)");
        let dev = Device::Cpu;
        for (k, shape) in [(2, [2, 3, 4, 6]), (2, [1, 2, 5, 7]), (3, [2, 1, 7, 6])] {
            let mut v: Vec<f64> = Tensor::randn(0f64, 1.0, &shape, &dev).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            // Ties inside the first window of each plane.
            let (h, w) = (shape[2], shape[3]);
            for p in 0..shape[0] * shape[1] {
                v[p * h * w + 1] = v[p * h * w];
                v[p * h * w + w] = v[p * h * w];
            }
            let x = Var::from_tensor(&Tensor::from_vec(v, &shape, &dev).unwrap()).unwrap();
            let pool = MaxPool2d::new(k);
            let what = format!("k={k} {shape:?}");
            let ours = pool_gather(x.as_tensor(), x.as_tensor(), k).unwrap();
            let (theirs, saved) = pool.forward_candle(x.as_tensor()).unwrap();
            assert_close(&ours, &theirs, &what);
            let r = Tensor::randn(0f64, 1.0, ours.shape(), &dev).unwrap();
            let loss = |y: &Tensor| -> Tensor {
                let l = (y.powf(3.0).unwrap() * &r).unwrap().sum_all().unwrap();
                let g = l.backward().unwrap().get(x.as_tensor()).unwrap().clone();
                (l + g.sqr().unwrap().sum_all().unwrap()).unwrap()
            };
            let (a, b) = (loss(&ours).backward().unwrap(), loss(&theirs).backward().unwrap());
            assert_close(a.get(x.as_tensor()).unwrap(), b.get(x.as_tensor()).unwrap(), &what);
            // The layer's VJP on repeated rows, both ways.
            let index: Vec<u32> = [1, 0, 1].iter().map(|&i| i % shape[0] as u32).collect();
            let rows = Rows::new(&index, shape[0], &dev).unwrap();
            let (_, saved_kernel) = pool.forward(x.as_tensor(), &Ctx::eval(shape[0])).unwrap();
            let cot = Tensor::randn(0f64, 1.0, (3, shape[1], h / k, w / k), &dev).unwrap();
            assert_close(&pool.vjp(&saved_kernel, &cot, &rows).unwrap(), &pool.vjp(&saved, &cot, &rows).unwrap(), &what);
        }
    }

    #[test]
    fn shapes_that_do_not_fit_are_errors() {
        let x = Tensor::zeros((1, 1, 3, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
        let e = pool_gather(&x, &x, 4).unwrap_err().to_string();
        assert!(e.contains("smaller than the 4x4 window"), "{e}");
        let g = Tensor::zeros((1, 1, 2, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
        let e = pool_scatter(&g, &x, 2).unwrap_err().to_string();
        assert!(e.contains("pool-scatter") && e.contains("[1, 1, 2, 2]"), "{e}");
    }
}
