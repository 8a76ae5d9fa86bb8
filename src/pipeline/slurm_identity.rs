//! Planning from the compute nodes. A point's key names the hardware and software that measure it, and on a
//! cluster that is a compute node, not the login node `e3pipe run` starts on (often without a GPU, another CPU,
//! another core count). Before planning a Slurm run, a probe job asks a node of the partition, with the request the
//! tasks will make, what it would run on (`e3pipe identify --format json`); points are keyed by its answer. The
//! probe also proves that the nodes see the project: it prints a token the login side wrote into the run's
//! directory. Answers are cached per (partition, request, device setting) for `PROBE_TTL_S`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsio::write_atomic;
use crate::interrupt::INTERRUPTED;
use crate::models::identity::Identity;
use crate::models::spec::DeviceChoice;
use crate::output;
use crate::pipeline::executor_config::SlurmConfig;
use crate::pipeline::slurm::Slurm;

/// How long a probe's answer is trusted: a node's driver or libtorch rarely changes within an hour, and a rerun
/// after editing `context_lengths` should not wait for the queue again.
pub const PROBE_TTL_S: u64 = 3600;

/// The probe job's script: the token first (the node sees the project), then the identity.
const SCRIPT: &str = "#!/bin/sh\n# Written by e3pipe: what a bench step would run on, asked on a compute node.\n\
if [ -z \"${SLURM_JOB_GPUS:-}${SLURM_STEP_GPUS:-}\" ]; then unset CUDA_VISIBLE_DEVICES; fi\n\
cat \"$2\" || exit 3\n\
exec \"$1\" identify --device \"$3\" --format json\n";

#[derive(Serialize, Deserialize)]
struct Cached {
    probed_at_s: u64,
    /// The sbatch request it was asked with, for people reading the cache.
    request: Vec<String>,
    identity: Identity,
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `auto`, `cpu`, `cuda`, `cuda:N`, as `e3pipe identify --device` takes it.
pub fn device_arg(choice: DeviceChoice) -> String {
    match choice {
        DeviceChoice::Auto => "auto".into(),
        DeviceChoice::Cpu => "cpu".into(),
        DeviceChoice::Cuda(i) => format!("cuda:{i}"),
    }
}

/// Whether a step with `choice` asks the scheduler for a GPU: `cuda`, or `auto` where the executor block names
/// GPUs (`gpus`/`gres`).
pub fn wants_gpu(config: &SlurmConfig, choice: DeviceChoice) -> bool {
    match choice {
        DeviceChoice::Cuda(_) => true,
        DeviceChoice::Auto => config.gpus.is_some() || config.gres.is_some(),
        DeviceChoice::Cpu => false,
    }
}

/// The cached answer for `choice` under `config`, if fresh; `None` otherwise (`--dry-run` submits nothing).
pub fn cached(root: &Path, config: &SlurmConfig, choice: DeviceChoice) -> Option<(Identity, u64)> {
    let (path, _) = cache_file(root, config, choice);
    let text = crate::fsio::read_own(&path).ok()?;
    let c: Cached = serde_json::from_slice(&text).ok()?;
    let age = now_s().saturating_sub(c.probed_at_s);
    (age < PROBE_TTL_S).then_some((c.identity, age))
}

fn cache_file(root: &Path, config: &SlurmConfig, choice: DeviceChoice) -> (PathBuf, Vec<String>) {
    let slurm = Slurm::new(config.clone());
    let request = slurm.probe_request(wants_gpu(config, choice));
    let mut hasher = blake3::Hasher::new();
    for part in &request {
        hasher.update(part.as_bytes());
        hasher.update(b"\0");
    }
    hasher.update(device_arg(choice).as_bytes());
    hasher.update(
        std::env::var(crate::models::libtorch::ENV)
            .unwrap_or_default()
            .as_bytes(),
    );
    // An answer is the measuring code's own (`e3pipe-worker --identify`): another build asks again.
    hasher.update(crate::bench::result::METHOD_ID.as_bytes());
    let name = hasher.finalize().to_hex().to_string();
    (
        root.join(crate::paths::CACHE_DIR)
            .join("slurm")
            .join("identity")
            .join(format!("{}.json", &name[..32])),
        request,
    )
}

/// What a node of the partition would measure `choice` on: the cached answer when fresh, else a probe job's.
pub fn on_node(
    root: &Path,
    config: &SlurmConfig,
    choice: DeviceChoice,
    step: &str,
) -> Result<Identity> {
    if let Some((identity, _)) = cached(root, config, choice) {
        return Ok(identity);
    }
    let (cache, request) = cache_file(root, config, choice);
    // The site's refusal of the request itself comes first, before anything is written.
    crate::pipeline::slurm::test_only(step, &request)?;
    let identity = probe(root, config, choice, &request, step)?;
    crate::fsio::write_json(
        &cache,
        &Cached {
            probed_at_s: now_s(),
            request,
            identity: identity.clone(),
        },
    )?;
    Ok(identity)
}

fn probe(
    root: &Path,
    config: &SlurmConfig,
    choice: DeviceChoice,
    request: &[String],
    step: &str,
) -> Result<Identity> {
    let refused = |message: String| Error::Refused {
        step: step.to_string(),
        message,
    };
    let dir = root
        .join(crate::paths::CACHE_DIR)
        .join("slurm")
        .join(format!(
            "probe-{}-{}",
            crate::clock::file_name_time(),
            std::process::id()
        ));
    let token = format!("e3pipe-probe-{}-{}", std::process::id(), now_s());
    write_atomic(&dir.join("token"), format!("{token}\n").as_bytes())?;
    write_atomic(&dir.join("probe.sh"), SCRIPT.as_bytes())?;
    let exe = std::env::current_exe().map_err(|source| Error::Read {
        path: "/proc/self/exe".into(),
        source,
    })?;
    let out_file = dir.join("probe.out");
    let mut args = vec![
        "--parsable".to_string(),
        "--job-name=e3pipe-probe".to_string(),
        format!("--output={}", out_file.display()),
        format!("--error={}", dir.join("probe.err").display()),
    ];
    args.extend(request.iter().cloned());
    args.push(dir.join("probe.sh").display().to_string());
    args.push(exe.display().to_string());
    args.push(dir.join("token").display().to_string());
    args.push(device_arg(choice));
    output::progress(&format!(
        "  slurm: asking a node{} what `device: {}` runs on (a probe job)",
        config
            .partition
            .as_ref()
            .map(|p| format!(" of partition {p}"))
            .unwrap_or_default(),
        device_arg(choice)
    ));
    let submitted = Command::new("sbatch").args(&args).output().map_err(|e| {
        refused(format!(
            "cannot run `sbatch` ({e}); is Slurm installed here?"
        ))
    })?;
    if !submitted.status.success() {
        return Err(refused(format!(
            "the probe job was refused: {}",
            String::from_utf8_lossy(&submitted.stderr).trim()
        )));
    }
    let id = String::from_utf8_lossy(&submitted.stdout)
        .trim()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    let started = Instant::now();
    let timeout = Duration::from_secs_f64(config.probe_timeout_s);
    // Once a second: its output, then one `squeue` for its state and reason (a controller is asked no more often).
    let mut gone = 0;
    loop {
        if let Some(answer) = answer(&out_file, &token) {
            if answer.is_ok() {
                // Answered: its files served their purpose (a failed probe's stay, named in the error).
                let _ = std::fs::remove_dir_all(&dir);
            }
            return answer.map_err(refused);
        }
        if INTERRUPTED.load(Ordering::SeqCst) {
            let _ = Command::new("scancel").arg(&id).output();
            return Err(Error::Interrupted);
        }
        let listing = Command::new("squeue")
            .args(["-h", "-j", &id, "-o", "%T %r"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        match listing.as_deref() {
            // Left the queue without an answer: twice in a row, since one listing may be a busy controller's.
            Some("") => {
                gone += 1;
                if gone >= 2 {
                    // Its output may land a moment after it leaves the queue.
                    std::thread::sleep(Duration::from_millis(500));
                    if let Some(answer) = answer(&out_file, &token) {
                        return answer.map_err(refused);
                    }
                    return Err(refused(no_answer(&dir, &out_file, &token)));
                }
            }
            _ => gone = 0,
        }
        let reason = listing.filter(|l| !l.is_empty());
        let held = reason.as_deref().is_some_and(|r| r.contains("Held"));
        if started.elapsed() > timeout || held {
            let _ = Command::new("scancel").arg(&id).output();
            return Err(refused(format!(
                "the probe job {id} did not answer within {:.0} s (queued: {}); raise `probe_timeout_s`, use a partition with free nodes, or plan here (`plan_on: here`)",
                started.elapsed().as_secs_f64(),
                reason.as_deref().unwrap_or("no reason given")
            )));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The identity in the probe's output once it is complete; an error when the node answered with one.
fn answer(out_file: &Path, token: &str) -> Option<std::result::Result<Identity, String>> {
    let text = std::fs::read_to_string(out_file).ok()?;
    let (first, rest) = text.split_once('\n')?;
    if first.trim() != token {
        return None;
    }
    let identity: Identity = serde_json::from_str(rest.trim()).ok()?;
    Some(match &identity.device_error {
        Some(why) => Err(format!("on a compute node: {why}")),
        None if identity.placement.is_none() => Err("the compute node named no device".into()),
        None => Ok(identity),
    })
}

/// Why a probe job that left the queue gave no identity, in the words that help.
fn no_answer(dir: &Path, out_file: &Path, token: &str) -> String {
    let err = std::fs::read_to_string(dir.join("probe.err")).unwrap_or_default();
    let last = err
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string();
    match std::fs::read_to_string(out_file) {
        Err(_) => format!(
            "the probe job left no output in `{}`: the compute nodes cannot see this project; put it (and e3pipe) on a filesystem the nodes share{}",
            dir.display(),
            if last.is_empty() {
                String::new()
            } else {
                format!(" ({last})")
            }
        ),
        Ok(text) if !text.starts_with(token) => format!(
            "the probe job could not read the token written to `{}`: the compute nodes do not see this project's files; put it on a filesystem the nodes share{}",
            dir.join("token").display(),
            if last.is_empty() {
                String::new()
            } else {
                format!(" ({last})")
            }
        ),
        Ok(_) => format!(
            "the probe job ended without an identity{}",
            if last.is_empty() {
                String::new()
            } else {
                format!(": {last}")
            }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_counts_only_after_the_token_and_names_a_device() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("probe.out");
        assert!(answer(&out, "tok").is_none());
        std::fs::write(&out, "tok\n{\"device\": null").unwrap();
        assert!(answer(&out, "tok").is_none(), "half-written");
        std::fs::write(&out, "other\n{}").unwrap();
        assert!(answer(&out, "tok").is_none());
        assert!(no_answer(dir.path(), &out, "tok").contains("do not see this project's files"));
        std::fs::remove_file(&out).unwrap();
        assert!(no_answer(dir.path(), &out, "tok").contains("cannot see this project"));
        let config = SlurmConfig::default();
        assert!(!wants_gpu(&config, DeviceChoice::Auto));
        assert!(wants_gpu(&config, DeviceChoice::Cuda(0)));
        let gpus = SlurmConfig {
            gpus: Some("1".into()),
            ..SlurmConfig::default()
        };
        assert!(wants_gpu(&gpus, DeviceChoice::Auto));
        assert_eq!(device_arg(DeviceChoice::Cuda(1)), "cuda:1");
    }
}
