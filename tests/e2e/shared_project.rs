//! Several pipelines in one project: each model's document, the tables and the figures keep every pipeline's
//! points; rebuilt from the same points, derived outputs are the same bytes.

use crate::project::{AGGREGATE_AFTER_B, PLOT_AFTER_AGGREGATE, Project, bench_yaml};

/// Rows of `model` in the results table, as (context length, batch size).
fn rows(p: &Project, model: &str) -> Vec<(String, String)> {
    let table = p.read("tables/inference_results.csv");
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (m, l, b) = (col("model"), col("context_length"), col("batch_size"));
    let mut out: Vec<(String, String)> = lines
        .map(|line| line.split(',').collect::<Vec<_>>())
        .filter(|f| f[m] == model)
        .map(|f| (f[l].to_string(), f[b].to_string()))
        .collect();
    out.sort();
    out
}

#[test]
fn one_pipeline_never_drops_another_pipelines_points() {
    let p = Project::bert(
        "[8, 16]",
        &format!("{AGGREGATE_AFTER_B}{PLOT_AFTER_AGGREGATE}"),
    );
    // A second pipeline: the same model at another length and at batch 2, and a model of its own.
    p.write(
        "configs/bench/encoder_b.yaml",
        &bench_yaml("encoder", "[8, 24]", 0, 1).replace("batch_size: 1", "batch_sizes: [1, 2]"),
    );
    p.write(
        "configs/model/bert2.yaml",
        &crate::project::BERT_TINY.replace("bert-tiny", "bert-other"),
    );
    p.write(
        "pipelines/q.yaml",
        "steps:\n  - name: b\n    kind: bench\n    model: configs/model/bert.yaml\n    bench: configs/bench/encoder_b.yaml\n  - name: c\n    kind: bench\n    model: configs/model/bert2.yaml\n    bench: configs/bench/encoder.yaml\n  - name: aggregate\n    kind: aggregate\n    needs: [b, c]\n",
    );
    assert_eq!(p.run(&["run", "pipelines/p.yaml"]).code, 0);
    let r = p.run(&["run", "pipelines/q.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    // q measured 24, 8×b2, 24×b2 and 8 again (the anchor of a curve it extends); bert-other has the same key.
    assert_eq!(r.points(), (4, 2, 0, 0), "{}", r.all());
    let s = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter().map(|(a, b)| ((*a).into(), (*b).into())).collect()
    };
    let all_bert = s(&[
        ("16", "1"),
        ("24", "1"),
        ("24", "2"),
        ("8", "1"),
        ("8", "2"),
    ]);
    assert_eq!(rows(&p, "bert-tiny"), all_bert);
    assert_eq!(rows(&p, "bert-other"), s(&[("16", "1"), ("8", "1")]));
    let doc = p.results("bert-tiny");
    assert!(doc["metrics"]["16"]["point"]["status"] == "ok", "{doc:#}");
    assert!(
        doc["batch_metrics"]["2"]["24"]["latency_ms"].is_number(),
        "{doc:#}"
    );
    // Running the first pipeline again measures nothing and keeps every point and model of the second.
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.points(), (0, 2, 0, 0), "{}", r.all());
    assert!(
        r.stderr
            .contains("3 more cached point(s) of `bert-tiny` from other pipelines"),
        "{}",
        r.stderr
    );
    assert_eq!(rows(&p, "bert-tiny"), all_bert);
    assert_eq!(rows(&p, "bert-other"), s(&[("16", "1"), ("8", "1")]));
    let svg = p.read("figs/latency_curve.svg");
    assert!(
        svg.contains("bert-other"),
        "the figure lost the other pipeline's model"
    );
    // And a rerun is a no-op that writes nothing (the carried points are part of the settled fingerprint).
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert!(r.stderr.contains("results unchanged"), "{}", r.stderr);
}

#[test]
fn a_hand_altered_document_with_its_size_and_mtime_kept_is_written_again() {
    let p = Project::bert("[8, 16]", AGGREGATE_AFTER_B);
    assert_eq!(p.run(&["run", "pipelines/p.yaml"]).code, 0);
    let path = p.path("latest/inference/bert-tiny.json");
    let before = std::fs::read_to_string(&path).unwrap();
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    // One digit of a median changed, same length, same mtime.
    let at = before.find("\"latency_ms\": ").unwrap() + "\"latency_ms\": ".len();
    let digit = before.as_bytes()[at];
    let other = if digit == b'9' {
        '1'
    } else {
        (digit + 1) as char
    };
    let altered = format!("{}{other}{}", &before[..at], &before[at + 1..]);
    assert_eq!(altered.len(), before.len());
    std::fs::write(&path, &altered).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.points(), (0, 2, 0, 0));
    let after = std::fs::read_to_string(&path).unwrap();
    let median = |t: &str| -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(t).unwrap()["metrics"].clone()
    };
    assert_eq!(median(&after), median(&before), "the altered copy stayed");
}

#[test]
fn a_damaged_document_heals_to_the_same_bytes_and_so_do_the_tables() {
    let p = Project::bert(
        "[8, 16]",
        &format!("{AGGREGATE_AFTER_B}{PLOT_AFTER_AGGREGATE}"),
    );
    assert_eq!(p.run(&["run", "pipelines/p.yaml"]).code, 0);
    let files = [
        "latest/inference/bert-tiny.json",
        "tables/inference_results.csv",
        "tables/inference_results.parquet",
        "tables/summary.csv",
        "figs/latency_curve.svg",
        "figs/latency_curve.png",
        "figs/report.html",
    ];
    let before: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(p.path(f)).unwrap())
        .collect();
    let results_before = crate::project::walk(&p.path("results")).len();
    for damage in ["delete", "truncate"] {
        let doc = p.path(files[0]);
        if damage == "delete" {
            std::fs::remove_file(&doc).unwrap();
        } else {
            std::fs::write(&doc, &before[0][..before[0].len() / 3]).unwrap();
        }
        let r = p.run(&["run", "pipelines/p.yaml"]);
        assert_eq!(r.code, 0, "{}", r.all());
        assert_eq!(r.points(), (0, 2, 0, 0), "{}", r.all());
        for (f, bytes) in files.iter().zip(&before) {
            assert!(
                std::fs::read(p.path(f)).unwrap() == *bytes,
                "{f} after {damage}"
            );
        }
        // The same document is not recorded twice in `results/`.
        assert_eq!(
            crate::project::walk(&p.path("results")).len(),
            results_before
        );
    }
    // Rebuilt by force from the same points, the tables and figures are the same bytes.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let r = p.run(&["run", "pipelines/p.yaml", "--force", "aggregate,plot"]);
    assert_eq!(r.code, 0, "{}", r.all());
    for (f, bytes) in files.iter().zip(&before).skip(1) {
        assert!(
            std::fs::read(p.path(f)).unwrap() == *bytes,
            "{f} after a forced rebuild"
        );
    }
}
