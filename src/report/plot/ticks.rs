//! Axis ticks on the 1-2-5 sequence (`10 20 50 100`, `0.1 0.2 0.5`), the way people read scales, with one number
//! format per axis (`0.05 0.10 0.15`, never `0.050 0.10`). Log axes are drawn over log10 of the values; their ticks
//! are the 1-2-5 values of each decade in range, labelled with the values.

/// Tick values in the axis's own units for values spanning `lo..=hi` (log10 units when `log`).
pub(super) fn ticks(lo: f64, hi: f64, log: bool) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi < lo {
        return Vec::new();
    }
    if log {
        let in_range = |mantissas: &[f64]| -> Vec<f64> {
            let mut out = Vec::new();
            for decade in (lo.floor() as i32 - 1)..=(hi.ceil() as i32) {
                for m in mantissas {
                    let v = (m * 10f64.powi(decade)).log10();
                    if v >= lo - 1e-9 && v <= hi + 1e-9 {
                        out.push(v);
                    }
                }
            }
            out
        };
        let coarse = in_range(&[1.0, 2.0, 5.0]);
        if coarse.len() >= 2 {
            return coarse;
        }
        let fine = in_range(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
        if fine.len() >= 3 {
            return fine;
        }
        // Within less than a decade: the linear 1-2-5 ticks of the values, placed on the log axis.
        return ticks(10f64.powf(lo), 10f64.powf(hi), false)
            .into_iter()
            .filter(|v| *v > 0.0)
            .map(f64::log10)
            .collect();
    }
    let step = step(lo, hi);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last.max(first))
        .map(|i| i as f64 * step)
        .filter(|v| *v <= hi + step * 1e-9)
        .collect()
}

/// Log-axis ticks in the values' own units (for plotters' native log axes).
pub(super) fn log_values(lo: f64, hi: f64) -> Vec<f64> {
    if lo <= 0.0 || hi <= 0.0 {
        return Vec::new();
    }
    ticks(lo.log10(), hi.log10(), true)
        .into_iter()
        .map(|t| {
            // Back from log10 to the exact tick (`20`, not `20.000000000000004`): 12 significant digits.
            let v = 10f64.powf(t);
            let scale = 10f64.powi(11 - v.log10().floor() as i32);
            (v * scale).round() / scale
        })
        .collect()
}

/// The 1-2-5 step giving about six ticks over `lo..=hi`.
fn step(lo: f64, hi: f64) -> f64 {
    let raw = ((hi - lo) / 6.0).max(f64::MIN_POSITIVE);
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude)
}

/// Decimals every label of a linear axis over `lo..hi` gets, from the 1-2-5 step plotters' ~10 labels take.
pub(super) fn decimals_for(lo: f64, hi: f64) -> usize {
    let step = ((hi - lo) / 10.0).abs();
    if !step.is_finite() || step <= 0.0 {
        return 0;
    }
    (-step.log10().floor()).clamp(0.0, 6.0) as usize
}

/// Labels for `ticks` with one format for the axis: as many decimals as its finest tick needs.
pub(super) fn labels(ticks: &[f64], log: bool) -> Vec<String> {
    let values: Vec<f64> = ticks
        .iter()
        .map(|t| if log { 10f64.powf(*t) } else { *t })
        .collect();
    let decimals = values.iter().map(|v| decimals_of(*v)).max().unwrap_or(0);
    values
        .iter()
        .map(|v| {
            if v.abs() >= 1e6 {
                format!("{v:.0e}")
            } else {
                format!("{v:.decimals$}")
            }
        })
        .collect()
}

/// Decimals `v` needs when it is a 1-2-5 tick (`0.05` -> 2, `20` -> 0).
fn decimals_of(v: f64) -> usize {
    if v == 0.0 || v.abs() >= 1.0 {
        return 0;
    }
    for d in 1..=9 {
        let scaled = v * 10f64.powi(d);
        if (scaled - scaled.round()).abs() < 1e-6 * scaled.abs().max(1.0) {
            return d as usize;
        }
    }
    9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_ticks_step_by_one_two_or_five() {
        assert_eq!(
            ticks(0.0, 600.0, false),
            [0.0, 100.0, 200.0, 300.0, 400.0, 500.0, 600.0]
        );
        assert_eq!(ticks(4.8, 7.7, false), [5.0, 5.5, 6.0, 6.5, 7.0, 7.5]);
        let t = ticks(0.04, 0.16, false);
        assert_eq!(
            labels(&t, false),
            ["0.04", "0.06", "0.08", "0.10", "0.12", "0.14", "0.16"]
        );
    }

    #[test]
    fn log_ticks_are_the_one_two_five_values_of_each_decade() {
        let t = ticks(32f64.log10(), 512f64.log10(), true);
        assert_eq!(labels(&t, true), ["50", "100", "200", "500"]);
        let t = ticks(0.03f64.log10(), 0.4f64.log10(), true);
        assert_eq!(labels(&t, true), ["0.05", "0.10", "0.20"]);
        // Within a decade: the values' own 1-2-5 steps.
        let t = ticks(10.5f64.log10(), 15.4f64.log10(), true);
        assert_eq!(labels(&t, true), ["11", "12", "13", "14", "15"]);
    }

    #[test]
    fn one_format_per_axis() {
        assert_eq!(labels(&[0.05, 0.1, 0.15], false), ["0.05", "0.10", "0.15"]);
        assert_eq!(labels(&[10.0, 20.0], false), ["10", "20"]);
    }
}
