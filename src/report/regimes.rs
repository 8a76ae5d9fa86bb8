//! Scaling regimes. A real latency curve is flat (per-op overhead), then linear, then super-linear (attention's
//! L²): one power law bends it into a single exponent. Beside the power law, two forms that see regimes are fitted
//! to every model's points and one is chosen by `AICc`:
//! - `power_law`: ln y = ln a + k·ln L (2 parameters);
//! - `quadratic`: y = c + a·L + b·L², by least squares on relative errors (weights 1/y², so a 5 ms point counts
//!   as much as a 5 s one; 3 parameters). Its knee is where the length-dependent part a·L + b·L² reaches c;
//! - `broken_power_law`: ln y = ln a + k₁·ln L + (k₂ - k₁)·max(0, ln L - ln `L_b`), the break `L_b` searched over the
//!   measured lengths with two on each side (3 parameters and the break). Its knee is `L_b`.
//!
//! All three are compared on one scale, the log residuals (errors are multiplicative), with `AICc`
//! (`n·ln(RSS/n) + 2K + 2K(K+1)/(n-K-1)`, K counting the error variance and the break). `AICc` needs n > K + 1, so a
//! form is a candidate only with at least K + 2 lengths (5, 6 and 7); with fewer than 5 lengths the power law is
//! used and `fit_selection` says that nothing was chosen. Parameter intervals are t-based 95 % intervals under each
//! form's own assumptions; the broken power law's are conditional on its break (which was searched, so they are
//! narrower than they should be: the table says so).

use crate::report::student_t;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    PowerLaw,
    Quadratic,
    BrokenPowerLaw,
}

impl Form {
    pub fn as_str(self) -> &'static str {
        match self {
            Form::PowerLaw => "power_law",
            Form::Quadratic => "quadratic",
            Form::BrokenPowerLaw => "broken_power_law",
        }
    }

    /// Parameters counted by `AICc`: the coefficients, the error variance, and the break.
    fn aicc_parameters(self) -> usize {
        match self {
            Form::PowerLaw => 3,
            Form::Quadratic => 4,
            Form::BrokenPowerLaw => 5,
        }
    }
}

/// A fitted parameter with its standard error and t-based 95 % interval (`None` without residual degrees of
/// freedom).
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: &'static str,
    pub value: f64,
    pub stderr: Option<f64>,
    pub ci95: Option<(f64, f64)>,
}

/// The chosen form for one model's points.
#[derive(Debug, Clone, PartialEq)]
pub struct Regime {
    pub form: Form,
    pub params: Vec<Param>,
    /// Where the length-dependent part overtakes the constant (quadratic) or the break (broken power law): the
    /// column tools already read. The named transitions below say which of these it is.
    pub knee_tokens: Option<f64>,
    /// Quadratic form only: where the linear term reaches the constant (`c / a`) ...
    pub overhead_to_linear_tokens: Option<f64>,
    /// ... and where the quadratic term reaches the linear one (`a / b`): attention's knee.
    pub linear_to_quadratic_tokens: Option<f64>,
    /// Broken power law only: its break.
    pub break_tokens: Option<f64>,
    /// Every form's `AICc` (`None`: too few lengths for it), in `Form` order.
    pub aicc: Vec<(Form, Option<f64>)>,
    /// `aicc` when a form was chosen; otherwise why the power law is used.
    pub selection: String,
    fitted: Linear,
}

/// A weighted linear least-squares fit `y ≈ X·β` in the form's response space.
#[derive(Debug, Clone, PartialEq)]
struct Linear {
    form: Form,
    beta: Vec<f64>,
    /// (XᵀWX)⁻¹.
    unscaled_cov: Vec<Vec<f64>>,
    /// Residual standard deviation (weighted), `None` at df = 0.
    sigma: Option<f64>,
    df: usize,
    /// The break length (broken power law) and its ln.
    break_length: f64,
    ln_break: f64,
}

fn row(form: Form, length: f64, ln_break: f64) -> Vec<f64> {
    match form {
        Form::PowerLaw => vec![1.0, length.ln()],
        Form::Quadratic => vec![1.0, length, length * length],
        Form::BrokenPowerLaw => vec![1.0, length.ln(), (length.ln() - ln_break).max(0.0)],
    }
}

/// The inverse of a small symmetric positive-definite matrix by Gauss–Jordan with partial pivoting.
fn invert(m: &[Vec<f64>]) -> Option<Vec<Vec<f64>>> {
    let n = m.len();
    let mut a: Vec<Vec<f64>> = m
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut row = r.clone();
            row.extend((0..n).map(|j| f64::from(u8::from(i == j))));
            row
        })
        .collect();
    for col in 0..n {
        let pivot = (col..n).max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))?;
        if a[pivot][col].abs() < 1e-300 {
            return None;
        }
        a.swap(col, pivot);
        let p = a[col][col];
        for v in &mut a[col] {
            *v /= p;
        }
        for r in 0..n {
            if r != col {
                let f = a[r][col];
                let pivot_row = a[col].clone();
                for (v, pv) in a[r].iter_mut().zip(pivot_row) {
                    *v -= f * pv;
                }
            }
        }
    }
    Some(a.into_iter().map(|r| r[n..].to_vec()).collect())
}

impl Linear {
    fn fit(form: Form, points: &[(f64, f64)], break_length: f64) -> Option<Linear> {
        let ln_break = break_length.ln();
        let rows: Vec<(Vec<f64>, f64, f64)> = points
            .iter()
            .map(|&(l, y)| match form {
                Form::Quadratic => (row(form, l, ln_break), y, 1.0 / (y * y)),
                _ => (row(form, l, ln_break), y.ln(), 1.0),
            })
            .collect();
        let p = rows.first()?.0.len();
        if rows.len() < p {
            return None;
        }
        // The quadratic's columns span L⁰..L⁴ in XᵀWX: scale them to unit size so the inversion stays accurate.
        let scale: Vec<f64> = (0..p)
            .map(|j| {
                rows.iter()
                    .map(|r| r.0[j].abs())
                    .fold(0.0, f64::max)
                    .max(1e-300)
            })
            .collect();
        let mut xtwx = vec![vec![0.0; p]; p];
        let mut xtwy = vec![0.0; p];
        for (x, y, w) in &rows {
            for i in 0..p {
                xtwy[i] += w * x[i] / scale[i] * y;
                for j in 0..p {
                    xtwx[i][j] += w * x[i] / scale[i] * x[j] / scale[j];
                }
            }
        }
        let inv = invert(&xtwx)?;
        let beta: Vec<f64> = (0..p)
            .map(|i| (0..p).map(|j| inv[i][j] * xtwy[j]).sum::<f64>() / scale[i])
            .collect();
        let unscaled_cov: Vec<Vec<f64>> = (0..p)
            .map(|i| (0..p).map(|j| inv[i][j] / (scale[i] * scale[j])).collect())
            .collect();
        let df = rows.len() - p;
        let weighted_rss: f64 = rows
            .iter()
            .map(|(x, y, w)| {
                let fitted: f64 = x.iter().zip(&beta).map(|(a, b)| a * b).sum();
                w * (y - fitted).powi(2)
            })
            .sum();
        Some(Linear {
            form,
            beta,
            unscaled_cov,
            sigma: (df > 0).then(|| (weighted_rss / df as f64).sqrt()),
            df,
            break_length,
            ln_break,
        })
    }

    /// The fitted latency at `length`, milliseconds.
    fn predict_ms(&self, length: f64) -> f64 {
        let x = row(self.form, length, self.ln_break);
        let v: f64 = x.iter().zip(&self.beta).map(|(a, b)| a * b).sum();
        match self.form {
            Form::Quadratic => v,
            _ => v.exp(),
        }
    }

    /// The 95 % prediction interval for a new measurement at `length` (for the quadratic, approximate: a new
    /// point's relative error is taken at the fitted value, not the unknown true one).
    fn interval_ms(&self, length: f64) -> Option<(f64, f64)> {
        let sigma = self.sigma?;
        let x = row(self.form, length, self.ln_break);
        let leverage: f64 = (0..x.len())
            .map(|i| {
                (0..x.len())
                    .map(|j| x[i] * self.unscaled_cov[i][j] * x[j])
                    .sum::<f64>()
            })
            .sum();
        let t = student_t::quantile(0.975, self.df as f64);
        let ms = self.predict_ms(length);
        // A new point's error is relative (σ·ŷ); the fitted mean's is σ·sqrt(leverage).
        Some(if self.form == Form::Quadratic {
            let half = t * sigma * (ms * ms + leverage).sqrt();
            (ms - half, ms + half)
        } else {
            let half = t * sigma * (1.0 + leverage).sqrt();
            (ms * (-half).exp(), ms * half.exp())
        })
    }

    /// Σ (ln y - ln ŷ)², or `None` when the fit predicts a non-positive latency at a measured length.
    fn log_rss(&self, points: &[(f64, f64)]) -> Option<f64> {
        points
            .iter()
            .map(|&(l, y)| {
                let fitted = self.predict_ms(l);
                (fitted > 0.0).then(|| (y.ln() - fitted.ln()).powi(2))
            })
            .sum()
    }

    fn params(&self, names: &[&'static str]) -> Vec<Param> {
        let t = (self.df > 0).then(|| student_t::quantile(0.975, self.df as f64));
        names
            .iter()
            .enumerate()
            .map(|(i, &name)| {
                let stderr = self
                    .sigma
                    .map(|s| s * self.unscaled_cov[i][i].max(0.0).sqrt());
                Param {
                    name,
                    value: self.beta[i],
                    stderr,
                    ci95: stderr
                        .zip(t)
                        .map(|(se, t)| (self.beta[i] - t * se, self.beta[i] + t * se)),
                }
            })
            .collect()
    }
}

fn aicc(form: Form, n: usize, rss: f64) -> Option<f64> {
    let k = form.aicc_parameters();
    if n < k + 2 {
        return None;
    }
    let (n, k) = (n as f64, k as f64);
    // A perfect fit would give ln 0: floor the residual at a relative error of 1e-6 per point.
    let rss = rss.max(n * 1e-12);
    Some(n * (rss / n).ln() + 2.0 * k + 2.0 * k * (k + 1.0) / (n - k - 1.0))
}

/// The best broken power law over the allowed breaks (two lengths on each side), by log RSS.
/// The most break lengths the broken power law tries.
const MAX_BREAKS: usize = 200;

fn broken(points: &[(f64, f64)]) -> Option<Linear> {
    let mut lengths: Vec<f64> = points.iter().map(|p| p.0).collect();
    lengths.sort_by(f64::total_cmp);
    lengths.dedup();
    if lengths.len() < 4 {
        return None;
    }
    // Every admissible break, or an even spread of at most `MAX_BREAKS` of them: each candidate is a fit over all
    // points, so a sweep of 10,000 lengths would otherwise cost 10,000 fits.
    let admissible = &lengths[1..lengths.len() - 2];
    let step = admissible.len().div_ceil(MAX_BREAKS).max(1);
    admissible
        .iter()
        .step_by(step)
        .filter_map(|&b| {
            let fit = Linear::fit(Form::BrokenPowerLaw, points, b)?;
            Some((fit.log_rss(points)?, fit))
        })
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, fit)| fit)
}

/// Fits every form to `points` (length, latency ms; positive) and chooses one; `None` below two distinct lengths.
pub fn select(points: &[(f64, f64)]) -> Option<Regime> {
    let points: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(l, y)| *l > 0.0 && *y > 0.0 && l.is_finite() && y.is_finite())
        .collect();
    let n = points.len();
    let power = Linear::fit(Form::PowerLaw, &points, 1.0)?;
    let mut distinct: Vec<f64> = points.iter().map(|p| p.0).collect();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    if distinct.len() < 2 {
        return None;
    }
    let candidates: Vec<(Form, Option<Linear>)> = vec![
        (Form::PowerLaw, Some(power.clone())),
        (
            Form::Quadratic,
            (distinct.len() >= 3)
                .then(|| Linear::fit(Form::Quadratic, &points, 1.0))
                .flatten(),
        ),
        (Form::BrokenPowerLaw, broken(&points)),
    ];
    let scored: Vec<(Form, Option<f64>, Option<Linear>)> = candidates
        .into_iter()
        .map(|(form, fit)| {
            let score = fit
                .as_ref()
                .and_then(|f| f.log_rss(&points))
                .and_then(|rss| aicc(form, n, rss));
            (form, score, fit)
        })
        .collect();
    let best = scored
        .iter()
        .filter_map(|(form, score, fit)| Some((*form, (*score)?, fit.clone()?)))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    let (form, fitted, selection) = match best {
        Some((form, _, fit)) => (form, fit, "aicc".to_string()),
        None => (
            Form::PowerLaw,
            power,
            format!(
                "power law: {n} length(s), and choosing a form needs at least {}",
                Form::PowerLaw.aicc_parameters() + 2
            ),
        ),
    };
    let (c, a, b) = (
        fitted.beta[0],
        fitted.beta.get(1).copied().unwrap_or(0.0),
        fitted.beta.get(2).copied().unwrap_or(0.0),
    );
    let quadratic = form == Form::Quadratic;
    let overhead_to_linear_tokens = (quadratic && c > 0.0 && a > 0.0).then(|| c / a);
    let linear_to_quadratic_tokens = (quadratic && a > 0.0 && b > 0.0).then(|| a / b);
    let break_tokens = (form == Form::BrokenPowerLaw).then_some(fitted.break_length);
    let (params, knee_tokens) = match form {
        Form::PowerLaw => (fitted.params(&["ln_a", "k"]), None),
        Form::Quadratic => {
            let params = fitted.params(&["c_ms", "a_ms_per_token", "b_ms_per_token2"]);
            let (c, a, b) = (fitted.beta[0], fitted.beta[1], fitted.beta[2]);
            // a·L + b·L² = c.
            let knee = if c <= 0.0 {
                None
            } else if b.abs() < 1e-300 {
                (a > 0.0).then(|| c / a)
            } else {
                let disc = a * a + 4.0 * b * c;
                (disc >= 0.0)
                    .then(|| (-a + disc.sqrt()) / (2.0 * b))
                    .filter(|l| *l > 0.0)
            };
            (params, knee)
        }
        Form::BrokenPowerLaw => (
            fitted.params(&["ln_a", "k_below", "k_change"]),
            Some(fitted.break_length),
        ),
    };
    Some(Regime {
        form,
        params,
        knee_tokens,
        overhead_to_linear_tokens,
        linear_to_quadratic_tokens,
        break_tokens,
        aicc: scored.iter().map(|(f, s, _)| (*f, *s)).collect(),
        selection,
        fitted,
    })
}

impl Regime {
    pub fn predict_ms(&self, length: f64) -> f64 {
        self.fitted.predict_ms(length)
    }

    /// The 95 % prediction interval of a new measurement at `length` (`None` at df = 0).
    pub fn interval_ms(&self, length: f64) -> Option<(f64, f64)> {
        self.fitted.interval_ms(length)
    }

    /// `c_ms = 41.2 (38.0–44.4); …` for the fit table. The broken power law's intervals hold its searched break
    /// fixed, so they are narrower than they should be: the text says so.
    pub fn describe_params(&self) -> String {
        let params = self
            .params
            .iter()
            .map(|p| match p.ci95 {
                Some((lo, hi)) => {
                    format!("{} = {:.4e} (95 %: {lo:.4e} to {hi:.4e})", p.name, p.value)
                }
                None => format!("{} = {:.4e}", p.name, p.value),
            })
            .collect::<Vec<_>>()
            .join("; ");
        if self.form == Form::BrokenPowerLaw {
            format!(
                "{params}; intervals given the break at {} tokens, which was searched: too narrow",
                self.fitted.break_length
            )
        } else {
            params
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Powers of two from 16 to 4096 with ±1.5 % deterministic multiplicative noise.
    fn curve(f: impl Fn(f64) -> f64) -> Vec<(f64, f64)> {
        let noise = [1.012, 0.988, 1.006, 0.994, 1.015, 0.99, 1.003, 0.985, 1.009];
        (4..=12)
            .zip(noise)
            .map(|(p, e)| {
                let l = 2f64.powi(p);
                (l, f(l) * e)
            })
            .collect()
    }

    #[test]
    fn overhead_then_linear_then_quadratic_is_recognised_with_its_knee() {
        // 40 ms of overhead, 0.02 ms per token, 2e-5 ms per token²: a·L + b·L² = c at L ≈ 1000.
        let r = select(&curve(|l| 40.0 + 0.02 * l + 2e-5 * l * l)).unwrap();
        assert_eq!(r.form, Form::Quadratic, "{r:#?}");
        assert_eq!(r.selection, "aicc");
        let knee = r.knee_tokens.unwrap();
        assert!((knee / 1000.0 - 1.0).abs() < 0.15, "{knee}");
        // The named transitions: c / a = 2000 (overhead → linear), a / b = 1000 (linear → quadratic).
        let o = r.overhead_to_linear_tokens.unwrap();
        let q = r.linear_to_quadratic_tokens.unwrap();
        assert!((o / 2000.0 - 1.0).abs() < 0.25, "{o}");
        assert!((q / 1000.0 - 1.0).abs() < 0.25, "{q}");
        assert_eq!(r.break_tokens, None);
        let c = &r.params[0];
        let (lo, hi) = c.ci95.unwrap();
        assert!(lo < 40.0 && 40.0 < hi, "{c:?}");
        assert!(
            (r.predict_ms(2048.0) / (40.0 + 0.02 * 2048.0 + 2e-5 * 2048.0 * 2048.0) - 1.0).abs()
                < 0.05
        );
    }

    #[test]
    fn a_pure_power_law_stays_a_power_law() {
        let r = select(&curve(|l| 0.05 * l.powf(1.3))).unwrap();
        assert_eq!(r.form, Form::PowerLaw, "{r:#?}");
        assert!(r.knee_tokens.is_none());
        assert_eq!(
            (
                r.overhead_to_linear_tokens,
                r.linear_to_quadratic_tokens,
                r.break_tokens
            ),
            (None, None, None)
        );
        let k = &r.params[1];
        assert!((k.value - 1.3).abs() < 0.02, "{k:?}");
    }

    #[test]
    fn a_flat_then_steep_curve_is_a_broken_power_law_at_its_break() {
        // Slope 0.1 up to 512 tokens, then 1.8.
        let f = |l: f64| {
            if l <= 512.0 {
                10.0 * (l / 512.0).powf(0.1)
            } else {
                10.0 * (l / 512.0).powf(1.8)
            }
        };
        let r = select(&curve(f)).unwrap();
        assert_eq!(r.form, Form::BrokenPowerLaw, "{r:#?}");
        assert_eq!(r.knee_tokens, Some(512.0));
        assert_eq!(r.break_tokens, Some(512.0));
        assert_eq!(r.linear_to_quadratic_tokens, None);
        assert!(
            r.describe_params().ends_with(
                "intervals given the break at 512 tokens, which was searched: too narrow"
            )
        );
        assert!(
            (r.params[1].value - 0.1).abs() < 0.1
                && (r.params[1].value + r.params[2].value - 1.8).abs() < 0.1
        );
    }

    #[test]
    fn too_few_lengths_keep_the_power_law_and_say_so() {
        let pts = [(128.0, 10.0), (256.0, 21.0), (512.0, 39.0), (1024.0, 90.0)];
        let r = select(&pts).unwrap();
        assert_eq!(r.form, Form::PowerLaw);
        assert!(r.selection.contains("4 length(s)"), "{}", r.selection);
        assert!(r.aicc.iter().all(|(_, s)| s.is_none()));
        assert!(select(&[(128.0, 10.0), (128.0, 11.0)]).is_none());
    }

    #[test]
    fn the_prediction_band_contains_the_fit_and_widens_outside_the_data() {
        let r = select(&curve(|l| 40.0 + 0.02 * l + 2e-5 * l * l)).unwrap();
        let rel = |l: f64| {
            let (lo, hi) = r.interval_ms(l).unwrap();
            assert!(lo < r.predict_ms(l) && r.predict_ms(l) < hi);
            (hi - lo) / r.predict_ms(l)
        };
        assert!(rel(32768.0) > rel(512.0));
    }
}
