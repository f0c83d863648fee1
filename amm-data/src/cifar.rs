//! CIFAR-10 and CIFAR-100, binary versions (Krizhevsky, 2009).
//!
//! Each record is the label byte(s) followed by 3072 pixel bytes: the 1024 red, then green,
//! then blue values of a 32×32 image, rows first — already the `[C, H, W]` layout.
//! CIFAR-10 records have one label byte; CIFAR-100 records have two (coarse, fine) and the fine
//! label is used.

use std::path::{Path, PathBuf};

use crate::dataset::{Dataset, Split};
use crate::error::{read_file, DataError};

/// Pixel bytes per CIFAR image (3 × 32 × 32).
pub const CIFAR_IMAGE_BYTES: usize = 3 * 32 * 32;

const C10_HINT: &str = "download cifar-10-binary.tar.gz from \
     https://www.cs.toronto.edu/~kriz/cifar.html and extract it there (data_batch_1.bin .. \
     data_batch_5.bin, test_batch.bin)";
const C100_HINT: &str = "download cifar-100-binary.tar.gz from \
     https://www.cs.toronto.edu/~kriz/cifar.html and extract it there (train.bin, test.bin)";

const C10_TRAIN: [&str; 5] = ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];

/// Loads CIFAR-10 from `dir` (or its `cifar-10-batches-bin/` subdirectory).
pub fn load_cifar10(dir: &Path) -> Result<Dataset, DataError> {
    let name = "cifar10";
    let dir = resolve(name, dir, "cifar-10-batches-bin", "test_batch.bin", C10_HINT)?;
    let mut train = Split::default();
    for f in C10_TRAIN {
        read_records(name, &dir.join(f), 1, 0, 10, C10_HINT, &mut train)?;
    }
    let mut test = Split::default();
    read_records(name, &dir.join("test_batch.bin"), 1, 0, 10, C10_HINT, &mut test)?;
    Ok(dataset(name, 10, train, test))
}

/// Loads CIFAR-100 (fine labels) from `dir` (or its `cifar-100-binary/` subdirectory).
pub fn load_cifar100(dir: &Path) -> Result<Dataset, DataError> {
    let name = "cifar100";
    let dir = resolve(name, dir, "cifar-100-binary", "test.bin", C100_HINT)?;
    let mut train = Split::default();
    read_records(name, &dir.join("train.bin"), 2, 1, 100, C100_HINT, &mut train)?;
    let mut test = Split::default();
    read_records(name, &dir.join("test.bin"), 2, 1, 100, C100_HINT, &mut test)?;
    Ok(dataset(name, 100, train, test))
}

fn dataset(name: &str, classes: usize, train: Split, test: Split) -> Dataset {
    Dataset { name: name.into(), shape: vec![3, 32, 32], classes, train, test, domain: Some((0.0, 1.0)) }
}

/// `dir` itself if it holds `marker`, else `dir/sub` if that does.
fn resolve(name: &str, dir: &Path, sub: &str, marker: &str, hint: &str) -> Result<PathBuf, DataError> {
    crate::error::check_dir(name, dir, hint)?;
    if dir.join(marker).exists() {
        return Ok(dir.to_path_buf());
    }
    if dir.join(sub).join(marker).exists() {
        return Ok(dir.join(sub));
    }
    if dir.join(sub).is_dir() {
        // Let the per-file reader report which file is missing inside the subdirectory.
        return Ok(dir.join(sub));
    }
    Ok(dir.to_path_buf())
}

/// Appends the records of one binary batch file to `out`. Each record has `label_bytes` label
/// bytes (the one at `label_index` is used, and must be `< classes`) and 3072 pixel bytes.
fn read_records(
    name: &str,
    path: &Path,
    label_bytes: usize,
    label_index: usize,
    classes: u32,
    hint: &str,
    out: &mut Split,
) -> Result<(), DataError> {
    let b = read_file(name, path).map_err(|e| if path.exists() { e } else { DataError::file(name, path, "file not found").hint(hint) })?;
    let rec = label_bytes + CIFAR_IMAGE_BYTES;
    if b.is_empty() || b.len() % rec != 0 {
        let problem = if b.starts_with(&[0x1f, 0x8b]) {
            format!("is gzip-compressed ({} bytes); extract the archive first (tar xzf)", b.len())
        } else {
            format!(
                "size {} bytes is not a positive multiple of the record length {rec} \
                 ({label_bytes} label byte(s) + 3072 pixel bytes): truncated or not a CIFAR \
                 binary batch ({} whole records + {} bytes)",
                b.len(),
                b.len() / rec,
                b.len() % rec
            )
        };
        return Err(DataError::file(name, path, problem).hint(hint));
    }
    let n = b.len() / rec;
    let lut: [f32; 256] = std::array::from_fn(|i| i as f32 / 255.0);
    out.x.reserve(n * CIFAR_IMAGE_BYTES);
    out.y.reserve(n);
    for (i, r) in b.chunks_exact(rec).enumerate() {
        let l = r[label_index] as u32;
        if l >= classes {
            return Err(DataError::file(
                name,
                path,
                format_args!("record {i}: label {l} out of range 0..{} (not a {name} file?)", classes - 1),
            ));
        }
        if label_bytes == 2 && label_index == 1 && r[0] >= 20 {
            return Err(DataError::file(name, path, format_args!("record {i}: coarse label {} out of range 0..19", r[0])));
        }
        out.y.push(l);
        out.x.extend(r[label_bytes..].iter().map(|&p| lut[p as usize]));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(labels: &[u8], seed: usize) -> Vec<u8> {
        let mut r = labels.to_vec();
        r.extend((0..CIFAR_IMAGE_BYTES).map(|j| ((j + seed * 31) % 256) as u8));
        r
    }

    fn write_c10(dir: &Path, per_file: usize) {
        let mut k = 0;
        for f in C10_TRAIN.iter().chain(["test_batch.bin"].iter()) {
            let mut b = Vec::new();
            for _ in 0..per_file {
                b.extend(record(&[(k % 10) as u8], k));
                k += 1;
            }
            std::fs::write(dir.join(f), b).unwrap();
        }
    }

    #[test]
    fn cifar10_roundtrip_and_subdir() {
        let d = tempfile::tempdir().unwrap();
        write_c10(d.path(), 3);
        let ds = load_cifar10(d.path()).unwrap();
        assert_eq!(ds.train.len(), 15);
        assert_eq!(ds.test.len(), 3);
        assert_eq!(ds.shape, vec![3, 32, 32]);
        assert_eq!(ds.classes, 10);
        assert_eq!(ds.train.y[..4], [0, 1, 2, 3]);
        assert_eq!(ds.test.y, vec![5, 6, 7]);
        // sample 4, channel 1 (green), row 2, col 5 -> byte index 1024 + 64 + 5
        let j = 1024 + 2 * 32 + 5;
        assert_eq!(ds.train.sample(4)[j], ((j + 4 * 31) % 256) as u8 as f32 / 255.0);

        let outer = tempfile::tempdir().unwrap();
        let sub = outer.path().join("cifar-10-batches-bin");
        std::fs::create_dir(&sub).unwrap();
        write_c10(&sub, 1);
        let ds = crate::load("cifar10", Some(outer.path())).unwrap();
        assert_eq!(ds.train.len(), 5);
    }

    #[test]
    fn cifar10_errors() {
        let d = tempfile::tempdir().unwrap();
        write_c10(d.path(), 2);
        std::fs::remove_file(d.path().join("data_batch_3.bin")).unwrap();
        let e = load_cifar10(d.path()).unwrap_err().to_string();
        assert!(e.contains("data_batch_3.bin") && e.contains("not found") && e.contains("cifar-10-binary.tar.gz"), "{e}");
        let mut b = record(&[1], 0);
        b.extend(record(&[2], 0));
        b.truncate(b.len() - 100);
        std::fs::write(d.path().join("data_batch_3.bin"), &b).unwrap();
        let e = load_cifar10(d.path()).unwrap_err().to_string();
        assert!(e.contains("data_batch_3.bin") && e.contains("not a positive multiple of the record length 3073"), "{e}");
        std::fs::write(d.path().join("data_batch_3.bin"), record(&[10], 0)).unwrap();
        let e = load_cifar10(d.path()).unwrap_err().to_string();
        assert!(e.contains("record 0: label 10 out of range"), "{e}");
        std::fs::write(d.path().join("data_batch_3.bin"), [0x1f, 0x8b, 0, 0]).unwrap();
        let e = load_cifar10(d.path()).unwrap_err().to_string();
        assert!(e.contains("gzip-compressed"), "{e}");
        let e = load_cifar10(&d.path().join("missing")).unwrap_err().to_string();
        assert!(e.contains("does not exist"), "{e}");
    }

    #[test]
    fn cifar100_fine_labels_and_errors() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("cifar-100-binary");
        std::fs::create_dir(&sub).unwrap();
        let mut tr = Vec::new();
        for i in 0..4u8 {
            tr.extend(record(&[i, 90 + i], i as usize));
        }
        std::fs::write(sub.join("train.bin"), &tr).unwrap();
        std::fs::write(sub.join("test.bin"), record(&[19, 99], 7)).unwrap();
        let ds = crate::load("cifar100", Some(d.path())).unwrap();
        assert_eq!(ds.classes, 100);
        assert_eq!(ds.train.y, vec![90, 91, 92, 93]);
        assert_eq!(ds.test.y, vec![99]);
        assert_eq!(ds.train.x.len(), 4 * 3072);

        std::fs::write(sub.join("test.bin"), record(&[1, 100], 7)).unwrap();
        let e = load_cifar100(d.path()).unwrap_err().to_string();
        assert!(e.contains("test.bin") && e.contains("label 100 out of range 0..99"), "{e}");
        // a CIFAR-10 file (3073-byte records) is not a multiple of 3074
        std::fs::write(sub.join("test.bin"), record(&[1], 7)).unwrap();
        let e = load_cifar100(d.path()).unwrap_err().to_string();
        assert!(e.contains("record length 3074"), "{e}");
        std::fs::remove_file(sub.join("test.bin")).unwrap();
        let e = load_cifar100(d.path()).unwrap_err().to_string();
        assert!(e.contains("test.bin") && e.contains("not found"), "{e}");
    }
}
