//! How every figure looks: the embedded font (figures render on machines with no fonts installed), one colour and
//! one marker per architecture, and axis numbers without noise.

use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

const FONT: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

/// Colour per architecture family (colour-blind-safe Tableau hues).
pub(super) fn arch_color(arch: &str) -> RGBColor {
    match arch {
        "decoder" => RGBColor(214, 39, 40),
        "encoder-decoder" => RGBColor(44, 160, 44),
        "encoder" => RGBColor(31, 119, 180),
        _ => RGBColor(127, 127, 127),
    }
}

/// A colour per model (Tableau 10, colour-blind-safe), by the model's index in sorted order.
pub(super) fn model_color(index: usize) -> RGBColor {
    const PALETTE: [RGBColor; 10] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
    ];
    PALETTE[index % PALETTE.len()]
}

/// The marker an architecture's points are drawn with, so curves stay apart in greyscale too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Marker {
    Triangle,
    Square,
    Circle,
}

impl Marker {
    pub(super) fn of_arch(arch: &str) -> Marker {
        match arch {
            "decoder" => Marker::Triangle,
            "encoder" => Marker::Square,
            _ => Marker::Circle,
        }
    }
}

pub(super) fn register_font() {
    REGISTER.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            if plotters::style::register_font("sans-serif", style, FONT).is_err() {
                crate::output::warn(
                    "embedded font could not be registered; figure text may be missing",
                );
            }
        }
    });
}
/// Axis numbers without noise: `250`, `12.5`, `0.35`.
pub(super) fn short_number(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}
