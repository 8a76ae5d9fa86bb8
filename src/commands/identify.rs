//! `e3pipe identify`: what a bench step would measure on here, as its points would record it — the device a
//! `device:` setting resolves to, the GPU and its driver, the CUDA runtime and cuDNN the worker loads, the loaded
//! libtorch (its own `version.py`), the threads and the CPU. The Slurm probe runs it on a compute node.

use std::fmt::Write as _;

use crate::cli::IdentifyFormat;
use crate::error::{Error, Result};
use crate::models::identity::{Identity, here};
use crate::models::runtime::Probe;
use crate::models::spec::parse_device;
use crate::pipeline::probe::probe;

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
    let identity = here(choice, &probed);
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
