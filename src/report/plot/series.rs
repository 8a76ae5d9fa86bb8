//! The figures' data: one curve per model and batch size (its `ok` points with their band, and the lengths that failed or were
//! infeasible), and the dashed predictions from the scaling fit.

use crate::bench::stats::level_label;
use crate::models::config::{Arch, longest_feasible_length};
use crate::report::aggregate::{Row, curves, fits};
use crate::report::point_warnings::point_warnings;

/// A predicted point: (length, `latency_ms`, its 95 % prediction band).
pub(super) type Predicted = (f64, f64, Option<(f64, f64)>);

/// A model's predicted curve from its scaling fit.
pub(super) struct Prediction {
    pub(super) model: String,
    pub(super) batch_size: Option<i64>,
    /// The fitted form (`power law`, `quadratic`, `broken power law`).
    pub(super) form: String,
    /// (length, `latency_ms`, 95 % prediction band), from the last measured point on.
    pub(super) points: Vec<Predicted>,
}
/// Picks one metric of a row.
pub(super) type Metric = fn(&Row) -> Option<f64>;

/// One model's curve at one batch size.
pub(super) struct Series {
    pub(super) model: String,
    pub(super) arch: String,
    pub(super) batch_size: Option<i64>,
    /// (length, value, band low, band high) of `ok` points.
    pub(super) points: Vec<(f64, f64, f64, f64)>,
    /// Each point's hover text.
    pub(super) tips: Vec<String>,
    /// Lengths that were infeasible or failed: (length, status, hover text).
    pub(super) missing: Vec<(f64, String, String)>,
}

/// A point's hover text: what it is, its value and band, its runs and status, and anything to beware of.
fn tip(r: &Row, what: &str, v: f64, (lo, hi): (f64, f64)) -> String {
    let mut lines = vec![
        format!(
            "{} ({}), {} tokens{}",
            r.model,
            r.arch,
            r.context_length.unwrap_or(0),
            batch_note(r.batch_size)
        ),
        format!("{what}: {}", short(v)),
    ];
    if lo < hi {
        let is_interval = r.latency_ci_low_ms == Some(lo) && r.latency_ci_high_ms == Some(hi);
        lines.push(match (is_interval, r.latency_ci_level) {
            (true, Some(level)) => format!(
                "{} interval of the median: {} – {}",
                level_label(level),
                short(lo),
                short(hi)
            ),
            _ => format!("± std: {} – {}", short(lo), short(hi)),
        });
    }
    lines.push(format!(
        "n = {}, status {}",
        r.n.map_or_else(|| "?".into(), |n| n.to_string()),
        r.status
    ));
    lines.extend(point_warnings(r));
    lines.join("\n")
}

/// `, batch 4` after a point's length; nothing where the batch is not known.
pub(super) fn batch_note(batch: Option<i64>) -> String {
    batch.map_or(String::new(), |b| format!(", batch {b}"))
}

fn short(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// Each model's curve of `value` (named `what` in hover texts), banded by `band`.
pub(super) fn series(
    rows: &[Row],
    what: &str,
    value: impl Fn(&Row) -> Option<f64>,
    band: impl Fn(&Row, f64) -> (f64, f64),
) -> Vec<Series> {
    curves(rows)
        .into_iter()
        .map(|(model, arch, batch)| {
            let own = || {
                rows.iter()
                    .filter(move |r| r.model == model && r.batch_size == batch)
            };
            let mut points: Vec<((f64, f64, f64, f64), String)> = own()
                .filter(|r| r.status == "ok")
                .filter_map(|r| {
                    let v = value(r)?;
                    let (lo, hi) = band(r, v);
                    Some((
                        (r.context_length? as f64, v, lo, hi),
                        tip(r, what, v, (lo, hi)),
                    ))
                })
                .collect();
            points.sort_by(|a, b| a.0.0.total_cmp(&b.0.0));
            let (points, tips) = points.into_iter().unzip();
            let missing = own()
                .filter(|r| r.status != "ok")
                .filter_map(|r| {
                    let length = r.context_length?;
                    let reason = r
                        .reason
                        .as_deref()
                        .map_or(String::new(), |why| format!(": {why}"));
                    Some((
                        length as f64,
                        r.status.clone(),
                        format!(
                            "{} ({}), {length} tokens{}: {}{reason}",
                            r.model,
                            r.arch,
                            batch_note(r.batch_size),
                            r.status
                        ),
                    ))
                })
                .collect();
            Series {
                model: model.to_string(),
                arch: arch.to_string(),
                batch_size: batch,
                points,
                tips,
                missing,
            }
        })
        .collect()
}

/// The latency band: the interval of the median where the row has one, else ± std (files from the original tool),
/// else none.
pub(super) fn latency_band(r: &Row, v: f64) -> (f64, f64) {
    match (r.latency_ci_low_ms, r.latency_ci_high_ms, r.latency_std_ms) {
        (Some(lo), Some(hi), _) => (lo, hi),
        (_, _, Some(s)) => (v - s, v + s),
        _ => (v, v),
    }
}

/// Predicted (length, latency, band) per model, starting at its last measured point so the dash continues the
/// curve; never at a length the model cannot run (the planner's rule, `longest_feasible_length`).
pub(super) fn predictions(rows: &[Row], lat: &[Series], lengths: &[usize]) -> Vec<Prediction> {
    if lengths.is_empty() {
        return Vec::new();
    }
    fits(rows)
        .into_iter()
        .filter_map(|fit| {
            let last = lat
                .iter()
                .find(|s| s.model == fit.model && s.batch_size == fit.batch_size)?
                .points
                .last()?;
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
            let form = fit.regime.as_ref().map_or("power_law", |r| r.form.as_str());
            (pts.len() > 1).then(|| Prediction {
                model: fit.model.clone(),
                batch_size: fit.batch_size,
                form: form.replace('_', " "),
                points: pts,
            })
        })
        .collect()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(crate) fn row(length: i64, ms: f64) -> Row {
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
        let lat = series(&rows, "latency (ms)", |r| r.latency_ms, latency_band);
        // 597 + 4 - 1 = 600 positions fit; 598 does not.
        let predicted = predictions(&rows, &lat, &[512, 597, 598, 4096]);
        let [
            Prediction {
                model,
                form,
                points,
                ..
            },
        ] = predicted.as_slice()
        else {
            panic!("{} predictions", predicted.len())
        };
        assert_eq!((model.as_str(), form.as_str()), ("g", "power law"));
        let lengths: Vec<f64> = points.iter().map(|p| p.0).collect();
        assert_eq!(lengths, [256.0, 512.0, 597.0]);
        for (_, ms, band) in &points[1..] {
            let (lo, hi) = band.expect("three lengths leave one degree of freedom");
            assert!(lo < *ms && *ms < hi);
        }
    }
}
