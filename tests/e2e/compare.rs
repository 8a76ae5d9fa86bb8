//! `e3pipe compare` on real runs of the tiny models: identical inputs, a synthetic slowdown of one model, a shift
//! inside the threshold, other hardware, an A/A pair of real runs, and inputs that are not results.

use serde_json::Value;

use crate::project::{Project, bench_yaml};

/// A project whose three tiny models were measured with `runs` runs per point, its results copied to `base/`.
fn measured(runs: usize) -> Project {
    let p = Project::new();
    crate::project::write_benches(&p, "[32, 512]", runs, |t| t);
    measure(&p, "base");
    p
}

/// Measures the three models again (every point) and copies the results to `to/`.
fn measure(p: &Project, to: &str) {
    let steps = "bench-gpt2,bench-t5,bench-bert";
    let r = p.run(&["run", "pipelines/p.yaml", "--only", steps, "--force", steps]);
    assert_eq!(r.code, 0, "{}", r.all());
    copy_latest(p, to);
}

fn copy_latest(p: &Project, to: &str) {
    copy_from(p, "latest", to);
}

/// `from/inference/*.json` (a project's `latest/` or a copy's) to `to/latest/inference/`.
fn copy_from(p: &Project, from: &str, to: &str) {
    for model in ["gpt2-tiny", "t5-tiny", "bert-tiny"] {
        let prefix = if from == "latest" {
            String::new()
        } else {
            format!("{from}/")
        };
        p.write(
            &format!("{to}/latest/inference/{model}.json"),
            &p.read(&format!("{prefix}latest/inference/{model}.json")),
        );
    }
}

/// `base/` with every point's samples replaced by its real median × (1 ± 0.1 % steps): real files, real medians
/// and run counts, but a spread that does not depend on how busy the machine was, so the statistics are tested
/// deterministically (the A/A test below keeps the real noise).
fn steady(p: &Project) {
    for model in ["gpt2-tiny", "t5-tiny", "bert-tiny"] {
        let file = format!("base/latest/inference/{model}.json");
        let mut doc: Value = serde_json::from_str(&p.read(&file)).unwrap();
        for (_, m) in doc["metrics"].as_object_mut().unwrap() {
            for (_, s) in m["point"]["stats"].as_object_mut().unwrap() {
                let median = s["median"].as_f64().unwrap();
                let n = s["samples"].as_array().unwrap().len();
                s["samples"] = (0..n)
                    .map(|i| Value::from(median * (1.0 + 0.001 * (i as f64 - n as f64 / 2.0))))
                    .collect();
            }
        }
        p.write(&file, &doc.to_string());
    }
}

/// `cand/` as `base/` with `model`'s samples of every time metric scaled by `factor` (rates divided).
fn scaled(p: &Project, model: &str, factor: f64) {
    copy_from(p, "base", "cand");
    scale(p, "cand", model, factor);
}

/// `model`'s samples in `dir/` scaled by `factor` (rates divided).
fn scale(p: &Project, dir: &str, model: &str, factor: f64) {
    let file = format!("{dir}/latest/inference/{model}.json");
    let mut doc: Value = serde_json::from_str(&p.read(&file)).unwrap();
    for (_, m) in doc["metrics"].as_object_mut().unwrap() {
        for (metric, s) in m["point"]["stats"].as_object_mut().unwrap() {
            let f = if metric.ends_with("_per_sec") {
                1.0 / factor
            } else {
                factor
            };
            for x in s["samples"].as_array_mut().unwrap() {
                *x = Value::from(x.as_f64().unwrap() * f);
            }
        }
    }
    p.write(&file, &doc.to_string());
}

fn json(p: &Project, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["compare"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--format", "json"]);
    let r = p.run(&all);
    let v = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.all()));
    (r.code, v)
}

fn verdicts(report: &Value, model: &str) -> Vec<String> {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["model"] == model)
        .map(|r| r["verdict"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn identical_inputs_are_no_change_and_a_thirty_percent_slowdown_of_one_model_is_slower() {
    let p = measured(10);
    steady(&p);
    // The same path twice.
    let (code, same) = json(&p, &["base", "base"]);
    assert_eq!(code, 0);
    // gpt2 and t5: 2 lengths × (ttft, itl, e2e); bert: 2 × forward.
    assert_eq!(same["rows"].as_array().unwrap().len(), 14, "{same:#}");
    assert_eq!(same["summary"]["no_change"], 14);
    for r in same["rows"].as_array().unwrap() {
        assert_eq!(r["ratio"], 1.0);
    }
    scaled(&p, "gpt2-tiny", 1.30);
    let (code, slow) = json(&p, &["base", "cand"]);
    assert_eq!(code, 1, "{slow:#}");
    assert_eq!(verdicts(&slow, "gpt2-tiny"), ["slower"; 6], "{slow:#}");
    assert_eq!(verdicts(&slow, "t5-tiny"), ["no_change"; 6]);
    assert_eq!(verdicts(&slow, "bert-tiny"), ["no_change"; 2]);
    for r in slow["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["model"] == "gpt2-tiny")
    {
        assert!((r["ratio"].as_f64().unwrap() - 1.3).abs() < 1e-9, "{r}");
        let ci = r["ratio_ci"].as_array().unwrap();
        assert!(ci[0].as_f64().unwrap() > 1.03, "{r}");
        assert!(r["p_adjusted"].as_f64().unwrap() <= 0.05, "{r}");
    }
    // The other way round it is faster, and nothing is slower: exit 0.
    let (code, fast) = json(&p, &["cand", "base"]);
    assert_eq!(code, 0);
    assert_eq!(verdicts(&fast, "gpt2-tiny"), ["faster"; 6]);
    // Markdown for a pull request: the verdict in bold, the words only as verdicts.
    let md = p.run(&["compare", "base", "cand", "--format", "markdown"]);
    assert_eq!(md.code, 1);
    assert!(
        md.stdout
            .contains("| model | arch | length | batch | metric |"),
        "{}",
        md.stdout
    );
    assert_eq!(md.stdout.matches("**slower**").count(), 6, "{}", md.stdout);
    // A page like the report's: self-contained, the outcome on top, the rows sortable, the slower ones marked.
    let page = p.run(&["compare", "base", "cand", "--format", "html"]);
    assert_eq!(page.code, 1);
    let html = &page.stdout;
    assert!(html.starts_with("<!doctype html>"), "{html:.200}");
    assert!(
        html.contains("<strong>6 slower, 0 faster, 8 no change"),
        "{html:.2000}"
    );
    assert!(html.find("id=\"outcome\"").unwrap() < html.find("id=\"compare-table\"").unwrap());
    assert!(html.contains("<nav id=\"contents\">") && html.contains("class=\"sortable\""));
    assert_eq!(html.matches("<tr class=\"bad\">").count(), 6);
    assert_eq!(html.matches("<strong>slower</strong>").count(), 6);
    assert!(
        !html.contains("src=") && !html.contains("http"),
        "nothing fetched"
    );
    // The terminal table names each row and ends with the tally.
    let table = p.run(&["compare", "base", "cand"]);
    assert!(
        table.stdout.contains("6 slower, 0 faster, 8 no change"),
        "{}",
        table.stdout
    );
    // A repeat of the baseline that drifted by +20 % / -15 % / +10 % per model: run-to-run noise that wide hides a
    // 30 % change, and the comparison says how wide it was.
    copy_from(&p, "base", "repeat");
    for (model, f) in [("gpt2-tiny", 1.2), ("t5-tiny", 0.85), ("bert-tiny", 1.1)] {
        scale(&p, "repeat", model, f);
    }
    let (code, noisy) = json(&p, &["base", "cand", "--noise-from", "repeat"]);
    assert_eq!(code, 0, "{noisy:#}");
    assert_eq!(noisy["summary"]["slower"], 0);
    // The repeat's rows: 6 × ln 1.2, 6 × ln 0.85, 2 × ln 1.1; the run moved by their median, ln 1.1 (+10 %), and one
    // repeat is one such shift: Student's t with 1 degree of freedom (25.45) makes the band wide.
    let shift = noisy["run_shift_sd"].as_f64().unwrap();
    assert!((shift - 1.1f64.ln()).abs() < 1e-9, "{noisy:#}");
    let band = noisy["noise_band"].as_f64().unwrap();
    assert!(band > 5.0, "{band}: {noisy:#}");
    assert!(
        noisy["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().starts_with(
                "run-to-run noise from 1 repeat(s) of the baseline: whole runs moved by +10.0 %"
            )),
        "{noisy:#}"
    );
    // Three repeats that moved by 1 % each: the band narrows to what they show, and the 30 % is called.
    for (i, f) in [1.01, 0.99, 1.01].iter().enumerate() {
        let dir = format!("r{i}");
        copy_from(&p, "base", &dir);
        for model in ["gpt2-tiny", "t5-tiny", "bert-tiny"] {
            scale(&p, &dir, model, *f);
        }
    }
    let (code, three) = json(
        &p,
        &[
            "base",
            "cand",
            "--noise-from",
            "r0",
            "--noise-from",
            "r1",
            "--noise-from",
            "r2",
        ],
    );
    assert_eq!(code, 1, "{three:#}");
    assert_eq!(verdicts(&three, "gpt2-tiny"), ["slower"; 6], "{three:#}");
    let band = three["noise_band"].as_f64().unwrap();
    assert!(band > 0.03 && band < 0.1, "{band}: {three:#}");
    // A repeat identical to the baseline: no drift, the threshold stands and the slowdown is called.
    let (code, quiet) = json(&p, &["base", "cand", "--noise-from", "base"]);
    assert_eq!((code, quiet["noise_band"].as_f64().unwrap()), (1, 0.03));
    // The same 30 % measured in another run: without a repeat nothing tells it from drift between runs, so it is
    // inconclusive (exit 3) and the note says what would tell; with the repeat it is called again.
    for model in ["gpt2-tiny", "t5-tiny", "bert-tiny"] {
        let file = format!("cand/latest/inference/{model}.json");
        let text = p.read(&file);
        let doc: Value = serde_json::from_str(&text).unwrap();
        let run = doc["metrics"]["32"]["point"]["run_id"]
            .as_str()
            .unwrap()
            .to_string();
        p.write(&file, &text.replace(&run, "2026-01-01T00:00:00Z pid 1"));
    }
    let (code, between) = json(&p, &["base", "cand"]);
    assert_eq!(code, 3, "{between:#}");
    assert_eq!(verdicts(&between, "gpt2-tiny"), ["inconclusive"; 6]);
    assert_eq!(verdicts(&between, "bert-tiny"), ["no_change"; 2]);
    assert!(
        between["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().starts_with(
                "6 row(s) changed beyond each run's own spread, but they come from different runs"
            )),
        "{between:#}"
    );
    let (code, told) = json(&p, &["base", "cand", "--noise-from", "base"]);
    assert_eq!(code, 1, "{told:#}");
    assert_eq!(verdicts(&told, "gpt2-tiny"), ["slower"; 6]);
}

#[test]
fn a_two_percent_shift_is_no_change_and_other_hardware_is_refused_unless_allowed() {
    let p = measured(10);
    steady(&p);
    scaled(&p, "t5-tiny", 1.02);
    let (code, small) = json(&p, &["base", "cand"]);
    assert_eq!(code, 0, "{small:#}");
    assert_eq!(small["summary"]["slower"], 0);
    assert_eq!(verdicts(&small, "t5-tiny"), ["no_change"; 6]);
    // Another machine's results: refused, both devices named, nothing printed on stdout.
    let file = "cand/latest/inference/bert-tiny.json";
    let text = p.read(file);
    let doc: Value = serde_json::from_str(&text).unwrap();
    let device = doc["metrics"]["32"]["point"]["device"]
        .as_str()
        .unwrap()
        .to_string();
    p.write(file, &text.replace(&device, "cuda:0 (NVIDIA H200)"));
    let r = p.run(&["compare", "base", "cand"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stdout.is_empty());
    assert!(
        r.stderr.contains("different conditions")
            && r.stderr.contains("NVIDIA H200")
            && r.stderr.contains(&device),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("--allow-different-hardware"),
        "{}",
        r.stderr
    );
    let (code, allowed) = json(&p, &["base", "cand", "--allow-different-hardware"]);
    assert_eq!(code, 0);
    assert!(
        allowed["differences"][0]
            .as_str()
            .unwrap()
            .starts_with("device:"),
        "{allowed:#}"
    );
}

#[test]
fn an_aa_pair_of_real_runs_raises_no_alarm_and_says_what_it_could_detect() {
    // Two real runs of the same pipeline, back to back, at the test configs' 3 runs per point.
    let p = measured(3);
    measure(&p, "again");
    let r = p.run(&["compare", "base", "again"]);
    // Nothing slower, but nothing could be told either: exit 3, not a reassuring 0.
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        r.stdout
            .contains("0 slower, 0 faster, 0 no change, 14 inconclusive"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("no change\n"), "{}", r.stdout);
    // With 3 runs a side no change is detectable at all, and the comparison says so rather than implying safety.
    assert!(
        r.stdout
            .contains("no change can be detected: the smallest attainable p-value is 0.100"),
        "{}",
        r.stdout
    );
}

#[test]
fn inputs_that_are_not_results_are_refused_with_exit_2() {
    let p = measured(3);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["base", "nowhere"], "cannot read it"),
        (vec!["base", "configs"], "no results files"),
        (
            vec!["base", "base", "--threshold=-0.1"],
            "`--threshold -0.1`",
        ),
        (
            vec!["base", "base", "--threshold", "NaN"],
            "`--threshold NaN`",
        ),
        (vec!["base", "base", "--alpha", "1.5"], "`--alpha 1.5`"),
        (
            vec!["base", "base", "--metric", "ttft"],
            "did you mean `ttft_ms`?",
        ),
    ];
    for (args, want) in cases {
        let mut all = vec!["compare"];
        all.extend(args.iter().copied());
        let r = p.run(&all);
        assert_eq!(r.code, 2, "{args:?}: {}", r.all());
        assert!(r.stderr.contains(want), "{args:?}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{args:?}");
    }
    // A damaged results file given by name; a FIFO where a file belongs.
    p.write("bad.json", "{\"exp_id\": ");
    let r = p.run(&["compare", "base", "bad.json"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("not valid JSON"), "{}", r.stderr);
    let fifo = p.path("fifo.json");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let r = p.run(&["compare", "base", "fifo.json"]);
    assert_eq!(r.code, 2, "{}", r.all());
    // A results folder holding a model's history: the newest document of each model is compared, and said.
    let results = p.path("results");
    let mut history: Vec<_> = std::fs::read_dir(&results)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    history.sort();
    assert_eq!(history.len(), 3, "{history:?}");
    let old = std::fs::read_to_string(&history[0]).unwrap();
    p.write("results/inference_scaling_19990101_000000.json", &old);
    let r = p.run(&["compare", "results", "base"]);
    assert_eq!(r.code, 3, "3 runs a side are inconclusive: {}", r.all());
    assert!(r.stdout.contains("holds 2 results of"), "{}", r.stdout);
    // One results file against a project directory: both sides read.
    let (code, one) = json(&p, &["base", "base/latest/inference/bert-tiny.json"]);
    assert_eq!(code, 3);
    assert_eq!(one["summary"]["inconclusive"], 2, "{one:#}");
    assert_eq!(one["rows"].as_array().unwrap().len(), 2);
    assert_eq!(one["only_baseline"].as_array().unwrap().len(), 4);
}

#[test]
fn another_build_is_compared_with_allow_different_code_and_other_hardware_still_refused() {
    let p = measured(3);
    measure(&p, "again");
    // The candidate as another build of the measuring code would have left it.
    for f in ["bert-tiny", "gpt2-tiny"] {
        let path = format!("again/latest/inference/{f}.json");
        let text = p.read(&path).replace(
            &serde_json::from_str::<Value>(&p.read(&path)).unwrap()["metrics"]["32"]["point"]["method"]
                .as_str()
                .unwrap()
                .to_string(),
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        );
        p.write(&path, &text);
    }
    let refused = p.run(&["compare", "base", "again"]);
    assert_eq!(refused.code, 2, "{}", refused.all());
    assert!(
        refused.stderr.contains("`--allow-different-code`"),
        "{}",
        refused.stderr
    );
    let r = p.run(&["compare", "base", "again", "--allow-different-code"]);
    assert_eq!(r.code, 3, "{}", r.all());
    // Code allowed, hardware not: another device is still refused, naming the hardware switch.
    for f in ["bert-tiny", "gpt2-tiny"] {
        let path = format!("again/latest/inference/{f}.json");
        let text = p
            .read(&path)
            .replace("\"device\":\"cpu (", "\"device\":\"cpu (Another ");
        let text = text.replace("\"device\": \"cpu (", "\"device\": \"cpu (Another ");
        p.write(&path, &text);
    }
    let other = p.run(&["compare", "base", "again", "--allow-different-code"]);
    assert_eq!(other.code, 2, "{}", other.all());
    assert!(
        other.stderr.contains("`--allow-different-hardware`"),
        "{}",
        other.stderr
    );
}

#[test]
fn defaults_an_architecture_lacks_are_skipped_but_named_metrics_must_exist() {
    // An encoder-only project has no `itl_ms` or `e2e_latency_ms`: the defaults compare what it has.
    let p = Project::new();
    p.write("pipelines/p.yaml", crate::project::BERT_ONLY);
    p.write(
        "configs/bench/encoder.yaml",
        &bench_yaml("encoder", "[16]", 0, 3),
    );
    assert_eq!(p.run(&["run", "pipelines/p.yaml"]).code, 0);
    let (code, same) = json(&p, &[".", "."]);
    assert_ne!(code, 2, "{same:#}");
    assert_eq!(same["rows"].as_array().unwrap().len(), 1, "{same:#}");
    assert_eq!(same["rows"][0]["metric"], "forward_pass_latency_ms");
    // Named, a metric no point records is an error, with its name.
    let r = p.run(&["compare", ".", ".", "--metric", "itl_ms"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("no point records metric `itl_ms`"),
        "{}",
        r.stderr
    );
}
