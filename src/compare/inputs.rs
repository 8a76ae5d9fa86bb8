//! One side of a comparison: a project directory (its `latest/inference/`), a results directory, or one results
//! file, read through the results schema. A directory holding several documents of one model (`results/`, the
//! history) is read at the newest of each.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::bench::result::{PointResult, Status, headline_metric};
use crate::error::{Error, Result};
use crate::fsio::read_own;
use crate::models::config::Arch;
use crate::paths::LATEST_DIR;
use crate::report::aggregate::{Row, rows_of_document};
use crate::results::document::{LengthMetrics, ResultsDocument};
use crate::results::legacy;

use super::significance::median_of;

/// One model's point at one length: its record (e3pipe's) or only the medians (the original tool's files).
pub struct Point {
    pub model: String,
    pub arch: String,
    pub length: u64,
    /// Sequences per batch (a model's points at each batch size are matched separately).
    pub batch: u64,
    pub record: Option<PointResult>,
    /// The headline latency median where there is no record.
    pub latency_ms: Option<f64>,
}

impl Point {
    /// The samples compared for `metric` (`latency` is the headline: first token, or the forward pass): one per
    /// measured run. Decode steps within a run are not independent, so `itl_ms` is compared on each run's
    /// median step.
    pub fn samples(&self, metric: &str) -> Vec<f64> {
        let Some(p) = &self.record else {
            return Vec::new();
        };
        let name = self.metric_name(metric);
        let Some(s) = p.stats.get(&name) else {
            return Vec::new();
        };
        if name == "itl_ms" {
            // Without a clean split into runs the steps cannot be tested as if independent: not tested.
            let runs = p.stats.get("tbt_ms").map_or(0, |t| t.n);
            if runs == 0 || s.samples.len() < runs || s.samples.len() % runs != 0 {
                return Vec::new();
            }
            return s
                .samples
                .chunks(s.samples.len() / runs)
                .map(median_of)
                .collect();
        }
        s.samples.clone()
    }

    /// The statistic `metric` names at this point: `latency` resolves to its architecture's headline.
    pub fn metric_name(&self, metric: &str) -> String {
        if metric == "latency" {
            headline_metric(Arch::parse(&self.arch).unwrap_or(Arch::Decoder)).to_string()
        } else {
            metric.to_string()
        }
    }
}

/// Everything read from one side.
pub struct Side {
    /// The path as given.
    pub label: String,
    pub points: Vec<Point>,
    /// Rows as aggregate reads them, for the scaling fits.
    pub rows: Vec<Row>,
    /// What was skipped or chosen, said to the user.
    pub notes: Vec<String>,
}

fn bad(path: &Path, message: String) -> Error {
    Error::BadInput {
        path: path.into(),
        message,
    }
}

fn read_document(file: &Path) -> std::result::Result<ResultsDocument, String> {
    let bytes = read_own(file).map_err(|e| e.to_string())?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("not valid JSON ({e})"))?;
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    legacy::read(&value, &stem).map(|(doc, _)| doc)
}

/// Reads one side; anything that is not results is an error naming the path (exit 2).
pub fn load(path: &Path) -> Result<Side> {
    let label = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| {
        bad(
            path,
            format!("cannot read it ({e}); expected a project directory, a results directory or a results file"),
        )
    })?;
    let mut notes = Vec::new();
    let docs: Vec<ResultsDocument> = if meta.is_file() {
        vec![read_document(path).map_err(|reason| bad(path, reason))?]
    } else if meta.is_dir() {
        // A project, its `latest/`, or a folder of results files.
        let dir = [path.join(LATEST_DIR), path.join("inference")]
            .into_iter()
            .find(|d| d.is_dir())
            .unwrap_or_else(|| path.to_path_buf());
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| bad(&dir, format!("cannot list it ({e})")))?
            .filter_map(std::result::Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        let mut newest: BTreeMap<String, ResultsDocument> = BTreeMap::new();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for file in files {
            match read_document(&file) {
                Ok(doc) => {
                    *seen.entry(doc.model.clone()).or_default() += 1;
                    let keep = newest
                        .get(&doc.model)
                        .is_none_or(|old| doc.exp_id > old.exp_id);
                    if keep {
                        newest.insert(doc.model.clone(), doc);
                    }
                }
                Err(reason) => notes.push(format!("skipped `{}`: {reason}", file.display())),
            }
        }
        for (model, n) in seen.iter().filter(|(_, n)| **n > 1) {
            notes.push(format!(
                "`{label}` holds {n} results of `{model}`: compared the newest (`{}`)",
                newest.get(model).map_or("", |d| d.exp_id.as_str())
            ));
        }
        if newest.is_empty() {
            return Err(bad(
                path,
                format!(
                    "no results files in `{}`; expected a project directory (with `{LATEST_DIR}/`), a results directory or a results file",
                    dir.display()
                ),
            ));
        }
        newest.into_values().collect()
    } else {
        return Err(bad(
            path,
            "is neither a file nor a directory; expected a project directory, a results directory or a results file".into(),
        ));
    };
    let mut points = Vec::new();
    let mut rows = Vec::new();
    for doc in &docs {
        rows.extend(rows_of_document(doc));
        // The smallest batch size's points (`metrics`), then every other batch size's (`batch_metrics`).
        let base = doc.config.bench.batch_size.map_or(1, |b| b as u64);
        let others = doc.batch_metrics.iter().filter_map(|(batch, lengths)| {
            let batch = batch.parse::<u64>().ok()?;
            Some(lengths.iter().map(move |(l, m)| (batch, l, m)))
        });
        let all: Vec<(u64, &String, &LengthMetrics)> = doc
            .metrics
            .iter()
            .map(|(l, m)| (base, l, m))
            .chain(others.flatten())
            .collect();
        for (batch, length, m) in all {
            let Some(length) = crate::results::document::length_key(length) else {
                continue;
            };
            let record = m.point.clone();
            if record.as_ref().is_some_and(|p| p.status != Status::Ok)
                || m.status.as_deref().is_some_and(|s| s != "ok")
            {
                continue;
            }
            let batch = record.as_ref().map_or(batch, |p| p.batch_size as u64);
            points.push(Point {
                model: doc.model.clone(),
                arch: doc.arch.clone(),
                length,
                batch,
                latency_ms: m
                    .latency_ms
                    .or(m.first_token_latency_ms)
                    .or(m.forward_pass_latency_ms),
                record,
            });
        }
    }
    Ok(Side {
        label,
        points,
        rows,
        notes,
    })
}
