//! The one registry: every proxy, aggregation, shrinkage, model, dataset, optimizer, learning-rate
//! schedule, classification loss and evaluation attack amm knows, with its
//! parameter schema and a factory. The spec language validates against it (it implements
//! [`Catalog`]), the trainer builds from it, and built-ins and plugins register through the same
//! [`Registry::register`].
use crate::aggregate::Aggregation;
use crate::attacks::Attack;
use crate::data::{Dataset, Rng};
use crate::dsl::{Args, Catalog, DataShape, Kind, Loss, ModelProblem, Optimizer, PipelineSpec, Schedule, Schema, StageSpec};
use crate::loss::ClassLoss;
use crate::model::Model;
use crate::optim::Optimize;
use crate::params::ParamStore;
use crate::proxy::{Norm, Proxy};
use crate::regularizer::Regularizer;
use crate::schedule::LrSchedule;
use crate::shrink::Shrinkage;
use anyhow::{anyhow, bail, Context, Result};
use candle_core::{DType, Device};
use std::path::Path;
use std::sync::Arc;

/// What a model factory is given.
pub struct ModelRequest<'a> {
    /// Per-sample input shape (`[C, H, W]` or `[D]`), from the dataset.
    pub input_shape: &'a [usize],
    pub classes: usize,
    /// The validated arguments (defaults filled in).
    pub args: &'a Args,
    /// Source of the initial weights: the run's seed.
    pub rng: &'a mut Rng,
    pub dtype: DType,
    pub device: &'a Device,
}

/// What an attack factory is given.
pub struct AttackRequest<'a> {
    /// The validated arguments (defaults filled in).
    pub args: &'a Args,
    /// The norm the attack measures and bounds perturbations in (`eval.norm`, `--norm`); a
    /// factory refuses a norm its attack does not have.
    pub norm: Norm,
    /// How results name it: the name, or the call as written when it has arguments.
    pub label: &'a str,
}

pub type ProxyFactory = Arc<dyn Fn(&Args) -> Result<Arc<dyn Proxy>> + Send + Sync>;
pub type AggregationFactory = Arc<dyn Fn(&Args) -> Result<Arc<dyn Aggregation>> + Send + Sync>;
pub type ShrinkageFactory = Arc<dyn Fn(&Args) -> Result<Arc<dyn Shrinkage>> + Send + Sync>;
pub type ModelFactory = Arc<dyn Fn(ModelRequest) -> Result<Box<dyn Model>> + Send + Sync>;
pub type DatasetFactory = Arc<dyn Fn(Option<&Path>) -> Result<Dataset> + Send + Sync>;
/// What an optimizer factory is given: the weights and the `[train]` settings every optimizer has.
pub struct OptimizerRequest<'a> {
    /// The validated arguments (defaults filled in).
    pub args: &'a Args,
    /// The weights to update.
    pub params: &'a ParamStore,
    /// The base learning rate (the schedule scales it every epoch through `Optimize::set_lr`).
    pub lr: f64,
    /// `train.momentum`.
    pub momentum: f64,
    /// `train.weight_decay`.
    pub weight_decay: f64,
}

pub type OptimizerFactory = Arc<dyn Fn(OptimizerRequest) -> Result<Box<dyn Optimize>> + Send + Sync>;
pub type ScheduleFactory = Arc<dyn Fn(&Args) -> Result<Arc<dyn LrSchedule>> + Send + Sync>;
pub type LossFactory = Arc<dyn Fn(&Args) -> Result<Arc<dyn ClassLoss>> + Send + Sync>;
/// Builds one entry of an attack list: usually one attack, several where one name stands for a
/// family (`apgd` is APGD-CE and APGD-T).
pub type AttackFactory = Arc<dyn Fn(AttackRequest) -> Result<Vec<Box<dyn Attack>>> + Send + Sync>;

/// How to build a registered item; its variant must match the schema's kind.
#[derive(Clone)]
pub enum Factory {
    Proxy(ProxyFactory),
    Aggregation(AggregationFactory),
    Shrinkage(ShrinkageFactory),
    Model(ModelFactory),
    Dataset(DatasetFactory),
    Optimizer(OptimizerFactory),
    Schedule(ScheduleFactory),
    Loss(LossFactory),
    Attack(AttackFactory),
}

impl Factory {
    pub fn kind(&self) -> Kind {
        match self {
            Factory::Proxy(_) => Kind::Proxy,
            Factory::Aggregation(_) => Kind::Aggregation,
            Factory::Shrinkage(_) => Kind::Shrinkage,
            Factory::Model(_) => Kind::Model,
            Factory::Dataset(_) => Kind::Dataset,
            Factory::Optimizer(_) => Kind::Optimizer,
            Factory::Schedule(_) => Kind::Schedule,
            Factory::Loss(_) => Kind::Loss,
            Factory::Attack(_) => Kind::Attack,
        }
    }
}

/// A model's size check and exact parameter count, computed from its arguments before it is built.
pub type ModelCheck = Arc<dyn Fn(&Args, Option<&DataShape>) -> std::result::Result<(), ModelProblem> + Send + Sync>;
pub type ParamCount = Arc<dyn Fn(&Args, Option<&DataShape>) -> Option<u128> + Send + Sync>;

/// What can be known of an item without building or loading it (the built-ins give it; a
/// plugin's items have none, and are built unmeasured).
#[derive(Clone)]
pub enum Measure {
    /// A model: whether its arguments make a model that can be built, and its parameter count.
    Model { check: ModelCheck, params: ParamCount },
    /// A dataset: its input shape and classes.
    Dataset(DataShape),
}

/// A registered item.
#[derive(Clone)]
pub struct Entry {
    pub schema: Schema,
    pub factory: Factory,
    /// `built-in`, or the file of the plugin that registered it.
    pub origin: String,
    /// What is known of it before it is built, if anything.
    pub measure: Option<Measure>,
}

/// The factory of the registered item `$name` of kind `$kind` (the same name in [`Kind`] and
/// [`Factory`]), or the registry's "no such item" error; `register` checks that the two agree.
macro_rules! factory {
    ($reg:expr, $kind:ident, $name:expr) => {
        match &$reg.entry(Kind::$kind, $name)?.factory {
            Factory::$kind(f) => f,
            _ => unreachable!("register checks the factory kind"),
        }
    };
}

/// The registry. `Registry::default()` is empty; [`Registry::with_builtins`] has amm's own items.
#[derive(Clone, Default)]
pub struct Registry {
    entries: Vec<Entry>,
}

impl Registry {
    /// Adds an item. A name may exist once per kind.
    pub fn register(&mut self, schema: Schema, factory: Factory, origin: &str) -> Result<()> {
        if schema.kind != factory.kind() {
            bail!("{origin}: `{}` is declared as {} but its factory builds {}", schema.name, schema.kind.name(), factory.kind().name());
        }
        if let Some(e) = self.find(schema.kind, &schema.name) {
            bail!("{origin}: {} `{}` is already registered by {}", schema.kind.name(), schema.name, e.origin);
        }
        if schema.name.is_empty() || !schema.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            bail!("{origin}: `{}` is not a valid name (letters, digits, `_` and `-`)", schema.name);
        }
        self.entries.push(Entry { schema, factory, origin: origin.to_string(), measure: None });
        Ok(())
    }

    /// Attaches what is known of a registered item before it is built (see [`Measure`]).
    pub fn set_measure(&mut self, kind: Kind, name: &str, measure: Measure) -> Result<()> {
        let e = self.entries.iter_mut().find(|e| e.schema.kind == kind && e.schema.name == name);
        e.with_context(|| format!("no {} `{name}` is registered", kind.name()))?.measure = Some(measure);
        Ok(())
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Where an item stands among the items of its kind, in registration order: built-ins in
    /// the order the paper lists them (LIN, INV, EXP), then plugins. Reports order rows by it.
    pub fn position(&self, kind: Kind, name: &str) -> Option<usize> {
        self.entries.iter().filter(|e| e.schema.kind == kind).position(|e| e.schema.name == name)
    }

    pub fn find(&self, kind: Kind, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.schema.kind == kind && e.schema.name == name)
    }

    fn entry(&self, kind: Kind, name: &str) -> Result<&Entry> {
        self.find(kind, name)
            .ok_or_else(|| anyhow!("no {} named `{name}` is registered (known: {})", kind.name(), self.names(kind).join(", ")))
    }

    /// Builds a regularizer from a validated pipeline.
    pub fn build_regularizer(&self, spec: &PipelineSpec) -> Result<Regularizer> {
        let ctx = |s: &StageSpec| format!("building {} `{}`", s.kind.name(), s.name);
        let proxy = factory!(self, Proxy, &spec.proxy.name)(&spec.proxy.args).with_context(|| ctx(&spec.proxy))?;
        let aggregation =
            factory!(self, Aggregation, &spec.aggregation.name)(&spec.aggregation.args).with_context(|| ctx(&spec.aggregation))?;
        let shrinkage = factory!(self, Shrinkage, &spec.shrinkage.name)(&spec.shrinkage.args).with_context(|| ctx(&spec.shrinkage))?;
        Ok(Regularizer { proxy, aggregation, shrinkage, normalize: spec.normalize, weight: spec.weight, two_pass: None, chunk: None })
    }

    /// Builds a model with weights drawn from `rng`. A model with a [`Measure`] (every built-in)
    /// is measured first: one too large to build, or whose weights and gradients alone would not
    /// fit in the memory available, is refused before anything is allocated.
    pub fn build_model(
        &self,
        spec: &StageSpec,
        input_shape: &[usize],
        classes: usize,
        rng: &mut Rng,
        dtype: DType,
        device: &Device,
    ) -> Result<Box<dyn Model>> {
        let entry = self.entry(Kind::Model, &spec.name)?;
        if let Some(Measure::Model { check, params }) = &entry.measure {
            let data = DataShape { name: "the data".into(), input: input_shape.to_vec(), classes };
            check(&spec.args, Some(&data)).map_err(|p| anyhow!("model `{}`: {p}", spec.name))?;
            if let (Some(n), true) = (params(&spec.args, Some(&data)), device.is_cpu()) {
                fits_in_memory(&spec.name, n, dtype)?;
            }
        }
        factory!(self, Model, &spec.name)(ModelRequest { input_shape, classes, args: &spec.args, rng, dtype, device })
            .with_context(|| format!("building model `{}` for inputs {input_shape:?} and {classes} classes", spec.name))
    }

    /// Builds the optimizer of `train.optimizer` for `params`.
    pub fn build_optimizer(
        &self,
        opt: &Optimizer,
        params: &ParamStore,
        lr: f64,
        momentum: f64,
        weight_decay: f64,
    ) -> Result<Box<dyn Optimize>> {
        let spec = opt.stage();
        factory!(self, Optimizer, &spec.name)(OptimizerRequest { args: &spec.args, params, lr, momentum, weight_decay })
            .with_context(|| format!("building optimizer `{spec}`"))
    }

    /// Builds a learning-rate schedule (`train.schedule`).
    pub fn build_schedule(&self, schedule: &Schedule) -> Result<Arc<dyn LrSchedule>> {
        let spec = schedule.stage();
        factory!(self, Schedule, &spec.name)(&spec.args).with_context(|| format!("building schedule `{spec}`"))
    }

    /// Builds a classification loss (`train.loss`).
    pub fn build_loss(&self, loss: &Loss) -> Result<Arc<dyn ClassLoss>> {
        let spec = loss.stage();
        factory!(self, Loss, &spec.name)(&spec.args).with_context(|| format!("building loss `{spec}`"))
    }

    /// Builds the attacks of a list such as `deepfool, fmn(steps=200), apgd` for `norm`; `origin`
    /// names the list in errors (`--attacks`, `eval.attacks`). Labels are unique across the list.
    pub fn build_attacks(&self, origin: &str, list: &str, norm: Norm) -> Result<Vec<Box<dyn Attack>>> {
        let calls = crate::dsl::parse_attacks(origin, list, self).map_err(|d| anyhow!("{d}"))?;
        let mut out: Vec<Box<dyn Attack>> = Vec::new();
        for c in &calls {
            let built = factory!(self, Attack, &c.spec.name)(AttackRequest { args: &c.spec.args, norm, label: &c.label })
                .map_err(|e| anyhow!("{origin}: {e:#}"))?;
            for a in built {
                if out.iter().any(|b| b.label() == a.label()) {
                    bail!("{origin}: attack `{}` appears twice in the list", a.label());
                }
                out.push(a);
            }
        }
        Ok(out)
    }

    /// Loads a registered dataset.
    pub fn load_dataset(&self, name: &str, path: Option<&Path>) -> Result<Dataset> {
        factory!(self, Dataset, name)(path)
    }
}

/// `MemAvailable` of /proc/meminfo in bytes; `None` where there is none (not Linux).
fn available_memory() -> Option<u128> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u128 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Refuses a model of `params` parameters whose weights and gradients (a lower bound of what
/// training needs) exceed the memory available now: the allocation would abort the process.
fn fits_in_memory(name: &str, params: u128, dtype: DType) -> Result<()> {
    let needed = params.saturating_mul(2 * dtype.size_in_bytes() as u128);
    match available_memory() {
        Some(available) if needed > available => {
            let gib = |b: u128| format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64);
            bail!(
                "model `{name}` has {params} parameters: its {dtype:?} weights and gradients alone need {}, more than the {} of memory \
                 available; use a smaller model",
                gib(needed),
                gib(available)
            )
        }
        _ => Ok(()),
    }
}

impl Catalog for Registry {
    fn data_shape(&self, name: &str) -> Option<DataShape> {
        match &self.find(Kind::Dataset, name)?.measure {
            Some(Measure::Dataset(shape)) => Some(shape.clone()),
            _ => None,
        }
    }
    fn check_model(&self, model: &StageSpec, data: Option<&DataShape>) -> std::result::Result<(), ModelProblem> {
        match self.find(Kind::Model, &model.name).and_then(|e| e.measure.as_ref()) {
            Some(Measure::Model { check, .. }) => check(&model.args, data),
            _ => Ok(()),
        }
    }
    fn schema(&self, kind: Kind, name: &str) -> Option<&Schema> {
        self.find(kind, name).map(|e| &e.schema)
    }
    fn names(&self, kind: Kind) -> Vec<String> {
        self.entries.iter().filter(|e| e.schema.kind == kind).map(|e| e.schema.name.clone()).collect()
    }
    fn kind_of(&self, name: &str) -> Vec<Kind> {
        let mut k: Vec<Kind> = self.entries.iter().filter(|e| e.schema.name == name).map(|e| e.schema.kind).collect();
        k.sort();
        k.dedup();
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_beyond_the_available_memory_are_refused() {
        assert!(fits_in_memory("m", 1000, DType::F32).is_ok());
        if let Some(available) = available_memory() {
            let err = fits_in_memory("m", available, DType::F64).unwrap_err().to_string();
            assert!(err.contains("weights and gradients alone need"), "{err}");
        }
    }
}
