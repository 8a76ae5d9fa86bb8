//! The aggregate table read back into rows through `report::columns`; a missing column (a table written by an
//! older e3pipe) reads as empty.

use std::path::Path;

use polars::prelude::*;

use crate::error::{Error, Result};
use crate::report::aggregate::Row;
use crate::report::columns::{COLUMNS, Cell, Kind};

/// Reads the aggregate table back into rows.
pub(crate) fn read_table(path: &Path) -> Result<Vec<Row>> {
    let df = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(None)
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .and_then(polars::prelude::SerReader::finish)
        .map_err(|e| {
            Error::Report(format!(
                "cannot read `{}`: {e}",
                crate::shown_path::for_people(path)
            ))
        })?;
    let mut rows = vec![Row::default(); df.height()];
    for column in COLUMNS {
        // A missing column (a table written by an older e3pipe or elsewhere) reads as empty, and so does an empty
        // cell: neither may erase what another column holding the same number (an alias) has set.
        let Ok(values) = df.column(column.name) else {
            continue;
        };
        let cells: Vec<Cell> = match column.kind {
            Kind::Text => values
                .cast(&DataType::String)
                .ok()
                .and_then(|c| {
                    c.str().ok().map(|s| {
                        s.iter()
                            .map(|v| Cell::Text(v.map(str::to_string)))
                            .collect()
                    })
                })
                .unwrap_or_default(),
            Kind::Int | Kind::Float => values
                .cast(&DataType::Float64)
                .ok()
                .and_then(|c| c.f64().ok().map(|s| s.iter().map(Cell::Float).collect()))
                .unwrap_or_default(),
        };
        for (row, cell) in rows.iter_mut().zip(cells) {
            if !matches!(cell, Cell::Text(None) | Cell::Float(None) | Cell::Int(None)) {
                (column.set)(row, cell);
            }
        }
    }
    // A table without `status` holds measured points.
    for row in &mut rows {
        if row.status.is_empty() {
            row.status = "ok".into();
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alias_column_missing_or_blank_never_erases_the_value_its_twin_holds() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.csv");
        // The original tool's table: no `status`, no `throughput`, a blank `num_runs`.
        std::fs::write(
            &file,
            "model,arch,context_length,latency_ms,throughput_tokens_per_sec,n,num_runs\ngpt2,decoder,128,5.5,96.0,10,\n",
        )
        .unwrap();
        let rows = read_table(&file).unwrap();
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(
            (r.latency_ms, r.throughput, r.n),
            (Some(5.5), Some(96.0), Some(10))
        );
        assert_eq!(r.status, "ok");
    }
}
