//! Peak-RSS measurement. Here rather than beside the code: the unit tests' process also loads tokenizers and
//! models on other threads, whose allocations would blur a process-wide high-water mark; this binary's other tests
//! mostly wait on child processes.

use e3pipe::bench::memory::{peak_rss_bytes, reset_peak, rss_bytes};

#[test]
fn peak_follows_a_large_allocation_and_resets() {
    const BLOCK: usize = 256 << 20;
    assert!(reset_peak());
    let before = rss_bytes().unwrap();
    let block = vec![1u8; BLOCK];
    std::hint::black_box(&block);
    let during = peak_rss_bytes().unwrap();
    assert!(
        during >= rss_bytes().unwrap(),
        "the peak is never below the current RSS"
    );
    assert!(
        during >= before + (BLOCK as u64) / 2,
        "peak {during} vs rss before {before}"
    );
    drop(block);
    if reset_peak() {
        assert!(
            peak_rss_bytes().unwrap() + (BLOCK as u64) / 2 < during,
            "reset brings the peak down"
        );
    }
}
