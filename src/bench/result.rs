//! What one measured (model, context length) point records: every field a reader needs to trust or reproduce it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::bench::stats::Summary;
use crate::models::config::Arch;

/// Version of the measurement method; bump it when timing changes so cached points are recomputed.
pub const METHOD_VERSION: u32 = 1;

/// libtorch version of the wheel e3pipe was built against.
pub const LIBTORCH_VERSION: &str = env!("E3PIPE_LIBTORCH_VERSION");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    /// The point cannot exist for this model (e.g. beyond its position limit); `reason` says why.
    Infeasible,
    Oom,
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Infeasible => "infeasible",
            Status::Oom => "oom",
            Status::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointResult {
    pub model: String,
    pub arch: Arch,
    pub context_length: usize,
    /// Tokens actually fed per row; equals `context_length` for every `ok` point.
    pub input_tokens: usize,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub batch_size: usize,
    pub num_tokens: usize,
    pub dtype: String,
    pub device: String,
    pub threads: usize,
    pub libtorch_version: String,
    pub e3pipe_version: String,
    /// `random-init seed N` or `file blake3:…`.
    pub weights: String,
    pub weights_bytes: u64,
    /// Process peak resident memory during the point (CPU), bytes.
    pub peak_rss_bytes: Option<u64>,
    /// GPU caching-allocator peak, bytes; `None` where not measured (see `bench::memory`).
    pub cuda_peak_bytes: Option<u64>,
    /// Statistics per metric: `ttft_ms`, `tbt_ms`, `e2e_latency_ms`, `encoder_latency_ms`,
    /// `forward_pass_latency_ms`, `throughput_tokens_per_sec`, `sequences_per_sec`, `tokens_per_sec`.
    pub stats: BTreeMap<String, Summary>,
    /// Measured wall time of the whole point including warm-up, seconds.
    pub wall_s: f64,
    pub finished_at: String,
}

impl PointResult {
    pub fn median(&self, metric: &str) -> Option<f64> {
        self.stats.get(metric).map(|s| s.median)
    }

    /// The seed's headline number: first-token latency for generators, forward latency for encoders.
    pub fn latency_ms(&self) -> Option<f64> {
        match self.arch {
            Arch::Encoder => self.median("forward_pass_latency_ms"),
            _ => self.median("ttft_ms"),
        }
    }

    /// Peak memory in GB as the seed reported it (GPU peak where measured, else process peak).
    pub fn max_memory_gb(&self) -> Option<f64> {
        self.cuda_peak_bytes
            .or(self.peak_rss_bytes)
            .map(|b| b as f64 / 1e9)
    }

    /// The seed's throughput: generated tokens/s for generators, input tokens/s for encoders.
    pub fn throughput(&self) -> Option<f64> {
        match self.arch {
            Arch::Encoder => self.median("tokens_per_sec"),
            _ => self.median("throughput_tokens_per_sec"),
        }
    }
}

/// Now, as an RFC 3339 UTC string.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `YYYYMMDD_HHMMSS` (UTC) for result file names, as the seed named them.
pub fn stamp() -> String {
    chrono::Utc::now().format("%Y%m%d_%H%M%S").to_string()
}
