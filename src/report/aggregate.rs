//! The aggregate step: every results document in `latest/inference/` (ours or the seed's Python tool's, scaling
//! or single-point) becomes rows of `tables/inference_results.csv` (+ `.parquet`), one per (`exp_id`, model,
//! context length), plus `tables/summary.csv` and the scaling fit `tables/scaling_fit.csv`. A file that is not a
//! results document is reported and skipped. The step is skipped when its inputs' hash has not changed.

use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::fsio::write_atomic;
use crate::output;
use crate::paths::{self, sanitize};
use crate::report::fit::{Fit, fit_power_law};
use crate::report::freshness::{Built, Derived};
use crate::report::regimes::{Form, Regime};

/// One row of `inference_results.csv`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    pub exp_id: String,
    pub model: String,
    pub arch: String,
    pub context_length: Option<i64>,
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
    pub device: Option<String>,
    pub dtype: Option<String>,
    pub weights: Option<String>,
    /// The longest input the architecture addresses (GPT-2 `n_positions`, BERT `max_position_embeddings`), so
    /// predictions never extend past it.
    pub max_positions: Option<i64>,
    /// The point read against the machine's roofs (`bench::roofline`); empty for results measured elsewhere.
    pub roof: RoofRow,
    /// Energy per measured run, per sequence, per token, and the mean power (the seed's
    /// `inference_energy_per_sample_joules` and `avg_power_watts` read into the same columns).
    pub energy_j: Option<f64>,
    pub energy_per_sample_j: Option<f64>,
    pub energy_per_token_j: Option<f64>,
    pub avg_power_w: Option<f64>,
    pub energy_source: Option<String>,
    /// The seed tool's spreads of the encoder time and the throughput, and its memory after the run.
    pub encoder_std_ms: Option<f64>,
    pub throughput_std: Option<f64>,
    pub current_memory_gb: Option<f64>,
}

/// A row's roofline columns, named as in the results documents.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoofRow {
    pub flops: Option<f64>,
    pub bytes: Option<f64>,
    pub achieved_tflops: Option<f64>,
    pub achieved_gbps: Option<f64>,
    pub mfu: Option<f64>,
    pub bw_util: Option<f64>,
    pub bound: Option<String>,
    pub decode_flops: Option<f64>,
    pub decode_bytes: Option<f64>,
    pub decode_gbps: Option<f64>,
    pub decode_bw_util: Option<f64>,
    pub peak_tflops: Option<f64>,
    pub peak_gbps: Option<f64>,
}

impl RoofRow {
    fn of(m: &Value) -> RoofRow {
        RoofRow {
            flops: num(m.get("flops")),
            bytes: num(m.get("bytes")),
            achieved_tflops: num(m.get("achieved_tflops")),
            achieved_gbps: num(m.get("achieved_gbps")),
            mfu: num(m.get("mfu")),
            bw_util: num(m.get("bw_util")),
            bound: text(m.get("bound")),
            decode_flops: num(m.get("decode_flops")),
            decode_bytes: num(m.get("decode_bytes")),
            decode_gbps: num(m.get("decode_gbps")),
            decode_bw_util: num(m.get("decode_bw_util")),
            peak_tflops: num(m.get("peak_tflops")),
            peak_gbps: num(m.get("peak_gbps")),
        }
    }
}

/// A file in the results folder that could not be read as results.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    pub file: PathBuf,
    pub reason: String,
}

fn num(v: Option<&Value>) -> Option<f64> {
    v.and_then(Value::as_f64).filter(|x| x.is_finite())
}

/// A measured time, rate or size: a zero, negative or absurd one (files from elsewhere carry them) is no
/// measurement and reads as missing, so no table, fit or figure is drawn from it.
fn measured(v: Option<&Value>) -> Option<f64> {
    num(v).filter(|x| *x > 0.0 && *x < 1e15)
}

fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(str::to_string)
}

/// The architecture names files from elsewhere use (`encdec`, `seq2seq`, `causal`, …), as e3pipe's three.
pub fn canonical_arch(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase().replace('_', "-");
    match lower.as_str() {
        "decoder" | "decoder-only" | "causal" | "causal-lm" | "gpt" | "clm" => "decoder".into(),
        "encoder" | "encoder-only" | "bert" | "mlm" => "encoder".into(),
        "encoder-decoder" | "encdec" | "enc-dec" | "seq2seq" | "t5" => "encoder-decoder".into(),
        _ => lower,
    }
}

/// Rows of one results document.
pub fn rows_of(file: &Path, doc: &Value) -> std::result::Result<Vec<Row>, String> {
    let exp_id = text(doc.get("exp_id")).ok_or("no `exp_id`: not a results file")?;
    let metrics = doc
        .get("metrics")
        .and_then(Value::as_object)
        .ok_or("no `metrics` object: not a results file")?;
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Ours name them at the top; the seed's tool in `config.model` (scaling files) or `config` (single points).
    let model = text(doc.get("model"))
        .or_else(|| text(doc.pointer("/config/model/name")))
        .or_else(|| text(doc.pointer("/config/model")))
        .unwrap_or(stem);
    let arch = text(doc.get("arch"))
        .or_else(|| text(doc.pointer("/config/model/arch")))
        .or_else(|| text(doc.pointer("/config/bench/arch")))
        .or_else(|| text(doc.pointer("/config/arch")))
        .map(|a| canonical_arch(&a))
        .unwrap_or_default();
    let base = Row {
        exp_id,
        model,
        arch,
        status: "ok".into(),
        weights: text(doc.get("weights")),
        max_positions: doc
            .pointer("/config/hyperparameters/n_positions")
            .or_else(|| doc.pointer("/config/hyperparameters/max_position_embeddings"))
            .and_then(Value::as_i64),
        ..Row::default()
    };
    let scaling = metrics.values().any(Value::is_object);
    if !scaling {
        // The seed's single-point shape: flat metrics, the length (if any) in the config.
        let length = doc
            .pointer("/config/context_length")
            .or_else(|| doc.pointer("/config/max_length"))
            .and_then(Value::as_i64);
        return Ok(vec![seed_row(
            &base,
            length,
            doc.get("metrics").unwrap_or(&Value::Null),
        )]);
    }
    let mut rows = Vec::new();
    for (length, m) in metrics {
        let length: i64 = length
            .parse()
            .map_err(|_| format!("metrics key `{length}` is not a context length"))?;
        let row = match m.get("point") {
            Some(point) => point_row(&base, length, point, m),
            None => seed_row(&base, Some(length), m),
        };
        rows.push(row);
    }
    Ok(rows)
}

fn seed_row(base: &Row, length: Option<i64>, m: &Value) -> Row {
    Row {
        context_length: length,
        latency_ms: measured(m.get("latency_ms"))
            .or_else(|| measured(m.get("first_token_latency_ms")))
            .or_else(|| measured(m.get("forward_pass_latency_ms"))),
        throughput: measured(m.get("throughput_tokens_per_sec"))
            .or_else(|| measured(m.get("throughput")))
            .or_else(|| measured(m.get("tokens_per_sec"))),
        max_memory_gb: measured(m.get("max_memory_gb")),
        ttft_ms: measured(m.get("ttft_ms")).or_else(|| measured(m.get("first_token_latency_ms"))),
        tbt_ms: measured(m.get("tbt_ms")),
        e2e_latency_ms: measured(m.get("e2e_latency_ms")),
        encoder_latency_ms: measured(m.get("encoder_latency_ms")),
        prefill_tokens_per_sec: measured(m.get("prefill_tokens_per_sec")),
        decode_tokens_per_sec: measured(m.get("decode_tokens_per_sec")),
        memory_source: text(m.get("memory_source")),
        status: text(m.get("status")).unwrap_or_else(|| "ok".into()),
        input_tokens: m.get("input_tokens").and_then(Value::as_i64),
        roof: RoofRow::of(m),
        energy_j: num(m.get("energy_j")),
        energy_per_sample_j: num(m.get("energy_per_sample_j"))
            .or_else(|| num(m.get("inference_energy_per_sample_joules"))),
        energy_per_token_j: num(m.get("energy_per_token_j")),
        avg_power_w: num(m.get("avg_power_w")).or_else(|| num(m.get("avg_power_watts"))),
        energy_source: text(m.get("energy_source")).filter(|s| !s.is_empty()),
        // The spread and run count the seed's tool recorded (ours carry intervals in the point record).
        latency_std_ms: num(m.get("latency_std_ms")).filter(|s| *s >= 0.0),
        ttft_std_ms: num(m.get("ttft_std_ms")).filter(|s| *s >= 0.0),
        tbt_std_ms: num(m.get("tbt_std_ms")).filter(|s| *s >= 0.0),
        e2e_std_ms: num(m.get("e2e_std_ms")).filter(|s| *s >= 0.0),
        encoder_std_ms: num(m.get("encoder_std_ms")).filter(|s| *s >= 0.0),
        throughput_std: num(m.get("throughput_std")).filter(|s| *s >= 0.0),
        current_memory_gb: measured(m.get("current_memory_gb")),
        n: m.get("total_runs")
            .and_then(Value::as_i64)
            .filter(|n| *n > 0),
        ..base.clone()
    }
}

fn point_row(base: &Row, length: i64, point: &Value, m: &Value) -> Row {
    let stat =
        |metric: &str, field: &str| measured(point.pointer(&format!("/stats/{metric}/{field}")));
    let generates = text(point.get("arch")).is_some_and(|a| a != "encoder");
    let headline = if generates {
        "ttft_ms"
    } else {
        "forward_pass_latency_ms"
    };
    let mut row = seed_row(base, Some(length), m);
    row.arch = text(point.get("arch")).unwrap_or(row.arch);
    row.latency_ms = stat(headline, "median");
    row.latency_mean_ms = stat(headline, "mean");
    row.latency_std_ms = stat(headline, "std");
    row.latency_p90_ms = stat(headline, "p90");
    row.latency_ci_low_ms = stat(headline, "ci_low");
    row.latency_ci_high_ms = stat(headline, "ci_high");
    row.latency_ci_level = stat(headline, "ci_level");
    row.itl_median_ms = stat("itl_ms", "median");
    row.itl_p90_ms = stat("itl_ms", "p90");
    row.itl_p99_ms = stat("itl_ms", "p99");
    row.prefill_tokens_per_sec = stat("prefill_tokens_per_sec", "median");
    row.num_tokens = point.get("num_tokens").and_then(Value::as_i64);
    row.memory_source = text(point.get("memory_source")).or(row.memory_source);
    row.stopped_by = text(point.get("stopped_by"));
    row.finished_at = text(point.get("finished_at"));
    row.method = text(point.get("method")).filter(|m| !m.is_empty());
    row.run_id = text(point.get("run_id")).filter(|m| !m.is_empty());
    row.n = point
        .pointer(&format!("/stats/{headline}/n"))
        .and_then(Value::as_i64);
    row.ttft_std_ms = stat("ttft_ms", "std");
    row.tbt_std_ms = stat("tbt_ms", "std");
    row.e2e_std_ms = stat("e2e_latency_ms", "std");
    row.status = text(point.get("status")).unwrap_or(row.status);
    row.reason = text(point.get("reason"));
    row.input_tokens = point.get("input_tokens").and_then(Value::as_i64);
    // The bytes behind `max_memory_gb`, from the same source.
    row.peak_memory_bytes = match row.memory_source.as_deref() {
        Some("cuda_allocator") => point.get("cuda_peak_bytes").and_then(Value::as_i64),
        Some("unavailable") => None,
        _ => point.get("peak_rss_bytes").and_then(Value::as_i64),
    };
    row.device = text(point.get("device"));
    row.dtype = text(point.get("dtype"));
    row.weights = text(point.get("weights")).or(row.weights);
    row
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
        (&a.model, a.context_length, &a.exp_id).cmp(&(&b.model, b.context_length, &b.exp_id))
    });
    (rows, skipped)
}

fn polars_err(e: &PolarsError) -> Error {
    Error::Report(format!("polars: {e}"))
}

/// The rows as a polars frame with the seed's columns first.
pub fn frame(rows: &[Row]) -> Result<DataFrame> {
    let s = |name: &str, f: &dyn Fn(&Row) -> String| {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<_>>())
    };
    let os = |name: &str, f: &dyn Fn(&Row) -> Option<String>| {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<_>>())
    };
    let f = |name: &str, g: &dyn Fn(&Row) -> Option<f64>| {
        Column::new(name.into(), rows.iter().map(g).collect::<Vec<_>>())
    };
    let i = |name: &str, g: &dyn Fn(&Row) -> Option<i64>| {
        Column::new(name.into(), rows.iter().map(g).collect::<Vec<_>>())
    };
    let columns = vec![
        s("exp_id", &|r| r.exp_id.clone()),
        s("model", &|r| r.model.clone()),
        s("arch", &|r| r.arch.clone()),
        i("context_length", &|r| r.context_length),
        f("latency_ms", &|r| r.latency_ms),
        f("throughput", &|r| r.throughput),
        f("max_memory_gb", &|r| r.max_memory_gb),
        f("ttft_ms", &|r| r.ttft_ms),
        f("tbt_ms", &|r| r.tbt_ms),
        f("e2e_latency_ms", &|r| r.e2e_latency_ms),
        f("encoder_latency_ms", &|r| r.encoder_latency_ms),
        f("latency_std_ms", &|r| r.latency_std_ms),
        f("ttft_std_ms", &|r| r.ttft_std_ms),
        f("tbt_std_ms", &|r| r.tbt_std_ms),
        f("e2e_std_ms", &|r| r.e2e_std_ms),
        f("latency_mean_ms", &|r| r.latency_mean_ms),
        f("latency_median_ms", &|r| r.latency_ms),
        f("latency_p90_ms", &|r| r.latency_p90_ms),
        f("latency_ci_low_ms", &|r| r.latency_ci_low_ms),
        f("latency_ci_high_ms", &|r| r.latency_ci_high_ms),
        f("latency_ci_level", &|r| r.latency_ci_level),
        i("n", &|r| r.n),
        os("stopped_by", &|r| r.stopped_by.clone()),
        f("prefill_tokens_per_sec", &|r| r.prefill_tokens_per_sec),
        f("decode_tokens_per_sec", &|r| r.decode_tokens_per_sec),
        f("itl_median_ms", &|r| r.itl_median_ms),
        f("itl_p90_ms", &|r| r.itl_p90_ms),
        f("itl_p99_ms", &|r| r.itl_p99_ms),
        i("num_tokens", &|r| r.num_tokens),
        s("status", &|r| r.status.clone()),
        os("reason", &|r| r.reason.clone()),
        i("input_tokens", &|r| r.input_tokens),
        i("peak_memory_bytes", &|r| r.peak_memory_bytes),
        os("memory_source", &|r| r.memory_source.clone()),
        os("device", &|r| r.device.clone()),
        os("dtype", &|r| r.dtype.clone()),
        os("weights", &|r| r.weights.clone()),
        i("max_positions", &|r| r.max_positions),
        os("finished_at", &|r| r.finished_at.clone()),
        os("method", &|r| r.method.clone()),
        os("run_id", &|r| r.run_id.clone()),
        f("flops", &|r| r.roof.flops),
        f("bytes", &|r| r.roof.bytes),
        f("achieved_tflops", &|r| r.roof.achieved_tflops),
        f("achieved_gbps", &|r| r.roof.achieved_gbps),
        f("mfu", &|r| r.roof.mfu),
        f("bw_util", &|r| r.roof.bw_util),
        os("bound", &|r| r.roof.bound.clone()),
        f("decode_flops", &|r| r.roof.decode_flops),
        f("decode_bytes", &|r| r.roof.decode_bytes),
        f("decode_gbps", &|r| r.roof.decode_gbps),
        f("decode_bw_util", &|r| r.roof.decode_bw_util),
        f("peak_tflops", &|r| r.roof.peak_tflops),
        f("peak_gbps", &|r| r.roof.peak_gbps),
        f("energy_j", &|r| r.energy_j),
        f("energy_per_sample_j", &|r| r.energy_per_sample_j),
        f("energy_per_token_j", &|r| r.energy_per_token_j),
        f("avg_power_w", &|r| r.avg_power_w),
        os("energy_source", &|r| r.energy_source.clone()),
        f("encoder_std_ms", &|r| r.encoder_std_ms),
        f("throughput_std", &|r| r.throughput_std),
        f("current_memory_gb", &|r| r.current_memory_gb),
    ];
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

/// Per model: how many points, the latency at the shortest and longest length, and the fitted exponent.
fn summary_frame(rows: &[Row], fits: &[Fit]) -> Result<DataFrame> {
    let mut models: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.model.as_str(), r.arch.as_str()))
        .collect();
    models.sort_unstable();
    models.dedup();
    let ok = |m: &str| -> Vec<&Row> {
        rows.iter()
            .filter(|r| r.model == m && r.status == "ok" && r.latency_ms.is_some())
            .collect()
    };
    let count = |m: &str, status: &str| {
        rows.iter()
            .filter(|r| r.model == m && r.status == status)
            .count() as i64
    };
    let first = |m: &str| ok(m).into_iter().min_by_key(|r| r.context_length).cloned();
    let last = |m: &str| ok(m).into_iter().max_by_key(|r| r.context_length).cloned();
    let fit = |m: &str| fits.iter().find(|f| f.model == m);
    let columns = vec![
        Column::new(
            "model".into(),
            models
                .iter()
                .map(|(m, _)| m.to_string())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "arch".into(),
            models
                .iter()
                .map(|(_, a)| a.to_string())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "points_ok".into(),
            models
                .iter()
                .map(|(m, _)| ok(m).len() as i64)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "points_infeasible".into(),
            models
                .iter()
                .map(|(m, _)| count(m, "infeasible"))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "points_failed".into(),
            models
                .iter()
                .map(|(m, _)| count(m, "oom") + count(m, "error"))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "min_context_length".into(),
            models
                .iter()
                .map(|(m, _)| first(m).and_then(|r| r.context_length))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "max_context_length".into(),
            models
                .iter()
                .map(|(m, _)| last(m).and_then(|r| r.context_length))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "latency_ms_at_min".into(),
            models
                .iter()
                .map(|(m, _)| first(m).and_then(|r| r.latency_ms))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "latency_ms_at_max".into(),
            models
                .iter()
                .map(|(m, _)| last(m).and_then(|r| r.latency_ms))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "max_memory_gb".into(),
            models
                .iter()
                .map(|(m, _)| {
                    ok(m)
                        .iter()
                        .filter_map(|r| r.max_memory_gb)
                        .fold(None, |a: Option<f64>, x| Some(a.map_or(x, |a| a.max(x))))
                })
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "scaling_exponent_k".into(),
            models
                .iter()
                .map(|(m, _)| fit(m).map(|f| f.k))
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
    ];
    DataFrame::new_infer_height(columns).map_err(|e| polars_err(&e))
}

/// Warnings for curves a reader could misjudge: points measured by different builds of the measuring code, or in
/// different runs (hours apart, under different machine load), joined into one line.
pub fn curve_warnings(rows: &[Row]) -> Vec<String> {
    let mut models: Vec<&str> = rows.iter().map(|r| r.model.as_str()).collect();
    models.sort_unstable();
    models.dedup();
    let mut warnings = Vec::new();
    for model in models {
        let ok: Vec<&Row> = rows
            .iter()
            .filter(|r| r.model == model && r.status == "ok")
            .collect();
        let distinct = |f: &dyn Fn(&Row) -> Option<&str>| {
            let mut v: Vec<&str> = ok.iter().filter_map(|r| f(r)).collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        let methods = distinct(&|r| r.method.as_deref());
        if methods.len() > 1 {
            let short: Vec<String> = methods
                .iter()
                .map(|m| format!("{}…", &m[..m.len().min(8)]))
                .collect();
            warnings.push(format!(
                "curve `{model}` mixes points measured by {} different builds of the measuring code (method {}); `e3pipe run --force <step>` remeasures it with one",
                methods.len(),
                short.join(", ")
            ));
        }
        let runs = distinct(&|r| r.run_id.as_deref());
        if runs.len() > 1 {
            warnings.push(format!(
                "curve `{model}` mixes points measured in {} different runs ({} … {}); timings drift between runs, so compare within one (`e3pipe run --force <step>`)",
                runs.len(),
                runs[0],
                runs[runs.len() - 1]
            ));
        }
    }
    warnings
}

/// Fits latency ≈ a·L^k per model over its `ok` points with at least two distinct lengths.
pub fn fits(rows: &[Row]) -> Vec<Fit> {
    let mut models: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.model.as_str(), r.arch.as_str()))
        .collect();
    models.sort_unstable();
    models.dedup();
    models
        .into_iter()
        .filter_map(|(model, arch)| {
            let points: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| r.model == model && r.status == "ok")
                .filter_map(|r| Some((r.context_length? as f64, r.latency_ms?)))
                .collect();
            fit_power_law(model, arch, &points)
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
/// `models`: aggregate only these models' results (the pipeline's bench steps); empty means every file.
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
        "run `e3pipe run --only <bench steps>` first",
    )?;
    let inputs = inputs_hash(&input_dir, models);
    derived.run(root, inputs, forced, || {
        build(step, root, &input_dir, models)
    })
}

fn build(step: &str, root: &Path, input_dir: &Path, models: &[String]) -> Result<Built> {
    for model in models {
        let file = paths::latest_results(root, model);
        if !file.is_file() {
            output::warn(&format!(
                "no results for model `{model}` (`{}` is missing): its rows are left out; `e3pipe run` measures them again",
                file.strip_prefix(root).unwrap_or(&file).display()
            ));
        }
    }
    let (rows, skipped) = collect(input_dir, models);
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
                "`{}` is damaged ({}); removed it: the next `e3pipe run` writes it again from the cache",
                shown(&damaged.file),
                damaged.reason
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
        output::warn(&w);
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
