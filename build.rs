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
    // $ORIGIN first: a packaged amm ships libamm_core.so and libstd next to the binary, or in
    // ../lib/amm (`amm plugins bundle`). Then the absolute build directory this amm was built in:
    // `cargo install --path .` builds in the workspace's target/ and copies only the binary, which
    // then keeps working as long as that directory does (docs/PLUGINS.md). Last, the toolchain's
    // libstd.
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
    // OUT_DIR = <target>/<profile>/build/amm-<hash>/out
    let profile_dir = out_dir.ancestors().nth(3).map(|p| p.display().to_string()).unwrap_or_default();
    let mut rpath = vec!["$ORIGIN".to_string(), "$ORIGIN/../lib/amm".into(), "$ORIGIN/deps".into(), "$ORIGIN/..".into()];
    if !profile_dir.is_empty() && !profile_dir.contains(':') {
        rpath.push(profile_dir.clone());
        rpath.push(format!("{profile_dir}/deps"));
    }
    rpath.push(format!("{sysroot}/lib/rustlib/{target}/lib"));
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", rpath.join(":"));
    println!("cargo:rerun-if-changed=build.rs");
}
