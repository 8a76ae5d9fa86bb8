//! `e3pipe identify`: what a bench step would measure on here, as its points would record it — the device a
//! `device:` setting resolves to, the GPU and its driver, the CUDA runtime and cuDNN the worker loads, the loaded
//! libtorch (its own `version.py`), the threads and the CPU. The Slurm probe runs it on a compute node.

use std::fmt::Write as _;

use serde::Serialize;

use crate::cli::IdentifyFormat;
use crate::error::{Error, Result};
use crate::models::gpu::Gpu;
use crate::models::hardware::{self, CpuIdentity, Device};
use crate::models::runtime::{CudaRuntime, Probe};
use crate::models::spec::parse_device;
use crate::pipeline::probe::probe;

/// The report, as `--format json` prints it.
#[derive(Debug, Serialize)]
pub struct Identity {
    /// `cuda:0 (NVIDIA H200)` or `cpu (…)`; `null` when the requested device cannot be used (`device_error`).
    pub device: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_error: Option<String>,
    pub libtorch_version: String,
    pub libtorch_dir: String,
    /// The version this build was made against (the release must match the loaded one).
    pub libtorch_build: String,
    pub cuda_loaded: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cuda_error: Option<String>,
    pub cuda_device_count: usize,
    /// The CUDA runtime and cuDNN the loaded libraries provide (libtorch's CPU library links the CUDA runtime too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cuda_runtime: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cudnn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<CudaRuntime>,
    /// Intra-op threads a bench config without `threads:` gets.
    pub threads: usize,
    pub cpu: CpuIdentity,
}

#[derive(Debug, Serialize)]
pub struct GpuReport {
    pub name: String,
    pub uuid: String,
    pub memory_total: String,
    pub compute_capability: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mig_profile: Option<String>,
    pub driver: String,
    pub power_limit: String,
}

impl From<Gpu> for GpuReport {
    fn from(g: Gpu) -> GpuReport {
        GpuReport {
            name: g.name,
            uuid: g.uuid,
            memory_total: g.memory_total,
            compute_capability: g.compute_cap,
            mig_profile: g.mig_profile,
            driver: g.driver,
            power_limit: g.power_limit,
        }
    }
}

pub fn run(device: &str, format: IdentifyFormat) -> Result<()> {
    let choice = parse_device(device).ok_or_else(|| {
        Error::Usage(format!(
            "--device: unknown device `{device}` (expected `auto`, `cpu`, `cuda` or `cuda:N`)"
        ))
    })?;
    crate::models::libtorch::check()?;
    let probed: Probe = probe().map_err(|message| Error::Libtorch {
        dir: crate::models::libtorch::dir(),
        message,
    })?;
    let resolved = hardware::resolve(choice, &|| Ok(probed.clone()));
    let identity = Identity {
        device: resolved.as_ref().ok().map(|d| hardware::describe(*d)),
        device_error: resolved.as_ref().err().cloned(),
        libtorch_version: probed.libtorch_version.clone(),
        libtorch_dir: probed.libtorch_dir.clone(),
        libtorch_build: crate::models::libtorch::VERSION.to_string(),
        cuda_loaded: probed.cuda_loaded,
        cuda_error: probed.cuda_error.clone(),
        cuda_device_count: probed.device_count,
        cuda_runtime: probed.cuda_runtime.clone(),
        cudnn: probed.cudnn.clone(),
        gpu: resolved
            .as_ref()
            .ok()
            .and_then(|d| hardware::gpu_of(*d))
            .map(GpuReport::from),
        runtime: match resolved {
            Ok(Device::Cuda(_)) => Some(CudaRuntime::of(&probed)),
            _ => None,
        },
        threads: hardware::default_threads(),
        cpu: hardware::host_cpu().clone(),
    };
    match format {
        IdentifyFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&identity).map_err(|e| Error::Report(e.to_string()))?
        ),
        IdentifyFormat::Text => print!("{}", text(&identity)),
    }
    match &identity.device_error {
        Some(why) => Err(Error::Usage(why.clone())),
        None => Ok(()),
    }
}

/// The report for people: one `name: value` per line.
fn text(id: &Identity) -> String {
    let mut lines = vec![(
        "device",
        id.device
            .clone()
            .unwrap_or_else(|| "none (see below)".into()),
    )];
    if let Some(g) = &id.gpu {
        lines.push(("gpu", g.name.clone()));
        lines.push(("uuid", g.uuid.clone()));
        if let Some(p) = &g.mig_profile {
            lines.push(("mig profile", p.clone()));
        }
        lines.push(("memory", g.memory_total.clone()));
        lines.push(("compute capability", g.compute_capability.clone()));
        lines.push(("driver", g.driver.clone()));
        lines.push(("power limit", g.power_limit.clone()));
    }
    lines.push((
        "libtorch",
        format!("{} ({})", id.libtorch_version, id.libtorch_dir),
    ));
    lines.push((
        "cuda backend",
        if id.cuda_loaded {
            format!("loaded, {} device(s)", id.cuda_device_count)
        } else {
            format!(
                "not loaded: {}",
                id.cuda_error.as_deref().unwrap_or("no reason given")
            )
        },
    ));
    if let Some(r) = &id.runtime {
        lines.push(("cuda runtime", r.cuda_runtime.clone()));
        lines.push(("cudnn", r.cudnn.clone()));
        for (name, value) in [
            ("PYTORCH_CUDA_ALLOC_CONF", &r.alloc_conf),
            ("NVIDIA_TF32_OVERRIDE", &r.nvidia_tf32_override),
            (
                "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE",
                &r.torch_tf32_cublas_override,
            ),
        ] {
            if let Some(v) = value {
                lines.push((name, v.clone()));
            }
        }
    }
    lines.push(("threads", id.threads.to_string()));
    lines.push((
        "cpu",
        format!(
            "{} ({} {}, {} logical CPUs, {})",
            id.cpu.model_name,
            id.cpu.vendor,
            id.cpu.family_model_stepping,
            id.cpu.logical_cpus,
            id.cpu.isa.join(" ")
        ),
    ));
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    // A device that cannot be used follows as the error (stderr).
    let mut out = String::new();
    for (k, v) in &lines {
        let _ = writeln!(out, "{k:<width$}  {v}");
    }
    out
}
