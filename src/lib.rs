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
pub mod clock;
pub mod error;
pub mod file_hash;
pub mod fsio;
pub mod interrupt;
pub mod models;
pub mod os_path;
pub mod output;
pub mod paths;
pub mod pipeline;
pub mod report;
pub mod yaml;

use std::process::ExitCode;

use cli::{Cli, Command, GraphFormat};
use error::{Error, Result};
use pipeline::plan::Force;
use pipeline::spec::Pipeline;

/// Runs the parsed command line; the exit code is 0 (done), 1 (some work failed) or 2 (invalid input).
pub fn run(cli: Cli) -> ExitCode {
    output::init(output::Verbosity::from_flags(cli.quiet, cli.verbose));
    match dispatch(cli) {
        Ok(code) => code,
        Err(Error::Interrupted) => {
            output::outcome("interrupted: finished points are cached; run again to resume");
            ExitCode::from(130)
        }
        Err(e) => {
            output::error(&e);
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
            output::result(text.trim_end_matches('\n'));
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
                output::result(plan.render().trim_end_matches('\n'));
                return Ok(ExitCode::SUCCESS);
            }
            interrupt::install_handler();
            let outcome = pipeline::execute::execute(&plan)?;
            output::result(&outcome.counts.to_string());
            let failed = outcome.counts.failed + outcome.counts.infeasible > 0
                || !outcome.failed_steps.is_empty();
            if !outcome.failed_steps.is_empty() {
                output::outcome(&format!(
                    "failed steps: {}",
                    outcome.failed_steps.join(", ")
                ));
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
