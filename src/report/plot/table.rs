//! The aggregate table read back into rows: only the columns the figures draw, and a missing column (a table
//! written by an older e3pipe) reads as empty.

use std::path::Path;

use polars::prelude::*;

use crate::error::{Error, Result};
use crate::report::aggregate::{RoofRow, Row};

/// Reads the aggregate table back into rows (only the columns the figures use).
pub(crate) fn read_table(path: &Path) -> Result<Vec<Row>> {
    let df = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(None)
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .and_then(polars::prelude::SerReader::finish)
        .map_err(|e| Error::Report(format!("cannot read `{}`: {e}", path.display())))?;
    let strings = |name: &str| -> Vec<Option<String>> {
        df.column(name)
            .ok()
            .and_then(|c| c.cast(&DataType::String).ok())
            .and_then(|c| {
                c.str()
                    .ok()
                    .map(|s| s.iter().map(|v| v.map(str::to_string)).collect())
            })
            .unwrap_or_else(|| vec![None; df.height()])
    };
    let floats = |name: &str| -> Vec<Option<f64>> {
        df.column(name)
            .ok()
            .and_then(|c| c.cast(&DataType::Float64).ok())
            .and_then(|c| c.f64().ok().map(|s| s.iter().collect()))
            .unwrap_or_else(|| vec![None; df.height()])
    };
    let (model, arch, status) = (strings("model"), strings("arch"), strings("status"));
    let (length, latency, memory) = (
        floats("context_length"),
        floats("latency_ms"),
        floats("max_memory_gb"),
    );
    let (lo, hi, std) = (
        floats("latency_ci_low_ms"),
        floats("latency_ci_high_ms"),
        floats("latency_std_ms"),
    );
    let max_positions = floats("max_positions");
    let (ci_level, num_tokens) = (floats("latency_ci_level"), floats("num_tokens"));
    let memory_source = strings("memory_source");
    let (ttft, tbt, e2e, throughput) = (
        floats("ttft_ms"),
        floats("tbt_ms"),
        floats("e2e_latency_ms"),
        floats("throughput"),
    );
    let columns: Vec<(&str, Vec<Option<f64>>)> = [
        "flops",
        "bytes",
        "decode_flops",
        "decode_bytes",
        "peak_tflops",
        "peak_gbps",
    ]
    .into_iter()
    .map(|c| (c, floats(c)))
    .collect();
    let none = vec![None; df.height()];
    let roof = |name: &str| -> &Vec<Option<f64>> {
        columns
            .iter()
            .find(|(c, _)| *c == name)
            .map_or(&none, |(_, v)| v)
    };
    let bound = strings("bound");
    Ok((0..df.height())
        .map(|i| Row {
            model: model[i].clone().unwrap_or_default(),
            arch: arch[i].clone().unwrap_or_default(),
            status: status[i].clone().unwrap_or_else(|| "ok".into()),
            context_length: length[i].map(|l| l as i64),
            latency_ms: latency[i],
            max_memory_gb: memory[i],
            latency_ci_low_ms: lo[i],
            latency_ci_high_ms: hi[i],
            latency_std_ms: std[i],
            ttft_ms: ttft[i],
            tbt_ms: tbt[i],
            e2e_latency_ms: e2e[i],
            throughput: throughput[i],
            max_positions: max_positions[i].map(|m| m as i64),
            latency_ci_level: ci_level[i],
            num_tokens: num_tokens[i].map(|n| n as i64),
            memory_source: memory_source[i].clone(),
            roof: RoofRow {
                flops: roof("flops")[i],
                bytes: roof("bytes")[i],
                decode_flops: roof("decode_flops")[i],
                decode_bytes: roof("decode_bytes")[i],
                peak_tflops: roof("peak_tflops")[i],
                peak_gbps: roof("peak_gbps")[i],
                bound: bound[i].clone(),
                ..RoofRow::default()
            },
            ..Row::default()
        })
        .collect())
}
