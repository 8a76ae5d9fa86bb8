//! `kind: bench`: one model measured at every context length of a bench config. Each (model, length) point is
//! planned against the cache (`plan`), the missing ones are measured by the worker process and every point's result
//! lands in the step's results documents (`run`, `results_file`).

pub mod plan;
pub mod results_file;
pub mod run;

use std::sync::Arc;

use crate::bench::config::BenchConfig;
use crate::error::{Error, Result};
use crate::models::spec::ModelSpec;
use crate::pipeline::kind::{Kind, PlanContext, Planned, Settings, StepContext};

#[derive(Debug)]
pub struct Bench;

impl Kind for Bench {
    fn name(&self) -> &'static str {
        "bench"
    }

    fn keys(&self) -> &'static [&'static str] {
        &["model", "bench"]
    }

    fn configure(&self, step: &StepContext<'_>) -> Result<Arc<dyn Settings>> {
        let model = ModelSpec::load(&step.config_path("model")?, step.root)?;
        let bench = step
            .memo
            .get_or_load(&step.config_path("bench")?, BenchConfig::load)?;
        if bench.arch != model.arch {
            return Err(Error::BadValue {
                path: bench.file.clone(),
                field: "arch".into(),
                message: format!(
                    "step `{}`: bench arch `{}` does not match model `{}` ({} `{}` model)",
                    step.step,
                    bench.arch,
                    model.name,
                    crate::error::article(model.arch.as_str()),
                    model.arch
                ),
            });
        }
        Ok(Arc::new(BenchStep { model, bench }))
    }
}

/// A bench step's model and bench config, validated.
#[derive(Debug, Clone)]
pub struct BenchStep {
    pub model: ModelSpec,
    pub bench: BenchConfig,
}

impl Settings for BenchStep {
    fn describe(&self) -> String {
        let lengths: Vec<String> = self
            .bench
            .context_lengths
            .iter()
            .map(usize::to_string)
            .collect();
        let batches: Vec<String> = self
            .bench
            .batch_sizes
            .iter()
            .map(usize::to_string)
            .collect();
        format!(
            "bench: model {} ({}), lengths [{}], batch sizes [{}], {} new tokens, {} runs",
            self.model.name,
            self.model.arch,
            lengths.join(", "),
            batches.join(", "),
            self.bench.params.num_tokens,
            self.bench.params.num_runs
        )
    }

    fn model(&self) -> Option<&ModelSpec> {
        Some(&self.model)
    }

    fn plan(&self, ctx: &PlanContext<'_>) -> Result<Box<dyn Planned>> {
        Ok(Box::new(plan::plan(self, ctx)?))
    }
}
