//! The software that measures a point: the libtorch actually loaded (its own `version.py`, not the one the build
//! was made against), and on a GPU the CUDA runtime, cuDNN and the environment settings that change which kernels
//! run. The CUDA side is only knowable by loading libtorch's CUDA backend, which the orchestrating `e3pipe` never
//! does: the worker answers a `Probe` (`e3pipe-worker --identify`), and this module reads it.

use serde::{Deserialize, Serialize};

/// What the worker found when it loaded libtorch here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    pub libtorch_dir: String,
    /// `__version__` of the loaded install's `version.py` (`2.11.0+cu128`).
    pub libtorch_version: String,
    /// Whether `libtorch_cuda.so` loaded; `cuda_error` is the dynamic loader's message (`dlerror`) when not.
    pub cuda_loaded: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuda_error: Option<String>,
    /// CUDA devices libtorch sees (0 when the backend did not load).
    pub device_count: usize,
    /// `cudaRuntimeGetVersion` of the loaded runtime (`12.8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuda_runtime: Option<String>,
    /// `cudnnGetVersion` of the loaded cuDNN (`9.10.2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cudnn: Option<String>,
}

/// What of the GPU software stack changes a GPU point's kernels: in its cache key and in the point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CudaRuntime {
    pub cuda_runtime: String,
    pub cudnn: String,
    /// `PYTORCH_CUDA_ALLOC_CONF`: the caching allocator's policy (expandable segments, split sizes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alloc_conf: Option<String>,
    /// `NVIDIA_TF32_OVERRIDE`: the driver-level TF32 switch, which overrides libtorch's fp32 matmul precision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nvidia_tf32_override: Option<String>,
    /// `TORCH_ALLOW_TF32_CUBLAS_OVERRIDE`: libtorch's own TF32 override for cuBLAS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torch_tf32_cublas_override: Option<String>,
}

impl CudaRuntime {
    /// From the worker's probe and this process's environment (which the worker inherits).
    pub fn of(probe: &Probe) -> CudaRuntime {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        CudaRuntime {
            cuda_runtime: probe
                .cuda_runtime
                .clone()
                .unwrap_or_else(|| "unknown".into()),
            cudnn: probe.cudnn.clone().unwrap_or_else(|| "none".into()),
            alloc_conf: env("PYTORCH_CUDA_ALLOC_CONF"),
            nvidia_tf32_override: env("NVIDIA_TF32_OVERRIDE"),
            torch_tf32_cublas_override: env("TORCH_ALLOW_TF32_CUBLAS_OVERRIDE"),
        }
    }
}

/// The version of the libtorch the worker will load (`E3PIPE_LIBTORCH`, or the build's), from its `version.py`;
/// the build's own when that file cannot be read (the start-up check refuses such an install anyway). Read once per
/// process: every point records it.
pub fn loaded_libtorch_version() -> String {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION
        .get_or_init(|| {
            crate::models::libtorch::version_of(&crate::models::libtorch::dir())
                .unwrap_or_else(|| crate::models::libtorch::VERSION.to_string())
        })
        .clone()
}

/// `12080` (`cudaRuntimeGetVersion`) as `12.8`.
pub fn cuda_version_name(v: i32) -> String {
    format!("{}.{}", v / 1000, (v % 1000) / 10)
}

/// `cudnnGetVersion` as `major.minor.patch`: cuDNN 9 counts `major*10000 + minor*100 + patch`, cuDNN 8 and
/// before `major*1000 + minor*100 + patch`.
pub fn cudnn_version_name(v: usize) -> String {
    if v >= 90_000 {
        format!("{}.{}.{}", v / 10_000, (v % 10_000) / 100, v % 100)
    } else {
        format!("{}.{}.{}", v / 1000, (v % 1000) / 100, v % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_read_as_their_libraries_print_them() {
        assert_eq!(cuda_version_name(12080), "12.8");
        assert_eq!(cuda_version_name(13000), "13.0");
        assert_eq!(cudnn_version_name(91002), "9.10.2");
        assert_eq!(cudnn_version_name(8902), "8.9.2");
    }
}
