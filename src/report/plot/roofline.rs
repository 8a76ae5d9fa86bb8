//! `figs/roofline`: every point's arithmetic intensity (FLOP per byte moved) against the FLOP/s it achieved, on log
//! axes, under the roofs measured on the machine that ran it (the bandwidth slope and the matmul ceiling). As in
//! every figure, colour is the model's and the marker its architecture's; the phase is the fill: headline phases
//! (prefill, forward, encoder + first token) filled, decode steps hollow. The label is the context length, moved
//! or left out where it would cover another (`labels`). Rows without counted work (results from elsewhere) are
//! left out.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::report::aggregate::Row;
use crate::report::plot::hotspots::Hotspots;
use crate::report::plot::labels::Labels;
use crate::report::plot::legend::{self, Entry, Glyph};
use crate::report::plot::panel::DrawResult;
use crate::report::plot::style::{Marker, Palette, short_number};

/// One point of the figure.
struct Dot {
    model_index: usize,
    marker: Marker,
    intensity: f64,
    flops_per_s: f64,
    length: i64,
    batch: Option<i64>,
    decode: bool,
}

fn dots(rows: &[Row], models: &[&str]) -> Vec<Dot> {
    let mut out = Vec::new();
    // A point is drawn only under the roofs it was read against.
    for r in rows
        .iter()
        .filter(|r| r.status == "ok" && r.roof.peak_tflops.is_some() && r.roof.peak_gbps.is_some())
    {
        let Some(model_index) = models.iter().position(|m| *m == r.model) else {
            continue;
        };
        let length = r.context_length.unwrap_or(0);
        // The headline phase over its latency, a decode step over the mean step.
        let phases = [
            (r.roof.flops, r.roof.bytes, r.latency_ms, false),
            (r.roof.decode_flops, r.roof.decode_bytes, r.tbt_ms, true),
        ];
        for (flops, bytes, ms, decode) in phases {
            if let (Some(flops), Some(bytes), Some(ms)) = (flops, bytes, ms)
                && bytes > 0.0
                && ms > 0.0
            {
                out.push(Dot {
                    model_index,
                    marker: Marker::of_arch(&r.arch),
                    intensity: flops / bytes,
                    flops_per_s: flops / (ms / 1e3),
                    length,
                    batch: r.batch_size,
                    decode,
                });
            }
        }
    }
    out
}

/// A dot's label: its length, and `×b4` after it when the table holds several batch sizes.
fn label(d: &Dot, swept: bool) -> String {
    match d.batch {
        Some(b) if swept => format!("{}×b{b}", d.length),
        _ => d.length.to_string(),
    }
}

/// The distinct roofs of the rows: (peak FLOP/s, peak bytes/s).
fn roofs(rows: &[Row]) -> Vec<(f64, f64)> {
    let mut roofs: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|r| Some((r.roof.peak_tflops? * 1e12, r.roof.peak_gbps? * 1e9)))
        .filter(|(f, b)| *f > 0.0 && *b > 0.0)
        .collect();
    roofs.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    roofs.dedup_by(|a, b| (a.0 / b.0 - 1.0).abs() < 1e-6 && (a.1 / b.1 - 1.0).abs() < 1e-6);
    roofs
}

/// Whether any row can be drawn (plot draws the figure either way; an empty one says why).
pub(super) fn figure<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    rows: &[Row],
    hot: &Hotspots,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let palette = Palette::of(rows);
    let swept = palette.swept();
    let (root, legend_area) = legend::split(root);
    let root = &root;
    let mut models: Vec<&str> = rows.iter().map(|r| r.model.as_str()).collect();
    models.sort_unstable();
    models.dedup();
    let dots = dots(rows, &models);
    let roofs = roofs(rows);
    if dots.is_empty() || roofs.is_empty() {
        root.draw(&Text::new(
            "No roofline: these results carry no counted work or measured peaks (results from elsewhere, or TorchScript models).",
            (40, 60),
            ("sans-serif", 20),
        ))?;
        return root.present();
    }
    let (mut x_min, mut x_max, mut y_min, mut y_max) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for d in &dots {
        x_min = x_min.min(d.intensity);
        x_max = x_max.max(d.intensity);
        y_min = y_min.min(d.flops_per_s);
        y_max = y_max.max(d.flops_per_s);
    }
    for (peak_flops, peak_bytes) in &roofs {
        y_max = y_max.max(*peak_flops);
        // Show the ridge point of every roof.
        x_max = x_max.max(peak_flops / peak_bytes);
        x_min = x_min.min(peak_flops / peak_bytes);
    }
    let (x_min, x_max) = (x_min / 3.0, x_max * 3.0);
    let (y_min, y_max) = (y_min / 3.0, y_max * 2.0);
    let mut chart = ChartBuilder::on(root)
        .caption(
            "Roofline: achieved FLOP/s against arithmetic intensity",
            ("sans-serif", 24),
        )
        .margin(20)
        .x_label_area_size(55)
        .y_label_area_size(90)
        .build_cartesian_2d((x_min..x_max).log_scale(), (y_min..y_max).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("Arithmetic intensity (FLOP per byte moved)")
        .y_desc("Achieved FLOP/s (GFLOP/s)")
        .y_label_formatter(&|y| short_number(y / 1e9))
        .x_label_formatter(&|x| short_number(*x))
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .draw()?;
    let mut entries = Vec::new();
    for (i, (peak_flops, peak_bytes)) in roofs.iter().enumerate() {
        let ridge = peak_flops / peak_bytes;
        let roof = vec![
            (x_min, x_min * peak_bytes),
            (ridge, *peak_flops),
            (x_max, *peak_flops),
        ];
        chart.draw_series(LineSeries::new(roof, BLACK.mix(0.7).stroke_width(2)))?;
        let label = format!(
            "roofs: {:.1} GFLOP/s, {:.1} GB/s",
            peak_flops / 1e9,
            peak_bytes / 1e9
        );
        entries.push(Entry {
            label: if i == 0 {
                label
            } else {
                format!("{label} (other device)")
            },
            color: BLACK,
            glyph: Glyph::Roof,
        });
    }
    entries.extend(legend::models(rows, &palette).into_iter().filter(|e| {
        dots.iter()
            .any(|d| e.label.starts_with(&format!("{} (", models[d.model_index])))
    }));
    let corner = root.get_base_pixel();
    let mut labels = Labels::default();
    // Headline phases first, so their labels win a crowded spot.
    let mut order: Vec<&Dot> = dots.iter().collect();
    order.sort_by_key(|d| d.decode);
    for d in order {
        let model = models[d.model_index];
        let color = palette.color(model);
        let pixel = chart.backend_coord(&(d.intensity, d.flops_per_s));
        let local = (pixel.0 - corner.0, pixel.1 - corner.1);
        d.marker.draw_styled_at(root, local, color, d.decode)?;
        hot.add(
            pixel,
            format!(
                "{model}, {} tokens{}, {}\n{:.2} FLOP/byte, {:.2} GFLOP/s",
                d.length,
                crate::report::plot::series::batch_note(d.batch),
                if d.decode {
                    "decode step"
                } else {
                    "prefill / forward"
                },
                d.intensity,
                d.flops_per_s / 1e9
            ),
        );
        // Lengths beside the markers: headline phases to the right, decode steps to the left.
        let text = label(d, swept);
        let want = if d.decode {
            (local.0 - 10 - 7 * text.len() as i32, local.1 - 16)
        } else {
            (local.0 + 9, local.1 - 18)
        };
        if let Some(spot) = labels.place(want) {
            root.draw(&Text::new(
                text,
                spot,
                ("sans-serif", 13).into_font().color(&color),
            ))?;
        }
    }
    entries.push(Entry::grey("filled: prefill / forward", Glyph::Dot));
    if dots.iter().any(|d| d.decode) {
        entries.push(Entry::grey("hollow: decode step", Glyph::Hollow));
    }
    legend::draw(&legend_area, &entries)?;
    root.present()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::document::RoofMetrics;

    fn row(model: &str, flops: f64, ms: f64) -> Row {
        Row {
            model: model.into(),
            status: "ok".into(),
            context_length: Some(64),
            latency_ms: Some(ms),
            tbt_ms: Some(2.0),
            roof: RoofMetrics {
                flops: Some(flops),
                bytes: Some(1e6),
                decode_flops: Some(2e6),
                decode_bytes: Some(1e6),
                peak_tflops: Some(0.1),
                peak_gbps: Some(10.0),
                ..RoofMetrics::default()
            },
            ..Row::default()
        }
    }

    #[test]
    fn each_row_gives_a_headline_and_a_decode_dot_and_rows_from_elsewhere_none() {
        // A row with work but no peaks is not drawn under another row's roof.
        let mut no_peaks = row("b", 1e9, 10.0);
        no_peaks.roof.peak_tflops = None;
        let rows = vec![
            row("a", 1e9, 10.0),
            Row {
                model: "seed".into(),
                status: "ok".into(),
                ..Row::default()
            },
            no_peaks,
        ];
        let d = dots(&rows, &["a", "seed", "b"]);
        assert_eq!(d.len(), 2);
        assert!((d[0].intensity - 1000.0).abs() < 1e-9 && (d[0].flops_per_s - 1e11).abs() < 1.0);
        assert!(d[1].decode && (d[1].flops_per_s - 1e9).abs() < 1e-3);
        assert_eq!(roofs(&rows), vec![(1e11, 1e10)]);
    }
}
