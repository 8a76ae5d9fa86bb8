//! Runs a planned bench step: cached and infeasible points are settled here, the rest are measured by the
//! `e3pipe-worker` process (`pipeline::worker_process`), which caches each point as soon as it finishes, so a crash
//! or Ctrl-C loses at most the point in progress. Then the step's results documents are written from every point.

use std::path::Path;
use std::sync::atomic::Ordering;

use crate::bench::anchor::AnchorCheck;
use crate::bench::order;
use crate::bench::peaks::Peaks;
use crate::bench::result::{PointResult, Status, Unmeasured, headline_metric};
use crate::bench::stats::level_label;
use crate::cache::peaks::PeaksKey;
use crate::cache::settled::{Settled, content_stamp, file_stamp};
use crate::cache::store::{Lookup, Store};
use crate::error::{Error, Result};
use crate::interrupt::INTERRUPTED;
use crate::job::{Job, JobPoint, Outcome as PointOutcome};
use crate::output;
use crate::pipeline::executor::Executor;
use crate::pipeline::kind::RunContext;
use crate::pipeline::kinds::bench::plan::{BenchPlan, PlannedPoint, PointState};
use crate::pipeline::kinds::bench::results_file;
use crate::pipeline::worker_process::WorkerStatus;

/// Settles a bench step: records infeasible points, reads cached ones, has the worker measure the rest, and
/// writes the step's results.
pub fn run(bench: &BenchPlan, ctx: &mut RunContext<'_>) -> Result<()> {
    let (computed, cached) = (ctx.counts.computed, ctx.counts.cached);
    let outcome = settle(bench, ctx);
    let tally = crate::pipeline::kind::ModelTally {
        model: bench.bench.model.name.clone(),
        metric: crate::bench::result::headline_metric_label(bench.bench.model.arch),
        computed: ctx.counts.computed - computed,
        cached: ctx.counts.cached.saturating_sub(cached),
    };
    ctx.counts.models.push(tally);
    outcome
}

fn settle(bench: &BenchPlan, ctx: &mut RunContext<'_>) -> Result<()> {
    let root = ctx.root;
    let counts = &mut *ctx.counts;
    let model_spec = &bench.bench.model;
    let mut results: Vec<Option<(String, PointResult)>> = vec![None; bench.points.len()];
    let mut job_points = Vec::new();
    let mut infeasible: Vec<(usize, &str)> = Vec::new();
    let store = Store::new(root);
    // Anchors: the cached measurement each replaces, to compare with this run's.
    let mut anchors: Vec<(usize, PointResult)> = Vec::new();
    for (index, point) in bench.points.iter().enumerate() {
        match &point.state {
            PointState::Infeasible(reason) => {
                // One line per step (below); each point at `-v`.
                tracing::info!(
                    "point {}@{} is infeasible: {reason}",
                    model_spec.name,
                    bench.point_label(point.context_length, point.batch_size)
                );
                infeasible.push((point.context_length, reason.as_str()));
                counts.infeasible += 1;
                results[index] = Some((
                    point.hash.clone(),
                    unmeasured_result(bench, point, Status::Infeasible, reason),
                ));
                continue;
            }
            PointState::Cached => {
                counts.cached += 1;
                continue;
            }
            PointState::Corrupt(reason) => {
                output::warn(&format!(
                    "cache entry of {}@{} is corrupt ({reason}); recomputing",
                    model_spec.name,
                    bench.point_label(point.context_length, point.batch_size)
                ));
            }
            PointState::Anchor => {
                let before = match &point.cached {
                    Some(result) => Some((**result).clone()),
                    None => match store.get(&point.hash) {
                        Lookup::Hit(entry) => Some(entry.result),
                        _ => None,
                    },
                };
                anchors.extend(before.map(|b| (index, b)));
            }
            _ => {}
        }
        job_points.push(JobPoint {
            context_length: point.context_length,
            hash: point.hash.clone(),
            key: bench.key(point),
            forced: matches!(point.state, PointState::Forced | PointState::Anchor),
            position: 0,
        });
    }
    if let (Some(first), Some(last)) = (
        infeasible.iter().map(|p| p.0).min(),
        infeasible.iter().map(|p| p.0).max(),
    ) {
        let example = infeasible.iter().find(|p| p.0 == first).map_or("", |p| p.1);
        // A length is infeasible at every batch size alike: count lengths, not points.
        let lengths = infeasible
            .iter()
            .map(|p| p.0)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        if lengths == 1 {
            output::warn(&format!(
                "point {}@{first} is infeasible: {example}",
                model_spec.name
            ));
        } else {
            output::warn(&format!(
                "{lengths} lengths of `{}` from {first} to {last} are infeasible (e.g. {example}); `-v` lists them",
                model_spec.name
            ));
        }
    }
    // Nothing to compute and the results document is the one written from exactly these points: done, without
    // reading a single cache entry (what keeps a no-op of 10,000 points cheap).
    let document = crate::paths::latest_results(root, &model_spec.name);
    let settled_path = Settled::path(&store.dir, &model_spec.name);
    if job_points.is_empty()
        && bench.settled.fingerprint
            == results_file::fingerprint(bench, &store.changes(&model_spec.name))
        && bench.settled.document.is_some()
        && bench.settled.document == content_stamp(&document)
        && bench
            .points
            .iter()
            .all(|p| matches!(p.state, PointState::Cached | PointState::Infeasible(_)))
    {
        output::progress(&format!(
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
        if let Some(result) = result {
            results[index] = Some((point.hash.clone(), result));
        } else {
            // Changed between planning and now (another run, a damaged file): measure it again.
            counts.cached -= 1;
            job_points.push(JobPoint {
                context_length: point.context_length,
                hash: point.hash.clone(),
                key: bench.key(point),
                forced: false,
                position: 0,
            });
        }
    }
    output::progress(&format!(
        "step `{}`: {} ({}), {} point(s) to compute, {} cached",
        bench.step,
        model_spec.name,
        model_spec.arch,
        job_points.len(),
        counts_cached(bench, &results)
    ));
    let mut interrupted = false;
    // The roof is measured in the same run as the points it is read against (once per run, device, dtype and
    // threads: a later step of this run with the same ones shares it).
    let peaks_to_measure = bench
        .peaks_key
        .as_ref()
        .filter(|_| !job_points.is_empty() && bench.current_peaks(&store.dir).is_none());
    if !job_points.is_empty() {
        if peaks_to_measure.is_some() {
            output::progress(
                "  measuring this machine's roof first (once per run, device, dtype and thread count)",
            );
        }
        // Shuffled, so a drift of the machine's speed during the sweep does not line up with the length; the seed
        // (from this run and step) and each point's position are recorded with it.
        let seed = order::seed_of(&format!("{} {}", crate::clock::run_id(), bench.step));
        let shuffled: Vec<JobPoint> = order::shuffled(job_points.len(), seed)
            .into_iter()
            .enumerate()
            .map(|(position, i)| JobPoint {
                position,
                ..job_points[i].clone()
            })
            .collect();
        if shuffled.len() > 1 {
            output::progress(&format!(
                "  measuring in a shuffled order (seed {seed:#018x})"
            ));
        }
        // The worker writes its locks and points itself: their folders are made (or repaired) first.
        for dir in [
            store.points_dir(),
            store.dir.join("locks"),
            store.dir.join("changes"),
        ] {
            crate::fsio::prepare_output_dir(&dir)?;
        }
        let job = Job {
            peaks: peaks_to_measure.cloned(),
            order: Some((seed, shuffled.len())),
            // The total grows when points changed since planning (another run, a damaged entry).
            progress: Some(crate::job::Progress {
                total: ctx
                    .overall
                    .total
                    .max(ctx.overall.done_before + shuffled.len()),
                ..*ctx.overall
            }),
            ..job(bench, root, shuffled)
        };
        let mut finished = Vec::new();
        let measuring = std::time::Instant::now();
        let status = ctx.executor.measure(&job, &mut |f| finished.push(f))?;
        ctx.overall.done_before += job.points.len();
        ctx.overall.total = ctx.overall.total.max(ctx.overall.done_before);
        ctx.overall.elapsed_before_s += measuring.elapsed().as_secs_f64();
        if let WorkerStatus::Submitted(message) = &status {
            output::progress(&format!("step `{}`: {message}", bench.step));
            ctx.submitted = true;
            return Ok(());
        }
        for f in finished {
            let Some(index) = bench.points.iter().position(|p| p.hash == f.hash) else {
                continue;
            };
            match f.outcome {
                PointOutcome::Computed => counts.computed += 1,
                PointOutcome::Cached => counts.cached += 1,
                PointOutcome::Failed if f.result.status == Status::Infeasible => {
                    counts.infeasible += 1;
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
                    let r = unmeasured_result(bench, point, Status::Error, why);
                    results[index] = Some((point.hash.clone(), r));
                }
            }
            output::error(&Error::Step {
                step: bench.step.clone(),
                message: why.clone(),
            });
        }
    }
    // Published as this build's statistics derive them from the stored samples.
    for (_, r) in results.iter_mut().flatten() {
        results_file::use_current_statistics(r);
    }
    check_anchors(bench, &anchors, &mut results);
    let results: Vec<(String, PointResult)> = results.into_iter().flatten().collect();
    // The model's last cache write, taken before the entries are read: a point written after it is seen by the
    // next run.
    let changes = store.changes(&model_spec.name);
    let carried = if interrupted {
        Vec::new()
    } else {
        results_file::carried(bench, &store, &results)
    };
    if !carried.is_empty() {
        output::progress(&format!(
            "  {} more cached point(s) of `{}` from other pipelines kept in its results",
            carried.len(),
            model_spec.name
        ));
    }
    let document_points: Vec<(String, PointResult)> =
        results.iter().chain(&carried).cloned().collect();
    // Each point's own run's roof (this run's was measured by the worker just now, with its points).
    let roofs = results_file::roofs(bench, &store.dir, &document_points);
    if let Some(warning) = peaks_to_measure
        .and_then(|_| roofs.get(crate::clock::run_id()))
        .and_then(results_file::unsteady)
    {
        output::warn(&warning);
    }
    print_summary(bench, &results, &roofs);
    if !interrupted {
        let fingerprint = results_file::fingerprint(bench, &changes);
        if let Some(path) = results_file::write(root, bench, &document_points, &roofs)? {
            output::progress(&format!(
                "  wrote {}",
                path.strip_prefix(root).unwrap_or(&path).display()
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
            content_stamp(&document),
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

/// Compares each anchor measured now with the cached measurement it replaced: a note when the curve still holds,
/// a warning with the drift when not; the verdict goes into the point's record.
fn check_anchors(
    bench: &BenchPlan,
    anchors: &[(usize, PointResult)],
    results: &mut [Option<(String, PointResult)>],
) {
    for (index, before) in anchors {
        let Some((_, now)) = results.get_mut(*index).and_then(Option::as_mut) else {
            continue;
        };
        if now.status != Status::Ok {
            // Not measured again (an error, the OOM killer): the cached measurement stays the curve's point.
            now.clone_from(before);
            continue;
        }
        let metric = headline_metric(now.arch);
        let mut before = before.clone();
        results_file::use_current_statistics(&mut before);
        let check = match (now.status, before.stats.get(metric), now.stats.get(metric)) {
            (Status::Ok, Some(b), Some(n)) => AnchorCheck::of(b, &before.run_id, n),
            _ => None,
        };
        let Some(check) = check else { continue };
        let point = format!(
            "{}@{}",
            bench.bench.model.name,
            bench.point_label(now.context_length, now.batch_size)
        );
        let message = check.message(&point, &bench.step);
        if check.consistent {
            output::progress(&format!("  {message}"));
        } else {
            output::warn(&message);
        }
        now.anchor = Some(check);
    }
}

fn counts_cached(bench: &BenchPlan, results: &[Option<(String, PointResult)>]) -> usize {
    bench
        .points
        .iter()
        .zip(results)
        .filter(|(p, r)| p.state == PointState::Cached && r.is_some())
        .count()
}

/// Has the worker measure the machine's peaks for `key` alone (no points) and cache them; returns them.
pub fn measure_peaks(
    bench: &BenchPlan,
    root: &Path,
    key: &PeaksKey,
    executor: &dyn Executor,
) -> Result<Option<Peaks>> {
    output::progress(&format!(
        "  measuring the peaks of {} ({}, {} threads)",
        key.device, key.dtype, key.threads
    ));
    let job = Job {
        points: Vec::new(),
        peaks: Some(key.clone()),
        ..job(bench, root, Vec::new())
    };
    let status = executor.measure(&job, &mut |_| {})?;
    match status {
        WorkerStatus::Done => Ok(crate::cache::peaks::load(&Store::new(root).dir, key)),
        WorkerStatus::Submitted(message) => {
            output::progress(&format!("step `{}`: {message}", bench.step));
            Ok(None)
        }
        WorkerStatus::Interrupted => Err(Error::Interrupted),
        WorkerStatus::Failed(why) => Err(Error::Step {
            step: bench.step.clone(),
            message: format!("measuring the machine's peaks failed: {why}"),
        }),
    }
}

/// The worker's job for `points` of this step.
fn job(bench: &BenchPlan, root: &Path, points: Vec<JobPoint>) -> Job {
    Job {
        root: root.to_path_buf(),
        step: bench.step.clone(),
        model: bench.bench.model.clone(),
        params: bench.bench.bench.params,
        device: bench.device,
        dtype: bench.dtype,
        threads: bench.threads,
        weights: bench.weights.to_string(),
        run_id: crate::clock::run_id().to_string(),
        points,
        peaks: None,
        points_per_task: None,
        order: None,
        progress: None,
    }
}

/// The record of a point that was never measured: infeasible, or lost with a crashed worker.
fn unmeasured_result(
    bench: &BenchPlan,
    point: &PlannedPoint,
    status: Status,
    reason: &str,
) -> PointResult {
    Unmeasured {
        model: &bench.bench.model.name,
        arch: bench.bench.model.arch,
        params: &crate::bench::config::BenchParams {
            batch_size: point.batch_size,
            ..bench.bench.bench.params
        },
        dtype: bench.dtype.name(),
        device: crate::models::hardware::describe(bench.device),
        threads: bench.threads,
        weights: bench.weights.to_string(),
        run_id: crate::clock::run_id(),
    }
    .result(point.context_length, status, reason)
}

/// The seed's console summary, one line per length, plus warnings about untrustworthy samples.
/// Each line ends with the use of the roof that bounds the point (`mfu 41 %`, `bw 88 %`).
fn print_summary(
    bench: &BenchPlan,
    results: &[(String, PointResult)],
    roofs: &results_file::Roofs,
) {
    let model = &bench.bench.model.name;
    output::result(&format!(
        "{model}: Context Length Scaling Results ({}):",
        crate::bench::result::headline_metric_label(bench.bench.model.arch)
    ));
    // By length (the worker measured them shuffled); a point from an earlier run says so.
    let mut sorted: Vec<&PointResult> = results.iter().map(|(_, r)| r).collect();
    sorted.sort_by_key(|r| (r.context_length, r.batch_size));
    for r in sorted {
        let cached = if r.run_id.is_empty() || r.run_id == crate::clock::run_id() {
            ""
        } else {
            " · cached"
        };
        match (r.status, r.latency_ms()) {
            (Status::Ok, Some(ms)) => {
                let warning = r
                    .stats
                    .values()
                    .find_map(crate::bench::stats::Summary::warning)
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
                let roof = results_file::roofline(bench, r, roofs)
                    .map(|roof| format!("  {}", roof.summary()))
                    .unwrap_or_default();
                output::result(&format!(
                    "  {}: {ms:.2}ms{interval}{roof}{warning}{cached}",
                    bench.length_label(r.context_length, r.batch_size)
                ));
            }
            (status, _) => output::result(&format!(
                "  {}: {} ({})",
                bench.length_label(r.context_length, r.batch_size),
                status.as_str(),
                r.reason.as_deref().unwrap_or("")
            )),
        }
    }
}
