//! Step dependencies as a petgraph DAG over step names, before any step is configured: cycle reports that print
//! the whole circle, and the order steps run in.

use std::collections::BTreeMap;
use std::path::Path;

use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};

use crate::error::{Error, Result};

/// Every step `name` needs, directly or through the steps it needs (`steps` is acyclic).
pub fn upstream(steps: &[(String, Vec<String>)], name: &str) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    let mut stack: Vec<&str> = vec![name];
    while let Some(current) = stack.pop() {
        for (_, needs) in steps.iter().filter(|(n, _)| n == current) {
            for need in needs {
                if !seen.contains(need) {
                    seen.push(need.clone());
                    stack.push(need);
                }
            }
        }
    }
    seen
}

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

/// Indices of `steps` (name, needs) in an order where every step comes after the steps it needs (ties keep the
/// given order). Steps on a cycle are left out; `check_acyclic` reports them first.
pub fn order<S: AsRef<str>>(steps: &[(&str, &[S])]) -> Vec<usize> {
    let mut done: Vec<&str> = Vec::new();
    let mut order = Vec::new();
    while order.len() < steps.len() {
        let before = order.len();
        for (i, (name, needs)) in steps.iter().enumerate() {
            if !done.contains(name) && needs.iter().all(|n| done.contains(&n.as_ref())) {
                done.push(name);
                order.push(i);
            }
        }
        if order.len() == before {
            break; // a cycle: never loop forever
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(edges: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        edges
            .iter()
            .map(|(n, needs)| {
                (
                    n.to_string(),
                    needs.iter().map(std::string::ToString::to_string).collect(),
                )
            })
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
    fn order_puts_needs_first_and_keeps_ties_in_file_order() {
        let plot: &[&str] = &["agg"];
        let agg: &[&str] = &["b1", "b2"];
        let none: &[&str] = &[];
        let steps = [("plot", plot), ("agg", agg), ("b1", none), ("b2", none)];
        assert_eq!(order(&steps), [2, 3, 1, 0]);
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
