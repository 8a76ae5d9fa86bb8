//! The latency–throughput front of a batch sweep: at one model and context length, a batch size is on the front
//! when no other batch size is both at most as slow per request and of at least as many sequences/s (and better in
//! one). Points off the front are never worth running: another batch size beats them on both counts. The front is
//! what people size servers by: pick the largest throughput whose latency fits the budget.

use crate::report::aggregate::Row;

/// For each (latency, throughput) point, whether it is on the front (lower latency and higher throughput are
/// better). Equal points are all on it.
pub fn front(points: &[(f64, f64)]) -> Vec<bool> {
    points
        .iter()
        .map(|&(lat, thr)| {
            !points
                .iter()
                .any(|&(l, t)| l <= lat && t >= thr && (l < lat || t > thr))
        })
        .collect()
}

/// The time a request (one sequence of the batch) waits for its answer: the whole generation for generators, the
/// forward pass for encoders.
pub fn request_latency_ms(r: &Row) -> Option<f64> {
    if r.arch == "encoder" {
        r.latency_ms
    } else {
        r.e2e_latency_ms
    }
}

/// One model and length's batch sizes (of one results file): the rows' indices with their (latency, throughput),
/// in batch order, and whether each is on the front (`None` when only one batch size was measured: nothing to
/// compare against).
pub struct Group {
    pub members: Vec<(usize, (f64, f64))>,
    pub on_front: Vec<Option<bool>>,
}

/// The `ok` rows with a positive, finite `point`, grouped by (results file, model, length), each group's front
/// computed. The table's `pareto_front` column and the trade-off figure both come from here.
pub fn groups(rows: &[Row], point: impl Fn(&Row) -> Option<(f64, f64)>) -> Vec<Group> {
    type Key<'r> = (&'r str, &'r str, Option<i64>);
    type Members = Vec<(usize, (f64, f64))>;
    let mut by_key: std::collections::BTreeMap<Key<'_>, Members> =
        std::collections::BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        let Some((l, t)) = point(r).filter(|_| r.status == "ok") else {
            continue;
        };
        if l > 0.0 && t > 0.0 && l.is_finite() && t.is_finite() {
            by_key
                .entry((r.exp_id.as_str(), r.model.as_str(), r.context_length))
                .or_default()
                .push((i, (l, t)));
        }
    }
    by_key
        .into_values()
        .map(|mut members| {
            members.sort_by_key(|(i, _)| rows[*i].batch_size);
            let on_front = if members.len() < 2 {
                vec![None; members.len()]
            } else {
                front(&members.iter().map(|m| m.1).collect::<Vec<_>>())
                    .into_iter()
                    .map(Some)
                    .collect()
            };
            Group { members, on_front }
        })
        .collect()
}

/// A request's (latency, sequences/s): the table's front is drawn in this plane.
pub fn request_point(r: &Row) -> Option<(f64, f64)> {
    Some((request_latency_ms(r)?, r.sequences_per_sec?))
}

/// Sets `pareto_front` on every `ok` row whose model and length were measured at more than one batch size (from
/// `request_latency_ms` and `sequences_per_sec`); clears it elsewhere.
pub fn mark(rows: &mut [Row]) {
    for r in rows.iter_mut() {
        r.pareto_front = None;
    }
    let marks: Vec<(usize, bool)> = groups(rows, request_point)
        .into_iter()
        .flat_map(|g| {
            g.members
                .into_iter()
                .zip(g.on_front)
                .filter_map(|((i, _), on)| Some((i, on?)))
        })
        .collect();
    for (i, on) in marks {
        rows[i].pareto_front = Some(if on { "yes" } else { "no" }.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_point_beaten_on_both_counts_is_off_the_front() {
        // Batch 1, 2, 4, 8: 8 is slower than 4 and no faster (memory-bound past 4).
        let points = [(10.0, 100.0), (12.0, 160.0), (20.0, 200.0), (45.0, 180.0)];
        assert_eq!(front(&points), [true, true, true, false]);
        // Ties: both stay; strictly better in one count wins.
        assert_eq!(front(&[(5.0, 5.0), (5.0, 5.0)]), [true, true]);
        assert_eq!(front(&[(5.0, 5.0), (5.0, 6.0)]), [false, true]);
        assert_eq!(front(&[]), Vec::<bool>::new());
    }

    fn row(length: i64, batch: i64, ms: f64, seq_s: f64) -> Row {
        Row {
            exp_id: "e".into(),
            model: "bert".into(),
            arch: "encoder".into(),
            status: "ok".into(),
            context_length: Some(length),
            batch_size: Some(batch),
            latency_ms: Some(ms),
            sequences_per_sec: Some(seq_s),
            ..Row::default()
        }
    }

    #[test]
    fn rows_are_marked_per_model_and_length_and_only_with_two_batch_sizes() {
        let mut rows = vec![
            row(128, 1, 10.0, 100.0),
            row(128, 2, 30.0, 66.0),
            row(128, 4, 30.0, 133.0),
            row(512, 1, 40.0, 25.0),
            Row {
                status: "oom".into(),
                ..row(512, 8, 0.0, 0.0)
            },
        ];
        mark(&mut rows);
        let marks: Vec<Option<&str>> = rows.iter().map(|r| r.pareto_front.as_deref()).collect();
        assert_eq!(
            marks,
            [Some("yes"), Some("no"), Some("yes"), None, None],
            "batch 2 is beaten by batch 4 (same latency, more sequences/s); 512 has one measured batch"
        );
    }
}
