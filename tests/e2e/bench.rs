//! Bench steps on tiny models: every metric present and sane, exact input lengths, latency growing with length,
//! infeasible points recorded without losing the others, `--only`.

use serde_json::Value;

use crate::project::{Project, bench_yaml, point};

fn median(point: &Value, metric: &str) -> f64 {
    point
        .pointer(&format!("/stats/{metric}/median"))
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("no {metric} in {point:#}"))
}

#[test]
fn three_architectures_end_to_end() {
    let p = Project::new();
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.points(), (6, 0, 0, 0));
    // The closing lines: the counts in their exact form, then what each latency is, what is new, the wall
    // time and the report.
    let tail: Vec<&str> = r
        .stdout
        .lines()
        .rev()
        .take(5)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    assert_eq!(
        tail[0], "points: 6 computed, 0 cached, 0 failed, 0 infeasible",
        "{}",
        r.stdout
    );
    assert_eq!(
        tail[1],
        "latency: TTFT (time to first token) for gpt2-tiny, t5-tiny; forward pass (the whole input, once) for bert-tiny"
    );
    assert_eq!(
        tail[2],
        "measured now: gpt2-tiny 2, t5-tiny 2, bert-tiny 2; from the cache: none"
    );
    assert!(
        tail[3].starts_with("wall time: ") && tail[3].ends_with(" s"),
        "{}",
        tail[3]
    );
    assert_eq!(tail[4], "report: figs/report.html");
    // A run whose plot step did not run names no report page (the one on disk is an earlier run's).
    let bench_only = p.run(&["run", "pipelines/p.yaml", "--only", "bench-bert"]);
    assert!(
        !bench_only.stdout.contains("report:"),
        "{}",
        bench_only.stdout
    );
    let again = p.run(&["run", "pipelines/p.yaml"]);
    assert!(
        again
            .stdout
            .contains("measured now: none; from the cache: gpt2-tiny 2, t5-tiny 2, bert-tiny 2"),
        "{}",
        again.stdout
    );
    assert!(
        r.stdout
            .contains("gpt2-tiny: Context Length Scaling Results (TTFT):\n  32 tokens: "),
        "{}",
        r.stdout
    );

    for (model, arch) in [
        ("gpt2-tiny", "decoder"),
        ("t5-tiny", "encoder-decoder"),
        ("bert-tiny", "encoder"),
    ] {
        let doc = p.results(model);
        assert!(
            doc["exp_id"]
                .as_str()
                .unwrap()
                .starts_with("inference_scaling_")
        );
        assert_eq!(doc["arch"], arch);
        assert_eq!(doc["weights"], "random-init seed 1");
        for length in [32, 512] {
            let pt = point(&doc, length);
            assert_eq!(pt["status"], "ok");
            assert_eq!(
                pt["input_tokens"], length,
                "{model}@{length} must feed exactly {length} tokens"
            );
            assert_eq!(pt["weights"], "random-init seed 1");
            assert_eq!(pt["dtype"], "fp32");
            assert!(pt["device"].as_str().unwrap().starts_with("cpu ("));
            assert_eq!(pt["threads"], 1);
            assert!(
                pt["libtorch_version"]
                    .as_str()
                    .unwrap()
                    .starts_with("2.13.0")
            );
            assert!(pt["peak_rss_bytes"].as_u64().unwrap() > pt["weights_bytes"].as_u64().unwrap());
            let m = &doc["metrics"][length.to_string()];
            assert!(
                m["latency_ms"].as_f64().unwrap() > 0.0
                    && m["max_memory_gb"].as_f64().unwrap() > 0.0
            );
            assert_eq!(pt["stopped_by"], "num_runs");
            assert_eq!(pt["memory_source"], "host_rss");
            assert_eq!(pt["method"].as_str().unwrap().len(), 64);
            assert!(
                !pt.to_string().contains("ci95"),
                "no interval may claim 95 % it does not have"
            );
            let stats = pt["stats"].as_object().unwrap();
            for (metric, s) in stats {
                // Every decode step of every run is an `itl_ms` sample; every other metric has one per run.
                let n = if metric == "itl_ms" { 3 * 3 } else { 3 };
                assert_eq!(s["n"], n, "{metric}");
                assert_eq!(s["samples"].as_array().unwrap().len(), n);
                let (lo, med, hi) = (
                    s["ci_low"].as_f64().unwrap(),
                    s["median"].as_f64().unwrap(),
                    s["ci_high"].as_f64().unwrap(),
                );
                assert!(lo <= med && med <= hi);
                if n == 3 {
                    // Three runs: the interval is [min, max] and 75 % confident, not 95 %.
                    assert_eq!(
                        (lo, hi),
                        (s["min"].as_f64().unwrap(), s["max"].as_f64().unwrap())
                    );
                    assert_eq!(s["ci_level"], 0.75, "{metric}");
                } else {
                    // Nine decode steps: [x(2), x(8)] at 1 - 2·P(Bin(9, ½) ≤ 1) = 0.9609.
                    let mut sorted: Vec<f64> = s["samples"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_f64().unwrap())
                        .collect();
                    sorted.sort_by(f64::total_cmp);
                    assert_eq!((lo, hi), (sorted[1], sorted[7]), "{metric}");
                    assert!((s["ci_level"].as_f64().unwrap() - 0.960_937_5).abs() < 1e-12);
                    assert!(s["p99"].as_f64().unwrap() >= s["p90"].as_f64().unwrap());
                }
            }
            // Prefill rate: the input tokens over the prefill (decoder), encoder (T5) or forward (BERT) time.
            let prefill_time = match arch {
                "decoder" => "ttft_ms",
                "encoder-decoder" => "encoder_latency_ms",
                _ => "forward_pass_latency_ms",
            };
            let rates = pt["stats"]["prefill_tokens_per_sec"]["samples"]
                .as_array()
                .unwrap();
            let times = pt["stats"][prefill_time]["samples"].as_array().unwrap();
            for (rate, ms) in rates.iter().zip(times) {
                let expected = length as f64 / (ms.as_f64().unwrap() / 1e3);
                assert!((rate.as_f64().unwrap() / expected - 1.0).abs() < 1e-9);
            }
            if arch == "encoder" {
                assert!(median(pt, "forward_pass_latency_ms") > 0.0);
                let tps = median(pt, "tokens_per_sec") / median(pt, "sequences_per_sec");
                assert!(
                    (tps - length as f64).abs() < 1e-6 * length as f64,
                    "tokens/s = length x sequences/s"
                );
            } else {
                let (ttft, tbt, e2e) = (
                    median(pt, "ttft_ms"),
                    median(pt, "tbt_ms"),
                    median(pt, "e2e_latency_ms"),
                );
                assert!(
                    e2e >= ttft && ttft > 0.0 && tbt > 0.0,
                    "{model}@{length}: e2e {e2e} ttft {ttft} tbt {tbt}"
                );
                // Every sample: e2e covers the first token and the three decode steps.
                let e2e_samples = pt["stats"]["e2e_latency_ms"]["samples"].as_array().unwrap();
                let ttft_samples = pt["stats"]["ttft_ms"]["samples"].as_array().unwrap();
                for (e, t) in e2e_samples.iter().zip(ttft_samples) {
                    assert!(e.as_f64().unwrap() >= t.as_f64().unwrap());
                }
                // `tbt_ms` of a run is the mean of its three `itl_ms` decode steps, which are kept one by one.
                let itl: Vec<f64> = pt["stats"]["itl_ms"]["samples"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect();
                let tbt_samples = pt["stats"]["tbt_ms"]["samples"].as_array().unwrap();
                for (run, tbt) in tbt_samples.iter().enumerate() {
                    let mean = itl[run * 3..run * 3 + 3].iter().sum::<f64>() / 3.0;
                    assert!((tbt.as_f64().unwrap() - mean).abs() < 1e-9, "run {run}");
                }
                let decode_rate = doc["metrics"][length.to_string()]["decode_tokens_per_sec"]
                    .as_f64()
                    .unwrap();
                assert!((decode_rate - 1e3 / median(pt, "itl_ms")).abs() < 1e-6 * decode_rate);
                // Throughput is generated tokens over each run's end-to-end time: 4 tokens, batch 1.
                let tps = pt["stats"]["throughput_tokens_per_sec"]["samples"]
                    .as_array()
                    .unwrap();
                for (tp, e) in tps.iter().zip(e2e_samples) {
                    let expected = 4.0 / (e.as_f64().unwrap() / 1e3);
                    assert!(
                        (tp.as_f64().unwrap() / expected - 1.0).abs() < 1e-9,
                        "{tp} tokens/s vs {expected}"
                    );
                }
                if arch == "encoder-decoder" {
                    assert!(median(pt, "encoder_latency_ms") < ttft);
                }
            }
        }
        // The curve grows: the headline latency at 512 tokens exceeds the one at 32.
        let (short, long) = (
            doc["metrics"]["32"]["latency_ms"].as_f64().unwrap(),
            doc["metrics"]["512"]["latency_ms"].as_f64().unwrap(),
        );
        assert!(
            long > short,
            "{model}: latency at 512 ({long} ms) should exceed latency at 32 ({short} ms)"
        );
    }
    let csv = p.read("tables/inference_results.csv");
    assert_eq!(csv.lines().count(), 7, "{csv}");
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    for column in [
        "latency_ci_low_ms",
        "latency_ci_high_ms",
        "latency_ci_level",
        "prefill_tokens_per_sec",
        "decode_tokens_per_sec",
        "itl_p99_ms",
        "memory_source",
        "rss_above_baseline_bytes",
        "cuda_reserved_peak_bytes",
        "stopped_by",
        "finished_at",
        "method",
        "run_id",
    ] {
        assert!(header.contains(&column), "{column} missing from {header:?}");
    }
    let level = header
        .iter()
        .position(|c| *c == "latency_ci_level")
        .unwrap();
    let source = header.iter().position(|c| *c == "memory_source").unwrap();
    let p90 = header.iter().position(|c| *c == "latency_p90_ms").unwrap();
    let p99 = header.iter().position(|c| *c == "itl_p99_ms").unwrap();
    let col = |name: &str| header.iter().position(|c| *c == name).unwrap();
    let (peak, above) = (col("peak_memory_bytes"), col("rss_above_baseline_bytes"));
    for row in csv.lines().skip(1) {
        let cells: Vec<&str> = row.split(',').collect();
        // On CPU: what the model and point added to the worker's pre-load RSS, less than the whole peak.
        let (peak, above): (u64, u64) =
            (cells[peak].parse().unwrap(), cells[above].parse().unwrap());
        assert!(0 < above && above < peak, "{row}");
        assert_eq!(cells[col("cuda_reserved_peak_bytes")], "", "{row}");
        assert_eq!(cells[level].parse::<f64>().unwrap(), 0.75, "{row}");
        assert_eq!(cells[source], "host_rss", "{row}");
        // 3 runs publish no 90th percentile, and 3 runs of 3 decode steps no 99th.
        assert_eq!((cells[p90], cells[p99]), ("", ""), "{row}");
    }
    let fit = p.read("tables/scaling_fit.csv");
    assert!(
        fit.lines()
            .next()
            .unwrap()
            .contains("k_stderr,df,k_ci95_low,k_ci95_high"),
        "{fit}"
    );
    // The fit names the one run its points come from: the run id every row carries.
    let run_ids: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|r| {
            r.split(',')
                .nth(header.iter().position(|c| *c == "run_id").unwrap())
                .unwrap()
        })
        .collect();
    // `runs` is the last column (`fit_selection` is quoted and holds commas).
    assert!(fit.lines().next().unwrap().ends_with(",runs"));
    for row in fit.lines().skip(1) {
        assert_eq!(row.rsplit(',').next().unwrap(), run_ids[0], "{fit}");
    }
    assert!(run_ids.iter().all(|r| *r == run_ids[0] && !r.is_empty()));
    assert!(p.path("figs/latency_curve.png").is_file());
}

#[test]
fn e2e_grows_with_generated_tokens() {
    let p = Project::new();
    p.write("pipelines/p.yaml", "steps:\n  - name: b\n    kind: bench\n    model: configs/model/gpt2.yaml\n    bench: configs/bench/decoder.yaml\n");
    p.write(
        "configs/bench/decoder.yaml",
        &bench_yaml("decoder", "[64]", 2, 3),
    );
    assert_eq!(p.run(&["run", "pipelines/p.yaml"]).code, 0);
    let few = median(point(&p.results("gpt2-tiny"), 64), "e2e_latency_ms");
    p.write(
        "configs/bench/decoder.yaml",
        &bench_yaml("decoder", "[64]", 24, 3),
    );
    assert_eq!(p.run(&["run", "pipelines/p.yaml"]).code, 0);
    let many = median(point(&p.results("gpt2-tiny"), 64), "e2e_latency_ms");
    assert!(
        many > few,
        "24 tokens ({many} ms) should take longer than 2 ({few} ms)"
    );
}

#[test]
fn infeasible_point_is_recorded_and_the_others_computed() {
    let p = Project::new();
    p.write("pipelines/p.yaml", "steps:\n  - name: b\n    kind: bench\n    model: configs/model/gpt2.yaml\n    bench: configs/bench/decoder.yaml\n  - name: bert\n    kind: bench\n    model: configs/model/bert.yaml\n    bench: configs/bench/encoder.yaml\n");
    // n_positions is 600: 598 + 4 generated tokens needs 601 positions.
    p.write(
        "configs/bench/decoder.yaml",
        &bench_yaml("decoder", "[16, 598, 32]", 4, 1),
    );
    p.write(
        "configs/bench/encoder.yaml",
        &bench_yaml("encoder", "[16, 513]", 0, 1),
    );
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert_eq!(r.points(), (3, 0, 0, 2));
    assert!(
        r.stdout
            .contains("  598 tokens: infeasible (598 + 4 generated tokens exceed n_positions 600)"),
        "{}",
        r.stdout
    );
    let doc = p.results("gpt2-tiny");
    assert_eq!(point(&doc, 598)["status"], "infeasible");
    assert_eq!(
        point(&doc, 598)["reason"],
        "598 + 4 generated tokens exceed n_positions 600"
    );
    assert_eq!(point(&doc, 16)["status"], "ok");
    assert_eq!(point(&doc, 32)["status"], "ok");
    assert_eq!(
        point(&p.results("bert-tiny"), 513)["reason"],
        "513 tokens exceed max_position_embeddings 512"
    );
    let dry = p.run(&["run", "pipelines/p.yaml", "--dry-run"]).stdout;
    assert!(
        dry.contains("598 tokens  infeasible (598 + 4 generated tokens exceed n_positions 600)"),
        "{dry}"
    );
}

#[test]
fn single_point_config_still_works() {
    let p = Project::new();
    p.write("pipelines/p.yaml", "steps:\n  - name: b\n    kind: bench\n    model: configs/model/bert.yaml\n    bench: configs/bench/one.yaml\n");
    p.write(
        "configs/bench/one.yaml",
        "name: one\narch: encoder\ncontext_length: 48\nnum_runs: 2\nwarmup_runs: 0\n",
    );
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let doc = p.results("bert-tiny");
    assert_eq!(doc["config"]["bench"]["scaling"], false);
    assert_eq!(point(&doc, 48)["input_tokens"], 48);
}

/// Every `null` in a JSON value outside the points' own records, by path.
fn nulls(v: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Null => out.push(path.to_string()),
        // The point's own record says `null` for what its machine could not measure; the original reader never
        // looks inside it.
        serde_json::Value::Object(m) => m
            .iter()
            .filter(|(k, _)| *k != "point")
            .for_each(|(k, v)| nulls(v, &format!("{path}.{k}"), out)),
        serde_json::Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, v)| nulls(v, &format!("{path}[{i}]"), out)),
        _ => {}
    }
}

#[test]
fn results_follow_the_schema_with_the_original_blocks_and_no_nulls() {
    let p = Project::new();
    p.write("pipelines/p.yaml", "steps:\n  - name: b\n    kind: bench\n    model: configs/model/bert.yaml\n    bench: configs/bench/encoder.yaml\n");
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let doc = p.results("bert-tiny");
    assert_eq!(doc["schema_version"], 1);
    assert!(
        doc["exp_id"]
            .as_str()
            .unwrap()
            .starts_with("inference_scaling_")
    );
    // The original tool's blocks: `config.model.{name, arch}` and `config.bench`.
    assert_eq!(doc["config"]["model"]["name"], "bert-tiny");
    assert_eq!(doc["config"]["model"]["arch"], "encoder");
    assert_eq!(doc["config"]["model"]["dtype"], "fp32");
    let bench = &doc["config"]["bench"];
    for field in [
        "name",
        "arch",
        "context_lengths",
        "num_tokens",
        "batch_size",
        "num_runs",
        "warmup_runs",
    ] {
        assert!(!bench[field].is_null(), "config.bench.{field}: {bench}");
    }
    // The original's per-length fields beside e3pipe's, equal to the point's own statistics.
    let lengths: Vec<&String> = doc["metrics"].as_object().unwrap().keys().collect();
    assert_eq!(lengths.len(), 2, "{lengths:?}");
    for length in lengths {
        let m = &doc["metrics"][length];
        let stats = &m["point"]["stats"]["forward_pass_latency_ms"];
        assert_eq!(m["forward_pass_latency_ms"], stats["median"]);
        assert_eq!(m["latency_ms"], stats["median"]);
        assert_eq!(m["latency_std_ms"], stats["std"]);
        assert_eq!(m["total_runs"], stats["n"]);
        assert_eq!(
            m["throughput_tokens_per_sec"],
            m["point"]["stats"]["tokens_per_sec"]["median"]
        );
        assert!(m["max_memory_gb"].as_f64().unwrap() > 0.0);
        // A generator's fields are not written for an encoder.
        assert!(
            m.get("ttft_ms").is_none() && m.get("tbt_ms").is_none(),
            "{m}"
        );
    }
    // Unmeasured fields are left out, never null (the original reader compares them with numbers).
    let mut found = Vec::new();
    nulls(&doc["metrics"], "metrics", &mut found);
    nulls(&doc["config"], "config", &mut found);
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn only_runs_the_named_steps() {
    let p = Project::new();
    let r = p.run(&["run", "pipelines/p.yaml", "--only", "bench-bert"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.points(), (2, 0, 0, 0));
    assert!(p.path("latest/inference/bert-tiny.json").is_file());
    assert!(!p.path("latest/inference/gpt2-tiny.json").exists());
    assert!(!p.path("tables").exists());
    let r = p.run(&["run", "pipelines/p.yaml", "--only", "aggregate,plot"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.points(), (0, 0, 0, 0));
    assert_eq!(p.read("tables/inference_results.csv").lines().count(), 3);
    assert!(p.path("figs/latency_curve.png").is_file());
    let r = p.run(&["run", "pipelines/p.yaml", "--only", "plot"]);
    assert!(
        r.stderr
            .contains("step `plot`: table unchanged, figures are up to date"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_failing_point_is_recorded_and_the_run_goes_on() {
    let p = Project::new();
    // Token ids of the real GPT-2 tokenizer do not fit a 1000-token vocabulary: every point of this model fails.
    p.write(
        "configs/model/small-vocab.yaml",
        &crate::project::GPT2_TINY
            .replace("vocab_size: 50257", "vocab_size: 1000")
            .replace("name: gpt2-tiny", "name: small-vocab"),
    );
    p.write("pipelines/p.yaml", "steps:\n  - name: bad\n    kind: bench\n    model: configs/model/small-vocab.yaml\n    bench: configs/bench/decoder.yaml\n  - name: good\n    kind: bench\n    model: configs/model/bert.yaml\n    bench: configs/bench/encoder.yaml\n");
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert_eq!(r.points(), (2, 0, 2, 0));
    assert!(
        r.stderr
            .contains("error: point small-vocab@32 failed (error): token id"),
        "{}",
        r.stderr
    );
    let bad = point(&p.results("small-vocab"), 32).clone();
    assert_eq!(bad["status"], "error");
    assert!(
        bad["reason"]
            .as_str()
            .unwrap()
            .contains("outside the model's vocabulary")
    );
    assert_eq!(point(&p.results("bert-tiny"), 512)["status"], "ok");
    // Failures are not cached: the next run tries them again and keeps the good points.
    assert_eq!(p.run(&["run", "pipelines/p.yaml"]).points(), (0, 2, 2, 0));
}

#[test]
fn a_crashed_worker_fails_its_points_not_the_run() {
    let p = Project::new();
    let mut cmd = p.command(&["run", "pipelines/p.yaml", "--only", "bench-bert,bench-gpt2"]);
    // A worker that dies at once, as one killed by the kernel's OOM killer would.
    cmd.env("E3PIPE_WORKER", "/bin/false");
    let r = crate::project::to_run(cmd.output().unwrap());
    assert_eq!(r.code, 1, "{}", r.all());
    assert_eq!(r.points(), (0, 0, 4, 0));
    assert!(
        r.stderr
            .contains("error: step `bench-gpt2`: the measuring worker exited with code 1"),
        "{}",
        r.stderr
    );
    assert_eq!(point(&p.results("bert-tiny"), 32)["status"], "error");
    // No worker at all: a clear error, exit 1 (not "invalid input").
    let mut cmd = p.command(&["run", "pipelines/p.yaml", "--only", "bench-bert"]);
    cmd.env("E3PIPE_WORKER", "/nonexistent/e3pipe-worker");
    let r = crate::project::to_run(cmd.output().unwrap());
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr
            .contains("cannot start the measuring worker `/nonexistent/e3pipe-worker`"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_batch_feeds_full_length_rows_and_counts_every_sequence() {
    let p = Project::new();
    p.write("pipelines/p.yaml", "steps:\n  - name: b\n    kind: bench\n    model: configs/model/bert.yaml\n    bench: configs/bench/b.yaml\n  - name: g\n    kind: bench\n    model: configs/model/gpt2.yaml\n    bench: configs/bench/g.yaml\n");
    p.write("configs/bench/b.yaml", "name: b\narch: encoder\ncontext_lengths: [16, 48]\nbatch_size: 3\nnum_runs: 3\nwarmup_runs: 0\nthreads: 1\n");
    p.write("configs/bench/g.yaml", "name: g\narch: decoder\ncontext_lengths: [16]\nnum_tokens: 4\nbatch_size: 2\nnum_runs: 3\nwarmup_runs: 0\nthreads: 1\n");
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    for length in [16, 48] {
        let doc = p.results("bert-tiny");
        let point = point(&doc, length);
        assert_eq!(point["status"], "ok");
        // Per sequence: each of the 3 rows fed the full length.
        assert_eq!(
            (point["input_tokens"].as_u64(), point["batch_size"].as_u64()),
            (Some(length as u64), Some(3))
        );
        let forward_ms = point["stats"]["forward_pass_latency_ms"]["samples"]
            .as_array()
            .unwrap();
        let seqs = point["stats"]["sequences_per_sec"]["samples"]
            .as_array()
            .unwrap();
        let toks = point["stats"]["tokens_per_sec"]["samples"]
            .as_array()
            .unwrap();
        for ((ms, s), t) in forward_ms.iter().zip(seqs).zip(toks) {
            let ms = ms.as_f64().unwrap();
            assert!((s.as_f64().unwrap() - 3.0 * 1e3 / ms).abs() < 1e-6 * s.as_f64().unwrap());
            assert!(
                (t.as_f64().unwrap() - 3.0 * length as f64 * 1e3 / ms).abs()
                    < 1e-6 * t.as_f64().unwrap()
            );
        }
    }
    let gpt = p.results("gpt2-tiny");
    let g = point(&gpt, 16);
    assert_eq!(
        (
            g["status"].as_str(),
            g["input_tokens"].as_u64(),
            g["batch_size"].as_u64()
        ),
        (Some("ok"), Some(16), Some(2))
    );
    // Generated tokens/s of the decode phase count both sequences: batch / median step.
    let itl = g["stats"]["itl_ms"]["median"].as_f64().unwrap();
    let decode = gpt["metrics"]["16"]["decode_tokens_per_sec"]
        .as_f64()
        .unwrap();
    assert!(
        (decode - 2.0 * 1e3 / itl).abs() < 1e-6 * decode,
        "{decode} vs {itl}"
    );
}

#[test]
fn points_are_measured_in_a_shuffled_order_their_seed_replays() {
    let p = Project::bert("[8, 16, 24, 32, 40, 48]", "");
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stderr.contains("measuring in a shuffled order (seed 0x"),
        "{}",
        r.stderr
    );
    let doc = p.results("bert-tiny");
    let lengths = [8usize, 16, 24, 32, 40, 48];
    let orders: Vec<(usize, serde_json::Value)> = lengths
        .iter()
        .map(|&l| (l, crate::project::point(&doc, l)["order"].clone()))
        .collect();
    let seed = orders[0].1["seed"].as_u64().unwrap();
    // One shuffle for the step: the seed replays where each length stood.
    let replay = e3pipe::bench::order::shuffled(lengths.len(), seed);
    for (length, order) in &orders {
        assert_eq!(order["seed"].as_u64(), Some(seed), "{order}");
        assert_eq!(order["of"], 6, "{order}");
        let position = order["position"].as_u64().unwrap() as usize;
        assert_eq!(lengths[replay[position]], *length, "{orders:?}");
    }
    // A rerun measures nothing, so it has no order of its own; the points keep theirs.
    let again = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(again.points(), (0, 6, 0, 0));
    assert!(!again.stderr.contains("shuffled"), "{}", again.stderr);
    assert_eq!(
        crate::project::point(&p.results("bert-tiny"), 8)["order"],
        orders[0].1
    );
}

#[test]
fn one_progress_bar_counts_the_whole_run_and_quiet_draws_none() {
    // At a terminal (`script` gives the run one): the bar counts points over every bench step, with an ETA.
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: no `script` (util-linux) to give the run a terminal");
        return;
    }
    let p = Project::new();
    let binary = env!("CARGO_BIN_EXE_e3pipe");
    let at_a_terminal = |args: &str| -> String {
        let log = p.path("tty.log");
        let status = std::process::Command::new("script")
            .args(["-qec", &format!("{binary} {args}"), log.to_str().unwrap()])
            .current_dir(p.root())
            .env("E3PIPE_NO_CUDA", "1")
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "{args}");
        String::from_utf8_lossy(&std::fs::read(&log).unwrap()).into_owned()
    };
    let shown = at_a_terminal("run pipelines/p.yaml");
    assert!(
        shown.contains("measuring 6 point(s) in 3 bench step(s)"),
        "{shown}"
    );
    // The third step's bar goes on from the points of the first two.
    assert!(shown.contains("5/6 points of this run"), "{shown}");
    assert!(shown.contains("6/6 points of this run"), "{shown}");
    assert!(shown.contains("  ETA "), "{shown}");
    let quiet = at_a_terminal("-q run pipelines/p.yaml --force");
    assert!(
        !quiet.contains("points of this run") && !quiet.contains("measuring 6"),
        "{quiet}"
    );
    assert!(quiet.contains("points: 6 computed"), "{quiet}");
}
