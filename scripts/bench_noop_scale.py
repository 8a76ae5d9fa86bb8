#!/usr/bin/env python3
"""No-op cost against sweep size: how long `e3pipe run` takes when every point is already cached, at 100, 1,000
and 10,000 points (ninja's no-op is the anchor: it should not grow with the work already done).

Each size is a temporary project of tiny BERT stand-ins (real architecture, 2 layers, 64 wide): `models` bench
steps of `lengths` context lengths each (1..lengths), 1 run, no warm-up, then aggregate and plot. The project is
run once to fill the cache (not timed), then `e3pipe run` is timed `--reps` times (after one untimed warm rerun);
every timed run must report `0 computed` and write no file. Medians are reported.

  python3 scripts/bench_noop_scale.py [--sizes 100 1000 10000] [--reps 10]

Writes results/bench_noop_scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHAPES = {100: (1, 100), 1000: (1, 1000), 10000: (10, 1000)}

BERT = """name: {name}
arch: encoder
weights: random
seed: 1
config:
  model_type: bert
  vocab_size: 30522
  hidden_size: 64
  num_hidden_layers: 2
  num_attention_heads: 2
  intermediate_size: 128
  max_position_embeddings: 1024
"""


def snapshot(root: Path) -> dict:
    """Every file's (size, mtime) under the project's outputs, to prove a no-op writes nothing."""
    out = {}
    for d in ("cache", "results", "latest", "tables", "figs"):
        for p in (root / d).rglob("*"):
            if p.is_file() and "locks" not in p.parts:
                st = p.stat()
                out[str(p)] = (st.st_size, st.st_mtime_ns)
    return out


def run_size(args, points: int) -> dict:
    models, lengths = SHAPES[points]
    with tempfile.TemporaryDirectory(prefix="e3pipe-noop-") as tmp:
        root = Path(tmp)
        (root / "configs" / "model").mkdir(parents=True)
        (root / "configs" / "bench").mkdir(parents=True)
        (root / "pipelines").mkdir()
        (root / "configs" / "bench" / "b.yaml").write_text(
            f"name: b\narch: encoder\ncontext_lengths: [{', '.join(str(l) for l in range(1, lengths + 1))}]\n"
            "num_runs: 1\nwarmup_runs: 0\nthreads: 1\n")
        steps = []
        for m in range(models):
            (root / "configs" / "model" / f"m{m}.yaml").write_text(BERT.format(name=f"bert-{m}"))
            steps.append(f"  - name: bench-{m}\n    kind: bench\n    model: configs/model/m{m}.yaml\n"
                         "    bench: configs/bench/b.yaml\n")
        needs = ", ".join(f"bench-{m}" for m in range(models))
        steps.append(f"  - name: aggregate\n    kind: aggregate\n    needs: [{needs}]\n")
        steps.append("  - name: plot\n    kind: plot\n    needs: [aggregate]\n")
        (root / "pipelines" / "p.yaml").write_text("steps:\n" + "".join(steps))
        cmd = [str(args.e3pipe), "run", "pipelines/p.yaml", "-q"]
        env = dict(os.environ, E3PIPE_NO_CUDA="1")
        t0 = time.perf_counter()
        first = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env=env)
        fill_s = time.perf_counter() - t0
        if first.returncode != 0:
            raise SystemExit(f"filling {points} points failed:\n{first.stdout}{first.stderr}")
        subprocess.run(cmd, cwd=root, capture_output=True, env=env)  # warm rerun, untimed
        before = snapshot(root)
        times = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            r = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env=env)
            times.append(time.perf_counter() - t0)
            if f"points: 0 computed, {points} cached" not in r.stdout:
                raise SystemExit(f"not a no-op at {points} points:\n{r.stdout}{r.stderr}")
        after = snapshot(root)
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        dry = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            subprocess.run(cmd + ["--dry-run"], cwd=root, capture_output=True, env=env)
            dry.append(time.perf_counter() - t0)
        res = {"points": points, "models": models, "lengths": lengths, "fill_s": fill_s,
               "noop_median_s": statistics.median(times), "noop_min_s": min(times),
               "dry_run_median_s": statistics.median(dry), "files_written_by_noop": changed}
        print(f"{points:>6} points: no-op {res['noop_median_s'] * 1e3:7.1f} ms (min {res['noop_min_s'] * 1e3:.1f}), "
              f"--dry-run {res['dry_run_median_s'] * 1e3:7.1f} ms, files written: {len(changed)} "
              f"(fill {fill_s:.0f} s)", flush=True)
        return res


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--e3pipe", type=Path, default=ROOT / "target" / "debug" / "e3pipe")
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--out", type=Path, default=ROOT / "results" / "bench_noop_scale.json")
    args = p.parse_args()
    for s in args.sizes:
        if s not in SHAPES:
            p.error(f"--sizes: choose from {sorted(SHAPES)}")
    rows = [run_size(args, s) for s in args.sizes]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"e3pipe": str(args.e3pipe), "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
