//! Batch size as a second axis (`batch_sizes`): a point per (length, batch size), cached as one; documents, table,
//! fits, summary and the trade-off figure per batch size.

use crate::project::{Project, THREE_MODELS};

fn sweep(arch: &str, batches: &str, num_tokens: usize) -> String {
    format!(
        "name: s\narch: {arch}\ncontext_lengths: [16, 48]\nnum_tokens: {num_tokens}\nbatch_sizes: {batches}\nnum_runs: 2\nwarmup_runs: 0\nthreads: 1\n"
    )
}

/// The cells of one CSV line (quoted cells may hold commas; no cell here holds a newline).
fn cells(line: &str) -> Vec<String> {
    let (mut out, mut cell, mut quoted) = (Vec::new(), String::new(), false);
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cell)),
            c => cell.push(c),
        }
    }
    out.push(cell);
    out
}

fn csv(p: &Project, name: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    let text = p.read(&format!("tables/{name}"));
    let mut lines = text.lines();
    let head = cells(lines.next().unwrap());
    lines
        .map(|l| {
            let row = cells(l);
            assert_eq!(row.len(), head.len(), "{l}");
            head.iter().cloned().zip(row).collect()
        })
        .collect()
}

fn f(row: &std::collections::BTreeMap<String, String>, k: &str) -> f64 {
    row[k]
        .parse()
        .unwrap_or_else(|_| panic!("`{k}` = `{}` in {row:?}", row[k]))
}

#[test]
fn a_two_by_two_sweep_measures_four_points_per_model_and_a_new_batch_size_only_its_own() {
    let p = Project::new();
    p.write("pipelines/p.yaml", THREE_MODELS);
    p.write("configs/bench/decoder.yaml", &sweep("decoder", "[1, 2]", 3));
    p.write(
        "configs/bench/seq2seq.yaml",
        &sweep("encoder-decoder", "[1, 2]", 3),
    );
    p.write("configs/bench/encoder.yaml", &sweep("encoder", "[2, 1]", 0));
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.points(), (12, 0, 0, 0), "{}", r.all());
    assert!(r.stdout.contains("48 tokens × batch 2:"), "{}", r.stdout);

    // The documents: batch 1 where the original tool's readers look, batch 2 beside it, each row fed in full.
    for model in ["gpt2-tiny", "t5-tiny", "bert-tiny"] {
        let doc = p.results(model);
        assert_eq!(
            doc["config"]["bench"]["batch_sizes"],
            serde_json::json!([1, 2])
        );
        assert_eq!(doc["config"]["bench"]["batch_size"], 1);
        for (at, batch) in [("/metrics", 1), ("/batch_metrics/2", 2)] {
            for length in [16u64, 48] {
                let m = doc
                    .pointer(&format!("{at}/{length}"))
                    .unwrap_or_else(|| panic!("no {at}/{length} in {doc:#}"));
                assert_eq!(
                    (
                        m["status"].as_str(),
                        m["point"]["input_tokens"].as_u64(),
                        m["point"]["batch_size"].as_u64(),
                        m["batch_size"].as_u64()
                    ),
                    (Some("ok"), Some(length), Some(batch), Some(batch)),
                    "{model} {at}/{length}"
                );
            }
        }
        assert!(doc["batch_metrics"].get("1").is_none());
    }

    // The table: one row per (model, length, batch), with both throughput units.
    let rows = csv(&p, "inference_results.csv");
    assert_eq!(rows.len(), 12);
    for row in &rows {
        let batch = f(row, "batch_size");
        let length = f(row, "context_length");
        assert_eq!(f(row, "input_tokens"), length);
        // Sequences/s: the batch over the forward pass (encoder) or the whole generation (generators).
        let per_request_ms = if row["arch"] == "encoder" {
            f(row, "latency_ms")
        } else {
            f(row, "e2e_latency_ms")
        };
        let expected = batch * 1e3 / per_request_ms;
        assert!(
            (f(row, "sequences_per_sec") - expected).abs() < 1e-3 * expected,
            "{row:?}"
        );
        // Prefill tokens/s count every row of the batch; the table rounds to 4 decimals.
        assert!(f(row, "prefill_tokens_per_sec") > 0.0, "{row:?}");
        assert!(
            ["yes", "no"].contains(&row["pareto_front"].as_str()),
            "{row:?}"
        );
    }
    // The front, recomputed from the table: a batch size is off it only when the other is both faster per request
    // and of more sequences/s.
    for model in ["gpt2-tiny", "t5-tiny", "bert-tiny"] {
        for length in ["16", "48"] {
            let pair: Vec<_> = rows
                .iter()
                .filter(|r| r["model"] == model && r["context_length"] == length)
                .collect();
            assert_eq!(pair.len(), 2);
            let at = |r: &std::collections::BTreeMap<String, String>| {
                let ms = if r["arch"] == "encoder" {
                    f(r, "latency_ms")
                } else {
                    f(r, "e2e_latency_ms")
                };
                (ms, f(r, "sequences_per_sec"))
            };
            for (a, b) in [(pair[0], pair[1]), (pair[1], pair[0])] {
                let ((la, ta), (lb, tb)) = (at(a), at(b));
                let beaten = lb <= la && tb >= ta && (lb < la || tb > ta);
                assert_eq!(a["pareto_front"] == "no", beaten, "{a:?} vs {b:?}");
            }
        }
    }

    // Summary and fits: one row per (model, batch size).
    let summary = csv(&p, "summary.csv");
    let curves: Vec<(String, String)> = summary
        .iter()
        .map(|r| (r["model"].clone(), r["batch_size"].clone()))
        .collect();
    assert_eq!(
        curves,
        [
            ("bert-tiny", "1"),
            ("bert-tiny", "2"),
            ("gpt2-tiny", "1"),
            ("gpt2-tiny", "2"),
            ("t5-tiny", "1"),
            ("t5-tiny", "2")
        ]
        .map(|(m, b)| (m.to_string(), b.to_string()))
    );
    for s in &summary {
        assert_eq!(s["points_ok"], "2", "{s:?}");
        let best = rows
            .iter()
            .filter(|r| r["model"] == s["model"] && r["batch_size"] == s["batch_size"])
            .map(|r| f(r, "sequences_per_sec"))
            .fold(0.0, f64::max);
        assert!(
            (f(s, "max_sequences_per_sec") - best).abs() < 1e-3 * best,
            "{s:?}"
        );
    }
    let fits = csv(&p, "scaling_fit.csv");
    assert_eq!(fits.len(), 6);
    assert!(fits.iter().all(|r| r["lengths"] == "16 48"), "{fits:?}");

    // The trade-off figure, with a hover text per point naming its batch size and whether it is on the front.
    for ext in ["png", "svg"] {
        assert!(p.path(&format!("figs/batch_tradeoff.{ext}")).is_file());
    }
    let svg = p.read("figs/batch_tradeoff.svg");
    assert_eq!(
        svg.matches("<title>").count(),
        12 + 8,
        "12 request points, 8 decode points"
    );
    assert!(
        svg.contains("bert-tiny (encoder), 48 tokens, batch 2"),
        "{svg}"
    );
    assert!(svg.contains("Pareto front"));
    // The request panel's front is the table's column: as many hollow (off the front) points as `no` rows.
    let request_titles: Vec<&str> = svg
        .split("<title>")
        .skip(1)
        .filter(|t| t.contains("sequences/s"))
        .collect();
    assert_eq!(request_titles.len(), 12);
    for (verdict, says) in [("yes", "on the Pareto front"), ("no", "off the front")] {
        assert_eq!(
            request_titles.iter().filter(|t| t.contains(says)).count(),
            rows.iter().filter(|r| r["pareto_front"] == verdict).count(),
            "{verdict}"
        );
    }
    let page = p.read("figs/report.html");
    assert!(page.contains("id=\"fig-batch_tradeoff\""));
    // Each batch size's curve is one run: adding a batch size below must not warn that a curve mixes runs.

    // Keep these results as a baseline for `compare`.
    std::fs::create_dir_all(p.path("before")).unwrap();
    for model in ["gpt2-tiny", "t5-tiny", "bert-tiny"] {
        std::fs::copy(
            p.path(&format!("latest/inference/{model}.json")),
            p.path(&format!("before/{model}.json")),
        )
        .unwrap();
    }

    // Batch 3 for one model: only its two new points are measured.
    p.write(
        "configs/bench/encoder.yaml",
        &sweep("encoder", "[1, 2, 3]", 0),
    );
    let dry = p.run(&["run", "pipelines/p.yaml", "--dry-run"]);
    assert_eq!(dry.code, 0, "{}", dry.all());
    assert_eq!(
        dry.stdout.matches("× batch 3     new").count(),
        2,
        "{}",
        dry.stdout
    );
    assert_eq!(dry.stdout.matches(" new ").count(), 2, "{}", dry.stdout);
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.points(), (2, 12, 0, 0), "{}", r.all());
    let bert = p.results("bert-tiny");
    assert_eq!(bert["batch_metrics"]["3"]["48"]["point"]["batch_size"], 3);
    assert!(!r.all().contains("mixes points measured in"), "{}", r.all());
    assert!(
        !p.read("figs/report.html")
            .contains("mixes points measured in")
    );
    assert_eq!(csv(&p, "inference_results.csv").len(), 14);

    // `compare` matches points on batch size too: each batch size's samples against the same batch size's.
    let c = p.run(&["compare", "before", ".", "--format", "json"]);
    // Too few runs a side to tell anything: inconclusive, exit 3.
    assert_eq!(c.code, 3, "{}", c.all());
    let json: serde_json::Value = serde_json::from_str(&c.stdout).unwrap();
    let rows = json["rows"].as_array().unwrap();
    let bert: Vec<(u64, u64)> = rows
        .iter()
        .filter(|r| r["model"] == "bert-tiny")
        .map(|r| {
            assert_eq!(r["ratio"].as_f64(), Some(1.0), "{r}");
            (
                r["context_length"].as_u64().unwrap(),
                r["batch_size"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(bert, [(16, 1), (48, 1), (16, 2), (48, 2)]);
    let only: Vec<&str> = json["only_candidate"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(
        only,
        ["bert-tiny @ 16 × batch 3", "bert-tiny @ 48 × batch 3"]
    );
}

#[test]
fn a_batch_too_large_for_this_machine_is_recorded_with_what_it_needed_and_the_others_complete() {
    let p = Project::new();
    p.write(
        "pipelines/p.yaml",
        "steps:\n  - name: b\n    kind: bench\n    model: configs/model/bert.yaml\n    bench: configs/bench/encoder.yaml\n  - name: g\n    kind: bench\n    model: configs/model/gpt2.yaml\n    bench: configs/bench/decoder.yaml\n",
    );
    // 10^12 sequences: valid, but no machine holds their input ids (BERT) or KV cache (GPT-2).
    p.write(
        "configs/bench/encoder.yaml",
        &sweep("encoder", "[1, 1000000000000]", 0),
    );
    p.write(
        "configs/bench/decoder.yaml",
        &sweep("decoder", "[2, 1000000000000]", 2),
    );
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(!r.all().contains("panicked"), "{}", r.all());
    assert_eq!(r.points(), (4, 0, 4, 0), "{}", r.all());
    for (model, small) in [("bert-tiny", 1), ("gpt2-tiny", 2)] {
        let doc = p.results(model);
        for length in ["16", "48"] {
            assert_eq!(doc["metrics"][length]["point"]["batch_size"], small);
            assert_eq!(doc["metrics"][length]["status"], "ok");
            let huge = &doc["batch_metrics"]["1000000000000"][length];
            assert_eq!(huge["status"], "oom", "{huge:#}");
            assert_eq!(huge["point"]["batch_size"], 1_000_000_000_000u64);
            let reason = huge["reason"].as_str().unwrap();
            assert!(
                reason.contains("bytes") && reason.contains("out of memory"),
                "{reason}"
            );
        }
    }
    // Failed points are not cached: a rerun tries them again, the measured ones come from the cache.
    let again = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(again.points(), (0, 4, 4, 0), "{}", again.all());
}
