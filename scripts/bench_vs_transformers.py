#!/usr/bin/env python3
"""e3pipe against Hugging Face transformers (eager PyTorch) on the same work.

Both sides run the real architectures (gpt2-medium, t5-base, bert-base) with seeded random weights, fp32, on the CPU,
with the same intra-op thread count, the same context lengths, batch 1, the same number of generated tokens, warm-up
runs and measured runs. The statistic on both sides is the median over the measured runs.

  e3pipe         a temporary project (configs/ + pipelines/) run with `e3pipe run`; medians read from
                 latest/inference/<model>.json (`point.stats.<metric>.median`).
  transformers   `attn_implementation="sdpa"`, eval(), torch.inference_mode(), measured as `generate` does it:
    GPT-2 prefill (ttft_ms)   one forward over the prompt with a fresh DynamicCache, use_cache=True,
                              logits_to_keep=1 (generate only computes the last position's logits), + argmax
    GPT-2 step (tbt_ms)       one forward of one token with the past cache, logits_to_keep=1, + argmax
    T5 first token (ttft_ms)  encoder forward + first decoder step (fresh EncoderDecoderCache; this step also
                              computes the cross-attention keys/values, as e3pipe's does)
    T5 step (tbt_ms)          one decoder step with the cached encoder output and past self/cross KV, + argmax
    BERT (forward_pass_latency_ms)  BertModel(add_pooling_layer=False) forward over input_ids + attention_mask
  tbt_ms per run is the mean of the `num_tokens - 1` decode steps (what e3pipe records per run); the median over
  runs is compared. (The JSON also holds the median over all individual steps.)
  Masks: nothing is padded, so e3pipe passes no attention mask to any model; neither does this script.

The sides are interleaved: `--rounds` rounds in ABBA order (e3pipe then transformers, then transformers then e3pipe,
...), each side alone on the cores, each round `--runs` measured runs a point (e3pipe re-measures every point with
`--force`), so a drift of the machine over the invocation falls on both sides alike. Each side's runs are pooled
over the rounds; the ratio of medians gets a percentile bootstrap interval (2000 resamples of each side's runs).
`--baseline BIN` also runs another e3pipe build (e.g. the previous release, copied aside) in the same rounds.

Targets: e3pipe / transformers <= 0.8 for decode steps, <= 1.0 for prefill / first token / forward. `met` only when
the whole interval is within the target, `missed` when the whole interval is past it, else `can't tell`.

Run with the reference environment (`make reference-env`):
  .venv-ref/bin/python scripts/bench_vs_transformers.py [--threads 2] [--lengths 128 512] [--models gpt2,t5,bert]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The architectures, as e3pipe model configs take them (`config:`) and as the HF config classes take them.
MODELS = {
    "gpt2": {
        "name": "gpt2-medium",
        "arch": "decoder",
        "config": {
            "model_type": "gpt2",
            "vocab_size": 50257,
            "n_positions": 1024,
            "n_embd": 1024,
            "n_layer": 24,
            "n_head": 16,
        },
        "metrics": [("ttft_ms", "prefill", 1.0), ("tbt_ms", "decode step", 0.8)],
    },
    "t5": {
        "name": "t5-base",
        "arch": "encoder-decoder",
        "config": {
            "model_type": "t5",
            "vocab_size": 32128,
            "d_model": 768,
            "d_kv": 64,
            "d_ff": 3072,
            "num_layers": 12,
            "num_heads": 12,
            "relative_attention_num_buckets": 32,
            "relative_attention_max_distance": 128,
            "feed_forward_proj": "relu",
            "tie_word_embeddings": True,
        },
        "metrics": [("encoder_latency_ms", "encoder", 1.0), ("ttft_ms", "encoder + first step", 1.0),
                    ("tbt_ms", "decode step", 0.8)],
    },
    "bert": {
        "name": "bert-base",
        "arch": "encoder",
        "config": {
            "model_type": "bert",
            "vocab_size": 30522,
            "hidden_size": 768,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "intermediate_size": 3072,
            "max_position_embeddings": 512,
        },
        "metrics": [("forward_pass_latency_ms", "forward", 1.0)],
    },
}

WARMUP_RUNS = 1


def yaml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(yaml_value(x) for x in v) + "]"
    return json.dumps(str(v))


def default_e3pipe() -> Path:
    release = ROOT / "target" / "release" / "e3pipe"
    return release if release.exists() else ROOT / "target" / "debug" / "e3pipe"


# ---------------------------------------------------------------------------------------------------------------
# e3pipe side
# ---------------------------------------------------------------------------------------------------------------


def e3pipe_project(args, keys, proj: Path) -> Path:
    """Writes a project measuring `keys` into `proj`; returns its pipeline."""
    (proj / "pipelines").mkdir()
    (proj / "configs" / "model").mkdir(parents=True)
    (proj / "configs" / "bench").mkdir(parents=True)
    steps = []
    for key in keys:
        m = MODELS[key]
        model_yaml = [
            f"name: {m['name']}",
            f"arch: {m['arch']}",
            "weights: random",
            "seed: 0",
            "dtype: fp32",
            "device: cpu",
            "config:",
        ] + [f"  {k}: {yaml_value(v)}" for k, v in m["config"].items()]
        (proj / "configs" / "model" / f"{key}.yaml").write_text("\n".join(model_yaml) + "\n")
        tokens = 0 if m["arch"] == "encoder" else args.num_tokens
        bench_yaml = [
            f"name: bench_vs_transformers_{key}",
            f"arch: {m['arch']}",
            f"context_lengths: {yaml_value(args.lengths)}",
            f"num_tokens: {tokens}",
            "batch_size: 1",
            f"num_runs: {args.runs}",
            f"warmup_runs: {WARMUP_RUNS}",
            f"threads: {args.threads}",
            "anchor: false",
        ]
        (proj / "configs" / "bench" / f"{key}.yaml").write_text("\n".join(bench_yaml) + "\n")
        steps += [
            f"  - name: bench-{key}",
            "    kind: bench",
            f"    model: configs/model/{key}.yaml",
            f"    bench: configs/bench/{key}.yaml",
        ]
    pipeline = proj / "pipelines" / "bench.yaml"
    pipeline.write_text("steps:\n" + "\n".join(steps) + "\n")
    return pipeline


def run_e3pipe(args, keys, proj: Path, pipeline: Path, binary) -> dict:
    """Measures every point of the project again; returns {key: {length: {metric: [per-run samples]}}}."""
    cmd = [str(binary), "run", str(pipeline), "--force"]
    print(f"[e3pipe] {' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=proj, capture_output=True, text=True)
    print(f"[e3pipe] exit {proc.returncode} after {time.perf_counter() - t0:.1f} s", flush=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"e3pipe failed with exit code {proc.returncode}")
    out = {}
    for key in keys:
        m = MODELS[key]
        data = json.loads((proj / "latest" / "inference" / f"{m['name']}.json").read_text())
        per_len = {}
        for length in args.lengths:
            entry = data["metrics"].get(str(length))
            if entry is None or entry.get("status") != "ok":
                raise SystemExit(f"e3pipe has no ok point for {m['name']}@{length}: {entry and entry.get('status')}")
            point = entry["point"]
            if point.get("input_tokens") != length or point.get("threads") != args.threads:
                raise SystemExit(f"e3pipe measured {m['name']}@{length} with other inputs: {point.get('input_tokens')} "
                                 f"tokens, {point.get('threads')} threads")
            stats = point["stats"]
            per_len[length] = {metric: list(stats[metric]["samples"])
                               for metric, _, _ in m["metrics"] if metric in stats}
        out[key] = per_len
    return out


# ---------------------------------------------------------------------------------------------------------------
# transformers side
# ---------------------------------------------------------------------------------------------------------------


def build_hf(key):
    import torch
    import transformers

    cfg = dict(MODELS[key]["config"])
    model_type = cfg.pop("model_type")
    torch.manual_seed(0)
    if model_type == "gpt2":
        config = transformers.GPT2Config(**cfg, attn_implementation="sdpa")
        model = transformers.GPT2LMHeadModel(config)
    elif model_type == "t5":
        config = transformers.T5Config(**cfg, attn_implementation="sdpa")
        model = transformers.T5ForConditionalGeneration(config)
    else:
        config = transformers.BertConfig(**cfg, attn_implementation="sdpa")
        model = transformers.BertModel(config, add_pooling_layer=False)
    model = model.to(torch.float32).eval()
    assert model.config._attn_implementation == "sdpa", model.config._attn_implementation
    return model


def ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1e3


def hf_gpt2_run(model, ids, num_tokens):
    import torch
    from transformers import DynamicCache

    t0 = time.perf_counter()
    cache = DynamicCache(config=model.config)
    out = model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)
    nxt = out.logits[:, -1:].argmax(-1)
    ttft = ms(t0)
    cache = out.cache
    steps = []
    for _ in range(num_tokens - 1):
        t = time.perf_counter()
        out = model(input_ids=nxt, cache=cache, use_cache=True, logits_to_keep=1)
        nxt = out.logits[:, -1:].argmax(-1)
        cache = out.cache
        steps.append(ms(t))
    assert cache.get_seq_length() == ids.shape[1] + num_tokens - 1
    return {"ttft_ms": ttft, "steps": steps, "e2e_latency_ms": ms(t0)}


def hf_t5_run(model, ids, mask, num_tokens):
    import torch
    from transformers import DynamicCache, EncoderDecoderCache

    t0 = time.perf_counter()
    enc = model.get_encoder()(input_ids=ids, attention_mask=mask)  # mask is None: nothing is padded
    encoder_ms = ms(t0)
    cache = EncoderDecoderCache(DynamicCache(config=model.config), DynamicCache(config=model.config))
    start = torch.full((ids.shape[0], 1), getattr(model.config, "decoder_start_token_id", None) or 0, dtype=torch.long)
    out = model(encoder_outputs=enc, attention_mask=mask, decoder_input_ids=start, cache=cache, use_cache=True)
    nxt = out.logits[:, -1:].argmax(-1)
    ttft = ms(t0)
    cache = out.cache
    steps = []
    for _ in range(num_tokens - 1):
        t = time.perf_counter()
        out = model(encoder_outputs=enc, attention_mask=mask, decoder_input_ids=nxt, cache=cache, use_cache=True)
        nxt = out.logits[:, -1:].argmax(-1)
        cache = out.cache
        steps.append(ms(t))
    assert cache.get_seq_length() == num_tokens
    return {"ttft_ms": ttft, "encoder_latency_ms": encoder_ms, "steps": steps, "e2e_latency_ms": ms(t0)}


def hf_bert_run(model, ids, mask):
    t0 = time.perf_counter()
    model(input_ids=ids, attention_mask=mask)
    return {"forward_pass_latency_ms": ms(t0)}


def build_all_hf(args, keys) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    print(f"[transformers] torch {torch.__version__}, threads {torch.get_num_threads()}", flush=True)
    models = {}
    for key in keys:
        t0 = time.perf_counter()
        models[key] = build_hf(key)
        print(f"[transformers] built {MODELS[key]['name']} "
              f"({sum(p.numel() for p in models[key].parameters()) / 1e6:.0f}M params) in {time.perf_counter() - t0:.1f} s",
              flush=True)
    return models


def run_hf(args, keys, models) -> dict:
    """One round of the transformers side; returns {key: {length: {metric: [per-run samples]}}} (`tbt_ms` per run is
    the mean of its decode steps, as e3pipe records it)."""
    import torch

    out = {}
    for key in keys:
        model = models[key]
        vocab = MODELS[key]["config"]["vocab_size"]
        per_len = {}
        for length in args.lengths:
            gen = torch.Generator().manual_seed(length)
            # Ordinary tokens (avoid the low special ids); the token values do not change the work.
            ids = torch.randint(1000, vocab - 1, (1, length), generator=gen, dtype=torch.long)
            mask = None  # every row is exactly `length` tokens: nothing to mask, as in e3pipe
            runs = []
            with torch.inference_mode():
                for i in range(WARMUP_RUNS + args.runs):
                    if key == "gpt2":
                        r = hf_gpt2_run(model, ids, args.num_tokens)
                    elif key == "t5":
                        r = hf_t5_run(model, ids, mask, args.num_tokens)
                    else:
                        r = hf_bert_run(model, ids, mask)
                    if i >= WARMUP_RUNS:
                        runs.append(r)
            res = {}
            for metric in ("ttft_ms", "encoder_latency_ms", "e2e_latency_ms", "forward_pass_latency_ms"):
                if metric in runs[0]:
                    res[metric] = [r[metric] for r in runs]
            if "steps" in runs[0] and runs[0]["steps"]:
                res["tbt_ms"] = [statistics.fmean(r["steps"]) for r in runs]
            per_len[length] = res
            print(f"[transformers] {MODELS[key]['name']}@{length}: "
                  + ", ".join(f"{k} {statistics.median(v):.1f}" for k, v in res.items()), flush=True)
        out[key] = per_len
    return out


def bootstrap_ratio(a: list, b: list, seed: str, resamples: int = 2000, level: float = 0.95):
    """Percentile bootstrap interval of median(a) / median(b), resampling each side's runs with replacement."""
    import random

    rng = random.Random(seed)
    ratios = sorted(
        statistics.median(rng.choices(a, k=len(a))) / statistics.median(rng.choices(b, k=len(b)))
        for _ in range(resamples)
    )
    lo = ratios[int((1 - level) / 2 * resamples)]
    hi = ratios[min(resamples - 1, int((1 + level) / 2 * resamples))]
    return lo, hi


def merge(into: dict, part: dict):
    for key, per_len in part.items():
        for length, metrics in per_len.items():
            for metric, samples in metrics.items():
                into.setdefault(key, {}).setdefault(length, {}).setdefault(metric, []).extend(samples)


# ---------------------------------------------------------------------------------------------------------------


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--e3pipe", type=Path, default=None, help="binary (default target/release/e3pipe if present, "
                   "else target/debug/e3pipe)")
    p.add_argument("--baseline", type=Path, default=None, help="another e3pipe binary to measure in the same run")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--num-tokens", type=int, default=16, help="generated tokens per run (decoder, seq2seq)")
    p.add_argument("--runs", type=int, default=3, help="measured runs per point and round (after 1 warm-up run)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (e3pipe, transformers, transformers, "
                   "e3pipe, ...)")
    p.add_argument("--lengths", type=int, nargs="+", default=[128, 512])
    p.add_argument("--models", default="gpt2,t5,bert", help="comma-separated subset of gpt2,t5,bert")
    p.add_argument("--out", type=Path, default=ROOT / "results" / "bench_vs_transformers.json")
    args = p.parse_args()

    keys = [k.strip() for k in args.models.split(",") if k.strip()]
    unknown = [k for k in keys if k not in MODELS]
    if unknown or not keys:
        p.error(f"--models: unknown {unknown}; choose from {','.join(MODELS)}")
    if args.num_tokens < 2 and any(MODELS[k]["arch"] != "encoder" for k in keys):
        p.error("--num-tokens must be >= 2 to measure decode steps")
    if args.runs < 1 or args.threads < 1 or args.rounds < 1:
        p.error("--runs, --rounds and --threads must be >= 1")
    args.e3pipe = (args.e3pipe or default_e3pipe()).resolve()
    if not args.e3pipe.exists():
        p.error(f"no e3pipe binary at {args.e3pipe} (cargo build first)")

    # Interleaved, one side at a time (so they never compete for the cores), in ABBA order: round 1 e3pipe then
    # transformers, round 2 transformers then e3pipe, ... A drift of the machine's speed over the invocation then
    # falls on both sides alike instead of on whichever ran later.
    hf_models = build_all_hf(args, keys)
    e3, base, hf = {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="e3pipe-vs-hf-") as tmp:
        projects = {}
        for side, binary in [("e3pipe", args.e3pipe)] + ([("baseline", args.baseline.resolve())] if args.baseline else []):
            proj = Path(tmp) / side
            proj.mkdir()
            projects[side] = (proj, e3pipe_project(args, keys, proj), binary)
        for r in range(args.rounds):
            order = ["e3pipe", "baseline", "transformers"] if r % 2 == 0 else ["transformers", "baseline", "e3pipe"]
            for side in order:
                print(f"[round {r + 1}/{args.rounds}] {side}", flush=True)
                if side == "transformers":
                    merge(hf, run_hf(args, keys, hf_models))
                elif side in projects:
                    proj, pipeline, binary = projects[side]
                    merge(e3 if side == "e3pipe" else base, run_e3pipe(args, keys, proj, pipeline, binary))

    import torch
    import transformers

    rows = []
    for key in keys:
        name = MODELS[key]["name"]
        for metric, label, target in MODELS[key]["metrics"]:
            for length in args.lengths:
                a = e3[key][length][metric]
                b = hf[key][length][metric]
                ratio = statistics.median(a) / statistics.median(b)
                lo, hi = bootstrap_ratio(a, b, f"{name} {metric} {length}")
                # Met only when the whole interval is within the target; missed when the whole interval is past it.
                verdict = "met" if hi <= target else ("missed" if lo > target else "can't tell")
                rows.append({
                    "model": name, "metric": metric, "what": label, "length": length,
                    "e3pipe_ms": statistics.median(a), "transformers_ms": statistics.median(b),
                    "e3pipe_n": len(a), "transformers_n": len(b),
                    "ratio": ratio, "ratio_ci95": [lo, hi], "target": target, "verdict": verdict,
                    **({"baseline_ms": statistics.median(base[key][length][metric])} if base else {}),
                })

    head = (f"{'model':<12} {'metric':<44} {'length':>6} " + (f"{'baseline ms':>11} " if base else "")
            + f"{'e3pipe ms':>10} {'hf ms':>10} {'ratio':>6} {'95 % bootstrap':>15} {'target':>7}  result")
    print()
    print(head)
    print("-" * len(head))
    for r in rows:
        before = f"{r['baseline_ms']:>11.2f} " if base and r.get("baseline_ms") is not None else (" " * 12 if base else "")
        print(f"{r['model']:<12} {r['metric'] + ' (' + r['what'] + ')':<44} {r['length']:>6} {before}"
              f"{r['e3pipe_ms']:>10.2f} {r['transformers_ms']:>10.2f} {r['ratio']:>6.2f} "
              f"{'[%.2f, %.2f]' % tuple(r['ratio_ci95']):>15} {'<= ' + str(r['target']):>7}  {r['verdict']}")
    counts = {v: sum(r["verdict"] == v for r in rows) for v in ("met", "can't tell", "missed")}
    cant = counts["can't tell"]
    print(f"\ntarget met (whole interval within it): {counts['met']}, can't tell: {cant}, "
          f"missed: {counts['missed']}, of {len(rows)}; {args.rounds} interleaved rounds of {args.runs} runs a side")

    report = {
        "settings": {
            "threads": args.threads, "num_tokens": args.num_tokens, "runs": args.runs, "rounds": args.rounds,
            "warmup_runs": WARMUP_RUNS, "interval": "percentile bootstrap (2000 resamples) of the ratio of medians, "
            "each side's runs pooled over the interleaved rounds",
            "lengths": args.lengths, "batch_size": 1, "dtype": "fp32", "device": "cpu",
            "e3pipe": str(args.e3pipe), "baseline": str(args.baseline) if args.baseline else None, "torch": torch.__version__, "transformers": transformers.__version__,
            "attn_implementation": "sdpa", "cpu_count": os.cpu_count(),
        },
        "rows": rows,
        "e3pipe": {MODELS[k]["name"]: {str(l): v for l, v in e3[k].items()} for k in keys},
        "baseline": {MODELS[k]["name"]: {str(l): v for l, v in base[k].items()} for k in keys} if base else None,
        "transformers": {MODELS[k]["name"]: {str(l): v for l, v in hf[k].items()} for k in keys},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
