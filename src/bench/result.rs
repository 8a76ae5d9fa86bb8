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
    /// When this point was re-measured as its curve's anchor (`bench::anchor`): how it compared with the cached
    /// measurement it replaced. Set by the run that re-measured it, in its results document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<crate::bench::anchor::AnchorCheck>,
    /// With `record_outputs`: what the model produced, so anyone can check it against their own implementation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<PointOutputs>,
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

/// A point's outputs (`record_outputs: true`), taken outside every timed region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointOutputs {
    /// The first row's prompt ids.
    pub input_ids: Vec<i64>,
    /// Generators: the first row's greedy ids of the first measured run, all `num_tokens` of them (the first
    /// from the prefill; EOS never picked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_ids: Option<Vec<i64>>,
    /// Encoders: the last hidden state's first 8 values at row 0, position 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_head: Option<Vec<f64>>,
}

/// A point's energy over its measured runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Energy {
    /// Per measured run.
    pub energy_j: f64,
    /// Per run and sequence of the batch.
    pub energy_per_sample_j: f64,
    /// Encoders: per input token. Generators: the decode energy per token it generated (`decode_energy_j` over
    /// batch × (`num_tokens` - 1)); none where the prefill could not be told apart or nothing was decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy_per_token_j: Option<f64>,
    /// Over the measuring window.
    pub avg_power_w: f64,
    /// The device's power at rest, measured just before the point's warm-ups (the same counter, 1 s or more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_power_w: Option<f64>,
    /// Per run, above what the device would have drawn at rest over the same time; none where not above it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy_above_idle_j: Option<f64>,
    /// Generators: per run, the prefill's share, measured in a window of prefill-only runs ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefill_energy_j: Option<f64>,
    /// ... and the rest of the run: the decode steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_energy_j: Option<f64>,
}

/// One counter window: the joules it read, over how many seconds, of how many runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EnergyWindow {
    pub joules: f64,
    pub seconds: f64,
    pub runs: usize,
}

impl EnergyWindow {
    /// A counter that did not advance (or wrapped), or a window of nothing, measured nothing: no energy is claimed.
    fn valid(self) -> Option<EnergyWindow> {
        (self.runs > 0 && self.seconds > 0.0 && self.joules.is_finite() && self.joules > 0.0)
            .then_some(self)
    }

    fn per_run_j(self) -> f64 {
        self.joules / self.runs as f64
    }
}

/// The windows a point's energy is read from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EnergyWindows {
    /// The measured runs (and more of the same until the window spans the counter's updates).
    pub measured: EnergyWindow,
    /// The device at rest (`runs` is unused).
    pub idle: Option<EnergyWindow>,
    /// Prefill-only runs of a generator.
    pub prefill: Option<EnergyWindow>,
}

impl Energy {
    /// From `windows` of runs of `batch` sequences; `tokens` is the input length (encoders) or `num_tokens`
    /// (generators, whose first token comes from the prefill).
    pub fn of(
        windows: &EnergyWindows,
        batch: usize,
        tokens: usize,
        generates: bool,
    ) -> Option<Energy> {
        let measured = windows.measured.valid()?;
        if batch == 0 || tokens == 0 {
            return None;
        }
        let per_run = measured.per_run_j();
        let run_s = measured.seconds / measured.runs as f64;
        let idle_power_w = windows
            .idle
            .and_then(|w| w.joules.is_finite().then_some(w))
            .filter(|w| w.seconds > 0.0 && w.joules >= 0.0)
            .map(|w| w.joules / w.seconds);
        let energy_above_idle_j = idle_power_w
            .map(|p| per_run - p * run_s)
            .filter(|j| *j > 0.0);
        let prefill_energy_j = windows
            .prefill
            .filter(|_| generates)
            .and_then(EnergyWindow::valid)
            .map(EnergyWindow::per_run_j);
        let decode_energy_j = prefill_energy_j
            .map(|p| per_run - p)
            .filter(|j| *j > 0.0 && tokens > 1);
        let energy_per_token_j = if generates {
            decode_energy_j.map(|d| d / (batch * (tokens - 1)) as f64)
        } else {
            Some(per_run / (batch * tokens) as f64)
        };
        Some(Energy {
            energy_j: per_run,
            energy_per_sample_j: per_run / batch as f64,
            energy_per_token_j,
            avg_power_w: measured.joules / measured.seconds,
            idle_power_w,
            energy_above_idle_j,
            prefill_energy_j,
            decode_energy_j,
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

/// `headline_metric` as people name it.
pub fn headline_metric_label(arch: Arch) -> &'static str {
    match arch {
        Arch::Encoder => "forward pass",
        _ => "TTFT",
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
            anchor: None,
            outputs: None,
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

    fn window(joules: f64, seconds: f64, runs: usize) -> EnergyWindow {
        EnergyWindow {
            joules,
            seconds,
            runs,
        }
    }

    #[test]
    fn energy_is_divided_per_run_sequence_and_token() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        // An encoder: 12 J over 3 s of 3 runs of batch 2, 10 input tokens each; 1 W at rest.
        let w = EnergyWindows {
            measured: window(12.0, 3.0, 3),
            idle: Some(window(1.0, 1.0, 0)),
            prefill: None,
        };
        let e = Energy::of(&w, 2, 10, false).unwrap();
        assert!(close(e.energy_j, 4.0) && close(e.energy_per_sample_j, 2.0));
        assert!(close(e.energy_per_token_j.unwrap(), 0.2) && close(e.avg_power_w, 4.0));
        // 4 J per 1 s run, 1 J of which the device draws at rest.
        assert!(close(e.idle_power_w.unwrap(), 1.0) && close(e.energy_above_idle_j.unwrap(), 3.0));
        assert_eq!((e.prefill_energy_j, e.decode_energy_j), (None, None));
        let bad = |measured| EnergyWindows { measured, ..w };
        assert!(Energy::of(&bad(window(12.0, 3.0, 0)), 2, 10, false).is_none());
        assert!(Energy::of(&bad(window(f64::NAN, 3.0, 3)), 2, 10, false).is_none());
        // A counter that did not move (a window shorter than its update period) is no measurement of 0 J.
        assert!(Energy::of(&bad(window(0.0, 3.0, 3)), 2, 10, false).is_none());
        assert!(Energy::of(&bad(window(-5.0, 3.0, 3)), 2, 10, false).is_none());
    }

    #[test]
    fn a_generators_token_energy_is_its_decode_energy() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        // Runs of 5 tokens (1 from the prefill, 4 decoded) at batch 2: 10 J per run, of which a prefill-only run
        // takes 2 J. Decode: 8 J for 2 × 4 tokens, 1 J each (not 10 J / 10 tokens).
        let w = EnergyWindows {
            measured: window(30.0, 3.0, 3),
            idle: None,
            prefill: Some(window(6.0, 1.5, 3)),
        };
        let e = Energy::of(&w, 2, 5, true).unwrap();
        assert!(close(e.prefill_energy_j.unwrap(), 2.0) && close(e.decode_energy_j.unwrap(), 8.0));
        assert!(close(e.energy_per_token_j.unwrap(), 1.0));
        assert_eq!((e.idle_power_w, e.energy_above_idle_j), (None, None));
        // No prefill window, or one generated token: no decode energy to divide, so no per-token figure.
        let no_prefill = EnergyWindows { prefill: None, ..w };
        assert_eq!(
            Energy::of(&no_prefill, 2, 5, true)
                .unwrap()
                .energy_per_token_j,
            None
        );
        assert_eq!(Energy::of(&w, 2, 1, true).unwrap().energy_per_token_j, None);
        // A prefill that read more than the whole run (noise): no decode energy, never a negative one.
        let noisy = EnergyWindows {
            prefill: Some(window(40.0, 1.0, 3)),
            ..w
        };
        let e = Energy::of(&noisy, 2, 5, true).unwrap();
        assert_eq!((e.decode_energy_j, e.energy_per_token_j), (None, None));
        // At rest above the run's own power: no energy above idle claimed.
        let idle_high = EnergyWindows {
            idle: Some(window(20.0, 1.0, 0)),
            ..w
        };
        assert_eq!(
            Energy::of(&idle_high, 2, 5, true)
                .unwrap()
                .energy_above_idle_j,
            None
        );
    }
}
