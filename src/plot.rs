//! Figures (SVG and PNG, with plotters) of an experiment's runs, in the shape of the paper's:
//!
//! - `convergence`: test error and margin against epoch, one line per configuration, mean over
//!   seeds with a shaded ±std band (Figs. 2–3);
//! - `train_size`, `label_noise`: final test error and margin against the training-set size or
//!   the label-noise fraction, one line per regularizer configuration (Figs. 4–5);
//! - `boundaries`: for 2-D data and linear models, the training points, the learned boundary and
//!   the margin band, one panel per configuration (Fig. 1).
//!
//! PNGs are drawn with a bundled font (DejaVu Sans, assets/fonts), so no system font
//! configuration is needed; SVGs name `sans-serif` and use the same font's metrics for layout.
use crate::commands::report::{mean_std, metric_format, Config, Report};
use amm_core::anyhow::{anyhow, Context, Result};
use amm_core::candle_core::DType;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};

/// DejaVu Sans 2.37 (Debian fonts-dejavu-core; license: assets/fonts/LICENSE-DejaVu).
static FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

/// The family every figure uses; plotters resolves it to the bundled font.
pub const FAMILY: &str = "sans-serif";

/// Registers the bundled font with plotters (idempotent). Every plotters text in this binary,
/// SVG included, needs a registered font once the `ab_glyph` feature is on.
pub fn ensure_fonts() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            let _ = plotters::style::register_font(FAMILY, style, FONT);
        }
    });
}

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

fn text_width(text: &str, size: f64) -> u32 {
    ensure_fonts();
    (FAMILY, size).into_font().box_size(text).map(|(w, _)| w).unwrap_or((text.chars().count() as f64 * size * 0.6) as u32)
}

/// Splits `text` into lines no wider than `width` pixels, preferably at ` |> ` and `, `.
fn wrap(text: &str, size: f64, width: u32) -> Vec<String> {
    if text_width(text, size) <= width {
        return vec![text.to_string()];
    }
    let mut tokens: Vec<String> = Vec::new();
    let mut cur = String::new();
    for (i, part) in text.split(" |> ").enumerate() {
        if i > 0 {
            tokens.push(std::mem::take(&mut cur));
            cur.push_str("|> ");
        }
        let pieces: Vec<&str> = part.split(", ").collect();
        for (j, p) in pieces.iter().enumerate() {
            cur.push_str(p);
            if j + 1 < pieces.len() {
                cur.push(',');
                tokens.push(std::mem::take(&mut cur));
            }
        }
    }
    tokens.push(cur);
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for t in tokens {
        let candidate = if line.is_empty() { t.clone() } else { format!("{line} {t}") };
        if line.is_empty() || text_width(&candidate, size) <= width {
            line = candidate;
        } else {
            lines.push(std::mem::replace(&mut line, t));
        }
    }
    lines.push(line);
    lines
}

// ============================================================================================
// PNG text
// ============================================================================================

fn font_ref() -> &'static ab_glyph::FontRef<'static> {
    static F: std::sync::OnceLock<ab_glyph::FontRef<'static>> = std::sync::OnceLock::new();
    F.get_or_init(|| ab_glyph::FontRef::try_from_slice(FONT).expect("the bundled font parses"))
}

/// The bitmap backend with better text: plotters' own ab_glyph drawing ignores side bearings
/// and rounds each glyph's baseline on its own, so PNG text looks uneven. Here glyphs sit at
/// sub-pixel pen positions on one baseline; the text box (and so the layout) stays plotters'.
struct Png<'a>(BitMapBackend<'a>);

type PngError<'a> = plotters_backend::DrawingErrorKind<<BitMapBackend<'a> as DrawingBackend>::ErrorType>;

impl<'a> DrawingBackend for Png<'a> {
    type ErrorType = <BitMapBackend<'a> as DrawingBackend>::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.0.get_size()
    }
    fn ensure_prepared(&mut self) -> Result<(), PngError<'a>> {
        self.0.ensure_prepared()
    }
    fn present(&mut self) -> Result<(), PngError<'a>> {
        self.0.present()
    }
    fn draw_pixel(&mut self, p: (i32, i32), c: plotters_backend::BackendColor) -> Result<(), PngError<'a>> {
        self.0.draw_pixel(p, c)
    }
    fn draw_line<S: plotters_backend::BackendStyle>(&mut self, a: (i32, i32), b: (i32, i32), s: &S) -> Result<(), PngError<'a>> {
        self.0.draw_line(a, b, s)
    }
    fn draw_rect<S: plotters_backend::BackendStyle>(
        &mut self,
        a: (i32, i32),
        b: (i32, i32),
        s: &S,
        fill: bool,
    ) -> Result<(), PngError<'a>> {
        self.0.draw_rect(a, b, s, fill)
    }
    fn draw_path<S: plotters_backend::BackendStyle, I: IntoIterator<Item = (i32, i32)>>(
        &mut self,
        path: I,
        s: &S,
    ) -> Result<(), PngError<'a>> {
        self.0.draw_path(path, s)
    }
    fn draw_circle<S: plotters_backend::BackendStyle>(&mut self, c: (i32, i32), r: u32, s: &S, fill: bool) -> Result<(), PngError<'a>> {
        self.0.draw_circle(c, r, s, fill)
    }
    fn fill_polygon<S: plotters_backend::BackendStyle, I: IntoIterator<Item = (i32, i32)>>(
        &mut self,
        v: I,
        s: &S,
    ) -> Result<(), PngError<'a>> {
        self.0.fill_polygon(v, s)
    }
    fn blit_bitmap(&mut self, pos: (i32, i32), size: (u32, u32), src: &[u8]) -> Result<(), PngError<'a>> {
        self.0.blit_bitmap(pos, size, src)
    }

    fn draw_text<T: plotters_backend::BackendTextStyle>(&mut self, text: &str, style: &T, pos: (i32, i32)) -> Result<(), PngError<'a>> {
        use ab_glyph::{Font, ScaleFont};
        use plotters_backend::text_anchor::{HPos, VPos};
        let color = style.color();
        if color.alpha == 0.0 || text.is_empty() {
            return Ok(());
        }
        let size = style.size() as f32;
        let font = font_ref();
        let sf = font.as_scaled(size);
        let mut pen = 0f32;
        let mut prev = None;
        let mut glyphs = Vec::new();
        for c in text.chars() {
            let id = sf.glyph_id(c);
            if let Some(p) = prev {
                pen += sf.kern(p, id);
            }
            glyphs.push((id, pen));
            pen += sf.h_advance(id);
            prev = Some(id);
        }
        // plotters' box: the advance width by size / 1.24; the capitals are centred in it.
        let (width, height) = (pen, size / 1.24);
        let cap =
            font.outline(font.glyph_id('H')).map_or(0.7 * size, |o| (o.bounds.max.y - o.bounds.min.y).abs() * sf.scale_factor().vertical);
        let baseline = (height + cap) / 2.0;
        let dx = match style.anchor().h_pos {
            HPos::Left => 0.0,
            HPos::Center => -width / 2.0,
            HPos::Right => -width,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0.0,
            VPos::Center => -height / 2.0,
            VPos::Bottom => -height,
        };
        let trans = style.transform();
        let mut pixels: Vec<(i32, i32, f32)> = Vec::new();
        for (id, x) in glyphs {
            let g = id.with_scale_and_position(sf.scale(), ab_glyph::point(x + dx, baseline + dy));
            if let Some(o) = font.outline_glyph(g) {
                let b = o.px_bounds();
                o.draw(|gx, gy, cov| {
                    if cov > 0.0 {
                        pixels.push((b.min.x as i32 + gx as i32, b.min.y as i32 + gy as i32, cov.min(1.0)));
                    }
                });
            }
        }
        let (w, h) = self.get_size();
        for (x, y, cov) in pixels {
            let (tx, ty) = trans.transform(x, y);
            let (px, py) = (pos.0 + tx, pos.1 + ty);
            if px >= 0 && py >= 0 && (px as u32) < w && (py as u32) < h {
                let c = plotters_backend::BackendColor { alpha: color.alpha * cov as f64, rgb: color.rgb };
                self.0.draw_pixel((px, py), c)?;
            }
        }
        Ok(())
    }
}

// ============================================================================================
// Rendering to SVG and PNG
// ============================================================================================

/// A figure that can draw itself on any plotters backend.
trait Figure {
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static;
}

/// Writes `STEM.svg` and `STEM.png`.
fn save(fig: &impl Figure, dir: &Path, stem: &str) -> Result<Vec<PathBuf>> {
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
enum Mark {
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

fn legend_height(labels: &[String], width: u32) -> u32 {
    if labels.is_empty() {
        0
    } else {
        legend_rows(labels, width).len() as u32 * LEGEND_ROW + 16
    }
}

/// Draws a legend (entries flowing left to right, rows centred) in `area`.
fn draw_legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, entries: &[(Mark, String)]) -> Result<()>
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

// ============================================================================================
// Line figures (convergence, training-set size, label noise)
// ============================================================================================

/// (x, mean, std) points of one line.
type Points = Vec<(f64, f64, f64)>;

struct Panel {
    title: String,
    x_desc: String,
    y_desc: String,
    /// Logarithmic x axis.
    x_log: bool,
    /// Integer ticks on x (epochs).
    x_int: bool,
    /// Ticks at the data's x values (else plotters' round numbers).
    x_keys: bool,
    /// Markers at the points.
    markers: bool,
    /// One line per legend entry (may be empty).
    lines: Vec<Points>,
}

struct LinesFigure {
    panels: Vec<Panel>,
    labels: Vec<String>,
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

// ============================================================================================
// The report's figures
// ============================================================================================

/// Writes every figure the report's runs allow into `out`; returns the files written.
pub fn report_figures(report: &Report, out: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut written = Vec::new();
    if let Some(fig) = convergence(report)? {
        written.extend(save(&fig, out, "convergence")?);
    }
    for (key, stem, x_desc) in [
        ("data.train_size", "train_size", "training samples"),
        ("data.label_noise", "label_noise", "label noise (fraction of training labels)"),
    ] {
        if report.varying.iter().any(|k| k == key) {
            if let Some(fig) = against(report, key, x_desc) {
                written.extend(save(&fig, out, stem)?);
            }
        }
    }
    if let Some(fig) = boundaries(report)? {
        written.extend(save(&fig, out, "boundaries")?);
    }
    if let Some(fig) = robustness(report) {
        written.extend(save(&fig, out, "robust_accuracy")?);
    }
    Ok(written)
}

/// Robust accuracy (every attack of `eval.attacks` together) against ε, mean ± std over seeds,
/// one line per configuration: from the `robust` summary each run's result.json carries.
fn robustness(report: &Report) -> Option<LinesFigure> {
    let (mut labels, mut lines, mut norm) = (Vec::new(), Vec::new(), String::new());
    for c in &report.configs {
        let mut per_eps: std::collections::BTreeMap<u64, (f64, Vec<f64>)> = Default::default();
        for cell in report.cells_of(c) {
            let Some(r) = cell.result().and_then(|r| r.get("robust")) else { continue };
            norm = r.get("norm").and_then(|n| n.as_str()).unwrap_or("l2").to_string();
            let (Some(eps), Some(acc)) = (r.get("eps").and_then(|e| e.as_array()), r.get("robust_accuracy").and_then(|a| a.as_array()))
            else {
                continue;
            };
            for (e, a) in eps.iter().zip(acc) {
                if let (Some(e), Some(a)) = (e.as_f64(), a.as_f64()) {
                    per_eps.entry(e.to_bits()).or_insert((e, Vec::new())).1.push(100.0 * a);
                }
            }
        }
        if per_eps.is_empty() {
            continue;
        }
        let mut line: Points = per_eps.values().filter_map(|(e, v)| mean_std(v).map(|(m, s)| (*e, m, s.unwrap_or(0.0)))).collect();
        line.sort_by(|a, b| a.0.total_cmp(&b.0));
        lines.push(line);
        labels.push(report.label(c, &[]));
    }
    if lines.is_empty() {
        return None;
    }
    Some(LinesFigure {
        panels: vec![Panel {
            title: "robust accuracy (all attacks)".into(),
            x_desc: format!("ε ({norm})"),
            y_desc: "robust accuracy (%)".into(),
            x_log: false,
            x_int: false,
            x_keys: true,
            markers: true,
            lines,
        }],
        labels,
    })
}

/// Test errors (%) and margins of one epoch over seeds.
type ErrMargin = (Vec<f64>, Vec<f64>);

/// Per epoch, mean ± std over the runs in `dirs` of the test error (%) and the margin.
fn epoch_lines(dirs: &[&Path]) -> Result<Option<(Points, Points)>> {
    let mut per_epoch: std::collections::BTreeMap<usize, ErrMargin> = Default::default();
    for dir in dirs {
        let h = amm_core::train::read_metrics(dir).with_context(|| format!("reading {}", dir.display()))?;
        for m in h {
            if let Some(t) = &m.test {
                let e = per_epoch.entry(m.epoch).or_default();
                e.0.push(100.0 * t.error);
                e.1.push(t.margin);
            }
        }
    }
    if per_epoch.is_empty() {
        return Ok(None);
    }
    let line = |pick: fn(&ErrMargin) -> &Vec<f64>| -> Points {
        per_epoch
            .iter()
            .filter_map(|(&ep, v)| mean_std(pick(v)).map(|(m, s)| (ep as f64, m, if m.is_finite() { s.unwrap_or(0.0) } else { 0.0 })))
            .filter(|q| q.1.is_finite())
            .collect()
    };
    Ok(Some((line(|v| &v.0), line(|v| &v.1))))
}

/// Test error and margin against epoch, one line per labelled group of runs.
fn convergence_of(groups: &[(String, Vec<&Path>)]) -> Result<Option<LinesFigure>> {
    let mut labels = Vec::new();
    let (mut err, mut margin) = (Vec::new(), Vec::new());
    for (label, dirs) in groups {
        if let Some((e, m)) = epoch_lines(dirs)? {
            err.push(e);
            margin.push(m);
            labels.push(label.clone());
        }
    }
    if labels.is_empty() {
        return Ok(None);
    }
    let panel = |title: &str, y: &str, lines| Panel {
        title: title.into(),
        x_desc: "epoch".into(),
        y_desc: y.into(),
        x_log: false,
        x_int: true,
        x_keys: false,
        markers: false,
        lines,
    };
    Ok(Some(LinesFigure {
        panels: vec![panel("test error", "test error (%)", err), panel("margin (mean DeepFool L2)", "margin", margin)],
        labels,
    }))
}

/// Mean ± std over seeds, per epoch, of test error (%) and margin.
fn convergence(report: &Report) -> Result<Option<LinesFigure>> {
    let groups: Vec<(String, Vec<&Path>)> =
        report.configs.iter().map(|c| (report.label(c, &[]), report.cells_of(c).map(|cell| cell.dir.as_path()).collect())).collect();
    convergence_of(&groups)
}

/// A grid's summary: test error and margin against epoch, one line per run, as `STEM.svg` and
/// `STEM.png` in `dir`. Writes nothing when no run has evaluated yet.
pub fn runs_convergence(dir: &Path, stem: &str, runs: &[(String, PathBuf)]) -> Result<Vec<PathBuf>> {
    let groups: Vec<(String, Vec<&Path>)> = runs.iter().map(|(name, d)| (name.clone(), vec![d.as_path()])).collect();
    match convergence_of(&groups)? {
        Some(fig) => save(&fig, dir, stem),
        None => Ok(Vec::new()),
    }
}

/// Final test error and margin against a setting (`data.train_size`, `data.label_noise`), one
/// line per configuration of the other settings.
fn against(report: &Report, key: &str, x_desc: &str) -> Option<LinesFigure> {
    let mut groups: Vec<(String, Vec<&Config>)> = Vec::new();
    for c in &report.configs {
        let l = report.label(c, &[key]);
        match groups.iter_mut().find(|(g, _)| *g == l) {
            Some((_, v)) => v.push(c),
            None => groups.push((l, vec![c])),
        }
    }
    let x_of = |c: &Config| -> Option<f64> {
        if key == "data.train_size" {
            // `all` is the dataset's size: the runs record what they trained on.
            let n: Vec<f64> = report.cells_of(c).filter_map(|cell| cell.metric("train_samples")).collect();
            if let Some((m, _)) = mean_std(&n) {
                return Some(m);
            }
        }
        c.get(key)?.parse().ok()
    };
    let (mut err, mut margin, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    for (label, configs) in groups {
        let (mut e, mut m): (Points, Points) = (Vec::new(), Vec::new());
        for c in configs {
            let Some(x) = x_of(c) else { continue };
            for (metric, dst) in [("test_error", &mut e), ("margin", &mut m)] {
                let f = metric_format(metric);
                let xs: Vec<f64> = report.cells_of(c).filter_map(|cell| cell.metric(metric)).map(|v| v * f.scale).collect();
                if let Some((mean, sd)) = mean_std(&xs) {
                    dst.push((x, mean, sd.unwrap_or(0.0)));
                }
            }
        }
        if e.is_empty() && m.is_empty() {
            continue;
        }
        e.sort_by(|a, b| a.0.total_cmp(&b.0));
        m.sort_by(|a, b| a.0.total_cmp(&b.0));
        err.push(e);
        margin.push(m);
        labels.push(label);
    }
    if labels.is_empty() {
        return None;
    }
    let xs: Vec<f64> = err.iter().flatten().map(|q| q.0).collect();
    let x_log = key == "data.train_size" && {
        let lo = xs.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = xs.iter().cloned().fold(0.0, f64::max);
        lo > 0.0 && hi / lo >= 8.0
    };
    let what = if key == "data.train_size" { "training-set size" } else { "label noise" };
    let panel = |title: String, y: &str, lines| Panel {
        title,
        x_desc: x_desc.into(),
        y_desc: y.into(),
        x_log,
        x_int: false,
        x_keys: true,
        markers: true,
        lines,
    };
    Some(LinesFigure {
        panels: vec![panel(format!("test error vs {what}"), "test error (%)", err), panel(format!("margin vs {what}"), "margin", margin)],
        labels,
    })
}

// ============================================================================================
// Decision boundaries of 2-D linear models (Fig. 1)
// ============================================================================================

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

struct BoundaryFigure {
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
fn boundaries(report: &Report) -> Result<Option<BoundaryFigure>> {
    let registry = crate::commands::registry();
    let mut panels = Vec::new();
    let mut has_optimum = false;
    let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
    for c in &report.configs {
        let Some(cell) = report.cells_of(c).find(|cell| cell.result().is_some()) else { continue };
        let Some(cfg) = &cell.config else { continue };
        if cfg.model.name != "linear" || cfg.data.name != "toy2d" && cfg.data.name != "csv" {
            continue;
        }
        let data = match amm_core::train::load_data(cfg, &registry) {
            Ok(d) if d.shape == [2] && d.classes == 2 => d,
            _ => continue,
        };
        let mean = data.mean.clone().unwrap_or_else(|| vec![0.0; 2]);
        let points: Vec<(f64, f64, u32)> = data
            .train
            .x
            .chunks(2)
            .zip(&data.train.y)
            .map(|(p, &y)| (p[0] as f64 + mean[0] as f64, p[1] as f64 + mean[1] as f64, y))
            .collect();
        for q in &points {
            lo = [lo[0].min(q.0), lo[1].min(q.1)];
            hi = [hi[0].max(q.0), hi[1].max(q.1)];
        }
        let boundary = read_linear(&cell.dir).ok().map(|(w, b)| {
            // In input coordinates: w·(p − mean) + b = w·p + (b − w·mean).
            let c = b - w[0] * mean[0] as f64 - w[1] * mean[1] as f64;
            let norm = w[0].hypot(w[1]).max(1e-300);
            let gamma = points
                .iter()
                .map(|q| (w[0] * q.0 + w[1] * q.1 + c, q.2))
                .filter(|(s, y)| (*s > 0.0) == (*y == 1))
                .map(|(s, _)| s.abs() / norm)
                .fold(None, |m: Option<f64>, d| Some(m.map_or(d, |m| m.min(d))));
            (w, c, gamma)
        });
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

/// A two-class linear model's `w = W₁ − W₀` and `b = b₁ − b₀` (class 1 where `w·x + b > 0`).
fn read_linear(dir: &Path) -> Result<([f64; 2], f64)> {
    let t = amm_core::rundir::load_tensors(&dir.join(amm_core::rundir::LAST))?;
    let get = |k: &str| t.get(k).with_context(|| format!("checkpoint has no `{k}`"));
    let w = get("model.fc.weight")?.to_dtype(DType::F64)?.to_vec2::<f64>()?;
    let b = get("model.fc.bias")?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
    if w.len() != 2 || w.iter().any(|r| r.len() != 2) || b.len() != 2 {
        return Err(anyhow!("not a 2-class model on 2-D inputs"));
    }
    Ok(([w[1][0] - w[0][0], w[1][1] - w[0][1]], b[1] - b[0]))
}
