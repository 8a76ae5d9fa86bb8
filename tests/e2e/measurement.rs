//! Measurement truth: adaptive stopping to a real 95 % interval, stopping reasons, the method identity naming
//! stale points, `TorchScript` warm-ups, curves that mix runs, and a point's memory independent of what ran before.

use serde_json::Value;

use crate::project::{AGGREGATE_AFTER_B, BERT_ONLY, Project, bench_yaml, point};

#[test]
fn adaptive_stopping_reaches_a_real_95_percent_interval() {
    let p = Project::new();
    p.write("pipelines/p.yaml", BERT_ONLY);
    // A generous target is reached as soon as a 95 % interval exists (6 runs) and fits.
    p.write(
        "configs/bench/encoder.yaml",
        "name: t\narch: encoder\ncontext_lengths: [16]\nnum_runs: 3\nwarmup_runs: 1\nthreads: 1\ntarget_rel_ci: 0.9\nmax_runs: 400\n",
    );
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let pt = point(&p.results("bert-tiny"), 16).clone();
    assert_eq!(pt["stopped_by"], "target_rel_ci", "{pt:#}");
    let s = &pt["stats"]["forward_pass_latency_ms"];
    let n = s["n"].as_u64().unwrap();
    assert!((6..=400).contains(&n), "n = {n}");
    assert!(s["ci_level"].as_f64().unwrap() >= 0.95);
    let (lo, med, hi) = (
        s["ci_low"].as_f64().unwrap(),
        s["median"].as_f64().unwrap(),
        s["ci_high"].as_f64().unwrap(),
    );
    assert!(med - lo <= 0.9 * med && hi - med <= 0.9 * med);
    // Stopped on its interval's width, the point publishes one order statistic wider, with that level.
    let mut sorted: Vec<f64> = s["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    sorted.sort_by(f64::total_cmp);
    let plain = e3pipe::bench::stats::median_interval(sorted.len());
    let lower = plain.lower.saturating_sub(1);
    assert_eq!((lo, hi), (sorted[lower], sorted[sorted.len() - 1 - lower]));
    assert!(s["ci_level"].as_f64().unwrap() > plain.level || plain.lower == 0);

    // An unreachable target stops at the cap and says so.
    p.write(
        "configs/bench/encoder.yaml",
        "name: t\narch: encoder\ncontext_lengths: [16]\nnum_runs: 3\nwarmup_runs: 0\nthreads: 1\ntarget_rel_ci: 0.000000001\nmax_runs: 7\n",
    );
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let pt = point(&p.results("bert-tiny"), 16).clone();
    assert_eq!(pt["stopped_by"], "max_runs");
    assert_eq!(pt["stats"]["forward_pass_latency_ms"]["n"], 7);
}

#[test]
fn stopping_settings_are_validated() {
    let p = Project::new();
    p.write("pipelines/p.yaml", BERT_ONLY);
    for (extra, message) in [
        ("max_runs: 10\n", "set `target_rel_ci`"),
        ("max_duration_s: 10\n", "set `target_rel_ci`"),
        ("target_rel_ci: 0\n", "between 0 and 1"),
        ("target_rel_ci: 1.5\n", "between 0 and 1"),
        ("target_rel_ci: 0.02\nmax_runs: 5\n", "at least 6 runs"),
        (
            "target_rel_ci: 0.02\nmax_duration_s: -1\n",
            "expected seconds > 0",
        ),
    ] {
        p.write(
            "configs/bench/encoder.yaml",
            &format!("{}{extra}", bench_yaml("encoder", "[16]", 0, 1)),
        );
        let r = p.run(&["run", "pipelines/p.yaml"]);
        assert_eq!(r.code, 2, "{extra}: {}", r.all());
        assert!(r.stderr.contains(message), "{extra}: {}", r.stderr);
        assert!(
            !p.path("latest").exists() && !p.path("cache").exists(),
            "{extra}: nothing written"
        );
    }
}

#[test]
fn a_new_measuring_method_makes_points_stale_and_dry_run_names_it() {
    let p = Project::bert("[16]", "");
    assert_eq!(p.run(&["run", "pipelines/p.yaml"]).code, 0);
    // Pretend the cached point was measured by other measuring code: its key (and so its hash) differ.
    let [entry] = p.cache_entries().try_into().unwrap();
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(&entry).unwrap()).unwrap();
    let ours = doc["key"]["method"].as_str().unwrap().to_string();
    let theirs = format!("3f2a{}", &ours[4..]);
    doc["key"]["method"] = theirs.clone().into();
    let old_hash = "f".repeat(64);
    doc["hash"] = old_hash.clone().into();
    std::fs::remove_file(&entry).unwrap();
    std::fs::write(
        entry.with_file_name(format!("{old_hash}.json")),
        serde_json::to_string(&doc).unwrap(),
    )
    .unwrap();
    let dry = p.run(&["run", "pipelines/p.yaml", "--dry-run"]);
    let expected = format!("stale (method: {}… -> {}…)", &theirs[..8], &ours[..8]);
    assert!(
        dry.stdout.contains(&expected),
        "{expected} not in\n{}",
        dry.all()
    );
    assert_eq!(p.run(&["run", "pipelines/p.yaml"]).points(), (1, 0, 0, 0));
}

/// A word-level tokenizer whose ids fit the tiny `TorchScript` fixture's 99-token vocabulary (unknown words -> 0).
const TINY_TOKENIZER: &str = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],"normalizer":null,"pre_tokenizer":{"type":"Whitespace"},"post_processor":null,"decoder":null,"model":{"type":"WordLevel","vocab":{"[UNK]":0,"the":1,"and":2,"she":3,"to":4,"of":5,"a":6,"it":7},"unk_token":"[UNK]"}}"#;

#[test]
fn torchscript_warmups_cover_the_profiling_executor() {
    let p = Project::new();
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/tiny-bert-encoder.pt"
    );
    p.write("tok/tokenizer.json", TINY_TOKENIZER);
    p.write(
        "configs/model/bert.yaml",
        &format!("name: script-bert\narch: encoder\ntorchscript: {fixture}\ntokenizer: tok/tokenizer.json\n"),
    );
    p.write("pipelines/p.yaml", BERT_ONLY);
    // Zero warm-ups asked for; TorchScript's executor profiles on the first call and optimises on the second.
    p.write(
        "configs/bench/encoder.yaml",
        "name: t\narch: encoder\ncontext_lengths: [12]\nnum_runs: 2\nwarmup_runs: 0\nthreads: 1\n",
    );
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let pt = point(&p.results("script-bert"), 12).clone();
    assert_eq!(pt["status"], "ok", "{pt:#}");
    assert_eq!(pt["input_tokens"], 12);
    assert_eq!(pt["warmup_runs"], 2);
    assert_eq!(pt["stats"]["forward_pass_latency_ms"]["n"], 2);
    // A TorchScript file's work cannot be counted from a config: no roofline fields, no peaks measured for it.
    let doc = p.results("script-bert");
    assert!(doc["metrics"]["12"].get("flops").is_none(), "{doc:#}");
    assert!(!p.path("cache/peaks").exists());
}

#[test]
fn curves_mixing_runs_are_flagged() {
    let p = Project::bert("[16]", AGGREGATE_AFTER_B);
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(!r.stderr.contains("mixes points"), "{}", r.stderr);
    // Without the anchor (which would measure the 16 again in this run, and the curve would be one run's).
    p.write(
        "configs/bench/encoder.yaml",
        &format!("{}anchor: false\n", bench_yaml("encoder", "[16, 24]", 0, 1)),
    );
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.points(), (1, 1, 0, 0));
    assert!(
        r.stderr
            .contains("warning: curve `bert-tiny` mixes points measured in 2 different runs"),
        "{}",
        r.stderr
    );
    let csv = p.read("tables/inference_results.csv");
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let run = header.iter().position(|c| *c == "run_id").unwrap();
    let runs: std::collections::BTreeSet<String> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(run).unwrap().to_string())
        .collect();
    assert_eq!(runs.len(), 2, "{csv}");
}

/// A stand-in RAPL package counter (no RAPL or GPU here) that draws a constant `watts`: rewritten every 2 ms,
/// atomically, until the returned flag is set.
fn stand_in_counter(
    root: &std::path::Path,
    watts: f64,
) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = root.join("intel-rapl:0");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("max_energy_range_uj"), "262143328850\n").unwrap();
    let write = move |uj: f64| {
        let tmp = dir.join(".energy_uj.tmp");
        std::fs::write(&tmp, format!("{}\n", uj as u64)).unwrap();
        std::fs::rename(&tmp, dir.join("energy_uj")).unwrap();
    };
    write(0.0);
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&stop);
    std::thread::spawn(move || {
        let start = std::time::Instant::now();
        while !flag.load(Ordering::Relaxed) {
            write(start.elapsed().as_secs_f64() * watts * 1e6);
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    });
    stop
}

#[test]
fn energy_has_an_idle_baseline_and_a_prefill_decode_split() {
    // At a constant 20 W the device draws at rest what it draws running: idle power 20 W, nothing above it, and a
    // run's energy split between prefill and decode by their times.
    let counters = tempfile::tempdir().unwrap();
    let stop = stand_in_counter(counters.path(), 20.0);
    let p = Project::new();
    p.write(
        "pipelines/p.yaml",
        "steps:\n  - name: g\n    kind: bench\n    model: configs/model/gpt2.yaml\n    bench: configs/bench/decoder.yaml\n  - name: b\n    kind: bench\n    model: configs/model/bert.yaml\n    bench: configs/bench/encoder.yaml\n",
    );
    p.write(
        "configs/bench/decoder.yaml",
        &bench_yaml("decoder", "[64]", 5, 3),
    );
    p.write(
        "configs/bench/encoder.yaml",
        &bench_yaml("encoder", "[64]", 1, 3),
    );
    let out = p
        .command(&["run", "pipelines/p.yaml"])
        .env("E3PIPE_POWERCAP", counters.path())
        .output()
        .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let near = |x: f64, want: f64, tol: f64| (x / want - 1.0).abs() < tol;
    for (model, generates) in [("gpt2-tiny", true), ("bert-tiny", false)] {
        let doc = p.results(model);
        let m = &doc["metrics"]["64"];
        let e = &point(&doc, 64)["energy"];
        assert!(
            m["energy_source"]
                .as_str()
                .unwrap()
                .starts_with("rapl package counters (1 package(s)"),
            "{m}"
        );
        let f = |k: &str| e[k].as_f64();
        assert!(near(f("idle_power_w").unwrap(), 20.0, 0.05), "{e}");
        assert!(near(f("avg_power_w").unwrap(), 20.0, 0.05), "{e}");
        let energy_j = f("energy_j").unwrap();
        // Constant power: at most counter jitter above idle.
        assert!(
            f("energy_above_idle_j").is_none_or(|j| j < 0.1 * energy_j),
            "{e}"
        );
        assert_eq!(m["idle_power_w"], e["idle_power_w"]);
        if generates {
            let (prefill, decode) = (
                f("prefill_energy_j").unwrap(),
                f("decode_energy_j").unwrap(),
            );
            assert!(prefill > 0.0 && decode > 0.0, "{e}");
            assert!(near(prefill + decode, energy_j, 1e-9), "{e}");
            // Per generated token from the decode only: 4 decoded tokens of 5.
            assert!(
                near(f("energy_per_token_j").unwrap(), decode / 4.0, 1e-9),
                "{e}"
            );
            // The prefill's share is a part of the run, not all of it: 4 decode steps follow it. (Its size in time
            // is not compared with `ttft_ms`: the prefill-only runs are timed in another window, and parallel tests
            // load this machine unevenly between the two.)
            assert!(prefill < energy_j, "{e}");
        } else {
            assert!(
                e["prefill_energy_j"].is_null() && e["decode_energy_j"].is_null(),
                "{e}"
            );
            assert!(
                near(f("energy_per_token_j").unwrap(), energy_j / 64.0, 1e-9),
                "{e}"
            );
        }
    }
}

/// Rewrites the cached measurement of the point at `length` with `change` on each summary, checksum and all: a
/// stand-in for what an earlier run measured on a machine in another state.
fn rewrite_cached_point(
    p: &Project,
    length: usize,
    change: impl Fn(&mut e3pipe::bench::stats::Summary),
) {
    use e3pipe::cache::store::Entry;
    let read = |e: &std::path::Path| -> Entry {
        serde_json::from_str(&std::fs::read_to_string(e).unwrap()).unwrap()
    };
    let path = p
        .cache_entries()
        .into_iter()
        .find(|e| read(e).result.context_length == length)
        .unwrap();
    let mut entry = read(&path);
    entry.result.stats.values_mut().for_each(change);
    entry.checksum = blake3::hash(&serde_json::to_vec(&entry.result).unwrap())
        .to_hex()
        .to_string();
    std::fs::write(&path, serde_json::to_vec(&entry).unwrap()).unwrap();
}

#[test]
fn an_anchor_is_re_measured_when_a_curve_gains_points() {
    let p = Project::new();
    p.write("pipelines/p.yaml", BERT_ONLY);
    let bench = |lengths: &str| {
        format!(
            "name: t\narch: encoder\ncontext_lengths: {lengths}\nnum_runs: 7\nwarmup_runs: 1\nthreads: 1\n"
        )
    };
    p.write("configs/bench/encoder.yaml", &bench("[16, 24]"));
    let first = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(first.code, 0, "{}", first.all());
    let first_run = point(&p.results("bert-tiny"), 16)["run_id"].clone();
    // Parallel tests load this machine unevenly: cached samples spread ×1000 either way (their interval, derived
    // again from them, is [min, max] at n = 7) keep this run's measurement inside it, so the note's path is what
    // is tested here.
    rewrite_cached_point(&p, 16, |s| {
        let m = s.median;
        s.samples = vec![m / 1000.0, m / 10.0, m, m, m, m * 10.0, m * 1000.0];
    });
    // A length added: the shortest cached point of the curve is the anchor, measured again beside the new one.
    p.write("configs/bench/encoder.yaml", &bench("[16, 24, 32]"));
    let plan = p.run(&["run", "pipelines/p.yaml", "--dry-run"]);
    assert!(
        plan.stdout
            .contains("16 tokens  anchor (cached; re-measured"),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("24 tokens  cached"), "{}", plan.stdout);
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.points(), (2, 1, 0, 0), "{}", r.all());
    assert!(
        r.all().contains("anchor bert-tiny@16 re-measured at"),
        "{}",
        r.all()
    );
    assert!(
        r.stderr.contains("still hold") && !r.stderr.contains("drifted"),
        "{}",
        r.all()
    );
    let doc = p.results("bert-tiny");
    let anchor = &point(&doc, 16)["anchor"];
    assert_eq!(anchor["consistent"], true, "{anchor}");
    assert_eq!(anchor["previous_run_id"], first_run);
    assert_ne!(
        point(&doc, 16)["run_id"],
        first_run,
        "the anchor is this run's measurement now"
    );
    // Nothing added: no anchor, nothing measured.
    let again = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(again.points(), (0, 3, 0, 0), "{}", again.all());

    // A stand-in drift: the cached anchor says the machine was 20× slower when it was measured (20×, not 2×: a
    // sub-millisecond point on a loaded machine has outliers that a small drift's intervals would reach).
    rewrite_cached_point(&p, 16, |s| {
        for v in [
            &mut s.mean,
            &mut s.median,
            &mut s.min,
            &mut s.max,
            &mut s.ci_low,
            &mut s.ci_high,
        ] {
            *v *= 20.0;
        }
        s.samples.iter_mut().for_each(|v| *v *= 20.0);
    });
    p.write("configs/bench/encoder.yaml", &bench("[16, 24, 32, 40]"));
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    // 0.05× when the machine is as quiet as when the cached point was measured; a busy machine (CI) reads up to
    // ~0.15×: anything well below 1 and outside both intervals is the drift.
    let ratio: f64 = r
        .stderr
        .split("warning: anchor bert-tiny@16 re-measured at ")
        .nth(1)
        .and_then(|rest| rest.split('×').next())
        .and_then(|x| x.parse().ok())
        .unwrap_or_else(|| panic!("no anchor warning: {}", r.all()));
    assert!(ratio < 0.5, "{ratio}: {}", r.all());
    assert!(r.stderr.contains("outside both intervals"), "{}", r.all());
    assert!(
        r.stderr
            .contains("`e3pipe run pipelines/p.yaml --force b` re-measures the whole curve"),
        "{}",
        r.all()
    );
    let doc = p.results("bert-tiny");
    let anchor = &point(&doc, 16)["anchor"];
    assert_eq!(anchor["consistent"], false, "{anchor}");
    let ratio = anchor["ratio"].as_f64().unwrap();
    // About 1/20, however loaded the machine is (measured 0.05–0.10 with parallel tests).
    assert!(ratio < 0.3, "{ratio}");
    // The new points join a curve whose cached part the warning disowned: aggregate says the curve spans runs.
}

#[test]
fn published_statistics_are_derived_from_the_stored_samples_without_measuring_again() {
    let p = Project::new();
    p.write("pipelines/p.yaml", BERT_ONLY);
    p.write(
        "configs/bench/encoder.yaml",
        "name: t\narch: encoder\ncontext_lengths: [16]\nnum_runs: 5\nwarmup_runs: 0\nthreads: 1\n",
    );
    assert_eq!(p.run(&["run", "pipelines/p.yaml"]).points(), (1, 0, 0, 0));
    // The cached summary as another build of the statistics would have written it: every number off by ×20, the
    // samples as measured.
    rewrite_cached_point(&p, 16, |s| {
        for v in [
            &mut s.mean,
            &mut s.median,
            &mut s.min,
            &mut s.max,
            &mut s.ci_low,
            &mut s.ci_high,
        ] {
            *v *= 20.0;
        }
    });
    std::fs::remove_file(p.path("latest/inference/bert-tiny.json")).unwrap();
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(
        r.points(),
        (0, 1, 0, 0),
        "nothing measured again: {}",
        r.all()
    );
    let doc = p.results("bert-tiny");
    let s = &point(&doc, 16)["stats"]["forward_pass_latency_ms"];
    let mut samples: Vec<f64> = s["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    samples.sort_by(f64::total_cmp);
    assert_eq!(s["median"].as_f64().unwrap(), samples[2], "{s}");
    assert_eq!(s["ci_low"].as_f64().unwrap(), samples[0], "{s}");
    assert_eq!(s["max"].as_f64().unwrap(), samples[4], "{s}");
}
