//! Group normalisation as three kernels closed under differentiation, plus the per-channel
//! affine map that follows it.
//!
//! Written in candle's ops, one GroupNorm layer costs about 10 ops forward and 25 backward, each a
//! pass over the activation with a fresh allocation, and candle's reductions over the strided
//! axes of a broadcast are slow: in ResNet-20 that was most of a cross-entropy step. Here, over
//! `(N, C, ...)` split into `G` groups of `m = C/G · H·W` contiguous entries per sample:
//! - [`group_normalize`]: `x̂ = (x − μ)·s` with `s = 1/√(σ² + ε)` per group;
//! - [`group_inv_std`]: `s`, `(N, G)`;
//! - [`group_norm_vjp`]: `D(u, x̂, s) = s·(u − mean(u) − x̂·mean(u·x̂))`, the VJP of the
//!   normalisation; it is also [`group_normalize`]'s backward, and it is differentiable in all
//!   three operands (its backward is made of candle's ops and of itself);
//! - [`channel_affine`]: `x·γ_c (+ β_c)`, and [`channel_dot`]: `Σ_{n, i} g·x` per channel, its
//!   γ-gradient. Both are linear in each operand, so their backward passes are each other.
//!
//! [`group_norm_backward`] is the first-order backward of the whole layer in one pass per group,
//! for the hand-written backward of a training step (`backward.rs`), which needs no graph.
//!
//! Each takes f32 or f64 on the CPU; the layer keeps its candle-op form for other devices.
use super::{on_cpu, slice, Store};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;

/// The first-order backward of `y = γ_c·x̂ + β_c`, `x̂ = normalize(x)` over `groups` groups, for
/// the output cotangent `g`: `(gx, gγ, gβ)`, the values of [`group_norm_vjp`] of `γ·g`,
/// [`channel_dot`] of `(g, x̂)` and [`channel_sum`](super::channel_sum) of `g`. Fused, one group at
/// a time while it is in cache: the composition reads the activations nine times. Not
/// differentiable (no graph): the data loss of a training step needs first order only. Takes f32
/// or f64 CPU tensors of one dtype (`x`, `x̂`, `g` of one shape, `γ` of `C` entries).
pub fn group_norm_backward(
    x: &Tensor,
    xhat: &Tensor,
    g: &Tensor,
    gamma: &Tensor,
    groups: usize,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let name = "group-norm-backward";
    let dims = x.dims().to_vec();
    if xhat.dims() != dims
        || g.dims() != dims
        || dims.len() < 2
        || gamma.dims() != [dims[1]]
        || groups == 0
        || !dims[1].is_multiple_of(groups)
    {
        candle_core::bail!(
            "{name}: input {dims:?}, x̂ {:?}, cotangent {:?} and γ {:?} do not fit {groups} groups",
            xhat.dims(),
            g.dims(),
            gamma.dims()
        );
    }
    let plane = dims[2..].iter().product::<usize>();
    let (x, xhat, g, gamma) = (x.contiguous()?, xhat.contiguous()?, g.contiguous()?, gamma.contiguous()?);
    let dev = x.device().clone();
    let parts = [x.storage_and_layout(), xhat.storage_and_layout(), g.storage_and_layout(), gamma.storage_and_layout()];
    let parts: [(&Storage, &Layout); 4] = std::array::from_fn(|i| (&*parts[i].0, parts[i].1));
    match x.dtype() {
        DType::F32 => tensors(fused::<f32>(parts, groups, plane, eps, name)?, &dims, &dev),
        DType::F64 => tensors(fused::<f64>(parts, groups, plane, eps, name)?, &dims, &dev),
        _ => candle_core::bail!("{name}: f32 or f64 CPU tensors of one dtype only"),
    }
}

/// [`backward`] on the CPU storages of `x`, `x̂`, `g` and `γ`, all of dtype `T`.
fn fused<T: Real + candle_core::WithDType>(
    parts: [(&Storage, &Layout); 4],
    groups: usize,
    plane: usize,
    eps: f64,
    name: &str,
) -> Result<(Vec<T>, Vec<T>, Vec<T>)> {
    let mut s = [&[][..]; 4];
    for (s, (storage, layout)) in s.iter_mut().zip(parts) {
        let Some(v) = (match storage {
            Storage::Cpu(cpu) => cpu.as_slice::<T>().ok(),
            _ => None,
        }) else {
            candle_core::bail!("{name}: f32 or f64 CPU tensors of one dtype only")
        };
        *s = slice(v, layout, name)?;
    }
    Ok(backward(s[0], s[1], s[2], s[3], groups, plane, eps))
}

/// `(gx, gγ, gβ)` as tensors of `dims`, `C` and `C`.
fn tensors<T: candle_core::WithDType>(
    (gx, dw, db): (Vec<T>, Vec<T>, Vec<T>),
    dims: &[usize],
    dev: &candle_core::Device,
) -> Result<(Tensor, Tensor, Tensor)> {
    let c = dw.len();
    Ok((Tensor::from_vec(gx, dims, dev)?, Tensor::from_vec(dw, c, dev)?, Tensor::from_vec(db, c, dev)?))
}

/// [`group_norm_backward`] on slices: per (sample, group) of `m = C/G · plane` entries, the
/// statistics of `x`, then `Σ g` and `Σ g·x̂` per channel, then `gx`; the per-channel sums are
/// added over the samples in order (the result does not depend on the number of threads).
fn backward<T: Real>(x: &[T], xhat: &[T], g: &[T], gamma: &[T], groups: usize, plane: usize, eps: f64) -> (Vec<T>, Vec<T>, Vec<T>) {
    let c = gamma.len();
    let (cpg, m) = (c / groups, c / groups * plane);
    // SAFETY: every group's `m` entries are written by the closure below.
    let mut gx: Vec<T> = unsafe { super::uninit(x.len()) };
    if m == 0 {
        return (gx, vec![T::default(); c], vec![T::default(); c]);
    }
    let group = |i: usize, out: &mut [T]| -> Vec<(f64, f64)> {
        let (xg, hg, gg) = (&x[i * m..][..m], &xhat[i * m..][..m], &g[i * m..][..m]);
        let (_, inv) = stats(xg, eps);
        // Per channel of the group: (Σ g, Σ g·x̂); with u = γ·g, Σu and Σu·x̂ follow.
        let sums: Vec<(f64, f64)> = (0..cpg)
            .map(|j| {
                let (gc, hc) = (&gg[j * plane..][..plane], &hg[j * plane..][..plane]);
                (sum(gc), block_sum(gc, hc, |g, h| g * h))
            })
            .collect();
        let ch0 = (i % groups) * cpg;
        let (mut su, mut suh) = (0.0, 0.0);
        for (j, (sg, sgh)) in sums.iter().enumerate() {
            let w: f64 = gamma[ch0 + j].into();
            su += w * sg;
            suh += w * sgh;
        }
        let (mu, a, s) = (T::from_f64(su / m as f64), T::from_f64(suh / m as f64), T::from_f64(inv));
        for j in 0..cpg {
            let w = gamma[ch0 + j];
            let (o, gc, hc) = (&mut out[j * plane..][..plane], &gg[j * plane..][..plane], &hg[j * plane..][..plane]);
            o.iter_mut().zip(gc.iter().zip(hc)).for_each(|(o, (&g, &h))| *o = s * (w * g - mu - h * a));
        }
        sums
    };
    let sums = per_group(&mut gx, m, group);
    let (mut dgamma, mut dbeta) = (vec![0f64; c], vec![0f64; c]);
    for (i, s) in sums.iter().enumerate() {
        for (j, (sg, sgh)) in s.iter().enumerate() {
            let ch = (i % groups) * cpg + j;
            dbeta[ch] += sg;
            dgamma[ch] += sgh;
        }
    }
    (gx, dgamma.into_iter().map(T::from_f64).collect(), dbeta.into_iter().map(T::from_f64).collect())
}

/// Whether the kernels here take `x` (rank ≥ 2, f32 or f64, on the CPU).
pub fn norm_fits(x: &Tensor) -> bool {
    on_cpu(x) && x.rank() >= 2
}

/// `x̂ = (x − μ_g)/√(σ²_g + eps)` over the `groups` channel groups of each sample (biased σ²).
/// Its backward is [`group_norm_vjp`] with [`group_inv_std`].
pub fn group_normalize(x: &Tensor, groups: usize, eps: f64) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Normalize { groups, eps })
}

/// `1/√(σ²_g + eps)` per sample and group, `(N, G)`.
pub fn group_inv_std(x: &Tensor, groups: usize, eps: f64) -> Result<Tensor> {
    x.contiguous()?.apply_op1(InvStd { groups, eps })
}

/// `s·(u − mean_g(u) − x̂·mean_g(u·x̂))`: the VJP of [`group_normalize`] for the cotangent `u`,
/// given the normalised input `x̂` (same shape as `u`) and `s` `(N, G)` of [`group_inv_std`].
pub fn group_norm_vjp(u: &Tensor, xhat: &Tensor, inv: &Tensor, groups: usize) -> Result<Tensor> {
    if u.shape() != xhat.shape() || inv.dims() != [u.dim(0)?, groups] {
        candle_core::bail!(
            "group-norm-vjp: cotangent {:?}, normalised input {:?} and scale {:?} do not fit {groups} groups",
            u.dims(),
            xhat.dims(),
            inv.dims()
        );
    }
    u.contiguous()?.apply_op3(&xhat.contiguous()?, &inv.contiguous()?, Vjp { groups })
}

/// `x·γ_c + β_c` over `(N, C, ...)`, `γ` and `β` of shape `(C)`.
pub fn channel_affine(x: &Tensor, gamma: &Tensor, beta: Option<&Tensor>) -> Result<Tensor> {
    let (x, gamma) = (x.contiguous()?, gamma.contiguous()?);
    match beta {
        Some(b) => x.apply_op3(&gamma, &b.contiguous()?, Affine),
        None => x.apply_op2(&gamma, Affine),
    }
}

/// `Σ_{n, i} g[n, c, i]·x[n, c, i]` per channel `c`: `(N, C, ...)` twice → `(C)`.
pub fn channel_dot(g: &Tensor, x: &Tensor) -> Result<Tensor> {
    if g.shape() != x.shape() {
        candle_core::bail!("channel-dot: operands of shapes {:?} and {:?}", g.dims(), x.dims());
    }
    g.contiguous()?.apply_op2(&x.contiguous()?, Dot)
}

/// `(N, C, plane)` of a rank ≥ 2 layout.
fn ncp(l: &Layout, kernel: &str) -> Result<(usize, usize, usize)> {
    let d = l.dims();
    if d.len() < 2 {
        candle_core::bail!("{kernel}: expects an (N, C, ...) input, got {d:?}");
    }
    Ok((d[0], d[1], d[2..].iter().product()))
}

/// Group size `m` of `groups` groups over a rank ≥ 2 layout, or an error.
fn group_len(l: &Layout, groups: usize, kernel: &str) -> Result<usize> {
    let (n, c, _) = ncp(l, kernel)?;
    if groups == 0 || !c.is_multiple_of(groups) {
        candle_core::bail!("{kernel}: {c} channels cannot be split into {groups} groups");
    }
    Ok(l.shape().elem_count() / (n * groups).max(1))
}

/// `Σ f(a[i], b[i])`, accumulated in `T` in 8 lanes within blocks of 256 entries and in f64
/// across blocks: f32 arithmetic in independent lanes vectorises, where a conversion to f64 per
/// entry and one running sum (a chain of dependent adds) cost GroupNorm's kernels half their
/// time; the blocks are short enough that f32 partial sums stay accurate.
fn block_sum<T: Real>(a: &[T], b: &[T], f: impl Fn(T, T) -> T) -> f64 {
    let mut total = 0.0;
    for (a, b) in a.chunks(256).zip(b.chunks(256)) {
        let mut lanes = [T::default(); 8];
        for (a8, b8) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
            for l in 0..8 {
                lanes[l] += f(a8[l], b8[l]);
            }
        }
        let tail = a.len() - a.len() % 8;
        let mut t = lanes.into_iter().fold(T::default(), |s, v| s + v);
        for (&x, &y) in a[tail..].iter().zip(&b[tail..]) {
            t += f(x, y);
        }
        total += t.into();
    }
    total
}

fn sum<T: Real>(v: &[T]) -> f64 {
    block_sum(v, v, |x, _| x)
}

/// `(mean, 1/√(var + eps))` of one group (two passes: the variance of centred values).
fn stats<T: Real>(g: &[T], eps: f64) -> (f64, f64) {
    let m = g.len().max(1) as f64;
    let mean = sum(g) / m;
    let mt = T::from_f64(mean);
    let var = block_sum(g, g, |x, _| (x - mt) * (x - mt)) / m;
    (mean, 1.0 / (var + eps).sqrt())
}

/// Runs `f(group index, group)` over the groups of `out` (`m` entries each), in parallel when
/// there is enough work; returns what `f` returned, in group order.
fn per_group<T: Send, R: Send>(out: &mut [T], m: usize, f: impl Fn(usize, &mut [T]) -> R + Sync + Send) -> Vec<R> {
    if m == 0 {
        return Vec::new();
    }
    if out.len() >= super::CHUNK {
        out.par_chunks_mut(m).with_min_len((super::CHUNK / m).max(1)).enumerate().map(|(i, c)| f(i, c)).collect()
    } else {
        out.chunks_mut(m).enumerate().map(|(i, c)| f(i, c)).collect()
    }
}

/// What the statistics need of a [`Store`] type besides its arithmetic: a lossless way to f64,
/// where they are summed.
pub(super) trait Real: Store + Into<f64> {}
impl<T: Store + Into<f64>> Real for T {}

fn normalize<T: Real>(x: &[T], m: usize, eps: f64) -> Vec<T> {
    // SAFETY: `per_group` hands every group's entries to the closure, which writes them all.
    let mut out = unsafe { super::uninit(x.len()) };
    per_group(&mut out, m, |i, o| {
        let g = &x[i * m..][..m];
        let (mean, inv) = stats(g, eps);
        let (mean, inv) = (T::from_f64(mean), T::from_f64(inv));
        o.iter_mut().zip(g).for_each(|(o, &x)| *o = (x - mean) * inv);
    });
    out
}

fn inv_std<T: Real>(x: &[T], m: usize, eps: f64) -> Vec<T> {
    let groups = x.len().checked_div(m).unwrap_or(0);
    let f = |i: usize| T::from_f64(stats(&x[i * m..][..m], eps).1);
    if x.len() >= super::CHUNK {
        (0..groups).into_par_iter().map(f).collect()
    } else {
        (0..groups).map(f).collect()
    }
}

fn vjp<T: Real>(u: &[T], xhat: &[T], inv: &[T], m: usize) -> Vec<T> {
    // SAFETY: `per_group` hands every group's entries to the closure, which writes them all.
    let mut out = unsafe { super::uninit(u.len()) };
    per_group(&mut out, m, |i, o| {
        let (ug, xg) = (&u[i * m..][..m], &xhat[i * m..][..m]);
        let mf = m as f64;
        let mu = T::from_f64(sum(ug) / mf);
        let a = T::from_f64(block_sum(ug, xg, |u, x| u * x) / mf);
        let s = inv[i];
        o.iter_mut().zip(ug.iter().zip(xg)).for_each(|(o, (&u, &x))| *o = s * (u - mu - x * a));
    });
    out
}

fn affine<T: Real>(x: &[T], gamma: &[T], beta: Option<&[T]>, plane: usize) -> Vec<T> {
    let c = gamma.len();
    // SAFETY: `per_group` hands every group's entries to the closure, which writes them all.
    let mut out = unsafe { super::uninit(x.len()) };
    per_group(&mut out, plane, |i, o| {
        let (g, b) = (gamma[i % c], beta.map_or(T::default(), |b| b[i % c]));
        o.iter_mut().zip(&x[i * plane..][..plane]).for_each(|(o, &x)| *o = x * g + b);
    });
    out
}

fn dot<T: Real>(g: &[T], x: &[T], c: usize, plane: usize) -> Vec<T> {
    channel_totals(g, x, c, plane, |g, x| g * x)
}

/// `out[ch] = Σ f(a, b)` over the planes of channel `ch` (`a`, `b`: `(N, C, plane)`). The planes
/// are summed in parallel (one running sum over them all used one core) and their totals added
/// in plane order, so the result does not depend on the number of threads.
pub(super) fn channel_totals<T: Real>(a: &[T], b: &[T], c: usize, plane: usize, f: impl Fn(T, T) -> T + Sync) -> Vec<T> {
    let mut acc = vec![0f64; c];
    if plane > 0 && c > 0 {
        let totals: Vec<f64> = a
            .par_chunks_exact(plane)
            .zip(b.par_chunks_exact(plane))
            .with_min_len((super::CHUNK / plane).max(1))
            .map(|(a, b)| block_sum(a, b, &f))
            .collect();
        for (i, t) in totals.into_iter().enumerate() {
            acc[i % c] += t;
        }
    }
    acc.into_iter().map(T::from_f64).collect()
}

struct Normalize {
    groups: usize,
    eps: f64,
}

impl CustomOp1 for Normalize {
    fn name(&self) -> &'static str {
        "group-normalize"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (name, m) = (self.name(), group_len(l, self.groups, self.name())?);
        let out = typed!(name, (s), |x| normalize(slice(x, l, name)?, m, self.eps));
        Ok((out, l.shape().clone()))
    }
    fn bwd(&self, x: &Tensor, xhat: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let inv = group_inv_std(x, self.groups, self.eps)?;
        Ok(Some(group_norm_vjp(g, xhat, &inv, self.groups)?))
    }
}

struct InvStd {
    groups: usize,
    eps: f64,
}

impl CustomOp1 for InvStd {
    fn name(&self) -> &'static str {
        "group-inv-std"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (name, m) = (self.name(), group_len(l, self.groups, self.name())?);
        let out = typed!(name, (s), |x| inv_std(slice(x, l, name)?, m, self.eps));
        Ok((out, (l.dims()[0], self.groups).into()))
    }
    /// `∂s/∂x_j = −s²·x̂_j/m`.
    fn bwd(&self, x: &Tensor, inv: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let (n, m) = (x.dim(0)?, x.elem_count() / (x.dim(0)? * self.groups).max(1));
        let xhat = group_normalize(x, self.groups, self.eps)?.reshape((n, self.groups, m))?;
        let coef = ((g * inv.sqr()?)? * (-1.0 / m as f64))?.unsqueeze(2)?;
        Ok(Some(xhat.broadcast_mul(&coef)?.reshape(x.shape())?))
    }
}

struct Vjp {
    groups: usize,
}

impl CustomOp3 for Vjp {
    fn name(&self) -> &'static str {
        "group-norm-vjp"
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
        let (name, m) = (self.name(), group_len(l1, self.groups, self.name())?);
        let out = typed!(name, (s1, s2, s3), |u, x, s| vjp(slice(u, l1, name)?, slice(x, l2, name)?, slice(s, l3, name)?, m));
        Ok((out, l1.shape().clone()))
    }
    /// With `a = mean(u·x̂)`, `b = mean(gg·x̂)` per group: the map is `s·P u` with `P` symmetric,
    /// so `∂u = D(gg, x̂, s)`; `∂x̂ = −s·(a·gg + b·u)`; `∂s = Σ_group gg·D / s`.
    fn bwd(
        &self,
        u: &Tensor,
        xhat: &Tensor,
        inv: &Tensor,
        d: &Tensor,
        gg: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let gu = if u.track_op() { Some(group_norm_vjp(gg, xhat, inv, self.groups)?) } else { None };
        let (n, g) = (u.dim(0)?, self.groups);
        let m = u.elem_count() / (n * g).max(1);
        let grouped = |t: &Tensor| t.reshape((n, g, m));
        let s = inv.unsqueeze(2)?;
        let gx = if xhat.track_op() {
            let (ug, xg, ggg) = (grouped(u)?, grouped(xhat)?, grouped(gg)?);
            let a = (&ug * &xg)?.mean_keepdim(2)?;
            let b = (&ggg * &xg)?.mean_keepdim(2)?;
            let t = (ggg.broadcast_mul(&a)? + ug.broadcast_mul(&b)?)?;
            Some(t.broadcast_mul(&s)?.neg()?.reshape(u.shape())?)
        } else {
            None
        };
        let gs = if inv.track_op() { Some(((grouped(gg)? * grouped(d)?)?.sum(2)? / inv)?) } else { None };
        Ok((gu, gx, gs))
    }
}

struct Affine;

impl Affine {
    fn check(x: &Layout, p: &Layout, what: &str) -> Result<(usize, usize)> {
        let (_, c, plane) = ncp(x, "channel-affine")?;
        if p.dims() != [c] {
            candle_core::bail!("channel-affine: {what} of shape {:?} for {c} channels", p.dims());
        }
        Ok((c, plane))
    }
    fn grads(x: &Tensor, gamma: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let gx = if x.track_op() { Some(channel_affine(g, gamma, None)?) } else { None };
        let gg = if gamma.track_op() { Some(channel_dot(g, x)?) } else { None };
        Ok((gx, gg))
    }
}

impl CustomOp2 for Affine {
    fn name(&self) -> &'static str {
        "channel-affine"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (name, (_, plane)) = ("channel-affine", Affine::check(l1, l2, "scale")?);
        let out = typed!(name, (s1, s2), |x, g| affine(slice(x, l1, name)?, slice(g, l2, name)?, None, plane));
        Ok((out, l1.shape().clone()))
    }
    fn bwd(&self, x: &Tensor, gamma: &Tensor, _y: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Affine::grads(x, gamma, g)
    }
}

impl CustomOp3 for Affine {
    fn name(&self) -> &'static str {
        "channel-affine"
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
        let name = "channel-affine";
        let (_, plane) = Affine::check(l1, l2, "scale")?;
        Affine::check(l1, l3, "shift")?;
        let out = typed!(name, (s1, s2, s3), |x, g, b| affine(slice(x, l1, name)?, slice(g, l2, name)?, Some(slice(b, l3, name)?), plane));
        Ok((out, l1.shape().clone()))
    }
    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (gx, gg) = Affine::grads(x, gamma, g)?;
        let gb = if beta.track_op() { Some(super::channel_sum(g)?) } else { None };
        Ok((gx, gg, gb))
    }
}

struct Dot;

impl CustomOp2 for Dot {
    fn name(&self) -> &'static str {
        "channel-dot"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let (_, c, plane) = ncp(l1, name)?;
        let out = typed!(name, (s1, s2), |g, x| dot(slice(g, l1, name)?, slice(x, l2, name)?, c, plane));
        Ok((out, c.into()))
    }
    /// Bilinear: `∂g = x·h_c`, `∂x = g·h_c` for the cotangent `h` `(C)`.
    fn bwd(&self, g: &Tensor, x: &Tensor, _y: &Tensor, h: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dg = if g.track_op() { Some(channel_affine(x, h, None)?) } else { None };
        let dx = if x.track_op() { Some(channel_affine(g, h, None)?) } else { None };
        Ok((dg, dx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autograd::second_order_available;
    use candle_core::{Device, Var};

    fn randn(shape: &[usize], seed: u64) -> Tensor {
        let mut rng = crate::data::Rng::new(seed);
        let n: usize = shape.iter().product();
        Tensor::from_vec((0..n).map(|_| rng.normal()).collect::<Vec<f64>>(), shape, &Device::Cpu).unwrap()
    }

    /// GroupNorm with γ, β written in candle's ops: the reference.
    fn reference(x: &Tensor, gamma: &Tensor, beta: &Tensor, groups: usize) -> Tensor {
        let dims = x.dims().to_vec();
        let n = dims[0];
        let xg = x.reshape((n, groups, ())).unwrap();
        let xc = xg.broadcast_sub(&xg.mean_keepdim(2).unwrap()).unwrap();
        let inv = (xc.sqr().unwrap().mean_keepdim(2).unwrap() + 1e-5).unwrap().sqrt().unwrap().recip().unwrap();
        let mut cs = vec![1; dims.len()];
        cs[1] = dims[1];
        xc.broadcast_mul(&inv)
            .unwrap()
            .reshape(dims.as_slice())
            .unwrap()
            .broadcast_mul(&gamma.reshape(cs.as_slice()).unwrap())
            .unwrap()
            .broadcast_add(&beta.reshape(cs).unwrap())
            .unwrap()
    }

    fn ours(x: &Tensor, gamma: &Tensor, beta: &Tensor, groups: usize) -> Tensor {
        channel_affine(&group_normalize(x, groups, 1e-5).unwrap(), gamma, Some(beta)).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f64>().unwrap()
    }

    /// Shapes: rank 4 (groups of several channels), rank 3, rank 2 (one entry per channel), and a
    /// large one that takes the parallel path.
    const CASES: [(&[usize], usize); 4] = [(&[3, 8, 4, 5], 2), (&[2, 6, 7], 3), (&[4, 6], 2), (&[9, 16, 16, 16], 4)];

    /// The value, the first-order gradients in (x, γ, β) and the gradient of the squared
    /// x-gradient (second order, through the kernels' backward) equal candle's ops.
    #[test]
    fn group_norm_matches_candle_to_second_order() {
        assert!(second_order_available().unwrap(), "run the tests through cargo (.cargo/config.toml sets CANDLE_GRAD_DO_NOT_DETACH)");
        for (i, &(shape, groups)) in CASES.iter().enumerate() {
            let c = shape[1];
            let x = Var::from_tensor(&randn(shape, i as u64).affine(1.5, 0.3).unwrap()).unwrap();
            let gamma = Var::from_tensor(&randn(&[c], 10 + i as u64)).unwrap();
            let beta = Var::from_tensor(&randn(&[c], 20 + i as u64)).unwrap();
            let r = randn(shape, 30 + i as u64);
            let (a, b) = (ours(&x, &gamma, &beta, groups), reference(&x, &gamma, &beta, groups));
            assert!(max_diff(&a, &b) < 1e-12, "case {i}: values differ by {}", max_diff(&a, &b));
            // Φ = L + ‖∂L/∂x‖² with L = Σ r·y²: its gradient differentiates the backward again.
            let phi = |y: &Tensor| {
                let l = (y.sqr().unwrap() * &r).unwrap().sum_all().unwrap();
                let gx = l.backward().unwrap().get(x.as_tensor()).unwrap().clone();
                (l + gx.sqr().unwrap().sum_all().unwrap()).unwrap().backward().unwrap()
            };
            let (ga, gb) = (phi(&a), phi(&b));
            for (what, v) in [("x", &x), ("gamma", &gamma), ("beta", &beta)] {
                let (p, q) = (ga.get(v.as_tensor()).unwrap(), gb.get(v.as_tensor()).unwrap());
                let scale = q.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f64>().unwrap().max(1.0);
                assert!(max_diff(p, q) < 1e-9 * scale, "case {i}, {what}: second-order gradients differ by {}", max_diff(p, q));
            }
        }
    }

    /// The VJP kernel is the adjoint of the normalisation's Jacobian (checked by central finite
    /// differences of ⟨u, x̂(x)⟩), and its gradients in (u, x̂, s) match finite differences of
    /// ⟨w, D(u, x̂, s)⟩.
    #[test]
    fn vjp_is_the_adjoint_and_its_gradients_match_finite_differences() {
        let (shape, groups) = ([2usize, 4, 3, 3], 2);
        let x = randn(&shape, 1);
        let u = randn(&shape, 2);
        let xhat = group_normalize(&x, groups, 1e-5).unwrap();
        let inv = group_inv_std(&x, groups, 1e-5).unwrap();
        let d = group_norm_vjp(&u, &xhat, &inv, groups).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let base = x.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let eps = 1e-6;
        for j in [0, 7, 35, 71] {
            let at = |delta: f64| {
                let mut v = base.clone();
                v[j] += delta;
                let xp = Tensor::from_vec(v, &shape, &Device::Cpu).unwrap();
                (group_normalize(&xp, groups, 1e-5).unwrap() * &u).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap()
            };
            let fd = (at(eps) - at(-eps)) / (2.0 * eps);
            assert!((fd - d[j]).abs() < 1e-6 * fd.abs().max(1.0), "entry {j}: finite differences {fd}, vjp {}", d[j]);
        }
        let w = randn(&shape, 3);
        let f = |u: &Tensor, xh: &Tensor, s: &Tensor| (group_norm_vjp(u, xh, s, groups).unwrap() * &w).unwrap().sum_all().unwrap();
        let (uv, xv, sv) = (Var::from_tensor(&u).unwrap(), Var::from_tensor(&xhat).unwrap(), Var::from_tensor(&inv).unwrap());
        let grads = f(&uv, &xv, &sv).backward().unwrap();
        for (k, var) in [&uv, &xv, &sv].into_iter().enumerate() {
            let analytic = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
            let base = var.as_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap();
            for j in [0, base.len() / 2, base.len() - 1] {
                let at = |delta: f64| {
                    let mut v = base.clone();
                    v[j] += delta;
                    let t = Tensor::from_vec(v, var.as_tensor().shape(), &Device::Cpu).unwrap();
                    let args = match k {
                        0 => (t, xhat.clone(), inv.clone()),
                        1 => (u.clone(), t, inv.clone()),
                        _ => (u.clone(), xhat.clone(), t),
                    };
                    f(&args.0, &args.1, &args.2).to_scalar::<f64>().unwrap()
                };
                let fd = (at(eps) - at(-eps)) / (2.0 * eps);
                assert!(
                    (fd - analytic[j]).abs() < 1e-6 * fd.abs().max(1.0),
                    "operand {k}, entry {j}: finite differences {fd}, backward {}",
                    analytic[j]
                );
            }
        }
    }

    /// The fused backward equals candle's backward through the candle-op layer, on every case
    /// (the large one on the parallel path), in f64 and f32.
    #[test]
    fn fused_backward_matches_candle() {
        for (i, &(shape, groups)) in CASES.iter().enumerate() {
            let x = Var::from_tensor(&randn(shape, 40 + i as u64)).unwrap();
            let c = shape[1];
            let (gamma, beta) =
                (Var::from_tensor(&randn(&[c], 50 + i as u64)).unwrap(), Var::from_tensor(&randn(&[c], 60 + i as u64)).unwrap());
            let g = randn(shape, 70 + i as u64);
            let y = reference(x.as_tensor(), gamma.as_tensor(), beta.as_tensor(), groups);
            let grads = (y * &g).unwrap().sum_all().unwrap().backward().unwrap();
            let xhat = group_normalize(x.as_tensor(), groups, 1e-5).unwrap();
            for dtype in [candle_core::DType::F64, candle_core::DType::F32] {
                let t = |t: &Tensor| t.to_dtype(dtype).unwrap();
                let (gx, dg, db) = group_norm_backward(&t(x.as_tensor()), &t(&xhat), &t(&g), &t(gamma.as_tensor()), groups, 1e-5).unwrap();
                let tol = if dtype == candle_core::DType::F64 { 1e-10 } else { 1e-3 };
                for (ours, theirs, what) in [(gx, x.as_tensor(), "x"), (dg, gamma.as_tensor(), "γ"), (db, beta.as_tensor(), "β")] {
                    let theirs = grads.get(theirs).unwrap();
                    let d = max_diff(&ours.to_dtype(candle_core::DType::F64).unwrap(), theirs);
                    let scale = theirs.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f64>().unwrap();
                    assert!(d <= tol * scale.max(1.0), "case {i} {dtype:?}: the {what}-gradient differs by {d}");
                }
            }
        }
        let x = randn(&[2, 4, 3], 1);
        let e = group_norm_backward(&x, &x, &x, &randn(&[3], 1), 2, 1e-5).unwrap_err().to_string();
        assert!(e.contains("group-norm-backward") && e.contains("do not fit 2 groups"), "{e}");
    }

    /// f32 agrees with f64 to f32 rounding; bad shapes are errors that name the kernel.
    #[test]
    fn f32_and_errors() {
        let x = randn(&[4, 8, 6, 6], 5);
        let y64 = group_normalize(&x, 4, 1e-5).unwrap();
        let y32 = group_normalize(&x.to_dtype(candle_core::DType::F32).unwrap(), 4, 1e-5).unwrap();
        assert!(max_diff(&y32.to_dtype(candle_core::DType::F64).unwrap(), &y64) < 1e-5);
        let e = group_normalize(&x, 3, 1e-5).unwrap_err().to_string();
        assert!(e.contains("group-normalize") && e.contains("8 channels cannot be split into 3 groups"), "{e}");
        let e = channel_affine(&x, &randn(&[5], 1), None).unwrap_err().to_string();
        assert!(e.contains("channel-affine") && e.contains("for 8 channels"), "{e}");
        let e = group_norm_vjp(&x, &x, &randn(&[4, 3], 1), 4).unwrap_err().to_string();
        assert!(e.contains("group-norm-vjp"), "{e}");
    }
}
