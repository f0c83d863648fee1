//! Dynamic plugins: shared libraries that register models, margin proxies, aggregations and
//! shrinkages in the same [`Registry`] as the built-ins (docs/PLUGINS.md).
//!
//! A plugin depends only on `amm-core` (a Rust `dylib` re-exporting candle), so host and plugins
//! share ONE copy of candle and its global state: the tensor-id counter that backprop keys its
//! gradients on (../shared/notes/candle.md, "Dynamic plugins"). A plugin that linked its own
//! candle would load, run, and give wrong gradients without any error.
//!
//! Loading is a staged handshake; every stage refuses with a message naming the file:
//! 1. the file is inspected without running it: an ELF shared library for this machine that
//!    exports `amm_plugin_descriptor` and `amm_plugin_register`;
//! 2. it is opened (`dlopen`, all symbols bound now: this runs its initialisers);
//! 3. `amm_plugin_descriptor()` (C ABI) returns an [`AmmPluginDescriptor`]: the magic number and
//!    the plugin API version are checked first, then the amm version, the rustc version and the
//!    build id of libamm_core.so the plugin was compiled against, field by field;
//! 4. only then is the Rust-ABI `amm_plugin_register(&mut Registrar)` called; its items get the
//!    plugin file as their origin. Registration is all-or-nothing.
//!
//! Stages 2 to 4 run the plugin's code, and a damaged plugin can pass stage 1 and then crash the
//! process that opens it. [`load_all`] therefore first runs them in a child process ([`probe`])
//! and opens here only what survived there.
//!
//! A loaded library is never closed: vtables, closures and tensors made by plugin code live as
//! long as the process.
//!
//! Plugins are written with [`declare_plugin!`](crate::declare_plugin).
use crate::dsl::{Kind, Schema};
use crate::registry::{Factory, Registry};
use anyhow::{anyhow, bail, Context, Result};
use std::ffi::c_char;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub mod probe;

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

// The pointers point at static, immutable strings.
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

/// What a plugin registers through: the same [`Registry::register`] the built-ins use, with the
/// plugin's file as the origin.
pub struct Registrar<'a> {
    registry: &'a mut Registry,
    origin: String,
    added: Vec<(Kind, String)>,
}

impl<'a> Registrar<'a> {
    /// A registrar adding to `registry` on behalf of `origin` (the loader uses the plugin's file;
    /// tests of a plugin crate may call its register function with any origin).
    pub fn new(registry: &'a mut Registry, origin: &str) -> Self {
        Self { registry, origin: origin.to_string(), added: Vec::new() }
    }
    /// Registers one item (see [`Registry::register`]).
    pub fn register(&mut self, schema: Schema, factory: Factory) -> Result<()> {
        let item = (schema.kind, schema.name.clone());
        self.registry.register(schema, factory, &self.origin)?;
        self.added.push(item);
        Ok(())
    }
    /// Everything registered so far, built-ins included.
    pub fn registry(&self) -> &Registry {
        self.registry
    }
    pub fn origin(&self) -> &str {
        &self.origin
    }
    /// The items this registrar added.
    pub fn added(&self) -> &[(Kind, String)] {
        &self.added
    }
}

/// Writes the two exports of a plugin crate: `amm_plugin_descriptor` (the versions this crate
/// was compiled against) and `amm_plugin_register`, which calls `$register`, a
/// `fn(&mut amm_core::plugin::Registrar) -> amm_core::anyhow::Result<()>`.
///
/// ```ignore
/// fn register(r: &mut amm_core::plugin::Registrar) -> amm_core::anyhow::Result<()> {
///     r.register(schema, factory)
/// }
/// amm_core::declare_plugin!(register);
/// ```
#[macro_export]
macro_rules! declare_plugin {
    ($register:path) => {
        #[doc(hidden)]
        static AMM_PLUGIN_DESCRIPTOR: $crate::plugin::AmmPluginDescriptor = $crate::plugin::AmmPluginDescriptor {
            magic: $crate::plugin::MAGIC,
            api_version: $crate::plugin::API_VERSION,
            size: ::std::mem::size_of::<$crate::plugin::AmmPluginDescriptor>() as u32,
            amm_version: $crate::plugin::AMM_VERSION_NUL.as_ptr().cast(),
            rustc_version: $crate::plugin::RUSTC_VERSION_NUL.as_ptr().cast(),
            build_id: $crate::plugin::BUILD_ID_NUL.as_ptr().cast(),
            name: concat!(env!("CARGO_PKG_NAME"), "\0").as_ptr().cast(),
            version: concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast(),
        };

        /// The plugin's descriptor (C ABI; read by amm before anything else of this library).
        #[no_mangle]
        pub extern "C" fn amm_plugin_descriptor() -> *const $crate::plugin::AmmPluginDescriptor {
            &AMM_PLUGIN_DESCRIPTOR
        }

        /// The registration entry point (Rust ABI; called only after the handshake).
        #[no_mangle]
        pub fn amm_plugin_register(r: &mut $crate::plugin::Registrar) -> $crate::anyhow::Result<()> {
            let f: fn(&mut $crate::plugin::Registrar) -> $crate::anyhow::Result<()> = $register;
            f(r)
        }

        /// The one-copy-of-candle check: the id of a tensor made by this plugin's code.
        #[no_mangle]
        pub fn amm_plugin_probe_tensor_id() -> String {
            $crate::candle_core::Tensor::new(&[0f64], &$crate::candle_core::Device::Cpu)
                .map(|t| format!("{:?}", t.id()))
                .unwrap_or_default()
        }

        /// The one-copy-of-candle check: `amm_core::plugin::probe_loss`, compiled here.
        #[no_mangle]
        pub fn amm_plugin_probe_loss(
            x: &$crate::candle_core::Tensor,
            w: &$crate::candle_core::Tensor,
        ) -> $crate::candle_core::Result<$crate::candle_core::Tensor> {
            let s = $crate::candle_core::Tensor::new(&[0.5f64, 1.5], x.device())?;
            let a = x.matmul(&w.t()?)?.broadcast_mul(&s)?.tanh()?.sqr()?.sum_all()?;
            a + (w.sqr()?.sum_all()? * 0.25)?
        }
    };
}

/// `Σ tanh((x Wᵀ) ⊙ [0.5, 1.5])² + Σ W² / 4` for `x: (n, d)`, `W: (2, d)`: the function
/// [`declare_plugin!`] also compiles into every plugin, for [`check_shared_candle`].
pub fn probe_loss(x: &candle_core::Tensor, w: &candle_core::Tensor) -> candle_core::Result<candle_core::Tensor> {
    let s = candle_core::Tensor::new(&[0.5f64, 1.5], x.device())?;
    let a = x.matmul(&w.t()?)?.broadcast_mul(&s)?.tanh()?.sqr()?.sum_all()?;
    a + (w.sqr()?.sum_all()? * 0.25)?
}

fn tensor_id_number(debug: &str) -> Option<u64> {
    debug.strip_prefix("TensorId(")?.strip_suffix(')')?.parse().ok()
}

/// Checks that the plugin uses amm's copy of candle, not one of its own (which would load and
/// run, and give wrong gradients without any error: ../shared/notes/candle.md, Q5):
/// 1. tensor ids made here, by the plugin, and here again are increasing every time: one id
///    counter (two counters would not interleave);
/// 2. back-propagating here through [`probe_loss`] computed by the plugin's code gives the
///    gradients of the same function computed here.
///
/// Returns the evidence, for `amm plugins list`.
fn check_shared_candle(library: &libloading::Library, shown: &str) -> Result<String> {
    use candle_core::{Device, Tensor, Var};
    let refuse = |why: String| {
        anyhow!(
            "plugin {shown}: refused: it does not share amm's copy of candle ({why}); a plugin must depend on amm-core only \
             (use amm_core::candle_core), never on candle directly, and be built in the same workspace as amm"
        )
    };
    type IdFn = fn() -> String;
    type LossFn = fn(&Tensor, &Tensor) -> candle_core::Result<Tensor>;
    let (id_fn, loss_fn) = unsafe {
        (library.get::<IdFn>(b"amm_plugin_probe_tensor_id").map(|s| *s), library.get::<LossFn>(b"amm_plugin_probe_loss").map(|s| *s))
    };
    let (Ok(id_fn), Ok(loss_fn)) = (id_fn, loss_fn) else {
        bail!("plugin {shown}: refused: it lacks the candle probes `amm_plugin_probe_*` that amm_core::declare_plugin! writes");
    };
    let host_id =
        || tensor_id_number(&format!("{:?}", Tensor::new(&[0f64], &Device::Cpu).map(|t| t.id()).unwrap_or_else(|_| unreachable!())));
    let mut ids = Vec::new();
    for _ in 0..5 {
        let (a, b, c) = (host_id(), tensor_id_number(&id_fn()), host_id());
        let (Some(a), Some(b), Some(c)) = (a, b, c) else { return Err(refuse("its tensor ids are unreadable".into())) };
        if !(a < b && b < c) {
            return Err(refuse(format!("tensor ids made by amm / the plugin / amm: {a} / {b} / {c}: two id counters")));
        }
        ids.push((a, b, c));
    }
    let dev = Device::Cpu;
    let x = Var::from_tensor(&Tensor::new(&[[0.3f64, -0.7, 1.1], [0.9, 0.2, -0.4], [-1.3, 0.5, 0.8]], &dev)?)?;
    let w = Var::from_tensor(&Tensor::new(&[[0.6f64, -0.2, 0.4], [-0.5, 0.9, 0.1]], &dev)?)?;
    let plugin = loss_fn(x.as_tensor(), w.as_tensor())?;
    let host = probe_loss(x.as_tensor(), w.as_tensor())?;
    let (gp, gh) = (plugin.backward()?, host.backward()?);
    let mut worst = (plugin.to_scalar::<f64>()? - host.to_scalar::<f64>()?).abs();
    for v in [&x, &w] {
        let Some(a) = gp.get(v.as_tensor()) else { return Err(refuse("backprop through its tensors lost a gradient".into())) };
        let b = gh.get(v.as_tensor()).expect("the host's own gradient");
        worst = worst.max((a - b)?.abs()?.max_all()?.to_scalar::<f64>()?);
    }
    if worst.is_nan() || worst > 1e-12 {
        return Err(refuse(format!("a gradient back-propagated through its code differs from amm's by {worst:e}")));
    }
    let (a, b, c) = ids[0];
    Ok(format!("one copy of candle: tensor ids amm/plugin/amm {a}/{b}/{c}, gradients through its code match (max diff {worst:e})"))
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

fn not_a_plugin(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(NotAPlugin(msg.into()))
}

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

/// A library that passed the handshake. Never unloaded.
struct Loaded {
    info: PluginInfo,
    register: RegisterFn,
    library: &'static libloading::Library,
}

/// Every library that passed the handshake, for the rest of the process.
static LOADED: Mutex<Vec<Loaded>> = Mutex::new(Vec::new());

/// The host's side of the handshake, for messages.
fn host_line() -> String {
    format!("amm {} built by {} (libamm_core build {})", amm_version(), rustc_version(), build_id())
}

fn rebuild_hint(crate_name: Option<&str>) -> String {
    let p = crate_name.unwrap_or("<plugin crate>");
    format!(
        "rebuild it against this amm: `cargo build --release -p amm -p {p}` in the workspace that built this amm (one command \
         for both, so that they share one libamm_core.so: docs/PLUGINS.md)"
    )
}

/// Loads the plugin at `path` (once per process) and registers its items in `registry`, in this
/// process and without the crash probe ([`load_all`] probes first). Registration is
/// all-or-nothing: on error, `registry` is unchanged.
pub fn load(path: &Path, registry: &mut Registry) -> Result<PluginInfo> {
    load_staged(path, registry, &mut |_| {})
}

/// Where loading a plugin runs the plugin's own code, for the probe's reports.
#[derive(Clone, Copy, Debug)]
enum Stage {
    Open,
    Descriptor,
    CandleCheck,
    Register,
}

impl Stage {
    fn describe(self) -> &'static str {
        match self {
            Stage::Open => "while the dynamic loader opened it (relocations, initialisers)",
            Stage::Descriptor => "in amm_plugin_descriptor",
            Stage::CandleCheck => "in its candle check (amm_plugin_probe_*)",
            Stage::Register => "in amm_plugin_register",
        }
    }
}

/// [`load`], calling `stage` before each step that runs code of the plugin.
fn load_staged(path: &Path, registry: &mut Registry, stage: &mut dyn FnMut(Stage)) -> Result<PluginInfo> {
    let file = std::fs::canonicalize(path).with_context(|| format!("plugin {}: cannot open it", path.display()))?;
    let (register, mut info, library) = open(&file, stage)?;
    let origin = file.display().to_string();
    let mut scratch = registry.clone();
    let mut r = Registrar::new(&mut scratch, &origin);
    stage(Stage::Register);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| register(&mut r)));
    let added = r.added.clone();
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
    // Stage 2: open it. RTLD_NOW: a symbol it needs that this libamm_core.so lacks is an error here.
    stage(Stage::Open);
    let lib = unsafe { libloading::os::unix::Library::open(Some(file), libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_LOCAL) }
        .map_err(|e| {
            let msg = e.to_string();
            let hint = if msg.contains("undefined symbol") || msg.contains("libamm_core") || msg.contains("libstd-") {
                format!("; it was built against another amm or compiler than this one ({}): {}", host_line(), rebuild_hint(None))
            } else {
                String::new()
            };
            anyhow!("plugin {shown}: the dynamic loader refused it: {msg}{hint}")
        })?;
    // Never closed: whatever the plugin made (vtables, closures, tensors) lives until exit.
    let library: &'static libloading::Library = Box::leak(Box::new(libloading::Library::from(lib)));
    // Stage 3: the descriptor.
    let descriptor = unsafe { library.get::<DescriptorFn>(DESCRIPTOR_SYMBOL.as_bytes()) }
        .map_err(|_| not_a_plugin(format!("plugin {shown}: refused: it does not export `{DESCRIPTOR_SYMBOL}` (not an amm plugin)")))?;
    stage(Stage::Descriptor);
    let d = unsafe { descriptor() };
    if d.is_null() {
        bail!("plugin {shown}: refused: `{DESCRIPTOR_SYMBOL}` returned a null descriptor");
    }
    // SAFETY: a non-null pointer from the descriptor function; only the first two fields (common
    // to every API version) are read before the version is checked.
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
    let d = unsafe { &*d };
    if d.size as usize != std::mem::size_of::<AmmPluginDescriptor>() {
        bail!(
            "plugin {shown}: refused: descriptor size {} differs from {} (API {API_VERSION})",
            d.size,
            std::mem::size_of::<AmmPluginDescriptor>()
        );
    }
    let read = |p: *const c_char, what: &str| {
        unsafe { read_c_str(p) }.ok_or_else(|| anyhow!("plugin {shown}: refused: its {what} is not a string"))
    };
    let mut info = PluginInfo {
        file: file.to_path_buf(),
        name: read(d.name, "crate name")?,
        version: read(d.version, "crate version")?,
        amm_version: read(d.amm_version, "amm version")?,
        rustc_version: read(d.rustc_version, "rustc version")?,
        build_id: read(d.build_id, "build id")?,
        candle_check: String::new(),
        items: Vec::new(),
    };
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
            "plugin {shown}: refused: its {} differ{} from this amm's\n  host:   {}\n  plugin: {} {} built against amm {} by {} (libamm_core build {})\n  {}",
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
    // Stage 4 happens in `load`; look the entry point up now.
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
        let b = *p.add(i) as u8;
        if b == 0 {
            return String::from_utf8(bytes).ok();
        }
        bytes.push(b);
    }
    None
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
    let s = l.library.get::<T>(name.as_bytes()).map_err(|e| anyhow!("plugin {}: no symbol `{name}`: {e}", file.display()))?;
    Ok(*s)
}

// ---------------------------------------------------------------------------------------------
// Finding plugins.

/// Where a plugin file came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// `--plugin PATH`.
    File,
    /// `--plugin-dir DIR`.
    Dir(PathBuf),
    /// `./plugins` or a directory of `$AMM_PLUGIN_PATH`.
    Default(PathBuf),
}

/// A file to load.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub path: PathBuf,
    pub source: Source,
}

/// The default directories: `./plugins`, then those of `$AMM_PLUGIN_PATH` (colon-separated).
pub fn default_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("./plugins")];
    if let Some(p) = std::env::var_os("AMM_PLUGIN_PATH") {
        dirs.extend(std::env::split_paths(&p).filter(|d| !d.as_os_str().is_empty()));
    }
    dirs
}

/// The plugin files in `dir`: every `lib*.so` directly in it (not in subdirectories), by name.
pub fn plugins_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).with_context(|| format!("plugin directory {}", dir.display()))?;
    let mut files: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("lib") && n.ends_with(".so")))
        .collect();
    files.sort();
    Ok(files)
}

/// The files named by `--plugin`, those in `--plugin-dir` directories (which must exist), and
/// with `defaults`, those in [`default_dirs`] that exist.
pub fn discover(files: &[PathBuf], dirs: &[PathBuf], defaults: bool) -> Result<Vec<Candidate>> {
    let mut out: Vec<Candidate> = files.iter().map(|p| Candidate { path: p.clone(), source: Source::File }).collect();
    for d in dirs {
        if !d.is_dir() {
            bail!("--plugin-dir {}: not a directory", d.display());
        }
        out.extend(plugins_in(d)?.into_iter().map(|path| Candidate { path, source: Source::Dir(d.clone()) }));
    }
    if defaults {
        for d in default_dirs() {
            if d.is_dir() {
                out.extend(plugins_in(&d)?.into_iter().map(|path| Candidate { path, source: Source::Default(d.clone()) }));
            }
        }
    }
    Ok(out)
}

/// What [`load_all`] did: the plugins it loaded, the files it skipped (with why), and the errors
/// that must end the command. Every problem is kept, not just the first.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub plugins: Vec<PluginInfo>,
    pub warnings: Vec<String>,
    pub errors: Vec<anyhow::Error>,
}

impl LoadReport {
    /// The plugins, or one error holding every error (one per line, after the first each
    /// starting with `error: `).
    pub fn into_result(self) -> Result<Vec<PluginInfo>> {
        let mut errors = self.errors.into_iter();
        let Some(first) = errors.next() else { return Ok(self.plugins) };
        let rest: Vec<String> = errors.map(|e| format!("\nerror: {e:#}")).collect();
        if rest.is_empty() {
            Err(first)
        } else {
            Err(anyhow!("{first:#}{}", rest.concat()))
        }
    }
}

/// Loads every candidate into `registry`, each file once, in order. Every file that would run
/// code here is first opened in a child process ([`probe`]): one that crashes there is refused
/// instead of crashing this process.
///
/// A file named with `--plugin` that fails is an error. In a `--plugin-dir`, a file that fails is
/// skipped with a warning and the others load; but if none of that directory's files loads and one
/// of them was a refused plugin (not merely a file that is not a plugin at all), its refusals are
/// errors. Anything in the default directories that fails is skipped with a warning. Once there is
/// an error, no further plugin is opened here (the command will fail), but every file is still
/// judged and reported.
pub fn load_all(candidates: &[Candidate], registry: &mut Registry, probe: &probe::ProbeCommand) -> LoadReport {
    // amm's own libraries may sit in a scanned directory (e.g. --plugin-dir target/release).
    let own: Vec<PathBuf> =
        ["libamm_core", "libstd-"].iter().filter_map(|l| loaded_library(l)).filter_map(|p| std::fs::canonicalize(p).ok()).collect();
    // Each file once, where it is named first (--plugin before directories); the other
    // directories naming it are remembered, for the "nothing in that directory loaded" rule.
    let mut todo: Vec<(&Candidate, Option<PathBuf>)> = Vec::new();
    let mut aliases: Vec<(usize, PathBuf)> = Vec::new();
    for c in candidates {
        let canon = std::fs::canonicalize(&c.path).ok();
        if let Some(f) = &canon {
            if c.source != Source::File && own.contains(f) {
                continue;
            }
            if let Some(k) = todo.iter().position(|(_, g)| g.as_ref() == Some(f)) {
                if let Source::Dir(d) = &c.source {
                    aliases.push((k, d.clone()));
                }
                continue;
            }
        }
        todo.push((c, canon));
    }
    // Probe, in one child, the files whose loading here would run their code: those that pass
    // the ELF check and are not open in this process yet. The others fail (or are found) in
    // `load` without running anything of theirs.
    let open_here: Vec<PathBuf> = loaded().into_iter().map(|i| i.file).collect();
    let probed: Vec<usize> =
        (0..todo.len()).filter(|&k| todo[k].1.as_ref().is_some_and(|f| !open_here.contains(f) && inspect_elf(f).is_ok())).collect();
    let files: Vec<PathBuf> = probed.iter().map(|&k| todo[k].1.clone().expect("probed files exist")).collect();
    let mut verdicts: Vec<Option<Result<()>>> = (0..todo.len()).map(|_| None).collect();
    for (k, v) in probed.into_iter().zip(probe::probe(probe, &files)) {
        verdicts[k] = Some(v);
    }

    enum Outcome {
        Warning(String),
        Error(anyhow::Error),
        /// A plugin refused in a --plugin-dir (the directory, the warning): a warning or an
        /// error, decided at the end.
        DirRefused(PathBuf, String, anyhow::Error),
    }
    let mut report = LoadReport::default();
    let mut outcomes = Vec::new();
    let mut loaded_from: Vec<usize> = Vec::new();
    let mut failed = false;
    for (k, ((c, _), verdict)) in todo.iter().zip(verdicts).enumerate() {
        let result = match verdict {
            Some(Err(e)) => Err(e),
            Some(Ok(())) if failed => continue,
            _ => load(&c.path, registry),
        };
        let e = match result {
            Ok(info) => {
                report.plugins.push(info);
                loaded_from.push(k);
                continue;
            }
            Err(e) => e,
        };
        let not_plugin = e.chain().any(|c| c.is::<NotAPlugin>());
        let skip = |d: &Path, e: &anyhow::Error| format!("skipping {} (found in {}): {e:#}", c.path.display(), d.display());
        outcomes.push(match &c.source {
            Source::File => {
                failed = true;
                Outcome::Error(e)
            }
            Source::Default(d) => Outcome::Warning(skip(d, &e)),
            Source::Dir(d) if not_plugin => Outcome::Warning(skip(d, &e)),
            Source::Dir(d) => Outcome::DirRefused(d.clone(), skip(d, &e), e),
        });
    }
    let dir_loaded =
        |d: &Path| loaded_from.iter().any(|&k| todo[k].0.source == Source::Dir(d.to_path_buf()) || aliases.contains(&(k, d.to_path_buf())));
    for o in outcomes {
        match o {
            Outcome::Warning(w) => report.warnings.push(w),
            Outcome::Error(e) => report.errors.push(e),
            Outcome::DirRefused(d, w, _) if dir_loaded(&d) => report.warnings.push(w),
            Outcome::DirRefused(d, _, e) => {
                report.errors.push(e.context(format!("--plugin-dir {}: no plugin there could be loaded", d.display())))
            }
        }
    }
    report
}

// ---------------------------------------------------------------------------------------------
// Stage 1: the ELF check.

fn elf_machine() -> Option<u16> {
    match std::env::consts::ARCH {
        "x86_64" => Some(62),
        "aarch64" => Some(183),
        "riscv64" => Some(243),
        "powerpc64" => Some(21),
        "s390x" => Some(22),
        _ => None,
    }
}

/// Reads `len` bytes at `off`, refusing reads past the end.
fn read_at(f: &std::fs::File, size: u64, off: u64, len: u64) -> Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let end = off.checked_add(len).ok_or_else(|| anyhow!("corrupt ELF file (offset overflow)"))?;
    if end > size || len > (1 << 30) {
        bail!("corrupt or truncated ELF file (a table at {off}..{end} lies outside the {size}-byte file)");
    }
    let mut buf = vec![0u8; len as usize];
    f.read_exact_at(&mut buf, off)?;
    Ok(buf)
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

/// Checks, without loading it, that `file` is a 64-bit little-endian ELF shared library for this
/// machine that exports the plugin symbols. Files without section headers pass (the loader's own
/// symbol lookup decides then).
pub fn inspect_elf(file: &Path) -> Result<()> {
    // Before opening: opening a FIFO blocks until a writer comes, and a device may never end.
    let kind = std::fs::metadata(file)?.file_type();
    if !kind.is_file() {
        use std::os::unix::fs::FileTypeExt;
        let what = if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_dir() {
            "a directory"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else {
            "not a regular file"
        };
        return Err(not_a_plugin(format!("{what}, not a shared library")));
    }
    let f = std::fs::File::open(file)?;
    let size = f.metadata()?.len();
    if size < 64 {
        return Err(not_a_plugin(format!("not a shared library: {size} bytes is too short for an ELF header")));
    }
    let h = read_at(&f, size, 0, 64)?;
    if &h[..4] != b"\x7fELF" {
        return Err(not_a_plugin(format!("not a shared library (no ELF header: the file starts with {:02x?})", &h[..4])));
    }
    if h[4] != 2 || h[5] != 1 {
        bail!("not a 64-bit little-endian ELF file, so not built for this amm");
    }
    let e_type = u16_at(&h, 16);
    if e_type != 3 {
        return Err(not_a_plugin(format!("an ELF file of type {e_type}, not a shared library (an executable or object file?)")));
    }
    let machine = u16_at(&h, 18);
    if let Some(m) = elf_machine() {
        if machine != m {
            bail!("a shared library for another architecture (ELF machine {machine}, this is {})", std::env::consts::ARCH);
        }
    }
    let (shoff, shentsize, shnum) = (u64_at(&h, 40), u16_at(&h, 58) as u64, u16_at(&h, 60) as u64);
    if shnum == 0 || shoff == 0 {
        return Ok(());
    }
    if shentsize < 64 {
        bail!("corrupt ELF file (section header size {shentsize})");
    }
    let sh = read_at(&f, size, shoff, shentsize * shnum)?;
    let section = |i: u64| -> (u32, u64, u64, u32, u64) {
        let o = (i * shentsize) as usize;
        (u32_at(&sh, o + 4), u64_at(&sh, o + 24), u64_at(&sh, o + 32), u32_at(&sh, o + 40), u64_at(&sh, o + 56))
    };
    const SHT_DYNSYM: u32 = 11;
    let Some(dynsym) = (0..shnum).find(|&i| section(i).0 == SHT_DYNSYM) else {
        return Err(not_a_plugin("not an amm plugin: it exports no dynamic symbols"));
    };
    let (_, sym_off, sym_size, link, entsize) = section(dynsym);
    if entsize < 24 || link as u64 >= shnum {
        bail!("corrupt ELF file (bad dynamic symbol table)");
    }
    let (_, str_off, str_size, _, _) = section(link as u64);
    let syms = read_at(&f, size, sym_off, sym_size)?;
    let strs = read_at(&f, size, str_off, str_size)?;
    let name_at = |o: usize| -> &[u8] {
        let s = strs.get(o..).unwrap_or(&[]);
        &s[..s.iter().position(|&b| b == 0).unwrap_or(s.len())]
    };
    let mut found = [false; 2];
    for k in 0..(sym_size / entsize) {
        let o = (k * entsize) as usize;
        let defined = u16_at(&syms, o + 6) != 0;
        let name = name_at(u32_at(&syms, o) as usize);
        for (j, want) in [DESCRIPTOR_SYMBOL, REGISTER_SYMBOL].iter().enumerate() {
            if defined && name == want.as_bytes() {
                found[j] = true;
            }
        }
    }
    match found {
        [true, true] => Ok(()),
        [false, _] => Err(not_a_plugin(format!(
            "a shared library, but not an amm plugin: it does not export `{DESCRIPTOR_SYMBOL}` (plugins declare it with \
             `amm_core::declare_plugin!`)"
        ))),
        [true, false] => Err(not_a_plugin(format!("not an amm plugin: it exports `{DESCRIPTOR_SYMBOL}` but not `{REGISTER_SYMBOL}`"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn versions_are_known() {
        assert_eq!(amm_version(), env!("CARGO_PKG_VERSION"));
        assert!(rustc_version().starts_with("rustc "), "{}", rustc_version());
        assert_eq!(build_id().len(), 16);
        check_host(BUILD_ID_NUL).unwrap();
        assert!(check_host("0000000000000000").is_err());
    }
}
