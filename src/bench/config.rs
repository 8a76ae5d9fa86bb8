//! `configs/bench/*.yaml`: how a bench step measures (the seed's keys, plus `min_duration_s`, `threads` and the
//! adaptive stopping rule `target_rel_ci` with its caps `max_runs` and `max_duration_s`, and `batch_sizes`, a
//! second axis beside `context_lengths`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;

use crate::error::{Error, Result, suggest};
use crate::models::config::Arch;
use crate::yaml;

const KEYS: &[&str] = &[
    "name",
    "arch",
    "context_lengths",
    "context_length",
    "num_tokens",
    "batch_size",
    "batch_sizes",
    "num_runs",
    "warmup_runs",
    "min_duration_s",
    "threads",
    "target_rel_ci",
    "max_runs",
    "max_duration_s",
    "read_back",
    "warmup_s",
    "anchor",
    "record_outputs",
];

/// Upper bounds that keep a typo from meaning "measure for ever".
const MAX_THREADS: i64 = 4096;
const MAX_RUNS: i64 = 1_000_000;
const MAX_DURATION_S: f64 = 7.0 * 24.0 * 3600.0;
/// Far past any machine's memory at one token per sequence; a larger number is a typo, not a batch.
const MAX_BATCH: i64 = 1 << 40;

/// Length used by single-point configs that name none (the seed's default prompt budget).
pub const DEFAULT_CONTEXT_LENGTH: usize = 128;

#[derive(Debug, Clone, PartialEq)]
pub struct BenchConfig {
    pub file: PathBuf,
    pub name: String,
    pub arch: Arch,
    pub context_lengths: Vec<usize>,
    /// Every batch size measured at every length, ascending (`batch_sizes`, or the seed's one `batch_size`);
    /// `params.batch_size` is the smallest.
    pub batch_sizes: Vec<usize>,
    /// True when the file has `context_lengths` (a scaling sweep) rather than one point.
    pub scaling: bool,
    /// Re-measure one cached point of a curve that a run extends, to catch drift between runs (`bench::anchor`);
    /// `anchor: false` measures exactly the new points. Not in any key: it changes no measurement.
    pub anchor: bool,
    pub params: BenchParams,
}

/// The parameters that change a point's measurement (they go into its cache key).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BenchParams {
    pub num_tokens: usize,
    pub batch_size: usize,
    pub num_runs: usize,
    pub warmup_runs: usize,
    pub min_duration_s: f64,
    /// Intra-op threads; `None` keeps libtorch's default (one per core).
    pub threads: Option<usize>,
    /// Adaptive stopping: measure until the headline median's ≥ 95 % interval is within ± this fraction of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_rel_ci: Option<f64>,
    /// Caps of the adaptive phase (only with `target_rel_ci`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_runs: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration_s: Option<f64>,
    /// Diagnostic (`scripts/gpu_check.sh`): copy each timed output to the host before the clock stops, which cannot
    /// finish before the work does. Equal times with and without it show the clock is read after the device
    /// finished.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_back: bool,
    /// Record each point's prompt ids and greedy ids (or first hidden values) with it, outside the timed region.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub record_outputs: bool,
    /// Unmeasured running for at least this long before the first measured run, on top of `warmup_runs`; on
    /// CUDA `DEFAULT_CUDA_WARMUP_S` when not given, so clocks have ramped up from idle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_s: Option<f64>,
}

/// A GPU leaves its idle clocks within a fraction of a second of sustained work; one second of warm-up covers it.
pub const DEFAULT_CUDA_WARMUP_S: f64 = 1.0;

impl BenchParams {
    /// The time-based warm-up on `cuda` (or not).
    pub fn warmup_s_on(&self, cuda: bool) -> f64 {
        self.warmup_s
            .unwrap_or(if cuda { DEFAULT_CUDA_WARMUP_S } else { 0.0 })
    }
}

impl BenchConfig {
    pub fn load(file: &Path) -> Result<BenchConfig> {
        let map = yaml::read_mapping(file)?;
        yaml::check_keys(file, "the bench config", &map, KEYS)?;
        let bad = |field: &str, message: String| Error::BadValue {
            path: file.into(),
            field: field.into(),
            message,
        };
        let flag = |key: &str, default: bool| -> Result<bool> {
            match map.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(Value::Bool(b)) => Ok(*b),
                Some(v) => Err(bad(
                    key,
                    format!("expected true or false, got `{}`", show(v)),
                )),
            }
        };
        let int = |key: &str, default: Option<i64>, min: i64| -> Result<i64> {
            let v = match map.get(key) {
                None | Some(Value::Null) => default.ok_or_else(|| bad(key, "missing".into()))?,
                Some(v) => v
                    .as_i64()
                    .ok_or_else(|| bad(key, format!("expected an integer, got `{}`", show(v))))?,
            };
            // Counts past these could never finish (or overflow libtorch's int32 thread count).
            let max = match key {
                "threads" => MAX_THREADS,
                "num_runs" | "warmup_runs" | "max_runs" => MAX_RUNS,
                _ => i64::MAX,
            };
            if v < min {
                Err(bad(key, format!("must be at least {min}, got {v}")))
            } else if v > max {
                Err(bad(key, format!("must be at most {max}, got {v}")))
            } else {
                Ok(v)
            }
        };
        let name = match map.get("name") {
            Some(Value::String(s)) => s.clone(),
            _ => file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        let arch_text = map.get("arch").and_then(Value::as_str).ok_or_else(|| {
            bad(
                "arch",
                "missing; expected `decoder`, `encoder-decoder` or `encoder`".into(),
            )
        })?;
        let arch = Arch::parse(arch_text).ok_or_else(|| {
            let hint = suggest(arch_text, Arch::NAMES).map(|s| format!("; did you mean `{s}`?")).unwrap_or_default();
            bad("arch", format!("unknown arch `{arch_text}` (expected `decoder`, `encoder-decoder` or `encoder`){hint}"))
        })?;

        let (context_lengths, scaling) = match (
            map.get("context_lengths"),
            map.get("context_length"),
        ) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "context_length",
                    "give `context_lengths` (a sweep) or `context_length` (one point), not both"
                        .into(),
                ));
            }
            (Some(Value::Sequence(seq)), _) => {
                if seq.is_empty() {
                    return Err(bad(
                        "context_lengths",
                        "is empty; list at least one length".into(),
                    ));
                }
                let mut lengths = Vec::with_capacity(seq.len());
                // A set, not a scan of the list: a million lengths are checked in milliseconds.
                let mut seen = std::collections::HashSet::with_capacity(seq.len());
                for v in seq {
                    let n = v.as_i64().ok_or_else(|| {
                        bad(
                            "context_lengths",
                            format!("`{}` is not an integer", show(v)),
                        )
                    })?;
                    if n <= 0 {
                        return Err(bad(
                            "context_lengths",
                            format!("lengths must be positive, got {n}"),
                        ));
                    }
                    let n = n as usize;
                    if !seen.insert(n) {
                        return Err(bad("context_lengths", format!("{n} is listed twice")));
                    }
                    lengths.push(n);
                }
                (lengths, true)
            }
            (Some(v), None) => {
                return Err(bad(
                    "context_lengths",
                    format!("expected a list like [128, 256], got `{}`", show(v)),
                ));
            }
            (None, Some(Value::Sequence(_))) => {
                return Err(bad(
                        "context_length",
                        "takes one length; for a list of lengths write `context_lengths`\n  did you mean `context_lengths`?".into(),
                    ));
            }
            (None, _) => (
                vec![int("context_length", Some(DEFAULT_CONTEXT_LENGTH as i64), 1)? as usize],
                false,
            ),
        };
        let seconds = |key: &str, positive: bool| -> Result<Option<f64>> {
            match map.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_f64()
                    .filter(|s| {
                        s.is_finite()
                            && *s <= MAX_DURATION_S
                            && if positive { *s > 0.0 } else { *s >= 0.0 }
                    })
                    .map(Some)
                    .ok_or_else(|| {
                        let bound = if positive { "> 0" } else { ">= 0" };
                        bad(
                            key,
                            format!(
                                "expected seconds {bound} and at most {MAX_DURATION_S} (a week), got `{}`",
                                crate::error::shorten(&show(v), 40)
                            ),
                        )
                    }),
            }
        };
        let target_rel_ci = match map.get("target_rel_ci") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_f64().filter(|t| *t > 0.0 && *t < 1.0).ok_or_else(|| {
                bad(
                    "target_rel_ci",
                    format!(
                        "expected a fraction of the median between 0 and 1 (0.02 = ±2 %), got `{}`",
                        show(v)
                    ),
                )
            })?),
        };
        let max_duration_s = seconds("max_duration_s", true)?;
        let min_duration_s = seconds("min_duration_s", false)?.unwrap_or(0.0);
        let warmup_s = seconds("warmup_s", false)?;
        let max_runs = match map.get("max_runs") {
            None | Some(Value::Null) => None,
            Some(_) => Some(int("max_runs", None, 1)? as usize),
        };
        if target_rel_ci.is_none() {
            for (key, set) in [
                ("max_runs", max_runs.is_some()),
                ("max_duration_s", max_duration_s.is_some()),
            ] {
                if set {
                    return Err(bad(
                        key,
                        "caps adaptive stopping, which is off; set `target_rel_ci` (e.g. 0.02) or remove it".into(),
                    ));
                }
            }
        }
        let batch_sizes = batch_sizes(&map, &bad)?;
        let threads = match map.get("threads") {
            None | Some(Value::Null) => None,
            Some(_) => Some(int("threads", None, 1)? as usize),
        };
        let params = BenchParams {
            num_tokens: int(
                "num_tokens",
                Some(if arch.generates() { 50 } else { 0 }),
                i64::from(arch.generates()),
            )? as usize,
            batch_size: batch_sizes.first().copied().unwrap_or(1),
            num_runs: int("num_runs", Some(3), 1)? as usize,
            warmup_runs: int("warmup_runs", Some(1), 0)? as usize,
            min_duration_s,
            warmup_s,
            threads,
            target_rel_ci,
            max_runs,
            max_duration_s,
            read_back: flag("read_back", false)?,
            record_outputs: flag("record_outputs", false)?,
        };
        let anchor = flag("anchor", true)?;
        if let Some(max) = max_runs {
            let min_runs = crate::bench::stats::MIN_RUNS_FOR_TARGET_LEVEL;
            if max < params.num_runs.max(min_runs) {
                return Err(bad(
                    "max_runs",
                    format!(
                        "{max} can never reach the target: a 95 % interval of the median needs at least {min_runs} runs (and `num_runs` is {})",
                        params.num_runs
                    ),
                ));
            }
        }
        Ok(BenchConfig {
            file: file.into(),
            name,
            arch,
            context_lengths,
            batch_sizes,
            scaling,
            anchor,
            params,
        })
    }
}

/// `batch_sizes: [1, 4, 16]` (a second axis) or the seed's `batch_size: 4` (one), ascending; 1 when neither.
fn batch_sizes(
    map: &serde_yaml_ng::Mapping,
    bad: &dyn Fn(&str, String) -> Error,
) -> Result<Vec<usize>> {
    let one = |key: &str, v: &Value| -> Result<usize> {
        match v.as_i64() {
            Some(n) if (1..=MAX_BATCH).contains(&n) => Ok(n as usize),
            Some(n) => Err(bad(
                key,
                format!("batch sizes must be between 1 and {MAX_BATCH}, got {n}"),
            )),
            None => Err(bad(
                key,
                format!(
                    "`{}` is not an integer",
                    crate::error::shorten(&show(v), 40)
                ),
            )),
        }
    };
    // `null` means absent, here as for every key.
    let present = |key: &str| map.get(key).filter(|v| !v.is_null());
    let mut sizes = match (present("batch_sizes"), present("batch_size")) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "batch_size",
                "give `batch_sizes` (a sweep) or `batch_size` (one), not both".into(),
            ));
        }
        (Some(Value::Sequence(seq)), None) => {
            if seq.is_empty() {
                return Err(bad(
                    "batch_sizes",
                    "is empty; list at least one batch size".into(),
                ));
            }
            let mut sizes = Vec::with_capacity(seq.len());
            let mut seen = std::collections::HashSet::with_capacity(seq.len());
            for v in seq {
                let n = one("batch_sizes", v)?;
                if !seen.insert(n) {
                    return Err(bad("batch_sizes", format!("{n} is listed twice")));
                }
                sizes.push(n);
            }
            sizes
        }
        (Some(v), _) => {
            return Err(bad(
                "batch_sizes",
                format!(
                    "expected a list like [1, 4, 16], got `{}`",
                    crate::error::shorten(&show(v), 40)
                ),
            ));
        }
        (None, None) => vec![1],
        (None, Some(v)) => vec![one("batch_size", v)?],
    };
    sizes.sort_unstable();
    Ok(sizes)
}

/// A value as one short line (`[32, 64]`, not YAML's block list), for messages.
fn show(v: &Value) -> String {
    let text = match v {
        Value::String(s) => s.clone(),
        _ => serde_json::to_string(v)
            .unwrap_or_default()
            .replace(',', ", "),
    };
    crate::error::shorten(&text, 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(body: &str) -> Result<BenchConfig> {
        let dir = tempfile::tempdir().map_err(|e| Error::Report(e.to_string()))?;
        let file = dir.path().join("b.yaml");
        std::fs::write(
            &file,
            format!("arch: encoder\ncontext_lengths: [8]\n{body}"),
        )
        .map_err(|e| Error::Report(e.to_string()))?;
        BenchConfig::load(&file)
    }

    #[test]
    fn null_beside_a_batch_sweep_means_absent() {
        let c = load("batch_sizes: [4, 1]\nbatch_size: null\n").unwrap();
        assert_eq!(c.batch_sizes, [1, 4]);
        let c = load("batch_sizes: null\nbatch_size: 2\n").unwrap();
        assert_eq!(c.batch_sizes, [2]);
        let err = load("batch_sizes: [1]\nbatch_size: 2\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not both"), "{err}");
    }

    #[test]
    fn batch_sizes_are_a_sorted_axis_or_the_seeds_one_batch_size() {
        let c = load("batch_sizes: [16, 1, 4]\n").unwrap();
        assert_eq!(
            (c.batch_sizes.as_slice(), c.params.batch_size),
            (&[1, 4, 16][..], 1)
        );
        let c = load("batch_size: 8\n").unwrap();
        assert_eq!(
            (c.batch_sizes.as_slice(), c.params.batch_size),
            (&[8][..], 8)
        );
        assert_eq!(load("").unwrap().batch_sizes, [1]);
    }

    #[test]
    fn bad_batch_sizes_are_refused_by_name() {
        for (body, says) in [
            ("batch_sizes: []\n", "is empty"),
            ("batch_sizes: [1, 0]\n", "between 1 and"),
            ("batch_sizes: [-4]\n", "got -4"),
            ("batch_sizes: [2, 2]\n", "2 is listed twice"),
            ("batch_sizes: [1.5]\n", "not an integer"),
            ("batch_sizes: 4\n", "expected a list"),
            (
                "batch_sizes: [99999999999999999]\n",
                "between 1 and 1099511627776",
            ),
            ("batch_size: 0\n", "between 1 and"),
            ("batch_size: 2\nbatch_sizes: [1, 2]\n", "not both"),
            ("batch_sizes: [1, x]\n", "`x` is not an integer"),
        ] {
            let e = load(body).unwrap_err().to_string();
            assert!(e.contains(says), "{body:?}: {e}");
            assert!(e.contains("batch_size"), "{body:?} names the field: {e}");
        }
    }
}
