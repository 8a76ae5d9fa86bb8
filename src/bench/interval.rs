//! The median's interval, as measuring needs it: the stopping rule (`bench::stopping`) keeps a point running until
//! this interval is narrow enough, so this file is measured code (in the method identity), while the published
//! summaries (`bench::stats`) are derived from the stored samples by whichever build writes the results.
//!
//! The interval is the distribution-free order-statistic interval `[x(k), x(n-k+1)]`: for any continuous
//! distribution it covers the true median with probability exactly `1 - 2·P(Bin(n, ½) ≤ k-1)`.

/// The confidence the median's interval aims for ...
pub const TARGET_CI_LEVEL: f64 = 0.95;
/// ... reached from this many samples on (1 - 2/2^6 = 96.9 %; 5 samples give 93.75 %).
pub const MIN_RUNS_FOR_TARGET_LEVEL: usize = 6;

/// Linear interpolation between closest ranks (numpy's default).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// The order statistics bounding the median's interval (0-based indices into the sorted samples).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MedianInterval {
    pub lower: usize,
    pub upper: usize,
    /// Exact coverage for a continuous distribution.
    pub level: f64,
}

impl MedianInterval {
    /// `by` order statistics further out on each side (at most `[min, max]`), with that interval's exact level.
    #[must_use]
    pub fn widened(self, n: usize, by: usize) -> MedianInterval {
        if by == 0 || n <= 1 {
            return self;
        }
        let lower = self.lower.saturating_sub(by);
        MedianInterval {
            lower,
            upper: n - 1 - lower,
            level: 1.0 - 2.0 * binomial_half_cdf(n, lower),
        }
    }
}

/// P(Bin(n, ½) ≤ j), summed in log space so large n neither overflows nor underflows.
fn binomial_half_cdf(n: usize, j: usize) -> f64 {
    let ln_half_n = n as f64 * 0.5f64.ln();
    let mut ln_choose = 0.0;
    let mut cdf = 0.0;
    for i in 0..=j {
        if i > 0 {
            ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        cdf += (ln_choose + ln_half_n).exp();
    }
    cdf
}

/// The narrowest symmetric order-statistic interval with coverage ≥ 95 %, or `[min, max]` when none has.
pub fn median_interval(n: usize) -> MedianInterval {
    if n <= 1 {
        return MedianInterval {
            lower: 0,
            upper: 0,
            level: 0.0,
        };
    }
    // cdf[j] = P(Bin(n, ½) ≤ j), summed in log space so large n neither overflows nor underflows.
    let ln_half_n = n as f64 * 0.5f64.ln();
    let mut ln_choose = 0.0; // ln C(n, 0)
    let mut cdf = 0.0;
    let mut best = MedianInterval {
        lower: 0,
        upper: n - 1,
        level: 1.0 - 2.0 * (ln_half_n).exp(),
    };
    // Interval [x(k), x(n-k+1)] (1-based) has coverage 1 - 2·P(Bin ≤ k-1); k runs up to n/2.
    for k in 1..=n / 2 {
        let j = k - 1;
        if j > 0 {
            ln_choose += ((n - j + 1) as f64).ln() - (j as f64).ln();
        }
        cdf += (ln_choose + ln_half_n).exp();
        let level = 1.0 - 2.0 * cdf;
        if level + 1e-12 < TARGET_CI_LEVEL {
            break;
        }
        best = MedianInterval {
            lower: k - 1,
            upper: n - k,
            level,
        };
    }
    best
}

/// The stopping rule's view of `samples`: the median interval's level and its largest distance from the median,
/// relative to it; `None` for no samples or a non-finite one.
pub fn level_and_relative_half_width(samples: &[f64]) -> Option<(f64, f64)> {
    if samples.is_empty() || samples.iter().any(|x| !x.is_finite()) {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = quantile(&sorted, 0.5);
    let interval = median_interval(sorted.len());
    let half = (median - sorted[interval.lower]).max(sorted[interval.upper] - median);
    Some((interval.level, half / median.abs().max(f64::MIN_POSITIVE)))
}
