//! PNG text drawn glyph by glyph with the bundled font.
//!
//! Why not plotters' own text: its `ab_glyph` drawing drops side bearings and places each glyph
//! on its own truncated baseline (uneven text), and its `ttf` feature needs system fonts
//! (font-kit, fontconfig) that the target machines lack and that would make the PNGs differ by
//! machine. This backend keeps plotters' text box (and so its layout) and only draws the glyphs.
use super::font::font_ref;
use plotters::prelude::*;

/// The bitmap backend with better text: plotters' own ab_glyph drawing ignores side bearings
/// and rounds each glyph's baseline on its own, so PNG text looks uneven. Here glyphs sit at
/// sub-pixel pen positions on one baseline; the text box (and so the layout) stays plotters'.
pub struct Png<'a>(pub BitMapBackend<'a>);

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
