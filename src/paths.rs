//! Every path e3pipe writes in a project, in one place: the stages that write them and the ones that read them
//! (and the messages that name them) use these, so an output cannot be spelled two ways.

use std::path::{Path, PathBuf};

/// Cached points, locks, the settled index and the file-hash memo.
pub const CACHE_DIR: &str = "cache";
/// One results document per bench step that computed something (the history).
pub const RESULTS_DIR: &str = "results";
/// The current results document per model, which aggregate reads.
pub const LATEST_DIR: &str = "latest/inference";
/// aggregate's tables.
pub const TABLES_DIR: &str = "tables";
/// plot's figures.
pub const FIGS_DIR: &str = "figs";
/// The table plot draws from, relative to the project root.
pub const RESULTS_TABLE: &str = "tables/inference_results.csv";
/// Everything aggregate writes in [`TABLES_DIR`] (the first is [`RESULTS_TABLE`]).
pub const TABLE_FILES: [&str; 4] = [
    "inference_results.csv",
    "inference_results.parquet",
    "scaling_fit.csv",
    "summary.csv",
];
/// Where aggregate records what it read and wrote (in [`TABLES_DIR`]).
pub const TABLES_STAMP: &str = ".aggregate.stamp";
/// The figures plot draws in [`FIGS_DIR`], each as `<name>.png` and `<name>.svg` (the first is the headline).
pub const FIGURES: [&str; 6] = [
    "latency_curve",
    "ttft_tbt_curves",
    "inference_performance",
    "inference_memory_tradeoff",
    "roofline",
    "batch_tradeoff",
];
/// The trend figure `e3pipe history` draws in [`FIGS_DIR`] (PNG and SVG).
pub const HISTORY_FIGURE: &str = "history";
/// Named baselines (`e3pipe baseline save NAME`): `baselines/<name>/`, a copy of `latest/inference/`.
pub const BASELINES_DIR: &str = "baselines";

/// The self-contained page plot writes beside the figures (in [`FIGS_DIR`]).
pub const REPORT_PAGE: &str = "report.html";
/// Where plot records what it read and wrote (in [`FIGS_DIR`]).
pub const FIGS_STAMP: &str = ".plot.stamp";

/// `figs/latency_curve.png`, the figure messages name.
pub fn headline_figure() -> String {
    format!("{FIGS_DIR}/{}.png", FIGURES[0])
}

/// Model names become file names; keep them to a safe alphabet.
pub fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `latest/inference/<model>.json`.
pub fn latest_results(root: &Path, model: &str) -> PathBuf {
    root.join(LATEST_DIR)
        .join(format!("{}.json", sanitize(model)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_become_safe_file_names() {
        assert_eq!(sanitize("tiny/a b"), "tiny_a_b");
        assert_eq!(
            latest_results(Path::new("/p"), "gpt2/medium"),
            Path::new("/p/latest/inference/gpt2_medium.json")
        );
        assert_eq!(RESULTS_TABLE, format!("{TABLES_DIR}/{}", TABLE_FILES[0]));
        assert_eq!(headline_figure(), "figs/latency_curve.png");
    }
}
