//! Aggregation: which samples of the batch the regularizer acts on (DESIGN.md §1.2).

/// Chooses the regularized samples from their ρ.
pub trait Aggregation: Send + Sync {
    /// Indices of the samples to regularize. `rho[i]` is NaN for samples left out (the attack
    /// failed and `failed=drop`); `correct[i]` tells whether the clean prediction was right.
    fn select(&self, rho: &[f64], correct: &[bool], labels: &[u32]) -> Vec<usize>;
    /// Whether it keeps few samples, so that a second, graph-building pass over only those pays.
    fn selects_few(&self) -> bool;
    /// Whether a sample's selection depends on that sample alone (its ρ and correctness), so
    /// that a training step may run the batch in chunks, one chunk's graph alive at a time.
    fn per_sample(&self) -> bool {
        false
    }
    fn describe(&self) -> String;
}

/// `avg`: every sample (Deep Defense).
#[derive(Clone, Debug, Default)]
pub struct Avg;

impl Aggregation for Avg {
    fn select(&self, rho: &[f64], _correct: &[bool], _labels: &[u32]) -> Vec<usize> {
        (0..rho.len()).filter(|&i| !rho[i].is_nan()).collect()
    }
    fn selects_few(&self) -> bool {
        false
    }
    fn per_sample(&self) -> bool {
        true
    }
    fn describe(&self) -> String {
        "avg".into()
    }
}

/// `min(class, frac, misclassified)`: the authors' MIN.
///
/// Correct samples: the per-class argmin of ρ (over the correct samples of each label)
/// intersected with the `⌊frac·B⌋` smallest ρ among correct samples. Misclassified samples: the
/// per-class argmax intersected with the `⌊frac·B⌋` largest among misclassified samples, or all of
/// them with `misclassified=all`. An empty intersection keeps the single best candidate.
#[derive(Clone, Debug)]
pub struct Min {
    pub frac: f64,
    pub all_misclassified: bool,
}

impl Min {
    /// Per-label extreme ∩ the `k` most extreme of `pool`; `smallest` picks the direction.
    fn pick(&self, pool: &[usize], rho: &[f64], labels: &[u32], k: usize, smallest: bool) -> Vec<usize> {
        if pool.is_empty() {
            return Vec::new();
        }
        let better = |a: usize, b: usize| if smallest { rho[a] < rho[b] } else { rho[a] > rho[b] };
        let mut per_class: std::collections::BTreeMap<u32, usize> = Default::default();
        for &i in pool {
            let e = per_class.entry(labels[i]).or_insert(i);
            if better(i, *e) {
                *e = i;
            }
        }
        let mut ranked = pool.to_vec();
        ranked.sort_by(|&a, &b| {
            let o = rho[a].total_cmp(&rho[b]);
            (if smallest { o } else { o.reverse() }).then(a.cmp(&b))
        });
        ranked.truncate(k);
        let mut out: Vec<usize> = per_class.values().copied().filter(|i| ranked.contains(i)).collect();
        if out.is_empty() {
            let best = per_class.values().copied().reduce(|a, b| if better(b, a) { b } else { a });
            out.extend(best);
        }
        out.sort_unstable();
        out
    }
}

impl Aggregation for Min {
    fn select(&self, rho: &[f64], correct: &[bool], labels: &[u32]) -> Vec<usize> {
        let k = ((self.frac * rho.len() as f64).floor() as usize).max(1);
        let valid = |i: &usize| !rho[*i].is_nan();
        let right: Vec<usize> = (0..rho.len()).filter(valid).filter(|&i| correct[i]).collect();
        let wrong: Vec<usize> = (0..rho.len()).filter(valid).filter(|&i| !correct[i]).collect();
        let mut out = self.pick(&right, rho, labels, k, true);
        if self.all_misclassified {
            out.extend(wrong);
        } else {
            out.extend(self.pick(&wrong, rho, labels, k, false));
        }
        out.sort_unstable();
        out
    }
    fn selects_few(&self) -> bool {
        true
    }
    fn describe(&self) -> String {
        format!("min(class, {}, misclassified={})", self.frac, if self.all_misclassified { "all" } else { "argmax" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avg_keeps_every_valid_sample() {
        let rho = [0.5, f64::NAN, 0.1];
        assert_eq!(Avg.select(&rho, &[true, true, false], &[0, 1, 2]), vec![0, 2]);
    }

    #[test]
    fn min_is_per_class_argmin_within_the_smallest_fraction() {
        // 10 samples, frac 0.2 -> k = 2. Correct: labels 0,0,1,1,2 with rho .1 .5 .3 .2 .9
        let rho = [0.1, 0.5, 0.3, 0.2, 0.9, 1.0, 2.0, 3.0, 0.7, 5.0];
        let correct = [true, true, true, true, true, false, false, false, false, false];
        let labels = [0, 0, 1, 1, 2, 0, 0, 1, 2, 2];
        let m = Min { frac: 0.2, all_misclassified: false };
        // correct: class argmins {0 (0.1), 3 (0.2), 4 (0.9)} ∩ two smallest {0, 3} = {0, 3}
        // wrong: class argmax {6 (2.0), 7 (3.0), 9 (5.0)} ∩ two largest {9, 7} = {7, 9}
        assert_eq!(m.select(&rho, &correct, &labels), vec![0, 3, 7, 9]);
        let all = Min { frac: 0.2, all_misclassified: true };
        assert_eq!(all.select(&rho, &correct, &labels), vec![0, 3, 5, 6, 7, 8, 9]);
    }

    #[test]
    fn min_skips_failed_samples_and_handles_empty_pools() {
        let m = Min { frac: 0.5, all_misclassified: false };
        assert_eq!(m.select(&[f64::NAN, 0.3], &[true, true], &[0, 0]), vec![1]);
        assert!(m.select(&[f64::NAN], &[true], &[0]).is_empty());
    }
}
