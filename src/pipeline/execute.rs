//! Runs a plan step by step in topological order, one step at a time (two bench steps on one device would disturb
//! each other's timings). A step that fails is reported and the steps that do not depend on it still run; a step
//! that reads what a failed step makes is skipped rather than run on stale input.

use crate::error::{Error, Result};
use crate::output;
use crate::pipeline::executor::Executor;
use crate::pipeline::kind::{Counts, RunContext};
use crate::pipeline::plan::Plan;

pub struct Outcome {
    pub counts: Counts,
    /// Steps whose work failed (not counting failed points, which `counts` reports).
    pub failed_steps: Vec<String>,
    /// Work was handed to a scheduler and not waited for (`--no-wait`): the derived steps did not run.
    pub submitted: bool,
}

pub fn execute(plan: &Plan, executor: &dyn Executor) -> Result<Outcome> {
    let mut counts = Counts::default();
    let mut failed_steps: Vec<String> = Vec::new();
    let mut submitted = false;
    let mut overall = crate::job::Progress {
        total: plan.steps.iter().map(|s| s.work.pending_points().0).sum(),
        ..crate::job::Progress::default()
    };
    let measuring_steps = plan
        .steps
        .iter()
        .filter(|s| s.work.pending_points().0 > 0)
        .count();
    if overall.total > 0 {
        output::progress(&format!(
            "measuring {} point(s) in {measuring_steps} bench step(s)",
            overall.total
        ));
    }
    for step in &plan.steps {
        let name = &step.name;
        if submitted && step.kind.input().is_some() {
            output::progress(&format!(
                "step `{name}`: waits for the submitted jobs; run `{}` again once they finish",
                crate::rerun::run_with("")
            ));
            continue;
        }
        if step.kind.input().is_some()
            && let Some(up) = plan
                .needs
                .get(name)
                .into_iter()
                .flatten()
                .find(|n| failed_steps.contains(*n))
        {
            output::error_message(&format!("step `{name}` skipped: step `{up}` failed"));
            failed_steps.push(name.clone());
            continue;
        }
        let mut ctx = RunContext {
            root: &plan.root,
            counts: &mut counts,
            executor,
            submitted: false,
            overall: &mut overall,
        };
        let outcome = step.work.run(name, &mut ctx);
        submitted |= ctx.submitted;
        match outcome {
            Ok(()) => {}
            Err(Error::Interrupted) => {
                output::result(&counts.to_string());
                return Err(Error::Interrupted);
            }
            // Invalid input was refused while planning; whatever fails now is a runtime failure (exit 1): reported,
            // and the steps that do not depend on it still run.
            Err(e) => {
                output::error(&e);
                failed_steps.push(name.clone());
            }
        }
    }
    Ok(Outcome {
        counts,
        failed_steps,
        submitted,
    })
}
