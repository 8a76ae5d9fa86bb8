//! A step kind that only records that it ran: the proof that a new kind is one module plus one registration
//! (`kinds::builtin().with(&Noop)`), and that every stage (validation, `graph`, `--dry-run`, order, execution) and
//! every message listing kinds picks it up without another edit.

use std::sync::{Arc, Mutex};

use serde_yaml_ng::Value;

use crate::error::Result;
use crate::pipeline::kind::{Kind, PlanContext, Planned, RunContext, Settings, StepContext};

/// Steps that ran, in order.
pub(crate) static RAN: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[derive(Debug)]
pub(crate) struct Noop;

impl Kind for Noop {
    fn name(&self) -> &'static str {
        "noop"
    }

    fn keys(&self) -> &'static [&'static str] {
        &["message"]
    }

    fn configure(&self, step: &StepContext<'_>) -> Result<Arc<dyn Settings>> {
        let message = match step.map.get("message") {
            None => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(step.bad_value("message", "expected text")),
        };
        Ok(Arc::new(NoopSettings(message)))
    }
}

#[derive(Debug)]
struct NoopSettings(String);

impl Settings for NoopSettings {
    fn describe(&self) -> String {
        format!("noop: says `{}`", self.0)
    }

    fn plan(&self, _ctx: &PlanContext<'_>) -> Result<Box<dyn Planned>> {
        Ok(Box::new(NoopPlan))
    }
}

#[derive(Debug)]
struct NoopPlan;

impl Planned for NoopPlan {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn render(&self, step: &str) -> String {
        format!("step `{step}` (noop): nothing to do\n")
    }

    fn run(&self, step: &str, _ctx: &mut RunContext<'_>) -> Result<()> {
        RAN.lock()
            .map_err(|_| crate::error::Error::Interrupted)?
            .push(step.to_string());
        Ok(())
    }
}
