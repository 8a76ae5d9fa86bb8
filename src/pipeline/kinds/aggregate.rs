//! `kind: aggregate`: every results document in `latest/inference/` becomes the tables (`report::aggregate`): the
//! bench steps upstream must have written theirs; other pipelines' models stay in the tables. It writes fixed
//! files, so a pipeline has at most one.

use std::sync::Arc;

use crate::error::Result;
use crate::output;
use crate::paths;
use crate::pipeline::kind::{Input, Kind, PlanContext, Planned, RunContext, Settings, StepContext};
use crate::report;

#[derive(Debug)]
pub struct Aggregate;

impl Kind for Aggregate {
    fn name(&self) -> &'static str {
        "aggregate"
    }

    fn keys(&self) -> &'static [&'static str] {
        &[]
    }

    fn one_per_pipeline(&self) -> bool {
        true
    }

    fn input(&self) -> Option<Input> {
        Some(Input {
            path: paths::LATEST_DIR,
            made_by: "bench",
        })
    }

    fn configure(&self, _step: &StepContext<'_>) -> Result<Arc<dyn Settings>> {
        Ok(Arc::new(AggregateSettings))
    }
}

#[derive(Debug)]
struct AggregateSettings;

impl Settings for AggregateSettings {
    fn describe(&self) -> String {
        format!("aggregate: {}", paths::RESULTS_TABLE)
    }

    fn plan(&self, ctx: &PlanContext<'_>) -> Result<Box<dyn Planned>> {
        let mut models: Vec<String> = ctx
            .upstream
            .iter()
            .filter_map(|s| s.model())
            .map(|m| m.name.clone())
            .collect();
        models.sort();
        models.dedup();
        Ok(Box::new(AggregatePlan {
            forced: ctx.forced,
            models,
        }))
    }
}

/// `forced`: redo even when the inputs' hash is unchanged. `models`: the models of the bench steps upstream, whose
/// documents must be there.
#[derive(Debug)]
struct AggregatePlan {
    forced: bool,
    models: Vec<String>,
}

impl Planned for AggregatePlan {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn render(&self, step: &str) -> String {
        format!(
            "step `{step}` (aggregate): {}/*.json -> {}\n",
            paths::LATEST_DIR,
            paths::RESULTS_TABLE
        )
    }

    fn run(&self, step: &str, ctx: &mut RunContext<'_>) -> Result<()> {
        let line = report::aggregate::run_step(step, ctx.root, self.forced, &self.models)?;
        output::progress(&line);
        Ok(())
    }
}
