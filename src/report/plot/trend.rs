//! `figs/history`: each point's measurements over the runs in `results/`, oldest first, as small multiples (a
//! panel per point): the median with its interval where there is one; a hollow marker for a run of other measuring
//! code, a cross for one on other hardware, than the newest.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::report::history::PointHistory;
use crate::report::plot::legend::{self, Entry, Glyph};
use crate::report::plot::panel::DrawResult;
use crate::report::plot::style::Palette;

/// At most this many panels; `e3pipe history` says how to narrow the rest.
pub const MAX_PANELS: usize = 24;
const COLUMNS: usize = 4;

pub(super) fn size(histories: &[PointHistory]) -> (u32, u32) {
    let n = histories.len().clamp(1, MAX_PANELS);
    let columns = n.min(COLUMNS) as u32;
    let rows = n.div_ceil(COLUMNS) as u32;
    (380 * columns + legend::LEGEND_WIDTH_PX, 40 + 320 * rows)
}

pub(super) fn figure<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    histories: &[PointHistory],
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let (plot_area, legend_area) = legend::split(root);
    let shown = &histories[..histories.len().min(MAX_PANELS)];
    let n = shown.len().max(1);
    let cells = plot_area.split_evenly((n.div_ceil(COLUMNS), n.min(COLUMNS)));
    // Colour = model, as in every figure.
    let palette = Palette::of_models(histories.iter().map(|h| h.model.as_str()));
    for (area, h) in cells.iter().zip(shown) {
        let color = palette.color(&h.model);
        let values: Vec<f64> = h
            .measurements
            .iter()
            .flat_map(|m| {
                let (lo, hi) = m.interval.unwrap_or((m.value, m.value));
                [m.value, lo, hi]
            })
            .collect();
        let hi = values.iter().copied().fold(f64::MIN, f64::max);
        let lo = values.iter().copied().fold(f64::MAX, f64::min);
        let pad = ((hi - lo) * 0.15).max(hi.abs() * 0.05).max(1e-9);
        let runs = h.measurements.len();
        let mut chart = ChartBuilder::on(area)
            .caption(h.label(), ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(0.5..(runs as f64 + 0.5), (lo - pad).max(0.0)..(hi + pad))?;
        chart
            .configure_mesh()
            .x_desc("run, oldest first")
            .y_desc(h.metric.as_str())
            .x_labels(runs.clamp(2, 10))
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 1.0 {
                    format!("{i:.0}")
                } else {
                    String::new()
                }
            })
            .label_style(("sans-serif", 12))
            .axis_desc_style(("sans-serif", 13))
            .light_line_style(RGBColor(238, 238, 238))
            .draw()?;
        let points: Vec<(f64, f64)> = h
            .measurements
            .iter()
            .enumerate()
            .map(|(j, m)| ((j + 1) as f64, m.value))
            .collect();
        chart.draw_series(LineSeries::new(
            points.clone(),
            color.mix(0.5).stroke_width(1),
        ))?;
        for (j, m) in h.measurements.iter().enumerate() {
            let x = (j + 1) as f64;
            if let Some((a, b)) = m.interval {
                chart.draw_series(std::iter::once(PathElement::new(
                    vec![(x, a), (x, b)],
                    color.stroke_width(2),
                )))?;
            }
            if m.other_hardware {
                chart.draw_series(std::iter::once(Cross::new(
                    (x, m.value),
                    6,
                    color.stroke_width(2),
                )))?;
            } else if m.other_code {
                chart.draw_series(std::iter::once(Circle::new(
                    (x, m.value),
                    5,
                    color.stroke_width(2),
                )))?;
            } else {
                chart.draw_series(std::iter::once(Circle::new(
                    (x, m.value),
                    5,
                    color.filled(),
                )))?;
            }
        }
    }
    let entries = vec![
        Entry::grey("median, this code and hardware", Glyph::Dot),
        Entry::grey("hollow: other measuring code", Glyph::Hollow),
        Entry::grey("cross: other hardware", Glyph::Cross),
        Entry::grey("bar: interval of the median", Glyph::Line(None)),
    ];
    legend::draw(&legend_area, &entries)?;
    root.present()
}
