//! The bundled font (DejaVu Sans, assets/fonts) every figure uses, and text measured with it for
//! layout. PNGs are drawn with it (see [`super::png`]), so no system font configuration is
//! needed; SVGs name `sans-serif` and use the same font's metrics for layout.
use plotters::prelude::*;

/// DejaVu Sans 2.37 (Debian fonts-dejavu-core; license: assets/fonts/LICENSE-DejaVu).
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

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

/// The bundled font, parsed once, for drawing glyphs ([`super::png`]).
pub fn font_ref() -> &'static ab_glyph::FontRef<'static> {
    static F: std::sync::OnceLock<ab_glyph::FontRef<'static>> = std::sync::OnceLock::new();
    F.get_or_init(|| ab_glyph::FontRef::try_from_slice(FONT).expect("the bundled font parses"))
}

/// The width in pixels plotters gives `text` at `size` (its layout uses the same box).
pub fn text_width(text: &str, size: f64) -> u32 {
    ensure_fonts();
    (FAMILY, size).into_font().box_size(text).map(|(w, _)| w).unwrap_or((text.chars().count() as f64 * size * 0.6) as u32)
}

/// Splits `text` into lines no wider than `width` pixels, preferably at ` |> ` and `, `.
pub fn wrap(text: &str, size: f64, width: u32) -> Vec<String> {
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
