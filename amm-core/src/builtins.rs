//! amm's own proxies, aggregations, shrinkages, models and datasets, registered through the same
//! [`Registry::register`] that plugins use.
use crate::aggregate::{Avg, Min};
use crate::dsl::{Args, Kind, ParamSpec, ParamType, Schema, Value};
use crate::layers::{Activation, Sequential};
use crate::model::{Model, Network};
use crate::params::{ParamBuilder, ParamStore};
use crate::proxy::{Chain, DeepFool, DeepFoolConfig, Norm};
use crate::registry::{Factory, ModelRequest, Registry};
use crate::shrink::{Hinge, Shape, TwoSided};
use anyhow::{anyhow, Result};
use std::sync::Arc;

/// Where built-in items say they come from.
pub const ORIGIN: &str = "built-in";

fn arg<T>(r: std::result::Result<T, String>) -> Result<T> {
    r.map_err(|e| anyhow!(e))
}

fn norm_param(doc: &str) -> ParamSpec {
    ParamSpec::required("norm", ParamType::choice(&["l2", "linf", "l1"]), doc)
}

fn norm_of(args: &Args) -> Result<Norm> {
    let s = arg(args.ident("norm"))?;
    Norm::parse(s).ok_or_else(|| anyhow!("unknown norm `{s}` (l2, linf, l1)"))
}

/// Wraps a layer chain built on a fresh parameter store into a [`Network`].
pub fn network(
    req: ModelRequest,
    build: impl FnOnce(&[usize], usize, &Args, &mut ParamBuilder) -> candle_core::Result<Sequential>,
) -> Result<Box<dyn Model>> {
    let mut store = ParamStore::new();
    let body = {
        let mut pb = ParamBuilder::new(&mut store, req.rng, req.dtype, req.device);
        build(req.input_shape, req.classes, req.args, &mut pb)?
    };
    Ok(Box::new(Network { body: Box::new(body), params: store, input_shape: req.input_shape.to_vec(), classes: req.classes }))
}

/// `clip`: λ·terms beyond it are truncated; `none` (a default only for `lin` and `hinge`, which
/// the authors do not truncate) keeps every term.
fn clip_param(default: Option<f64>) -> ParamSpec {
    ParamSpec::optional(
        "clip",
        ParamType::or_none(ParamType::float_min(0.0, true)),
        default.map_or(Value::Ident("none".into()), Value::Float),
        "each λ·term is truncated at ±clip (zero gradient there); none: never",
    )
}

/// The value of a `clip` parameter: `none` is +∞.
fn clip_of(a: &Args) -> Result<f64> {
    match a.ident("clip") {
        Ok("none") => Ok(f64::INFINITY),
        _ => arg(a.f64("clip")),
    }
}

fn shrinkage_schema(name: &str, c: f64, d: f64, clip: Option<f64>, doc: &str) -> Schema {
    Schema::new(
        Kind::Shrinkage,
        name,
        vec![
            ParamSpec::optional("c", ParamType::float_min(0.0, false), Value::Float(c), "coefficient on correctly classified samples"),
            ParamSpec::optional("d", ParamType::float_min(0.0, false), Value::Float(d), "coefficient on misclassified samples"),
            clip_param(clip),
        ],
        doc,
    )
}

/// Registers every built-in.
pub fn register(r: &mut Registry) -> Result<()> {
    // Margin proxies.
    r.register(
        Schema::new(
            Kind::Proxy,
            "deepfool",
            vec![
                norm_param("the p-norm of the perturbation: l2, linf or l1"),
                ParamSpec::optional("iters", ParamType::int_min(1), Value::Int(5), "maximum DeepFool iterations u"),
                ParamSpec::optional(
                    "overshoot",
                    ParamType::float_min(0.0, false),
                    Value::Float(0.02),
                    "each step is scaled by 1 + overshoot",
                ),
                ParamSpec::optional(
                    "candidates",
                    ParamType::int_min(2),
                    Value::Int(10),
                    "top-K classes by the clean logits a correct sample may aim at",
                ),
                ParamSpec::optional(
                    "hog",
                    ParamType::Bool,
                    Value::Bool(true),
                    "differentiate through the input gradients (high-order gradients)",
                ),
                ParamSpec::optional(
                    "chain",
                    ParamType::choice(&["full", "authors", "none"]),
                    Value::Ident("full".into()),
                    "what the graph keeps of x + r: everything (full, the exact derivative), the logits only (authors), nothing (none)",
                ),
                ParamSpec::optional(
                    "failed",
                    ParamType::choice(&["drop", "keep"]),
                    Value::Ident("drop".into()),
                    "samples the attack did not flip: left out (drop) or kept",
                ),
            ],
            "differentiable batched DeepFool: ρ = ‖r‖ after at most `iters` steps (DESIGN.md §1.1)",
        ),
        Factory::Proxy(Arc::new(|a: &Args| {
            Ok(Arc::new(DeepFool::new(DeepFoolConfig {
                norm: norm_of(a)?,
                iters: arg(a.usize("iters"))?,
                overshoot: arg(a.f64("overshoot"))?,
                candidates: arg(a.usize("candidates"))?,
                hog: arg(a.bool("hog"))?,
                chain: Chain::parse(arg(a.ident("chain"))?).ok_or_else(|| anyhow!("chain: use full, authors or none"))?,
                keep_failed: arg(a.ident("failed"))? == "keep",
                require_flip: true,
            })) as Arc<dyn crate::proxy::Proxy>)
        })),
        ORIGIN,
    )?;
    r.register(
        Schema::new(
            Kind::Proxy,
            "linear",
            vec![
                norm_param("the p-norm of the distance: l2, linf or l1"),
                ParamSpec::optional("candidates", ParamType::int_min(2), Value::Int(10), "top-K classes by the clean logits"),
                ParamSpec::optional(
                    "hog",
                    ParamType::Bool,
                    Value::Bool(false),
                    "differentiate through the input gradients (Elsayed et al. do not)",
                ),
            ],
            "one-step linearised distance |f_l − f_o| / ‖∇f_l − ∇f_o‖_q (Elsayed et al.)",
        ),
        Factory::Proxy(Arc::new(|a: &Args| {
            Ok(Arc::new(DeepFool::new(DeepFoolConfig::linearised(norm_of(a)?, arg(a.usize("candidates"))?, arg(a.bool("hog"))?)))
                as Arc<dyn crate::proxy::Proxy>)
        })),
        ORIGIN,
    )?;

    // Aggregations.
    r.register(
        Schema::new(Kind::Aggregation, "avg", vec![], "regularize every sample (Deep Defense)"),
        Factory::Aggregation(Arc::new(|_: &Args| Ok(Arc::new(Avg) as Arc<dyn crate::aggregate::Aggregation>))),
        ORIGIN,
    )?;
    r.register(
        Schema::new(
            Kind::Aggregation,
            "min",
            vec![
                ParamSpec::optional(
                    "by",
                    ParamType::choice(&["class"]),
                    Value::Ident("class".into()),
                    "grouping of the per-group extreme: the ground-truth class",
                ),
                ParamSpec::optional(
                    "frac",
                    ParamType::float_in(0.0, true, 1.0, false),
                    Value::Float(0.2),
                    "the ⌊frac·B⌋ smallest (correct) / largest (misclassified) ρ intersected with the per-class extremes",
                ),
                ParamSpec::optional(
                    "misclassified",
                    ParamType::choice(&["argmax", "all"]),
                    Value::Ident("argmax".into()),
                    "misclassified samples: per-class argmax ∩ largest (authors' code), or all",
                ),
            ],
            "regularize the per-class smallest margins (AMM's MIN); runs the graph only for the chosen samples",
        ),
        Factory::Aggregation(Arc::new(|a: &Args| {
            Ok(Arc::new(Min { frac: arg(a.f64("frac"))?, all_misclassified: arg(a.ident("misclassified"))? == "all" })
                as Arc<dyn crate::aggregate::Aggregation>)
        })),
        ORIGIN,
    )?;

    // Shrinkages, in the paper's order (reports list rows in registration order).
    // The authors truncate EXP and INV at 50 and never LIN.
    for (name, shape, c, d, clip, doc) in [
        ("lin", Shape::Lin, 1.0, 1.0, None, "linear: −λ·c·ρ (correct), λ·d·ρ (misclassified)"),
        ("inv", Shape::Inv, 1.0, 1.0, Some(50.0), "inverse: λ/(1 + c·ρ) (correct), λ/(1 − d·ρ) (misclassified)"),
        ("exp", Shape::Exp, 2.0, 1.0, Some(50.0), "exponential: λ·exp(−c·ρ) (correct), λ·exp(d·ρ) (misclassified)"),
    ] {
        r.register(
            shrinkage_schema(name, c, d, clip, doc),
            Factory::Shrinkage(Arc::new(move |a: &Args| {
                Ok(Arc::new(TwoSided { shape, c: arg(a.f64("c"))?, d: arg(a.f64("d"))?, clip: clip_of(a)? })
                    as Arc<dyn crate::shrink::Shrinkage>)
            })),
            ORIGIN,
        )?;
    }
    r.register(
        Schema::new(
            Kind::Shrinkage,
            "hinge",
            vec![ParamSpec::optional("gamma", ParamType::float_min(0.0, true), Value::Float(1.0), "target margin γ"), clip_param(None)],
            "hinge: λ·max(0, γ − ρ) (correct), λ·max(0, γ + ρ) (misclassified) (Elsayed-style baseline)",
        ),
        Factory::Shrinkage(Arc::new(|a: &Args| {
            Ok(Arc::new(Hinge { gamma: arg(a.f64("gamma"))?, clip: clip_of(a)? }) as Arc<dyn crate::shrink::Shrinkage>)
        })),
        ORIGIN,
    )?;

    // Models.
    r.register(
        Schema::new(Kind::Model, "linear", vec![], "a linear classifier (the paper's 2D toy)"),
        Factory::Model(Arc::new(|req| network(req, |shape, classes, _, pb| crate::models::linear_model(shape, classes, pb)))),
        ORIGIN,
    )?;
    r.register(
        Schema::new(
            Kind::Model,
            "mlp",
            vec![
                ParamSpec::optional(
                    "widths",
                    ParamType::IntList,
                    Value::List(vec![Value::Int(800), Value::Int(800)]),
                    "hidden layer widths",
                ),
                ParamSpec::optional("act", ParamType::choice(&["relu", "tanh"]), Value::Ident("relu".into()), "activation"),
                ParamSpec::optional(
                    "dropout",
                    ParamType::float_in(0.0, false, 1.0, true),
                    Value::Float(0.0),
                    "dropout after each hidden layer",
                ),
            ],
            "multi-layer perceptron (the paper's MNIST MLP is widths=[800, 800])",
        ),
        Factory::Model(Arc::new(|req| {
            network(req, |shape, classes, a, pb| {
                let widths = a.usize_list("widths").map_err(candle_core::Error::Msg)?;
                let act = if a.ident("act").map_err(candle_core::Error::Msg)? == "tanh" { Activation::Tanh } else { Activation::Relu };
                let dropout = a.f64("dropout").map_err(candle_core::Error::Msg)?;
                crate::models::mlp(shape, classes, &widths, act, dropout, pb)
            })
        })),
        ORIGIN,
    )?;

    let cnn = |name: &str, doc: &str, build: fn(&[usize], usize, &mut ParamBuilder) -> candle_core::Result<Sequential>| {
        (
            Schema::new(Kind::Model, name, vec![], doc),
            Factory::Model(Arc::new(move |req| network(req, |shape, classes, _, pb| build(shape, classes, pb)))),
        )
    };
    for (schema, factory) in [
        cnn("lenet", "Caffe LeNet for MNIST: conv 20 5×5, maxpool, conv 50 5×5, maxpool, fc 500, fc", crate::models::lenet),
        cnn("liunet", "LiuNet for MNIST: 10 conv 3×3 (64) with group norm (16 groups), 3 max-pools, fc 256, fc", crate::models::liunet),
        cnn("convnet", "the light CIFAR ConvNet: 3× (conv 5×5, maxpool, ReLU) with 32, 32, 64 channels, fc 64, fc", crate::models::convnet),
        cnn("nin", "Network in Network (pooling with kernel = stride = 2, dropout 0.5)", crate::models::nin),
    ] {
        r.register(schema, factory, ORIGIN)?;
    }
    r.register(
        Schema::new(
            Kind::Model,
            "resnet20",
            vec![ParamSpec::optional(
                "norm",
                ParamType::choice(&["group", "frozen_bn"]),
                Value::Ident("group".into()),
                "group norm (channels/4 groups) or batch norm frozen for the attack",
            )],
            "ResNet-20 for CIFAR (16-32-64 channels, 1×1 projection shortcuts)",
        ),
        Factory::Model(Arc::new(|req| {
            network(req, |shape, classes, a, pb| {
                let norm = crate::models::ResNorm::parse(a.ident("norm").map_err(candle_core::Error::Msg)?)
                    .ok_or_else(|| candle_core::Error::Msg("resnet20: norm must be group or frozen_bn".into()))?;
                crate::models::resnet20(shape, classes, norm, pb)
            })
        })),
        ORIGIN,
    )?;

    // Datasets.
    for info in crate::data::datasets() {
        let name = info.name;
        r.register(
            Schema::new(Kind::Dataset, name, vec![], info.doc),
            Factory::Dataset(Arc::new(move |path| Ok(crate::data::load(name, path)?))),
            ORIGIN,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsl::Catalog;

    /// The spec language's own tests use a copy of the built-in schemas; it must not drift.
    #[test]
    fn dsl_test_catalog_matches_the_registry() {
        let reg = Registry::with_builtins();
        let dsl = crate::dsl::testing::catalog();
        for kind in Kind::ALL {
            for name in reg.names(kind) {
                let a = reg.schema(kind, &name).unwrap();
                let Some(b) = dsl.schema(kind, &name) else { panic!("{} `{name}` missing from amm_dsl::testing::catalog()", kind.name()) };
                let strip = |s: &Schema| s.params.iter().map(|p| (p.name.clone(), p.ty.clone(), p.default.clone())).collect::<Vec<_>>();
                assert_eq!(strip(a), strip(b), "{} `{name}`", kind.name());
            }
        }
    }

    #[test]
    fn registering_a_name_twice_is_refused() {
        let mut reg = Registry::with_builtins();
        let e = reg.find(Kind::Aggregation, "avg").unwrap().clone();
        let err = reg.register(e.schema, e.factory, "plugin.so").unwrap_err().to_string();
        assert!(err.contains("already registered by built-in"), "{err}");
    }
}
