//! Peak memory of one point. On CPU: the process's peak resident set (`VmHWM`), which Linux lets us reset between
//! points by writing `5` to `/proc/self/clear_refs`. On CUDA the caching allocator's peak comes from
//! `cuda_memory` (a small C++ shim, since tch does not expose it).
//!
//! A point's peak must not depend on what ran before it: the reset sets the high-water mark to the *current*
//! RSS, and glibc keeps memory freed by a longer point in its heaps, so the heaps are trimmed back to the system
//! first (`malloc_trim`).

use serde::{Deserialize, Serialize};

/// Where `max_memory_gb` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemorySource {
    /// The CUDA caching allocator's peak (`torch.cuda.max_memory_allocated`).
    CudaAllocator,
    /// The process's peak resident set on the host (CPU points).
    #[default]
    HostRss,
    /// A GPU point whose allocator peak could not be read: no number rather than the host's.
    Unavailable,
}

impl MemorySource {
    pub fn as_str(self) -> &'static str {
        match self {
            MemorySource::CudaAllocator => "cuda_allocator",
            MemorySource::HostRss => "host_rss",
            MemorySource::Unavailable => "unavailable",
        }
    }
}

/// Returns freed heap memory to the system, then resets the peak-RSS high-water mark to the current RSS. Returns
/// false where the kernel does not allow the reset.
pub fn reset_peak() -> bool {
    // SAFETY: malloc_trim only releases free memory of glibc's own heaps.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::malloc_trim(0);
    }
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The process's resident set before any model was loaded (libtorch and the worker's own code only), taken once
/// by `record_baseline` at the worker's start: RSS above it is what models and points added.
static BASELINE_RSS_BYTES: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();

/// Takes the pre-load baseline; later calls keep the first.
pub fn record_baseline() {
    BASELINE_RSS_BYTES.get_or_init(rss_bytes);
}

/// The pre-load baseline, when `record_baseline` ran.
pub fn baseline_rss_bytes() -> Option<u64> {
    BASELINE_RSS_BYTES.get().copied().flatten()
}

/// The process's peak resident set since the last reset, in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    status_field("VmHWM:")
}

/// The host's physical memory, bytes (`MemTotal`).
pub fn total_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The process's current resident set, in bytes.
pub fn rss_bytes() -> Option<u64> {
    status_field("VmRSS:")
}

fn status_field(name: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(name))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
