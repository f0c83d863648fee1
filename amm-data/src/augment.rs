//! Training-time augmentation for image batches: random crop with zero padding and random
//! horizontal flip (the paper's CIFAR setting; SVHN uses the crop only, MNIST nothing).

use crate::rng::Rng;

/// Augments every sample of the batch `x` (sample-major, each sample `shape = [C, H, W]`
/// row-major) in place:
///
/// * **crop** (`crop_pad > 0`): the image is padded by `crop_pad` zeros on each side and an
///   `H × W` window is cut at a uniformly random offset, i.e. the image shifts by
///   `dy, dx ∈ [-crop_pad, crop_pad]` with the uncovered border set to 0 (the mean after mean
///   subtraction);
/// * **flip** (`flip`): with probability 0.5 the image is mirrored left–right.
///
/// All channels of a sample get the same crop and flip. The draws per sample are, in order,
/// `dy`, `dx` (only when `crop_pad > 0`) and the flip coin (only when `flip`), so a batch is
/// reproducible from the generator state. Shapes other than `[C, H, W]`, and trailing values
/// that do not fill a whole sample, are left untouched.
pub fn augment_batch(x: &mut [f32], shape: &[usize], crop_pad: usize, flip: bool, rng: &mut Rng) {
    let &[c, h, w] = shape else {
        return;
    };
    let d = c * h * w;
    if d == 0 || (crop_pad == 0 && !flip) {
        return;
    }
    let mut scratch = vec![0f32; d];
    for sample in x.chunks_exact_mut(d) {
        let (dy, dx) = if crop_pad > 0 {
            let r = 2 * crop_pad as u64 + 1;
            (rng.below(r) as isize - crop_pad as isize, rng.below(r) as isize - crop_pad as isize)
        } else {
            (0, 0)
        };
        let mirror = flip && rng.next_u64() >> 63 == 1;
        if dy == 0 && dx == 0 && !mirror {
            continue;
        }
        // out(i, j) = in(i + dy, j' + dx) with j' = j, or w-1-j when mirrored after the crop
        scratch.copy_from_slice(sample);
        for ch in 0..c {
            let src = &scratch[ch * h * w..(ch + 1) * h * w];
            let dst = &mut sample[ch * h * w..(ch + 1) * h * w];
            for i in 0..h {
                let si = i as isize + dy;
                let row = &mut dst[i * w..(i + 1) * w];
                if si < 0 || si >= h as isize {
                    row.fill(0.0);
                    continue;
                }
                let srow = &src[si as usize * w..(si as usize + 1) * w];
                for (j, out) in row.iter_mut().enumerate() {
                    let jj = if mirror { w - 1 - j } else { j };
                    let sj = jj as isize + dx;
                    *out = if sj < 0 || sj >= w as isize { 0.0 } else { srow[sj as usize] };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: usize, c: usize, h: usize, w: usize) -> Vec<f32> {
        (0..n * c * h * w).map(|i| i as f32 + 1.0).collect()
    }

    #[test]
    fn flip_only_mirrors_or_keeps() {
        let (n, c, h, w) = (64, 2, 3, 5);
        let orig = batch(n, c, h, w);
        let mut x = orig.clone();
        augment_batch(&mut x, &[c, h, w], 0, true, &mut Rng::new(1));
        let d = c * h * w;
        let mut flipped = 0;
        for k in 0..n {
            let o = &orig[k * d..(k + 1) * d];
            let a = &x[k * d..(k + 1) * d];
            let mut mirror = o.to_vec();
            for row in mirror.chunks_exact_mut(w) {
                row.reverse();
            }
            if a == o {
            } else if a == &mirror[..] {
                flipped += 1;
            } else {
                panic!("sample {k} is neither kept nor mirrored");
            }
        }
        assert!((16..=48).contains(&flipped), "{flipped}");
        // mirroring twice restores
        let mut once = orig[..d].to_vec();
        let mut rng = Rng::new(0);
        while once == orig[..d] {
            augment_batch(&mut once, &[c, h, w], 0, true, &mut rng);
        }
        let mut twice = once.clone();
        for row in twice.chunks_exact_mut(w) {
            row.reverse();
        }
        assert_eq!(twice, orig[..d]);
    }

    #[test]
    fn crop_shifts_with_zero_padding() {
        let (n, c, h, w, p) = (200, 3, 6, 7, 2);
        let orig = batch(n, c, h, w);
        let mut x = orig.clone();
        augment_batch(&mut x, &[c, h, w], p, false, &mut Rng::new(5));
        assert_eq!(x.len(), orig.len());
        let d = c * h * w;
        let mut shifts = std::collections::HashSet::new();
        for k in 0..n {
            let o = &orig[k * d..(k + 1) * d];
            let a = &x[k * d..(k + 1) * d];
            // find the shift that explains the sample
            let mut found = None;
            'search: for dy in -(p as isize)..=p as isize {
                for dx in -(p as isize)..=p as isize {
                    let ok = (0..c).all(|ch| {
                        (0..h).all(|i| {
                            (0..w).all(|j| {
                                let (si, sj) = (i as isize + dy, j as isize + dx);
                                let want = if si < 0 || sj < 0 || si >= h as isize || sj >= w as isize {
                                    0.0
                                } else {
                                    o[ch * h * w + si as usize * w + sj as usize]
                                };
                                a[ch * h * w + i * w + j] == want
                            })
                        })
                    });
                    if ok {
                        found = Some((dy, dx));
                        break 'search;
                    }
                }
            }
            shifts.insert(found.expect("every sample is a shifted copy"));
        }
        assert_eq!(shifts.len(), 25, "all shifts occur");
    }

    #[test]
    fn deterministic_and_noop_cases() {
        let orig = batch(8, 3, 4, 4);
        let mut a = orig.clone();
        let mut b = orig.clone();
        augment_batch(&mut a, &[3, 4, 4], 1, true, &mut Rng::new(3));
        augment_batch(&mut b, &[3, 4, 4], 1, true, &mut Rng::new(3));
        assert_eq!(a, b);
        let mut c = orig.clone();
        augment_batch(&mut c, &[3, 4, 4], 0, false, &mut Rng::new(3));
        assert_eq!(c, orig);
        let mut v = orig.clone();
        augment_batch(&mut v, &[48], 2, true, &mut Rng::new(3));
        assert_eq!(v, orig, "vectors are not images");
        let mut e: Vec<f32> = vec![];
        augment_batch(&mut e, &[3, 4, 4], 2, true, &mut Rng::new(3));
    }
}
