//! `figs/batch_tradeoff`: what a larger batch buys and costs, the chart servers are sized by; drawn only when the
//! table holds two or more batch sizes. Small multiples, a row per model: each batch size is a point of throughput
//! against the latency a request sees, in the model's colour with its architecture's marker (as in every figure),
//! labelled with its batch size; a length's points are joined thinly in batch order, and its Pareto front
//! (`report::pareto`) is drawn thick. Points off the front are hollow: another batch size is faster and of more
//! throughput. Two columns: requests (sequences/s against the whole request: the generation, or the forward pass
//! of an encoder), and decode (generated tokens/s against the inter-token latency) for generators. Both axes are
//! log10, since batch sizes and lengths span decades.

use plotters::coord::Shift;
use plotters::coord::combinators::BindKeyPoints;
use plotters::prelude::*;

use crate::report::aggregate::Row;
use crate::report::pareto::{self, request_latency_ms};
use crate::report::plot::hotspots::Hotspots;
use crate::report::plot::labels::Labels;
use crate::report::plot::legend::{self, Entry, Glyph};
use crate::report::plot::panel::DrawResult;
use crate::report::plot::series::batch_note;
use crate::report::plot::style::{Marker, Palette, short_number};

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

/// The models of the table in the legend's order (architecture, then name), with whether each generates.
fn models(rows: &[Row]) -> Vec<(&str, &str)> {
    let mut models: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.model.as_str(), r.arch.as_str()))
        .collect();
    // The legend's order (`legend::models`), so rows of panels and legend entries line up.
    models.sort_unstable_by_key(|(model, arch)| {
        (crate::report::plot::facet::arch_order(arch), *model)
    });
    models.dedup();
    models
}

/// The label of the key point at `at`, formatted as its axis's others are (`5 10 20`, not `5.00 10.0 20.0`).
fn tick_label(at: f64, ticks: &[f64]) -> String {
    let logs: Vec<f64> = ticks.iter().map(|t| t.log10()).collect();
    let labels = crate::report::plot::ticks::labels(&logs, true);
    ticks
        .iter()
        .zip(labels)
        .min_by(|a, b| (a.0 - at).abs().total_cmp(&(b.0 - at).abs()))
        .map_or_else(|| short_number(at), |(_, l)| l)
}

/// Whether the figure is drawn at all: it compares batch sizes, so the table needs two or more.
pub(super) fn applies(rows: &[Row]) -> bool {
    Palette::of(rows).swept()
}

/// Pixel size of the figure: small multiples, a row per model (requests, and decode for generators), beside the
/// legend.
pub(super) fn size(rows: &[Row]) -> (u32, u32) {
    let columns = if groups(rows, &DECODE).is_empty() {
        1
    } else {
        2
    };
    let n = models(rows).len().clamp(1, 40) as u32;
    (620 * columns + legend::LEGEND_WIDTH_PX, 80 + 430 * n)
}

pub(super) fn figure<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    rows: &[Row],
    hot: &Hotspots,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let palette = Palette::of(rows);
    let (panels, legend_area) = legend::split(root);
    let models = models(rows);
    let decode = !groups(rows, &DECODE).is_empty();
    let columns = if decode { 2 } else { 1 };
    let cells = panels.split_evenly((models.len().max(1), columns));
    for (i, (model, arch)) in models.iter().enumerate() {
        let own: Vec<Row> = rows.iter().filter(|r| r.model == *model).cloned().collect();
        panel(
            &cells[i * columns],
            &own,
            &REQUESTS,
            model,
            arch,
            &palette,
            hot,
        )?;
        if decode {
            let area = &cells[i * columns + 1];
            if groups(&own, &DECODE).is_empty() {
                area.draw(&Text::new(
                    format!("{model}: no decode steps ({arch})"),
                    (60, 60),
                    ("sans-serif", 15)
                        .into_font()
                        .color(&RGBColor(120, 120, 120)),
                ))?;
            } else {
                panel(area, &own, &DECODE, model, arch, &palette, hot)?;
            }
        }
    }
    let mut entries = legend::models(rows, &palette);
    entries.push(Entry::grey("thick line: Pareto front", Glyph::Line(None)));
    entries.push(Entry::grey("thin line: one length's batches", Glyph::Thin));
    entries.push(Entry::grey("hollow: off the front", Glyph::Hollow));
    entries.push(Entry::grey("b4: batch size", Glyph::Dot));
    entries.push(Entry::grey("512 tok: context length", Glyph::Dot));
    legend::draw(&legend_area, &entries)?;
    root.present()
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    rows: &[Row],
    axes: &Axes,
    model: &str,
    arch: &str,
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
    let (x_ticks, y_ticks) = (ticks(range(&xs)), ticks(range(&ys)));
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{model}: {}", axes.title), ("sans-serif", 18))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(
            range(&xs).log_scale().with_key_points(x_ticks.clone()),
            range(&ys).log_scale().with_key_points(y_ticks.clone()),
        )?;
    chart
        .configure_mesh()
        .x_desc(axes.x_desc)
        .y_desc(axes.y_desc)
        .light_line_style(WHITE)
        .x_label_formatter(&|at| tick_label(*at, &x_ticks))
        .y_label_formatter(&|at| tick_label(*at, &y_ticks))
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .draw()?;
    let at = |p: (f64, f64)| p;
    let mut labels = Labels::default();
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
        // The context length below the group's first (smallest batch) point; each point's batch size above it;
        // a label that would overlap one already drawn moves or is left out (the hover text still has it).
        let corner = area.get_base_pixel();
        let first_pixel = chart.backend_coord(&at(g.rows[0].1));
        if let Some(spot) =
            labels.place((first_pixel.0 - corner.0 - 20, first_pixel.1 - corner.1 + 10))
        {
            area.draw(&Text::new(
                format!("{} tok", first.context_length.unwrap_or(0)),
                spot,
                ("sans-serif", 13).into_font().color(&color),
            ))?;
        }
        let marker = Marker::of_arch(arch);
        for (r, p, on_front) in &g.rows {
            // Markers are drawn in the panel's pixels (the chart's point, less the panel's corner).
            let pixel = chart.backend_coord(&at(*p));
            let local = (pixel.0 - corner.0, pixel.1 - corner.1);
            marker.draw_styled_at(area, local, color, *on_front == Some(false))?;
            if let Some(spot) = labels.place((local.0 + 7, local.1 - 18)) {
                area.draw(&Text::new(
                    format!("b{}", r.batch_size.unwrap_or(1)),
                    spot,
                    ("sans-serif", 12).into_font().color(&RGBColor(70, 70, 70)),
                ))?;
            }
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
