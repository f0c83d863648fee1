//! What a plugin registers through ([`Registrar`]) and the macro that writes a plugin's exports
//! ([`declare_plugin!`](crate::declare_plugin)).
use crate::dsl::{Kind, Schema};
use crate::registry::{Factory, Registry};
use anyhow::Result;

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

/// Writes the four exports of a plugin crate: `amm_plugin_descriptor` (the versions this crate
/// was compiled against), `amm_plugin_register`, which calls `$register`, a
/// `fn(&mut amm_core::plugin::Registrar) -> amm_core::anyhow::Result<()>`, and the two probes
/// with which the host checks that the plugin shares its copy of candle
/// (`amm_plugin_probe_tensor_id`, `amm_plugin_probe_loss`).
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
