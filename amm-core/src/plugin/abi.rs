//! The plugin ABI: what a plugin exports ([`AmmPluginDescriptor`], the two entry points), the
//! versions the handshake compares, the handshake itself ([`read_descriptor`]: stage 3 of
//! loading, see the module doc of [`plugin`](super)), what it tells of a plugin
//! ([`PluginInfo`]), and the error of a file that does not speak this ABI at all ([`NotAPlugin`]).
#![deny(unsafe_op_in_unsafe_fn)]
use super::registrar::Registrar;
use crate::dsl::Kind;
use anyhow::{anyhow, bail, Result};
use std::ffi::c_char;
use std::path::{Path, PathBuf};

/// A loaded plugin and what it registered.
#[derive(Clone, Debug)]
pub struct PluginInfo {
    /// The canonical path of the file.
    pub file: PathBuf,
    /// The plugin crate's name and version.
    pub name: String,
    pub version: String,
    pub amm_version: String,
    pub rustc_version: String,
    pub build_id: String,
    /// The evidence that it shares amm's copy of candle.
    pub candle_check: String,
    /// What it registered, in order.
    pub items: Vec<(Kind, String)>,
}

/// The error of a file that is not an amm plugin at all (not a shared library, or one without the
/// plugin exports), as opposed to a plugin that was refused. Directory scans skip such files with
/// a warning; a file named with `--plugin` is an error either way.
#[derive(Debug)]
pub struct NotAPlugin(pub String);

impl std::fmt::Display for NotAPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotAPlugin {}

/// A [`NotAPlugin`] error.
pub(super) fn not_a_plugin(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(NotAPlugin(msg.into()))
}

/// `AMMPLUG1`: the first field of every descriptor.
pub const MAGIC: u64 = u64::from_be_bytes(*b"AMMPLUG1");
/// The layout of [`AmmPluginDescriptor`] and the calling convention of the registration entry
/// point. Bumped on any change to either.
pub const API_VERSION: u32 = 1;
/// The amm version (NUL-terminated).
pub const AMM_VERSION_NUL: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
/// `rustc -V` of the compiler that built amm-core (NUL-terminated).
pub const RUSTC_VERSION_NUL: &str = concat!(env!("AMM_RUSTC_VERSION"), "\0");
/// Fingerprint of this build of amm-core (NUL-terminated; see amm-core/build.rs).
pub const BUILD_ID_NUL: &str = concat!(env!("AMM_BUILD_ID"), "\0");

/// The exported symbol that returns the descriptor.
pub const DESCRIPTOR_SYMBOL: &str = "amm_plugin_descriptor";
/// The exported registration entry point.
pub const REGISTER_SYMBOL: &str = "amm_plugin_register";

/// What a plugin says about itself, read before anything else of it is used. Every string is
/// NUL-terminated and static. Only `magic` and `api_version` are read before `api_version` has
/// been checked, so later API versions may change the rest.
#[repr(C)]
pub struct AmmPluginDescriptor {
    /// [`MAGIC`].
    pub magic: u64,
    /// [`API_VERSION`] of the amm-core the plugin was built against.
    pub api_version: u32,
    /// `size_of::<AmmPluginDescriptor>()` in the plugin.
    pub size: u32,
    /// amm version the plugin was built against.
    pub amm_version: *const c_char,
    /// `rustc -V` of the compiler of that amm-core (and so of the plugin).
    pub rustc_version: *const c_char,
    /// Build id of that amm-core.
    pub build_id: *const c_char,
    /// The plugin crate's name (`CARGO_PKG_NAME`).
    pub name: *const c_char,
    /// The plugin crate's version.
    pub version: *const c_char,
}

// SAFETY: the struct is never mutated after construction, and its pointers point at static,
// immutable strings (`declare_plugin!` makes them from string literals), so sharing it between
// threads can race on nothing.
unsafe impl Sync for AmmPluginDescriptor {}

/// The signature of `amm_plugin_descriptor`.
pub type DescriptorFn = unsafe extern "C" fn() -> *const AmmPluginDescriptor;
/// The signature of `amm_plugin_register`.
pub type RegisterFn = fn(&mut Registrar) -> Result<()>;

fn strip_nul(s: &'static str) -> &'static str {
    s.strip_suffix('\0').unwrap_or(s)
}

/// The amm version of this library.
pub fn amm_version() -> &'static str {
    strip_nul(AMM_VERSION_NUL)
}

/// `rustc -V` of the compiler that built this library.
pub fn rustc_version() -> &'static str {
    strip_nul(RUSTC_VERSION_NUL)
}

/// The build id of the libamm_core.so loaded in this process. Not inlined: callers compiled
/// against another build see the value of the library actually loaded (compare it with the
/// constant [`BUILD_ID_NUL`] they were compiled with: [`check_host`]).
#[inline(never)]
pub fn build_id() -> &'static str {
    strip_nul(BUILD_ID_NUL)
}

/// Checks that the program calling it (whose `compiled_build_id` is [`BUILD_ID_NUL`] as seen when
/// it was compiled) runs with the libamm_core.so it was built against.
pub fn check_host(compiled_build_id: &str) -> Result<()> {
    let compiled = compiled_build_id.strip_suffix('\0').unwrap_or(compiled_build_id);
    if compiled != build_id() {
        bail!(
            "this program was built against libamm_core.so build {compiled}, but loaded build {} from {}; rebuild it \
             (`cargo build --release`) or fix its library path (docs/PLUGINS.md, \"Running amm outside target/\")",
            build_id(),
            loaded_library("libamm_core").map_or("an unknown place".into(), |p| p.display().to_string())
        );
    }
    Ok(())
}

/// The file of a shared library loaded in this process whose file name starts with `prefix`
/// (Linux: read from /proc/self/maps).
pub fn loaded_library(prefix: &str) -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(PathBuf::from)
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix) && n.contains(".so")))
}

/// The host's side of the handshake, for messages.
fn host_line() -> String {
    format!("amm {} built by {} (libamm_core build {})", amm_version(), rustc_version(), build_id())
}

/// How to rebuild a plugin (crate `crate_name`, if known) that this amm refuses.
pub(super) fn rebuild_hint(crate_name: Option<&str>) -> String {
    let p = crate_name.unwrap_or("<plugin crate>");
    format!(
        "rebuild it against this amm: `cargo build --release -p amm -p {p}` in the workspace that built this amm (one command \
         for both, so that they share one libamm_core.so: docs/PLUGINS.md)"
    )
}

/// The hint for a library the dynamic loader refused: one built against another amm or compiler
/// fails there (a missing symbol of libamm_core or libstd) before any descriptor can be read.
pub(super) fn loader_hint(loader_message: &str) -> String {
    let msg = loader_message;
    if msg.contains("undefined symbol") || msg.contains("libamm_core") || msg.contains("libstd-") {
        format!("; it was built against another amm or compiler than this one ({}): {}", host_line(), rebuild_hint(None))
    } else {
        String::new()
    }
}

/// Stage 3 of the handshake: checks the descriptor `d` that `amm_plugin_descriptor` of the plugin
/// `file` returned: the magic number and the API version first, then the descriptor's size, and
/// then the amm version, the compiler and the libamm_core build, reporting every one that
/// differs. Returns what the descriptor says (no items, no candle check yet).
///
/// # Safety
/// `d` is null or points at memory readable for the descriptor's first two fields (`magic`,
/// `api_version`, which every API version shares); if those are this amm's, `d` points at a
/// whole, aligned [`AmmPluginDescriptor`] that stays valid and unchanged while this runs, whose
/// string pointers are each null or point at memory readable up to a NUL or 4096 bytes. A plugin
/// written with `declare_plugin!` returns such a pointer (a `static` of string literals).
pub(super) unsafe fn read_descriptor(d: *const AmmPluginDescriptor, file: &Path) -> Result<PluginInfo> {
    let shown = file.display();
    if d.is_null() {
        bail!("plugin {shown}: refused: `{DESCRIPTOR_SYMBOL}` returned a null descriptor");
    }
    // SAFETY: `d` is not null, and the caller guarantees these two fields (common to every API
    // version) are readable; read unaligned, as nothing is known yet about where `d` points.
    let (magic, api) = unsafe { (std::ptr::addr_of!((*d).magic).read_unaligned(), std::ptr::addr_of!((*d).api_version).read_unaligned()) };
    if magic != MAGIC {
        return Err(not_a_plugin(format!(
            "plugin {shown}: refused: its descriptor has the wrong magic number {magic:#018x} (expected {MAGIC:#018x}): not an amm plugin"
        )));
    }
    if api != API_VERSION {
        bail!(
            "plugin {shown}: refused: it was built for amm plugin API {api}, this amm speaks API {API_VERSION}\n  host: {}\n  {}",
            host_line(),
            rebuild_hint(None)
        );
    }
    // SAFETY: magic and API version are this amm's, so by the caller's guarantee `d` points at a
    // whole, aligned, valid descriptor of this layout, unchanged while this function runs.
    let d = unsafe { &*d };
    if d.size as usize != std::mem::size_of::<AmmPluginDescriptor>() {
        bail!(
            "plugin {shown}: refused: descriptor size {} differs from {} (API {API_VERSION})",
            d.size,
            std::mem::size_of::<AmmPluginDescriptor>()
        );
    }
    let read = |p: *const c_char, what: &str| {
        // SAFETY: `p` is one of the descriptor's string pointers: null or readable up to a NUL or
        // 4096 bytes, by the caller's guarantee.
        unsafe { read_c_str(p) }.ok_or_else(|| anyhow!("plugin {shown}: refused: its {what} is not a string"))
    };
    let info = PluginInfo {
        file: file.to_path_buf(),
        name: read(d.name, "crate name")?,
        version: read(d.version, "crate version")?,
        amm_version: read(d.amm_version, "amm version")?,
        rustc_version: read(d.rustc_version, "rustc version")?,
        build_id: read(d.build_id, "build id")?,
        candle_check: String::new(),
        items: Vec::new(),
    };
    check_versions(&info)?;
    Ok(info)
}

/// Refuses a plugin whose amm version, compiler or libamm_core build differs from this amm's,
/// naming every one that differs.
fn check_versions(info: &PluginInfo) -> Result<()> {
    let mut differs = Vec::new();
    if info.amm_version != amm_version() {
        differs.push("amm version");
    }
    if info.rustc_version != rustc_version() {
        differs.push("compiler");
    }
    if info.build_id != build_id() {
        differs.push("libamm_core build");
    }
    if !differs.is_empty() {
        bail!(
            "plugin {}: refused: its {} differ{} from this amm's\n  host:   {}\n  plugin: {} {} built against amm {} by {} (libamm_core build {})\n  {}",
            info.file.display(),
            differs.join(" and "),
            if differs.len() == 1 { "s" } else { "" },
            host_line(),
            info.name,
            info.version,
            info.amm_version,
            info.rustc_version,
            info.build_id,
            rebuild_hint(Some(&info.name))
        );
    }
    Ok(())
}

/// A NUL-terminated string of at most 4096 bytes, as UTF-8.
///
/// # Safety
/// `p` is null or points at readable memory up to its NUL or 4096 bytes.
unsafe fn read_c_str(p: *const c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    let mut bytes = Vec::new();
    for i in 0..4096 {
        // SAFETY: `p` is not null, and no byte past its NUL or past 4096 bytes is read (the loop
        // returns at the NUL and ends after 4096), which the caller guarantees readable.
        let b = unsafe { *p.add(i) } as u8;
        if b == 0 {
            return String::from_utf8(bytes).ok();
        }
        bytes.push(b);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_known() {
        assert_eq!(amm_version(), env!("CARGO_PKG_VERSION"));
        assert!(rustc_version().starts_with("rustc "), "{}", rustc_version());
        assert_eq!(build_id().len(), 16);
        check_host(BUILD_ID_NUL).unwrap();
        assert!(check_host("0000000000000000").is_err());
    }

    #[test]
    fn c_strings_end_at_their_nul_or_are_refused() {
        // SAFETY: every pointer below is null or points at a NUL-terminated string literal.
        unsafe {
            assert_eq!(read_c_str(c"rustc 1.95.0".as_ptr()).as_deref(), Some("rustc 1.95.0"));
            assert_eq!(read_c_str(std::ptr::null()), None);
            assert_eq!(read_c_str(c"\xff\xfe".as_ptr()), None);
        }
        // No NUL within 4096 bytes.
        let long = vec![b'a'; 5000];
        // SAFETY: 5000 readable bytes, more than the 4096 read.
        assert_eq!(unsafe { read_c_str(long.as_ptr().cast()) }, None);
    }
}
