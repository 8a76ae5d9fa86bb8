//! `e3pipe run`: load, plan (`--dry-run` stops here), execute, and the closing counts; exit 1 when a point or a
//! step failed.

use std::path::Path;
use std::process::ExitCode;

use crate::cli::ExecutorArg;
use crate::error::{self, Error, Result};
use crate::interrupt;
use crate::output;
use crate::pipeline;
use crate::pipeline::executor::{Executor, Local};
use crate::pipeline::executor_config::{ExecutorConfig, ExecutorKind};
use crate::pipeline::kinds::bench::plan::{BenchPlan, PointState};
use crate::pipeline::plan::Force;
use crate::pipeline::slurm::Slurm;
use crate::pipeline::slurm_identity;
use crate::pipeline::spec::Pipeline;

/// `--executor` and `--no-wait` as given.
#[derive(Debug, Clone, Copy)]
pub struct ExecutorChoice {
    pub executor: Option<ExecutorArg>,
    pub no_wait: bool,
}

pub fn run(
    pipeline: &Path,
    only: &[String],
    dry_run: bool,
    force: Option<Vec<String>>,
    choice: ExecutorChoice,
) -> Result<ExitCode> {
    // `e3pipe run --force pipelines/p.yaml` reads the path as the steps to force (the value is optional).
    if let Some(path) = force.iter().flatten().find(|s| {
        Path::new(s.as_str())
            .extension()
            .is_some_and(|x| x.eq_ignore_ascii_case("yaml") || x.eq_ignore_ascii_case("yml"))
            && Path::new(s.as_str()).is_file()
    }) {
        return Err(Error::BadValue {
            path: pipeline.into(),
            field: "--force".into(),
            message: format!(
                "`{}` was read as a step to force; put the pipeline before the flag (`e3pipe run {} --force`) or force named steps (`--force=step`)",
                error::shorten(path, 60),
                error::shorten(path, 60)
            ),
        });
    }
    let started = std::time::Instant::now();
    let typed = pipeline.to_string_lossy().into_owned();
    let pipeline = Pipeline::load(pipeline)?;
    if pipeline.steps.iter().any(|s| s.kind.name() == "aggregate") {
        for step in pipeline::graph::unaggregated(&pipeline) {
            output::warn(&format!(
                "bench step `{step}` is not in the `needs` of an aggregate step: its points are measured, but the tables may be built before them; add it to the aggregate step's `needs`"
            ));
        }
    }
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
                    message:
                        "an empty step name; give `--force` alone for every step, or step names"
                            .into(),
                });
            }
            if let Some(left_out) = steps.iter().find(|s| !only.is_empty() && !only.contains(s)) {
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
    let config = pipeline.executor.clone().with_cli(
        choice.executor.map(|e| match e {
            ExecutorArg::Local => ExecutorKind::Local,
            ExecutorArg::Slurm => ExecutorKind::Slurm,
        }),
        choice.no_wait,
    );
    if choice.no_wait && config == ExecutorConfig::Local {
        return Err(Error::BadValue {
            path: pipeline.file.clone(),
            field: "--no-wait".into(),
            message:
                "only a Slurm run can return before its points are measured; add `--executor slurm`"
                    .into(),
        });
    }
    let executor: Box<dyn Executor> = match &config {
        ExecutorConfig::Local => Box::new(Local),
        ExecutorConfig::Slurm(s) => Box::new(Slurm::new(s.clone())),
    };
    // A Slurm run is planned from a compute node's identity (a probe job, cached for an hour); `--dry-run` only
    // reads a cached answer and submits nothing.
    let remote = |choice, step: &str| -> Result<Option<crate::models::identity::Identity>> {
        let ExecutorConfig::Slurm(s) = &config else {
            return Ok(None);
        };
        if !s.plan_on_node {
            return Ok(None);
        }
        if dry_run {
            let Some((identity, age_s)) = slurm_identity::cached(&pipeline.root, s, choice) else {
                output::progress(&format!(
                    "  step `{step}`: no compute node has been asked yet: planned here; `e3pipe run` asks one first"
                ));
                return Ok(None);
            };
            output::progress(&format!(
                "  step `{step}`: planned for {} as a compute node said {} min ago",
                identity.device.as_deref().unwrap_or("?"),
                age_s / 60
            ));
            return Ok(Some(identity));
        }
        // A probe job waiting in the queue is cancelled on Ctrl-C or SIGTERM.
        interrupt::install_handler();
        slurm_identity::on_node(&pipeline.root, s, choice, step).map(Some)
    };
    let plan = pipeline::plan::plan_with(&pipeline, only, &force, Some(&remote))?;
    // Hints name this pipeline and its steps, so they can be pasted.
    let mut steps_by_model = std::collections::BTreeMap::new();
    for step in &plan.steps {
        if let Some(bench) = step.work.as_any().downcast_ref::<BenchPlan>() {
            steps_by_model
                .entry(bench.bench.model.name.clone())
                .or_insert_with(|| bench.step.clone());
        }
    }
    let options = match choice.executor {
        Some(ExecutorArg::Slurm) => "--executor slurm",
        Some(ExecutorArg::Local) => "--executor local",
        None => "",
    };
    crate::rerun::set(&typed, options, steps_by_model);
    pipeline::plan::check_inputs(&pipeline, only)?;
    if dry_run {
        output::result(plan.render(executor.as_ref()).trim_end_matches('\n'));
        return Ok(ExitCode::SUCCESS);
    }
    // A site's refusal (an unknown partition or account, a time over its limit) before anything is written.
    if let ExecutorConfig::Slurm(s) = &config {
        let slurm = Slurm::new(s.clone());
        // Steps with the same request are asked about once.
        let mut asked = Vec::new();
        for step in &plan.steps {
            let Some(bench) = step.work.as_any().downcast_ref::<BenchPlan>() else {
                continue;
            };
            let work = bench
                .points
                .iter()
                .any(|p| !matches!(p.state, PointState::Cached | PointState::Infeasible(_)));
            if work && !asked.contains(&(bench.device, bench.threads)) {
                slurm.preflight(&bench.step, bench.device, bench.threads)?;
                asked.push((bench.device, bench.threads));
            }
        }
    }
    interrupt::install_handler();
    let outcome = pipeline::execute::execute(&plan, executor.as_ref())?;
    output::result(&outcome.counts.to_string());
    for line in outcome.counts.facts() {
        output::result(&line);
    }
    output::result(&format!(
        "wall time: {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    let report = std::path::Path::new(crate::paths::FIGS_DIR).join(crate::paths::REPORT_PAGE);
    // Only a page this run's plot step stands behind (it ran, or found it up to date), not one left by another.
    let plotted = plan
        .steps
        .iter()
        .any(|s| s.kind.name() == "plot" && !outcome.failed_steps.contains(&s.name));
    if plotted && !outcome.submitted && plan.root.join(&report).is_file() {
        output::result(&format!("report: {}", report.display()));
    }
    let failed =
        outcome.counts.failed + outcome.counts.infeasible > 0 || !outcome.failed_steps.is_empty();
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
