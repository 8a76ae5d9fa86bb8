//! `figs/batch_tradeoff`: what a larger batch buys and costs, the chart servers are sized by. Per model and context
//! length, each batch size is a point of throughput against the latency a request sees, in the model's colour with
//! its batch size's marker; a model and length's points are joined thinly in batch order, and its Pareto front
//! (`report::pareto`) is drawn thick. Points off the front are hollow: another batch size is faster and of more
//! throughput. Two panels: requests (sequences/s against the whole request: the generation, or the forward pass of
//! an encoder) for every model, and decode (generated tokens/s against the inter-token latency) for generators.
//! Both axes are log10, since batch sizes and lengths span decades.

use plotters::coord::Shift;
use plotters::coord::combinators::BindKeyPoints;
use plotters::prelude::*;

use crate::report::aggregate::Row;
use crate::report::pareto::{self, request_latency_ms};
use crate::report::plot::hotspots::Hotspots;
use crate::report::plot::legend::{self, Entry, Glyph};
use crate::report::plot::panel::DrawResult;
use crate::report::plot::series::batch_note;
use crate::report::plot::style::{Palette, short_number};

/// One panel's axes: what each point's latency and throughput are.
struct Axes {
    title: &'static str,
    x_desc: &'static str,
    y_desc: &'static str,
    latency: fn(&Row) -> Option<f64>,
    throughput: fn(&Row) -> Option<f64>,
    /// The unit of the throughput in hover texts.
    unit: &'static str,
}

const REQUESTS: Axes = Axes {
    title: "Requests: throughput vs latency per batch size",
    x_desc: "Request latency (ms, log scale): whole generation / forward pass",
    y_desc: "Sequences per second (log scale)",
    latency: request_latency_ms,
    throughput: |r| r.sequences_per_sec,
    unit: "sequences/s",
};

const DECODE: Axes = Axes {
    title: "Decode: throughput vs inter-token latency",
    x_desc: "Inter-token latency (ms, log scale)",
    y_desc: "Generated tokens per second (log scale)",
    latency: |r| r.itl_median_ms,
    throughput: |r| r.decode_tokens_per_sec,
    unit: "tokens/s",
};

/// A (model, context length)'s points of one panel, in batch order, with whether each is on its front (`None`:
/// the only batch size measured there). The request panel's fronts are the table's `pareto_front` column.
struct Group<'r> {
    rows: Vec<(&'r Row, (f64, f64), Option<bool>)>,
}

fn groups<'r>(rows: &'r [Row], axes: &Axes) -> Vec<Group<'r>> {
    pareto::groups(rows, |r| Some(((axes.latency)(r)?, (axes.throughput)(r)?)))
        .into_iter()
        .map(|g| Group {
            rows: g
                .members
                .into_iter()
                .zip(g.on_front)
                .map(|((i, p), on)| (&rows[i], p, on))
                .collect(),
        })
        .collect()
}

/// Axis labels at 1, 2 and 5 times the powers of ten inside `range` (`ticks`).
fn ticks(range: std::ops::Range<f64>) -> Vec<f64> {
    crate::report::plot::ticks::log_values(range.start.max(1e-12), range.end)
}

/// Whether the table has generators with decode timings (the decode panel is drawn only then).
fn has_decode(rows: &[Row]) -> bool {
    !groups(rows, &DECODE).is_empty()
}

/// Pixel size of the figure: one or two panels beside the legend.
pub(super) fn size(rows: &[Row]) -> (u32, u32) {
    let panels = if has_decode(rows) { 2 } else { 1 };
    (760 * panels + legend::LEGEND_WIDTH_PX, 700)
}

pub(super) fn figure<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    rows: &[Row],
    hot: &Hotspots,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let palette = Palette::of(rows);
    let (panels, legend_area) = legend::split(root);
    let axes: Vec<&Axes> = if has_decode(rows) {
        vec![&REQUESTS, &DECODE]
    } else {
        vec![&REQUESTS]
    };
    for (area, axes) in panels.split_evenly((1, axes.len())).iter().zip(axes) {
        panel(area, rows, axes, &palette, hot)?;
    }
    let mut entries = legend::models(rows, &palette);
    entries.extend(legend::batch_markers(&palette));
    entries.push(Entry::grey("thick line: Pareto front", Glyph::Line(None)));
    entries.push(Entry::grey(
        "hollow: off the front (beaten on both)",
        Glyph::HollowTriangle,
    ));
    entries.push(Entry::grey("label: context length", Glyph::Dot));
    legend::draw(&legend_area, &entries)?;
    root.present()
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    rows: &[Row],
    axes: &Axes,
    palette: &Palette,
    hot: &Hotspots,
) -> DrawResult<DB> {
    let groups = groups(rows, axes);
    let xs: Vec<f64> = groups
        .iter()
        .flat_map(|g| g.rows.iter().map(|r| r.1.0))
        .collect();
    let ys: Vec<f64> = groups
        .iter()
        .flat_map(|g| g.rows.iter().map(|r| r.1.1))
        .collect();
    let range = |v: &[f64]| {
        let max = v.iter().copied().fold(f64::MIN_POSITIVE, f64::max);
        let min = v.iter().copied().fold(max, f64::min);
        // Room either side, so labels beside the points stay inside.
        (min / 1.6)..(max * 1.6)
    };
    let mut chart = ChartBuilder::on(area)
        .caption(axes.title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(
            range(&xs).log_scale().with_key_points(ticks(range(&xs))),
            range(&ys).log_scale().with_key_points(ticks(range(&ys))),
        )?;
    chart
        .configure_mesh()
        .x_desc(axes.x_desc)
        .y_desc(axes.y_desc)
        .light_line_style(WHITE)
        .x_label_formatter(&|at| short_number(*at))
        .y_label_formatter(&|at| short_number(*at))
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .draw()?;
    let at = |p: (f64, f64)| p;
    for g in &groups {
        let Some((first, _, _)) = g.rows.first() else {
            continue;
        };
        let color = palette.color(&first.model);
        chart.draw_series(LineSeries::new(
            g.rows.iter().map(|r| at(r.1)),
            color.mix(0.45).stroke_width(1),
        ))?;
        let mut on: Vec<(f64, f64)> = g
            .rows
            .iter()
            .filter(|r| r.2 == Some(true))
            .map(|r| at(r.1))
            .collect();
        on.sort_by(|a, b| a.0.total_cmp(&b.0));
        if on.len() > 1 {
            chart.draw_series(LineSeries::new(on, color.stroke_width(3)))?;
        }
        // The context length beside the group's first (smallest batch) point.
        chart.draw_series(std::iter::once(
            EmptyElement::at(at(g.rows[0].1))
                + Text::new(
                    first.context_length.unwrap_or(0).to_string(),
                    (-14, 10),
                    ("sans-serif", 13).into_font().color(&color),
                ),
        ))?;
        for (r, p, on_front) in &g.rows {
            // Markers are drawn in the panel's pixels (the chart's point, less the panel's corner).
            let pixel = chart.backend_coord(&at(*p));
            let corner = area.get_base_pixel();
            palette.batch_marker(r.batch_size).draw_at(
                area,
                (pixel.0 - corner.0, pixel.1 - corner.1),
                color,
                *on_front == Some(false),
            )?;
            hot.add(
                pixel,
                format!(
                    "{} ({}), {} tokens{}\nlatency {:.2} ms, {} {}\n{}",
                    r.model,
                    r.arch,
                    r.context_length.unwrap_or(0),
                    batch_note(r.batch_size),
                    p.0,
                    short_number(p.1),
                    axes.unit,
                    match on_front {
                        Some(true) => "on the Pareto front",
                        Some(false) =>
                            "off the front: another batch size is faster and of more throughput",
                        None => "the only batch size measured at this length",
                    }
                ),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_one_two_five_inside_the_range() {
        assert_eq!(ticks(15.0..700.0), [20.0, 50.0, 100.0, 200.0, 500.0]);
        assert_eq!(ticks(0.3..1.5), [0.5, 1.0]);
    }
}
