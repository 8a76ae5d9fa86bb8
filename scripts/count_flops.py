#!/usr/bin/env python3
"""Counts the matmul FLOPs of Hugging Face's GPT-2, BERT and T5 with `torch.utils.flop_counter`, for the phases
e3pipe times, so `src/models/work.rs` can be checked against an independent count (unit test
`flop_counts_match_torch_flop_counter`). Models are built on the meta device: shapes only, no weights, no time.

Run with the reference environment: `.venv-ref/bin/python scripts/count_flops.py` (writes
`tests/fixtures/flop_counts.json`).
"""

import json
import pathlib

import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode
from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel, T5Config, T5ForConditionalGeneration

ROOT = pathlib.Path(__file__).resolve().parent.parent


def count(fn):
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def model_config(name):
    return yaml.safe_load((ROOT / "configs/model" / f"{name}.yaml").read_text())["config"]


def fixture_config(name):
    return json.loads((ROOT / "tests/fixtures" / name / "config.json").read_text())


def gpt2(config, length, num_tokens):
    hf = GPT2Config(**{k: v for k, v in config.items() if k != "model_type"})
    hf._attn_implementation = "eager"
    with torch.device("meta"):
        model = GPT2LMHeadModel(hf).eval()
        ids = torch.zeros(1, length, dtype=torch.long)
        prefill = count(lambda: model(ids, use_cache=True, logits_to_keep=1))
        # The average timed decode step attends length + num_tokens / 2 keys: a past of one less.
        past_len = length + num_tokens // 2 - 1
        out = model(torch.zeros(1, past_len, dtype=torch.long), use_cache=True)
        step = count(lambda: model(torch.zeros(1, 1, dtype=torch.long), past_key_values=out.past_key_values))
    return prefill, step


def bert(config, length):
    hf = BertConfig(**{k: v for k, v in config.items() if k != "model_type"})
    hf._attn_implementation = "eager"
    with torch.device("meta"):
        model = BertModel(hf, add_pooling_layer=False).eval()
        return count(lambda: model(torch.zeros(1, length, dtype=torch.long)))


def t5(config, length, num_tokens):
    hf = T5Config(**{k: v for k, v in config.items() if k != "model_type"})
    hf._attn_implementation = "eager"
    with torch.device("meta"):
        model = T5ForConditionalGeneration(hf).eval()
        ids = torch.zeros(1, length, dtype=torch.long)
        start = torch.zeros(1, 1, dtype=torch.long)
        first = count(lambda: model(input_ids=ids, decoder_input_ids=start, use_cache=True))
        encoder_outputs = model.get_encoder()(ids)
        # The average timed step attends 1 + num_tokens / 2 decoder keys: a past of num_tokens / 2.
        past = model(
            encoder_outputs=encoder_outputs,
            decoder_input_ids=torch.zeros(1, num_tokens // 2, dtype=torch.long),
            use_cache=True,
        ).past_key_values
        step = count(
            lambda: model(encoder_outputs=encoder_outputs, decoder_input_ids=start, past_key_values=past)
        )
    return first, step


def main():
    records = []
    cases = [
        ("gpt2-medium", model_config("gpt2-medium")),
        ("tiny-gpt2", fixture_config("tiny-gpt2")),
        ("bert-base", model_config("bert-base")),
        ("tiny-bert", fixture_config("tiny-bert")),
        ("t5-base", model_config("t5-base")),
        ("tiny-t5-gated", fixture_config("tiny-t5-gated")),
    ]
    keys = {
        "gpt2": ["vocab_size", "n_positions", "n_embd", "n_layer", "n_head", "n_inner"],
        "bert": ["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                 "max_position_embeddings"],
        "t5": ["vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_decoder_layers", "num_heads",
               "feed_forward_proj", "tie_word_embeddings"],
    }
    for name, config in cases:
        kind = config["model_type"]
        config = {"model_type": kind, **{k: config[k] for k in keys[kind] if config.get(k) is not None}}
        limit = config.get("n_positions") or config.get("max_position_embeddings") or 4096
        for length in [16, 48] if limit <= 64 else [128, 512]:
            num_tokens = 8
            if kind == "gpt2":
                headline, step = gpt2(config, length, num_tokens)
            elif kind == "t5":
                headline, step = t5(config, length, num_tokens)
            else:
                headline, step = bert(config, length), None
            records.append({"name": name, "config": config, "context_length": length, "num_tokens": num_tokens,
                            "headline_flops": headline, "decode_step_flops": step})
            print(name, length, headline, step)
    out = ROOT / "tests/fixtures/flop_counts.json"
    out.write_text(json.dumps({"torch": torch.__version__, "counts": records}, indent=1) + "\n")
    print("wrote", out)


if __name__ == "__main__":
    main()
