//! The results library: what `amm report` (and a grid's summary plot) make of runs already
//! written. Commands call it; it never calls a command (the registry comes in as a parameter).
//!
//! - [`runs`]: the run folders under a directory and what became of each (`Cell`, `Status`);
//! - [`settings`]: a run's settings as short text (`deepfool(l2) |> min |> exp`) and their order;
//! - [`report`]: the cells grouped into configurations (`Config`, `Report`) and their labels;
//! - [`metrics`]: which metrics exist, how each is shown, mean ± std;
//! - [`table`]: the table in Markdown, CSV or LaTeX;
//! - [`plot`]: the report's figures, drawn by [`lines`] and [`boundaries`] (which reloads 2-D
//!   data through [`linear2d`]) on the common [`figure`] frame, with the bundled [`font`] and
//!   the [`png`] text backend.
pub mod boundaries;
pub mod figure;
pub mod font;
pub mod linear2d;
pub mod lines;
pub mod metrics;
pub mod plot;
pub mod png;
pub mod report;
pub mod runs;
pub mod settings;
pub mod table;
