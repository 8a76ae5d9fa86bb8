//! `e3pipe compare BASELINE CANDIDATE`: did inference get slower? Points are matched by (model, architecture,
//! context length, metric); each matched pair is tested (`significance`) and called `slower` or `faster` only when
//! the corrected test is significant at alpha and the whole bootstrap interval of the ratio of medians lies beyond
//! the noise band (criterion's rule); anything else is `no change`.
//!
//! The test sees only the noise inside each run. Between two runs the machine's state drifts (measured here: two
//! identical quick runs differ by up to ±40 % on a shared 2-core machine), which no single run can show. So a row
//! whose sides come from different runs is called a change only when that drift is known: given repeats of the
//! baseline (`--noise-from`, one or more), each repeat's ratios to the baseline measure how far a whole run moves
//! (their median) and how far rows move around that (`significance::run_to_run_sd`), and the noise band becomes
//! the larger of `--threshold` and both together (`Drift::band`), wide enough that an A/A comparison stays quiet;
//! without repeats such a row is `inconclusive`. The drift is not estimated from the compared rows
//! themselves: a real change that slows some rows more than others would read as noise and hide itself. Points measured under different
//! conditions (device, dtype, threads, batch, generated tokens, measuring code) are refused unless allowed. The
//! fitted scaling exponents are compared per model beside the points.

pub mod inputs;
pub mod render;
pub mod significance;

use serde::Serialize;

use crate::report::aggregate::fits;
use crate::report::student_t;
use inputs::{Point, Side};
use significance::{
    Correction, MIN_ROWS_FOR_NOISE, band_z, mann_whitney, median_of, ratio_interval, run_to_run_sd,
    smallest_p,
};

/// The metrics compared unless others are named: the headline latency, each run's inter-token latency and the
/// end-to-end time.
pub const DEFAULT_METRICS: [&str; 3] = ["latency", "itl_ms", "e2e_latency_ms"];

#[derive(Debug, Clone)]
pub struct Options {
    pub metrics: Vec<String>,
    /// Relative change below which nothing is called a change (0.03 = ±3 %).
    pub threshold: f64,
    pub alpha: f64,
    pub correction: Correction,
    /// Compare points measured on different hardware, dtype, threads or generated tokens.
    pub allow_different: bool,
    /// Compare points measured by different measuring code (build-to-build comparisons), nothing else relaxed.
    pub allow_different_code: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Slower,
    Faster,
    NoChange,
    /// Tested, but with so few runs a side that no p-value could reach alpha after correction: not "no change".
    Inconclusive,
    /// No raw samples on a side (the original tool's files), or fewer than two.
    NotTested,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Slower => "slower",
            Verdict::Faster => "faster",
            Verdict::NoChange => "no change",
            Verdict::Inconclusive => "inconclusive",
            Verdict::NotTested => "not tested",
        }
    }
}

/// One matched (model, length, batch size, metric).
#[derive(Debug, Clone, Serialize)]
pub struct Compared {
    pub model: String,
    pub arch: String,
    pub context_length: u64,
    pub batch_size: u64,
    pub metric: String,
    pub baseline_median: Option<f64>,
    pub candidate_median: Option<f64>,
    pub baseline_n: usize,
    pub candidate_n: usize,
    /// Candidate median / baseline median.
    pub ratio: Option<f64>,
    /// Percentile bootstrap interval of the ratio, aiming at `1 - alpha`; with a handful of runs a side its real
    /// coverage is lower (the resampled medians take few distinct values).
    pub ratio_ci: Option<(f64, f64)>,
    /// The bootstrap's SD of ln(ratio).
    #[serde(skip)]
    pub log_se: Option<f64>,
    /// Two-sided Mann–Whitney p-value, and adjusted for every test of the comparison.
    pub p_value: Option<f64>,
    pub p_adjusted: Option<f64>,
    pub verdict: Verdict,
    /// Both sides' points were measured in one run (`run_id`): no drift between runs lies between them.
    #[serde(skip)]
    pub same_run: bool,
}

/// One model's fitted scaling exponent on each side.
#[derive(Debug, Clone, Serialize)]
pub struct Exponent {
    pub model: String,
    pub batch_size: Option<i64>,
    pub baseline_k: f64,
    pub baseline_k_ci95: Option<(f64, f64)>,
    pub candidate_k: f64,
    pub candidate_k_ci95: Option<(f64, f64)>,
    pub delta_k: f64,
    /// `steeper`, `flatter` or `same` (Δk within t·SE of the difference at 95 %), `unknown` without SEs.
    pub change: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub baseline: String,
    pub candidate: String,
    pub threshold: f64,
    pub alpha: f64,
    pub correction: Correction,
    /// Run-to-run noise from the repeats: how far rows move apart (SD of ln ratio around the run's own shift) ...
    pub run_to_run_sd: Option<f64>,
    /// ... how far a whole run moves (RMS of each repeat's median ln ratio), and the band a change must clear.
    pub run_shift_sd: Option<f64>,
    pub noise_band: f64,
    pub rows: Vec<Compared>,
    pub exponents: Vec<Exponent>,
    /// Conditions that differ between the sides (refused unless allowed).
    pub differences: Vec<String>,
    /// Points on one side only: `model @ length`.
    pub only_baseline: Vec<String>,
    pub only_candidate: Vec<String>,
    pub notes: Vec<String>,
}

impl Comparison {
    pub fn count(&self, verdict: Verdict) -> usize {
        self.rows.iter().filter(|r| r.verdict == verdict).count()
    }
}

/// The condition `--allow-different-code` relaxes.
pub const CODE: &str = "measuring code (method)";

/// What must be equal for two points' times to be compared, by name.
fn conditions(p: &Point) -> Vec<(&'static str, String)> {
    let Some(r) = &p.record else {
        return Vec::new();
    };
    vec![
        ("device", r.device.clone()),
        ("dtype", r.dtype.clone()),
        ("threads", r.threads.to_string()),
        ("num_tokens", r.num_tokens.to_string()),
        (CODE, short(&r.method)),
    ]
}

/// What may differ and is said (libtorch, e3pipe version, weights).
fn context(p: &Point) -> Vec<(&'static str, String)> {
    let Some(r) = &p.record else {
        return Vec::new();
    };
    vec![
        ("libtorch", r.libtorch_version.clone()),
        ("e3pipe", r.e3pipe_version.clone()),
        ("weights", r.weights.clone()),
    ]
}

fn short(method: &str) -> String {
    method.chars().take(12).collect()
}

/// A stable seed for one row's bootstrap.
fn seed(parts: &[&str]) -> u64 {
    let hash = blake3::hash(parts.join("\u{0}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&hash.as_bytes()[..8]);
    u64::from_le_bytes(bytes)
}

fn key(p: &Point) -> (String, String, u64, u64) {
    (p.model.clone(), p.arch.clone(), p.length, p.batch)
}

/// `model @ length`, with `× batch N` past batch 1.
fn point_name(p: &Point) -> String {
    if p.batch == 1 {
        format!("{} @ {}", p.model, p.length)
    } else {
        format!("{} @ {} × batch {}", p.model, p.length, p.batch)
    }
}

/// Higher is better for rates (`*_per_sec`); lower for times.
fn higher_is_better(metric: &str) -> bool {
    metric.ends_with("_per_sec")
}

/// Compares `candidate` against `baseline`; `repeats`, other runs of the baseline made the same way, measure the
/// run-to-run noise.
pub fn compare(
    baseline: &Side,
    candidate: &Side,
    repeats: &[Side],
    options: &Options,
) -> Comparison {
    let mut rows = Vec::new();
    let mut differences: Vec<String> = Vec::new();
    let mut notes: Vec<String> = baseline
        .notes
        .iter()
        .chain(&candidate.notes)
        .cloned()
        .collect();
    let mut only_baseline = Vec::new();
    let mut seed_points = 0;
    // Rows by model, then length (numerically), then the metrics in the order asked.
    let mut ordered: Vec<&Point> = baseline.points.iter().collect();
    ordered.sort_by(|x, y| (&x.model, x.batch, x.length).cmp(&(&y.model, y.batch, y.length)));
    for b in ordered {
        let Some(c) = candidate.points.iter().find(|c| key(c) == key(b)) else {
            only_baseline.push(point_name(b));
            continue;
        };
        for ((name, x), (_, y)) in conditions(b).iter().zip(conditions(c)) {
            if *x != y {
                let d = format!("{name}: `{x}` vs `{y}`");
                if !differences.contains(&d) {
                    differences.push(d);
                }
            }
        }
        for ((name, x), (_, y)) in context(b).iter().zip(context(c)) {
            if *x != y {
                let d = format!("{name} differs: `{x}` vs `{y}`");
                if !notes.contains(&d) {
                    notes.push(d);
                }
            }
        }
        if b.record.is_none() || c.record.is_none() {
            seed_points += 1;
        }
        let mut seen: Vec<String> = Vec::new();
        for metric in &options.metrics {
            let name = b.metric_name(metric);
            // `latency` and its own name (`ttft_ms`) are one metric here: test it once.
            if seen.contains(&name) {
                continue;
            }
            seen.push(name.clone());
            let (sa, sb) = (b.samples(metric), c.samples(metric));
            let from_record = |p: &Point, s: &[f64]| {
                if s.is_empty() {
                    (metric == "latency").then_some(p.latency_ms).flatten()
                } else {
                    Some(median_of(s))
                }
            };
            let (ma, mb) = (from_record(b, &sa), from_record(c, &sb));
            if ma.is_none() && mb.is_none() {
                // Not a metric of this architecture (an encoder has no `itl_ms`).
                continue;
            }
            let ratio = match (ma, mb) {
                (Some(a), Some(b)) if a > 0.0 => Some(b / a),
                _ => None,
            };
            let tested = sa.len() >= 2 && sb.len() >= 2;
            let interval = if tested {
                ratio_interval(
                    &sa,
                    &sb,
                    1.0 - options.alpha,
                    if b.batch == 1 {
                        seed(&[&b.model, &b.length.to_string(), &name])
                    } else {
                        seed(&[&b.model, &b.length.to_string(), &name, &b.batch.to_string()])
                    },
                )
            } else {
                None
            };
            rows.push(Compared {
                model: b.model.clone(),
                arch: b.arch.clone(),
                context_length: b.length,
                batch_size: b.batch,
                metric: name.clone(),
                baseline_median: ma,
                candidate_median: mb,
                baseline_n: sa.len(),
                candidate_n: sb.len(),
                ratio,
                ratio_ci: interval.map(|i| (i.low, i.high)),
                log_se: interval.map(|i| i.log_se),
                p_value: if tested { mann_whitney(&sa, &sb) } else { None },
                p_adjusted: None,
                verdict: Verdict::NotTested,
                same_run: same_run(b, c),
            });
        }
    }
    let only_candidate: Vec<String> = candidate
        .points
        .iter()
        .filter(|c| !baseline.points.iter().any(|b| key(b) == key(c)))
        .map(point_name)
        .collect();
    if seed_points > 0 {
        notes.push(format!(
            "{seed_points} matched point(s) have no raw samples on a side (files of the original tool): their medians are shown, not tested"
        ));
    }
    // Correct over every test made.
    let tested: Vec<usize> = (0..rows.len())
        .filter(|&i| rows[i].p_value.is_some())
        .collect();
    let p: Vec<f64> = tested.iter().filter_map(|&i| rows[i].p_value).collect();
    let adjusted = options.correction.adjust(&p);
    let (sd, shift_sd, band) = if repeats.is_empty() {
        if !tested.is_empty() {
            notes.push(
                "only each run's own spread is accounted for: two runs of the same code on a busy machine differ by more (see `--noise-from`)"
                    .into(),
            );
        }
        (None, None, options.threshold)
    } else {
        let noise = drift_from_repeats(baseline, repeats, options, &mut differences, &mut notes);
        let band = noise.map_or(options.threshold, |n| {
            options.threshold.max(n.band(options.alpha, tested.len()))
        });
        (noise.map(|n| n.row_sd), noise.map(|n| n.shift_sd), band)
    };
    // The smallest adjusted p-value a row could reach with its run counts (`floor`): never below its own smallest
    // attainable p; under Holm also never below m times the smallest any row can attain (the step-down's first
    // threshold, which every rejection has to pass). A row whose floor is above alpha could not be told.
    let floors = adjusted_floors(
        &tested
            .iter()
            .map(|&i| smallest_p(rows[i].baseline_n, rows[i].candidate_n))
            .collect::<Vec<_>>(),
        options.correction,
    );
    let mut between_runs = 0;
    for ((&i, q), floor) in tested.iter().zip(adjusted).zip(floors) {
        let row = &mut rows[i];
        row.p_adjusted = Some(q);
        row.verdict = verdict(row, q, options.alpha, band);
        if row.verdict == Verdict::NoChange && floor > options.alpha {
            row.verdict = Verdict::Inconclusive;
        }
        // A change beyond each run's own spread, between two runs, with nothing known of how far runs drift apart:
        // on a shared machine two runs of the same code do (README: 7 of 7 A/A pairs raised false alarms so), so
        // it cannot be told from drift.
        if repeats.is_empty()
            && !row.same_run
            && matches!(row.verdict, Verdict::Slower | Verdict::Faster)
        {
            row.verdict = Verdict::Inconclusive;
            between_runs += 1;
        }
    }
    if between_runs > 0 {
        notes.push(format!(
            "{between_runs} row(s) changed beyond each run's own spread, but they come from different runs and runs of the same code drift apart by more on a busy machine: inconclusive until the drift is known — measure the baseline again and pass that repeat with `--noise-from REPEAT`"
        ));
    }
    // Say when no row could ever have been called a change: too few runs for the number of tests.
    if let Some(best) = tested
        .iter()
        .map(|&i| smallest_p(rows[i].baseline_n, rows[i].candidate_n))
        .reduce(f64::min)
    {
        let floor = match options.correction {
            Correction::Holm => best * tested.len() as f64,
            Correction::Bh => best,
        };
        if floor > options.alpha {
            let factor = match options.correction {
                Correction::Holm => tested.len() as f64,
                Correction::Bh => 1.0,
            };
            let needed = (2..=60).find(|&n| smallest_p(n, n) * factor <= options.alpha);
            notes.push(format!(
                "with these run counts no change can be detected: the smallest attainable p-value is {best:.3} (exact Mann–Whitney), {floor:.3} after {} over {} tests, above alpha {}; {}",
                options.correction.describe(),
                tested.len(),
                options.alpha,
                needed.map_or_else(
                    || "measure more runs (`num_runs`)".to_string(),
                    |n| format!("at least {n} runs a side (`num_runs: {n}`) could show one")
                )
            ));
        }
    }
    Comparison {
        baseline: baseline.label.clone(),
        candidate: candidate.label.clone(),
        threshold: options.threshold,
        alpha: options.alpha,
        correction: options.correction,
        run_to_run_sd: sd,
        run_shift_sd: shift_sd,
        noise_band: band,
        rows,
        exponents: exponents(baseline, candidate),
        differences,
        only_baseline,
        only_candidate,
        notes,
    }
}

/// Per tested row, the smallest adjusted p-value it could reach given every row's smallest attainable raw p-value.
/// The drift between runs, from repeats of the baseline: each repeat's log ratios to the baseline are a shift of the
/// whole run (their median) plus a spread of rows around it.
#[derive(Debug, Clone, Copy)]
struct Drift {
    /// Row spread (SD of ln ratio, beyond each run's own), from every repeat's rows pooled around its shift.
    row_sd: f64,
    rows: usize,
    /// Whole-run shift (RMS of the repeats' shifts around 0: runs of the same code have no shift on average).
    shift_sd: f64,
    repeats: usize,
}

impl Drift {
    /// The relative band an A/A comparison's rows all stay within with probability about 1 - alpha: alpha split
    /// between the shift (Student's t with one degree of freedom per repeat: one repeat says little about how far
    /// a run can move) and the rows (`band_z`, Bonferroni over the tests).
    fn band(self, alpha: f64, tests: usize) -> f64 {
        let t_shift = crate::report::student_t::quantile(1.0 - alpha / 4.0, self.repeats as f64);
        (t_shift * self.shift_sd + band_z(alpha / 2.0, tests, self.rows) * self.row_sd).exp() - 1.0
    }
}

fn drift_from_repeats(
    baseline: &Side,
    repeats: &[Side],
    options: &Options,
    differences: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> Option<Drift> {
    let mut centred: Vec<f64> = Vec::new();
    let mut log_ses: Vec<f64> = Vec::new();
    let mut shifts: Vec<f64> = Vec::new();
    for r in repeats {
        let aa = compare(baseline, r, &[], options);
        for d in &aa.differences {
            differences.push(format!("repeat `{}`: {d}", r.label));
        }
        let aa_rows: Vec<&Compared> = aa.rows.iter().filter(|r| r.p_value.is_some()).collect();
        let log_ratios: Vec<f64> = aa_rows
            .iter()
            .filter_map(|r| r.ratio.filter(|x| *x > 0.0).map(f64::ln))
            .collect();
        if log_ratios.len() < MIN_ROWS_FOR_NOISE {
            notes.push(format!(
                "`{}` shares fewer than {MIN_ROWS_FOR_NOISE} tested rows with the baseline: not used for the run-to-run noise",
                r.label
            ));
            continue;
        }
        let shift = median_of(&log_ratios);
        shifts.push(shift);
        centred.extend(log_ratios.iter().map(|x| x - shift));
        log_ses.extend(aa_rows.iter().filter_map(|r| r.log_se));
    }
    let row_sd = run_to_run_sd(&centred, &log_ses)?;
    let shift_sd = (shifts.iter().map(|s| s * s).sum::<f64>() / shifts.len() as f64).sqrt();
    let drift = Drift {
        row_sd,
        rows: centred.len(),
        shift_sd,
        repeats: shifts.len(),
    };
    notes.push(format!(
        "run-to-run noise from {} repeat(s) of the baseline: whole runs moved by {} (RMS {:.1} %), rows around that with a robust SD of {:.1} % beyond each run's own spread",
        drift.repeats,
        shifts
            .iter()
            .map(|s| format!("{:+.1} %", (s.exp() - 1.0) * 100.0))
            .collect::<Vec<_>>()
            .join(", "),
        shift_sd * 100.0,
        row_sd * 100.0
    ));
    if drift.repeats == 1 {
        notes.push(
            "one repeat shows one run's shift, not how far runs move: the band allows for that (Student's t, 1 degree of freedom); each further `--noise-from` narrows it"
                .into(),
        );
    }
    Some(drift)
}

/// Whether `b` and `c` were measured in one run: both name the same, non-empty `run_id`.
fn same_run(b: &Point, c: &Point) -> bool {
    match (&b.record, &c.record) {
        (Some(x), Some(y)) => !x.run_id.is_empty() && x.run_id == y.run_id,
        _ => false,
    }
}

fn adjusted_floors(attainable: &[f64], correction: Correction) -> Vec<f64> {
    let first_step = match correction {
        Correction::Holm => {
            attainable.len() as f64 * attainable.iter().copied().fold(f64::INFINITY, f64::min)
        }
        Correction::Bh => 0.0,
    };
    attainable.iter().map(|own| own.max(first_step)).collect()
}

fn verdict(row: &Compared, p_adjusted: f64, alpha: f64, band: f64) -> Verdict {
    let Some((lo, hi)) = row.ratio_ci else {
        return Verdict::NotTested;
    };
    if p_adjusted > alpha {
        return Verdict::NoChange;
    }
    // Symmetric in log space: ×(1 + band) slower or ÷(1 + band) faster.
    let (up, down) = (lo > 1.0 + band, hi < 1.0 / (1.0 + band));
    match (up, down, higher_is_better(&row.metric)) {
        (true, _, false) | (_, true, true) => Verdict::Slower,
        (_, true, false) | (true, _, true) => Verdict::Faster,
        _ => Verdict::NoChange,
    }
}

fn exponents(baseline: &Side, candidate: &Side) -> Vec<Exponent> {
    let (fa, fb) = (fits(&baseline.rows), fits(&candidate.rows));
    fa.iter()
        .filter_map(|a| {
            let b = fb
                .iter()
                .find(|b| b.model == a.model && b.batch_size == a.batch_size)?;
            let delta = b.k - a.k;
            let change = match (a.k_stderr, b.k_stderr) {
                (Some(sa), Some(sb)) => {
                    let df = a.df.min(b.df).max(1) as f64;
                    let limit = student_t::quantile(0.975, df) * sa.hypot(sb);
                    if delta > limit {
                        "steeper"
                    } else if delta < -limit {
                        "flatter"
                    } else {
                        "same"
                    }
                }
                _ => "unknown",
            };
            Some(Exponent {
                model: a.model.clone(),
                batch_size: a.batch_size,
                baseline_k: a.k,
                baseline_k_ci95: a.k_ci95,
                candidate_k: b.k,
                candidate_k_ci95: b.k_ci95,
                delta_k: delta,
                change,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_inconclusive_only_when_no_ordering_of_the_tests_lets_it_reach_alpha() {
        // 3 runs a side can never pass: 0.1 raw, 1.4 after Holm over 14 tests.
        let three = smallest_p(3, 3);
        assert!((three - 0.1).abs() < 1e-12);
        assert!(
            adjusted_floors(&[three; 14], Correction::Holm)
                .iter()
                .all(|f| *f > 0.05)
        );
        // 5 runs a side (0.0079) beside 20-run rows: under Holm it can pass as the last step of the step-down
        // (multiplier 1) once the others have; its floor is its own 0.0079, not 14 × 0.0079 = 0.11.
        let five = smallest_p(5, 5);
        let mut mixed = vec![smallest_p(20, 20); 13];
        mixed.push(five);
        let floors = adjusted_floors(&mixed, Correction::Holm);
        assert!(
            (floors[13] - five).abs() < 1e-15 && floors[13] < 0.05,
            "{floors:?}"
        );
        // Alone, the same 5-run rows are held back by the first step: 14 × 0.0079.
        assert!(adjusted_floors(&[five; 14], Correction::Holm)[0] > 0.05);
        // Benjamini–Hochberg has no such first step.
        assert!(adjusted_floors(&[five; 14], Correction::Bh)[0] < 0.05);
    }

    #[test]
    fn the_band_covers_a_whole_run_moving_and_narrows_with_more_repeats() {
        // Rows spread 2 % around their run's shift; runs moved by 10 %.
        let drift = |repeats: usize| Drift {
            row_sd: 0.02,
            rows: 20 * repeats,
            shift_sd: 0.1f64.ln_1p(),
            repeats,
        };
        let (one, three) = (drift(1).band(0.05, 20), drift(3).band(0.05, 20));
        // Student's t at 1 - 0.05/4 with 1 degree of freedom is 25.45: one repeat's 10 % says little.
        assert!(one > 5.0, "{one}");
        // With 3 repeats t = 4.18: about exp(4.18 × 0.0953 + z × 0.02) - 1.
        assert!(three > 0.5 && three < 0.7, "{three}");
        // The old band saw only the rows' spread: a 10 % shift of the whole run passed as a change.
        let spread_only = (band_z(0.05, 20, 20) * 0.02f64).exp() - 1.0;
        assert!(spread_only < 0.1, "{spread_only}");
        // No drift at all: nothing to widen.
        let still = Drift {
            row_sd: 0.0,
            rows: 20,
            shift_sd: 0.0,
            repeats: 1,
        };
        assert!(still.band(0.05, 20).abs() < 1e-12);
    }
}
