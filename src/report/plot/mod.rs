//! The plot step: figures drawn from `tables/inference_results.csv` with plotters, as PNG and SVG.
//! - `latency_curve`: latency vs context length, shaded with the order-statistic interval of the median (its real
//!   level in the axis title: 75 % for 3 runs) or ± std for files that carry no interval; peak memory vs length
//!   (its source named); failed/infeasible points marked on the axis;
//!   predictions from the scaling fit dashed, with their 95 % prediction band, and only at lengths that can run.
//! - Every model has one colour in every panel and figure, every architecture one marker; legends sit in a column
//!   beside the panels, never over data; past 8 models a figure draws one row of panels per architecture.
//! - `ttft_tbt_curves`, `inference_performance`, `inference_memory_tradeoff` as the seed drew them.
//!
//! - The user's own figures (`custom`): any numeric column against another, from a plot step's `figures:`.
//!
//! The figures (`figures`) are made of panels (`panel`) over curves (`series`), with axes (`axes`) and a look
//! (`style`) shared by all.

mod axes;
mod batch_tradeoff;
pub mod custom;
mod facet;
mod figures;
mod hotspots;
mod labels;
mod legend;
mod panel;
mod roofline;
mod series;
mod style;
mod table;
mod ticks;
pub mod trend;

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::fsio::write_atomic;
use crate::paths;
use crate::report::aggregate::fits;
use crate::report::freshness::{Built, Derived, Stamp};
use crate::report::html::{self, Figure};
use crate::report::plot::axes::XScale;
use crate::report::plot::hotspots::Hotspots;
use crate::report::plot::panel::DrawResult;
use crate::report::plot::table::read_table;

/// Plot step options.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlotOptions {
    /// Draw context length on a log2 axis (for long sweeps).
    pub log2_x: bool,
    /// Lengths to predict from the scaling fit, drawn dashed.
    pub predict_lengths: Vec<usize>,
    /// The user's own figures.
    pub figures: Vec<custom::FigureSpec>,
}

impl PlotOptions {
    fn x_scale(&self) -> XScale {
        if self.log2_x {
            XScale::Log2
        } else {
            XScale::Linear
        }
    }
}

fn plot_err(e: impl std::fmt::Display) -> Error {
    Error::Report(format!("plotting failed: {e}"))
}
/// A figure drawn on a bitmap (PNG) or an SVG, collecting hover targets.
type DrawPng<'f> = dyn for<'a> Fn(DrawingArea<BitMapBackend<'a>, Shift>, &Hotspots) -> DrawResult<BitMapBackend<'a>>
    + 'f;
type DrawSvg<'f> = dyn for<'a> Fn(DrawingArea<SVGBackend<'a>, Shift>, &Hotspots) -> DrawResult<SVGBackend<'a>>
    + 'f;

/// Draws one figure as PNG and SVG under `figs/`, atomically; returns the SVG (with its hover targets) for the
/// report.
pub(super) fn render(
    figs: &Path,
    name: &str,
    size: (u32, u32),
    draw: &DrawPng<'_>,
    draw_svg: &DrawSvg<'_>,
) -> Result<String> {
    let mut pixels = vec![0u8; (size.0 * size.1 * 3) as usize];
    {
        let area = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        draw(area, &Hotspots::default()).map_err(plot_err)?;
    }
    let image = image::RgbImage::from_raw(size.0, size.1, pixels)
        .ok_or_else(|| plot_err("pixel buffer size mismatch"))?;
    let mut png = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut png, image::ImageFormat::Png)
        .map_err(plot_err)?;
    write_atomic(&figs.join(format!("{name}.png")), png.get_ref())?;
    let mut svg = String::new();
    let hot = Hotspots::default();
    {
        let area = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        draw_svg(area, &hot).map_err(plot_err)?;
    }
    // Text from foreign files can hold characters XML forbids: the written SVG must stay well-formed.
    let svg = crate::report::html::escape::xml_safe(&hot.into_svg(&svg)).into_owned();
    write_atomic(&figs.join(format!("{name}.svg")), svg.as_bytes())?;
    Ok(svg)
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
        &format!("run `{}` first", crate::rerun::run_with("")),
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
                "`{}` is not what aggregate wrote (damaged or edited); rebuild it with `{}`",
                paths::RESULTS_TABLE,
                crate::rerun::run_with("")
            ),
        });
    }
    let inputs = inputs_hash(&table, options);
    derived.run(root, inputs, forced, || {
        draw_all(step, &root.join(paths::FIGS_DIR), &table, options)
    })
}

fn draw_all(step: &str, figs: &Path, table: &Path, options: &PlotOptions) -> Result<Built> {
    style::register_font();
    let rows = read_table(table)?;
    let [
        latency,
        ttft_tbt,
        performance,
        tradeoff,
        roofline_name,
        batch_name,
    ] = paths::FIGURES;
    let many = facet::facets(&rows).len();
    let latency_svg = render(
        figs,
        latency,
        figures::size(1600, if many > 1 { 520 } else { 650 }, many),
        &|a, h| figures::latency_figure(&a, &rows, options, h),
        &|a, h| figures::latency_figure(&a, &rows, options, h),
    )?;
    let ttft_svg = render(
        figs,
        ttft_tbt,
        figures::size(
            1800,
            if many > 1 { 480 } else { 600 },
            facet::facets(&figures::generating(&rows)).len(),
        ),
        &|a, h| figures::ttft_tbt_figure(&a, &rows, options, h),
        &|a, h| figures::ttft_tbt_figure(&a, &rows, options, h),
    )?;
    let performance_svg = render(
        figs,
        performance,
        (1100, figures::performance_height(&rows)),
        &|a, h| figures::performance_figure(&a, &rows, h),
        &|a, h| figures::performance_figure(&a, &rows, h),
    )?;
    let tradeoff_svg = render(
        figs,
        tradeoff,
        figures::size(1000, if many > 1 { 520 } else { 650 }, many),
        &|a, h| figures::tradeoff_figure(&a, &rows, h),
        &|a, h| figures::tradeoff_figure(&a, &rows, h),
    )?;
    let roofline_svg = render(
        figs,
        roofline_name,
        figures::size(1100, 750, 1),
        &|a, h| roofline::figure(&a, &rows, h),
        &|a, h| roofline::figure(&a, &rows, h),
    )?;
    // Batch sizes compared only when there are two or more; a figure left from a sweep that had them goes.
    let batch_svg = if batch_tradeoff::applies(&rows) {
        Some(render(
            figs,
            batch_name,
            batch_tradeoff::size(&rows),
            &|a, h| batch_tradeoff::figure(&a, &rows, h),
            &|a, h| batch_tradeoff::figure(&a, &rows, h),
        )?)
    } else {
        for ext in ["png", "svg"] {
            let _ = std::fs::remove_file(figs.join(format!("{batch_name}.{ext}")));
        }
        None
    };
    let mut custom_svgs: Vec<(String, String, String)> = Vec::new();
    for spec in &options.figures {
        let svg = render(
            figs,
            &spec.name,
            custom::size(&rows, spec),
            &|a, h| custom::figure(&a, &rows, spec, h),
            &|a, h| custom::figure(&a, &rows, spec, h),
        )?;
        custom_svgs.push((
            spec.name.clone(),
            format!("{} against {}", spec.y, spec.x),
            svg,
        ));
    }
    let mut page_figures = vec![
        Figure {
            name: latency,
            title: "Latency and peak memory against context length",
            svg: &latency_svg,
        },
        Figure {
            name: ttft_tbt,
            title: "Time to first token, time between tokens, end to end",
            svg: &ttft_svg,
        },
        Figure {
            name: performance,
            title: "Throughput by model",
            svg: &performance_svg,
        },
        Figure {
            name: tradeoff,
            title: "Latency against peak memory",
            svg: &tradeoff_svg,
        },
        Figure {
            name: roofline_name,
            title: "Roofline",
            svg: &roofline_svg,
        },
    ];
    if let Some(svg) = &batch_svg {
        page_figures.push(Figure {
            name: batch_name,
            title: "Throughput against latency per batch size, with the Pareto front",
            svg,
        });
    }
    page_figures.extend(
        custom_svgs
            .iter()
            .map(|(name, title, svg)| Figure { name, title, svg }),
    );
    let page = html::page(&rows, &fits(&rows), &page_figures);
    write_atomic(&figs.join(paths::REPORT_PAGE), page.as_bytes())?;
    Ok(Built {
        message: format!(
            "step `{step}`: drew {} and {} more figures (PNG and SVG) and {}/{} from {} rows",
            paths::headline_figure(),
            paths::FIGURES.len() - 1 - usize::from(batch_svg.is_none()) + options.figures.len(),
            paths::FIGS_DIR,
            paths::REPORT_PAGE,
            rows.len()
        ),
        outputs: paths::FIGURES
            .iter()
            .copied()
            .filter(|f| *f != batch_name || batch_svg.is_some())
            .chain(options.figures.iter().map(|f| f.name.as_str()))
            .flat_map(|f| [format!("{f}.png"), format!("{f}.svg")])
            .chain(std::iter::once(paths::REPORT_PAGE.to_string()))
            .collect(),
    })
}

/// Draws `figs/history.png` and `.svg` (`trend`); returns the PNG's path.
pub fn draw_history(
    figs: &Path,
    histories: &[crate::report::history::PointHistory],
) -> Result<std::path::PathBuf> {
    style::register_font();
    render(
        figs,
        paths::HISTORY_FIGURE,
        trend::size(histories),
        &|a, _| trend::figure(&a, histories),
        &|a, _| trend::figure(&a, histories),
    )?;
    Ok(figs.join(format!("{}.png", paths::HISTORY_FIGURE)))
}
