//! Decision boundaries of 2-D linear models (the paper's Fig. 1): the training points, the
//! learned boundary and its margin band, one panel per configuration.
use super::figure::{color, draw_legend, legend_height, Figure, Mark};
use super::font::{wrap, FAMILY};
use super::linear2d;
use super::report::Report;
use amm_core::anyhow::Result;
use amm_core::Registry;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
/// One configuration's panel.
struct BoundaryPanel {
    title: Vec<String>,
    subtitle: String,
    /// Training points in input coordinates, and their (training) labels.
    points: Vec<(f64, f64, u32)>,
    /// The boundary `w·p + c = 0` and the margin γ (distance of the closest correctly
    /// classified training point); None when the checkpoint could not be read.
    boundary: Option<([f64; 2], f64, Option<f64>)>,
    /// The best possible boundary (toy2d: `x = 0`).
    optimum: Option<f64>,
}

/// Panels in rows of up to three, on one square data box, the legend below.
pub struct BoundaryFigure {
    panels: Vec<BoundaryPanel>,
    cols: usize,
    /// Square data box: centre and half-width.
    centre: (f64, f64),
    half: f64,
    has_optimum: bool,
}

const BOX_PANEL_W: u32 = 400;
const BOX_TITLE_FONT: f64 = 14.0;

impl BoundaryFigure {
    fn title_lines(&self) -> usize {
        self.panels.iter().map(|p| p.title.len()).max().unwrap_or(1) + 1
    }

    fn panel_h(&self) -> u32 {
        // Title, then a square plot (the chart's label areas around it).
        self.title_lines() as u32 * 19 + 8 + (BOX_PANEL_W - 62 - 16) + 44 + 16
    }

    fn legend(&self) -> Vec<(Mark, String)> {
        let mut v = vec![
            (Mark::Dot(color(0)), "class 0 (training)".to_string()),
            (Mark::Dot(color(1)), "class 1 (training)".to_string()),
            (Mark::Line(BLACK), "learned boundary".to_string()),
            (Mark::Dashed(RGBColor(214, 39, 40)), "± margin of the closest training point".to_string()),
        ];
        if self.has_optimum {
            v.push((
                Mark::Dashed(RGBColor(150, 150, 150)),
                format!("largest-margin boundary (margin {})", amm_core::data::TOY2D_MAX_MARGIN),
            ));
        }
        v
    }

    fn width(&self) -> u32 {
        BOX_PANEL_W * self.cols as u32
    }
}

impl Figure for BoundaryFigure {
    fn size(&self) -> (u32, u32) {
        let rows = self.panels.len().div_ceil(self.cols) as u32;
        let labels: Vec<String> = self.legend().into_iter().map(|(_, l)| l).collect();
        (self.width(), rows * self.panel_h() + legend_height(&labels, self.width() - 40))
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let rows = self.panels.len().div_ceil(self.cols);
        let (top, legend) = root.split_vertically(rows as u32 * self.panel_h());
        let areas = top.split_evenly((rows, self.cols));
        for (area, p) in areas.iter().zip(&self.panels) {
            self.draw_panel(area, p)?;
        }
        draw_legend(&legend, &self.legend())
    }
}

/// The segment of the line `w·p + c = 0` inside the box, if any.
fn clip_line(w: [f64; 2], c: f64, (x0, x1, y0, y1): (f64, f64, f64, f64)) -> Option<((f64, f64), (f64, f64))> {
    let mut pts: Vec<(f64, f64)> = Vec::new();
    if w[1].abs() > 1e-12 {
        for x in [x0, x1] {
            let y = -(c + w[0] * x) / w[1];
            if (y0..=y1).contains(&y) {
                pts.push((x, y));
            }
        }
    }
    if w[0].abs() > 1e-12 {
        for y in [y0, y1] {
            let x = -(c + w[1] * y) / w[0];
            if (x0..=x1).contains(&x) {
                pts.push((x, y));
            }
        }
    }
    type Segment = ((f64, f64), (f64, f64), f64);
    let mut best: Option<Segment> = None;
    for (i, a) in pts.iter().enumerate() {
        for b in &pts[i + 1..] {
            let d = (a.0 - b.0).hypot(a.1 - b.1);
            if best.is_none_or(|(_, _, bd)| d > bd) {
                best = Some((*a, *b, d));
            }
        }
    }
    best.filter(|b| b.2 > 0.0).map(|(a, b, _)| (a, b))
}

impl BoundaryFigure {
    fn draw_panel<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>, p: &BoundaryPanel) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let title_h = self.title_lines() as u32 * 19 + 8;
        let (head, body) = area.split_vertically(title_h);
        let (w, _) = head.dim_in_pixel();
        let style = TextStyle::from((FAMILY, BOX_TITLE_FONT).into_font()).color(&BLACK).pos(Pos::new(HPos::Center, VPos::Top));
        let mut y = 6;
        for line in &p.title {
            head.draw_text(line, &style, (w as i32 / 2, y))?;
            y += 19;
        }
        let sub = TextStyle::from((FAMILY, 13.0).into_font()).color(&RGBColor(80, 80, 80)).pos(Pos::new(HPos::Center, VPos::Top));
        head.draw_text(&p.subtitle, &sub, (w as i32 / 2, y))?;

        let (cx, cy) = self.centre;
        let h = self.half;
        let bx = (cx - h, cx + h, cy - h, cy + h);
        let mut chart =
            ChartBuilder::on(&body).margin(8).x_label_area_size(44).y_label_area_size(62).build_cartesian_2d(bx.0..bx.1, bx.2..bx.3)?;
        chart
            .configure_mesh()
            .x_desc("x₁")
            .y_desc("x₂")
            .label_style((FAMILY, 13))
            .axis_desc_style((FAMILY, 15))
            .light_line_style(TRANSPARENT)
            .draw()?;
        if let Some(x) = p.optimum {
            chart.draw_series(DashedLineSeries::new(vec![(x, bx.2), (x, bx.3)], 6, 5, RGBColor(150, 150, 150).stroke_width(2)))?;
        }
        for class in 0..2u32 {
            let c = color(class as usize);
            chart.draw_series(p.points.iter().filter(|q| q.2 == class).map(|q| Circle::new((q.0, q.1), 3, c.mix(0.8).filled())))?;
        }
        if let Some((wv, c, gamma)) = p.boundary {
            let norm = wv[0].hypot(wv[1]);
            if let Some(g) = gamma {
                for s in [-1.0, 1.0] {
                    if let Some((a, b)) = clip_line(wv, c - s * g * norm, bx) {
                        chart.draw_series(DashedLineSeries::new(vec![a, b], 8, 5, RGBColor(214, 39, 40).stroke_width(2)))?;
                    }
                }
            }
            if let Some((a, b)) = clip_line(wv, c, bx) {
                chart.draw_series(LineSeries::new(vec![a, b], BLACK.stroke_width(2)))?;
            }
        }
        Ok(())
    }
}

/// One panel per configuration of a 2-D linear model (its lowest finished seed).
pub fn boundaries(report: &Report, reg: &Registry) -> Result<Option<BoundaryFigure>> {
    let mut panels = Vec::new();
    let mut has_optimum = false;
    let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
    for c in &report.configs {
        let Some(cell) = report.cells_of(c).find(|cell| cell.result().is_some()) else { continue };
        let Some(cfg) = &cell.config else { continue };
        let Some(linear2d::Linear2d { points, boundary }) = linear2d::read(cfg, &cell.dir, reg) else { continue };
        for q in &points {
            lo = [lo[0].min(q.0), lo[1].min(q.1)];
            hi = [hi[0].max(q.0), hi[1].max(q.1)];
        }
        let train_err = boundary.map(|(w, c, _)| {
            let wrong = points.iter().filter(|q| ((w[0] * q.0 + w[1] * q.1 + c) > 0.0) != (q.2 == 1)).count();
            100.0 * wrong as f64 / points.len().max(1) as f64
        });
        let optimum = (cfg.data.name == "toy2d").then_some(0.0);
        has_optimum |= optimum.is_some();
        let subtitle = match boundary {
            None => format!("seed {}: no readable checkpoint", cell.seed),
            Some((_, _, g)) => format!(
                "seed {}, margin {}, train error {:.1}%",
                cell.seed,
                g.map_or("n/a".to_string(), |g| format!("{g:.3}")),
                train_err.unwrap_or(0.0)
            ),
        };
        panels.push(BoundaryPanel { title: vec![report.label(c, &[])], subtitle, points, boundary, optimum });
    }
    if panels.is_empty() {
        return Ok(None);
    }
    let cols = panels.len().min(3);
    for p in &mut panels {
        p.title = wrap(&p.title[0], BOX_TITLE_FONT, BOX_PANEL_W - 24);
    }
    let centre = ((lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0);
    let half = 0.5 * (hi[0] - lo[0]).max(hi[1] - lo[1]) * 1.12 + 1e-6;
    Ok(Some(BoundaryFigure { panels, cols, centre, half, has_optimum }))
}
