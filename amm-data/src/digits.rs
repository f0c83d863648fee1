//! The UCI optical handwritten digits (8×8, values 0..16), embedded in the crate so the
//! quick-start needs no download. See `data/README.md` for provenance and licence (CC BY 4.0).

use crate::dataset::{Dataset, Split};
use crate::error::DataError;
use crate::rng::Rng;

/// `digits.csv.gz` as shipped by scikit-learn: 1,797 rows of 64 pixel values and a label.
static DIGITS_CSV_GZ: &[u8] = include_bytes!("../data/digits.csv.gz");

/// Samples in the embedded file.
pub const DIGITS_SAMPLES: usize = 1797;
/// Size of the fixed test part (the rest, 1,297 samples, is the training part).
pub const DIGITS_TEST: usize = 500;
/// Seed of the fixed stratified train/test split (independent of the run seed).
pub const DIGITS_SPLIT_SEED: u64 = 20_181_128;

/// Loads the embedded digits: shape `[1, 8, 8]`, values `/16` in `[0, 1]`, 10 classes,
/// 1,297 train / 500 test by a fixed stratified split (each part in file order).
pub fn load_digits() -> Result<Dataset, DataError> {
    let name = "digits";
    let path = std::path::Path::new("<embedded data/digits.csv.gz>");
    let raw = crate::error::gunzip(name, path, DIGITS_CSV_GZ)?;
    let text = std::str::from_utf8(&raw).map_err(|_| DataError::file(name, path, "not UTF-8 text"))?;
    let mut all = Split::default();
    for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let bad = |m: &str| DataError::file(name, path, format_args!("line {}: {m}", i + 1));
        let mut n = 0;
        for cell in line.split(',') {
            let v: f64 = cell.trim().parse().map_err(|_| bad("non-numeric cell"))?;
            if n < 64 {
                if !(0.0..=16.0).contains(&v) {
                    return Err(bad("pixel outside 0..16"));
                }
                all.x.push((v / 16.0) as f32);
            } else if n == 64 {
                if !(0.0..10.0).contains(&v) || v.fract() != 0.0 {
                    return Err(bad("label outside 0..9"));
                }
                all.y.push(v as u32);
            }
            n += 1;
        }
        if n != 65 {
            return Err(bad("expected 65 columns"));
        }
    }
    if all.len() != DIGITS_SAMPLES {
        return Err(DataError::file(name, path, format_args!("{} samples, expected {DIGITS_SAMPLES}", all.len())));
    }
    let (train_idx, test_idx) = stratified_split(&all.y, 10, DIGITS_TEST, DIGITS_SPLIT_SEED);
    Ok(Dataset {
        name: name.into(),
        shape: vec![1, 8, 8],
        classes: 10,
        train: all.subset(&train_idx),
        test: all.subset(&test_idx),
        domain: Some((0.0, 1.0)),
    })
}

/// Splits indices into (rest, held) with `held` samples taken per class in proportion to the
/// class sizes (largest remainders get the leftovers), chosen by `seed`; both sorted.
pub(crate) fn stratified_split(labels: &[u32], classes: usize, held: usize, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (i, &y) in labels.iter().enumerate() {
        by_class[y as usize].push(i);
    }
    let n = labels.len();
    let mut quota: Vec<usize> = by_class.iter().map(|c| c.len() * held / n).collect();
    let mut left = held - quota.iter().sum::<usize>();
    let mut order: Vec<usize> = (0..classes).collect();
    // largest fractional remainder first, ties by class index
    order.sort_by_key(|&c| std::cmp::Reverse((by_class[c].len() * held) % n));
    for &c in order.iter().cycle().take(classes * 2) {
        if left == 0 {
            break;
        }
        if quota[c] < by_class[c].len() {
            quota[c] += 1;
            left -= 1;
        }
    }
    let mut rng = Rng::new(seed);
    let (mut rest, mut out) = (Vec::new(), Vec::new());
    for (c, idx) in by_class.iter_mut().enumerate() {
        rng.shuffle(idx);
        out.extend_from_slice(&idx[..quota[c]]);
        rest.extend_from_slice(&idx[quota[c]..]);
    }
    rest.sort_unstable();
    out.sort_unstable();
    (rest, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_1797_samples_10_classes_fixed_split() {
        let ds = crate::load("digits", None).unwrap();
        assert_eq!(ds.train.len() + ds.test.len(), 1797);
        assert_eq!(ds.train.len(), 1297);
        assert_eq!(ds.test.len(), 500);
        assert_eq!(ds.classes, 10);
        assert_eq!(ds.shape, vec![1, 8, 8]);
        assert_eq!(ds.domain, Some((0.0, 1.0)));
        assert!(ds.train.x.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!(ds.train.x.contains(&1.0));
        // stratified: every class is represented in test about in proportion (~50 each)
        let mut counts = [0usize; 10];
        for &y in &ds.test.y {
            counts[y as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (48..=53).contains(&c)), "{counts:?}");
        // fixed: loading twice gives the same split
        assert_eq!(ds, load_digits().unwrap());
        // the first sample of the file (sklearn's digits.images[0]) is a 0; the parts keep file
        // order, so it is the first sample of one of them
        let head: Vec<f32> = [0., 0., 5., 13., 9., 1., 0., 0.].iter().map(|v| v / 16.).collect();
        let first = if ds.train.sample(0)[..8] == head[..] {
            ds.train.y[0]
        } else {
            assert_eq!(ds.test.sample(0)[..8], head[..]);
            ds.test.y[0]
        };
        assert_eq!(first, 0);
    }

    #[test]
    fn stratified_split_exact_sizes() {
        let labels: Vec<u32> = (0..103).map(|i| (i % 7 == 0) as u32).collect();
        let (rest, held) = stratified_split(&labels, 2, 20, 1);
        assert_eq!(held.len(), 20);
        assert_eq!(rest.len(), 83);
        let ones = held.iter().filter(|&&i| labels[i] == 1).count();
        assert!((2..=4).contains(&ones), "{ones}");
    }
}
