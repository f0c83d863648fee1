//! A small writer (and reader) of TensorBoard event files, with no dependencies.
//!
//! An event file (`events.out.tfevents.<secs>.<hostname>`) is a sequence of TFRecords:
//!
//! ```text
//! u64 length (little endian) | u32 masked CRC32C of those 8 bytes | data | u32 masked CRC32C of data
//! ```
//!
//! where each `data` is an `Event` protocol buffer, hand-encoded here:
//!
//! ```text
//! Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
//! Summary { repeated Value value = 1; }
//! Value   { string tag = 1; float simple_value = 2; }
//! ```
//!
//! The first record carries `file_version = "brain.Event:2"`; every scalar is one more event.
//! TensorBoard (`tensorboard --logdir DIR`) and its Python `EventAccumulator` read the result.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! let mut w = amm_core::tensorboard::EventWriter::create(std::path::Path::new("runs/x/tb"))?;
//! w.scalar("test_error", 1, 0.0123)?;
//! w.flush()?;
//! # Ok(()) }
//! ```
use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The `file_version` of the first event.
pub const FILE_VERSION: &str = "brain.Event:2";

const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0x82F6_3B78 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32C (Castagnoli), as TFRecord uses: `crc32c(b"123456789") == 0xE3069283`.
pub fn crc32c(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c = CRC32C_TABLE[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// The masked CRC TFRecord stores: rotate right by 15 and add a constant.
pub fn masked_crc32c(bytes: &[u8]) -> u32 {
    let c = crc32c(bytes);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Frames one record: length, masked CRC of the length, data, masked CRC of the data.
pub fn frame_record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    out
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_key(out: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(out, ((field as u64) << 3) | wire as u64);
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key(out, field, 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// An `Event` with `wall_time`, `step` and either a file version or one scalar summary value.
fn encode_event(wall_time: f64, step: i64, file_version: Option<&str>, scalar: Option<(&str, f32)>) -> Vec<u8> {
    let mut ev = Vec::new();
    put_key(&mut ev, 1, 1);
    ev.extend_from_slice(&wall_time.to_le_bytes());
    if step != 0 {
        put_key(&mut ev, 2, 0);
        put_varint(&mut ev, step as u64);
    }
    if let Some(v) = file_version {
        put_bytes(&mut ev, 3, v.as_bytes());
    }
    if let Some((tag, x)) = scalar {
        let mut value = Vec::new();
        put_bytes(&mut value, 1, tag.as_bytes());
        put_key(&mut value, 2, 5);
        value.extend_from_slice(&x.to_le_bytes());
        let mut summary = Vec::new();
        put_bytes(&mut summary, 1, &value);
        put_bytes(&mut ev, 5, &summary);
    }
    ev
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

fn hostname() -> String {
    let from_file = ["/proc/sys/kernel/hostname", "/etc/hostname"].iter().find_map(|p| std::fs::read_to_string(p).ok());
    let h = from_file.or_else(|| std::env::var("HOSTNAME").ok()).or_else(|| std::env::var("COMPUTERNAME").ok()).unwrap_or_default();
    let h: String = h.trim().chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_') { c } else { '_' }).collect();
    if h.is_empty() {
        "localhost".into()
    } else {
        h
    }
}

/// Writes scalars to a new event file in a directory.
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl EventWriter {
    /// Creates `dir` if needed and a new `events.out.tfevents.<secs>.<hostname>` in it (with a
    /// `.N` suffix if that name is taken), starting with the file-version event.
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let t = now();
        let base = format!("events.out.tfevents.{:010}.{}", t as u64, hostname());
        let mut n = 0;
        let (path, file) = loop {
            let name = if n == 0 { base.clone() } else { format!("{base}.{n}") };
            let path = dir.join(name);
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(f) => break (path, f),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
                Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
            }
        };
        let mut w = EventWriter { path, out: BufWriter::new(file) };
        w.record(&encode_event(t, 0, Some(FILE_VERSION), None))?;
        w.flush()?;
        Ok(w)
    }

    /// The event file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn record(&mut self, data: &[u8]) -> Result<()> {
        self.out.write_all(&frame_record(data)).with_context(|| format!("writing {}", self.path.display()))
    }

    /// Appends one scalar (stored as a 32-bit float, as TensorBoard's `simple_value` is).
    pub fn scalar(&mut self, tag: &str, step: i64, value: f64) -> Result<()> {
        self.record(&encode_event(now(), step, None, Some((tag, value as f32))))
    }

    /// Pushes buffered events to the file.
    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().with_context(|| format!("writing {}", self.path.display()))
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        let _ = self.out.flush();
    }
}

// ------------------------------------------------------------------------------------------
// Reading
// ------------------------------------------------------------------------------------------

struct Pb<'a> {
    b: &'a [u8],
    i: usize,
}

enum Field<'a> {
    Varint(u64),
    Fixed64([u8; 8]),
    Bytes(&'a [u8]),
    Fixed32([u8; 4]),
}

impl<'a> Pb<'a> {
    fn new(b: &'a [u8]) -> Self {
        Pb { b, i: 0 }
    }

    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let Some(&byte) = self.b.get(self.i) else { bail!("truncated varint") };
            self.i += 1;
            v |= ((byte & 0x7f) as u64) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        bail!("varint longer than 10 bytes")
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.i.checked_add(n).filter(|&e| e <= self.b.len()).context("truncated field")?;
        let s = &self.b[self.i..end];
        self.i = end;
        Ok(s)
    }

    fn next(&mut self) -> Result<Option<(u64, Field<'a>)>> {
        if self.i >= self.b.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => Field::Fixed64(self.take(8)?.try_into().expect("8 bytes")),
            2 => {
                let n = self.varint()? as usize;
                Field::Bytes(self.take(n)?)
            }
            5 => Field::Fixed32(self.take(4)?.try_into().expect("4 bytes")),
            w => bail!("unsupported protobuf wire type {w}"),
        };
        Ok(Some((key >> 3, field)))
    }
}

/// The scalar of a `TensorProto` (dtype float or double), as newer TensorBoard writers store it.
fn tensor_scalar(b: &[u8]) -> Result<Option<f64>> {
    let (mut dtype, mut value) = (0u64, None);
    let mut content: &[u8] = &[];
    let mut pb = Pb::new(b);
    while let Some((f, v)) = pb.next()? {
        match (f, v) {
            (1, Field::Varint(d)) => dtype = d,
            (4, Field::Bytes(c)) => content = c,
            (5, Field::Fixed32(x)) => value = Some(f32::from_le_bytes(x) as f64),
            (5, Field::Bytes(p)) if p.len() >= 4 => value = Some(f32::from_le_bytes(p[..4].try_into().expect("4")) as f64),
            (6, Field::Fixed64(x)) => value = Some(f64::from_le_bytes(x)),
            (6, Field::Bytes(p)) if p.len() >= 8 => value = Some(f64::from_le_bytes(p[..8].try_into().expect("8"))),
            _ => {}
        }
    }
    if value.is_none() {
        value = match dtype {
            1 if content.len() >= 4 => Some(f32::from_le_bytes(content[..4].try_into().expect("4")) as f64),
            2 if content.len() >= 8 => Some(f64::from_le_bytes(content[..8].try_into().expect("8"))),
            _ => None,
        };
    }
    Ok(value)
}

/// One decoded event: its step, its file version (first event) and its scalar values.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Event {
    pub wall_time: f64,
    pub step: i64,
    pub file_version: Option<String>,
    /// `(tag, value)` for every summary value that holds a scalar.
    pub scalars: Vec<(String, f64)>,
}

fn decode_event(b: &[u8]) -> Result<Event> {
    let mut ev = Event::default();
    let mut pb = Pb::new(b);
    while let Some((f, v)) = pb.next()? {
        match (f, v) {
            (1, Field::Fixed64(x)) => ev.wall_time = f64::from_le_bytes(x),
            (2, Field::Varint(s)) => ev.step = s as i64,
            (3, Field::Bytes(s)) => ev.file_version = Some(String::from_utf8_lossy(s).into_owned()),
            (5, Field::Bytes(summary)) => {
                let mut sp = Pb::new(summary);
                while let Some((sf, sv)) = sp.next()? {
                    let (1, Field::Bytes(value)) = (sf, sv) else { continue };
                    let (mut tag, mut x) = (String::new(), None);
                    let mut vp = Pb::new(value);
                    while let Some((vf, vv)) = vp.next()? {
                        match (vf, vv) {
                            (1, Field::Bytes(t)) => tag = String::from_utf8_lossy(t).into_owned(),
                            (2, Field::Fixed32(s)) => x = Some(f32::from_le_bytes(s) as f64),
                            (8, Field::Bytes(t)) => x = x.or(tensor_scalar(t)?),
                            _ => {}
                        }
                    }
                    if let Some(x) = x {
                        ev.scalars.push((tag, x));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(ev)
}

/// Splits event-file bytes into records, checking both CRCs of each.
pub fn read_records(bytes: &[u8]) -> Result<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let head = bytes.get(i..i + 12).with_context(|| format!("truncated record header at byte {i}"))?;
        let len_bytes = &head[..8];
        let len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes")) as usize;
        let crc = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
        if crc != masked_crc32c(len_bytes) {
            bail!("bad length CRC of the record at byte {i}");
        }
        let data = bytes.get(i + 12..i + 12 + len).with_context(|| format!("truncated record at byte {i}"))?;
        let dcrc = bytes.get(i + 12 + len..i + 16 + len).with_context(|| format!("truncated record at byte {i}"))?;
        if u32::from_le_bytes(dcrc.try_into().expect("4 bytes")) != masked_crc32c(data) {
            bail!("bad data CRC of the record at byte {i}");
        }
        out.push(data);
        i += 16 + len;
    }
    Ok(out)
}

/// Every event of an event file.
pub fn read_events(path: &Path) -> Result<Vec<Event>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    read_records(&bytes)
        .and_then(|recs| recs.into_iter().map(decode_event).collect())
        .with_context(|| format!("{} is not a valid event file", path.display()))
}

/// Every scalar of an event file as `(tag, step, value)`, in file order.
pub fn read_scalars(path: &Path) -> Result<Vec<(String, i64, f64)>> {
    Ok(read_events(path)?.into_iter().flat_map(|e| e.scalars.into_iter().map(move |(t, v)| (t, e.step, v))).collect())
}
