//! A small reader for MATLAB level-5 MAT-files (the format of `save -v6`/`-v7` and of
//! `scipy.io.savemat`), enough for numeric arrays such as SVHN's `X` and `y`.
//!
//! Layout: a 128-byte header (116 bytes of text starting with `MATLAB 5.0 MAT-file`, an 8-byte
//! subsystem offset, a 2-byte version and the 2-byte endian indicator `IM`/`MI`), then data
//! elements. Each element has an 8-byte tag (type, byte count) — or, in the "small element"
//! format, a 4-byte tag whose upper half is the byte count, followed by at most 4 data bytes —
//! and its data padded to 8 bytes. A variable is an `miMATRIX` element holding, in order, the
//! array flags (class, complex bit), the dimensions, the name and the real part (and the
//! imaginary part for complex arrays). `miCOMPRESSED` elements hold one or more elements,
//! zlib-compressed (not padded). MATLAB v7.3 files are HDF5 and are refused with a hint.

use std::io::Read;
use std::path::Path;

use crate::error::{read_file, DataError};

const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT16: u32 = 3;
const MI_UINT16: u32 = 4;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_SINGLE: u32 = 7;
const MI_DOUBLE: u32 = 9;
const MI_INT64: u32 = 12;
const MI_UINT64: u32 = 13;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;
const MI_UTF8: u32 = 16;

/// The MATLAB class of an array (the `mxCLASS` code of its array flags).
pub fn class_name(class: u8) -> &'static str {
    match class {
        1 => "cell array",
        2 => "struct",
        3 => "object",
        4 => "char array",
        5 => "sparse array",
        6 => "double array",
        7 => "single array",
        8 => "int8 array",
        9 => "uint8 array",
        10 => "int16 array",
        11 => "uint16 array",
        12 => "int32 array",
        13 => "uint32 array",
        14 => "int64 array",
        15 => "uint64 array",
        _ => "array of unknown class",
    }
}

/// `mxUINT8_CLASS`.
pub const CLASS_UINT8: u8 = 9;
/// `mxDOUBLE_CLASS`.
pub const CLASS_DOUBLE: u8 = 6;

/// The values of a numeric array, column-major (MATLAB order).
#[derive(Debug, Clone, PartialEq)]
pub enum MatData {
    /// Stored as unsigned bytes (kept as bytes: no conversion, no copy per value).
    U8(Vec<u8>),
    /// Any other numeric storage type, converted to `f64`.
    F64(Vec<f64>),
}

impl MatData {
    /// The number of values.
    pub fn len(&self) -> usize {
        match self {
            MatData::U8(v) => v.len(),
            MatData::F64(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Value `i` as `f64`.
    pub fn get(&self, i: usize) -> f64 {
        match self {
            MatData::U8(v) => v[i] as f64,
            MatData::F64(v) => v[i],
        }
    }
}

/// One variable of a MAT-file.
#[derive(Debug, Clone, PartialEq)]
pub struct MatArray {
    /// The variable name.
    pub name: String,
    /// The `mxCLASS` code (see [`class_name`]).
    pub class: u8,
    /// Whether the array is complex.
    pub complex: bool,
    /// The dimensions, MATLAB order (rows first).
    pub dims: Vec<usize>,
    /// The real values for real numeric arrays; `None` for complex, sparse and non-numeric
    /// arrays (cells, structs, chars), which this reader does not decode.
    pub data: Option<MatData>,
}

/// Reads all variables of the MAT v5 file at `path`. `dataset` prefixes error messages.
pub fn read_mat(dataset: &str, path: &Path) -> Result<Vec<MatArray>, DataError> {
    let b = read_file(dataset, path)?;
    parse_mat(dataset, path, &b)
}

/// Parses a MAT v5 file already in memory (`path` only names it in errors).
pub fn parse_mat(dataset: &str, path: &Path, b: &[u8]) -> Result<Vec<MatArray>, DataError> {
    let err = |m: String| DataError::file(dataset, path, m);
    let is_hdf5 = b.len() >= 520 && &b[512..520] == b"\x89HDF\r\n\x1a\n";
    let text = &b[..b.len().min(116)];
    if is_hdf5 || contains(text, b"MATLAB 7.3") {
        return Err(err("is a MATLAB v7.3 (HDF5) MAT-file, which is not supported".into()).hint(
            "re-save it as a v5 MAT-file: in MATLAB `save(file, 'X', 'y', '-v7')`; in Python \
             load it with h5py and write it with `scipy.io.savemat(file, {'X': X, 'y': y})`",
        ));
    }
    if b.starts_with(b"\x89HDF") {
        return Err(err("is an HDF5 file, not a MATLAB v5 MAT-file".into()));
    }
    if !b.starts_with(b"MATLAB") {
        return Err(err("not a MATLAB v5 MAT-file (the header text `MATLAB 5.0 MAT-file` is missing; \
             MATLAB v4 files are not supported)"
            .into()));
    }
    if b.len() < 128 {
        return Err(err(format!("truncated: {} bytes, shorter than the 128-byte MAT-file header", b.len())).hint("download the file again"));
    }
    let big = match &b[126..128] {
        b"IM" => false,
        b"MI" => true,
        other => {
            return Err(err(format!("bad endian indicator {:?} at byte 126 (expected \"IM\" or \"MI\")", String::from_utf8_lossy(other))))
        }
    };
    let r = Reader { dataset, path, big };
    let mut out = Vec::new();
    r.elements(b, 128, &mut out, 0)?;
    Ok(out)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

struct Reader<'p> {
    dataset: &'p str,
    path: &'p Path,
    big: bool,
}

/// A parsed element: its type, its data and where the next element starts.
struct Element<'a> {
    ty: u32,
    data: &'a [u8],
    next: usize,
}

impl Reader<'_> {
    fn err(&self, m: String) -> DataError {
        DataError::file(self.dataset, self.path, m)
    }

    fn u32(&self, b: &[u8], o: usize) -> u32 {
        let a = [b[o], b[o + 1], b[o + 2], b[o + 3]];
        if self.big {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        }
    }

    /// The element starting at `pos` of `b` (`where_` names it in messages).
    fn element<'a>(&self, b: &'a [u8], pos: usize, where_: &str) -> Result<Element<'a>, DataError> {
        let rem = b.len() - pos;
        if rem < 8 {
            return Err(self
                .err(format!("truncated: {where_} at byte {pos}: incomplete element tag ({rem} of 8 bytes)"))
                .hint("download the file again"));
        }
        let w0 = self.u32(b, pos);
        if w0 >> 16 != 0 {
            // small element: type in the low half, byte count in the high half, data inline
            let (ty, n) = (w0 & 0xffff, (w0 >> 16) as usize);
            if n > 4 {
                return Err(self.err(format!("corrupt: {where_} at byte {pos}: small element claims {n} bytes (at most 4)")));
            }
            return Ok(Element { ty, data: &b[pos + 4..pos + 4 + n], next: pos + 8 });
        }
        let n = self.u32(b, pos + 4) as usize;
        if n > rem - 8 {
            return Err(self
                .err(format!("truncated: {where_} at byte {pos} ({}) declares {n} bytes but only {} remain", type_name(w0), rem - 8))
                .hint("download the file again"));
        }
        let end = pos + 8 + n;
        let next = if w0 == MI_COMPRESSED { end } else { (pos + 8 + n.div_ceil(8) * 8).min(b.len()) };
        Ok(Element { ty: w0, data: &b[pos + 8..end], next })
    }

    /// Parses a sequence of top-level elements (or the content of a compressed element).
    fn elements(&self, b: &[u8], mut pos: usize, out: &mut Vec<MatArray>, depth: usize) -> Result<(), DataError> {
        while pos < b.len() {
            let el = self.element(b, pos, "data element")?;
            match el.ty {
                MI_COMPRESSED => {
                    if depth > 0 {
                        return Err(self.err(format!("corrupt: nested compressed element at byte {pos}")));
                    }
                    let mut inflated = Vec::with_capacity(el.data.len().saturating_mul(4));
                    flate2::read::ZlibDecoder::new(el.data).read_to_end(&mut inflated).map_err(|e| {
                        self.err(format!("corrupt or truncated compressed element at byte {pos}: {e}")).hint("download the file again")
                    })?;
                    self.elements(&inflated, 0, out, depth + 1)?;
                }
                MI_MATRIX if !el.data.is_empty() => out.push(self.matrix(el.data)?),
                _ => {} // other top-level elements carry no variables: skip
            }
            pos = el.next;
        }
        Ok(())
    }

    /// Parses the content of an `miMATRIX` element.
    fn matrix(&self, b: &[u8]) -> Result<MatArray, DataError> {
        let flags = self.element(b, 0, "array flags")?;
        if flags.ty != MI_UINT32 || flags.data.len() != 8 {
            return Err(self.err(format!(
                "corrupt: array flags are {} of {} bytes, expected miUINT32 of 8 bytes",
                type_name(flags.ty),
                flags.data.len()
            )));
        }
        let f = self.u32(flags.data, 0);
        let class = (f & 0xff) as u8;
        let complex = f & 0x0800 != 0;
        let dims_el = self.element(b, flags.next, "dimensions")?;
        if dims_el.ty != MI_INT32 || dims_el.data.len() % 4 != 0 || dims_el.data.len() < 8 {
            return Err(self.err(format!(
                "corrupt: dimensions are {} of {} bytes, expected at least two miINT32",
                type_name(dims_el.ty),
                dims_el.data.len()
            )));
        }
        let mut dims = Vec::with_capacity(dims_el.data.len() / 4);
        for i in 0..dims_el.data.len() / 4 {
            let d = self.u32(dims_el.data, 4 * i) as i32;
            if d < 0 {
                return Err(self.err(format!("corrupt: negative dimension {d}")));
            }
            dims.push(d as usize);
        }
        let name_el = self.element(b, dims_el.next, "array name")?;
        if name_el.ty != MI_INT8 && name_el.ty != MI_UINT8 && name_el.ty != MI_UTF8 {
            return Err(self.err(format!("corrupt: array name is {}, expected miINT8", type_name(name_el.ty))));
        }
        let name = String::from_utf8_lossy(name_el.data).into_owned();
        let mut arr = MatArray { name, class, complex, dims, data: None };
        if !(6..=15).contains(&class) || complex {
            return Ok(arr);
        }
        let what = format!("real part of `{}`", arr.name);
        let real = self.element(b, name_el.next, &what)?;
        let data = self.numeric(real.ty, real.data, &arr.name)?;
        let expected = arr.dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).unwrap_or(usize::MAX);
        if data.len() != expected {
            return Err(self.err(format!(
                "corrupt: variable `{}` has {} values but its dimensions {:?} need {expected}",
                arr.name,
                data.len(),
                arr.dims
            )));
        }
        arr.data = Some(data);
        Ok(arr)
    }

    /// Decodes numeric data of storage type `ty`.
    fn numeric(&self, ty: u32, d: &[u8], name: &str) -> Result<MatData, DataError> {
        let size = match ty {
            MI_INT8 | MI_UINT8 => 1,
            MI_INT16 | MI_UINT16 => 2,
            MI_INT32 | MI_UINT32 | MI_SINGLE => 4,
            MI_DOUBLE | MI_INT64 | MI_UINT64 => 8,
            _ => return Err(self.err(format!("variable `{name}`: unsupported storage type {}", type_name(ty)))),
        };
        if !d.len().is_multiple_of(size) {
            return Err(self.err(format!(
                "corrupt: variable `{name}`: {} bytes of {} is not a multiple of {size}",
                d.len(),
                type_name(ty)
            )));
        }
        if ty == MI_UINT8 {
            return Ok(MatData::U8(d.to_vec()));
        }
        let big = self.big;
        macro_rules! conv {
            ($t:ty, $n:expr) => {
                d.chunks_exact($n)
                    .map(|c| {
                        let a: [u8; $n] = c.try_into().unwrap_or([0; $n]);
                        (if big { <$t>::from_be_bytes(a) } else { <$t>::from_le_bytes(a) }) as f64
                    })
                    .collect()
            };
        }
        let v: Vec<f64> = match ty {
            MI_INT8 => d.iter().map(|&x| x as i8 as f64).collect(),
            MI_INT16 => conv!(i16, 2),
            MI_UINT16 => conv!(u16, 2),
            MI_INT32 => conv!(i32, 4),
            MI_UINT32 => conv!(u32, 4),
            MI_SINGLE => conv!(f32, 4),
            MI_DOUBLE => conv!(f64, 8),
            MI_INT64 => conv!(i64, 8),
            _ => conv!(u64, 8),
        };
        Ok(MatData::F64(v))
    }
}

fn type_name(ty: u32) -> String {
    let n = match ty {
        MI_INT8 => "miINT8",
        MI_UINT8 => "miUINT8",
        MI_INT16 => "miINT16",
        MI_UINT16 => "miUINT16",
        MI_INT32 => "miINT32",
        MI_UINT32 => "miUINT32",
        MI_SINGLE => "miSINGLE",
        MI_DOUBLE => "miDOUBLE",
        MI_INT64 => "miINT64",
        MI_UINT64 => "miUINT64",
        MI_MATRIX => "miMATRIX",
        MI_COMPRESSED => "miCOMPRESSED",
        MI_UTF8 => "miUTF8",
        _ => return format!("data type {ty}"),
    };
    n.to_string()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// A variable for [`mat_file`]: name, class, dims, storage type and raw little-endian data.
    pub struct Var {
        pub name: &'static str,
        pub class: u8,
        pub dims: Vec<u32>,
        pub ty: u32,
        pub data: Vec<u8>,
    }

    impl Var {
        pub fn u8(name: &'static str, dims: Vec<u32>, data: Vec<u8>) -> Var {
            Var { name, class: CLASS_UINT8, dims, ty: MI_UINT8, data }
        }
        pub fn f64(name: &'static str, dims: Vec<u32>, data: &[f64]) -> Var {
            Var { name, class: CLASS_DOUBLE, dims, ty: MI_DOUBLE, data: data.iter().flat_map(|v| v.to_le_bytes()).collect() }
        }
    }

    fn element(out: &mut Vec<u8>, ty: u32, data: &[u8]) {
        if data.len() <= 4 && ty != MI_MATRIX && ty != MI_COMPRESSED {
            out.extend_from_slice(&(((data.len() as u32) << 16) | ty).to_le_bytes());
            let mut inline = [0u8; 4];
            inline[..data.len()].copy_from_slice(data);
            out.extend_from_slice(&inline);
            return;
        }
        out.extend_from_slice(&ty.to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
        if ty != MI_COMPRESSED {
            out.resize(out.len().div_ceil(8) * 8, 0);
        }
    }

    /// The bytes of a little-endian MAT v5 file holding `vars`, each in its own
    /// `miCOMPRESSED` element when `compress`.
    pub fn mat_file(vars: &[Var], compress: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut text = b"MATLAB 5.0 MAT-file, Platform: test, Created by: amm-data tests".to_vec();
        text.resize(116, b' ');
        out.extend_from_slice(&text);
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&0x0100u16.to_le_bytes());
        out.extend_from_slice(b"IM");
        for v in vars {
            let mut m = Vec::new();
            let mut flags = [0u8; 8];
            flags[0] = v.class;
            element(&mut m, MI_UINT32, &flags);
            let dims: Vec<u8> = v.dims.iter().flat_map(|d| d.to_le_bytes()).collect();
            element(&mut m, MI_INT32, &dims);
            element(&mut m, MI_INT8, v.name.as_bytes());
            element(&mut m, v.ty, &v.data);
            let mut whole = Vec::new();
            element(&mut whole, MI_MATRIX, &m);
            if compress {
                let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
                z.write_all(&whole).unwrap();
                element(&mut out, MI_COMPRESSED, &z.finish().unwrap());
            } else {
                out.extend_from_slice(&whole);
            }
        }
        out
    }

    fn parse(b: &[u8]) -> Result<Vec<MatArray>, DataError> {
        parse_mat("test", Path::new("/x/f.mat"), b)
    }

    #[test]
    fn roundtrip_types_and_compression() {
        for compress in [false, true] {
            let vars = vec![
                Var::u8("X", vec![2, 3], vec![1, 2, 3, 4, 5, 6]),
                Var::f64("y", vec![3, 1], &[10.0, 1.5, -2.0]),
                Var {
                    name: "longname",
                    class: 12,
                    dims: vec![1, 2],
                    ty: MI_INT16,
                    data: [-5i16, 300].iter().flat_map(|v| v.to_le_bytes()).collect(),
                },
                Var {
                    name: "s",
                    class: 7,
                    dims: vec![1, 1],
                    ty: MI_SINGLE,
                    data: 0.25f32.to_le_bytes().to_vec(), // small element format
                },
            ];
            let a = parse(&mat_file(&vars, compress)).unwrap();
            assert_eq!(a.len(), 4);
            assert_eq!(a[0].name, "X");
            assert_eq!(a[0].dims, vec![2, 3]);
            assert_eq!(a[0].data, Some(MatData::U8(vec![1, 2, 3, 4, 5, 6])));
            assert_eq!(a[1].data, Some(MatData::F64(vec![10.0, 1.5, -2.0])));
            assert_eq!(a[2].name, "longname");
            assert_eq!(a[2].data, Some(MatData::F64(vec![-5.0, 300.0])));
            assert_eq!(a[3].data, Some(MatData::F64(vec![0.25])));
        }
    }

    #[test]
    fn big_endian_file() {
        // one 1x2 double array `v` = [1.5, -3], written big-endian by hand
        let mut b = Vec::new();
        let mut text = b"MATLAB 5.0 MAT-file, big".to_vec();
        text.resize(116, b' ');
        b.extend_from_slice(&text);
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&0x0100u16.to_be_bytes());
        b.extend_from_slice(b"MI");
        let mut m = Vec::new();
        for w in [MI_UINT32, 8, CLASS_DOUBLE as u32, 0, MI_INT32, 8, 1, 2] {
            m.extend_from_slice(&w.to_be_bytes());
        }
        m.extend_from_slice(&((1u32 << 16) | MI_INT8).to_be_bytes());
        m.extend_from_slice(b"v\0\0\0");
        m.extend_from_slice(&MI_DOUBLE.to_be_bytes());
        m.extend_from_slice(&16u32.to_be_bytes());
        m.extend_from_slice(&1.5f64.to_be_bytes());
        m.extend_from_slice(&(-3f64).to_be_bytes());
        b.extend_from_slice(&MI_MATRIX.to_be_bytes());
        b.extend_from_slice(&(m.len() as u32).to_be_bytes());
        b.extend_from_slice(&m);
        let a = parse(&b).unwrap();
        assert_eq!(a[0].name, "v");
        assert_eq!(a[0].data, Some(MatData::F64(vec![1.5, -3.0])));
    }

    #[test]
    fn refuses_v73_and_non_mat() {
        let mut b = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon HDF5 schema 1.00 .".to_vec();
        b.resize(512, b' ');
        b.extend_from_slice(b"\x89HDF\r\n\x1a\n");
        b.resize(2048, 0);
        let e = parse(&b).unwrap_err().to_string();
        assert!(e.contains("/x/f.mat") && e.contains("v7.3") && e.contains("scipy.io.savemat"), "{e}");
        let e = parse(b"\x89HDF\r\n\x1a\n0000").unwrap_err().to_string();
        assert!(e.contains("HDF5"), "{e}");
        let e = parse(b"hello").unwrap_err().to_string();
        assert!(e.contains("not a MATLAB v5 MAT-file"), "{e}");
        let e = parse(b"MATLAB 5.0 MAT-file").unwrap_err().to_string();
        assert!(e.contains("truncated") && e.contains("128-byte"), "{e}");
        let mut b = mat_file(&[], false);
        b[126] = b'X';
        assert!(parse(&b).unwrap_err().to_string().contains("endian"));
    }

    #[test]
    fn truncated_and_corrupt_elements() {
        let vars = [Var::u8("X", vec![4, 4], vec![7; 16])];
        let good = mat_file(&vars, false);
        for cut in [good.len() - 1, good.len() - 20, 130, 140] {
            let e = parse(&good[..cut]).unwrap_err().to_string();
            assert!(e.contains("truncated") && e.contains("/x/f.mat"), "cut {cut}: {e}");
        }
        let z = mat_file(&vars, true);
        let e = parse(&z[..z.len() - 3]).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
        // corrupt the zlib stream but keep its length
        let mut z2 = z.clone();
        for b in z2[136..].iter_mut() {
            *b ^= 0x5a;
        }
        let e = parse(&z2).unwrap_err().to_string();
        assert!(e.contains("compressed element"), "{e}");
        // wrong value count for the dims
        let bad = mat_file(&[Var::u8("X", vec![4, 5], vec![7; 16])], false);
        let e = parse(&bad).unwrap_err().to_string();
        assert!(e.contains("16 values") && e.contains("need 20"), "{e}");
    }

    /// Random corruption (bit flips, truncation, length fields) never panics.
    #[test]
    fn mutated_files_never_panic() {
        let vars = [Var::u8("X", vec![4, 4, 3, 2], (0..96).collect()), Var::f64("y", vec![2, 1], &[1.0, 10.0])];
        let mut rng = crate::Rng::new(11);
        for compress in [false, true] {
            let good = mat_file(&vars, compress);
            for _ in 0..3000 {
                let mut b = good.clone();
                for _ in 0..=rng.index(4) {
                    let i = 116 + rng.index(b.len() - 116);
                    b[i] = match rng.index(3) {
                        0 => b[i] ^ (1 << rng.index(8)),
                        1 => 0xff,
                        _ => 0,
                    };
                }
                if rng.bernoulli(0.3) {
                    b.truncate(rng.index(b.len()));
                }
                let _ = parse(&b);
            }
        }
    }

    #[test]
    fn non_numeric_arrays_are_listed_without_data() {
        let vars = [Var { name: "c", class: 1, dims: vec![1, 1], ty: MI_UINT8, data: vec![] }];
        let a = parse(&mat_file(&vars, false)).unwrap();
        assert_eq!(a[0].class, 1);
        assert!(a[0].data.is_none());
        assert_eq!(class_name(a[0].class), "cell array");
    }
}
