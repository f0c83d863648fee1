//! The keys of an experiment file: their sections, documentation and types, and resolving a
//! written key (with did-you-mean).

use super::files::MAX_THREADS;

use crate::ast::clip;
use crate::diagnostic::{Problem, Span};
use crate::schema::ParamType;
use crate::suggest::did_you_mean;

/// One documented key of an experiment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyDoc {
    /// `section.key`.
    pub key: &'static str,
    /// The accepted values, in words.
    pub ty: &'static str,
    /// The default, as source text (or in words).
    pub default: &'static str,
    /// One line.
    pub doc: &'static str,
}

/// The sections of an experiment file, in order.
pub const SECTIONS: &[&str] = &["experiment", "data", "model", "train", "reg", "eval"];

pub(super) const fn key(key: &'static str, ty: &'static str, default: &'static str, doc: &'static str) -> KeyDoc {
    KeyDoc { key, ty, default, doc }
}

/// Every key of an experiment file, in section order (the CLI prints and documents them).
pub const KEYS: &[KeyDoc] = &[
    key("experiment.name", "a string", "the file name without extension", "name of the experiment"),
    key("experiment.out", "a string", "runs/<name>", "output folder; each grid cell gets a sub-folder"),
    key("experiment.seeds", "a list of integers >= 0", "[0]", "random seeds: every cell runs once per seed"),
    key("data.name", "a dataset (digits, fashion-mnist, mnist, cifar10, cifar100, svhn, csv, toy2d)", "digits", "the dataset"),
    key("data.path", "a string", "none (the dataset's standard place)", "folder or file of the dataset"),
    key("data.train_size", "an integer >= 1, or all", "all", "training images used"),
    key("data.test_size", "an integer >= 1, or all", "all", "test images used"),
    key("data.label_noise", "a number in [0, 1)", "0", "fraction of training labels replaced by random labels"),
    key("data.val_size", "an integer >= 0", "0", "training images held out for validation"),
    key("data.mean_subtract", "true or false", "true", "subtract the per-pixel training mean"),
    key("data.crop", "an integer >= 0", "0", "padding in pixels of the random-crop augmentation (0 = off)"),
    key("data.flip", "true or false", "false", "random horizontal flips"),
    key("model.arch", "a model, e.g. mlp(widths=[256, 256])", "mlp", "the network architecture"),
    key("train.epochs", "an integer >= 1", "10", "training epochs"),
    key("train.batch", "an integer >= 1", "100", "mini-batch size"),
    key("train.optimizer", "an optimizer: sgd, adam, or a plugin's", "sgd", "the optimizer"),
    key("train.lr", "a number > 0", "0.01", "initial learning rate"),
    key(
        "train.schedule",
        "a schedule: constant, step(milestones=[50, 80], gamma=0.1), cosine, or a plugin's",
        "constant",
        "learning-rate schedule",
    ),
    key("train.momentum", "a number in [0, 1)", "0.9", "SGD momentum"),
    key("train.weight_decay", "a number >= 0", "1e-4", "weight decay"),
    key("train.clip", "a number >= 0", "10", "global gradient-norm clip (0 = off)"),
    key("train.loss", "a loss: ce, hinge, none, or a plugin's", "ce", "classification loss"),
    key("train.dtype", "one of f32, f64", "f32", "floating-point precision"),
    key("train.threads", "an integer in [0, 1024]", "0", "CPU threads (0 = all cores)"),
    key(
        "train.init",
        "a string: a run directory, a checkpoint or exported weights.safetensors",
        "none (the seeded initialisation)",
        "weights to start from (fine-tuning); the optimizer starts fresh",
    ),
    key("reg.pipeline", "a pipeline, e.g. deepfool(l2, 5) |> min(class, 0.2) |> exp(2, 1) |> weight(32)", "none", "the regularizer"),
    key("eval.iters", "an integer >= 1", "5", "DeepFool iterations of the reported margin"),
    key("eval.overshoot", "a number >= 0", "0.02", "per-step overshoot of that attack"),
    key("eval.long_iters", "an integer >= 0", "50", "iterations of a longer, tighter attack (0 = skip)"),
    key("eval.every", "an integer >= 1", "1", "evaluate every N epochs"),
    key("eval.samples", "an integer >= 0", "0", "test images evaluated (0 = the whole test set)"),
    key(
        "eval.attacks",
        "attacks as in `amm eval --attacks`: a string \"fmn, apgd(restarts=2)\" or a list [fmn, apgd]",
        "\"\"",
        "robustness attacks run on the final model (empty: none); their metrics go to result.json",
    ),
    key("eval.norm", "one of l2, linf, l1", "l2", "the norm of those attacks"),
    key("eval.eps", "a string of numbers, e.g. \"0.5,1,2\"", "\"\"", "budgets for robust accuracy (empty: the norm's usual values)"),
    key(
        "eval.train_margin",
        "true or false",
        "false",
        "also measure the final margin on the training set (train_margin, train_margin_min in result.json)",
    ),
    key(
        "eval.batch",
        "an integer >= 1",
        "500",
        "samples per evaluation batch (margin, validation error, attacks): lower it when a large CNN's evaluation runs out of memory",
    ),
];

/// How a key's value is checked.
pub(super) enum KeyType {
    Param(ParamType),
    OptStr,
    OptSize,
    Seeds,
    Dataset,
    Model,
    Schedule,
    Pipeline,
    Attacks,
    Loss,
    Optimizer,
}

pub(super) fn key_type(key: &str) -> KeyType {
    use ParamType as P;
    let int = P::int_min;
    KeyType::Param(match key {
        "experiment.name" | "experiment.out" | "eval.eps" => P::Str,
        "eval.attacks" => return KeyType::Attacks,
        "eval.norm" => P::choice(&["l2", "linf", "l1"]),
        "experiment.seeds" => return KeyType::Seeds,
        "data.name" => return KeyType::Dataset,
        "data.path" | "train.init" => return KeyType::OptStr,
        "data.train_size" | "data.test_size" => return KeyType::OptSize,
        "data.label_noise" | "train.momentum" => P::float_in(0.0, false, 1.0, true),
        "data.val_size" | "data.crop" | "eval.long_iters" | "eval.samples" => int(0),
        "train.threads" => P::Int { min: Some(0), max: Some(MAX_THREADS as i64) },
        "data.mean_subtract" | "data.flip" | "eval.train_margin" => P::Bool,
        "model.arch" => return KeyType::Model,
        "train.epochs" | "train.batch" | "eval.iters" | "eval.every" | "eval.batch" => int(1),
        "train.optimizer" => return KeyType::Optimizer,
        "train.lr" => P::float_min(0.0, true),
        "train.schedule" => return KeyType::Schedule,
        "train.weight_decay" | "train.clip" | "eval.overshoot" => P::float_min(0.0, false),
        "train.loss" => return KeyType::Loss,
        "train.dtype" => P::choice(&["f32", "f64"]),
        "reg.pipeline" => return KeyType::Pipeline,
        other => unreachable!("key_type is total over KEYS, not {other}"),
    })
}

pub(super) fn find_key(full: &str) -> Option<&'static str> {
    KEYS.iter().map(|k| k.key).find(|k| *k == full)
}

pub(super) fn keys_of(section: &str) -> Vec<&'static str> {
    KEYS.iter().filter_map(|k| k.key.strip_prefix(section)?.strip_prefix('.')).collect()
}

/// Resolves a key as written (`lr` under `[train]`, or `train.lr`) to its full name.
pub(super) fn resolve_key(section: Option<&str>, written: &str, span: Span) -> Result<&'static str, Problem> {
    let (sec, name, sec_span) = match written.split_once('.') {
        Some((s, k)) => (s, k, Span::new(span.start, span.start + s.len())),
        None => match section {
            Some(s) => (s, written, span),
            None => {
                let homes: Vec<&str> =
                    KEYS.iter().filter(|k| k.key.split_once('.').is_some_and(|(_, n)| n == written)).map(|k| k.key).collect();
                let help = match homes.first() {
                    Some(full) => {
                        let (s, _) = full.split_once('.').expect("keys are dotted");
                        format!("put it under [{s}], or write `{full}`")
                    }
                    None => format!("keys are written under a [section] or as section.key; sections: {}", SECTIONS.join(", ")),
                };
                return Err(Problem::new(span, format!("key `{}` is outside a section", clip(written))).with_help(help));
            }
        },
    };
    if !SECTIONS.contains(&sec) {
        return Err(unknown_section(sec, sec_span));
    }
    if let Some(full) = find_key(&format!("{sec}.{name}")) {
        return Ok(full);
    }
    let keys = keys_of(sec);
    let elsewhere = KEYS
        .iter()
        .find(|k| k.key.split_once('.').is_some_and(|(_, n)| n == name))
        .map(|k| format!("`{name}` belongs to [{}]: write `{}`; ", &k.key[..k.key.len() - name.len() - 1], k.key))
        .unwrap_or_default();
    Err(Problem::new(span, format!("unknown key `{}` in [{sec}]", clip(name))).with_help(format!(
        "{elsewhere}{}(keys of [{sec}]: {})",
        did_you_mean(name, keys.iter().copied()),
        keys.join(", ")
    )))
}

pub(super) fn unknown_section(name: &str, span: Span) -> Problem {
    Problem::new(span, format!("unknown section `{}`", clip(name))).with_help(format!(
        "{}(sections: {})",
        did_you_mean(name, SECTIONS.iter().copied()),
        SECTIONS.join(", ")
    ))
}
