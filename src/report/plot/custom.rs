//! The user's own figures (`figures:` in a plot step): any numeric column against another, a curve per value of a
//! `color` column (the model by default: then in the model's colour and its architecture's marker, as in every
//! other figure), a panel per value of a `facet` column, either axis on a log scale. Drawn as PNG + SVG under
//! `figs/<name>` and shown in the report.

use std::collections::BTreeMap;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::report::aggregate::Row;
use crate::report::columns::{Cell, number};
use crate::report::plot::hotspots::Hotspots;
use crate::report::plot::legend::{self, Entry, Glyph};
use crate::report::plot::panel::DrawResult;
use crate::report::plot::style::{Marker, Palette, nth_color, short_number};
use crate::report::plot::ticks;

/// One figure a plot step asks for; checked against the table's columns when the pipeline loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FigureSpec {
    /// File name (`figs/<name>.png`, `.svg`).
    pub name: String,
    pub x: String,
    pub y: String,
    /// A curve per value of this column (`model` when not given).
    pub color: Option<String>,
    /// A panel per value of this column.
    pub facet: Option<String>,
    pub log_x: bool,
    pub log_y: bool,
}

impl FigureSpec {
    fn color_column(&self) -> &str {
        self.color.as_deref().unwrap_or("model")
    }
}

/// A cell as a label (`gpt2`, `512`).
fn label(cell: Cell) -> String {
    match cell {
        Cell::Text(t) => t.unwrap_or_default(),
        Cell::Int(i) => i.map(|i| i.to_string()).unwrap_or_default(),
        Cell::Float(f) => f.map(short_number).unwrap_or_default(),
    }
}

fn cell(row: &Row, column: &str) -> Cell {
    crate::report::columns::cell(row, column).unwrap_or(Cell::Text(None))
}

/// One curve: its label, the model it belongs to when curves are models, and its points sorted by x.
struct Curve {
    label: String,
    arch: Option<String>,
    points: Vec<(f64, f64)>,
}

/// The panels: facet value -> curves, from the rows that have both numbers (positive ones on a log axis).
fn panels(rows: &[Row], spec: &FigureSpec) -> BTreeMap<String, Vec<Curve>> {
    let mut panels: BTreeMap<String, BTreeMap<String, Curve>> = BTreeMap::new();
    for row in rows {
        let (Some(x), Some(y)) = (number(row, &spec.x), number(row, &spec.y)) else {
            continue;
        };
        if (spec.log_x && x <= 0.0) || (spec.log_y && y <= 0.0) {
            continue;
        }
        let facet = spec
            .facet
            .as_deref()
            .map(|f| label(cell(row, f)))
            .unwrap_or_default();
        let key = label(cell(row, spec.color_column()));
        let curve = panels
            .entry(facet)
            .or_default()
            .entry(key.clone())
            .or_insert_with(|| Curve {
                label: key,
                arch: (spec.color_column() == "model").then(|| row.arch.clone()),
                points: Vec::new(),
            });
        curve.points.push((x, y));
    }
    panels
        .into_iter()
        .map(|(facet, curves)| {
            let curves = curves
                .into_values()
                .map(|mut c| {
                    c.points
                        .sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
                    c
                })
                .collect();
            (facet, curves)
        })
        .collect()
}

/// Pixels: a 460-pixel panel per facet value beside the legend column.
/// At most this many panels (a facet by a column with a value per row would draw thousands); the legend says how
/// many were left out.
const MAX_PANELS: usize = 12;

pub(super) fn size(rows: &[Row], spec: &FigureSpec) -> (u32, u32) {
    let n = panels(rows, spec).len().clamp(1, MAX_PANELS) as u32;
    (460 * n + legend::LEGEND_WIDTH_PX + 40, 560)
}

/// Log axes are drawn over log10 of the values, labelled with the values.
fn scaled(v: f64, log: bool) -> f64 {
    if log { v.log10() } else { v }
}

fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(hi.abs().max(1e-9) * 1e-3);
    (lo - pad, hi + pad)
}

/// The colour of curve `index` (`label`): the model's figure-wide colour when curves are models.
fn color_of(curve: &Curve, index: usize, palette: &Palette) -> RGBColor {
    if curve.arch.is_some() {
        palette.color(&curve.label)
    } else {
        nth_color(index)
    }
}

pub(super) fn figure<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    rows: &[Row],
    spec: &FigureSpec,
    _hot: &Hotspots,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let palette = Palette::of(rows);
    let panels = panels(rows, spec);
    let (plot_area, legend_area) = legend::split(root);
    // The legend: every curve of every panel once, in one colour everywhere.
    let mut labels: Vec<(String, Option<String>)> = panels
        .values()
        .flatten()
        .map(|c| (c.label.clone(), c.arch.clone()))
        .collect();
    labels.sort();
    labels.dedup();
    let entries: Vec<Entry> = labels
        .iter()
        .enumerate()
        .map(|(i, (l, arch))| {
            let curve = Curve {
                label: l.clone(),
                arch: arch.clone(),
                points: Vec::new(),
            };
            Entry {
                label: match arch {
                    Some(a) => format!("{l} ({a})"),
                    None => format!("{} = {l}", spec.color_column()),
                },
                color: color_of(&curve, i, &palette),
                glyph: Glyph::Curve(arch.as_deref().map_or(Marker::Circle, Marker::of_arch)),
            }
        })
        .collect();
    legend::draw(&legend_area, &entries)?;
    if panels.is_empty() {
        plot_area.draw(&Text::new(
            format!("no row has both `{}` and `{}`", spec.x, spec.y),
            (40, 60),
            ("sans-serif", 18).into_font().color(&BLACK),
        ))?;
        return Ok(());
    }
    let shown = panels.len().min(MAX_PANELS);
    if panels.len() > shown {
        legend_area.draw(&Text::new(
            format!("first {shown} of {} panels", panels.len()),
            (8, 20),
            ("sans-serif", 13).into_font().color(&BLACK),
        ))?;
    }
    let areas = plot_area.split_evenly((1, shown));
    for (area, (facet, curves)) in areas.iter().zip(&panels) {
        let xs = range(
            curves
                .iter()
                .flat_map(|c| c.points.iter().map(|p| scaled(p.0, spec.log_x))),
        );
        let ys = range(
            curves
                .iter()
                .flat_map(|c| c.points.iter().map(|p| scaled(p.1, spec.log_y))),
        );
        let title = match &spec.facet {
            Some(f) => format!("{f} = {facet}"),
            None => format!("{} against {}", spec.y, spec.x),
        };
        let (x_ticks, y_ticks) = (
            ticks::ticks(xs.0, xs.1, spec.log_x),
            ticks::ticks(ys.0, ys.1, spec.log_y),
        );
        let (x_labels, y_labels) = (
            ticks::labels(&x_ticks, spec.log_x),
            ticks::labels(&y_ticks, spec.log_y),
        );
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(xs.0..xs.1, ys.0..ys.1)?;
        let axis = |name: &str, log: bool| {
            if log {
                format!("{name} (log scale)")
            } else {
                name.to_string()
            }
        };
        // Axes and titles from plotters; ticks, grid and tick labels at the 1-2-5 values (`ticks`).
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(0)
            .y_labels(0)
            .x_desc(axis(&spec.x, spec.log_x))
            .y_desc(axis(&spec.y, spec.log_y))
            .axis_desc_style(("sans-serif", 14))
            .draw()?;
        let grid = RGBColor(225, 225, 225);
        let font = ("sans-serif", 13).into_font().color(&BLACK);
        for (t, l) in x_ticks.iter().zip(&x_labels) {
            chart.draw_series(LineSeries::new([(*t, ys.0), (*t, ys.1)], grid))?;
            let (px, py) = chart.backend_coord(&(*t, ys.0));
            root.draw(&Text::new(
                l.clone(),
                (px, py + 6),
                font.clone().pos(Pos::new(HPos::Center, VPos::Top)),
            ))?;
        }
        for (t, l) in y_ticks.iter().zip(&y_labels) {
            chart.draw_series(LineSeries::new([(xs.0, *t), (xs.1, *t)], grid))?;
            let (px, py) = chart.backend_coord(&(xs.0, *t));
            root.draw(&Text::new(
                l.clone(),
                (px - 6, py),
                font.clone().pos(Pos::new(HPos::Right, VPos::Center)),
            ))?;
        }
        for curve in curves {
            let index = labels
                .iter()
                .position(|(l, _)| *l == curve.label)
                .unwrap_or(0);
            let color = color_of(curve, index, &palette);
            let points: Vec<(f64, f64)> = curve
                .points
                .iter()
                .map(|p| (scaled(p.0, spec.log_x), scaled(p.1, spec.log_y)))
                .collect();
            chart.draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?;
            let style = color.filled();
            match curve
                .arch
                .as_deref()
                .map_or(Marker::Circle, Marker::of_arch)
            {
                Marker::Triangle => chart.draw_series(
                    points
                        .iter()
                        .map(|xy| EmptyElement::at(*xy) + TriangleMarker::new((0, 0), 8, style)),
                )?,
                Marker::Square => {
                    chart.draw_series(points.iter().map(|xy| {
                        EmptyElement::at(*xy) + Rectangle::new([(-5, -5), (5, 5)], style)
                    }))?
                }
                Marker::Circle => chart.draw_series(
                    points
                        .iter()
                        .map(|xy| EmptyElement::at(*xy) + Circle::new((0, 0), 5, style)),
                )?,
            };
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(model: &str, arch: &str, length: i64, ms: f64, batch: i64) -> Row {
        Row {
            model: model.into(),
            arch: arch.into(),
            context_length: Some(length),
            latency_ms: Some(ms),
            batch_size: Some(batch),
            status: "ok".into(),
            ..Row::default()
        }
    }

    #[test]
    fn curves_follow_the_color_column_and_panels_the_facet() {
        let rows = vec![
            row("a", "decoder", 512, 4.0, 1),
            row("a", "decoder", 128, 2.0, 1),
            row("a", "decoder", 128, 3.0, 2),
            row("b", "encoder", 128, 0.0, 1),
        ];
        let spec = FigureSpec {
            name: "f".into(),
            x: "context_length".into(),
            y: "latency_ms".into(),
            color: None,
            facet: Some("batch_size".into()),
            log_x: false,
            log_y: true,
        };
        let p = panels(&rows, &spec);
        // b's 0 ms cannot be drawn on a log axis: batch 1 holds a only.
        assert_eq!(p.keys().collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(p["1"].len(), 1);
        assert_eq!(p["1"][0].points, vec![(128.0, 2.0), (512.0, 4.0)]);
        assert_eq!(p["1"][0].arch.as_deref(), Some("decoder"));
        let by_batch = FigureSpec {
            color: Some("batch_size".into()),
            facet: None,
            log_y: false,
            ..spec
        };
        let p = panels(&rows, &by_batch);
        let labels: Vec<&str> = p[""].iter().map(|c| c.label.as_str()).collect();
        assert_eq!(labels, ["1", "2"]);
        assert!(p[""][0].arch.is_none());
        // A facet with a value per row: the figure keeps a drawable size and draws.
        let many: Vec<Row> = (1..=400)
            .map(|i| row(&format!("m{i}"), "decoder", i, 1.0, 1))
            .collect();
        let each = FigureSpec {
            facet: Some("model".into()),
            ..by_batch
        };
        assert_eq!(
            size(&many, &each).0,
            460 * 12 + legend::LEGEND_WIDTH_PX + 40
        );
        crate::report::plot::style::register_font();
        let mut svg = String::new();
        {
            let area = SVGBackend::with_string(&mut svg, size(&many, &each)).into_drawing_area();
            figure(&area, &many, &each, &Hotspots::default()).unwrap();
        }
        assert!(svg.contains("first 12 of 400 panels"));
    }
}
