//! The figures plot draws, each on any plotters backend (PNG and SVG are drawn from the same code).

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::bench::stats::level_label;
use crate::report::aggregate::Row;
use crate::report::plot::PlotOptions;
use crate::report::plot::axes::YScale;
use crate::report::plot::facet::{Facet, facets};
use crate::report::plot::hotspots::Hotspots;
use crate::report::plot::legend::{self, Entry, Glyph, LEGEND_WIDTH_PX};
use crate::report::plot::panel::{self, Band, DrawResult, PanelSpec};
use crate::report::plot::series::{Metric, Prediction, latency_band, predictions, series};
use crate::report::plot::style::{Marker, Palette, short_number};

/// How the latency band reads in the axis title: the interval's real level (the lowest among the points).
fn band_label(rows: &[Row]) -> String {
    let levels: Vec<f64> = rows
        .iter()
        .filter(|r| r.status == "ok")
        .filter_map(|r| r.latency_ci_level)
        .collect();
    if levels.is_empty() {
        return "band: ± std".into();
    }
    let lowest = levels.iter().copied().fold(f64::MAX, f64::min);
    let highest = levels.iter().copied().fold(f64::MIN, f64::max);
    let level = if (highest - lowest).abs() < 1e-9 {
        level_label(lowest)
    } else {
        format!("≥ {}", level_label(lowest))
    };
    format!("band: {level} interval of the median")
}

/// The memory axis names its source, never a mix unsaid.
fn memory_label(rows: &[Row]) -> String {
    let mut sources: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.memory_source.as_deref())
        .filter(|s| *s != "unavailable")
        .collect();
    sources.sort_unstable();
    sources.dedup();
    let names: Vec<&str> = sources
        .iter()
        .map(|s| match *s {
            "cuda_allocator" => "GPU allocator",
            "host_rss" => "process RSS",
            other => other,
        })
        .collect();
    if names.is_empty() {
        "Peak memory (GB)".into()
    } else {
        format!("Peak memory (GB, {})", names.join(" / "))
    }
}
/// What the shade around a latency curve is, for the legend: the interval where points carry one, ± std for files
/// that carry only a spread (the original tool's), said separately when a figure mixes both.
fn band_entries(rows: &[Row]) -> Vec<Entry> {
    let ok = || rows.iter().filter(|r| r.status == "ok");
    let mut out = Vec::new();
    if ok().any(|r| r.latency_ci_level.is_some()) {
        out.push(Entry::grey(
            &format!("shade: {}", band_label(rows).trim_start_matches("band: ")),
            Glyph::Band,
        ));
    }
    if ok().any(|r| r.latency_ci_low_ms.is_none() && r.latency_std_ms.is_some()) {
        out.push(Entry::grey(
            "shade: ± std (file gave no interval)",
            Glyph::Band,
        ));
    }
    out
}

/// What the crosses on the axis and the dashed curves mean, when a figure has them.
fn mark_entries(rows: &[Row], predicted: &[Prediction], palette: &Palette) -> Vec<Entry> {
    let mut out = Vec::new();
    if rows.iter().any(|r| r.status != "ok") {
        out.push(Entry::grey(
            "× on the axis: failed / infeasible length",
            Glyph::Cross,
        ));
    }
    for p in predicted {
        let batch = match p.batch_size {
            Some(b) if palette.swept() => format!(" (batch {b})"),
            _ => String::new(),
        };
        out.push(Entry {
            label: format!("{}{batch}: predicted ({} fit)", p.model, p.form),
            color: palette.color(&p.model),
            glyph: Glyph::Dashed,
        });
    }
    if predicted
        .iter()
        .any(|p| p.points.iter().any(|q| q.2.is_some()))
    {
        out.push(Entry::grey(
            "light shade: 95 % prediction band",
            Glyph::Band,
        ));
    }
    out
}

/// Pixel size of a figure of `facets` rows of panels, each `row_height` tall, plus the legend column.
pub(super) fn size(panels_width: u32, row_height: u32, facets: usize) -> (u32, u32) {
    let rows = u32::try_from(facets.max(1)).unwrap_or(1);
    (panels_width + LEGEND_WIDTH_PX, row_height * rows)
}

/// Latency (with its band and predictions) and peak memory against context length, side by side; one row of
/// panels per architecture when there are many models.
pub(super) fn latency_figure<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    rows: &[Row],
    options: &PlotOptions,
    hot: &Hotspots,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let palette = Palette::of(rows);
    let (panels, legend_area) = legend::split(root);
    let facets = facets(rows);
    let x = options.x_scale();
    let mut all_predicted = Vec::new();
    for (facet, area) in facets.iter().zip(panels.split_evenly((facets.len(), 1))) {
        let (width, _) = area.dim_in_pixel();
        let (left, right) = area.split_horizontally(width / 2);
        let lat = series(&facet.rows, "latency (ms)", |r| r.latency_ms, latency_band);
        let mem = series(
            &facet.rows,
            "peak memory (GB)",
            |r| r.max_memory_gb,
            |_, v| (v, v),
        );
        let predicted = predictions(&facet.rows, &lat, &options.predict_lengths);
        panel::draw(
            &left,
            &PanelSpec {
                title: &facet.title("Latency vs context length"),
                y_desc: "Latency (ms): first token / forward",
                x,
                y: YScale::Linear,
                band: Band::Interval,
            },
            &lat,
            &predicted,
            &palette,
            hot,
        )?;
        panel::draw(
            &right,
            &PanelSpec {
                title: &facet.title("Peak memory vs context length"),
                y_desc: &memory_label(rows),
                x,
                y: YScale::Fitted,
                band: Band::Interval,
            },
            &mem,
            &[],
            &palette,
            hot,
        )?;
        all_predicted.extend(predicted);
    }
    let mut entries = legend::models(rows, &palette);
    entries.extend(legend::batch_lines(&palette));
    entries.extend(band_entries(rows));
    entries.extend(mark_entries(rows, &all_predicted, &palette));
    legend::draw(&legend_area, &entries)?;
    root.present()
}

/// The rows of the generating models (decoders and encoder-decoders).
pub(super) fn generating(rows: &[Row]) -> Vec<Row> {
    rows.iter()
        .filter(|r| r.arch != "encoder")
        .cloned()
        .collect()
}

/// Time to first token, time between tokens and end-to-end latency of the generating models.
pub(super) fn ttft_tbt_figure<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    rows: &[Row],
    options: &PlotOptions,
    hot: &Hotspots,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let palette = Palette::of(rows);
    let (panels, legend_area) = legend::split(root);
    let generating = generating(rows);
    let facets = facets(&generating);
    // Each metric with its spread over runs: ± std, drawn as dotted edges (not the latency figure's shaded interval).
    let specs: [(&str, &str, Metric, Metric); 3] = [
        (
            "Prefill: time to first token",
            "TTFT (ms)",
            |r| r.ttft_ms,
            |r| r.ttft_std_ms,
        ),
        (
            "Per generated token",
            "TBT (ms/token)",
            |r| r.tbt_ms,
            |r| r.tbt_std_ms,
        ),
        (
            "End to end",
            "E2E latency (ms)",
            |r| r.e2e_latency_ms,
            |r| r.e2e_std_ms,
        ),
    ];
    for (facet, area) in facets.iter().zip(panels.split_evenly((facets.len(), 1))) {
        for (cell, (title, y_desc, f, std)) in area.split_evenly((1, 3)).iter().zip(specs) {
            panel::draw(
                cell,
                &PanelSpec {
                    title: &facet.title(title),
                    y_desc,
                    x: options.x_scale(),
                    y: YScale::Linear,
                    band: Band::Spread,
                },
                &series(&facet.rows, y_desc, f, |r, v| {
                    std(r).map_or((v, v), |s| (v - s, v + s))
                }),
                &[],
                &palette,
                hot,
            )?;
        }
    }
    let mut entries = legend::models(&generating, &palette);
    entries.extend(legend::batch_lines(&palette));
    if generating
        .iter()
        .any(|r| r.ttft_std_ms.is_some() || r.tbt_std_ms.is_some())
    {
        entries.push(Entry::grey("dotted edges: ± std over runs", Glyph::Dotted));
    }
    entries.extend(mark_entries(&generating, &[], &palette));
    legend::draw(&legend_area, &entries)?;
    root.present()
}

/// One bar of the throughput figure: (`model @ length`, model, arch, tokens/s).
type Bar = (String, String, String, f64);

/// The bars of one throughput panel (`value` of the rows `keep` takes), at one length every model measured if there
/// is one (returned), else each model's longest measured length.
fn throughput_bars(
    rows: &[Row],
    keep: fn(&Row) -> bool,
    value: fn(&Row) -> Option<f64>,
) -> (Option<i64>, Vec<Bar>) {
    let ok: Vec<Row> = rows
        .iter()
        .filter(|r| r.status == "ok" && keep(r) && value(r).is_some_and(f64::is_finite))
        .cloned()
        .collect();
    // One bar per curve: per model, and per batch size when the table holds several.
    let curves = crate::report::aggregate::curves(&ok);
    let swept = Palette::of(&ok).swept();
    let common = ok
        .iter()
        .filter_map(|r| r.context_length)
        .filter(|l| {
            curves.iter().all(|(m, _, b)| {
                ok.iter()
                    .any(|r| r.model == *m && r.batch_size == *b && r.context_length == Some(*l))
            })
        })
        .max();
    let bars = curves
        .iter()
        .filter_map(|(m, a, b)| {
            let r = ok
                .iter()
                .filter(|r| {
                    r.model == *m
                        && r.batch_size == *b
                        && (common.is_none() || r.context_length == common)
                })
                .max_by_key(|r| r.context_length)?;
            let batch = match b {
                Some(b) if swept => format!(" × b{b}"),
                _ => String::new(),
            };
            Some((
                format!("{m}{batch} @ {}", r.context_length.unwrap_or(0)),
                m.to_string(),
                a.to_string(),
                value(r)?,
            ))
        })
        .collect();
    (common, bars)
}

/// One panel of the throughput figure: a unit of its own, so no bar is read against another's (an encoder's input
/// tokens/s are not a generator's generated tokens/s).
struct ThroughputPanel {
    title: &'static str,
    unit: &'static str,
    keep: fn(&Row) -> bool,
    value: fn(&Row) -> Option<f64>,
}

const THROUGHPUT_PANELS: [ThroughputPanel; 3] = [
    ThroughputPanel {
        title: "Generated tokens per second (generators)",
        unit: "generated tok/s",
        keep: |r| r.arch != "encoder",
        value: |r| r.throughput,
    },
    ThroughputPanel {
        title: "Input tokens per second (encoders)",
        unit: "input tok/s",
        keep: |r| r.arch == "encoder",
        value: |r| r.throughput,
    },
    ThroughputPanel {
        title: "Sequences per second (every model)",
        unit: "seq/s",
        keep: |_| true,
        value: |r| r.sequences_per_sec,
    },
];

/// Each non-empty panel with its bars.
fn throughput_panels(rows: &[Row]) -> Vec<(&'static ThroughputPanel, Option<i64>, Vec<Bar>)> {
    THROUGHPUT_PANELS
        .iter()
        .map(|p| {
            let (common, bars) = throughput_bars(rows, p.keep, p.value);
            (p, common, bars)
        })
        .filter(|(_, _, bars)| !bars.is_empty())
        .collect()
}

fn panel_height(bars: usize) -> u32 {
    120 + 38 * u32::try_from(bars).unwrap_or(0)
}

/// Height of the throughput figure: a bar row per model in each panel.
pub(super) fn performance_height(rows: &[Row]) -> u32 {
    throughput_panels(rows)
        .iter()
        .map(|(_, _, bars)| panel_height(bars.len()))
        .sum::<u32>()
        .max(300)
}

/// Throughput per model in one panel per unit (generated tokens/s, input tokens/s, sequences/s), one horizontal
/// bar each (names stay readable however many models), in the model's colour.
pub(super) fn performance_figure<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    rows: &[Row],
    hot: &Hotspots,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let palette = Palette::of(rows);
    let panels = throughput_panels(rows);
    let mut rest = root.clone();
    for (panel, common, bars) in &panels {
        let (area, below) = rest.split_vertically(panel_height(bars.len()));
        rest = below;
        let x_max = bars.iter().map(|b| b.3).fold(0.0, f64::max).max(1e-9) * 1.35;
        let title = match common {
            Some(l) => format!("{} at {l} tokens", panel.title),
            None => format!("{} (longest measured length)", panel.title),
        };
        let n = bars.len().max(1) as f64;
        let mut chart = ChartBuilder::on(&area)
            .caption(title, ("sans-serif", 20))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(260)
            .build_cartesian_2d(0.0..x_max, 0.0..n)?;
        let names: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
        let decimals = crate::report::plot::ticks::decimals_for(0.0, x_max);
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(bars.len().max(1) * 2 + 1)
            .y_label_formatter(&|y| {
                // Bar i sits in [n - i - 1, n - i): the first model at the top.
                let i = n - 0.5 - y;
                if (i - i.round()).abs() < 1e-6 && i >= -1e-6 {
                    names.get(i.round() as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .x_desc(panel.unit)
            .x_label_formatter(&|v| format!("{v:.decimals$}"))
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 15))
            .draw()?;
        for (i, (_, model, arch, v)) in bars.iter().enumerate() {
            let color = palette.color(model);
            let top = n - i as f64;
            chart.draw_series(std::iter::once(Rectangle::new(
                [(0.0, top - 0.85), (*v, top - 0.15)],
                color.filled(),
            )))?;
            hot.add(
                chart.backend_coord(&(*v, top - 0.5)),
                format!("{model} ({arch}): {} {}", short_number(*v), panel.unit),
            );
            chart.draw_series(std::iter::once(
                EmptyElement::at((*v, top - 0.5))
                    + Text::new(
                        format!("{} {}", short_number(*v), panel.unit),
                        (6, -8),
                        ("sans-serif", 14),
                    ),
            ))?;
        }
    }
    root.present()
}

/// Latency against peak memory, every point labelled with its length; one panel per architecture when there are
/// many models.
pub(super) fn tradeoff_figure<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    rows: &[Row],
    hot: &Hotspots,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let palette = Palette::of(rows);
    let (panels, legend_area) = legend::split(root);
    let ok: Vec<Row> = rows
        .iter()
        .filter(|r| r.status == "ok" && r.latency_ms.is_some() && r.max_memory_gb.is_some())
        .cloned()
        .collect();
    let facets = facets(&ok);
    for (facet, area) in facets.iter().zip(panels.split_evenly((facets.len(), 1))) {
        tradeoff_panel(&area, facet, &palette, hot)?;
    }
    let mut entries = legend::models(&ok, &palette);
    entries.extend(legend::batch_lines(&palette));
    legend::draw(&legend_area, &entries)?;
    root.present()
}

fn tradeoff_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    facet: &Facet,
    palette: &Palette,
    hot: &Hotspots,
) -> DrawResult<DB> {
    let ok = &facet.rows;
    let x_max = ok
        .iter()
        .filter_map(|r| r.latency_ms)
        .fold(0.0, f64::max)
        .max(1e-9)
        * 1.15;
    let y_max = ok
        .iter()
        .filter_map(|r| r.max_memory_gb)
        .fold(0.0, f64::max)
        .max(1e-9)
        * 1.15;
    let mut chart = ChartBuilder::on(area)
        .caption(
            facet.title("Latency vs peak memory (labels: context length)"),
            ("sans-serif", 24),
        )
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("Latency (ms)")
        .y_desc("Peak memory (GB)")
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .draw()?;
    // Each curve's (model and batch size) points joined thinly in length order, so its path reads at a glance.
    for (model, _, batch) in crate::report::aggregate::curves(ok) {
        let mut own: Vec<&Row> = ok
            .iter()
            .filter(|r| r.model == model && r.batch_size == batch)
            .collect();
        own.sort_by_key(|r| r.context_length);
        let line: Vec<(f64, f64)> = own
            .iter()
            .filter_map(|r| Some((r.latency_ms?, r.max_memory_gb?)))
            .collect();
        let style = palette.color(model).mix(0.5).stroke_width(1);
        match palette.dash(batch) {
            None => chart.draw_series(LineSeries::new(line, style))?,
            Some((size, gap)) => {
                chart.draw_series(DashedLineSeries::new(line, size, gap, style))?
            }
        };
    }
    for r in ok {
        let (Some(ms), Some(gb)) = (r.latency_ms, r.max_memory_gb) else {
            continue;
        };
        let color = palette.color(&r.model);
        let style = color.filled();
        hot.add(
            chart.backend_coord(&(ms, gb)),
            format!(
                "{} ({}), {} tokens{}\nlatency {ms:.2} ms, peak memory {gb:.3} GB",
                r.model,
                r.arch,
                r.context_length.unwrap_or(0),
                crate::report::plot::series::batch_note(r.batch_size)
            ),
        );
        match Marker::of_arch(&r.arch) {
            Marker::Triangle => {
                chart.draw_series(std::iter::once(TriangleMarker::new((ms, gb), 8, style)))?
            }
            Marker::Square => chart.draw_series(std::iter::once(
                EmptyElement::at((ms, gb)) + Rectangle::new([(-5, -5), (5, 5)], style),
            ))?,
            Marker::Circle => {
                chart.draw_series(std::iter::once(Circle::new((ms, gb), 6, style)))?
            }
        };
        chart.draw_series(std::iter::once(
            EmptyElement::at((ms, gb))
                + Text::new(
                    match r.batch_size {
                        Some(b) if palette.swept() => {
                            format!("{}×b{b}", r.context_length.unwrap_or(0))
                        }
                        _ => format!("{}", r.context_length.unwrap_or(0)),
                    },
                    (7, -16),
                    ("sans-serif", 13).into_font().color(&color),
                ),
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::plot::series::tests::row;

    #[test]
    fn the_band_is_labelled_with_its_real_level() {
        let mut rows = vec![row(64, 1.0), row(128, 2.0)];
        assert_eq!(band_label(&rows), "band: 75 % interval of the median");
        rows[1].latency_ci_level = Some(0.960_937_5);
        assert_eq!(band_label(&rows), "band: ≥ 75 % interval of the median");
    }
}
