//! Helpers shared by the end-to-end tests: run the `amm` binary in a temporary directory, parse
//! its JSON, read run directories, and write tiny datasets in the real file formats.
#![allow(dead_code)]

pub use amm_core::serde_json::{self, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `amm` binary under test.
pub const AMM: &str = env!("CARGO_BIN_EXE_amm");

/// The repository root (read-only: specs, docs).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("amm-e2e-").tempdir().expect("temporary directory")
}

/// A finished `amm` invocation.
#[derive(Debug)]
pub struct Run {
    pub args: Vec<String>,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from_output(args: Vec<String>, o: Output) -> Run {
        Run {
            args,
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Everything about the run, for assertion messages.
    pub fn describe(&self) -> String {
        format!("amm {:?}\nexit code: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}", self.args, self.code, self.stdout, self.stderr)
    }

    /// Asserts exit code 0 and returns self.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert_eq!(self.code, Some(0), "expected success\n{}", self.describe());
        self.no_panic();
        self
    }

    /// Asserts a clean failure: exit code 1 (or 2 for clap's usage errors), an `error` on stderr,
    /// and no panic.
    #[track_caller]
    pub fn fails(&self) -> &Self {
        assert!(matches!(self.code, Some(1) | Some(2)), "expected exit code 1 or 2\n{}", self.describe());
        self.no_panic();
        assert!(self.stderr.contains("error"), "a failure should say `error` on stderr\n{}", self.describe());
        self
    }

    #[track_caller]
    pub fn no_panic(&self) -> &Self {
        assert!(!self.stderr.contains("panicked") && !self.stderr.contains("RUST_BACKTRACE"), "amm panicked\n{}", self.describe());
        assert!(self.code.is_some(), "amm was killed by a signal\n{}", self.describe());
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(self.stderr.contains(needle), "stderr should contain {needle:?}\n{}", self.describe());
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Self {
        assert!(self.stdout.contains(needle), "stdout should contain {needle:?}\n{}", self.describe());
        self
    }

    /// stdout parsed as exactly one JSON value.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not one JSON value: {e}\n{}", self.describe()))
    }
}

/// A `Command` for `amm args...` in `cwd`.
pub fn command<S: AsRef<str>>(cwd: &Path, args: &[S]) -> Command {
    let mut c = Command::new(AMM);
    c.current_dir(cwd).args(args.iter().map(|a| a.as_ref()));
    c.env_remove("RUST_BACKTRACE");
    c
}

/// Runs `amm args...` in `cwd` to completion.
pub fn amm<S: AsRef<str>>(cwd: &Path, args: &[S]) -> Run {
    let o = command(cwd, args).output().expect("running the amm binary");
    Run::from_output(args.iter().map(|a| a.as_ref().to_string()).collect(), o)
}

/// `args` followed by `extra`, as owned strings.
pub fn with<S: AsRef<str>, T: AsRef<str>>(args: &[S], extra: &[T]) -> Vec<String> {
    args.iter().map(|a| a.as_ref().to_string()).chain(extra.iter().map(|a| a.as_ref().to_string())).collect()
}

pub fn path_str(p: &Path) -> String {
    p.to_str().expect("UTF-8 temporary path").to_string()
}

#[track_caller]
pub fn read_json(path: &Path) -> Value {
    let s = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("{} is not JSON: {e}\n{s}", path.display()))
}

/// The lines of a run's `metrics.jsonl`, parsed.
#[track_caller]
pub fn metrics(dir: &Path) -> Vec<Value> {
    let p = dir.join("metrics.jsonl");
    let s = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
    s.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: bad line {l}: {e}", p.display())))
        .collect()
}

/// The fields that measure time, and so differ between two otherwise identical runs.
pub const TIMING: [&str; 2] = ["train_seconds", "ms_per_step"];

/// `v` without its timing fields (at the top level of an object).
pub fn without_timing(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        for k in TIMING {
            o.remove(k);
        }
    }
    v
}

#[track_caller]
pub fn num(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or_else(|| panic!("`{key}` should be a number in {v}"))
}

/// The flags of a tiny, fast digits run (callers add --out, --reg, --epochs, ...).
pub fn tiny() -> Vec<String> {
    ["--data", "digits", "--model", "mlp(widths=[32])", "--quiet", "--set", "eval.long_iters=0"].iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// Dataset files in the real formats.

/// An IDX image file (magic 2051): `n` images of `rows × cols` bytes.
pub fn idx_images(n: usize, rows: usize, cols: usize, px: impl Fn(usize, usize) -> u8) -> Vec<u8> {
    let mut b = Vec::new();
    for v in [2051u32, n as u32, rows as u32, cols as u32] {
        b.extend_from_slice(&v.to_be_bytes());
    }
    for i in 0..n {
        for j in 0..rows * cols {
            b.push(px(i, j));
        }
    }
    b
}

/// An IDX label file (magic 2049).
pub fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&2049u32.to_be_bytes());
    b.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    b.extend_from_slice(labels);
    b
}

/// Pixels of a learnable image set: the label decides which horizontal band is bright.
pub fn banded_pixel(label: u8, rows: usize, cols: usize, j: usize, noise: u64) -> u8 {
    let band = (j / cols) * 10 / rows;
    let base: u8 = if band == label as usize { 220 } else { 20 };
    base.wrapping_add((noise % 23) as u8)
}

/// A small deterministic PRNG (splitmix64) for test data.
pub struct Mix(pub u64);
impl Mix {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Writes the four MNIST IDX files (`n_train`/`n_test` images of `side × side`) into `dir`,
/// gzipped or not, under `names` (train images, train labels, test images, test labels).
pub fn write_mnist(dir: &Path, n_train: usize, n_test: usize, side: usize, gzip: bool, names: [&str; 4]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = Mix(7);
    let mut set = |n: usize| {
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let noise: Vec<u64> = (0..n * side * side).map(|_| rng.next()).collect();
        let images = idx_images(n, side, side, |i, j| banded_pixel(labels[i], side, side, j, noise[i * side * side + j]));
        (images, idx_labels(&labels))
    };
    let (ti, tl) = set(n_train);
    let (ei, el) = set(n_test);
    for (name, bytes) in names.iter().zip([ti, tl, ei, el]) {
        let bytes = if gzip { gzip_stored(&bytes) } else { bytes };
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

pub const MNIST_NAMES: [&str; 4] =
    ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

fn crc32(data: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for (i, t) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
        }
        *t = c;
    }
    let mut c = 0xffff_ffffu32;
    for &b in data {
        c = table[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
    }
    c ^ 0xffff_ffff
}

/// A valid gzip stream (RFC 1952) of `data` in stored (uncompressed) deflate blocks: a real
/// gzip file without a compression library.
pub fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let chunks: Vec<&[u8]> = if data.is_empty() { vec![&[][..]] } else { data.chunks(65_535).collect() };
    for (i, chunk) in chunks.iter().enumerate() {
        out.push(if i + 1 == chunks.len() { 1 } else { 0 });
        let len = chunk.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// One CIFAR-10 binary batch: `n` records of a label byte and 3072 pixel bytes.
pub fn cifar10_batch(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = Mix(seed);
    let mut b = Vec::with_capacity(n * 3073);
    for i in 0..n {
        let label = (i % 10) as u8;
        b.push(label);
        for j in 0..3072 {
            b.push(banded_pixel(label, 96, 32, j, rng.next()));
        }
    }
    b
}

/// A CIFAR-10 directory: data_batch_1..5.bin with `per_batch` records each and test_batch.bin.
pub fn write_cifar10(dir: &Path, per_batch: usize, n_test: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for k in 1..=5 {
        std::fs::write(dir.join(format!("data_batch_{k}.bin")), cifar10_batch(per_batch, k)).unwrap();
    }
    std::fs::write(dir.join("test_batch.bin"), cifar10_batch(n_test, 99)).unwrap();
}

/// A csv dataset: `features` numeric columns and `label`, `classes` well-separated blobs.
pub fn csv_text(rows: usize, features: usize, classes: usize, seed: u64) -> String {
    let mut rng = Mix(seed);
    let mut s: String = (0..features).map(|f| format!("f{f},")).collect();
    s.push_str("label\n");
    for i in 0..rows {
        let y = i % classes;
        for f in 0..features {
            let centre = if f % classes == y { 2.0 } else { 0.0 };
            let noise = (rng.next() % 1000) as f64 / 1000.0 - 0.5;
            s.push_str(&format!("{},", centre + noise));
        }
        s.push_str(&format!("{y}\n"));
    }
    s
}
