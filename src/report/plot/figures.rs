//! The figures plot draws, each on any plotters backend (PNG and SVG are drawn from the same code).

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::bench::stats::level_label;
use crate::report::aggregate::Row;
use crate::report::plot::PlotOptions;
use crate::report::plot::axes::YScale;
use crate::report::plot::panel::{self, DrawResult, PanelSpec};
use crate::report::plot::series::{Metric, latency_band, predictions, series};
use crate::report::plot::style::{arch_color, short_number};

/// How the latency band reads in the axis title: the interval's real level (the lowest among the points).
fn band_label(rows: &[Row]) -> String {
    let levels: Vec<f64> = rows
        .iter()
        .filter(|r| r.status == "ok")
        .filter_map(|r| r.latency_ci_level)
        .collect();
    if levels.is_empty() {
        return "band: ± std where given".into();
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
/// Latency (with its band and predictions) and peak memory against context length, side by side.
pub(super) fn latency_figure<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    rows: &[Row],
    options: &PlotOptions,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let (width, _) = root.dim_in_pixel();
    let (left, right) = root.split_horizontally(width / 2);
    let x = options.x_scale();
    let lat = series(rows, |r| r.latency_ms, latency_band);
    let mem = series(rows, |r| r.max_memory_gb, |_, v| (v, v));
    let predicted = predictions(rows, &lat, &options.predict_lengths);
    panel::draw(
        &left,
        &PanelSpec {
            title: "Latency vs context length",
            y_desc: &format!("Latency (ms): first token / forward; {}", band_label(rows)),
            x,
            y: YScale::Linear,
        },
        &lat,
        &predicted,
    )?;
    panel::draw(
        &right,
        &PanelSpec {
            title: "Peak memory vs context length",
            y_desc: &memory_label(rows),
            x,
            y: YScale::Linear,
        },
        &mem,
        &[],
    )?;
    root.present()
}

/// Time to first token, time between tokens and end-to-end latency of the generating models.
pub(super) fn ttft_tbt_figure<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    rows: &[Row],
    options: &PlotOptions,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let generating: Vec<Row> = rows
        .iter()
        .filter(|r| r.arch != "encoder")
        .cloned()
        .collect();
    let panels = root.split_evenly((1, 3));
    let specs: [(&str, &str, Metric); 3] = [
        ("Prefill: time to first token", "TTFT (ms)", |r| r.ttft_ms),
        ("Per generated token", "TBT (ms/token)", |r| r.tbt_ms),
        ("End to end", "E2E latency (ms)", |r| r.e2e_latency_ms),
    ];
    for (area, (title, y_desc, f)) in panels.iter().zip(specs) {
        panel::draw(
            area,
            &PanelSpec {
                title,
                y_desc,
                x: options.x_scale(),
                y: YScale::Linear,
            },
            &series(&generating, f, |_, v| (v, v)),
            &[],
        )?;
    }
    root.present()
}

/// Throughput per model at one length every model measured (else each model's longest).
pub(super) fn performance_figure<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    rows: &[Row],
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    // One length every model measured if there is one, else each model's longest measured length.
    let ok: Vec<&Row> = rows
        .iter()
        .filter(|r| r.status == "ok" && r.throughput.is_some())
        .collect();
    let mut models: Vec<(&str, &str)> = ok
        .iter()
        .map(|r| (r.model.as_str(), r.arch.as_str()))
        .collect();
    models.sort_unstable();
    models.dedup();
    let common = ok
        .iter()
        .filter_map(|r| r.context_length)
        .filter(|l| {
            models.iter().all(|(m, _)| {
                ok.iter()
                    .any(|r| r.model == *m && r.context_length == Some(*l))
            })
        })
        .max();
    let bars: Vec<(String, String, f64)> = models
        .iter()
        .filter_map(|(m, a)| {
            let r = ok
                .iter()
                .filter(|r| r.model == *m && (common.is_none() || r.context_length == common))
                .max_by_key(|r| r.context_length)?;
            Some((
                format!("{m} @ {}", r.context_length.unwrap_or(0)),
                a.to_string(),
                r.throughput?,
            ))
        })
        .collect();
    let y_max = bars.iter().map(|b| b.2).fold(0.0, f64::max).max(1e-9) * 1.15;
    let title = match common {
        Some(l) => format!("Throughput by model at {l} tokens"),
        None => "Throughput by model (longest measured length)".into(),
    };
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 24))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(90)
        .build_cartesian_2d(0.0..(bars.len().max(1) as f64), 0.0..y_max)?;
    let names: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(bars.len().max(1) * 2 + 1)
        .x_label_formatter(&|x| {
            let i = (*x - 0.5).round();
            if (x - 0.5 - i).abs() < 1e-6 && i >= 0.0 {
                names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("Throughput (generated tokens/s; encoders: input tokens/s)")
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .draw()?;
    for (i, (_, arch, v)) in bars.iter().enumerate() {
        let color = arch_color(arch);
        chart.draw_series(std::iter::once(Rectangle::new(
            [(i as f64 + 0.15, 0.0), (i as f64 + 0.85, *v)],
            color.filled(),
        )))?;
        // Generators and encoders count different tokens: say which on each bar.
        let unit = if arch == "encoder" {
            "input tok/s"
        } else {
            "generated tok/s"
        };
        chart.draw_series(std::iter::once(
            EmptyElement::at((i as f64 + 0.2, *v))
                + Text::new(
                    format!("{} {unit}", short_number(*v)),
                    (0, -22),
                    ("sans-serif", 16),
                ),
        ))?;
    }
    root.present()
}

/// Latency against peak memory, every point labelled with its length.
pub(super) fn tradeoff_figure<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    rows: &[Row],
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let ok: Vec<&Row> = rows
        .iter()
        .filter(|r| r.status == "ok" && r.latency_ms.is_some() && r.max_memory_gb.is_some())
        .collect();
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
    let mut chart = ChartBuilder::on(root)
        .caption(
            "Latency vs peak memory (labels: context length)",
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
    let mut models: Vec<(&str, &str)> = ok
        .iter()
        .map(|r| (r.model.as_str(), r.arch.as_str()))
        .collect();
    models.sort_unstable();
    models.dedup();
    for (model, arch) in models {
        let color = arch_color(arch);
        let pts: Vec<&&Row> = ok.iter().filter(|r| r.model == model).collect();
        chart
            .draw_series(pts.iter().map(|r| {
                Circle::new(
                    (r.latency_ms.unwrap_or(0.0), r.max_memory_gb.unwrap_or(0.0)),
                    6,
                    color.filled(),
                )
            }))?
            .label(format!("{model} ({arch})"))
            .legend(move |(x, y)| Circle::new((x + 10, y), 5, color.filled()));
        chart.draw_series(pts.iter().map(|r| {
            Text::new(
                format!("{}", r.context_length.unwrap_or(0)),
                (r.latency_ms.unwrap_or(0.0), r.max_memory_gb.unwrap_or(0.0)),
                ("sans-serif", 13).into_font(),
            )
        }))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 15))
        .draw()?;
    root.present()
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
