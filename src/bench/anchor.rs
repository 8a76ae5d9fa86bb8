//! Drift caught, not spliced. When a run adds points to a curve whose other points were measured in earlier runs,
//! one of those cached points (the anchor, its shortest length: the cheapest) is measured again in this run, beside
//! the new ones. If the two medians' intervals overlap, the cached curve still describes this machine and the new
//! points join it (a note); if not, the machine is not the one that measured the cache, and splicing would bend the
//! curve by the drift, so the run warns with the measured ratio and says how to re-measure the curve in one run.

use serde::{Deserialize, Serialize};

use crate::bench::stats::Summary;

/// The anchor's verdict, recorded with the re-measured point (`anchor`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnchorCheck {
    /// The run whose cached measurement this point replaced ...
    pub previous_run_id: String,
    /// ... its median of the headline metric, milliseconds ...
    pub previous_median_ms: f64,
    /// ... and this run's over the previous: 1.30 is 30 % slower now.
    pub ratio: f64,
    /// Whether the two medians' intervals overlap.
    pub consistent: bool,
}

impl AnchorCheck {
    /// Compares this run's `now` with the cached `before` (the headline metric's summaries); `None` without a
    /// positive median on both sides.
    pub fn of(before: &Summary, previous_run_id: &str, now: &Summary) -> Option<AnchorCheck> {
        if !(before.median > 0.0 && now.median > 0.0) {
            return None;
        }
        Some(AnchorCheck {
            previous_run_id: previous_run_id.to_string(),
            previous_median_ms: before.median,
            ratio: now.median / before.median,
            consistent: before.ci_low <= now.ci_high && now.ci_low <= before.ci_high,
        })
    }

    /// The console line: a note when consistent, otherwise the warning's text. `point` names it (`gpt2@32`).
    pub fn message(&self, point: &str, step: &str) -> String {
        let change = format!(
            "{:.2}× the cached median ({:.3} ms, run {})",
            self.ratio, self.previous_median_ms, self.previous_run_id
        );
        if self.consistent {
            format!(
                "anchor {point} re-measured at {change}, within its interval: the cached points of this curve still hold"
            )
        } else {
            format!(
                "anchor {point} re-measured at {change}, outside both intervals: the machine has drifted since the cached points of this curve were measured, and the new points would be spliced onto them; `{}` re-measures the whole curve in one run",
                crate::rerun::run_with(&format!("--force {}", crate::rerun::shell_quote(step)))
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::stats::summarize;

    #[test]
    fn overlapping_intervals_are_consistent_and_a_drift_is_not() {
        let before = summarize(&[10.0, 10.4, 9.8, 10.1, 10.2]).unwrap();
        let same = summarize(&[10.3, 9.9, 10.6, 10.0, 10.2]).unwrap();
        let check = AnchorCheck::of(&before, "r1", &same).unwrap();
        assert!(check.consistent);
        assert!((check.ratio - 10.2 / 10.1).abs() < 1e-12);
        assert!(check.message("bert@16", "b").contains("still hold"));
        // 30 % slower now: every sample above every earlier one.
        let slower = summarize(&[13.0, 13.2, 12.9, 13.1, 13.4]).unwrap();
        let check = AnchorCheck::of(&before, "r1", &slower).unwrap();
        assert!(!check.consistent);
        let m = check.message("bert@16", "b");
        assert!(
            m.contains("1.30×") && m.contains("run r1") && m.contains("--force b"),
            "{m}"
        );
        // Nothing to compare against.
        let zero = summarize(&[0.0, 0.0, 0.0]).unwrap();
        assert!(AnchorCheck::of(&zero, "r1", &same).is_none());
    }
}
