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
//! A block of samples at a time (its tiles, transformed, and their products sized to stay in
//! L2), blocks in parallel. The products run on a register-tiled kernel compiled for AVX2 and
//! FMA; where the processor lacks them, [`applies`] says no and the im2col path runs. Same value
//! as the convolution up to rounding: the forward and the backward of the `Conv` op are unchanged
//! (`conv.rs` only evaluates them this way).
use super::{uninit, Store};

/// Entries of a transformed tile (4 × 4).
const XI: usize = 16;
/// Output channels of the register tile of the products.
const OR: usize = 4;
/// Tiles of the register tile of the products (three 8-lane f32 vectors).
const TR: usize = 24;
/// What one block's transformed tiles and products aim to fit in (the L2 of this machine's cores).
const BLOCK_BYTES: usize = 1 << 19;

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
    /// Tiles of one sample's plane.
    fn tiles(&self) -> usize {
        self.h.div_ceil(2) * self.w.div_ceil(2)
    }
    /// Output channels, rounded up to whole register tiles.
    fn o_pad(&self) -> usize {
        self.o.next_multiple_of(OR)
    }
    /// Samples per block: about as many as fit [`BLOCK_BYTES`] (at least one), nudged by up to
    /// two so that the block's tiles waste the least on rounding up to whole register tiles
    /// (64 tiles a sample, two samples to a block, padded an eighth of the products with zeros).
    fn block<T>(&self) -> usize {
        let per_sample = XI * (self.c + self.o_pad()) * self.tiles() * std::mem::size_of::<T>();
        let fit = BLOCK_BYTES / per_sample.max(1);
        let waste = |nb: usize| {
            let t = nb * self.tiles();
            (t.next_multiple_of(TR) - t) as f64 / t.max(1) as f64
        };
        let best = (fit.saturating_sub(2).max(1)..=fit + 2)
            .min_by(|&a, &b| waste(a).total_cmp(&waste(b)).then(a.abs_diff(fit).cmp(&b.abs_diff(fit))));
        best.unwrap_or(1).clamp(1, self.n.max(1))
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
        match std::env::var("AMM_WINOGRAD").as_deref() {
            Ok("off") => false,
            Ok("on") | Err(_) => has,
            Ok(other) => {
                eprintln!("amm: AMM_WINOGRAD={other} is neither `on` nor `off`; using the default ({})", if has { "on" } else { "off" });
                has
            }
        }
    })
}

/// Whether [`conv3x3`] should evaluate this convolution: a 3×3 kernel, stride 1, padding 1, 16 or
/// more input channels (with fewer, the products are too shallow to gain over im2col), enough
/// blocks of samples to keep every thread busy (else the im2col path, which splits one sample's
/// GEMM over the pool), and [`winograd_enabled`].
pub(super) fn applies<T>(sz: &Sizes, k: (usize, usize), s: usize, p: usize) -> bool {
    k == (3, 3) && s == 1 && p == 1 && sz.c >= 16 && sz.n.div_ceil(sz.block::<T>()) >= rayon::current_num_threads() && winograd_enabled()
}

/// `y[n, o] = Σ_c w[o, c] ⋆ x[n, c] (+ b[o])` for a 3×3 kernel, stride 1, padding 1. Call only
/// where [`applies`] said yes.
pub(super) fn conv3x3<T: Store>(sz: Sizes, x: &[T], w: &[T], b: Option<&[T]>) -> Vec<T> {
    use rayon::prelude::*;
    let Sizes { c, h, w: wd, o, .. } = sz;
    let (op, per, nb) = (sz.o_pad(), sz.tiles(), sz.block::<T>());
    let u = transform_kernels(w, o, op, c);
    let tp_max = (nb * per).next_multiple_of(TR);
    let (plane_in, plane_out) = (c * h * wd, o * h * wd);
    // SAFETY: the output transform writes every entry of each block's samples.
    let mut y = unsafe { uninit(sz.n * plane_out) };
    // SAFETY (both scratches): `transform_input` writes all of a block's `V` (padding tiles
    // included) and `products` all of its `M` before anything reads them.
    let scratch = || unsafe { (uninit(XI * c * tp_max), uninit(XI * op * tp_max)) };
    y.par_chunks_mut(nb * plane_out).enumerate().for_each_init(scratch, |(v, m), (bi, yb)| {
        let ns = yb.len() / plane_out;
        let blk = Block { sz: Sizes { n: ns, ..sz }, tp: (ns * per).next_multiple_of(TR) };
        block(blk, &x[bi * nb * plane_in..][..ns * plane_in], &u, b, v, m, yb);
    });
    y
}

/// `U[ξ][o][c] = (G w[o, c] Gᵀ)[ξ]`, `G = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]]`; the
/// padding rows `o ≥ O` are zero.
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

/// One block of samples: its sizes and its tile count rounded up to whole register tiles.
#[derive(Clone, Copy)]
struct Block {
    sz: Sizes,
    tp: usize,
}

/// Transforms a block's inputs, multiplies, transforms back into `y` (`V` and `M` are scratch
/// of at least `16·C·tp` and `16·O'·tp` values).
fn block<T: Store>(blk: Block, x: &[T], u: &[T], b: Option<&[T]>, v: &mut [T], m: &mut [T], y: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: only `conv3x3` calls this, after `applies` found AVX2 and FMA on this processor.
    unsafe {
        block_avx2(blk, x, u, b, v, m, y)
    }
    #[cfg(not(target_arch = "x86_64"))]
    block_body(blk, x, u, b, v, m, y)
}

/// [`block_body`] compiled for AVX2 and FMA: the transforms run 8 tiles to a vector, and the
/// products' `mul_add`s become vector FMAs.
///
/// # Safety
/// The processor has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn block_avx2<T: Store>(blk: Block, x: &[T], u: &[T], b: Option<&[T]>, v: &mut [T], m: &mut [T], y: &mut [T]) {
    block_body(blk, x, u, b, v, m, y)
}

#[inline(always)]
fn block_body<T: Store>(blk: Block, x: &[T], u: &[T], b: Option<&[T]>, v: &mut [T], m: &mut [T], y: &mut [T]) {
    let Block { sz, tp } = blk;
    let (c, op) = (sz.c, sz.o_pad());
    let (v, m) = (&mut v[..XI * c * tp], &mut m[..XI * op * tp]);
    transform_input(x, blk, v);
    for xi in 0..XI {
        products(&u[xi * op * c..][..op * c], &v[xi * c * tp..][..c * tp], &mut m[xi * op * tp..][..op * tp], c, tp);
    }
    transform_output(m, blk, b, y);
}

/// `V[ξ][c][t] = (Bᵀ d B)[ξ]` for each tile `t` of the block's samples (sample-major, then tile
/// rows), `d` the 4×4 input patch at `(2·ty − 1, 2·tx − 1)` with zeros outside the plane,
/// `Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, 1, 0, −1]]`; tiles `T ≤ t < tp` are zero.
///
/// A plane at a time, in element-wise operations over all of its tiles at once. The plane is
/// split into its four quarters by the parity of row and column (`q[py][px][ty][tx] =
/// x[2ty + py][2tx + px]`, zero past an odd edge); tile `(ty, tx)`'s patch is then made of
/// entries `(ty − 1 + ·, tx − 1 + ·)` of the quarters, so `· B` is a combination of two quarters
/// (one shifted by a column) and `Bᵀ ·` one of two of those (one shifted by a row of tiles):
/// each of the 16 results is one run of `V`. (A tile at a time, with 16 scattered stores each,
/// this cost as much as the products.)
#[inline(always)]
fn transform_input<T: Store>(x: &[T], blk: Block, v: &mut [T]) {
    let Block { sz: Sizes { n, c, h, w, .. }, tp } = blk;
    let (tw, per) = (w.div_ceil(2), blk.sz.tiles());
    // The quarters, [py][px], then each row parity's four column-transformed planes.
    let mut quarters = vec![T::default(); 4 * per];
    let mut cols = vec![T::default(); 8 * per];
    for ci in 0..c {
        for s in 0..n {
            let plane = &x[(s * c + ci) * h * w..][..h * w];
            split_quarters(plane, h, w, &mut quarters);
            // · B on each row parity: a padded row's window at tile tx is the columns
            // 2tx − 1 .. 2tx + 2, i.e. odd[tx − 1], even[tx], odd[tx], even[tx + 1].
            for (parity, out) in quarters.chunks_exact(2 * per).zip(cols.chunks_exact_mut(4 * per)) {
                let (even, odd) = parity.split_at(per);
                let (c0, rest) = out.split_at_mut(per);
                let (c1, rest) = rest.split_at_mut(per);
                let (c2, c3) = rest.split_at_mut(per);
                // c0 = odd[tx − 1] − odd[tx], c1 = even[tx] + odd[tx], c2 = odd[tx] − even[tx],
                // c3 = even[tx] − even[tx + 1]; the shifted operand is zero past the plane's edge.
                shifted_sub(c0, odd, 1, tw, false);
                add(c1, even, odd);
                sub(c2, odd, even);
                shifted_sub(c3, even, 1, tw, true);
            }
            // Bᵀ · : the window of tile row ty is rows 2ty − 1 .. 2ty + 2, i.e. the odd-row
            // planes at ty − 1, the even at ty, the odd at ty, the even at ty + 1.
            let (even, odd) = cols.split_at(4 * per);
            for j in 0..4 {
                let (e, o) = (&even[j * per..][..per], &odd[j * per..][..per]);
                let at = |i: usize| ((4 * i + j) * c + ci) * tp + s * per;
                shifted_sub(&mut v[at(0)..][..per], o, tw, per, false);
                add(&mut v[at(1)..][..per], e, o);
                sub(&mut v[at(2)..][..per], o, e);
                shifted_sub(&mut v[at(3)..][..per], e, tw, per, true);
            }
        }
        for xi in 0..XI {
            v[(xi * c + ci) * tp + n * per..][..tp - n * per].fill(T::default());
        }
    }
}

/// The plane's quarters by row and column parity, each `⌈h/2⌉ × ⌈w/2⌉`, in the order
/// (even, even), (even, odd), (odd, even), (odd, odd); zeros where an odd `h` or `w` leaves no
/// entry.
#[inline(always)]
fn split_quarters<T: Store>(plane: &[T], h: usize, w: usize, q: &mut [T]) {
    let (th, tw) = (h.div_ceil(2), w.div_ceil(2));
    let per = th * tw;
    if h % 2 == 1 || w % 2 == 1 {
        q.fill(T::default());
    }
    for (y, line) in plane.chunks_exact(w).enumerate() {
        let (py, ty) = (y % 2, y / 2);
        let (qe, qo) = q[2 * py * per..][..2 * per].split_at_mut(per);
        let (qe, qo) = (&mut qe[ty * tw..][..tw], &mut qo[ty * tw..][..tw]);
        let pairs = w / 2;
        let (line2, qe2, qo2) = (&line[..2 * pairs], &mut qe[..pairs], &mut qo[..pairs]);
        for t in 0..pairs {
            qe2[t] = line2[2 * t];
            qo2[t] = line2[2 * t + 1];
        }
        if w % 2 == 1 {
            qe[pairs] = line[w - 1];
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

/// `m = u · v` for one ξ: `u` is `op × c`, `v` is `c × tp`, `m` is `op × tp` (`op` a multiple
/// of [`OR`], `tp` of [`TR`]). Register tiles of `OR × TR`: each step of the sum over `c` loads
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
/// each step of the sum over `c` loads three vectors of `v` and four broadcasts of `u` for 12
/// FMAs (the generic loop, compiled, reloaded `v` for every row: 16 loads).
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
                let mut acc = [_mm256_setzero_ps(); 3 * OR];
                for ci in 0..c {
                    let p = v.as_ptr().add(ci * tp + t0);
                    let (v0, v1, v2) = (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)), _mm256_loadu_ps(p.add(16)));
                    for r in 0..OR {
                        let b = _mm256_broadcast_ss(group.get_unchecked(ci * OR + r));
                        acc[3 * r] = _mm256_fmadd_ps(b, v0, acc[3 * r]);
                        acc[3 * r + 1] = _mm256_fmadd_ps(b, v1, acc[3 * r + 1]);
                        acc[3 * r + 2] = _mm256_fmadd_ps(b, v2, acc[3 * r + 2]);
                    }
                }
                for r in 0..OR {
                    let p = m.as_mut_ptr().add((o0 + r) * tp + t0);
                    _mm256_storeu_ps(p, acc[3 * r]);
                    _mm256_storeu_ps(p.add(8), acc[3 * r + 1]);
                    _mm256_storeu_ps(p.add(16), acc[3 * r + 2]);
                }
            }
        }
    }
}

/// `y[s, o]`'s 2×2 tile `t` = `Aᵀ M[·][o][t] A` (+ `b[o]`), `Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]]`,
/// cropped to the plane where `h` or `w` is odd. A plane at a time: `Aᵀ ·` and `· A` are
/// element-wise over the plane's tiles (runs of `M`), then the two output rows of each tile row
/// are interleaved into `y`.
#[inline(always)]
fn transform_output<T: Store>(m: &[T], blk: Block, b: Option<&[T]>, y: &mut [T]) {
    let Block { sz: Sizes { n, h, w, o, .. }, tp } = blk;
    let (th, tw, per, op) = (h.div_ceil(2), w.div_ceil(2), blk.sz.tiles(), blk.sz.o_pad());
    // Aᵀ q, rows 0 and 1 of four columns; then per output row a of the tile, its even and odd
    // output columns.
    let mut r = vec![T::default(); 8 * per];
    let mut eo = vec![T::default(); 4 * per];
    for s in 0..n {
        for oi in 0..o {
            let bias = b.map_or(T::default(), |b| b[oi]);
            let q = |xi: usize| &m[(xi * op + oi) * tp + s * per..][..per];
            for j in 0..4 {
                let (a, b, c, d) = (q(j), q(4 + j), q(8 + j), q(12 + j));
                let (top, bottom) = r.split_at_mut(4 * per);
                let (top, bottom) = (&mut top[j * per..][..per], &mut bottom[j * per..][..per]);
                for t in 0..per {
                    top[t] = a[t] + b[t] + c[t];
                    bottom[t] = b[t] - c[t] - d[t];
                }
            }
            for (rr, eo) in r.chunks_exact(4 * per).zip(eo.chunks_exact_mut(2 * per)) {
                let (c0, c1, c2, c3) = (&rr[..per], &rr[per..2 * per], &rr[2 * per..3 * per], &rr[3 * per..]);
                let (even, odd) = eo.split_at_mut(per);
                for t in 0..per {
                    even[t] = c0[t] + c1[t] + c2[t] + bias;
                    odd[t] = c1[t] - c2[t] - c3[t] + bias;
                }
            }
            let out = &mut y[(s * o + oi) * h * w..][..h * w];
            for (a, eo) in eo.chunks_exact(2 * per).enumerate() {
                let (even, odd) = eo.split_at(per);
                for ty in 0..th {
                    let yy = 2 * ty + a;
                    if yy >= h {
                        break;
                    }
                    let (e, od) = (&even[ty * tw..][..tw], &odd[ty * tw..][..tw]);
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
    }
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
    /// tile, a tile count that is not a multiple of its width, one-pixel planes and several
    /// blocks of samples.
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
    /// only with a block of samples for every thread.
    #[test]
    fn applies_only_where_it_gains() {
        assert!(winograd_enabled(), "needs AVX2, FMA and AMM_WINOGRAD unset or `on`: this test cannot run here");
        let sz = Sizes { n: 100, c: 16, h: 32, w: 32, o: 16 };
        assert!(applies::<f32>(&sz, (3, 3), 1, 1));
        assert!(!applies::<f32>(&sz, (5, 5), 1, 2));
        assert!(!applies::<f32>(&sz, (3, 3), 2, 1));
        assert!(!applies::<f32>(&sz, (3, 3), 1, 0));
        assert!(!applies::<f32>(&Sizes { c: 3, ..sz }, (3, 3), 1, 1));
        // One sample is one block: with two threads or more, im2col splits its GEMM instead.
        assert_eq!(applies::<f32>(&Sizes { n: 1, ..sz }, (3, 3), 1, 1), rayon::current_num_threads() < 2);
    }
}
