//! The aggregate step: every results document in `latest/inference/` (ours or the seed's Python tool's, scaling
//! or single-point) becomes rows of `tables/inference_results.csv` (+ `.parquet`), one per (`exp_id`, model,
//! context length, batch size), plus `tables/summary.csv` and the scaling fit `tables/scaling_fit.csv`, both per
//! (model, batch size): a model has one curve per batch size. A file that is not a
//! results document is reported and skipped. The step is skipped when its inputs' hash has not changed.

use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde_json::Value;

use crate::bench::memory::MemorySource;
use crate::bench::result::{PointResult, headline_metric};
use crate::bench::stats::{MIN_N_P90, MIN_N_P99, Summary};
use crate::error::{Error, Result};
use crate::fsio::write_atomic;
use crate::output;
use crate::paths::{self, sanitize};
use crate::report::columns::{COLUMNS, Cell, Kind};
use crate::report::fit::{Fit, fit_power_law};
use crate::report::freshness::{Built, Derived};
use crate::report::regimes::{Form, Regime};
use crate::results::document::{LengthMetrics, ResultsDocument, RoofMetrics};
use crate::results::legacy;

/// One row of `inference_results.csv`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    pub exp_id: String,
    pub model: String,
    pub arch: String,
    pub context_length: Option<i64>,
    /// Sequences per batch, each `context_length` tokens.
    pub batch_size: Option<i64>,
    pub latency_ms: Option<f64>,
    pub throughput: Option<f64>,
    pub max_memory_gb: Option<f64>,
    pub ttft_ms: Option<f64>,
    pub tbt_ms: Option<f64>,
    pub e2e_latency_ms: Option<f64>,
    pub encoder_latency_ms: Option<f64>,
    pub latency_std_ms: Option<f64>,
    pub ttft_std_ms: Option<f64>,
    pub tbt_std_ms: Option<f64>,
    pub e2e_std_ms: Option<f64>,
    pub latency_mean_ms: Option<f64>,
    pub latency_p90_ms: Option<f64>,
    pub latency_ci_low_ms: Option<f64>,
    pub latency_ci_high_ms: Option<f64>,
    /// The exact coverage of that interval (0.75 for 3 runs), never a nominal 95 %.
    pub latency_ci_level: Option<f64>,
    pub n: Option<i64>,
    /// Input tokens/s of the prefill (or encoder, or forward); generated tokens/s of the decode phase alone.
    pub prefill_tokens_per_sec: Option<f64>,
    pub decode_tokens_per_sec: Option<f64>,
    /// Sequences completed per second: the batch over the forward pass or the whole generation.
    pub sequences_per_sec: Option<f64>,
    /// `yes` when no other batch size of the same model and length is both faster per request and of more
    /// sequences/s (`report::pareto`); empty when only one was measured.
    pub pareto_front: Option<String>,
    /// Inter-token latency over every decode step of every run.
    pub itl_median_ms: Option<f64>,
    pub itl_p90_ms: Option<f64>,
    pub itl_p99_ms: Option<f64>,
    pub num_tokens: Option<i64>,
    /// `cuda_allocator` or `host_rss`: what `max_memory_gb` measured.
    pub memory_source: Option<String>,
    pub stopped_by: Option<String>,
    pub finished_at: Option<String>,
    /// The measuring code's identity and the run that measured the point.
    pub method: Option<String>,
    pub run_id: Option<String>,
    pub status: String,
    pub reason: Option<String>,
    pub input_tokens: Option<i64>,
    pub peak_memory_bytes: Option<i64>,
    /// CPU: the peak resident set minus the worker's pre-load baseline (what the model and the point added).
    pub rss_above_baseline_bytes: Option<i64>,
    /// CUDA: the allocator's reserved peak (allocated plus cached blocks), beside the allocated peak.
    pub cuda_reserved_peak_bytes: Option<i64>,
    pub device: Option<String>,
    pub dtype: Option<String>,
    pub weights: Option<String>,
    /// The longest input the architecture addresses (GPT-2 `n_positions`, BERT `max_position_embeddings`), so
    /// predictions never extend past it.
    pub max_positions: Option<i64>,
    /// The point read against the machine's roofs (`bench::roofline`); empty for results measured elsewhere.
    pub roof: RoofMetrics,
    /// Energy per measured run, per sequence, per token, and the mean power (the seed's
    /// `inference_energy_per_sample_joules` and `avg_power_watts` read into the same columns).
    pub energy_j: Option<f64>,
    pub energy_per_sample_j: Option<f64>,
    pub energy_per_token_j: Option<f64>,
    pub idle_power_w: Option<f64>,
    pub energy_above_idle_j: Option<f64>,
    pub prefill_energy_j: Option<f64>,
    pub decode_energy_j: Option<f64>,
    pub avg_power_w: Option<f64>,
    pub energy_source: Option<String>,
    /// The seed tool's spreads of the encoder time and the throughput, and its memory after the run.
    pub encoder_std_ms: Option<f64>,
    pub throughput_std: Option<f64>,
    pub current_memory_gb: Option<f64>,
    /// Runs of the headline metric flagged as outliers (modified z-score above 3.5).
    pub latency_outliers: Option<i64>,
    /// What measured the point: intra-op threads, libtorch, e3pipe.
    pub threads: Option<i64>,
    pub libtorch_version: Option<String>,
    pub e3pipe_version: Option<String>,
}

/// A file in the results folder that could not be read as results.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    pub file: PathBuf,
    pub reason: String,
}

fn num(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
}

/// A measured time, rate or size: a zero, negative or absurd one (files from elsewhere carry them) is no
/// measurement and reads as missing, so no table, fit or figure is drawn from it.
fn measured(v: Option<f64>) -> Option<f64> {
    num(v).filter(|x| *x > 0.0 && *x < 1e15)
}

/// A spread: zero is one (every run alike), negative is not.
fn spread(v: Option<f64>) -> Option<f64> {
    num(v).filter(|x| *x >= 0.0)
}

/// Rows of one results document, of any layout `results::legacy` reads.
pub fn rows_of(file: &Path, doc: &Value) -> std::result::Result<Vec<Row>, String> {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (doc, _) = legacy::read(doc, &stem)?;
    Ok(rows_of_document(&doc))
}

/// Rows of a document already read.
/// Rows of a document already read: its `metrics` (the smallest batch size) and its `batch_metrics`.
pub fn rows_of_document(doc: &ResultsDocument) -> Vec<Row> {
    // A file that does not say its batch size measured the original tool's default, 1 (as `compare` reads it).
    let base = doc
        .config
        .bench
        .batch_size
        .and_then(|b| i64::try_from(b).ok())
        .or(Some(1));
    let others = doc
        .batch_metrics
        .iter()
        .flat_map(|(batch, lengths)| lengths.iter().map(move |(l, m)| (batch.parse().ok(), l, m)));
    doc.metrics
        .iter()
        .map(|(l, m)| (base, l, m))
        .chain(others)
        .map(|(batch, length, m)| {
            let length =
                crate::results::document::length_key(length).and_then(|l| i64::try_from(l).ok());
            row(doc, length, batch, m)
        })
        .collect()
}

/// A length's row: the original tool's fields, then the point's own record over them where it has one.
fn row(doc: &ResultsDocument, length: Option<i64>, batch: Option<i64>, m: &LengthMetrics) -> Row {
    let extra = |k: &str| m.extra.get(k).and_then(Value::as_f64);
    let mut row = Row {
        exp_id: doc.exp_id.clone(),
        model: doc.model.clone(),
        arch: doc.arch.clone(),
        context_length: length,
        batch_size: m
            .batch_size
            .and_then(|b| i64::try_from(b).ok())
            .or(batch)
            .filter(|b| *b > 0),
        sequences_per_sec: measured(m.sequences_per_sec),
        latency_ms: measured(m.latency_ms)
            .or_else(|| measured(m.first_token_latency_ms))
            .or_else(|| measured(m.forward_pass_latency_ms)),
        throughput: measured(m.throughput_tokens_per_sec)
            .or_else(|| measured(extra("throughput")))
            .or_else(|| measured(m.tokens_per_sec)),
        max_memory_gb: measured(m.max_memory_gb),
        ttft_ms: measured(m.ttft_ms).or_else(|| measured(m.first_token_latency_ms)),
        tbt_ms: measured(m.tbt_ms),
        e2e_latency_ms: measured(m.e2e_latency_ms),
        encoder_latency_ms: measured(m.encoder_latency_ms),
        prefill_tokens_per_sec: measured(m.prefill_tokens_per_sec),
        decode_tokens_per_sec: measured(m.decode_tokens_per_sec),
        memory_source: m.memory_source.clone(),
        status: m.status.clone().unwrap_or_else(|| "ok".into()),
        reason: m.reason.clone(),
        input_tokens: m.input_tokens.and_then(|t| i64::try_from(t).ok()),
        roof: m.roof.clone(),
        energy_j: num(m.energy_j),
        energy_per_sample_j: num(m.energy_per_sample_j)
            .or_else(|| num(m.inference_energy_per_sample_joules)),
        energy_per_token_j: num(m.energy_per_token_j),
        idle_power_w: num(m.idle_power_w),
        energy_above_idle_j: num(m.energy_above_idle_j),
        prefill_energy_j: num(m.prefill_energy_j),
        decode_energy_j: num(m.decode_energy_j),
        avg_power_w: num(m.avg_power_w).or_else(|| num(m.avg_power_watts)),
        energy_source: m.energy_source.clone().filter(|s| !s.is_empty()),
        latency_std_ms: spread(m.latency_std_ms),
        ttft_std_ms: spread(m.ttft_std_ms),
        tbt_std_ms: spread(m.tbt_std_ms),
        e2e_std_ms: spread(m.e2e_std_ms),
        encoder_std_ms: spread(m.encoder_std_ms),
        throughput_std: spread(m.throughput_std),
        current_memory_gb: measured(m.current_memory_gb),
        n: m.total_runs
            .and_then(|n| i64::try_from(n).ok())
            .filter(|n| *n > 0),
        weights: doc.weights.clone(),
        max_positions: doc.config.model.max_positions(),
        num_tokens: doc
            .config
            .bench
            .num_tokens
            .and_then(|n| i64::try_from(n).ok()),
        ..Row::default()
    };
    if let Some(p) = &m.point {
        overlay(&mut row, p);
    }
    row
}

/// The point's own record: its statistics (intervals, percentiles, run count) and identity.
fn overlay(row: &mut Row, p: &PointResult) {
    let stat =
        |metric: &str, f: fn(&Summary) -> Option<f64>| measured(p.stats.get(metric).and_then(f));
    let headline = headline_metric(p.arch);
    row.arch = p.arch.as_str().into();
    row.latency_ms = stat(headline, |s| Some(s.median));
    row.latency_mean_ms = stat(headline, |s| Some(s.mean));
    row.latency_std_ms = stat(headline, |s| s.std);
    // Tails only from enough samples (`MIN_N_P90`, `MIN_N_P99`); ITL's are over pooled decode steps.
    row.latency_p90_ms = stat(headline, |s| (s.n >= MIN_N_P90).then_some(s.p90));
    row.latency_ci_low_ms = stat(headline, |s| Some(s.ci_low));
    row.latency_ci_high_ms = stat(headline, |s| Some(s.ci_high));
    row.latency_ci_level = stat(headline, |s| Some(s.ci_level));
    row.itl_median_ms = stat("itl_ms", |s| Some(s.median));
    row.itl_p90_ms = stat("itl_ms", |s| (s.n >= MIN_N_P90).then_some(s.p90));
    row.itl_p99_ms = stat("itl_ms", |s| (s.n >= MIN_N_P99).then_some(s.p99));
    row.prefill_tokens_per_sec = stat("prefill_tokens_per_sec", |s| Some(s.median));
    row.num_tokens = i64::try_from(p.num_tokens).ok();
    row.batch_size = i64::try_from(p.batch_size).ok().filter(|b| *b > 0);
    row.sequences_per_sec = measured(p.sequences_per_sec());
    row.memory_source = Some(p.memory_source.as_str().into());
    row.stopped_by = p.stopped_by.map(|s| s.as_str().into());
    row.finished_at = Some(p.finished_at.clone());
    row.method = Some(p.method.clone()).filter(|m| !m.is_empty());
    row.run_id = Some(p.run_id.clone()).filter(|m| !m.is_empty());
    row.n = p.stats.get(headline).and_then(|s| i64::try_from(s.n).ok());
    row.ttft_std_ms = stat("ttft_ms", |s| s.std);
    row.tbt_std_ms = stat("tbt_ms", |s| s.std);
    row.e2e_std_ms = stat("e2e_latency_ms", |s| s.std);
    row.status = p.status.as_str().into();
    row.reason.clone_from(&p.reason);
    row.input_tokens = i64::try_from(p.input_tokens).ok();
    // The bytes behind `max_memory_gb`, from the same source.
    row.rss_above_baseline_bytes = p
        .peak_rss_bytes
        .zip(p.rss_baseline_bytes)
        .and_then(|(peak, base)| i64::try_from(peak.saturating_sub(base)).ok())
        .filter(|_| p.memory_source == MemorySource::HostRss);
    row.cuda_reserved_peak_bytes = p
        .cuda_reserved_peak_bytes
        .and_then(|b| i64::try_from(b).ok());
    row.peak_memory_bytes = match p.memory_source {
        MemorySource::CudaAllocator => p.cuda_peak_bytes,
        MemorySource::Unavailable => None,
        MemorySource::HostRss => p.peak_rss_bytes,
    }
    .and_then(|b| i64::try_from(b).ok());
    row.latency_outliers = p
        .stats
        .get(headline)
        .and_then(|s| i64::try_from(s.outliers).ok());
    row.threads = i64::try_from(p.threads).ok();
    row.libtorch_version = Some(p.libtorch_version.clone());
    row.e3pipe_version = Some(p.e3pipe_version.clone());
    row.device = Some(p.device.clone());
    row.dtype = Some(p.dtype.clone());
    row.weights = Some(p.weights.clone());
}

/// The results files aggregate reads: every `*.json` in `dir`, or only those of `models` when given.
fn input_files(dir: &Path, models: &[String]) -> Vec<PathBuf> {
    let wanted = |p: &Path| {
        models.is_empty()
            || models.iter().any(|m| {
                p.file_stem()
                    .is_some_and(|s| s.to_string_lossy() == sanitize(m))
            })
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(std::result::Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json") && wanted(p))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Reads the results files; unreadable or foreign files are returned as skipped, never fatal.
pub fn collect(dir: &Path, models: &[String]) -> (Vec<Row>, Vec<Skipped>) {
    let files = input_files(dir, models);
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for file in files {
        let parsed = crate::fsio::read_own(&file)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                serde_json::from_slice::<Value>(&bytes).map_err(|e| format!("not valid JSON ({e})"))
            })
            .and_then(|doc| rows_of(&file, &doc));
        match parsed {
            Ok(mut r) => rows.append(&mut r),
            Err(reason) => skipped.push(Skipped { file, reason }),
        }
    }
    rows.sort_by(|a, b| {
        (&a.model, a.batch_size, a.context_length, &a.exp_id).cmp(&(
            &b.model,
            b.batch_size,
            b.context_length,
            &b.exp_id,
        ))
    });
    crate::report::pareto::mark(&mut rows);
    (rows, skipped)
}

fn polars_err(e: &PolarsError) -> Error {
    Error::Report(format!("polars: {e}"))
}

/// The rows as a polars frame, its columns as `report::columns` defines them.
pub fn frame(rows: &[Row]) -> Result<DataFrame> {
    let columns: Vec<Column> = COLUMNS
        .iter()
        .map(|c| {
            let cells = rows.iter().map(|r| (c.get)(r));
            let name = c.name.into();
            match c.kind {
                Kind::Text => Column::new(
                    name,
                    cells
                        .map(|cell| match cell {
                            Cell::Text(t) => t,
                            _ => None,
                        })
                        .collect::<Vec<_>>(),
                ),
                Kind::Int => Column::new(
                    name,
                    cells
                        .map(|cell| match cell {
                            Cell::Int(i) => i,
                            _ => None,
                        })
                        .collect::<Vec<_>>(),
                ),
                Kind::Float => Column::new(
                    name,
                    cells
                        .map(|cell| match cell {
                            Cell::Float(f) => f,
                            _ => None,
                        })
                        .collect::<Vec<_>>(),
                ),
            }
        })
        .collect();
    DataFrame::new_infer_height(columns).map_err(|e| polars_err(&e))
}

fn csv_bytes(df: &mut DataFrame) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    CsvWriter::new(&mut out)
        .with_float_precision(Some(4))
        .finish(df)
        .map_err(|e| polars_err(&e))?;
    Ok(out)
}

/// Per curve (model and batch size): how many points, the latency at the shortest and longest length, the best
/// throughput, and the fitted exponent.
fn summary_frame(rows: &[Row], fits: &[Fit]) -> Result<DataFrame> {
    let curves = curves(rows);
    let of = |(m, _, b): &(&str, &str, Option<i64>)| -> Vec<&Row> {
        rows.iter()
            .filter(|r| r.model == *m && r.batch_size == *b)
            .collect()
    };
    let ok = |c: &(&str, &str, Option<i64>)| -> Vec<&Row> {
        of(c)
            .into_iter()
            .filter(|r| r.status == "ok" && r.latency_ms.is_some())
            .collect()
    };
    let count = |c: &(&str, &str, Option<i64>), status: &str| {
        of(c).iter().filter(|r| r.status == status).count() as i64
    };
    let first = |c| ok(c).into_iter().min_by_key(|r| r.context_length);
    let last = |c| ok(c).into_iter().max_by_key(|r| r.context_length);
    let largest = |c, f: fn(&Row) -> Option<f64>| {
        ok(c)
            .iter()
            .filter_map(|r| f(r))
            .fold(None, |a: Option<f64>, x| Some(a.map_or(x, |a| a.max(x))))
    };
    let fit = |(m, _, b): &(&str, &str, Option<i64>)| {
        fits.iter().find(|f| f.model == *m && f.batch_size == *b)
    };
    let columns = vec![
        Column::new(
            "model".into(),
            curves.iter().map(|c| c.0.to_string()).collect::<Vec<_>>(),
        ),
        Column::new(
            "arch".into(),
            curves.iter().map(|c| c.1.to_string()).collect::<Vec<_>>(),
        ),
        Column::new(
            "batch_size".into(),
            curves.iter().map(|c| c.2).collect::<Vec<_>>(),
        ),
        Column::new(
            "points_ok".into(),
            curves
                .iter()
                .map(|c| ok(c).len() as i64)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "points_infeasible".into(),
            curves
                .iter()
                .map(|c| count(c, "infeasible"))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "points_failed".into(),
            curves
                .iter()
                .map(|c| count(c, "oom") + count(c, "error"))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "min_context_length".into(),
            curves
                .iter()
                .map(|c| first(c).and_then(|r| r.context_length))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "max_context_length".into(),
            curves
                .iter()
                .map(|c| last(c).and_then(|r| r.context_length))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "latency_ms_at_min".into(),
            curves
                .iter()
                .map(|c| first(c).and_then(|r| r.latency_ms))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "latency_ms_at_max".into(),
            curves
                .iter()
                .map(|c| last(c).and_then(|r| r.latency_ms))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "max_memory_gb".into(),
            curves
                .iter()
                .map(|c| largest(c, |r| r.max_memory_gb))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "max_sequences_per_sec".into(),
            curves
                .iter()
                .map(|c| largest(c, |r| r.sequences_per_sec))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "scaling_exponent_k".into(),
            curves
                .iter()
                .map(|c| fit(c).map(|f| f.k))
                .collect::<Vec<_>>(),
        ),
    ];
    DataFrame::new_infer_height(columns).map_err(|e| polars_err(&e))
}

fn aicc_of(fit: &Fit, form: Form) -> Option<f64> {
    fit.regime
        .as_ref()?
        .aicc
        .iter()
        .find(|(f, _)| *f == form)?
        .1
}

fn fit_frame(fits: &[Fit]) -> Result<DataFrame> {
    let columns = vec![
        Column::new(
            "model".into(),
            fits.iter().map(|f| f.model.clone()).collect::<Vec<_>>(),
        ),
        Column::new(
            "arch".into(),
            fits.iter().map(|f| f.arch.clone()).collect::<Vec<_>>(),
        ),
        Column::new(
            "batch_size".into(),
            fits.iter().map(|f| f.batch_size).collect::<Vec<_>>(),
        ),
        Column::new("k".into(), fits.iter().map(|f| f.k).collect::<Vec<_>>()),
        // Standard error (not an interval) with its degrees of freedom, and the t-based 95 % interval of k.
        Column::new(
            "k_stderr".into(),
            fits.iter().map(|f| f.k_stderr).collect::<Vec<_>>(),
        ),
        Column::new(
            "df".into(),
            fits.iter().map(|f| f.df as i64).collect::<Vec<_>>(),
        ),
        Column::new(
            "k_ci95_low".into(),
            fits.iter()
                .map(|f| f.k_ci95.map(|c| c.0))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "k_ci95_high".into(),
            fits.iter()
                .map(|f| f.k_ci95.map(|c| c.1))
                .collect::<Vec<_>>(),
        ),
        Column::new("a_ms".into(), fits.iter().map(|f| f.a).collect::<Vec<_>>()),
        Column::new(
            "r_squared".into(),
            fits.iter().map(|f| f.r_squared).collect::<Vec<_>>(),
        ),
        Column::new(
            "fit_form".into(),
            fits.iter()
                .map(|f| f.regime.as_ref().map(|r| r.form.as_str()))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "knee_tokens".into(),
            fits.iter()
                .map(|f| f.regime.as_ref().and_then(|r| r.knee_tokens))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "overhead_to_linear_tokens".into(),
            fits.iter()
                .map(|f| f.regime.as_ref().and_then(|r| r.overhead_to_linear_tokens))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "linear_to_quadratic_tokens".into(),
            fits.iter()
                .map(|f| f.regime.as_ref().and_then(|r| r.linear_to_quadratic_tokens))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "break_tokens".into(),
            fits.iter()
                .map(|f| f.regime.as_ref().and_then(|r| r.break_tokens))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "fit_selection".into(),
            fits.iter()
                .map(|f| f.regime.as_ref().map(|r| r.selection.clone()))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "fit_params".into(),
            fits.iter()
                .map(|f| f.regime.as_ref().map(Regime::describe_params))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "aicc_power_law".into(),
            fits.iter()
                .map(|f| aicc_of(f, Form::PowerLaw))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "aicc_quadratic".into(),
            fits.iter()
                .map(|f| aicc_of(f, Form::Quadratic))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "aicc_broken_power_law".into(),
            fits.iter()
                .map(|f| aicc_of(f, Form::BrokenPowerLaw))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "lengths".into(),
            fits.iter()
                .map(|f| {
                    f.lengths
                        .iter()
                        .map(std::string::ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "runs".into(),
            fits.iter().map(|f| f.runs.join(" ")).collect::<Vec<_>>(),
        ),
    ];
    DataFrame::new_infer_height(columns).map_err(|e| polars_err(&e))
}

/// A warning about one curve (a model at one batch size).
#[derive(Debug, Clone, PartialEq)]
pub struct CurveWarning {
    pub model: String,
    pub batch_size: Option<i64>,
    pub message: String,
}

/// Warnings for curves a reader could misjudge: points measured by different builds of the measuring code, or in
/// different runs (hours apart, under different machine load), joined into one line. A curve is one model at one
/// batch size: adding a batch size measures only its points, which mixes nothing.
pub fn curve_warnings(rows: &[Row]) -> Vec<CurveWarning> {
    let swept = curves(rows)
        .iter()
        .filter_map(|c| c.2)
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        > 1;
    let mut warnings = Vec::new();
    for (model, _, batch) in curves(rows) {
        let name = match batch {
            Some(b) if swept => format!("`{model}` at batch {b}"),
            _ => format!("`{model}`"),
        };
        let ok: Vec<&Row> = rows
            .iter()
            .filter(|r| r.model == model && r.batch_size == batch && r.status == "ok")
            .collect();
        let distinct = |f: &dyn Fn(&Row) -> Option<&str>| {
            let mut v: Vec<&str> = ok.iter().filter_map(|r| f(r)).collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        let mut warn = |message: String| {
            warnings.push(CurveWarning {
                model: model.to_string(),
                batch_size: batch,
                message,
            });
        };
        let methods = distinct(&|r| r.method.as_deref());
        if methods.len() > 1 {
            let short: Vec<String> = methods
                .iter()
                .map(|m| format!("{}…", m.chars().take(8).collect::<String>()))
                .collect();
            warn(format!(
                "curve {name} mixes points measured by {} different builds of the measuring code (method {}); `{}` remeasures it with one",
                methods.len(),
                short.join(", "),
                crate::rerun::force_model(model)
            ));
        }
        let runs = distinct(&|r| r.run_id.as_deref());
        if runs.len() > 1 {
            warn(format!(
                "curve {name} mixes points measured in {} different runs ({} … {}); timings drift between runs, so compare within one (`{}`)",
                runs.len(),
                runs[0],
                runs[runs.len() - 1],
                crate::rerun::force_model(model)
            ));
        }
    }
    warnings
}

/// The curves of `rows`: (model, arch, batch size), sorted. A model has one curve per batch size.
pub fn curves(rows: &[Row]) -> Vec<(&str, &str, Option<i64>)> {
    let mut curves: Vec<(&str, &str, Option<i64>)> = rows
        .iter()
        .map(|r| (r.model.as_str(), r.arch.as_str(), r.batch_size))
        .collect();
    curves.sort_unstable();
    curves.dedup();
    curves
}

/// Fits latency ≈ a·L^k per curve (model and batch size) over its `ok` points with at least two distinct
/// lengths.
pub fn fits(rows: &[Row]) -> Vec<Fit> {
    curves(rows)
        .into_iter()
        .filter_map(|(model, arch, batch)| {
            let curve: Vec<&Row> = rows
                .iter()
                .filter(|r| r.model == model && r.batch_size == batch && r.status == "ok")
                .filter(|r| r.context_length.is_some() && r.latency_ms.is_some())
                .collect();
            let points: Vec<(f64, f64)> = curve
                .iter()
                .filter_map(|r| Some((r.context_length? as f64, r.latency_ms?)))
                .collect();
            let runs = curve.iter().filter_map(|r| r.run_id.clone()).collect();
            fit_power_law(model, arch, &points).map(|f| f.at_batch(batch).spanning(runs))
        })
        .collect()
}

fn inputs_hash(dir: &Path, models: &[String]) -> String {
    let mut hasher = blake3::Hasher::new();
    let files = input_files(dir, models);
    for f in files {
        hasher.update(
            f.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
                .as_bytes(),
        );
        hasher.update(&crate::fsio::read_own(&f).unwrap_or_default());
    }
    // The code that writes the outputs: a new table column or figure style rebuilds them.
    hasher.update(env!("E3PIPE_REPORT_ID").as_bytes());
    hasher.finalize().to_hex().to_string()
}

/// Runs the aggregate step; returns the line to print.
/// `models`: the models of the pipeline's bench steps, whose documents must be there (a damaged one is removed
/// for the bench step to write again); every model's document in `latest/inference/` is aggregated.
pub fn run_step(step: &str, root: &Path, forced: bool, models: &[String]) -> Result<String> {
    let derived = Derived {
        step,
        dir: paths::TABLES_DIR,
        stamp: paths::TABLES_STAMP,
        inputs_noun: "inputs",
        outputs_noun: "tables",
    };
    let input_dir = derived.require(
        root,
        paths::LATEST_DIR,
        &format!("run `{}` first", crate::rerun::run_with("")),
    )?;
    // Every model's document, not only this pipeline's: running one pipeline never drops another's rows from
    // the tables and figures (the original tool's rule too). `models` are the ones this pipeline must have.
    let inputs = inputs_hash(&input_dir, &[]);
    derived.run(root, inputs, forced, || {
        build(step, root, &input_dir, models)
    })
}

fn build(step: &str, root: &Path, input_dir: &Path, models: &[String]) -> Result<Built> {
    for model in models {
        let file = paths::latest_results(root, model);
        if !file.is_file() {
            output::warn(&format!(
                "no results for model `{model}` (`{}` is missing): its rows are left out; `{}` measures them again",
                file.strip_prefix(root).unwrap_or(&file).display(),
                crate::rerun::run_with("")
            ));
        }
    }
    let (rows, skipped) = collect(input_dir, &[]);
    let shown = |p: &Path| p.strip_prefix(root).unwrap_or(p).display().to_string();
    // A damaged results file of one of this pipeline's own bench steps is ours to repair (the bench step writes
    // `latest/inference/<model>.json` over anything there): dropping its model from the tables with exit 0 would
    // lose it silently. Remove it, so the bench step rewrites it from the cache on the next run, and fail.
    let own = |file: &Path| {
        models.iter().any(|m| {
            file.file_stem()
                .is_some_and(|s| s.to_string_lossy() == sanitize(m))
        })
    };
    if let Some(damaged) = skipped.iter().find(|s| own(&s.file)) {
        let _ = std::fs::remove_file(&damaged.file);
        return Err(Error::Step {
            step: step.into(),
            message: format!(
                "`{}` is damaged ({}); removed it: the next `{}` writes it again from the cache",
                shown(&damaged.file),
                damaged.reason,
                crate::rerun::run_with("")
            ),
        });
    }
    for s in &skipped {
        output::warn(&format!("skipping `{}`: {}", shown(&s.file), s.reason));
    }
    if rows.is_empty() {
        return Err(Error::Step {
            step: step.into(),
            message: format!("no results found in `{}`", input_dir.display()),
        });
    }
    for w in curve_warnings(&rows) {
        output::warn(&w.message);
    }
    let tables = root.join(paths::TABLES_DIR);
    let [results_csv, results_parquet, fit_csv, summary_csv] = paths::TABLE_FILES;
    let mut df = frame(&rows)?;
    write_atomic(&tables.join(results_csv), &csv_bytes(&mut df)?)?;
    let mut parquet = Vec::new();
    ParquetWriter::new(&mut parquet)
        .finish(&mut df)
        .map_err(|e| polars_err(&e))?;
    write_atomic(&tables.join(results_parquet), &parquet)?;
    let fits = fits(&rows);
    write_atomic(&tables.join(fit_csv), &csv_bytes(&mut fit_frame(&fits)?)?)?;
    write_atomic(
        &tables.join(summary_csv),
        &csv_bytes(&mut summary_frame(&rows, &fits)?)?,
    )?;
    Ok(Built {
        message: format!(
            "step `{step}`: {} rows from {} file(s) -> {} ({} skipped)",
            rows.len(),
            rows.iter()
                .map(|r| &r.exp_id)
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            paths::RESULTS_TABLE,
            skipped.len()
        ),
        outputs: paths::TABLE_FILES.iter().map(ToString::to_string).collect(),
    })
}
