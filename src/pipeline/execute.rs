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

use crate::bench::result::{PointResult, Status, Unmeasured, headline_metric};
use crate::bench::stats::level_label;
use crate::cache::settled::{Settled, file_stamp};
use crate::cache::store::{Lookup, Store};

use crate::error::{Error, Result};
use crate::interrupt::INTERRUPTED;
use crate::models::hardware::CUDA_ORDER_ENV;
use crate::pipeline::job::{Finished, Job, JobPoint, Outcome as PointOutcome};
use crate::pipeline::plan::{BenchPlan, Plan, PointState, StepPlan};
use crate::pipeline::results_file;
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
        let name = match step {
            StepPlan::Bench(b) => b.step.clone(),
            StepPlan::Aggregate { step, .. } | StepPlan::Plot { step, .. } => step.clone(),
        };
        // A derived step whose input step failed in this run would draw from stale or missing input.
        if !matches!(step, StepPlan::Bench(_))
            && let Some(up) = plan
                .needs
                .get(&name)
                .into_iter()
                .flatten()
                .find(|n| failed_steps.contains(*n))
        {
            eprintln!("error: step `{name}` skipped: step `{up}` failed");
            failed_steps.push(name);
            continue;
        }
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
            // Invalid input was refused while planning; whatever fails now is a runtime failure (exit 1): reported,
            // and the steps that do not depend on it still run.
            Err(e) => {
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
    let mut infeasible: Vec<(usize, &str)> = Vec::new();
    for (index, point) in bench.points.iter().enumerate() {
        match &point.state {
            PointState::Infeasible(reason) => {
                // One line per step (below); each point at `-v`.
                tracing::info!(
                    "point {}@{} is infeasible: {reason}",
                    model_spec.name,
                    point.context_length
                );
                infeasible.push((point.context_length, reason.as_str()));
                counts.infeasible += 1;
                results[index] = Some((
                    point.hash.clone(),
                    unmeasured_result(bench, point.context_length, Status::Infeasible, reason),
                ));
                continue;
            }
            PointState::Cached => {
                counts.cached += 1;
                continue;
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
            key: bench.key(point),
            forced: point.state == PointState::Forced,
        });
    }
    if let (Some(first), Some(last)) = (
        infeasible.iter().map(|p| p.0).min(),
        infeasible.iter().map(|p| p.0).max(),
    ) {
        let example = infeasible.iter().find(|p| p.0 == first).map_or("", |p| p.1);
        if infeasible.len() == 1 {
            tracing::warn!("point {}@{first} is infeasible: {example}", model_spec.name);
        } else {
            tracing::warn!(
                "{} lengths of `{}` from {first} to {last} are infeasible (e.g. {example}); `-v` lists them",
                infeasible.len(),
                model_spec.name
            );
        }
    }
    // Nothing to compute and the results document is the one written from exactly these points: done, without
    // reading a single cache entry (what keeps a no-op of 10,000 points cheap).
    let fingerprint = results_file::fingerprint(bench);
    let document = crate::paths::latest_results(&plan.root, &model_spec.name);
    let store = Store::new(&plan.root);
    let settled_path = Settled::path(&store.dir, &model_spec.name);
    if job_points.is_empty()
        && bench.settled.fingerprint == fingerprint
        && bench.settled.document.is_some()
        && bench.settled.document == file_stamp(&document)
        && bench
            .points
            .iter()
            .all(|p| matches!(p.state, PointState::Cached | PointState::Infeasible(_)))
    {
        say(&format!(
            "step `{}`: {} ({}), {} point(s) cached, results unchanged",
            bench.step,
            model_spec.name,
            model_spec.arch,
            bench.points.len() - infeasible.len()
        ));
        return Ok(());
    }
    // The results change: read the cached points (the ones the settled index vouched for were not read yet).
    for (index, point) in bench.points.iter().enumerate() {
        if point.state != PointState::Cached {
            continue;
        }
        let result = match &point.cached {
            Some(result) => Some((**result).clone()),
            None => match store.get(&point.hash) {
                Lookup::Hit(entry) => Some(entry.result),
                _ => None,
            },
        };
        match result {
            Some(result) => results[index] = Some((point.hash.clone(), result)),
            None => {
                // Changed between planning and now (another run, a damaged file): measure it again.
                counts.cached -= 1;
                job_points.push(JobPoint {
                    context_length: point.context_length,
                    hash: point.hash.clone(),
                    key: bench.key(point),
                    forced: false,
                });
            }
        }
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
    if !interrupted {
        if let Some(path) = results_file::write(&plan.root, bench, &results)? {
            say(&format!(
                "  wrote {}",
                path.strip_prefix(&plan.root).unwrap_or(&path).display()
            ));
        }
        // Index the entries these results came from, for the next run's no-op check. Only a step whose every
        // point is settled (cached or infeasible) gets a fingerprint: anything else must be looked at again.
        let all_settled = results
            .iter()
            .all(|(_, r)| matches!(r.status, Status::Ok | Status::Infeasible));
        let mut settled = Settled::new(
            if all_settled && results.len() == bench.points.len() {
                fingerprint
            } else {
                String::new()
            },
            file_stamp(&document),
        );
        for (hash, r) in &results {
            if r.status == Status::Ok
                && let Some(stamp) = file_stamp(&store.entry_path(hash))
            {
                settled.record(hash, stamp);
            }
        }
        settled.save(&settled_path)?;
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
    ID.get_or_init(|| {
        format!(
            "{} pid {}",
            crate::bench::result::now_rfc3339(),
            std::process::id()
        )
    })
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
    let parent = std::process::id() as libc::pid_t;
    let mut command = Command::new(&path);
    // SAFETY: the closure runs in the forked child before exec and calls only async-signal-safe functions. The
    // parent-death signal is set before libtorch's slow start-up, and a parent that died before it was set is
    // caught by comparing the parent pid: the worker never measures unsupervised.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 || libc::getppid() != parent
            {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let mut child = command
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
    Unmeasured {
        model: &bench.bench.model.name,
        arch: bench.bench.model.arch,
        params: &bench.bench.bench.params,
        dtype: bench.dtype.name(),
        device: crate::models::hardware::describe(bench.device),
        threads: bench.threads,
        weights: bench.weights.to_string(),
        run_id: run_id(),
    }
    .result(context_length, status, reason)
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
                let interval = r
                    .stats
                    .get(headline_metric(r.arch))
                    .filter(|s| s.n > 1)
                    .map(|s| {
                        format!(
                            " ({} interval of the median {:.2}–{:.2}, n = {})",
                            level_label(s.ci_level),
                            s.ci_low,
                            s.ci_high,
                            s.n
                        )
                    })
                    .unwrap_or_default();
                println!(
                    "  {} tokens: {ms:.2}ms{interval}{warning}",
                    r.context_length
                )
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
