//! Measures the machine's roofs through libtorch (`e3pipe::bench::peaks` says what they mean): square matmuls at
//! the points' dtype and a reduction over a buffer far larger than any cache, each repeated until a time budget is
//! spent, after a warm-up, with the device synchronised around every clock read.

use std::time::Instant;

use tch::{Device, Kind, Tensor};

use crate::models::device::synchronize;
use e3pipe::bench::peaks::{Peaks, datasheet};
use e3pipe::bench::result::METHOD_ID;
use e3pipe::error::Result;

/// Each measurement runs at least this many times and at least this long.
const MIN_RUNS: usize = 5;
const MIN_SECONDS: f64 = 0.4;

/// Matmul sizes (the best of them is the roof: on a CPU a size that fits the caches can beat a larger one) and the
/// stream buffer per device: large enough to reach the roofs, small enough to take about a second in all
/// (2·1024³ FLOPs is ~15 ms on two CPU cores; 2·8192³ ~2 ms on a data-centre GPU).
fn sizes(device: Device) -> (&'static [i64], u64) {
    match device {
        Device::Cpu => (&[512, 1024], 512 << 20),
        _ => (&[4096, 8192], 4 << 30),
    }
}

/// Runs `f` (which must leave its work complete on the device) until the budget is spent; per-run seconds.
fn timed(device: Device, mut f: impl FnMut()) -> Vec<f64> {
    f(); // warm-up: allocation, kernel selection
    synchronize(device);
    let start = Instant::now();
    let mut seconds = Vec::new();
    while seconds.len() < MIN_RUNS || start.elapsed().as_secs_f64() < MIN_SECONDS {
        let t = Instant::now();
        f();
        synchronize(device);
        seconds.push(t.elapsed().as_secs_f64());
        if seconds.len() >= 1000 {
            break;
        }
    }
    seconds
}

fn best_and_median(work: f64, seconds: &[f64]) -> (f64, f64) {
    let mut rates: Vec<f64> = seconds.iter().map(|s| work / s).collect();
    rates.sort_by(f64::total_cmp);
    let best = rates.last().copied().unwrap_or(0.0);
    let median = rates.get(rates.len() / 2).copied().unwrap_or(0.0);
    (best, median)
}

/// Measures the peaks on `device` at `kind` (named `dtype`), with libtorch's thread count already set.
pub fn measure(
    device: Device,
    kind: Kind,
    dtype: &str,
    described: &str,
    gpu_name: Option<&str>,
) -> Result<Peaks> {
    let (matmul_sizes, stream_bytes) = sizes(device);
    let mut matmul = (0.0, 0.0, 0, 0);
    for &n in matmul_sizes {
        let a = Tensor::randn([n, n], (kind, device));
        let b = Tensor::randn([n, n], (kind, device));
        let seconds = timed(device, || {
            let _ = a.matmul(&b);
        });
        let (best, median) = best_and_median(2.0 * (n as f64).powi(3), &seconds);
        if best > matmul.0 {
            matmul = (best, median, n, seconds.len());
        }
    }
    let (matmul_best, matmul_median, n, matmul_runs) = matmul;
    // fp32 for the stream: a half-precision reduction on a CPU converts every element and measures arithmetic.
    let elements = (stream_bytes / 4) as i64;
    let buffer = Tensor::ones([elements], (Kind::Float, device));
    let stream = timed(device, || {
        let _ = buffer.sum(Kind::Float);
    });
    let (stream_best, stream_median) = best_and_median(stream_bytes as f64, &stream);
    Ok(Peaks {
        device: described.to_string(),
        dtype: dtype.to_string(),
        threads: tch::get_num_threads() as usize,
        matmul_flops_per_s: matmul_best,
        matmul_median_flops_per_s: matmul_median,
        matmul_n: n as usize,
        memory_bytes_per_s: stream_best,
        memory_median_bytes_per_s: stream_median,
        stream_bytes,
        runs: matmul_runs.min(stream.len()),
        method: METHOD_ID.to_string(),
        measured_at: e3pipe::clock::now_rfc3339(),
        datasheet: gpu_name.and_then(|g| datasheet(g, dtype)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_peaks_are_in_a_sane_range() {
        tch::set_num_threads(1);
        let p = measure(Device::Cpu, Kind::Float, "fp32", "cpu (test)", None).unwrap();
        // One modern core: well above 1 GFLOP/s and below 1 TFLOP/s; memory between 1 GB/s and 1 TB/s.
        assert!(
            p.matmul_flops_per_s > 1e9 && p.matmul_flops_per_s < 1e12,
            "{p:?}"
        );
        assert!(
            p.memory_bytes_per_s > 1e9 && p.memory_bytes_per_s < 1e12,
            "{p:?}"
        );
        assert!(p.matmul_median_flops_per_s <= p.matmul_flops_per_s);
        assert!(p.runs >= MIN_RUNS && p.threads == 1);
        assert!(p.datasheet.is_none());
    }
}
