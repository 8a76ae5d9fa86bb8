//! libtorch's view of CUDA, in the measuring worker only (see `hardware` for how the device is chosen).
//!
//! The linker drops `libtorch_cuda.so` from the binary (nothing references it by symbol), which leaves
//! `Cuda::is_available()` false even on a GPU (tch-rs #907, #980). We `dlopen` it at start-up when present: on the
//! slim CPU install its own dependencies (cuBLAS, cuDNN) are missing, the load fails cleanly, and we stay on CPU.

use std::sync::OnceLock;

use tch::{Cuda, Device};

static CUDA_LOADED: OnceLock<bool> = OnceLock::new();

/// Loads libtorch's CUDA backend once; returns whether a CUDA device is usable.
pub fn cuda_available() -> bool {
    *CUDA_LOADED.get_or_init(|| {
        if std::env::var_os("E3PIPE_NO_CUDA").is_some() {
            return false;
        }
        // The libtorch in use: `E3PIPE_LIBTORCH` (a bundle on a node) or the one this build linked.
        let dir = e3pipe::models::libtorch::dir().join("lib");
        let path = format!("{}/libtorch_cuda.so\0", dir.display());
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

/// Waits for queued kernels so a clock read measures finished work.
pub fn synchronize(device: Device) {
    if let Device::Cuda(i) = device {
        Cuda::synchronize(i as i64);
    }
}
