//! e3pipe measures how transformer inference latency and memory grow with context length.
//!
//! Layers, each using only the ones above it in this list:
//! - foundation: `error`, `output` (stdout / stderr / log), `fsio` (atomic writes, safe reads), `yaml`, `paths`
//!   (every output path), `clock`, `file_hash`, `os_path`, `interrupt`;
//! - `models` (configs, hardware identity, model files), `bench` (settings, statistics, results), `cache` (keys,
//!   entries, locks), `job` (what the measuring worker is asked and answers), `report` (tables with polars, figures with plotters, freshness of derived outputs);
//! - `pipeline`: `spec` (YAML) -> `dag` -> `graph` -> `plan` -> `execute`, with each step kind defined once in
//!   `pipeline::kind` and `pipeline::kinds`; the measuring worker (the `e3pipe-worker` crate in `worker/`, the only
//!   part that links libtorch) runs as a child process (`pipeline::worker_process`);
//! - `cli` (arguments) and `commands` (what each subcommand does).

pub mod bench;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod compare;
pub mod error;
pub mod file_hash;
pub mod fsio;
pub mod interrupt;
pub mod job;
#[cfg(test)]
mod layers;
pub mod method_text;
pub mod models;
pub mod os_path;
pub mod output;
pub mod paths;
pub mod pipeline;
pub mod report;
pub mod rerun;
pub mod results;
pub mod shown_path;
pub mod yaml;

use std::process::ExitCode;

use cli::{Cli, Command};
use error::{Error, Result};

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
        Command::Graph { pipeline, format } => commands::graph::run(&pipeline, format),
        Command::Run {
            pipeline,
            only,
            dry_run,
            force,
            executor,
            no_wait,
        } => commands::run::run(
            &pipeline,
            &only,
            dry_run,
            force,
            commands::run::ExecutorChoice { executor, no_wait },
        ),
        Command::Peaks { pipeline, force } => {
            commands::peaks::run(&pipeline, force).map(|()| ExitCode::SUCCESS)
        }
        Command::Compare {
            paths,
            baseline_name,
            metrics,
            threshold,
            alpha,
            correction,
            format,
            allow_different_hardware,
            allow_different_code,
            noise_from,
        } => {
            let (baseline, candidate) = match (&baseline_name, paths.as_slice()) {
                (None, [a, b]) => (a.clone(), b.clone()),
                (None, _) => {
                    return Err(Error::Usage(
                        "`compare` takes two paths, BASELINE and CANDIDATE, or `--baseline NAME` and at most the candidate".into(),
                    ));
                }
                (Some(name), [] | [_]) => {
                    let candidate = paths.first().cloned().unwrap_or_else(|| ".".into());
                    (
                        commands::baseline::resolve(std::path::Path::new("."), name)?,
                        candidate,
                    )
                }
                (Some(_), _) => {
                    return Err(Error::Usage(
                        "with `--baseline NAME`, give at most the candidate's path".into(),
                    ));
                }
            };
            commands::compare::run(
                &baseline,
                &candidate,
                &noise_from,
                &compare::Options {
                    metrics: if metrics.is_empty() {
                        compare::DEFAULT_METRICS.map(String::from).to_vec()
                    } else {
                        metrics
                    },
                    threshold,
                    alpha,
                    correction: match correction {
                        cli::CorrectionArg::Holm => compare::significance::Correction::Holm,
                        cli::CorrectionArg::Bh => compare::significance::Correction::Bh,
                    },
                    allow_different: allow_different_hardware,
                    allow_different_code,
                },
                match format {
                    cli::CompareFormat::Table => compare::render::Format::Table,
                    cli::CompareFormat::Markdown => compare::render::Format::Markdown,
                    cli::CompareFormat::Json => compare::render::Format::Json,
                    cli::CompareFormat::Html => compare::render::Format::Html,
                },
            )
        }
        Command::Identify { device, format } => {
            commands::identify::run(&device, format).map(|()| ExitCode::SUCCESS)
        }
        Command::History {
            project,
            model,
            length,
            batch,
            metric,
            format,
            no_figure,
        } => commands::history::run(
            &project,
            &report::history::Filter {
                model,
                length,
                batch,
                metric,
            },
            format,
            !no_figure,
        )
        .map(|()| ExitCode::SUCCESS),
        Command::Baseline { action } => match action {
            cli::BaselineAction::Save {
                name,
                project,
                force,
            } => commands::baseline::save(&project, &name, force),
            cli::BaselineAction::List { project } => commands::baseline::list(&project),
        }
        .map(|()| ExitCode::SUCCESS),
        Command::Cache {
            project,
            prune,
            dry_run,
        } => commands::cache::run(&project, prune, dry_run).map(|()| ExitCode::SUCCESS),
    }
}
