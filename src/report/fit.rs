//! Scaling fit: latency ≈ a · L^k by least squares in log–log space, with the standard error of k and R², so a
//! user can predict longer contexts and see how much to trust the prediction.

#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    pub model: String,
    pub arch: String,
    pub k: f64,
    pub k_stderr: Option<f64>,
    /// Latency at L = 1, milliseconds.
    pub a: f64,
    pub r_squared: f64,
    pub lengths: Vec<u64>,
}

impl Fit {
    pub fn predict_ms(&self, length: f64) -> f64 {
        self.a * length.powf(self.k)
    }
}

/// `points` are (length, latency_ms); needs two distinct positive lengths.
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
    let k_stderr = (logs.len() > 2).then(|| (ss_res / (n - 2.0) / sxx).sqrt());
    let mut lengths: Vec<u64> = points.iter().map(|p| p.0 as u64).collect();
    lengths.sort_unstable();
    lengths.dedup();
    Some(Fit {
        model: model.into(),
        arch: arch.into(),
        k,
        k_stderr,
        a: intercept.exp(),
        r_squared: if ss_tot > 0.0 {
            1.0 - ss_res / ss_tot
        } else {
            1.0
        },
        lengths,
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
            let predicted = fit.predict_ms(4096.0);
            let expected = 0.05 * 4096f64.powf(true_k);
            assert!((predicted / expected - 1.0).abs() < 0.1);
        }
    }

    #[test]
    fn one_length_cannot_be_fitted() {
        assert!(fit_power_law("m", "encoder", &[(128.0, 5.0), (128.0, 6.0)]).is_none());
    }
}
