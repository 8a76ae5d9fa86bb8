//! A point read against the machine's roofs: how many FLOP/s and bytes/s its headline phase achieved, what fraction
//! of the measured peaks that is, and what bounds it.
//!
//! `bound` follows the roofline model. A point's arithmetic intensity `I = flops / bytes` against the ridge
//! `R = peak FLOP/s / peak bytes/s` says which roof it sits under: `memory` when `I < R`, `compute` otherwise. A
//! point achieving less than [`OVERHEAD_BELOW`] of the roof above it is limited by neither: per-op overhead
//! (dispatch, small kernels, synchronisation) is, and it is called `overhead`.

use serde::{Deserialize, Serialize};

use crate::bench::peaks::Peaks;
use crate::models::work::PointWork;

/// A point reaching less than this fraction of its roof is called overhead-bound.
pub const OVERHEAD_BELOW: f64 = 0.2;

/// A roof whose best run exceeds its median run by more than this factor (matmul or bandwidth) was measured on a
/// busy machine: it is not used (a point read against it would show a fraction of an unknown roof).
pub const ROOF_MAX_SPREAD: f64 = 1.5;

/// How far a roof's best run is above its median: 1.0 for perfectly repeatable runs.
pub fn spread(peaks: &Peaks) -> f64 {
    let ratio = |best: f64, median: f64| {
        if median > 0.0 {
            best / median
        } else {
            f64::INFINITY
        }
    };
    ratio(peaks.matmul_flops_per_s, peaks.matmul_median_flops_per_s).max(ratio(
        peaks.memory_bytes_per_s,
        peaks.memory_median_bytes_per_s,
    ))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    Compute,
    Memory,
    Overhead,
    /// Faster than the measured roof: the peak kernel at this dtype is not the one the model runs (half precision
    /// on a CPU), so the roof says nothing about this point.
    AboveRoof,
}

impl Bound {
    pub fn as_str(self) -> &'static str {
        match self {
            Bound::Compute => "compute",
            Bound::Memory => "memory",
            Bound::Overhead => "overhead",
            Bound::AboveRoof => "above_roof",
        }
    }
}

/// The roofline fields of one point (the names its results and table columns carry).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Roofline {
    pub flops: f64,
    pub bytes: f64,
    pub achieved_tflops: f64,
    pub achieved_gbps: f64,
    /// Achieved / measured peak FLOP/s.
    pub mfu: f64,
    /// Achieved / measured peak bytes/s.
    pub bw_util: f64,
    pub bound: Bound,
    pub decode_flops: Option<f64>,
    pub decode_bytes: Option<f64>,
    pub decode_gbps: Option<f64>,
    pub decode_bw_util: Option<f64>,
    /// The roofs these were read against.
    pub peak_tflops: f64,
    pub peak_gbps: f64,
}

/// Reads a point's work against `peaks`, given its headline latency and its mean decode step (milliseconds).
pub fn analyse(
    work: &PointWork,
    headline_ms: f64,
    decode_step_ms: Option<f64>,
    peaks: &Peaks,
) -> Option<Roofline> {
    if headline_ms <= 0.0
        || peaks.matmul_flops_per_s <= 0.0
        || peaks.memory_bytes_per_s <= 0.0
        || spread(peaks) > ROOF_MAX_SPREAD
    {
        return None;
    }
    let seconds = headline_ms / 1e3;
    let h = work.headline;
    let achieved_flops = h.flops / seconds;
    let achieved_bytes = h.bytes / seconds;
    let mfu = achieved_flops / peaks.matmul_flops_per_s;
    let bw_util = achieved_bytes / peaks.memory_bytes_per_s;
    let memory_side = h.intensity() < peaks.ridge_flops_per_byte();
    let of_roof = if memory_side { bw_util } else { mfu };
    let bound = if mfu > 1.05 || bw_util > 1.05 {
        Bound::AboveRoof
    } else if of_roof < OVERHEAD_BELOW {
        Bound::Overhead
    } else if memory_side {
        Bound::Memory
    } else {
        Bound::Compute
    };
    let step = work.decode_step.zip(decode_step_ms.filter(|ms| *ms > 0.0));
    Some(Roofline {
        flops: h.flops,
        bytes: h.bytes,
        achieved_tflops: achieved_flops / 1e12,
        achieved_gbps: achieved_bytes / 1e9,
        mfu,
        bw_util,
        bound,
        decode_flops: work.decode_step.map(|w| w.flops),
        decode_bytes: work.decode_step.map(|w| w.bytes),
        decode_gbps: step.map(|(w, ms)| w.bytes / (ms / 1e3) / 1e9),
        decode_bw_util: step.map(|(w, ms)| w.bytes / (ms / 1e3) / peaks.memory_bytes_per_s),
        peak_tflops: peaks.matmul_flops_per_s / 1e12,
        peak_gbps: peaks.memory_bytes_per_s / 1e9,
    })
}

impl Roofline {
    /// The console's short column: the use of the roof that bounds the point.
    pub fn summary(&self) -> String {
        match self.bound {
            Bound::Compute => format!("mfu {:.0} %", self.mfu * 100.0),
            Bound::Memory => format!("bw {:.0} %", self.bw_util * 100.0),
            Bound::Overhead => format!(
                "overhead-bound (mfu {:.0} %, bw {:.0} %)",
                self.mfu * 100.0,
                self.bw_util * 100.0
            ),
            Bound::AboveRoof => format!(
                "above the measured roof (mfu {:.0} %): the peak kernel at this dtype is not the model's",
                self.mfu * 100.0
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::work::Work;

    fn peaks() -> Peaks {
        // 1 TFLOP/s and 10 GB/s: the ridge is at 100 FLOP/byte.
        Peaks {
            device: "cpu (test)".into(),
            dtype: "fp32".into(),
            threads: 2,
            matmul_flops_per_s: 1e12,
            matmul_median_flops_per_s: 0.9e12,
            matmul_n: 1024,
            memory_bytes_per_s: 1e10,
            memory_median_bytes_per_s: 0.9e10,
            stream_bytes: 1 << 29,
            runs: 5,
            method: "m".into(),
            measured_at: String::new(),
            datasheet: None,
        }
    }

    fn work(flops: f64, bytes: f64) -> PointWork {
        PointWork {
            headline: Work {
                flops,
                bytes,
                weight_bytes: bytes,
            },
            decode_step: Some(Work {
                flops: 2e9,
                bytes: 1e9,
                weight_bytes: 1e9,
            }),
        }
    }

    #[test]
    fn points_are_bound_by_the_roof_they_sit_under_or_by_overhead() {
        let p = peaks();
        // 1e12 FLOPs over 1e9 bytes (I = 1000 > 100) in 2 s: 0.5 TFLOP/s, half the compute roof.
        let r = analyse(&work(1e12, 1e9), 2000.0, Some(125.0), &p).unwrap();
        assert_eq!(r.bound, Bound::Compute);
        assert!((r.mfu - 0.5).abs() < 1e-12 && (r.achieved_tflops - 0.5).abs() < 1e-12);
        assert_eq!(r.summary(), "mfu 50 %");
        // The decode step: 1e9 bytes in 125 ms is 8 GB/s, 80 % of the bandwidth roof.
        assert!((r.decode_bw_util.unwrap() - 0.8).abs() < 1e-12);
        assert!((r.decode_gbps.unwrap() - 8.0).abs() < 1e-9);
        // 1e10 FLOPs over 1e9 bytes (I = 10 < 100) in 0.125 s: 8 GB/s, memory-bound at 80 %.
        let r = analyse(&work(1e10, 1e9), 125.0, None, &p).unwrap();
        assert_eq!(r.bound, Bound::Memory);
        assert_eq!(r.summary(), "bw 80 %");
        assert!(r.decode_gbps.is_none());
        // The same work taking 10× longer reaches 8 % of its roof: overhead.
        let r = analyse(&work(1e10, 1e9), 1250.0, None, &p).unwrap();
        assert_eq!(r.bound, Bound::Overhead);
        assert!(analyse(&work(1e10, 1e9), 0.0, None, &p).is_none());
        // Faster than the roof (half precision on a CPU, whose peak kernel is another): flagged, not "compute".
        let r = analyse(&work(1e12, 1e9), 500.0, None, &p).unwrap();
        assert_eq!(r.bound, Bound::AboveRoof);
        assert!(
            r.summary()
                .starts_with("above the measured roof (mfu 200 %)")
        );
    }

    #[test]
    fn a_roof_whose_runs_disagree_is_not_used() {
        // The busy machine of the issue: a best matmul run of 1.7 GFLOP/s over a median of 0.48 (3.5×).
        let busy = Peaks {
            matmul_flops_per_s: 1.7e9,
            matmul_median_flops_per_s: 0.48e9,
            ..peaks()
        };
        assert!((spread(&busy) - 1.7 / 0.48).abs() < 1e-12);
        assert!(analyse(&work(1e10, 1e9), 125.0, None, &busy).is_none());
        // Bandwidth too; and a roof whose runs agree within 1.5× is used.
        let slow_stream = Peaks {
            memory_median_bytes_per_s: 0.5e10,
            ..peaks()
        };
        assert!(analyse(&work(1e10, 1e9), 125.0, None, &slow_stream).is_none());
        assert!((spread(&peaks()) - 1.0 / 0.9).abs() < 1e-12);
        assert!(analyse(&work(1e10, 1e9), 125.0, None, &peaks()).is_some());
    }
}
