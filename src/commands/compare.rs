//! `e3pipe compare`: checks the options, reads both sides, refuses points measured under different conditions
//! unless allowed, prints the comparison, and exits 1 when anything is slower.

use std::path::Path;
use std::process::ExitCode;

use crate::compare::render::{Format, render};
use crate::compare::{Options, Verdict, compare, inputs};
use crate::error::{Error, Result, suggest};
use crate::output;

fn check(options: &Options) -> Result<()> {
    if !(options.threshold.is_finite() && (0.0..1.0).contains(&options.threshold)) {
        return Err(Error::Usage(format!(
            "`--threshold {}` must be a fraction in [0, 1) (0.03 = ±3 %)",
            options.threshold
        )));
    }
    if !(options.alpha.is_finite() && options.alpha > 0.0 && options.alpha < 1.0) {
        return Err(Error::Usage(format!(
            "`--alpha {}` must be in (0, 1)",
            options.alpha
        )));
    }
    if options.metrics.is_empty() || options.metrics.iter().any(String::is_empty) {
        return Err(Error::Usage("`--metric` needs a metric name".into()));
    }
    Ok(())
}

/// The exit code when nothing is slower but some rows are inconclusive.
pub const INCONCLUSIVE_EXIT: u8 = 3;

pub fn run(
    baseline: &Path,
    candidate: &Path,
    repeats: &[std::path::PathBuf],
    options: &Options,
    format: Format,
) -> Result<ExitCode> {
    check(options)?;
    let (a, b) = (inputs::load(baseline)?, inputs::load(candidate)?);
    let repeats = repeats
        .iter()
        .map(|r| inputs::load(r))
        .collect::<Result<Vec<_>>>()?;
    // Every metric named must exist somewhere, or it is a typo.
    let mut known: Vec<String> = vec!["latency".into()];
    for p in a.points.iter().chain(&b.points) {
        if let Some(r) = &p.record {
            known.extend(r.stats.keys().cloned());
        }
    }
    known.sort();
    known.dedup();
    let has_records = a.points.iter().chain(&b.points).any(|p| p.record.is_some());
    // Only metrics the user named must exist: a default an architecture lacks (an encoder's `itl_ms`) is skipped.
    let defaults = options
        .metrics
        .iter()
        .map(String::as_str)
        .eq(crate::compare::DEFAULT_METRICS);
    for m in options.metrics.iter().filter(|_| !defaults) {
        if !has_records && m != "latency" {
            return Err(Error::Usage(format!(
                "metric `{m}`: neither side has raw samples (files of the original tool), so only `latency` can be compared"
            )));
        }
        if has_records && !known.contains(m) {
            // A near spelling, or the metric with its unit left off (`ttft` for `ttft_ms`).
            let hint = suggest(m, known.iter().map(String::as_str))
                .or_else(|| known.iter().find(|k| k.starts_with(m.as_str())).cloned())
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            return Err(Error::Usage(format!(
                "no point records metric `{m}`{hint}; known: {}",
                known
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    let result = compare(&a, &b, &repeats, options);
    if result.rows.is_empty() {
        return Err(Error::Usage(format!(
            "`{}` and `{}` share no (model, architecture, context length) point to compare",
            a.label, b.label
        )));
    }
    // Different measuring code is what a build-to-build comparison is for; it has its own switch, which relaxes
    // nothing else.
    let (code, conditions): (Vec<&String>, Vec<&String>) = result
        .differences
        .iter()
        .partition(|d| d.starts_with(crate::compare::CODE));
    let refused: Vec<&String> = code
        .into_iter()
        .filter(|_| !(options.allow_different_code || options.allow_different))
        .chain(conditions.into_iter().filter(|_| !options.allow_different))
        .collect();
    if !refused.is_empty() {
        let only_code = refused.iter().all(|d| d.starts_with(crate::compare::CODE));
        return Err(Error::Usage(format!(
            "`{}` and `{}` were measured under different conditions ({}); their times are not comparable. Compare anyway with {}",
            a.label,
            b.label,
            refused
                .iter()
                .map(|d| d.as_str())
                .collect::<Vec<_>>()
                .join("; "),
            if only_code {
                "`--allow-different-code` (two builds on the same machine)"
            } else {
                "`--allow-different-hardware`"
            }
        )));
    }
    output::result(render(&result, format).trim_end());
    // 1: something is slower; 3: nothing is, but some rows could not be told (too few runs for the test).
    Ok(if result.count(Verdict::Slower) > 0 {
        ExitCode::from(1)
    } else if result.count(Verdict::Inconclusive) > 0 {
        ExitCode::from(INCONCLUSIVE_EXIT)
    } else {
        ExitCode::SUCCESS
    })
}
