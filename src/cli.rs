//! Command-line arguments (clap derive types only; `lib.rs` turns them into work).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

pub const DEFAULT_PIPELINE: &str = "pipelines/scaling.yaml";

#[derive(Debug, Parser)]
#[command(
    name = "e3pipe",
    // The libtorch release a build is for: a bundle for another release is refused at start-up.
    version = concat!(env!("CARGO_PKG_VERSION"), " (libtorch ", env!("E3PIPE_LIBTORCH_VERSION"), ")"),
    about = "Measure how transformer inference latency grows with context length"
)]
pub struct Cli {
    /// More logging (-v info, -vv debug); `RUST_LOG` overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline's steps in dependency order, reusing cached points.
    Run {
        /// Pipeline file.
        #[arg(default_value = DEFAULT_PIPELINE)]
        pipeline: PathBuf,
        /// Run only these steps (comma-separated), reading what upstream steps left on disk.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Print the plan (each point cached / new / stale) and run nothing.
        #[arg(long)]
        dry_run: bool,
        /// Recompute ignoring the cache: everything, or only the named steps (comma-separated).
        #[arg(long, value_delimiter = ',', num_args = 0..=1, default_missing_value = "")]
        force: Option<Vec<String>>,
        /// What measures the points: the worker on this machine, or Slurm array jobs (overrides the pipeline's
        /// `executor:` block).
        #[arg(long, value_enum)]
        executor: Option<ExecutorArg>,
        /// With Slurm: submit the arrays and return; a later `e3pipe run` collects what landed.
        #[arg(long)]
        no_wait: bool,
    },
    /// Draw the pipeline's DAG.
    Graph {
        #[arg(default_value = DEFAULT_PIPELINE)]
        pipeline: PathBuf,
        #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
        format: GraphFormat,
    },
    /// Print the machine's measured peaks (matmul FLOP/s, memory bandwidth) for the pipeline's bench steps,
    /// measuring them where they are not cached.
    Peaks {
        #[arg(default_value = DEFAULT_PIPELINE)]
        pipeline: PathBuf,
        /// Measure again even when cached.
        #[arg(long)]
        force: bool,
    },
    /// Did inference get slower? Compares two runs' points (project directories, results directories or results
    /// files): exit 0 when nothing is slower and everything could be told, 1 when something is slower, 3 when
    /// nothing is but some rows are inconclusive (too few runs to tell), 2 for invalid input.
    Compare {
        baseline: PathBuf,
        candidate: PathBuf,
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
    /// What a bench step would measure on here: the device, the GPU (model, memory, compute capability, UUID,
    /// MIG profile, driver, power limit), the CUDA runtime and cuDNN, the loaded libtorch, threads and the CPU.
    Identify {
        /// The model config's `device:` to resolve (`auto`, `cpu`, `cuda`, `cuda:N`).
        #[arg(long, default_value = "auto")]
        device: String,
        #[arg(long, value_enum, default_value_t = IdentifyFormat::Text)]
        format: IdentifyFormat,
    },
    /// Show the point cache; `--prune` removes entries no pipeline in `pipelines/` references.
    Cache {
        #[arg(default_value = DEFAULT_PIPELINE)]
        pipeline: PathBuf,
        #[arg(long)]
        prune: bool,
    },
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
}
