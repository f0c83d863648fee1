//! 3×3 convolutions with stride 1 and padding 1 (the ResNets' and their input gradients') by
//! Winograd's minimal filtering F(2×2, 3×3) (Lavin & Gray, "Fast Algorithms for Convolutional
//! Neural Networks", 2016): each 2×2 block of outputs comes from the 4×4 block of inputs around
//! it with 16 multiplications per channel pair where im2col + GEMM makes 36.
//!
//! With `d` a 4×4 input tile, `g` a 3×3 kernel and `Y` the 2×2 output tile,
//! `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`. Summed over input channels, the element-wise product
//! becomes 16 independent products `M[ξ] = U[ξ] · V[ξ]` (`U[ξ]` is `O × C`, the transformed
//! kernels; `V[ξ]` is `C × T`, the transformed tiles), one per entry ξ of the 4×4 tile.
//!
//! A band of tile rows at a time (its transformed tiles and their products sized to stay near
//! L2: several samples, or part of one), samples in parallel. The products run on a
//! register-tiled kernel compiled for AVX2 and FMA; where the processor lacks them, [`applies`]
//! says no and the im2col path runs. Same value as the convolution up to rounding: the forward
//! and the backward of the `Conv` op are unchanged (`conv.rs` only evaluates them this way).
#![deny(unsafe_op_in_unsafe_fn)]
use super::{uninit, Store};

/// Entries of a transformed tile (4 × 4).
const XI: usize = 16;
/// Output channels of the register tile of the products.
const OR: usize = 6;
/// Tiles of the register tile of the products (two 8-lane f32 vectors). 6 × 16 keeps its 12
/// sums, two vectors of `V` and a broadcast in the 16 AVX2 registers; 4 × 24 needed one more,
/// and the spilled sum made the products a third slower (ResNet-20 shapes, 64 channels).
const TR: usize = 16;
/// What one band's transformed tiles and products aim for: about twice this machine's L2 per
/// core measured best (a 28×28 plane with 64 channels: 8 rows of tiles to a band; at 256 KiB, 2,
/// and transforming the rows either side of each band cost more than the cache saved).
const BLOCK_BYTES: usize = 1 << 20;

/// The sizes of one convolution: `x` `(n, c, h, w)`, kernel `(o, c, 3, 3)`, `y` `(n, o, h, w)`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Sizes {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
}

impl Sizes {
    /// Output channels, rounded up to whole register tiles.
    fn o_pad(&self) -> usize {
        self.o.next_multiple_of(OR)
    }
    /// Rows of tiles per band (the unit of the transforms and products): about as many as fit
    /// [`BLOCK_BYTES`] (at least one), nudged by up to two so that the band's tiles waste the
    /// least on rounding up to whole register tiles (a 28×28 plane has 14 tiles to a row). Whole
    /// samples where one fits: then several samples to a band.
    fn band<T>(&self) -> usize {
        let (th, tw) = (self.h.div_ceil(2), self.w.div_ceil(2));
        let per_row = XI * (self.c + self.o_pad()) * tw * std::mem::size_of::<T>();
        let mut fit = (BLOCK_BYTES / per_row.max(1)).max(1);
        if fit >= th {
            fit = fit / th * th;
        }
        let waste = |rows: usize| {
            let t = rows * tw;
            (t.next_multiple_of(TR) - t) as f64 / t.max(1) as f64
        };
        // Whole samples stay whole: nudge in samples where a band holds several.
        let step = if fit >= th { th } else { 1 };
        let best = (0..5)
            .filter_map(|k| (fit + k * step).checked_sub(2 * step).filter(|&r| r >= 1 && (step == 1 || r >= th)))
            .min_by(|&a, &b| waste(a).total_cmp(&waste(b)).then(a.abs_diff(fit).cmp(&b.abs_diff(fit))));
        best.unwrap_or(1).clamp(1, (self.n * th).max(1))
    }
    /// Samples per parallel task: the samples of one band, or one sample cut into bands.
    fn samples_per_task<T>(&self) -> usize {
        (self.band::<T>() / self.h.div_ceil(2).max(1)).max(1)
    }
}

/// Whether 3×3 convolutions may run as Winograd's F(2×2, 3×3): the processor runs the product
/// kernel (AVX2 and FMA) and `AMM_WINOGRAD` is not `off` (set it to compare with the im2col
/// path; `on` is the default, any other value is reported on stderr and ignored). Checked once.
pub fn winograd_enabled() -> bool {
    use std::sync::OnceLock;
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        let has = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        #[cfg(not(target_arch = "x86_64"))]
        let has = false;
        super::env_switch("AMM_WINOGRAD", "on", "off", has)
    })
}

/// Whether [`conv3x3`] should evaluate this convolution: a 3×3 kernel, stride 1, padding 1, 16 or
/// more input channels (with fewer, the products are too shallow to gain over im2col), enough
/// tasks (a sample or more each) to keep every thread busy (else the im2col path, which splits
/// one sample's GEMM over the pool), and [`winograd_enabled`].
pub(super) fn applies<T>(sz: &Sizes, k: (usize, usize), s: usize, p: usize) -> bool {
    k == (3, 3)
        && s == 1
        && p == 1
        && sz.c >= 16
        && sz.n.div_ceil(sz.samples_per_task::<T>()) >= rayon::current_num_threads()
        && winograd_enabled()
}

/// `y[n, o] = Σ_c w[o, c] ⋆ x[n, c] (+ b[o])` for a 3×3 kernel, stride 1, padding 1. Call only
/// where [`applies`] said yes.
pub(super) fn conv3x3<T: Store>(sz: Sizes, x: &[T], w: &[T], b: Option<&[T]>) -> Vec<T> {
    use rayon::prelude::*;
    let Sizes { c, h, w: wd, o, .. } = sz;
    let (op, tw, rows, ns) = (sz.o_pad(), wd.div_ceil(2), sz.band::<T>(), sz.samples_per_task::<T>());
    let u = transform_kernels(w, o, op, c);
    let tp_max = (rows * tw).next_multiple_of(TR);
    let (plane_in, plane_out) = (c * h * wd, o * h * wd);
    // SAFETY: the output transform writes every entry of each task's samples.
    let mut y = unsafe { uninit(sz.n * plane_out) };
    // SAFETY (both scratches): `transform_input` writes all of a band's `V` (padding tiles
    // included) and `products` all of its `M` before anything reads them.
    let scratch = || unsafe { (uninit(XI * c * tp_max), uninit(XI * op * tp_max)) };
    y.par_chunks_mut(ns * plane_out).enumerate().for_each_init(scratch, |(v, m), (ti, yt)| {
        let task = Sizes { n: yt.len() / plane_out, ..sz };
        let xt = &x[ti * ns * plane_in..][..task.n * plane_in];
        let all = task.n * h.div_ceil(2);
        for g0 in (0..all).step_by(rows) {
            let band = Band { sz: task, g0, g1: (g0 + rows).min(all) };
            band.run(xt, &u, b, v, m, yt);
        }
    });
    y
}

/// `U[ξ][o][c] = (G w[o, c] Gᵀ)[ξ]`, `G = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]]`; the
/// padding rows `o ≥ O` are zero. Stored a register tile of `OR` output channels at a time, the
/// channels innermost (`U[ξ][o / OR][c][o % OR]`), so that the `OR` values one step of the
/// products broadcasts are adjacent.
fn transform_kernels<T: Store>(w: &[T], o: usize, op: usize, c: usize) -> Vec<T> {
    let half = T::from_f64(0.5);
    let mut u = vec![T::default(); XI * op * c];
    for oi in 0..o {
        for ci in 0..c {
            let g = &w[(oi * c + ci) * 9..][..9];
            // G g: 4 × 3, row by row.
            let mut t = [[T::default(); 3]; 4];
            for j in 0..3 {
                let (g0, g1, g2) = (g[j], g[3 + j], g[6 + j]);
                t[0][j] = g0;
                t[1][j] = (g0 + g1 + g2) * half;
                t[2][j] = (g0 - g1 + g2) * half;
                t[3][j] = g2;
            }
            // (G g) Gᵀ: 4 × 4.
            for (i, r) in t.iter().enumerate() {
                let v = [r[0], (r[0] + r[1] + r[2]) * half, (r[0] - r[1] + r[2]) * half, r[2]];
                for (j, &v) in v.iter().enumerate() {
                    u[((i * 4 + j) * op + oi / OR * OR) * c + ci * OR + oi % OR] = v;
                }
            }
        }
    }
    u
}

/// Rows of tiles `g0..g1` of a task's samples, counted across them (row `g` is tile row
/// `g mod th` of sample `g / th`): what one pass of the transforms and products covers.
#[derive(Clone, Copy)]
struct Band {
    sz: Sizes,
    g0: usize,
    g1: usize,
}

impl Band {
    fn tw(&self) -> usize {
        self.sz.w.div_ceil(2)
    }
    /// The band's tiles, and that rounded up to whole register tiles.
    fn tiles(&self) -> (usize, usize) {
        let t = (self.g1 - self.g0) * self.tw();
        (t, t.next_multiple_of(TR))
    }
    /// Calls `f(sample, first tile row, rows, offset of its tiles in the band)` for the part of
    /// the band in each sample.
    fn segments(&self, mut f: impl FnMut(usize, usize, usize, usize)) {
        let th = self.sz.h.div_ceil(2);
        let mut g = self.g0;
        while g < self.g1 {
            let (s, a) = (g / th, g % th);
            let rows = (th - a).min(self.g1 - g);
            f(s, a, rows, (g - self.g0) * self.tw());
            g += rows;
        }
    }

    /// Transforms the band's inputs, multiplies, transforms back into `y` (the task's output;
    /// `V` and `M` are scratch of at least `16·C·tp` and `16·O'·tp` values).
    fn run<T: Store>(self, x: &[T], u: &[T], b: Option<&[T]>, v: &mut [T], m: &mut [T], y: &mut [T]) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: only `conv3x3` calls this, after `applies` found AVX2 and FMA on this processor.
        unsafe {
            band_avx2(self, x, u, b, v, m, y)
        }
        #[cfg(not(target_arch = "x86_64"))]
        band_body(self, x, u, b, v, m, y)
    }
}

/// [`band_body`] compiled for AVX2 and FMA: the transforms run 8 tiles to a vector, and the
/// products' `mul_add`s become vector FMAs.
///
/// # Safety
/// The processor has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn band_avx2<T: Store>(band: Band, x: &[T], u: &[T], b: Option<&[T]>, v: &mut [T], m: &mut [T], y: &mut [T]) {
    band_body(band, x, u, b, v, m, y)
}

#[inline(always)]
fn band_body<T: Store>(band: Band, x: &[T], u: &[T], b: Option<&[T]>, v: &mut [T], m: &mut [T], y: &mut [T]) {
    let (c, op, tp) = (band.sz.c, band.sz.o_pad(), band.tiles().1);
    let (v, m) = (&mut v[..XI * c * tp], &mut m[..XI * op * tp]);
    transform_input(x, band, v);
    for xi in 0..XI {
        products(&u[xi * op * c..][..op * c], &v[xi * c * tp..][..c * tp], &mut m[xi * op * tp..][..op * tp], c, tp);
    }
    transform_output(m, band, b, y);
}

/// `V[ξ][c][t] = (Bᵀ d B)[ξ]` for each tile `t` of the band, `d` the 4×4 input patch at
/// `(2·ty − 1, 2·tx − 1)` with zeros outside the plane, `Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0],
/// [0, −1, 1, 0], [0, 1, 0, −1]]`; tiles past the band's, up to a whole register tile, are zero.
///
/// A sample's rows of the band at a time, in element-wise operations over all of their tiles.
/// Those rows (and one more on either side) are split into four quarters by the parity of row
/// and column (`q[py][px][ty][tx] = x[2ty + py][2tx + px]`, zero outside the plane); tile
/// `(ty, tx)`'s patch is then made of entries `(ty − 1 + ·, tx − 1 + ·)` of the quarters, so
/// `· B` is a combination of two quarters (one shifted by a column) and `Bᵀ ·` one of two of
/// those (one shifted by a row of tiles): each of the 16 results is one run of `V`. (A tile at
/// a time, with 16 scattered stores each, this cost as much as the products.)
#[inline(always)]
fn transform_input<T: Store>(x: &[T], band: Band, v: &mut [T]) {
    let Sizes { c, h, w, .. } = band.sz;
    let (tw, (t, tp)) = (band.tw(), band.tiles());
    // The quarters of the rows with their two neighbours, [py][px], then each row parity's four
    // column-transformed planes.
    let most = (band.g1 - band.g0 + 2) * tw;
    let mut quarters = vec![T::default(); 4 * most];
    let mut cols = vec![T::default(); 8 * most];
    for ci in 0..c {
        band.segments(|s, a, rows, at| {
            let plane = &x[(s * c + ci) * h * w..][..h * w];
            let span = (rows + 2) * tw;
            let (q, cols) = (&mut quarters[..4 * span], &mut cols[..8 * span]);
            split_quarters(plane, h, w, a as isize - 1, rows + 2, q);
            // · B on each row parity: a padded row's window at tile tx is the columns
            // 2tx − 1 .. 2tx + 2, i.e. odd[tx − 1], even[tx], odd[tx], even[tx + 1].
            for (parity, out) in q.chunks_exact(2 * span).zip(cols.chunks_exact_mut(4 * span)) {
                let (even, odd) = parity.split_at(span);
                let (c0, rest) = out.split_at_mut(span);
                let (c1, rest) = rest.split_at_mut(span);
                let (c2, c3) = rest.split_at_mut(span);
                // c0 = odd[tx − 1] − odd[tx], c1 = even[tx] + odd[tx], c2 = odd[tx] − even[tx],
                // c3 = even[tx] − even[tx + 1]; the shifted operand is zero past the plane's edge.
                shifted_sub(c0, odd, 1, tw, false);
                add(c1, even, odd);
                sub(c2, odd, even);
                shifted_sub(c3, even, 1, tw, true);
            }
            // Bᵀ · : the window of tile row ty is rows 2ty − 1 .. 2ty + 2, i.e. the odd-row
            // planes at ty − 1, the even at ty, the odd at ty, the even at ty + 1. Row k of
            // these planes is tile row a − 1 + k.
            let (even, odd) = cols.split_at(4 * span);
            let len = rows * tw;
            for j in 0..4 {
                let (e, o) = (&even[j * span..][..span], &odd[j * span..][..span]);
                let out = |i: usize| ((4 * i + j) * c + ci) * tp + at;
                sub(&mut v[out(0)..][..len], &o[..len], &o[tw..][..len]);
                add(&mut v[out(1)..][..len], &e[tw..][..len], &o[tw..][..len]);
                sub(&mut v[out(2)..][..len], &o[tw..][..len], &e[tw..][..len]);
                sub(&mut v[out(3)..][..len], &e[tw..][..len], &e[2 * tw..][..len]);
            }
        });
        for xi in 0..XI {
            v[(xi * c + ci) * tp + t..][..tp - t].fill(T::default());
        }
    }
}

/// The quarters by row and column parity of tile rows `ty0 .. ty0 + rows` of the plane, each
/// `rows × ⌈w/2⌉`, in the order (even, even), (even, odd), (odd, even), (odd, odd); zeros where
/// a row or column lies outside the plane.
#[inline(always)]
fn split_quarters<T: Store>(plane: &[T], h: usize, w: usize, ty0: isize, rows: usize, q: &mut [T]) {
    let tw = w.div_ceil(2);
    let span = rows * tw;
    for k in 0..rows {
        for py in 0..2 {
            let (qe, qo) = q[2 * py * span..][..2 * span].split_at_mut(span);
            let (qe, qo) = (&mut qe[k * tw..][..tw], &mut qo[k * tw..][..tw]);
            let y = 2 * (ty0 + k as isize) + py as isize;
            if y < 0 || y >= h as isize {
                qe.fill(T::default());
                qo.fill(T::default());
                continue;
            }
            let line = &plane[y as usize * w..][..w];
            let pairs = w / 2;
            let (line2, qe2, qo2) = (&line[..2 * pairs], &mut qe[..pairs], &mut qo[..pairs]);
            for t in 0..pairs {
                qe2[t] = line2[2 * t];
                qo2[t] = line2[2 * t + 1];
            }
            if w % 2 == 1 {
                qe[pairs] = line[w - 1];
                qo[pairs] = T::default();
            }
        }
    }
}

/// Rows of `stride` entries: `out[k] = a[k − shift] − a[k]` (`forward` false) or
/// `a[k] − a[k + shift]` (`forward` true), where the shifted entry is taken as zero when it
/// leaves its row (`shift` 1: the column before the first or after the last; `shift` = the row
/// length, with `stride` the whole plane: the row of tiles before the first or after the last).
#[inline(always)]
fn shifted_sub<T: Store>(out: &mut [T], a: &[T], shift: usize, stride: usize, forward: bool) {
    let len = out.len();
    if forward {
        sub(&mut out[..len - shift], &a[..len - shift], &a[shift..]);
    } else {
        sub(&mut out[shift..], &a[..len - shift], &a[shift..]);
    }
    // The entries whose shifted operand left its row.
    for row in (0..len).step_by(stride) {
        for k in 0..shift {
            if forward {
                let at = row + stride - shift + k;
                out[at] = a[at];
            } else {
                let at = row + k;
                out[at] = T::default() - a[at];
            }
        }
    }
}

/// `out = a − b`, element-wise (one vector loop).
#[inline(always)]
fn sub<T: Store>(out: &mut [T], a: &[T], b: &[T]) {
    out.iter_mut().zip(a.iter().zip(b)).for_each(|(o, (&a, &b))| *o = a - b);
}

/// `out = a + b`, element-wise.
#[inline(always)]
fn add<T: Store>(out: &mut [T], a: &[T], b: &[T]) {
    out.iter_mut().zip(a.iter().zip(b)).for_each(|(o, (&a, &b))| *o = a + b);
}

/// `m = u · v` for one ξ: `u` is `op × c` (in the layout of [`transform_kernels`]), `v` is
/// `c × tp`, `m` is `op × tp` (`op` a multiple of [`OR`], `tp` of [`TR`]). Register tiles of `OR × TR`: each step of the sum over `c` loads
/// `TR` values of `v`, broadcasts `OR` of `u` and makes `OR · TR` multiply-adds, with the tile's
/// sums in registers throughout.
#[inline(always)]
fn products<T: Store>(u: &[T], v: &[T], m: &mut [T], c: usize, tp: usize) {
    #[cfg(target_arch = "x86_64")]
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() {
        // SAFETY: `T` is f32 (the type ids are equal), so the casts reinterpret nothing; the
        // processor has AVX2 and FMA (`applies` checked it before `conv3x3` ran).
        unsafe {
            let cast = |s: &[T]| std::slice::from_raw_parts(s.as_ptr().cast::<f32>(), s.len());
            let out = std::slice::from_raw_parts_mut(m.as_mut_ptr().cast::<f32>(), m.len());
            return products_f32(cast(u), cast(v), out, c, tp);
        }
    }
    for o0 in (0..m.len() / tp).step_by(OR) {
        let group = &u[o0 * c..][..OR * c];
        for t0 in (0..tp).step_by(TR) {
            let mut acc = [[T::default(); TR]; OR];
            for (vrow, us) in v.chunks_exact(tp).zip(group.chunks_exact(OR)) {
                let vt: &[T; TR] = vrow[t0..t0 + TR].try_into().expect("a whole register tile");
                for (a, &s) in acc.iter_mut().zip(us) {
                    for (a, &x) in a.iter_mut().zip(vt) {
                        *a = s.mul_add(x, *a);
                    }
                }
            }
            for (r, a) in acc.iter().enumerate() {
                m[(o0 + r) * tp + t0..][..TR].copy_from_slice(a);
            }
        }
    }
}

/// [`products`] for f32 in AVX2 intrinsics: the `OR × TR` tile's 12 sums stay in registers, and
/// each step of the sum over `c` loads two vectors of `v` and six broadcasts of `u` for 12
/// FMAs (the generic loop, compiled, reloaded `v` for every row).
///
/// # Safety
/// The processor has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn products_f32(u: &[f32], v: &[f32], m: &mut [f32], c: usize, tp: usize) {
    use std::arch::x86_64::*;
    let op = m.len() / tp;
    // These make every pointer below stay inside its slice.
    assert!(tp.is_multiple_of(TR) && op.is_multiple_of(OR) && m.len() == op * tp && u.len() >= op * c && v.len() >= c * tp);
    for o0 in (0..op).step_by(OR) {
        let group = &u[o0 * c..][..OR * c];
        for t0 in (0..tp).step_by(TR) {
            // SAFETY (loads and stores): `ci < c` and `t0 + 24 ≤ tp`, so `v[ci·tp + t0 ..][..24]`
            // lies in `v` (`c·tp` values); `(o0 + r)·tp + t0 + 24 ≤ op·tp = m.len()`.
            unsafe {
                const NV: usize = TR / 8;
                let mut acc = [[_mm256_setzero_ps(); NV]; OR];
                for ci in 0..c {
                    let p = v.as_ptr().add(ci * tp + t0);
                    let vs: [__m256; NV] = std::array::from_fn(|q| _mm256_loadu_ps(p.add(8 * q)));
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let b = _mm256_broadcast_ss(group.get_unchecked(ci * OR + r));
                        for (a, &x) in acc.iter_mut().zip(&vs) {
                            *a = _mm256_fmadd_ps(b, x, *a);
                        }
                    }
                }
                for (r, acc) in acc.iter().enumerate() {
                    let p = m.as_mut_ptr().add((o0 + r) * tp + t0);
                    for (q, &a) in acc.iter().enumerate() {
                        _mm256_storeu_ps(p.add(8 * q), a);
                    }
                }
            }
        }
    }
}

/// `y[s, o]`'s 2×2 tile `t` = `Aᵀ M[·][o][t] A` (+ `b[o]`), `Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]]`,
/// cropped to the plane where `h` or `w` is odd, for the band's tiles. A sample's rows of the
/// band at a time: `Aᵀ ·` and `· A` are element-wise over its tiles (runs of `M`), then the two
/// output rows of each tile row are interleaved into `y`.
#[inline(always)]
fn transform_output<T: Store>(m: &[T], band: Band, b: Option<&[T]>, y: &mut [T]) {
    let Sizes { h, w, o, .. } = band.sz;
    let (tw, op, tp) = (band.tw(), band.sz.o_pad(), band.tiles().1);
    let most = (band.g1 - band.g0) * tw;
    // Aᵀ q, rows 0 and 1 of four columns; then per output row a of the tile, its even and odd
    // output columns.
    let mut r = vec![T::default(); 8 * most];
    let mut eo = vec![T::default(); 4 * most];
    band.segments(|s, a0, rows, at| {
        let len = rows * tw;
        for oi in 0..o {
            let bias = b.map_or(T::default(), |b| b[oi]);
            let q = |xi: usize| &m[(xi * op + oi) * tp + at..][..len];
            for j in 0..4 {
                let (a, b, c, d) = (q(j), q(4 + j), q(8 + j), q(12 + j));
                let (top, bottom) = r.split_at_mut(4 * most);
                let (top, bottom) = (&mut top[j * len..][..len], &mut bottom[j * len..][..len]);
                for t in 0..len {
                    top[t] = a[t] + b[t] + c[t];
                    bottom[t] = b[t] - c[t] - d[t];
                }
            }
            for (rr, eo) in r.chunks_exact(4 * most).zip(eo.chunks_exact_mut(2 * most)) {
                let (c0, c1, c2, c3) = (&rr[..len], &rr[len..2 * len], &rr[2 * len..3 * len], &rr[3 * len..4 * len]);
                let (even, odd) = eo.split_at_mut(most);
                for t in 0..len {
                    even[t] = c0[t] + c1[t] + c2[t] + bias;
                    odd[t] = c1[t] - c2[t] - c3[t] + bias;
                }
            }
            let out = &mut y[(s * o + oi) * h * w..][..h * w];
            for (a, eo) in eo.chunks_exact(2 * most).enumerate() {
                let (even, odd) = eo.split_at(most);
                for k in 0..rows {
                    let yy = 2 * (a0 + k) + a;
                    if yy >= h {
                        break;
                    }
                    let (e, od) = (&even[k * tw..][..tw], &odd[k * tw..][..tw]);
                    let row = &mut out[yy * w..][..w];
                    for (pair, (&e, &o)) in row.chunks_exact_mut(2).zip(e.iter().zip(od)) {
                        pair[0] = e;
                        pair[1] = o;
                    }
                    if w % 2 == 1 {
                        row[w - 1] = e[tw - 1];
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The convolution by its definition, in f64: four nested sums, nothing shared with the code
    /// above.
    fn direct(sz: Sizes, x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
        let Sizes { n, c, h, w: wd, o } = sz;
        let mut y = vec![0.0; n * o * h * wd];
        for s in 0..n {
            for oi in 0..o {
                for i in 0..h {
                    for j in 0..wd {
                        let mut acc = b[oi];
                        for ci in 0..c {
                            for ki in 0..3 {
                                for kj in 0..3 {
                                    let (yy, xx) = ((i + ki) as isize - 1, (j + kj) as isize - 1);
                                    if yy >= 0 && xx >= 0 && (yy as usize) < h && (xx as usize) < wd {
                                        acc +=
                                            w[((oi * c + ci) * 3 + ki) * 3 + kj] * x[((s * c + ci) * h + yy as usize) * wd + xx as usize];
                                    }
                                }
                            }
                        }
                        y[((s * o + oi) * h + i) * wd + j] = acc;
                    }
                }
            }
        }
        y
    }

    fn values(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = crate::data::Rng::new(seed);
        (0..n).map(|_| rng.normal()).collect()
    }

    /// Equal to the direct convolution: to rounding in f64, to f32 precision in f32. The shapes
    /// have odd planes (cropped tiles), output channels that are not a multiple of the register
    /// tile, a tile count that is not a multiple of its width, one-pixel planes, several samples
    /// to a band, and (the last) several bands to a sample.
    #[test]
    fn winograd_equals_the_direct_convolution() {
        assert!(
            winograd_enabled(),
            "the Winograd kernel needs AVX2 and FMA (x86-64 since 2013) and AMM_WINOGRAD unset or `on`: this test cannot run here"
        );
        for (i, sz) in [
            Sizes { n: 3, c: 16, h: 5, w: 7, o: 6 },
            Sizes { n: 2, c: 17, h: 8, w: 8, o: 4 },
            Sizes { n: 4, c: 16, h: 1, w: 1, o: 3 },
            Sizes { n: 5, c: 20, h: 32, w: 32, o: 16 },
            Sizes { n: 2, c: 64, h: 27, w: 26, o: 64 },
        ]
        .into_iter()
        .enumerate()
        {
            let x = values(sz.n * sz.c * sz.h * sz.w, 3 * i as u64);
            let k = values(sz.o * sz.c * 9, 3 * i as u64 + 1);
            let b = values(sz.o, 3 * i as u64 + 2);
            let reference = direct(sz, &x, &k, &b);
            let scale = reference.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            let got = conv3x3(sz, &x, &k, Some(&b));
            let err = got.iter().zip(&reference).fold(0.0f64, |m, (a, r)| m.max((a - r).abs()));
            assert!(err <= 1e-12 * scale, "case {i} ({sz:?}), f64: differs by {err} at scale {scale}");
            let f = |v: &[f64]| v.iter().map(|&v| v as f32).collect::<Vec<f32>>();
            let got = conv3x3(sz, &f(&x), &f(&k), Some(&f(&b)));
            let err = got.iter().zip(&reference).fold(0.0f64, |m, (&a, r)| m.max((a as f64 - r).abs()));
            assert!(err <= 1e-5 * scale, "case {i} ({sz:?}), f32: differs by {err} at scale {scale}");
        }
    }

    /// The dispatch: only 3×3 kernels with stride 1 and padding 1 and 16+ input channels, and
    /// only with a task (a sample or more) for every thread.
    #[test]
    fn bands_cover_whole_samples_or_cut_one() {
        let big = Sizes { n: 2, c: 64, h: 27, w: 26, o: 64 };
        assert!(big.band::<f64>() < 14, "the last case of the test above must cut its samples into bands");
        let small = Sizes { n: 5, c: 16, h: 8, w: 8, o: 16 };
        assert_eq!(small.band::<f32>() % 4, 0, "several 8×8 samples to a band, whole");
        assert!(small.samples_per_task::<f32>() >= 2);
    }

    #[test]
    fn applies_only_where_it_gains() {
        assert!(winograd_enabled(), "needs AVX2, FMA and AMM_WINOGRAD unset or `on`: this test cannot run here");
        let sz = Sizes { n: 100, c: 16, h: 32, w: 32, o: 16 };
        assert!(applies::<f32>(&sz, (3, 3), 1, 1));
        assert!(!applies::<f32>(&sz, (5, 5), 1, 2));
        assert!(!applies::<f32>(&sz, (3, 3), 2, 1));
        assert!(!applies::<f32>(&sz, (3, 3), 1, 0));
        assert!(!applies::<f32>(&Sizes { c: 3, ..sz }, (3, 3), 1, 1));
        // One sample is one task: with two threads or more, im2col splits its GEMM instead.
        assert_eq!(applies::<f32>(&Sizes { n: 1, ..sz }, (3, 3), 1, 1), rayon::current_num_threads() < 2);
    }
}
