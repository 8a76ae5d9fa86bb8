//! What one measured (model, context length) point records: every field a reader needs to trust or reproduce it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::bench::memory::MemorySource;
use crate::bench::stats::Summary;
use crate::bench::stopping::StopReason;
use crate::models::config::Arch;
use crate::models::gpu::GpuWindow;
use crate::models::hardware::HardwareId;
use crate::models::runtime::CudaRuntime;

/// Version of the measurement method's meaning (what a field measures); bump it by hand when that changes.
pub const METHOD_VERSION: u32 = 2;

/// Identity of the measuring code: the blake3, taken at build time (`build.rs`), of the sources on the measured
/// path (the worker crate, the statistics and memory code it records with, the toolchain and the profile it is
/// compiled with). Editing any of them recomputes the points they measured; editing docs, plots or the planner
/// does not.
pub const METHOD_ID: &str = env!("E3PIPE_METHOD_ID");

/// libtorch version of the wheel e3pipe was built against.
pub use crate::models::libtorch::VERSION as LIBTORCH_VERSION;

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
    /// The process's resident set before any model was loaded, bytes: `peak_rss_bytes` minus this is what the
    /// model and the point added (CPU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_baseline_bytes: Option<u64>,
    /// GPU caching-allocator peak of allocated tensors, bytes; `None` where not measured (see `bench::memory`).
    pub cuda_peak_bytes: Option<u64>,
    /// GPU caching-allocator peak of reserved blocks (allocated plus cached free blocks: what the device had to
    /// hold; `torch.cuda.max_memory_reserved`), bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuda_reserved_peak_bytes: Option<u64>,
    /// Which of the two peaks `max_memory_gb` reports; never a mix.
    #[serde(default)]
    pub memory_source: MemorySource,
    /// Statistics per metric (per measured run unless said): `ttft_ms`, `tbt_ms` (a run's mean decode step),
    /// `itl_ms` (every decode step: runs × (`num_tokens` - 1) samples), `e2e_latency_ms`, `encoder_latency_ms`,
    /// `forward_pass_latency_ms`, `throughput_tokens_per_sec`, `prefill_tokens_per_sec`, `sequences_per_sec`,
    /// `tokens_per_sec`.
    pub stats: BTreeMap<String, Summary>,
    /// Unmeasured runs done first (more than asked for `TorchScript`, whose executor optimises on its second run).
    #[serde(default)]
    pub warmup_runs: usize,
    /// Why measuring stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<StopReason>,
    /// `METHOD_ID` of the code that measured the point.
    #[serde(default)]
    pub method: String,
    /// The `e3pipe run` that measured it (its start time and pid), to tell curves mixing runs.
    #[serde(default)]
    pub run_id: String,
    /// Measured wall time of the whole point including warm-up, seconds.
    pub wall_s: f64,
    pub finished_at: String,
    /// Energy of the measured runs, from the hardware's counters; `None` where nothing measures it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy: Option<Energy>,
    /// What measured the energy (`nvml total energy counter`, `rapl package counters …`) or `none (why)`.
    #[serde(default)]
    pub energy_source: String,
    /// What ran the measuring worker: `local` (a child process of `e3pipe run`) or `slurm` (an array task).
    #[serde(default = "local_executor")]
    pub executor: String,
    /// `<array job>_<task>` when measured by a Slurm array task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm_job_id: Option<String>,
    /// What measured it: the hardware identity of its cache key (on a GPU: model, MIG profile, driver, power
    /// limit, host CPU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware: Option<HardwareId>,
    /// On a GPU: the CUDA runtime, cuDNN and kernel-changing settings it ran with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<CudaRuntime>,
    /// On a GPU: clocks, throttle reasons, temperature and other processes around the measured window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_state: Option<GpuWindow>,
    /// Conditions that make the point less trustworthy (`shared GPU`, throttled clocks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Where it stood in its run's shuffled order (`bench::order`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<crate::bench::order::MeasureOrder>,
}

fn local_executor() -> String {
    "local".into()
}

/// A point's energy over its measured runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Energy {
    /// Per measured run.
    pub energy_j: f64,
    /// Per run and sequence of the batch.
    pub energy_per_sample_j: f64,
    /// Per generated token (generators) or input token (encoders).
    pub energy_per_token_j: f64,
    /// Over the measuring window.
    pub avg_power_w: f64,
}

impl Energy {
    /// From `joules` over `seconds` of `runs` runs of `batch` sequences, `tokens_per_sequence` tokens each.
    pub fn of(
        joules: f64,
        seconds: f64,
        runs: usize,
        batch: usize,
        tokens_per_sequence: usize,
    ) -> Option<Energy> {
        if runs == 0
            || batch == 0
            || tokens_per_sequence == 0
            || seconds <= 0.0
            || !joules.is_finite()
            // A counter that did not advance (or wrapped) measured nothing: no energy is claimed.
            || joules <= 0.0
        {
            return None;
        }
        let per_run = joules / runs as f64;
        Some(Energy {
            energy_j: per_run,
            energy_per_sample_j: per_run / batch as f64,
            energy_per_token_j: per_run / (batch * tokens_per_sequence) as f64,
            avg_power_w: joules / seconds,
        })
    }
}

/// The metric a point is summarised by: first-token latency for generators, forward latency for encoders.
pub fn headline_metric(arch: Arch) -> &'static str {
    match arch {
        Arch::Encoder => "forward_pass_latency_ms",
        _ => "ttft_ms",
    }
}

impl PointResult {
    pub fn median(&self, metric: &str) -> Option<f64> {
        self.stats.get(metric).map(|s| s.median)
    }

    /// The seed's headline number: first-token latency for generators, forward latency for encoders.
    pub fn latency_ms(&self) -> Option<f64> {
        self.median(headline_metric(self.arch))
    }

    /// Peak memory in GB as the seed reported it: the device peak on CUDA, the process peak on CPU (`memory_source`
    /// says which; a GPU point whose allocator could not be read has none rather than the host's).
    pub fn max_memory_gb(&self) -> Option<f64> {
        match self.memory_source {
            MemorySource::CudaAllocator => self.cuda_peak_bytes,
            MemorySource::HostRss => self.peak_rss_bytes,
            MemorySource::Unavailable => None,
        }
        .map(|b| b as f64 / 1e9)
    }

    /// Input tokens per second of the prefill (decoder), the encoder (encoder-decoder) or the forward (encoder).
    pub fn prefill_tokens_per_sec(&self) -> Option<f64> {
        self.median("prefill_tokens_per_sec")
    }

    /// Generated tokens per second of the decode phase alone: batch / median inter-token latency.
    pub fn decode_tokens_per_sec(&self) -> Option<f64> {
        self.median("itl_ms")
            .filter(|ms| *ms > 0.0)
            .map(|ms| self.batch_size as f64 * 1e3 / ms)
    }

    /// Sequences per second at the median request: the batch over the median forward pass (encoders) or the
    /// median whole generation of `num_tokens` tokens (generators), the rate a server completes requests at. From
    /// the median time, like `decode_tokens_per_sec`, so it pairs exactly with the latency it is drawn against (a
    /// median of per-run rates would not, with an even number of runs).
    pub fn sequences_per_sec(&self) -> Option<f64> {
        let metric = match self.arch {
            Arch::Encoder => "forward_pass_latency_ms",
            _ => "e2e_latency_ms",
        };
        self.median(metric)
            .filter(|ms| *ms > 0.0)
            .map(|ms| self.batch_size as f64 * 1e3 / ms)
    }

    /// The seed's throughput: generated tokens/s (over the whole generation, prefill included) for generators,
    /// input tokens/s for encoders.
    pub fn throughput(&self) -> Option<f64> {
        match self.arch {
            Arch::Encoder => self.median("tokens_per_sec"),
            _ => self.median("throughput_tokens_per_sec"),
        }
    }
}

impl PointResult {
    /// The record at batch size `batch_size` (an unmeasured point of a batch sweep).
    #[must_use]
    pub fn with_batch(self, batch_size: usize) -> PointResult {
        PointResult { batch_size, ..self }
    }
}

/// What identifies the measurement of a point that never ran (infeasible, or lost with a model that could not be
/// loaded or a crashed worker).
pub struct Unmeasured<'a> {
    pub model: &'a str,
    pub arch: Arch,
    pub params: &'a crate::bench::config::BenchParams,
    pub dtype: &'a str,
    pub device: String,
    pub threads: usize,
    pub weights: String,
    pub run_id: &'a str,
}

impl Unmeasured<'_> {
    /// The record of `context_length`: `status` with `reason`, no statistics. `finished_at` is left empty (it never
    /// ran), so the record of an infeasible point is the same on every run and a rerun rewrites nothing.
    pub fn result(&self, context_length: usize, status: Status, reason: &str) -> PointResult {
        PointResult {
            model: self.model.to_string(),
            arch: self.arch,
            context_length,
            input_tokens: 0,
            status,
            reason: Some(reason.to_string()),
            batch_size: self.params.batch_size,
            num_tokens: if self.arch.generates() {
                self.params.num_tokens
            } else {
                0
            },
            dtype: self.dtype.to_string(),
            device: self.device.clone(),
            threads: self.threads,
            libtorch_version: crate::models::runtime::loaded_libtorch_version(),
            e3pipe_version: env!("CARGO_PKG_VERSION").into(),
            weights: self.weights.clone(),
            weights_bytes: 0,
            peak_rss_bytes: None,
            rss_baseline_bytes: None,
            cuda_peak_bytes: None,
            cuda_reserved_peak_bytes: None,
            memory_source: MemorySource::default(),
            stats: BTreeMap::new(),
            warmup_runs: 0,
            stopped_by: None,
            method: METHOD_ID.into(),
            run_id: if status == Status::Infeasible {
                String::new()
            } else {
                self.run_id.to_string()
            },
            wall_s: 0.0,
            finished_at: if status == Status::Infeasible {
                String::new()
            } else {
                crate::clock::now_rfc3339()
            },
            energy: None,
            energy_source: String::new(),
            executor: local_executor(),
            slurm_job_id: None,
            hardware: None,
            runtime: None,
            gpu_state: None,
            warnings: Vec::new(),
            order: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn energy_is_divided_per_run_sequence_and_token() {
        // 12 J over 3 s of 3 runs of batch 2, 10 tokens each.
        let e = Energy::of(12.0, 3.0, 3, 2, 10).unwrap();
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(e.energy_j, 4.0) && close(e.energy_per_sample_j, 2.0));
        assert!(close(e.energy_per_token_j, 0.2) && close(e.avg_power_w, 4.0));
        assert!(Energy::of(12.0, 3.0, 0, 2, 10).is_none());
        assert!(Energy::of(f64::NAN, 3.0, 3, 2, 10).is_none());
        // A counter that did not move (a window shorter than its update period) is no measurement of 0 J.
        assert!(Energy::of(0.0, 3.0, 3, 2, 10).is_none());
        assert!(Energy::of(-5.0, 3.0, 3, 2, 10).is_none());
    }
}
