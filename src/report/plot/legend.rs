//! A figure's legend, in a column of its own beside the panels so it never covers data: one entry per model (its
//! colour, its architecture's marker), then what the other marks mean. Shared by every panel of the figure, since a
//! model has one colour everywhere.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::report::aggregate::Row;
use crate::report::plot::facet;
use crate::report::plot::panel::DrawResult;
use crate::report::plot::style::{Marker, Palette};

/// Width of the legend column.
pub(super) const LEGEND_WIDTH_PX: u32 = 320;
/// Longest label drawn whole; longer ones end in `…`.
const MAX_LABEL_CHARS: usize = 38;

/// How an entry is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Glyph {
    /// A line with the architecture's marker.
    Curve(Marker),
    Dashed,
    Band,
    /// A failed or infeasible length, on the axis.
    Cross,
    Dot,
    Roof,
    /// A grey line in a batch size's dash (`None`: solid).
    Line(Option<(u32, u32)>),
    /// A thin line (one length's batch sizes in order).
    Thin,
    /// Two dotted edges (± std over runs).
    Dotted,
    /// A hollow marker (off the Pareto front).
    Hollow,
}

pub(super) struct Entry {
    pub(super) label: String,
    pub(super) color: RGBColor,
    pub(super) glyph: Glyph,
}

impl Entry {
    pub(super) fn grey(label: &str, glyph: Glyph) -> Entry {
        Entry {
            label: label.to_string(),
            color: RGBColor(90, 90, 90),
            glyph,
        }
    }
}

/// The figure's area for panels and the legend column to its right.
pub(super) fn split<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
) -> (DrawingArea<DB, Shift>, DrawingArea<DB, Shift>) {
    let (width, _) = root.dim_in_pixel();
    root.split_horizontally(width.saturating_sub(LEGEND_WIDTH_PX))
}

/// One entry per model of `rows`, `model (arch)`, in the palette's colour with the architecture's marker.
pub(super) fn models(rows: &[Row], palette: &Palette) -> Vec<Entry> {
    let mut models: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.model.as_str(), r.arch.as_str()))
        .collect();
    // In the order small multiples draw their rows: by architecture, then name.
    models.sort_unstable_by_key(|(model, arch)| (facet::arch_order(arch), *model));
    models.dedup();
    models
        .into_iter()
        .map(|(model, arch)| Entry {
            label: if arch.is_empty() {
                model.to_string()
            } else {
                format!("{model} ({arch})")
            },
            color: palette.color(model),
            glyph: Glyph::Curve(Marker::of_arch(arch)),
        })
        .collect()
}

/// One entry per batch size, in its line style, when the table holds more than one.
pub(super) fn batch_lines(palette: &Palette) -> Vec<Entry> {
    if !palette.swept() {
        return Vec::new();
    }
    palette
        .batches()
        .iter()
        .map(|&b| Entry::grey(&format!("batch {b}"), Glyph::Line(palette.dash(Some(b)))))
        .collect()
}

fn shortened(label: &str) -> String {
    if label.chars().count() <= MAX_LABEL_CHARS {
        label.to_string()
    } else {
        let head: String = label.chars().take(MAX_LABEL_CHARS - 1).collect();
        format!("{head}…")
    }
}

/// Draws `entries` top-down in `area`, closer together when there are many.
pub(super) fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[Entry],
) -> DrawResult<DB> {
    let (_, height) = area.dim_in_pixel();
    let top = 56_i32;
    let rows = i32::try_from(entries.len().max(1)).unwrap_or(i32::MAX);
    let available = i32::try_from(height).unwrap_or(i32::MAX) - top - 16;
    let step = (available / rows).clamp(9, 24);
    let font = (step - 6).clamp(8, 15);
    for (i, e) in entries.iter().enumerate() {
        let y = top + step * i32::try_from(i).unwrap_or(0);
        let c = e.color;
        match e.glyph {
            Glyph::Curve(marker) => {
                area.draw(&PathElement::new(vec![(8, y), (40, y)], c.stroke_width(3)))?;
                marker.draw_at(area, (24, y), c)?;
            }
            Glyph::Dashed => {
                for x in [8, 22, 36] {
                    area.draw(&PathElement::new(
                        vec![(x, y), (x + 8, y)],
                        c.stroke_width(2),
                    ))?;
                }
            }
            Glyph::Band => area.draw(&Rectangle::new(
                [(8, y - 6), (40, y + 6)],
                c.mix(0.2).filled(),
            ))?,
            Glyph::Cross => area.draw(&Cross::new((24, y), 6, c.stroke_width(3)))?,
            Glyph::Dot => area.draw(&Circle::new((24, y), 5, c.filled()))?,
            Glyph::Roof => area.draw(&PathElement::new(
                vec![(8, y + 6), (24, y - 6), (40, y - 6)],
                c.stroke_width(2),
            ))?,
            Glyph::Line(None) => {
                area.draw(&PathElement::new(vec![(8, y), (40, y)], c.stroke_width(3)))?;
            }
            Glyph::Line(Some((size, gap))) => {
                let (size, gap) = (size as i32, gap as i32);
                let mut x = 8;
                while x < 40 {
                    area.draw(&PathElement::new(
                        vec![(x, y), ((x + size).min(40), y)],
                        c.stroke_width(3),
                    ))?;
                    x += size + gap;
                }
            }
            Glyph::Thin => {
                area.draw(&PathElement::new(vec![(8, y), (40, y)], c.stroke_width(1)))?;
            }
            Glyph::Hollow => area.draw(&Circle::new((24, y), 6, c.stroke_width(2)))?,
            Glyph::Dotted => {
                for edge in [y - 5, y + 5] {
                    let mut x = 8;
                    while x < 40 {
                        area.draw(&PathElement::new(
                            vec![(x, edge), (x + 2, edge)],
                            c.stroke_width(1),
                        ))?;
                        x += 6;
                    }
                }
            }
        }
        area.draw(&Text::new(
            shortened(&e.label),
            (50, y - font / 2 - 1),
            ("sans-serif", font).into_font().color(&BLACK),
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_are_cut_and_every_model_gets_its_architecture_marker() {
        assert_eq!(shortened("short"), "short");
        let long = "x".repeat(60);
        assert_eq!(shortened(&long).chars().count(), MAX_LABEL_CHARS);
        let rows = vec![
            Row {
                model: "b".into(),
                arch: "encoder".into(),
                ..Row::default()
            },
            Row {
                model: "a".into(),
                arch: "decoder".into(),
                ..Row::default()
            },
        ];
        let palette = Palette::of(&rows);
        let e = models(&rows, &palette);
        // Decoders before encoders, as the small multiples' rows.
        assert_eq!(e[0].label, "a (decoder)");
        assert_eq!(e[0].glyph, Glyph::Curve(Marker::Triangle));
        assert_eq!(e[1].glyph, Glyph::Curve(Marker::Square));
        assert_ne!(e[0].color, e[1].color);
    }
}
