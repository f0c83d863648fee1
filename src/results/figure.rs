//! What every figure shares: the `Figure` trait (a size and a drawing on any backend), writing
//! one as SVG and PNG, the line colours and the legend under the panels.
use super::font::{ensure_fonts, text_width, FAMILY};
use super::png::Png;
use amm_core::anyhow::{anyhow, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};

/// Line colours (matplotlib's tab10), then plotters' palette.
pub fn color(i: usize) -> RGBColor {
    const TAB10: [(u8, u8, u8); 10] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ];
    match TAB10.get(i) {
        Some(&(r, g, b)) => RGBColor(r, g, b),
        None => {
            let c = Palette99::pick(i).to_rgba();
            RGBColor(c.0, c.1, c.2)
        }
    }
}

/// A figure that can draw itself on any plotters backend.
pub trait Figure {
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static;
}

/// Writes `STEM.svg` and `STEM.png`.
pub fn save(fig: &impl Figure, dir: &Path, stem: &str) -> Result<Vec<PathBuf>> {
    ensure_fonts();
    let svg = dir.join(format!("{stem}.svg"));
    let png = dir.join(format!("{stem}.png"));
    {
        let root = SVGBackend::new(&svg, fig.size()).into_drawing_area();
        root.fill(&WHITE)?;
        fig.draw(&root).with_context(|| format!("drawing {}", svg.display()))?;
        root.present()?;
    }
    {
        let root = Png(BitMapBackend::new(&png, fig.size())).into_drawing_area();
        root.fill(&WHITE)?;
        fig.draw(&root).with_context(|| format!("drawing {}", png.display()))?;
        root.present().map_err(|e| anyhow!("writing {}: {e}", png.display()))?;
    }
    Ok(vec![svg, png])
}

/// What a legend entry shows before its label.
#[derive(Clone, Copy)]
pub enum Mark {
    Line(RGBColor),
    Dashed(RGBColor),
    Dot(RGBColor),
}

const LEGEND_FONT: f64 = 15.0;
const LEGEND_ROW: u32 = 24;

/// Rows of legend entries that fit `width`: (entry index, x offset) per row.
fn legend_rows(labels: &[String], width: u32) -> Vec<Vec<(usize, u32)>> {
    let mut rows: Vec<Vec<(usize, u32)>> = vec![Vec::new()];
    let mut x = 0;
    for (i, l) in labels.iter().enumerate() {
        let w = 34 + text_width(l, LEGEND_FONT) + 26;
        if x > 0 && x + w > width {
            rows.push(Vec::new());
            x = 0;
        }
        rows.last_mut().expect("a row").push((i, x));
        x += w;
    }
    rows
}

pub fn legend_height(labels: &[String], width: u32) -> u32 {
    if labels.is_empty() {
        0
    } else {
        legend_rows(labels, width).len() as u32 * LEGEND_ROW + 16
    }
}

/// Draws a legend (entries flowing left to right, rows centred) in `area`.
pub fn draw_legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, entries: &[(Mark, String)]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let (w, _) = area.dim_in_pixel();
    let labels: Vec<String> = entries.iter().map(|(_, l)| l.clone()).collect();
    let style = TextStyle::from((FAMILY, LEGEND_FONT).into_font()).color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center));
    for (r, row) in legend_rows(&labels, w.saturating_sub(40)).iter().enumerate() {
        let row_w = row.last().map_or(0, |&(i, x)| x + 34 + text_width(&labels[i], LEGEND_FONT));
        let x0 = (w.saturating_sub(row_w) / 2) as i32;
        let y = 8 + (r as u32 * LEGEND_ROW + LEGEND_ROW / 2) as i32;
        for &(i, x) in row {
            let x = x0 + x as i32;
            match entries[i].0 {
                Mark::Line(c) => {
                    area.draw(&PathElement::new(vec![(x, y), (x + 26, y)], c.stroke_width(3)))?;
                }
                Mark::Dashed(c) => {
                    for k in 0..3 {
                        area.draw(&PathElement::new(vec![(x + 10 * k, y), (x + 10 * k + 6, y)], c.stroke_width(2)))?;
                    }
                }
                Mark::Dot(c) => {
                    area.draw(&Circle::new((x + 13, y), 4, c.filled()))?;
                }
            }
            area.draw_text(&labels[i], &style, (x + 34, y))?;
        }
    }
    Ok(())
}
