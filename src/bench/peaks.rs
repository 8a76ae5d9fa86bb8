//! The machine's limits, measured through libtorch on the device the points run on: the best matmul FLOP/s (large
//! square matmuls at the points' dtype) and the best streaming-read bandwidth (a reduction over a buffer far larger
//! than any cache, in fp32 so that memory, not arithmetic, is the limit). These are the roofs a point is read
//! against (`bench::roofline`); on CUDA the datasheet values of known GPUs are recorded beside them, labelled.
//!
//! A roof is the best the machine was seen to do, so each is the maximum over its runs, not a median; the median
//! is kept beside it to show the spread.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Peaks {
    /// `cpu (AMD EPYC 7B13)`, `cuda:0 (NVIDIA H200)`.
    pub device: String,
    pub dtype: String,
    pub threads: usize,
    /// The best of `runs` `matmul_n`×`matmul_n` matmuls, FLOP/s (2·n³ per matmul).
    pub matmul_flops_per_s: f64,
    pub matmul_median_flops_per_s: f64,
    pub matmul_n: usize,
    /// The best of `runs` reductions over `stream_bytes` bytes, bytes/s.
    pub memory_bytes_per_s: f64,
    pub memory_median_bytes_per_s: f64,
    pub stream_bytes: u64,
    pub runs: usize,
    /// The measuring code's identity (`METHOD_ID`).
    pub method: String,
    pub measured_at: String,
    /// What the GPU's maker states, where e3pipe knows the model (never used as a roof).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datasheet: Option<Datasheet>,
}

/// A GPU's stated dense peaks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Datasheet {
    pub gpu: String,
    pub matmul_flops_per_s: f64,
    pub memory_bytes_per_s: f64,
    pub source: String,
}

impl Peaks {
    /// Where the roofs meet: the arithmetic intensity (FLOP/byte) above which the matmul roof limits.
    pub fn ridge_flops_per_byte(&self) -> f64 {
        self.matmul_flops_per_s / self.memory_bytes_per_s
    }

    /// `1.92 TFLOP/s, 18.3 GB/s` for messages.
    pub fn describe(&self) -> String {
        format!(
            "{:.3} TFLOP/s matmul, {:.1} GB/s read",
            self.matmul_flops_per_s / 1e12,
            self.memory_bytes_per_s / 1e9
        )
    }
}

/// NVIDIA's stated dense tensor-core peaks (fp16/bf16) and non-tensor fp32, and memory bandwidth, by the name
/// `nvidia-smi` reports. fp32 matmuls in libtorch do not use TF32 unless asked, so fp32 gets the plain figure.
const DATASHEETS: &[(&str, f64, f64, f64)] = &[
    // (name contains, fp16/bf16 dense TFLOP/s, fp32 TFLOP/s, memory TB/s); the first match wins, so a board
    // whose name contains another's (`H200 NVL` contains `H200`) comes first.
    ("H200 NVL", 835.0, 60.0, 4.8),
    ("H200", 989.0, 67.0, 4.8),
    ("H100 NVL", 835.0, 60.0, 3.9),
    ("H100 80GB HBM3", 989.0, 67.0, 3.35),
    ("H100 PCIe", 756.0, 51.0, 2.0),
    ("A100-SXM4-80GB", 312.0, 19.5, 2.039),
    ("A100-SXM4-40GB", 312.0, 19.5, 1.555),
    ("A100-PCIE-40GB", 312.0, 19.5, 1.555),
    ("A100 80GB PCIe", 312.0, 19.5, 1.935),
    ("L4", 121.0, 30.3, 0.3),
    ("Tesla T4", 65.0, 8.1, 0.32),
];

/// The datasheet peaks of the GPU `name` at `dtype`, if e3pipe knows it.
pub fn datasheet(name: &str, dtype: &str) -> Option<Datasheet> {
    let (model, half, single, tb_per_s) = DATASHEETS.iter().find(|d| name.contains(d.0))?;
    let tflops = if dtype == "fp32" { *single } else { *half };
    Some(Datasheet {
        gpu: (*model).to_string(),
        matmul_flops_per_s: tflops * 1e12,
        memory_bytes_per_s: tb_per_s * 1e12,
        source: "NVIDIA datasheet (dense, no sparsity)".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datasheets_match_by_name_and_dtype() {
        let h200 = datasheet("NVIDIA H200", "fp16").unwrap();
        assert_eq!(h200.gpu, "H200");
        assert!((h200.matmul_flops_per_s - 989e12).abs() < 1.0);
        let fp32 = datasheet("NVIDIA H200", "fp32").unwrap();
        assert!((fp32.matmul_flops_per_s - 67e12).abs() < 1.0);
        assert!(datasheet("AMD EPYC 7B13", "fp32").is_none());
        // The PCIe H200 NVL (600 W) is not the SXM H200 (700 W).
        let nvl = datasheet("NVIDIA H200 NVL", "fp16").unwrap();
        assert_eq!(nvl.gpu, "H200 NVL");
        assert!((nvl.matmul_flops_per_s - 835e12).abs() < 1.0);
        assert_eq!(
            datasheet("NVIDIA H100 NVL", "fp32").unwrap().gpu,
            "H100 NVL"
        );
    }
}
