//! An f32 GEMM for x86-64 processors with AVX-512, chosen at run time.
//!
//! The `gemm` crate (candle's) uses 256-bit AVX2 kernels on stable Rust: on processors with two
//! 512-bit FMA units (Intel Xeon since Skylake-SP) that is half the arithmetic the core can do,
//! and an MLP step at batch 100 is mostly GEMMs. This is the classic blocked algorithm (Goto;
//! BLIS's loop order): `B` is packed in `KC × NR` micro-panels that stay in L1, `A` in
//! `MR × KC` micro-panels streamed from L2, and a `12 × 32` register tile (24 of the 32 zmm
//! registers) accumulates each block of `C`. Edges are zero-padded in the packed buffers and
//! masked when storing, so any shape and any strides (transposed views) are accepted.
//!
//! Results are deterministic: the split over threads depends only on the shape and the thread
//! count, and each element of `C` is summed in the same order whatever the split.
//!
//! A leaf module: it uses only the matrix view of `mat.rs`; `gemm.rs` asks it whether it is
//! [`available`], and the f32 `Store::try_native_gemm` (in `mod.rs`) runs its [`gemm`].
//!
//! Unsafe code: the packing routines are safe `#[target_feature]` functions (every access they
//! make is to a slice, bounds-checked or masked within it); only [`block`] and [`kernel`] take
//! raw pointers to `C` and to the packed panels. No pointer is ever formed outside the memory
//! it refers to: where a tile has 16 columns or fewer, the second vector's pointer stops at the
//! end of the row (`cols.min(16)`) rather than 16 values on, and its mask is empty.
#![deny(unsafe_op_in_unsafe_fn)]
use super::mat::Mat;
use std::arch::x86_64::*;
use std::cell::RefCell;

/// Rows of the register tile.
const MR: usize = 12;
/// Columns of the register tile: two 16-lane vectors.
const NR: usize = 32;
/// Depth of one packed block: a `KC × NR` panel of `B` is 32 KiB, in L1 with `A`'s panel.
const KC: usize = 256;
/// Rows of `A` packed at once (L2).
const MC: usize = 10 * MR;
/// Columns of `B` packed at once.
const NC: usize = 64 * NR;
/// Below this many multiply-adds one thread is faster than two.
const PARALLEL_MIN: usize = 1 << 18;

/// Whether this processor runs the kernel (checked once; the macro caches it).
pub(super) fn available() -> bool {
    is_x86_feature_detected!("avx512f")
}

thread_local! {
    /// Packing buffers, reused across calls (a step makes hundreds of GEMMs).
    static PACK: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// A raw pointer to `C` that crosses threads; each worker writes a disjoint block of it.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: an `Out` is only dereferenced in `block`, and `gemm` gives each worker a disjoint block
// of rows or columns of `C`, so no element is accessed from two threads; `C` (`dst`, mutably
// borrowed by `gemm`) outlives the parallel section, which joins before `gemm` returns.
unsafe impl Send for Out {}
// SAFETY: as for `Send`: sharing an `Out` across the workers only shares the address; the
// elements behind it are partitioned between them.
unsafe impl Sync for Out {}

/// `dst (= or +=) a · b`, row-major `dst` of `a.rows × b.cols`, on up to `threads` threads.
///
/// Panics unless this processor has AVX-512 ([`available`]) and `dst` holds exactly
/// `a.rows × b.cols` values: those two make it sound (`a` and `b` are only read through their
/// slices). The caller also checks `b.rows == a.cols ≥ 1` (with no depth, `dst` is left as is).
pub(super) fn gemm(dst: &mut [f32], a: Mat<f32>, b: Mat<f32>, accumulate: bool, threads: usize) {
    let (m, n, k) = (a.rows, b.cols, a.cols);
    // Two checks a call, nothing against a GEMM (`is_x86_feature_detected` caches its answer).
    assert!(available(), "avx512::gemm: this processor has no AVX-512");
    assert!(m.checked_mul(n) == Some(dst.len()), "avx512::gemm: {m}×{n} does not match {} values", dst.len());
    debug_assert!(b.rows == k);
    let out = Out(dst.as_mut_ptr());
    let threads = if m * n * k < PARALLEL_MIN { 1 } else { threads.max(1) };
    let (m_tiles, n_tiles) = (m.div_ceil(MR), n.div_ceil(NR));
    // Split in whole tiles, so every worker runs full kernels. Each worker packs all of the
    // operand along the dimension it does not split, so split the longer one.
    let by_cols = (m <= n && n_tiles >= threads) || m_tiles < threads;
    let tiles = if by_cols { n_tiles } else { m_tiles };
    let workers = threads.min(tiles).max(1);
    let range = |w: usize, tile: usize, len: usize| ((tiles * w / workers * tile).min(len), (tiles * (w + 1) / workers * tile).min(len));
    let run = |w: usize| {
        let ((m0, m1), (n0, n1)) = if by_cols { ((0, m), range(w, NR, n)) } else { (range(w, MR, m), (0, n)) };
        // SAFETY: avx512f is available (asserted above). `out` points to `dst`, row-major with
        // `ldc = n`, and `dst.len() == m × n` (asserted above); `range` is monotone in `w` and
        // clamped to `len`, so m0 ≤ m1 ≤ m and n0 ≤ n1 ≤ n and the block [m0, m1) × [n0, n1) lies
        // in `dst`, and the blocks of different workers are disjoint (consecutive ranges along
        // the split dimension). `dst` is mutably borrowed by this call and not used otherwise
        // until every worker has returned, so nothing else reads or writes the block meanwhile.
        unsafe { block(out, n, a, b, (m0, m1), (n0, n1), accumulate) }
    };
    if workers == 1 {
        run(0);
    } else {
        use rayon::prelude::*;
        (0..workers).into_par_iter().for_each(run);
    }
}

/// `C[m0..m1, n0..n1] (= or +=) A[m0..m1, :] · B[:, n0..n1]` on this thread, where
/// `C[i, j]` is `*c.0.add(i * ldc + j)`; `+=` where `accumulate`, and a depth `a.cols` of zero
/// leaves `C` as is.
///
/// # Safety
/// - The processor supports AVX-512F.
/// - `m0 ≤ m1`, `n0 ≤ n1`, and for every `i` in `m0..m1` and `j` in `n0..n1`, `c.0 + i·ldc + j`
///   lies in one allocation (so no offset computed overflows `isize`) and is valid for reads and
///   writes of an `f32`, properly aligned (any `*mut f32` derived from a `&mut [f32]` is).
/// - For the duration of the call no other thread or live reference reads or writes those
///   elements (they may not overlap `a.data` or `b.data`, which are read meanwhile).
///
/// `a` and `b` carry no obligation: they are read through their slices (an out-of-range view
/// panics). Their elements read are `A[m0..m1, 0..a.cols]` and `B[0..a.cols, n0..n1]`.
#[target_feature(enable = "avx512f")]
unsafe fn block(c: Out, ldc: usize, a: Mat<f32>, b: Mat<f32>, (m0, m1): (usize, usize), (n0, n1): (usize, usize), accumulate: bool) {
    let k = a.cols;
    PACK.with_borrow_mut(|(pa, pb)| {
        for jc in (n0..n1).step_by(NC) {
            let nc = NC.min(n1 - jc);
            for pc in (0..k).step_by(KC) {
                let kc = KC.min(k - pc);
                pack_b(pb, b, pc, kc, jc, nc);
                let add = accumulate || pc > 0;
                for ic in (m0..m1).step_by(MC) {
                    let mc = MC.min(m1 - ic);
                    pack_a(pa, a, ic, mc, pc, kc);
                    for (jt, jr) in (0..nc).step_by(NR).enumerate() {
                        // SAFETY: `pack_b` left `pb` at least `nc.div_ceil(NR) · kc · NR` long
                        // and `jt < nc.div_ceil(NR)`, so the offset is inside `pb`.
                        let bp = unsafe { pb.as_ptr().add(jt * kc * NR) };
                        for (it, ir) in (0..mc).step_by(MR).enumerate() {
                            // SAFETY: `pack_a` left `pa` at least `mc.div_ceil(MR) · kc · MR` long
                            // and `it < mc.div_ceil(MR)`, so the offset is inside `pa`.
                            let ap = unsafe { pa.as_ptr().add(it * kc * MR) };
                            let (rows, cols) = (MR.min(mc - ir), NR.min(nc - jr));
                            // SAFETY: (block's contract) row `ic + ir < m1` and column
                            // `jc + jr < n1` of `C` lie in its allocation, so the offset does.
                            // The kernel's contract: AVX-512F is enabled here; `ap` and `bp` are
                            // followed by the `kc · MR` and `kc · NR` values of their panels
                            // (shown above); rows `ic + ir .. ic + ir + rows` ⊆ [ic, ic + mc) ⊆
                            // [m0, m1) and columns `jc + jr .. jc + jr + cols` ⊆ [jc, jc + nc) ⊆
                            // [n0, n1), which block's caller vouched for (valid, not accessed
                            // by others, disjoint from the packing buffers, which are this
                            // thread's own); rows ≤ MR and 1 ≤ cols ≤ NR (jr < nc).
                            unsafe {
                                let cp = c.0.add((ic + ir) * ldc + jc + jr);
                                kernel(kc, ap, bp, cp, ldc, rows, cols, add);
                            }
                        }
                    }
                }
            }
        }
    });
}

/// Packs `B[pc.., jc..]` (`kc × nc`) as `NR`-wide panels, each `kc` rows of `NR` values,
/// zero-padded past `nc`. Every value of the buffer is written (no zero-fill first).
///
/// Safe to call from code compiled with AVX-512F (as [`block`] is); elsewhere the call is
/// `unsafe` and needs the processor to have it. Every read is of a slice of `b.data`
/// (bounds-checked: a view that does not fit panics) and every write of `buf`.
#[target_feature(enable = "avx512f")]
fn pack_b(buf: &mut Vec<f32>, b: Mat<f32>, pc: usize, kc: usize, jc: usize, nc: usize) {
    for (t, panel) in grown(buf, nc.div_ceil(NR) * kc * NR).chunks_exact_mut(kc * NR).enumerate() {
        let cols = NR.min(nc - t * NR);
        let at = |p: usize, q: usize| (pc + p) * b.rs + (jc + t * NR + q) * b.cs;
        if b.cs == 1 {
            // Row-major: two (masked) vector copies a row, zeros past `cols`. The second half
            // starts at column `cols.min(16)`: at 16 where the row has more than 16 columns, at
            // the row's end (with an empty mask) where it does not, so its pointer never leaves
            // the row's slice.
            let (m0, m1) = masks(cols);
            for p in 0..kc {
                let row = &b.data[at(p, 0)..][..cols];
                let (lo, hi) = (row.as_ptr(), row[cols.min(16)..].as_ptr());
                // SAFETY: `m0` enables the first `cols.min(16)` lanes, all inside `row`; `m1`
                // the first `cols - 16`, all inside `hi`'s slice `row[16..]` (and none where
                // `cols ≤ 16`, when `hi` is the row's end). Masked-off lanes are neither read
                // nor faulted on. `panel` holds
                // `kc · NR` values and `p < kc`, so `dst` and `dst + 16` are inside it and the
                // two 16-lane stores fill exactly `panel[p·NR..(p + 1)·NR]`. `panel` (of `buf`,
                // borrowed mutably) and `b.data` (shared) do not overlap.
                unsafe {
                    let dst = panel.as_mut_ptr().add(p * NR);
                    _mm512_storeu_ps(dst, _mm512_maskz_loadu_ps(m0, lo));
                    _mm512_storeu_ps(dst.add(16), _mm512_maskz_loadu_ps(m1, hi));
                }
            }
        } else if b.rs == 1 {
            // A transposed view (a weight matrix used as `wᵀ`): its columns are contiguous, so
            // 16 × 16 blocks are loaded along them and transposed in registers.
            for half in 0..2 {
                let q0 = half * 16;
                let qs = cols.saturating_sub(q0).min(16);
                for p0 in (0..kc).step_by(16) {
                    let ps = 16.min(kc - p0);
                    let mask = masks(ps).0;
                    let mut r = [_mm512_setzero_ps(); 16];
                    for (q, r) in r.iter_mut().enumerate().take(qs) {
                        let src = &b.data[at(p0, q0 + q)..][..ps];
                        // SAFETY: `mask` enables the first `ps` lanes, all inside `src`;
                        // masked-off lanes are neither read nor faulted on.
                        *r = unsafe { _mm512_maskz_loadu_ps(mask, src.as_ptr()) };
                    }
                    let out = transpose16(r);
                    for (p, v) in out.iter().enumerate().take(ps) {
                        // SAFETY: `panel` holds `kc · NR` values, `p0 + p < kc` and
                        // `q0 + 16 ≤ NR`, so the 16 values stored lie inside it.
                        unsafe { _mm512_storeu_ps(panel.as_mut_ptr().add((p0 + p) * NR + q0), *v) };
                    }
                }
            }
        } else {
            for p in 0..kc {
                for q in 0..NR {
                    panel[p * NR + q] = if q < cols { b.data[at(p, q)] } else { 0.0 };
                }
            }
        }
    }
}

/// The transpose of a 16 × 16 block held in 16 registers (`out[j][i] = r[i][j]`).
///
/// Register operations only: safe to call from code compiled with AVX-512F (as the packing
/// routines are); elsewhere the call is `unsafe` and needs the processor to have it.
#[target_feature(enable = "avx512f")]
fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
    // Pairs of rows interleaved, then pairs of pairs: u[4g + c] holds, in 128-bit lane L, column
    // 4L + c of rows 4g..4g+4.
    let mut t = [_mm512_setzero_ps(); 16];
    for k in 0..8 {
        t[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
    }
    let mut u = [_mm512_setzero_ps(); 16];
    for g in 0..4 {
        let (a, b) = (_mm512_castps_pd(t[4 * g]), _mm512_castps_pd(t[4 * g + 2]));
        let (c, d) = (_mm512_castps_pd(t[4 * g + 1]), _mm512_castps_pd(t[4 * g + 3]));
        u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
        u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
        u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
    }
    // Then the 128-bit lanes gathered: column 4L + c is lane L of u[c], u[4 + c], u[8 + c], u[12 + c].
    let mut out = [_mm512_setzero_ps(); 16];
    for c in 0..4 {
        let v = _mm512_shuffle_f32x4::<0x88>(u[c], u[4 + c]);
        let w = _mm512_shuffle_f32x4::<0xdd>(u[c], u[4 + c]);
        let x = _mm512_shuffle_f32x4::<0x88>(u[8 + c], u[12 + c]);
        let y = _mm512_shuffle_f32x4::<0xdd>(u[8 + c], u[12 + c]);
        out[c] = _mm512_shuffle_f32x4::<0x88>(v, x);
        out[8 + c] = _mm512_shuffle_f32x4::<0xdd>(v, x);
        out[4 + c] = _mm512_shuffle_f32x4::<0x88>(w, y);
        out[12 + c] = _mm512_shuffle_f32x4::<0xdd>(w, y);
    }
    out
}

/// Packs `A[ic.., pc..]` (`mc × kc`) as `MR`-tall panels, each `kc` columns of `MR` values,
/// zero-padded past `mc`. Every value of the buffer is written.
///
/// Safe to call from code compiled with AVX-512F (as [`block`] is); elsewhere the call is
/// `unsafe` and needs the processor to have it. Every read is of a slice of `a.data`
/// (bounds-checked: a view that does not fit panics) and every write of `buf`.
#[target_feature(enable = "avx512f")]
fn pack_a(buf: &mut Vec<f32>, a: Mat<f32>, ic: usize, mc: usize, pc: usize, kc: usize) {
    for (t, panel) in grown(buf, mc.div_ceil(MR) * kc * MR).chunks_exact_mut(kc * MR).enumerate() {
        let rows = MR.min(mc - t * MR);
        let at = |r: usize, p: usize| (ic + t * MR + r) * a.rs + (pc + p) * a.cs;
        // Lanes past MR are masked off in the stores below (and masked lanes do not fault).
        const ROWS: __mmask16 = ((1u32 << MR) - 1) as __mmask16;
        if a.rs == 1 {
            // A transposed view: its columns are contiguous, one masked vector copy each.
            let valid = masks(rows).0;
            for p in 0..kc {
                let src = &a.data[at(0, p)..][..rows];
                // SAFETY: `valid` enables the first `rows` lanes, all inside `src`. `panel`
                // holds `kc · MR` values and `p < kc`, so `ROWS` (the first `MR` lanes) enables
                // `panel[p·MR..(p + 1)·MR]` only. Masked-off lanes are neither read, written nor
                // faulted on.
                unsafe {
                    let v = _mm512_maskz_loadu_ps(valid, src.as_ptr());
                    _mm512_mask_storeu_ps(panel.as_mut_ptr().add(p * MR), ROWS, v);
                }
            }
        } else if a.cs == 1 {
            // Row-major: 16 columns of MR rows loaded along the rows, transposed in registers,
            // stored MR lanes at a time.
            for p0 in (0..kc).step_by(16) {
                let ps = 16.min(kc - p0);
                let mask = masks(ps).0;
                let mut r = [_mm512_setzero_ps(); 16];
                for (i, r) in r.iter_mut().enumerate().take(rows) {
                    let src = &a.data[at(i, p0)..][..ps];
                    // SAFETY: `mask` enables the first `ps` lanes, all inside `src`; masked-off
                    // lanes are neither read nor faulted on.
                    *r = unsafe { _mm512_maskz_loadu_ps(mask, src.as_ptr()) };
                }
                let out = transpose16(r);
                for (p, v) in out.iter().enumerate().take(ps) {
                    // SAFETY: `panel` holds `kc · MR` values and `p0 + p < kc`, so `ROWS` (the
                    // first `MR` lanes) enables `panel[(p0 + p)·MR..][..MR]` only; masked-off
                    // lanes are neither written nor faulted on.
                    unsafe { _mm512_mask_storeu_ps(panel.as_mut_ptr().add((p0 + p) * MR), ROWS, *v) };
                }
            }
        } else {
            for p in 0..kc {
                for r in 0..MR {
                    panel[p * MR + r] = if r < rows { a.data[at(r, p)] } else { 0.0 };
                }
            }
        }
    }
}

/// The first `len` values of `buf`, grown (never shrunk) to hold them: the packs overwrite every
/// value, so a reused buffer needs no zero-fill.
fn grown(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    &mut buf[..len]
}

/// Lane masks for the first `cols` (≤ 32) columns of a tile.
fn masks(cols: usize) -> (__mmask16, __mmask16) {
    let m = |c: usize| if c >= 16 { 0xFFFF } else { ((1u32 << c) - 1) as __mmask16 };
    (m(cols), m(cols.saturating_sub(16)))
}

/// The register tile: `C[..rows, ..cols] (= or +=) Apanel · Bpanel` over depth `kc`, where
/// `C[i, j]` is `*c.add(i * ldc + j)`; `+=` where `add`.
///
/// # Safety
/// - The processor supports AVX-512F.
/// - `a` is valid for reads of `kc · MR` consecutive `f32` (a packed `A` panel) and `b` for
///   reads of `kc · NR` (a packed `B` panel); no alignment beyond `f32`'s is needed.
/// - `rows ≤ MR` and `1 ≤ cols ≤ NR`, and for every `i < rows`, `j < cols`, `c + i·ldc + j`
///   lies in one allocation and is valid for writes, and for reads where `add`, of an `f32`
///   (aligned as `f32`). Nothing else is accessed through `c`: the second vector of a row is
///   formed at `c + i·ldc + cols.min(16)`, inside the row or just past its end.
/// - For the duration of the call nothing else writes the panels or reads or writes those
///   elements of `C` (in particular, `C` does not overlap the panels).
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, rows: usize, cols: usize, add: bool) {
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    for p in 0..kc {
        // SAFETY: `p < kc`, so values `p·NR .. p·NR + 32` of `b`'s panel and `p·MR .. p·MR + MR`
        // of `a`'s (`i < MR` below) are among those the caller made valid for reads.
        let (b0, b1, ap) = unsafe { (_mm512_loadu_ps(b.add(p * NR)), _mm512_loadu_ps(b.add(p * NR + 16)), a.add(p * MR)) };
        for (i, acc) in acc.iter_mut().enumerate() {
            // SAFETY: `ap + i` with `i < MR` is inside the panel row above.
            let ai = _mm512_set1_ps(unsafe { *ap.add(i) });
            acc[0] = _mm512_fmadd_ps(ai, b0, acc[0]);
            acc[1] = _mm512_fmadd_ps(ai, b1, acc[1]);
        }
    }
    let (m0, m1) = masks(cols);
    // Where `cols ≤ 16` the second vector is empty (`m1` = 0) and starts at the row's end, not
    // 16 values on (which can lie past the end of `C` on its last row).
    let hi = cols.min(16);
    for (i, acc) in acc.iter().enumerate().take(rows) {
        let (mut v0, mut v1) = (acc[0], acc[1]);
        // SAFETY: `i < rows`, so `row` = `c + i·ldc` is element (i, 0) of `C` (cols ≥ 1), which
        // the caller made valid; `row + hi` is element (i, 16) when `cols > 16`, else one past
        // element (i, cols - 1): in bounds either way. `m0` enables lanes `j < cols.min(16)` of
        // `row` and `m1` lanes `j < cols - 16` of `row + 16` (none when `cols ≤ 16`): exactly the
        // elements (i, j < cols), valid for reads (read only where `add`) and writes; masked-off
        // lanes are neither read, written nor faulted on.
        unsafe {
            let row = c.add(i * ldc);
            let row_hi = row.add(hi);
            if add {
                v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, row));
                v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, row_hi));
            }
            _mm512_mask_storeu_ps(row, m0, v0);
            _mm512_mask_storeu_ps(row_hi, m1, v1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every edge case of the tiling (shapes around MR, NR, KC, MC; transposed views; empty
    /// accumulation) against a naive f64 product, on one thread and two.
    #[test]
    fn matches_a_naive_product_on_every_edge() {
        if !available() {
            eprintln!("skipped: this processor has no AVX-512");
            return;
        }
        let mut seed = 1u64;
        let mut rnd = move || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        };
        let shapes = [(1, 1, 1), (12, 32, 256), (13, 33, 257), (11, 31, 255), (100, 10, 800), (121, 70, 300), (7, 2100, 5), (250, 40, 3)];
        for &(m, n, k) in &shapes {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let av: Vec<f32> = (0..m * k).map(|_| rnd()).collect();
                let bv: Vec<f32> = (0..k * n).map(|_| rnd()).collect();
                let a = if ta { Mat::new(&av, k, m).t() } else { Mat::new(&av, m, k) };
                let b = if tb { Mat::new(&bv, n, k).t() } else { Mat::new(&bv, k, n) };
                let naive: Vec<f64> = (0..m * n)
                    .map(|e| (0..k).map(|p| a.data[e / n * a.rs + p * a.cs] as f64 * b.data[p * b.rs + e % n * b.cs] as f64).sum())
                    .collect();
                for threads in [1, 2] {
                    let start: Vec<f32> = (0..m * n).map(|_| rnd()).collect();
                    for accumulate in [false, true] {
                        let mut c = start.clone();
                        gemm(&mut c, a, b, accumulate, threads);
                        for (e, (&got, &want)) in c.iter().zip(&naive).enumerate() {
                            let want = want + if accumulate { start[e] as f64 } else { 0.0 };
                            assert!(
                                (got as f64 - want).abs() <= 1e-5 * (k as f64).sqrt().max(1.0),
                                "({m}×{k})·({k}×{n}) ta={ta} tb={tb} threads={threads} acc={accumulate}: C[{e}] = {got}, want {want}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// The split over threads changes no bit of the result.
    #[test]
    fn one_thread_and_two_give_the_same_bits() {
        if !available() {
            return;
        }
        let (m, n, k) = (300, 800, 700);
        let av: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
        let bv: Vec<f32> = (0..k * n).map(|i| ((i * 104729) % 997) as f32 / 997.0 - 0.5).collect();
        let (mut c1, mut c2) = (vec![0.0; m * n], vec![0.0; m * n]);
        gemm(&mut c1, Mat::new(&av, m, k), Mat::new(&bv, k, n), false, 1);
        gemm(&mut c2, Mat::new(&av, m, k), Mat::new(&bv, k, n), false, 2);
        assert!(c1 == c2);
    }
}
