//! The paper's synthetic 2D problem (Sec. 3.3.3): two classes, each uniformly distributed in
//! an axis-aligned rectangle.
//!
//! The paper's exact rectangles were lost in the text extraction; we use
//!
//! * class 0: uniform in `[-1.5, -0.5] × [0, 2]` (centre `(-1, 1)`),
//! * class 1: uniform in `[0.5, 1.5] × [-2, 0]` (centre `(1, -1)`).
//!
//! The largest possible margin is **0.5**: the vertical line `x = 0` is 0.5 away from the
//! closest edges (`x = -0.5` and `x = 0.5`) and no separator can do better, because the points
//! `(-0.5, 0)` and `(0.5, 0)` belong to the two closures and are 1 apart. The perpendicular
//! bisector of the segment between the class centres, `y = x`, also separates them, but only
//! with margin `0.5 / √2 ≈ 0.354` (the corners `(-0.5, 0)` and `(0.5, 0)` are that close to
//! it). A margin-maximizing method should move the boundary from the latter towards the former.
//!
//! 200 training and 200 test points per class, generated from a fixed seed so that the data is
//! the same in every run (the run seed only affects initialization and shuffling). Classes
//! alternate (sample `i` has label `i % 2`), so any prefix is balanced.

use crate::dataset::{Dataset, Split};
use crate::rng::Rng;

/// The largest margin any classifier can reach on toy2d (the boundary `x = 0`).
pub const TOY2D_MAX_MARGIN: f64 = 0.5;

/// The margin of the bisector `y = x` between the class centres: `0.5 / √2`.
pub const TOY2D_BISECTOR_MARGIN: f64 = std::f64::consts::FRAC_1_SQRT_2 * 0.5;

/// The rectangles as `[x_min, x_max, y_min, y_max]`, indexed by class.
pub const TOY2D_RECTS: [[f64; 4]; 2] = [[-1.5, -0.5, 0.0, 2.0], [0.5, 1.5, -2.0, 0.0]];

/// Points per class in each of the train and test parts.
pub const TOY2D_PER_CLASS: usize = 200;

/// The fixed generator seed.
pub const TOY2D_SEED: u64 = 0x7079_3264; // "toy2d"-ish, never change

/// Generates the toy2d dataset (always the same points).
pub fn load_toy2d() -> Dataset {
    let mut rng = Rng::new(TOY2D_SEED);
    let mut part = || {
        let mut s = Split::default();
        for i in 0..2 * TOY2D_PER_CLASS {
            let c = i % 2;
            let [x0, x1, y0, y1] = TOY2D_RECTS[c];
            s.x.push((x0 + (x1 - x0) * rng.uniform()) as f32);
            s.x.push((y0 + (y1 - y0) * rng.uniform()) as f32);
            s.y.push(c as u32);
        }
        s
    };
    let train = part();
    let test = part();
    Dataset { name: "toy2d".into(), shape: vec![2], classes: 2, train, test, domain: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_and_determinism() {
        let ds = crate::load("toy2d", None).unwrap();
        assert_eq!(ds, load_toy2d());
        assert_eq!(ds.train.len(), 400);
        assert_eq!(ds.test.len(), 400);
        assert_ne!(ds.train, ds.test);
        let mut min_dist_vertical = f64::INFINITY;
        let mut min_dist_bisector = f64::INFINITY;
        for s in [&ds.train, &ds.test] {
            assert_eq!(s.y.iter().filter(|&&y| y == 0).count(), 200);
            for i in 0..s.len() {
                let p = s.sample(i);
                let [x0, x1, y0, y1] = TOY2D_RECTS[s.y[i] as usize];
                let (x, y) = (p[0] as f64, p[1] as f64);
                assert!(x >= x0 && x <= x1 && y >= y0 && y <= y1, "{p:?} {}", s.y[i]);
                min_dist_vertical = min_dist_vertical.min(x.abs());
                min_dist_bisector = min_dist_bisector.min((x - y).abs() / 2f64.sqrt());
            }
        }
        // Both separators separate the data; the vertical line has the larger margin.
        assert!(min_dist_vertical >= TOY2D_MAX_MARGIN - 1e-6);
        assert!(min_dist_bisector >= TOY2D_BISECTOR_MARGIN - 1e-6);
        assert!(min_dist_vertical > min_dist_bisector);
        assert!((TOY2D_BISECTOR_MARGIN - 0.353_553).abs() < 1e-5);
    }
}
