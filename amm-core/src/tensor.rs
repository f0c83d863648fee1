//! Small tensor helpers shared by the engine.
use candle_core::{DType, Device, Result, Tensor};

/// A tensor's values as `f64` on the host (flattened).
pub fn to_host(t: &Tensor) -> Result<Vec<f64>> {
    t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()
}

/// A host vector as a tensor of `dtype` and `shape`.
pub fn from_host(v: Vec<f64>, shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
    Tensor::from_vec(v, shape, device)?.to_dtype(dtype)
}

/// Rows `(n, classes)` of `e_a − e_b` (a constant seed matrix for input VJPs).
pub fn class_diff_seeds(pairs: &[(u32, u32)], classes: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let mut v = vec![0f64; pairs.len() * classes];
    for (r, &(a, b)) in pairs.iter().enumerate() {
        v[r * classes + a as usize] += 1.0;
        v[r * classes + b as usize] -= 1.0;
    }
    from_host(v, &[pairs.len(), classes], dtype, device)
}

/// Index of the maximum of each row of a host matrix with `cols` columns.
pub fn argmax_rows(v: &[f64], cols: usize) -> Vec<u32> {
    v.chunks(cols)
        .map(|row| {
            let mut best = 0;
            for (j, &x) in row.iter().enumerate() {
                if x > row[best] {
                    best = j;
                }
            }
            best as u32
        })
        .collect()
}

/// `(m, n)` 0/1 matrix that places `m` rows at positions `pos` of an `n`-row tensor:
/// `scatter.t().matmul(rows)` is differentiable and cheap at batch sizes.
pub fn placement(pos: &[u32], n: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let mut v = vec![0f64; n * pos.len()];
    for (j, &p) in pos.iter().enumerate() {
        v[p as usize * pos.len() + j] = 1.0;
    }
    from_host(v, &[n, pos.len()], dtype, device)
}
