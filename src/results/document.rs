//! The results schema: one type for what a bench step's results document holds. The bench step writes it, aggregate
//! and `compare` read it; `legacy` converts the layouts written before it. It is a superset of the original Python
//! tool's layout (`exp_id`, `config.model`, `config.bench`, `metrics.<length>` with its field names), with e3pipe's
//! own fields beside them and each point's full record under `metrics.<length>.point`. A field that was not
//! measured is left out, never `null`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::bench::peaks::Peaks;
use crate::bench::result::PointResult;
use crate::bench::roofline::Roofline;

/// Version of this layout. Bump it when a field changes meaning or place, and add the conversion from the previous
/// one to `legacy`.
pub const SCHEMA_VERSION: u32 = 1;

/// One bench step's results: `results/<exp_id>.json` and `latest/inference/<model>.json`.
/// A context length as a results file keys it: a canonical positive decimal (`128`), never `0`, `00`, `+128` or
/// ` 128`, so one length has one key and no key reads as a length it is not. Every reader goes through this.
pub fn length_key(key: &str) -> Option<u64> {
    let canonical = !key.is_empty()
        && key.len() <= 19
        && key.bytes().all(|b| b.is_ascii_digit())
        && !key.starts_with('0');
    canonical.then(|| key.parse().ok()).flatten()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultsDocument {
    pub schema_version: u32,
    /// `inference_scaling_YYYYMMDD_HHMMSS` (the original tool's name for a scaling run).
    pub exp_id: String,
    /// The model's name and canonical architecture (`decoder`, `encoder`, `encoder-decoder`), also in
    /// `config.model`.
    pub model: String,
    #[serde(default)]
    pub arch: String,
    /// `random-init seed N` or `file blake3:…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<String>,
    #[serde(default)]
    pub config: RunConfig,
    /// The machine's measured roofs the points were read against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peaks: Option<Peaks>,
    /// Keyed by context length: the points of the step's smallest batch size (batch 1 unless the config says
    /// otherwise), where the original tool's readers look.
    pub metrics: BTreeMap<String, LengthMetrics>,
    /// e3pipe's own: the points of every other batch size of a `batch_sizes` sweep, keyed by batch size, then by
    /// context length (`batch_metrics.4.512`). Absent when one batch size was measured.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub batch_metrics: BTreeMap<String, BTreeMap<String, LengthMetrics>>,
    /// Fields this version does not know (files from elsewhere), kept as they were.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// How the points were asked for, in the original tool's two blocks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    #[serde(default)]
    pub model: ModelRecord,
    #[serde(default)]
    pub bench: BenchRecord,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The model block: what was measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub arch: String,
    /// Where the weights came from: a Hugging Face directory or `TorchScript` file, as the original's `pretrained`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretrained: Option<String>,
    /// `random-init seed N`, `hf-dir <path>`, `torchscript <path>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtype: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The architecture's hyperparameters (Hugging Face `config.json` names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hyperparameters: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ModelRecord {
    /// The longest input the architecture addresses (GPT-2 `n_positions`, BERT `max_position_embeddings`).
    pub fn max_positions(&self) -> Option<i64> {
        let h = self.hyperparameters.as_ref()?;
        h.get("n_positions")
            .or_else(|| h.get("max_position_embeddings"))
            .and_then(Value::as_i64)
    }
}

/// The bench block: how each point was measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BenchRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_lengths: Option<Vec<usize>>,
    /// False for a single-point bench config (`context_length` rather than `context_lengths`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_tokens: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// Every batch size of a `batch_sizes` sweep (absent when one was measured, which `batch_size` gives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_sizes: Option<Vec<usize>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_runs: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_runs: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_duration_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One context length's numbers: the original tool's names (medians, their standard deviations, run count), then
/// e3pipe's, then the point's full record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LengthMetrics {
    /// The headline latency: first token for generators, the forward pass for encoders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_std_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_token_latency_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_pass_latency_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_std_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tbt_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tbt_std_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e2e_latency_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e2e_std_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder_latency_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder_std_ms: Option<f64>,
    /// Generated tokens/s over the whole generation (generators), input tokens/s (encoders).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput_tokens_per_sec: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput_std: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory_gb: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_memory_gb: Option<f64>,
    /// Measured runs behind the headline median.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_runs: Option<u64>,
    /// The original tool's energy names, for the same quantities as `energy_per_sample_j` and `avg_power_w`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference_energy_per_sample_joules: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg_power_watts: Option<f64>,
    // e3pipe's own.
    /// Median of every decode step of every run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub itl_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_tokens_per_sec: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefill_tokens_per_sec: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequences_per_sec: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_sec: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy_j: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy_per_sample_j: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy_per_token_j: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg_power_w: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_power_w: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy_above_idle_j: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefill_energy_j: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_energy_j: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy_source: Option<String>,
    /// `cuda_allocator`, `host_rss` or `unavailable`: what `max_memory_gb` measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_source: Option<String>,
    /// `ok`, `infeasible`, `oom`, `error`; absent means `ok` (the original tool recorded only what it measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Why a point that is not `ok` is not (the original tool's files may say it too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Tokens of each sequence of the batch (every one is exactly the context length).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// Sequences per batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_key: Option<String>,
    /// The point read against the machine's roofs.
    #[serde(flatten)]
    pub roof: RoofMetrics,
    /// The point's full record, with every metric's statistics and raw samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point: Option<PointResult>,
    /// Fields this version does not know, kept as they were.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A point's roofline fields (`bench::roofline`), by the names the documents and tables carry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoofMetrics {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flops: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub achieved_tflops: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub achieved_gbps: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfu: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bw_util: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_flops: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_bytes: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_gbps: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_bw_util: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_tflops: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_gbps: Option<f64>,
    /// The run whose roof these were read against: always the point's own (`run_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roof_run_id: Option<String>,
}

impl RoofMetrics {
    pub fn of(r: &Roofline) -> RoofMetrics {
        RoofMetrics {
            flops: Some(r.flops),
            bytes: Some(r.bytes),
            achieved_tflops: Some(r.achieved_tflops),
            achieved_gbps: Some(r.achieved_gbps),
            mfu: Some(r.mfu),
            bw_util: Some(r.bw_util),
            bound: Some(r.bound.as_str().into()),
            decode_flops: r.decode_flops,
            decode_bytes: r.decode_bytes,
            decode_gbps: r.decode_gbps,
            decode_bw_util: r.decode_bw_util,
            peak_tflops: Some(r.peak_tflops),
            peak_gbps: Some(r.peak_gbps),
            roof_run_id: None,
        }
    }
}

impl LengthMetrics {
    /// A measured (or unmeasured) point's entry: the original tool's fields from its statistics, e3pipe's beside
    /// them. This is the one place the two vocabularies are mapped.
    pub fn of(p: &PointResult, roof: Option<&Roofline>, cache_key: &str) -> LengthMetrics {
        let median = |m: &str| p.median(m);
        let std = |m: &str| p.stats.get(m).and_then(|s| s.std);
        let headline = crate::bench::result::headline_metric(p.arch);
        let generates = p.arch.generates();
        let only = |yes: bool, v: Option<f64>| if yes { v } else { None };
        let energy = p.energy;
        LengthMetrics {
            latency_ms: p.latency_ms(),
            latency_std_ms: std(headline),
            first_token_latency_ms: only(generates, median("ttft_ms")),
            forward_pass_latency_ms: only(!generates, median("forward_pass_latency_ms")),
            ttft_ms: only(generates, median("ttft_ms")),
            ttft_std_ms: only(generates, std("ttft_ms")),
            tbt_ms: only(generates, median("tbt_ms")),
            tbt_std_ms: only(generates, std("tbt_ms")),
            e2e_latency_ms: only(generates, median("e2e_latency_ms")),
            e2e_std_ms: only(generates, std("e2e_latency_ms")),
            encoder_latency_ms: only(generates, median("encoder_latency_ms")),
            encoder_std_ms: only(generates, std("encoder_latency_ms")),
            throughput_tokens_per_sec: p.throughput(),
            throughput_std: if generates {
                std("throughput_tokens_per_sec")
            } else {
                std("tokens_per_sec")
            },
            max_memory_gb: p.max_memory_gb(),
            // The original recorded the allocator's memory still held after the run; e3pipe does not measure it.
            current_memory_gb: None,
            total_runs: p.stats.get(headline).map(|s| s.n as u64),
            inference_energy_per_sample_joules: energy.map(|e| e.energy_per_sample_j),
            avg_power_watts: energy.map(|e| e.avg_power_w),
            itl_ms: only(generates, median("itl_ms")),
            decode_tokens_per_sec: only(generates, p.decode_tokens_per_sec()),
            prefill_tokens_per_sec: p.prefill_tokens_per_sec(),
            sequences_per_sec: p.sequences_per_sec(),
            tokens_per_sec: only(!generates, median("tokens_per_sec")),
            energy_j: energy.map(|e| e.energy_j),
            energy_per_sample_j: energy.map(|e| e.energy_per_sample_j),
            energy_per_token_j: energy.and_then(|e| e.energy_per_token_j),
            idle_power_w: energy.and_then(|e| e.idle_power_w),
            energy_above_idle_j: energy.and_then(|e| e.energy_above_idle_j),
            prefill_energy_j: energy.and_then(|e| e.prefill_energy_j),
            decode_energy_j: energy.and_then(|e| e.decode_energy_j),
            avg_power_w: energy.map(|e| e.avg_power_w),
            energy_source: Some(p.energy_source.clone()).filter(|s| !s.is_empty()),
            memory_source: Some(p.memory_source.as_str().into()),
            status: Some(p.status.as_str().into()),
            reason: p.reason.clone(),
            input_tokens: Some(p.input_tokens as u64),
            batch_size: Some(p.batch_size as u64),
            cache_key: Some(cache_key.into()),
            roof: roof
                .map(|r| RoofMetrics {
                    roof_run_id: Some(p.run_id.clone()).filter(|id| !id.is_empty()),
                    ..RoofMetrics::of(r)
                })
                .unwrap_or_default(),
            point: Some(p.clone()),
            extra: Map::new(),
        }
    }
}
