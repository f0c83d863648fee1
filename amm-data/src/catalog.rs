//! The datasets amm can load, by name: each entry names its loader (the loader modules know
//! nothing of this table), with its documentation and where its files are looked for.
use crate::dataset::{Dataset, DatasetInfo};
use crate::error::DataError;
use std::path::Path;

const DATASETS: &[DatasetInfo] = &[
    DatasetInfo {
        name: "digits",
        load: digits,
        doc: "UCI optical handwritten digits, 8x8 grey images (values 0..16, scaled to [0,1]), 10 \
              classes, 1,297 train / 500 test (fixed stratified split). Embedded: needs no files.",
        needs_path: false,
        default_path: None,
    },
    DatasetInfo {
        name: "fashion-mnist",
        load: fashion_mnist,
        doc: "Fashion-MNIST, 28x28 grey images, 10 classes, 60,000 train / 10,000 test. Four IDX \
              files (gzipped or not): train-images-idx3-ubyte, train-labels-idx1-ubyte, \
              t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte. `apt-get install \
              dataset-fashion-mnist` puts them in the default path.",
        needs_path: false,
        default_path: Some(crate::idx::FASHION_MNIST_DEFAULT),
    },
    DatasetInfo {
        name: "mnist",
        load: mnist,
        doc: "MNIST, 28x28 grey images, 10 classes, 60,000 train / 10,000 test. A directory with \
              the four IDX files (gzipped or not) from http://yann.lecun.com/exdb/mnist/ (or a \
              mirror).",
        needs_path: true,
        default_path: None,
    },
    DatasetInfo {
        name: "cifar10",
        load: cifar10,
        doc: "CIFAR-10, 32x32 colour images, 10 classes, 50,000 train / 10,000 test. The binary \
              version (cifar-10-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html), \
              extracted: a directory with data_batch_1.bin .. data_batch_5.bin and test_batch.bin \
              (or its cifar-10-batches-bin/ subdirectory).",
        needs_path: true,
        default_path: None,
    },
    DatasetInfo {
        name: "cifar100",
        load: cifar100,
        doc: "CIFAR-100, 32x32 colour images, 100 (fine) classes, 50,000 train / 10,000 test. The \
              binary version (cifar-100-binary.tar.gz from \
              https://www.cs.toronto.edu/~kriz/cifar.html), extracted: a directory with train.bin \
              and test.bin (or its cifar-100-binary/ subdirectory).",
        needs_path: true,
        default_path: None,
    },
    DatasetInfo {
        name: "svhn",
        load: svhn,
        doc: "SVHN cropped digits, 32x32 colour images, 10 classes, 73,257 train / 26,032 test. A \
              directory with train_32x32.mat and test_32x32.mat (MATLAB v5) from \
              http://ufldl.stanford.edu/housenumbers/ (label 10 is read as digit 0).",
        needs_path: true,
        default_path: None,
    },
    DatasetInfo {
        name: "csv",
        load: csv,
        doc: "Your own tabular data: a directory with train.csv and test.csv, a header row, numeric \
              feature columns and a last column named `label` holding class indices 0, 1, ... \
              Features are used as they are (no scaling).",
        needs_path: true,
        default_path: None,
    },
    DatasetInfo {
        name: "toy2d",
        load: toy2d,
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
    let Some(info) = DATASETS.iter().find(|d| d.name == name) else {
        let names: Vec<&str> = DATASETS.iter().map(|d| d.name).collect();
        let mut msg = format!("unknown dataset `{name}`; known: {}", names.join(", "));
        if let Some(s) = suggest(name, &names) {
            msg = format!("{msg} (did you mean `{s}`?)");
        }
        return Err(DataError::new(msg));
    };
    let ds = (info.load)(path)?;
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

fn refuse_path(name: &str, path: Option<&Path>) -> Result<(), DataError> {
    match path {
        Some(p) => {
            let p = p.display().to_string();
            Err(DataError::new(format!(
                "{name} is built into amm and reads no files, but a path was given ({p}); drop `:{p}` (or data.path)"
            )))
        }
        None => Ok(()),
    }
}
fn digits(path: Option<&Path>) -> Result<Dataset, DataError> {
    refuse_path("digits", path)?;
    crate::digits::load_digits()
}
fn toy2d(path: Option<&Path>) -> Result<Dataset, DataError> {
    refuse_path("toy2d", path)?;
    Ok(crate::toy2d::load_toy2d())
}
fn mnist(path: Option<&Path>) -> Result<Dataset, DataError> {
    crate::idx::load_mnist(require_path("mnist", path)?)
}
fn fashion_mnist(path: Option<&Path>) -> Result<Dataset, DataError> {
    crate::idx::load_fashion_mnist(path)
}
fn cifar10(path: Option<&Path>) -> Result<Dataset, DataError> {
    crate::cifar::load_cifar10(require_path("cifar10", path)?)
}
fn cifar100(path: Option<&Path>) -> Result<Dataset, DataError> {
    crate::cifar::load_cifar100(require_path("cifar100", path)?)
}
fn svhn(path: Option<&Path>) -> Result<Dataset, DataError> {
    crate::svhn::load_svhn(require_path("svhn", path)?)
}
fn csv(path: Option<&Path>) -> Result<Dataset, DataError> {
    crate::csv::load_csv(require_path("csv", path)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Split;

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
