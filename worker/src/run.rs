//! The measuring process (`e3pipe-worker`): reads a `Job` on stdin, loads the model once (only if a point still
//! needs measuring after taking its lock), measures each point, caches it atomically as soon as it finishes, and
//! reports each on stdout. Locks make concurrent runs cooperate; the worker dies with its parent (kill -9 of the
//! orchestrator leaves no orphan measuring).

use std::io::{Read, Write};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tch::Device;
use tokenizers::Tokenizer;

use crate::bench::peaks;
use crate::bench::runner::{catch_torch, failed, measure_point};
use crate::models::{Model, device, kind_of, tokenizer};
use e3pipe::bench::order::MeasureOrder;
use e3pipe::bench::result::{METHOD_ID, PointResult, Status, Unmeasured};
use e3pipe::cache::lock::{Acquire, PointLock, acquire};
use e3pipe::cache::peaks::PeaksKey;
use e3pipe::cache::store::{Lookup, Store};
use e3pipe::error::{Error, Result};
use e3pipe::interrupt::INTERRUPTED;
use e3pipe::job::{Finished, Job, Measurer, Outcome};
use e3pipe::models::hardware::Device as Placement;
use e3pipe::models::hardware::HardwareId;

/// Entry point of the `e3pipe-worker` binary.
pub fn run() -> ExitCode {
    // SAFETY: prctl with constant arguments.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    e3pipe::output::init_from_env();
    e3pipe::interrupt::install_handler();
    e3pipe::bench::memory::record_baseline();
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).is_some_and(|a| a == "--identify") {
        // What `e3pipe` asks before planning a GPU: the loaded libtorch and its CUDA, as one JSON line.
        return match serde_json::to_string(&device::probe()) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                e3pipe::output::error_message(&format!("e3pipe-worker: {e}"));
                ExitCode::from(1)
            }
        };
    }
    if let [_, flag, job_file] = args.as_slice()
        && flag == "--array-task"
    {
        return exit_code(array_task(std::path::Path::new(job_file)));
    }
    let mut input = String::new();
    let job: Job = match std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| e.to_string())
        .and_then(|_| serde_json::from_str(&input).map_err(|e| e.to_string()))
    {
        Ok(job) => job,
        Err(e) => {
            e3pipe::output::error_message(&format!("e3pipe-worker: unreadable job on stdin: {e}"));
            return ExitCode::from(2);
        }
    };
    exit_code(run_job(&job, &Measurer::LOCAL, true))
}

fn exit_code(outcome: Result<()>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Interrupted) => ExitCode::from(130),
        Err(e) => {
            e3pipe::output::error(&e);
            ExitCode::from(e.exit_code())
        }
    }
}

/// One task of a Slurm array (`sbatch … e3pipe-worker --array-task <job file>`): the task's chunk of the job's
/// points, measured here and cached. The task owns its chunk, so points are not locked. The keys were planned on
/// another machine: a node that is not the hardware they name measures nothing (its points fail, saying why), so a
/// mismatch can never be cached under the planned identity.
fn array_task(job_file: &std::path::Path) -> Result<()> {
    let bytes = e3pipe::fsio::read_own(job_file).map_err(|source| Error::Read {
        path: job_file.into(),
        source,
    })?;
    let mut job: Job = serde_json::from_slice(&bytes).map_err(|e| Error::BadInput {
        path: job_file.into(),
        message: format!("not an e3pipe job: {e}"),
    })?;
    let env = |name: &str| std::env::var(name).ok();
    let (Some(array), Some(task)) = (env("SLURM_ARRAY_JOB_ID"), env("SLURM_ARRAY_TASK_ID")) else {
        return Err(Error::Step {
            step: job.step.clone(),
            message: "`--array-task` runs inside a Slurm array task (no `SLURM_ARRAY_TASK_ID`)"
                .into(),
        });
    };
    let index: usize = task.parse().map_err(|_| Error::Step {
        step: job.step.clone(),
        message: format!("`SLURM_ARRAY_TASK_ID` is `{task}`"),
    })?;
    let per_task = job.points_per_task.unwrap_or(1).max(1);
    job.points = job
        .points
        .iter()
        .skip(index.saturating_mul(per_task))
        .take(per_task)
        .cloned()
        .collect();
    if index != 0 {
        job.peaks = None;
    }
    let measurer = Measurer {
        executor: "slurm",
        slurm_job_id: Some(format!("{array}_{task}")),
    };
    let here = e3pipe::models::hardware::identify(job.device).map_err(|message| Error::Step {
        step: job.step.clone(),
        message,
    })?;
    let described = e3pipe::models::hardware::describe(job.device);
    let keyed = e3pipe::models::hardware::key_device(job.device);
    if let Some(point) = job
        .points
        .iter()
        .find(|p| p.key.hardware != here || p.key.device != keyed)
    {
        let reason = format!(
            "planned for `{}` but this node is `{described}`: plan on a machine like the compute nodes",
            point.key.device
        );
        for point in &job.points {
            let record = Unmeasured {
                model: &job.model.name,
                arch: job.model.arch,
                params: &job.params,
                dtype: job.dtype.name(),
                device: described.clone(),
                threads: job.threads,
                weights: job.weights.clone(),
                run_id: &job.run_id,
            }
            .result(point.context_length, Status::Error, &reason)
            .with_batch(point.key.batch_size);
            send(&Finished {
                hash: point.hash.clone(),
                outcome: Outcome::Failed,
                result: tagged(record, &measurer),
            })?;
        }
        return Err(Error::Step {
            step: job.step.clone(),
            message: reason,
        });
    }
    if job.peaks.as_ref().is_some_and(|k| k.hardware != here) {
        job.peaks = None;
    }
    run_job(&job, &measurer, false)
}

/// `result` with who measured it.
/// Refuses, as an out-of-memory failure of its points, a CPU model whose weights alone exceed the host's memory:
/// building it would abort the process (an allocation the allocator cannot serve) instead of failing cleanly. The
/// count is a lower bound (the weights one decode step or forward reads, `models::work`).
fn too_large_for_host(job: &Job, device: Device) -> Result<()> {
    let (Device::Cpu, Some(config)) = (device, &job.model.config) else {
        return Ok(());
    };
    let elt = kind_of(job.dtype).elt_size_in_bytes();
    let work = e3pipe::models::work::point_work(config, 1, 2, 1, elt);
    let need = work.decode_step.unwrap_or(work.headline).weight_bytes;
    match e3pipe::bench::memory::total_bytes() {
        Some(total) if need > total as f64 => Err(Error::Model {
            model: job.model.name.clone(),
            message: format!(
                "out of memory before loading: its weights need at least {need:.3e} bytes; this machine has {total}"
            ),
        }),
        _ => Ok(()),
    }
}

fn tagged(mut result: PointResult, measurer: &Measurer) -> PointResult {
    result.executor = measurer.executor.to_string();
    result.slurm_job_id.clone_from(&measurer.slurm_job_id);
    result
}

fn resolve_device(job: &Job) -> Result<Device> {
    match job.device {
        Placement::Cuda(i) if !device::cuda_available() => Err(Error::Model {
            model: job.model.name.clone(),
            message: format!("planned on `cuda:{i}` but libtorch cannot use CUDA here"),
        }),
        Placement::Cuda(i) => Ok(Device::Cuda(i)),
        Placement::Cpu => Ok(Device::Cpu),
    }
}

/// Sends one finished point to the parent `e3pipe` (a JSON line on stdout).
fn send(finished: &Finished) -> Result<()> {
    let line = serde_json::to_string(finished).map_err(|e| Error::Step {
        step: "bench".into(),
        message: e.to_string(),
    })?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|source| Error::Write {
            path: "<stdout>".into(),
            source,
        })
}

/// Measures the machine's peaks for `key` and caches them. A failure costs the roofline fields, not the points.
fn measure_peaks(job: &Job, key: &PeaksKey, device: Device, store: &Store) -> Result<()> {
    // Two processes measuring at once would each see half the machine and cache a low roof: one measures, the
    // other waits for it and uses what it cached.
    let locks = store.dir.join("locks");
    let name = format!("peaks-{}", key.hash());
    let mut waited = false;
    let _lock = loop {
        match acquire(&locks, &name)? {
            Acquire::Held(lock) => break lock,
            Acquire::Busy(_) => {
                if INTERRUPTED.load(Ordering::SeqCst) {
                    return Err(Error::Interrupted);
                }
                waited = true;
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    if waited && e3pipe::cache::peaks::load(&store.dir, key).is_some() {
        return Ok(());
    }
    let gpu = match &key.hardware {
        HardwareId::Cuda { name, .. } => Some(name.as_str()),
        HardwareId::Cpu(_) => None,
    };
    let measured = catch_torch(|| {
        peaks::measure(
            device,
            kind_of(job.dtype),
            job.dtype.name(),
            &key.device,
            gpu,
        )
    });
    match measured.and_then(|p| e3pipe::cache::peaks::save(&store.dir, key, &p)) {
        Ok(()) => Ok(()),
        Err(Error::Interrupted) => Err(Error::Interrupted),
        Err(e) => {
            e3pipe::output::warn(&format!(
                "the machine's peaks could not be measured ({e}); the points' roofline fields stay empty"
            ));
            Ok(())
        }
    }
}

/// Measures `job`'s points; `locking`: take each point's lock (local runs, where concurrent runs share points).
fn run_job(job: &Job, measurer: &Measurer, locking: bool) -> Result<()> {
    // The orchestrator keyed these points with its own build's method identity; a worker built from other
    // sources would cache its measurements under a key that does not describe them.
    if let Some(point) = job.points.iter().find(|p| p.key.method != METHOD_ID) {
        return Err(Error::Step {
            step: job.step.clone(),
            message: format!(
                "`e3pipe-worker` was built from other measuring code ({}…) than `e3pipe` ({}…); rebuild both with `cargo build`",
                &METHOD_ID[..8.min(METHOD_ID.len())],
                &point.key.method[..8.min(point.key.method.len())]
            ),
        });
    }
    let store = Store::new(&job.root);
    let locks = store.dir.join("locks");
    crate::bench::runner::prepare(job.threads);
    let device = resolve_device(job)?;
    if let Some(key) = &job.peaks {
        measure_peaks(job, key, device, &store)?;
    }
    // One bar for the whole run: this job's points continue the count of the bench steps before it, and the
    // ETA is the run's rate so far times what is left. None under `-q`.
    let overall = job.progress.unwrap_or(e3pipe::job::Progress {
        done_before: 0,
        total: job.points.len(),
        elapsed_before_s: 0.0,
    });
    let progress = if e3pipe::output::quiet() {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(overall.total.max(overall.done_before + job.points.len()) as u64)
    };
    progress.set_style(
        ProgressStyle::with_template("  {bar:30} {pos}/{len} points of this run  {msg}{prefix}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    progress.set_position(overall.done_before as u64);
    let started = std::time::Instant::now();
    let advance = || {
        progress.inc(1);
        let done = progress.position() as usize;
        let elapsed_s = overall.elapsed_before_s + started.elapsed().as_secs_f64();
        match overall.eta_s(done, elapsed_s) {
            Some(eta_s) if done < overall.total => {
                progress.set_prefix(format!("  ETA {}", e3pipe::job::Progress::human(eta_s)));
            }
            _ => progress.set_prefix(""),
        }
    };
    // Loading is the expensive part when another run already computed everything: only load when needed.
    let mut loaded: Option<(Model, Tokenizer)> = None;
    let mut load_error: Option<Error> = None;
    for point in &job.points {
        let label = if point.key.batch_size == 1 {
            format!("{}@{}", job.model.name, point.context_length)
        } else {
            format!(
                "{}@{}×b{}",
                job.model.name, point.context_length, point.key.batch_size
            )
        };
        let _lock = if locking {
            Some(match acquire(&locks, &point.hash)? {
                Acquire::Held(lock) => lock,
                Acquire::Busy(owner) => {
                    progress.set_message(format!("{label} waits for pid {}", owner.pid));
                    match wait_for_other(&store, &locks, &point.hash)? {
                        Waited::Done(result) => {
                            send(&Finished {
                                hash: point.hash.clone(),
                                outcome: Outcome::Cached,
                                result: *result,
                            })?;
                            advance();
                            continue;
                        }
                        Waited::Lock(lock) => lock,
                    }
                }
            })
        } else {
            None
        };
        // Another run may have finished this point since we planned it.
        if !point.forced
            && let Lookup::Hit(entry) = store.get(&point.hash)
        {
            send(&Finished {
                hash: point.hash.clone(),
                outcome: Outcome::Cached,
                result: entry.result,
            })?;
            advance();
            continue;
        }
        if loaded.is_none() && load_error.is_none() {
            progress.set_message(format!("loading {}", job.model.name));
            // A model too large for this machine (or one libtorch rejects) fails its points, not the worker.
            match catch_torch(|| {
                too_large_for_host(job, device)?;
                let model = Model::load(&job.model, device, kind_of(job.dtype))?;
                let tok = match &job.model.tokenizer {
                    Some(path) => tokenizer::from_file(path)?,
                    None => {
                        match &job.model.config {
                            Some(config) => tokenizer::builtin(config.builtin_tokenizer())?.0,
                            None => {
                                return Err(Error::Model {
                                model: job.model.name.clone(),
                                message: "no `tokenizer:` and no model type to choose a built-in one by".into(),
                            });
                            }
                        }
                    }
                };
                Ok((model, tok))
            }) {
                Ok(l) => loaded = Some(l),
                Err(Error::Interrupted) => return Err(Error::Interrupted),
                Err(e) => load_error = Some(e),
            }
        }
        let Some((model, tok)) = &loaded else {
            let e = load_error.as_ref().unwrap_or(&Error::Interrupted);
            let record = Unmeasured {
                model: &job.model.name,
                arch: job.model.arch,
                params: &job.params,
                dtype: job.dtype.name(),
                device: e3pipe::models::hardware::describe(job.device),
                threads: job.threads,
                weights: job.weights.clone(),
                run_id: &job.run_id,
            }
            .result(point.context_length, Status::Error, "")
            .with_batch(point.key.batch_size);
            let result = tagged(
                failed(
                    record,
                    &Error::Model {
                        model: job.model.name.clone(),
                        message: format!("cannot be loaded: {e}"),
                    },
                ),
                measurer,
            );
            progress.suspend(|| {
                e3pipe::output::error_message(&format!(
                    "point {label} failed ({}): {}",
                    result.status.as_str(),
                    result.reason.as_deref().unwrap_or_default()
                ));
            });
            send(&Finished {
                hash: point.hash.clone(),
                outcome: Outcome::Failed,
                result,
            })?;
            advance();
            continue;
        };
        progress.set_message(label.clone());
        let mut result = tagged(
            measure_point(model, tok, &point.params(&job.params), point.context_length)?,
            measurer,
        );
        result.weights.clone_from(&job.weights);
        result.run_id.clone_from(&job.run_id);
        // What measured it, as its key names it, and where it stood in the run's shuffled order.
        result.order = job.order.map(|(seed, of)| MeasureOrder {
            seed,
            position: point.position,
            of,
        });
        result.hardware = Some(point.key.hardware.clone());
        result.runtime.clone_from(&point.key.runtime);
        for warning in &result.warnings {
            progress.suspend(|| e3pipe::output::warn(&format!("point {label}: {warning}")));
        }
        let outcome = if result.status == Status::Ok {
            store.put(&point.key, &result)?;
            Outcome::Computed
        } else {
            let reason = result.reason.clone().unwrap_or_default();
            progress.suspend(|| {
                e3pipe::output::error_message(&format!(
                    "point {label} failed ({}): {reason}",
                    result.status.as_str()
                ));
            });
            Outcome::Failed
        };
        send(&Finished {
            hash: point.hash.clone(),
            outcome,
            result,
        })?;
        advance();
    }
    progress.finish_and_clear();
    Ok(())
}

enum Waited {
    Done(Box<PointResult>),
    Lock(PointLock),
}

/// Another live process holds this point: wait until it caches the result, or until its lock is gone.
fn wait_for_other(store: &Store, locks: &std::path::Path, hash: &str) -> Result<Waited> {
    let started = Instant::now();
    let mut next_note = Duration::from_mins(1);
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
        if INTERRUPTED.load(Ordering::SeqCst) {
            return Err(Error::Interrupted);
        }
        if started.elapsed() > next_note {
            tracing::info!(
                "still waiting for another e3pipe process to finish point {}",
                &hash[..12]
            );
            next_note += Duration::from_mins(1);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
