//! Summary statistics of one metric's samples, in the manner of hyperfine and criterion: std is `None` for a
//! single sample, the median gets a bootstrap 95 % confidence interval, and outliers (modified z-score > 3.5 via
//! the median absolute deviation) are counted and warned about, never dropped.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    pub std: Option<f64>,
    pub median: f64,
    pub p90: f64,
    pub min: f64,
    pub max: f64,
    /// Bootstrap 95 % confidence interval of the median.
    pub ci95_low: f64,
    pub ci95_high: f64,
    pub outliers: usize,
    /// Raw samples, in run order.
    pub samples: Vec<f64>,
}

/// Resamples for the bootstrap; 2000 keeps the CI's own noise well under a percent.
const BOOTSTRAP_RESAMPLES: usize = 2000;
/// Iglewicz and Hoaglin's threshold for the modified z-score.
const OUTLIER_Z: f64 = 3.5;

pub fn summarize(samples: &[f64]) -> Option<Summary> {
    if samples.is_empty() || samples.iter().any(|x| !x.is_finite()) {
        return None;
    }
    let n = samples.len();
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mean = samples.iter().sum::<f64>() / n as f64;
    let std = (n > 1)
        .then(|| (samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt());
    let median = quantile(&sorted, 0.5);
    let (ci95_low, ci95_high) = bootstrap_median_ci(samples, median);
    Some(Summary {
        n,
        mean,
        std,
        median,
        p90: quantile(&sorted, 0.9),
        min: sorted[0],
        max: sorted[n - 1],
        ci95_low,
        ci95_high,
        outliers: outliers(&sorted, median),
        samples: samples.to_vec(),
    })
}

/// Linear interpolation between closest ranks (numpy's default).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Below this many samples the MAD is too coarse for a z-score to mean anything.
const MIN_SAMPLES_FOR_OUTLIERS: usize = 5;

fn outliers(sorted: &[f64], median: f64) -> usize {
    if sorted.len() < MIN_SAMPLES_FOR_OUTLIERS {
        return 0;
    }
    let mut deviations: Vec<f64> = sorted.iter().map(|x| (x - median).abs()).collect();
    deviations.sort_by(f64::total_cmp);
    let mad = quantile(&deviations, 0.5);
    if mad == 0.0 {
        return 0;
    }
    sorted
        .iter()
        .filter(|x| (0.6745 * (*x - median) / mad).abs() > OUTLIER_Z)
        .count()
}

/// Percentile bootstrap of the median.
fn bootstrap_median_ci(samples: &[f64], median: f64) -> (f64, f64) {
    let n = samples.len();
    if n < 2 {
        return (median, median);
    }
    // Fixed seed: the same samples always give the same interval.
    let mut rng = StdRng::seed_from_u64(0x9E37_79B9_7F4A_7C15);
    let mut medians = Vec::with_capacity(BOOTSTRAP_RESAMPLES);
    let mut resample = vec![0.0; n];
    for _ in 0..BOOTSTRAP_RESAMPLES {
        for slot in resample.iter_mut() {
            *slot = samples[rng.random_range(0..n)];
        }
        resample.sort_by(f64::total_cmp);
        medians.push(quantile(&resample, 0.5));
    }
    medians.sort_by(f64::total_cmp);
    (quantile(&medians, 0.025), quantile(&medians, 0.975))
}

impl Summary {
    /// A warning for the console when the samples are not trustworthy as a single number.
    pub fn warning(&self) -> Option<String> {
        if self.outliers > 0 {
            return Some(format!(
                "{} of {} samples are outliers (modified z-score > {OUTLIER_Z})",
                self.outliers, self.n
            ));
        }
        let spread = (self.ci95_high - self.ci95_low) / self.median.max(f64::MIN_POSITIVE);
        (self.n >= 3 && spread > 0.2).then(|| {
            format!(
                "wide spread: 95% CI of the median is ±{:.0}%",
                spread * 50.0
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_known_samples() {
        let s = summarize(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        assert_eq!(
            (s.n, s.mean, s.median, s.min, s.max),
            (5, 3.0, 3.0, 1.0, 5.0)
        );
        assert!((s.std.unwrap() - 1.5811).abs() < 1e-4);
        assert!((s.p90 - 4.6).abs() < 1e-12);
        assert!(s.ci95_low >= 1.0 && s.ci95_low <= 3.0 && s.ci95_high >= 3.0 && s.ci95_high <= 5.0);
        assert_eq!(s.outliers, 0);
    }

    #[test]
    fn one_sample_has_no_std() {
        let s = summarize(&[7.0]).unwrap();
        assert_eq!(s.std, None);
        assert_eq!((s.ci95_low, s.ci95_high), (7.0, 7.0));
    }

    #[test]
    fn outliers_are_counted_not_dropped() {
        let s = summarize(&[10.0, 10.1, 9.9, 10.0, 10.2, 9.8, 50.0]).unwrap();
        assert_eq!(s.outliers, 1);
        assert_eq!(s.max, 50.0);
        assert!(s.warning().is_some());
    }

    #[test]
    fn empty_or_nan_is_none() {
        assert!(summarize(&[]).is_none());
        assert!(summarize(&[1.0, f64::NAN]).is_none());
    }
}
