//! Results over time (`e3pipe history`) and named baselines (`e3pipe baseline`, `compare --baseline`).

use crate::project::{AGGREGATE_AFTER_B, Project, bench_yaml};

#[test]
fn history_over_three_runs_gives_three_medians_per_point() {
    let p = Project::bert("[8, 16]", AGGREGATE_AFTER_B);
    assert_eq!(p.run(&["run", "pipelines/p.yaml"]).code, 0);
    assert_eq!(p.run(&["run", "pipelines/p.yaml", "--force"]).code, 0);
    // The third run with a length added.
    p.write(
        "configs/bench/encoder.yaml",
        &bench_yaml("encoder", "[8, 16, 24]", 0, 1),
    );
    assert_eq!(p.run(&["run", "pipelines/p.yaml", "--force"]).code, 0);
    let r = p.run(&["history", "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let points: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let runs = |length: i64| -> Vec<f64> {
        points
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["context_length"] == length && p["model"] == "bert-tiny")
            .unwrap_or_else(|| panic!("no {length} in {points:#}"))["measurements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["value"].as_f64().unwrap())
            .collect()
    };
    assert_eq!(runs(8).len(), 3, "{points:#}");
    assert_eq!(runs(16).len(), 3);
    assert_eq!(runs(24).len(), 1);
    // Each median is the one its run's document holds, oldest first.
    let first = &points[0]["measurements"][0];
    assert!(
        first["when"].as_str().unwrap() <= points[0]["measurements"][2]["when"].as_str().unwrap()
    );
    assert_eq!(first["other_code"], false);
    // The table, narrowed; the trend figure.
    let r = p.run(&["history", "--length", "16"]);
    assert!(
        r.stdout.starts_with("1 point(s) over 3 run(s)"),
        "{}",
        r.stdout
    );
    assert_eq!(
        r.stdout.lines().filter(|l| l.starts_with("  20")).count(),
        3,
        "{}",
        r.stdout
    );
    assert!(p.path("figs/history.png").is_file() && p.path("figs/history.svg").is_file());
    assert!(p.read("figs/history.svg").contains("bert-tiny@16"));
    // A measurement from other measuring code is marked (a document edited to say so).
    let doc = crate::project::walk(&p.path("results"))
        .into_iter()
        .min()
        .unwrap();
    let text = std::fs::read_to_string(&doc).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let method = v["metrics"]["8"]["point"]["method"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(&doc, text.replace(&method, &"0".repeat(method.len()))).unwrap();
    let r = p.run(&["history", "--length", "8", "--no-figure"]);
    assert_eq!(
        r.stdout.matches("(other measuring code)").count(),
        1,
        "{}",
        r.stdout
    );
    // The original tool's files in `results/` take part, at the time their name carries.
    p.write(
        "results/inference_scaling_20251111_120000.json",
        r#"{"exp_id": "inference_scaling_20251111_120000", "config": {"model": {"name": "bert-tiny", "arch": "encoder"}},
  "metrics": {"8": {"latency_ms": 0.5, "latency_std_ms": 0.01}}}"#,
    );
    let r = p.run(&["history", "--length", "8", "--no-figure"]);
    assert!(
        r.stdout.starts_with("1 point(s) over 4 run(s)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("\n  2025-11-11 12:00:00  0.500\n"),
        "the seed's run, oldest: {}",
        r.stdout
    );
    // Bad input: exit 2 with the nearest name.
    let r = p.run(&["history", "--metric", "latency_mss"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("did you mean `latency_ms`?"),
        "{}",
        r.stderr
    );
    let r = p.run(&["history", "--model", "nope"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no measurement"), "{}", r.stderr);
}

#[test]
fn a_named_baseline_is_saved_listed_and_compared() {
    let p = Project::bert("[8, 16]", AGGREGATE_AFTER_B);
    assert_eq!(p.run(&["run", "pipelines/p.yaml"]).code, 0);
    let r = p.run(&["baseline", "save", "before"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(p.path("baselines/before/bert-tiny.json").is_file());
    assert_eq!(
        p.read("baselines/before/bert-tiny.json"),
        p.read("latest/inference/bert-tiny.json")
    );
    assert_eq!(p.run(&["baseline", "save", "before"]).code, 2, "exists");
    assert_eq!(p.run(&["baseline", "save", "../escape"]).code, 2);
    assert!(!p.path("escape").exists());
    assert!(
        p.run(&["baseline", "list"])
            .stdout
            .contains("before: 1 model(s)")
    );
    // Later runs change the project; the baseline stays what it was and is the reference.
    assert_eq!(p.run(&["run", "pipelines/p.yaml", "--force"]).code, 0);
    let r = p.run(&["compare", "--baseline", "before", "--format", "json"]);
    assert!(r.code == 0 || r.code == 3, "{}", r.all());
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["rows"].as_array().unwrap().len(), 2, "{v:#}");
    assert!(
        v["baseline"].as_str().unwrap().contains("baselines/before"),
        "{v:#}"
    );
    let r = p.run(&["compare", "--baseline", "befor"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("did you mean `before`?"), "{}", r.stderr);
    assert_eq!(
        p.run(&["compare", "--baseline", "before", ".", "."]).code,
        2
    );
    assert_eq!(p.run(&["compare", "."]).code, 2);
}
