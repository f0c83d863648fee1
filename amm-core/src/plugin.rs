//! Dynamic plugins: shared libraries that register models, margin proxies, aggregations and
//! shrinkages in the same [`Registry`](crate::Registry) as the built-ins (docs/PLUGINS.md).
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
//! process that opens it. [`load_all()`] therefore first runs them in a child process ([`probe`])
//! and opens here only what survived there.
//!
//! A loaded library is never closed: vtables, closures and tensors made by plugin code live as
//! long as the process.
//!
//! Plugins are written with [`declare_plugin!`](crate::declare_plugin).
//!
//! One concept per file, all of it re-exported here (paths are `amm_core::plugin::NAME`):
//! - `abi.rs`: what a plugin exports, the versions compared, the handshake (stage 3);
//! - `registrar.rs`: [`Registrar`] and `declare_plugin!`;
//! - `candle_check.rs`: the one-copy-of-candle check;
//! - `elf.rs`: stage 1, inspecting the file;
//! - `load.rs`: stages 1 to 4 for one file, in this process;
//! - `discover.rs`: finding the candidate files;
//! - `load_all.rs`: loading every candidate, each probed first;
//! - `probe.rs`: the crash probe.
mod abi;
mod candle_check;
mod discover;
mod elf;
mod load;
mod load_all;
pub mod probe;
mod registrar;

pub use abi::{
    amm_version, build_id, check_host, loaded_library, rustc_version, AmmPluginDescriptor, DescriptorFn, NotAPlugin, PluginInfo,
    RegisterFn, AMM_VERSION_NUL, API_VERSION, BUILD_ID_NUL, DESCRIPTOR_SYMBOL, MAGIC, REGISTER_SYMBOL, RUSTC_VERSION_NUL,
};
pub use candle_check::probe_loss;
pub use discover::{default_dirs, discover, plugins_in, Candidate, Source};
pub use elf::inspect_elf;
pub use load::{load, loaded, symbol};
pub use load_all::{load_all, LoadReport};
pub use registrar::Registrar;
