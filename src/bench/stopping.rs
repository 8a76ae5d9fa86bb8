//! When a point has been measured enough. Fixed: after `num_runs` measured runs and `min_duration_s` of them
//! (both). Adaptive (`target_rel_ci`): then keep going until the headline metric's median interval is at least
//! 95 % confident and lies within ±target of the median, or a cap (`max_runs`, `max_duration_s`) is reached. The
//! rule is a pure function of what has been measured so far, so it is tested without libtorch.

use serde::{Deserialize, Serialize};

use crate::bench::config::BenchParams;
use crate::bench::interval::{TARGET_CI_LEVEL, level_and_relative_half_width};

/// Why measuring stopped, recorded with every point as `stopped_by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// `num_runs` were done (and `min_duration_s` had passed by then).
    NumRuns,
    /// More than `num_runs` were needed to fill `min_duration_s`.
    MinDurationS,
    /// The interval reached ±`target_rel_ci` at ≥ 95 %.
    TargetRelCi,
    /// The adaptive phase hit `max_runs` before the target.
    MaxRuns,
    /// The adaptive phase hit `max_duration_s` before the target.
    MaxDurationS,
}

impl StopReason {
    /// Whether the runs went on until the interval was narrow enough (or a cap of that phase was hit): such a
    /// point's published interval is widened (`stats::summarize_after_adaptive_stop`).
    pub fn adaptive(self) -> bool {
        matches!(
            self,
            StopReason::TargetRelCi | StopReason::MaxRuns | StopReason::MaxDurationS
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::NumRuns => "num_runs",
            StopReason::MinDurationS => "min_duration_s",
            StopReason::TargetRelCi => "target_rel_ci",
            StopReason::MaxRuns => "max_runs",
            StopReason::MaxDurationS => "max_duration_s",
        }
    }
}

/// Caps of the adaptive phase when a config sets `target_rel_ci` without them.
pub const DEFAULT_MAX_RUNS: usize = 100;
pub const DEFAULT_MAX_DURATION_S: f64 = 300.0;

/// `None` to measure another run; otherwise why to stop. `runs` measured runs took `elapsed_s`; `headline` is the
/// headline metric's samples so far (needed only with `target_rel_ci`).
pub fn should_stop(
    params: &BenchParams,
    runs: usize,
    elapsed_s: f64,
    headline: Option<&[f64]>,
) -> Option<StopReason> {
    if runs < params.num_runs || elapsed_s < params.min_duration_s {
        return None;
    }
    let Some(target) = params.target_rel_ci else {
        return Some(if runs > params.num_runs {
            StopReason::MinDurationS
        } else {
            StopReason::NumRuns
        });
    };
    if headline
        .and_then(level_and_relative_half_width)
        .is_some_and(|(level, half)| level >= TARGET_CI_LEVEL && half <= target)
    {
        return Some(StopReason::TargetRelCi);
    }
    if runs >= params.max_runs.unwrap_or(DEFAULT_MAX_RUNS) {
        return Some(StopReason::MaxRuns);
    }
    if elapsed_s >= params.max_duration_s.unwrap_or(DEFAULT_MAX_DURATION_S) {
        return Some(StopReason::MaxDurationS);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(target: Option<f64>) -> BenchParams {
        BenchParams {
            num_tokens: 2,
            batch_size: 1,
            num_runs: 3,
            warmup_runs: 0,
            min_duration_s: 0.0,
            threads: None,
            target_rel_ci: target,
            max_runs: Some(20),
            max_duration_s: Some(60.0),
            read_back: false,
            record_outputs: false,
            warmup_s: None,
        }
    }

    #[test]
    fn fixed_runs_stop_at_num_runs_or_duration() {
        let p = params(None);
        assert_eq!(should_stop(&p, 2, 9.0, None), None);
        assert_eq!(should_stop(&p, 3, 0.1, None), Some(StopReason::NumRuns));
        let p = BenchParams {
            min_duration_s: 1.0,
            ..p
        };
        assert_eq!(should_stop(&p, 3, 0.5, None), None);
        assert_eq!(
            should_stop(&p, 7, 1.2, None),
            Some(StopReason::MinDurationS)
        );
    }

    #[test]
    fn target_needs_a_95_percent_interval_inside_the_band() {
        let p = params(Some(0.02));
        // Three identical runs: a zero-width interval, but only 75 % confident: keep going.
        let three = [100.0; 3];
        assert_eq!(should_stop(&p, 3, 1.0, Some(&three)), None);
        // Six runs within ±1 %: [min, max] is 96.9 % confident and inside ±2 %.
        let six = [100.0, 101.0, 99.0, 100.5, 99.5, 100.0];
        assert_eq!(
            should_stop(&p, 6, 1.0, Some(&six)),
            Some(StopReason::TargetRelCi)
        );
        // Six runs spread ±10 %: not yet.
        let wide = [100.0, 110.0, 90.0, 105.0, 95.0, 100.0];
        assert_eq!(should_stop(&p, 6, 1.0, Some(&wide)), None);
        assert_eq!(
            should_stop(&p, 20, 1.0, Some(&wide)),
            Some(StopReason::MaxRuns)
        );
        assert_eq!(
            should_stop(&p, 6, 61.0, Some(&wide)),
            Some(StopReason::MaxDurationS)
        );
    }
}
