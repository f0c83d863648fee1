//! User-supplied tabular data: `train.csv` and `test.csv` with a header row, numeric feature
//! columns and a last column named `label` (class indices from 0).

use std::path::Path;

use crate::dataset::{Dataset, Split};
use crate::error::{read_file, DataError};

/// Labels above this are refused (they would make a absurdly wide output layer).
pub const MAX_CSV_LABEL: u64 = 100_000;

const HINT: &str = "the csv dataset needs a directory with train.csv and test.csv: a header row, \
     numeric feature columns and a last column named `label` holding class indices 0, 1, ...";

/// Loads `train.csv` and `test.csv` from `dir`. Features are used as they are; the shape is
/// `[D]`, `classes` is the largest training label plus one (the training set must hold at least two
/// classes, and every test label must occur in it) and `domain` is `None`.
pub fn load_csv(dir: &Path) -> Result<Dataset, DataError> {
    let name = "csv";
    crate::error::check_dir(name, dir, HINT)?;
    let (train_header, train) = read_csv(name, &dir.join("train.csv"))?;
    let test_path = dir.join("test.csv");
    let (test_header, test) = read_csv(name, &test_path)?;
    if train_header != test_header {
        return Err(DataError::file(
            name,
            &test_path,
            format_args!("line 1: header ({} columns) differs from train.csv's ({} columns)", test_header.len(), train_header.len()),
        )
        .hint("both files need the same columns in the same order"));
    }
    // Classes come from the training labels: a model cannot learn a class it never sees, and a
    // test label beyond them would silently change the class count.
    let train_path = dir.join("train.csv");
    let classes = train.y.iter().max().map_or(0, |&m| m as usize + 1);
    let mut seen = vec![false; classes];
    for &l in &train.y {
        seen[l as usize] = true;
    }
    if seen.iter().filter(|&&s| s).count() < 2 {
        return Err(DataError::file(
            name,
            &train_path,
            format_args!("every training row has label {}: a classifier needs at least two classes", train.y[0]),
        )
        .hint("check the `label` column"));
    }
    if let Some((i, &l)) = test.y.iter().enumerate().find(|(_, &l)| l as usize >= classes || !seen[l as usize]) {
        // Row i of the data is line i + 2 (the header is line 1).
        return Err(DataError::file(
            name,
            &test_path,
            format_args!("line {}: label {l} never occurs in train.csv (its labels are {})", i + 2, label_set(&seen)),
        )
        .hint("the test set can only hold classes the model is trained on"));
    }
    Ok(Dataset { name: name.into(), shape: vec![train_header.len() - 1], classes, train, test, domain: None })
}

/// `0, 1, 3` for the labels marked in `seen`.
fn label_set(seen: &[bool]) -> String {
    seen.iter().enumerate().filter(|(_, &s)| s).map(|(l, _)| l.to_string()).collect::<Vec<_>>().join(", ")
}

/// Reads one CSV file: returns its header (all columns) and its rows as a split.
pub fn read_csv(name: &str, path: &Path) -> Result<(Vec<String>, Split), DataError> {
    let bytes = read_file(name, path).map_err(|e| e.hint(HINT))?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count() + 1;
        DataError::file(name, path, format_args!("line {line}: not valid UTF-8 text"))
    })?;
    let at =
        |line: u64, m: String| DataError { path: Some(path.to_path_buf()), message: format!("{name}: {}:{line}: {m}", path.display()) };
    // The csv crate: quoted fields (with commas or quotes inside), CRLF, a UTF-8 BOM and blank
    // lines; every record knows the line it starts on.
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).trim(csv::Trim::All).from_reader(text.as_bytes());
    let mut records = reader.records().filter(|r| r.as_ref().map_or(true, |r| !(r.len() == 1 && r[0].is_empty())));
    // Lines from byte offsets: with CRLF endings the reader's own line count lags behind, and a
    // record's offset points at the line end before it, so skip line ends first.
    let bytes = text.as_bytes();
    let line_of = |p: Option<&csv::Position>| {
        p.map_or(0, |p| {
            let mut b = (p.byte() as usize).min(bytes.len());
            while b < bytes.len() && matches!(bytes[b], b'\r' | b'\n') {
                b += 1;
            }
            bytes[..b].iter().filter(|&&c| c == b'\n').count() as u64 + 1
        })
    };
    let mut next = || -> Result<Option<(u64, csv::StringRecord)>, DataError> {
        match records.next() {
            None => Ok(None),
            Some(Ok(r)) => Ok(Some((line_of(r.position()), r))),
            Some(Err(e)) => Err(at(line_of(e.position()), format!("not a valid CSV row ({e})"))),
        }
    };
    let Some((hl, header_row)) = next()? else {
        return Err(DataError::file(name, path, "empty file (no header row)").hint(HINT));
    };
    let header: Vec<String> = header_row.iter().map(|c| c.trim_start_matches('\u{feff}').to_string()).collect();
    if header.last().map(String::as_str) != Some("label") {
        return Err(
            at(hl, format!("the last header column is `{}`, expected `label`", header.last().map(String::as_str).unwrap_or(""))).hint(HINT)
        );
    }
    if header.len() < 2 {
        return Err(at(hl, "no feature columns before `label`".into()).hint(HINT));
    }
    let cols = header.len();
    let mut split = Split::default();
    while let Some((ln, row)) = next()? {
        if row.len() != cols {
            return Err(at(ln, format!("{} columns, the header has {cols}", row.len())));
        }
        for (c, cell) in row.iter().enumerate() {
            if c + 1 < cols {
                match cell.parse::<f32>() {
                    Ok(v) if v.is_finite() => split.x.push(v),
                    _ => return Err(at(ln, format!("column {} (`{}`): `{cell}` is not a finite number", c + 1, header[c]))),
                }
            } else {
                split.y.push(parse_label(cell).map_err(|m| at(ln, m))?);
            }
        }
    }
    if split.y.is_empty() {
        return Err(DataError::file(name, path, "no data rows after the header").hint(HINT));
    }
    Ok((header, split))
}

fn parse_label(cell: &str) -> Result<u32, String> {
    let v: f64 = cell.parse().map_err(|_| format!("label `{cell}` is not a number (expected a class index 0, 1, ...)"))?;
    if !v.is_finite() || v.fract() != 0.0 {
        return Err(format!("label `{cell}` is not an integer class index"));
    }
    if v < 0.0 {
        return Err(format!("label `{cell}` is negative (class indices start at 0)"));
    }
    if v > MAX_CSV_LABEL as f64 {
        return Err(format!("label `{cell}` is larger than {MAX_CSV_LABEL}"));
    }
    Ok(v as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(train: &str, test: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("train.csv"), train).unwrap();
        std::fs::write(d.path().join("test.csv"), test).unwrap();
        d
    }

    const HDR: &str = "a,b,c,label\n";

    #[test]
    fn roundtrip() {
        let d = setup(&format!("{HDR}1,2,3,0\n-1.5, 2e-3 ,0,2\r\n\n"), &format!("{HDR}0,0,0,2.0\n"));
        let ds = crate::load("csv", Some(d.path())).unwrap();
        assert_eq!(ds.shape, vec![3]);
        assert_eq!(ds.classes, 3);
        assert_eq!(ds.train.x, vec![1., 2., 3., -1.5, 2e-3, 0.]);
        assert_eq!(ds.train.y, vec![0, 2]);
        assert_eq!(ds.test.y, vec![2]);
        assert_eq!(ds.domain, None);
    }

    /// What a spreadsheet writes: a BOM, quoted headers with commas in them, quoted numbers, CRLF.
    #[test]
    fn quoted_fields_bom_and_crlf() {
        let hdr = "\u{feff}\"width, cm\",\"b\",c,label\r\n";
        let d = setup(&format!("{hdr}\"1.5\",2,3,0\r\n4,5,6,1\r\n"), &format!("{hdr}0,0,0,1\r\n"));
        let ds = crate::load("csv", Some(d.path())).unwrap();
        assert_eq!(ds.train.x, vec![1.5, 2., 3., 4., 5., 6.]);
        assert_eq!(ds.train.y, vec![0, 1]);
        let e = err(&format!("{hdr}\"1,5\",2,3,0\r\n"), &format!("{hdr}0,0,0,1\r\n"));
        assert!(e.contains("train.csv:2:") && e.contains("column 1 (`width, cm`): `1,5` is not a finite number"), "{e}");
    }

    fn err(train: &str, test: &str) -> String {
        let d = setup(train, test);
        load_csv(d.path()).unwrap_err().to_string()
    }

    #[test]
    fn errors_have_file_and_line() {
        let ok = format!("{HDR}1,2,3,0\n");
        let e = err(&format!("{HDR}1,2,3,0\n1,x,3,1\n"), &ok);
        assert!(e.contains("train.csv:3:") && e.contains("column 2 (`b`): `x`"), "{e}");
        let e = err(&ok, &format!("{HDR}1,2,3,0\n1,2,0\n"));
        assert!(e.contains("test.csv:3:") && e.contains("3 columns, the header has 4"), "{e}");
        let e = err(&ok, &format!("{HDR}1,2,3,0,9\n"));
        assert!(e.contains("test.csv:2:") && e.contains("5 columns"), "{e}");
        let e = err("a,b,c,y\n1,2,3,0\n", &ok);
        assert!(e.contains("train.csv:1:") && e.contains("expected `label`"), "{e}");
        let e = err(&format!("{HDR}1,2,3,-1\n"), &ok);
        assert!(e.contains("train.csv:2:") && e.contains("negative"), "{e}");
        let e = err(&format!("{HDR}1,2,3,1.5\n"), &ok);
        assert!(e.contains("not an integer"), "{e}");
        let e = err(&format!("{HDR}1,2,3,cat\n"), &ok);
        assert!(e.contains("label `cat` is not a number"), "{e}");
        let e = err(&format!("{HDR}1,NaN,3,1\n"), &ok);
        assert!(e.contains("not a finite number"), "{e}");
        let e = err(HDR, &ok);
        assert!(e.contains("train.csv") && e.contains("no data rows"), "{e}");
        let e = err("", &ok);
        assert!(e.contains("empty file"), "{e}");
        let e = err(&ok, "a,b,label\n1,2,0\n");
        assert!(e.contains("test.csv") && e.contains("differs"), "{e}");
        let two = format!("{HDR}1,2,3,0\n1,2,3,1\n");
        let e = err(&ok, &ok);
        assert!(e.contains("train.csv") && e.contains("at least two classes"), "{e}");
        let e = err(&two, &format!("{HDR}1,2,3,0\n1,2,3,4\n"));
        assert!(e.contains("test.csv") && e.contains("line 3: label 4 never occurs in train.csv (its labels are 0, 1)"), "{e}");
        let e = err("label\n1\n", &ok);
        assert!(e.contains("no feature columns"), "{e}");
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("train.csv"), &ok).unwrap();
        let e = load_csv(d.path()).unwrap_err().to_string();
        assert!(e.contains("test.csv") && e.contains("not found"), "{e}");
    }
}
