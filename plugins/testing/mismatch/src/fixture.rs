//! A test plugin (tests/plugins.rs; an example target, see Cargo.toml) whose descriptor claims it
//! was built against another amm, by another compiler, against another libamm_core build, as a
//! stale plugin would. amm must refuse it after reading the descriptor and never call its
//! registration function, which aborts the process to make any such call impossible to miss.
use amm_core::plugin::{AmmPluginDescriptor, Registrar, API_VERSION, MAGIC};

static DESCRIPTOR: AmmPluginDescriptor = AmmPluginDescriptor {
    magic: MAGIC,
    api_version: API_VERSION,
    size: std::mem::size_of::<AmmPluginDescriptor>() as u32,
    amm_version: c"0.0.9".as_ptr(),
    rustc_version: c"rustc 1.70.0 (90c541806 2023-05-31)".as_ptr(),
    build_id: c"0123456789abcdef".as_ptr(),
    name: c"amm-test-mismatch".as_ptr(),
    version: c"0.1.0".as_ptr(),
};

#[no_mangle]
pub extern "C" fn amm_plugin_descriptor() -> *const AmmPluginDescriptor {
    &DESCRIPTOR
}

#[no_mangle]
pub fn amm_plugin_register(_r: &mut Registrar) -> amm_core::anyhow::Result<()> {
    eprintln!("amm-test-mismatch: amm_plugin_register was called although the handshake must refuse this plugin");
    std::process::abort()
}
