//! 2-D convolution (groups 1, NCHW) as three kernels closed under differentiation: the
//! convolution `y = conv(x, w)`, its input gradient `gx = conv_input_grad(g, w)` and its weight
//! gradient `gw = conv_weight_grad(x, g)`. Each is bilinear, and each one's gradients are the
//! other two: so the backward of the backward (AMM's second-order terms) stays in this family.
//!
//! candle's `conv2d` backward runs `conv_transpose2d`, a direct loop about 10× slower than its
//! im2col + GEMM forward, and computes the input's gradient even for the data. Here all three run
//! as im2col (or its adjoint, col2im) + one GEMM per sample, samples split over the pool.
use super::gemm::{gemm, Mat};
use super::group_norm::channel_totals;
use super::winograd;
use super::{on_cpu, slice, uninit, Store};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

/// Whether [`conv2d`] and the other kernels here take `x` (4-D, f32 or f64, on the CPU) with
/// `groups` (1 only).
pub fn conv_fits(x: &Tensor, groups: usize) -> bool {
    on_cpu(x) && x.rank() == 4 && groups == 1
}

/// `y[n, o] = Σ_c w[o, c] ⋆ x[n, c] (+ b[o])`, stride `s`, zero padding `p`; `x` `(N, C, H, W)`,
/// `w` `(O, C, kh, kw)`, `b` `(O)`. Check [`conv_fits`] first.
pub fn conv2d(x: &Tensor, w: &Tensor, b: Option<&Tensor>, s: usize, p: usize) -> Result<Tensor> {
    let op = Conv { s, p };
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    match b {
        Some(b) => x.apply_op3(&w, &b.contiguous()?, op),
        None => x.apply_op2(&w, op),
    }
}

/// The VJP of [`conv2d`] in `x`: `g` `(N, O, Ho, Wo)` to `(N, C, h, w)` for an input of `h × w`.
pub fn conv2d_input_grad(g: &Tensor, w: &Tensor, hw: (usize, usize), s: usize, p: usize) -> Result<Tensor> {
    g.contiguous()?.apply_op2(&w.contiguous()?, InputGrad { s, p, h: hw.0, w: hw.1 })
}

/// The VJP of [`conv2d`] in `w`: `Σ_n g[n] ⋆ x[n]`, `(O, C, kh, kw)`.
pub fn conv2d_weight_grad(x: &Tensor, g: &Tensor, k: (usize, usize), s: usize, p: usize) -> Result<Tensor> {
    x.contiguous()?.apply_op2(&g.contiguous()?, WeightGrad { s, p, kh: k.0, kw: k.1 })
}

/// `Σ_{n, i, j} g[n, o, i, j]`: the bias gradient of a convolution, `(N, O, Ho, Wo)` → `(O)`
/// (any rank ≥ 2: the sum runs over every axis but the second).
pub fn channel_sum(g: &Tensor) -> Result<Tensor> {
    g.contiguous()?.apply_op1(ChannelSum)
}

/// The sizes of one convolution.
#[derive(Clone, Debug)]
struct Dims {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    kh: usize,
    kw: usize,
    ho: usize,
    wo: usize,
    s: usize,
    p: usize,
    /// [`Dims::padding_runs`], computed once per call (per sample it cost 1% of a step).
    pad: Vec<Vec<(usize, usize)>>,
}

impl Dims {
    /// From the input's `(N, C, H, W)`, the kernel's `(O, C, kh, kw)`, stride and padding.
    fn new(x: &[usize], k: [usize; 4], s: usize, p: usize, kernel: &str) -> Result<Self> {
        let &[n, c, h, w] = x else { candle_core::bail!("{kernel}: expects an (N, C, H, W) input, got {x:?}") };
        let [o, kc, kh, kw] = k;
        if kc != c {
            candle_core::bail!("{kernel}: a kernel for {kc} input channels on an input with {c}");
        }
        if s == 0 || h + 2 * p < kh || w + 2 * p < kw {
            candle_core::bail!("{kernel}: a {kh}×{kw} kernel (stride {s}, padding {p}) does not fit a {h}×{w} input");
        }
        let mut d = Self { n, c, h, w, o, kh, kw, ho: (h + 2 * p - kh) / s + 1, wo: (w + 2 * p - kw) / s + 1, s, p, pad: Vec::new() };
        d.pad = d.padding_runs();
        Ok(d)
    }
    /// Rows of the im2col matrix (`C·kh·kw`).
    fn k(&self) -> usize {
        self.c * self.kh * self.kw
    }
    fn out_len(&self) -> usize {
        self.ho * self.wo
    }
    fn in_len(&self) -> usize {
        self.c * self.h * self.w
    }
    fn check_out(&self, g: &[usize], kernel: &str) -> Result<()> {
        if g != [self.n, self.o, self.ho, self.wo] {
            candle_core::bail!("{kernel}: cotangent of shape {g:?}, expected {:?}", [self.n, self.o, self.ho, self.wo]);
        }
        Ok(())
    }

    /// Calls `f(col, x, len)` for each run of in-bounds pairs: im2col entry `col + t` reads input
    /// entry `x + t·s` for `t < len` (entries outside the input are zero padding).
    fn runs(&self, mut f: impl FnMut(usize, usize, usize)) {
        let (s, p, hw) = (self.s, self.p, self.out_len());
        for ci in 0..self.c {
            for ki in 0..self.kh {
                for kj in 0..self.kw {
                    let row = ((ci * self.kh + ki) * self.kw + kj) * hw;
                    // Output columns j whose input column j·s + kj − p lies in [0, w).
                    let j0 = p.saturating_sub(kj).div_ceil(s);
                    let j1 = ((self.w + p).saturating_sub(kj)).div_ceil(s).min(self.wo);
                    if j0 >= j1 {
                        continue;
                    }
                    for i in 0..self.ho {
                        let Some(ih) = (i * s + ki).checked_sub(p).filter(|&ih| ih < self.h) else { continue };
                        f(row + i * self.wo + j0, (ci * self.h + ih) * self.w + j0 * s + kj - p, j1 - j0);
                    }
                }
            }
        }
    }

    fn im2col<T: Store>(&self, x: &[T], cols: &mut [T]) {
        if self.s == 1 && self.wo == self.w {
            return self.im2col_same(x, cols);
        }
        self.zero_padding(cols);
        let s = self.s;
        self.runs(|c0, x0, len| {
            let dst = &mut cols[c0..c0 + len];
            if s == 1 {
                dst.copy_from_slice(&x[x0..x0 + len]);
            } else {
                dst.iter_mut().zip(x[x0..].iter().step_by(s)).for_each(|(v, &x)| *v = x);
            }
        });
    }

    /// [`Dims::im2col`] for stride 1 and an output as wide as the input ("same" padding, the 3×3
    /// convolutions of the ResNets): output entry `t = i·w + j` of a row reads input entry
    /// `t + (ki − p)·w + (kj − p)`, so each of the `C·kh·kw` rows is one block copy (a copy per
    /// image row cost more in `memcpy` calls than in copying). The copy also fills the padding
    /// entries of the row with neighbouring pixels; zeroing them right after, while the row is
    /// in cache, fixes them (a second pass over the whole matrix missed the cache).
    fn im2col_same<T: Store>(&self, x: &[T], cols: &mut [T]) {
        let (pad, hw) = (&self.pad, self.out_len());
        self.same_blocks(|r, t0, t1, s0| {
            let row = &mut cols[r * hw..][..hw];
            row[t0..t1].copy_from_slice(&x[s0..s0 + (t1 - t0)]);
            zero_runs(row, &pad[r % pad.len()]);
        });
    }

    /// For stride 1 and `wo == w`: calls `f(r, t0, t1, s0)` for each im2col row `r` with the
    /// entries `t0..t1` of that row whose sources, `s0..`, lie in the row's input channel
    /// (padding entries among them read neighbouring pixels; `t0 == t1`: none do).
    fn same_blocks(&self, mut f: impl FnMut(usize, usize, usize, usize)) {
        let (hw, w, plane) = (self.out_len(), self.w as isize, self.h * self.w);
        for ci in 0..self.c {
            for ki in 0..self.kh {
                for kj in 0..self.kw {
                    let r = (ci * self.kh + ki) * self.kw + kj;
                    let off = (ki as isize - self.p as isize) * w + kj as isize - self.p as isize;
                    let t0 = ((-off).max(0) as usize).min(hw);
                    let t1 = ((plane as isize - off).clamp(0, hw as isize) as usize).max(t0);
                    let s0 = if t0 < t1 { ci * plane + (t0 as isize + off) as usize } else { 0 };
                    f(r, t0, t1, s0);
                }
            }
        }
    }

    /// Zeroes the im2col entries that fall on the padding: the complement of [`Dims::runs`].
    /// (Filling the whole matrix first cost a tenth of a ResNet-20 step in `memset`.)
    fn zero_padding<T: Store>(&self, cols: &mut [T]) {
        let hw = self.out_len();
        if self.p == 0 || hw == 0 {
            return;
        }
        let pad = &self.pad;
        for (r, row) in cols.chunks_exact_mut(hw).enumerate() {
            zero_runs(row, &pad[r % pad.len()]);
        }
    }

    /// For each kernel tap `(ki, kj)` (row-major), the runs `(start, len)` of its im2col row that
    /// fall on the padding: the same for every input channel, so computed once per call instead
    /// of once per row (the per-row bounds and iterators cost 7% of a ConvNet step).
    fn padding_runs(&self) -> Vec<Vec<(usize, usize)>> {
        let (s, p, wo) = (self.s, self.p, self.wo);
        let mut taps = Vec::with_capacity(self.kh * self.kw);
        for ki in 0..self.kh {
            for kj in 0..self.kw {
                // Output columns j with j·s + kj − p in [0, w), lines i with i·s + ki − p in
                // [0, h): everything else is padding.
                let j0 = p.saturating_sub(kj).div_ceil(s).min(wo);
                let j1 = ((self.w + p).saturating_sub(kj)).div_ceil(s).clamp(j0, wo);
                let i0 = p.saturating_sub(ki).div_ceil(s).min(self.ho);
                let i1 = ((self.h + p).saturating_sub(ki)).div_ceil(s).clamp(i0, self.ho);
                let mut runs: Vec<(usize, usize)> = Vec::new();
                let mut push = |a: usize, len: usize| match runs.last_mut() {
                    _ if len == 0 => {}
                    Some((b, l)) if *b + *l == a => *l += len,
                    _ => runs.push((a, len)),
                };
                push(0, i0 * wo);
                for i in i0..i1 {
                    push(i * wo, j0);
                    push(i * wo + j1, wo - j1);
                }
                push(i1 * wo, (self.ho - i1) * wo);
                taps.push(runs);
            }
        }
        taps
    }

    /// The adjoint of [`Dims::im2col`]: `gx = Σ` of each im2col entry into the input entry it
    /// reads. `cols` is scratch: its padding entries may be zeroed.
    fn col2im<T: Store>(&self, cols: &mut [T], gx: &mut [T]) {
        gx.fill(T::default());
        if self.s == 1 && self.wo == self.w {
            // The block form of `im2col_same`: with its padding entries zeroed, adding a whole
            // row onto the shifted plane adds nothing where the padding lands.
            let (pad, hw) = (&self.pad, self.out_len());
            self.same_blocks(|r, t0, t1, s0| {
                let row = &mut cols[r * hw..][..hw];
                zero_runs(row, &pad[r % pad.len()]);
                gx[s0..s0 + (t1 - t0)].iter_mut().zip(&row[t0..t1]).for_each(|(g, &v)| *g += v);
            });
            return;
        }
        let s = self.s;
        self.runs(|c0, x0, len| {
            let src = &cols[c0..c0 + len];
            if s == 1 {
                gx[x0..x0 + len].iter_mut().zip(src).for_each(|(g, &v)| *g += v);
            } else {
                gx[x0..].iter_mut().step_by(s).zip(src).for_each(|(g, &v)| *g += v);
            }
        });
    }

    /// Runs `f(sample, its output chunk, scratch)` over the samples of `out` (`per` values each):
    /// in parallel over samples when there are enough of them, else one sample at a time with the
    /// GEMM split over the pool (the flag passed to `f`).
    fn per_sample<T: Store>(
        &self,
        out: &mut [T],
        per: usize,
        scratch: usize,
        f: impl Fn(usize, &mut [T], &mut Vec<T>, bool) -> Result<()> + Sync + Send,
    ) -> Result<()> {
        use rayon::prelude::*;
        if per == 0 {
            return Ok(());
        }
        if self.n >= 2 * rayon::current_num_threads() {
            // SAFETY (both scratches): `f` writes the scratch in full (im2col, or a GEMM that
            // does not accumulate) before reading it.
            out.par_chunks_mut(per).enumerate().try_for_each_init(|| unsafe { uninit(scratch) }, |buf, (i, chunk)| f(i, chunk, buf, false))
        } else {
            let mut buf = unsafe { uninit(scratch) };
            out.chunks_mut(per).enumerate().try_for_each(|(i, chunk)| f(i, chunk, &mut buf, true))
        }
    }
}

/// Zeroes the runs `(start, len)` of `row`, with straight stores for the one- and two-entry runs
/// of the padding columns: a `memset` call per run cost more than the zeroing.
fn zero_runs<T: Store>(row: &mut [T], runs: &[(usize, usize)]) {
    for &(a, len) in runs {
        match len {
            1 => row[a] = T::default(),
            2 => {
                row[a] = T::default();
                row[a + 1] = T::default();
            }
            _ => row[a..a + len].fill(T::default()),
        }
    }
}

fn dims4(l: &Layout) -> Result<[usize; 4]> {
    let (a, b, c, d) = l.shape().dims4()?;
    Ok([a, b, c, d])
}

/// `y = w · im2col(x) (+ b)` per sample, or Winograd's F(2×2, 3×3) where it applies (3×3,
/// stride 1, padding 1, 16+ input channels: `winograd.rs`).
fn conv_fwd<T: Store>(d: &Dims, x: &[T], w: &[T], b: Option<&[T]>) -> Result<Vec<T>> {
    let sz = winograd::Sizes { n: d.n, c: d.c, h: d.h, w: d.w, o: d.o };
    if winograd::applies::<T>(&sz, (d.kh, d.kw), d.s, d.p) {
        return Ok(winograd::conv3x3(sz, x, w, b));
    }
    let (k, hw) = (d.k(), d.out_len());
    // SAFETY: the GEMM (not accumulating) writes every sample's `o × hw` block.
    let mut y = unsafe { uninit(d.n * d.o * hw) };
    d.per_sample(&mut y, d.o * hw, k * hw, |n, y, cols, par| {
        d.im2col(&x[n * d.in_len()..][..d.in_len()], cols);
        gemm(y, Mat::new(w, d.o, k), Mat::new(cols, k, hw), false, par)?;
        if let Some(b) = b {
            y.chunks_mut(hw).zip(b).for_each(|(row, &b)| row.iter_mut().for_each(|v| *v += b));
        }
        Ok(())
    })?;
    Ok(y)
}

/// `gx = col2im(wᵀ · g)` per sample; for a "same" convolution (stride 1, a square kernel, the
/// output as large as the input) with 16 or more input channels, the convolution of `g` with the
/// kernel flipped and transposed, padded by `k − 1 − p` (the full correlation). The col2im
/// form's GEMM sums over the `O` output channels only (16 in a ResNet-20's first stage), and
/// writes a `C·k²`-row matrix per sample that col2im then reads back; the convolution's sums
/// over `O·k²` and writes the gradient once. Elsewhere the col2im form is cheaper: without
/// padding the full correlation multiplies mostly zeros (LeNet's AMM step: +30%), and with few
/// input channels its GEMM has too few rows (the data gradient of a 3-channel image).
fn input_grad<T: Store>(d: &Dims, g: &[T], w: &[T]) -> Result<Vec<T>> {
    if d.s == 1 && d.kh == d.kw && (d.ho, d.wo) == (d.h, d.w) && d.c >= 16 {
        let full = Dims::new(&[d.n, d.o, d.ho, d.wo], [d.c, d.o, d.kh, d.kw], 1, d.kh - 1 - d.p, "conv2d-input-grad")?;
        debug_assert_eq!((full.ho, full.wo), (d.h, d.w));
        return conv_fwd(&full, g, &flip_transpose(d, w), None);
    }
    let (k, hw) = (d.k(), d.out_len());
    // SAFETY: col2im zero-fills each sample's block before adding into it.
    let mut gx = unsafe { uninit(d.n * d.in_len()) };
    d.per_sample(&mut gx, d.in_len(), k * hw, |n, gx, cols, par| {
        gemm(cols, Mat::new(w, d.o, k).t(), Mat::new(&g[n * d.o * hw..][..d.o * hw], d.o, hw), false, par)?;
        d.col2im(cols, gx);
        Ok(())
    })?;
    Ok(gx)
}

/// `wt[c, o, i, j] = w[o, c, kh − 1 − i, kw − 1 − j]`: `(O, C, kh, kw)` → `(C, O, kh, kw)`.
fn flip_transpose<T: Store>(d: &Dims, w: &[T]) -> Vec<T> {
    let (kk, kw) = (d.kh * d.kw, d.kw);
    // SAFETY: the loops write every `(c, o)` kernel, every tap of it.
    let mut wt = unsafe { uninit(w.len()) };
    for o in 0..d.o {
        for c in 0..d.c {
            let (src, dst) = (&w[(o * d.c + c) * kk..][..kk], &mut wt[(c * d.o + o) * kk..][..kk]);
            for (t, v) in dst.iter_mut().enumerate() {
                let (i, j) = (t / kw, t % kw);
                *v = src[(d.kh - 1 - i) * kw + (kw - 1 - j)];
            }
        }
    }
    wt
}

/// `gw = Σ_n g[n] · im2col(x[n])ᵀ`, summed in fixed blocks of samples (the result does not depend
/// on the number of threads).
///
/// Accumulated transposed, `gwᵀ += im2col(x[n]) · g[n]ᵀ`: the `gemm` crate computes a row-major
/// product as its transpose, and in this orientation it reads the im2col matrix in place, where
/// `g · im2colᵀ` made it copy the whole matrix into a transposed panel first (11% of a
/// ResNet-20 CE step).
fn weight_grad<T: Store>(d: &Dims, x: &[T], g: &[T]) -> Result<Vec<T>> {
    use rayon::prelude::*;
    const BLOCK: usize = 8;
    let (k, hw) = (d.k(), d.out_len());
    let blocks = d.n.div_ceil(BLOCK);
    let par = blocks < 2;
    let partials = (0..blocks)
        .into_par_iter()
        .map(|bi| -> Result<Vec<T>> {
            let mut acc = vec![T::default(); k * d.o];
            // SAFETY: im2col writes the whole matrix before the GEMM reads it.
            let mut cols = unsafe { uninit(k * hw) };
            for n in bi * BLOCK..((bi + 1) * BLOCK).min(d.n) {
                d.im2col(&x[n * d.in_len()..][..d.in_len()], &mut cols);
                gemm(&mut acc, Mat::new(&cols, k, hw), Mat::new(&g[n * d.o * hw..][..d.o * hw], d.o, hw).t(), true, par)?;
            }
            Ok(acc)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut parts = partials.into_iter();
    let mut total = parts.next().unwrap_or_else(|| vec![T::default(); k * d.o]);
    for p in parts {
        total.iter_mut().zip(p).for_each(|(t, v)| *t += v);
    }
    // (k × o) → (o × k)
    // SAFETY: the loop writes every `(o, p)` of the transpose.
    let mut gw = unsafe { uninit(d.o * k) };
    for (p, row) in total.chunks_exact(d.o.max(1)).enumerate() {
        for (o, &v) in row.iter().enumerate() {
            gw[o * k + p] = v;
        }
    }
    Ok(gw)
}

struct Conv {
    s: usize,
    p: usize,
}

impl Conv {
    fn dims(&self, l1: &Layout, l2: &Layout) -> Result<Dims> {
        Dims::new(l1.dims(), dims4(l2)?, self.s, self.p, "conv2d")
    }
    fn backward(&self, x: &Tensor, w: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (_, _, h, wd) = x.dims4()?;
        let (_, _, kh, kw) = w.dims4()?;
        let gx = if x.track_op() { Some(conv2d_input_grad(g, w, (h, wd), self.s, self.p)?) } else { None };
        let gw = if w.track_op() { Some(conv2d_weight_grad(x, g, (kh, kw), self.s, self.p)?) } else { None };
        Ok((gx, gw))
    }
}

impl CustomOp2 for Conv {
    fn name(&self) -> &'static str {
        "conv2d"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let d = self.dims(l1, l2)?;
        let y = typed!("conv2d", (s1, s2), |x, w| conv_fwd(&d, slice(x, l1, "conv2d")?, slice(w, l2, "conv2d")?, None)?);
        Ok((y, (d.n, d.o, d.ho, d.wo).into()))
    }
    fn bwd(&self, x: &Tensor, w: &Tensor, _y: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        self.backward(x, w, g)
    }
}

impl CustomOp3 for Conv {
    fn name(&self) -> &'static str {
        "conv2d-bias"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = self.dims(l1, l2)?;
        if l3.dims() != [d.o] {
            candle_core::bail!("conv2d: a bias of shape {:?} for {} channels", l3.dims(), d.o);
        }
        let y = typed!("conv2d", (s1, s2, s3), |x, w, b| conv_fwd(
            &d,
            slice(x, l1, "conv2d")?,
            slice(w, l2, "conv2d")?,
            Some(slice(b, l3, "conv2d")?)
        )?);
        Ok((y, (d.n, d.o, d.ho, d.wo).into()))
    }
    fn bwd(&self, x: &Tensor, w: &Tensor, b: &Tensor, _y: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (gx, gw) = self.backward(x, w, g)?;
        let gb = if b.track_op() { Some(channel_sum(g)?) } else { None };
        Ok((gx, gw, gb))
    }
}

struct InputGrad {
    s: usize,
    p: usize,
    h: usize,
    w: usize,
}

impl CustomOp2 for InputGrad {
    fn name(&self) -> &'static str {
        "conv2d-input-grad"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let (g, k) = (dims4(l1)?, dims4(l2)?);
        let d = Dims::new(&[g[0], k[1], self.h, self.w], k, self.s, self.p, name)?;
        d.check_out(&g, name)?;
        let gx = typed!(name, (s1, s2), |g, w| input_grad(&d, slice(g, l1, name)?, slice(w, l2, name)?)?);
        Ok((gx, (d.n, d.c, d.h, d.w).into()))
    }
    /// `gx` is bilinear in `(g, w)`: its gradients are a convolution and a weight gradient.
    fn bwd(&self, g: &Tensor, w: &Tensor, _gx: &Tensor, gg: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (_, _, kh, kw) = w.dims4()?;
        let dg = if g.track_op() { Some(conv2d(gg, w, None, self.s, self.p)?) } else { None };
        let dw = if w.track_op() { Some(conv2d_weight_grad(gg, g, (kh, kw), self.s, self.p)?) } else { None };
        Ok((dg, dw))
    }
}

struct WeightGrad {
    s: usize,
    p: usize,
    kh: usize,
    kw: usize,
}

impl CustomOp2 for WeightGrad {
    fn name(&self) -> &'static str {
        "conv2d-weight-grad"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let (x, g) = (dims4(l1)?, dims4(l2)?);
        let d = Dims::new(&x, [g[1], x[1], self.kh, self.kw], self.s, self.p, name)?;
        d.check_out(&g, name)?;
        let gw = typed!(name, (s1, s2), |x, g| weight_grad(&d, slice(x, l1, name)?, slice(g, l2, name)?)?);
        Ok((gw, (d.o, d.c, d.kh, d.kw).into()))
    }
    /// `gw` is bilinear in `(x, g)`: its gradients are an input gradient and a convolution.
    fn bwd(&self, x: &Tensor, g: &Tensor, _gw: &Tensor, ggw: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (_, _, h, w) = x.dims4()?;
        let dx = if x.track_op() { Some(conv2d_input_grad(g, ggw, (h, w), self.s, self.p)?) } else { None };
        let dg = if g.track_op() { Some(conv2d(x, ggw, None, self.s, self.p)?) } else { None };
        Ok((dx, dg))
    }
}

struct ChannelSum;

impl CustomOp1 for ChannelSum {
    fn name(&self) -> &'static str {
        "channel-sum"
    }
    fn cpu_fwd(&self, st: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let d = l.dims();
        if d.len() < 2 {
            candle_core::bail!("channel-sum: expects an (N, C, ...) input, got {d:?}");
        }
        let (o, plane) = (d[1], d[2..].iter().product());
        let out = typed!("channel-sum", (st), |v| {
            let v = slice(v, l, "channel-sum")?;
            channel_totals(v, v, o, plane, |x, _| x)
        });
        Ok((out, o.into()))
    }
    fn bwd(&self, arg: &Tensor, _res: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let mut cs = vec![1; arg.rank()];
        cs[1] = g.elem_count();
        Ok(Some(g.reshape(cs)?.broadcast_as(arg.shape())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autograd::second_order_available;
    use candle_core::{Device, Var};

    /// (N, C, H, W), (O, kh, kw), stride, padding: square and not, strided, padded past the kernel;
    /// few samples (one at a time, the GEMM split over the pool) and many (samples split over the
    /// pool, the weight gradient summed over several blocks of 8).
    // The fourth to the ninth take im2col's block-copy path (stride 1, output as wide as the
    // input); in the eighth, a kernel taller than the input makes whole im2col rows padding; the
    // ninth has the 16+ input channels whose input gradient is the full correlation; the tenth is
    // large enough (four blocks of samples) for Winograd's F(2×2, 3×3) to run its forward and its
    // input gradient.
    const CASES: [([usize; 4], [usize; 3], usize, usize); 10] = [
        ([2, 3, 6, 6], [4, 3, 3], 1, 0),
        ([3, 2, 7, 6], [3, 3, 2], 2, 1),
        ([2, 2, 5, 8], [2, 2, 4], 3, 2),
        ([5, 1, 4, 4], [2, 1, 1], 1, 0),
        ([19, 2, 5, 5], [3, 3, 3], 1, 1),
        ([2, 2, 4, 7], [3, 5, 5], 1, 2),
        ([2, 3, 6, 3], [2, 4, 3], 1, 1),
        ([3, 2, 2, 3], [2, 5, 5], 1, 2),
        ([2, 17, 4, 5], [3, 3, 3], 1, 1),
        ([4, 16, 32, 32], [16, 3, 3], 1, 1),
    ];

    fn randn(shape: &[usize], seed: u64) -> Tensor {
        let mut rng = crate::data::Rng::new(seed);
        let n: usize = shape.iter().product();
        Tensor::from_vec((0..n).map(|_| rng.normal()).collect::<Vec<f64>>(), shape, &Device::Cpu).unwrap()
    }
    fn dot(a: &Tensor, b: &Tensor) -> f64 {
        (a * b).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap()
    }

    /// The forward equals candle's `conv2d` (+ bias), and the two gradient kernels are its
    /// adjoints: ⟨conv(x, w), g⟩ = ⟨x, input_grad(g, w)⟩ = ⟨w, weight_grad(x, g)⟩.
    #[test]
    fn conv_equals_candle_and_its_gradients_are_its_adjoints() {
        for (i, ([n, c, h, w], [o, kh, kw], s, p)) in CASES.into_iter().enumerate() {
            let x = randn(&[n, c, h, w], i as u64);
            let k = randn(&[o, c, kh, kw], 10 + i as u64);
            let b = randn(&[o], 20 + i as u64);
            let y = conv2d(&x, &k, Some(&b), s, p).unwrap();
            let reference = x.conv2d(&k, p, s, 1, 1).unwrap().broadcast_add(&b.reshape((1, o, 1, 1)).unwrap()).unwrap();
            assert_eq!(y.dims(), reference.dims(), "case {i}");
            let diff = (&y - &reference).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
            assert!(diff < 1e-12, "case {i}: forward differs by {diff}");
            let g = randn(y.dims(), 30 + i as u64);
            let lhs = dot(&conv2d(&x, &k, None, s, p).unwrap(), &g);
            let gx = conv2d_input_grad(&g, &k, (h, w), s, p).unwrap();
            let gw = conv2d_weight_grad(&x, &g, (kh, kw), s, p).unwrap();
            assert_eq!(gx.dims(), x.dims());
            assert_eq!(gw.dims(), k.dims());
            assert!((lhs - dot(&x, &gx)).abs() < 1e-10 * lhs.abs().max(1.0), "case {i}: input gradient is not the adjoint");
            assert!((lhs - dot(&k, &gw)).abs() < 1e-10 * lhs.abs().max(1.0), "case {i}: weight gradient is not the adjoint");
            let cs = channel_sum(&g).unwrap();
            let reference = g.sum((0, 2, 3)).unwrap();
            assert!((cs - reference).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap() < 1e-12);
        }
    }

    /// Second order against central finite differences: Φ(x, w, b) = ‖∂L/∂x‖² + ‖∂L/∂w‖² for
    /// L = Σ r·conv(x, w, b)², differentiated by candle's backward through the kernels' own
    /// backward (conv → input/weight gradients → their gradients).
    #[test]
    fn second_order_through_the_kernels_matches_finite_differences() {
        assert!(second_order_available().unwrap(), "run the tests through cargo (.cargo/config.toml sets CANDLE_GRAD_DO_NOT_DETACH)");
        for (i, ([n, c, h, w], [o, kh, kw], s, p)) in CASES.into_iter().enumerate().take(3) {
            let x0 = randn(&[n, c, h, w], 40 + i as u64);
            let k0 = randn(&[o, c, kh, kw], 50 + i as u64);
            let b0 = randn(&[o], 60 + i as u64);
            let r = randn(conv2d(&x0, &k0, None, s, p).unwrap().dims(), 70 + i as u64);
            let phi = |x: &Tensor, k: &Tensor, b: &Tensor| -> (Tensor, Vec<Var>) {
                let (xv, kv, bv) = (Var::from_tensor(x).unwrap(), Var::from_tensor(k).unwrap(), Var::from_tensor(b).unwrap());
                let y = conv2d(xv.as_tensor(), kv.as_tensor(), Some(bv.as_tensor()), s, p).unwrap();
                let l = (y.sqr().unwrap() * &r).unwrap().sum_all().unwrap();
                let g = l.backward().unwrap();
                let sq = |t: &Tensor| g.get(t).unwrap().sqr().unwrap().sum_all().unwrap();
                ((sq(xv.as_tensor()) + sq(kv.as_tensor())).unwrap(), vec![xv, kv, bv])
            };
            let (value, vars) = phi(&x0, &k0, &b0);
            let grads = value.backward().unwrap();
            let eps = 1e-5;
            for (vi, var) in vars.iter().enumerate() {
                let analytic = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
                let base = var.as_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap();
                for j in [0, base.len() / 2, base.len() - 1] {
                    let at = |d: f64| {
                        let mut v = base.clone();
                        v[j] += d;
                        let t = Tensor::from_vec(v, var.as_tensor().shape(), &Device::Cpu).unwrap();
                        let (x, k, b) = match vi {
                            0 => (t, k0.clone(), b0.clone()),
                            1 => (x0.clone(), t, b0.clone()),
                            _ => (x0.clone(), k0.clone(), t),
                        };
                        phi(&x, &k, &b).0.to_scalar::<f64>().unwrap()
                    };
                    let fd = (at(eps) - at(-eps)) / (2.0 * eps);
                    let err = (fd - analytic[j]).abs() / fd.abs().max(1.0);
                    assert!(err < 1e-6, "case {i}, operand {vi}, entry {j}: finite differences {fd}, backward {}", analytic[j]);
                }
            }
        }
    }

    /// Mismatched shapes are errors that name the kernel.
    #[test]
    fn bad_shapes_are_errors() {
        let x = randn(&[1, 2, 3, 3], 1);
        let e = conv2d(&x, &randn(&[1, 3, 2, 2], 2), None, 1, 0).unwrap_err().to_string();
        assert!(e.contains("conv2d") && e.contains("3 input channels"), "{e}");
        let e = conv2d(&x, &randn(&[1, 2, 5, 5], 2), None, 1, 0).unwrap_err().to_string();
        assert!(e.contains("does not fit a 3×3 input"), "{e}");
        let e = conv2d_input_grad(&randn(&[1, 1, 3, 3], 3), &randn(&[1, 2, 2, 2], 2), (3, 3), 1, 0).unwrap_err().to_string();
        assert!(e.contains("conv2d-input-grad") && e.contains("expected [1, 1, 2, 2]"), "{e}");
    }
}
