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
        .map_err(|e| Error::Report(format!("cannot read `{}`: {e}", path.display())))?;
    let mut rows = vec![Row::default(); df.height()];
    for column in COLUMNS {
        // A missing column (a table written by an older e3pipe) reads as empty.
        let Ok(values) = df.column(column.name) else {
            for row in &mut rows {
                (column.set)(row, Cell::Text(None));
            }
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
            (column.set)(row, cell);
        }
    }
    Ok(rows)
}
