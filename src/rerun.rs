//! The command a hint tells the user to run, as they would paste it: the pipeline they gave (not the default one),
//! and the real name of the step that measures a model. `e3pipe run` records both once it has planned; a hint
//! made before that (or by another command) falls back to placeholders.

use std::collections::BTreeMap;
use std::sync::OnceLock;

struct Context {
    /// The pipeline as the user typed it, quoted for a shell where needed, and the options a rerun needs too
    /// (`--executor slurm`).
    pipeline: String,
    /// The bench step of each model (the first, when several measure one).
    steps_by_model: BTreeMap<String, String>,
}

static CONTEXT: OnceLock<Context> = OnceLock::new();

/// Records what this `e3pipe run` was given. The first call wins.
pub fn set(pipeline_as_typed: &str, options: &str, steps_by_model: BTreeMap<String, String>) {
    let pipeline = shell_quote(pipeline_as_typed);
    let _ = CONTEXT.set(Context {
        pipeline: if options.is_empty() {
            pipeline
        } else {
            format!("{pipeline} {options}")
        },
        steps_by_model,
    });
}

/// `e3pipe run <pipeline> <args>` (no pipeline when none was recorded: the default one).
pub fn run_with(args: &str) -> String {
    let pipeline = CONTEXT.get().map(|c| c.pipeline.as_str());
    [
        Some("e3pipe run"),
        pipeline,
        (!args.is_empty()).then_some(args),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ")
}

/// `e3pipe run <pipeline> --force <the step measuring model>`.
pub fn force_model(model: &str) -> String {
    let step = CONTEXT
        .get()
        .and_then(|c| c.steps_by_model.get(model))
        .map_or_else(|| "<step>".to_string(), |s| shell_quote(s));
    run_with(&format!("--force {step}"))
}

/// `'…'`-quoted where a shell would split or expand it.
pub fn shell_quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:%,@+".contains(c))
    {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_a_shell_would_touch() {
        assert_eq!(shell_quote("pipelines/quick.yaml"), "pipelines/quick.yaml");
        assert_eq!(shell_quote("my pipes/a b.yaml"), "'my pipes/a b.yaml'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
