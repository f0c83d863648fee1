//! Shrinkage: how a sample's ρ becomes a loss term (DESIGN.md §1.2).
//!
//! | shrinkage | correct samples | misclassified samples |
//! |---|---|---|
//! | `lin(c, d)` | `−c·ρ` | `d·ρ` |
//! | `exp(c, d)` | `exp(−c·ρ)` | `exp(d·ρ)` |
//! | `inv(c, d)` | `1 / (1 + c·ρ)` | `1 / (1 − d·ρ)` |
//! | `hinge(γ)` | `max(0, γ − ρ)` | `max(0, γ + ρ)` |
//!
//! The regularizer multiplies by λ and truncates each term at `±clip` (by default 50 for `exp`
//! and `inv`, as the authors; never for `lin` and `hinge`); whether the clip is
//! active is decided on the host from [`Shrinkage::value`], and clipped terms are constants
//! (zero gradient) that never evaluate the function, so `exp(d·ρ)` cannot overflow.
use candle_core::{Result, Tensor};

pub trait Shrinkage: Send + Sync {
    /// The term for one sample, on the host; `+∞` where the function has no finite value
    /// (`inv` at `d·ρ ≥ 1`).
    fn value(&self, rho: f64, correct: bool) -> f64;
    /// The term for each entry of `rho`, all correct or all misclassified samples.
    fn apply(&self, rho: &Tensor, correct: bool) -> Result<Tensor>;
    /// The truncation threshold of λ·term.
    fn clip(&self) -> f64;
    fn describe(&self) -> String;
}

/// A clip threshold as the spec language writes it (`none` for no truncation).
fn clip_name(clip: f64) -> String {
    if clip.is_finite() {
        clip.to_string()
    } else {
        "none".into()
    }
}

/// `lin`, `exp` and `inv`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shape {
    Lin,
    Exp,
    Inv,
}

/// A two-sided shrinkage with coefficients `c` (correct samples) and `d` (misclassified).
#[derive(Clone, Debug, PartialEq)]
pub struct TwoSided {
    pub shape: Shape,
    pub c: f64,
    pub d: f64,
    pub clip: f64,
}

impl Shrinkage for TwoSided {
    fn value(&self, rho: f64, correct: bool) -> f64 {
        let (c, d) = (self.c, self.d);
        match (self.shape, correct) {
            (Shape::Lin, true) => -c * rho,
            (Shape::Lin, false) => d * rho,
            (Shape::Exp, true) => (-c * rho).exp(),
            (Shape::Exp, false) => (d * rho).exp(),
            (Shape::Inv, true) => 1.0 / (1.0 + c * rho),
            (Shape::Inv, false) if d * rho >= 1.0 => f64::INFINITY,
            (Shape::Inv, false) => 1.0 / (1.0 - d * rho),
        }
    }
    fn apply(&self, rho: &Tensor, correct: bool) -> Result<Tensor> {
        let (c, d) = (self.c, self.d);
        match (self.shape, correct) {
            (Shape::Lin, true) => rho * (-c),
            (Shape::Lin, false) => rho * d,
            (Shape::Exp, true) => (rho * (-c))?.exp(),
            (Shape::Exp, false) => (rho * d)?.exp(),
            (Shape::Inv, true) => ((rho * c)? + 1.0)?.recip(),
            (Shape::Inv, false) => ((rho * (-d))? + 1.0)?.recip(),
        }
    }
    fn clip(&self) -> f64 {
        self.clip
    }
    fn describe(&self) -> String {
        let name = match self.shape {
            Shape::Lin => "lin",
            Shape::Exp => "exp",
            Shape::Inv => "inv",
        };
        format!("{name}(c={}, d={}, clip={})", self.c, self.d, clip_name(self.clip))
    }
}

/// `hinge(γ)`: the Elsayed-style baseline.
#[derive(Clone, Debug, PartialEq)]
pub struct Hinge {
    pub gamma: f64,
    pub clip: f64,
}

impl Shrinkage for Hinge {
    fn value(&self, rho: f64, correct: bool) -> f64 {
        if correct {
            (self.gamma - rho).max(0.0)
        } else {
            (self.gamma + rho).max(0.0)
        }
    }
    fn apply(&self, rho: &Tensor, correct: bool) -> Result<Tensor> {
        if correct {
            ((rho * -1.0)? + self.gamma)?.relu()
        } else {
            (rho + self.gamma)?.relu()
        }
    }
    fn clip(&self) -> f64 {
        self.clip
    }
    fn describe(&self) -> String {
        format!("hinge(gamma={}, clip={})", self.gamma, clip_name(self.clip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn all() -> Vec<Box<dyn Shrinkage>> {
        let mk = |shape| Box::new(TwoSided { shape, c: 2.0, d: 0.7, clip: 50.0 }) as Box<dyn Shrinkage>;
        vec![mk(Shape::Lin), mk(Shape::Exp), mk(Shape::Inv), Box::new(Hinge { gamma: 1.3, clip: 50.0 })]
    }

    /// Each shrinkage's autograd derivative against central differences of its host value.
    #[test]
    fn derivative_matches_finite_differences() {
        for s in all() {
            for &correct in &[true, false] {
                for &rho in &[0.05, 0.4, 1.1] {
                    if !correct && s.value(rho + 1e-3, false).is_infinite() {
                        continue;
                    }
                    let v = Var::new(&[rho], &Device::Cpu).unwrap();
                    let t = s.apply(v.as_tensor(), correct).unwrap().sum_all().unwrap();
                    let got = t.to_scalar::<f64>().unwrap();
                    assert!((got - s.value(rho, correct)).abs() < 1e-12, "{} value", s.describe());
                    let g = t.backward().unwrap();
                    let ad = g.get(v.as_tensor()).unwrap().to_vec1::<f64>().unwrap()[0];
                    let h = 1e-6;
                    let fd = (s.value(rho + h, correct) - s.value(rho - h, correct)) / (2.0 * h);
                    assert!((ad - fd).abs() <= 1e-7 * fd.abs().max(1.0), "{} correct={correct} rho={rho}: {ad} vs {fd}", s.describe());
                }
            }
        }
    }

    /// Values worked out by hand at ρ = 0.4 with c = 2, d = 0.7 (γ = 1.3): a wrong sign, swapped
    /// coefficients or a wrong divisor change them.
    #[test]
    fn values_match_hand_computations() {
        let two = |shape| TwoSided { shape, c: 2.0, d: 0.7, clip: 50.0 };
        let cases: [(&dyn Shrinkage, f64, f64); 4] = [
            (&two(Shape::Lin), -0.8, 0.28),                                     // −c·ρ, d·ρ
            (&two(Shape::Exp), 0.449_328_964_117_221_6, 1.323_129_812_337_437), // e^(−0.8), e^(0.28)
            (&two(Shape::Inv), 1.0 / 1.8, 1.0 / 0.72),                          // 1/(1 + 0.8), 1/(1 − 0.28)
            (&Hinge { gamma: 1.3, clip: 50.0 }, 0.9, 1.7),                      // 1.3 − 0.4, 1.3 + 0.4
        ];
        for (s, correct, wrong) in cases {
            assert!((s.value(0.4, true) - correct).abs() < 1e-15, "{}: {}", s.describe(), s.value(0.4, true));
            assert!((s.value(0.4, false) - wrong).abs() < 1e-15, "{}: {}", s.describe(), s.value(0.4, false));
            let t = Tensor::new(&[0.4f64], &candle_core::Device::Cpu).unwrap();
            let (a, b) =
                (s.apply(&t, true).unwrap().to_vec1::<f64>().unwrap()[0], s.apply(&t, false).unwrap().to_vec1::<f64>().unwrap()[0]);
            assert!((a - correct).abs() < 1e-15 && (b - wrong).abs() < 1e-15, "{}: graph values {a}, {b}", s.describe());
        }
        // Beyond its pole inv is infinite, and the hinge is 0 past γ.
        assert!(two(Shape::Inv).value(1.5, false).is_infinite());
        assert_eq!(Hinge { gamma: 1.3, clip: 50.0 }.value(2.0, true), 0.0);
    }

    #[test]
    fn inv_is_infinite_past_its_pole() {
        let s = TwoSided { shape: Shape::Inv, c: 1.0, d: 2.0, clip: 50.0 };
        assert!(s.value(0.5, false).is_infinite());
        assert!(s.value(0.7, false).is_infinite());
        assert!((s.value(0.25, false) - 2.0).abs() < 1e-12);
    }
}
