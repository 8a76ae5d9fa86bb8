//! Small multiples: past `MAX_SERIES_PER_PANEL` curves one panel is a tangle, so a figure then draws one row of
//! panels per architecture; each model keeps its colour from the figure-wide palette.

use crate::report::aggregate::Row;

/// The most curves one panel holds before the figure splits by architecture.
pub(super) const MAX_SERIES_PER_PANEL: usize = 8;

/// The rows one row of panels draws; `arch` is `None` when the figure is not split.
pub(super) struct Facet {
    pub(super) arch: Option<String>,
    pub(super) rows: Vec<Row>,
}

impl Facet {
    /// `title`, or `title — <arch>` in a split figure.
    pub(super) fn title(&self, title: &str) -> String {
        match &self.arch {
            Some(a) if a.is_empty() => format!("{title}: architecture not given"),
            Some(a) => format!("{title}: {a}"),
            None => title.to_string(),
        }
    }
}

/// Curves a panel of `rows` would draw: one per model and batch size.
fn curves(rows: &[Row]) -> usize {
    crate::report::aggregate::curves(rows).len()
}

/// Where an architecture's row goes: the three canonical ones first, in the order the pipeline names them.
pub(super) fn arch_order(arch: &str) -> (usize, &str) {
    match arch {
        "decoder" => (0, arch),
        "encoder-decoder" => (1, arch),
        "encoder" => (2, arch),
        _ => (3, arch),
    }
}

/// One facet of every row when they hold at most `MAX_SERIES_PER_PANEL` models, else one per architecture.
pub(super) fn facets(rows: &[Row]) -> Vec<Facet> {
    if curves(rows) <= MAX_SERIES_PER_PANEL {
        return vec![Facet {
            arch: None,
            rows: rows.to_vec(),
        }];
    }
    let mut archs: Vec<&str> = rows.iter().map(|r| r.arch.as_str()).collect();
    archs.sort_by_key(|a| arch_order(a));
    archs.dedup();
    archs
        .into_iter()
        .map(|arch| Facet {
            arch: Some(arch.to_string()),
            rows: rows.iter().filter(|r| r.arch == arch).cloned().collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize) -> Vec<Row> {
        (0..n)
            .map(|i| Row {
                model: format!("m{i}"),
                arch: ["encoder", "decoder", "encoder-decoder"][i % 3].into(),
                ..Row::default()
            })
            .collect()
    }

    #[test]
    fn eight_models_share_a_panel_and_nine_split_by_architecture_in_pipeline_order() {
        let few = facets(&rows(8));
        assert_eq!(few.len(), 1);
        assert_eq!(few[0].title("Latency"), "Latency");
        let many = facets(&rows(9));
        let archs: Vec<&str> = many.iter().filter_map(|f| f.arch.as_deref()).collect();
        assert_eq!(archs, ["decoder", "encoder-decoder", "encoder"]);
        assert!(many.iter().all(|f| f.rows.len() == 3));
        assert_eq!(many[0].title("Latency"), "Latency: decoder");
    }
}
