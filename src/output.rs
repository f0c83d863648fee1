//! Writing to the terminal without panicking: `println!` and friends (redefined in main.rs for
//! the whole binary) come here. std's versions panic when a write fails, so `amm list | head -1`
//! exited 101, and a grid worker on a full disk died before its real error reached the log.
use std::io::Write;

/// Writes to stdout. A closed pipe ends amm quietly, as it ends other Unix tools (the reader has
/// what it wanted); any other failure is an error that names its cause.
pub fn stdout(args: std::fmt::Arguments) {
    if let Err(e) = std::io::stdout().lock().write_fmt(args) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        let full = matches!(e.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded);
        stderr(format_args!("error: writing to standard output: {e}{}\n", if full { " (the disk is full)" } else { "" }));
        std::process::exit(1);
    }
}

/// Writes to stderr, ignoring failure: there is nowhere left to report it, and losing a progress
/// line must not stop a run.
pub fn stderr(args: std::fmt::Arguments) {
    let _ = std::io::stderr().lock().write_fmt(args);
}
