//! Bench points as Slurm job arrays on the project's (shared) filesystem. A step's missing points become one array
//! (several when there are more tasks than the cluster's `MaxArraySize`): task `i` measures the `i`-th chunk of
//! `points_per_task` points with the same worker (`e3pipe-worker --array-task <job file>`, one model load per task)
//! and caches each point itself. `e3pipe run` waits: finished points are read from what the tasks wrote (their
//! output lines and the cache) as soon as they land, and the queue is asked at most once per poll interval whether
//! tasks are still alive; `sacct` is asked once per array that left the queue with points missing, and clusters
//! without accounting fall back to what `squeue` saw. Ctrl-C cancels the arrays this run submitted.
//!
//! Nothing from a pipeline reaches a shell: `sbatch` gets every value as its own argument, and the job script only
//! runs its arguments (`exec "$1" --array-task "$2"`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::bench::result::{Status, Unmeasured};
use crate::cache::store::{Lookup, Store};
use crate::error::{Error, Result};
use crate::fsio::write_atomic;
use crate::interrupt::INTERRUPTED;
use crate::job::{Finished, Job, Outcome};
use crate::models::hardware::{CUDA_ORDER_ENV, Device as Placement, describe};
use crate::output;
use crate::paths::sanitize;
use crate::pipeline::executor::Executor;
use crate::pipeline::executor_config::SlurmConfig;
use crate::pipeline::worker_process::{WorkerStatus, worker_path};

/// The job script: it runs its arguments and nothing else. When `E3PIPE_LIBTORCH` names the node's libtorch (a
/// bundle), the script checks that it is this build's release (the dynamic loader would fail on another, before the
/// worker could say why) and puts it first on the library path. A `CUDA_VISIBLE_DEVICES` that Slurm did not set
/// (`--export=ALL` carries the submitting shell's) is dropped: it would send every task to the same GPU.
fn script() -> String {
    let release = crate::models::libtorch::release(crate::models::libtorch::VERSION);
    // A release is digits and dots (`2.11.0`): nothing for the shell to expand.
    let release: String = release
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    format!(
        "#!/bin/sh\n# Written by e3pipe: runs one task of a bench step's array.\n\
if [ -n \"${{E3PIPE_LIBTORCH:-}}\" ]; then\n  \
if ! grep -q \"^__version__ = '{release}\" \"$E3PIPE_LIBTORCH/version.py\" 2>/dev/null; then\n    \
echo \"error: libtorch \\`$E3PIPE_LIBTORCH\\` (E3PIPE_LIBTORCH) is not libtorch {release}, which this e3pipe was built for\" >&2\n    \
exit 2\n  \
fi\n  \
LD_LIBRARY_PATH=\"$E3PIPE_LIBTORCH/lib${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}\"\n  \
export LD_LIBRARY_PATH\n\
fi\n\
if [ -z \"${{SLURM_JOB_GPUS:-}}${{SLURM_STEP_GPUS:-}}\" ]; then unset CUDA_VISIBLE_DEVICES; fi\n\
exec \"$1\" --array-task \"$2\"\n"
    )
}

pub struct Slurm {
    config: SlurmConfig,
}

/// One submitted array; recorded as it is (`cache/slurm/inflight/`) while it may still run.
#[derive(serde::Serialize, serde::Deserialize)]
struct Array {
    id: String,
    dir: PathBuf,
    index: usize,
    /// Point hashes per task.
    tasks: Vec<Vec<String>>,
}

impl Array {
    fn log(&self, task: usize, stream: &str) -> PathBuf {
        self.dir
            .join(format!("array{}_task{task}.{stream}", self.index))
    }
}

/// `'…'`-quoted for display (the command is never run through a shell).
use crate::rerun::shell_quote;

fn run(program: &str, args: &[String]) -> std::result::Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `{program}` ({e}); is Slurm installed here?"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{program}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `MaxArraySize` from `scontrol show config` (Slurm's default, 1001, when it cannot be read).
fn max_array_size() -> usize {
    run("scontrol", &["show".into(), "config".into()])
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.trim_start().starts_with("MaxArraySize"))
                .and_then(|l| l.split('=').nth(1))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(1001)
}

impl Slurm {
    pub fn new(config: SlurmConfig) -> Slurm {
        Slurm { config }
    }

    fn tasks_for(&self, points: usize) -> usize {
        points.div_ceil(self.config.points_per_task).max(1)
    }

    /// The resources every task of `job` asks for: CPUs, memory, GPUs, partition, account, time limit, and the
    /// user's own `sbatch_args` last (sbatch takes the last of a repeated option).
    fn resource_args(&self, cuda: bool, threads: usize) -> Vec<String> {
        self.resource_args_typed(cuda, threads, None)
    }

    /// `resource_args`, asking for GPUs of `gpu_type` (a gres type of the partition) when one is given.
    fn resource_args_typed(
        &self,
        cuda: bool,
        threads: usize,
        gpu_type: Option<&str>,
    ) -> Vec<String> {
        let c = &self.config;
        let cpus = c
            .cpus_per_task
            .unwrap_or(if cuda { CUDA_DEFAULT_CPUS } else { threads });
        let mut args = vec![
            format!("--cpus-per-task={cpus}"),
            format!("--export=ALL,{}={}", CUDA_ORDER_ENV.0, CUDA_ORDER_ENV.1),
        ];
        if let Some(p) = &c.partition {
            args.push(format!("--partition={p}"));
        }
        if let Some(a) = &c.account {
            args.push(format!("--account={a}"));
        }
        // A CUDA step owns one GPU per task unless told otherwise; `--gpus-per-task` needs `--ntasks`, `--gres` not.
        match (&c.gres, &c.gpus) {
            (Some(g), _) => args.push(format!("--gres={g}")),
            (None, Some(n)) => args.push(format!("--gres=gpu:{n}")),
            (None, None) if cuda => args.push(match gpu_type {
                Some(t) => format!("--gres=gpu:{t}:1"),
                None => "--gres=gpu:1".into(),
            }),
            (None, None) => {}
        }
        match &c.mem {
            Some(m) => args.push(format!("--mem={m}")),
            None if cuda => args.push(format!("--mem={CUDA_DEFAULT_MEM}")),
            None => {}
        }
        if let Some(t) = &c.time {
            args.push(format!("--time={t}"));
        }
        args.extend(c.sbatch_args.iter().cloned());
        args
    }

    /// On a partition with several GPU types (`sinfo`'s gres), the type of the GPU the points were planned for, so
    /// that no task lands on another model (it would refuse to measure). `None` with one type or none known; a
    /// warning when no type matches the planned GPU's name.
    fn planned_gpu_type(&self, job: &Job) -> Option<String> {
        if self.config.gres.is_some() || self.config.gpus.is_some() {
            return None;
        }
        let crate::models::hardware::HardwareId::Cuda { name, .. } =
            &job.points.first()?.key.hardware
        else {
            return None;
        };
        let mut args = vec!["-h".to_string(), "-o".to_string(), "%G".to_string()];
        if let Some(p) = &self.config.partition {
            args.push(format!("--partition={p}"));
        }
        let types = gres_types(&run("sinfo", &args).ok()?);
        if types.len() < 2 {
            return None;
        }
        let found = matching_type(&types, name);
        if found.is_none() {
            output::warn(&format!(
                "the partition has GPU types {} and none matches the planned `{name}`; set `gpus: <type>:1` in the executor block",
                types.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        found
    }

    /// What a probe job asks for (`slurm_identity`): the tasks' request, one CPU for a CPU step unless the
    /// pipeline names a count.
    pub fn probe_request(&self, cuda: bool) -> Vec<String> {
        // When it may start is the tasks' business (a hold, a start time, a dependency), not the probe's.
        self.resource_args(cuda, 1)
            .into_iter()
            .filter(|a| {
                !(a == "--hold"
                    || a == "-H"
                    || a.starts_with("--begin")
                    || a.starts_with("--dependency"))
            })
            .collect()
    }

    /// The `sbatch` arguments for an array of `tasks` tasks of `job` (its files in `dir`, its worker `worker`).
    fn sbatch_args(
        &self,
        job: &Job,
        tasks: usize,
        index: usize,
        dir: &Path,
        job_file: &Path,
        worker: &Path,
    ) -> Vec<String> {
        let log = |stream: &str| {
            dir.join(format!("array{index}_task%a.{stream}"))
                .display()
                .to_string()
        };
        let mut args = vec![
            "--parsable".to_string(),
            format!("--array=0-{}%{}", tasks - 1, self.config.max_parallel),
            format!("--job-name=e3pipe-{}", sanitize(&job.step)),
            format!("--output={}", log("out")),
            format!("--error={}", log("err")),
            // A requeued task appends to its logs instead of truncating the lines already read.
            "--open-mode=append".to_string(),
        ];
        let cuda = matches!(job.device, Placement::Cuda(_));
        let gpu_type = if cuda {
            self.planned_gpu_type(job)
        } else {
            None
        };
        args.extend(self.resource_args_typed(cuda, job.threads, gpu_type.as_deref()));
        args.push(dir.join("task.sh").display().to_string());
        args.push(worker.display().to_string());
        args.push(job_file.display().to_string());
        args
    }

    /// `sbatch --test-only` with the tasks' resources: the site's own refusal (an unknown partition or account, a
    /// time over the limit, GPUs the partition lacks) before anything is written or submitted.
    pub fn preflight(&self, step: &str, device: Placement, threads: usize) -> Result<()> {
        test_only(
            step,
            &self.resource_args(matches!(device, Placement::Cuda(_)), threads),
        )
    }
}

/// The GPU gres types of `sinfo -o %G` lines: `gpu:h200:8(S:0-1),gpu:a100:4` -> {a100, h200}.
fn gres_types(sinfo: &str) -> BTreeSet<String> {
    sinfo
        .lines()
        .flat_map(|l| l.split(','))
        .filter_map(|g| {
            let mut parts = g.trim().split(':');
            (parts.next()? == "gpu").then_some(())?;
            let kind = parts.next()?;
            // `gpu:4` has no type.
            (parts.next().is_some() && !kind.chars().all(|c| c.is_ascii_digit()))
                .then(|| kind.to_string())
        })
        .collect()
}

/// The gres type that names the GPU `name` (`h200` or `nvidia_h200` for `NVIDIA H200`), compared on letters and
/// digits; the longest match (`h100_nvl` over `h100` for `NVIDIA H100 NVL`). `h200` does not match an H200 NVL when
/// `h200_nvl` is a type too.
fn matching_type(types: &BTreeSet<String>, name: &str) -> Option<String> {
    let squash = |s: &str| -> String {
        s.chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_ascii_lowercase()
    };
    let gpu = squash(name);
    let tail = gpu.strip_prefix("nvidia").unwrap_or(&gpu).to_string();
    types
        .iter()
        .filter(|t| {
            let t = squash(t);
            let t = t.strip_prefix("nvidia").unwrap_or(&t).to_string();
            !t.is_empty() && tail.starts_with(&t)
        })
        .max_by_key(|t| t.len())
        .cloned()
}

/// `sbatch --test-only` with `request`: Slurm's own refusal, as an error that names `step`.
pub fn test_only(step: &str, request: &[String]) -> Result<()> {
    let mut args = vec!["--test-only".to_string(), "--array=0-0".to_string()];
    args.extend(request.iter().cloned());
    args.push("--wrap=true".into());
    run("sbatch", &args)
        .map(|_| ())
        .map_err(|why| Error::Refused {
            step: step.to_string(),
            message: format!("Slurm refuses its jobs: {why}; fix the pipeline's `executor:` block"),
        })
}

impl Slurm {
    fn submit(&self, job: &Job, dir: &Path) -> Result<Vec<Array>> {
        let per_task = self.config.points_per_task;
        let tasks_total = self.tasks_for(job.points.len());
        let per_array = max_array_size().max(1);
        let step_error = |message: String| Error::Step {
            step: job.step.clone(),
            message,
        };
        write_atomic(&dir.join("task.sh"), script().as_bytes())?;
        std::fs::set_permissions(
            dir.join("task.sh"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .map_err(|source| Error::Write {
            path: dir.join("task.sh"),
            source,
        })?;
        let worker = copy_worker(dir)?;
        let mut arrays: Vec<Array> = Vec::new();
        for (index, first_task) in (0..tasks_total).step_by(per_array).enumerate() {
            let tasks = per_array.min(tasks_total - first_task);
            let points: Vec<_> = job
                .points
                .iter()
                .skip(first_task * per_task)
                .take(tasks * per_task)
                .cloned()
                .collect();
            let array_job = Job {
                points: points.clone(),
                points_per_task: Some(per_task),
                peaks: if index == 0 { job.peaks.clone() } else { None },
                ..job.clone()
            };
            let job_file = dir.join(format!("array{index}.json"));
            let submitted = crate::fsio::write_json(&job_file, &array_job).and_then(|()| {
                let args = self.sbatch_args(job, tasks, index, dir, &job_file, &worker);
                output::progress(&format!(
                    "  sbatch {}",
                    args.iter()
                        .map(|a| shell_quote(a))
                        .collect::<Vec<_>>()
                        .join(" ")
                ));
                let out = run("sbatch", &args).map_err(step_error)?;
                let id = out.trim().split(';').next().unwrap_or_default().to_string();
                if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
                    return Err(step_error(format!(
                        "`sbatch` printed no job id: `{}`",
                        out.trim()
                    )));
                }
                Ok(id)
            });
            let id = match submitted {
                Ok(id) => id,
                Err(e) => {
                    // Nothing half-submitted is left running: the arrays already in the queue go too.
                    cancel(&arrays);
                    return Err(e);
                }
            };
            output::progress(&format!(
                "  submitted Slurm array {id}: {tasks} task(s) of up to {per_task} point(s)"
            ));
            let array = Array {
                id,
                dir: dir.to_path_buf(),
                index,
                tasks: points
                    .chunks(per_task)
                    .map(|c| c.iter().map(|p| p.hash.clone()).collect())
                    .collect(),
            };
            record(&array);
            arrays.push(array);
        }
        Ok(arrays)
    }
}

/// CPUs per task of a CUDA step when the pipeline names none: the host side of GPU inference is one launching
/// thread plus the tokenizer and I/O.
const CUDA_DEFAULT_CPUS: usize = 4;
/// Memory per task of a CUDA step when the pipeline names none: libtorch's CUDA libraries alone map several GB,
/// and weights pass through host memory on their way to the GPU.
const CUDA_DEFAULT_MEM: &str = "32G";

/// Copies the worker (and the GPU peak-memory shim beside it, if any) into the run's directory on the shared
/// filesystem, so rebuilding e3pipe while tasks queue cannot change or remove what they run.
fn copy_worker(dir: &Path) -> Result<PathBuf> {
    let worker = worker_path()?;
    let run_dir = dir.parent().unwrap_or(dir);
    let copy = run_dir.join("e3pipe-worker");
    if !copy.is_file() {
        // A hard link where the cache shares the build's filesystem (a rebuild replaces the file, not the inode);
        // a copy elsewhere.
        let tmp = run_dir.join(".e3pipe-worker.partial");
        let _ = std::fs::remove_file(&tmp);
        std::fs::hard_link(&worker, &tmp)
            .or_else(|_| std::fs::copy(&worker, &tmp).map(|_| ()))
            .and_then(|()| std::fs::rename(&tmp, &copy))
            .map_err(|source| Error::Write {
                path: copy.clone(),
                source,
            })?;
        let shim = worker.with_file_name("libe3pipe_cuda_peak.so");
        if shim.is_file() {
            let _ = std::fs::copy(&shim, run_dir.join("libe3pipe_cuda_peak.so"));
        }
        // A bundle's worker finds its libtorch by the marker beside it.
        let marker = worker.with_file_name(crate::models::libtorch::BUNDLE_MARKER);
        if marker.is_file() {
            let _ = std::fs::copy(
                &marker,
                run_dir.join(crate::models::libtorch::BUNDLE_MARKER),
            );
        }
    }
    Ok(copy)
}

fn cancel(arrays: &[Array]) {
    if arrays.is_empty() {
        return;
    }
    let ids: Vec<String> = arrays.iter().map(|a| a.id.clone()).collect();
    let _ = run("scancel", &ids);
    output::warn(&format!("cancelled Slurm array(s) {}", ids.join(", ")));
    for a in arrays {
        let _ = std::fs::remove_file(inflight_file(&a.dir, &a.id));
    }
}

/// Where a submitted array is recorded while it may still run, so that a later run waits for its points instead
/// of submitting them again: `cache/slurm/inflight/<array id>.json`.
fn inflight_dir(cache_slurm: &Path) -> PathBuf {
    cache_slurm.join("inflight")
}

fn inflight_file(array_dir: &Path, id: &str) -> PathBuf {
    // `<cache>/slurm/<run>/<step>` -> `<cache>/slurm/inflight/<id>.json`
    let slurm = array_dir
        .parent()
        .and_then(Path::parent)
        .unwrap_or(array_dir);
    inflight_dir(slurm).join(format!("{id}.json"))
}

fn record(array: &Array) {
    let path = inflight_file(&array.dir, &array.id);
    if let Err(e) = crate::fsio::write_json(&path, array) {
        output::warn(&format!(
            "could not record Slurm array {} as in flight ({e}); a rerun before it ends may submit its points again",
            array.id
        ));
    }
}

/// Arrays an earlier run submitted that are still in the queue and hold some of `hashes`: waited for, not
/// submitted again. Records of arrays that have left the queue are removed. When `squeue` cannot answer, nothing
/// is adopted and nothing removed.
fn in_flight(root: &Path, hashes: &BTreeSet<String>) -> Vec<Array> {
    let dir = inflight_dir(&root.join(crate::paths::CACHE_DIR).join("slurm"));
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let (paths, arrays): (Vec<PathBuf>, Vec<Array>) = entries
        .filter_map(std::result::Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p| {
            let a = serde_json::from_slice::<Array>(&crate::fsio::read_own(&p).ok()?).ok()?;
            Some((p, a))
        })
        .unzip();
    if arrays.is_empty() {
        return Vec::new();
    }
    let Ok(listed) = squeue(&arrays) else {
        return Vec::new();
    };
    let mut adopted = Vec::new();
    for (path, array) in paths.iter().zip(arrays) {
        let alive = listed
            .iter()
            .any(|(id, (state, _))| id.starts_with(&format!("{}_", array.id)) && active(state));
        if !alive {
            let _ = std::fs::remove_file(path);
        } else if array.tasks.iter().flatten().any(|h| hashes.contains(h)) {
            adopted.push(array);
        }
    }
    adopted
}

/// Task states `squeue` lists while a task may still write points, or be started again (preempted, requeued,
/// held for a special exit, stopped).
fn active(state: &str) -> bool {
    matches!(
        state,
        "PENDING"
            | "RUNNING"
            | "CONFIGURING"
            | "COMPLETING"
            | "SUSPENDED"
            | "RESIZING"
            | "PREEMPTED"
            | "SPECIAL_EXIT"
            | "STOPPED"
            | "SIGNALING"
            | "STAGE_OUT"
    ) || state.starts_with("REQUEUE")
}

/// `<array>_<task>` -> (state, reason), for every task `squeue` lists of `arrays`. A failed call is an error,
/// never an empty queue.
fn squeue(arrays: &[Array]) -> std::result::Result<BTreeMap<String, (String, String)>, String> {
    let ids: Vec<&str> = arrays.iter().map(|a| a.id.as_str()).collect();
    let text = run(
        "squeue",
        &[
            "-h".into(),
            "-r".into(),
            "-j".into(),
            ids.join(","),
            "-o".into(),
            "%i %T %r".into(),
        ],
    )?;
    Ok(parse_squeue(&text))
}

fn parse_squeue(text: &str) -> BTreeMap<String, (String, String)> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let id = f.next()?;
            let state = f.next()?;
            let reason = f.collect::<Vec<_>>().join(" ");
            Some((id.to_string(), (state.to_string(), reason)))
        })
        .collect()
}

/// One line on what the arrays are doing: `array 41: 3 pending (Resources), 2 running, 1 done`.
fn progress_line(arrays: &[Array], listed: &BTreeMap<String, (String, String)>) -> String {
    arrays
        .iter()
        .map(|a| {
            let prefix = format!("{}_", a.id);
            let (mut pending, mut running) = (0, 0);
            let mut reasons = BTreeSet::new();
            for (id, (state, reason)) in listed {
                if !id.starts_with(&prefix) {
                    continue;
                }
                if state == "PENDING" {
                    pending += 1;
                    if !reason.is_empty() && reason != "None" {
                        reasons.insert(reason.trim_matches(|c| c == '(' || c == ')').to_string());
                    }
                } else if active(state) {
                    running += 1;
                }
            }
            let done = a.tasks.len().saturating_sub(pending + running);
            let why = if reasons.is_empty() {
                String::new()
            } else {
                format!(" ({})", reasons.into_iter().collect::<Vec<_>>().join(", "))
            };
            format!(
                "array {}: {pending} pending{why}, {running} running, {done} done",
                a.id
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Task states from accounting, or `None` where accounting is disabled.
fn sacct(array: &Array) -> Option<BTreeMap<String, String>> {
    let text = run(
        "sacct",
        &[
            "-n".into(),
            "-P".into(),
            "-X".into(),
            "-j".into(),
            array.id.clone(),
            "-o".into(),
            "JobID,State".into(),
        ],
    )
    .ok()?;
    let states: BTreeMap<String, String> = text
        .lines()
        .filter_map(|l| l.split_once('|'))
        .map(|(id, state)| (id.to_string(), state.trim().to_string()))
        .collect();
    (!states.is_empty()).then_some(states)
}

/// Reads the finished-point lines a task wrote to its output since `offset`; only opens the file when it has
/// grown (one `stat` per poll on a shared filesystem). A log shorter than what was read (a requeued task's, on a
/// cluster that truncates) is read again from the start: lines already seen are dropped by the caller.
fn read_finished(path: &Path, offset: &mut u64) -> Vec<Finished> {
    use std::io::{Seek, SeekFrom};
    let Ok(len) = std::fs::metadata(path).map(|m| m.len()) else {
        return Vec::new();
    };
    if len < *offset {
        *offset = 0;
    }
    if len == *offset {
        return Vec::new();
    }
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    if file.seek(SeekFrom::Start(*offset)).is_err() {
        return Vec::new();
    }
    let mut found = Vec::new();
    let mut reader = BufReader::new(file);
    let mut line = String::new();
    while let Ok(n) = reader.read_line(&mut line) {
        // Only whole lines: a task may be writing the rest of this one.
        if n == 0 || !line.ends_with('\n') {
            break;
        }
        *offset += n as u64;
        if let Ok(f) = serde_json::from_str::<Finished>(line.trim_end()) {
            found.push(f);
        }
        line.clear();
    }
    found
}

impl Executor for Slurm {
    fn name(&self) -> &'static str {
        "slurm"
    }

    fn describe(&self, points: usize, threads: usize) -> Option<String> {
        if points == 0 {
            return None;
        }
        let c = &self.config;
        Some(format!(
            "  slurm: would submit an array of {} task(s), up to {} point(s) each, {} at a time, {} CPU(s) per task{}{}",
            self.tasks_for(points),
            c.points_per_task,
            c.max_parallel,
            c.cpus_per_task.unwrap_or(threads),
            c.partition
                .as_ref()
                .map(|p| format!(", partition {p}"))
                .unwrap_or_default(),
            c.gres
                .as_ref()
                .map(|g| format!(", gres {g}"))
                .unwrap_or_default(),
        ))
    }

    fn measure(&self, job: &Job, finished: &mut dyn FnMut(Finished)) -> Result<WorkerStatus> {
        // One directory per run (its worker copy is shared by its steps), one below it per step.
        static RUN_DIR: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let started = Instant::now();
        let run_dir = RUN_DIR
            .get_or_init(|| format!("{}-{}", crate::clock::file_name_time(), std::process::id()));
        let dir = job
            .root
            .join(crate::paths::CACHE_DIR)
            .join("slurm")
            .join(run_dir)
            .join(sanitize(&job.step));
        let wanted: BTreeSet<String> = job.points.iter().map(|p| p.hash.clone()).collect();
        // Points an earlier run's arrays are still measuring are waited for, not submitted again.
        let adopted = in_flight(&job.root, &wanted);
        let in_flight_hashes: BTreeSet<&String> = adopted
            .iter()
            .flat_map(|a| a.tasks.iter().flatten())
            .collect();
        let to_submit = Job {
            points: job
                .points
                .iter()
                .filter(|p| !in_flight_hashes.contains(&p.hash))
                .cloned()
                .collect(),
            ..job.clone()
        };
        if !adopted.is_empty() {
            output::progress(&format!(
                "  slurm: {} point(s) are still being measured by array(s) {} of an earlier run: waiting for them",
                job.points.len() - to_submit.points.len(),
                adopted
                    .iter()
                    .map(|a| a.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let mut arrays = Vec::new();
        if !to_submit.points.is_empty() || (adopted.is_empty() && job.peaks.is_some()) {
            arrays = self.submit(&to_submit, &dir)?;
        }
        let own: Vec<String> = arrays.iter().map(|a| a.id.clone()).collect();
        arrays.extend(adopted);
        let ids: Vec<String> = arrays.iter().map(|a| a.id.clone()).collect();
        if !self.config.wait {
            return Ok(WorkerStatus::Submitted(format!(
                "Slurm array(s) {} measuring; run `{}` again once they finish to collect the points",
                ids.join(", "),
                crate::rerun::run_with("")
            )));
        }
        let store = Store::new(&job.root);
        let mut pending: BTreeSet<String> = wanted;
        // A forced point's old entry is in the cache already: only the task's own report says it was measured again.
        let forced: BTreeSet<String> = job
            .points
            .iter()
            .filter(|p| p.forced)
            .map(|p| p.hash.clone())
            .collect();
        let mut offsets: BTreeMap<PathBuf, u64> = BTreeMap::new();
        let mut squeue_calls = 0usize;
        let mut squeue_failures = 0usize;
        let mut sacct_calls = 0usize;
        let mut last_poll: Option<Instant> = None;
        let mut last_logs: Option<Instant> = None;
        let mut last_line = String::new();
        // Successful listings in a row without an array: it has ended after two (one may be a controller hiccup).
        let mut absent: BTreeMap<String, usize> = BTreeMap::new();
        let mut ended: BTreeSet<String> = BTreeSet::new();
        let mut peaks_done = job.peaks.is_none();
        let poll = Duration::from_secs_f64(self.config.poll_interval_s);
        // The tasks' logs are checked (by size) every second, or at the poll interval when that is shorter.
        let log_interval = poll.min(Duration::from_secs(1));
        let drain = |pending: &mut BTreeSet<String>,
                     offsets: &mut BTreeMap<PathBuf, u64>,
                     log: PathBuf,
                     finished: &mut dyn FnMut(Finished)| {
            let offset = offsets.entry(log.clone()).or_insert(0);
            for f in read_finished(&log, offset) {
                if pending.remove(&f.hash) {
                    finished(f);
                }
            }
        };
        loop {
            let poll_due = last_poll.is_none_or(|t| t.elapsed() >= poll);
            if last_logs.is_none_or(|t| t.elapsed() >= log_interval) {
                last_logs = Some(Instant::now());
                // Points as they land: the tasks' output lines (failures included).
                for array in &arrays {
                    for task in 0..array.tasks.len() {
                        drain(&mut pending, &mut offsets, array.log(task, "out"), finished);
                    }
                }
                // Peaks land in the cache too; a task that could not measure them is seen leaving the queue.
                peaks_done = peaks_done
                    || job
                        .peaks
                        .as_ref()
                        .is_some_and(|key| crate::cache::peaks::load(&store.dir, key).is_some());
            }
            if poll_due {
                // And the cache, listed once per poll (a point whose task's log is lost still counts).
                let present = store.hashes();
                for hash in pending.difference(&forced).cloned().collect::<Vec<_>>() {
                    if present.contains(&hash)
                        && let Lookup::Hit(entry) = store.get(&hash)
                    {
                        pending.remove(&hash);
                        finished(Finished {
                            hash,
                            outcome: Outcome::Computed,
                            result: entry.result,
                        });
                    }
                }
            }
            let arrays_done = arrays.iter().all(|a| ended.contains(&a.id));
            if pending.is_empty() && (peaks_done || arrays_done) {
                break;
            }
            if INTERRUPTED.load(Ordering::SeqCst) {
                // This run's own arrays; an earlier run's keep running for whoever waits for them.
                let mine: Vec<&Array> = arrays.iter().filter(|a| own.contains(&a.id)).collect();
                let _ = run("scancel", &own);
                for a in &mine {
                    let _ = std::fs::remove_file(inflight_file(&a.dir, &a.id));
                }
                output::outcome(&format!(
                    "cancelled Slurm array(s) {}; finished points are cached, {} point(s) were not measured",
                    own.join(", "),
                    pending.len()
                ));
                return Ok(WorkerStatus::Interrupted);
            }
            if poll_due {
                last_poll = Some(Instant::now());
                squeue_calls += 1;
                let listed = match squeue(&arrays) {
                    Ok(listed) => {
                        squeue_failures = 0;
                        listed
                    }
                    Err(why) => {
                        // A busy controller ("Socket timed out"): skip this poll, never read it as an empty queue.
                        squeue_failures += 1;
                        if squeue_failures.is_multiple_of(3) {
                            output::warn(&format!(
                                "`squeue` failed {squeue_failures} times in a row ({why}); still waiting"
                            ));
                        }
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                };
                let line = progress_line(&arrays, &listed);
                if line != last_line {
                    output::status(&format!(
                        "  slurm: {line} [{:.0} s]",
                        started.elapsed().as_secs_f64()
                    ));
                    last_line = line;
                }
                for array in &arrays {
                    let alive = listed.iter().any(|(id, (state, _))| {
                        id.starts_with(&format!("{}_", array.id)) && active(state)
                    });
                    if alive {
                        absent.remove(&array.id);
                        continue;
                    }
                    if ended.contains(&array.id) {
                        continue;
                    }
                    let seen_gone = absent.entry(array.id.clone()).or_insert(0);
                    *seen_gone += 1;
                    if *seen_gone < 2 {
                        continue;
                    }
                    ended.insert(array.id.clone());
                    let _ = std::fs::remove_file(inflight_file(&array.dir, &array.id));
                    // The array left the queue: read what the tasks wrote once more, then fail what is missing.
                    let missing: Vec<(usize, String)> = array
                        .tasks
                        .iter()
                        .enumerate()
                        .flat_map(|(t, hashes)| hashes.iter().map(move |h| (t, h.clone())))
                        .filter(|(_, h)| pending.contains(h))
                        .collect();
                    if missing.is_empty() {
                        continue;
                    }
                    sacct_calls += 1;
                    let states = sacct(array);
                    for (task, hash) in missing {
                        drain(&mut pending, &mut offsets, array.log(task, "out"), finished);
                        if !pending.contains(&hash) {
                            continue;
                        }
                        if !forced.contains(&hash)
                            && let Lookup::Hit(entry) = store.get(&hash)
                        {
                            pending.remove(&hash);
                            finished(Finished {
                                hash: hash.clone(),
                                outcome: Outcome::Computed,
                                result: entry.result,
                            });
                            continue;
                        }
                        let task_id = format!("{}_{task}", array.id);
                        let state = states
                            .as_ref()
                            .and_then(|s| s.get(&task_id).cloned())
                            .or_else(|| listed.get(&task_id).map(|(s, _)| s.clone()))
                            .unwrap_or_else(|| "left the queue (no accounting to say how)".into());
                        let reason = format!(
                            "Slurm task {task_id} ended ({state}) without measuring this point; its log: `{}`",
                            array.log(task, "err").display()
                        );
                        pending.remove(&hash);
                        finished(unmeasured(job, &hash, &reason, &task_id));
                    }
                }
                if arrays.iter().all(|a| ended.contains(&a.id)) && pending.is_empty() {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Every point of these arrays is in: nothing is left for a later run to wait for.
        for a in &arrays {
            let _ = std::fs::remove_file(inflight_file(&a.dir, &a.id));
        }
        output::progress(&format!(
            "  slurm: {} task(s) in {} array(s) done in {:.1} s; {squeue_calls} squeue and {sacct_calls} sacct call(s)",
            arrays.iter().map(|a| a.tasks.len()).sum::<usize>(),
            arrays.len(),
            started.elapsed().as_secs_f64()
        ));
        Ok(WorkerStatus::Done)
    }
}

/// The record of a point a task never measured.
fn unmeasured(job: &Job, hash: &str, reason: &str, task_id: &str) -> Finished {
    let (length, batch) = job
        .points
        .iter()
        .find(|p| p.hash == hash)
        .map_or((0, job.params.batch_size), |p| {
            (p.context_length, p.key.batch_size)
        });
    let mut result = Unmeasured {
        model: &job.model.name,
        arch: job.model.arch,
        params: &job.params,
        dtype: job.dtype.name(),
        device: describe(job.device),
        threads: job.threads,
        weights: job.weights.clone(),
        run_id: &job.run_id,
    }
    .result(length, Status::Error, reason)
    .with_batch(batch);
    result.executor = "slurm".into();
    result.slurm_job_id = Some(task_id.to_string());
    Finished {
        hash: hash.to_string(),
        outcome: Outcome::Failed,
        result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_script_puts_a_matching_libtorch_first_and_refuses_another() {
        let dir = tempfile::tempdir().unwrap();
        let task = dir.path().join("task.sh");
        std::fs::write(&task, script()).unwrap();
        // Stands in for the worker: prints the library path and its arguments.
        let probe = dir.path().join("probe.sh");
        std::fs::write(&probe, "#!/bin/sh\necho \"$LD_LIBRARY_PATH $1 $2\"\n").unwrap();
        std::fs::set_permissions(&probe, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let run = |version: Option<&str>| {
            let torch = dir.path().join("torch");
            std::fs::create_dir_all(&torch).unwrap();
            let mut cmd = std::process::Command::new("sh");
            cmd.arg(&task)
                .arg(&probe)
                .arg("job.json")
                .env("LD_LIBRARY_PATH", "/old");
            match version {
                Some(v) => {
                    std::fs::write(
                        torch.join("version.py"),
                        format!("__version__ = '{v}+cu130'\n"),
                    )
                    .unwrap();
                    cmd.env(crate::models::libtorch::ENV, &torch);
                }
                None => {
                    cmd.env_remove(crate::models::libtorch::ENV);
                }
            }
            let out = cmd.output().unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).trim().to_string(),
                String::from_utf8_lossy(&out.stderr).to_string(),
                torch,
            )
        };
        let (code, out, _, _) = run(None);
        assert_eq!(
            (code, out.as_str()),
            (Some(0), "/old --array-task job.json")
        );
        let ours = crate::models::libtorch::release(crate::bench::result::LIBTORCH_VERSION);
        let (code, out, _, torch) = run(Some(ours));
        assert_eq!(code, Some(0));
        assert_eq!(
            out,
            format!("{}/lib:/old --array-task job.json", torch.display())
        );
        let (code, out, err, _) = run(Some("1.13.1"));
        assert_eq!((code, out.as_str()), (Some(2), ""));
        assert!(err.contains(&format!("is not libtorch {ours}")), "{err}");
    }

    #[test]
    fn displayed_commands_quote_what_a_shell_would_split() {
        assert_eq!(shell_quote("--array=0-2%16"), "--array=0-2%16");
        assert_eq!(shell_quote("/p/with space"), "'/p/with space'");
        assert_eq!(shell_quote("x; touch pwned"), "'x; touch pwned'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }

    #[test]
    fn a_cuda_step_asks_for_a_gpu_memory_and_a_few_cpus_and_the_user_wins() {
        let s = Slurm::new(SlurmConfig::default());
        let cuda = s.resource_args(true, 64);
        for want in ["--gres=gpu:1", "--mem=32G", "--cpus-per-task=4"] {
            assert!(cuda.contains(&want.to_string()), "{cuda:?}");
        }
        // A CPU step keeps the cluster's memory default and asks for no GPU.
        let cpu = s.resource_args(false, 8);
        assert!(cpu.contains(&"--cpus-per-task=8".to_string()), "{cpu:?}");
        assert!(
            !cpu.iter()
                .any(|a| a.starts_with("--gres") || a.starts_with("--mem")),
            "{cpu:?}"
        );
        let s = Slurm::new(SlurmConfig {
            gpus: Some("h200:2".into()),
            mem: Some("64G".into()),
            account: Some("proj".into()),
            sbatch_args: vec!["--qos=high".into()],
            ..SlurmConfig::default()
        });
        let args = s.resource_args(true, 1);
        for want in ["--gres=gpu:h200:2", "--mem=64G", "--account=proj"] {
            assert!(args.contains(&want.to_string()), "{args:?}");
        }
        assert_eq!(args.last().map(String::as_str), Some("--qos=high"));
    }

    #[test]
    fn a_cuda_visible_devices_slurm_did_not_set_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let task = dir.path().join("task.sh");
        std::fs::write(&task, script()).unwrap();
        let probe = dir.path().join("probe.sh");
        std::fs::write(
            &probe,
            "#!/bin/sh\necho \"[${CUDA_VISIBLE_DEVICES-unset}]\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&probe, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let run = |slurm_gpus: Option<&str>| {
            let mut cmd = std::process::Command::new("sh");
            cmd.arg(&task)
                .arg(&probe)
                .arg("job.json")
                .env("CUDA_VISIBLE_DEVICES", "3");
            cmd.env_remove(crate::models::libtorch::ENV)
                .env_remove("SLURM_STEP_GPUS");
            match slurm_gpus {
                Some(g) => cmd.env("SLURM_JOB_GPUS", g),
                None => cmd.env_remove("SLURM_JOB_GPUS"),
            };
            String::from_utf8_lossy(&cmd.output().unwrap().stdout)
                .trim()
                .to_string()
        };
        assert_eq!(run(None), "[unset]");
        assert_eq!(run(Some("1")), "[3]");
    }

    #[test]
    fn squeue_lines_give_state_and_reason_and_requeued_tasks_are_alive() {
        let listed = parse_squeue(
            "41_0 PENDING (Resources)\n41_1 RUNNING None\n41_2 PENDING (Priority)\n41_3 REQUEUE_HOLD (JobHeldAdmin)\n",
        );
        assert_eq!(
            listed["41_0"],
            ("PENDING".to_string(), "(Resources)".to_string())
        );
        for state in [
            "PREEMPTED",
            "REQUEUE_FED",
            "REQUEUE_HOLD",
            "SPECIAL_EXIT",
            "STOPPED",
            "PENDING",
        ] {
            assert!(active(state), "{state}");
        }
        for state in [
            "COMPLETED",
            "FAILED",
            "CANCELLED",
            "TIMEOUT",
            "OUT_OF_MEMORY",
            "NODE_FAIL",
        ] {
            assert!(!active(state), "{state}");
        }
        let array = Array {
            id: "41".into(),
            dir: PathBuf::new(),
            index: 0,
            tasks: vec![vec![]; 5],
        };
        assert_eq!(
            progress_line(&[array], &listed),
            "array 41: 2 pending (Priority, Resources), 2 running, 1 done"
        );
    }

    #[test]
    fn a_partition_with_several_gpu_types_gets_the_planned_one() {
        let types = gres_types("gpu:h200:8(S:0-1),gpu:a100:4\ngpu:h100_nvl:2\ngpu:4\n(null)\n");
        assert_eq!(
            types.iter().map(String::as_str).collect::<Vec<_>>(),
            ["a100", "h100_nvl", "h200"]
        );
        assert_eq!(
            matching_type(&types, "NVIDIA H200").as_deref(),
            Some("h200")
        );
        assert_eq!(
            matching_type(&types, "NVIDIA A100-SXM4-80GB").as_deref(),
            Some("a100")
        );
        assert_eq!(
            matching_type(&types, "NVIDIA H100 NVL").as_deref(),
            Some("h100_nvl")
        );
        assert_eq!(matching_type(&types, "Tesla T4"), None);
        // Sites with AutoDetect=nvml name types after the full model.
        let auto = gres_types("gpu:nvidia_h100_80gb_hbm3:4,gpu:nvidia_a100-sxm4-80gb:4");
        assert_eq!(
            matching_type(&auto, "NVIDIA H100 80GB HBM3").as_deref(),
            Some("nvidia_h100_80gb_hbm3")
        );
        let s = Slurm::new(SlurmConfig::default());
        assert!(
            s.resource_args_typed(true, 1, Some("h200"))
                .contains(&"--gres=gpu:h200:1".to_string())
        );
    }

    #[test]
    fn tasks_are_chunks_of_points() {
        let s = Slurm::new(SlurmConfig {
            points_per_task: 4,
            ..SlurmConfig::default()
        });
        assert_eq!((s.tasks_for(0), s.tasks_for(4), s.tasks_for(9)), (1, 1, 3));
        assert!(
            s.describe(9, 2)
                .unwrap()
                .contains("3 task(s), up to 4 point(s) each, 16 at a time, 2 CPU(s)")
        );
    }

    #[test]
    fn only_whole_finished_lines_are_read_and_each_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("t.out");
        std::fs::write(&log, "noise\n{\"hash\": \"partial").unwrap();
        let mut offset = 0;
        assert!(read_finished(&log, &mut offset).is_empty());
        assert_eq!(offset, 6);
        assert!(read_finished(&dir.path().join("none"), &mut offset).is_empty());
        // A log truncated below what was read (a requeued task) is read again from its start.
        std::fs::write(&log, "x\n").unwrap();
        let mut offset = 6;
        assert!(read_finished(&log, &mut offset).is_empty());
        assert_eq!(offset, 2);
    }
}
