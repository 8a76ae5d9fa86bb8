//! One panel of a figure: each model's curve against context length, its band shaded, failed and infeasible lengths
//! marked on the axis, predictions dashed with their band.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::report::plot::axes::{XScale, YScale};
use crate::report::plot::hotspots::Hotspots;
use crate::report::plot::series::{Prediction, Series};
use crate::report::plot::style::{Marker, Palette};

pub(super) type DrawResult<DB> =
    std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;
/// What a panel says and how its axes are drawn.
#[derive(Debug, Clone, Copy)]
pub(super) struct PanelSpec<'a> {
    pub(super) title: &'a str,
    pub(super) y_desc: &'a str,
    pub(super) x: XScale,
    pub(super) y: YScale,
    pub(super) band: Band,
}

/// What the band around a curve is, drawn so that two different statistics never look alike: the interval of the
/// median shaded; ± one standard deviation over runs as dotted edges, unshaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Band {
    Interval,
    Spread,
}

/// Draws `all` (and `predictions`) into `area` as `spec` says, each model in its `palette` colour. The legend is
/// the figure's (`legend`), beside the panels.
pub(super) fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    spec: &PanelSpec<'_>,
    all: &[Series],
    predictions: &[Prediction],
    palette: &Palette,
    hot: &Hotspots,
) -> DrawResult<DB> {
    let (x, y) = (spec.x, spec.y);
    let xs: Vec<f64> = all
        .iter()
        .flat_map(|s| {
            s.points
                .iter()
                .map(|p| p.0)
                .chain(s.missing.iter().map(|m| m.0))
        })
        .chain(
            predictions
                .iter()
                .flat_map(|p| p.points.iter().map(|q| q.0)),
        )
        .collect();
    let ys: Vec<f64> = all
        .iter()
        .flat_map(|s| s.points.iter().flat_map(|p| [p.2, p.3, p.1]))
        // Prediction bands are left out of the range: far extrapolations with few lengths have bands wide enough
        // to flatten every measured curve; the band is clipped at the top instead.
        .chain(
            predictions
                .iter()
                .flat_map(|p| p.points.iter().map(|q| q.1)),
        )
        .filter(|v| y.shows(*v))
        .collect();
    let (x_min, x_max) = xs
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(*x), b.max(*x)));
    let (x_min, x_max) = if xs.is_empty() {
        (1.0, 2.0)
    } else {
        (x.of(x_min), x.of(x_max))
    };
    let pad = ((x_max - x_min) * 0.05).max(x.min_pad());
    let y_max = ys.iter().copied().fold(0.0, f64::max).max(1e-9) * 1.1;
    let y_min = y.floor(&ys, y_max);
    let y_of = |v: f64| y.of(v, y_min);
    let decimals = crate::report::plot::ticks::decimals_for(y_min, y_max);
    let mut chart = ChartBuilder::on(area)
        .caption(spec.title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d((x_min - pad)..(x_max + pad), y_of(y_min)..y_of(y_max))?;
    chart
        .configure_mesh()
        .x_desc(x.desc())
        .y_desc(spec.y_desc)
        .x_labels(x.label_count(x_min, x_max))
        .x_label_formatter(&|at| x.label(*at))
        .y_label_formatter(&|at| y.label(*at, decimals))
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .draw()?;
    for s in all {
        let color = palette.color(&s.model);
        if s.points.len() > 1 {
            match spec.band {
                Band::Interval => {
                    let mut band: Vec<(f64, f64)> =
                        s.points.iter().map(|p| (x.of(p.0), y_of(p.3))).collect();
                    band.extend(s.points.iter().rev().map(|p| (x.of(p.0), y_of(p.2))));
                    chart.draw_series(std::iter::once(Polygon::new(
                        band,
                        color.mix(0.18).filled(),
                    )))?;
                }
                Band::Spread => {
                    for edge in [2, 3] {
                        let line: Vec<(f64, f64)> = s
                            .points
                            .iter()
                            .map(|p| (x.of(p.0), y_of(if edge == 2 { p.2 } else { p.3 })))
                            .collect();
                        chart.draw_series(DashedLineSeries::new(
                            line,
                            2,
                            4,
                            color.mix(0.7).stroke_width(1),
                        ))?;
                    }
                }
            }
        }
        // Colour by model, line style by batch size.
        let line: Vec<(f64, f64)> = s.points.iter().map(|p| (x.of(p.0), y_of(p.1))).collect();
        match palette.dash(s.batch_size) {
            None => chart.draw_series(LineSeries::new(line, color.stroke_width(3)))?,
            Some((size, gap)) => chart.draw_series(DashedLineSeries::new(
                line,
                size,
                gap,
                color.stroke_width(3),
            ))?,
        };
        let at: Vec<(f64, f64)> = s.points.iter().map(|p| (x.of(p.0), y_of(p.1))).collect();
        let style = color.filled();
        match Marker::of_arch(&s.arch) {
            Marker::Triangle => chart.draw_series(
                at.iter()
                    .map(|xy| EmptyElement::at(*xy) + TriangleMarker::new((0, 0), 8, style)),
            )?,
            Marker::Square => chart.draw_series(
                at.iter()
                    .map(|xy| EmptyElement::at(*xy) + Rectangle::new([(-5, -5), (5, 5)], style)),
            )?,
            Marker::Circle => chart.draw_series(
                at.iter()
                    .map(|xy| EmptyElement::at(*xy) + Circle::new((0, 0), 6, style)),
            )?,
        };
        for (p, tip) in s.points.iter().zip(&s.tips) {
            hot.add(chart.backend_coord(&(x.of(p.0), y_of(p.1))), tip.clone());
        }
        for (length, _, tip) in &s.missing {
            hot.add(
                chart.backend_coord(&(x.of(*length), y_of(y_min))),
                tip.clone(),
            );
        }
        // Failed or infeasible points sit on the x axis as crosses labelled with their status.
        chart.draw_series(s.missing.iter().map(|(length, status, _)| {
            EmptyElement::at((x.of(*length), y_of(y_min)))
                + Cross::new((0, -8), 7, color.stroke_width(3))
                + Text::new(
                    status.clone(),
                    (-28, -34),
                    ("sans-serif", 14).into_font().color(&color),
                )
        }))?;
    }
    for p in predictions {
        let color = palette.color(&p.model);
        let xy: Vec<(f64, f64)> = p
            .points
            .iter()
            .map(|(l, y, _)| (x.of(*l), y_of(*y)))
            .collect();
        // The 95 % prediction band: where a measurement at that length would fall if the fitted form held.
        let banded: Vec<(f64, (f64, f64))> = p
            .points
            .iter()
            .filter_map(|(l, _, b)| Some((x.of(*l), (*b)?)))
            .collect();
        if banded.len() > 1 {
            let mut outline: Vec<(f64, f64)> = banded
                .iter()
                .map(|(x, b)| (*x, y_of(b.1.min(y_max))))
                .collect();
            outline.extend(banded.iter().rev().map(|(x, b)| (*x, y_of(b.0.min(y_max)))));
            chart.draw_series(std::iter::once(Polygon::new(
                outline,
                color.mix(0.08).filled(),
            )))?;
        }
        chart.draw_series(DashedLineSeries::new(
            xy.clone(),
            10,
            6,
            color.stroke_width(2),
        ))?;
        chart.draw_series(
            xy.iter()
                .skip(1)
                .map(|xy| EmptyElement::at(*xy) + Circle::new((0, 0), 6, color.stroke_width(2))),
        )?;
        for ((l, ms, band), at) in p.points.iter().zip(&xy).skip(1) {
            let band = band.map_or(String::new(), |(lo, hi)| {
                format!("\n95 % prediction band: {lo:.1} – {hi:.1} ms")
            });
            hot.add(
                chart.backend_coord(at),
                format!(
                    "{}, {l} tokens{}: predicted {ms:.1} ms ({} fit, not measured){band}",
                    p.model,
                    crate::report::plot::series::batch_note(p.batch_size),
                    p.form
                ),
            );
        }
    }
    Ok(())
}
