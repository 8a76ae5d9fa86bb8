//! Bench points as Slurm array jobs, on a real one-node cluster (`scripts/slurm-local.sh start` brings it up;
//! `make test` does so first). Nothing here mocks `sbatch`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::project::{BERT_TINY, GPT2_TINY, Project, bench_yaml, to_run, walk};

fn ensure_slurm() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/slurm-local.sh");
    let out = Command::new(script).arg("start").output().unwrap();
    assert!(
        out.status.success(),
        "the local Slurm cluster did not start: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `<task id> <state>` of every listed task of jobs named `name`.
fn tasks_named(name: &str) -> Vec<(String, String)> {
    let out = Command::new("squeue")
        .args(["-h", "-r", "-n", name, "-o", "%i %T"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// A project whose root has spaces and quotes in its path, measuring a BERT and a GPT-2 whose name is a shell
/// command, with the executor block `executor`.
fn hostile_project(executor: &str, step: &str) -> (Project, PathBuf) {
    let p = Project::new();
    let root = p.path("it's a \"project\"");
    let write = |rel: &str, text: &str| {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("configs/model/bert.yaml", BERT_TINY);
    write(
        "configs/model/gpt2.yaml",
        &GPT2_TINY.replace("name: gpt2-tiny", "name: \"x; touch pwned\""),
    );
    write(
        "configs/bench/encoder.yaml",
        &bench_yaml("encoder", "[8, 16, 32]", 0, 2),
    );
    write(
        "configs/bench/decoder.yaml",
        &bench_yaml("decoder", "[8, 16, 32]", 4, 2),
    );
    write(
        "pipelines/p.yaml",
        &format!(
            "{executor}steps:
  - {{name: {step}, kind: bench, model: configs/model/bert.yaml, bench: configs/bench/encoder.yaml}}
  - {{name: {step}-g, kind: bench, model: configs/model/gpt2.yaml, bench: configs/bench/decoder.yaml}}
  - {{name: aggregate, kind: aggregate, needs: [{step}, {step}-g]}}
  - {{name: plot, kind: plot, needs: [aggregate]}}
"
        ),
    );
    (p, root)
}

fn run_in(p: &Project, root: &Path, args: &[&str]) -> crate::project::Run {
    let mut cmd = p.command(args);
    cmd.current_dir(root);
    to_run(cmd.output().unwrap())
}

fn points_of(root: &Path, model_file: &str) -> Vec<Value> {
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("latest/inference").join(model_file)).unwrap(),
    )
    .unwrap();
    doc["metrics"]
        .as_object()
        .unwrap()
        .values()
        .map(|m| m["point"].clone())
        .collect()
}

fn no_stray_file(p: &Project, root: &Path) {
    for dir in [p.root(), root, Path::new(".")] {
        assert!(
            !dir.join("pwned").exists(),
            "a name reached a shell in {}",
            dir.display()
        );
    }
}

#[test]
fn slurm_arrays_measure_every_point_and_a_rerun_submits_nothing() {
    ensure_slurm();
    let (p, root) = hostile_project(
        "executor: {kind: slurm, points_per_task: 2, poll_interval_s: 0.5}\n",
        "sl-all",
    );
    let dry = run_in(&p, &root, &["run", "--dry-run", "pipelines/p.yaml"]);
    assert!(
        dry.stdout
            .contains("slurm: would submit an array of 2 task(s), up to 2 point(s) each"),
        "{}",
        dry.stdout
    );
    let r = run_in(&p, &root, &["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.points(), (6, 0, 0, 0));
    assert_eq!(
        r.stderr.matches("submitted Slurm array").count(),
        2,
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("  sbatch --parsable --array=0-1%16 --job-name=e3pipe-sl-all "),
        "{}",
        r.stderr
    );
    for file in ["bert-tiny.json", "x__touch_pwned.json"] {
        let points = points_of(&root, file);
        assert_eq!(points.len(), 3);
        for pt in points {
            assert_eq!(pt["executor"], "slurm", "{pt:#}");
            let id = pt["slurm_job_id"].as_str().unwrap();
            let (array, task) = id.split_once('_').unwrap();
            assert!(
                array.parse::<u64>().is_ok() && task.parse::<u64>().is_ok(),
                "{id}"
            );
            assert_eq!(pt["input_tokens"], pt["context_length"]);
        }
    }
    no_stray_file(&p, &root);
    // The same tables and figures as a local run: same columns, same (model, length) rows.
    let (local, local_root) = hostile_project("", "sl-local");
    let l = run_in(&local, &local_root, &["run", "pipelines/p.yaml"]);
    assert_eq!(l.code, 0, "{}", l.all());
    let keys = |root: &Path| {
        let csv = std::fs::read_to_string(root.join("tables/inference_results.csv")).unwrap();
        let header = csv.lines().next().unwrap().to_string();
        let mut rows: Vec<String> = csv
            .lines()
            .skip(1)
            .map(|l| l.split(',').skip(1).take(3).collect::<Vec<_>>().join(","))
            .collect();
        rows.sort();
        (header, rows)
    };
    assert_eq!(keys(&root), keys(&local_root));
    for figure in ["latency_curve.png", "roofline.png", "roofline.svg"] {
        assert!(root.join("figs").join(figure).is_file(), "{figure}");
    }
    // Everything is cached: nothing is submitted.
    let again = run_in(&p, &root, &["run", "pipelines/p.yaml"]);
    assert_eq!(again.points(), (0, 6, 0, 0));
    assert!(!again.stderr.contains("sbatch"), "{}", again.stderr);
    // `--force`: the old entries are in the cache, yet the points count only once their new task reports them.
    let before: Vec<Value> = points_of(&root, "bert-tiny.json");
    let forced = run_in(&p, &root, &["run", "--force", "sl-all", "pipelines/p.yaml"]);
    assert_eq!(forced.points(), (3, 3, 0, 0), "{}", forced.all());
    let after = points_of(&root, "bert-tiny.json");
    for (old, new) in before.iter().zip(&after) {
        assert_ne!(old["slurm_job_id"], new["slurm_job_id"], "{new:#}");
    }
}

#[test]
fn a_cancelled_task_leaves_only_its_points_to_redo() {
    ensure_slurm();
    let p = Project::new();
    p.write(
        "configs/bench/encoder.yaml",
        &bench_yaml("encoder", "[8, 16, 24, 32]", 0, 2),
    );
    p.write(
        "pipelines/p.yaml",
        "executor: {kind: slurm, points_per_task: 1, max_parallel: 1, poll_interval_s: 0.5}
steps:
  - {name: sl-cancel, kind: bench, model: configs/model/bert.yaml, bench: configs/bench/encoder.yaml}
",
    );
    let child = p
        .command(&["run", "pipelines/p.yaml"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // One task at a time: cancel the last while it still waits.
    let deadline = Instant::now() + Duration::from_mins(1);
    let cancelled = loop {
        assert!(
            Instant::now() < deadline,
            "the array never showed up in squeue"
        );
        if let Some((id, _)) = tasks_named("e3pipe-sl-cancel")
            .into_iter()
            .find(|(id, state)| id.ends_with("_3") && state == "PENDING")
        {
            assert!(Command::new("scancel").arg(&id).status().unwrap().success());
            break id;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let r = to_run(child.wait_with_output().unwrap());
    assert_eq!(r.code, 1, "{}", r.all());
    assert_eq!(r.points(), (3, 0, 1, 0));
    assert!(
        r.all().contains(&format!("Slurm task {cancelled} ended (")),
        "{}",
        r.all()
    );
    assert!(r.all().contains("array0_task3.err"), "{}", r.all());
    // The missing point is measured again, and beside it the curve's shortest cached point as its anchor (drift
    // between the two runs), in one array of two tasks.
    let again = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(again.code, 0, "{}", again.all());
    assert_eq!(again.points(), (2, 2, 0, 0));
    assert!(again.stderr.contains("--array=0-1%1"), "{}", again.stderr);
    assert!(again.all().contains("anchor bert-tiny@"), "{}", again.all());
}

#[test]
fn a_bad_executor_block_submits_nothing_and_no_wait_returns_at_once() {
    ensure_slurm();
    let p = Project::new();
    p.write(
        "configs/bench/encoder.yaml",
        &bench_yaml("encoder", "[8, 16]", 0, 1),
    );
    let pipeline = |executor: &str| {
        format!(
            "{executor}steps:\n  - {{name: sl-nowait, kind: bench, model: configs/model/bert.yaml, bench: configs/bench/encoder.yaml}}\n  - {{name: aggregate, kind: aggregate, needs: [sl-nowait]}}\n"
        )
    };
    for bad in [
        "executor: {kind: slurm, partiton: gpu}\n",
        "executor: {kind: slurm, points_per_task: -1}\n",
        "executor: {kind: slurm, sbatch_args: [\"--output=/tmp/x\"]}\n",
    ] {
        p.write("pipelines/p.yaml", &pipeline(bad));
        let r = p.run(&["run", "pipelines/p.yaml"]);
        assert_eq!(r.code, 2, "{bad}: {}", r.all());
        assert!(
            !p.path("cache").exists() && tasks_named("e3pipe-sl-nowait").is_empty(),
            "{bad}"
        );
    }
    // `--no-wait` submits and returns; the derived steps wait; a later run collects the points.
    p.write("pipelines/p.yaml", &pipeline(""));
    let local = p.run(&["run", "--no-wait", "pipelines/p.yaml"]);
    assert_eq!(local.code, 2, "--no-wait needs Slurm: {}", local.all());
    let r = p.run(&[
        "run",
        "--executor",
        "slurm",
        "--no-wait",
        "pipelines/p.yaml",
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stderr
            .contains("run `e3pipe run pipelines/p.yaml --executor slurm` again once they finish"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("step `aggregate`: waits for the submitted jobs"),
        "{}",
        r.stderr
    );
    assert!(!p.path("tables").exists());
    let deadline = Instant::now() + Duration::from_mins(2);
    while !tasks_named("e3pipe-sl-nowait").is_empty() {
        assert!(Instant::now() < deadline, "the array did not finish");
        std::thread::sleep(Duration::from_millis(200));
    }
    let later = p.run(&["run", "--executor", "slurm", "pipelines/p.yaml"]);
    assert_eq!(later.code, 0, "{}", later.all());
    assert_eq!(later.points(), (0, 2, 0, 0));
    assert!(!later.stderr.contains("sbatch"), "{}", later.stderr);
    assert!(p.path("tables/inference_results.csv").is_file());
}

#[test]
fn a_node_that_is_not_the_planned_hardware_measures_nothing() {
    ensure_slurm();
    let p = Project::new();
    p.write(
        "configs/bench/encoder.yaml",
        &bench_yaml("encoder", "[8, 16]", 0, 1),
    );
    // Held, so the array never runs by itself: only its job file matters here.
    p.write(
        "pipelines/p.yaml",
        "executor: {kind: slurm, sbatch_args: [\"--hold\"]}\nsteps:\n  - {name: sl-hold, kind: bench, model: configs/model/bert.yaml, bench: configs/bench/encoder.yaml}\n",
    );
    let r = p.run(&["run", "--no-wait", "pipelines/p.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    for (id, _) in tasks_named("e3pipe-sl-hold") {
        let _ = Command::new("scancel").arg(id).status();
    }
    let job_file = walk(&p.path("cache/slurm"))
        .into_iter()
        .find(|f| f.ends_with("array0.json"))
        .expect("the array's job file");
    // Plan on one machine, measure on another: the keys name hardware this node is not.
    let mut job: Value =
        serde_json::from_str(&std::fs::read_to_string(&job_file).unwrap()).unwrap();
    for point in job["points"].as_array_mut().unwrap() {
        point["key"]["hardware"]["model_name"] = "Another CPU".into();
    }
    std::fs::write(&job_file, job.to_string()).unwrap();
    let worker = Path::new(env!("CARGO_BIN_EXE_e3pipe")).with_file_name("e3pipe-worker");
    let out = Command::new(worker)
        .args(["--array-task".as_ref(), job_file.as_os_str()])
        .env("SLURM_ARRAY_JOB_ID", "99")
        .env("SLURM_ARRAY_TASK_ID", "0")
        .env("E3PIPE_NO_CUDA", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for line in lines {
        assert_eq!(line["outcome"], "failed");
        assert_eq!(line["result"]["slurm_job_id"], "99_0");
        assert!(
            line["result"]["reason"]
                .as_str()
                .unwrap()
                .contains("planned for"),
            "{line}"
        );
    }
    let cached = std::fs::read_dir(p.path("cache/points")).map_or(0, Iterator::count);
    assert_eq!(cached, 0, "a mismatch must never be cached");
}

#[test]
fn ctrl_c_cancels_the_submitted_arrays_and_keeps_finished_points() {
    interrupted_by(libc::SIGINT, "sl-interrupt");
}

/// SIGTERM is what a batch time limit (`salloc`, `sbatch`) and `kill` send: the same as Ctrl-C.
#[test]
fn sigterm_at_a_time_limit_does_the_same() {
    interrupted_by(libc::SIGTERM, "sl-term");
}

fn interrupted_by(signal: libc::c_int, step: &str) {
    ensure_slurm();
    let p = Project::new();
    p.write(
        "configs/bench/encoder.yaml",
        &bench_yaml("encoder", "[8, 16, 24, 32]", 0, 2),
    );
    p.write(
        "pipelines/p.yaml",
        &format!(
            "executor: {{kind: slurm, points_per_task: 1, max_parallel: 1, poll_interval_s: 0.5}}
steps:
  - {{name: {step}, kind: bench, model: configs/model/bert.yaml, bench: configs/bench/encoder.yaml}}
"
        ),
    );
    let child = p
        .command(&["run", "pipelines/p.yaml"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_mins(1);
    let name = format!("e3pipe-{step}");
    while !tasks_named(&name).iter().any(|(_, s)| s == "RUNNING") {
        assert!(Instant::now() < deadline, "the array never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    let r = to_run(child.wait_with_output().unwrap());
    assert_eq!(r.code, 130, "{}", r.all());
    assert!(r.stderr.contains("cancelled Slurm array"), "{}", r.stderr);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !tasks_named(&name).is_empty() {
        assert!(Instant::now() < deadline, "the array was not cancelled");
        std::thread::sleep(Duration::from_millis(100));
    }
    // What finished is kept: the rerun measures only the rest.
    let cached = std::fs::read_dir(p.path("cache/points")).map_or(0, Iterator::count);
    assert!(cached < 4, "cancelled before the end");
    let again = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(again.code, 0, "{}", again.all());
    assert_eq!(again.points(), (4 - cached, cached, 0, 0));
}

#[test]
fn a_batch_sweep_runs_as_arrays_each_point_at_its_batch_size() {
    ensure_slurm();
    let p = Project::new();
    p.write(
        "configs/bench/encoder.yaml",
        "name: b\narch: encoder\ncontext_lengths: [8, 16]\nbatch_sizes: [1, 3]\nnum_runs: 2\nwarmup_runs: 0\nthreads: 1\n",
    );
    p.write(
        "pipelines/p.yaml",
        "executor: {kind: slurm, points_per_task: 3, poll_interval_s: 0.5}\nsteps:\n  - {name: sl-batch, kind: bench, model: configs/model/bert.yaml, bench: configs/bench/encoder.yaml}\n",
    );
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.points(), (4, 0, 0, 0), "{}", r.all());
    let doc = p.results("bert-tiny");
    for (at, batch) in [("/metrics", 1), ("/batch_metrics/3", 3)] {
        for length in [8u64, 16] {
            let pt = &doc.pointer(&format!("{at}/{length}/point")).unwrap();
            assert_eq!(pt["executor"], "slurm", "{pt:#}");
            assert_eq!(
                (pt["batch_size"].as_u64(), pt["input_tokens"].as_u64()),
                (Some(batch), Some(length)),
                "{pt:#}"
            );
        }
    }
    // 4 points, 3 a task: one array of 2 tasks; a rerun submits nothing.
    assert!(r.stderr.contains("--array=0-1%16"), "{}", r.stderr);
    let again = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(again.points(), (0, 4, 0, 0), "{}", again.all());
    assert!(!again.stderr.contains("sbatch"), "{}", again.stderr);
}
