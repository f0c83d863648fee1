//! Loading one plugin in this process: the ELF check, `dlopen`, the handshake, the candle check
//! and registration ([`load`]), and the libraries loaded so far ([`loaded`], [`symbol`]).
#![deny(unsafe_op_in_unsafe_fn)]
use super::abi::{loader_hint, not_a_plugin, read_descriptor, DescriptorFn, PluginInfo, RegisterFn, DESCRIPTOR_SYMBOL, REGISTER_SYMBOL};
use super::candle_check::check_shared_candle;
use super::elf::inspect_elf;
use super::registrar::Registrar;
use crate::registry::Registry;
use anyhow::{anyhow, bail, Context, Result};
use std::path::Path;
use std::sync::Mutex;

/// A library that passed the handshake. Never unloaded.
struct Loaded {
    info: PluginInfo,
    register: RegisterFn,
    library: &'static libloading::Library,
}

/// Every library that passed the handshake, for the rest of the process.
static LOADED: Mutex<Vec<Loaded>> = Mutex::new(Vec::new());

/// Loads the plugin at `path` (once per process) and registers its items in `registry`, in this
/// process and without the crash probe ([`load_all`](super::load_all()) probes first). Registration
/// is all-or-nothing: on error, `registry` is unchanged.
pub fn load(path: &Path, registry: &mut Registry) -> Result<PluginInfo> {
    load_staged(path, registry, &mut |_| {})
}

/// Where loading a plugin runs the plugin's own code, for the probe's reports.
#[derive(Clone, Copy, Debug)]
pub(super) enum Stage {
    Open,
    Descriptor,
    CandleCheck,
    Register,
}

impl Stage {
    pub(super) fn describe(self) -> &'static str {
        match self {
            Stage::Open => "while the dynamic loader opened it (relocations, initialisers)",
            Stage::Descriptor => "in amm_plugin_descriptor",
            Stage::CandleCheck => "in its candle check (amm_plugin_probe_*)",
            Stage::Register => "in amm_plugin_register",
        }
    }
}

/// [`load`], calling `stage` before each step that runs code of the plugin.
pub(super) fn load_staged(path: &Path, registry: &mut Registry, stage: &mut dyn FnMut(Stage)) -> Result<PluginInfo> {
    let file = std::fs::canonicalize(path).with_context(|| format!("plugin {}: cannot open it", path.display()))?;
    let (register, mut info, library) = open(&file, stage)?;
    let origin = file.display().to_string();
    let mut scratch = registry.clone();
    let mut r = Registrar::new(&mut scratch, &origin);
    stage(Stage::Register);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| register(&mut r)));
    let added = r.added().to_vec();
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e.context(format!("plugin {}: registration failed", file.display()))),
        Err(_) => bail!("plugin {}: its registration function panicked", file.display()),
    }
    *registry = scratch;
    info.items = added;
    // Record what it registered (the first registry it was loaded into).
    let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(l) = loaded.iter_mut().find(|l| std::ptr::eq(l.library, library)) {
        l.info.items = info.items.clone();
    }
    Ok(info)
}

/// Opens `file` (canonical) through the handshake, or returns the library already opened.
fn open(file: &Path, stage: &mut dyn FnMut(Stage)) -> Result<(RegisterFn, PluginInfo, &'static libloading::Library)> {
    let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(l) = loaded.iter().find(|l| l.info.file == file) {
        return Ok((l.register, l.info.clone(), l.library));
    }
    let shown = file.display();
    // Stage 1: look at the file without running anything in it.
    inspect_elf(file).with_context(|| format!("plugin {shown}: refused"))?;
    // Stage 2: open it.
    stage(Stage::Open);
    let library = dlopen(file)?;
    // Stage 3: the descriptor.
    // SAFETY: `DescriptorFn` is the type `declare_plugin!` gives this symbol (the ELF check found
    // it exported). No check can prove that a library's symbol has the type its name promises:
    // loading a plugin trusts it. What keeps a file that lies from taking amm down is that
    // `load_all` runs this same sequence in a child process first (`probe`).
    let descriptor = unsafe { library.get::<DescriptorFn>(DESCRIPTOR_SYMBOL.as_bytes()) }
        .map_err(|_| not_a_plugin(format!("plugin {shown}: refused: it does not export `{DESCRIPTOR_SYMBOL}` (not an amm plugin)")))?;
    stage(Stage::Descriptor);
    // SAFETY: as above: the function `declare_plugin!` writes takes nothing and returns a
    // pointer to a static; the library stays open for the rest of the process.
    let d = unsafe { descriptor() };
    // SAFETY: `d` comes from that function, which returns null or the address of a `static`
    // descriptor whose strings are literals; `read_descriptor` reads past the first two fields
    // only once they show this amm's magic number and API version, i.e. this layout.
    let mut info = unsafe { read_descriptor(d, file) }?;
    // Stage 4 happens in `load`; look the entry point up now.
    // SAFETY: `RegisterFn` is the type `declare_plugin!` gives this symbol, and the handshake
    // showed the plugin was compiled by this rustc against this build of amm-core, so the Rust
    // ABI of `fn(&mut Registrar) -> Result<()>` agrees on both sides.
    let register = unsafe { library.get::<RegisterFn>(REGISTER_SYMBOL.as_bytes()) }
        .map(|s| *s)
        .map_err(|_| anyhow!("plugin {shown}: refused: it has a descriptor but no `{REGISTER_SYMBOL}`"))?;
    // On a thread of its own: candle reads its graph-keeping switch once per thread, at the
    // thread's first backward pass, and the caller's thread may need it later (autograd.rs).
    let shown_s = shown.to_string();
    stage(Stage::CandleCheck);
    info.candle_check = std::thread::scope(|s| s.spawn(|| check_shared_candle(library, &shown_s)).join())
        .map_err(|_| anyhow!("plugin {shown}: its candle check panicked"))??;
    loaded.push(Loaded { info: info.clone(), register, library });
    Ok((register, info, library))
}

/// Stage 2: opens `file` with the dynamic loader, for the rest of the process. RTLD_NOW: a symbol
/// it needs that this libamm_core.so lacks is an error here, not a crash later.
fn dlopen(file: &Path) -> Result<&'static libloading::Library> {
    use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
    // SAFETY: opening a library runs its initialisers, which can do anything: loading a plugin
    // trusts it. The file passed the ELF check (a shared library for this machine exporting the
    // plugin symbols), `load_all` opens it in a child process first (`probe`), so one whose
    // initialisers crash is refused there, and RTLD_LOCAL keeps its symbols from resolving those
    // of libraries loaded later.
    let lib = unsafe { Library::open(Some(file), RTLD_NOW | RTLD_LOCAL) }.map_err(|e| {
        let msg = e.to_string();
        anyhow!("plugin {}: the dynamic loader refused it: {msg}{}", file.display(), loader_hint(&msg))
    })?;
    // Never closed: whatever the plugin made (vtables, closures, tensors) lives until exit.
    Ok(Box::leak(Box::new(libloading::Library::from(lib))))
}

/// Every plugin loaded so far in this process.
pub fn loaded() -> Vec<PluginInfo> {
    LOADED.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|l| l.info.clone()).collect()
}

/// Looks up an extra symbol a loaded plugin exports (for plugins that offer more than
/// registration, and for tests).
///
/// # Safety
/// `T` must be the exact type of the exported item (a function pointer type, usually).
pub unsafe fn symbol<T: Copy>(file: &Path, name: &str) -> Result<T> {
    let file = std::fs::canonicalize(file)?;
    let loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    let l = loaded.iter().find(|l| l.info.file == file).ok_or_else(|| anyhow!("plugin {} is not loaded", file.display()))?;
    // SAFETY: the caller guarantees `T` is the exact type of the item; the library is never
    // closed, so the copied value (a function pointer, usually) stays valid for the process.
    let s = unsafe { l.library.get::<T>(name.as_bytes()) }.map_err(|e| anyhow!("plugin {}: no symbol `{name}`: {e}", file.display()))?;
    Ok(*s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::loaded_library;

    #[test]
    fn random_bytes_and_non_plugins_are_refused_without_loading() {
        let dir = std::env::temp_dir().join(format!("amm-plugin-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("libjunk.so");
        std::fs::write(&junk, (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect::<Vec<_>>()).unwrap();
        let mut reg = Registry::with_builtins();
        let n = reg.entries().len();
        let err = format!("{:#}", load(&junk, &mut reg).unwrap_err());
        assert!(err.contains("libjunk.so") && err.contains("no ELF header"), "{err}");
        let short = dir.join("libshort.so");
        std::fs::write(&short, b"\x7fELF").unwrap();
        let err = format!("{:#}", load(&short, &mut reg).unwrap_err());
        assert!(err.contains("too short"), "{err}");
        // A truncated copy of a real library: the header promises tables past the end.
        if let Some(real) = loaded_library("libamm_core") {
            let head = std::fs::read(&real).unwrap();
            let cut = dir.join("libcut.so");
            std::fs::write(&cut, &head[..4096]).unwrap();
            let err = format!("{:#}", load(&cut, &mut reg).unwrap_err());
            assert!(err.contains("libcut.so") && err.contains("truncated"), "{err}");
        }
        assert_eq!(reg.entries().len(), n);
        std::fs::remove_dir_all(&dir).ok();
    }
}
