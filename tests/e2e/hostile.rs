//! Input as a hostile user would give it, and faults at run time. Every bad input: one clear error, exit 2,
//! nothing written, no panic and no hang; every runtime fault: exit 1, the summary line, nothing lost; outputs that
//! are damaged repair themselves on the next run.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use crate::project::{
    AGGREGATE_AFTER_B, BERT_ONLY, BERT_TINY, PLOT_AFTER_AGGREGATE, Project, bench_yaml,
};

const OUTPUTS: [&str; 5] = ["cache", "results", "latest", "tables", "figs"];

/// `run` (and `--dry-run`) refuse the project with exit 2, the expected words, no panic and nothing written.
fn refused(p: &Project, pipeline: &str, expected: &[&str]) {
    for args in [&["run", pipeline][..], &["run", pipeline, "--dry-run"][..]] {
        let started = Instant::now();
        let r = p.run(args);
        assert_eq!(r.code, 2, "{args:?} should exit 2:\n{}", r.all());
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{args:?} took {:?}",
            started.elapsed()
        );
        for e in expected {
            assert!(
                r.stderr.contains(e),
                "{args:?}: expected `{e}` in:\n{}",
                r.stderr
            );
        }
        assert!(!r.all().contains("panicked"), "{}", r.all());
        assert!(
            !r.stdout.contains("points:"),
            "nothing may run:\n{}",
            r.stdout
        );
    }
    for out in OUTPUTS {
        assert!(
            !p.path(out).exists(),
            "`{out}` was written on invalid input"
        );
    }
}

fn mkfifo(path: &std::path::Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
}

#[test]
fn pipelines_that_are_not_text_files() {
    let p = Project::new();
    std::fs::create_dir_all(p.path("pipelines/dir.yaml")).unwrap();
    refused(&p, "pipelines/dir.yaml", &["is a directory"]);
    mkfifo(&p.path("pipelines/fifo.yaml"));
    refused(&p, "pipelines/fifo.yaml", &["not a regular file"]);
    std::fs::write(
        p.path("pipelines/latin1.yaml"),
        b"steps:\n  - name: caf\xe9\n",
    )
    .unwrap();
    refused(&p, "pipelines/latin1.yaml", &["not UTF-8"]);
    // A bench config that is a FIFO: refused, not read forever.
    p.write("pipelines/p.yaml", BERT_ONLY);
    std::fs::remove_file(p.path("configs/bench/encoder.yaml")).unwrap();
    mkfifo(&p.path("configs/bench/encoder.yaml"));
    refused(
        &p,
        "pipelines/p.yaml",
        &["configs/bench/encoder.yaml", "not a regular file"],
    );
}

#[test]
fn tokenizer_and_model_paths_that_would_hang_or_lie() {
    let p = Project::new();
    p.write("pipelines/p.yaml", BERT_ONLY);
    mkfifo(&p.path("tok.json"));
    p.write(
        "configs/model/bert.yaml",
        &format!("{BERT_TINY}tokenizer: tok.json\n"),
    );
    refused(&p, "pipelines/p.yaml", &["tok.json", "not a regular file"]);
    // JSON, but no tokenizer: loaded while planning, so refused before the worker starts or the cache is made.
    std::fs::remove_file(p.path("tok.json")).unwrap();
    for not_a_tokenizer in [
        r#"{"version": "1.0", "model": 42}"#,
        r#"{"model": {"type": "BPE"}}"#,
        "{}",
    ] {
        p.write("tok.json", not_a_tokenizer);
        refused(
            &p,
            "pipelines/p.yaml",
            &["tokenizer `tok.json` cannot be loaded"],
        );
    }
    // The real one loads (and a cached run would not read it again).
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("assets/tokenizers/bert/tokenizer.json"),
        p.path("tok.json"),
    )
    .unwrap();
    assert_eq!(p.run(&["run", "pipelines/p.yaml", "--dry-run"]).code, 0);
    // (A dry run may leave its file-hash memo in `cache/`; the refusals below must write nothing.)
    let _ = std::fs::remove_dir_all(p.path("cache"));
    // A TorchScript "model" that is not a zip archive.
    p.write("model.pt", "not a model");
    p.write(
        "configs/model/bert.yaml",
        "name: s\narch: encoder\ntorchscript: model.pt\ntokenizer: tok.json\n",
    );
    refused(
        &p,
        "pipelines/p.yaml",
        &["model.pt", "not a TorchScript file"],
    );
    // No model type to choose a built-in tokenizer by: a TorchScript model names its own (never GPT-2's by
    // default just because it is a decoder).
    p.write(
        "configs/model/bert.yaml",
        "name: s\narch: encoder\ntorchscript: model.pt\n",
    );
    refused(
        &p,
        "pipelines/p.yaml",
        &[
            "no `model_type` to choose a built-in tokenizer by",
            "set `tokenizer:`",
        ],
    );
    // An HF directory whose config.json is not JSON, or whose weights are truncated.
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-bert");
    std::fs::create_dir_all(p.path("hf")).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture.join(f), p.path("hf").join(f)).unwrap();
    }
    p.write("configs/model/bert.yaml", "name: hf\npath: hf\n");
    let weights = std::fs::read(p.path("hf/model.safetensors")).unwrap();
    std::fs::write(
        p.path("hf/model.safetensors"),
        &weights[..weights.len() - 100],
    )
    .unwrap();
    refused(
        &p,
        "pipelines/p.yaml",
        &["model.safetensors", "truncated or damaged"],
    );
    std::fs::write(p.path("hf/model.safetensors"), &weights).unwrap();
    p.write("hf/config.json", "{\"model_type\": \"bert\", ");
    refused(&p, "pipelines/p.yaml", &["config.json", "not valid JSON"]);
    p.write("hf/config.json", "{\"model_type\": \"gemma\"}");
    refused(&p, "pipelines/p.yaml", &["unsupported model_type `gemma`"]);
    // A supported type whose config lacks what it needs: the missing key by name.
    p.write("hf/config.json", "{\"model_type\": \"llama\"}");
    refused(
        &p,
        "pipelines/p.yaml",
        &["config.json", "missing field `vocab_size`"],
    );
}

#[test]
fn values_outside_what_the_models_implement() {
    let p = Project::new();
    p.write("pipelines/p.yaml", BERT_ONLY);
    p.write(
        "configs/model/bert.yaml",
        &format!("{BERT_TINY}  hidden_act: gelu_neww\n"),
    );
    refused(
        &p,
        "pipelines/p.yaml",
        &[
            "unsupported `hidden_act` `gelu_neww`",
            "did you mean `gelu_new`?",
        ],
    );
    p.write(
        "configs/model/bert.yaml",
        &format!("{BERT_TINY}  hidden_act: swish\n"),
    );
    refused(
        &p,
        "pipelines/p.yaml",
        &["`swish`", "`gelu`, `gelu_new`, `gelu_pytorch_tanh`"],
    );
    p.write("pipelines/p.yaml", "steps:\n  - name: t\n    kind: bench\n    model: configs/model/t5.yaml\n    bench: configs/bench/seq2seq.yaml\n");
    p.write(
        "configs/model/t5.yaml",
        &format!("{}  num_decoder_layers: -1\n", crate::project::T5_TINY),
    );
    refused(
        &p,
        "pipelines/p.yaml",
        &["`num_decoder_layers` must be positive, got -1"],
    );
    p.write(
        "configs/model/t5.yaml",
        &format!(
            "{}  feed_forward_proj: gated-gelo\n",
            crate::project::T5_TINY
        ),
    );
    refused(&p, "pipelines/p.yaml", &["did you mean `gated-gelu`?"]);
}

#[test]
fn a_million_lengths_are_checked_fast_and_the_duplicate_named() {
    let p = Project::new();
    p.write("pipelines/p.yaml", BERT_ONLY);
    let mut lengths: Vec<String> = (1..=1_000_000).map(|n| n.to_string()).collect();
    lengths.push("1".into());
    p.write(
        "configs/bench/encoder.yaml",
        &bench_yaml("encoder", &format!("[{}]", lengths.join(", ")), 0, 1),
    );
    refused(
        &p,
        "pipelines/p.yaml",
        &["context_lengths: 1 is listed twice"],
    );
}

#[test]
fn deeply_nested_yaml_is_refused_at_once() {
    let p = Project::new();
    p.write(
        "pipelines/deep.yaml",
        &format!("steps: {}{}\n", "[".repeat(100_000), "]".repeat(100_000)),
    );
    refused(&p, "pipelines/deep.yaml", &["nested deeper than 64 levels"]);
}

#[test]
fn names_that_collide_as_file_names() {
    let p = Project::new();
    p.write(
        "configs/model/a.yaml",
        &BERT_TINY.replace("name: bert-tiny", "name: tiny/a"),
    );
    p.write(
        "configs/model/b.yaml",
        &BERT_TINY.replace("name: bert-tiny", "name: tiny a"),
    );
    p.write("pipelines/p.yaml", "steps:\n  - name: a\n    kind: bench\n    model: configs/model/a.yaml\n    bench: configs/bench/encoder.yaml\n  - name: b\n    kind: bench\n    model: configs/model/b.yaml\n    bench: configs/bench/encoder.yaml\n");
    refused(
        &p,
        "pipelines/p.yaml",
        &[
            "model `tiny a` and model `tiny/a`",
            "latest/inference/tiny_a.json",
        ],
    );
    let long = "m".repeat(5000);
    p.write(
        "configs/model/b.yaml",
        &BERT_TINY.replace("name: bert-tiny", &format!("name: {long}")),
    );
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("is 5000 bytes") && r.stderr.contains("… (5000 characters)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.len() < 1000,
        "a long value is truncated in the message: {}",
        r.stderr.len()
    );
}

#[test]
fn yaml_merge_keys_share_settings() {
    let p = Project::new();
    // The second step takes everything from the first (`<<: *bench`) but its name and model.
    p.write(
        "pipelines/p.yaml",
        "steps:\n  - &bench\n    name: b\n    kind: bench\n    model: configs/model/bert.yaml\n    bench: configs/bench/encoder.yaml\n  - <<: *bench\n    name: b2\n    model: configs/model/bert2.yaml\n",
    );
    p.write(
        "configs/model/bert2.yaml",
        &BERT_TINY.replace("name: bert-tiny", "name: bert-two"),
    );
    p.write(
        "configs/bench/encoder.yaml",
        "name: t\narch: encoder\ncontext_lengths: [8]\n<<: {num_runs: 2, warmup_runs: 0, threads: 1}\n",
    );
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    for model in ["bert-tiny", "bert-two"] {
        let doc = p.results(model);
        assert_eq!(
            doc["metrics"]["8"]["point"]["stats"]["forward_pass_latency_ms"]["n"],
            2
        );
    }
}

#[test]
fn too_large_for_this_machine_is_an_oom_point_not_a_crash() {
    let p = Project::new();
    p.write("pipelines/p.yaml", "steps:\n  - name: t\n    kind: bench\n    model: configs/model/t5.yaml\n    bench: configs/bench/seq2seq.yaml\n  - name: b\n    kind: bench\n    model: configs/model/bert.yaml\n    bench: configs/bench/encoder.yaml\n");
    // A vocabulary of 10^12 (256 TB of embeddings): valid, but not here.
    p.write(
        "configs/model/bert.yaml",
        &BERT_TINY.replace("vocab_size: 30522", "vocab_size: 1000000000000"),
    );
    p.write(
        "configs/bench/encoder.yaml",
        &bench_yaml("encoder", "[8]", 0, 1),
    );
    // T5 has no position limit: a context of 10^11 tokens and a 10^12-token generation.
    p.write(
        "configs/bench/seq2seq.yaml",
        &bench_yaml("encoder-decoder", "[8, 100000000000]", 1_000_000_000_000, 1),
    );
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(!r.all().contains("panicked"), "{}", r.all());
    assert_eq!(r.points(), (0, 0, 3, 0), "{}", r.all());
    let t5 = p.results("t5-tiny");
    for length in ["8", "100000000000"] {
        let pt = &t5["metrics"][length]["point"];
        assert_eq!(pt["status"], "oom", "{pt:#}");
        assert!(pt["reason"].as_str().unwrap().contains("bytes"), "{pt:#}");
    }
    let bert = &p.results("bert-tiny")["metrics"]["8"]["point"];
    assert_eq!(bert["status"], "oom", "{bert:#}");
    assert!(
        bert["reason"]
            .as_str()
            .unwrap()
            .contains("cannot be loaded"),
        "{bert:#}"
    );
}

#[test]
fn damaged_outputs_repair_themselves() {
    let p = Project::bert(
        "[8, 16]",
        &format!("{AGGREGATE_AFTER_B}{PLOT_AFTER_AGGREGATE}"),
    );
    assert_eq!(p.run(&["run", "pipelines/p.yaml"]).code, 0);
    let table = p.read("tables/inference_results.csv");
    let png = std::fs::read(p.path("figs/latency_curve.png")).unwrap();
    // A no-op run writes nothing at all.
    let stamp_time = std::fs::metadata(p.path("tables/.aggregate.stamp"))
        .unwrap()
        .modified()
        .unwrap();
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert!(
        r.stderr.contains("tables are up to date") && r.stderr.contains("figures are up to date"),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::metadata(p.path("tables/.aggregate.stamp"))
            .unwrap()
            .modified()
            .unwrap(),
        stamp_time
    );
    // Truncated table: plot alone refuses to draw from it (exit 1); a full run rebuilds it.
    std::fs::write(
        p.path("tables/inference_results.csv"),
        &table[..table.len() / 2],
    )
    .unwrap();
    let r = p.run(&["run", "pipelines/p.yaml", "--only", "plot"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr.contains("is not what aggregate wrote"),
        "{}",
        r.stderr
    );
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(p.read("tables/inference_results.csv"), table);
    // A deleted figure is drawn again.
    std::fs::remove_file(p.path("figs/latency_curve.png")).unwrap();
    assert_eq!(p.run(&["run", "pipelines/p.yaml"]).code, 0);
    assert_eq!(
        std::fs::read(p.path("figs/latency_curve.png"))
            .unwrap()
            .len(),
        png.len()
    );
    // Deleted results of a bench step: the points are cached, so the file is written again, and said.
    std::fs::remove_file(p.path("latest/inference/bert-tiny.json")).unwrap();
    let r = p.run(&["run", "pipelines/p.yaml", "--only", "aggregate"]);
    assert!(
        r.stderr.contains("no results for model `bert-tiny`"),
        "{}",
        r.stderr
    );
    // Outputs get the usual permissions, and logs carry no colour codes off a terminal.
    let mode = std::fs::metadata(p.path("tables/inference_results.csv"))
        .unwrap()
        .permissions()
        .mode();
    assert_ne!(mode & 0o777, 0o600);
    assert!(!r.stderr.contains('\u{1b}'), "{:?}", r.stderr);
}

#[test]
fn a_failed_aggregate_skips_plot_with_exit_1_and_the_summary() {
    let p = Project::bert("[8]", &format!("{AGGREGATE_AFTER_B}{PLOT_AFTER_AGGREGATE}"));
    assert_eq!(p.run(&["run", "pipelines/p.yaml"]).code, 0);
    // Its own bench step's results, damaged: aggregate fails (not a silently smaller table) and plot is skipped.
    p.write("latest/inference/bert-tiny.json", "{ damaged");
    let r = p.run(&["run", "pipelines/p.yaml", "--only", "aggregate,plot"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stdout.contains("points: 0 computed"), "{}", r.stdout);
    assert!(
        r.stderr
            .contains("latest/inference/bert-tiny.json` is damaged"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("step `plot` skipped: step `aggregate` failed"),
        "{}",
        r.stderr
    );
    // The next full run rewrites it from the cache, measuring nothing.
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.points(), (0, 1, 0, 0));
    assert_eq!(p.results("bert-tiny")["metrics"]["8"]["status"], "ok");
}

#[test]
fn outputs_replaced_by_the_wrong_kind_of_file_are_repaired() {
    let p = Project::bert("[8]", &format!("{AGGREGATE_AFTER_B}{PLOT_AFTER_AGGREGATE}"));
    assert_eq!(p.run(&["run", "pipelines/p.yaml"]).code, 0);
    let good = p.results("bert-tiny")["metrics"]["8"].clone();
    // The whole points folder became a file; the table and a figure became folders.
    std::fs::remove_dir_all(p.path("cache/points")).unwrap();
    p.write("cache/points", "x");
    std::fs::remove_file(p.path("tables/inference_results.csv")).unwrap();
    std::fs::create_dir_all(p.path("tables/inference_results.csv/junk")).unwrap();
    std::fs::remove_file(p.path("figs/latency_curve.png")).unwrap();
    std::fs::create_dir_all(p.path("figs/latency_curve.png")).unwrap();
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.points(), (1, 0, 0, 0), "the lost entry is measured again");
    assert_eq!(
        p.results("bert-tiny")["metrics"]["8"]["status"],
        good["status"]
    );
    assert!(p.path("tables/inference_results.csv").is_file());
    assert!(p.path("figs/latency_curve.png").is_file());
    assert_eq!(p.run(&["run", "pipelines/p.yaml"]).points(), (0, 1, 0, 0));
}

#[test]
fn pipeline_shapes_that_must_run_or_must_be_refused() {
    let p = Project::new();
    // Aggregate with no `needs` reads every result: on a fresh project its bench step makes them in the same run.
    p.write(
        "pipelines/p.yaml",
        &format!("{BERT_ONLY}  - name: aggregate\n    kind: aggregate\n{PLOT_AFTER_AGGREGATE}"),
    );
    p.write(
        "configs/bench/encoder.yaml",
        &bench_yaml("encoder", "[8]", 0, 1),
    );
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    // Two aggregate steps would overwrite each other's tables.
    let q = Project::new();
    q.write(
        "pipelines/p.yaml",
        &format!(
            "{BERT_ONLY}{AGGREGATE_AFTER_B}  - name: agg2\n    kind: aggregate\n    needs: [b]\n"
        ),
    );
    refused(
        &q,
        "pipelines/p.yaml",
        &["steps `aggregate` and `agg2` are both `aggregate` steps"],
    );
    // Step names that would break a terminal or a graph.
    q.write(
        "pipelines/p.yaml",
        "steps:\n  - name: \"a\\nb\\e[31m\"\n    kind: bench\n    model: configs/model/bert.yaml\n    bench: configs/bench/encoder.yaml\n",
    );
    refused(
        &q,
        "pipelines/p.yaml",
        &["is not allowed: use letters, digits"],
    );
    // Model names that are no file name.
    for name in ["\"\"", "\"..\"", "\" \""] {
        q.write("pipelines/p.yaml", BERT_ONLY);
        q.write(
            "configs/model/bert.yaml",
            &BERT_TINY.replace("name: bert-tiny", &format!("name: {name}")),
        );
        refused(&q, "pipelines/p.yaml", &["cannot name a model"]);
    }
}

#[test]
fn counts_and_durations_that_could_never_finish() {
    let p = Project::new();
    p.write("pipelines/p.yaml", BERT_ONLY);
    for (extra, expected) in [
        ("threads: 100000\n", "threads: must be at most 4096"),
        (
            "num_runs: 9223372036854775807\n",
            "num_runs: must be at most 1000000",
        ),
        ("min_duration_s: 1e308\n", "at most 604800"),
    ] {
        let yaml = bench_yaml("encoder", "[8]", 0, 1)
            .replace("threads: 1\n", "")
            .replace("num_runs: 1\n", "");
        p.write("configs/bench/encoder.yaml", &format!("{yaml}{extra}"));
        refused(&p, "pipelines/p.yaml", &[expected]);
    }
    // A dimension whose tensors could not be addressed is nonsense, named by its key.
    p.write(
        "configs/bench/encoder.yaml",
        &bench_yaml("encoder", "[8]", 0, 1),
    );
    p.write(
        "configs/model/bert.yaml",
        &BERT_TINY.replace("hidden_size: 64", "hidden_size: 4611686018427387904"),
    );
    refused(&p, "pipelines/p.yaml", &["too large to address"]);
    p.write(
        "configs/model/bert.yaml",
        &BERT_TINY.replace("hidden_size: 64", "hidden_size: 9223372036854775808"),
    );
    refused(
        &p,
        "pipelines/p.yaml",
        &["config.hidden_size: expected an integer in range"],
    );
    // `--force` with only empty names is not "everything".
    p.write("configs/model/bert.yaml", BERT_TINY);
    let r = p.run(&["run", "pipelines/p.yaml", "--force", ",,"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("an empty step name"), "{}", r.stderr);
}

#[test]
fn a_cache_entry_that_is_a_directory_is_replaced() {
    let p = Project::bert("[8]", "");
    assert_eq!(p.run(&["run", "pipelines/p.yaml"]).code, 0);
    let [entry] = p.cache_entries().try_into().unwrap();
    std::fs::remove_file(&entry).unwrap();
    std::fs::create_dir_all(entry.join("junk")).unwrap();
    assert_eq!(p.run(&["run", "pipelines/p.yaml"]).points(), (1, 0, 0, 0));
    assert!(entry.is_file());
    assert_eq!(p.run(&["run", "pipelines/p.yaml"]).points(), (0, 1, 0, 0));
}

#[test]
fn infeasible_points_are_settled_like_cached_ones() {
    let p = Project::bert("[8, 600, 700, 800]", AGGREGATE_AFTER_B);
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.points(), (1, 0, 0, 3));
    assert!(
        r.stderr
            .contains("3 lengths of `bert-tiny` from 600 to 800 are infeasible"),
        "{}",
        r.stderr
    );
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.points(), (0, 1, 0, 3));
    assert!(r.stderr.contains("tables are up to date"), "{}", r.stderr);
    assert_eq!(
        std::fs::read_dir(p.path("results")).unwrap().count(),
        1,
        "no new results file on a rerun"
    );
}

#[test]
fn killing_e3pipe_as_it_starts_the_worker_leaves_no_orphan() {
    let p = Project::new();
    p.write("pipelines/p.yaml", BERT_ONLY);
    // A point that measures for a minute: an orphaned worker would still be running when the test looks.
    p.write(
        "configs/bench/encoder.yaml",
        &format!("{}min_duration_s: 60\n", bench_yaml("encoder", "[8]", 0, 1)),
    );
    let mut child = p.spawn(&["run", "pipelines/p.yaml"]);
    let parent = child.id();
    // Find the worker the moment it exists, then kill -9 its parent at once.
    let started = Instant::now();
    let worker = loop {
        let found = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(std::result::Result::ok)
            .find_map(|e| {
                let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
                let ppid: u32 = stat
                    .rsplit(')')
                    .next()?
                    .split_whitespace()
                    .nth(1)?
                    .parse()
                    .ok()?;
                (ppid == parent)
                    .then(|| e.file_name().to_string_lossy().parse::<u32>().ok())
                    .flatten()
            });
        if let Some(pid) = found {
            break pid;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no worker started"
        );
        std::thread::sleep(Duration::from_millis(1));
    };
    let _ = child.kill();
    let _ = child.wait();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{worker}")).exists()
        && !std::fs::read_to_string(format!("/proc/{worker}/stat"))
            .unwrap_or_default()
            .contains(") Z")
    {
        assert!(
            Instant::now() < deadline,
            "worker {worker} outlived its parent"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_project_under_a_non_utf8_directory_runs() {
    use std::os::unix::ffi::OsStrExt;
    let p = Project::new();
    let root = p.root().join(std::ffi::OsStr::from_bytes(b"caf\xe9"));
    for (rel, text) in [
        ("pipelines/p.yaml", BERT_ONLY.to_string()),
        ("configs/model/bert.yaml", BERT_TINY.to_string()),
        (
            "configs/bench/encoder.yaml",
            bench_yaml("encoder", "[8]", 0, 1),
        ),
    ] {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let mut cmd = p.command(&["run", "pipelines/p.yaml"]);
    cmd.current_dir(&root);
    let r = crate::project::to_run(cmd.output().unwrap());
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.points(), (1, 0, 0, 0));
    assert!(root.join("latest/inference/bert-tiny.json").is_file());
}

#[test]
fn a_reader_that_goes_away_does_not_stop_a_run() {
    // `e3pipe run | head -1`: once the reader has gone, writes to stdout fail; the run still finishes and writes.
    let p = Project::bert("[8, 16]", AGGREGATE_AFTER_B);
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut cmd = p.command(&["run", "pipelines/p.yaml"]);
    cmd.stdout(writer).stderr(std::process::Stdio::piped());
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(p.path("tables/inference_results.csv").is_file());
    // `graph` and `--dry-run` likewise end cleanly.
    for args in [
        &["graph", "pipelines/p.yaml"][..],
        &["run", "--dry-run", "pipelines/p.yaml"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = p.command(args).stdout(writer).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn fifos_in_place_of_its_own_files_never_hang_a_run() {
    let p = Project::bert("[8]", &format!("{AGGREGATE_AFTER_B}{PLOT_AFTER_AGGREGATE}"));
    assert_eq!(p.run(&["run", "pipelines/p.yaml"]).code, 0);
    let [entry] = p.cache_entries().try_into().unwrap();
    for own in [
        entry.clone(),
        p.path("cache/settled/bert-tiny.txt"),
        p.path("tables/.aggregate.stamp"),
        p.path("figs/.plot.stamp"),
    ] {
        std::fs::remove_file(&own).unwrap();
        mkfifo(&own);
    }
    let mut child = p.spawn(&["run", "pipelines/p.yaml"]);
    let deadline = Instant::now() + Duration::from_mins(1);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("a run blocked reading a FIFO");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    let r = crate::project::to_run(out);
    assert_eq!(status.code(), Some(0), "{}", r.all());
    // The entry that was a FIFO is measured again; everything else is rebuilt and a rerun is a no-op.
    assert!(entry.is_file());
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.points(), (0, 1, 0, 0), "{}", r.all());
    assert!(r.stderr.contains("tables are up to date"), "{}", r.stderr);
}

#[test]
fn only_canonical_lengths_are_lengths_and_a_huge_sweep_aggregates() {
    // Foreign files: keys that are no canonical positive decimal are skipped with a warning each (`0`, `00` and
    // `+128` once read as lengths 0, 0 and 128); lengths 1 and 2 reach the log axis and the fits without a panic;
    // 10,000 lengths aggregate and plot (the broken power law tries at most 200 breaks).
    let p = Project::new();
    let odd: Vec<String> = ["0", "00", "+128", "128", "1", "2", "abc", " 64"]
        .iter()
        .map(|k| format!("\"{k}\": {{\"first_token_latency_ms\": 3.0}}"))
        .collect();
    p.write(
        "latest/inference/odd.json",
        &format!(
            "{{\"exp_id\": \"inference_scaling_2\", \"model\": \"odd\", \"arch\": \"encoder\", \"metrics\": {{{}}}}}",
            odd.join(", ")
        ),
    );
    let many: Vec<String> = (1..=10_000)
        .map(|l| {
            format!(
                "\"{l}\": {{\"first_token_latency_ms\": {}}}",
                5.0 + 0.01 * f64::from(l)
            )
        })
        .collect();
    p.write(
        "latest/inference/many.json",
        &format!(
            "{{\"exp_id\": \"inference_scaling_1\", \"model\": \"many\", \"arch\": \"decoder\", \"metrics\": {{{}}}}}",
            many.join(", ")
        ),
    );
    p.write(
        "pipelines/p.yaml",
        "steps:\n  - name: aggregate\n    kind: aggregate\n  - name: plot\n    kind: plot\n    needs: [aggregate]\n    log2_x: true\n",
    );
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    for key in ["0", "00", "+128", "abc", " 64"] {
        assert!(
            r.stderr.contains(&format!(
                "skipped metrics key `{key}`: not a context length"
            )),
            "{key}: {}",
            r.stderr
        );
    }
    let csv = p.read("tables/inference_results.csv");
    let odd_lengths: Vec<&str> = csv
        .lines()
        .filter(|l| l.contains(",odd,"))
        .map(|l| l.split(',').nth(3).unwrap())
        .collect();
    assert_eq!(odd_lengths, ["1", "2", "128"], "{csv}");
    assert_eq!(csv.lines().filter(|l| l.contains(",many,")).count(), 10_000);
    assert!(p.path("figs/latency_curve.svg").is_file());
    // e3pipe's own schema is strict: a non-canonical key there is refused, by name.
    let own = p.read("latest/inference/odd.json").replace(
        "\"exp_id\"",
        "\"schema_version\": 1, \"config\": {\"model\": {\"name\": \"odd\", \"arch\": \"encoder\"}, \"bench\": {}}, \"exp_id\"",
    );
    p.write("latest/inference/odd.json", &own);
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert!(r.stderr.contains("is not a context length"), "{}", r.all());
}

#[test]
fn text_leaves_in_the_form_its_target_allows() {
    // A model name with characters XML forbids (C0 controls, U+FFFE) and markup: every SVG stays well-formed (no
    // forbidden character survives, the markup is escaped); `compare --format markdown` escapes it for GitHub.
    let p = Project::new();
    let name = "m\\u0001<script>&x|y\\r\\uFFFE";
    let metrics: Vec<String> = [16, 32, 64]
        .iter()
        .map(|l| {
            format!(
                "\"{l}\": {{\"first_token_latency_ms\": {}}}",
                f64::from(*l) * 0.5
            )
        })
        .collect();
    p.write(
        "latest/inference/odd.json",
        &format!(
            "{{\"exp_id\": \"inference_scaling_1\", \"model\": \"{name}\", \"arch\": \"decoder\", \"metrics\": {{{}}}}}",
            metrics.join(", ")
        ),
    );
    p.write(
        "pipelines/p.yaml",
        "steps:\n  - name: aggregate\n    kind: aggregate\n  - name: plot\n    kind: plot\n    needs: [aggregate]\n",
    );
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let mut svgs = 0;
    for entry in std::fs::read_dir(p.path("figs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "svg" || e == "html") {
            let text = std::fs::read_to_string(&path).unwrap();
            // The page's own sorting script is the only one; the name's `<script>` is escaped.
            let own = "<script>document.querySelectorAll('table.sortable')";
            let text = text.replacen(own, "", 1);
            assert!(
                !text.contains('\u{1}') && !text.contains('\u{FFFE}') && !text.contains("<script>"),
                "{}",
                path.display()
            );
            svgs += 1;
        }
    }
    assert!(svgs >= 2, "{svgs}");
    let md = p.run(&["compare", ".", ".", "--format", "markdown"]);
    assert!(
        !md.stdout.contains("<script>") && !md.stdout.contains('\r'),
        "{}",
        md.stdout
    );
    assert!(
        md.stdout.contains("&lt;script&gt;&amp;x\\|y"),
        "{}",
        md.stdout
    );
}

#[test]
fn a_megabyte_of_name_is_not_echoed() {
    // A 1 MB step name in `needs`, a 1 MB unknown key: refused by name, shortened, not 1 MB of stderr.
    let p = Project::new();
    let huge = "x".repeat(1_000_000);
    p.write(
        "pipelines/p.yaml",
        &format!("steps:\n  - name: a\n    kind: aggregate\n    needs: [{huge}]\n"),
    );
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 2, "{}", &r.stderr[..200.min(r.stderr.len())]);
    assert!(r.stderr.len() < 1_000, "{} bytes", r.stderr.len());
    assert!(
        r.stderr.contains("needs unknown step `xxxx") && r.stderr.contains("(1000000 characters)")
    );
    p.write(
        "pipelines/p.yaml",
        &format!("steps:\n  - name: a\n    kind: aggregate\n    {huge}: 1\n"),
    );
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.len() < 1_000, "{} bytes", r.stderr.len());
}

#[test]
fn a_file_where_the_cache_belongs_is_replaced_and_no_point_reads_as_corrupt() {
    // The folder is replaced (with a warning) before anything is written; planning saw no cache, not a damaged one.
    let p = Project::bert("[16]", "");
    p.write("cache", "not a folder");
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stderr.contains("a file where an output folder belongs"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("corrupt"), "{}", r.stderr);
    assert_eq!(r.points(), (1, 0, 0, 0));
    assert!(p.path("cache/points").is_dir());
}
