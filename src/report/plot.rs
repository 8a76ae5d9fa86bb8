//! The plot step: figures drawn from `tables/inference_results.csv` with plotters, as PNG and SVG.
//! - `latency_curve`: latency vs context length, shaded with the order-statistic interval of the median (its real
//!   level in the axis title: 75 % for 3 runs) or ± std for files that carry no interval; peak memory vs length
//!   (its source named); colour and marker by architecture; failed/infeasible points marked on the axis;
//!   predictions from the scaling fit dashed, with their 95 % prediction band, and only at lengths that can run.
//! - `ttft_tbt_curves`, `inference_performance`, `inference_memory_tradeoff` as the seed drew them.
//!
//! Text uses DejaVu Sans embedded in the binary, so figures render on machines with no fonts installed.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;
use polars::prelude::*;

use crate::bench::stats::level_label;
use crate::error::{Error, Result};
use crate::fsio::write_atomic;
use crate::models::config::{Arch, longest_feasible_length};
use crate::paths;
use crate::report::aggregate::{Row, fits};
use crate::report::freshness::{Built, Derived, Stamp};

/// Plot step options.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlotOptions {
    /// Draw context length on a log2 axis (for long sweeps).
    pub log2_x: bool,
    /// Lengths to predict from the scaling fit, drawn dashed.
    pub predict_lengths: Vec<usize>,
}

const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

pub const WIDTH: u32 = 1600;
pub const HEIGHT: u32 = 650;

/// Colour per architecture family (colour-blind-safe Tableau hues).
pub fn arch_color(arch: &str) -> RGBColor {
    match arch {
        "decoder" => RGBColor(214, 39, 40),
        "encoder-decoder" => RGBColor(44, 160, 44),
        "encoder" => RGBColor(31, 119, 180),
        _ => RGBColor(127, 127, 127),
    }
}

fn register_font() {
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

fn plot_err(e: impl std::fmt::Display) -> Error {
    Error::Report(format!("plotting failed: {e}"))
}

/// Reads the aggregate table back into rows (only the columns the figures use).
pub fn read_table(path: &Path) -> Result<Vec<Row>> {
    let df = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(None)
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .and_then(|r| r.finish())
        .map_err(|e| Error::Report(format!("cannot read `{}`: {e}", path.display())))?;
    let strings = |name: &str| -> Vec<Option<String>> {
        df.column(name)
            .ok()
            .and_then(|c| c.cast(&DataType::String).ok())
            .and_then(|c| {
                c.str()
                    .ok()
                    .map(|s| s.iter().map(|v| v.map(str::to_string)).collect())
            })
            .unwrap_or_else(|| vec![None; df.height()])
    };
    let floats = |name: &str| -> Vec<Option<f64>> {
        df.column(name)
            .ok()
            .and_then(|c| c.cast(&DataType::Float64).ok())
            .and_then(|c| c.f64().ok().map(|s| s.iter().collect()))
            .unwrap_or_else(|| vec![None; df.height()])
    };
    let (model, arch, status) = (strings("model"), strings("arch"), strings("status"));
    let (length, latency, memory) = (
        floats("context_length"),
        floats("latency_ms"),
        floats("max_memory_gb"),
    );
    let (lo, hi, std) = (
        floats("latency_ci_low_ms"),
        floats("latency_ci_high_ms"),
        floats("latency_std_ms"),
    );
    let max_positions = floats("max_positions");
    let (ci_level, num_tokens) = (floats("latency_ci_level"), floats("num_tokens"));
    let memory_source = strings("memory_source");
    let (ttft, tbt, e2e, throughput) = (
        floats("ttft_ms"),
        floats("tbt_ms"),
        floats("e2e_latency_ms"),
        floats("throughput"),
    );
    Ok((0..df.height())
        .map(|i| Row {
            model: model[i].clone().unwrap_or_default(),
            arch: arch[i].clone().unwrap_or_default(),
            status: status[i].clone().unwrap_or_else(|| "ok".into()),
            context_length: length[i].map(|l| l as i64),
            latency_ms: latency[i],
            max_memory_gb: memory[i],
            latency_ci_low_ms: lo[i],
            latency_ci_high_ms: hi[i],
            latency_std_ms: std[i],
            ttft_ms: ttft[i],
            tbt_ms: tbt[i],
            e2e_latency_ms: e2e[i],
            throughput: throughput[i],
            max_positions: max_positions[i].map(|m| m as i64),
            latency_ci_level: ci_level[i],
            num_tokens: num_tokens[i].map(|n| n as i64),
            memory_source: memory_source[i].clone(),
            ..Row::default()
        })
        .collect())
}

/// A model's predicted curve: (model, arch, (length, latency_ms, 95 % prediction band) points).
type Prediction = (String, String, Vec<(f64, f64, Option<(f64, f64)>)>);
/// Picks one metric of a row.
type Metric = fn(&Row) -> Option<f64>;

/// One model's curve.
struct Series {
    model: String,
    arch: String,
    /// (length, value, band low, band high) of `ok` points.
    points: Vec<(f64, f64, f64, f64)>,
    /// Lengths that were infeasible or failed.
    missing: Vec<(f64, String)>,
}

fn series(
    rows: &[Row],
    value: impl Fn(&Row) -> Option<f64>,
    band: impl Fn(&Row, f64) -> (f64, f64),
) -> Vec<Series> {
    let mut models: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.model.clone(), r.arch.clone()))
        .collect();
    models.sort();
    models.dedup();
    models
        .into_iter()
        .map(|(model, arch)| {
            let mut points: Vec<(f64, f64, f64, f64)> = rows
                .iter()
                .filter(|r| r.model == model && r.status == "ok")
                .filter_map(|r| {
                    let v = value(r)?;
                    let (lo, hi) = band(r, v);
                    Some((r.context_length? as f64, v, lo, hi))
                })
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            let missing = rows
                .iter()
                .filter(|r| r.model == model && r.status != "ok")
                .filter_map(|r| Some((r.context_length? as f64, r.status.clone())))
                .collect();
            Series {
                model,
                arch,
                points,
                missing,
            }
        })
        .collect()
}

fn latency_band(r: &Row, v: f64) -> (f64, f64) {
    match (r.latency_ci_low_ms, r.latency_ci_high_ms, r.latency_std_ms) {
        (Some(lo), Some(hi), _) => (lo, hi),
        (_, _, Some(s)) => (v - s, v + s),
        _ => (v, v),
    }
}

fn x_of(length: f64, log2: bool) -> f64 {
    if log2 { length.log2() } else { length }
}

/// Axis numbers without noise: `250`, `12.5`, `0.35`.
fn short_number(v: f64) -> String {
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

type DrawResult<DB> =
    std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// One panel: curves of `series` against length, bands shaded, missing points marked, predictions dashed.
#[allow(clippy::too_many_arguments)]
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    y_desc: &str,
    all: &[Series],
    log2: bool,
    predictions: &[Prediction],
    y_log: bool,
) -> DrawResult<DB> {
    let xs: Vec<f64> = all
        .iter()
        .flat_map(|s| {
            s.points
                .iter()
                .map(|p| p.0)
                .chain(s.missing.iter().map(|m| m.0))
        })
        .chain(predictions.iter().flat_map(|p| p.2.iter().map(|q| q.0)))
        .collect();
    let ys: Vec<f64> = all
        .iter()
        .flat_map(|s| s.points.iter().flat_map(|p| [p.2, p.3, p.1]))
        // Prediction bands are left out of the range: far extrapolations with few lengths have bands wide enough
        // to flatten every measured curve; the band is clipped at the top instead.
        .chain(predictions.iter().flat_map(|p| p.2.iter().map(|q| q.1)))
        .filter(|y| y.is_finite() && (!y_log || *y > 0.0))
        .collect();
    let (x_min, x_max) = xs
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(*x), b.max(*x)));
    let (x_min, x_max) = if xs.is_empty() {
        (1.0, 2.0)
    } else {
        (x_of(x_min, log2), x_of(x_max, log2))
    };
    let pad = ((x_max - x_min) * 0.05).max(if log2 { 0.25 } else { 1.0 });
    let y_max = ys.iter().cloned().fold(0.0, f64::max).max(1e-9) * 1.1;
    let y_min = if y_log {
        ys.iter()
            .cloned()
            .fold(f64::MAX, f64::min)
            .min(y_max / 10.0)
            * 0.8
    } else {
        0.0
    };
    let y_of = |y: f64| if y_log { y.max(y_min).log10() } else { y };
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d((x_min - pad)..(x_max + pad), y_of(y_min)..y_of(y_max))?;
    chart
        .configure_mesh()
        .x_desc(if log2 {
            "Context length (tokens, log2 scale)"
        } else {
            "Context length (tokens)"
        })
        .y_desc(y_desc)
        .x_labels(if log2 {
            ((x_max - x_min).round() as usize + 1).max(2)
        } else {
            10
        })
        .x_label_formatter(&|x| {
            if log2 {
                format!("{:.0}", 2f64.powf(*x))
            } else {
                format!("{x:.0}")
            }
        })
        .y_label_formatter(&|y| short_number(if y_log { 10f64.powf(*y) } else { *y }))
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .draw()?;
    for s in all {
        let color = arch_color(&s.arch);
        if s.points.len() > 1 {
            let mut band: Vec<(f64, f64)> = s
                .points
                .iter()
                .map(|p| (x_of(p.0, log2), y_of(p.3)))
                .collect();
            band.extend(s.points.iter().rev().map(|p| (x_of(p.0, log2), y_of(p.2))));
            chart.draw_series(std::iter::once(Polygon::new(
                band,
                color.mix(0.18).filled(),
            )))?;
        }
        chart
            .draw_series(LineSeries::new(
                s.points.iter().map(|p| (x_of(p.0, log2), y_of(p.1))),
                color.stroke_width(3),
            ))?
            .label(format!("{} ({})", s.model, s.arch))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
            });
        let at: Vec<(f64, f64)> = s
            .points
            .iter()
            .map(|p| (x_of(p.0, log2), y_of(p.1)))
            .collect();
        let style = color.filled();
        match s.arch.as_str() {
            "decoder" => chart.draw_series(
                at.iter()
                    .map(|xy| EmptyElement::at(*xy) + TriangleMarker::new((0, 0), 8, style)),
            )?,
            "encoder" => chart.draw_series(
                at.iter()
                    .map(|xy| EmptyElement::at(*xy) + Rectangle::new([(-5, -5), (5, 5)], style)),
            )?,
            _ => chart.draw_series(
                at.iter()
                    .map(|xy| EmptyElement::at(*xy) + Circle::new((0, 0), 6, style)),
            )?,
        };
        // Failed or infeasible points sit on the x axis as crosses labelled with their status.
        chart.draw_series(s.missing.iter().map(|(length, status)| {
            EmptyElement::at((x_of(*length, log2), y_of(y_min)))
                + Cross::new((0, -8), 7, color.stroke_width(3))
                + Text::new(
                    status.clone(),
                    (-28, -34),
                    ("sans-serif", 14).into_font().color(&color),
                )
        }))?;
    }
    for (model, arch, points) in predictions {
        let color = arch_color(arch);
        let xy: Vec<(f64, f64)> = points
            .iter()
            .map(|(l, y, _)| (x_of(*l, log2), y_of(*y)))
            .collect();
        // The 95 % prediction band: where a measurement at that length would fall if the power law held.
        let banded: Vec<(f64, (f64, f64))> = points
            .iter()
            .filter_map(|(l, _, b)| Some((x_of(*l, log2), (*b)?)))
            .collect();
        if banded.len() > 1 {
            let mut outline: Vec<(f64, f64)> = banded
                .iter()
                .map(|(x, b)| (*x, y_of(b.1.min(y_max))))
                .collect();
            outline.extend(banded.iter().rev().map(|(x, b)| (*x, y_of(b.0.min(y_max)))));
            chart
                .draw_series(std::iter::once(Polygon::new(
                    outline,
                    color.mix(0.08).filled(),
                )))?
                .label(format!("{model}: 95 % prediction band"))
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 24, y + 5)], color.mix(0.15).filled())
                });
        }
        chart
            .draw_series(DashedLineSeries::new(
                xy.clone(),
                10,
                6,
                color.stroke_width(2),
            ))?
            .label(format!("{model} predicted (fit)"))
            .legend(move |(x, y)| {
                PathElement::new(
                    vec![(x, y), (x + 8, y), (x + 14, y), (x + 24, y)],
                    color.stroke_width(1),
                )
            });
        chart.draw_series(
            xy.iter()
                .skip(1)
                .map(|xy| EmptyElement::at(*xy) + Circle::new((0, 0), 6, color.stroke_width(2))),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 15))
        .draw()?;
    Ok(())
}

/// Predicted (length, latency, band) per model, starting at its last measured point so the dash continues the
/// curve; never at a length the model cannot run (the planner's rule, `longest_feasible_length`).
fn predictions(rows: &[Row], lat: &[Series], lengths: &[usize]) -> Vec<Prediction> {
    if lengths.is_empty() {
        return Vec::new();
    }
    fits(rows)
        .into_iter()
        .filter_map(|fit| {
            let last = lat.iter().find(|s| s.model == fit.model)?.points.last()?;
            let of_model = || rows.iter().filter(|r| r.model == fit.model);
            let limit = Arch::parse(&fit.arch)
                .and_then(|arch| {
                    longest_feasible_length(
                        arch,
                        of_model().find_map(|r| r.max_positions).map(|m| m as usize),
                        of_model().find_map(|r| r.num_tokens).unwrap_or(1).max(0) as usize,
                    )
                })
                .map_or(f64::MAX, |m| m as f64);
            let at_last = fit.predict(last.0);
            let mut pts = vec![(last.0, last.1, at_last.interval_ms)];
            pts.extend(
                lengths
                    .iter()
                    .map(|&l| l as f64)
                    .filter(|l| *l > last.0 && *l <= limit)
                    .map(|l| {
                        let p = fit.predict(l);
                        (l, p.ms, p.interval_ms)
                    }),
            );
            (pts.len() > 1).then(|| (fit.model.clone(), fit.arch.clone(), pts))
        })
        .collect()
}

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
    let lowest = levels.iter().cloned().fold(f64::MAX, f64::min);
    let highest = levels.iter().cloned().fold(f64::MIN, f64::max);
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
    sources.sort();
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

fn latency_figure<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    rows: &[Row],
    options: &PlotOptions,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(WIDTH / 2);
    let lat = series(rows, |r| r.latency_ms, latency_band);
    let mem = series(rows, |r| r.max_memory_gb, |_, v| (v, v));
    let predicted = predictions(rows, &lat, &options.predict_lengths);
    panel(
        &left,
        "Latency vs context length",
        &format!("Latency (ms): first token / forward; {}", band_label(rows)),
        &lat,
        options.log2_x,
        &predicted,
        false,
    )?;
    panel(
        &right,
        "Peak memory vs context length",
        &memory_label(rows),
        &mem,
        options.log2_x,
        &[],
        false,
    )?;
    root.present()
}

fn ttft_tbt_figure<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
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
    for (area, (title, y, f)) in panels.iter().zip(specs) {
        panel(
            area,
            title,
            y,
            &series(&generating, f, |_, v| (v, v)),
            options.log2_x,
            &[],
            false,
        )?;
    }
    root.present()
}

fn performance_figure<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
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
    models.sort();
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
    let mut chart = ChartBuilder::on(&root)
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

fn tradeoff_figure<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
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
    let mut chart = ChartBuilder::on(&root)
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
    models.sort();
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

/// Draws one figure as PNG and SVG under `figs/`, atomically.
fn render(
    figs: &Path,
    name: &str,
    size: (u32, u32),
    draw: &dyn Fn(DrawingArea<BitMapBackend, Shift>) -> DrawResult<BitMapBackend>,
    draw_svg: &dyn Fn(DrawingArea<SVGBackend, Shift>) -> DrawResult<SVGBackend>,
) -> Result<PathBuf> {
    let mut pixels = vec![0u8; (size.0 * size.1 * 3) as usize];
    {
        let area = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        draw(area).map_err(plot_err)?;
    }
    let image = image::RgbImage::from_raw(size.0, size.1, pixels)
        .ok_or_else(|| plot_err("pixel buffer size mismatch"))?;
    let mut png = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut png, image::ImageFormat::Png)
        .map_err(plot_err)?;
    let png_path = figs.join(format!("{name}.png"));
    write_atomic(&png_path, png.get_ref())?;
    let mut svg = String::new();
    {
        let area = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        draw_svg(area).map_err(plot_err)?;
    }
    write_atomic(&figs.join(format!("{name}.svg")), svg.as_bytes())?;
    Ok(png_path)
}

fn inputs_hash(table: &Path, options: &PlotOptions) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&crate::fsio::read_own(table).unwrap_or_default());
    hasher.update(format!("{options:?}").as_bytes());
    // The code that writes the outputs: a new table column or figure style rebuilds them.
    hasher.update(env!("E3PIPE_REPORT_ID").as_bytes());
    hasher.finalize().to_hex().to_string()
}

/// Runs the plot step; returns the line to print.
pub fn run_step(step: &str, root: &Path, options: &PlotOptions, forced: bool) -> Result<String> {
    let derived = Derived {
        step,
        dir: paths::FIGS_DIR,
        stamp: paths::FIGS_STAMP,
        inputs_noun: "table",
        outputs_noun: "figures",
    };
    let table = derived.require(
        root,
        paths::RESULTS_TABLE,
        "run `e3pipe run --only aggregate` first",
    )?;
    // Never draw from a table that is not what aggregate wrote (truncated, edited by hand, half-copied).
    let tables = root.join(paths::TABLES_DIR);
    if Stamp::load(&tables.join(paths::TABLES_STAMP))
        .and_then(|s| s.vouches_for(&tables, paths::TABLE_FILES[0]))
        == Some(false)
    {
        return Err(Error::Step {
            step: step.into(),
            message: format!(
                "`{}` is not what aggregate wrote (damaged or edited); rebuild it with `e3pipe run --only aggregate,plot`",
                paths::RESULTS_TABLE
            ),
        });
    }
    let inputs = inputs_hash(&table, options);
    derived.run(root, inputs, forced, || {
        draw_all(step, &root.join(paths::FIGS_DIR), &table, options)
    })
}

fn draw_all(step: &str, figs: &Path, table: &Path, options: &PlotOptions) -> Result<Built> {
    register_font();
    let rows = read_table(table)?;
    let [latency, ttft_tbt, performance, tradeoff] = paths::FIGURES;
    render(
        figs,
        latency,
        (WIDTH, HEIGHT),
        &|a| latency_figure(a, &rows, options),
        &|a| latency_figure(a, &rows, options),
    )?;
    render(
        figs,
        ttft_tbt,
        (1800, 600),
        &|a| ttft_tbt_figure(a, &rows, options),
        &|a| ttft_tbt_figure(a, &rows, options),
    )?;
    render(
        figs,
        performance,
        (1000, 650),
        &|a| performance_figure(a, &rows),
        &|a| performance_figure(a, &rows),
    )?;
    render(
        figs,
        tradeoff,
        (1000, 650),
        &|a| tradeoff_figure(a, &rows),
        &|a| tradeoff_figure(a, &rows),
    )?;
    Ok(Built {
        message: format!(
            "step `{step}`: drew {} and {} more figures (PNG and SVG) from {} rows",
            paths::headline_figure(),
            paths::FIGURES.len() - 1,
            rows.len()
        ),
        outputs: paths::FIGURES
            .iter()
            .flat_map(|f| [format!("{f}.png"), format!("{f}.svg")])
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(length: i64, ms: f64) -> Row {
        Row {
            model: "g".into(),
            arch: "decoder".into(),
            status: "ok".into(),
            context_length: Some(length),
            latency_ms: Some(ms),
            max_positions: Some(600),
            num_tokens: Some(4),
            latency_ci_level: Some(0.75),
            ..Row::default()
        }
    }

    #[test]
    fn predictions_stop_where_the_model_cannot_run_and_carry_a_band() {
        let rows: Vec<Row> = [(64, 10.0), (128, 21.0), (256, 39.0)]
            .iter()
            .map(|(l, ms)| row(*l, *ms))
            .collect();
        let lat = series(&rows, |r| r.latency_ms, latency_band);
        // 597 + 4 - 1 = 600 positions fit; 598 does not.
        let predicted = predictions(&rows, &lat, &[512, 597, 598, 4096]);
        let [(model, _, points)] = predicted.as_slice() else {
            panic!("{predicted:?}")
        };
        assert_eq!(model, "g");
        let lengths: Vec<f64> = points.iter().map(|p| p.0).collect();
        assert_eq!(lengths, [256.0, 512.0, 597.0]);
        for (_, ms, band) in &points[1..] {
            let (lo, hi) = band.expect("three lengths leave one degree of freedom");
            assert!(lo < *ms && *ms < hi);
        }
    }

    #[test]
    fn the_band_is_labelled_with_its_real_level() {
        let mut rows = vec![row(64, 1.0), row(128, 2.0)];
        assert_eq!(band_label(&rows), "band: 75 % interval of the median");
        rows[1].latency_ci_level = Some(0.9609375);
        assert_eq!(band_label(&rows), "band: ≥ 75 % interval of the median");
    }
}
