//! Learning-rate schedules: the factor of the base rate at each epoch. Built-ins and plugins
//! register them like every other stage (`train.schedule = step(milestones=[50, 80], gamma=0.1)`).
use crate::dsl::{Args, Kind, ParamSpec, ParamType, Schema, Value};
use crate::registry::{Factory, Registry};
use anyhow::{anyhow, Result};
use std::sync::Arc;

/// A learning-rate schedule.
pub trait LrSchedule: Send + Sync {
    /// The factor of the base rate in `epoch` (0-based) of `epochs`.
    fn factor(&self, epoch: usize, epochs: usize) -> f64;
}

/// The same rate throughout.
struct Constant;
impl LrSchedule for Constant {
    fn factor(&self, _: usize, _: usize) -> f64 {
        1.0
    }
}

/// Multiplied by `gamma` at each milestone epoch.
struct StepDecay {
    milestones: Vec<usize>,
    gamma: f64,
}
impl LrSchedule for StepDecay {
    fn factor(&self, epoch: usize, _: usize) -> f64 {
        self.gamma.powi(self.milestones.iter().filter(|&&m| epoch >= m).count() as i32)
    }
}

/// Cosine annealing from 1 towards 0 over the epochs.
struct Cosine;
impl LrSchedule for Cosine {
    fn factor(&self, epoch: usize, epochs: usize) -> f64 {
        0.5 * (1.0 + (std::f64::consts::PI * epoch as f64 / epochs.max(1) as f64).cos())
    }
}

fn built<S: LrSchedule + 'static>(s: S) -> Result<Arc<dyn LrSchedule>> {
    Ok(Arc::new(s))
}

/// Registers `constant`, `step` and `cosine`.
pub fn register(r: &mut Registry) -> Result<()> {
    let origin = crate::builtins::ORIGIN;
    r.register(
        Schema::new(Kind::Schedule, "constant", vec![], "the same learning rate throughout"),
        Factory::Schedule(Arc::new(|_: &Args| built(Constant))),
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
            built(StepDecay { milestones, gamma: a.f64("gamma").map_err(|e| anyhow!(e))? })
        })),
        origin,
    )?;
    r.register(
        Schema::new(Kind::Schedule, "cosine", vec![], "cosine annealing from the base rate towards 0 over the epochs"),
        Factory::Schedule(Arc::new(|_: &Args| built(Cosine))),
        origin,
    )
}

#[cfg(test)]
mod tests {
    use crate::dsl::Schedule;
    use crate::registry::Registry;

    #[test]
    fn step_schedule_decays_at_milestones_and_cosine_halves_midway() {
        let reg = Registry::with_builtins();
        let s = reg.build_schedule(&Schedule::Step { milestones: vec![50, 80], gamma: 0.1 }).unwrap();
        assert_eq!(s.factor(49, 100), 1.0);
        assert!((s.factor(50, 100) - 0.1).abs() < 1e-15);
        assert!((s.factor(80, 100) - 0.01).abs() < 1e-15);
        assert!((reg.build_schedule(&Schedule::Cosine).unwrap().factor(50, 100) - 0.5).abs() < 1e-12);
        assert_eq!(reg.build_schedule(&Schedule::Constant).unwrap().factor(99, 100), 1.0);
    }
}
