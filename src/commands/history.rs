//! `e3pipe history`: every point's measurements over the project's runs (`report::history`), as a table or JSON,
//! and the trend figure `figs/history.png` (+ `.svg`).

use std::fmt::Write as _;
use std::path::Path;

use crate::cli::HistoryFormat;
use crate::error::{Error, Result};
use crate::output;
use crate::report::history::{Filter, check_metric, histories};
use crate::shown_path::for_people;

/// `project`: the project folder (or any file in it).
pub fn run(project: &Path, filter: &Filter, format: HistoryFormat, figure: bool) -> Result<()> {
    let root = crate::commands::cache::project_of(project)?;
    if let Err(suggestion) = check_metric(filter.metric()) {
        return Err(Error::Usage(format!(
            "`--metric {}` is not a numeric column of `{}`{}",
            crate::error::shorten(filter.metric(), 60),
            crate::paths::RESULTS_TABLE,
            suggestion
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default()
        )));
    }
    let results = root.join(crate::paths::RESULTS_DIR);
    if !results.is_dir() {
        return Err(Error::Usage(format!(
            "no `{}/` in `{}`: nothing has been measured here yet (`e3pipe run` writes a document per bench step there)",
            crate::paths::RESULTS_DIR,
            for_people(&root)
        )));
    }
    let (points, skipped) = histories(&results, filter);
    for s in &skipped {
        output::warn(&format!("skipping `{}`: {}", for_people(&s.file), s.reason));
    }
    if points.is_empty() {
        return Err(Error::Usage(format!(
            "no measurement in `{}` matches (metric `{}`{}{}{})",
            for_people(&results),
            filter.metric(),
            filter
                .model
                .as_ref()
                .map(|m| format!(", model `{m}`"))
                .unwrap_or_default(),
            filter
                .length
                .map(|l| format!(", length {l}"))
                .unwrap_or_default(),
            filter
                .batch
                .map(|b| format!(", batch {b}"))
                .unwrap_or_default(),
        )));
    }
    match format {
        HistoryFormat::Json => {
            output::result(&serde_json::to_string_pretty(&points).unwrap_or_default());
        }
        HistoryFormat::Text => {
            let runs: std::collections::BTreeSet<&str> = points
                .iter()
                .flat_map(|p| p.measurements.iter().map(|m| m.run.as_str()))
                .collect();
            output::result(&format!(
                "{} point(s) over {} run(s) in {}/ (metric `{}`; oldest first)",
                points.len(),
                runs.len(),
                crate::paths::RESULTS_DIR,
                filter.metric()
            ));
            for p in &points {
                output::result(&format!("{} ({})", p.label(), p.arch));
                for m in &p.measurements {
                    let mut line = format!(
                        "  {}  {}",
                        m.when.replace('T', " ").trim_end_matches('Z'),
                        crate::report::html::sig3(m.value)
                    );
                    if let Some((lo, hi)) = m.interval {
                        let _ = write!(
                            line,
                            " [{}, {}]{}",
                            crate::report::html::sig3(lo),
                            crate::report::html::sig3(hi),
                            m.interval_level
                                .map(|l| format!(
                                    " ({} interval)",
                                    crate::bench::stats::level_label(l)
                                ))
                                .unwrap_or_default()
                        );
                    }
                    if let Some(n) = m.n {
                        let _ = write!(line, " n={n}");
                    }
                    if m.other_code {
                        line.push_str("  (other measuring code)");
                    }
                    if m.other_hardware {
                        let _ = write!(
                            line,
                            "  (other hardware: {})",
                            m.device.as_deref().unwrap_or("?")
                        );
                    }
                    output::result(&line);
                }
            }
        }
    }
    if figure {
        let path = crate::report::plot::draw_history(&root.join(crate::paths::FIGS_DIR), &points)?;
        let more = points
            .len()
            .saturating_sub(crate::report::plot::trend::MAX_PANELS);
        output::progress(&format!(
            "drew {}{}",
            for_people(&path),
            if more > 0 {
                format!(
                    " (the first {} points; {more} more: narrow with --model, --length or --batch)",
                    crate::report::plot::trend::MAX_PANELS
                )
            } else {
                String::new()
            }
        ));
    }
    Ok(())
}
