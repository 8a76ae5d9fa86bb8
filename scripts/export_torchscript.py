#!/usr/bin/env python3
"""Export HF models to TorchScript with a fixed, Rust-friendly calling convention.

Run with the reference venv (scripts/requirements-reference.txt; tested with torch 2.13.0,
transformers 5.24.0). HF modeling code in transformers 5.x is not scriptable and has no
legacy tuple caches, so each arch is a small self-contained torch.jit.script re-implementation
whose weights are copied from the HF model, then checked against the HF model.

  --arch encoder   BERT-family (model_type bert)
      forward(input_ids: int64 [B,L], attention_mask: int64 [B,L]) -> last_hidden_state f32 [B,L,H]
      (token_type_ids = 0, position ids 0..L-1)
  --arch decoder   GPT-2 (model_type gpt2)
      prefill(input_ids [B,L]) -> (logits [B,L,V], kv: List[Tensor])
      step(input_ids [B,1], kv: List[Tensor]) -> (logits [B,1,V], kv: List[Tensor])
      forward == prefill. kv = [k0, v0, k1, v1, ...], each [B, heads, T, head_dim];
      step appends one position. No padding support (all rows have the same length).
  --arch seq2seq   T5 / T5 v1.1 (model_type t5)
      encode(input_ids [B,S], attention_mask [B,S]) -> enc_hidden [B,S,D]
      step(decoder_input_ids [B,1], enc_hidden, attention_mask [B,S], kv: List[Tensor])
           -> (logits [B,1,V], kv: List[Tensor])
      Pass kv=[] at the first step (decoder_input_ids = decoder_start_token_id).
      kv = [self_k0, self_v0, cross_k0, cross_v0, self_k1, ...] (4 per layer), each
      [B, heads, T, d_kv]; cross k/v are computed from enc_hidden when kv is empty and then
      reused. Treat kv as opaque.

Examples:
  python scripts/export_torchscript.py --arch encoder --model-dir tests/fixtures/tiny-bert \
      --out tests/fixtures/tiny-bert-encoder --reference tests/fixtures/torchscript-reference.safetensors
  python scripts/export_torchscript.py --arch decoder --tiny --out /tmp/tiny-dec
"""
import argparse
import math
import os
from typing import List, Tuple

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
import torch.nn.functional as F
from torch import Tensor, nn

torch.set_grad_enabled(False)
# float32 min (torch.finfo(torch.float32).min), inlined because TorchScript cannot capture float globals


def P(t: Tensor) -> nn.Parameter:
    return nn.Parameter(t.detach().clone().float().contiguous(), requires_grad=False)


def gelu_new(x: Tensor) -> Tensor:
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


# ----------------------------------------------------------------------------- encoder (BERT)
class BertLayer(nn.Module):
    def __init__(self, sd, p: str, heads: int, eps: float):
        super().__init__()
        self.heads = heads
        self.eps = eps
        g = lambda n: P(sd[p + n])
        self.wq, self.bq = g("attention.self.query.weight"), g("attention.self.query.bias")
        self.wk, self.bk = g("attention.self.key.weight"), g("attention.self.key.bias")
        self.wv, self.bv = g("attention.self.value.weight"), g("attention.self.value.bias")
        self.wo, self.bo = g("attention.output.dense.weight"), g("attention.output.dense.bias")
        self.ln1w, self.ln1b = g("attention.output.LayerNorm.weight"), g("attention.output.LayerNorm.bias")
        self.wi, self.bi = g("intermediate.dense.weight"), g("intermediate.dense.bias")
        self.wo2, self.bo2 = g("output.dense.weight"), g("output.dense.bias")
        self.ln2w, self.ln2b = g("output.LayerNorm.weight"), g("output.LayerNorm.bias")

    def forward(self, x: Tensor, bias: Tensor) -> Tensor:
        B, L, H = x.shape
        hd = H // self.heads
        q = F.linear(x, self.wq, self.bq).view(B, L, self.heads, hd).transpose(1, 2)
        k = F.linear(x, self.wk, self.bk).view(B, L, self.heads, hd).transpose(1, 2)
        v = F.linear(x, self.wv, self.bv).view(B, L, self.heads, hd).transpose(1, 2)
        s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(hd) + bias
        a = torch.matmul(torch.softmax(s, dim=-1), v).transpose(1, 2).reshape(B, L, H)
        x = F.layer_norm(F.linear(a, self.wo, self.bo) + x, (H,), self.ln1w, self.ln1b, self.eps)
        h = F.gelu(F.linear(x, self.wi, self.bi))
        return F.layer_norm(F.linear(h, self.wo2, self.bo2) + x, (H,), self.ln2w, self.ln2b, self.eps)


class BertEncoder(nn.Module):
    def __init__(self, hf):
        super().__init__()
        c = hf.config
        assert c.hidden_act == "gelu" and getattr(c, "position_embedding_type", "absolute") == "absolute"
        sd = {k: v for k, v in hf.state_dict().items()}
        self.hidden = c.hidden_size
        self.eps = float(c.layer_norm_eps)
        self.word = P(sd["embeddings.word_embeddings.weight"])
        self.pos = P(sd["embeddings.position_embeddings.weight"])
        self.tt = P(sd["embeddings.token_type_embeddings.weight"])
        self.lnw, self.lnb = P(sd["embeddings.LayerNorm.weight"]), P(sd["embeddings.LayerNorm.bias"])
        self.layers = nn.ModuleList([BertLayer(sd, f"encoder.layer.{i}.", c.num_attention_heads, self.eps)
                                     for i in range(c.num_hidden_layers)])

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        L = input_ids.shape[1]
        x = self.word[input_ids] + self.pos[:L].unsqueeze(0) + self.tt[0]
        x = F.layer_norm(x, (self.hidden,), self.lnw, self.lnb, self.eps)
        bias = (1.0 - attention_mask.to(torch.float32))[:, None, None, :] * -3.4028234663852886e+38
        for layer in self.layers:
            x = layer(x, bias)
        return x


# ----------------------------------------------------------------------------- decoder (GPT-2)
class GPT2Block(nn.Module):
    def __init__(self, sd, p: str, heads: int, eps: float):
        super().__init__()
        self.heads = heads
        self.eps = eps
        g = lambda n: P(sd[p + n])
        t = lambda n: P(sd[p + n].t())  # HF Conv1D stores [in, out]
        self.ln1w, self.ln1b = g("ln_1.weight"), g("ln_1.bias")
        self.wqkv, self.bqkv = t("attn.c_attn.weight"), g("attn.c_attn.bias")
        self.wo, self.bo = t("attn.c_proj.weight"), g("attn.c_proj.bias")
        self.ln2w, self.ln2b = g("ln_2.weight"), g("ln_2.bias")
        self.wfc, self.bfc = t("mlp.c_fc.weight"), g("mlp.c_fc.bias")
        self.wp, self.bp = t("mlp.c_proj.weight"), g("mlp.c_proj.bias")

    def forward(self, x: Tensor, pk: Tensor, pv: Tensor, has_past: bool) -> Tuple[Tensor, Tensor, Tensor]:
        B, L, H = x.shape
        hd = H // self.heads
        h = F.layer_norm(x, (H,), self.ln1w, self.ln1b, self.eps)
        qkv = F.linear(h, self.wqkv, self.bqkv).view(B, L, 3, self.heads, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        if has_past:
            k = torch.cat([pk, k], dim=2)
            v = torch.cat([pv, v], dim=2)
        T = k.shape[2]
        past = T - L
        s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(hd)
        qpos = torch.arange(past, T, device=x.device).unsqueeze(1)
        kpos = torch.arange(0, T, device=x.device).unsqueeze(0)
        s = s.masked_fill(kpos > qpos, -3.4028234663852886e+38)
        a = torch.matmul(torch.softmax(s, dim=-1), v).transpose(1, 2).reshape(B, L, H)
        x = x + F.linear(a, self.wo, self.bo)
        h = F.layer_norm(x, (H,), self.ln2w, self.ln2b, self.eps)
        x = x + F.linear(gelu_new(F.linear(h, self.wfc, self.bfc)), self.wp, self.bp)
        return x, k, v


class GPT2Decoder(nn.Module):
    def __init__(self, hf):
        super().__init__()
        c = hf.config
        assert c.activation_function == "gelu_new" and not c.scale_attn_by_inverse_layer_idx \
            and not c.reorder_and_upcast_attn and c.scale_attn_weights
        sd = {k: v for k, v in hf.state_dict().items()}
        self.hidden = c.n_embd
        self.eps = float(c.layer_norm_epsilon)
        self.wte = P(sd["transformer.wte.weight"])
        self.wpe = P(sd["transformer.wpe.weight"])
        self.lm_head = P(sd.get("lm_head.weight", sd["transformer.wte.weight"]))
        self.lnfw, self.lnfb = P(sd["transformer.ln_f.weight"]), P(sd["transformer.ln_f.bias"])
        self.blocks = nn.ModuleList([GPT2Block(sd, f"transformer.h.{i}.", c.n_head, self.eps)
                                     for i in range(c.n_layer)])

    def _run(self, input_ids: Tensor, kv: List[Tensor]) -> Tuple[Tensor, List[Tensor]]:
        has_past = len(kv) > 0
        past = kv[0].shape[2] if has_past else 0
        L = input_ids.shape[1]
        x = self.wte[input_ids] + self.wpe[past:past + L].unsqueeze(0)
        out: List[Tensor] = []
        empty = torch.empty(0)
        for i, blk in enumerate(self.blocks):
            pk = kv[2 * i] if has_past else empty
            pv = kv[2 * i + 1] if has_past else empty
            x, k, v = blk(x, pk, pv, has_past)
            out.append(k)
            out.append(v)
        x = F.layer_norm(x, (self.hidden,), self.lnfw, self.lnfb, self.eps)
        return F.linear(x, self.lm_head), out

    @torch.jit.export
    def prefill(self, input_ids: Tensor) -> Tuple[Tensor, List[Tensor]]:
        return self._run(input_ids, [])

    @torch.jit.export
    def step(self, input_ids: Tensor, kv: List[Tensor]) -> Tuple[Tensor, List[Tensor]]:
        return self._run(input_ids, kv)

    def forward(self, input_ids: Tensor) -> Tuple[Tensor, List[Tensor]]:
        return self._run(input_ids, [])


# ----------------------------------------------------------------------------- seq2seq (T5)
def rms(x: Tensor, w: Tensor, eps: float) -> Tensor:
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rel_bucket(rel: Tensor, bidirectional: bool, num_buckets: int, max_distance: int) -> Tensor:
    buckets = torch.zeros_like(rel)
    if bidirectional:
        num_buckets = num_buckets // 2
        buckets = buckets + (rel > 0).to(torch.long) * num_buckets
        rel = torch.abs(rel)
    else:
        rel = -torch.min(rel, torch.zeros_like(rel))
    max_exact = num_buckets // 2
    is_small = rel < max_exact
    large = max_exact + (torch.log(rel.float() / max_exact) / math.log(max_distance / max_exact)
                         * (num_buckets - max_exact)).to(torch.long)
    large = torch.min(large, torch.full_like(large, num_buckets - 1))
    return buckets + torch.where(is_small, rel, large)


class T5Attn(nn.Module):
    def __init__(self, sd, p: str, heads: int, dkv: int):
        super().__init__()
        self.heads, self.dkv = heads, dkv
        self.q, self.k, self.v, self.o = (P(sd[p + n + ".weight"]) for n in "qkvo")

    def proj(self, x: Tensor, w: Tensor) -> Tensor:
        B, L, _ = x.shape
        return F.linear(x, w).view(B, L, self.heads, self.dkv).transpose(1, 2)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, bias: Tensor) -> Tensor:
        s = torch.matmul(q, k.transpose(-1, -2)) + bias  # T5: no 1/sqrt(d) scaling
        a = torch.matmul(torch.softmax(s.float(), dim=-1), v)
        B, _, L, _ = a.shape
        return F.linear(a.transpose(1, 2).reshape(B, L, self.heads * self.dkv), self.o)


class T5FF(nn.Module):
    def __init__(self, sd, p: str, gated: bool, act: str):
        super().__init__()
        self.gated = gated
        self.act = act
        self.ln = P(sd[p + "layer_norm.weight"])
        d = p + "DenseReluDense."
        self.wi0 = P(sd[d + "wi_0.weight"] if gated else sd[d + "wi.weight"])
        self.wi1 = P(sd[d + "wi_1.weight"]) if gated else P(torch.empty(0))
        self.wo = P(sd[d + "wo.weight"])

    def activation(self, x: Tensor) -> Tensor:
        if self.act == "relu":
            return torch.relu(x)
        if self.act == "gelu_new":
            return gelu_new(x)
        return F.gelu(x)

    def forward(self, x: Tensor, eps: float) -> Tensor:
        h = rms(x, self.ln, eps)
        if self.gated:
            h = self.activation(F.linear(h, self.wi0)) * F.linear(h, self.wi1)
        else:
            h = self.activation(F.linear(h, self.wi0))
        return x + F.linear(h, self.wo)


class T5EncBlock(nn.Module):
    def __init__(self, sd, p, c, gated, act):
        super().__init__()
        self.ln = P(sd[p + "layer.0.layer_norm.weight"])
        self.attn = T5Attn(sd, p + "layer.0.SelfAttention.", c.num_heads, c.d_kv)
        self.ff = T5FF(sd, p + "layer.1.", gated, act)

    def forward(self, x: Tensor, bias: Tensor, eps: float) -> Tensor:
        h = rms(x, self.ln, eps)
        x = x + self.attn.attend(self.attn.proj(h, self.attn.q), self.attn.proj(h, self.attn.k),
                                 self.attn.proj(h, self.attn.v), bias)
        return self.ff(x, eps)


class T5DecBlock(nn.Module):
    def __init__(self, sd, p, c, gated, act):
        super().__init__()
        self.ln0 = P(sd[p + "layer.0.layer_norm.weight"])
        self.sa = T5Attn(sd, p + "layer.0.SelfAttention.", c.num_heads, c.d_kv)
        self.ln1 = P(sd[p + "layer.1.layer_norm.weight"])
        self.ca = T5Attn(sd, p + "layer.1.EncDecAttention.", c.num_heads, c.d_kv)
        self.ff = T5FF(sd, p + "layer.2.", gated, act)

    def forward(self, x: Tensor, self_bias: Tensor, cross_bias: Tensor, sk: Tensor, sv: Tensor,
                ck: Tensor, cv: Tensor, has_past: bool, eps: float) -> Tuple[Tensor, Tensor, Tensor]:
        h = rms(x, self.ln0, eps)
        k = self.sa.proj(h, self.sa.k)
        v = self.sa.proj(h, self.sa.v)
        if has_past:
            k = torch.cat([sk, k], dim=2)
            v = torch.cat([sv, v], dim=2)
        x = x + self.sa.attend(self.sa.proj(h, self.sa.q), k, v, self_bias)
        h = rms(x, self.ln1, eps)
        x = x + self.ca.attend(self.ca.proj(h, self.ca.q), ck, cv, cross_bias)
        return self.ff(x, eps), k, v


class T5Seq2Seq(nn.Module):
    def __init__(self, hf):
        super().__init__()
        c = hf.config
        sd = {k: v for k, v in hf.state_dict().items()}
        gated = bool(c.is_gated_act)
        act = c.dense_act_fn
        assert act in ("relu", "gelu_new", "gelu"), act
        self.eps = float(c.layer_norm_epsilon)
        self.nb = int(c.relative_attention_num_buckets)
        self.md = int(c.relative_attention_max_distance)
        self.nlayers = int(c.num_decoder_layers)
        self.shared = P(sd["shared.weight"])
        self.lm_head = P(hf.lm_head.weight)  # tied or not, take what the HF model actually uses
        self.out_scale = float(c.d_model) ** -0.5 if getattr(c, "scale_decoder_outputs",
                                                               c.tie_word_embeddings) else 1.0
        self.enc_bias = P(sd["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"])
        self.dec_bias = P(sd["decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"])
        self.enc_ln = P(sd["encoder.final_layer_norm.weight"])
        self.dec_ln = P(sd["decoder.final_layer_norm.weight"])
        self.enc = nn.ModuleList([T5EncBlock(sd, f"encoder.block.{i}.", c, gated, act) for i in range(c.num_layers)])
        self.dec = nn.ModuleList([T5DecBlock(sd, f"decoder.block.{i}.", c, gated, act)
                                  for i in range(c.num_decoder_layers)])

    def pos_bias(self, table: Tensor, qstart: int, qlen: int, klen: int, bidirectional: bool) -> Tensor:
        ctx = torch.arange(qstart, qstart + qlen, device=table.device).unsqueeze(1)
        mem = torch.arange(0, klen, device=table.device).unsqueeze(0)
        b = rel_bucket(mem - ctx, bidirectional, self.nb, self.md)
        return table[b].permute(2, 0, 1).unsqueeze(0)  # [1, heads, q, k]

    @torch.jit.export
    def encode(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        L = input_ids.shape[1]
        x = self.shared[input_ids]
        mask = (1.0 - attention_mask.to(torch.float32))[:, None, None, :] * -3.4028234663852886e+38
        bias = self.pos_bias(self.enc_bias, 0, L, L, True) + mask
        for blk in self.enc:
            x = blk(x, bias, self.eps)
        return rms(x, self.enc_ln, self.eps)

    @torch.jit.export
    def step(self, decoder_input_ids: Tensor, enc_hidden: Tensor, attention_mask: Tensor,
             kv: List[Tensor]) -> Tuple[Tensor, List[Tensor]]:
        has_past = len(kv) > 0
        past = kv[0].shape[2] if has_past else 0
        L = decoder_input_ids.shape[1]
        T = past + L
        x = self.shared[decoder_input_ids]
        sb = self.pos_bias(self.dec_bias, past, L, T, False)
        qpos = torch.arange(past, T, device=x.device).unsqueeze(1)
        kpos = torch.arange(0, T, device=x.device).unsqueeze(0)
        sb = sb.masked_fill(kpos > qpos, -3.4028234663852886e+38)
        cb = (1.0 - attention_mask.to(torch.float32))[:, None, None, :] * -3.4028234663852886e+38
        out: List[Tensor] = []
        empty = torch.empty(0)
        for i, blk in enumerate(self.dec):
            if has_past:
                sk, sv, ck, cv = kv[4 * i], kv[4 * i + 1], kv[4 * i + 2], kv[4 * i + 3]
            else:
                sk, sv = empty, empty
                ck = blk.ca.proj(enc_hidden, blk.ca.k)
                cv = blk.ca.proj(enc_hidden, blk.ca.v)
            x, k, v = blk(x, sb, cb, sk, sv, ck, cv, has_past, self.eps)
            out.extend([k, v, ck, cv])
        x = rms(x, self.dec_ln, self.eps) * self.out_scale
        return F.linear(x, self.lm_head), out

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return self.encode(input_ids, attention_mask)


# ----------------------------------------------------------------------------- build / verify
def tiny_model(arch):
    from transformers import (BertConfig, BertModel, GPT2Config, GPT2LMHeadModel, T5Config,
                              T5ForConditionalGeneration)
    torch.manual_seed(0)
    if arch == "encoder":
        return BertModel(BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                    intermediate_size=37, max_position_embeddings=64, type_vocab_size=2,
                                    attn_implementation="eager"))
    if arch == "decoder":
        return GPT2LMHeadModel(GPT2Config(vocab_size=99, n_positions=64, n_embd=32, n_layer=2, n_head=4,
                                          attn_implementation="eager"))
    return T5ForConditionalGeneration(T5Config(
        vocab_size=99, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
        relative_attention_num_buckets=8, relative_attention_max_distance=20, feed_forward_proj="relu",
        tie_word_embeddings=True, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
        attn_implementation="eager"))


def load_hf(arch, d):
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM
    cls = {"encoder": AutoModel, "decoder": AutoModelForCausalLM, "seq2seq": AutoModelForSeq2SeqLM}[arch]
    return cls.from_pretrained(d, attn_implementation="eager", dtype=torch.float32, local_files_only=True)


def verify(arch, hf, sm, vocab, gen):
    """Returns (max abs diff, dict of reference tensors)."""
    ref = {}
    if arch == "encoder":
        worst = 0.0
        for B, L in [(2, 7), (3, 11)]:
            ids = torch.randint(1, vocab, (B, L), generator=gen)
            mask = torch.ones(B, L, dtype=torch.int64)
            mask[1, -2:] = 0
            want = hf(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).last_hidden_state
            got = sm(ids, mask)
            worst = max(worst, (got - want).abs().max().item())
            if not ref:
                ref = {"encoder.input_ids": ids, "encoder.attention_mask": mask, "encoder.last_hidden_state": got}
        print(f"encoder: max|diff| vs HF last_hidden_state = {worst:.3g}")
        return worst, ref
    if arch == "decoder":
        B, L, N = 2, 5, 6
        ids = torch.randint(0, vocab, (B, L), generator=gen)
        logits, kv = sm.prefill(ids)
        worst = (logits - hf(input_ids=ids, use_cache=False).logits).abs().max().item()
        ref = {"decoder.input_ids": ids, "decoder.prefill_logits": logits}
        seq = ids
        for t in range(N):
            nxt = logits[:, -1:].argmax(-1)
            seq = torch.cat([seq, nxt], 1)
            logits, kv = sm.step(nxt, kv)
            want = hf(input_ids=seq, use_cache=False).logits[:, -1:]
            worst = max(worst, (logits - want).abs().max().item())
            if t == 0:
                ref.update({"decoder.step_input_ids": nxt, "decoder.step_logits": logits})
        hf_greedy = hf.generate(ids, max_new_tokens=N, do_sample=False, use_cache=True, pad_token_id=0,
                                eos_token_id=None)
        print(f"decoder: greedy {N} steps, tokens equal to HF generate: {torch.equal(seq, hf_greedy)}; "
              f"max|diff| logits (prefill+steps vs HF no-cache forward) = {worst:.3g}; kv[0] shape {list(kv[0].shape)}")
        ref["decoder.greedy_sequence"] = seq
        return worst, ref
    B, S, N = 2, 7, 9
    ids = torch.randint(2, vocab, (B, S), generator=gen)
    mask = torch.ones(B, S, dtype=torch.int64)
    mask[1, -2:] = 0
    enc = sm.encode(ids, mask)
    want_enc = hf.get_encoder()(input_ids=ids, attention_mask=mask).last_hidden_state
    worst = (enc - want_enc).abs().max().item()
    start = hf.config.decoder_start_token_id
    dec = torch.full((B, 1), start, dtype=torch.int64)
    kv: List[Tensor] = []
    cur = dec
    ref = {"seq2seq.input_ids": ids, "seq2seq.attention_mask": mask, "seq2seq.enc_hidden": enc}
    for t in range(N):
        logits, kv = sm.step(cur, enc, mask, kv)
        want = hf(input_ids=ids, attention_mask=mask, decoder_input_ids=dec, use_cache=False).logits[:, -1:]
        worst = max(worst, (logits - want).abs().max().item())
        if t == 0:
            ref["seq2seq.step0_logits"] = logits
        cur = logits.argmax(-1)
        dec = torch.cat([dec, cur], 1)
    ref["seq2seq.greedy_decoder_ids"] = dec
    print(f"seq2seq: {N} greedy steps, max|diff| (enc_hidden + step logits vs HF) = {worst:.3g}; "
          f"len(kv)={len(kv)}, kv[0] {list(kv[0].shape)}, kv[2] {list(kv[2].shape)}")
    return worst, ref


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", required=True, choices=["encoder", "decoder", "seq2seq"])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--model-dir", help="HF model dir (config.json + weights)")
    src.add_argument("--tiny", action="store_true", help="build a tiny random HF model instead")
    ap.add_argument("--out", required=True, help="output path; '.pt' is appended if missing")
    ap.add_argument("--reference", help="safetensors file to add '<arch>.*' reference inputs/outputs to")
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()

    hf = (tiny_model(args.arch) if args.tiny else load_hf(args.arch, args.model_dir)).eval().float()
    impl = {"encoder": BertEncoder, "decoder": GPT2Decoder, "seq2seq": T5Seq2Seq}[args.arch]
    sm = torch.jit.script(impl(hf).eval())
    out = args.out if args.out.endswith(".pt") else args.out + ".pt"
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    sm.save(out)
    sm = torch.jit.load(out)  # verify the saved artifact, not the in-memory module
    print(f"wrote {out} ({os.path.getsize(out)} bytes)")
    for name in ("forward", "prefill", "step", "encode"):
        if hasattr(sm, name):
            print(f"  {getattr(sm, name).schema}")
    worst, ref = verify(args.arch, hf, sm, hf.config.vocab_size, torch.Generator().manual_seed(5))
    if args.reference:
        from safetensors.torch import load_file, save_file
        allref = load_file(args.reference) if os.path.exists(args.reference) else {}
        allref = {k: v for k, v in allref.items() if not k.startswith(args.arch + ".")}
        allref.update({k: v.detach().contiguous() for k, v in ref.items()})
        save_file(allref, args.reference)
        print(f"updated {args.reference}: {sorted(ref)}")
    if worst > args.tol:
        raise SystemExit(f"FAILED: max abs diff {worst} > tol {args.tol}")


if __name__ == "__main__":
    main()
