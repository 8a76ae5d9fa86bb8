//! GPT-2 (decoder) on tch: HF parameter names (`Conv1D` weights stored `[in, out]`, LM head tied to `wte`), fused
//! scaled-dot-product attention, and a preallocated per-layer KV cache that decode steps extend in place.

use tch::nn::{self, Module, Path};
use tch::{Kind, Tensor};

use crate::models::kv_cache::KvCache;
use e3pipe::models::config::Gpt2Config;

/// GPT-2's `Conv1D`: `y = x W + b` with `W` stored `[in, out]`.
#[derive(Debug)]
struct Conv1D {
    weight: Tensor,
    bias: Tensor,
}

impl Conv1D {
    fn new(p: Path, n_in: i64, n_out: i64) -> Conv1D {
        Conv1D {
            weight: p.var(
                "weight",
                &[n_in, n_out],
                nn::Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            ),
            bias: p.zeros("bias", &[n_out]),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        x.matmul(&self.weight) + &self.bias
    }
}

#[derive(Debug)]
struct Block {
    ln_1: nn::LayerNorm,
    c_attn: Conv1D,
    attn_proj: Conv1D,
    ln_2: nn::LayerNorm,
    c_fc: Conv1D,
    mlp_proj: Conv1D,
}

#[derive(Debug)]
pub struct Gpt2 {
    pub config: Gpt2Config,
    wte: nn::Embedding,
    wpe: nn::Embedding,
    blocks: Vec<Block>,
    ln_f: nn::LayerNorm,
}

impl Gpt2 {
    /// Variables are named as in HF `GPT2Model` (`wte.weight`, `h.0.attn.c_attn.weight`, ...).
    pub fn new(p: Path, config: &Gpt2Config) -> Gpt2 {
        let e = config.n_embd;
        let inner = config.n_inner.unwrap_or(4 * e);
        let ln = nn::LayerNormConfig {
            eps: config.layer_norm_epsilon,
            ..Default::default()
        };
        let emb = nn::EmbeddingConfig {
            ws_init: nn::Init::Randn {
                mean: 0.0,
                stdev: 0.02,
            },
            ..Default::default()
        };
        let blocks = (0..config.n_layer)
            .map(|i| {
                let b = &p / "h" / i;
                Block {
                    ln_1: nn::layer_norm(&b / "ln_1", vec![e], ln),
                    c_attn: Conv1D::new(&b / "attn" / "c_attn", e, 3 * e),
                    attn_proj: Conv1D::new(&b / "attn" / "c_proj", e, e),
                    ln_2: nn::layer_norm(&b / "ln_2", vec![e], ln),
                    c_fc: Conv1D::new(&b / "mlp" / "c_fc", e, inner),
                    mlp_proj: Conv1D::new(&b / "mlp" / "c_proj", inner, e),
                }
            })
            .collect();
        Gpt2 {
            config: config.clone(),
            wte: nn::embedding(&p / "wte", config.vocab_size, e, emb),
            wpe: nn::embedding(&p / "wpe", config.n_positions, e, emb),
            blocks,
            ln_f: nn::layer_norm(&p / "ln_f", vec![e], ln),
        }
    }

    /// An empty cache sized for `max_len` positions.
    pub fn new_cache(&self, batch: i64, max_len: i64, like: &Tensor) -> KvCache {
        let head_dim = self.config.n_embd / self.config.n_head;
        KvCache::new(
            self.blocks.len(),
            batch,
            self.config.n_head,
            max_len,
            head_dim,
            like.kind(),
            like.device(),
        )
    }

    /// The dtype/device of the weights, to allocate caches alike.
    pub fn weight_like(&self) -> &Tensor {
        &self.wte.ws
    }

    /// Runs `input_ids` `[B, T]` after the `cache.len()` positions already cached, appending their keys/values;
    /// returns logits `[B, T, V]`, or `[B, 1, V]` for the last position only when `last_only` (generation needs
    /// no more, and the LM head over every prompt position would dominate a small model's prefill).
    pub fn forward(&self, input_ids: &Tensor, cache: &mut KvCache, last_only: bool) -> Tensor {
        let (batch, seq) = input_ids.size2().unwrap_or((1, 1));
        let past = cache.len() as i64;
        let heads = self.config.n_head;
        let head_dim = self.config.n_embd / heads;
        let positions = Tensor::arange_start(past, past + seq, (Kind::Int64, input_ids.device()));
        let mut x = self.wte.forward(input_ids) + self.wpe.forward(&positions);
        for (layer, block) in self.blocks.iter().enumerate() {
            let h = block.ln_1.forward(&x);
            let qkv = block
                .c_attn
                .forward(&h)
                .view([batch, seq, 3, heads, head_dim])
                .permute([2, 0, 3, 1, 4]);
            let (q, k, v) = (qkv.get(0), qkv.get(1), qkv.get(2));
            let (k_all, v_all) = cache.append(layer, &k, &v);
            // A prefill attends causally; a single new token attends to everything cached.
            let causal = seq > 1;
            let attn = if causal && past > 0 {
                let mask = causal_mask(seq, past, input_ids.device());
                Tensor::scaled_dot_product_attention(
                    &q,
                    &k_all,
                    &v_all,
                    Some(mask),
                    0.0,
                    false,
                    None,
                    false,
                )
            } else {
                Tensor::scaled_dot_product_attention::<Tensor>(
                    &q, &k_all, &v_all, None, 0.0, causal, None, false,
                )
            };
            let attn = attn.transpose(1, 2).reshape([batch, seq, heads * head_dim]);
            x += block.attn_proj.forward(&attn);
            let h = block.ln_2.forward(&x);
            x += block.mlp_proj.forward(&block.c_fc.forward(&h).gelu("tanh"));
        }
        cache.advance(seq as usize);
        let x = if last_only {
            x.narrow(1, seq - 1, 1)
        } else {
            x
        };
        self.ln_f.forward(&x).matmul(&self.wte.ws.tr())
    }
}

/// Boolean mask `[T, past + T]`: query `i` sees keys `0..=past + i`.
pub fn causal_mask(seq: i64, past: i64, device: tch::Device) -> Tensor {
    let q = Tensor::arange_start(past, past + seq, (Kind::Int64, device)).unsqueeze(1);
    let k = Tensor::arange(past + seq, (Kind::Int64, device)).unsqueeze(0);
    k.le_tensor(&q)
}
