//! Line figures (convergence, training-set size, label noise, robust accuracy): panels of mean
//! lines with a shaded ±std band over seeds, one colour per configuration, a legend below.
use super::figure::{color, draw_legend, legend_height, Figure, Mark};
use super::font::FAMILY;
use amm_core::anyhow::Result;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

/// (x, mean, std) points of one line.
pub type Points = Vec<(f64, f64, f64)>;

/// One chart of a line figure.
pub struct Panel {
    pub title: String,
    pub x_desc: String,
    pub y_desc: String,
    /// Logarithmic x axis.
    pub x_log: bool,
    /// Integer ticks on x (epochs).
    pub x_int: bool,
    /// Ticks at the data's x values (else plotters' round numbers).
    pub x_keys: bool,
    /// Markers at the points.
    pub markers: bool,
    /// One line per legend entry (may be empty).
    pub lines: Vec<Points>,
}

/// Panels side by side, one legend under them for the lines they share.
pub struct LinesFigure {
    pub panels: Vec<Panel>,
    pub labels: Vec<String>,
}

const PANEL_W: u32 = 560;
const PANEL_H: u32 = 420;

impl LinesFigure {
    fn width(&self) -> u32 {
        PANEL_W * self.panels.len().max(1) as u32
    }
}

impl Figure for LinesFigure {
    fn size(&self) -> (u32, u32) {
        (self.width(), PANEL_H + legend_height(&self.labels, self.width() - 40))
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let (top, legend) = root.split_vertically(PANEL_H);
        let areas = top.split_evenly((1, self.panels.len().max(1)));
        for (area, panel) in areas.iter().zip(&self.panels) {
            draw_lines_panel(area, panel)?;
        }
        let entries: Vec<(Mark, String)> = self.labels.iter().enumerate().map(|(i, l)| (Mark::Line(color(i)), l.clone())).collect();
        draw_legend(&legend, &entries)
    }
}

fn x_extent(p: &Panel) -> (f64, f64) {
    let xs = p.lines.iter().flatten().map(|q| q.0);
    let (mut lo, mut hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if p.x_log {
        return (lo / 1.25, hi * 1.25);
    }
    if hi - lo < 1e-12 {
        lo -= 0.5;
        hi += 0.5;
    } else if !p.x_int {
        let pad = 0.04 * (hi - lo);
        lo -= pad;
        hi += pad;
    }
    (lo, hi)
}

/// An x axis: linear or logarithmic, with plotters' tick positions or the data's own x values.
struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
    keys: Option<Vec<f64>>,
}

impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let t = |x: f64| if self.log { x.max(1e-300).ln() } else { x };
        let f = (t(*v) - t(self.lo)) / (t(self.hi) - t(self.lo));
        limit.0 + (f * (limit.1 - limit.0) as f64).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        match &self.keys {
            Some(_) if hint.weight().allow_light_points() => Vec::new(),
            Some(k) => k.clone(),
            None => RangedCoordf64::from(self.lo..self.hi).key_points(hint),
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

fn draw_lines_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, p: &Panel) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let (lo, hi) = x_extent(p);
    let keys = p.x_keys.then(|| {
        let mut k: Vec<f64> = p.lines.iter().flatten().map(|q| q.0).collect();
        k.sort_by(f64::total_cmp);
        k.dedup();
        k
    });
    let x = Axis { lo, hi, log: p.x_log, keys };
    let top = p.lines.iter().flatten().map(|q| q.1 + q.2).fold(0.0, f64::max);
    let mut ymax = if top > 0.0 { top * 1.08 } else { 1.0 };
    if p.y_desc.ends_with("(%)") {
        ymax = ymax.min(100.0);
    }
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, (FAMILY, 18))
        .margin(12)
        .margin_right(22)
        .x_label_area_size(44)
        .y_label_area_size(62)
        .build_cartesian_2d(x, 0f64..ymax)?;
    let xfmt = |v: &f64| {
        if p.x_log || p.x_int || v.abs() >= 1000.0 {
            format!("{}", v.round())
        } else {
            let s = format!("{v:.3}");
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        }
    };
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(p.x_desc.as_str())
        .y_desc(p.y_desc.as_str())
        .label_style((FAMILY, 13))
        .axis_desc_style((FAMILY, 15))
        .x_label_formatter(&xfmt)
        .y_label_formatter(&|v: &f64| {
            let s = format!("{v:.3}");
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        })
        .light_line_style(RGBColor(246, 246, 246));
    if p.x_int {
        mesh.x_labels(((hi - lo).round() as usize + 1).clamp(2, 11));
    }
    mesh.draw()?;
    for (i, pts) in p.lines.iter().enumerate() {
        let c = color(i);
        if pts.len() > 1 && pts.iter().any(|q| q.2 > 0.0) {
            let mut band: Vec<(f64, f64)> = pts.iter().map(|q| (q.0, q.1 + q.2)).collect();
            band.extend(pts.iter().rev().map(|q| (q.0, (q.1 - q.2).max(0.0))));
            chart.draw_series(std::iter::once(Polygon::new(band, c.mix(0.18).filled())))?;
        }
        chart.draw_series(LineSeries::new(pts.iter().map(|q| (q.0, q.1)), c.stroke_width(2)))?;
        if p.markers || pts.len() == 1 {
            chart.draw_series(pts.iter().map(|q| Circle::new((q.0, q.1), 4, c.filled())))?;
            chart.draw_series(
                pts.iter()
                    .filter(|q| q.2 > 0.0 && pts.len() == 1)
                    .map(|q| PathElement::new(vec![(q.0, (q.1 - q.2).max(0.0)), (q.0, q.1 + q.2)], c.stroke_width(2))),
            )?;
        }
    }
    Ok(())
}
