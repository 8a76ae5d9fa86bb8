//! Asks the measuring worker what it would run on here (`e3pipe-worker --identify`): the loaded libtorch and
//! whether its CUDA backend loads. Only GPU-relevant plans ask (a CPU config, or `auto` on a machine without an
//! NVIDIA driver, never starts it), and once per process, so a no-op run on a CPU stays free of libtorch.

use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::models::hardware::CUDA_ORDER_ENV;
use crate::models::runtime::Probe;
use crate::pipeline::worker_process::worker_path;

/// The worker's answer, asked once per process; why not when the worker could not answer.
pub fn probe() -> Result<Probe, String> {
    static PROBE: OnceLock<Result<Probe, String>> = OnceLock::new();
    PROBE.get_or_init(ask).clone()
}

fn ask() -> Result<Probe, String> {
    let path = worker_path().map_err(|e| e.to_string())?;
    let mut command = Command::new(&path);
    if let Some(library_path) = crate::models::libtorch::library_path() {
        command.env("LD_LIBRARY_PATH", library_path);
    }
    let out = command
        .arg("--identify")
        .env(CUDA_ORDER_ENV.0, CUDA_ORDER_ENV.1)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| {
            format!(
                "cannot start the measuring worker `{}` ({e})",
                path.display()
            )
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "the measuring worker `{}` could not load libtorch: {}",
            path.display(),
            stderr
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no message")
                .trim()
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "the measuring worker `{}` answered `--identify` with no identity ({e})",
            path.display()
        )
    })
}
