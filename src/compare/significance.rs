//! The statistics of a comparison, on each side's independent samples (one per measured run):
//! - the ratio of medians (candidate / baseline) with a percentile bootstrap confidence interval;
//! - the two-sided Mann–Whitney U test: exact (the null distribution counted) when there are no ties and the sides
//!   are small, else the normal approximation with tie and continuity corrections;
//! - Holm's (family-wise error) or Benjamini–Hochberg's (false discovery rate) adjustment over all the tests run.
//!
//! The bootstrap is seeded from what is compared, so the same inputs always print the same interval.

/// The smallest two-sided p-value an exact Mann–Whitney test can reach with `a` and `b` samples: 2 / C(a+b, a).
/// Below `alpha` (after correction) nothing can be called a change, and the comparison says so.
pub fn smallest_p(a: usize, b: usize) -> f64 {
    let mut arrangements = 1.0_f64;
    for i in 1..=a.min(b) {
        arrangements = arrangements * (a + b - a.min(b) + i) as f64 / i as f64;
    }
    (2.0 / arrangements).min(1.0)
}

/// Median by selection (linear time: the bootstrap takes thousands of them); NaN for no values.
fn median(v: &mut [f64]) -> f64 {
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    let (below, mid, _) = v.select_nth_unstable_by(n / 2, f64::total_cmp);
    let upper = *mid;
    if n % 2 == 1 {
        upper
    } else {
        let lower = below.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        f64::midpoint(lower, upper)
    }
}

/// Median of `v`; NaN when it is empty.
pub fn median_of(v: &[f64]) -> f64 {
    median(&mut v.to_vec())
}

/// `SplitMix64`: a small, well-mixed generator, enough for resampling indices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Resamples drawn by the bootstrap ...
pub const BOOTSTRAP_RESAMPLES: usize = 2000;
/// ... unless the sides are so large that 2000 would take minutes: then as many as this many sampled values
/// allow, at least `MIN_RESAMPLES` (a side that large pins its median down by itself).
const BOOTSTRAP_VALUES: usize = 20_000_000;
const MIN_RESAMPLES: usize = 100;

/// How many resamples a bootstrap of sides of `a` and `b` values draws.
pub fn resamples(a: usize, b: usize) -> usize {
    (BOOTSTRAP_VALUES / (a + b).max(1)).clamp(MIN_RESAMPLES, BOOTSTRAP_RESAMPLES)
}

/// A bootstrap of the ratio of medians.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatioInterval {
    pub low: f64,
    pub high: f64,
    /// Standard deviation of ln(ratio) over the resamples: the within-run uncertainty of the log ratio.
    pub log_se: f64,
}

/// Percentile bootstrap interval of median(b) / median(a) at `level`, both sides resampled independently.
pub fn ratio_interval(a: &[f64], b: &[f64], level: f64, seed: u64) -> Option<RatioInterval> {
    // A ratio needs positive, finite times on both sides; anything else is no measurement to bootstrap.
    let valid = |v: &[f64]| !v.is_empty() && v.iter().all(|x| x.is_finite() && *x > 0.0);
    if !valid(a) || !valid(b) {
        return None;
    }
    let mut rng = Rng(seed);
    let mut ra = vec![0.0; a.len()];
    let mut rb = vec![0.0; b.len()];
    let draws = resamples(a.len(), b.len());
    let mut ratios = Vec::with_capacity(draws);
    for _ in 0..draws {
        for x in &mut ra {
            *x = a[rng.below(a.len())];
        }
        for x in &mut rb {
            *x = b[rng.below(b.len())];
        }
        let base = median(&mut ra);
        if base > 0.0 {
            ratios.push(median(&mut rb) / base);
        }
    }
    if ratios.is_empty() {
        return None;
    }
    ratios.sort_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0;
    let at = |q: f64| {
        let i = (q * (ratios.len() - 1) as f64).round() as usize;
        ratios[i.min(ratios.len() - 1)]
    };
    let logs: Vec<f64> = ratios
        .iter()
        .filter(|r| **r > 0.0)
        .map(|r| r.ln())
        .collect();
    let mean = logs.iter().sum::<f64>() / logs.len().max(1) as f64;
    let var = logs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (logs.len().max(2) - 1) as f64;
    Some(RatioInterval {
        low: at(tail),
        high: at(1.0 - tail),
        log_se: var.sqrt(),
    })
}

/// Fewest tested rows from which run-to-run noise is estimated.
pub const MIN_ROWS_FOR_NOISE: usize = 8;

/// The run-to-run noise of a comparison, as a standard deviation of ln(ratio): what the within-run samples cannot
/// see (the machine's state drifts between runs, so two runs of the same code differ by more than either run's
/// spread). Estimated from the spread of the rows' log ratios around their median (1.4826 × MAD, robust to a
/// minority of rows that really changed), less the rows' typical within-run variance. `None` below
/// `MIN_ROWS_FOR_NOISE` rows.
pub fn run_to_run_sd(log_ratios: &[f64], log_ses: &[f64]) -> Option<f64> {
    if log_ratios.len() < MIN_ROWS_FOR_NOISE {
        return None;
    }
    let center = median_of(log_ratios);
    let deviations: Vec<f64> = log_ratios.iter().map(|d| (d - center).abs()).collect();
    let robust_sd = 1.4826 * median_of(&deviations);
    let within: Vec<f64> = log_ses.iter().map(|s| s * s).collect();
    let within = if within.is_empty() {
        0.0
    } else {
        median_of(&within)
    };
    Some((robust_sd * robust_sd - within).max(0.0).sqrt())
}

/// The multiplier of the run-to-run SD that an A/A comparison's `tests` log ratios all stay within with probability
/// about 1 - alpha: Student's t at 1 - alpha / (2·tests) (Bonferroni over the rows tested), with the degrees of
/// freedom of the SD's estimate (`estimated_from` - 1 rows), times √(1 + 1/`estimated_from`), as a prediction
/// interval whose SD was itself estimated.
pub fn band_z(alpha: f64, tests: usize, estimated_from: usize) -> f64 {
    let k = estimated_from.max(2) as f64;
    crate::report::student_t::quantile(1.0 - alpha / (2.0 * tests.max(1) as f64), k - 1.0)
        * (1.0 + 1.0 / k).sqrt()
}

/// Largest side for which the exact null distribution is counted.
const EXACT_MAX: usize = 60;

/// Two-sided Mann–Whitney U p-value of `a` against `b`.
pub fn mann_whitney(a: &[f64], b: &[f64]) -> Option<f64> {
    let (m, n) = (a.len(), b.len());
    if m == 0 || n == 0 {
        return None;
    }
    if a.iter().chain(b).any(|x| !x.is_finite()) {
        return None;
    }
    // U of `a` from mid-ranks of the pooled values (pairs where a's value is larger, ties counted half), in
    // O(N log N) rather than over all m·n pairs; `ties` when any two values are equal.
    let mut all: Vec<(f64, bool)> = a
        .iter()
        .map(|x| (*x, true))
        .chain(b.iter().map(|y| (*y, false)))
        .collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    let mut rank_sum_a = 0.0;
    let mut ties = false;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0.total_cmp(&all[i].0).is_eq() {
            j += 1;
        }
        ties |= j > i;
        // Ranks i+1 ..= j+1 share their mean.
        let mid_rank = (i + j + 2) as f64 / 2.0;
        rank_sum_a += mid_rank * all[i..=j].iter().filter(|v| v.1).count() as f64;
        i = j + 1;
    }
    let u = rank_sum_a - (m * (m + 1)) as f64 / 2.0;
    if !ties && m <= EXACT_MAX && n <= EXACT_MAX {
        return Some(exact_two_sided(m, n, u.round() as usize));
    }
    Some(normal_two_sided(a, b, u))
}

/// Counts, for every U from 0 to m·n, the arrangements of m and n items with that U, and returns the two-sided
/// p-value of `u`: twice the smaller tail, at most 1.
fn exact_two_sided(m: usize, n: usize, u: usize) -> f64 {
    // Arrangements of i and j items by U, for every j, built up over i.
    let mut prev: Vec<Vec<f64>> = (0..=n).map(|_| vec![1.0]).collect();
    for i in 1..=m {
        let mut cur: Vec<Vec<f64>> = Vec::with_capacity(n + 1);
        cur.push(vec![1.0]);
        for j in 1..=n {
            // The largest item is the last of `a` (adds j to U) or of `b` (adds nothing).
            let mut row = vec![0.0; i * j + 1];
            for (k, c) in prev[j].iter().enumerate() {
                row[k + j] += c;
            }
            for (k, c) in cur[j - 1].iter().enumerate() {
                row[k] += c;
            }
            cur.push(row);
        }
        prev = cur;
    }
    let counts = &prev[n];
    let total: f64 = counts.iter().sum();
    let lower: f64 = counts[..=u.min(m * n)].iter().sum::<f64>() / total;
    let upper: f64 = counts[u.min(m * n)..].iter().sum::<f64>() / total;
    (2.0 * lower.min(upper)).min(1.0)
}

fn normal_cdf(z: f64) -> f64 {
    // Abramowitz and Stegun 7.1.26 on erf, |error| < 1.5e-7.
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-x * x).exp();
    if z >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

fn normal_two_sided(a: &[f64], b: &[f64], u: f64) -> f64 {
    let (m, n) = (a.len() as f64, b.len() as f64);
    let mut all: Vec<f64> = a.iter().chain(b).copied().collect();
    all.sort_by(f64::total_cmp);
    // Σ(t³ - t) over groups of tied values.
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].total_cmp(&all[i]).is_eq() {
            j += 1;
        }
        let t = (j - i + 1) as f64;
        tie_term += t * t * t - t;
        i = j + 1;
    }
    let total = m + n;
    let variance = m * n / 12.0 * ((total + 1.0) - tie_term / (total * (total - 1.0)));
    if variance <= 0.0 {
        return 1.0;
    }
    let mean = m * n / 2.0;
    let z = ((u - mean).abs() - 0.5).max(0.0) / variance.sqrt();
    (2.0 * (1.0 - normal_cdf(z))).min(1.0)
}

/// How p-values are adjusted for the number of tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Correction {
    /// Holm–Bonferroni: the chance of any false alarm stays below alpha.
    Holm,
    /// Benjamini–Hochberg: the expected share of false alarms among the changes reported stays below alpha.
    Bh,
}

impl Correction {
    pub fn describe(self) -> &'static str {
        match self {
            Correction::Holm => "Holm",
            Correction::Bh => "Benjamini–Hochberg",
        }
    }

    /// Adjusted p-values, in the order given.
    pub fn adjust(self, p: &[f64]) -> Vec<f64> {
        let m = p.len();
        let mut order: Vec<usize> = (0..m).collect();
        order.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
        let mut adjusted = vec![1.0; m];
        match self {
            Correction::Holm => {
                let mut running: f64 = 0.0;
                for (rank, &i) in order.iter().enumerate() {
                    running = running.max(((m - rank) as f64 * p[i]).min(1.0));
                    adjusted[i] = running;
                }
            }
            Correction::Bh => {
                let mut running: f64 = 1.0;
                for (rank, &i) in order.iter().enumerate().rev() {
                    running = running.min((p[i] * m as f64 / (rank + 1) as f64).min(1.0));
                    adjusted[i] = running;
                }
            }
        }
        adjusted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_mann_whitney_matches_tables() {
        // Fully separated 3 vs 3: U = 9 of C(6,3) = 20 arrangements, two-sided p = 2/20.
        let p = mann_whitney(&[4.0, 5.0, 6.0], &[1.0, 2.0, 3.0]).unwrap();
        assert!((p - 0.1).abs() < 1e-12, "{p}");
        assert!((smallest_p(3, 3) - 0.1).abs() < 1e-12);
        assert!((smallest_p(5, 5) - 2.0 / 252.0).abs() < 1e-12);
        // scipy.stats.mannwhitneyu([1, 3, 5, 7], [2, 4, 6, 8, 10], method="exact"): U = 6, p = 0.4126984.
        let p = mann_whitney(&[1.0, 3.0, 5.0, 7.0], &[2.0, 4.0, 6.0, 8.0, 10.0]).unwrap();
        assert!((p - 0.412_698_4).abs() < 1e-6, "{p}");
        // Ties across and within the sides: mid-ranks, the tie-corrected normal approximation.
        // scipy.stats.mannwhitneyu([1, 1, 5, 2], [2, 3, 4, 7, 7], method="asymptotic"): U = 3.5, p = 0.136641.
        let mid_ranked = mann_whitney(&[1.0, 1.0, 5.0, 2.0], &[2.0, 3.0, 4.0, 7.0, 7.0]).unwrap();
        assert!((mid_ranked - 0.136_641).abs() < 1e-5, "{mid_ranked}");
        // Medians by selection, even and odd, and none of nothing.
        assert!((median_of(&[4.0, 1.0, 3.0, 2.0]) - 2.5).abs() < 1e-12);
        assert!((median_of(&[5.0, 1.0, 3.0]) - 3.0).abs() < 1e-12);
        assert!(median_of(&[]).is_nan());
        // Ties inside one side leave the exact path: the normal approximation answers.
        let tied = mann_whitney(&[1.0, 1.0, 5.0], &[2.0, 3.0, 4.0]).unwrap();
        assert!(tied > 0.0 && tied <= 1.0);
        assert_eq!(mann_whitney(&[f64::NAN], &[1.0]), None);
        // Symmetric in the sides.
        let q = mann_whitney(&[2.0, 4.0, 6.0, 8.0, 10.0], &[1.0, 3.0, 5.0, 7.0]).unwrap();
        assert!((p - q).abs() < 1e-12);
    }

    #[test]
    fn the_normal_approximation_agrees_with_the_exact_test_on_large_sides() {
        let a: Vec<f64> = (0..40).map(|i| f64::from(i) * 1.01).collect();
        let b: Vec<f64> = (0..40).map(|i| f64::from(i) * 1.01 + 7.3).collect();
        let u: f64 = a
            .iter()
            .map(|x| b.iter().filter(|y| x > *y).count() as f64)
            .sum();
        assert!((u - 528.0).abs() < 1e-9);
        // scipy.stats.mannwhitneyu(a, b, method="exact" / "asymptotic"): 0.0084805, 0.0089880.
        let exact = exact_two_sided(40, 40, u as usize);
        let normal = normal_two_sided(&a, &b, u);
        assert!((exact - 0.008_480_5).abs() < 1e-6, "{exact}");
        assert!((normal - 0.008_988_0).abs() < 1e-5, "{normal}");
    }

    #[test]
    fn run_to_run_noise_is_the_robust_spread_of_log_ratios_less_the_within_run_part() {
        // Eight rows spread ±0.1 around 0, one far outlier (a real change) that the MAD ignores.
        let d = [-0.1, 0.1, -0.1, 0.1, 0.0, 0.1, -0.1, -0.1, 2.0];
        let sd = run_to_run_sd(&d, &[0.0; 9]).unwrap();
        assert!((sd - 0.14826).abs() < 1e-9, "{sd}");
        // Within-run variance is taken out; never below zero.
        let less = run_to_run_sd(&d, &[0.1; 9]).unwrap();
        assert!((less - (0.14826_f64.powi(2) - 0.01).sqrt()).abs() < 1e-9);
        assert_eq!(run_to_run_sd(&d, &[1.0; 9]), Some(0.0));
        assert_eq!(run_to_run_sd(&d[..7], &[0.0; 7]), None);
        // Bonferroni over 21 rows at alpha 0.05: scipy.stats.t.ppf(1 - 0.05/42, 20) = 3.4765, × √(22/21).
        let want = 3.4765 * (22.0_f64 / 21.0).sqrt();
        assert!(
            (band_z(0.05, 21, 21) - want).abs() < 1e-3,
            "{}",
            band_z(0.05, 21, 21)
        );
    }

    #[test]
    fn holm_and_bh_adjust_as_published() {
        // Holm: sorted p (0.01, 0.02, 0.03, 0.5) × (4, 3, 2, 1), made monotone.
        let p = [0.03, 0.01, 0.5, 0.02];
        let holm = Correction::Holm.adjust(&p);
        let want = [0.06, 0.04, 0.5, 0.06];
        for (h, w) in holm.iter().zip(want) {
            assert!((h - w).abs() < 1e-12, "{holm:?}");
        }
        // BH: p × 4 / rank, made monotone from the top: 0.04, 0.04, 0.04, 0.5.
        let bh = Correction::Bh.adjust(&p);
        let want = [0.04, 0.04, 0.5, 0.04];
        for (h, w) in bh.iter().zip(want) {
            assert!((h - w).abs() < 1e-12, "{bh:?}");
        }
    }

    #[test]
    fn the_bootstrap_interval_holds_the_true_ratio_and_is_reproducible() {
        let a: Vec<f64> = (0..12).map(|i| 100.0 + f64::from(i % 5)).collect();
        let b: Vec<f64> = a.iter().map(|x| x * 1.3).collect();
        let r = ratio_interval(&a, &b, 0.95, 7).unwrap();
        let (lo, hi) = (r.low, r.high);
        assert!(lo < 1.3 && 1.3 < hi && lo > 1.2 && hi < 1.4, "[{lo}, {hi}]");
        assert!(r.log_se > 0.0 && r.log_se < 0.05, "{}", r.log_se);
        assert_eq!(ratio_interval(&a, &b, 0.95, 7), Some(r));
        assert_eq!(ratio_interval(&[], &b, 0.95, 7), None);
        // Runs-sized sides get every resample; huge ones fewer, never below the floor.
        assert_eq!(resamples(12, 12), BOOTSTRAP_RESAMPLES);
        assert_eq!(resamples(200_000, 200_000), MIN_RESAMPLES);
        // Non-positive or non-finite times are no measurement to bootstrap.
        assert_eq!(ratio_interval(&[0.0, 1.0], &b, 0.95, 7), None);
        assert_eq!(ratio_interval(&a, &[f64::INFINITY, 1.0], 0.95, 7), None);
        // Fewer rows behind the noise estimate: a wider band (fewer degrees of freedom).
        assert!(band_z(0.05, 3, 4) > band_z(0.05, 3, 30));
    }
}
