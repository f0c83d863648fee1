//! The TensorBoard event writer: CRC32C test vectors, TFRecord framing, a round trip through our
//! reader, and files written by the Python `tensorboard` package (tests/data, made by
//! tests/data/make_python_tfevents.py).
use amm_core::tensorboard::{crc32c, frame_record, masked_crc32c, read_events, read_records, read_scalars, EventWriter, FILE_VERSION};
use std::path::{Path, PathBuf};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// A fresh directory under cargo's temporary folder for integration tests.
fn tempdir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("tensorboard-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn event_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

#[test]
fn crc32c_test_vectors() {
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    assert_eq!(crc32c(b""), 0);
    // RFC 3720 (iSCSI), B.4: 32 bytes of zeros, of 0xff, and an increasing sequence.
    assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
    assert_eq!(crc32c(&[0xffu8; 32]), 0x62A8_AB43);
    let inc: Vec<u8> = (0..32).collect();
    assert_eq!(crc32c(&inc), 0x46DD_794E);
    // The mask TFRecord applies: rotate right 15, add 0xa282ead8.
    assert_eq!(masked_crc32c(b"123456789"), 0xE306_9283u32.rotate_right(15).wrapping_add(0xa282_ead8));
}

#[test]
fn records_are_framed_and_checked() {
    let rec = frame_record(b"hello");
    assert_eq!(rec.len(), 5 + 16);
    assert_eq!(&rec[..8], &5u64.to_le_bytes());
    assert_eq!(read_records(&rec).unwrap(), vec![b"hello".as_slice()]);
    let mut bad = rec.clone();
    bad[14] ^= 1;
    assert!(read_records(&bad).unwrap_err().to_string().contains("data CRC"));
    let mut bad = rec.clone();
    bad[0] ^= 1;
    assert!(read_records(&bad).unwrap_err().to_string().contains("length CRC"));
    assert!(read_records(&rec[..rec.len() - 1]).is_err());
}

#[test]
fn writer_round_trips_through_the_reader() {
    let dir = tempdir("round-trip");
    let mut w = EventWriter::create(dir.as_path()).unwrap();
    let name = w.path().file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("events.out.tfevents."), "{name}");
    let expected: Vec<(String, i64, f64)> = (1..=3)
        .flat_map(|e| [("loss".to_string(), e, 2.0 / e as f64), ("test_error".to_string(), e, 0.125 * e as f64)])
        .chain([("margin".to_string(), 1_000_000_000_000, -1.5), ("ms_per_step".to_string(), 0, 0.0)])
        .collect();
    for (t, s, v) in &expected {
        w.scalar(t, *s, *v).unwrap();
    }
    w.flush().unwrap();
    // A second writer in the same directory and second gets a file of its own.
    let w2 = EventWriter::create(dir.as_path()).unwrap();
    assert_ne!(w2.path(), w.path());
    drop(w);
    let got = read_scalars(&dir.as_path().join(&name)).unwrap();
    // Values are stored as f32 (TensorBoard's simple_value).
    let rounded: Vec<(String, i64, f64)> = expected.iter().map(|(t, s, v)| (t.clone(), *s, *v as f32 as f64)).collect();
    assert_eq!(got, rounded);
    let events = read_events(&dir.as_path().join(&name)).unwrap();
    assert_eq!(events[0].file_version.as_deref(), Some(FILE_VERSION));
    assert!(events[0].scalars.is_empty());
    assert!(events.iter().all(|e| e.wall_time > 1.5e9));
    assert_eq!(event_files(dir.as_path()).len(), 2);

    let mut w3 = EventWriter::create(&dir.as_path().join("sub/dir")).unwrap();
    w3.scalar("x", 7, 0.1).unwrap();
    drop(w3);
    let f = &event_files(&dir.as_path().join("sub/dir"))[0];
    assert_eq!(read_scalars(f).unwrap(), vec![("x".to_string(), 7, 0.1f32 as f64)]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn reads_files_written_by_python_tensorboard() {
    let got = read_scalars(&data("python-simple.tfevents")).unwrap();
    let mut expected = Vec::new();
    for step in 0..3i64 {
        expected.push(("loss".to_string(), step, (1.0 / (step + 1) as f64) as f32 as f64));
        expected.push(("test_error".to_string(), step, (0.25 - 0.05 * step as f64) as f32 as f64));
    }
    assert_eq!(got, expected);
    let events = read_events(&data("python-simple.tfevents")).unwrap();
    assert_eq!(events[0].file_version.as_deref(), Some(FILE_VERSION));
    assert_eq!(events[1].wall_time, 1_700_000_000.0);

    // tensorboard.summary.Writer.add_scalar stores scalars as tensors.
    let got = read_scalars(&data("python-tensor.tfevents")).unwrap();
    assert_eq!(got, vec![("margin".to_string(), 0, 0.5), ("margin".to_string(), 1, 0.625), ("margin".to_string(), 2, 0.75)]);
}

/// For the manual cross-check with Python (see tests/data/check_with_python.py):
/// `AMM_TB_OUT=/tmp/tb cargo test -p amm-core --test tensorboard -- --ignored write_for_python`.
#[test]
#[ignore = "writes an event file for the Python cross-check; needs AMM_TB_OUT"]
fn write_for_python() {
    let dir = PathBuf::from(std::env::var("AMM_TB_OUT").expect("set AMM_TB_OUT to a directory"));
    let mut w = EventWriter::create(&dir).unwrap();
    for epoch in 1..=5i64 {
        for (tag, v) in [("loss", 1.0 / epoch as f64), ("test_error", 0.5 - 0.0625 * epoch as f64), ("margin", 0.25 * epoch as f64)] {
            w.scalar(tag, epoch, v).unwrap();
        }
    }
    w.flush().unwrap();
    println!("{}", w.path().display());
}
