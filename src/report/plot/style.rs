//! How every figure looks: the embedded font (figures render on machines with no fonts installed), one colour per
//! model (the same in every panel), one marker per architecture, one line style per batch size, and axis numbers
//! without noise.

use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use plotters::coord::Shift;

use crate::report::aggregate::Row;
use crate::report::plot::panel::DrawResult;

const FONT: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

/// Colours for models, in the order they are handed out: Tableau 10 (colour-blind-safe), then eight dark, saturated
/// hues that stay apart from them on white. Past 18 models colours repeat; the figures then draw small multiples
/// per architecture, and the marker and legend order still tell the curves apart.
const PALETTE: [RGBColor; 18] = [
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
    RGBColor(0, 0, 117),
    RGBColor(128, 0, 0),
    RGBColor(128, 128, 0),
    RGBColor(70, 153, 144),
    RGBColor(145, 30, 180),
    RGBColor(240, 50, 230),
    RGBColor(154, 99, 36),
    RGBColor(0, 0, 0),
];

/// The `i`-th colour of the palette (curves that are not models: a user's figure coloured by another column).
pub(super) fn nth_color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Dash (length, gap) in pixels of the second, third, … batch size's lines; the smallest batch size is solid.
/// Predictions are thinner dashes with hollow circles, so neither is read as the other.
const DASHES: [(u32, u32); 5] = [(4, 5), (14, 5), (24, 6), (2, 9), (30, 10)];

/// One colour per model for every panel of every figure: the model's place among all the table's models, sorted;
/// and one line style per batch size: its place among all the table's batch sizes.
pub(super) struct Palette {
    models: Vec<String>,
    batches: Vec<i64>,
}

impl Palette {
    pub(super) fn of(rows: &[Row]) -> Palette {
        let mut batches: Vec<i64> = rows.iter().filter_map(|r| r.batch_size).collect();
        batches.sort_unstable();
        batches.dedup();
        Palette {
            batches,
            ..Palette::of_models(rows.iter().map(|r| r.model.as_str()))
        }
    }

    /// A palette for these model names alone (figures drawn from something other than the table's rows).
    pub(super) fn of_models<'a>(models: impl Iterator<Item = &'a str>) -> Palette {
        let mut models: Vec<String> = models.map(str::to_string).collect();
        models.sort();
        models.dedup();
        Palette {
            models,
            batches: Vec::new(),
        }
    }

    /// Every batch size of the table, ascending.
    pub(super) fn batches(&self) -> &[i64] {
        &self.batches
    }

    /// True when the table holds more than one batch size: lines and labels then say which.
    pub(super) fn swept(&self) -> bool {
        self.batches.len() > 1
    }

    fn batch_rank(&self, batch: Option<i64>) -> usize {
        batch
            .and_then(|b| self.batches.iter().position(|x| *x == b))
            .unwrap_or(0)
    }

    /// The dash of `batch`'s lines: `None` (solid) for the smallest batch size.
    pub(super) fn dash(&self, batch: Option<i64>) -> Option<(u32, u32)> {
        match self.batch_rank(batch) {
            0 => None,
            r => Some(DASHES[(r - 1) % DASHES.len()]),
        }
    }

    pub(super) fn color(&self, model: &str) -> RGBColor {
        let index = self.models.iter().position(|m| m == model).unwrap_or(0);
        PALETTE[index % PALETTE.len()]
    }
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

    /// Draws the marker at pixel `at` of `area` (legends).
    pub(super) fn draw_at<DB: DrawingBackend>(
        self,
        area: &DrawingArea<DB, Shift>,
        at: (i32, i32),
        color: RGBColor,
    ) -> DrawResult<DB> {
        let style = color.filled();
        match self {
            Marker::Triangle => area.draw(&TriangleMarker::new(at, 8, style)),
            Marker::Square => area.draw(&Rectangle::new(
                [(at.0 - 5, at.1 - 5), (at.0 + 5, at.1 + 5)],
                style,
            )),
            Marker::Circle => area.draw(&Circle::new(at, 6, style)),
        }
    }
}

impl Marker {
    /// Draws the marker at pixel `at` of `area`, filled, or hollow (a point off the Pareto front).
    pub(super) fn draw_styled_at<DB: DrawingBackend>(
        self,
        area: &DrawingArea<DB, Shift>,
        at: (i32, i32),
        color: RGBColor,
        hollow: bool,
    ) -> DrawResult<DB> {
        if !hollow {
            return self.draw_at(area, at, color);
        }
        let style = color.stroke_width(2);
        match self {
            // plotters fills a `TriangleMarker` whatever its style: an outline is drawn as a closed path.
            Marker::Triangle => area.draw(&PathElement::new(
                vec![
                    (at.0, at.1 - 8),
                    (at.0 - 7, at.1 + 5),
                    (at.0 + 7, at.1 + 5),
                    (at.0, at.1 - 8),
                ],
                style,
            )),
            Marker::Square => area.draw(&Rectangle::new(
                [(at.0 - 5, at.1 - 5), (at.0 + 5, at.1 + 5)],
                style,
            )),
            Marker::Circle => area.draw(&Circle::new(at, 6, style)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_text_is_placed_by_each_glyphs_left_bearing() {
        // DejaVu Sans' `l` has a left side bearing of 193/2048 em: about 5.7 px at 60 px. plotters 0.3.7 drew every
        // glyph flush against the pen (uneven spacing, "Throu ghput"); the patched copy (vendor/plotters) does not.
        register_font();
        let (w, h) = (300u32, 100u32);
        let mut pixels = vec![255u8; (w * h * 3) as usize];
        {
            let area = BitMapBackend::with_buffer(&mut pixels, (w, h)).into_drawing_area();
            area.draw(&Text::new(
                "l",
                (100, 10),
                ("sans-serif", 60).into_font().color(&BLACK),
            ))
            .unwrap();
        }
        let first_ink = (0..w)
            .find(|x| (0..h).any(|y| pixels[((y * w + x) * 3) as usize] < 128))
            .unwrap();
        assert!(
            (104..=108).contains(&first_ink),
            "ink starts at {first_ink}"
        );
    }

    #[test]
    fn fifteen_models_get_fifteen_colours_and_keep_them_in_every_figure() {
        let rows: Vec<Row> = (0..15)
            .map(|i| Row {
                model: format!("m{i:02}"),
                ..Row::default()
            })
            .collect();
        let all = Palette::of(&rows);
        let mut colors: Vec<(u8, u8, u8)> = rows
            .iter()
            .map(|r| {
                let c = all.color(&r.model);
                (c.0, c.1, c.2)
            })
            .collect();
        colors.sort_unstable();
        colors.dedup();
        assert_eq!(colors.len(), 15);
        // A panel showing some of the models draws each in its figure-wide colour.
        assert_eq!(all.color("m07"), Palette::of(&rows).color("m07"));
        assert_ne!(all.color("m07"), all.color("m08"));
    }
}
