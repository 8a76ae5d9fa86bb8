#!/usr/bin/env python3
"""Generate the fixtures of the model families added beside GPT-2/T5/BERT: tests/fixtures/tiny-{llama,qwen2,mistral,
roberta,distilbert}/.

Pinned reference environment: torch==2.13.0 transformers==5.24.0 safetensors==0.8.0 (the `.venv-ref`).
Run from the repository root:
    HF_HUB_OFFLINE=1 .venv-ref/bin/python scripts/make_family_fixtures.py

Each directory is what transformers' `save_pretrained` writes (config.json as 5.x writes it, with
`rope_parameters`), and `reference.safetensors` holds, for a prompt `input_ids` [2, 9]:
    logits         F32 [2, 9, V]  one forward over the whole prompt (attn_implementation="sdpa")
    generated_ids  I64 [2, 6]     generate(do_sample=False, min_new_tokens=max_new_tokens=6): EOS never chosen
The three cover what the family varies:
    tiny-llama    llama, 4 query heads over 2 KV heads (GQA), Llama 3 rope scaling, untied head, one fp32 file
    tiny-qwen2    qwen2, 4 query heads over 1 KV head, q/k/v biases, tied head, **bf16 and sharded** (index + shards);
                  its reference is computed from the bf16 weights cast to fp32, as e3pipe loads them
    tiny-mistral  mistral, 2 KV heads, sliding window 4 (shorter than the 9-token prompt and the generation)
and for the encoders, `last_hidden_state` F32 [2, 9, 32] instead of logits and generation:
    tiny-roberta     roberta (`RobertaModel`), the padding id 1 inside the prompt: positions as transformers counts
    tiny-distilbert  distilbert (`DistilBertModel`)
    tiny-modernbert  modernbert (`ModernBertModel`), 4 layers: global at 0 and 3, local windows of ±2 (shorter than
                     the prompt), rotary bases 160000 / 10000, no biases
and for BART (`BartForConditionalGeneration`, untied head, `scale_embedding`, a non-zero `final_logits_bias`):
    tiny-bart        encoder `encoder_last_hidden_state`, decoder `logits` over `decoder_input_ids`, `generated_ids`
    tiny-bart-tied   the same tied (one `model.shared` embeds both sides and is the head) and unscaled, as bart-base
Single-threaded, fixed seeds: the same bytes on every run.
"""
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
import transformers
from safetensors.torch import save_file
from transformers import (ModernBertConfig, ModernBertModel, BartConfig, BartForConditionalGeneration, DistilBertConfig, DistilBertModel, LlamaConfig, LlamaForCausalLM, MistralConfig,
                          MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM, RobertaConfig, RobertaModel)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
FIX = os.path.join(ROOT, "tests", "fixtures")
N = 6

torch.set_grad_enabled(False)
torch.set_num_threads(1)

COMMON = dict(vocab_size=99, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
              max_position_embeddings=64, attn_implementation="sdpa", bos_token_id=1, eos_token_id=2)


def build(name, cls, config):
    torch.manual_seed(0)
    model = cls(config).eval().float()
    # Non-trivial norms and biases, so a missing one would show.
    for n, p in model.named_parameters():
        if n.endswith("norm.weight") or n.endswith(".bias"):
            p.add_(torch.randn_like(p) * 0.1)
    return model


def save(name, model, bf16_shards=False):
    d = os.path.join(FIX, name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    if bf16_shards:
        model = model.to(torch.bfloat16)
        model.save_pretrained(d, safe_serialization=True, max_shard_size="40KB")
        model = model.float()  # the bf16-rounded weights, as e3pipe casts them to fp32
    else:
        model.save_pretrained(d, safe_serialization=True)
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 99, (2, 9), generator=gen, dtype=torch.int64)
    logits = model(input_ids=ids, use_cache=False).logits.float()
    out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, num_beams=1,
                         min_new_tokens=N, max_new_tokens=N)
    generated = out[:, ids.shape[1]:].contiguous()
    assert generated.shape == (2, N), generated.shape
    save_file({"input_ids": ids, "logits": logits.contiguous(), "generated_ids": generated},
              os.path.join(d, "reference.safetensors"), metadata={"N": str(N)})
    files = sorted(os.listdir(d))
    print(f"== {name}: {files}")
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    print(f"   rope_parameters={cfg.get('rope_parameters')} kv_heads={cfg.get('num_key_value_heads')} "
          f"tie={cfg.get('tie_word_embeddings')} window={cfg.get('sliding_window')} dtype={cfg.get('dtype')}")


def save_encoder(name, model, ids):
    d = os.path.join(FIX, name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    model.save_pretrained(d, safe_serialization=True)
    hidden = model(input_ids=ids).last_hidden_state.float().contiguous()
    save_file({"input_ids": ids, "last_hidden_state": hidden}, os.path.join(d, "reference.safetensors"))
    print(f"== {name}: {sorted(os.listdir(d))}")


def encoders():
    gen = torch.Generator().manual_seed(2)
    ids = torch.randint(3, 99, (2, 9), generator=gen, dtype=torch.int64)
    roberta_ids = ids.clone()
    roberta_ids[0, 4] = 1  # the padding id inside a row: transformers does not advance the position there
    torch.manual_seed(0)
    roberta = RobertaConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                            intermediate_size=64, max_position_embeddings=40, pad_token_id=1, type_vocab_size=1,
                            attn_implementation="sdpa")
    m = RobertaModel(roberta, add_pooling_layer=False).eval().float()
    for n, p in m.named_parameters():
        if "LayerNorm" in n or n.endswith(".bias"):
            p.add_(torch.randn_like(p) * 0.1)
    save_encoder("tiny-roberta", m, roberta_ids)
    torch.manual_seed(0)
    distil = DistilBertConfig(vocab_size=99, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                              max_position_embeddings=40, attn_implementation="sdpa")
    m = DistilBertModel(distil).eval().float()
    for n, p in m.named_parameters():
        if "layer_norm" in n or "LayerNorm" in n or n.endswith(".bias"):
            p.add_(torch.randn_like(p) * 0.1)
    save_encoder("tiny-distilbert", m, ids)
    torch.manual_seed(0)
    modern = ModernBertConfig(vocab_size=99, hidden_size=32, intermediate_size=48, num_hidden_layers=4,
                              num_attention_heads=4, max_position_embeddings=64, local_attention=4, pad_token_id=1,
                              bos_token_id=0, eos_token_id=2, cls_token_id=0, sep_token_id=2,
                              attn_implementation="sdpa")
    m = ModernBertModel(modern).eval().float()
    for n, p in m.named_parameters():
        if "norm" in n:
            p.add_(torch.randn_like(p) * 0.1)
    save_encoder("tiny-modernbert", m, ids)


def bart(name, tied):
    torch.manual_seed(0)
    config = BartConfig(vocab_size=99, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                        decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=40,
                        scale_embedding=not tied, tie_word_embeddings=tied, decoder_start_token_id=2, eos_token_id=2,
                        bos_token_id=0, pad_token_id=1, forced_bos_token_id=None, forced_eos_token_id=None,
                        attn_implementation="sdpa")
    m = BartForConditionalGeneration(config).eval().float()
    for n, p in m.named_parameters():
        if "layer_norm" in n or "layernorm" in n or n.endswith(".bias"):
            p.add_(torch.randn_like(p) * 0.1)
    m.final_logits_bias.add_(torch.randn_like(m.final_logits_bias))
    d = os.path.join(FIX, name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    m.save_pretrained(d, safe_serialization=True)
    gen = torch.Generator().manual_seed(3)
    ids = torch.randint(3, 99, (2, 9), generator=gen, dtype=torch.int64)
    dec = torch.cat([torch.full((2, 1), 2), torch.randint(3, 99, (2, 4), generator=gen)], 1)
    out = m(input_ids=ids, decoder_input_ids=dec, use_cache=False)
    generated = m.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, num_beams=1,
                           min_new_tokens=N, max_new_tokens=N, decoder_start_token_id=2)
    generated = generated[:, 1:].contiguous()  # without the decoder start token
    assert generated.shape == (2, N), generated.shape
    save_file({"input_ids": ids, "decoder_input_ids": dec,
               "encoder_last_hidden_state": out.encoder_last_hidden_state.float().contiguous(),
               "logits": out.logits.float().contiguous(), "generated_ids": generated},
              os.path.join(d, "reference.safetensors"), metadata={"N": str(N)})
    print(f"== {name}: {sorted(os.listdir(d))}")


def main():
    print(f"torch {torch.__version__} transformers {transformers.__version__}")
    llama = LlamaConfig(**COMMON, num_key_value_heads=2, tie_word_embeddings=False,
                        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                         "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                         "original_max_position_embeddings": 16})
    save("tiny-llama", build("tiny-llama", LlamaForCausalLM, llama))
    qwen2 = Qwen2Config(**COMMON, num_key_value_heads=1, tie_word_embeddings=True,
                        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})
    save("tiny-qwen2", build("tiny-qwen2", Qwen2ForCausalLM, qwen2), bf16_shards=True)
    mistral = MistralConfig(**COMMON, num_key_value_heads=2, sliding_window=4, tie_word_embeddings=False)
    save("tiny-mistral", build("tiny-mistral", MistralForCausalLM, mistral))
    encoders()
    bart("tiny-bart", tied=False)
    bart("tiny-bart-tied", tied=True)


if __name__ == "__main__":
    main()
