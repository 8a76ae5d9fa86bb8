//! Scaling fit: latency ≈ a · L^k by ordinary least squares in log–log space. What it claims, and no more:
//! `k_stderr` is the standard error of k with `df = n - 2` degrees of freedom; `k_ci95_*` is the t-based 95 %
//! interval for k (exact under the model's own assumptions: log-latency linear in log-length with independent
//! normal errors); predictions carry the 95 % prediction interval for a new point at that length, which widens as
//! it extrapolates. With two lengths (df = 0) nothing but the line itself can be given.

use crate::report::regimes::{self, Regime};
use crate::report::student_t;

#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    pub model: String,
    pub arch: String,
    /// The batch size of the curve fitted (a model has one curve per batch size); `None` when the rows do not say.
    pub batch_size: Option<i64>,
    pub k: f64,
    /// Standard error of k; `None` below three lengths.
    pub k_stderr: Option<f64>,
    /// Residual degrees of freedom, n - 2.
    pub df: usize,
    /// t-based 95 % confidence interval of k.
    pub k_ci95: Option<(f64, f64)>,
    /// Latency at L = 1, milliseconds.
    pub a: f64,
    pub r_squared: f64,
    pub lengths: Vec<u64>,
    /// The runs (`run_id`) its points were measured in, sorted: more than one means the curve spans sessions.
    pub runs: Vec<String>,
    /// The form chosen by `AICc` among power law, quadratic and broken power law (`report::regimes`): what
    /// predictions use.
    pub regime: Option<Regime>,
    /// Residual standard deviation in ln(ms), the mean of ln(L) and Σ(ln L - mean)², for prediction intervals.
    residual_sd: Option<f64>,
    mean_ln_length: f64,
    sxx: f64,
    n: usize,
}

/// A predicted latency with its 95 % prediction interval (`None` when df = 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    pub length: f64,
    pub ms: f64,
    pub interval_ms: Option<(f64, f64)>,
}

impl Fit {
    /// This fit, of the curve at `batch_size`.
    #[must_use]
    pub fn at_batch(self, batch_size: Option<i64>) -> Fit {
        Fit { batch_size, ..self }
    }

    /// This fit, of points measured in `runs`.
    #[must_use]
    pub fn spanning(self, mut runs: Vec<String>) -> Fit {
        runs.sort_unstable();
        runs.dedup();
        Fit { runs, ..self }
    }

    pub fn predict_ms(&self, length: f64) -> f64 {
        self.a * length.powf(self.k)
    }

    /// The fitted latency at `length` and the 95 % interval a new measurement there falls in, from the chosen
    /// regime.
    pub fn predict(&self, length: f64) -> Prediction {
        if let Some(r) = &self.regime {
            return Prediction {
                length,
                ms: r.predict_ms(length),
                interval_ms: r.interval_ms(length),
            };
        }
        let ms = self.predict_ms(length);
        let interval_ms = self.residual_sd.map(|s| {
            let t = student_t::quantile(0.975, self.df as f64);
            let dx = length.ln() - self.mean_ln_length;
            let half = t * s * (1.0 + 1.0 / self.n as f64 + dx * dx / self.sxx).sqrt();
            (ms * (-half).exp(), ms * half.exp())
        });
        Prediction {
            length,
            ms,
            interval_ms,
        }
    }
}

/// `points` are (length, `latency_ms`); needs two distinct positive lengths.
pub fn fit_power_law(model: &str, arch: &str, points: &[(f64, f64)]) -> Option<Fit> {
    let logs: Vec<(f64, f64)> = points
        .iter()
        .filter(|(l, y)| *l > 0.0 && *y > 0.0)
        .map(|(l, y)| (l.ln(), y.ln()))
        .collect();
    let n = logs.len() as f64;
    let mean_x = logs.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = logs.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = logs.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    if logs.len() < 2 || sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = logs.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let k = sxy / sxx;
    let intercept = mean_y - k * mean_x;
    let ss_res: f64 = logs
        .iter()
        .map(|p| (p.1 - (intercept + k * p.0)).powi(2))
        .sum();
    let ss_tot: f64 = logs.iter().map(|p| (p.1 - mean_y).powi(2)).sum();
    let df = logs.len() - 2;
    let residual_sd = (df > 0).then(|| (ss_res / df as f64).sqrt());
    let k_stderr = residual_sd.map(|s| s / sxx.sqrt());
    let k_ci95 = k_stderr.map(|se| {
        let t = student_t::quantile(0.975, df as f64);
        (k - t * se, k + t * se)
    });
    let mut lengths: Vec<u64> = points.iter().map(|p| p.0 as u64).collect();
    lengths.sort_unstable();
    lengths.dedup();
    Some(Fit {
        batch_size: None,
        model: model.into(),
        arch: arch.into(),
        k,
        k_stderr,
        df,
        k_ci95,
        a: intercept.exp(),
        r_squared: if ss_tot > 0.0 {
            1.0 - ss_res / ss_tot
        } else {
            1.0
        },
        lengths,
        runs: Vec::new(),
        regime: regimes::select(points),
        residual_sd,
        mean_ln_length: mean_x,
        sxx,
        n: logs.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_linear_and_quadratic_exponents() {
        let lengths = [128.0, 256.0, 512.0, 1024.0, 2048.0];
        // A little deterministic noise so the fit is not trivially exact.
        let noise = [1.02, 0.98, 1.01, 0.99, 1.0];
        for true_k in [1.0, 2.0] {
            let points: Vec<(f64, f64)> = lengths
                .iter()
                .zip(noise)
                .map(|(l, e): (&f64, f64)| (*l, 0.05 * l.powf(true_k) * e))
                .collect();
            let fit = fit_power_law("m", "decoder", &points).unwrap();
            assert!(
                (fit.k - true_k).abs() < 0.05,
                "k = {} for L^{true_k}",
                fit.k
            );
            assert!(fit.r_squared > 0.99);
            assert!(fit.k_stderr.unwrap() < 0.05);
            let (lo, hi) = fit.k_ci95.unwrap();
            assert!(lo < true_k && true_k < hi);
            let predicted = fit.predict_ms(4096.0);
            let expected = 0.05 * 4096f64.powf(true_k);
            assert!((predicted / expected - 1.0).abs() < 0.1);
        }
    }

    #[test]
    fn interval_of_k_is_t_based_by_hand() {
        // ln-lengths 0, 1, 2 (L = 1, e, e²) and ln-latencies 0, 1.1, 1.9: k = 0.95, residuals -.05, .1, -.05,
        // s² = 0.015 / 1, Sxx = 2, se = sqrt(0.0075); t(0.975, 1) = 12.7062.
        let e = std::f64::consts::E;
        let pts = [(1.0, 1.0), (e, 1.1f64.exp()), (e * e, 1.9f64.exp())];
        let fit = fit_power_law("m", "encoder", &pts).unwrap();
        assert!((fit.k - 0.95).abs() < 1e-9);
        assert_eq!(fit.df, 1);
        let se = 0.0075f64.sqrt();
        assert!((fit.k_stderr.unwrap() - se).abs() < 1e-9);
        let (lo, hi) = fit.k_ci95.unwrap();
        assert!((hi - fit.k - 12.7062 * se).abs() < 1e-3, "{hi}");
        assert!((fit.k - lo - 12.7062 * se).abs() < 1e-3, "{lo}");
    }

    #[test]
    fn prediction_band_widens_with_extrapolation_and_needs_df() {
        let pts: Vec<(f64, f64)> = [128.0, 256.0, 512.0, 1024.0]
            .iter()
            .zip([1.03, 0.97, 1.02, 0.98])
            .map(|(l, e)| (*l, 0.1 * l * e))
            .collect();
        let fit = fit_power_law("m", "encoder", &pts).unwrap();
        let near = fit.predict(512.0).interval_ms.unwrap();
        let far = fit.predict(8192.0).interval_ms.unwrap();
        let rel = |p: (f64, f64), ms: f64| (p.1 - p.0) / ms;
        assert!(rel(far, fit.predict_ms(8192.0)) > rel(near, fit.predict_ms(512.0)));
        assert!(near.0 < fit.predict_ms(512.0) && fit.predict_ms(512.0) < near.1);
        let two = fit_power_law("m", "encoder", &pts[..2]).unwrap();
        assert_eq!((two.df, two.k_stderr, two.k_ci95), (0, None, None));
        assert_eq!(two.predict(4096.0).interval_ms, None);
    }

    #[test]
    fn one_length_cannot_be_fitted() {
        assert!(fit_power_law("m", "encoder", &[(128.0, 5.0), (128.0, 6.0)]).is_none());
    }
}
