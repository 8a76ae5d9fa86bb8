#!/usr/bin/env python3
"""How often `e3pipe compare` raises a false alarm: A/A comparisons of repeated, identical runs of the quick
pipeline on this machine (nothing changed between them, so every `slower` or `faster` is a false alarm).

The quick pipeline's bench steps run `--repeats` times in a temporary copy of the project (configs, pipelines and a
link to assets), each with `--force` so every point is measured again, with `num_runs` set to `--runs` in every
bench config. Each consecutive pair is compared at the default threshold and alpha, alone and with the run before
the pair as the baseline's repeat (`--noise-from`), and with the three runs before it as three repeats; the script
reports per pair the rows called slower/faster, and overall the share of pairs with any alarm, of rows with one, and
of pairs that exit 1 ("slower").

  python3 scripts/compare_aa.py [--repeats 6] [--runs 12] [--threshold 0.03]

Writes results/compare_aa.json.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=6)
    ap.add_argument("--runs", type=int, default=12)
    ap.add_argument("--threshold", type=float, default=0.03)
    ap.add_argument("--e3pipe", type=Path, default=ROOT / "target" / "debug" / "e3pipe")
    args = ap.parse_args()
    steps = "bench-gpt2,bench-t5,bench-bert"
    pairs = []
    with tempfile.TemporaryDirectory(prefix="e3pipe-aa-") as tmp:
        proj = Path(tmp) / "project"
        proj.mkdir()
        shutil.copytree(ROOT / "configs", proj / "configs")
        shutil.copytree(ROOT / "pipelines", proj / "pipelines")
        (proj / "assets").symlink_to(ROOT / "assets")
        (proj / ".venv").symlink_to(ROOT / ".venv")  # the trained MiniLM the setup installed
        for cfg in (proj / "configs" / "bench").glob("*.yaml"):
            text = re.sub(r"(?m)^num_runs:.*$", f"num_runs: {args.runs}", cfg.read_text())
            cfg.write_text(text)
        sides = []
        for i in range(args.repeats):
            subprocess.run([str(args.e3pipe), "-q", "run", "pipelines/quick.yaml", "--only", steps, "--force", steps],
                           cwd=proj, check=True)
            side = Path(tmp) / f"run{i}"
            shutil.copytree(proj / "latest", side / "latest")
            sides.append(side)
        for i, (a, b) in enumerate(zip(sides, sides[1:])):
            entry = {"pair": f"{a.name}/{b.name}"}
            # `fixed`: no repeat; `noise`: the run before the baseline as its repeat (`--noise-from`); `noise3`: the
            # three runs before it.
            modes = [("fixed", [])] + ([("noise", ["--noise-from", str(sides[i - 1])])] if i > 0 else [])
            if i >= 3:
                modes.append(("noise3", [x for r in sides[i - 3:i] for x in ("--noise-from", str(r))]))
            for mode, extra in modes:
                out = subprocess.run([str(args.e3pipe), "compare", str(a), str(b), "--format", "json",
                                      "--threshold", str(args.threshold), *extra], capture_output=True, text=True)
                if out.returncode not in (0, 1, 3):
                    print(out.stderr, file=sys.stderr)
                    return 2
                report = json.loads(out.stdout)
                alarms = [f"{r['model']}@{r['context_length']} {r['metric']} {r['verdict']} (ratio {r['ratio']:.3f})"
                          for r in report["rows"] if r["verdict"] in ("slower", "faster")]
                entry[f"exit_{mode}"] = out.returncode
                ratios = sorted(r["ratio"] for r in report["rows"] if r["ratio"])
                entry.update({"rows": len(report["rows"]), "ratio_min": ratios[0], "ratio_max": ratios[-1],
                              f"alarms_{mode}": alarms, f"noise_band_{mode}": report["noise_band"]})
            pairs.append(entry)
            noise = (f"; with --noise-from {sides[i - 1].name}: band ±{entry['noise_band_noise'] * 100:.1f} %, "
                     f"{len(entry['alarms_noise'])} rows called a change" if i > 0 else "")
            noise += (f"; with 3 repeats: band ±{entry['noise_band_noise3'] * 100:.1f} %, "
                      f"{len(entry['alarms_noise3'])} rows called a change" if i >= 3 else "")
            print(f"{a.name} vs {b.name}: ratios {entry['ratio_min']:.3f}..{entry['ratio_max']:.3f}; at "
                  f"±{args.threshold * 100:.0f} %: {len(entry['alarms_fixed'])} of {entry['rows']} rows called a change"
                  + noise + "".join(f"\n  {x}" for x in entry.get("alarms_noise", [])))
    rows = sum(p["rows"] for p in pairs)
    summary = {"repeats": args.repeats, "runs_per_point": args.runs, "threshold": args.threshold,
               "pairs": len(pairs), "rows": rows, "detail": pairs}
    for mode in ("noise", "noise3", "fixed"):
        with_mode = [p for p in pairs if f"alarms_{mode}" in p]
        summary[f"pairs_{mode}"] = len(with_mode)
        summary[f"rows_{mode}"] = sum(p["rows"] for p in with_mode)
        summary[f"pairs_with_a_false_alarm_{mode}"] = sum(1 for p in with_mode if p[f"alarms_{mode}"])
        summary[f"rows_with_a_false_alarm_{mode}"] = sum(len(p[f"alarms_{mode}"]) for p in with_mode)
        summary[f"pairs_exit_slower_{mode}"] = sum(1 for p in with_mode if p[f"exit_{mode}"] == 1)
    print(f"false alarms at ±{args.threshold * 100:.0f} % alone: {summary['pairs_with_a_false_alarm_fixed']} of "
          f"{summary['pairs_fixed']} A/A comparisons, {summary['rows_with_a_false_alarm_fixed']} of "
          f"{summary['rows_fixed']} rows; with --noise-from a repeat: {summary['pairs_with_a_false_alarm_noise']} of "
          f"{summary['pairs_noise']}, {summary['rows_with_a_false_alarm_noise']} of {summary['rows_noise']} rows; "
          f"with 3 repeats: {summary['pairs_with_a_false_alarm_noise3']} of {summary['pairs_noise3']}, "
          f"{summary['rows_with_a_false_alarm_noise3']} of {summary['rows_noise3']} rows (num_runs {args.runs}); "
          f"exit 1 (slower): {summary['pairs_exit_slower_fixed']} / {summary['pairs_exit_slower_noise']} / "
          f"{summary['pairs_exit_slower_noise3']}")
    out = ROOT / "results" / "compare_aa.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
