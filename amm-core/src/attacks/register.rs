//! The built-in evaluation attacks as registry entries: their parameters with the published
//! defaults, and the norms each one has. Plugins add attacks the same way.

use super::{Apgd, ApgdConfig, ApgdLoss, Attack, Ddn, DdnConfig, DeepFoolAttack, DeepFoolAttackConfig, Fmn, FmnConfig};
use crate::dsl::{Args, Kind, ParamSpec, ParamType, Schema, Value};
use crate::proxy::Norm;
use crate::registry::{AttackRequest, Factory, Registry};
use anyhow::{anyhow, bail, Result};
use std::sync::Arc;

fn int(name: &str, min: i64, default: i64, doc: &str) -> ParamSpec {
    ParamSpec::optional(name, ParamType::int_min(min), Value::Int(default), doc)
}
fn positive(name: &str, default: f64, doc: &str) -> ParamSpec {
    ParamSpec::optional(name, ParamType::float_min(0.0, true), Value::Float(default), doc)
}
fn unit(name: &str, default: f64, doc: &str) -> ParamSpec {
    ParamSpec::optional(name, ParamType::float_in(0.0, false, 1.0, false), Value::Float(default), doc)
}
fn usize_of(a: &Args, name: &str) -> Result<usize> {
    a.usize(name).map_err(|e| anyhow!(e))
}
fn f64_of(a: &Args, name: &str) -> Result<f64> {
    a.f64(name).map_err(|e| anyhow!(e))
}

/// Refuses a norm the attack does not have.
fn norms(name: &str, norm: Norm, ok: &[Norm]) -> Result<()> {
    if !ok.contains(&norm) {
        let names: Vec<&str> = ok.iter().map(|n| n.name()).collect();
        bail!("attack `{name}` does not support the {} norm (it supports: {})", norm.name(), names.join(", "));
    }
    Ok(())
}

/// One attack from one factory.
fn one(f: impl Fn(&AttackRequest) -> Result<Box<dyn Attack>> + Send + Sync + 'static) -> Factory {
    Factory::Attack(Arc::new(move |r: AttackRequest| Ok(vec![f(&r)?])))
}

/// APGD's parameters; `targets` only where APGD-T runs.
fn apgd_params(targeted: bool) -> Vec<ParamSpec> {
    let mut p = vec![
        int("iters", 1, 100, "iterations per run"),
        int("restarts", 1, 1, "runs per sample (APGD-T: per target class)"),
        unit("rho", 0.75, "oscillation threshold ρ of the step-size rule"),
        unit("momentum", 0.75, "momentum α"),
        positive("step", 2.0, "initial step as a multiple of ε"),
        int("seed", 0, 0, "seed of the random starts"),
    ];
    if targeted {
        p.insert(5, int("targets", 1, 9, "target classes of APGD-T (the top ones by the clean logits)"));
    }
    p
}

fn apgd_config(a: &Args) -> Result<ApgdConfig> {
    Ok(ApgdConfig {
        iters: usize_of(a, "iters")?,
        restarts: usize_of(a, "restarts")?,
        rho: f64_of(a, "rho")?,
        momentum: f64_of(a, "momentum")?,
        step: f64_of(a, "step")?,
        targets: if a.get("targets").is_some() { usize_of(a, "targets")? } else { ApgdConfig::default().targets },
        seed: usize_of(a, "seed")? as u64,
    })
}

/// `apgd`, `apgd-ce` or `apgd-t`: the losses it runs. A labelled `apgd(...)` gives
/// `apgd-ce(...)` and `apgd-t(...)`.
fn apgd(name: &'static str, losses: &'static [(ApgdLoss, &'static str)]) -> Factory {
    Factory::Attack(Arc::new(move |r: AttackRequest| {
        norms(name, r.norm, &[Norm::L2, Norm::Linf])?;
        let cfg = apgd_config(r.args)?;
        Ok(losses
            .iter()
            .map(|&(loss, base)| {
                let label = r.label.replacen(name, base, 1);
                Box::new(Apgd::new(label, r.norm, loss, cfg.clone())) as Box<dyn Attack>
            })
            .collect())
    }))
}

/// Registers DeepFool, FMN, DDN and APGD (`apgd` for both losses, `apgd-ce`, `apgd-t`).
pub fn register(r: &mut Registry) -> Result<()> {
    let origin = crate::builtins::ORIGIN;
    r.register(
        Schema::new(
            Kind::Attack,
            "deepfool",
            vec![
                int("iters", 1, 50, "maximum iterations (50, as the original code and foolbox)"),
                ParamSpec::optional(
                    "overshoot",
                    ParamType::float_min(0.0, false),
                    Value::Float(0.02),
                    "each step is scaled by 1 + overshoot",
                ),
                int("candidates", 0, 0, "classes considered, the top ones by the clean logits (0: all)"),
            ],
            "DeepFool (Moosavi-Dezfooli et al. 2016): minimal norm; l2, linf, l1",
        ),
        one(|r| {
            let cfg = DeepFoolAttackConfig {
                iters: usize_of(r.args, "iters")?,
                overshoot: f64_of(r.args, "overshoot")?,
                candidates: usize_of(r.args, "candidates")?,
            };
            Ok(Box::new(DeepFoolAttack::new(r.label, r.norm, cfg)))
        }),
        origin,
    )?;
    r.register(
        Schema::new(
            Kind::Attack,
            "fmn",
            vec![
                int("steps", 1, 100, "steps K (the paper uses 1000; 100 as foolbox)"),
                positive("alpha", 1.0, "initial step size α₀"),
                ParamSpec::optional(
                    "alpha_final",
                    ParamType::or_none(ParamType::float_min(0.0, true)),
                    Value::Ident("none".into()),
                    "final step size (none: alpha / 100)",
                ),
                positive("gamma", 0.05, "initial ε step γ₀"),
                positive("gamma_final", 0.001, "final ε step"),
            ],
            "Fast Minimum-Norm (Pintor et al. 2021): minimal norm; l2, linf, l1",
        ),
        one(|r| {
            norms("fmn", r.norm, &[Norm::L2, Norm::Linf, Norm::L1])?;
            let alpha = f64_of(r.args, "alpha")?;
            let alpha_final = match r.args.get("alpha_final") {
                Some(Value::Ident(s)) if s == "none" => alpha / 100.0,
                _ => f64_of(r.args, "alpha_final")?,
            };
            let cfg = FmnConfig {
                steps: usize_of(r.args, "steps")?,
                alpha,
                alpha_final,
                gamma: f64_of(r.args, "gamma")?,
                gamma_final: f64_of(r.args, "gamma_final")?,
            };
            Ok(Box::new(Fmn::new(r.label, r.norm, cfg)))
        }),
        origin,
    )?;
    r.register(
        Schema::new(
            Kind::Attack,
            "ddn",
            vec![
                int("steps", 1, 100, "steps (100 in the paper's evaluation, 1000 for its best numbers)"),
                positive("init_norm", 1.0, "initial ε"),
                unit("gamma", 0.05, "multiplicative ε step γ"),
                positive("alpha", 1.0, "initial step size α, cosine-annealed to alpha_final"),
                positive("alpha_final", 0.01, "final step size"),
            ],
            "Decoupled Direction and Norm (Rony et al. 2019): minimal norm; l2",
        ),
        one(|r| {
            norms("ddn", r.norm, &[Norm::L2])?;
            let cfg = DdnConfig {
                steps: usize_of(r.args, "steps")?,
                init_norm: f64_of(r.args, "init_norm")?,
                gamma: f64_of(r.args, "gamma")?,
                alpha: f64_of(r.args, "alpha")?,
                alpha_final: f64_of(r.args, "alpha_final")?,
            };
            Ok(Box::new(Ddn::new(r.label, cfg)))
        }),
        origin,
    )?;
    const CE: (ApgdLoss, &str) = (ApgdLoss::Ce, "apgd-ce");
    const T: (ApgdLoss, &str) = (ApgdLoss::DlrTargeted, "apgd-t");
    let apgd_doc = "(Croce & Hein 2020): robust accuracy at fixed ε; l2, linf";
    r.register(
        Schema::new(Kind::Attack, "apgd", apgd_params(true), &format!("APGD-CE and APGD-T {apgd_doc}")),
        apgd("apgd", &[CE, T]),
        origin,
    )?;
    r.register(
        Schema::new(Kind::Attack, "apgd-ce", apgd_params(false), &format!("APGD with cross-entropy {apgd_doc}")),
        apgd("apgd-ce", &[CE]),
        origin,
    )?;
    r.register(
        Schema::new(Kind::Attack, "apgd-t", apgd_params(true), &format!("APGD with targeted DLR {apgd_doc}")),
        apgd("apgd-t", &[T]),
        origin,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::proxy::Norm;
    use crate::registry::Registry;

    fn labels(list: &str, norm: Norm) -> Vec<String> {
        Registry::with_builtins().build_attacks("<t>", list, norm).unwrap().iter().map(|a| a.label().to_string()).collect()
    }
    fn error(list: &str, norm: Norm) -> String {
        Registry::with_builtins().build_attacks("<t>", list, norm).err().expect("an error").to_string()
    }

    #[test]
    fn lists_build_with_labels() {
        assert_eq!(
            labels("deepfool, fmn(steps=20, gamma=0.1),apgd", Norm::L2),
            ["deepfool", "fmn(steps=20,gamma=0.1)", "apgd-ce", "apgd-t"]
        );
        assert_eq!(labels("apgd(iters=10)", Norm::Linf), ["apgd-ce(iters=10)", "apgd-t(iters=10)"]);
        assert!(error("nope", Norm::L2).contains("unknown attack `nope`"));
        assert!(error("fmn(stepz=3)", Norm::L2).contains("has no parameter `stepz`"));
        assert!(error("ddn", Norm::Linf).contains("does not support the linf norm"));
        assert!(error("fmn,fmn", Norm::L2).contains("twice"));
        assert!(error("apgd, apgd-t", Norm::L2).contains("`apgd-t` appears twice"));
        assert!(error("apgd(restarts=0)", Norm::L2).contains("restarts"));
        // APGD-CE has no target classes to choose
        assert!(error("apgd-ce(targets=3)", Norm::L2).contains("has no parameter `targets`"));
        assert_eq!(labels("apgd-t(targets=3)", Norm::L2), ["apgd-t(targets=3)"]);
    }

    #[test]
    fn arguments_reach_the_attack() {
        let reg = Registry::with_builtins();
        let a = reg.build_attacks("<t>", "fmn(steps=7, alpha=2)", Norm::L2).unwrap();
        let d = a[0].describe();
        assert!(d.contains('7') && d.contains("0.02"), "steps 7 and alpha_final = alpha / 100 = 0.02: {d}");
    }
}
