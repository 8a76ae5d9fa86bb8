#!/usr/bin/env python3
"""Writes 15 results files in the original Python tool's scaling layout (synthetic numbers: latency growing as a
power of the length, ±5 % std, 10 runs, energy), to see how aggregate and plot cope with many models:

  python3 scripts/make_seed_files.py DIR && cd DIR && e3pipe run pipelines/report.yaml

DIR gets latest/inference/<model>.json and pipelines/report.yaml (aggregate + plot). The figure in
docs/latency_curve_15_models.png was drawn this way.
"""

import json
import sys
from pathlib import Path

MODELS = [("gpt2", "decoder"), ("gpt2-medium", "decoder"), ("gpt2-large", "decoder"), ("distilgpt2", "decoder"),
          ("opt-125m", "decoder"), ("pythia-160m", "decoder"), ("t5-small", "encdec"), ("t5-base", "encdec"),
          ("flan-t5-small", "encdec"), ("bart-base", "seq2seq"), ("mt5-small", "encoder-decoder"),
          ("bert-base", "encoder"), ("bert-large", "encoder"), ("roberta-base", "encoder"), ("minilm", "encoder")]


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "seed-15")
    (out / "latest" / "inference").mkdir(parents=True, exist_ok=True)
    (out / "pipelines").mkdir(exist_ok=True)
    (out / "pipelines" / "report.yaml").write_text(
        "steps:\n  - name: aggregate\n    kind: aggregate\n  - name: plot\n    kind: plot\n    needs: [aggregate]\n")
    for i, (name, arch) in enumerate(MODELS):
        lengths = [128, 256, 512] if arch == "encoder" else [128, 256, 512, 1024]
        metrics = {}
        for length in lengths:
            base = (5 + i * 2) * (length / 128) ** (1.1 + 0.05 * i)
            m = {"latency_std_ms": base * 0.05, "total_runs": 10, "max_memory_gb": 0.5 + i * 0.1 + length / 2000,
                 "current_memory_gb": 0.4 + i * 0.1, "inference_energy_per_sample_joules": base / 100,
                 "avg_power_watts": 200 + i}
            if arch == "encoder":
                m.update(forward_pass_latency_ms=base, throughput_tokens_per_sec=length * 1000 / base)
            else:
                tbt = 3 + i * 0.5 + length / 500
                e2e = base + 32 * tbt
                m.update(first_token_latency_ms=base, ttft_ms=base, ttft_std_ms=base * 0.05, tbt_ms=tbt,
                         tbt_std_ms=0.2, e2e_latency_ms=e2e, e2e_std_ms=base * 0.06,
                         throughput_tokens_per_sec=32000 / e2e, throughput_std=1.0)
            metrics[str(length)] = m
        doc = {"exp_id": f"inference_scaling_20251111_12{i:02d}00",
               "config": {"model": {"name": name, "arch": arch, "pretrained": name},
                          "bench": {"arch": arch, "context_lengths": lengths, "num_tokens": 32, "batch_size": 1,
                                    "num_runs": 10, "warmup_runs": 2}},
               "metrics": metrics}
        (out / "latest" / "inference" / f"{name}.json").write_text(json.dumps(doc, indent=1))
    print(f"wrote {len(MODELS)} files to {out / 'latest' / 'inference'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
