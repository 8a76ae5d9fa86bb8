//! What real clusters do to a run, on the real local Slurm: a controller that fails every other `squeue`, a
//! filesystem without `flock`, a site that refuses the jobs, a second `sbatch` that fails, a rerun while arrays
//! are in flight, nodes that cannot see the project, GPUs as Slurm hands them out (SIGTERM: `slurm.rs`). Stand-ins are only put in front of the real commands (first on `PATH`)
//! to make them fail as clusters do.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::project::{Project, bench_yaml, to_run, walk};

fn ensure_slurm() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/slurm-local.sh");
    let out = Command::new(script).arg("start").output().unwrap();
    assert!(
        out.status.success(),
        "the local Slurm cluster did not start"
    );
}

fn tasks_named(name: &str) -> usize {
    let out = Command::new("squeue")
        .args(["-h", "-r", "-n", name, "-o", "%i"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

fn wait_until_gone(name: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while tasks_named(name) > 0 {
        assert!(Instant::now() < deadline, "`{name}` is still queued");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A directory of stand-ins, each a shell script named after the command it fronts (the real one is found by
/// its full path).
fn stand_ins(p: &Project, scripts: &[(&str, &str)]) -> PathBuf {
    let bin = p.path("stand-ins");
    std::fs::create_dir_all(&bin).unwrap();
    for (name, body) in scripts {
        let real =
            String::from_utf8(Command::new("which").arg(name).output().unwrap().stdout).unwrap();
        let path = bin.join(name);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\nREAL={}\nSTATE={}\n{body}\n",
                real.trim(),
                bin.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    bin
}

fn with_path(cmd: &mut Command, bin: &Path) {
    let path = std::env::var("PATH").unwrap_or_default();
    cmd.env("PATH", format!("{}:{path}", bin.display()));
}

fn project(step: &str, lengths: &str, executor: &str) -> Project {
    let p = Project::new();
    p.write(
        "configs/bench/encoder.yaml",
        &bench_yaml("encoder", lengths, 0, 1),
    );
    p.write(
        "pipelines/p.yaml",
        &format!("{executor}steps:\n  - {{name: {step}, kind: bench, model: configs/model/bert.yaml, bench: configs/bench/encoder.yaml}}\n"),
    );
    p
}

#[test]
fn a_controller_that_fails_every_other_squeue_loses_no_point() {
    ensure_slurm();
    let p = project(
        "cl-flaky",
        "[8, 16, 24, 32]",
        "executor: {kind: slurm, points_per_task: 1, max_parallel: 2, poll_interval_s: 0.3}\n",
    );
    let bin = stand_ins(
        &p,
        &[(
            "squeue",
            r#"n=$(cat "$STATE/squeue.calls" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > "$STATE/squeue.calls"
if [ $((n % 2)) = 0 ]; then echo "squeue: error: slurm_load_jobs error: Socket timed out on send/recv operation" >&2; exit 1; fi
exec "$REAL" "$@""#,
        )],
    );
    let mut cmd = p.command(&["run", "pipelines/p.yaml"]);
    with_path(&mut cmd, &bin);
    let r = to_run(cmd.output().unwrap());
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.points(), (4, 0, 0, 0), "{}", r.all());
    let calls: usize = std::fs::read_to_string(bin.join("squeue.calls"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(calls >= 2, "squeue was asked {calls} times");
    // What the user saw while waiting: counts per array, with the time.
    assert!(
        r.stderr.lines().any(|l| l.contains("slurm: array ")
            && l.contains(" pending")
            && l.contains(" done [")),
        "{}",
        r.stderr
    );
}

#[test]
fn a_site_that_refuses_the_jobs_is_shown_its_own_words_before_anything_is_submitted() {
    ensure_slurm();
    let p = project(
        "cl-refused",
        "[8]",
        "executor: {kind: slurm, partition: no-such-partition}\n",
    );
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("Slurm refuses its jobs") && r.stderr.contains("nvalid partition"),
        "{}",
        r.stderr
    );
    assert!(
        !p.path("cache").exists(),
        "nothing is written for a refused step"
    );
    assert_eq!(tasks_named("e3pipe-cl-refused"), 0);
}

#[test]
fn a_failed_second_submission_cancels_the_first_array() {
    ensure_slurm();
    let p = project(
        "cl-second",
        "[8, 16]",
        "executor: {kind: slurm, points_per_task: 1, max_parallel: 1, poll_interval_s: 0.3}\n",
    );
    // One task per array (so two arrays), and the second real submission refused.
    let bin = stand_ins(
        &p,
        &[
            (
                "scontrol",
                r#"if [ "$1 $2" = "show config" ]; then echo "MaxArraySize            = 1"; exit 0; fi; exec "$REAL" "$@""#,
            ),
            (
                "sbatch",
                r#"case "$*" in *--test-only*|*e3pipe-probe*) exec "$REAL" "$@";; esac
n=$(cat "$STATE/sbatch.calls" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > "$STATE/sbatch.calls"
if [ "$n" = 2 ]; then echo "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation" >&2; exit 1; fi
# The first array holds its task for a while so that it is still queued when the second fails.
exec "$REAL" --begin=now+60 "$@""#,
            ),
        ],
    );
    let mut cmd = p.command(&["run", "pipelines/p.yaml"]);
    with_path(&mut cmd, &bin);
    let r = to_run(cmd.output().unwrap());
    assert_ne!(r.code, 0, "{}", r.all());
    assert!(r.stderr.contains("Socket timed out"), "{}", r.stderr);
    assert!(r.stderr.contains("cancelled Slurm array"), "{}", r.stderr);
    wait_until_gone("e3pipe-cl-second", Duration::from_secs(20));
    assert!(p.cache_entries().is_empty());
}

#[test]
fn a_rerun_while_an_array_is_in_flight_waits_for_it_instead_of_submitting_again() {
    ensure_slurm();
    let p = project(
        "cl-inflight",
        "[8, 16, 24]",
        "executor: {kind: slurm, points_per_task: 1, max_parallel: 1, poll_interval_s: 0.3}\n",
    );
    let first = p.run(&["run", "--no-wait", "pipelines/p.yaml"]);
    assert_eq!(first.code, 0, "{}", first.all());
    assert_eq!(
        first.stderr.matches("submitted Slurm array").count(),
        1,
        "{}",
        first.stderr
    );
    let again = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(again.code, 0, "{}", again.all());
    assert!(
        !again.stderr.contains("submitted Slurm array"),
        "{}",
        again.stderr
    );
    let (computed, cached, failed, _) = again.points();
    assert_eq!((computed + cached, failed), (3, 0), "{}", again.all());
    if computed > 0 {
        assert!(
            again.stderr.contains("still being measured by array(s)"),
            "{}",
            again.stderr
        );
    }
    assert_eq!(p.cache_entries().len(), 3);
    // The record of the array in flight is gone with it (the run that saw its points land removed it).
    let records = std::fs::read_dir(p.path("cache/slurm/inflight")).map_or(0, Iterator::count);
    assert_eq!(records, 0);
}

/// A filesystem without `flock`, as Lustre mounted without it answers: `flock` fails with `ENOSYS` in every
/// process of the run (an `LD_PRELOAD` shim, compiled here).
fn no_flock(p: &Project) -> PathBuf {
    let src = p.path("noflock.c");
    std::fs::write(&src, "#include <errno.h>\nint flock(int fd, int op) { (void)fd; (void)op; errno = ENOSYS; return -1; }\n").unwrap();
    let lib = p.path("libnoflock.so");
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lib
}

#[test]
fn without_flock_two_runs_at_once_still_compute_each_point_once() {
    let p = project("b", "[16, 32, 48, 64]", "");
    let lib = no_flock(&p);
    let spawn = || {
        p.command(&["run", "pipelines/p.yaml"])
            .env("LD_PRELOAD", &lib)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (
        to_run(a.wait_with_output().unwrap()),
        to_run(b.wait_with_output().unwrap()),
    );
    assert_eq!((a.code, b.code), (0, 0), "{}\n{}", a.all(), b.all());
    assert_eq!(
        a.points().0 + b.points().0,
        4,
        "each point once:\n{}\n{}",
        a.all(),
        b.all()
    );
    assert!(
        format!("{}{}", a.stderr, b.stderr).contains("`flock` is not supported"),
        "{}\n{}",
        a.stderr,
        b.stderr
    );
    assert_eq!(p.cache_entries().len(), 4);
    // No lock file is left behind.
    let left: Vec<_> = std::fs::read_dir(p.path("cache/locks"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn points_are_planned_from_what_a_compute_node_says_not_the_login_node() {
    ensure_slurm();
    // The nodes differ from where `e3pipe run` starts: here every job runs with libtorch's CPU kernels capped at
    // AVX2 (`ATEN_CPU_CAPABILITY`), set by the site's `sbatch` (a stand-in in front of the real one), which the
    // submitting shell does not have.
    let executor = "executor: {kind: slurm, points_per_task: 2, poll_interval_s: 0.3}\n";
    let p = project("cl-probe", "[8, 16]", executor);
    let bin = stand_ins(
        &p,
        &[("sbatch", r#"ATEN_CPU_CAPABILITY=avx2 exec "$REAL" "$@""#)],
    );
    let run = |args: &[&str]| {
        let mut cmd = p.command(args);
        with_path(&mut cmd, &bin);
        to_run(cmd.output().unwrap())
    };
    let dry = run(&["run", "--dry-run", "pipelines/p.yaml"]);
    assert!(
        dry.stderr.contains("no compute node has been asked yet"),
        "{}",
        dry.all()
    );
    let r = run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.points(), (2, 0, 0, 0), "{}", r.all());
    assert_eq!(r.stderr.matches("a probe job").count(), 1, "{}", r.stderr);
    for entry in p.cache_entries() {
        let e: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(entry).unwrap()).unwrap();
        assert_eq!(e["key"]["hardware.aten_cpu_capability"], "avx2", "{e:#}");
    }
    // The answer is cached: a rerun and a dry run ask no node.
    let dry = run(&["run", "--dry-run", "pipelines/p.yaml"]);
    assert!(
        dry.stderr.contains("as a compute node said 0 min ago"),
        "{}",
        dry.all()
    );
    assert!(dry.stdout.contains("cached"), "{}", dry.all());
    let again = run(&["run", "pipelines/p.yaml"]);
    assert_eq!(again.points(), (0, 2, 0, 0), "{}", again.all());
    assert!(!again.stderr.contains("a probe job"), "{}", again.stderr);
    // Planned on the login node instead, the keys name hardware the nodes are not: the tasks refuse to measure.
    let here = project(
        "cl-here",
        "[8]",
        "executor: {kind: slurm, plan_on: here, poll_interval_s: 0.3}\n",
    );
    let mut cmd = here.command(&["run", "pipelines/p.yaml"]);
    with_path(&mut cmd, &bin);
    let r = to_run(cmd.output().unwrap());
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.all().contains("plan on a machine like the compute nodes"),
        "{}",
        r.all()
    );
}

#[test]
fn nodes_that_cannot_see_the_project_are_named_as_the_cause() {
    ensure_slurm();
    let p = project(
        "cl-unseen",
        "[8]",
        "executor: {kind: slurm, poll_interval_s: 0.3}\n",
    );
    // The node cannot read what the login side wrote: the probe's token is gone before the job runs.
    let bin = stand_ins(
        &p,
        &[(
            "sbatch",
            r#"for a in "$@"; do case "$a" in */token) rm -f "$a";; esac; done
exec "$REAL" "$@""#,
        )],
    );
    let mut cmd = p.command(&["run", "pipelines/p.yaml"]);
    with_path(&mut cmd, &bin);
    let started = Instant::now();
    let r = to_run(cmd.output().unwrap());
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("do not see this project's files"),
        "{}",
        r.stderr
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "a probe without an answer fails within seconds"
    );
    assert!(p.cache_entries().is_empty());
    assert_eq!(tasks_named("e3pipe-cl-unseen"), 0);
}

#[test]
fn a_cuda_step_gets_one_gpu_per_task_and_not_the_submitting_shells() {
    ensure_slurm();
    // The local cluster offers `gpu:h200:2` over dummy devices. A compute node's probe answer says `cuda:0` is an
    // H200 (what `e3pipe identify` prints on a real node; here a stand-in answers for it, since no GPU is behind
    // the devices). The tasks then find no GPU to measure on and fail cleanly, each saying which GPU it was given.
    let p = project(
        "cl-gpu",
        "[8, 16]",
        "executor: {kind: slurm, mem: 1G, cpus_per_task: 1, points_per_task: 1, max_parallel: 2, poll_interval_s: 0.3}\n",
    );
    p.write(
        "configs/model/bert.yaml",
        &format!("{}device: cuda\n", crate::project::BERT_TINY),
    );
    let here = p.run(&["identify", "--format", "json"]);
    let mut id: serde_json::Value = serde_json::from_str(&here.stdout).unwrap();
    let cpu = id["cpu"].clone();
    id["device"] = "cuda:0 (NVIDIA H200)".into();
    id["placement"] = serde_json::json!({"cuda": 0});
    id["key_device"] = "cuda (NVIDIA H200)".into();
    id["hardware"] = serde_json::json!({
        "kind": "cuda", "name": "NVIDIA H200", "memory_total": "143771 MiB", "compute_capability": "9.0",
        "driver": "580.159.04", "power_limit": "700.00 W",
        "host_cpu": {"model_name": cpu["model_name"], "family_model_stepping": cpu["family_model_stepping"]}
    });
    id["runtime"] = serde_json::json!({"cuda_runtime": "12.8", "cudnn": "9.10.2"});
    p.write("node-identity.json", &id.to_string());
    p.write(
        "fake-identify.sh",
        &format!(
            "#!/bin/sh\ncat '{}'\n",
            p.path("node-identity.json").display()
        ),
    );
    std::fs::set_permissions(
        p.path("fake-identify.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let bin = stand_ins(
        &p,
        &[(
            "sbatch",
            &format!(
                r#"case "$*" in *e3pipe-probe*) ;; *) exec "$REAL" "$@";; esac
n=0; for a in "$@"; do n=$((n + 1)); done
i=0; for a in "$@"; do i=$((i + 1)); if [ "$a" = "{exe}" ]; then set -- "$@" "{fake}"; else set -- "$@" "$a"; fi; done
shift $n
exec "$REAL" "$@""#,
                exe = env!("CARGO_BIN_EXE_e3pipe"),
                fake = p.path("fake-identify.sh").display()
            ),
        )],
    );
    let mut cmd = p.command(&["run", "pipelines/p.yaml"]);
    with_path(&mut cmd, &bin);
    // The submitting shell's own GPU choice must not reach the tasks.
    cmd.env("CUDA_VISIBLE_DEVICES", "7")
        .env_remove("E3PIPE_NO_CUDA");
    let r = to_run(cmd.output().unwrap());
    assert_eq!(r.code, 1, "{}", r.all());
    assert_eq!(r.points(), (0, 0, 2, 0), "{}", r.all());
    let submitted: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.trim_start().starts_with("sbatch "))
        .collect();
    assert!(!submitted.is_empty());
    for line in &submitted {
        assert!(
            line.contains(" --gres=gpu:1 ") && line.contains(" --mem=1G "),
            "{line}"
        );
    }
    // Each task was given one GPU by Slurm (0 or 1), never the shell's 7.
    let logs: Vec<String> = walk(&p.path("cache/slurm"))
        .into_iter()
        .filter(|f| {
            f.extension().is_some_and(|x| x == "err") && f.to_string_lossy().contains("array")
        })
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert_eq!(logs.len(), 2, "{logs:?}");
    let mut given: Vec<&str> = logs
        .iter()
        .map(|l| {
            l.split("CUDA_VISIBLE_DEVICES=")
                .nth(1)
                .and_then(|rest| rest.split(')').next())
                .unwrap_or_else(|| panic!("{l}"))
        })
        .collect();
    given.sort_unstable();
    assert!(given.iter().all(|g| *g == "0" || *g == "1"), "{given:?}");
    assert!(
        logs.iter().all(|l| l.contains("cannot identify `cuda:0`")),
        "{logs:?}"
    );
}
