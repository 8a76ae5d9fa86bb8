//! The columns of `tables/inference_results.csv`, defined once: each column's name, type and the `Row` field it
//! holds. Aggregate writes the table from this list and plot reads it back through it, so a column is added in one
//! line. The original tool's columns come first, in its order; the names its plotting reads for the same numbers
//! (`throughput_tokens_per_sec`, `num_runs`, `inference_energy_per_sample_joules`) are columns too.

use crate::report::aggregate::Row;

/// A column's type in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Int,
    Float,
}

/// One cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(Option<String>),
    Int(Option<i64>),
    Float(Option<f64>),
}

impl Cell {
    fn text(self) -> Option<String> {
        match self {
            Cell::Text(t) => t,
            Cell::Int(i) => i.map(|i| i.to_string()),
            Cell::Float(f) => f.map(|f| f.to_string()),
        }
    }

    fn int(self) -> Option<i64> {
        match self {
            Cell::Int(i) => i,
            // Whole numbers only: a cell of 12.5 in an integer column is no integer.
            Cell::Float(f) => f
                .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                .map(|f| f as i64),
            Cell::Text(t) => t.and_then(|t| t.parse().ok()),
        }
    }

    pub fn float(self) -> Option<f64> {
        match self {
            Cell::Float(f) => f,
            Cell::Int(i) => i.map(|i| i as f64),
            Cell::Text(t) => t.and_then(|t| t.parse().ok()),
        }
        .filter(|f: &f64| f.is_finite())
    }
}

/// The cell of `row` in the column named `name`; `None` when the table has no such column.
pub fn cell(row: &Row, name: &str) -> Option<Cell> {
    COLUMNS
        .iter()
        .find(|c| c.name == name)
        .map(|c| (c.get)(row))
}

/// The number in `row`'s column `name` (finite only), however the column stores it.
pub fn number(row: &Row, name: &str) -> Option<f64> {
    cell(row, name).and_then(Cell::float)
}

pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
    pub get: fn(&Row) -> Cell,
    pub set: fn(&mut Row, Cell),
}

macro_rules! text {
    ($name:literal, $($f:ident).+) => {
        Column { name: $name, kind: Kind::Text, get: |r| Cell::Text(r.$($f).+.clone()), set: |r, c| r.$($f).+ = c.text() }
    };
}
macro_rules! int {
    ($name:literal, $($f:ident).+) => {
        Column { name: $name, kind: Kind::Int, get: |r| Cell::Int(r.$($f).+), set: |r, c| r.$($f).+ = c.int() }
    };
}
macro_rules! float {
    ($name:literal, $($f:ident).+) => {
        Column { name: $name, kind: Kind::Float, get: |r| Cell::Float(r.$($f).+), set: |r, c| r.$($f).+ = c.float() }
    };
}

/// Every column, in table order.
pub const COLUMNS: &[Column] = &[
    Column {
        name: "exp_id",
        kind: Kind::Text,
        get: |r| Cell::Text(Some(r.exp_id.clone())),
        set: |r, c| r.exp_id = c.text().unwrap_or_default(),
    },
    Column {
        name: "model",
        kind: Kind::Text,
        get: |r| Cell::Text(Some(r.model.clone())),
        set: |r, c| r.model = c.text().unwrap_or_default(),
    },
    Column {
        name: "arch",
        kind: Kind::Text,
        get: |r| Cell::Text(Some(r.arch.clone())),
        set: |r, c| r.arch = c.text().unwrap_or_default(),
    },
    int!("context_length", context_length),
    float!("latency_ms", latency_ms),
    float!("throughput", throughput),
    float!("max_memory_gb", max_memory_gb),
    float!("ttft_ms", ttft_ms),
    float!("tbt_ms", tbt_ms),
    float!("e2e_latency_ms", e2e_latency_ms),
    float!("encoder_latency_ms", encoder_latency_ms),
    float!("latency_std_ms", latency_std_ms),
    float!("ttft_std_ms", ttft_std_ms),
    float!("tbt_std_ms", tbt_std_ms),
    float!("e2e_std_ms", e2e_std_ms),
    float!("latency_mean_ms", latency_mean_ms),
    // The same number as `latency_ms`, under the name that says which statistic it is.
    float!("latency_median_ms", latency_ms),
    float!("latency_p90_ms", latency_p90_ms),
    float!("latency_ci_low_ms", latency_ci_low_ms),
    float!("latency_ci_high_ms", latency_ci_high_ms),
    float!("latency_ci_level", latency_ci_level),
    int!("n", n),
    text!("stopped_by", stopped_by),
    float!("prefill_tokens_per_sec", prefill_tokens_per_sec),
    float!("decode_tokens_per_sec", decode_tokens_per_sec),
    float!("itl_median_ms", itl_median_ms),
    float!("itl_p90_ms", itl_p90_ms),
    float!("itl_p99_ms", itl_p99_ms),
    int!("num_tokens", num_tokens),
    Column {
        name: "status",
        kind: Kind::Text,
        get: |r| Cell::Text(Some(r.status.clone())),
        set: |r, c| r.status = c.text().unwrap_or_default(),
    },
    text!("reason", reason),
    int!("input_tokens", input_tokens),
    int!("peak_memory_bytes", peak_memory_bytes),
    int!("rss_above_baseline_bytes", rss_above_baseline_bytes),
    int!("cuda_reserved_peak_bytes", cuda_reserved_peak_bytes),
    text!("memory_source", memory_source),
    text!("device", device),
    text!("dtype", dtype),
    text!("weights", weights),
    int!("max_positions", max_positions),
    text!("finished_at", finished_at),
    text!("method", method),
    text!("run_id", run_id),
    float!("flops", roof.flops),
    float!("bytes", roof.bytes),
    float!("achieved_tflops", roof.achieved_tflops),
    float!("achieved_gbps", roof.achieved_gbps),
    float!("mfu", roof.mfu),
    float!("bw_util", roof.bw_util),
    text!("bound", roof.bound),
    float!("decode_flops", roof.decode_flops),
    float!("decode_bytes", roof.decode_bytes),
    float!("decode_gbps", roof.decode_gbps),
    float!("decode_bw_util", roof.decode_bw_util),
    float!("peak_tflops", roof.peak_tflops),
    float!("peak_gbps", roof.peak_gbps),
    float!("energy_j", energy_j),
    float!("energy_per_sample_j", energy_per_sample_j),
    float!("energy_per_token_j", energy_per_token_j),
    float!("avg_power_w", avg_power_w),
    float!("idle_power_w", idle_power_w),
    float!("energy_above_idle_j", energy_above_idle_j),
    float!("prefill_energy_j", prefill_energy_j),
    float!("decode_energy_j", decode_energy_j),
    text!("energy_source", energy_source),
    float!("encoder_std_ms", encoder_std_ms),
    float!("throughput_std", throughput_std),
    float!("current_memory_gb", current_memory_gb),
    // The names the original tool's plots and significance tests read, for the same numbers.
    float!("throughput_tokens_per_sec", throughput),
    int!("num_runs", n),
    float!("inference_energy_per_sample_joules", energy_per_sample_j),
    int!("latency_outliers", latency_outliers),
    int!("threads", threads),
    text!("libtorch_version", libtorch_version),
    text!("e3pipe_version", e3pipe_version),
    // The batch axis: sequences per batch, sequences completed per second, and the latency–throughput front.
    int!("batch_size", batch_size),
    float!("sequences_per_sec", sequences_per_sec),
    text!("pareto_front", pareto_front),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_every_column_reads_back_what_it_wrote() {
        let mut names: Vec<&str> = COLUMNS.iter().map(|c| c.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "a column name is spelled twice");
        let row = Row {
            exp_id: "e".into(),
            model: "m".into(),
            arch: "decoder".into(),
            status: "oom".into(),
            context_length: Some(512),
            latency_ms: Some(3.5),
            reason: Some("why".into()),
            ..Row::default()
        };
        let mut back = Row::default();
        for c in COLUMNS {
            (c.set)(&mut back, (c.get)(&row));
        }
        assert_eq!(back, row);
        // Cells of another type are converted, never guessed.
        assert_eq!(Cell::Float(Some(12.5)).int(), None);
        assert_eq!(Cell::Float(Some(12.0)).int(), Some(12));
        assert_eq!(Cell::Text(Some("x".into())).float(), None);
    }
}
