#!/usr/bin/env python3
"""No-op rerun: e3pipe against DVC and Snakemake on the same 3-model pipeline with nothing to do.

  e3pipe     a temporary copy of the project's configs/ and pipelines/ (pipelines/quick.yaml: bench-gpt2, bench-t5,
             bench-bert -> aggregate -> plot), `.venv/minilm` linked to the repository's; `e3pipe run
             pipelines/quick.yaml` once to fill the cache, then the timed reruns (each must say `0 computed`).
  DVC        a temporary git + DVC repository with the same five stages (trivial commands writing small files,
             deps on the same config files, outs feeding the next stages); `dvc repro` once, then timed `dvc repro`.
  Snakemake  a Snakefile with the same five rules; `snakemake --cores 1` once, then timed `snakemake -n`.

Each no-op command runs once untimed (warm file cache), then `--reps` times; the wall clock of the whole subprocess
is measured and the median reported. Target: e3pipe / dvc and e3pipe / snakemake <= 1/30.

DVC and Snakemake come from `.venv-bench` (pins in scripts/requirements-bench.txt), created when missing:
  python3 scripts/bench_noop.py            # or .venv-bench/bin/python scripts/bench_noop.py
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = 1 / 30

# The quick pipeline's bench steps: (stage, model config, bench config).
BENCH_STAGES = [
    ("bench-gpt2", "configs/model/gpt2-small-quick.yaml", "configs/bench/quick_decoder.yaml"),
    ("bench-t5", "configs/model/t5-small-quick.yaml", "configs/bench/quick_seq2seq.yaml"),
    ("bench-bert", "configs/model/minilm.yaml", "configs/bench/quick_encoder.yaml"),
]


def default_e3pipe() -> Path:
    release = ROOT / "target" / "release" / "e3pipe"
    return release if release.exists() else ROOT / "target" / "debug" / "e3pipe"


def run(cmd, cwd, env=None, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"`{' '.join(map(str, cmd))}` failed with exit code {proc.returncode} in {cwd}")
    return proc


def ensure_tools(venv: Path) -> Path:
    """Returns the bin directory holding dvc and snakemake, creating `venv` when needed."""
    def has_tools(bindir: Path) -> bool:
        return (bindir / "dvc").exists() and (bindir / "snakemake").exists()

    if has_tools(venv / "bin"):
        return venv / "bin"
    here = Path(sys.executable).parent
    if sys.prefix != sys.base_prefix and has_tools(here):
        return here
    print(f"[setup] creating {venv} with dvc and snakemake (scripts/requirements-bench.txt)", flush=True)
    if not (venv / "bin" / "python").exists():
        run([sys.executable, "-m", "venv", str(venv)], cwd=ROOT)
    run([str(venv / "bin" / "pip"), "install", "-q", "-r", str(ROOT / "scripts" / "requirements-bench.txt")], cwd=ROOT)
    if not has_tools(venv / "bin"):
        raise SystemExit(f"dvc / snakemake missing from {venv}/bin after pip install")
    return venv / "bin"


def time_noop(cmd, cwd, reps, env=None, check_output=None) -> dict:
    """One untimed run, then `reps` timed ones; returns the samples (s) and their median."""
    samples = []
    for i in range(reps + 1):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - t0
        out = proc.stdout + proc.stderr
        if proc.returncode != 0:
            sys.stderr.write(out)
            raise SystemExit(f"`{' '.join(map(str, cmd))}` failed with exit code {proc.returncode}")
        if check_output is not None:
            check_output(out)
        if i > 0:
            samples.append(elapsed)
    return {"command": " ".join(map(str, cmd)), "samples_s": samples, "median_s": statistics.median(samples),
            "min_s": min(samples)}


def copy_configs(dst: Path):
    for rel in {p for _, m, b in BENCH_STAGES for p in (m, b)}:
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dst / rel)


# ---------------------------------------------------------------------------------------------------------------


def bench_e3pipe(e3pipe: Path, work: Path, reps: int) -> dict:
    proj = work / "e3pipe"
    proj.mkdir()
    shutil.copytree(ROOT / "configs", proj / "configs")
    shutil.copytree(ROOT / "pipelines", proj / "pipelines")
    minilm = ROOT / ".venv" / "minilm"
    if not minilm.exists():
        raise SystemExit(f"{minilm} is missing (make setup links it)")
    (proj / ".venv").mkdir()
    (proj / ".venv" / "minilm").symlink_to(minilm.resolve())
    cmd = [str(e3pipe), "run", "pipelines/quick.yaml"]
    print("[e3pipe] filling the cache: " + " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    first = run(cmd, cwd=proj)
    summary = [l for l in (first.stdout + first.stderr).splitlines() if l.startswith("points:")]
    print(f"[e3pipe] first run {time.perf_counter() - t0:.1f} s: {summary[-1] if summary else '?'}", flush=True)

    def check(out: str):
        line = [l for l in out.splitlines() if l.startswith("points:")]
        if not line or not line[-1].startswith("points: 0 computed"):
            raise SystemExit(f"e3pipe rerun was not a no-op:\n{out}")

    res = time_noop(cmd, proj, reps, check_output=check)
    res["summary"] = [l for l in run(cmd, cwd=proj).stdout.splitlines() + [""] if l.startswith("points:")][:1]
    return res


DVC_YAML = """stages:
{bench}
  aggregate:
    cmd: mkdir -p tables && cat out/gpt2.json out/t5.json out/bert.json > tables/summary.csv
    deps: [out/gpt2.json, out/t5.json, out/bert.json]
    outs: [tables/summary.csv]
  plot:
    cmd: mkdir -p figs && cat tables/summary.csv > figs/latency_curve.txt
    deps: [tables/summary.csv]
    outs: [figs/latency_curve.txt]
"""


def bench_dvc(bindir: Path, work: Path, reps: int) -> dict:
    repo = work / "dvc"
    repo.mkdir()
    env = dict(os.environ, DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@localhost",
               GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@localhost")
    env["PATH"] = f"{bindir}:{env.get('PATH', '')}"
    copy_configs(repo)
    bench = []
    for stage, model, bcfg in BENCH_STAGES:
        out = f"out/{stage.split('-')[1]}.json"
        bench.append(f"  {stage}:\n    cmd: mkdir -p out && echo {stage} > {out}\n"
                     f"    deps: [{model}, {bcfg}]\n    outs: [{out}]")
    (repo / "dvc.yaml").write_text(DVC_YAML.format(bench="\n".join(bench)))
    dvc = str(bindir / "dvc")
    run(["git", "init", "-q"], cwd=repo, env=env)
    run([dvc, "init", "-q"], cwd=repo, env=env)
    run([dvc, "config", "core.analytics", "false"], cwd=repo, env=env)
    run([dvc, "config", "core.autostage", "false"], cwd=repo, env=env)
    print("[dvc] first run: dvc repro", flush=True)
    run([dvc, "repro"], cwd=repo, env=env)
    run(["git", "add", "-A"], cwd=repo, env=env)
    run(["git", "commit", "-q", "-m", "pipeline"], cwd=repo, env=env)

    def check(out: str):
        if "up to date" not in out and "didn't change" not in out:
            raise SystemExit(f"dvc repro was not a no-op:\n{out}")
        if "Running stage" in out:
            raise SystemExit(f"dvc repro ran a stage:\n{out}")

    return time_noop([dvc, "repro"], repo, reps, env=env, check_output=check)


SNAKEFILE = """rule all:
    input: "figs/latency_curve.txt"

{bench}

rule aggregate:
    input: "out/gpt2.json", "out/t5.json", "out/bert.json"
    output: "tables/summary.csv"
    shell: "cat {{input}} > {{output}}"

rule plot:
    input: "tables/summary.csv"
    output: "figs/latency_curve.txt"
    shell: "cat {{input}} > {{output}}"
"""


def bench_snakemake(bindir: Path, work: Path, reps: int) -> dict:
    repo = work / "snakemake"
    repo.mkdir()
    env = dict(os.environ)
    env["PATH"] = f"{bindir}:{env.get('PATH', '')}"
    copy_configs(repo)
    bench = []
    for stage, model, bcfg in BENCH_STAGES:
        out = f"out/{stage.split('-')[1]}.json"
        bench.append(f'rule {stage.replace("-", "_")}:\n    input: "{model}", "{bcfg}"\n    output: "{out}"\n'
                     f'    shell: "echo {stage} > {{output}}"')
    (repo / "Snakefile").write_text(SNAKEFILE.format(bench="\n\n".join(bench)))
    sm = str(bindir / "snakemake")
    print("[snakemake] first run: snakemake --cores 1", flush=True)
    run([sm, "--cores", "1"], cwd=repo, env=env)

    def check(out: str):
        if "Nothing to be done" not in out:
            raise SystemExit(f"snakemake -n was not a no-op:\n{out}")

    return time_noop([sm, "-n"], repo, reps, env=env, check_output=check)


# ---------------------------------------------------------------------------------------------------------------


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--e3pipe", type=Path, default=None, help="binary (default target/release/e3pipe if present, "
                   "else target/debug/e3pipe)")
    p.add_argument("--reps", type=int, default=5, help="timed no-op runs per tool (after one untimed)")
    p.add_argument("--venv", type=Path, default=ROOT / ".venv-bench", help="where dvc and snakemake live")
    p.add_argument("--out", type=Path, default=ROOT / "results" / "bench_noop.json")
    args = p.parse_args()
    if args.reps < 1:
        p.error("--reps must be >= 1")
    e3pipe = (args.e3pipe or default_e3pipe()).resolve()
    if not e3pipe.exists():
        p.error(f"no e3pipe binary at {e3pipe} (cargo build first)")
    bindir = ensure_tools(args.venv.resolve())
    versions = {
        "dvc": run([str(bindir / "dvc"), "--version"], cwd=ROOT).stdout.strip(),
        "snakemake": run([str(bindir / "snakemake"), "--version"], cwd=ROOT).stdout.strip(),
    }

    with tempfile.TemporaryDirectory(prefix="e3pipe-noop-") as tmp:
        work = Path(tmp)
        e3 = bench_e3pipe(e3pipe, work, args.reps)
        dvc = bench_dvc(bindir, work, args.reps)
        sm = bench_snakemake(bindir, work, args.reps)

    tools = {"e3pipe": e3, "dvc": dvc, "snakemake": sm}
    ratios = {
        "e3pipe/dvc": e3["median_s"] / dvc["median_s"],
        "e3pipe/snakemake": e3["median_s"] / sm["median_s"],
    }
    print()
    print(f"{'tool':<10} {'no-op command':<34} {'median s':>9} {'min s':>8}")
    print("-" * 64)
    for name, r in tools.items():
        cmd = r["command"].replace(str(e3pipe), "e3pipe").replace(str(bindir) + "/", "")
        print(f"{name:<10} {cmd:<34} {r['median_s']:>9.4f} {r['min_s']:>8.4f}")
    print()
    print(f"{'ratio':<18} {'value':>8} {'target':>9}  result")
    for k, v in ratios.items():
        print(f"{k:<18} {v:>8.4f} {'<= 1/30':>9}  {'PASS' if v <= TARGET else 'MISS'}  (1/{1 / v:.0f})")

    report = {
        "settings": {"reps": args.reps, "e3pipe": str(e3pipe), "pipeline": "pipelines/quick.yaml",
                     "cpu_count": os.cpu_count(), **versions},
        "tools": tools,
        "ratios": {k: {"value": v, "target": TARGET, "pass": v <= TARGET} for k, v in ratios.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
