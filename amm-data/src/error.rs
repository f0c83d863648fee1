//! The one error type of this crate.

use std::fmt;
use std::path::{Path, PathBuf};

/// Why a dataset could not be loaded or prepared.
///
/// The message is complete on its own: it names the dataset, the file (when there is one),
/// what was wrong and, where it helps, how to fix it. `path` repeats the offending file for
/// programs that want it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataError {
    /// The file (or directory) the problem is about, if any.
    pub path: Option<PathBuf>,
    /// A human-readable description of the problem, including the path.
    pub message: String,
}

impl DataError {
    /// An error not tied to a file (bad options, unknown dataset name, ...).
    pub fn new(message: impl Into<String>) -> Self {
        DataError { path: None, message: message.into() }
    }

    /// An error about `path`; the message is formatted as `"{dataset}: {path}: {problem}"`.
    pub fn file(dataset: &str, path: &Path, problem: impl fmt::Display) -> Self {
        DataError { path: Some(path.to_path_buf()), message: format!("{dataset}: {}: {problem}", path.display()) }
    }

    /// Appends a hint (`"; {hint}"`) to the message.
    pub fn hint(mut self, hint: impl fmt::Display) -> Self {
        self.message = format!("{}; {hint}", self.message);
        self
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DataError {}

/// Reads a whole file, turning I/O failures into a [`DataError`] that names the file.
pub(crate) fn read_file(dataset: &str, path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => DataError::file(dataset, path, "file not found"),
        _ => DataError::file(dataset, path, format_args!("cannot read: {e}")),
    })
}

/// Checks that `dir` exists and is a directory.
pub(crate) fn check_dir(dataset: &str, dir: &Path, hint: &str) -> Result<(), DataError> {
    if !dir.exists() {
        Err(DataError::file(dataset, dir, "directory does not exist").hint(hint))
    } else if !dir.is_dir() {
        Err(DataError::file(dataset, dir, "is not a directory").hint(hint))
    } else {
        Ok(())
    }
}

/// Decompresses a gzip stream (all members), naming the file on failure.
pub(crate) fn gunzip(dataset: &str, path: &Path, bytes: &[u8]) -> Result<Vec<u8>, DataError> {
    use std::io::Read;
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(2));
    flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut out).map_err(|e| {
        DataError::file(dataset, path, format_args!("corrupt or truncated gzip data ({e})")).hint("download the file again")
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_file_and_hint() {
        let e = DataError::file("mnist", Path::new("/d/x"), "bad").hint("fix it");
        assert_eq!(e.to_string(), "mnist: /d/x: bad; fix it");
        assert_eq!(e.path.as_deref(), Some(Path::new("/d/x")));
        let e: Box<dyn std::error::Error> = Box::new(DataError::new("plain"));
        assert_eq!(e.to_string(), "plain");
    }

    #[test]
    fn corrupt_gzip_is_an_error() {
        let e = gunzip("t", Path::new("f.gz"), &[0x1f, 0x8b, 8, 0, 1, 2, 3]).unwrap_err();
        assert!(e.to_string().contains("f.gz"), "{e}");
        assert!(e.to_string().contains("gzip"), "{e}");
    }
}
