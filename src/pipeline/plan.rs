//! What a run will do, decided before any work: every selected step's kind plans its own part (a bench step, each
//! point's cache state), and `check_inputs` refuses inputs that neither exist nor are made in this run. `--dry-run`
//! prints the plan and stops.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::cache::store::Store;
use crate::error::{Error, Result};
use crate::file_hash::FileHashes;
use crate::pipeline::executor::Executor;
use crate::pipeline::graph;
use crate::pipeline::kind::{Kind, PlanContext, Planned, Remote};
use crate::pipeline::spec::Pipeline;

/// One step's planned work.
#[derive(Debug)]
pub struct PlannedStep {
    pub name: String,
    pub kind: &'static dyn Kind,
    pub work: Box<dyn Planned>,
}

#[derive(Debug)]
pub struct Plan {
    pub steps: Vec<PlannedStep>,
    pub root: PathBuf,
    /// Each step's direct dependencies, so a failed step's dependents are skipped rather than run on stale input.
    pub needs: BTreeMap<String, Vec<String>>,
}

/// Which steps to recompute regardless of the cache.
#[derive(Debug, Clone, Default)]
pub struct Force {
    pub all: bool,
    pub steps: Vec<String>,
}

impl Force {
    fn covers(&self, step: &str) -> bool {
        self.all || self.steps.iter().any(|s| s == step)
    }
}

pub fn plan(pipeline: &Pipeline, only: &[String], force: &Force) -> Result<Plan> {
    plan_with(pipeline, only, force, None)
}

/// `plan`, with bench points keyed by `remote`'s identities where it gives one (a Slurm run's compute nodes).
pub fn plan_with(
    pipeline: &Pipeline,
    only: &[String],
    force: &Force,
    remote: Option<&Remote<'_>>,
) -> Result<Plan> {
    let selected = graph::select(pipeline, only)?;
    for forced in &force.steps {
        if pipeline.step(forced).is_none() {
            return Err(graph::no_such_step(pipeline, forced));
        }
    }
    let store = Store::new(&pipeline.root);
    let entries = OnceCell::new();
    let hashes = FileHashes::load(&pipeline.root);
    let mut steps = Vec::new();
    for &name in &selected {
        let Some(step) = pipeline.step(name) else {
            continue;
        };
        let ctx = PlanContext {
            step: &step.name,
            forced: force.covers(&step.name),
            upstream: pipeline
                .upstream(step)
                .into_iter()
                .map(|s| s.settings.as_ref())
                .collect(),
            store: &store,
            entries: &entries,
            hashes: &hashes,
            remote,
        };
        steps.push(PlannedStep {
            name: step.name.clone(),
            kind: step.kind,
            work: step.settings.plan(&ctx)?,
        });
    }
    let needs: BTreeMap<String, Vec<String>> = pipeline
        .steps
        .iter()
        .map(|s| (s.name.clone(), s.needs.clone()))
        .collect();
    // Only a run may write; `--dry-run` and `graph` leave the project untouched apart from this memo.
    hashes.save()?;
    Ok(Plan {
        steps,
        root: pipeline.root.clone(),
        needs,
    })
}

/// A step whose input neither exists nor is made by a step of this run cannot run: that is invalid input, found
/// before anything runs (exit 2, nothing written), with a hint that fits the pipeline. `e3pipe run` checks this;
/// commands that only plan (`cache --prune`, `peaks`) do not run the steps and need not.
pub fn check_inputs(pipeline: &Pipeline, only: &[String]) -> Result<()> {
    let selected = graph::select(pipeline, only)?;
    let selected = selected.as_slice();
    // A step's input is made in this run when a step it needs runs too; with no `needs`, when any step of the
    // producing kind runs (aggregate then reads every result, plot the one table).
    let runs_kind = |kind: &str| {
        selected
            .iter()
            .any(|n| pipeline.step(n).is_some_and(|s| s.kind.name() == kind))
    };
    for step in selected.iter().filter_map(|n| pipeline.step(n)) {
        let Some(input) = step.kind.input() else {
            continue;
        };
        let made_here = if step.needs.is_empty() {
            runs_kind(input.made_by)
        } else {
            step.needs.iter().any(|n| selected.contains(&n.as_str()))
        };
        if made_here || pipeline.root.join(input.path).exists() {
            continue;
        }
        let producers: Vec<&str> = pipeline
            .steps
            .iter()
            .filter(|s| s.kind.name() == input.made_by)
            .map(|s| s.name.as_str())
            .collect();
        let hint = if producers.is_empty() {
            format!(
                "add {} `{}` step to `{}` to make it",
                crate::error::article(input.made_by),
                input.made_by,
                crate::shown_path::for_people(&pipeline.file)
            )
        } else {
            // A hint to paste: the pipeline the user gave, not the default one.
            format!(
                "run `e3pipe run {} --only {},{}` first",
                crate::rerun::shell_quote(&crate::shown_path::for_people(&pipeline.file)),
                producers.join(","),
                step.name
            )
        };
        return Err(Error::MissingInput {
            step: step.name.clone(),
            missing: PathBuf::from(input.path),
            hint,
        });
    }
    Ok(())
}

impl Plan {
    /// The `--dry-run` listing, with what `executor` would do with each step's points.
    pub fn render(&self, executor: &dyn Executor) -> String {
        let mut out = String::new();
        for s in &self.steps {
            out.push_str(&s.work.render(&s.name));
            let (points, threads) = s.work.pending_points();
            if let Some(line) = executor.describe(points, threads) {
                out.push_str(&line);
                out.push('\n');
            }
        }
        out
    }
}
