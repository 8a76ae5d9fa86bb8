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
use crate::models::hardware::{CUDA_ORDER_ENV, describe};
use crate::output;
use crate::paths::sanitize;
use crate::pipeline::executor::Executor;
use crate::pipeline::executor_config::SlurmConfig;
use crate::pipeline::worker_process::{WorkerStatus, worker_path};

/// The job script: it runs its arguments and nothing else. When `E3PIPE_LIBTORCH` names the node's libtorch (a
/// bundle), the script checks that it is this build's release (the dynamic loader would fail on another, before the
/// worker could say why) and puts it first on the library path.
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
exec \"$1\" --array-task \"$2\"\n"
    )
}

pub struct Slurm {
    config: SlurmConfig,
}

/// One submitted array.
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
fn shell_quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:%,@+".contains(c))
    {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

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

    /// The `sbatch` arguments for an array of `tasks` tasks of `job` (its files in `dir`).
    fn sbatch_args(
        &self,
        job: &Job,
        tasks: usize,
        index: usize,
        dir: &Path,
        job_file: &Path,
    ) -> Result<Vec<String>> {
        let c = &self.config;
        let log = |stream: &str| {
            dir.join(format!("array{index}_task%a.{stream}"))
                .display()
                .to_string()
        };
        let mut args = vec![
            "--parsable".to_string(),
            format!("--array=0-{}%{}", tasks - 1, c.max_parallel),
            format!("--job-name=e3pipe-{}", sanitize(&job.step)),
            format!("--output={}", log("out")),
            format!("--error={}", log("err")),
            format!("--cpus-per-task={}", c.cpus_per_task.unwrap_or(job.threads)),
            format!("--export=ALL,{}={}", CUDA_ORDER_ENV.0, CUDA_ORDER_ENV.1),
        ];
        if let Some(p) = &c.partition {
            args.push(format!("--partition={p}"));
        }
        if let Some(g) = &c.gres {
            args.push(format!("--gres={g}"));
        }
        if let Some(t) = &c.time {
            args.push(format!("--time={t}"));
        }
        args.extend(c.sbatch_args.iter().cloned());
        args.push(dir.join("task.sh").display().to_string());
        args.push(worker_path()?.display().to_string());
        args.push(job_file.display().to_string());
        Ok(args)
    }

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
        let mut arrays = Vec::new();
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
            crate::fsio::write_json(&job_file, &array_job)?;
            let args = self.sbatch_args(job, tasks, index, dir, &job_file)?;
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
            output::progress(&format!(
                "  submitted Slurm array {id}: {tasks} task(s) of up to {per_task} point(s)"
            ));
            arrays.push(Array {
                id,
                dir: dir.to_path_buf(),
                index,
                tasks: points
                    .chunks(per_task)
                    .map(|c| c.iter().map(|p| p.hash.clone()).collect())
                    .collect(),
            });
        }
        Ok(arrays)
    }
}

/// Task states `squeue` lists while a task may still write points.
fn active(state: &str) -> bool {
    matches!(
        state,
        "PENDING"
            | "RUNNING"
            | "CONFIGURING"
            | "COMPLETING"
            | "SUSPENDED"
            | "REQUEUED"
            | "RESIZING"
    )
}

/// `<array>_<task>` -> state, for every task `squeue` lists of `arrays`.
fn squeue(arrays: &[Array]) -> std::result::Result<BTreeMap<String, String>, String> {
    let ids: Vec<&str> = arrays.iter().map(|a| a.id.as_str()).collect();
    let text = run(
        "squeue",
        &[
            "-h".into(),
            "-r".into(),
            "-j".into(),
            ids.join(","),
            "-o".into(),
            "%i %T".into(),
        ],
    )?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(id, state)| (id.to_string(), state.trim().to_string()))
        .collect())
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

/// Reads the finished-point lines a task wrote to its output since `offset`.
fn read_finished(path: &Path, offset: &mut u64) -> Vec<Finished> {
    use std::io::{Seek, SeekFrom};
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
        let started = Instant::now();
        let dir = job
            .root
            .join(crate::paths::CACHE_DIR)
            .join("slurm")
            .join(format!(
                "{}-{}",
                crate::clock::file_name_time(),
                std::process::id()
            ))
            .join(sanitize(&job.step));
        let arrays = self.submit(job, &dir)?;
        let ids: Vec<&str> = arrays.iter().map(|a| a.id.as_str()).collect();
        if !self.config.wait {
            return Ok(WorkerStatus::Submitted(format!(
                "submitted Slurm array(s) {}; run `e3pipe run` again once they finish to collect the points",
                ids.join(", ")
            )));
        }
        let store = Store::new(&job.root);
        let mut pending: BTreeSet<String> = job.points.iter().map(|p| p.hash.clone()).collect();
        // A forced point's old entry is in the cache already: only the task's own report says it was measured again.
        let forced: BTreeSet<String> = job
            .points
            .iter()
            .filter(|p| p.forced)
            .map(|p| p.hash.clone())
            .collect();
        let mut offsets: BTreeMap<PathBuf, u64> = BTreeMap::new();
        let mut squeue_calls = 0usize;
        let mut sacct_calls = 0usize;
        let mut last_poll: Option<Instant> = None;
        let mut ended: BTreeSet<String> = BTreeSet::new();
        let poll = Duration::from_secs_f64(self.config.poll_interval_s);
        loop {
            // Points as they land: the tasks' output lines (failures included), then the cache.
            for array in &arrays {
                for task in 0..array.tasks.len() {
                    let log = array.log(task, "out");
                    let offset = offsets.entry(log.clone()).or_insert(0);
                    for f in read_finished(&log, offset) {
                        if pending.remove(&f.hash) {
                            finished(f);
                        }
                    }
                }
            }
            for hash in pending.difference(&forced).cloned().collect::<Vec<_>>() {
                if let Lookup::Hit(entry) = store.get(&hash) {
                    pending.remove(&hash);
                    finished(Finished {
                        hash,
                        outcome: Outcome::Computed,
                        result: entry.result,
                    });
                }
            }
            let arrays_done = arrays.iter().all(|a| ended.contains(&a.id));
            // Peaks land in the cache too; a task that could not measure them is seen leaving the queue.
            let peaks_done = job
                .peaks
                .as_ref()
                .is_none_or(|key| crate::cache::peaks::load(&store.dir, key).is_some());
            if pending.is_empty() && (peaks_done || arrays_done) {
                break;
            }
            if INTERRUPTED.load(Ordering::SeqCst) {
                let _ = run(
                    "scancel",
                    &ids.iter().map(|s| (*s).to_string()).collect::<Vec<_>>(),
                );
                output::outcome(&format!(
                    "cancelled Slurm array(s) {}; finished points are cached, {} point(s) were not measured",
                    ids.join(", "),
                    pending.len()
                ));
                return Ok(WorkerStatus::Interrupted);
            }
            if last_poll.is_none_or(|t| t.elapsed() >= poll) {
                last_poll = Some(Instant::now());
                squeue_calls += 1;
                let listed = squeue(&arrays).unwrap_or_default();
                for array in &arrays {
                    let alive = listed.iter().any(|(id, state)| {
                        id.starts_with(&format!("{}_", array.id)) && active(state)
                    });
                    if alive || ended.contains(&array.id) {
                        continue;
                    }
                    ended.insert(array.id.clone());
                    // The array left the queue: read what the tasks wrote once more, then fail what is missing.
                    let missing: Vec<(usize, &String)> = array
                        .tasks
                        .iter()
                        .enumerate()
                        .flat_map(|(t, hashes)| hashes.iter().map(move |h| (t, h)))
                        .filter(|(_, h)| pending.contains(*h))
                        .collect();
                    if missing.is_empty() {
                        continue;
                    }
                    sacct_calls += 1;
                    let states = sacct(array);
                    for (task, hash) in missing {
                        let log = array.log(task, "out");
                        let offset = offsets.entry(log.clone()).or_insert(0);
                        for f in read_finished(&log, offset) {
                            if pending.remove(&f.hash) {
                                finished(f);
                            }
                        }
                        if !pending.contains(hash) {
                            continue;
                        }
                        if !forced.contains(hash)
                            && let Lookup::Hit(entry) = store.get(hash)
                        {
                            pending.remove(hash);
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
                            .or_else(|| listed.get(&task_id).cloned())
                            .unwrap_or_else(|| "left the queue (no accounting to say how)".into());
                        let reason = format!(
                            "Slurm task {task_id} ended ({state}) without measuring this point; its log: `{}`",
                            array.log(task, "err").display()
                        );
                        pending.remove(hash);
                        finished(unmeasured(job, hash, &reason, &task_id));
                    }
                }
                if arrays_done && pending.is_empty() {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
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
    }
}
