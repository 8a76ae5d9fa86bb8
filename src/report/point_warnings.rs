//! What to beware of in one point, said beside it (its hover text, its row of the report): an interval of the
//! median wider than ±10 %, outlier runs, a single run, a spread wider than 10 % where only a std is known.

use crate::report::aggregate::Row;

/// Half-width of the interval (or std), as a fraction of the median, above which a point is called wide.
pub const WIDE: f64 = 0.10;

pub fn point_warnings(r: &Row) -> Vec<String> {
    let mut out = Vec::new();
    if r.status != "ok" {
        return out;
    }
    let Some(median) = r.latency_ms.filter(|m| *m > 0.0) else {
        return out;
    };
    match (r.latency_ci_low_ms, r.latency_ci_high_ms, r.latency_std_ms) {
        (Some(lo), Some(hi), _) if (hi - lo) / 2.0 / median > WIDE => out.push(format!(
            "wide interval: ±{:.0} % of the median",
            (hi - lo) / 2.0 / median * 100.0
        )),
        (None, None, Some(std)) if std / median > WIDE => out.push(format!(
            "wide spread: std {:.0} % of the median",
            std / median * 100.0
        )),
        _ => {}
    }
    if let Some(k) = r.latency_outliers.filter(|k| *k > 0) {
        out.push(format!("{k} outlier run(s) (modified z-score above 3.5)"));
    }
    if r.n == Some(1) {
        out.push("one run: no interval".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_intervals_outliers_and_single_runs_are_named() {
        let mut r = Row {
            status: "ok".into(),
            latency_ms: Some(100.0),
            latency_ci_low_ms: Some(95.0),
            latency_ci_high_ms: Some(105.0),
            n: Some(5),
            ..Row::default()
        };
        assert!(point_warnings(&r).is_empty());
        r.latency_ci_high_ms = Some(130.0);
        r.latency_outliers = Some(2);
        assert_eq!(
            point_warnings(&r),
            [
                "wide interval: ±18 % of the median",
                "2 outlier run(s) (modified z-score above 3.5)"
            ]
        );
        let seed = Row {
            status: "ok".into(),
            latency_ms: Some(10.0),
            latency_std_ms: Some(2.0),
            ..Row::default()
        };
        assert_eq!(
            point_warnings(&seed),
            ["wide spread: std 20 % of the median"]
        );
    }
}
