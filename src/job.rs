//! What the orchestrator asks the measuring worker to do, and what the worker reports back, as JSON: the job on
//! the worker's stdin, one `Finished` line per point on its stdout.
//!
//! Measuring runs in a separate process (`e3pipe-worker`) because only it links libtorch: the orchestrator starts
//! in milliseconds (a no-op rerun never pays libtorch's ~0.3 s of static initialisation), and a crash inside
//! libtorch (a segfault, the kernel's OOM killer) fails the points in flight instead of the whole run.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::bench::config::BenchParams;
use crate::bench::result::PointResult;
use crate::cache::key::PointKey;
use crate::cache::peaks::PeaksKey;
use crate::models::DType;
use crate::models::hardware::Device;
use crate::models::spec::ModelSpec;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    #[serde(with = "crate::os_path")]
    pub root: PathBuf,
    pub step: String,
    pub model: ModelSpec,
    pub params: BenchParams,
    pub device: Device,
    pub dtype: DType,
    pub threads: usize,
    /// The weights' identity for results (`random-init seed N`, `file blake3:…`).
    pub weights: String,
    /// The `e3pipe run` this job belongs to, recorded with each point.
    pub run_id: String,
    pub points: Vec<JobPoint>,
    /// Measure the machine's peaks first and cache them under this key (when the cache has none).
    #[serde(default)]
    pub peaks: Option<PeaksKey>,
    /// Slurm array jobs: each task measures this many points (task `i` the `i`-th chunk).
    #[serde(default)]
    pub points_per_task: Option<usize>,
    /// The shuffle the points are in: its seed and how many points it ordered (`bench::order`).
    #[serde(default)]
    pub order: Option<(u64, usize)>,
    /// Where this job stands in the whole run (all its bench steps), for one overall count and ETA.
    #[serde(default)]
    pub progress: Option<Progress>,
}

/// The run's overall progress when a job starts: points measured by the jobs before it, points the whole run
/// measures, and the seconds spent measuring so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub done_before: usize,
    pub total: usize,
    pub elapsed_before_s: f64,
}

impl Progress {
    /// Time left, from the run's rate so far (seconds per point over every step), once a point is done.
    pub fn eta_s(&self, done: usize, elapsed_s: f64) -> Option<f64> {
        (done > 0 && self.total >= done)
            .then(|| elapsed_s / done as f64 * (self.total - done) as f64)
    }

    /// `1 min 20 s`, `45 s`, `2 h 05 min`.
    pub fn human(seconds: f64) -> String {
        let s = seconds.max(0.0).round() as u64;
        match s {
            0..60 => format!("{s} s"),
            60..3600 => format!("{} min {:02} s", s / 60, s % 60),
            _ => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
        }
    }
}

/// Who is measuring, recorded in each point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measurer {
    pub executor: &'static str,
    pub slurm_job_id: Option<String>,
}

impl Measurer {
    pub const LOCAL: Measurer = Measurer {
        executor: "local",
        slurm_job_id: None,
    };
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobPoint {
    pub context_length: usize,
    pub hash: String,
    pub key: PointKey,
    /// `--force`: measure even if the cache has it.
    pub forced: bool,
    /// Its position in the job's shuffled order.
    #[serde(default)]
    pub position: usize,
}

impl JobPoint {
    /// The step's parameters at this point's batch size (a point is one length at one batch size).
    pub fn params(&self, step: &BenchParams) -> BenchParams {
        BenchParams {
            batch_size: self.key.batch_size,
            ..*step
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Measured now and cached.
    Computed,
    /// Another process measured it while we waited for its lock.
    Cached,
    /// Measured now but failed (`oom`, `error`) or found infeasible; not cached, so a rerun tries again.
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finished {
    pub hash: String,
    pub outcome: Outcome,
    pub result: PointResult,
}

#[cfg(test)]
mod tests {
    use super::Progress;

    #[test]
    fn eta_is_the_rate_so_far_times_what_is_left() {
        let p = Progress {
            done_before: 4,
            total: 10,
            elapsed_before_s: 8.0,
        };
        assert_eq!(p.eta_s(0, 0.0), None);
        assert_eq!(p.eta_s(5, 10.0), Some(10.0));
        assert_eq!(p.eta_s(10, 20.0), Some(0.0));
        assert_eq!(Progress::human(45.4), "45 s");
        assert_eq!(Progress::human(80.0), "1 min 20 s");
        assert_eq!(Progress::human(7500.0), "2 h 05 min");
    }
}
