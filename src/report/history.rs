//! Results over time: every measurement of every point in `results/` (e3pipe's documents and the original tool's
//! or older ones alike, read as aggregate reads them), one per run, oldest first, each marked when it was measured
//! by other code or on other hardware than the newest. `e3pipe history` prints them and draws `figs/history`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;

use crate::report::aggregate::{Skipped, collect};
use crate::report::columns::{COLUMNS, Kind};

/// Which points and which number.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub model: Option<String>,
    pub length: Option<i64>,
    pub batch: Option<i64>,
    /// A numeric column of the results table (`latency_ms` when not given).
    pub metric: Option<String>,
}

impl Filter {
    pub fn metric(&self) -> &str {
        self.metric.as_deref().unwrap_or("latency_ms")
    }
}

/// One run's measurement of one point.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    pub run: String,
    /// When it finished (or the document's time, for files that do not say).
    pub when: String,
    pub value: f64,
    /// The order-statistic interval of the median (latency only) ...
    pub interval: Option<(f64, f64)>,
    /// ... and its exact level (75 % for 3 runs), never stronger than the method.
    pub interval_level: Option<f64>,
    pub n: Option<i64>,
    pub method: Option<String>,
    pub device: Option<String>,
    /// Measured by other code than the newest measurement of the point.
    pub other_code: bool,
    /// Measured on other hardware than the newest.
    pub other_hardware: bool,
    /// The results document it was read from (its first, when several hold it).
    pub document: String,
}

/// A point's history.
#[derive(Debug, Clone, Serialize)]
pub struct PointHistory {
    pub model: String,
    pub arch: String,
    pub context_length: i64,
    pub batch_size: i64,
    pub metric: String,
    pub measurements: Vec<Measurement>,
}

impl PointHistory {
    pub fn label(&self) -> String {
        if self.batch_size == 1 {
            format!("{}@{}", self.model, self.context_length)
        } else {
            format!(
                "{}@{}×b{}",
                self.model, self.context_length, self.batch_size
            )
        }
    }
}

/// Whether `metric` is a numeric column of the table; else the nearest name.
pub fn check_metric(metric: &str) -> Result<(), Option<String>> {
    match COLUMNS.iter().find(|c| c.name == metric) {
        Some(c) if c.kind != Kind::Text => Ok(()),
        _ => Err(crate::error::suggest(
            metric,
            COLUMNS
                .iter()
                .filter(|c| c.kind != Kind::Text)
                .map(|c| c.name),
        )),
    }
}

/// The time a document's name carries (`inference_scaling_20261205_035703`), as RFC 3339.
fn time_of(exp_id: &str) -> Option<String> {
    let digits: String = exp_id
        .trim_start_matches("inference_scaling_")
        .chars()
        .take(15)
        .collect();
    let t = chrono::NaiveDateTime::parse_from_str(&digits, "%Y%m%d_%H%M%S").ok()?;
    Some(t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// Every point's history from the documents in `results_dir`, by model, batch size and length.
pub fn histories(results_dir: &Path, filter: &Filter) -> (Vec<PointHistory>, Vec<Skipped>) {
    let (rows, skipped) = collect(results_dir, &[]);
    let metric = filter.metric().to_string();
    let mut points: BTreeMap<(String, i64, i64), (String, Vec<Measurement>)> = BTreeMap::new();
    let mut seen: BTreeSet<(String, i64, i64, String, u64)> = BTreeSet::new();
    for row in &rows {
        let (Some(length), Some(v)) = (
            row.context_length,
            crate::report::columns::number(row, &metric),
        ) else {
            continue;
        };
        let batch = row.batch_size.unwrap_or(1);
        if row.status != "ok"
            || filter.model.as_ref().is_some_and(|m| *m != row.model)
            || filter.length.is_some_and(|l| l != length)
            || filter.batch.is_some_and(|b| b != batch)
        {
            continue;
        }
        let run = row.run_id.clone().unwrap_or_else(|| row.exp_id.clone());
        // The same measurement in several documents (a document keeps the cached points it did not measure).
        if !seen.insert((row.model.clone(), length, batch, run.clone(), v.to_bits())) {
            continue;
        }
        let when = row
            .finished_at
            .clone()
            .filter(|t| !t.is_empty())
            .or_else(|| time_of(&row.exp_id))
            .unwrap_or_default();
        let interval = (metric == "latency_ms")
            .then_some(())
            .and(row.latency_ci_low_ms.zip(row.latency_ci_high_ms));
        points
            .entry((row.model.clone(), batch, length))
            .or_insert_with(|| (row.arch.clone(), Vec::new()))
            .1
            .push(Measurement {
                run,
                when,
                value: v,
                interval,
                interval_level: interval.and(row.latency_ci_level),
                n: row.n,
                method: row.method.clone(),
                device: row.device.clone(),
                other_code: false,
                other_hardware: false,
                document: row.exp_id.clone(),
            });
    }
    let histories = points
        .into_iter()
        .map(|((model, batch, length), (arch, mut measurements))| {
            measurements.sort_by(|a, b| (&a.when, &a.run).cmp(&(&b.when, &b.run)));
            if let Some(newest) = measurements.last().cloned() {
                for m in &mut measurements {
                    m.other_code =
                        m.method.is_some() && newest.method.is_some() && m.method != newest.method;
                    m.other_hardware =
                        m.device.is_some() && newest.device.is_some() && m.device != newest.device;
                }
            }
            PointHistory {
                model,
                arch,
                context_length: length,
                batch_size: batch,
                metric: metric.clone(),
                measurements,
            }
        })
        .collect();
    (histories, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_names_carry_their_time() {
        assert_eq!(
            time_of("inference_scaling_20261205_035703_2").as_deref(),
            Some("2026-12-05T03:57:03Z")
        );
        assert_eq!(time_of("something else"), None);
    }

    #[test]
    fn metrics_are_numeric_columns() {
        assert!(check_metric("latency_ms").is_ok());
        assert!(check_metric("tbt_ms").is_ok());
        assert!(check_metric("model").is_err(), "a text column");
        assert_eq!(check_metric("latncy_ms"), Err(Some("latency_ms".into())));
    }
}
