//! Model sizes: the limits a model must stay within to be built, and overflow-free arithmetic
//! to count its parameters before anything is allocated.
//!
//! A model's arguments are checked against its schema by [`validate`](crate::validate); whether
//! the model they describe fits in memory is a question only the catalog can answer (it knows
//! the architecture). [`Catalog::check_model`](crate::Catalog::check_model) answers it with the
//! helpers here, so `amm check` refuses `mlp(widths=[9223372036854775807])` at the width, and
//! `mlp(widths=[100000000])` for 8×8 digits at the model, instead of `amm train` aborting on a
//! capacity overflow or a 40 GB allocation.
//!
//! Counts are `u128` with saturating arithmetic: three `usize` dimensions or a few `i64` widths
//! multiplied together cannot wrap around to a small number, they stick at `u128::MAX`.

/// The most trainable parameters a model may have: 2^31, 8 GiB of f32 weights before
/// gradients and optimizer state (the paper's largest network has 0.3 million).
pub const MAX_MODEL_PARAMS: u128 = 1 << 31;

/// The widest layer a size argument (`mlp(widths=[...])`) may ask for.
pub const MAX_LAYER_WIDTH: i64 = 1_000_000;

/// The samples of a dataset, as far as a model's size depends on them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataShape {
    /// The dataset's name, for messages (`digits`).
    pub name: String,
    /// Per-sample input shape: `[C, H, W]` for images, `[D]` for feature vectors.
    pub input: Vec<usize>,
    /// Number of classes.
    pub classes: usize,
}

impl DataShape {
    /// `digits (inputs 1x8x8, 10 classes)`.
    pub fn describe(&self) -> String {
        let dims: Vec<String> = self.input.iter().map(|d| d.to_string()).collect();
        format!("{} (inputs {}, {} classes)", self.name, dims.join("x"), self.classes)
    }

    /// Features per sample, saturating.
    pub fn features(&self) -> u128 {
        self.input.iter().fold(1u128, |n, &d| n.saturating_mul(d as u128))
    }
}

/// Why a model is refused before it is built, and where: an argument (and an element of a
/// list argument), or the model as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelProblem {
    /// What is wrong, one line.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
    /// The parameter at fault (`widths`) and, for a list, the index of the element; `None`
    /// points at the whole model.
    pub arg: Option<(String, Option<usize>)>,
}

impl std::fmt::Display for ModelProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        if let Some(h) = &self.help {
            write!(f, " ({h})")?;
        }
        Ok(())
    }
}

/// Weights and biases of a dense layer from `i` to `o` features.
pub fn dense(i: u128, o: u128) -> u128 {
    i.saturating_mul(o).saturating_add(o)
}

/// Weights (and biases) of a `k`×`k` convolution from `i` to `o` channels.
pub fn conv(i: u128, o: u128, k: u128, bias: bool) -> u128 {
    o.saturating_mul(i).saturating_mul(k.saturating_mul(k)).saturating_add(if bias { o } else { 0 })
}

/// Checks every element of a list of layer sizes (`param` is its name, `widths`): an integer
/// from 1 to [`MAX_LAYER_WIDTH`]. The error points at the element.
pub fn check_widths(param: &str, widths: &[i64]) -> Result<(), ModelProblem> {
    for (i, &w) in widths.iter().enumerate() {
        let message = if w < 1 {
            format!("a layer width of {w}")
        } else if w > MAX_LAYER_WIDTH {
            format!("a layer width of {w}, more than {MAX_LAYER_WIDTH}")
        } else {
            continue;
        };
        return Err(ModelProblem {
            message,
            help: Some(format!("each of `{param}` is a number of units, from 1 to {MAX_LAYER_WIDTH}")),
            arg: Some((param.to_string(), Some(i))),
        });
    }
    Ok(())
}

/// Refuses a model of `count` trainable parameters above [`MAX_MODEL_PARAMS`]. `data` is the
/// dataset it was counted for; `None` means the count is a lower bound (the dataset's shape is
/// only known once its files are read).
pub fn check_count(count: u128, data: Option<&DataShape>) -> Result<(), ModelProblem> {
    if count <= MAX_MODEL_PARAMS {
        return Ok(());
    }
    let n = if count == u128::MAX { format!("more than {}", u128::MAX) } else { count.to_string() };
    let message = match data {
        Some(d) => format!("the model has {n} trainable parameters for {}, more than {MAX_MODEL_PARAMS}", d.describe()),
        None => format!("the model has at least {n} trainable parameters, more than {MAX_MODEL_PARAMS}"),
    };
    Err(ModelProblem {
        message,
        help: Some(format!(
            "amm builds models of at most {MAX_MODEL_PARAMS} parameters (8 GiB of f32 weights, before gradients and \
             optimizer state); use fewer or narrower layers"
        )),
        arg: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(dense(64, 10), 650);
        assert_eq!(conv(1, 20, 5, true), 520);
        assert_eq!(conv(16, 32, 3, false), 4608);
        assert_eq!(dense(u128::MAX / 2, 3), u128::MAX);
        let huge = DataShape { name: "x".into(), input: vec![usize::MAX; 3], classes: 2 };
        assert_eq!(huge.features(), u128::MAX);
    }

    #[test]
    fn widths_and_counts() {
        assert_eq!(check_widths("widths", &[800, 800]), Ok(()));
        let p = check_widths("widths", &[800, i64::MAX]).unwrap_err();
        assert_eq!(p.arg, Some(("widths".into(), Some(1))));
        assert_eq!(p.message, "a layer width of 9223372036854775807, more than 1000000");
        assert_eq!(check_widths("widths", &[0]).unwrap_err().message, "a layer width of 0");
        assert_eq!(check_count(MAX_MODEL_PARAMS, None), Ok(()));
        let digits = DataShape { name: "digits".into(), input: vec![1, 8, 8], classes: 10 };
        let p = check_count(MAX_MODEL_PARAMS + 1, Some(&digits)).unwrap_err();
        assert_eq!(p.message, "the model has 2147483649 trainable parameters for digits (inputs 1x8x8, 10 classes), more than 2147483648");
        assert_eq!(p.arg, None);
        assert!(check_count(u128::MAX, None).unwrap_err().message.contains("more than 340282366920938463463374607431768211455"));
    }
}
