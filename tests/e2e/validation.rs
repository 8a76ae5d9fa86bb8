//! Invalid pipelines and configs: one clear error naming the file and step, exit code 2, nothing written.

use crate::project::Project;

fn rejects(pipeline: &str, setup: impl Fn(&Project), expected: &[&str]) {
    let p = Project::new();
    p.write("pipelines/p.yaml", pipeline);
    setup(&p);
    for args in [
        &["run", "pipelines/p.yaml"][..],
        &["graph", "pipelines/p.yaml"][..],
    ] {
        let r = p.run(args);
        assert_eq!(r.code, 2, "{args:?} should exit 2:\n{}", r.all());
        for e in expected {
            assert!(
                r.stderr.contains(e),
                "{args:?}: expected `{e}` in stderr:\n{}",
                r.stderr
            );
        }
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    }
    for out in ["cache", "results", "latest", "tables", "figs"] {
        assert!(
            !p.path(out).exists(),
            "`{out}` was written by an invalid run"
        );
    }
}

const BENCH_STEP: &str = "  - name: bench-gpt2\n    kind: bench\n    model: configs/model/gpt2.yaml\n    bench: configs/bench/decoder.yaml\n";

#[test]
fn unknown_step_kind() {
    rejects(
        &format!("steps:\n{BENCH_STEP}  - name: plot\n    kind: plto\n"),
        |_| {},
        &[
            "`pipelines/p.yaml`",
            "step `plot` has unknown kind `plto`",
            "did you mean `plot`?",
        ],
    );
}

#[test]
fn unknown_key_with_did_you_mean() {
    rejects(
        &format!(
            "steps:\n{BENCH_STEP}  - name: agg\n    kind: aggregate\n    neds: [bench-gpt2]\n"
        ),
        |_| {},
        &["unknown key `neds` in step `agg`", "did you mean `needs`?"],
    );
    rejects(
        &format!("stepz:\n{BENCH_STEP}"),
        |_| {},
        &[
            "unknown key `stepz` in the pipeline",
            "did you mean `steps`?",
        ],
    );
}

#[test]
fn unknown_key_in_a_bench_config() {
    rejects(
        &format!("steps:\n{BENCH_STEP}"),
        |p| {
            p.write(
                "configs/bench/decoder.yaml",
                "name: x\narch: decoder\ncontext_lengths: [8]\nnum_token: 3\n",
            );
        },
        &[
            "configs/bench/decoder.yaml",
            "unknown key `num_token`",
            "did you mean `num_tokens`?",
        ],
    );
}

#[test]
fn needs_an_unknown_step() {
    rejects(
        &format!(
            "steps:\n{BENCH_STEP}  - name: aggregate\n    kind: aggregate\n    needs: [bench-gpt]\n"
        ),
        |_| {},
        &[
            "step `aggregate` needs unknown step `bench-gpt`",
            "did you mean `bench-gpt2`?",
        ],
    );
}

#[test]
fn cycle_prints_the_whole_circle() {
    rejects(
        &format!(
            "steps:\n{BENCH_STEP}  - name: aggregate\n    kind: aggregate\n    needs: [bench-gpt2, plot]\n  - name: plot\n    kind: plot\n    needs: [aggregate]\n"
        ),
        |_| {},
        &["steps form a cycle: `aggregate -> plot -> aggregate`"],
    );
}

#[test]
fn duplicate_step_names() {
    rejects(
        &format!("steps:\n{BENCH_STEP}{BENCH_STEP}"),
        |_| {},
        &["step `bench-gpt2` is declared twice"],
    );
}

#[test]
fn two_steps_measuring_one_model_name() {
    rejects(
        &format!(
            "steps:\n{BENCH_STEP}{}",
            BENCH_STEP.replace("name: bench-gpt2", "name: bench-gpt2-again")
        ),
        |_| {},
        &["step `bench-gpt2-again`: model `gpt2-tiny` is already measured by step `bench-gpt2`"],
    );
}

#[test]
fn missing_config_file() {
    rejects(
        "steps:\n  - name: bench-gpt2\n    kind: bench\n    model: configs/model/nope.yaml\n    bench: configs/bench/decoder.yaml\n",
        |_| {},
        &["step `bench-gpt2`: config file `configs/model/nope.yaml` does not exist"],
    );
}

#[test]
fn bad_context_lengths_and_runs() {
    let cases = [
        (
            "context_lengths: []\nnum_runs: 3",
            "context_lengths: is empty",
        ),
        (
            "context_lengths: [0, 8]\nnum_runs: 3",
            "lengths must be positive, got 0",
        ),
        (
            "context_lengths: [-4]\nnum_runs: 3",
            "lengths must be positive, got -4",
        ),
        ("context_lengths: [8, 8]\nnum_runs: 3", "8 is listed twice"),
        (
            "context_lengths: [8]\nnum_runs: 0",
            "num_runs: must be at least 1, got 0",
        ),
        (
            "context_lengths: [8, x]\nnum_runs: 3",
            "`x` is not an integer",
        ),
    ];
    for (body, expected) in cases {
        rejects(
            &format!("steps:\n{BENCH_STEP}"),
            |p| {
                p.write(
                    "configs/bench/decoder.yaml",
                    &format!("name: x\narch: decoder\n{body}\n"),
                );
            },
            &["configs/bench/decoder.yaml", expected],
        );
    }
}

#[test]
fn unknown_arch() {
    rejects(
        &format!("steps:\n{BENCH_STEP}"),
        |p| {
            p.write(
                "configs/bench/decoder.yaml",
                "name: x\narch: decodr\ncontext_lengths: [8]\n",
            );
        },
        &["unknown arch `decodr`", "did you mean `decoder`?"],
    );
    rejects(
        &format!("steps:\n{BENCH_STEP}"),
        |p| {
            p.write(
                "configs/bench/decoder.yaml",
                "name: x\narch: encoder\ncontext_lengths: [8]\n",
            );
        },
        &["bench arch `encoder` does not match model `gpt2-tiny`"],
    );
}

#[test]
fn yaml_syntax_error_has_line_and_column() {
    rejects(
        "steps:\n  - name: a\n    kind: [bench\n",
        |_| {},
        &["`pipelines/p.yaml` is not valid YAML at line 4, column 1"],
    );
}

#[test]
fn garbage_inputs_never_panic() {
    for text in [
        "",
        "[]",
        "steps: 3",
        "steps:\n  - 7\n",
        "steps:\n  - name: a\n",
        "steps:\n  - {name: a, kind: bench}\n",
        "\u{0}\u{1}",
    ] {
        let p = Project::new();
        p.write("pipelines/p.yaml", text);
        let r = p.run(&["run", "pipelines/p.yaml"]);
        assert_eq!(r.code, 2, "{text:?}:\n{}", r.all());
        assert!(r.stderr.starts_with("error: "), "{text:?}:\n{}", r.stderr);
    }
}

#[test]
fn graph_formats() {
    let p = Project::new();
    let text = p.run(&["graph", "pipelines/p.yaml"]);
    assert_eq!(text.code, 0, "{}", text.all());
    let lines: Vec<&str> = text.stdout.lines().collect();
    assert!(lines[1].starts_with(" 1. bench-gpt2  [bench: model gpt2-tiny (decoder), lengths [32, 512], batch sizes [1], 4 new tokens, 3 runs]"), "{}", text.stdout);
    let order: Vec<&str> = lines
        .iter()
        .filter_map(|l| {
            l.trim_start()
                .split_once(". ")
                .map(|(_, rest)| rest.split_whitespace().next().unwrap_or(""))
        })
        .collect();
    assert_eq!(
        order,
        ["bench-gpt2", "bench-t5", "bench-bert", "aggregate", "plot"]
    );
    assert!(
        text.stdout
            .contains("      <- bench-gpt2, bench-t5, bench-bert")
    );

    let dot = p
        .run(&["graph", "pipelines/p.yaml", "--format", "dot"])
        .stdout;
    assert!(dot.starts_with("digraph pipeline {\n"), "{dot}");
    assert!(dot.contains("  \"bench-gpt2\" -> \"aggregate\";\n"));
    assert!(dot.contains("  \"aggregate\" -> \"plot\";\n"));
    assert!(dot.trim_end().ends_with('}'));
    assert_eq!(dot.matches(" -> ").count(), 4);

    let mermaid = p
        .run(&["graph", "pipelines/p.yaml", "--format", "mermaid"])
        .stdout;
    assert!(mermaid.starts_with("flowchart LR\n"), "{mermaid}");
    assert!(mermaid.contains("    s_bench_t5 --> s_aggregate\n"));
    assert!(mermaid.contains("    s_aggregate --> s_plot\n"));
    assert!(mermaid.contains("s_plot[\"plot<br/>plot: figs/latency_curve.png\"]"));
}

#[test]
fn a_bench_step_no_aggregate_needs_is_warned_about_and_marked() {
    let p = Project::new();
    p.write(
        "pipelines/p.yaml",
        &crate::project::THREE_MODELS.replace(
            "needs: [bench-gpt2, bench-t5, bench-bert]",
            "needs: [bench-gpt2]",
        ),
    );
    let r = p.run(&["run", "pipelines/p.yaml", "--dry-run"]);
    assert_eq!(r.code, 0, "{}", r.all());
    for step in ["bench-t5", "bench-bert"] {
        assert!(
            r.stderr.contains(&format!(
                "warning: bench step `{step}` is not in the `needs` of an aggregate step"
            )),
            "{}",
            r.stderr
        );
    }
    assert!(!r.stderr.contains("`bench-gpt2` is not"), "{}", r.stderr);
    let text = p.run(&["graph", "pipelines/p.yaml"]).stdout;
    let marked: Vec<&str> = text
        .lines()
        .filter(|l| l.ends_with("(no aggregate step needs it)"))
        .collect();
    assert_eq!(marked.len(), 2, "{text}");
    assert!(
        marked[0].contains(". bench-t5  ") && marked[1].contains(". bench-bert  "),
        "{text}"
    );
    let dot = p
        .run(&["graph", "pipelines/p.yaml", "--format", "dot"])
        .stdout;
    assert_eq!(dot.matches("style=dashed").count(), 2, "{dot}");
    // A pipeline without an aggregate step (measure only) is not warned about, only marked.
    p.write("pipelines/m.yaml", crate::project::BERT_ONLY);
    let r = p.run(&["run", "pipelines/m.yaml", "--dry-run"]);
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
    assert!(
        p.run(&["graph", "pipelines/m.yaml"])
            .stdout
            .contains("(no aggregate step needs it)")
    );
}

#[test]
fn value_errors_point_at_the_line_and_suggest_what_was_meant() {
    let p = Project::new();
    // One length where a list was meant.
    p.write(
        "configs/bench/decoder.yaml",
        "name: test\narch: decoder\ncontext_length: [32, 64]\nnum_tokens: 4\nnum_runs: 1\n",
    );
    let r = p.run(&["run", "pipelines/p.yaml", "--dry-run"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.starts_with(
            "error: `configs/bench/decoder.yaml:3:1`: context_length: takes one length"
        ) && r.stderr.contains("did you mean `context_lengths`?"),
        "{}",
        r.stderr
    );
    // A bad value: the file, line and column of its key, the value on one line.
    p.write(
        "configs/bench/decoder.yaml",
        "name: test\narch: decoder\ncontext_lengths: [32]\nnum_tokens: 4\n  \nnum_runs: 1\nthreads: [1, 2]\n",
    );
    let r = p.run(&["run", "pipelines/p.yaml", "--dry-run"]);
    assert!(
        r.stderr.starts_with(
            "error: `configs/bench/decoder.yaml:7:1`: threads: expected an integer, got `[1, 2]`"
        ),
        "{}",
        r.stderr
    );
    // A config file that is not there: the nearest one beside it.
    p.write(
        "configs/bench/decoder.yaml",
        &crate::project::bench_yaml("decoder", "[32]", 4, 1),
    );
    p.write(
        "pipelines/p.yaml",
        &crate::project::THREE_MODELS
            .replace("configs/bench/encoder.yaml", "configs/bench/encodr.yaml"),
    );
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("config file `configs/bench/encodr.yaml` does not exist\n  did you mean `configs/bench/encoder.yaml`?"),
        "{}",
        r.stderr
    );
    // The article follows the architecture.
    p.write(
        "pipelines/p.yaml",
        &crate::project::THREE_MODELS
            .replace("configs/bench/encoder.yaml", "configs/bench/seq2seq.yaml"),
    );
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert!(r.stderr.contains("(an `encoder` model)"), "{}", r.stderr);
    // A pipeline that is not there: the project's pipelines and the nearest; outside a project, that there is none.
    let r = p.run(&["run", "pipelines/q.yaml"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("no pipeline `pipelines/q.yaml`; `pipelines/` has: p.yaml"),
        "{}",
        r.stderr
    );
    let empty = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_e3pipe"))
        .arg("run")
        .current_dir(empty.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("there is no `pipelines/` folder here"),
        "{stderr}"
    );
}

#[test]
fn only_with_an_unknown_step_suggests() {
    let p = Project::new();
    let r = p.run(&["run", "pipelines/p.yaml", "--only", "plto"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains(
            "error: pipeline `pipelines/p.yaml` has no step `plto`\n  did you mean `plot`?"
        ),
        "{}",
        r.stderr
    );
}

#[test]
fn only_plot_without_tables_names_what_to_run() {
    let p = Project::new();
    let r = p.run(&["run", "pipelines/p.yaml", "--only", "plot"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("step `plot` needs `tables/inference_results.csv`, which is not there: run `e3pipe run pipelines/p.yaml --only aggregate,plot` first"), "{}", r.stderr);
    assert!(
        !r.stdout.contains("points:"),
        "refused before anything runs"
    );
    for dir in ["tables", "figs", "cache", "latest", "results"] {
        assert!(!p.path(dir).exists(), "{dir} written on invalid input");
    }
}

#[test]
fn dry_run_plans_and_runs_nothing() {
    let p = Project::new();
    let r = p.run(&["run", "pipelines/p.yaml", "--dry-run"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout.contains(
            "step `bench-gpt2` (bench): model gpt2-tiny (decoder, random-init seed 1), fp32 on cpu"
        ),
        "{}",
        r.stdout
    );
    assert_eq!(
        r.stdout.matches(" tokens  new  [").count(),
        6,
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("step `plot` (plot)"));
    assert!(!p.path("cache").exists() && !p.path("results").exists());
}

#[test]
fn a_pipeline_path_after_force_is_explained_not_taken_for_a_step() {
    let p = crate::project::Project::bert("[8]", "");
    let r = p.run(&["run", "--force", "pipelines/p.yaml"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr
            .contains("was read as a step to force; put the pipeline before the flag"),
        "{}",
        r.stderr
    );
    assert!(!p.path("cache").exists());
}

#[test]
fn a_step_whose_needs_do_not_make_its_input_is_a_structural_error() {
    // Plot needs the bench step, aggregate needs plot: plot would run before any table exists. Refused with the
    // rest of validation (exit 2, nothing measured or written), naming the step to add.
    let p = crate::project::Project::new();
    p.write(
        "pipelines/p.yaml",
        "steps:\n  - {name: b, kind: bench, model: configs/model/bert.yaml, bench: configs/bench/encoder.yaml}\n  - {name: plot, kind: plot, needs: [b]}\n  - {name: aggregate, kind: aggregate, needs: [plot]}\n",
    );
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr
            .contains("step `plot` reads `tables/inference_results.csv`")
            && r.stderr.contains("add `aggregate` to them"),
        "{}",
        r.stderr
    );
    assert!(!p.path("cache").exists() && !p.path("results").exists());
    // In order (plot needs aggregate, which needs the bench step): valid.
    p.write(
        "pipelines/p.yaml",
        "steps:\n  - {name: b, kind: bench, model: configs/model/bert.yaml, bench: configs/bench/encoder.yaml}\n  - {name: aggregate, kind: aggregate, needs: [b]}\n  - {name: plot, kind: plot, needs: [aggregate]}\n",
    );
    assert_eq!(p.run(&["run", "pipelines/p.yaml", "--dry-run"]).code, 0);
}

#[test]
fn a_pipeline_file_typed_after_force_is_named_as_such() {
    // `e3pipe run --force quick.yaml`: `--force` took the file as a step name; the message says so and gives the
    // command that was meant, instead of blaming the default pipeline for lacking a step `quick.yaml`.
    let p = Project::new();
    p.write(
        "pipelines/scaling.yaml",
        "steps:\n  - name: aggregate\n    kind: aggregate\n",
    );
    let r = p.run(&["run", "--force", "p.yaml"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("`p.yaml` is not a step of")
            && r.stderr
                .contains("give the pipeline first: `e3pipe run p.yaml --force`"),
        "{}",
        r.stderr
    );
}
