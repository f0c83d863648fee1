//! Lets `target/*/amm` (and `cargo install`ed copies) find `libamm_core.so` and Rust's `libstd`
//! without LD_LIBRARY_PATH: the workspace links std and amm-core dynamically so that plugins
//! share one copy of candle (docs/PLUGINS.md).
use std::process::Command;

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let target = std::env::var("TARGET").unwrap_or_default();
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    // $ORIGIN first: a packaged amm ships libamm_core.so and libstd next to the binary.
    println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN:$ORIGIN/deps:$ORIGIN/..:{sysroot}/lib/rustlib/{target}/lib");
    println!("cargo:rerun-if-changed=build.rs");
}
