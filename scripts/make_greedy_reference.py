#!/usr/bin/env python3
"""Generate greedy-decoding references (tests/fixtures/<model>/greedy.safetensors) for the tiny fixtures.

Pinned reference environment (what these files were generated with):
    torch==2.13.0  transformers==5.24.0  safetensors==0.8.0  tokenizers==0.23.3
    (see scripts/requirements-reference.txt; the venv is `.venv-ref`, git-ignored)
NB: Python `import torch` needs torch's full CUDA dependency set (libtorch_python.so links
libtorch_cuda.so -> cuDNN, cuBLAS, NCCL, ...), so install with plain `pip install torch==2.13.0`;
the slim `--no-deps` subset of scripts/setup.sh is only enough for libtorch_cpu (the Rust side).

Run from the repository root:
    HF_HUB_OFFLINE=1 .venv-ref/bin/python scripts/make_greedy_reference.py

For each of tests/fixtures/{tiny-gpt2,tiny-t5,tiny-t5-gated} the model is loaded with
`from_pretrained(dir, attn_implementation="eager", local_files_only=True)` (fp32, CPU, eval mode,
grad disabled); its logits for the `input_ids` (and `decoder_input_ids`) stored in the dir's
`reference.safetensors` must reproduce the stored `logits` within 1e-4, otherwise the script fails.
Then `model.generate(input_ids, attention_mask=ones, do_sample=False, num_beams=1,
min_new_tokens=N, max_new_tokens=N)` with N = 6 is run and written as
    input_ids      I64 [B, L]  (the reference prompt)
    generated_ids  I64 [B, N]  (only the new tokens: GPT-2 prompt / T5 decoder_start token stripped)
with metadata {"N": "6"}. min_new_tokens = N means EOS can never be chosen (T5 eos_token_id = 1 is
masked to -inf at every step; GPT-2's eos 50256 is outside the 99-token vocab anyway), so an
implementation reproducing this must either mask EOS too or not stop on it. The script also checks
generate() against a plain argmax loop over full (cache-free) forwards with EOS masked the same way.
Output is deterministic (single-threaded; same bytes on every run).
"""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import GPT2LMHeadModel, T5ForConditionalGeneration

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
FIX = os.path.join(ROOT, "tests", "fixtures")
N = 6
TOL = 1e-4

torch.set_grad_enabled(False)
torch.set_num_threads(1)
torch.manual_seed(0)  # greedy generation draws no random numbers; set anyway


def load(name, cls):
    d = os.path.join(FIX, name)
    m = cls.from_pretrained(d, attn_implementation="eager", torch_dtype=torch.float32,
                            local_files_only=True).eval().float()
    assert not m.training
    ref = load_file(os.path.join(d, "reference.safetensors"))
    return d, m, ref


def check_untied_t5(d, m):
    """tiny-t5-gated: the generating model must use the separate lm_head.weight and no d_model**-0.5 rescale."""
    sd = load_file(os.path.join(d, "model.safetensors"))
    assert "lm_head.weight" in sd, "tiny-t5-gated model.safetensors has no separate lm_head.weight"
    if m.lm_head.weight.data_ptr() == m.shared.weight.data_ptr() or not torch.equal(m.lm_head.weight, sd["lm_head.weight"]):
        raise SystemExit(f"{d}: lm_head is tied to shared / differs from model.safetensors' lm_head.weight")
    assert not torch.equal(sd["lm_head.weight"], sd["shared.weight"])
    if getattr(m.config, "scale_decoder_outputs", False):
        raise SystemExit(f"{d}: config.scale_decoder_outputs is true (would rescale by d_model**-0.5)")


def check_logits(name, got, ref):
    diff = (got.float() - ref["logits"]).abs().max().item()
    print(f"   logits vs reference.safetensors: max|diff| = {diff:.3g}")
    if not diff <= TOL:  # also catches NaN
        raise SystemExit(f"{name}: logits differ from reference by {diff} > {TOL}; refusing to generate")
    return diff


def manual_greedy(step_logits, start, eos):
    """Argmax loop over full forwards (no KV cache), EOS masked like min_new_tokens does."""
    seq = start
    for _ in range(N):
        logits = step_logits(seq)[:, -1, :].clone()
        if eos is not None and 0 <= eos < logits.shape[-1]:
            logits[:, eos] = float("-inf")
        seq = torch.cat([seq, logits.argmax(-1, keepdim=True)], dim=1)
    return seq


def save(d, ids, gen):
    assert ids.dtype == torch.int64 and gen.dtype == torch.int64
    assert gen.shape == (ids.shape[0], N), gen.shape
    p = os.path.join(d, "greedy.safetensors")
    save_file({"input_ids": ids.contiguous(), "generated_ids": gen.contiguous()}, p, metadata={"N": str(N)})
    print(f"   wrote {os.path.relpath(p, ROOT)} ({os.path.getsize(p)} bytes)")
    for b in range(gen.shape[0]):
        print(f"   [{b}] input_ids={ids[b].tolist()} generated_ids={gen[b].tolist()}")


def gpt2():
    name = "tiny-gpt2"
    print(f"== {name}")
    d, m, ref = load(name, GPT2LMHeadModel)
    ids = ref["input_ids"]
    assert ids.shape[1] + N <= m.config.n_positions
    diffs[name] = check_logits(name, m(input_ids=ids, use_cache=False).logits, ref)
    mask = torch.ones_like(ids)
    out = m.generate(input_ids=ids, attention_mask=mask, do_sample=False, num_beams=1,
                     min_new_tokens=N, max_new_tokens=N, pad_token_id=0)
    assert torch.equal(out[:, :ids.shape[1]], ids)
    gen = out[:, ids.shape[1]:]
    man = manual_greedy(lambda s: m(input_ids=s, use_cache=False).logits, ids, m.generation_config.eos_token_id)
    assert torch.equal(man[:, ids.shape[1]:], gen), (man, out)
    save(d, ids, gen)


def t5(name):
    print(f"== {name}")
    d, m, ref = load(name, T5ForConditionalGeneration)
    if not m.config.tie_word_embeddings or name.endswith("gated"):
        check_untied_t5(d, m)
    ids, dec = ref["input_ids"], ref["decoder_input_ids"]
    mask = torch.ones_like(ids)
    out = m(input_ids=ids, attention_mask=mask, decoder_input_ids=dec, use_cache=False)
    enc_diff = (out.encoder_last_hidden_state - ref["encoder_last_hidden_state"]).abs().max().item()
    print(f"   encoder_last_hidden_state vs reference: max|diff| = {enc_diff:.3g}")
    diffs[name] = check_logits(name, out.logits, ref)
    start_id = m.generation_config.decoder_start_token_id
    assert start_id == 0
    out = m.generate(input_ids=ids, attention_mask=mask, do_sample=False, num_beams=1,
                     min_new_tokens=N, max_new_tokens=N)
    assert (out[:, 0] == start_id).all(), out
    gen = out[:, 1:]
    start = torch.full((ids.shape[0], 1), start_id, dtype=torch.int64)
    man = manual_greedy(lambda s: m(input_ids=ids, attention_mask=mask, decoder_input_ids=s, use_cache=False).logits,
                        start, m.generation_config.eos_token_id)
    assert torch.equal(man[:, 1:], gen), (man, out)
    save(d, ids, gen)


diffs = {}


def main():
    print(f"torch {torch.__version__} transformers {transformers.__version__} N={N}")
    gpt2()
    t5("tiny-t5")
    t5("tiny-t5-gated")
    print("logits max|diff|: " + ", ".join(f"{k} {v:.3g}" for k, v in diffs.items()))


if __name__ == "__main__":
    main()
