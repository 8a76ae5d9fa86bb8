#!/usr/bin/env python3
"""Where a decode step's time goes, and the floor under it.

A greedy decode step of GPT-2 medium / T5-base at batch 1 multiplies one token's activations by every weight matrix
once (GEMV). On a CPU that is bound by reading the weights from memory, whoever issues the calls. This script times,
in the same process and thread count:
  floor   the bare matrix-vector products of the step (every weight matrix once, plus the LM head), nothing else
  hf      a transformers decode step (same as scripts/bench_vs_transformers.py)
and prints the profiler's top operators of the transformers step. If the floor is above 0.8 x hf, a ">= 1.25x faster
decode step" target cannot be met in the same dtype on this machine.

Run: .venv-ref/bin/python scripts/profile_decode_floor.py [--threads 2] [--length 128]
"""

import argparse
import statistics
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel, T5Config, T5ForConditionalGeneration


def median_ms(fn, reps):
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def gemv_floor(shapes, reps):
    mats = [torch.randn(o, i) for o, i in shapes]
    vecs = [torch.randn(i) for _, i in shapes]

    def step():
        for m, v in zip(mats, vecs):
            torch.mv(m, v)

    return median_ms(step, reps), sum(o * i for o, i in shapes) * 4 / 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--reps", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    L = args.length

    with torch.inference_mode():
        # GPT-2 medium: per layer qkv (3E x E), proj (E x E), fc (4E x E), proj (E x 4E); LM head (V x E).
        e, layers, vocab = 1024, 24, 50257
        shapes = [(3 * e, e), (e, e), (4 * e, e), (e, 4 * e)] * layers + [(vocab, e)]
        floor_ms, gb = gemv_floor(shapes, args.reps)
        model = GPT2LMHeadModel(GPT2Config(n_embd=e, n_layer=layers, n_head=16, vocab_size=vocab)).eval()
        ids = torch.randint(0, vocab, (1, L))
        out = model(ids, use_cache=True, logits_to_keep=1)
        past = out.past_key_values
        tok = out.logits[:, -1:].argmax(-1)

        def hf_step():
            model(tok, cache=past, use_cache=True, logits_to_keep=1)
            past.crop(-1)  # drop the token just added: every timed step sees L cached positions

        hf_ms = median_ms(hf_step, args.reps)
        print(f"gpt2-medium decode step @ {L}: weights {gb:.2f} GB, GEMV floor {floor_ms:.1f} ms "
              f"({gb / floor_ms * 1e3:.1f} GB/s), transformers {hf_ms:.1f} ms, floor/hf = {floor_ms / hf_ms:.2f}")
        with torch.profiler.profile() as prof:
            for _ in range(3):
                hf_step()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))

        # T5-base decoder: per layer self q,k,v,o + cross q,o (cross k/v are cached) + wi, wo; LM head.
        d, ff, layers, vocab = 768, 3072, 12, 32128
        shapes = [(d, d)] * 6 * layers + [(ff, d), (d, ff)] * layers + [(vocab, d)]
        floor_ms, gb = gemv_floor(shapes, args.reps)
        t5 = T5ForConditionalGeneration(T5Config(d_model=d, d_ff=ff, num_layers=layers, num_heads=12, vocab_size=vocab)).eval()
        ids = torch.randint(0, vocab, (1, L))
        enc = t5.encoder(input_ids=ids)
        start = torch.zeros((1, 1), dtype=torch.long)
        out = t5(encoder_outputs=enc, decoder_input_ids=start, use_cache=True)
        past = out.past_key_values

        def t5_step():
            t5(encoder_outputs=enc, decoder_input_ids=start, cache=past, use_cache=True)
            past.self_attention_cache.crop(-1)

        hf_ms = median_ms(t5_step, args.reps)
        print(f"t5-base decode step: weights {gb:.2f} GB, GEMV floor {floor_ms:.1f} ms, transformers {hf_ms:.1f} ms, "
              f"floor/hf = {floor_ms / hf_ms:.2f}")


if __name__ == "__main__":
    main()
