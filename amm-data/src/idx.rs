//! MNIST and Fashion-MNIST: the IDX file format (LeCun et al.), gzipped or not.
//!
//! An IDX file is a big-endian header — magic `0x0000_08_0N` (unsigned bytes, `N`
//! dimensions), then `N` u32 sizes — followed by the raw bytes. Images have magic 2051 and
//! dimensions `[n, rows, cols]`; labels have magic 2049 and dimension `[n]`.

use std::path::{Path, PathBuf};

use crate::dataset::{Dataset, Split};
use crate::error::{gunzip, read_file, DataError};

/// Where `apt-get install dataset-fashion-mnist` puts Fashion-MNIST.
pub const FASHION_MNIST_DEFAULT: &str = "/usr/share/datasets/fashion-mnist";

/// Magic number of an IDX file of unsigned-byte 3-D images.
pub const IDX_IMAGES_MAGIC: u32 = 2051;
/// Magic number of an IDX file of unsigned-byte labels.
pub const IDX_LABELS_MAGIC: u32 = 2049;

const MNIST_HINT: &str = "put the four IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, \
     t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, gzipped or not) from \
     http://yann.lecun.com/exdb/mnist/ (or a mirror) there";
const FASHION_HINT: &str = "run `apt-get install dataset-fashion-mnist` (installs to \
     /usr/share/datasets/fashion-mnist) or put the four IDX files (train-images-idx3-ubyte.gz, \
     train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) from \
     https://github.com/zalandoresearch/fashion-mnist there";

/// Loads MNIST from the directory `dir`.
pub fn load_mnist(dir: &Path) -> Result<Dataset, DataError> {
    load_idx_dataset("mnist", dir, MNIST_HINT)
}

/// Loads Fashion-MNIST from `dir`, or from [`FASHION_MNIST_DEFAULT`] when `None`.
pub fn load_fashion_mnist(dir: Option<&Path>) -> Result<Dataset, DataError> {
    let dir = dir.unwrap_or(Path::new(FASHION_MNIST_DEFAULT));
    load_idx_dataset("fashion-mnist", dir, FASHION_HINT)
}

/// Images from an IDX file: `n` images of `rows × cols` raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub n: usize,
    /// Rows per image.
    pub rows: usize,
    /// Columns per image.
    pub cols: usize,
    /// `n * rows * cols` pixel bytes, image-major, row-major.
    pub pixels: Vec<u8>,
}

/// Loads a directory holding the four standard IDX files as a 10-class dataset named `name`
/// (images scaled to `[0, 1]`, shape `[1, rows, cols]`). `hint` tells the user how to get the
/// files.
pub fn load_idx_dataset(name: &str, dir: &Path, hint: &str) -> Result<Dataset, DataError> {
    crate::error::check_dir(name, dir, hint)?;
    let paths = [
        locate(name, dir, "train-images-idx3-ubyte", hint)?,
        locate(name, dir, "train-labels-idx1-ubyte", hint)?,
        locate(name, dir, "t10k-images-idx3-ubyte", hint)?,
        locate(name, dir, "t10k-labels-idx1-ubyte", hint)?,
    ];
    // The two image files dominate (decompression): decode them in parallel.
    let (train_images, test_images) = std::thread::scope(|s| {
        let t = s.spawn(|| read_idx_images(name, &paths[2]));
        let train = read_idx_images(name, &paths[0]);
        let test = t.join().unwrap_or_else(|_| Err(DataError::file(name, &paths[2], "decoder thread panicked")));
        (train, test)
    });
    let (train_images, test_images) = (train_images?, test_images?);
    let train_labels = read_idx_labels(name, &paths[1], 10)?;
    let test_labels = read_idx_labels(name, &paths[3], 10)?;
    for (imgs, ip, labels, lp) in [(&train_images, &paths[0], &train_labels, &paths[1]), (&test_images, &paths[2], &test_labels, &paths[3])]
    {
        if imgs.n != labels.len() {
            return Err(DataError::file(
                name,
                lp,
                format_args!(
                    "holds {} labels but {} holds {} images; the files do not belong together",
                    labels.len(),
                    ip.display(),
                    imgs.n
                ),
            )
            .hint("download both again"));
        }
    }
    if (train_images.rows, train_images.cols) != (test_images.rows, test_images.cols) {
        return Err(DataError::file(
            name,
            &paths[2],
            format_args!(
                "images are {}x{} but the training images are {}x{}",
                test_images.rows, test_images.cols, train_images.rows, train_images.cols
            ),
        ));
    }
    let shape = vec![1, train_images.rows, train_images.cols];
    Ok(Dataset {
        name: name.to_string(),
        shape,
        classes: 10,
        train: Split { x: bytes_to_unit(&train_images.pixels), y: train_labels },
        test: Split { x: bytes_to_unit(&test_images.pixels), y: test_labels },
        domain: Some((0.0, 1.0)),
    })
}

/// Finds `dir/stem`, `dir/stem.gz` (or the `train-images.idx3-ubyte` spelling some mirrors use).
fn locate(name: &str, dir: &Path, stem: &str, hint: &str) -> Result<PathBuf, DataError> {
    let dotted = stem.replacen('-', ".", 2).replacen('.', "-", 1); // train-images.idx3-ubyte
    for cand in [stem.to_string(), format!("{stem}.gz"), dotted.clone(), format!("{dotted}.gz")] {
        let p = dir.join(&cand);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(DataError {
        path: Some(dir.join(stem)),
        message: format!("{name}: {}(.gz) not found in {}; {hint}", dir.join(stem).display(), dir.display()),
    })
}

/// Reads a file, transparently gunzipping it when it starts with the gzip magic.
pub(crate) fn read_maybe_gz(name: &str, path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = read_file(name, path)?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        gunzip(name, path, &raw)
    } else {
        Ok(raw)
    }
}

/// Parses the header of an IDX file: checks the magic, returns the dimensions and the offset
/// of the data.
fn idx_header(name: &str, path: &Path, b: &[u8], magic: u32) -> Result<(Vec<usize>, usize), DataError> {
    let what = |m: u32| match m {
        IDX_IMAGES_MAGIC => "an image file (magic 2051)",
        IDX_LABELS_MAGIC => "a label file (magic 2049)",
        _ => "an IDX file",
    };
    if b.len() < 4 {
        return Err(DataError::file(
            name,
            path,
            format_args!("truncated: {} bytes, too short for an IDX header; expected {}", b.len(), what(magic)),
        )
        .hint("download the file again"));
    }
    let found = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    if found != magic {
        let detail = if found == IDX_IMAGES_MAGIC || found == IDX_LABELS_MAGIC {
            format!("is {}, expected {}", what(found), what(magic))
        } else {
            format!("bad magic number {found} (0x{found:08x}), expected {magic}: not {}", what(magic))
        };
        return Err(DataError::file(name, path, detail).hint("check that the file names match their contents"));
    }
    let ndims = (magic & 0xff) as usize;
    let header = 4 + 4 * ndims;
    if b.len() < header {
        return Err(DataError::file(name, path, format_args!("truncated: the header needs {header} bytes, found {}", b.len()))
            .hint("download the file again"));
    }
    let dims = (0..ndims)
        .map(|i| {
            let o = 4 + 4 * i;
            u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]) as usize
        })
        .collect();
    Ok((dims, header))
}

fn check_length(name: &str, path: &Path, found: usize, expected: u128, what: &str) -> Result<(), DataError> {
    if (found as u128) < expected {
        Err(DataError::file(name, path, format_args!("truncated: expected {expected} bytes ({what}), found {found}"))
            .hint("download the file again"))
    } else if (found as u128) > expected {
        Err(DataError::file(name, path, format_args!("expected {expected} bytes ({what}), found {found} (trailing data)"))
            .hint("download the file again"))
    } else {
        Ok(())
    }
}

/// Reads an IDX image file (magic 2051), gzipped or not.
pub fn read_idx_images(name: &str, path: &Path) -> Result<IdxImages, DataError> {
    let b = read_maybe_gz(name, path)?;
    let (dims, off) = idx_header(name, path, &b, IDX_IMAGES_MAGIC)?;
    let (n, rows, cols) = (dims[0], dims[1], dims[2]);
    if rows == 0 || cols == 0 {
        return Err(DataError::file(name, path, format_args!("images of size {rows}x{cols}")));
    }
    let expected = off as u128 + n as u128 * rows as u128 * cols as u128;
    check_length(name, path, b.len(), expected, &format!("header says {n} images of {rows}x{cols}"))?;
    let mut pixels = b;
    pixels.drain(..off);
    Ok(IdxImages { n, rows, cols, pixels })
}

/// Reads an IDX label file (magic 2049), gzipped or not; every label must be `< classes`.
pub fn read_idx_labels(name: &str, path: &Path, classes: u32) -> Result<Vec<u32>, DataError> {
    let b = read_maybe_gz(name, path)?;
    let (dims, off) = idx_header(name, path, &b, IDX_LABELS_MAGIC)?;
    let n = dims[0];
    check_length(name, path, b.len(), off as u128 + n as u128, &format!("header says {n} labels"))?;
    let labels = &b[off..];
    if let Some(i) = labels.iter().position(|&l| l as u32 >= classes) {
        return Err(DataError::file(name, path, format_args!("label {} at index {i} out of range 0..{}", labels[i], classes - 1)));
    }
    Ok(labels.iter().map(|&l| l as u32).collect())
}

/// Scales bytes to `[0, 1]` (`b / 255`) in one pass through a lookup table.
pub(crate) fn bytes_to_unit(bytes: &[u8]) -> Vec<f32> {
    let lut: [f32; 256] = std::array::from_fn(|i| i as f32 / 255.0);
    bytes.iter().map(|&b| lut[b as usize]).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// An IDX image file's bytes.
    pub fn idx_images(n: usize, r: usize, c: usize, f: impl Fn(usize) -> u8) -> Vec<u8> {
        let mut b = Vec::new();
        for v in [IDX_IMAGES_MAGIC, n as u32, r as u32, c as u32] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        b.extend((0..n * r * c).map(f));
        b
    }

    /// An IDX label file's bytes.
    pub fn idx_labels(labels: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&IDX_LABELS_MAGIC.to_be_bytes());
        b.extend_from_slice(&(labels.len() as u32).to_be_bytes());
        b.extend_from_slice(labels);
        b
    }

    pub fn gz(b: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    /// Writes a small valid MNIST-like directory (train 12, test 5 images of 4x3).
    fn write_set(dir: &Path, gzip: bool) {
        let px = |i: usize| (i * 7 % 256) as u8;
        let files: [(&str, Vec<u8>); 4] = [
            ("train-images-idx3-ubyte", idx_images(12, 4, 3, px)),
            ("train-labels-idx1-ubyte", idx_labels(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1])),
            ("t10k-images-idx3-ubyte", idx_images(5, 4, 3, |i| 255 - px(i))),
            ("t10k-labels-idx1-ubyte", idx_labels(&[9, 8, 7, 6, 5])),
        ];
        for (n, b) in files {
            if gzip {
                std::fs::write(dir.join(format!("{n}.gz")), gz(&b)).unwrap();
            } else {
                std::fs::write(dir.join(n), b).unwrap();
            }
        }
    }

    fn err(dir: &Path) -> String {
        load_mnist(dir).unwrap_err().to_string()
    }

    #[test]
    fn roundtrip_plain_and_gzip() {
        for gzip in [false, true] {
            let d = tempfile::tempdir().unwrap();
            write_set(d.path(), gzip);
            if !gzip {
                // the `train-images.idx3-ubyte` spelling of some mirrors is found too
                std::fs::rename(d.path().join("t10k-labels-idx1-ubyte"), d.path().join("t10k-labels.idx1-ubyte")).unwrap();
            }
            let ds = load_mnist(d.path()).unwrap();
            assert_eq!(ds.shape, vec![1, 4, 3]);
            assert_eq!(ds.classes, 10);
            assert_eq!(ds.train.len(), 12);
            assert_eq!(ds.test.len(), 5);
            assert_eq!(ds.train.x.len(), 12 * 12);
            assert_eq!(ds.train.y[..3], [0, 1, 2]);
            assert_eq!(ds.test.y, vec![9, 8, 7, 6, 5]);
            for (i, &v) in ds.train.x.iter().enumerate() {
                assert_eq!(v, (i * 7 % 256) as u8 as f32 / 255.0);
            }
            assert_eq!(ds.test.x[0], 1.0);
            assert_eq!(ds.domain, Some((0.0, 1.0)));
            ds.validate().unwrap();
            // through the registry too
            let ds2 = crate::load("mnist", Some(d.path())).unwrap();
            assert_eq!(ds, ds2);
            let ds3 = crate::load("fashion-mnist", Some(d.path())).unwrap();
            assert_eq!(ds3.name, "fashion-mnist");
        }
    }

    #[test]
    fn missing_dir_and_file() {
        let d = tempfile::tempdir().unwrap();
        let e = err(&d.path().join("nope"));
        assert!(e.contains("does not exist") && e.contains("yann.lecun.com"), "{e}");
        write_set(d.path(), true);
        std::fs::remove_file(d.path().join("t10k-labels-idx1-ubyte.gz")).unwrap();
        let e = err(d.path());
        assert!(e.contains("t10k-labels-idx1-ubyte(.gz) not found in") && e.contains("yann.lecun.com"), "{e}");
        let e = load_fashion_mnist(Some(d.path())).unwrap_err().to_string();
        assert!(e.contains("apt-get install dataset-fashion-mnist"), "{e}");
    }

    #[test]
    fn truncated_images_say_expected_and_found() {
        let d = tempfile::tempdir().unwrap();
        write_set(d.path(), false);
        let p = d.path().join("train-images-idx3-ubyte");
        let mut b = std::fs::read(&p).unwrap();
        b.truncate(b.len() - 5);
        std::fs::write(&p, &b).unwrap();
        let e = err(d.path());
        assert!(
            e.contains("train-images-idx3-ubyte") && e.contains("truncated") && e.contains("expected 160 bytes") && e.contains("found 155"),
            "{e}"
        );
        // header-level truncation
        std::fs::write(&p, &b[..10]).unwrap();
        let e = err(d.path());
        assert!(e.contains("truncated") && e.contains("header"), "{e}");
        std::fs::write(&p, &b[..2]).unwrap();
        assert!(err(d.path()).contains("truncated"));
        // sizes whose product overflows 64 bits
        let mut huge = Vec::new();
        for v in [IDX_IMAGES_MAGIC, u32::MAX, u32::MAX, u32::MAX] {
            huge.extend_from_slice(&v.to_be_bytes());
        }
        std::fs::write(&p, &huge).unwrap();
        assert!(err(d.path()).contains("truncated"));
        // trailing data
        let mut long = idx_images(12, 4, 3, |_| 0);
        long.push(1);
        std::fs::write(&p, &long).unwrap();
        assert!(err(d.path()).contains("trailing data"));
    }

    #[test]
    fn corrupt_gzip_names_file() {
        let d = tempfile::tempdir().unwrap();
        write_set(d.path(), true);
        let p = d.path().join("train-labels-idx1-ubyte.gz");
        let mut b = std::fs::read(&p).unwrap();
        let n = b.len();
        b.truncate(n / 2);
        std::fs::write(&p, &b).unwrap();
        let e = err(d.path());
        assert!(e.contains("train-labels-idx1-ubyte.gz") && e.contains("gzip"), "{e}");
        // garbage after the gzip magic
        std::fs::write(&p, [0x1f, 0x8b, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 1, 2, 3]).unwrap();
        let e = err(d.path());
        assert!(e.contains("corrupt"), "{e}");
    }

    #[test]
    fn bad_magic_and_swapped_files() {
        let d = tempfile::tempdir().unwrap();
        write_set(d.path(), false);
        let p = d.path().join("t10k-images-idx3-ubyte");
        let mut b = std::fs::read(&p).unwrap();
        b[3] = 0x99;
        std::fs::write(&p, &b).unwrap();
        let e = err(d.path());
        assert!(e.contains("t10k-images-idx3-ubyte") && e.contains("bad magic number"), "{e}");
        std::fs::write(&p, idx_labels(&[1, 2, 3])).unwrap();
        let e = err(d.path());
        assert!(e.contains("is a label file (magic 2049)"), "{e}");
    }

    #[test]
    fn label_out_of_range_and_count_mismatch() {
        let d = tempfile::tempdir().unwrap();
        write_set(d.path(), false);
        let p = d.path().join("t10k-labels-idx1-ubyte");
        std::fs::write(&p, idx_labels(&[1, 2, 10, 3, 4])).unwrap();
        let e = err(d.path());
        assert!(e.contains("t10k-labels-idx1-ubyte") && e.contains("label 10 at index 2 out of range"), "{e}");
        std::fs::write(&p, idx_labels(&[1, 2, 3, 4])).unwrap();
        let e = err(d.path());
        assert!(e.contains("holds 4 labels but") && e.contains("5 images"), "{e}");
    }

    #[test]
    fn wrong_dims_between_train_and_test() {
        let d = tempfile::tempdir().unwrap();
        write_set(d.path(), false);
        std::fs::write(d.path().join("t10k-images-idx3-ubyte"), idx_images(5, 3, 4, |_| 0)).unwrap();
        let e = err(d.path());
        assert!(e.contains("images are 3x4 but the training images are 4x3"), "{e}");
        std::fs::write(d.path().join("t10k-images-idx3-ubyte"), idx_images(5, 0, 4, |_| 0)).unwrap();
        assert!(err(d.path()).contains("size 0x4"));
    }

    #[test]
    fn real_fashion_mnist_if_installed() {
        let dir = Path::new(FASHION_MNIST_DEFAULT);
        if !dir.join("train-images-idx3-ubyte.gz").exists() {
            eprintln!("skipping: Fashion-MNIST not installed in {FASHION_MNIST_DEFAULT}");
            return;
        }
        let t = std::time::Instant::now();
        let ds = crate::load("fashion-mnist", None).unwrap();
        eprintln!("fashion-mnist loaded in {:.3} s", t.elapsed().as_secs_f64());
        assert_eq!(ds.train.len(), 60_000);
        assert_eq!(ds.test.len(), 10_000);
        assert_eq!(ds.shape, vec![1, 28, 28]);
        assert_eq!(ds.classes, 10);
        assert_eq!(ds.train.x.len(), 60_000 * 784);
        let mut counts = [0usize; 10];
        for &y in &ds.train.y {
            counts[y as usize] += 1;
        }
        assert_eq!(counts, [6000; 10]);
        assert!(ds.train.x.iter().all(|v| (0.0..=1.0).contains(v)));
    }
}
