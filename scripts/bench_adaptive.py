#!/usr/bin/env python3
"""What an honest 95 % interval costs: `pipelines/scaling.yaml` with its fixed `num_runs: 3` against the same
pipeline with `target_rel_ci` (stop when the headline median's >= 95 % interval is within ±target), both in one
invocation on the same machine state.

Each variant runs in its own temporary copy of configs/ and pipelines/ with an empty cache, one after the other.
For each it reports the wall time of `e3pipe run` and per point: runs measured, why measuring stopped, the
interval's level and its half-width relative to the median. With 3 runs the level is 75 %; the adaptive variant
needs at least 6 runs to reach 95 % at all.

  python3 scripts/bench_adaptive.py [--target 0.02] [--max-runs 40] [--max-duration-s 120] [--pipeline ...]

Writes results/bench_adaptive.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_variant(args, adaptive: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="e3pipe-adaptive-") as tmp:
        proj = Path(tmp)
        shutil.copytree(ROOT / "configs", proj / "configs")
        shutil.copytree(ROOT / "pipelines", proj / "pipelines")
        if adaptive:
            for cfg in (proj / "configs" / "bench").glob("*.yaml"):
                text = cfg.read_text()
                cfg.write_text(text.rstrip("\n") + f"\ntarget_rel_ci: {args.target}\nmax_runs: {args.max_runs}\n"
                               f"max_duration_s: {args.max_duration_s}\n")
        cmd = [str(args.e3pipe), "run", f"pipelines/{args.pipeline}", "--only",
               ",".join(args.steps)]
        label = f"target_rel_ci {args.target}" if adaptive else "fixed num_runs"
        print(f"[{label}] {' '.join(cmd)}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=proj, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        print(f"[{label}] exit {proc.returncode} after {wall:.1f} s", flush=True)
        if proc.returncode not in (0, 1):
            sys.stderr.write(proc.stdout + proc.stderr)
            raise SystemExit(f"e3pipe failed ({proc.returncode})")
        points = []
        for doc_path in sorted((proj / "latest" / "inference").glob("*.json")):
            doc = json.loads(doc_path.read_text())
            for length, m in sorted(doc["metrics"].items(), key=lambda kv: int(kv[0])):
                p = m["point"]
                if p["status"] != "ok":
                    continue
                headline = "forward_pass_latency_ms" if p["arch"] == "encoder" else "ttft_ms"
                s = p["stats"][headline]
                half = max(s["median"] - s["ci_low"], s["ci_high"] - s["median"]) / s["median"]
                points.append({"model": p["model"], "length": int(length), "metric": headline, "n": s["n"],
                               "stopped_by": p.get("stopped_by"), "ci_level": s["ci_level"],
                               "rel_half_width": half, "median_ms": s["median"], "wall_s": p["wall_s"]})
        return {"variant": label, "wall_s": wall, "points": points}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--e3pipe", type=Path, default=ROOT / "target" / "debug" / "e3pipe")
    p.add_argument("--pipeline", default="scaling.yaml")
    p.add_argument("--steps", default="bench-gpt2,bench-t5,bench-bert")
    p.add_argument("--target", type=float, default=0.02)
    p.add_argument("--max-runs", type=int, default=40)
    p.add_argument("--max-duration-s", type=float, default=120)
    p.add_argument("--out", type=Path, default=ROOT / "results" / "bench_adaptive.json")
    args = p.parse_args()
    args.steps = [s for s in args.steps.split(",") if s]
    if not args.e3pipe.exists():
        p.error(f"no e3pipe binary at {args.e3pipe} (make build first)")
    variants = [run_variant(args, adaptive=False), run_variant(args, adaptive=True)]
    print()
    for v in variants:
        print(f"{v['variant']}: {v['wall_s']:.0f} s")
        print(f"  {'model':<12} {'length':>6} {'n':>4} {'stopped_by':<15} {'level':>7} {'±rel':>7} {'median ms':>10}")
        for pt in v["points"]:
            print(f"  {pt['model']:<12} {pt['length']:>6} {pt['n']:>4} {pt['stopped_by'] or '':<15} "
                  f"{pt['ci_level']:>7.4f} {pt['rel_half_width'] * 100:>6.1f}% {pt['median_ms']:>10.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"settings": {k: str(v) for k, v in vars(args).items()},
                                    "variants": variants}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
