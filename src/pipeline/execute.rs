//! Runs a plan step by step in topological order. Bench steps run one at a time (two on one device would disturb
//! each other's timings); each point is taken from the cache or measured under a per-point lock and cached as soon
//! as it finishes, so a crash or Ctrl-C loses at most the point in progress.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tokenizers::Tokenizer;

use crate::bench::report_file;
use crate::bench::result::{PointResult, Status};
use crate::bench::runner::{INTERRUPTED, measure_point};
use crate::cache::lock::{Acquire, acquire};
use crate::cache::store::{Lookup, Store};
use crate::error::{Error, Result};
use crate::models::{Model, tokenizer};
use crate::pipeline::plan::{BenchPlan, Plan, PointState, StepPlan};
use crate::report;

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
            StepPlan::Aggregate { step, forced } => {
                report::aggregate::run_step(step, &plan.root, *forced).map(|msg| eprintln!("{msg}"))
            }
            StepPlan::Plot {
                step,
                options,
                forced,
            } => report::plot::run_step(step, &plan.root, options, *forced)
                .map(|msg| eprintln!("{msg}")),
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

fn load_tokenizer(plan: &BenchPlan) -> Result<Tokenizer> {
    match &plan.bench.model.tokenizer {
        Some(path) => tokenizer::from_file(path),
        None => tokenizer::builtin(plan.bench.model.arch).map(|(t, _)| t),
    }
}

fn run_bench(plan: &Plan, bench: &BenchPlan, counts: &mut Counts) -> Result<()> {
    let store = Store::new(&plan.root);
    let locks = store.dir.join("locks");
    let model_spec = &bench.bench.model;
    let to_compute = bench
        .points
        .iter()
        .filter(|p| !matches!(p.state, PointState::Cached | PointState::Infeasible(_)))
        .count();
    eprintln!(
        "step `{}`: {} ({}), {} point(s) to compute, {} cached",
        bench.step,
        model_spec.name,
        model_spec.arch,
        to_compute,
        bench
            .points
            .iter()
            .filter(|p| p.state == PointState::Cached)
            .count()
    );

    if let Some(threads) = bench.bench.bench.params.threads {
        tch::set_num_threads(threads as i32);
    }
    // Loading is the expensive part of a fully cached step: only do it when a point needs measuring.
    let mut loaded: Option<(Model, Tokenizer)> = None;
    let progress = ProgressBar::new(to_compute as u64);
    progress.set_style(
        ProgressStyle::with_template("  {bar:30} {pos}/{len} points  {msg}  [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );

    let mut results: Vec<(String, PointResult)> = Vec::new();
    for point in &bench.points {
        if let PointState::Infeasible(reason) = &point.state {
            tracing::warn!(
                "point {}@{} is infeasible: {reason}",
                model_spec.name,
                point.context_length
            );
            counts.infeasible += 1;
            results.push((
                point.hash.clone(),
                infeasible_result(bench, point.context_length, reason),
            ));
            continue;
        }
        if point.state == PointState::Cached
            && let Lookup::Hit(entry) = store.get(&point.hash)
        {
            counts.cached += 1;
            results.push((point.hash.clone(), entry.result));
            continue;
        }
        if let PointState::Corrupt(reason) = &point.state {
            tracing::warn!(
                "cache entry of {}@{} is corrupt ({reason}); recomputing",
                model_spec.name,
                point.context_length
            );
        }
        let _lock = match acquire(&locks, &point.hash)? {
            Acquire::Held(lock) => lock,
            Acquire::Busy(owner) => {
                progress.set_message(format!(
                    "{}@{} waits for pid {}",
                    model_spec.name, point.context_length, owner.pid
                ));
                match wait_for_other(&store, &locks, &point.hash)? {
                    Waited::Done(result) => {
                        counts.cached += 1;
                        results.push((point.hash.clone(), *result));
                        progress.inc(1);
                        continue;
                    }
                    Waited::Lock(lock) => lock,
                }
            }
        };
        if loaded.is_none() {
            progress.set_message(format!("loading {}", model_spec.name));
            let model = Model::load(model_spec, bench.device, bench.kind)?;
            loaded = Some((model, load_tokenizer(bench)?));
        }
        let Some((model, tok)) = &loaded else {
            continue;
        };
        progress.set_message(format!("{}@{}", model_spec.name, point.context_length));
        let mut result =
            measure_point(model, tok, &bench.bench.bench.params, point.context_length)?;
        result.weights = bench.weights.to_string();
        match result.status {
            Status::Ok => {
                store.put(&point.key, &result)?;
                counts.computed += 1;
            }
            Status::Infeasible => counts.infeasible += 1,
            Status::Oom | Status::Error => {
                counts.failed += 1;
                let reason = result.reason.clone().unwrap_or_default();
                progress.suspend(|| {
                    eprintln!(
                        "error: point {}@{} failed: {reason}",
                        model_spec.name, point.context_length
                    )
                });
            }
        }
        results.push((point.hash.clone(), result));
        progress.inc(1);
    }
    progress.finish_and_clear();
    print_summary(&model_spec.name, &results);
    if let Some(path) = report_file::write(&plan.root, bench, &results)? {
        eprintln!(
            "  wrote {}",
            path.strip_prefix(&plan.root).unwrap_or(&path).display()
        );
    }
    if INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(Error::Interrupted);
    }
    Ok(())
}

enum Waited {
    Done(Box<PointResult>),
    Lock(crate::cache::lock::PointLock),
}

/// Another live process holds this point: wait until it caches the result, or until its lock is gone.
fn wait_for_other(store: &Store, locks: &std::path::Path, hash: &str) -> Result<Waited> {
    let started = Instant::now();
    loop {
        if let Lookup::Hit(entry) = store.get(hash) {
            return Ok(Waited::Done(Box::new(entry.result)));
        }
        if let Acquire::Held(lock) = acquire(locks, hash)? {
            // The other process may have finished between our two checks.
            if let Lookup::Hit(entry) = store.get(hash) {
                return Ok(Waited::Done(Box::new(entry.result)));
            }
            return Ok(Waited::Lock(lock));
        }
        if INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::Interrupted);
        }
        if started.elapsed() > Duration::from_secs(5)
            && started.elapsed().as_secs().is_multiple_of(60)
        {
            tracing::info!(
                "still waiting for another e3pipe process to finish point {}",
                &hash[..12]
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn infeasible_result(bench: &BenchPlan, context_length: usize, reason: &str) -> PointResult {
    let params = &bench.bench.bench.params;
    PointResult {
        model: bench.bench.model.name.clone(),
        arch: bench.bench.model.arch,
        context_length,
        input_tokens: 0,
        status: Status::Infeasible,
        reason: Some(reason.to_string()),
        batch_size: params.batch_size,
        num_tokens: if bench.bench.model.arch.generates() {
            params.num_tokens
        } else {
            0
        },
        dtype: crate::models::kind_name(bench.kind).into(),
        device: crate::models::device::describe(bench.device),
        threads: bench.threads,
        libtorch_version: crate::bench::result::LIBTORCH_VERSION.into(),
        e3pipe_version: env!("CARGO_PKG_VERSION").into(),
        weights: bench.weights.to_string(),
        weights_bytes: 0,
        peak_rss_bytes: None,
        cuda_peak_bytes: None,
        stats: Default::default(),
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
