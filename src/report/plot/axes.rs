//! Axis scales as types: a panel says how its axes are drawn instead of taking flags.

use crate::report::plot::style::short_number;

/// Context length on a linear or a log2 axis (for sweeps over powers of two).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum XScale {
    Linear,
    Log2,
}

impl XScale {
    /// Where `length` sits on the axis.
    pub(super) fn of(self, length: f64) -> f64 {
        match self {
            XScale::Linear => length,
            XScale::Log2 => length.log2(),
        }
    }

    pub(super) fn desc(self) -> &'static str {
        match self {
            XScale::Linear => "Context length (tokens)",
            XScale::Log2 => "Context length (tokens, log2 scale)",
        }
    }

    /// The least padding either side of the data, in axis units.
    pub(super) fn min_pad(self) -> f64 {
        match self {
            XScale::Linear => 1.0,
            XScale::Log2 => 0.25,
        }
    }

    /// How many labels: one per power of two on a log2 axis.
    pub(super) fn label_count(self, min: f64, max: f64) -> usize {
        match self {
            XScale::Linear => 10,
            XScale::Log2 => ((max - min).round() as usize + 1).max(2),
        }
    }

    /// The length an axis position stands for, as a label.
    pub(super) fn label(self, at: f64) -> String {
        match self {
            XScale::Linear => format!("{at:.0}"),
            XScale::Log2 => format!("{:.0}", 2f64.powf(at)),
        }
    }
}

/// Values on a linear or a log10 axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum YScale {
    /// From zero: latency, where the curve's height against zero is the point.
    Linear,
    /// Fitted to the data (memory: a 5 % difference must not vanish into a band at the top).
    Fitted,
    #[allow(dead_code)] // for the roofline figure (issue 12); exercised by the unit test below
    Log10,
}

impl YScale {
    /// Whether `value` can be drawn at all (a log axis has no place for 0 or below).
    pub(super) fn shows(self, value: f64) -> bool {
        value.is_finite() && (self != YScale::Log10 || value > 0.0)
    }

    /// The bottom of the axis for data reaching `max`: 0, or below the smallest positive value on a log axis.
    pub(super) fn floor(self, values: &[f64], max: f64) -> f64 {
        match self {
            YScale::Linear => 0.0,
            YScale::Fitted => {
                let lo = values.iter().copied().fold(f64::MAX, f64::min).min(max);
                let span = (max / 1.1 - lo).max(lo.abs() * 0.02);
                (lo - 0.15 * span).max(0.0)
            }
            YScale::Log10 => {
                values
                    .iter()
                    .copied()
                    .fold(f64::MAX, f64::min)
                    .min(max / 10.0)
                    * 0.8
            }
        }
    }

    /// Where `value` sits on the axis (clamped to `floor` on a log axis).
    pub(super) fn of(self, value: f64, floor: f64) -> f64 {
        match self {
            YScale::Linear | YScale::Fitted => value,
            YScale::Log10 => value.max(floor).log10(),
        }
    }

    /// The label of an axis position, with `decimals` for every label of a linear axis (`ticks::decimals_for`).
    pub(super) fn label(self, at: f64, decimals: usize) -> String {
        match self {
            YScale::Linear | YScale::Fitted => format!("{at:.decimals$}"),
            YScale::Log10 => short_number(10f64.powf(at)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_place_and_label_values() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(XScale::Log2.of(1024.0), 10.0));
        assert_eq!(XScale::Log2.label(9.0), "512");
        assert_eq!(XScale::Log2.label_count(6.0, 10.0), 5);
        assert_eq!(XScale::Linear.label(300.0), "300");
        assert!(!YScale::Log10.shows(0.0));
        assert!(YScale::Linear.shows(0.0));
        let floor = YScale::Log10.floor(&[5.0, 50.0], 100.0);
        assert!(close(floor, 4.0));
        assert!(close(YScale::Log10.of(1.0, floor), floor.log10()));
        assert_eq!(YScale::Log10.label(2.0, 0), "100");
        assert_eq!(YScale::Linear.label(0.05, 2), "0.05");
        assert_eq!(YScale::Linear.label(0.1, 2), "0.10");
        // Memory fitted to the data: 0.23–0.31 GB does not start at 0.
        let floor = YScale::Fitted.floor(&[0.23, 0.31], 0.31 * 1.1);
        assert!(floor > 0.2 && floor < 0.23, "{floor}");
    }
}
