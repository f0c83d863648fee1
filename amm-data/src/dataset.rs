//! The in-memory dataset types and the registry of loadable datasets.

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

/// A registered dataset, as listed by [`datasets`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatasetInfo {
    /// The name [`load`] accepts.
    pub name: &'static str,
    /// One paragraph: what it is, the files it needs, where to get them.
    pub doc: &'static str,
    /// Whether [`load`] needs a path (when `default_path` is `None` or absent on disk).
    pub needs_path: bool,
    /// Where the data is looked for when no path is given.
    pub default_path: Option<&'static str>,
}

const DATASETS: &[DatasetInfo] = &[
    DatasetInfo {
        name: "digits",
        doc: "UCI optical handwritten digits, 8x8 grey images (values 0..16, scaled to [0,1]), 10 \
              classes, 1,297 train / 500 test (fixed stratified split). Embedded: needs no files.",
        needs_path: false,
        default_path: None,
    },
    DatasetInfo {
        name: "fashion-mnist",
        doc: "Fashion-MNIST, 28x28 grey images, 10 classes, 60,000 train / 10,000 test. Four IDX \
              files (gzipped or not): train-images-idx3-ubyte, train-labels-idx1-ubyte, \
              t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte. `apt-get install \
              dataset-fashion-mnist` puts them in the default path.",
        needs_path: false,
        default_path: Some(crate::idx::FASHION_MNIST_DEFAULT),
    },
    DatasetInfo {
        name: "mnist",
        doc: "MNIST, 28x28 grey images, 10 classes, 60,000 train / 10,000 test. A directory with \
              the four IDX files (gzipped or not) from http://yann.lecun.com/exdb/mnist/ (or a \
              mirror).",
        needs_path: true,
        default_path: None,
    },
    DatasetInfo {
        name: "cifar10",
        doc: "CIFAR-10, 32x32 colour images, 10 classes, 50,000 train / 10,000 test. The binary \
              version (cifar-10-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html), \
              extracted: a directory with data_batch_1.bin .. data_batch_5.bin and test_batch.bin \
              (or its cifar-10-batches-bin/ subdirectory).",
        needs_path: true,
        default_path: None,
    },
    DatasetInfo {
        name: "cifar100",
        doc: "CIFAR-100, 32x32 colour images, 100 (fine) classes, 50,000 train / 10,000 test. The \
              binary version (cifar-100-binary.tar.gz from \
              https://www.cs.toronto.edu/~kriz/cifar.html), extracted: a directory with train.bin \
              and test.bin (or its cifar-100-binary/ subdirectory).",
        needs_path: true,
        default_path: None,
    },
    DatasetInfo {
        name: "svhn",
        doc: "SVHN cropped digits, 32x32 colour images, 10 classes, 73,257 train / 26,032 test. A \
              directory with train_32x32.mat and test_32x32.mat (MATLAB v5) from \
              http://ufldl.stanford.edu/housenumbers/ (label 10 is read as digit 0).",
        needs_path: true,
        default_path: None,
    },
    DatasetInfo {
        name: "csv",
        doc: "Your own tabular data: a directory with train.csv and test.csv, a header row, numeric \
              feature columns and a last column named `label` holding class indices 0, 1, ... \
              Features are used as they are (no scaling).",
        needs_path: true,
        default_path: None,
    },
    DatasetInfo {
        name: "toy2d",
        doc: "The paper's synthetic 2D problem: two classes uniform in rectangles \
              ([-1.5,-0.5]x[0,2] and [0.5,1.5]x[-2,0]), 200 train + 200 test points per class, \
              generated from a fixed seed. The largest possible margin is 0.5. Needs no files.",
        needs_path: false,
        default_path: None,
    },
];

/// All datasets [`load`] knows, in the order a user should consider them.
pub fn datasets() -> &'static [DatasetInfo] {
    DATASETS
}

/// Loads the dataset registered as `name` from `path` (a directory; `None` uses the default
/// location, if the dataset has one).
///
/// Every failure (missing, truncated or corrupt file, bad values) is a [`DataError`] naming the
/// file, the problem and the fix.
pub fn load(name: &str, path: Option<&Path>) -> Result<Dataset, DataError> {
    let ds = match name {
        "digits" | "toy2d" if path.is_some() => {
            let p = path.map(|p| p.display().to_string()).unwrap_or_default();
            return Err(DataError::new(format!(
                "{name} is built into amm and reads no files, but a path was given ({p}); drop `:{p}` (or data.path)"
            )));
        }
        "digits" => crate::digits::load_digits(),
        "toy2d" => Ok(crate::toy2d::load_toy2d()),
        "mnist" => crate::idx::load_mnist(require_path(name, path)?),
        "fashion-mnist" => crate::idx::load_fashion_mnist(path),
        "cifar10" => crate::cifar::load_cifar10(require_path(name, path)?),
        "cifar100" => crate::cifar::load_cifar100(require_path(name, path)?),
        "svhn" => crate::svhn::load_svhn(require_path(name, path)?),
        "csv" => crate::csv::load_csv(require_path(name, path)?),
        _ => {
            let names: Vec<&str> = DATASETS.iter().map(|d| d.name).collect();
            let mut msg = format!("unknown dataset `{name}`; known: {}", names.join(", "));
            if let Some(s) = suggest(name, &names) {
                msg = format!("{msg} (did you mean `{s}`?)");
            }
            return Err(DataError::new(msg));
        }
    }?;
    ds.validate()?;
    Ok(ds)
}

fn require_path<'a>(name: &str, path: Option<&'a Path>) -> Result<&'a Path, DataError> {
    path.ok_or_else(|| {
        let doc = DATASETS.iter().find(|d| d.name == name).map(|d| d.doc).unwrap_or("");
        DataError::new(format!("{name}: no data directory given; pass the directory that holds the files. {doc}"))
    })
}

/// The closest known name by edit distance, if it is close enough to be a typo.
fn suggest<'a>(name: &str, names: &[&'a str]) -> Option<&'a str> {
    fn lev(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1; b.len() + 1];
            for (j, &cb) in b.iter().enumerate() {
                cur[j + 1] = (prev[j] + usize::from(ca != cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
            }
            prev = cur;
        }
        prev[b.len()]
    }
    let lower = name.to_ascii_lowercase().replace('_', "-");
    names.iter().map(|n| (lev(&lower, n), *n)).min().filter(|(d, n)| *d <= 2.max(n.len() / 3)).map(|(_, n)| n)
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

    #[test]
    fn registry_lists_all_and_unknown_suggests() {
        let names: Vec<_> = datasets().iter().map(|d| d.name).collect();
        for n in ["digits", "fashion-mnist", "mnist", "cifar10", "cifar100", "svhn", "csv", "toy2d"] {
            assert!(names.contains(&n), "{n}");
        }
        let e = load("fashion_mnist", None).unwrap_err().to_string();
        assert!(e.contains("unknown dataset") && e.contains("did you mean `fashion-mnist`"));
        let e = load("cifar", None).unwrap_err().to_string();
        assert!(e.contains("cifar10"), "{e}");
    }

    #[test]
    fn path_required() {
        for n in ["mnist", "cifar10", "cifar100", "svhn", "csv"] {
            let e = load(n, None).unwrap_err().to_string();
            assert!(e.contains("no data directory"), "{e}");
        }
    }

    #[test]
    fn validate_catches_inconsistency() {
        let mut ds = Dataset {
            name: "t".into(),
            shape: vec![2],
            classes: 2,
            train: Split { x: vec![0.; 4], y: vec![0, 1] },
            test: Split { x: vec![0.; 2], y: vec![1] },
            domain: None,
        };
        assert!(ds.validate().is_ok());
        ds.train.y[1] = 2;
        assert!(ds.validate().unwrap_err().to_string().contains("out of range"));
        ds.train.y = vec![0, 0];
        let e = ds.validate().unwrap_err().to_string();
        assert!(e.contains("at least two classes"), "{e}");
        ds.train.y = vec![0, 1];
        ds.test = Split::default();
        assert!(ds.validate().unwrap_err().to_string().contains("empty test set"));
        ds.train.y = vec![0];
        assert!(ds.validate().is_err());
    }

    #[test]
    fn builtin_datasets_take_no_path() {
        for n in ["digits", "toy2d"] {
            let e = load(n, Some(Path::new("/nonexistent"))).unwrap_err().to_string();
            assert!(e.contains("reads no files") && e.contains("/nonexistent"), "{e}");
        }
    }
}
