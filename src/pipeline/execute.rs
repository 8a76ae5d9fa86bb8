//! Runs a plan step by step in topological order. Bench steps run one at a time (two on one device would disturb
//! each other's timings): cached and infeasible points are settled here, the rest are measured by the
//! `e3pipe-worker` process (see `job`), which caches each point as soon as it finishes, so a crash or Ctrl-C loses
//! at most the point in progress.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::bench::report_file;
use crate::bench::result::{PointResult, Status};

use crate::error::{Error, Result};
use crate::interrupt::INTERRUPTED;
use crate::models::hardware::CUDA_ORDER_ENV;
use crate::pipeline::job::{Finished, Job, JobPoint, Outcome as PointOutcome};
use crate::pipeline::plan::{BenchPlan, Plan, PointState, StepPlan};
use crate::{report, say};

/// Point counts for the closing line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub computed: usize,
    pub cached: usize,
    pub failed: usize,
    pub infeasible: usize,
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "points: {} computed, {} cached, {} failed, {} infeasible",
            self.computed, self.cached, self.failed, self.infeasible
        )
    }
}

pub struct Outcome {
    pub counts: Counts,
    /// Steps whose work failed (not counting failed points, which `counts` reports).
    pub failed_steps: Vec<String>,
}

pub fn execute(plan: &Plan) -> Result<Outcome> {
    let mut counts = Counts::default();
    let mut failed_steps = Vec::new();
    for step in &plan.steps {
        let outcome = match step {
            StepPlan::Bench(bench) => run_bench(plan, bench, &mut counts),
            StepPlan::Aggregate {
                step,
                forced,
                models,
            } => {
                report::aggregate::run_step(step, &plan.root, *forced, models).map(|msg| say(&msg))
            }
            StepPlan::Plot {
                step,
                options,
                forced,
            } => report::plot::run_step(step, &plan.root, options, *forced).map(|msg| say(&msg)),
        };
        match outcome {
            Ok(()) => {}
            Err(Error::Interrupted) => {
                println!("{counts}");
                return Err(Error::Interrupted);
            }
            // Input the user must fix stops the run; other failures are reported and later steps still run.
            Err(e) if e.exit_code() == 2 => return Err(e),
            Err(e) => {
                let name = match step {
                    StepPlan::Bench(b) => b.step.clone(),
                    StepPlan::Aggregate { step, .. } | StepPlan::Plot { step, .. } => step.clone(),
                };
                crate::print_error(&e);
                failed_steps.push(name);
            }
        }
    }
    Ok(Outcome {
        counts,
        failed_steps,
    })
}

fn run_bench(plan: &Plan, bench: &BenchPlan, counts: &mut Counts) -> Result<()> {
    let model_spec = &bench.bench.model;
    let mut results: Vec<Option<(String, PointResult)>> = vec![None; bench.points.len()];
    let mut job_points = Vec::new();
    for (index, point) in bench.points.iter().enumerate() {
        match &point.state {
            PointState::Infeasible(reason) => {
                tracing::warn!(
                    "point {}@{} is infeasible: {reason}",
                    model_spec.name,
                    point.context_length
                );
                counts.infeasible += 1;
                results[index] = Some((
                    point.hash.clone(),
                    unmeasured_result(bench, point.context_length, Status::Infeasible, reason),
                ));
                continue;
            }
            PointState::Cached => {
                if let Some(result) = &point.cached {
                    counts.cached += 1;
                    results[index] = Some((point.hash.clone(), (**result).clone()));
                    continue;
                }
            }
            PointState::Corrupt(reason) => {
                tracing::warn!(
                    "cache entry of {}@{} is corrupt ({reason}); recomputing",
                    model_spec.name,
                    point.context_length
                );
            }
            _ => {}
        }
        job_points.push(JobPoint {
            context_length: point.context_length,
            hash: point.hash.clone(),
            key: point.key.clone(),
            forced: point.state == PointState::Forced,
        });
    }
    say(&format!(
        "step `{}`: {} ({}), {} point(s) to compute, {} cached",
        bench.step,
        model_spec.name,
        model_spec.arch,
        job_points.len(),
        counts_cached(bench, &results)
    ));
    let mut interrupted = false;
    if !job_points.is_empty() {
        let job = Job {
            root: plan.root.clone(),
            step: bench.step.clone(),
            model: model_spec.clone(),
            params: bench.bench.bench.params,
            device: bench.device,
            dtype: bench.dtype,
            threads: bench.threads,
            weights: bench.weights.to_string(),
            run_id: run_id().to_string(),
            points: job_points.clone(),
        };
        let (finished, status) = run_worker(&job)?;
        for f in finished {
            let Some(index) = bench.points.iter().position(|p| p.hash == f.hash) else {
                continue;
            };
            match f.outcome {
                PointOutcome::Computed => counts.computed += 1,
                PointOutcome::Cached => counts.cached += 1,
                PointOutcome::Failed if f.result.status == Status::Infeasible => {
                    counts.infeasible += 1
                }
                PointOutcome::Failed => counts.failed += 1,
            }
            results[index] = Some((f.hash, f.result));
        }
        interrupted = status == WorkerStatus::Interrupted;
        if let WorkerStatus::Failed(why) = &status {
            // The points the worker did not report failed with it (a crash inside libtorch, the OOM killer, ...).
            for (index, point) in bench.points.iter().enumerate() {
                if results[index].is_none() {
                    counts.failed += 1;
                    let r = unmeasured_result(bench, point.context_length, Status::Error, why);
                    results[index] = Some((point.hash.clone(), r));
                }
            }
            eprintln!("error: step `{}`: {why}", bench.step);
        }
    }
    let results: Vec<(String, PointResult)> = results.into_iter().flatten().collect();
    print_summary(&model_spec.name, &results);
    if !interrupted && let Some(path) = report_file::write(&plan.root, bench, &results)? {
        say(&format!(
            "  wrote {}",
            path.strip_prefix(&plan.root).unwrap_or(&path).display()
        ));
    }
    if interrupted || INTERRUPTED.load(Ordering::SeqCst) {
        return Err(Error::Interrupted);
    }
    Ok(())
}

fn counts_cached(bench: &BenchPlan, results: &[Option<(String, PointResult)>]) -> usize {
    bench
        .points
        .iter()
        .zip(results)
        .filter(|(p, r)| p.state == PointState::Cached && r.is_some())
        .count()
}

#[derive(Debug, PartialEq)]
enum WorkerStatus {
    Done,
    Interrupted,
    Failed(String),
}

/// This `e3pipe run`: its start time and pid, recorded with every point it measures.
fn run_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| format!("{} pid {}", crate::bench::result::now_rfc3339(), std::process::id()))
}

/// The worker binary sits beside this one (`E3PIPE_WORKER` overrides, for packaging).
fn worker_path() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("E3PIPE_WORKER") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|source| Error::Read {
        path: "/proc/self/exe".into(),
        source,
    })?;
    Ok(exe.with_file_name("e3pipe-worker"))
}

/// Runs the job in `e3pipe-worker`, collecting its per-point reports. Ctrl-C here is forwarded to it, so it stops
/// after its current measured run.
fn run_worker(job: &Job) -> Result<(Vec<Finished>, WorkerStatus)> {
    let path = worker_path()?;
    // Its own process group: a terminal's Ctrl-C reaches only us, and we forward it exactly once (a second SIGINT
    // makes the worker exit at once).
    let mut child = Command::new(&path)
        .env("E3PIPE_LOG", crate::log_filter())
        // libtorch numbers GPUs as `nvidia-smi` does, so `cuda:N` is the GPU the cache key names.
        .env(CUDA_ORDER_ENV.0, CUDA_ORDER_ENV.1)
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Error::Step {
            step: job.step.clone(),
            message: format!("cannot start the measuring worker `{}` ({e}); `cargo build` builds it beside `e3pipe`", path.display()),
        })?;
    let payload = serde_json::to_vec(job).map_err(|e| Error::Step {
        step: job.step.clone(),
        message: e.to_string(),
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A worker that dies before reading its job shows in its exit status below; a broken pipe here says less.
        let _ = stdin.write_all(&payload);
    }
    let stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut finished = Vec::new();
        if let Some(out) = stdout {
            for line in BufReader::new(out).lines().map_while(std::io::Result::ok) {
                if let Ok(f) = serde_json::from_str::<Finished>(&line) {
                    finished.push(f);
                }
            }
        }
        finished
    });
    let mut forwarded = false;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })? {
            break status;
        }
        if INTERRUPTED.load(Ordering::SeqCst) && !forwarded {
            // SAFETY: signalling our own child process by pid.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
            forwarded = true;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let finished = reader.join().unwrap_or_default();
    let outcome = match status.code() {
        Some(0) => WorkerStatus::Done,
        Some(130) => WorkerStatus::Interrupted,
        Some(code) => WorkerStatus::Failed(format!("the measuring worker exited with code {code}")),
        None => WorkerStatus::Failed(format!(
            "the measuring worker was killed by signal {}",
            status.signal().unwrap_or(0)
        )),
    };
    Ok((finished, outcome))
}

/// The record of a point that was never measured: infeasible, or lost with a crashed worker.
fn unmeasured_result(
    bench: &BenchPlan,
    context_length: usize,
    status: Status,
    reason: &str,
) -> PointResult {
    let params = &bench.bench.bench.params;
    PointResult {
        model: bench.bench.model.name.clone(),
        arch: bench.bench.model.arch,
        context_length,
        input_tokens: 0,
        status,
        reason: Some(reason.to_string()),
        batch_size: params.batch_size,
        num_tokens: if bench.bench.model.arch.generates() {
            params.num_tokens
        } else {
            0
        },
        dtype: bench.dtype.name().into(),
        device: crate::models::hardware::describe(bench.device),
        threads: bench.threads,
        libtorch_version: crate::bench::result::LIBTORCH_VERSION.into(),
        e3pipe_version: env!("CARGO_PKG_VERSION").into(),
        weights: bench.weights.to_string(),
        weights_bytes: 0,
        peak_rss_bytes: None,
        cuda_peak_bytes: None,
        memory_source: Default::default(),
        stats: Default::default(),
        warmup_runs: 0,
        stopped_by: None,
        method: crate::bench::result::METHOD_ID.into(),
        run_id: run_id().to_string(),
        wall_s: 0.0,
        finished_at: crate::bench::result::now_rfc3339(),
    }
}

/// The seed's console summary, one line per length, plus warnings about untrustworthy samples.
fn print_summary(model: &str, results: &[(String, PointResult)]) {
    println!("{model}: Context Length Scaling Results:");
    for (_, r) in results {
        match (r.status, r.latency_ms()) {
            (Status::Ok, Some(ms)) => {
                let warning = r
                    .stats
                    .values()
                    .find_map(|s| s.warning())
                    .map(|w| format!("  (warning: {w})"))
                    .unwrap_or_default();
                println!("  {} tokens: {ms:.2}ms{warning}", r.context_length)
            }
            (status, _) => println!(
                "  {} tokens: {} ({})",
                r.context_length,
                status.as_str(),
                r.reason.as_deref().unwrap_or("")
            ),
        }
    }
}
