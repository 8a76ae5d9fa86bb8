//! The pipeline as a petgraph DAG: topological order, cycle reports that print the whole circle, `--only`
//! selection, and the text / Graphviz / Mermaid drawings of `e3pipe graph`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};

use crate::error::{Error, Result, suggest};
use crate::pipeline::spec::{Pipeline, Step, StepKind};

/// Fails with the whole circle (`a -> b -> a`) if `steps` (name, needs) contain a cycle.
pub fn check_acyclic(file: &Path, steps: &[(String, Vec<String>)]) -> Result<()> {
    let mut graph = DiGraph::<&str, ()>::new();
    let index: BTreeMap<&str, NodeIndex> = steps
        .iter()
        .map(|(n, _)| (n.as_str(), graph.add_node(n.as_str())))
        .collect();
    for (name, needs) in steps {
        for need in needs {
            if let (Some(&from), Some(&to)) = (index.get(need.as_str()), index.get(name.as_str())) {
                graph.add_edge(from, to, ());
            }
        }
    }
    if toposort(&graph, None).is_ok() {
        return Ok(());
    }
    // A strongly connected component with an edge inside it holds a cycle; walk it from its first step.
    for component in tarjan_scc(&graph) {
        let self_loop = component.len() == 1 && graph.contains_edge(component[0], component[0]);
        if component.len() < 2 && !self_loop {
            continue;
        }
        let start = *component
            .iter()
            .min_by_key(|n| steps.iter().position(|(s, _)| s == graph[**n]))
            .unwrap_or(&component[0]);
        let mut cycle = vec![graph[start].to_string()];
        let mut current = start;
        loop {
            let next = graph
                .neighbors(current)
                .filter(|n| component.contains(n))
                .min_by_key(|n| n.index());
            let Some(next) = next else { break };
            cycle.push(graph[next].to_string());
            if next == start || cycle.len() > component.len() + 1 {
                break;
            }
            current = next;
        }
        return Err(Error::Cycle {
            path: file.into(),
            cycle,
        });
    }
    Ok(())
}

/// Steps in an order where every step comes after the steps it needs (ties keep file order).
pub fn topological_order(pipeline: &Pipeline) -> Vec<&Step> {
    let mut done: Vec<&str> = Vec::new();
    let mut order = Vec::new();
    while order.len() < pipeline.steps.len() {
        let before = order.len();
        for step in &pipeline.steps {
            if !done.contains(&step.name.as_str())
                && step.needs.iter().all(|n| done.contains(&n.as_str()))
            {
                done.push(&step.name);
                order.push(step);
            }
        }
        if order.len() == before {
            break; // unreachable after `check_acyclic`; never loop forever
        }
    }
    order
}

/// Validates `--only` names (with a did-you-mean) and returns the selected step names.
pub fn select<'a>(pipeline: &'a Pipeline, only: &[String]) -> Result<Vec<&'a str>> {
    let names: Vec<&str> = pipeline.steps.iter().map(|s| s.name.as_str()).collect();
    for wanted in only {
        if !names.contains(&wanted.as_str()) {
            return Err(Error::NoSuchStep {
                path: pipeline.file.clone(),
                step: crate::error::shorten(wanted, 60),
                suggestion: suggest(wanted, names.iter().copied()),
            });
        }
    }
    Ok(topological_order(pipeline)
        .into_iter()
        .map(|s| s.name.as_str())
        .filter(|n| only.is_empty() || only.iter().any(|o| o == n))
        .collect())
}

/// One line of key parameters per step, shared by every drawing.
pub fn describe(step: &Step) -> String {
    match &step.kind {
        StepKind::Bench(b) => {
            let lengths: Vec<String> = b
                .bench
                .context_lengths
                .iter()
                .map(usize::to_string)
                .collect();
            format!(
                "bench: model {} ({}), lengths [{}], {} new tokens, {} runs",
                b.model.name,
                b.model.arch,
                lengths.join(", "),
                b.bench.params.num_tokens,
                b.bench.params.num_runs
            )
        }
        StepKind::Aggregate => format!("aggregate: {}", crate::paths::RESULTS_TABLE),
        StepKind::Plot(p) => format!(
            "plot: figs/latency_curve.png{}",
            if p.log2_x { " (log2 x)" } else { "" }
        ),
    }
}

/// The text drawing: steps in topological order with their inputs.
pub fn render_text(pipeline: &Pipeline) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "pipeline {} ({} steps)",
        pipeline.file.display(),
        pipeline.steps.len()
    );
    for (i, step) in topological_order(pipeline).iter().enumerate() {
        let _ = writeln!(out, "{:>2}. {}  [{}]", i + 1, step.name, describe(step));
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
    let mut out = String::from("digraph pipeline {\n  rankdir=LR;\n  node [shape=box];\n");
    for step in topological_order(pipeline) {
        let label = format!("{}\\n{}", step.name, describe(step).replace('"', "'"));
        let _ = writeln!(out, "  {} [label=\"{}\"];", quoted(&step.name), label);
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
    let mut out = String::from("flowchart LR\n");
    for step in topological_order(pipeline) {
        let label = format!("{}<br/>{}", step.name, describe(step)).replace('"', "'");
        let _ = writeln!(out, "    {}[\"{}\"]", id(&step.name), label);
    }
    for step in topological_order(pipeline) {
        for need in &step.needs {
            let _ = writeln!(out, "    {} --> {}", id(need), id(&step.name));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(edges: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        edges
            .iter()
            .map(|(n, needs)| (n.to_string(), needs.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn reports_the_whole_circle() {
        let err = check_acyclic(
            Path::new("p.yaml"),
            &steps(&[
                ("bench", &[]),
                ("aggregate", &["plot"]),
                ("plot", &["aggregate"]),
            ]),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "`p.yaml`: steps form a cycle: `aggregate -> plot -> aggregate`"
        );
    }

    #[test]
    fn self_loop_is_a_cycle() {
        let err = check_acyclic(Path::new("p.yaml"), &steps(&[("a", &["a"])])).unwrap_err();
        assert!(err.to_string().ends_with("`a -> a`"), "{err}");
    }

    #[test]
    fn dag_passes() {
        assert!(
            check_acyclic(
                Path::new("p.yaml"),
                &steps(&[("a", &[]), ("b", &["a"]), ("c", &["a", "b"])])
            )
            .is_ok()
        );
    }
}
