//! libtorch's view of CUDA, in the measuring worker only (see `hardware` for how the device is chosen).
//!
//! The linker drops `libtorch_cuda.so` from the binary (nothing references it by symbol), which leaves
//! `Cuda::is_available()` false even on a GPU (tch-rs #907, #980). We `dlopen` it at start-up from the libtorch in
//! use: whether CUDA is usable is whether that load succeeds, whatever the install's layout (the `PyPI` wheel with
//! its `nvidia/*/lib` dependencies, conda, NGC, the libtorch zip). When it fails, the loader's own message says why.

use std::ffi::{CStr, c_void};
use std::sync::OnceLock;

use e3pipe::models::runtime::{Probe, cuda_version_name, cudnn_version_name};
use tch::{Cuda, Device};

static CUDA_LOADED: OnceLock<Result<(), String>> = OnceLock::new();

/// Loads libtorch's CUDA backend once; the dynamic loader's message when it cannot.
pub fn load_cuda() -> Result<(), String> {
    CUDA_LOADED
        .get_or_init(|| {
            if std::env::var_os("E3PIPE_NO_CUDA").is_some() {
                return Err("`E3PIPE_NO_CUDA` is set".into());
            }
            // The libtorch in use: `E3PIPE_LIBTORCH` (a bundle on a node) or the one this build linked.
            let path = e3pipe::models::libtorch::dir()
                .join("lib")
                .join("libtorch_cuda.so");
            let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
                .map_err(|_| format!("`{}` has a NUL byte", path.display()))?;
            // SAFETY: a NUL-terminated path; the handle is deliberately never closed (the backend registers
            // itself with libtorch for the life of the process). dlerror is read right after the failed call, on
            // this thread.
            unsafe {
                let handle = libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL);
                if handle.is_null() {
                    let why = libc::dlerror();
                    return Err(if why.is_null() {
                        format!("`{}` did not load", path.display())
                    } else {
                        CStr::from_ptr(why).to_string_lossy().into_owned()
                    });
                }
            }
            Ok(())
        })
        .clone()
}

/// Whether a CUDA device is usable.
pub fn cuda_available() -> bool {
    load_cuda().is_ok() && Cuda::is_available()
}

/// A symbol of any library loaded so far (libtorch and its CUDA dependencies).
fn global_symbol(name: &CStr) -> Option<*mut c_void> {
    // SAFETY: dlsym with the default handle and a NUL-terminated name.
    let f = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!f.is_null()).then_some(f)
}

/// What `e3pipe-worker --identify` prints: the loaded libtorch, and whether and which CUDA it brings.
pub fn probe() -> Probe {
    let dir = e3pipe::models::libtorch::dir();
    let loaded = load_cuda();
    let device_count = if loaded.is_ok() {
        usize::try_from(Cuda::device_count()).unwrap_or(0)
    } else {
        0
    };
    // SAFETY: both are C functions with these signatures (cuda_runtime_api.h, cudnn_version.h); they read versions
    // and need no initialised context.
    let cuda_runtime = global_symbol(c"cudaRuntimeGetVersion").and_then(|f| unsafe {
        let f: unsafe extern "C" fn(*mut i32) -> i32 = std::mem::transmute(f);
        let mut v = 0;
        (f(&raw mut v) == 0 && v > 0).then(|| cuda_version_name(v))
    });
    let cudnn = global_symbol(c"cudnnGetVersion").and_then(|f| unsafe {
        let f: unsafe extern "C" fn() -> usize = std::mem::transmute(f);
        let v = f();
        (v > 0).then(|| cudnn_version_name(v))
    });
    Probe {
        libtorch_dir: dir.display().to_string(),
        libtorch_version: e3pipe::models::runtime::loaded_libtorch_version(),
        cuda_loaded: loaded.is_ok(),
        cuda_error: loaded.err(),
        device_count,
        cuda_runtime,
        cudnn,
    }
}

/// Waits for queued kernels so a clock read measures finished work.
pub fn synchronize(device: Device) {
    if let Device::Cuda(i) = device {
        Cuda::synchronize(i as i64);
    }
}
