//! Peak memory of libtorch's CUDA caching allocator, through the shim `build.rs` compiles from
//! `src/cuda_shim/peak_memory.cpp`. The shim is loaded with `dlopen` on first use and only on CUDA devices, so a
//! CPU-only install never touches CUDA libraries; if it is missing, GPU peaks are reported as not measured.

use std::sync::OnceLock;

type ResetFn = unsafe extern "C" fn(libc::c_int) -> libc::c_int;
type PeakFn = unsafe extern "C" fn(libc::c_int) -> i64;

struct Shim {
    reset: ResetFn,
    peak: PeakFn,
    reserved_peak: PeakFn,
}

static SHIM: OnceLock<Option<Shim>> = OnceLock::new();

fn shim() -> Option<&'static Shim> {
    SHIM.get_or_init(|| {
        // Beside the worker in a bundle, else where the build left it.
        let beside = std::env::current_exe()
            .ok()
            .map(|exe| exe.with_file_name("libe3pipe_cuda_peak.so"))
            .filter(|p| p.is_file());
        let path = match &beside {
            Some(p) => p.display().to_string(),
            None if env!("E3PIPE_CUDA_SHIM").is_empty() => return None,
            None => env!("E3PIPE_CUDA_SHIM").to_string(),
        };
        let c_path = format!("{path}\0");
        // SAFETY: NUL-terminated strings; the library stays loaded for the life of the process, and the symbols
        // have the C signatures declared in peak_memory.cpp.
        unsafe {
            let handle = libc::dlopen(c_path.as_ptr().cast(), libc::RTLD_NOW | libc::RTLD_GLOBAL);
            if handle.is_null() {
                e3pipe::output::warn(&format!(
                    "GPU peak memory not measured: cannot load `{path}`"
                ));
                return None;
            }
            let reset = libc::dlsym(handle, c"e3pipe_cuda_reset_peak".as_ptr());
            let peak = libc::dlsym(handle, c"e3pipe_cuda_peak_bytes".as_ptr());
            let reserved_peak = libc::dlsym(handle, c"e3pipe_cuda_reserved_peak_bytes".as_ptr());
            if reset.is_null() || peak.is_null() || reserved_peak.is_null() {
                return None;
            }
            Some(Shim {
                reset: std::mem::transmute::<*mut libc::c_void, ResetFn>(reset),
                peak: std::mem::transmute::<*mut libc::c_void, PeakFn>(peak),
                reserved_peak: std::mem::transmute::<*mut libc::c_void, PeakFn>(reserved_peak),
            })
        }
    })
    .as_ref()
}

/// Resets the allocator's peak on CUDA device `index`; false where not measurable.
pub fn reset_peak(index: usize) -> bool {
    // SAFETY: the shim catches every C++ exception and returns -1.
    shim().is_some_and(|s| unsafe { (s.reset)(index as libc::c_int) } == 0)
}

/// Peak bytes allocated on CUDA device `index` since the last reset.
pub fn peak_bytes(index: usize) -> Option<u64> {
    // SAFETY: as above.
    shim().and_then(|s| u64::try_from(unsafe { (s.peak)(index as libc::c_int) }).ok())
}

/// Peak bytes reserved by the allocator on CUDA device `index` since the last reset.
pub fn reserved_peak_bytes(index: usize) -> Option<u64> {
    // SAFETY: as above.
    shim().and_then(|s| u64::try_from(unsafe { (s.reserved_peak)(index as libc::c_int) }).ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn shim_was_built_against_the_wheel() {
        // The shim builds on CPU-only installs too (the wheel ships the CUDA headers); loading it is only tried
        // on a CUDA device.
        assert!(env!("E3PIPE_CUDA_SHIM").ends_with("libe3pipe_cuda_peak.so"));
        assert!(std::path::Path::new(env!("E3PIPE_CUDA_SHIM")).is_file());
    }

    #[test]
    fn without_cuda_the_shim_loads_and_reports_not_measured() {
        if crate::models::device::cuda_available() {
            return; // on a GPU machine the e2e runs cover the measured path
        }
        // The shim loads (it links only libc10); libtorch throws "no CUDA allocator", which the shim catches.
        assert!(super::shim().is_some());
        assert!(!super::reset_peak(0));
        assert_eq!(super::peak_bytes(0), None);
        assert_eq!(super::reserved_peak_bytes(0), None);
    }
}
