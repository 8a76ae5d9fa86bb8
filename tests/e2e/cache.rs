//! The point cache: only new points run, stale points say why, corruption and kill -9 lose nothing, concurrent
//! runs never compute a point twice.

use std::time::{Duration, Instant};

use crate::project::{Project, bench_yaml, to_run};

fn gpt2_only(p: &Project, lengths: &str, num_tokens: usize) {
    p.write("pipelines/p.yaml", "steps:\n  - name: bench-gpt2\n    kind: bench\n    model: configs/model/gpt2.yaml\n    bench: configs/bench/decoder.yaml\n  - name: bench-bert\n    kind: bench\n    model: configs/model/bert.yaml\n    bench: configs/bench/encoder.yaml\n");
    p.write(
        "configs/bench/decoder.yaml",
        &bench_yaml("decoder", lengths, num_tokens, 1),
    );
    p.write(
        "configs/bench/encoder.yaml",
        &bench_yaml("encoder", "[8, 16]", 0, 1),
    );
}

#[test]
fn edits_recompute_only_what_changed() {
    let p = Project::new();
    gpt2_only(&p, "[8, 16]", 2);
    assert_eq!(p.run(&["run", "pipelines/p.yaml"]).points(), (4, 0, 0, 0));
    // Nothing changed: nothing runs, no new results file.
    let results_before = std::fs::read_dir(p.path("results")).unwrap().count();
    assert_eq!(p.run(&["run", "pipelines/p.yaml"]).points(), (0, 4, 0, 0));
    assert_eq!(
        std::fs::read_dir(p.path("results")).unwrap().count(),
        results_before
    );
    // Adding a length computes that point, and measures the curve's shortest cached point again as its anchor (a
    // check for drift between the runs); comments and key order do not matter.
    p.write("configs/bench/decoder.yaml", "# reordered, with a comment\nthreads: 1\nwarmup_runs: 1\nnum_runs: 1\nbatch_size: 1\nnum_tokens: 2\ncontext_lengths: [16, 24, 8]\narch: decoder\nname: renamed\n");
    let dry = p.run(&["run", "pipelines/p.yaml", "--dry-run"]).stdout;
    assert!(dry.contains("      24 tokens  new  ["), "{dry}");
    assert!(
        dry.contains("       8 tokens  anchor (cached; re-measured"),
        "{dry}"
    );
    assert_eq!(dry.matches("  cached  [").count(), 3, "{dry}");
    assert_eq!(p.run(&["run", "pipelines/p.yaml"]).points(), (2, 3, 0, 0));
    // `anchor: false`: exactly the new point.
    p.write("configs/bench/decoder.yaml", "threads: 1\nwarmup_runs: 1\nnum_runs: 1\nbatch_size: 1\nnum_tokens: 2\ncontext_lengths: [16, 24, 8, 32]\narch: decoder\nname: renamed\nanchor: false\n");
    assert_eq!(p.run(&["run", "pipelines/p.yaml"]).points(), (1, 5, 0, 0));
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.points(), (0, 6, 0, 0), "{}", r.all());
    // Removing lengths computes nothing.
    gpt2_only(&p, "[8, 24]", 2);
    assert_eq!(p.run(&["run", "pipelines/p.yaml"]).points(), (0, 4, 0, 0));
    // Changing num_tokens makes that step's points stale and says why; the other step stays cached.
    gpt2_only(&p, "[8, 24]", 3);
    let dry = p.run(&["run", "pipelines/p.yaml", "--dry-run"]).stdout;
    assert!(
        dry.contains("       8 tokens  stale (num_tokens: 2 -> 3)  ["),
        "{dry}"
    );
    assert_eq!(p.run(&["run", "pipelines/p.yaml"]).points(), (2, 2, 0, 0));
    // --force STEP and --force.
    assert_eq!(
        p.run(&["run", "pipelines/p.yaml", "--force", "bench-bert"])
            .points(),
        (2, 2, 0, 0)
    );
    assert_eq!(
        p.run(&["run", "pipelines/p.yaml", "--force"]).points(),
        (4, 0, 0, 0)
    );
    let r = p.run(&["run", "pipelines/p.yaml", "--force", "bench-brt"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("did you mean `bench-bert`?"));
}

#[test]
fn corrupted_entry_is_reported_and_recomputed() {
    let p = Project::new();
    gpt2_only(&p, "[8, 16]", 2);
    assert_eq!(p.run(&["run", "pipelines/p.yaml"]).points(), (4, 0, 0, 0));
    let entry = p.cache_entries().into_iter().next().unwrap();
    let text = std::fs::read(&entry).unwrap();
    std::fs::write(&entry, &text[..text.len() / 2]).unwrap();
    let dry = p.run(&["run", "pipelines/p.yaml", "--dry-run"]).stdout;
    assert!(dry.contains("corrupt (not a valid cache entry"), "{dry}");
    let r = p.run(&["run", "pipelines/p.yaml"]);
    // The damaged point, and its curve's other point as the anchor.
    assert_eq!(r.points(), (2, 2, 0, 0));
    assert!(r.stderr.contains("is corrupt"), "{}", r.stderr);
    assert_eq!(p.run(&["run", "pipelines/p.yaml"]).points(), (0, 4, 0, 0));
}

fn wait_for_entries(p: &Project, n: usize, limit: Duration) {
    let start = Instant::now();
    while p.cache_entries().len() < n {
        assert!(start.elapsed() < limit, "no cache entries after {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn slow_pipeline(p: &Project) {
    // Six points of about half a second each.
    p.write("pipelines/p.yaml", "steps:\n  - name: bench-gpt2\n    kind: bench\n    model: configs/model/gpt2.yaml\n    bench: configs/bench/decoder.yaml\n");
    p.write("configs/bench/decoder.yaml", "name: slow\narch: decoder\ncontext_lengths: [8, 16, 24, 32, 40, 48]\nnum_tokens: 2\nnum_runs: 1\nwarmup_runs: 0\nmin_duration_s: 0.5\nthreads: 1\n");
}

/// The same, measuring exactly the missing points (no anchor): for the tests of two runs at once, where the later
/// run would otherwise re-measure a point the first just finished.
fn slow_pipeline_without_anchor(p: &Project) {
    slow_pipeline(p);
    let config = p.read("configs/bench/decoder.yaml");
    p.write(
        "configs/bench/decoder.yaml",
        &format!("{config}anchor: false\n"),
    );
}

#[test]
fn kill_9_loses_nothing_and_the_next_run_resumes() {
    let p = Project::new();
    slow_pipeline(&p);
    let mut child = p
        .command(&["run", "pipelines/p.yaml"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_entries(&p, 2, Duration::from_mins(1));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let done = p.cache_entries().len();
    assert!((2..6).contains(&done), "{done} entries");
    // Every entry on disk is whole.
    for entry in p.cache_entries() {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&entry).unwrap()).unwrap();
        assert_eq!(v["result"]["status"], "ok");
    }
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let (computed, cached, _, _) = r.points();
    // Every finished point is kept; one of them (the shortest: the order was shuffled) is measured again as the
    // curve's anchor.
    assert_eq!(cached, done - 1);
    assert_eq!(computed + cached, 6);
    assert!(r.all().contains("anchor gpt2-tiny@"), "{}", r.all());
}

#[test]
fn ctrl_c_stops_after_the_current_run_and_keeps_finished_points() {
    use std::os::unix::process::CommandExt;
    let p = Project::new();
    slow_pipeline(&p);
    // As a terminal does: SIGINT to the whole foreground process group.
    let child = p
        .command(&["run", "pipelines/p.yaml"])
        .process_group(0)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_entries(&p, 1, Duration::from_mins(1));
    // SAFETY: signalling the process group of our own child.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGINT) };
    let r = to_run(child.wait_with_output().unwrap());
    assert_eq!(r.code, 130, "{}", r.all());
    assert!(
        r.stderr
            .contains("interrupted: finished points are cached; run again to resume"),
        "{}",
        r.stderr
    );
    let done = p.cache_entries().len();
    assert!((1..6).contains(&done), "{done} entries");
    // The worker stopped on its own (an abrupt exit would leave its lock file behind).
    assert_eq!(
        std::fs::read_dir(p.path("cache/locks")).unwrap().count(),
        0,
        "no lock left behind"
    );
    // The rest, and one finished point again as the curve's anchor.
    assert_eq!(
        p.run(&["run", "pipelines/p.yaml"]).points(),
        (6 - done + 1, done - 1, 0, 0)
    );
}

#[test]
fn concurrent_runs_never_compute_a_point_twice() {
    let p = Project::new();
    slow_pipeline(&p);
    let a = p.spawn(&["run", "pipelines/p.yaml"]);
    let b = p.spawn(&["run", "pipelines/p.yaml"]);
    let (ra, rb) = (
        to_run(a.wait_with_output().unwrap()),
        to_run(b.wait_with_output().unwrap()),
    );
    assert_eq!((ra.code, rb.code), (0, 0), "{}\n{}", ra.all(), rb.all());
    let (ca, _, _, _) = ra.points();
    let (cb, _, _, _) = rb.points();
    assert_eq!(
        ca + cb,
        6,
        "each point computed once across both runs:\n{}\n{}",
        ra.stdout,
        rb.stdout
    );
    assert_eq!(ra.points().0 + ra.points().1, 6);
    assert_eq!(rb.points().0 + rb.points().1, 6);
    assert_eq!(p.cache_entries().len(), 6);
    assert!(
        !p.path("cache/locks").read_dir().unwrap().any(|_| true),
        "locks are released"
    );
}

#[test]
fn a_run_started_later_takes_what_the_first_has_finished() {
    let p = Project::new();
    slow_pipeline_without_anchor(&p);
    let a = p.spawn(&["run", "pipelines/p.yaml"]);
    wait_for_entries(&p, 1, Duration::from_mins(1));
    let b = p.spawn(&["run", "pipelines/p.yaml"]);
    let (ra, rb) = (
        to_run(a.wait_with_output().unwrap()),
        to_run(b.wait_with_output().unwrap()),
    );
    assert_eq!((ra.code, rb.code), (0, 0), "{}\n{}", ra.all(), rb.all());
    assert_eq!(
        ra.points().0 + rb.points().0,
        6,
        "each point computed once:\n{}\n{}",
        ra.stdout,
        rb.stdout
    );
    assert!(rb.points().1 >= 1);
}

#[test]
fn dead_owners_lock_is_taken_over() {
    let p = Project::new();
    gpt2_only(&p, "[8]", 2);
    let plan = p.run(&["run", "pipelines/p.yaml", "--dry-run"]).stdout;
    let hash_prefix = plan
        .lines()
        .find(|l| l.contains("8 tokens"))
        .unwrap()
        .rsplit('[')
        .next()
        .unwrap()
        .trim_end_matches(']')
        .to_string();
    // A full hash is needed for the lock name: compute the run once to learn it, then plant a dead lock.
    assert_eq!(p.run(&["run", "pipelines/p.yaml"]).points().0, 3);
    let entry = p
        .cache_entries()
        .into_iter()
        .find(|e| {
            e.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&hash_prefix)
        })
        .unwrap();
    let hash = entry.file_stem().unwrap().to_string_lossy().into_owned();
    std::fs::remove_file(&entry).unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    p.write(
        &format!("cache/locks/{hash}.lock"),
        &format!("{{\"pid\":4000000000,\"host\":\"{host}\",\"started_at\":\"then\"}}"),
    );
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.points(), (1, 2, 0, 0), "{}", r.all());
    assert!(
        r.stderr.contains("from dead process 4000000000"),
        "{}",
        r.stderr
    );
}

#[test]
fn cache_command_lists_and_prunes() {
    let p = Project::new();
    gpt2_only(&p, "[8, 16]", 2);
    assert_eq!(p.run(&["run", "pipelines/p.yaml"]).points().0, 4);
    let r = p.run(&["cache", "pipelines/p.yaml"]);
    assert!(
        r.stdout.contains("cache/: 4 entries, ") && r.stdout.contains("  gpt2-tiny: 2 point(s), "),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(" KiB\n"),
        "sizes in binary units: {}",
        r.stdout
    );
    // The project folder is what `cache` takes (a pipeline file still names its project).
    assert_eq!(p.run(&["cache"]).stdout, r.stdout);
    gpt2_only(&p, "[8]", 2);
    // A dry run names what would go and removes nothing.
    let r = p.run(&["cache", "--prune", "--dry-run"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout.contains("  would remove point gpt2-tiny@16×b1 (")
            && r.stdout
                .contains("would prune 1 file(s) no pipeline needs (dry run: nothing removed)"),
        "{}",
        r.stdout
    );
    assert_eq!(p.cache_entries().len(), 4);
    let r = p.run(&["cache", ".", "--prune"]);
    assert!(
        r.stdout.contains("  removed point gpt2-tiny@16×b1 (")
            && r.stdout.contains("pruned 1 file(s) no pipeline needs"),
        "{}",
        r.stdout
    );
    assert_eq!(p.cache_entries().len(), 3);
    // The results of a model no pipeline measures go too; the original tool's files never do.
    p.write(
        "latest/inference/seed.json",
        r#"{"exp_id": "x", "metrics": {"8": {"latency_ms": 1.0}}}"#,
    );
    let gone = p
        .results("gpt2-tiny")
        .to_string()
        .replace("gpt2-tiny", "renamed-model");
    p.write("latest/inference/renamed-model.json", &gone);
    let r = p.run(&["cache", "--prune"]);
    assert!(
        r.stdout
            .contains("removed results of `renamed-model`, which no pipeline measures"),
        "{}",
        r.stdout
    );
    assert!(!p.path("latest/inference/renamed-model.json").exists());
    assert!(
        p.path("latest/inference/seed.json").exists()
            && p.path("latest/inference/gpt2-tiny.json").exists()
    );
    // `--dry-run` alone is refused by the parser.
    assert_eq!(p.run(&["cache", "--dry-run"]).code, 2);
    assert_eq!(p.run(&["run", "pipelines/p.yaml"]).points(), (0, 3, 0, 0));
}

#[test]
fn prune_keeps_points_measured_on_other_machines() {
    let p = Project::new();
    gpt2_only(&p, "[8, 16]", 2);
    assert_eq!(p.run(&["run", "pipelines/p.yaml"]).points().0, 4);
    // The same point as measured on a GPU box with other threads: a different key, still wanted by the pipeline.
    let entry = p.cache_entries().into_iter().next().unwrap();
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&entry).unwrap()).unwrap();
    doc["key"]["device"] = "cuda:0 (NVIDIA H200)".into();
    doc["key"]["threads"] = 16.into();
    let fake = "f".repeat(64);
    doc["hash"] = fake.clone().into();
    p.write(&format!("cache/points/{fake}.json"), &doc.to_string());
    // And one no pipeline wants any more.
    doc["key"]["num_tokens"] = 999.into();
    let gone = "e".repeat(64);
    p.write(&format!("cache/points/{gone}.json"), &doc.to_string());
    let r = p.run(&["cache", "pipelines/p.yaml", "--prune"]);
    assert!(
        r.stdout.contains("pruned 1 file(s) no pipeline needs"),
        "{}",
        r.stdout
    );
    assert!(p.path(&format!("cache/points/{fake}.json")).exists());
    assert!(!p.path(&format!("cache/points/{gone}.json")).exists());
}

#[test]
fn prune_checks_everything_before_it_removes_anything() {
    // A stale peaks file and a broken sibling pipeline: the prune is refused (exit 2) and the peaks file is still
    // there (it used to be deleted first, then the prune refused).
    let p = Project::new();
    gpt2_only(&p, "[8]", 2);
    assert_eq!(p.run(&["run", "pipelines/p.yaml"]).code, 0);
    let peaks: Vec<_> = std::fs::read_dir(p.path("cache/peaks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!peaks.is_empty());
    let stale = peaks[0].with_file_name("stale.json");
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&peaks[0]).unwrap()).unwrap();
    doc["key"]["method"] = "0".repeat(64).into();
    std::fs::write(&stale, doc.to_string()).unwrap();
    let listed = p.run(&["cache", "pipelines/p.yaml"]);
    assert!(
        listed.stdout.contains("from other measuring code"),
        "{}",
        listed.stdout
    );
    p.write("pipelines/broken.yaml", "steps: [");
    let r = p.run(&["cache", "pipelines/p.yaml", "--prune"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("not pruning: pipeline"), "{}", r.stderr);
    assert!(stale.exists(), "removed before the refusal");
    std::fs::remove_file(p.path("pipelines/broken.yaml")).unwrap();
    assert_eq!(p.run(&["cache", "pipelines/p.yaml", "--prune"]).code, 0);
}
