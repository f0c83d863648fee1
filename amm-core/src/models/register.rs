//! The built-in models as registry entries: each one's parameters, factory, and the size check
//! and parameter count the registry runs before building it (`Measure`), so that `amm check`
//! refuses a model too large to build without allocating it.
use crate::builtins::ORIGIN;
use crate::dsl::size::{check_count, check_widths, conv, dense};
use crate::dsl::{Args, DataShape, Kind, ModelProblem, ParamSpec, ParamType, Schema, Value};
use crate::layers::{Activation, Sequential};
use crate::model::{Model, Network};
use crate::models::{ResBlock, ResNorm};
use crate::params::{ParamBuilder, ParamStore};
use crate::registry::{Factory, Measure, ModelCheck, ModelRequest, ParamCount, Registry};
use anyhow::Result;
use std::sync::Arc;

/// The `norm` parameter of the ResNets and DenseNets.
fn res_norm_param() -> ParamSpec {
    ParamSpec::optional(
        "norm",
        ParamType::choice(&["group", "frozen_bn"]),
        Value::Ident("group".into()),
        "group norm (channels/4 groups) or batch norm frozen for the attack",
    )
}

fn res_norm_of(model: &str, a: &Args) -> candle_core::Result<ResNorm> {
    ResNorm::parse(a.ident("norm").map_err(candle_core::Error::Msg)?)
        .ok_or_else(|| candle_core::Error::Msg(format!("{model}: norm must be group or frozen_bn")))
}

fn usize_of(a: &Args, name: &str) -> candle_core::Result<usize> {
    a.usize(name).map_err(candle_core::Error::Msg)
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

/// The trainable parameters of built-in model `name` with `args` for `data`, counted without
/// building it (saturating `u128`: no overflow). With `data` unknown, `mlp` gets a lower bound
/// (one input feature, two classes); the other models depend on the data, so `None`. `None`
/// too for a name that is not a built-in model, and for inputs the model refuses (its factory
/// says why).
pub fn param_count(name: &str, args: &Args, data: Option<&DataShape>) -> Option<u128> {
    let classes = data.map_or(2, |d| d.classes as u128);
    // `[C, H, W]` inputs of at least `min` pixels a side, as the convolutional models require.
    let chw = |min: u128| match data.map(|d| &d.input[..]) {
        Some(&[c, h, w]) if h as u128 >= min && w as u128 >= min => Some((c as u128, h as u128, w as u128)),
        _ => None,
    };
    let sum = |parts: &[u128]| parts.iter().fold(0u128, |n, &p| n.saturating_add(p));
    let norm = |c: u128| c.saturating_mul(2); // group norm or batch norm: a scale and a shift per channel
    Some(match name {
        "linear" => dense(data?.features(), classes),
        "mlp" => {
            let mut d = data.map_or(1, |d| d.features());
            let mut n = 0u128;
            for w in args.int_list("widths").ok()? {
                let w = u128::try_from(w).ok()?;
                n = n.saturating_add(dense(d, w));
                d = w;
            }
            n.saturating_add(dense(d, classes))
        }
        "lenet" => {
            let (c, h, w) = chw(16)?;
            let out = |s: u128| ((s - 4) / 2 - 4) / 2;
            sum(&[
                conv(c, 20, 5, true),
                conv(20, 50, 5, true),
                dense(50u128.saturating_mul(out(h)).saturating_mul(out(w)), 500),
                dense(500, classes),
            ])
        }
        "liunet" | "liunet64" | "liunet96" => {
            let (c, h, w) = chw(8)?;
            let shape = crate::models::liunet_shape(name)?;
            let [first, stages @ ..] = shape.widths.map(|w| w as u128);
            let layer = |i: u128, o: u128| conv(i, o, 3, true).saturating_add(norm(o));
            let (mut n, mut in_c) = (layer(c, first), first);
            for width in stages {
                n = sum(&[n, layer(in_c, width), layer(width, width).saturating_mul(shape.convs as u128 - 1)]);
                in_c = width;
            }
            let fc = shape.fc as u128;
            sum(&[n, dense(in_c.saturating_mul(h / 8).saturating_mul(w / 8), fc), dense(fc, classes)])
        }
        "convnet" => {
            let (c, h, w) = chw(8)?;
            let convs = [conv(c, 32, 5, true), conv(32, 32, 5, true), conv(32, 64, 5, true)];
            sum(&[sum(&convs), dense(64u128.saturating_mul(h / 8).saturating_mul(w / 8), 64), dense(64, classes)])
        }
        "nin" => {
            let (c, _, _) = chw(4)?;
            let layers = [(192, 5), (160, 1), (96, 1), (192, 5), (192, 1), (192, 1), (192, 3), (192, 1), (classes, 1)];
            let mut in_c = c;
            let mut n = 0u128;
            for (out_c, k) in layers {
                n = n.saturating_add(conv(in_c, out_c, k, true));
                in_c = out_c;
            }
            n
        }
        "resnet20" | "resnet56" | "resnet" => {
            let (c, _, _) = chw(4)?;
            let (depth, block) = match name {
                "resnet20" => (20, None),
                "resnet56" => (56, None),
                _ => (args.usize("depth").ok()?, ResBlock::parse(args.ident("block").ok()?)?),
            };
            let (block, blocks) = crate::models::resnet_plan(depth, block).ok()?;
            let mut n = conv(c, 16, 3, false).saturating_add(norm(16));
            let mut in_c = 16u128;
            for (stage, planes) in [16u128, 32, 64].into_iter().enumerate() {
                let out = planes * block.expansion() as u128;
                let body = |i: u128| match block {
                    ResBlock::Basic => sum(&[conv(i, out, 3, false), conv(out, out, 3, false), norm(out).saturating_mul(2)]),
                    ResBlock::Bottleneck => sum(&[
                        conv(i, planes, 1, false),
                        conv(planes, planes, 3, false),
                        conv(planes, out, 1, false),
                        norm(planes).saturating_mul(2),
                        norm(out),
                    ]),
                };
                // The first block of a stage projects its shortcut where the shape changes.
                let shortcut = if stage > 0 || in_c != out { conv(in_c, out, 1, false).saturating_add(norm(out)) } else { 0 };
                n = sum(&[n, body(in_c), shortcut, body(out).saturating_mul(blocks as u128 - 1)]);
                in_c = out;
            }
            n.saturating_add(dense(in_c, classes))
        }
        "densenet40" | "densenet" => {
            let (c, _, _) = chw(4)?;
            let (depth, growth) = match name {
                "densenet40" => (40, 12),
                _ => (args.usize("depth").ok()?, args.usize("growth").ok()?),
            };
            let res_norm = ResNorm::parse(args.ident("norm").ok()?)?;
            let layers = crate::models::densenet_plan(depth, growth, res_norm).ok()? as u128;
            let k = growth as u128;
            let mut ch = crate::models::DENSENET_STEM as u128;
            let mut n = conv(c, ch, 3, false);
            for block in 0..3 {
                // Layer i (from 0) of a block: a norm and a 3×3 conv to k channels on ch + i·k
                // channels, (2 + 9k)·(ch + i·k) parameters; summed over the block's layers.
                let inputs = layers.saturating_mul(ch).saturating_add(k.saturating_mul(layers.saturating_mul(layers - 1) / 2));
                n = n.saturating_add(k.saturating_mul(9).saturating_add(2).saturating_mul(inputs));
                ch = ch.saturating_add(layers.saturating_mul(k));
                if block < 2 {
                    n = sum(&[n, norm(ch), conv(ch, ch, 1, false)]);
                }
            }
            sum(&[n, norm(ch), dense(ch, classes)])
        }
        _ => return None,
    })
}

/// Refuses a built-in model too large to build: a width of `mlp` beyond
/// [`MAX_LAYER_WIDTH`](crate::dsl::MAX_LAYER_WIDTH), or more parameters than
/// [`MAX_MODEL_PARAMS`](crate::dsl::MAX_MODEL_PARAMS) for `data` (a lower bound when `None`).
/// The registry's [`Catalog::check_model`](crate::dsl::Catalog::check_model), so `amm check`
/// refuses it, and [`Registry::build_model`] calls it before allocating anything.
pub fn check_model(name: &str, args: &Args, data: Option<&DataShape>) -> Result<(), ModelProblem> {
    match name {
        "mlp" => {
            if let Ok(widths) = args.int_list("widths") {
                check_widths("widths", &widths)?;
            }
        }
        // Depths that fit no block, and growths group norm cannot split, with the fix.
        "resnet" => {
            if let (Ok(depth), Some(block)) = (args.usize("depth"), args.ident("block").ok().and_then(ResBlock::parse)) {
                crate::models::resnet_plan(depth, block)?;
            }
        }
        "densenet" => {
            if let (Ok(depth), Ok(growth), Some(norm)) =
                (args.usize("depth"), args.usize("growth"), args.ident("norm").ok().and_then(ResNorm::parse))
            {
                crate::models::densenet_plan(depth, growth, norm)?;
            }
        }
        _ => {}
    }
    match param_count(name, args, data) {
        Some(n) => check_count(n, data),
        None => Ok(()),
    }
}

/// Registers the built-in models, in the order `amm list` shows them, each with its `Measure`.
/// Long because it is a table: one `register` per model.
pub fn register(r: &mut Registry) -> Result<()> {
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
        cnn(
            "liunet64",
            "LiuNet for CIFAR-10: conv 64, then 4 conv 3×3 at 64, 96 and 128 with a max-pool after each 4, group norm (channels/4 groups), fc 256, fc",
            crate::models::liunet64,
        ),
        cnn(
            "liunet96",
            "LiuNet for CIFAR-100: conv 96, then 4 conv 3×3 at 96, 192 and 384 with a max-pool after each 4, group norm (channels/4 groups), fc 512, fc",
            crate::models::liunet96,
        ),
        cnn("convnet", "the light CIFAR ConvNet: 3× (conv 5×5, maxpool, ReLU) with 32, 32, 64 channels, fc 64, fc", crate::models::convnet),
        cnn("nin", "Network in Network (pooling with kernel = stride = 2, dropout 0.5)", crate::models::nin),
    ] {
        r.register(schema, factory, ORIGIN)?;
    }
    r.register(
        Schema::new(Kind::Model, "resnet20", vec![res_norm_param()], "ResNet-20 for CIFAR (16-32-64 channels, 1×1 projection shortcuts)"),
        Factory::Model(Arc::new(|req| {
            network(req, |shape, classes, a, pb| crate::models::resnet20(shape, classes, res_norm_of("resnet20", a)?, pb))
        })),
        ORIGIN,
    )?;
    r.register(
        Schema::new(
            Kind::Model,
            "resnet56",
            vec![res_norm_param()],
            "ResNet-56 for CIFAR as the authors' code: 3 × 6 bottleneck blocks (1×1, 3×3, 1×1; 64-128-256 channels out)",
        ),
        Factory::Model(Arc::new(|req| {
            network(req, |shape, classes, a, pb| crate::models::resnet56(shape, classes, res_norm_of("resnet56", a)?, pb))
        })),
        ORIGIN,
    )?;
    r.register(
        Schema::new(
            Kind::Model,
            "resnet",
            vec![
                ParamSpec::optional(
                    "depth",
                    ParamType::int_min(1),
                    Value::Int(20),
                    "weighted layers: 6n+2 with basic blocks, 9n+2 with bottleneck blocks (n blocks a stage)",
                ),
                res_norm_param(),
                ParamSpec::optional(
                    "block",
                    ParamType::choice(&["auto", "basic", "bottleneck"]),
                    Value::Ident("auto".into()),
                    "auto: basic blocks below depth 44, bottleneck blocks from 44 up (the authors' code)",
                ),
            ],
            "CIFAR ResNet of any depth (resnet(20) is resnet20, resnet(56) is resnet56, resnet(56, block=basic) He et al.'s)",
        ),
        Factory::Model(Arc::new(|req| {
            network(req, |shape, classes, a, pb| {
                let block = ResBlock::parse(a.ident("block").map_err(candle_core::Error::Msg)?)
                    .ok_or_else(|| candle_core::Error::Msg("resnet: block must be auto, basic or bottleneck".into()))?;
                crate::models::resnet(shape, classes, usize_of(a, "depth")?, block, res_norm_of("resnet", a)?, pb)
            })
        })),
        ORIGIN,
    )?;
    r.register(
        Schema::new(
            Kind::Model,
            "densenet40",
            vec![res_norm_param()],
            "DenseNet-40 for CIFAR: growth 12, 3 dense blocks of 12 layers, no bottleneck or compression",
        ),
        Factory::Model(Arc::new(|req| {
            network(req, |shape, classes, a, pb| crate::models::densenet40(shape, classes, res_norm_of("densenet40", a)?, pb))
        })),
        ORIGIN,
    )?;
    r.register(
        Schema::new(
            Kind::Model,
            "densenet",
            vec![
                ParamSpec::optional("depth", ParamType::int_min(1), Value::Int(40), "weighted layers: 3L+4 for L layers a dense block"),
                ParamSpec::optional("growth", ParamType::int_min(1), Value::Int(12), "channels each dense layer adds (k)"),
                res_norm_param(),
            ],
            "CIFAR DenseNet (Huang et al.) of any depth and growth, without bottleneck or compression",
        ),
        Factory::Model(Arc::new(|req| {
            network(req, |shape, classes, a, pb| {
                crate::models::densenet(shape, classes, usize_of(a, "depth")?, usize_of(a, "growth")?, res_norm_of("densenet", a)?, pb)
            })
        })),
        ORIGIN,
    )?;
    // What the registry checks before building a built-in model.
    for name in crate::dsl::Catalog::names(r, Kind::Model) {
        let (a, b) = (name.clone(), name.clone());
        let check: ModelCheck = Arc::new(move |args, data| check_model(&a, args, data));
        let params: ParamCount = Arc::new(move |args, data| param_count(&b, args, data));
        r.set_measure(Kind::Model, &name, Measure::Model { check, params })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtins::data_shape;

    fn model(reg: &Registry, text: &str) -> crate::dsl::StageSpec {
        let grid = crate::dsl::experiment_from_overrides(&[format!("model.arch={text}")], reg).unwrap_or_else(|d| panic!("{text}\n{d}"));
        grid.cells[0].config.model.clone()
    }

    /// The counts `amm check` uses are those of the models `amm train` builds.
    #[test]
    fn param_count_is_the_built_models_count() {
        let reg = Registry::with_builtins();
        let cases: &[(&str, &[usize], usize)] = &[
            ("linear", &[2], 2),
            ("linear", &[1, 8, 8], 10),
            ("mlp", &[1, 8, 8], 10),
            ("mlp(widths=[])", &[5], 3),
            ("mlp(widths=[7, 3, 5], act=tanh, dropout=0.5)", &[1, 4, 4], 4),
            ("lenet", &[1, 16, 16], 10),
            ("lenet", &[3, 21, 18], 7),
            ("liunet", &[1, 8, 8], 10),
            ("liunet", &[2, 17, 9], 3),
            ("convnet", &[3, 32, 32], 10),
            ("convnet", &[1, 9, 16], 5),
            ("nin", &[3, 8, 8], 10),
            ("resnet20", &[3, 8, 8], 10),
            ("resnet20(norm=frozen_bn)", &[1, 4, 5], 100),
            ("liunet64", &[3, 8, 8], 10),
            ("liunet96", &[1, 9, 12], 100),
            ("resnet56", &[3, 4, 4], 10),
            ("resnet56(norm=frozen_bn)", &[1, 5, 4], 3),
            ("resnet", &[3, 8, 8], 10),
            ("resnet(depth=11, block=bottleneck, norm=frozen_bn)", &[2, 4, 6], 7),
            ("resnet(14, block=basic)", &[3, 4, 4], 10),
            ("resnet(110)", &[3, 4, 4], 10),
            ("densenet40", &[3, 8, 8], 10),
            ("densenet40(norm=frozen_bn)", &[3, 4, 4], 100),
            ("densenet(depth=10, growth=4)", &[2, 5, 7], 3),
            ("densenet(depth=7, growth=3, norm=frozen_bn)", &[1, 4, 4], 10),
        ];
        for &(text, shape, classes) in cases {
            let spec = model(&reg, text);
            let built = reg
                .build_model(&spec, shape, classes, &mut crate::data::Rng::new(0), candle_core::DType::F32, &candle_core::Device::Cpu)
                .unwrap_or_else(|e| panic!("{text}: {e:#}"));
            let data = DataShape { name: "x".into(), input: shape.to_vec(), classes };
            assert_eq!(param_count(&spec.name, &spec.args, Some(&data)), Some(built.params().count() as u128), "{text} {shape:?}");
        }
        // Too small for the convolutions: no count, the factory says why.
        let data = DataShape { name: "x".into(), input: vec![1, 8, 8], classes: 10 };
        assert_eq!(param_count("lenet", &model(&reg, "lenet").args, Some(&data)), None);
    }

    fn built(reg: &Registry, text: &str, shape: &[usize], classes: usize) -> Box<dyn Model> {
        let spec = model(reg, text);
        reg.build_model(&spec, shape, classes, &mut crate::data::Rng::new(0), candle_core::DType::F32, &candle_core::Device::Cpu)
            .unwrap_or_else(|e| panic!("{text}: {e:#}"))
    }

    fn names_and_shapes(m: &dyn Model) -> Vec<(String, Vec<usize>)> {
        let p = m.params();
        p.vars().iter().chain(p.buffers()).map(|(n, v)| (n.clone(), v.dims().to_vec())).collect()
    }

    /// Saved weights of the older models still load: their parameters keep their names and
    /// shapes, and the general `resnet` builds the same networks as its aliases.
    #[test]
    fn older_models_keep_their_parameters_and_aliases_are_their_general_model() {
        let reg = Registry::with_builtins();
        let liunet = names_and_shapes(built(&reg, "liunet", &[1, 28, 28], 10).as_ref());
        let mut want: Vec<(String, Vec<usize>)> = Vec::new();
        for i in 1..=10 {
            want.push((format!("conv{i}.weight"), vec![64, if i == 1 { 1 } else { 64 }, 3, 3]));
            want.push((format!("conv{i}.bias"), vec![64]));
            want.push((format!("gn{i}.weight"), vec![64]));
            want.push((format!("gn{i}.bias"), vec![64]));
        }
        want.extend([("fc1.weight".into(), vec![256, 576]), ("fc1.bias".into(), vec![256])]);
        want.extend([("fc2.weight".into(), vec![10, 256]), ("fc2.bias".into(), vec![10])]);
        let sorted = |mut v: Vec<(String, Vec<usize>)>| {
            v.sort();
            v
        };
        assert_eq!(sorted(liunet), sorted(want));

        let r20 = names_and_shapes(built(&reg, "resnet20", &[3, 32, 32], 10).as_ref());
        assert_eq!(r20.len(), 65, "{r20:?}");
        for (name, dims) in [
            ("conv1.weight", vec![16, 3, 3, 3]),
            ("stage1.block1.conv1.weight", vec![16, 16, 3, 3]),
            ("stage2.block1.shortcut.conv.weight", vec![32, 16, 1, 1]),
            ("stage3.block3.norm2.bias", vec![64]),
            ("fc.weight", vec![10, 64]),
        ] {
            assert!(r20.contains(&(name.to_string(), dims.clone())), "resnet20 lost {name} {dims:?}");
        }
        assert!(!r20.iter().any(|(n, _)| n.contains("stage1.block1.shortcut") || n.contains("conv3")), "{r20:?}");
        for (alias, general) in [
            ("resnet20", "resnet"),
            ("resnet20(norm=frozen_bn)", "resnet(20, frozen_bn)"),
            ("resnet56", "resnet(56)"),
            ("resnet56", "resnet(depth=56, block=bottleneck)"),
            ("densenet40", "densenet"),
            ("densenet40(norm=frozen_bn)", "densenet(40, 12, frozen_bn)"),
        ] {
            let (a, b) = (built(&reg, alias, &[3, 8, 8], 10), built(&reg, general, &[3, 8, 8], 10));
            assert_eq!(names_and_shapes(a.as_ref()), names_and_shapes(b.as_ref()), "{alias} vs {general}");
        }
        // ResNet-56 as the authors build it: 6 bottleneck blocks a stage, 256 channels into the fc.
        let r56 = names_and_shapes(built(&reg, "resnet56", &[3, 32, 32], 10).as_ref());
        assert!(r56.contains(&("stage3.block6.conv3.weight".into(), vec![256, 64, 1, 1])), "{r56:?}");
        assert!(r56.contains(&("stage1.block1.shortcut.conv.weight".into(), vec![64, 16, 1, 1])), "{r56:?}");
        assert!(r56.contains(&("fc.weight".into(), vec![10, 256])), "{r56:?}");
        assert!(!r56.iter().any(|(n, _)| n.starts_with("stage1.block7")), "{r56:?}");
        let basic56 = names_and_shapes(built(&reg, "resnet(56, block=basic)", &[3, 8, 8], 10).as_ref());
        assert!(basic56.iter().any(|(n, _)| n.starts_with("stage3.block9.conv2")), "{basic56:?}");
        // DenseNet-40: 16 + 3·12·12 = 448 channels into the fc.
        let d40 = names_and_shapes(built(&reg, "densenet40", &[3, 32, 32], 10).as_ref());
        for (name, dims) in [
            ("block1.layer1.conv.weight", vec![12, 16, 3, 3]),
            ("block1.layer12.norm.weight", vec![148]),
            ("trans1.conv.weight", vec![160, 160, 1, 1]),
            ("block3.layer12.conv.weight", vec![12, 436, 3, 3]),
            ("final_norm.bias", vec![448]),
            ("fc.weight", vec![10, 448]),
        ] {
            assert!(d40.contains(&(name.to_string(), dims.clone())), "densenet40 lacks {name} {dims:?}");
        }
        assert!(!d40.iter().any(|(n, _)| n.starts_with("trans3")), "{d40:?}");
        let l96 = names_and_shapes(built(&reg, "liunet96", &[3, 32, 32], 100).as_ref());
        for (name, dims) in [
            ("conv1.weight", vec![96, 3, 3, 3]),
            ("conv6.weight", vec![192, 96, 3, 3]),
            ("gn13.weight", vec![384]),
            ("fc1.weight", vec![512, 6144]),
            ("fc2.weight", vec![100, 512]),
        ] {
            assert!(l96.contains(&(name.to_string(), dims.clone())), "liunet96 lacks {name} {dims:?}");
        }
    }

    /// Depths that fit no block are refused by `amm check`, at the argument, with the fix.
    #[test]
    fn resnet_and_densenet_refuse_depths_that_fit_no_block() {
        let reg = Registry::with_builtins();
        let problem = |text: &str| {
            let d = crate::dsl::experiment_from_overrides(&[format!("model.arch={text}")], &reg).unwrap_err();
            assert_eq!(d.0.len(), 1, "{text}: {d}");
            (d.0[0].message.clone(), d.0[0].help.clone().unwrap_or_default(), d.0[0].column)
        };
        let (m, h, col) = problem("resnet(depth=50)");
        assert_eq!(m, "resnet depth must be 6n+2 below 44 or 9n+2 from 44 up, got 50");
        assert_eq!(h, "use depth=47 or depth=56, or block=basic for this depth");
        assert!(col > 18, "points at the depth, not the model: column {col}");
        let (m, h, _) = problem("resnet(44)");
        assert!(m.ends_with("got 44") && h == "use depth=38 or depth=47, or block=basic for this depth", "{m} / {h}");
        let (m, h, _) = problem("resnet(depth=21, block=bottleneck)");
        assert_eq!(
            (m.as_str(), h.as_str()),
            ("resnet depth with block=bottleneck must be 9n+2 (n >= 1), got 21", "use depth=20 or depth=29")
        );
        let (m, _, _) = problem("resnet(3, block=basic)");
        assert!(m.contains("block=basic must be 6n+2"), "{m}");
        let (m, h, _) = problem("densenet(depth=41)");
        assert_eq!(
            (m.as_str(), h.as_str()),
            ("densenet depth must be 3L+4 (L >= 1 layers a dense block), got 41", "use depth=40 or depth=43 (DenseNet-40: depth=40)")
        );
        let (m, h, _) = problem("densenet(growth=10)");
        assert!(m.contains("multiple of 4") && h.contains("norm=frozen_bn"), "{m} / {h}");
        for ok in ["resnet(depth=44, block=basic)", "resnet(110)", "resnet(depth=47)", "densenet(growth=10, norm=frozen_bn)"] {
            crate::dsl::experiment_from_overrides(&[format!("model.arch={ok}")], &reg).unwrap_or_else(|d| panic!("{ok}: {d}"));
        }
        // Valid but huge depths are refused for their size (no overflow, no endless count).
        for huge in ["resnet(9000000000000002)", "densenet(3000000000000004)"] {
            let (m, _, _) = problem(huge);
            assert!(m.contains("trainable parameters"), "{huge}: {m}");
        }
        // The factory says the same when the model is built without the check.
        let mut store = crate::params::ParamStore::new();
        let mut rng = crate::data::Rng::new(0);
        let mut pb = ParamBuilder::new(&mut store, &mut rng, candle_core::DType::F32, &candle_core::Device::Cpu);
        let e = crate::models::resnet(&[3, 8, 8], 10, 50, None, ResNorm::Group, &mut pb).unwrap_err().to_string();
        assert!(e.contains("9n+2 from 44 up, got 50 (use depth=47 or depth=56"), "{e}");
    }

    fn mlp_args(widths: &[i64]) -> Args {
        [
            ("widths".to_string(), Value::List(widths.iter().map(|&w| Value::Int(w)).collect())),
            ("act".to_string(), Value::Ident("relu".into())),
            ("dropout".to_string(), Value::Float(0.0)),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn oversized_models_are_refused_before_allocation() {
        let digits = data_shape("digits");
        for (widths, data, element) in [
            (&[i64::MAX][..], digits.as_ref(), Some(0)),
            (&[64, 100_000_000][..], digits.as_ref(), Some(1)),
            (&[64, 0][..], None, Some(1)),
            (&[1_000_000, 1_000_000, 1_000_000][..], None, None),
            (&[1_000_000, 1_000][..], Some(&DataShape { name: "csv".into(), input: vec![3000], classes: 2 }), None),
        ] {
            let p = check_model("mlp", &mlp_args(widths), data).unwrap_err();
            assert_eq!(p.arg, element.map(|i| ("widths".to_string(), Some(i))), "{widths:?}: {p}");
        }
        let p = check_model("mlp", &mlp_args(&[1_000_000, 1_000_000, 1_000_000]), None).unwrap_err();
        assert!(p.message.starts_with("the model has at least 2000006000002 trainable parameters"), "{p}");
        assert_eq!(check_model("mlp", &mlp_args(&[1_000_000]), digits.as_ref()), Ok(()));
        assert_eq!(check_model("mlp", &mlp_args(&[800, 800]), None), Ok(()));

        // `amm train` reaches the factory only through this check: an error, not a capacity
        // overflow panic or an aborting allocation.
        let reg = Registry::with_builtins();
        let spec = crate::dsl::StageSpec { kind: Kind::Model, name: "mlp".into(), args: mlp_args(&[i64::MAX]) };
        let mut rng = crate::data::Rng::new(0);
        let err = reg.build_model(&spec, &[1, 8, 8], 10, &mut rng, candle_core::DType::F32, &candle_core::Device::Cpu).err().unwrap();
        assert!(err.to_string().contains("more than 1000000"), "{err:#}");
        let spec = crate::dsl::StageSpec { args: mlp_args(&[1_000_000]), ..spec };
        let err = reg.build_model(&spec, &[3, 3000], 10, &mut rng, candle_core::DType::F32, &candle_core::Device::Cpu).err().unwrap();
        assert!(err.to_string().contains("9011000010 trainable parameters for the data (inputs 3x3000, 10 classes)"), "{err:#}");
        // A CNN is measured against the data it is built for.
        let spec = crate::dsl::StageSpec { kind: Kind::Model, name: "linear".into(), args: Args::new() };
        let err = reg
            .build_model(&spec, &[1, 100_000, 100_000], 1000, &mut rng, candle_core::DType::F32, &candle_core::Device::Cpu)
            .err()
            .unwrap();
        assert!(err.to_string().contains("more than 2147483648"), "{err:#}");
    }

    /// `amm check` sees the same limits through the registry's catalog, located in the spec.
    #[test]
    fn the_catalog_refuses_oversized_models_in_specs() {
        let reg = Registry::with_builtins();
        let d = crate::dsl::experiment_from_overrides(&["model.arch=mlp(widths=[64, 9223372036854775807])".into()], &reg).unwrap_err();
        assert_eq!(d.0.len(), 1, "{d}");
        assert_eq!((d.0[0].line, d.0[0].column), (1, 28), "{d}");
        let o = ["model.arch=mlp([1000000])".to_string(), "data.name={digits, cifar10}".to_string()];
        let d = crate::dsl::experiment_from_overrides(&o, &reg).unwrap_err();
        assert!(d.0[0].message.contains("for cifar10 (inputs 3x32x32, 10 classes)"), "{d}");
        assert_eq!((d.0[0].line, d.0[0].column), (1, 12), "{d}");
        assert!(crate::dsl::experiment_from_overrides(&["model.arch=mlp([1000000])".into()], &reg).is_ok());
    }
}
