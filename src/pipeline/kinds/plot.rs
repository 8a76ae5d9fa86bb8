//! `kind: plot`: the figures drawn from the table aggregate wrote (`report::plot`), with its options `log2_x` and
//! `predict_lengths`. It writes fixed files, so a pipeline has at most one.

use std::sync::Arc;

use serde_yaml_ng::Value;

use crate::error::Result;
use crate::output;
use crate::paths;
use crate::pipeline::kind::{Input, Kind, PlanContext, Planned, RunContext, Settings, StepContext};
use crate::report::plot::{self, PlotOptions};

#[derive(Debug)]
pub struct Plot;

impl Kind for Plot {
    fn name(&self) -> &'static str {
        "plot"
    }

    fn keys(&self) -> &'static [&'static str] {
        &["log2_x", "predict_lengths"]
    }

    fn one_per_pipeline(&self) -> bool {
        true
    }

    fn input(&self) -> Option<Input> {
        Some(Input {
            path: paths::RESULTS_TABLE,
            made_by: "aggregate",
        })
    }

    fn configure(&self, step: &StepContext<'_>) -> Result<Arc<dyn Settings>> {
        let log2_x = match step.map.get("log2_x") {
            None => false,
            Some(v) => v
                .as_bool()
                .ok_or_else(|| step.bad_value("log2_x", "expected true or false"))?,
        };
        let predict_lengths = match step.map.get("predict_lengths") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Sequence(seq)) => seq
                .iter()
                .map(|v| {
                    v.as_u64()
                        .filter(|n| *n > 0)
                        .and_then(|n| usize::try_from(n).ok())
                        .ok_or_else(|| {
                            step.bad_value("predict_lengths", "expected positive integers")
                        })
                })
                .collect::<Result<_>>()?,
            Some(_) => {
                return Err(step.bad_value("predict_lengths", "expected a list of lengths"));
            }
        };
        Ok(Arc::new(PlotSettings(PlotOptions {
            log2_x,
            predict_lengths,
        })))
    }
}

#[derive(Debug)]
struct PlotSettings(PlotOptions);

impl Settings for PlotSettings {
    fn describe(&self) -> String {
        format!(
            "plot: {}{}",
            paths::headline_figure(),
            if self.0.log2_x { " (log2 x)" } else { "" }
        )
    }

    fn plan(&self, ctx: &PlanContext<'_>) -> Result<Box<dyn Planned>> {
        Ok(Box::new(PlotPlan {
            options: self.0.clone(),
            forced: ctx.forced,
        }))
    }
}

#[derive(Debug)]
struct PlotPlan {
    options: PlotOptions,
    forced: bool,
}

impl Planned for PlotPlan {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn render(&self, step: &str) -> String {
        format!(
            "step `{step}` (plot): {} -> {}\n",
            paths::RESULTS_TABLE,
            paths::headline_figure()
        )
    }

    fn run(&self, step: &str, ctx: &mut RunContext<'_>) -> Result<()> {
        let line = plot::run_step(step, ctx.root, &self.options, self.forced)?;
        output::progress(&line);
        Ok(())
    }
}
