//! Max pooling over non-overlapping `k × k` windows as three kernels: `pool_argmax(x)` finds, in
//! each window, the position of its first maximum (a `u8`, row-major within the window);
//! `pool_gather(t, at)` takes the entry of `t` at those positions, and `pool_scatter(g, at)` puts
//! each `g` back there (zeros elsewhere, the cropped border included). The max pool is
//! `pool_gather(x, pool_argmax(x))`: the choice of the maximum is piecewise constant, so the
//! gradients of the two last kernels are each other.
//!
//! The positions are computed once per forward; a VJP row gathers them (a byte per output, where
//! gathering the layer's input cost 16 times as much) and never compares again.
//!
//! The reshape-based pooling in `layers/pool.rs` (what runs elsewhere) costs a window permute, an
//! argmax, a comparison, a conversion, a product and a sum in every forward, and its backward as
//! many full-size tensors.
use super::{on_cpu, slice, Store};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

/// Whether the kernels take `x` (4-D, f32 or f64, on the CPU) with `k × k` windows (`k ≤ 16`, so
/// that a position fits a byte).
pub fn pool_fits(x: &Tensor, k: usize) -> bool {
    on_cpu(x) && x.rank() == 4 && (1..=16).contains(&k)
}

/// `(N, C, H, W)` → `(N, C, H/k, W/k)`, u8: per window, the row-major position of its first
/// maximum (not differentiable: it is piecewise constant).
pub fn pool_argmax(x: &Tensor, k: usize) -> Result<Tensor> {
    x.detach().contiguous()?.apply_op1_no_bwd(&Argmax { k })
}

/// `(N, C, H, W)` → `(N, C, H/k, W/k)`: per window, `t` at the position `at` holds.
pub fn pool_gather(t: &Tensor, at: &Tensor, k: usize) -> Result<Tensor> {
    t.contiguous()?.apply_op2(&at.contiguous()?, Gather { k })
}

/// `(N, C, H/k, W/k)` → `(N, C, h, w)`: each `g` at its window's position in `at`, zeros elsewhere.
pub fn pool_scatter(g: &Tensor, at: &Tensor, k: usize, hw: (usize, usize)) -> Result<Tensor> {
    g.contiguous()?.apply_op2(&at.contiguous()?, Scatter { k, h: hw.0, w: hw.1 })
}

/// For each line of windows `i` of an `h × w` plane (`h/k × w/k` windows), calls
/// `f(i, j, offset in the plane of window (i, j)'s position p)` for each window `j` and its
/// position `p = at[i·wo + j]`.
#[inline(always)]
fn visit(at: &[u8], h: usize, w: usize, k: usize, mut f: impl FnMut(usize, usize)) {
    let wo = w / k;
    for i in 0..h / k {
        for (j, &p) in at[i * wo..][..wo].iter().enumerate() {
            let p = p as usize;
            f(i * wo + j, (i * k + p / k) * w + j * k + p % k);
        }
    }
}

/// The first maximum of each window of one plane `w` wide into `at`, row-major within the window.
fn argmax_plane<T: PartialOrd + Copy>(x: &[T], w: usize, k: usize, at: &mut [u8]) {
    let wo = w / k;
    if k == 2 {
        // Branch-free, a line of windows at a time, so that it vectorises (the generic loops
        // over each window cost 9% of a ConvNet step).
        for (i, out) in at.chunks_exact_mut(wo).enumerate() {
            let (r0, r1) = (&x[2 * i * w..][..w], &x[(2 * i + 1) * w..][..w]);
            for (j, p) in out.iter_mut().enumerate() {
                // The first maximum in row-major order: the upper row, then the lower one.
                let (a, b, c, d) = (r0[2 * j], r0[2 * j + 1], r1[2 * j], r1[2 * j + 1]);
                let (m, pos) = if b > a { (b, 1u8) } else { (a, 0) };
                let (m, pos) = if c > m { (c, 2) } else { (m, pos) };
                *p = if d > m { 3 } else { pos };
            }
        }
        return;
    }
    for (o, p) in at.iter_mut().enumerate() {
        let (i, j) = (o / wo, o % wo);
        let (mut best, mut top) = (0, x[i * k * w + j * k]);
        for a in 0..k {
            for b in 0..k {
                let v = x[(i * k + a) * w + j * k + b];
                if v > top {
                    (best, top) = (a * k + b, v);
                }
            }
        }
        *p = best as u8;
    }
}

fn dims(l: &Layout, k: usize, kernel: &str) -> Result<[usize; 4]> {
    let (n, c, h, w) = l.shape().dims4()?;
    if k == 0 || h < k || w < k {
        candle_core::bail!("{kernel}: a {h}x{w} input is smaller than the {k}x{k} window");
    }
    if k > 16 {
        candle_core::bail!("{kernel}: a {k}x{k} window has more positions than a byte holds (at most 16x16)");
    }
    Ok([n, c, h, w])
}

/// The positions operand: u8, of the pooled shape.
fn positions<'a>(s: &'a CpuStorage, l: &Layout, pooled: [usize; 4], kernel: &str) -> Result<&'a [u8]> {
    let CpuStorage::U8(at) = s else { candle_core::bail!("{kernel}: window positions must be u8 (from pool_argmax)") };
    if l.dims() != pooled {
        candle_core::bail!("{kernel}: window positions of shape {:?} for {pooled:?} windows", l.dims());
    }
    slice(at, l, kernel)
}

struct Argmax {
    k: usize,
}

impl CustomOp1 for Argmax {
    fn name(&self) -> &'static str {
        "pool-argmax"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        fn run<T: Store + PartialOrd>(x: &[T], [n, c, h, w]: [usize; 4], k: usize) -> Vec<u8> {
            use rayon::prelude::*;
            let per = (h / k) * (w / k);
            let mut at = vec![0u8; n * c * per];
            at.par_chunks_mut(per.max(1)).zip(x.par_chunks(h * w)).for_each(|(at, x)| argmax_plane(x, w, k, at));
            at
        }
        let (name, k) = (self.name(), self.k);
        let d = dims(l, k, name)?;
        let at = match s {
            CpuStorage::F32(x) => run(slice(x, l, name)?, d, k),
            CpuStorage::F64(x) => run(slice(x, l, name)?, d, k),
            _ => candle_core::bail!("{name}: f32 or f64 only"),
        };
        Ok((CpuStorage::U8(at), (d[0], d[1], d[2] / k, d[3] / k).into()))
    }
}

struct Gather {
    k: usize,
}

impl CustomOp2 for Gather {
    fn name(&self) -> &'static str {
        "pool-gather"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        fn run<T: Store>(t: &[T], at: &[u8], [n, c, h, w]: [usize; 4], k: usize) -> Vec<T> {
            use rayon::prelude::*;
            let per = (h / k) * (w / k);
            // SAFETY: `visit` calls back for every window of every plane, and each writes its entry.
            let mut y = unsafe { super::uninit(n * c * per) };
            y.par_chunks_mut(per.max(1)).zip(t.par_chunks(h * w).zip(at.par_chunks(per.max(1)))).for_each(|(y, (t, at))| {
                visit(at, h, w, k, |o, i| y[o] = t[i]);
            });
            y
        }
        let (name, k) = (self.name(), self.k);
        let d = dims(l1, k, name)?;
        let at = positions(s2, l2, [d[0], d[1], d[2] / k, d[3] / k], name)?;
        let y = match s1 {
            CpuStorage::F32(t) => f32::store(run(slice(t, l1, name)?, at, d, k)),
            CpuStorage::F64(t) => f64::store(run(slice(t, l1, name)?, at, d, k)),
            _ => candle_core::bail!("{name}: f32 or f64 only"),
        };
        Ok((y, (d[0], d[1], d[2] / k, d[3] / k).into()))
    }
    fn bwd(&self, t: &Tensor, at: &Tensor, _y: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (_, _, h, w) = t.dims4()?;
        Ok((Some(pool_scatter(g, at, self.k, (h, w))?), None))
    }
}

struct Scatter {
    k: usize,
    h: usize,
    w: usize,
}

impl CustomOp2 for Scatter {
    fn name(&self) -> &'static str {
        "pool-scatter"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        fn run<T: Store>(g: &[T], at: &[u8], [_, _, h, w]: [usize; 4], k: usize) -> Vec<T> {
            use rayon::prelude::*;
            let per = (h / k) * (w / k);
            // SAFETY: each plane is zero-filled before anything reads or scatters into it.
            let mut out = unsafe { super::uninit(g.len() / per.max(1) * h * w) };
            out.par_chunks_mut(h * w).zip(g.par_chunks(per.max(1)).zip(at.par_chunks(per.max(1)))).for_each(|(out, (g, at))| {
                // Zeroed a plane at a time, so that the scatter lands in cache (one pass over
                // the output where a zero-filled allocation made two).
                out.fill(T::default());
                visit(at, h, w, k, |o, i| out[i] = g[o]);
            });
            out
        }
        let (name, k) = (self.name(), self.k);
        let (n, c, ho, wo) = l1.shape().dims4()?;
        if self.h < k || self.w < k || (ho, wo) != (self.h / k, self.w / k) {
            candle_core::bail!("{name}: a cotangent of shape {:?} for a {}x{} input and {k}x{k} windows", l1.dims(), self.h, self.w);
        }
        let d = [n, c, self.h, self.w];
        let at = positions(s2, l2, [n, c, ho, wo], name)?;
        let out = match s1 {
            CpuStorage::F32(g) => f32::store(run(slice(g, l1, name)?, at, d, k)),
            CpuStorage::F64(g) => f64::store(run(slice(g, l1, name)?, at, d, k)),
            _ => candle_core::bail!("{name}: f32 or f64 only"),
        };
        Ok((out, (n, c, self.h, self.w).into()))
    }
    fn bwd(&self, _g: &Tensor, at: &Tensor, _out: &Tensor, gg: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(pool_gather(gg, at, self.k)?), None))
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
            let at = pool_argmax(x.as_tensor(), k).unwrap();
            let ours = pool_gather(x.as_tensor(), &at, k).unwrap();
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

    /// The positions by hand: a 2×4 plane with two 2×2 windows, the first with a tie (the first
    /// maximum, row-major, wins), and a 3×3 window in a 4×4 plane whose border is cropped.
    #[test]
    fn positions_are_the_first_maximum_of_each_window() {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[[[1f64, 5., 2., 0.], [5., 3., 9., 4.]]]], &dev).unwrap();
        assert_eq!(pool_argmax(&x, 2).unwrap().flatten_all().unwrap().to_vec1::<u8>().unwrap(), [1, 2]);
        let x = Tensor::arange(0f32, 16., &dev).unwrap().reshape((1, 1, 4, 4)).unwrap();
        let at = pool_argmax(&x, 3).unwrap();
        assert_eq!(at.flatten_all().unwrap().to_vec1::<u8>().unwrap(), [8]);
        let g = Tensor::new(&[[[[7f32]]]], &dev).unwrap();
        let out = pool_scatter(&g, &at, 3, (4, 4)).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(out.iter().enumerate().filter(|(_, &v)| v != 0.0).collect::<Vec<_>>(), [(10, &7.0)]);
    }

    #[test]
    fn shapes_that_do_not_fit_are_errors() {
        let x = Tensor::zeros((1, 1, 3, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
        let e = pool_argmax(&x, 4).unwrap_err().to_string();
        assert!(e.contains("smaller than the 4x4 window"), "{e}");
        let at = pool_argmax(&x, 2).unwrap();
        let e = pool_gather(&x, &x, 2).unwrap_err().to_string();
        assert!(e.contains("must be u8"), "{e}");
        let g = Tensor::zeros((1, 1, 2, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
        let e = pool_scatter(&g, &at, 2, (3, 3)).unwrap_err().to_string();
        assert!(e.contains("pool-scatter") && e.contains("[1, 1, 2, 2]"), "{e}");
        assert!(!pool_fits(&x, 17), "a 17x17 window has more positions than a byte holds");
    }
}
