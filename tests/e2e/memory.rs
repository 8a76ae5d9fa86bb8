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

/// A point's peak must not depend on what ran before it: the 128-token point of gpt2-medium (1 run, no warm-up,
/// 2 generated tokens) measured right after a 960-token point in the same worker, and measured alone.
#[test]
fn a_points_peak_does_not_depend_on_the_points_before_it() {
    use crate::project::Project;
    let model = "name: gpt2-medium\narch: decoder\nweights: random\nseed: 0\nconfig:\n  model_type: gpt2\n  vocab_size: 50257\n  n_positions: 1024\n  n_embd: 1024\n  n_layer: 24\n  n_head: 16\n";
    let bench = |lengths: &str| {
        format!(
            "name: m\narch: decoder\ncontext_lengths: {lengths}\nnum_tokens: 2\nnum_runs: 1\nwarmup_runs: 0\nthreads: 2\n"
        )
    };
    let peak = |lengths: &str| -> u64 {
        let p = Project::new();
        p.write("configs/model/gpt2.yaml", model);
        p.write("configs/bench/decoder.yaml", &bench(lengths));
        p.write("pipelines/p.yaml", "steps:\n  - name: b\n    kind: bench\n    model: configs/model/gpt2.yaml\n    bench: configs/bench/decoder.yaml\n");
        let r = p.run(&["run", "pipelines/p.yaml"]);
        assert_eq!(r.code, 0, "{}", r.all());
        let doc = p.results("gpt2-medium");
        let point = &doc["metrics"]["128"]["point"];
        let peak = point["peak_rss_bytes"].as_u64().unwrap();
        // Above the worker's pre-load baseline: at least the weights (1.4 GB fp32), less than the whole peak.
        let baseline = point["rss_baseline_bytes"].as_u64().unwrap();
        let weights = point["weights_bytes"].as_u64().unwrap();
        assert!(baseline > 0 && peak - baseline >= weights, "{point}");
        assert!(weights > 1_000_000_000, "{weights}");
        peak
    };
    let after_long = peak("[960, 128]");
    let alone = peak("[128]");
    let ratio = after_long as f64 / alone as f64;
    eprintln!("peak at 128 tokens after 960: {after_long} B, alone: {alone} B, ratio {ratio:.4}");
    // Measured here: 0.13 % apart with the heap trimmed before the reset, 1.9 % without (and 156 MB of model
    // loading counted in the point measured alone); 1 % keeps the test able to fail.
    assert!(
        (ratio - 1.0).abs() < 0.01,
        "128-token peak after a 960-token point: {after_long} B; alone: {alone} B (ratio {ratio:.4})"
    );
}
