//! Learning-rate schedules: the factor of the base rate at each epoch. Built-ins and plugins
//! register them like every other stage (`train.schedule = step(milestones=[50, 80], gamma=0.1)`).

/// A learning-rate schedule.
pub trait LrSchedule: Send + Sync {
    /// The factor of the base rate in `epoch` (0-based) of `epochs`.
    fn factor(&self, epoch: usize, epochs: usize) -> f64;
}

/// The same rate throughout.
pub(crate) struct Constant;
impl LrSchedule for Constant {
    fn factor(&self, _: usize, _: usize) -> f64 {
        1.0
    }
}

/// Multiplied by `gamma` at each milestone epoch.
pub(crate) struct StepDecay {
    pub(crate) milestones: Vec<usize>,
    pub(crate) gamma: f64,
}
impl LrSchedule for StepDecay {
    fn factor(&self, epoch: usize, _: usize) -> f64 {
        self.gamma.powi(self.milestones.iter().filter(|&&m| epoch >= m).count() as i32)
    }
}

/// Cosine annealing from 1 towards 0 over the epochs.
pub(crate) struct Cosine;
impl LrSchedule for Cosine {
    fn factor(&self, epoch: usize, epochs: usize) -> f64 {
        0.5 * (1.0 + (std::f64::consts::PI * epoch as f64 / epochs.max(1) as f64).cos())
    }
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
