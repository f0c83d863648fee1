//! Turning a loaded [`Dataset`] into the parts a run trains on: validation hold-out, training
//! subset, label noise, test subset and mean subtraction — all determined by one seed.

use crate::dataset::{Dataset, Split};
use crate::error::DataError;
use crate::rng::Rng;

/// How to prepare a dataset (see [`prepare`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PrepareOptions {
    /// Seed of every random choice below (the validation hold-out, the training subset, the
    /// label noise); each step draws from its own [`Rng::fork`] stream, so changing one option
    /// does not reshuffle the others.
    pub seed: u64,
    /// Keep this many training samples (after the validation hold-out), class-balanced where
    /// the classes allow it. `None` keeps all.
    pub train_size: Option<usize>,
    /// Keep the first this-many test samples (no shuffle). `None` keeps all.
    pub test_size: Option<usize>,
    /// Probability, in `[0, 1)`, that a training label is replaced by a uniformly random
    /// *other* class. Validation and test labels are never touched.
    pub label_noise: f64,
    /// Training samples held out as the validation set (0 for none).
    pub val_size: usize,
    /// Subtract the per-feature mean of the final training part from every part (the paper's
    /// only normalization; there is no std scaling).
    pub mean_subtract: bool,
}

impl Default for PrepareOptions {
    /// Seed 0, everything kept, no noise, no validation, mean subtraction on.
    fn default() -> Self {
        PrepareOptions { seed: 0, train_size: None, test_size: None, label_noise: 0.0, val_size: 0, mean_subtract: true }
    }
}

/// A dataset ready for training.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// The dataset's registered name.
    pub name: String,
    /// Shape of one sample (`[C, H, W]` or `[D]`).
    pub shape: Vec<usize>,
    /// Number of classes.
    pub classes: usize,
    /// The training part (subset, noisy labels, mean-subtracted).
    pub train: Split,
    /// The validation part (clean labels, mean-subtracted); empty when `val_size` is 0.
    pub val: Split,
    /// The test part (first `test_size` samples, mean-subtracted).
    pub test: Split,
    /// The per-feature mean that was subtracted (computed on the final training part), if any.
    /// Add it back to recover the original inputs.
    pub mean: Option<Vec<f32>>,
    /// The valid input range *before* mean subtraction (see [`Dataset::domain`]): after
    /// preparation feature `j` lies in `[lo - mean[j], hi - mean[j]]`.
    pub domain: Option<(f32, f32)>,
    /// How many training labels the label noise changed.
    pub noisy_labels: usize,
}

impl Prepared {
    /// Features per sample.
    pub fn dim(&self) -> usize {
        self.shape.iter().product()
    }

    /// Re-centres every part on `mean` (`None`: the raw inputs) instead of the mean it was
    /// prepared with: what a saved model was trained with, which need not be what this data
    /// preparation computed (another training subset, a model trained elsewhere).
    pub fn use_mean(&mut self, mean: Option<Vec<f32>>) -> Result<(), String> {
        let d = self.dim();
        if let Some(m) = &mean {
            if m.len() != d {
                return Err(format!("the model's input mean has {} features, the data {d}", m.len()));
            }
        }
        let old = self.mean.take();
        // shift = old − new, so that x − old + shift = x − new.
        let shift: Vec<f32> = (0..d).map(|j| old.as_ref().map_or(0.0, |o| o[j]) - mean.as_ref().map_or(0.0, |m| m[j])).collect();
        if shift.iter().any(|&s| s != 0.0) {
            for split in [&mut self.train, &mut self.val, &mut self.test] {
                for row in split.x.chunks_mut(d) {
                    for (v, &s) in row.iter_mut().zip(&shift) {
                        *v += s;
                    }
                }
            }
        }
        self.mean = mean;
        Ok(())
    }
}

/// Prepares `ds` according to `opts`, deterministically from `opts.seed`:
///
/// 1. hold out `val_size` training samples (a seeded random choice) as the validation set;
/// 2. keep `train_size` of the remaining training samples (seeded; as class-balanced as the
///    class sizes allow, the remainder spread over random classes);
/// 3. replace each training label, with probability `label_noise`, by a uniformly random other
///    class;
/// 4. keep the first `test_size` test samples;
/// 5. subtract the per-feature training mean from all parts (if `mean_subtract`).
///
/// Samples keep their original relative order in every part.
///
/// Errors: `label_noise` outside `[0, 1)`, `val_size` not smaller than the training set,
/// `train_size` of 0 or larger than what is left after the hold-out, `test_size` larger than
/// the test set, label noise with fewer than two classes, or an inconsistent dataset.
pub fn prepare(mut ds: Dataset, opts: &PrepareOptions) -> Result<Prepared, DataError> {
    ds.validate()?;
    let name = ds.name.clone();
    let err = |m: String| DataError::new(format!("{name}: {m}"));
    if !(opts.label_noise >= 0.0 && opts.label_noise < 1.0) {
        return Err(err(format!("label_noise {} must be in [0, 1) (a fraction of training labels)", opts.label_noise)));
    }
    if opts.label_noise > 0.0 && ds.classes < 2 {
        return Err(err("label noise needs at least two classes".into()));
    }
    let n = ds.train.len();
    if opts.val_size >= n {
        return Err(err(format!("val_size {} must be smaller than the training set ({n} samples)", opts.val_size)));
    }
    let root = Rng::new(opts.seed);

    // 1. validation hold-out
    let (mut rest_idx, val_idx) = if opts.val_size > 0 {
        let mut perm = root.fork(1).permutation(n);
        let mut val = perm.split_off(n - opts.val_size);
        val.sort_unstable();
        perm.sort_unstable();
        (perm, val)
    } else {
        ((0..n).collect::<Vec<_>>(), Vec::new())
    };

    // 2. training subset
    if let Some(k) = opts.train_size {
        if k == 0 {
            return Err(err("train_size must be at least 1".into()));
        }
        if k > rest_idx.len() {
            return Err(err(format!(
                "train_size {k} is larger than the {} training samples available{}",
                rest_idx.len(),
                if opts.val_size > 0 { format!(" after holding out {} for validation", opts.val_size) } else { String::new() }
            )));
        }
        rest_idx = balanced_subset(&rest_idx, &ds.train.y, ds.classes, k, &mut root.fork(2));
    }
    // Keeping the whole training set (the common case) moves it instead of copying it: a copy
    // would double the peak memory of a Fashion-MNIST run.
    let (mut train, mut val) = if val_idx.is_empty() && rest_idx.len() == n {
        (std::mem::take(&mut ds.train), Split::default())
    } else {
        (ds.train.subset(&rest_idx), ds.train.subset(&val_idx))
    };

    // 3. label noise
    let mut noisy_labels = 0;
    if opts.label_noise > 0.0 {
        let mut rng = root.fork(3);
        let k = ds.classes as u64;
        for y in train.y.iter_mut() {
            if rng.uniform() < opts.label_noise {
                let mut other = rng.below(k - 1) as u32;
                if other >= *y {
                    other += 1;
                }
                *y = other;
                noisy_labels += 1;
            }
        }
    }

    // 4. test subset
    let mut test = ds.test;
    if let Some(k) = opts.test_size {
        if k > test.len() {
            return Err(err(format!("test_size {k} is larger than the test set ({} samples)", test.len())));
        }
        let d = ds.shape.iter().product::<usize>();
        test.x.truncate(k * d);
        test.y.truncate(k);
    }

    // 5. mean subtraction
    let mean = if opts.mean_subtract {
        let d = ds.shape.iter().product::<usize>();
        let mut acc = vec![0f64; d];
        for row in train.x.chunks_exact(d) {
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += v as f64;
            }
        }
        let mean: Vec<f32> = acc.iter().map(|&a| (a / train.len() as f64) as f32).collect();
        for part in [&mut train, &mut val, &mut test] {
            for row in part.x.chunks_exact_mut(d) {
                for (v, &m) in row.iter_mut().zip(&mean) {
                    *v -= m;
                }
            }
        }
        Some(mean)
    } else {
        None
    };

    Ok(Prepared { name: ds.name, shape: ds.shape, classes: ds.classes, train, val, test, mean, domain: ds.domain, noisy_labels })
}

/// Picks `k` of `idx` (indices into `labels`) as evenly over the classes as their sizes allow
/// (water-filling: every class gets `k / classes` or all it has, the rest is shared among the
/// classes with samples left, leftover single samples going to random classes). Returns the
/// chosen indices sorted.
fn balanced_subset(idx: &[usize], labels: &[u32], classes: usize, k: usize, rng: &mut Rng) -> Vec<usize> {
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for &i in idx {
        by_class[labels[i] as usize].push(i);
    }
    let mut quota = vec![0usize; classes];
    let mut left = k;
    loop {
        let open: Vec<usize> = (0..classes).filter(|&c| quota[c] < by_class[c].len()).collect();
        if left == 0 || open.is_empty() {
            break;
        }
        let share = left / open.len();
        if share == 0 {
            let mut open = open;
            rng.shuffle(&mut open);
            for &c in &open[..left] {
                quota[c] += 1;
            }
            break;
        }
        for c in open {
            let add = share.min(by_class[c].len() - quota[c]);
            quota[c] += add;
            left -= add;
        }
    }
    let mut out = Vec::with_capacity(k);
    for (c, members) in by_class.iter_mut().enumerate() {
        rng.shuffle(members);
        out.extend_from_slice(&members[..quota[c]]);
    }
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` samples of dimension 3, labels cycling over `classes` (or skewed), features encode
    /// the sample index.
    fn synthetic(n: usize, classes: usize) -> Dataset {
        let mut train = Split::default();
        for i in 0..n {
            train.x.extend([i as f32, (i % 5) as f32, 1.0]);
            train.y.push((i % classes) as u32);
        }
        let mut test = Split::default();
        for i in 0..50 {
            test.x.extend([-(i as f32), 2.0, 3.0]);
            test.y.push((i % classes) as u32);
        }
        Dataset { name: "syn".into(), shape: vec![3], classes, train, test, domain: None }
    }

    fn opts(seed: u64) -> PrepareOptions {
        PrepareOptions { seed, train_size: Some(100), test_size: Some(20), label_noise: 0.2, val_size: 30, mean_subtract: true }
    }

    #[test]
    fn deterministic_in_seed() {
        let a = prepare(synthetic(500, 10), &opts(1)).unwrap();
        let b = prepare(synthetic(500, 10), &opts(1)).unwrap();
        let c = prepare(synthetic(500, 10), &opts(2)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a.train, c.train);
        assert_ne!(a.val, c.val);
        // the test subset does not depend on the seed (only the subtracted mean does)
        assert_eq!(a.test.y, c.test.y);
        let (ma, mc) = (a.mean.as_ref().unwrap(), c.mean.as_ref().unwrap());
        for (i, (va, vc)) in a.test.x.iter().zip(&c.test.x).enumerate() {
            assert!((va + ma[i % 3] - (vc + mc[i % 3])).abs() < 1e-4);
        }
        assert_eq!(a.train.len(), 100);
        assert_eq!(a.val.len(), 30);
        assert_eq!(a.test.len(), 20);
    }

    #[test]
    fn parts_are_disjoint_and_balanced() {
        let p = prepare(synthetic(500, 10), &PrepareOptions { mean_subtract: false, label_noise: 0.0, ..opts(3) }).unwrap();
        // feature 0 is the original index
        let tr: Vec<usize> = (0..p.train.len()).map(|i| p.train.sample(i)[0] as usize).collect();
        let va: Vec<usize> = (0..p.val.len()).map(|i| p.val.sample(i)[0] as usize).collect();
        assert!(tr.iter().all(|i| !va.contains(i)));
        assert!(tr.windows(2).all(|w| w[0] < w[1]), "order kept");
        for (i, &orig) in tr.iter().enumerate() {
            assert_eq!(p.train.y[i] as usize, orig % 10, "clean labels follow samples");
        }
        let mut counts = [0; 10];
        for &y in &p.train.y {
            counts[y as usize] += 1;
        }
        assert_eq!(counts, [10; 10]);
        // test: the first 20, in order
        assert_eq!(p.test.sample(3), &[-3.0, 2.0, 3.0]);
    }

    #[test]
    fn balanced_with_a_small_class() {
        // class 0 has only 3 samples; 30 requested over 3 classes -> 3, then 13 + 14 (or 14+13)
        let mut ds = synthetic(300, 3);
        for y in ds.train.y.iter_mut().skip(9) {
            if *y == 0 {
                *y = 1;
            }
        }
        let p = prepare(ds, &PrepareOptions { train_size: Some(30), ..PrepareOptions::default() }).unwrap();
        let mut counts = [0usize; 3];
        for &y in &p.train.y {
            counts[y as usize] += 1;
        }
        assert_eq!(counts[0], 3);
        assert_eq!(counts[1] + counts[2], 27);
        assert!(counts[1].abs_diff(counts[2]) <= 1, "{counts:?}");
    }

    #[test]
    fn label_noise_rate_and_never_same_class() {
        let n = 20_000;
        let ds = synthetic(n, 10);
        let clean = ds.train.y.clone();
        let p =
            prepare(ds, &PrepareOptions { label_noise: 0.3, val_size: 1000, mean_subtract: false, ..PrepareOptions::default() }).unwrap();
        let mut changed = 0;
        let mut other_counts = [0usize; 10];
        for i in 0..p.train.len() {
            let orig = p.train.sample(i)[0] as usize;
            if p.train.y[i] != clean[orig] {
                changed += 1;
                other_counts[p.train.y[i] as usize] += 1;
            }
        }
        assert_eq!(changed, p.noisy_labels, "a flipped label never keeps its class");
        let rate = changed as f64 / p.train.len() as f64;
        assert!((rate - 0.3).abs() < 0.015, "rate {rate}");
        // the new classes are spread over all classes
        assert!(other_counts.iter().all(|&c| c > 400), "{other_counts:?}");
        // validation labels are clean
        for i in 0..p.val.len() {
            let orig = p.val.sample(i)[0] as usize;
            assert_eq!(p.val.y[i], clean[orig]);
        }
    }

    #[test]
    fn use_mean_recentres_every_part_on_the_given_mean() {
        let raw = prepare(synthetic(300, 3), &PrepareOptions { mean_subtract: false, ..opts(1) }).unwrap();
        let mut p = prepare(synthetic(300, 3), &opts(1)).unwrap();
        let given = vec![0.5f32, -1.0, 2.0];
        p.use_mean(Some(given.clone())).unwrap();
        for (a, b) in p.test.x.chunks(3).zip(raw.test.x.chunks(3)) {
            for j in 0..3 {
                assert!((a[j] - (b[j] - given[j])).abs() < 1e-5, "{a:?} vs {b:?}");
            }
        }
        p.use_mean(None).unwrap();
        for (a, b) in p.train.x.iter().zip(&raw.train.x) {
            assert!((a - b).abs() < 1e-5);
        }
        assert!(p.use_mean(Some(vec![0.0; 2])).unwrap_err().contains("2 features"));
    }

    #[test]
    fn mean_subtraction_zero_mean_on_train() {
        let p = prepare(synthetic(400, 4), &opts(9)).unwrap();
        let mean = p.mean.as_ref().unwrap();
        assert_eq!(mean.len(), 3);
        assert_eq!(mean[2], 1.0);
        for j in 0..3 {
            let m: f64 = (0..p.train.len()).map(|i| p.train.sample(i)[j] as f64).sum::<f64>() / p.train.len() as f64;
            assert!(m.abs() < 1e-4, "feature {j} mean {m}");
        }
        // test/val shifted by the same training mean
        assert_eq!(p.test.sample(0)[1], 2.0 - mean[1]);
        assert_eq!(p.test.sample(0)[2], 2.0);
        let q = prepare(synthetic(400, 4), &PrepareOptions { mean_subtract: false, ..opts(9) }).unwrap();
        assert!(q.mean.is_none());
        assert_eq!(q.test.sample(0), &[0.0, 2.0, 3.0]);
    }

    #[test]
    fn impossible_requests_are_errors() {
        let e = |o: PrepareOptions| prepare(synthetic(100, 2), &o).unwrap_err().to_string();
        let d = PrepareOptions::default;
        assert!(e(PrepareOptions { label_noise: 1.0, ..d() }).contains("label_noise"));
        assert!(e(PrepareOptions { label_noise: -0.1, ..d() }).contains("label_noise"));
        assert!(e(PrepareOptions { label_noise: f64::NAN, ..d() }).contains("label_noise"));
        assert!(e(PrepareOptions { val_size: 100, ..d() }).contains("val_size"));
        let m = e(PrepareOptions { val_size: 10, train_size: Some(91), ..d() });
        assert!(m.contains("train_size 91") && m.contains("90"), "{m}");
        assert!(e(PrepareOptions { train_size: Some(0), ..d() }).contains("train_size"));
        assert!(e(PrepareOptions { test_size: Some(51), ..d() }).contains("test_size"));
        let mut one = synthetic(10, 1);
        one.classes = 1;
        let m = prepare(one, &PrepareOptions { label_noise: 0.1, ..d() }).unwrap_err();
        assert!(m.to_string().contains("two classes"));
        // boundaries that are possible
        let p = prepare(synthetic(100, 2), &PrepareOptions { val_size: 99, test_size: Some(50), ..d() }).unwrap();
        assert_eq!((p.train.len(), p.val.len(), p.test.len()), (1, 99, 50));
    }

    #[test]
    fn real_digits_prepare() {
        let ds = crate::load("digits", None).unwrap();
        let p = prepare(ds, &PrepareOptions { val_size: 200, train_size: Some(500), ..PrepareOptions::default() }).unwrap();
        assert_eq!(p.train.len(), 500);
        assert_eq!(p.val.len(), 200);
        assert_eq!(p.test.len(), 500);
        assert_eq!(p.domain, Some((0.0, 1.0)));
    }
}
