//! Datasets for amm: loading in the standard formats, preparation (validation hold-out,
//! training subsets, label noise, mean subtraction), augmentation, and the project-wide
//! deterministic RNG. No tensors here: everything is plain `Vec<f32>` / `Vec<u32>`.
//!
//! ```
//! use amm_data::{load, prepare, PrepareOptions};
//! let ds = load("digits", None).unwrap(); // embedded: needs no files
//! let p = prepare(ds, &PrepareOptions { val_size: 100, ..Default::default() }).unwrap();
//! assert_eq!((p.train.len(), p.val.len(), p.test.len()), (1197, 100, 500));
//! ```
//!
//! Registered datasets ([`datasets`]): `digits`, `fashion-mnist`, `mnist`, `cifar10`,
//! `cifar100`, `svhn`, `csv`, `toy2d`. Every loader checks its files and fails with a
//! [`DataError`] that names the file, the problem and the fix.

#![warn(missing_docs)]

pub mod augment;
pub mod catalog;
pub mod cifar;
pub mod csv;
pub mod dataset;
pub mod digits;
pub mod error;
pub mod idx;
pub mod mat;
pub mod prepare;
pub mod rng;
pub mod svhn;
pub mod toy2d;

pub use augment::augment_batch;
pub use catalog::{datasets, load};
pub use dataset::{Dataset, DatasetInfo, Split};
pub use error::DataError;
pub use idx::FASHION_MNIST_DEFAULT;
pub use prepare::{prepare, PrepareOptions, Prepared};
pub use rng::Rng;
pub use toy2d::TOY2D_MAX_MARGIN;

#[cfg(test)]
mod tests {
    /// The crate-level example (doctests cannot run under the workspace's `prefer-dynamic`).
    #[test]
    fn crate_example() {
        use crate::{load, prepare, PrepareOptions};
        let ds = load("digits", None).unwrap();
        let p = prepare(ds, &PrepareOptions { val_size: 100, ..Default::default() }).unwrap();
        assert_eq!((p.train.len(), p.val.len(), p.test.len()), (1197, 100, 500));
        let mut a = crate::Rng::new(7);
        a.next_u64();
        let mut b = crate::Rng::from_state(a.state());
        assert_eq!(a.next_u64(), b.next_u64());
    }
}
