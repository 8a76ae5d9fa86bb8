//! What a bench step would measure on, here: the device a `device:` setting resolves to, its key identity, the GPU
//! and its driver, the CUDA stack the worker loads, the loaded libtorch, the default threads and the CPU. `e3pipe
//! identify` prints it; a Slurm probe job prints it on a compute node, and points are planned from that.

use serde::{Deserialize, Serialize};

use crate::models::gpu::Gpu;
use crate::models::hardware::{self, CpuIdentity, Device, HardwareId};
use crate::models::runtime::{CudaRuntime, Probe};
use crate::models::spec::DeviceChoice;

/// The report, as `--format json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// `cuda:0 (NVIDIA H200)` or `cpu (…)`; `null` when the requested device cannot be used (`device_error`).
    pub device: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_error: Option<String>,
    /// The device as planning uses it (`{"cuda": 0}` or `"cpu"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Device>,
    /// The device as a cache key names it (`cuda (NVIDIA H200)`: no index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_device: Option<String>,
    /// What of the hardware changes a measurement: the cache key's identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware: Option<HardwareId>,
    pub libtorch_version: String,
    pub libtorch_dir: String,
    /// The version this build was made against (the release must match the loaded one).
    pub libtorch_build: String,
    pub cuda_loaded: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuda_error: Option<String>,
    pub cuda_device_count: usize,
    /// The CUDA runtime and cuDNN the loaded libraries provide (libtorch's CPU library links the CUDA runtime too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuda_runtime: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cudnn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<CudaRuntime>,
    /// Intra-op threads a bench config without `threads:` gets.
    pub threads: usize,
    pub cpu: CpuIdentity,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuReport {
    pub name: String,
    pub uuid: String,
    pub memory_total: String,
    pub compute_capability: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

/// The identity of `choice` on this machine, given the worker's answer (`probe`).
pub fn here(choice: DeviceChoice, probed: &Probe) -> Identity {
    let resolved = hardware::resolve(choice, &|| Ok(probed.clone()));
    let device = resolved.as_ref().ok().copied();
    Identity {
        device: device.map(hardware::describe),
        device_error: resolved.as_ref().err().cloned(),
        placement: device,
        key_device: device.map(hardware::key_device),
        hardware: device.and_then(|d| hardware::identify(d).ok()),
        libtorch_version: probed.libtorch_version.clone(),
        libtorch_dir: probed.libtorch_dir.clone(),
        libtorch_build: crate::models::libtorch::VERSION.to_string(),
        cuda_loaded: probed.cuda_loaded,
        cuda_error: probed.cuda_error.clone(),
        cuda_device_count: probed.device_count,
        cuda_runtime: probed.cuda_runtime.clone(),
        cudnn: probed.cudnn.clone(),
        gpu: device.and_then(hardware::gpu_of).map(GpuReport::from),
        runtime: match device {
            Some(Device::Cuda(_)) => Some(CudaRuntime::of(probed)),
            _ => None,
        },
        threads: hardware::default_threads(),
        cpu: hardware::host_cpu().clone(),
    }
}
