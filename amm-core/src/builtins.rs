//! amm's own items, registered through the same [`Registry::register`] that plugins use: the
//! proxies, aggregations, shrinkages, datasets, optimizers, schedules and losses here (the types
//! they build live in `loss.rs`, `optim.rs`, `schedule.rs`, which do not know the registry), the
//! models in `models/register.rs` and the attacks in `attacks/register.rs`.
use crate::aggregate::{Avg, Min};
use crate::dsl::{Args, DataShape, Kind, ParamSpec, ParamType, Schema, Value};
use crate::loss::{cross_entropy, multiclass_hinge, ClassLoss, FnLoss, NoLoss};
use crate::optim::{Method, Optimize, Optimizer};
use crate::proxy::{Chain, DeepFool, DeepFoolConfig, Norm};
use crate::registry::{Factory, Measure, OptimizerRequest, Registry};
use crate::schedule::{Constant, Cosine, LrSchedule, StepDecay};
use crate::shrink::{Hinge, Shape, TwoSided};
use anyhow::{anyhow, Result};
use candle_core::Tensor;
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

/// The input shape and classes of the built-in datasets whose format fixes them; `None` for
/// those that take theirs from the files (`mnist` and `fashion-mnist` read the IDX header,
/// `csv` the columns and labels).
pub fn data_shape(name: &str) -> Option<DataShape> {
    let (input, classes) = match name {
        "digits" => (vec![1, 8, 8], 10),
        "toy2d" => (vec![2], 2),
        "cifar10" | "svhn" => (vec![3, 32, 32], 10),
        "cifar100" => (vec![3, 32, 32], 100),
        _ => return None,
    };
    Some(DataShape { name: name.into(), input, classes })
}

/// Registers every built-in. Long because it is a table: one `register` per built-in, in the
/// order `amm list` and the reports show them.
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
    crate::models::register(r)?;

    // Datasets.
    for info in crate::data::datasets() {
        let name = info.name;
        r.register(
            Schema::new(Kind::Dataset, name, vec![], info.doc),
            Factory::Dataset(Arc::new(move |path| Ok(crate::data::load(name, path)?))),
            ORIGIN,
        )?;
        if let Some(shape) = data_shape(name) {
            r.set_measure(Kind::Dataset, name, Measure::Dataset(shape))?;
        }
    }
    // Optimizers, learning-rate schedules, classification losses, evaluation attacks.
    register_optimizers(r)?;
    register_schedules(r)?;
    register_losses(r)?;
    crate::attacks::register(r)
}

impl Registry {
    /// A registry holding every built-in.
    pub fn with_builtins() -> Self {
        let mut r = Registry::default();
        register(&mut r).expect("built-ins register without conflicts");
        r
    }
}

/// Registers `sgd` and `adam` (their momentum and weight decay are `train.momentum` and
/// `train.weight_decay`).
fn register_optimizers(r: &mut Registry) -> Result<()> {
    let of = |method: Method| -> Factory {
        Factory::Optimizer(Arc::new(move |q: OptimizerRequest| {
            Ok(Box::new(Optimizer::new(method, q.params, q.lr, q.momentum, q.weight_decay)) as Box<dyn Optimize>)
        }))
    };
    let origin = ORIGIN;
    r.register(
        Schema::new(Kind::Optimizer, "sgd", vec![], "SGD with momentum (train.momentum) and L2 weight decay, as PyTorch's"),
        of(Method::Sgd),
        origin,
    )?;
    r.register(
        Schema::new(
            Kind::Optimizer,
            "adam",
            vec![],
            "Adam (β 0.9, 0.999; ε 1e-8) with L2 weight decay added to the gradient, as PyTorch's",
        ),
        of(Method::Adam),
        origin,
    )
}

fn schedule<S: LrSchedule + 'static>(s: S) -> Result<Arc<dyn LrSchedule>> {
    Ok(Arc::new(s))
}

/// Registers `constant`, `step` and `cosine`.
fn register_schedules(r: &mut Registry) -> Result<()> {
    let origin = ORIGIN;
    r.register(
        Schema::new(Kind::Schedule, "constant", vec![], "the same learning rate throughout"),
        Factory::Schedule(Arc::new(|_: &Args| schedule(Constant))),
        origin,
    )?;
    r.register(
        Schema::new(
            Kind::Schedule,
            "step",
            vec![
                ParamSpec::required("milestones", ParamType::IntList, "epochs (increasing, from 1) at which the rate drops"),
                ParamSpec::optional("gamma", ParamType::float_min(0.0, true), Value::Float(0.1), "factor of each drop"),
            ],
            "the rate multiplied by gamma at each milestone (the paper's drops at 50% and 80% of the epochs)",
        ),
        Factory::Schedule(Arc::new(|a: &Args| {
            let milestones = a.usize_list("milestones").map_err(|e| anyhow!(e))?;
            schedule(StepDecay { milestones, gamma: a.f64("gamma").map_err(|e| anyhow!(e))? })
        })),
        origin,
    )?;
    r.register(
        Schema::new(Kind::Schedule, "cosine", vec![], "cosine annealing from the base rate towards 0 over the epochs"),
        Factory::Schedule(Arc::new(|_: &Args| schedule(Cosine))),
        origin,
    )
}

/// Registers `ce`, `hinge` and `none`.
fn register_losses(r: &mut Registry) -> Result<()> {
    let origin = ORIGIN;
    let of = |f: fn(&Tensor, &[u32]) -> candle_core::Result<Tensor>, term: &'static str| -> Factory {
        Factory::Loss(Arc::new(move |_: &Args| Ok(Arc::new(FnLoss { f, term }) as Arc<dyn ClassLoss>)))
    };
    r.register(Schema::new(Kind::Loss, "ce", vec![], "cross-entropy"), of(cross_entropy, "cross-entropy"), origin)?;
    r.register(
        Schema::new(Kind::Loss, "hinge", vec![], "multi-class hinge (PyTorch's MultiMarginLoss)"),
        of(multiclass_hinge, "hinge"),
        origin,
    )?;
    r.register(
        Schema::new(Kind::Loss, "none", vec![], "no classification loss: the regularizer alone"),
        Factory::Loss(Arc::new(|_: &Args| Ok(Arc::new(NoLoss) as Arc<dyn ClassLoss>))),
        origin,
    )
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
    fn data_shapes_are_those_of_the_loaded_datasets() {
        for name in ["digits", "toy2d"] {
            let ds = crate::data::load(name, None).unwrap();
            let shape = data_shape(name).unwrap();
            assert_eq!((shape.input, shape.classes), (ds.shape.clone(), ds.classes), "{name}");
        }
        for name in ["mnist", "fashion-mnist", "csv"] {
            assert_eq!(data_shape(name), None, "{name} takes its shape from its files");
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
