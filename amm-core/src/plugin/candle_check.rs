//! The one-copy-of-candle check: a plugin that linked a candle of its own would load, run, and
//! give wrong gradients without any error (../shared/notes/candle.md, "Dynamic plugins"), so each
//! plugin is asked to make tensors and to compute [`probe_loss`] before it may register anything.
#![deny(unsafe_op_in_unsafe_fn)]
use anyhow::{anyhow, bail, Result};

/// `Σ tanh((x Wᵀ) ⊙ [0.5, 1.5])² + Σ W² / 4` for `x: (n, d)`, `W: (2, d)`: the function
/// [`declare_plugin!`](crate::declare_plugin) also compiles into every plugin, for [`check_shared_candle`].
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
pub(super) fn check_shared_candle(library: &libloading::Library, shown: &str) -> Result<String> {
    use candle_core::{Device, Tensor, Var};
    let refuse = |why: String| {
        anyhow!(
            "plugin {shown}: refused: it does not share amm's copy of candle ({why}); a plugin must depend on amm-core only \
             (use amm_core::candle_core), never on candle directly, and be built in the same workspace as amm"
        )
    };
    type IdFn = fn() -> String;
    type LossFn = fn(&Tensor, &Tensor) -> candle_core::Result<Tensor>;
    // SAFETY: `IdFn` and `LossFn` are the exact types of the functions `declare_plugin!` exports
    // under these names, and the plugin passed the handshake, so it was compiled by the same rustc
    // against the same build of amm-core: the Rust ABI and the layout of `Tensor` agree. (A
    // library that exports these names with other types is not one `declare_plugin!` wrote; the
    // crash probe of `load_all` opens every plugin in a child process first.)
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
