//! SVHN (Street View House Numbers), cropped-digit format: `train_32x32.mat` and
//! `test_32x32.mat`, MATLAB v5 files holding `X` (uint8, 32×32×3×N, column-major) and `y`
//! (N×1, labels 1..10 where 10 means the digit 0).

use std::path::Path;

use crate::dataset::{Dataset, Split};
use crate::error::DataError;
use crate::mat::{class_name, read_mat, MatArray, MatData};

const HINT: &str = "download train_32x32.mat and test_32x32.mat from \
     http://ufldl.stanford.edu/housenumbers/ and put them there";

/// Loads SVHN from a directory holding `train_32x32.mat` and `test_32x32.mat`.
pub fn load_svhn(dir: &Path) -> Result<Dataset, DataError> {
    let name = "svhn";
    crate::error::check_dir(name, dir, HINT)?;
    let mut parts = Vec::new();
    for f in ["train_32x32.mat", "test_32x32.mat"] {
        let p = dir.join(f);
        if !p.is_file() {
            return Err(DataError::file(name, &p, "file not found").hint(HINT));
        }
        parts.push(read_svhn_file(name, &p)?);
    }
    let test = parts.pop().unwrap_or_default();
    let train = parts.pop().unwrap_or_default();
    Ok(Dataset { name: name.into(), shape: vec![3, 32, 32], classes: 10, train, test, domain: Some((0.0, 1.0)) })
}

/// Reads one SVHN `.mat` file into a split of `[3, 32, 32]` images scaled to `[0, 1]`.
pub fn read_svhn_file(name: &str, path: &Path) -> Result<Split, DataError> {
    let vars = read_mat(name, path)?;
    let find = |v: &str| -> Result<&MatArray, DataError> {
        vars.iter().find(|a| a.name == v).ok_or_else(|| {
            let names: Vec<&str> = vars.iter().map(|a| a.name.as_str()).collect();
            DataError::file(
                name,
                path,
                format_args!(
                    "no variable `{v}` (found: {}); expected `X` (32x32x3xN uint8) and `y` (Nx1)",
                    if names.is_empty() { "none".to_string() } else { names.join(", ") }
                ),
            )
        })
    };
    let x = find("X")?;
    let y = find("y")?;
    let bad = |m: String| DataError::file(name, path, m);

    let xd = numeric(name, path, x)?;
    if x.dims.len() != 4 || x.dims[0] != 32 || x.dims[1] != 32 || x.dims[2] != 3 {
        return Err(bad(format!("variable `X` has dimensions {:?}, expected [32, 32, 3, N]", x.dims)));
    }
    let n = x.dims[3];
    if n == 0 {
        return Err(bad("holds no images (`X` has 0 samples)".into()).hint(HINT));
    }
    let yd = numeric(name, path, y)?;
    let y_ok = y.dims.len() == 2 && (y.dims == [n, 1] || y.dims == [1, n]);
    if !y_ok {
        return Err(bad(format!("variable `y` has dimensions {:?}, expected [{n}, 1] (one label per image of `X`)", y.dims)));
    }
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let v = yd.get(i);
        if v.fract() != 0.0 || !(0.0..=10.0).contains(&v) {
            return Err(bad(format!("variable `y`: label {v} at index {i} out of range 1..10")));
        }
        labels.push(if v == 10.0 { 0 } else { v as u32 });
    }

    // MATLAB X(i, j, c, k) (row i, column j) sits at i + 32 j + 1024 c + 3072 k; we want
    // k, c, i, j row-major.
    let lut: [f32; 256] = std::array::from_fn(|i| i as f32 / 255.0);
    let mut out = vec![0f32; n * 3072];
    match xd {
        MatData::U8(src) => {
            for (dst, src) in out.chunks_exact_mut(1024).zip(src.chunks_exact(1024)) {
                for (j, col) in src.chunks_exact(32).enumerate() {
                    for (i, &p) in col.iter().enumerate() {
                        dst[i * 32 + j] = lut[p as usize];
                    }
                }
            }
        }
        MatData::F64(src) => {
            for (plane, (dst, src)) in out.chunks_exact_mut(1024).zip(src.chunks_exact(1024)).enumerate() {
                for (j, col) in src.chunks_exact(32).enumerate() {
                    for (i, &p) in col.iter().enumerate() {
                        if p.fract() != 0.0 || !(0.0..=255.0).contains(&p) {
                            return Err(bad(format!("variable `X`: value {p} (image {}) is not a uint8 pixel", plane / 3)));
                        }
                        dst[i * 32 + j] = lut[p as usize];
                    }
                }
            }
        }
    }
    Ok(Split { x: out, y: labels })
}

fn numeric<'a>(name: &str, path: &Path, a: &'a MatArray) -> Result<&'a MatData, DataError> {
    a.data.as_ref().ok_or_else(|| {
        DataError::file(
            name,
            path,
            format_args!(
                "variable `{}` is a {}{}, expected a real numeric array",
                a.name,
                if a.complex { "complex " } else { "" },
                class_name(a.class)
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mat::tests::{mat_file, Var};

    /// The MATLAB-order bytes of `n` images where pixel (k, c, i, j) = (k*7 + c*50 + i*3 + j) % 256.
    fn x_bytes(n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n * 3072];
        for k in 0..n {
            for c in 0..3 {
                for i in 0..32 {
                    for j in 0..32 {
                        v[i + 32 * j + 1024 * c + 3072 * k] = ((k * 7 + c * 50 + i * 3 + j) % 256) as u8;
                    }
                }
            }
        }
        v
    }

    fn write(dir: &Path, file: &str, vars: &[Var], compress: bool) {
        std::fs::write(dir.join(file), mat_file(vars, compress)).unwrap();
    }

    fn valid(dir: &Path, compress: bool) {
        write(
            dir,
            "train_32x32.mat",
            &[Var::u8("X", vec![32, 32, 3, 3], x_bytes(3)), Var::f64("y", vec![3, 1], &[10.0, 1.0, 9.0])],
            compress,
        );
        write(dir, "test_32x32.mat", &[Var::f64("y", vec![2, 1], &[3.0, 10.0]), Var::u8("X", vec![32, 32, 3, 2], x_bytes(2))], compress);
    }

    #[test]
    fn roundtrip_layout_and_labels() {
        for compress in [false, true] {
            let d = tempfile::tempdir().unwrap();
            valid(d.path(), compress);
            let ds = crate::load("svhn", Some(d.path())).unwrap();
            assert_eq!(ds.shape, vec![3, 32, 32]);
            assert_eq!(ds.train.len(), 3);
            assert_eq!(ds.test.len(), 2);
            assert_eq!(ds.train.y, vec![0, 1, 9]);
            assert_eq!(ds.test.y, vec![3, 0]);
            for k in 0..3 {
                let s = ds.train.sample(k);
                for (c, i, j) in [(0, 0, 1), (1, 5, 2), (2, 31, 30), (2, 3, 17)] {
                    let want = ((k * 7 + c * 50 + i * 3 + j) % 256) as f32 / 255.0;
                    assert_eq!(s[c * 1024 + i * 32 + j], want, "k{k} c{c} i{i} j{j}");
                }
            }
        }
    }

    #[test]
    fn double_x_is_accepted_when_integral() {
        let d = tempfile::tempdir().unwrap();
        valid(d.path(), false);
        let xs: Vec<f64> = x_bytes(2).iter().map(|&b| b as f64).collect();
        write(d.path(), "test_32x32.mat", &[Var::f64("X", vec![32, 32, 3, 2], &xs), Var::u8("y", vec![2, 1], vec![3, 10])], true);
        let ds = load_svhn(d.path()).unwrap();
        assert_eq!(ds.test.y, vec![3, 0]);
        assert_eq!(ds.test.sample(1)[1024 + 5 * 32 + 2], (7 + 50 + 15 + 2) as f32 / 255.0);
        let mut bad = xs.clone();
        bad[10] = 0.5;
        write(d.path(), "test_32x32.mat", &[Var::f64("X", vec![32, 32, 3, 2], &bad), Var::u8("y", vec![2, 1], vec![3, 10])], true);
        let e = load_svhn(d.path()).unwrap_err().to_string();
        assert!(e.contains("test_32x32.mat") && e.contains("not a uint8 pixel"), "{e}");
    }

    #[test]
    fn errors_name_file_and_problem() {
        let d = tempfile::tempdir().unwrap();
        valid(d.path(), false);
        let t = "test_32x32.mat";
        let check = |vars: &[Var], want: &str| {
            write(d.path(), t, vars, false);
            let e = load_svhn(d.path()).unwrap_err().to_string();
            assert!(e.contains(t) && e.contains(want), "want {want:?}: {e}");
        };
        check(&[Var::u8("X", vec![32, 32, 3, 2], x_bytes(2))], "no variable `y` (found: X)");
        check(
            &[Var::u8("X", vec![32, 32, 6, 1], x_bytes(2)), Var::f64("y", vec![2, 1], &[1.0, 2.0])],
            "dimensions [32, 32, 6, 1], expected [32, 32, 3, N]",
        );
        check(
            &[Var::u8("X", vec![32, 32, 3, 2], x_bytes(2)), Var::f64("y", vec![3, 1], &[1.0, 2.0, 3.0])],
            "`y` has dimensions [3, 1], expected [2, 1]",
        );
        check(&[Var::u8("X", vec![32, 32, 3, 2], x_bytes(2)), Var::f64("y", vec![2, 1], &[1.0, 11.0])], "label 11 at index 1 out of range");
        check(
            &[Var { name: "X", class: 1, dims: vec![1, 1], ty: 2, data: vec![] }, Var::f64("y", vec![2, 1], &[1.0, 2.0])],
            "`X` is a cell array",
        );
        // truncated file
        let full = mat_file(&[Var::u8("X", vec![32, 32, 3, 2], x_bytes(2)), Var::f64("y", vec![2, 1], &[1.0, 2.0])], false);
        std::fs::write(d.path().join(t), &full[..full.len() / 2]).unwrap();
        let e = load_svhn(d.path()).unwrap_err().to_string();
        assert!(e.contains(t) && e.contains("truncated"), "{e}");
        // v7.3
        let mut h = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 .".to_vec();
        h.resize(512, b' ');
        h.extend_from_slice(b"\x89HDF\r\n\x1a\n");
        h.resize(1024, 0);
        std::fs::write(d.path().join(t), h).unwrap();
        let e = load_svhn(d.path()).unwrap_err().to_string();
        assert!(e.contains("v7.3") && e.contains("re-save"), "{e}");
        // missing
        std::fs::remove_file(d.path().join(t)).unwrap();
        let e = load_svhn(d.path()).unwrap_err().to_string();
        assert!(e.contains(t) && e.contains("not found") && e.contains("ufldl"), "{e}");
    }

    /// Files written by scipy 1.17 (`scipy.io.savemat`, plain and compressed) and by h5py (a
    /// v7.3-style HDF5 file with a MATLAB header), see `testdata/README.md`: an independent
    /// writer of the format, not our own test writer.
    #[test]
    fn reads_files_written_by_scipy_and_refuses_hdf5() {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata"));
        for f in ["svhn_scipy_v5.mat", "svhn_scipy_v5_compressed.mat"] {
            let s = read_svhn_file("svhn", &dir.join(f)).unwrap();
            assert_eq!(s.y, vec![0, 3], "{f}");
            for k in 0..2 {
                for (c, i, j) in [(0, 0, 0), (1, 5, 2), (2, 31, 30), (0, 7, 19)] {
                    let want = ((k * 7 + c * 50 + i * 3 + j) % 256) as f32 / 255.0;
                    assert_eq!(s.sample(k)[c * 1024 + i * 32 + j], want, "{f} k{k} c{c} i{i} j{j}");
                }
            }
        }
        let e = read_svhn_file("svhn", &dir.join("svhn_v73.mat")).unwrap_err().to_string();
        assert!(e.contains("svhn_v73.mat") && e.contains("v7.3") && e.contains("re-save"), "{e}");
    }
}
