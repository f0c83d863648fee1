//! Datasets through the CLI: tiny files in each real format, trained for one epoch with
//! `--data NAME:DIR`, and broken files that must be refused with the file and the problem named.
mod common;
use common::*;
use std::path::Path;

/// One epoch on `data` into a fresh output directory (`extra` may hold `--out DIR`).
fn train_on(cwd: &Path, data: &str, model: &str, extra: &[&str]) -> Run {
    let mut args = with(
        &[
            "train",
            "--data",
            data,
            "--model",
            model,
            "--reg",
            "deepfool(l2, 2) |> avg |> exp(2, 1)",
            "--epochs",
            "1",
            "--batch",
            "10",
            "--quiet",
            "--json",
            "--set",
            "eval.long_iters=0",
        ],
        extra,
    );
    if !extra.contains(&"--out") {
        let out = (0..).map(|i| format!("run{i}")).find(|o| !cwd.join(o).exists()).unwrap();
        args.extend(["--out".to_string(), out]);
    }
    amm(cwd, &args)
}

#[track_caller]
fn assert_trained(r: &Run, train: u64, test: u64, params: u64) -> Value {
    r.ok();
    let v = r.json();
    assert_eq!(v["train_samples"], train, "{v}");
    assert_eq!(v["test_samples"], test, "{v}");
    assert_eq!(v["params"], params, "{v}");
    assert!((0.0..=1.0).contains(&num(&v, "test_error")), "{v}");
    assert!(num(&v, "margin").is_finite(), "{v}");
    v
}

fn mlp_params(d: u64, h: u64, c: u64) -> u64 {
    d * h + h + h * c + c
}

#[test]
fn csv_directory() {
    let d = tempdir();
    let data = d.path().join("tab");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("train.csv"), csv_text(90, 5, 3, 1)).unwrap();
    std::fs::write(data.join("test.csv"), csv_text(30, 5, 3, 2)).unwrap();
    let r = train_on(d.path(), &format!("csv:{}", path_str(&data)), "mlp(widths=[16])", &[]);
    let v = assert_trained(&r, 90, 30, mlp_params(5, 16, 3));
    assert_eq!(v["data"], "csv");
    // a relative path works from the working directory
    let r = amm(
        d.path(),
        &[
            "train", "--data", "csv:tab", "--model", "linear", "--reg", "none", "--epochs", "2", "--lr", "0.1", "--quiet", "--json",
            "--out", "rel",
        ],
    );
    let v = assert_trained(&r, 90, 30, 5 * 3 + 3);
    assert!(num(&v, "test_error") < 0.2, "the blobs are separable: {v}");
}

#[test]
fn mnist_idx_uncompressed() {
    let d = tempdir();
    let data = d.path().join("mnist");
    write_mnist(&data, 60, 20, 10, false, MNIST_NAMES);
    let r = train_on(d.path(), &format!("mnist:{}", path_str(&data)), "mlp(widths=[16])", &[]);
    let v = assert_trained(&r, 60, 20, mlp_params(100, 16, 10));
    assert_eq!(v["data"], "mnist");
}

#[test]
fn mnist_idx_gzipped_with_the_dotted_names_of_some_mirrors() {
    let d = tempdir();
    let data = d.path().join("mnist-gz");
    let names = ["train-images.idx3-ubyte.gz", "train-labels.idx1-ubyte.gz", "t10k-images.idx3-ubyte.gz", "t10k-labels.idx1-ubyte.gz"];
    write_mnist(&data, 60, 20, 12, true, names);
    assert_eq!(std::fs::read(data.join(names[0])).unwrap()[..2], [0x1f, 0x8b]);
    let r = train_on(d.path(), &format!("mnist:{}", path_str(&data)), "mlp(widths=[16])", &[]);
    assert_trained(&r, 60, 20, mlp_params(144, 16, 10));
    // the same files serve as fashion-mnist:DIR; LeNet needs 16x16 at least and says so
    let r = train_on(d.path(), &format!("fashion-mnist:{}", path_str(&data)), "mlp(widths=[8])", &["--out", "fm"]);
    let v = assert_trained(&r, 60, 20, mlp_params(144, 8, 10));
    assert_eq!(v["data"], "fashion-mnist");
    let r = train_on(d.path(), &format!("mnist:{}", path_str(&data)), "lenet", &["--out", "cnn"]);
    r.fails().stderr_has("16");
}

#[test]
fn cifar10_binary_batches() {
    let d = tempdir();
    let data = d.path().join("cifar");
    write_cifar10(&data, 8, 10);
    let r = train_on(d.path(), &format!("cifar10:{}", path_str(&data)), "mlp(widths=[8])", &[]);
    let v = assert_trained(&r, 40, 10, mlp_params(3072, 8, 10));
    assert_eq!(v["data"], "cifar10");
    // the archive's own sub-directory is found too, and a CNN trains on the 3x32x32 images
    let nested = d.path().join("cifar-root");
    write_cifar10(&nested.join("cifar-10-batches-bin"), 4, 6);
    let r = train_on(d.path(), &format!("cifar10:{}", path_str(&nested)), "convnet", &["--out", "cnn"]);
    r.ok();
    let v = r.json();
    assert_eq!(v["train_samples"], 20, "{v}");
    assert_eq!(v["test_samples"], 6, "{v}");
}

#[test]
fn truncated_idx_file_is_named_with_expected_and_found_sizes() {
    let d = tempdir();
    let data = d.path().join("mnist");
    write_mnist(&data, 30, 10, 10, false, MNIST_NAMES);
    let p = data.join("t10k-images-idx3-ubyte");
    let bytes = std::fs::read(&p).unwrap();
    assert_eq!(bytes.len(), 16 + 10 * 100);
    std::fs::write(&p, &bytes[..bytes.len() - 37]).unwrap();
    let r = train_on(d.path(), &format!("mnist:{}", path_str(&data)), "mlp(widths=[8])", &[]);
    r.fails().stderr_has(&path_str(&p)).stderr_has("truncated").stderr_has("expected 1016 bytes").stderr_has("found 979");
    assert!(!d.path().join("run0/checkpoint-last.safetensors").exists());
    // a truncated gzip stream names its file too
    let data = d.path().join("gz");
    write_mnist(&data, 30, 10, 10, true, MNIST_NAMES);
    let p = data.join("train-labels-idx1-ubyte");
    let gz = std::fs::read(&p).unwrap();
    std::fs::write(&p, &gz[..gz.len() / 2]).unwrap();
    let r = train_on(d.path(), &format!("mnist:{}", path_str(&data)), "mlp(widths=[8])", &["--out", "gz-run"]);
    r.fails().stderr_has("train-labels-idx1-ubyte");
    // a header cut short
    let data = d.path().join("short");
    write_mnist(&data, 30, 10, 10, false, MNIST_NAMES);
    std::fs::write(data.join("train-images-idx3-ubyte"), [0, 0, 8, 3, 0, 0]).unwrap();
    let r = train_on(d.path(), &format!("mnist:{}", path_str(&data)), "mlp(widths=[8])", &["--out", "short-run"]);
    r.fails().stderr_has("train-images-idx3-ubyte").stderr_has("truncated");
}

#[test]
fn other_broken_idx_directories() {
    let d = tempdir();
    let data = d.path().join("mnist");
    write_mnist(&data, 30, 10, 10, false, MNIST_NAMES);
    // swapped files
    std::fs::write(data.join("train-images-idx3-ubyte"), idx_labels(&[1, 2, 3])).unwrap();
    let r = train_on(d.path(), &format!("mnist:{}", path_str(&data)), "mlp(widths=[8])", &[]);
    r.fails().stderr_has("train-images-idx3-ubyte").stderr_has("label file");
    // a label out of range
    write_mnist(&data, 30, 10, 10, false, MNIST_NAMES);
    let mut labels: Vec<u8> = (0..10).collect();
    labels[4] = 12;
    std::fs::write(data.join("t10k-labels-idx1-ubyte"), idx_labels(&labels)).unwrap();
    let r = train_on(d.path(), &format!("mnist:{}", path_str(&data)), "mlp(widths=[8])", &[]);
    r.fails().stderr_has("t10k-labels-idx1-ubyte").stderr_has("label 12 at index 4");
    // a missing file, a missing directory
    std::fs::remove_file(data.join("t10k-labels-idx1-ubyte")).unwrap();
    let r = train_on(d.path(), &format!("mnist:{}", path_str(&data)), "mlp(widths=[8])", &[]);
    r.fails().stderr_has("t10k-labels-idx1-ubyte").stderr_has("not found");
    let r = train_on(d.path(), "mnist:/nonexistent/mnist-dir", "mlp(widths=[8])", &[]);
    r.fails().stderr_has("/nonexistent/mnist-dir").stderr_has("does not exist");
    let r = train_on(d.path(), "mnist", "mlp(widths=[8])", &[]);
    r.fails();
}

#[test]
fn a_failed_data_load_does_not_block_the_corrected_command() {
    let d = tempdir();
    let data = d.path().join("mnist");
    write_mnist(&data, 30, 10, 10, false, MNIST_NAMES);
    let r = train_on(d.path(), "mnist:/nonexistent/typo", "mlp(widths=[8])", &["--out", "r"]);
    r.fails().stderr_has("/nonexistent/typo");
    let r = train_on(d.path(), &format!("mnist:{}", path_str(&data)), "mlp(widths=[8])", &["--out", "r"]);
    assert_trained(&r, 30, 10, mlp_params(100, 8, 10));
}

#[test]
fn broken_csv_names_file_and_line() {
    let d = tempdir();
    let data = d.path().join("tab");
    std::fs::create_dir(&data).unwrap();
    let mut train = csv_text(20, 3, 2, 1);
    train.push_str("1.0,oops,2.0,1\n");
    std::fs::write(data.join("train.csv"), &train).unwrap();
    std::fs::write(data.join("test.csv"), csv_text(10, 3, 2, 2)).unwrap();
    let r = train_on(d.path(), &format!("csv:{}", path_str(&data)), "mlp(widths=[8])", &[]);
    r.fails().stderr_has(&format!("{}:22", path_str(&data.join("train.csv")))).stderr_has("`oops` is not a finite number");
    // a ragged row in test.csv
    std::fs::write(data.join("train.csv"), csv_text(20, 3, 2, 1)).unwrap();
    std::fs::write(data.join("test.csv"), format!("{}1,2\n", csv_text(4, 3, 2, 2))).unwrap();
    let r = train_on(d.path(), &format!("csv:{}", path_str(&data)), "mlp(widths=[8])", &[]);
    r.fails().stderr_has("test.csv:6").stderr_has("2 columns, the header has 4");
    // no label column
    std::fs::write(data.join("test.csv"), "a,b,c,class\n1,2,3,0\n").unwrap();
    let r = train_on(d.path(), &format!("csv:{}", path_str(&data)), "mlp(widths=[8])", &[]);
    r.fails().stderr_has("test.csv:1").stderr_has("`label`");
}

#[test]
fn truncated_cifar_batch_is_named() {
    let d = tempdir();
    let data = d.path().join("cifar");
    write_cifar10(&data, 4, 4);
    let p = data.join("data_batch_3.bin");
    let b = std::fs::read(&p).unwrap();
    std::fs::write(&p, &b[..b.len() - 100]).unwrap();
    let r = train_on(d.path(), &format!("cifar10:{}", path_str(&data)), "mlp(widths=[8])", &[]);
    r.fails().stderr_has("data_batch_3.bin").stderr_has("3073");
    std::fs::remove_file(&p).unwrap();
    let r = train_on(d.path(), &format!("cifar10:{}", path_str(&data)), "mlp(widths=[8])", &[]);
    r.fails().stderr_has("data_batch_3.bin").stderr_has("not found");
}

#[test]
fn fashion_mnist_if_installed() {
    let dir = Path::new("/usr/share/datasets/fashion-mnist");
    if !dir.exists() {
        eprintln!("skipping: Fashion-MNIST is not installed in {} (apt-get install dataset-fashion-mnist)", dir.display());
        return;
    }
    let d = tempdir();
    let r = amm(
        d.path(),
        &[
            "train",
            "--data",
            "fashion-mnist",
            "--model",
            "mlp(widths=[32])",
            "--reg",
            "deepfool(l2, 2) |> avg |> exp(2, 1)",
            "--epochs",
            "1",
            "--train-size",
            "500",
            "--set",
            "data.test_size=200",
            "--set",
            "eval.long_iters=0",
            "--quiet",
            "--json",
            "--out",
            "fm",
        ],
    );
    let v = assert_trained(&r, 500, 200, mlp_params(784, 32, 10));
    assert!(num(&v, "test_error") < 0.8, "one epoch on 500 images beats chance: {v}");
}
