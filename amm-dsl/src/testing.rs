//! A catalog with the built-in names amm-core registers, for tests, doctests and examples.
//!
//! amm-core owns the real registry (and plugins extend it at run time); this copy mirrors its
//! built-ins so the language can be tested without tensors.

use crate::schema::{Catalog, Kind, ParamSpec, ParamType, Schema, SimpleCatalog};
use crate::size::{check_count, check_widths, dense, DataShape, ModelProblem};
use crate::spec::StageSpec;
use crate::value::Value;

fn f(x: f64) -> Value {
    Value::Float(x)
}

/// `clip`: a threshold, or `none` (the default of `lin` and `hinge`).
fn clip(default: Option<f64>) -> ParamSpec {
    let d = default.map_or(Value::Ident("none".into()), f);
    ParamSpec::optional("clip", ParamType::or_none(ParamType::float_min(0.0, true)), d, "truncation threshold")
}

fn shrinkage(name: &str, c: f64, d: f64, clip_default: Option<f64>, doc: &str) -> Schema {
    Schema::new(
        Kind::Shrinkage,
        name,
        vec![
            ParamSpec::optional("c", ParamType::float_min(0.0, false), f(c), "scale on correct samples"),
            ParamSpec::optional("d", ParamType::float_min(0.0, false), f(d), "scale on misclassified samples"),
            clip(clip_default),
        ],
        doc,
    )
}

/// `norm` of the ResNets and DenseNets.
fn res_norm() -> ParamSpec {
    ParamSpec::optional("norm", ParamType::choice(&["group", "frozen_bn"]), Value::Ident("group".into()), "normalization")
}

/// The built-in proxies, aggregations, shrinkages, models and datasets.
///
/// A table, one schema after another (about 130 lines): nothing to split.
pub fn catalog() -> SimpleCatalog {
    let norm = || ParamType::choice(&["l2", "linf", "l1"]);
    let mut schemas = vec![
        Schema::new(
            Kind::Proxy,
            "deepfool",
            vec![
                ParamSpec::required("norm", norm(), "the p-norm of the perturbation"),
                ParamSpec::optional("iters", ParamType::int_min(1), Value::Int(5), "DeepFool iterations"),
                ParamSpec::optional("overshoot", ParamType::float_min(0.0, false), f(0.02), "per-step overshoot"),
                ParamSpec::optional("candidates", ParamType::int_min(2), Value::Int(10), "candidate classes"),
                ParamSpec::optional("hog", ParamType::Bool, Value::Bool(true), "high-order gradients"),
                ParamSpec::optional(
                    "chain",
                    ParamType::choice(&["full", "authors", "none"]),
                    Value::Ident("full".into()),
                    "what the graph keeps of x + r",
                ),
                ParamSpec::optional(
                    "failed",
                    ParamType::choice(&["drop", "keep"]),
                    Value::Ident("drop".into()),
                    "samples the attack did not flip",
                ),
            ],
            "differentiable DeepFool perturbation",
        ),
        Schema::new(
            Kind::Proxy,
            "linear",
            vec![
                ParamSpec::required("norm", norm(), "the p-norm"),
                ParamSpec::optional("candidates", ParamType::int_min(2), Value::Int(10), "candidate classes"),
                ParamSpec::optional("hog", ParamType::Bool, Value::Bool(false), "high-order gradients"),
            ],
            "first-order (one-step) margin estimate",
        ),
        Schema::new(Kind::Aggregation, "avg", vec![], "every sample"),
        Schema::new(
            Kind::Aggregation,
            "min",
            vec![
                ParamSpec::optional("by", ParamType::choice(&["class"]), Value::Ident("class".into()), "grouping"),
                ParamSpec::optional("frac", ParamType::float_in(0.0, true, 1.0, false), f(0.2), "fraction kept"),
                ParamSpec::optional(
                    "misclassified",
                    ParamType::choice(&["argmax", "all"]),
                    Value::Ident("argmax".into()),
                    "which misclassified samples",
                ),
            ],
            "per-class smallest margins",
        ),
        shrinkage("lin", 1.0, 1.0, None, "linear"),
        shrinkage("exp", 2.0, 1.0, Some(50.0), "exponential"),
        shrinkage("inv", 1.0, 1.0, Some(50.0), "inverse"),
        Schema::new(
            Kind::Shrinkage,
            "hinge",
            vec![ParamSpec::optional("gamma", ParamType::float_min(0.0, true), f(1.0), "target margin"), clip(None)],
            "Elsayed-style hinge",
        ),
        Schema::new(Kind::Model, "linear", vec![], "a linear classifier"),
        Schema::new(
            Kind::Model,
            "mlp",
            vec![
                ParamSpec::optional("widths", ParamType::IntList, Value::List(vec![Value::Int(800), Value::Int(800)]), "hidden widths"),
                ParamSpec::optional("act", ParamType::choice(&["relu", "tanh"]), Value::Ident("relu".into()), "activation"),
                ParamSpec::optional("dropout", ParamType::float_in(0.0, false, 1.0, true), f(0.0), "dropout"),
            ],
            "multi-layer perceptron",
        ),
        Schema::new(Kind::Model, "lenet", vec![], "Caffe LeNet"),
        Schema::new(Kind::Model, "liunet", vec![], "LiuNet"),
        Schema::new(Kind::Model, "liunet64", vec![], "CIFAR-10 LiuNet"),
        Schema::new(Kind::Model, "liunet96", vec![], "CIFAR-100 LiuNet"),
        Schema::new(Kind::Model, "convnet", vec![], "light ConvNet"),
        Schema::new(Kind::Model, "nin", vec![], "network in network"),
        Schema::new(Kind::Model, "resnet20", vec![res_norm()], "ResNet-20"),
        Schema::new(Kind::Model, "resnet56", vec![res_norm()], "ResNet-56"),
        Schema::new(
            Kind::Model,
            "resnet",
            vec![
                ParamSpec::optional("depth", ParamType::int_min(1), Value::Int(20), "weighted layers"),
                res_norm(),
                ParamSpec::optional("block", ParamType::choice(&["auto", "basic", "bottleneck"]), Value::Ident("auto".into()), "block"),
            ],
            "ResNet",
        ),
        Schema::new(Kind::Model, "densenet40", vec![res_norm()], "DenseNet-40"),
        Schema::new(
            Kind::Model,
            "densenet",
            vec![
                ParamSpec::optional("depth", ParamType::int_min(1), Value::Int(40), "weighted layers"),
                ParamSpec::optional("growth", ParamType::int_min(1), Value::Int(12), "growth"),
                res_norm(),
            ],
            "DenseNet",
        ),
    ];
    for name in ["digits", "fashion-mnist", "mnist", "cifar10", "cifar100", "svhn", "csv", "toy2d"] {
        schemas.push(Schema::new(Kind::Dataset, name, vec![], "dataset"));
    }
    schemas.extend(attacks());
    schemas.push(Schema::new(Kind::Schedule, "constant", vec![], "constant"));
    schemas.push(Schema::new(
        Kind::Schedule,
        "step",
        vec![
            ParamSpec::required("milestones", ParamType::IntList, "epochs at which the rate drops"),
            ParamSpec::optional("gamma", ParamType::float_min(0.0, true), f(0.1), "factor of each drop"),
        ],
        "step",
    ));
    schemas.push(Schema::new(Kind::Schedule, "cosine", vec![], "cosine"));
    for name in ["sgd", "adam"] {
        schemas.push(Schema::new(Kind::Optimizer, name, vec![], "optimizer"));
    }
    for name in ["ce", "hinge", "none"] {
        schemas.push(Schema::new(Kind::Loss, name, vec![], "loss"));
    }
    SimpleCatalog(schemas)
}

/// The evaluation attacks.
fn attacks() -> Vec<Schema> {
    let int = |name: &str, min: i64, d: i64| ParamSpec::optional(name, ParamType::int_min(min), Value::Int(d), name);
    let pos = |name: &str, d: f64| ParamSpec::optional(name, ParamType::float_min(0.0, true), f(d), name);
    let unit = |name: &str, d: f64| ParamSpec::optional(name, ParamType::float_in(0.0, false, 1.0, false), f(d), name);
    // `targets` only where APGD-T runs
    let apgd = |targeted: bool| {
        let mut p = vec![int("iters", 1, 100), int("restarts", 1, 1), unit("rho", 0.75), unit("momentum", 0.75), pos("step", 2.0)];
        if targeted {
            p.push(int("targets", 1, 9));
        }
        p.push(int("seed", 0, 0));
        p
    };
    vec![
        Schema::new(
            Kind::Attack,
            "deepfool",
            vec![
                int("iters", 1, 50),
                ParamSpec::optional("overshoot", ParamType::float_min(0.0, false), f(0.02), "overshoot"),
                int("candidates", 0, 0),
            ],
            "DeepFool",
        ),
        Schema::new(
            Kind::Attack,
            "fmn",
            vec![
                int("steps", 1, 100),
                pos("alpha", 1.0),
                ParamSpec::optional(
                    "alpha_final",
                    ParamType::or_none(ParamType::float_min(0.0, true)),
                    Value::Ident("none".into()),
                    "alpha_final",
                ),
                pos("gamma", 0.05),
                pos("gamma_final", 0.001),
            ],
            "FMN",
        ),
        Schema::new(
            Kind::Attack,
            "ddn",
            vec![int("steps", 1, 100), pos("init_norm", 1.0), unit("gamma", 0.05), pos("alpha", 1.0), pos("alpha_final", 0.01)],
            "DDN",
        ),
        Schema::new(Kind::Attack, "apgd", apgd(true), "APGD-CE and APGD-T"),
        Schema::new(Kind::Attack, "apgd-ce", apgd(false), "APGD-CE"),
        Schema::new(Kind::Attack, "apgd-t", apgd(true), "APGD-T"),
    ]
}

/// [`catalog`], measuring models as amm-core's registry does for `mlp` (every width from 1 to
/// [`MAX_LAYER_WIDTH`](crate::size::MAX_LAYER_WIDTH), at most
/// [`MAX_MODEL_PARAMS`](crate::size::MAX_MODEL_PARAMS) parameters) and knowing the shapes of
/// `digits` and `toy2d`: for tests of the model-size checks without tensors.
pub fn sized_catalog() -> SizedCatalog {
    SizedCatalog(catalog())
}

/// See [`sized_catalog`].
#[derive(Clone, Debug)]
pub struct SizedCatalog(pub SimpleCatalog);

impl Catalog for SizedCatalog {
    fn schema(&self, kind: Kind, name: &str) -> Option<&Schema> {
        self.0.schema(kind, name)
    }

    fn names(&self, kind: Kind) -> Vec<String> {
        self.0.names(kind)
    }

    fn kind_of(&self, name: &str) -> Vec<Kind> {
        self.0.kind_of(name)
    }

    fn data_shape(&self, name: &str) -> Option<DataShape> {
        let (input, classes) = match name {
            "digits" => (vec![1, 8, 8], 10),
            "toy2d" => (vec![2], 2),
            _ => return None,
        };
        Some(DataShape { name: name.into(), input, classes })
    }

    fn check_model(&self, model: &StageSpec, data: Option<&DataShape>) -> Result<(), ModelProblem> {
        let Ok(widths) = model.args.int_list("widths") else {
            return Ok(());
        };
        check_widths("widths", &widths)?;
        let mut d = data.map_or(1, DataShape::features);
        let mut n = 0u128;
        for w in widths {
            n = n.saturating_add(dense(d, w as u128));
            d = w as u128;
        }
        check_count(n.saturating_add(dense(d, data.map_or(2, |d| d.classes as u128))), data)
    }
}
