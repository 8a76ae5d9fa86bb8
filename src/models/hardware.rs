//! Which device a model config resolves to, and the hardware's name for results and cache keys, decided without
//! loading libtorch: the orchestrating `e3pipe` process never links it (its static initialisers alone cost ~0.3 s
//! per start), so a run with nothing to compute stays nearly free. The worker that measures checks the choice
//! against libtorch itself (`device::cuda_available`) before timing anything.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::models::spec::DeviceChoice;

/// Where a point runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Device {
    #[serde(rename = "cpu")]
    Cpu,
    #[serde(rename = "cuda")]
    Cuda(usize),
}

/// CUDA is usable when libtorch's CUDA libraries are installed (the full wheel, `make setup-cuda`) and an NVIDIA
/// driver is loaded. `E3PIPE_NO_CUDA` or an empty `CUDA_VISIBLE_DEVICES` force the CPU.
pub fn cuda_device_count() -> usize {
    if std::env::var_os("E3PIPE_NO_CUDA").is_some()
        || std::env::var("CUDA_VISIBLE_DEVICES").is_ok_and(|v| v.trim().is_empty())
    {
        return 0;
    }
    let lib = Path::new(env!("E3PIPE_LIBTORCH_DIR")).join("lib");
    // libtorch_cuda.so needs cuBLAS from the `nvidia-cublas` wheel, which the slim CPU install leaves out.
    let cublas = lib.join("../../nvidia/cu13/lib");
    let has_stack = std::fs::read_dir(&cublas).is_ok_and(|d| {
        d.filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().starts_with("libcublas.so"))
    });
    if !has_stack || !Path::new("/proc/driver/nvidia/version").exists() {
        return 0;
    }
    gpu_names().len()
}

/// Names of the GPUs libtorch sees, in its order: `cuda:N` is the N-th entry of `CUDA_VISIBLE_DEVICES` when set.
fn gpu_names() -> &'static [String] {
    static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        let all = query_gpu_names();
        match std::env::var("CUDA_VISIBLE_DEVICES") {
            Ok(visible) => visible
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(|v| {
                    v.parse::<usize>()
                        .ok()
                        .and_then(|i| all.get(i).cloned())
                        .unwrap_or_else(|| format!("GPU {v}"))
                })
                .collect(),
            Err(_) => all,
        }
    })
}

fn query_gpu_names() -> Vec<String> {
    std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=name", "--format=csv,noheader"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// The device a model config asks for, falling back from `auto` to the CPU.
pub fn resolve(choice: DeviceChoice) -> Result<Device, String> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => Ok(if cuda_device_count() > 0 {
            Device::Cuda(0)
        } else {
            Device::Cpu
        }),
        DeviceChoice::Cuda(i) => {
            let count = cuda_device_count();
            if count == 0 {
                return Err(format!(
                    "device `cuda:{i}` requested but CUDA is not available (install the full torch wheel: `make setup-cuda`)"
                ));
            }
            if i >= count {
                return Err(format!(
                    "device `cuda:{i}` requested but only {count} CUDA device(s) exist"
                ));
            }
            Ok(Device::Cuda(i))
        }
    }
}

/// A stable human name for the hardware: the CPU model, or the GPU's name.
pub fn describe(device: Device) -> String {
    match device {
        Device::Cuda(i) => {
            let name = gpu_names()
                .get(i)
                .cloned()
                .unwrap_or_else(|| "unknown GPU".into());
            format!("cuda:{i} ({name})")
        }
        Device::Cpu => format!("cpu ({})", cpu_model()),
    }
}

/// Intra-op threads when a bench config names none: one per available logical CPU (libtorch itself would pick
/// physical cores), set explicitly in the worker so the cache key and the measurement agree.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}
