//! Choosing the device and describing it for results and cache keys.
//!
//! The linker drops `libtorch_cuda.so` from the binary (nothing references it by symbol), which leaves
//! `Cuda::is_available()` false even on a GPU (tch-rs #907, #980). We `dlopen` it at start-up when present: on the
//! slim CPU install its own dependencies (cuBLAS, cuDNN) are missing, the load fails cleanly, and we stay on CPU.

use std::sync::OnceLock;

use tch::{Cuda, Device};

use crate::models::spec::DeviceChoice;

static CUDA_LOADED: OnceLock<bool> = OnceLock::new();

/// Loads libtorch's CUDA backend once; returns whether a CUDA device is usable.
pub fn cuda_available() -> bool {
    *CUDA_LOADED.get_or_init(|| {
        if std::env::var_os("E3PIPE_NO_CUDA").is_some() {
            return false;
        }
        let dir = env!("E3PIPE_LIBTORCH_LIB");
        let path = format!("{dir}/libtorch_cuda.so\0");
        // SAFETY: a NUL-terminated path; the handle is deliberately never closed (the backend registers itself
        // with libtorch for the life of the process).
        let handle =
            unsafe { libc::dlopen(path.as_ptr().cast(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
        if handle.is_null() {
            tracing::debug!(
                "no CUDA backend: libtorch_cuda.so did not load (CPU-only libtorch install)"
            );
            return false;
        }
        Cuda::is_available()
    })
}

/// The device a model config asks for, falling back from `auto` to the CPU.
pub fn resolve(choice: DeviceChoice) -> Result<Device, String> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => Ok(if cuda_available() {
            Device::Cuda(0)
        } else {
            Device::Cpu
        }),
        DeviceChoice::Cuda(i) => {
            if !cuda_available() {
                return Err(format!(
                    "device `cuda:{i}` requested but CUDA is not available (install the full torch wheel: `make setup-cuda`)"
                ));
            }
            let count = Cuda::device_count() as usize;
            if i >= count {
                return Err(format!(
                    "device `cuda:{i}` requested but only {count} CUDA device(s) exist"
                ));
            }
            Ok(Device::Cuda(i))
        }
    }
}

/// Waits for queued kernels so a clock read measures finished work.
pub fn synchronize(device: Device) {
    if let Device::Cuda(i) = device {
        Cuda::synchronize(i as i64);
    }
}

/// A stable human name for the hardware: the CPU model, or the GPU's name from `nvidia-smi`.
pub fn describe(device: Device) -> String {
    match device {
        Device::Cuda(i) => {
            let name = std::process::Command::new("nvidia-smi")
                .args([
                    "--query-gpu=name",
                    "--format=csv,noheader",
                    "-i",
                    &i.to_string(),
                ])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_else(|| "unknown GPU".into());
            format!("cuda:{i} ({name})")
        }
        _ => format!("cpu ({})", cpu_model()),
    }
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
