//! The seam between a bench step and whatever runs its measuring worker: "measure these points of this step and
//! report each as it finishes". `Local` runs the worker as a child process; `Slurm` (`pipeline::slurm`) submits
//! array jobs; tests use doubles that never load libtorch.

use crate::error::Result;
use crate::job::{Finished, Job};
use crate::pipeline::worker_process::{WorkerStatus, run_worker};

pub trait Executor {
    /// `local`, `slurm`: recorded with the points it measures.
    fn name(&self) -> &'static str;
    /// Measures `job`'s points (and the machine's peaks when the job asks), passing each finished point to
    /// `finished`. Points it does not report were not measured.
    fn measure(&self, job: &Job, finished: &mut dyn FnMut(Finished)) -> Result<WorkerStatus>;
    /// What `--dry-run` says it would do with `points` points at `threads` threads.
    fn describe(&self, _points: usize, _threads: usize) -> Option<String> {
        None
    }
}

/// The worker as a child process of this `e3pipe run`.
pub struct Local;

impl Executor for Local {
    fn name(&self) -> &'static str {
        "local"
    }

    fn measure(&self, job: &Job, finished: &mut dyn FnMut(Finished)) -> Result<WorkerStatus> {
        let (points, status) = run_worker(job)?;
        for f in points {
            finished(f);
        }
        Ok(status)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::bench::peaks::Peaks;
    use crate::bench::result::{Status, Unmeasured};
    use crate::bench::stats::summarize;
    use crate::cache::store::Store;
    use crate::job::Outcome;
    use crate::pipeline::execute::execute;
    use crate::pipeline::plan::{Force, plan};
    use crate::pipeline::spec::Pipeline;

    /// Measures nothing: answers every point with `ms` milliseconds and caches it, as a worker would.
    struct Fake {
        ms: f64,
        jobs: RefCell<Vec<usize>>,
    }

    impl Executor for Fake {
        fn name(&self) -> &'static str {
            "fake"
        }

        fn measure(&self, job: &Job, finished: &mut dyn FnMut(Finished)) -> Result<WorkerStatus> {
            self.jobs.borrow_mut().push(job.points.len());
            let store = Store::new(&job.root);
            if let Some(key) = &job.peaks {
                let peaks = Peaks {
                    device: key.device.clone(),
                    dtype: key.dtype.clone(),
                    threads: key.threads,
                    matmul_flops_per_s: 1e11,
                    matmul_median_flops_per_s: 1e11,
                    matmul_n: 512,
                    memory_bytes_per_s: 1e10,
                    memory_median_bytes_per_s: 1e10,
                    stream_bytes: 1 << 29,
                    runs: 5,
                    method: key.method.clone(),
                    measured_at: String::new(),
                    datasheet: None,
                };
                crate::cache::peaks::save(&store.dir, key, &peaks)?;
            }
            for point in &job.points {
                let mut result = Unmeasured {
                    model: &job.model.name,
                    arch: job.model.arch,
                    params: &point.params(&job.params),
                    dtype: job.dtype.name(),
                    device: "fake".into(),
                    threads: job.threads,
                    weights: job.weights.clone(),
                    run_id: &job.run_id,
                }
                .result(point.context_length, Status::Ok, "");
                result.reason = None;
                result.input_tokens = point.context_length;
                let samples = [self.ms, self.ms * 1.1, self.ms * 0.9];
                result.stats.insert(
                    "forward_pass_latency_ms".into(),
                    summarize(&samples).unwrap(),
                );
                store.put(&point.key, &result)?;
                finished(Finished {
                    hash: point.hash.clone(),
                    outcome: Outcome::Computed,
                    result,
                });
            }
            Ok(WorkerStatus::Done)
        }
    }

    #[test]
    fn planner_and_executor_run_without_libtorch() {
        let dir = tempfile::tempdir().unwrap();
        let write = |rel: &str, text: &str| {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write(
            "configs/model/bert.yaml",
            "name: bert-tiny\narch: encoder\nweights: random\nseed: 1\nconfig: {model_type: bert, vocab_size: 30522, hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 128, max_position_embeddings: 512}\n",
        );
        write(
            "configs/bench/encoder.yaml",
            "name: t\narch: encoder\ncontext_lengths: [8, 16, 600]\nnum_runs: 3\nthreads: 1\n",
        );
        write(
            "pipelines/p.yaml",
            "steps:\n  - {name: b, kind: bench, model: configs/model/bert.yaml, bench: configs/bench/encoder.yaml}\n",
        );
        let pipeline = Pipeline::load(&dir.path().join("pipelines/p.yaml")).unwrap();
        let fake = Fake {
            ms: 7.0,
            jobs: RefCell::new(Vec::new()),
        };
        let outcome = execute(&plan(&pipeline, &[], &Force::default()).unwrap(), &fake).unwrap();
        // 600 tokens exceed the 512 positions: infeasible, never handed to the executor.
        assert_eq!(*fake.jobs.borrow(), [2]);
        assert_eq!((outcome.counts.computed, outcome.counts.infeasible), (2, 1));
        let doc: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.path().join("latest/inference/bert-tiny.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(doc["metrics"]["8"]["latency_ms"], 7.0);
        assert_eq!(doc["metrics"]["600"]["status"], "infeasible");
        // Read against the peaks the executor measured: 2·(8·8·64² + 4·8·64·128 + 4·8²·64) FLOPs in 7 ms.
        let flops = 2.0 * (8.0 * 8.0 * 64.0 * 64.0 + 4.0 * 8.0 * 64.0 * 128.0 + 4.0 * 64.0 * 64.0);
        let mfu = doc["metrics"]["8"]["mfu"].as_f64().unwrap();
        assert!((mfu - flops / 7e-3 / 1e11).abs() < 1e-12, "{mfu}");
        // Everything is cached now: the executor is not asked again.
        let outcome = execute(&plan(&pipeline, &[], &Force::default()).unwrap(), &fake).unwrap();
        assert_eq!(*fake.jobs.borrow(), [2]);
        assert_eq!(outcome.counts.cached, 2);
    }
}
