//! The pipeline's steps in dependency order: `--only` selection, and the text / Graphviz / Mermaid drawings of
//! `e3pipe graph`.

use std::fmt::Write as _;

use crate::error::{Error, Result, suggest};
use crate::pipeline::dag;
use crate::pipeline::spec::{Pipeline, Step};

/// Steps in an order where every step comes after the steps it needs (ties keep file order).
pub fn topological_order(pipeline: &Pipeline) -> Vec<&Step> {
    let edges: Vec<(&str, &[String])> = pipeline
        .steps
        .iter()
        .map(|s| (s.name.as_str(), s.needs.as_slice()))
        .collect();
    dag::order(&edges)
        .into_iter()
        .filter_map(|i| pipeline.steps.get(i))
        .collect()
}

/// The error for a step name `wanted` that `pipeline` lacks: a did-you-mean, or, when the name is a pipeline file
/// typed after `--only`/`--force` (which took it as their value), the command that was meant.
pub fn no_such_step(pipeline: &Pipeline, wanted: &str) -> Error {
    let extension = std::path::Path::new(wanted)
        .extension()
        .map(std::ffi::OsStr::to_ascii_lowercase);
    if extension.is_some_and(|e| e == "yaml" || e == "yml") {
        return Error::Usage(format!(
            "`{}` is not a step of `{}` but looks like a pipeline file: `--only` and `--force` took it as their value; give the pipeline first: `e3pipe run {} --force` (or `--only <steps>`)",
            crate::error::shorten(wanted, 60),
            crate::shown_path::for_people(&pipeline.file),
            crate::error::shorten(wanted, 60)
        ));
    }
    Error::NoSuchStep {
        path: pipeline.file.clone(),
        step: crate::error::shorten(wanted, 60),
        suggestion: suggest(wanted, pipeline.steps.iter().map(|s| s.name.as_str())),
    }
}

/// Validates `--only` names (with a did-you-mean) and returns the selected step names.
pub fn select<'a>(pipeline: &'a Pipeline, only: &[String]) -> Result<Vec<&'a str>> {
    let names: Vec<&str> = pipeline.steps.iter().map(|s| s.name.as_str()).collect();
    for wanted in only {
        if !names.contains(&wanted.as_str()) {
            return Err(no_such_step(pipeline, wanted));
        }
    }
    Ok(topological_order(pipeline)
        .into_iter()
        .map(|s| s.name.as_str())
        .filter(|n| only.is_empty() || only.iter().any(|o| o == n))
        .collect())
}

/// Bench steps that no aggregate step needs, directly or through other steps: their points are measured, but no
/// table of this pipeline is built after them. `e3pipe run` warns when the pipeline has an aggregate step; every
/// drawing marks them.
pub fn unaggregated(pipeline: &Pipeline) -> Vec<&str> {
    let edges: Vec<(String, Vec<String>)> = pipeline
        .steps
        .iter()
        .map(|s| (s.name.clone(), s.needs.clone()))
        .collect();
    let read: Vec<String> = pipeline
        .steps
        .iter()
        .filter(|s| s.kind.name() == "aggregate")
        .flat_map(|s| dag::upstream(&edges, &s.name))
        .collect();
    pipeline
        .steps
        .iter()
        .filter(|s| s.kind.name() == "bench" && !read.contains(&s.name))
        .map(|s| s.name.as_str())
        .collect()
}

/// What a drawing says beside a bench step no aggregate reads.
pub const UNAGGREGATED_MARK: &str = "no aggregate step needs it";

/// One line of key parameters per step, shared by every drawing.
pub fn describe(step: &Step) -> String {
    step.settings.describe()
}

/// The text drawing: steps in topological order with their inputs.
pub fn render_text(pipeline: &Pipeline) -> String {
    let unaggregated = unaggregated(pipeline);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "pipeline {} ({} steps)",
        crate::shown_path::for_people(&pipeline.file),
        pipeline.steps.len()
    );
    for (i, step) in topological_order(pipeline).iter().enumerate() {
        let mark = if unaggregated.contains(&step.name.as_str()) {
            format!("  ({UNAGGREGATED_MARK})")
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "{:>2}. {}  [{}]{mark}",
            i + 1,
            step.name,
            describe(step)
        );
        if !step.needs.is_empty() {
            let _ = writeln!(out, "      <- {}", step.needs.join(", "));
        }
    }
    out
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Graphviz `dot` text.
pub fn render_dot(pipeline: &Pipeline) -> String {
    let unaggregated = unaggregated(pipeline);
    let mut out = String::from("digraph pipeline {\n  rankdir=LR;\n  node [shape=box];\n");
    for step in topological_order(pipeline) {
        let mut label = format!("{}\\n{}", step.name, describe(step).replace('"', "'"));
        let mut style = "";
        if unaggregated.contains(&step.name.as_str()) {
            let _ = write!(label, "\\n({UNAGGREGATED_MARK})");
            style = ", style=dashed";
        }
        let _ = writeln!(
            out,
            "  {} [label=\"{}\"{style}];",
            quoted(&step.name),
            label
        );
    }
    for step in topological_order(pipeline) {
        for need in &step.needs {
            let _ = writeln!(out, "  {} -> {};", quoted(need), quoted(&step.name));
        }
    }
    out.push_str("}\n");
    out
}

/// Mermaid `flowchart` text; ids are sanitised because Mermaid ids cannot hold `-`.
pub fn render_mermaid(pipeline: &Pipeline) -> String {
    let id = |name: &str| -> String {
        let cleaned: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        format!("s_{cleaned}")
    };
    let unaggregated = unaggregated(pipeline);
    let mut out = String::from("flowchart LR\n");
    for step in topological_order(pipeline) {
        let mut label = format!("{}<br/>{}", step.name, describe(step)).replace('"', "'");
        if unaggregated.contains(&step.name.as_str()) {
            let _ = write!(label, "<br/>({UNAGGREGATED_MARK})");
        }
        let _ = writeln!(out, "    {}[\"{}\"]", id(&step.name), label);
    }
    for step in topological_order(pipeline) {
        for need in &step.needs {
            let _ = writeln!(out, "    {} --> {}", id(need), id(&step.name));
        }
    }
    out
}
