//! The bench step's output files in the seed's shape: `results/inference_scaling_YYYYMMDD_HHMMSS.json` and
//! `latest/inference/<model>.json`, with `metrics` keyed by context length holding the seed's metric names, and
//! ours beside them (every point's full record under `point`).

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::bench::peaks::Peaks;
use crate::bench::result::{PointResult, Status};
use crate::bench::roofline::{Roofline, analyse};
use crate::clock::file_name_time;
use crate::error::Result;
use crate::fsio::write_json;
use crate::models::work::point_work;
use crate::paths::{RESULTS_DIR, latest_results};
use crate::pipeline::kinds::bench::plan::{BenchPlan, PointState};

/// The point read against the machine's peaks, when its work can be counted and it was measured.
pub fn roofline(plan: &BenchPlan, p: &PointResult, peaks: Option<&Peaks>) -> Option<Roofline> {
    let config = plan.bench.model.config.as_ref()?;
    if p.status != Status::Ok {
        return None;
    }
    let work = point_work(
        config,
        p.context_length,
        p.num_tokens,
        p.batch_size,
        plan.dtype.bytes(),
    );
    analyse(&work, p.latency_ms()?, p.median("tbt_ms"), peaks?)
}

/// Builds the results document for one bench step.
pub fn document(
    exp_id: &str,
    plan: &BenchPlan,
    points: &[(String, PointResult)],
    peaks: Option<&Peaks>,
) -> Value {
    let mut metrics = Map::new();
    for (hash, p) in points {
        let mut m = Map::new();
        let mut put = |k: &str, v: Option<f64>| {
            m.insert(k.into(), v.map_or(Value::Null, Value::from));
        };
        put("latency_ms", p.latency_ms());
        if p.arch.generates() {
            put("first_token_latency_ms", p.median("ttft_ms"));
            put("ttft_ms", p.median("ttft_ms"));
            put("tbt_ms", p.median("tbt_ms"));
            put("e2e_latency_ms", p.median("e2e_latency_ms"));
            put("encoder_latency_ms", p.median("encoder_latency_ms"));
            put(
                "throughput_tokens_per_sec",
                p.median("throughput_tokens_per_sec"),
            );
            put("itl_ms", p.median("itl_ms"));
            put("decode_tokens_per_sec", p.decode_tokens_per_sec());
        } else {
            put(
                "forward_pass_latency_ms",
                p.median("forward_pass_latency_ms"),
            );
            put("sequences_per_sec", p.median("sequences_per_sec"));
            put("tokens_per_sec", p.median("tokens_per_sec"));
        }
        put("prefill_tokens_per_sec", p.prefill_tokens_per_sec());
        put("max_memory_gb", p.max_memory_gb());
        put("energy_j", p.energy.map(|e| e.energy_j));
        put(
            "energy_per_sample_j",
            p.energy.map(|e| e.energy_per_sample_j),
        );
        put("energy_per_token_j", p.energy.map(|e| e.energy_per_token_j));
        put("avg_power_w", p.energy.map(|e| e.avg_power_w));
        let roof = roofline(plan, p, peaks);
        if let Some(r) = &roof {
            put("flops", Some(r.flops));
            put("bytes", Some(r.bytes));
            put("achieved_tflops", Some(r.achieved_tflops));
            put("achieved_gbps", Some(r.achieved_gbps));
            put("mfu", Some(r.mfu));
            put("bw_util", Some(r.bw_util));
            put("decode_flops", r.decode_flops);
            put("decode_bytes", r.decode_bytes);
            put("decode_gbps", r.decode_gbps);
            put("decode_bw_util", r.decode_bw_util);
            put("peak_tflops", Some(r.peak_tflops));
            put("peak_gbps", Some(r.peak_gbps));
        }
        m.insert("memory_source".into(), json!(p.memory_source.as_str()));
        m.insert("status".into(), json!(p.status.as_str()));
        m.insert("input_tokens".into(), json!(p.input_tokens));
        m.insert("cache_key".into(), json!(hash));
        m.insert("energy_source".into(), json!(p.energy_source));
        if let Some(r) = &roof {
            m.insert("bound".into(), json!(r.bound.as_str()));
        }

        m.insert(
            "point".into(),
            serde_json::to_value(p).unwrap_or(Value::Null),
        );
        metrics.insert(p.context_length.to_string(), Value::Object(m));
    }
    let mut doc = header(plan, peaks);
    doc["exp_id"] = json!(exp_id);
    doc["metrics"] = Value::Object(metrics);
    doc
}

/// Everything of the document but the points: model, arch, weights, the bench config, the machine's peaks.
fn header(plan: &BenchPlan, peaks: Option<&Peaks>) -> Value {
    let bench = &plan.bench.bench;
    json!({
        "exp_id": "",
        "model": plan.bench.model.name,
        "arch": plan.bench.model.arch,
        "weights": plan.weights.to_string(),
        "config": {
            "name": bench.name,
            "arch": bench.arch,
            "context_lengths": bench.context_lengths,
            "scaling": bench.scaling,
            "num_tokens": bench.params.num_tokens,
            "batch_size": bench.params.batch_size,
            "num_runs": bench.params.num_runs,
            "warmup_runs": bench.params.warmup_runs,
            "min_duration_s": bench.params.min_duration_s,
            "threads": plan.threads,
            "hyperparameters": plan.bench.model.config,
        },
        "peaks": peaks,
    })
}

/// What the step's results document is written from when every point is settled, without reading any cached
/// result: the header, and each point's length, cache key and whether it is infeasible (an `ok` point's result is
/// fixed by its key). Also the code that writes the document, so a new format is written out.
pub fn fingerprint(plan: &BenchPlan, peaks: Option<&Peaks>) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(env!("E3PIPE_DOCUMENT_ID").as_bytes());
    let _ = serde_json::to_writer(&mut hasher, &header(plan, peaks));
    for p in &plan.points {
        let state = match &p.state {
            PointState::Infeasible(reason) => format!("infeasible {reason}"),
            _ => "ok".to_string(),
        };
        hasher.update(format!("\n{} {} {state}", p.context_length, p.hash).as_bytes());
    }
    hasher.finalize().to_hex().to_string()
}

/// Writes the step's results unless `latest/inference/<model>.json` already holds exactly these points.
/// Returns the results file written, if any.
pub fn write(
    root: &Path,
    plan: &BenchPlan,
    points: &[(String, PointResult)],
    peaks: Option<&Peaks>,
) -> Result<Option<PathBuf>> {
    let latest = latest_results(root, &plan.bench.model.name);
    let probe = document("", plan, points, peaks);
    let previous: Option<Value> = crate::fsio::read_own(&latest)
        .ok()
        .and_then(|t| serde_json::from_slice(&t).ok());
    if previous.as_ref().is_some_and(|p| {
        // Everything but the experiment id: a rerun that took every point from the cache writes nothing.
        p.get("metrics") == probe.get("metrics")
            && p.get("config") == probe.get("config")
            && p.get("peaks") == probe.get("peaks")
    }) {
        return Ok(None);
    }
    let results = root.join(RESULTS_DIR);
    let mut exp_id = format!("inference_scaling_{}", file_name_time());
    let mut n = 2;
    while results.join(format!("{exp_id}.json")).exists() {
        exp_id = format!("inference_scaling_{}_{n}", file_name_time());
        n += 1;
    }
    let doc = document(&exp_id, plan, points, peaks);
    let path = results.join(format!("{exp_id}.json"));
    write_json(&path, &doc)?;
    write_json(&latest, &doc)?;
    Ok(Some(path))
}
