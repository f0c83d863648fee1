//! Captures what the plugin handshake compares (docs/PLUGINS.md):
//! - `AMM_RUSTC_VERSION`: `rustc -V` of the compiler building amm-core (plugins are compiled by
//!   the same one, as rustc refuses crate metadata from another compiler);
//! - `AMM_BUILD_ID`: a fingerprint of this build of amm-core: the compiler, target, profile,
//!   features and the sources of amm-core, amm-dsl and amm-data. Two builds of libamm_core.so
//!   with the same version but different code get different ids, so a plugin built against one
//!   is refused by the other instead of running into mismatched type layouts.
use std::path::{Path, PathBuf};
use std::process::Command;

/// FNV-1a, 64 bit: stable across Rust versions (unlike `DefaultHasher`).
struct Fnv(u64);
impl Fnv {
    fn add(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x100_0000_01b3);
        }
        // A separator, so that ("ab", "c") and ("a", "bc") differ.
        self.0 ^= 0xff;
        self.0 = self.0.wrapping_mul(0x100_0000_01b3);
    }
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(&rustc)
        .arg("-V")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "rustc (unknown version)".into());
    println!("cargo:rustc-env=AMM_RUSTC_VERSION={version}");

    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    h.add(version.as_bytes());
    for key in ["TARGET", "PROFILE", "OPT_LEVEL", "DEBUG", "CARGO_PKG_VERSION"] {
        h.add(std::env::var(key).unwrap_or_default().as_bytes());
    }
    let mut features: Vec<String> = std::env::vars().map(|(k, _)| k).filter(|k| k.starts_with("CARGO_FEATURE_")).collect();
    features.sort();
    for f in &features {
        h.add(f.as_bytes());
    }
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for rel in ["src", "../amm-dsl/src", "../amm-data/src"] {
        let dir = manifest.join(rel);
        println!("cargo:rerun-if-changed={}", dir.display());
        files_under(&dir, &mut files);
    }
    for rel in ["Cargo.toml", "build.rs", "../amm-dsl/Cargo.toml", "../amm-data/Cargo.toml"] {
        let f = manifest.join(rel);
        println!("cargo:rerun-if-changed={}", f.display());
        files.push(f);
    }
    let mut keyed: Vec<(String, PathBuf)> =
        files.into_iter().map(|p| (p.strip_prefix(&manifest).unwrap_or(&p).to_string_lossy().replace('\\', "/"), p)).collect();
    keyed.sort();
    for (key, path) in keyed {
        h.add(key.as_bytes());
        h.add(&std::fs::read(&path).unwrap_or_default());
    }
    println!("cargo:rustc-env=AMM_BUILD_ID={:016x}", h.0);
}
