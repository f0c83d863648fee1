//! The strided matrix view the GEMMs take: a leaf module, so that the checked GEMM (`gemm.rs`)
//! and the AVX-512 kernel it dispatches to (`avx512.rs`) both depend on it and neither on the
//! other's types (dependencies go one way: `mat` ← `avx512` ← `gemm`).
use candle_core::Result;

/// A strided view of a matrix: element `(r, c)` is `data[r * rs + c * cs]`.
#[derive(Clone, Copy)]
pub(super) struct Mat<'a, T> {
    pub data: &'a [T],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a, T> Mat<'a, T> {
    /// A row-major `rows × cols` matrix.
    pub fn new(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self { data, rows, cols, rs: cols, cs: 1 }
    }
    /// The 2-D view a candle layout describes (any strides: transposes stay views).
    pub fn of(data: &'a [T], l: &candle_core::Layout) -> Result<Self> {
        let (rows, cols) = l.shape().dims2()?;
        let (rs, cs) = (l.stride()[0], l.stride()[1]);
        let view = Self { data: data.get(l.start_offset()..).unwrap_or(&[]), rows, cols, rs, cs };
        if !view.fits() {
            candle_core::bail!("gemm: a ({rows}×{cols}) layout with strides ({rs}, {cs}) does not fit its storage");
        }
        Ok(view)
    }
    /// The transpose, as a view.
    pub fn t(self) -> Self {
        Self { rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs, ..self }
    }
    /// Whether every element `(r, c)` of the view indexes into `data`, and both strides fit an
    /// `isize` (the `gemm` crate takes them as such). The offset of the last element is computed
    /// with checked arithmetic, so strides that would overflow it are refused rather than
    /// wrapped around to a small, in-bounds-looking offset.
    pub fn fits(&self) -> bool {
        if self.rows == 0 || self.cols == 0 {
            return true;
        }
        let strides_fit = isize::try_from(self.rs).is_ok() && isize::try_from(self.cs).is_ok();
        let last = (self.rows - 1).checked_mul(self.rs).and_then(|r| r.checked_add((self.cols - 1).checked_mul(self.cs)?));
        strides_fit && last.is_some_and(|last| last < self.data.len())
    }
}
