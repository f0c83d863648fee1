//! The in-memory dataset types, and the description of a loadable dataset (the table of them is
//! in catalog.rs).

use std::path::Path;

use crate::error::DataError;

/// One part of a dataset (train, validation or test): features and labels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Split {
    /// `len() * prod(shape)` features, sample-major, each sample row-major (`[C,H,W]` for
    /// images).
    pub x: Vec<f32>,
    /// One class index per sample.
    pub y: Vec<u32>,
}

impl Split {
    /// The number of samples.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Features per sample (`x.len() / len()`; 0 for an empty split).
    pub fn dim(&self) -> usize {
        self.x.len().checked_div(self.y.len()).unwrap_or(0)
    }

    /// The features of sample `i`.
    ///
    /// # Panics
    /// If `i >= len()`.
    pub fn sample(&self, i: usize) -> &[f32] {
        let d = self.dim();
        &self.x[i * d..(i + 1) * d]
    }

    /// A new split made of the samples at `indices`, in that order (repeats allowed).
    ///
    /// # Panics
    /// If an index is `>= len()`.
    pub fn subset(&self, indices: &[usize]) -> Split {
        let d = self.dim();
        let mut x = Vec::with_capacity(indices.len() * d);
        let mut y = Vec::with_capacity(indices.len());
        for &i in indices {
            x.extend_from_slice(&self.x[i * d..(i + 1) * d]);
            y.push(self.y[i]);
        }
        Split { x, y }
    }
}

/// A loaded dataset, before preparation (see [`crate::prepare()`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// The registered name (`"fashion-mnist"`, ...).
    pub name: String,
    /// The shape of one sample: `[C, H, W]` for images, `[D]` for feature vectors.
    pub shape: Vec<usize>,
    /// The number of classes; labels are `0..classes`.
    pub classes: usize,
    /// The training part.
    pub train: Split,
    /// The test part.
    pub test: Split,
    /// The valid input range before mean subtraction: `Some((0.0, 1.0))` for images, `None`
    /// when inputs are unbounded (csv, toy2d).
    pub domain: Option<(f32, f32)>,
}

impl Dataset {
    /// Features per sample (`prod(shape)`).
    pub fn dim(&self) -> usize {
        self.shape.iter().product()
    }

    /// Checks the invariants every loader guarantees: feature counts match the shape, labels
    /// are `< classes`, neither part is empty, and the training part holds at least two classes.
    pub fn validate(&self) -> Result<(), DataError> {
        let d = self.dim();
        if d == 0 {
            return Err(DataError::new(format!("{}: sample shape {:?} has no features", self.name, self.shape)));
        }
        if self.classes == 0 {
            return Err(DataError::new(format!("{}: zero classes", self.name)));
        }
        for (part, s) in [("train", &self.train), ("test", &self.test)] {
            if s.x.len() != s.y.len() * d {
                return Err(DataError::new(format!(
                    "{}: {part} split has {} features for {} samples of shape {:?}",
                    self.name,
                    s.x.len(),
                    s.y.len(),
                    self.shape
                )));
            }
            if let Some(&bad) = s.y.iter().find(|&&l| l as usize >= self.classes) {
                return Err(DataError::new(format!("{}: {part} label {bad} out of range (classes = {})", self.name, self.classes)));
            }
        }
        if self.train.is_empty() {
            return Err(DataError::new(format!("{}: empty training set", self.name)));
        }
        if self.test.is_empty() {
            return Err(DataError::new(format!("{}: empty test set", self.name)));
        }
        // A single class trains "successfully" to a margin of 0: a data error, not a result.
        // (Loaders that infer the class count from labels, like csv, also refuse test labels the
        // training set lacks; datasets with a fixed class list may hold them in tiny subsets.)
        if self.train.y.iter().all(|&l| l == self.train.y[0]) {
            return Err(DataError::new(format!(
                "{}: every training sample has label {}: a classifier needs at least two classes",
                self.name, self.train.y[0]
            )));
        }
        Ok(())
    }
}

/// A registered dataset, as listed by [`datasets`](crate::datasets).
#[derive(Debug, Clone, Copy)]
pub struct DatasetInfo {
    /// The name [`load`](crate::load) accepts.
    pub name: &'static str,
    /// One paragraph: what it is, the files it needs, where to get them.
    pub doc: &'static str,
    /// Whether [`load`](crate::load) needs a path (when `default_path` is `None` or absent on disk).
    pub needs_path: bool,
    /// Where the data is looked for when no path is given.
    pub default_path: Option<&'static str>,
    /// Reads it from a directory (`None`: its default place, or nothing for the built-in ones).
    pub load: fn(Option<&Path>) -> Result<Dataset, DataError>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_subset_and_sample() {
        let s = Split { x: vec![0., 1., 2., 3., 4., 5.], y: vec![0, 1, 2] };
        assert_eq!(s.len(), 3);
        assert_eq!(s.dim(), 2);
        assert_eq!(s.sample(1), &[2., 3.]);
        let t = s.subset(&[2, 0, 2]);
        assert_eq!(t.x, vec![4., 5., 0., 1., 4., 5.]);
        assert_eq!(t.y, vec![2, 0, 2]);
        assert!(Split::default().is_empty());
        assert_eq!(Split::default().dim(), 0);
    }
}
