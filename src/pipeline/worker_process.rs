//! The measuring worker as a child process: the job goes to its stdin, one finished point per line comes back on
//! its stdout, Ctrl-C is forwarded once, and the worker dies with us (it never measures unsupervised).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::interrupt::INTERRUPTED;
use crate::job::{Finished, Job};
use crate::models::hardware::CUDA_ORDER_ENV;

/// How measuring a job ended.
#[derive(Debug, PartialEq)]
pub enum WorkerStatus {
    Done,
    Interrupted,
    Failed(String),
    /// Handed to a scheduler and not waited for (`--no-wait`): the points land in the cache later.
    Submitted(String),
}

/// The worker binary sits beside this one (`E3PIPE_WORKER` overrides, for packaging).
pub fn worker_path() -> Result<PathBuf> {
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
pub fn run_worker(job: &Job) -> Result<(Vec<Finished>, WorkerStatus)> {
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
    // The libtorch `E3PIPE_LIBTORCH` names (a bundle on a GPU node) before the build's own.
    if let Some(path) = crate::models::libtorch::library_path() {
        command.env("LD_LIBRARY_PATH", path);
    }
    let mut child = command
        .envs(crate::output::child_env())
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
        // Ctrl-C reached it before its handler was installed.
        None if status.signal() == Some(libc::SIGINT) || INTERRUPTED.load(Ordering::SeqCst) => {
            WorkerStatus::Interrupted
        }
        None => WorkerStatus::Failed(format!(
            "the measuring worker was killed by signal {}",
            status.signal().unwrap_or(0)
        )),
    };
    Ok((finished, outcome))
}
