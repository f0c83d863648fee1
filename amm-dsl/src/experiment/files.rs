//! Reading spec files safely: regular files of bounded size, includes of bounded depth.

use std::path::Path;

/// Where includes stop: deeper chains are surely a mistake.
pub(super) const MAX_INCLUDE_DEPTH: usize = 32;

/// The largest spec file read: 1 MiB. Real specs are a few hundred bytes; a grid axis of
/// 100,000 integers (the most cells a grid may have) fits.
pub const MAX_SPEC_BYTES: u64 = 1 << 20;

/// The most CPU threads `train.threads` may ask for (0 means every core).
pub const MAX_THREADS: usize = 1024;

/// What a file that is not a regular file is, in words.
pub(super) fn file_kind(t: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// Opens `path` for reading; for an include, without blocking (a FIFO with no writer would
/// block `open` forever; the caller refuses it after a look at the open file).
pub(super) fn open_spec(path: &Path, include: bool) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    if include {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    #[cfg(not(unix))]
    let _ = include;
    options.open(path)
}

/// Reads a spec file, at most [`MAX_SPEC_BYTES`] of it. An included file must be a regular file:
/// a FIFO blocks forever and `/dev/zero` never ends. The file named on the command line may also
/// be a pipe (`amm check <(...)`), read with the same bound. Errors are `(message, help)`.
pub(super) fn read_spec(path: &Path, include: bool) -> Result<Vec<u8>, (String, Option<String>)> {
    use std::io::Read;
    let shown = path.display();
    let cannot = |e: std::io::Error| (format!("cannot read `{shown}`: {e}"), None);
    let refuse = |kind: &str| {
        (
            format!("cannot {} `{shown}`: it is {kind}", if include { "include" } else { "read" }),
            Some("spec files are regular files (.amm); FIFOs and devices could block or never end".to_string()),
        )
    };
    let too_large = |len: Option<u64>| {
        let size = len.map_or_else(String::new, |n| format!(" ({n} bytes)"));
        (
            format!("`{shown}` is larger than {} MiB{size}", MAX_SPEC_BYTES >> 20),
            Some(format!("a spec file holds at most {MAX_SPEC_BYTES} bytes; split a grid this large into several experiments")),
        )
    };
    // Look before opening (`metadata` follows links and never blocks), and again at what was
    // opened, in case the path changed in between.
    let check = |meta: &std::fs::Metadata| {
        if meta.is_dir() || (include && !meta.is_file()) {
            return Err(refuse(file_kind(meta.file_type())));
        }
        if meta.is_file() && meta.len() > MAX_SPEC_BYTES {
            return Err(too_large(Some(meta.len())));
        }
        Ok(())
    };
    check(&std::fs::metadata(path).map_err(cannot)?)?;
    let file = open_spec(path, include).map_err(cannot)?;
    check(&file.metadata().map_err(cannot)?)?;
    let mut bytes = Vec::new();
    file.take(MAX_SPEC_BYTES + 1).read_to_end(&mut bytes).map_err(cannot)?;
    if bytes.len() as u64 > MAX_SPEC_BYTES {
        return Err(too_large(None));
    }
    Ok(bytes)
}
