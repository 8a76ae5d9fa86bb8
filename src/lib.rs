//! e3pipe measures how transformer inference latency and memory grow with context length.
//!
//! The stages read in the tree's order:
//! - `pipeline::spec` reads and validates a pipeline YAML and the configs it names;
//! - `pipeline::graph` orders its steps as a petgraph DAG;
//! - `pipeline::plan` decides, per (model, context length) point, whether it is cached, new or stale;
//! - `pipeline::execute` settles cached points and hands the rest to the measuring worker (the `e3pipe-worker`
//!   crate in `worker/`, the only part that links libtorch), which caches each point (`cache`);
//! - `report` aggregates results into tables (polars) and draws figures (plotters).

pub mod bench;
pub mod cache;
pub mod cache_command;
pub mod cli;
pub mod error;
pub mod fsio;
pub mod interrupt;
pub mod models;
pub mod os_path;
pub mod paths;
pub mod pipeline;
pub mod report;
pub mod yaml;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use cli::{Cli, Command, GraphFormat};
use error::{Error, Result};
use pipeline::plan::Force;
use pipeline::spec::Pipeline;

static QUIET: AtomicBool = AtomicBool::new(false);
static LOG_FILTER: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The log filter of this run (`-v`, `-q`, `RUST_LOG`), passed on to the measuring worker.
pub fn log_filter() -> &'static str {
    LOG_FILTER.get().map_or("warn", String::as_str)
}

/// Prints a progress line on stderr unless `-q`.
pub fn say(line: &str) {
    if !QUIET.load(Ordering::Relaxed) {
        eprintln!("{line}");
    }
}

/// Prints an error and its cause chain as users see it.
pub fn print_error(e: &Error) {
    eprintln!("error: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        eprintln!("  caused by: {cause}");
        source = cause.source();
    }
}

fn init_logging(cli: &Cli) {
    QUIET.store(cli.quiet, Ordering::Relaxed);
    let default = if cli.quiet {
        "error"
    } else {
        match cli.verbose {
            0 => "warn",
            1 => "info",
            _ => "debug",
        }
    };
    let directives = std::env::var("RUST_LOG").unwrap_or_else(|_| default.to_string());
    // The measuring worker logs at the same level (it reads `E3PIPE_LOG`; see `pipeline::execute`).
    let _ = LOG_FILTER.set(directives.clone());
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal; logs and CI files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .without_time()
        .try_init();
}

/// Runs the parsed command line; the exit code is 0 (done), 1 (some work failed) or 2 (invalid input).
pub fn run(cli: Cli) -> ExitCode {
    init_logging(&cli);
    match dispatch(cli) {
        Ok(code) => code,
        Err(Error::Interrupted) => {
            eprintln!("interrupted: finished points are cached; run again to resume");
            ExitCode::from(130)
        }
        Err(e) => {
            print_error(&e);
            ExitCode::from(e.exit_code())
        }
    }
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Graph { pipeline, format } => {
            let pipeline = Pipeline::load(&pipeline)?;
            let text = match format {
                GraphFormat::Text => pipeline::graph::render_text(&pipeline),
                GraphFormat::Dot => pipeline::graph::render_dot(&pipeline),
                GraphFormat::Mermaid => pipeline::graph::render_mermaid(&pipeline),
            };
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            pipeline,
            only,
            dry_run,
            force,
        } => {
            let pipeline = Pipeline::load(&pipeline)?;
            let force = match force {
                None => Force::default(),
                // `--force` alone (or `--force=`): everything.
                Some(steps) if steps.len() == 1 && steps[0].is_empty() => Force {
                    all: true,
                    steps: Vec::new(),
                },
                Some(steps) => {
                    if steps.iter().any(String::is_empty) {
                        return Err(Error::BadValue {
                            path: pipeline.file.clone(),
                            field: "--force".into(),
                            message: "an empty step name; give `--force` alone for every step, or step names".into(),
                        });
                    }
                    if let Some(left_out) =
                        steps.iter().find(|s| !only.is_empty() && !only.contains(s))
                    {
                        return Err(Error::BadValue {
                            path: pipeline.file.clone(),
                            field: "--force".into(),
                            message: format!(
                                "step `{}` is not among the `--only` steps, so it would not run",
                                error::shorten(left_out, 60)
                            ),
                        });
                    }
                    Force { all: false, steps }
                }
            };
            let plan = pipeline::plan::plan(&pipeline, &only, &force)?;
            if dry_run {
                print!("{}", plan.render());
                return Ok(ExitCode::SUCCESS);
            }
            interrupt::install_handler();
            let outcome = pipeline::execute::execute(&plan)?;
            println!("{}", outcome.counts);
            let failed = outcome.counts.failed + outcome.counts.infeasible > 0
                || !outcome.failed_steps.is_empty();
            if !outcome.failed_steps.is_empty() {
                eprintln!("failed steps: {}", outcome.failed_steps.join(", "));
            }
            Ok(if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Cache { pipeline, prune } => {
            cache_command::run(&pipeline, prune).map(|()| ExitCode::SUCCESS)
        }
    }
}
