//! Peak memory of one point. On CPU: the process's peak resident set (`VmHWM`), which Linux lets us reset between
//! points by writing `5` to `/proc/self/clear_refs`. On CUDA the caching allocator's peak comes from
//! `cuda_memory` (a small C++ shim, since tch does not expose it).

/// Resets the peak-RSS high-water mark to the current RSS. Returns false where the kernel does not allow it.
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The process's peak resident set since the last reset, in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    status_field("VmHWM:")
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
