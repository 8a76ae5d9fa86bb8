//! Command-line arguments (clap derive types only; `lib.rs` turns them into work).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

pub const DEFAULT_PIPELINE: &str = "pipelines/scaling.yaml";

const EXAMPLES: &str = "\
Examples:
  e3pipe run                               measure pipelines/scaling.yaml (only what is not cached)
  e3pipe run pipelines/quick.yaml          a first look in under a minute
  e3pipe run pipelines/quick.yaml --dry-run
  e3pipe graph pipelines/quick.yaml
  e3pipe compare ../before . --noise-from ../before-repeat
  e3pipe cache --prune --dry-run

Exit status: 0 done, 1 some work failed, 2 invalid input (nothing written), 3 `compare` could not tell,
130 interrupted (finished points are kept).";

#[derive(Debug, Parser)]
#[command(
    name = "e3pipe",
    // The libtorch release a build is for: a bundle for another release is refused at start-up.
    version = concat!(env!("CARGO_PKG_VERSION"), " (libtorch ", env!("E3PIPE_LIBTORCH_VERSION"), ")"),
    about = "Measure how transformer inference latency grows with context length",
    after_help = EXAMPLES
)]
pub struct Cli {
    /// More detail on stderr: -v the log at info level, -vv at debug (`RUST_LOG` overrides).
    #[arg(short, long, action = clap::ArgAction::Count, global = true, help_heading = "Global options")]
    pub verbose: u8,
    /// Results (stdout) and errors only: no progress, status lines or warnings.
    #[arg(short, long, global = true, help_heading = "Global options")]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline's steps in dependency order, measuring only the points not cached.
    #[command(after_help = "\
Examples:
  e3pipe run                                   pipelines/scaling.yaml
  e3pipe run pipelines/quick.yaml --dry-run    each point: cached, new, stale (and why)
  e3pipe run pipelines/quick.yaml --only plot  redraw the figures from the tables
  e3pipe run pipelines/quick.yaml --force bench-gpt2
  e3pipe run pipelines/scaling.yaml --executor slurm --no-wait

The closing lines: `points: C computed, K cached, F failed, I infeasible` (this exact form), then what each
latency is, which points are new, the wall time and the report page (figs/report.html).")]
    Run {
        /// Pipeline file (YAML); its project is the folder above `pipelines/`.
        #[arg(default_value = DEFAULT_PIPELINE)]
        pipeline: PathBuf,
        /// Run only these steps (comma-separated), reading what upstream steps left on disk.
        #[arg(long, value_delimiter = ',', value_name = "STEPS")]
        only: Vec<String>,
        /// Print the plan (each point cached / new / stale, and why) and run nothing.
        #[arg(long)]
        dry_run: bool,
        /// Measure again ignoring the cache: every step, or only the named ones (`--force=a,b`).
        #[arg(long, value_delimiter = ',', num_args = 0..=1, default_missing_value = "", value_name = "STEPS")]
        force: Option<Vec<String>>,
        /// What measures the points: the worker on this machine, or Slurm array jobs (overrides the pipeline's
        /// `executor:` block).
        #[arg(long, value_enum)]
        executor: Option<ExecutorArg>,
        /// With Slurm: submit the arrays and return; a later `e3pipe run` collects what landed.
        #[arg(long)]
        no_wait: bool,
    },
    /// Draw the pipeline's DAG (steps, what each needs, and bench steps no aggregate reads).
    #[command(after_help = "\
Examples:
  e3pipe graph pipelines/quick.yaml
  e3pipe graph --format dot | dot -Tpng > dag.png
  e3pipe graph --format mermaid >> docs/pipeline.md")]
    Graph {
        /// Pipeline file (YAML).
        #[arg(default_value = DEFAULT_PIPELINE)]
        pipeline: PathBuf,
        /// `text` for people, `dot` for Graphviz, `mermaid` for Markdown pages.
        #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
        format: GraphFormat,
    },
    /// Print the machine's measured roofs (matmul FLOP/s, memory bandwidth) for the pipeline's bench steps.
    ///
    /// Measures them where they are not cached for this run; the roofline and MFU columns read points against
    /// the roof of the run that measured them.
    Peaks {
        /// Pipeline file (YAML).
        #[arg(default_value = DEFAULT_PIPELINE)]
        pipeline: PathBuf,
        /// Measure again even when cached.
        #[arg(long)]
        force: bool,
    },
    /// Did inference get slower? Compare two runs' points.
    ///
    /// Exit 0 when nothing is slower and everything could be told, 1 when something is slower, 3 when nothing
    /// is but some rows are inconclusive (too few runs, or the run-to-run drift unknown: give `--noise-from`),
    /// 2 for invalid input.
    #[command(after_help = "\
Examples:
  e3pipe compare ../main .                                  two projects (rows between runs: inconclusive)
  e3pipe compare ../main . --noise-from ../main-repeat      with the run-to-run drift measured
  e3pipe compare results/a.json results/b.json --metric tbt_ms --format markdown
  e3pipe baseline save before-upgrade && e3pipe compare --baseline before-upgrade")]
    Compare {
        /// BASELINE CANDIDATE: the reference, and what is judged against it; each a project folder, a results
        /// folder (`latest/inference/`) or one results file. With `--baseline NAME`, only the candidate
        /// (default: this project).
        #[arg(value_name = "PATH", num_args = 0..=2)]
        paths: Vec<PathBuf>,
        /// A baseline saved in this project (`e3pipe baseline save NAME`) as the reference.
        #[arg(long = "baseline", value_name = "NAME")]
        baseline_name: Option<String>,
        /// Metrics to compare (repeat or comma-separate): `latency` (first token / forward), `itl_ms`,
        /// `e2e_latency_ms` (these three by default), or any statistic a point records (`tbt_ms`,
        /// `encoder_latency_ms`, `tokens_per_sec`…).
        #[arg(long = "metric", value_delimiter = ',')]
        metrics: Vec<String>,
        /// Relative change below which nothing is called slower or faster (0.03 = ±3 %).
        #[arg(long, default_value_t = 0.03)]
        threshold: f64,
        /// Significance level, after correction for the number of tests.
        #[arg(long, default_value_t = 0.05)]
        alpha: f64,
        /// Holm (no false alarm at all with probability 1 - alpha) or Benjamini–Hochberg (false alarms at most
        /// alpha of the changes reported).
        #[arg(long, value_enum, default_value_t = CorrectionArg::Holm)]
        correction: CorrectionArg,
        /// `table` for a terminal, `markdown` for a pull request, `json` for tools, `html` for a page like the
        /// report's (`> compare.html`).
        #[arg(long, value_enum, default_value_t = CompareFormat::Table)]
        format: CompareFormat,
        /// Compare points measured on different hardware or with a different dtype, thread count, batch,
        /// generated tokens or measuring code (refused by default).
        #[arg(long)]
        allow_different_hardware: bool,
        /// Compare points measured by different measuring code (two builds on one machine: the usual CI gate),
        /// still refusing other hardware, dtype, threads or generated tokens.
        #[arg(long)]
        allow_different_code: bool,
        /// Another run of the baseline, made the same way (repeat the option for more): how far it moved from the
        /// baseline, as a whole and row by row, measures the run-to-run noise; changes within it are not called.
        #[arg(long, value_name = "REPEAT")]
        noise_from: Vec<PathBuf>,
    },
    /// What a bench step would measure on here: device, GPU, CUDA runtime, libtorch, threads, CPU.
    ///
    /// The GPU's model, memory, compute capability, UUID, MIG profile, driver and power limit; the CUDA runtime
    /// and cuDNN; the loaded libtorch. Exit 2 when the asked-for device cannot be used.
    Identify {
        /// The model config's `device:` to resolve (`auto`, `cpu`, `cuda`, `cuda:N`).
        #[arg(long, default_value = "auto")]
        device: String,
        /// `text` for people, `json` for tools.
        #[arg(long, value_enum, default_value_t = IdentifyFormat::Text)]
        format: IdentifyFormat,
    },
    /// Every point's measurements over the project's runs (all of `results/`), and a trend figure.
    ///
    /// One line per run, oldest first, with the median (and its interval for latency), marking runs of other
    /// measuring code or on other hardware than the newest; `figs/history.png` (+ `.svg`) draws them.
    #[command(after_help = "\
Examples:
  e3pipe history                              every point of this project
  e3pipe history --model gpt2-medium --length 512
  e3pipe history --metric tbt_ms --format json")]
    History {
        /// The project folder (or any file inside it).
        #[arg(default_value = ".")]
        project: PathBuf,
        /// Only this model.
        #[arg(long)]
        model: Option<String>,
        /// Only this context length.
        #[arg(long)]
        length: Option<i64>,
        /// Only this batch size.
        #[arg(long)]
        batch: Option<i64>,
        /// A numeric column of the results table (`latency_ms` by default; `tbt_ms`, `sequences_per_sec`, …).
        #[arg(long)]
        metric: Option<String>,
        /// `text` for people, `json` for tools.
        #[arg(long, value_enum, default_value_t = HistoryFormat::Text)]
        format: HistoryFormat,
        /// Print only; do not draw `figs/history`.
        #[arg(long)]
        no_figure: bool,
    },
    /// Named baselines inside the project: save the current results, list them; compare with `--baseline NAME`.
    Baseline {
        #[command(subcommand)]
        action: BaselineAction,
    },
    /// Show the point cache: points per model and bytes on disk; `--prune` removes what no pipeline plans.
    #[command(after_help = "\
Examples:
  e3pipe cache                      this project's cache
  e3pipe cache --prune --dry-run    what a prune would remove
  e3pipe cache ../other-project --prune")]
    Cache {
        /// The project folder (or any file inside it, such as one of its pipelines).
        #[arg(default_value = ".")]
        project: PathBuf,
        /// Remove the entries no pipeline in the project's `pipelines/` plans (measurements of its points on
        /// other machines are kept), and the results of models no pipeline measures.
        #[arg(long)]
        prune: bool,
        /// With `--prune`: list what would be removed and remove nothing.
        #[arg(long, requires = "prune")]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum BaselineAction {
    /// Save every model's current results (`latest/inference/`) as `baselines/NAME/`.
    Save {
        name: String,
        /// The project folder (or any file inside it).
        #[arg(default_value = ".")]
        project: PathBuf,
        /// Replace a baseline of that name.
        #[arg(long)]
        force: bool,
    },
    /// The project's baselines.
    List {
        /// The project folder (or any file inside it).
        #[arg(default_value = ".")]
        project: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HistoryFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExecutorArg {
    Local,
    Slurm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IdentifyFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    Text,
    Dot,
    Mermaid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CorrectionArg {
    Holm,
    Bh,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompareFormat {
    Table,
    Markdown,
    Json,
    Html,
}
