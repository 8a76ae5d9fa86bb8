//! The Llama-family decoder (`llama`, `qwen2`, `mistral`) on tch, with Hugging Face parameter names
//! (`model.layers.0.self_attn.q_proj.weight`, ...): `RMSNorm`, rotary positions (default or Llama 3 scaled),
//! grouped-query attention whose KV cache holds only the key/value heads, a `SwiGLU` MLP, and a tied or untied LM
//! head. Attention is libtorch's fused `scaled_dot_product_attention` with `enable_gqa`; a sliding window (Mistral)
//! needs an explicit mask in a prefill longer than the window, and a decode step attends only the window's keys, so
//! its cost stays bounded as transformers' does.

use tch::nn::{self, Module, Path};
use tch::{Kind, Tensor};

use crate::models::kv_cache::KvCache;
use e3pipe::models::config::{LlamaConfig, LlamaFamily};
use e3pipe::models::llama_config::Rope;

#[derive(Debug)]
struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    fn new(p: Path, n_in: i64, n_out: i64, bias: bool) -> Linear {
        Linear {
            weight: p.var(
                "weight",
                &[n_out, n_in],
                nn::Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            ),
            bias: bias.then(|| p.zeros("bias", &[n_out])),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.weight, self.bias.as_ref())
    }
}

/// `x / rms(x) · weight`, computed in fp32 as transformers does, then cast back.
#[derive(Debug)]
struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    fn new(p: Path, size: i64, eps: f64) -> RmsNorm {
        RmsNorm {
            weight: p.ones("weight", &[size]),
            eps,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let kind = x.kind();
        let xf = x.to_kind(Kind::Float);
        let variance = xf.pow_tensor_scalar(2).mean_dim(-1, true, Kind::Float);
        let normed = (xf * (variance + self.eps).rsqrt()).to_kind(kind);
        &self.weight * normed
    }
}

#[derive(Debug)]
struct Block {
    input_norm: RmsNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    post_norm: RmsNorm,
    gate: Linear,
    up: Linear,
    down: Linear,
}

#[derive(Debug)]
pub struct Llama {
    pub config: LlamaConfig,
    family: LlamaFamily,
    embed: nn::Embedding,
    blocks: Vec<Block>,
    norm: RmsNorm,
    /// `None` when tied to the embedding.
    lm_head: Option<Tensor>,
    /// Rotary inverse frequencies `[head_dim / 2]`, fp32.
    inv_freq: Tensor,
}

/// The rotary inverse frequencies of `rope` for head size `dim`, as transformers computes them (fp32).
fn inverse_frequencies(rope: Rope, dim: i64, device: tch::Device) -> Tensor {
    let theta = match rope {
        Rope::Default { theta } | Rope::Llama3 { theta, .. } => theta,
    };
    let exponents = Tensor::arange_start_step(0, dim, 2, (Kind::Int64, device))
        .to_kind(Kind::Float)
        / dim as f64;
    let inv = Tensor::pow_scalar(theta, &exponents).reciprocal();
    let Rope::Llama3 {
        factor,
        low_freq_factor,
        high_freq_factor,
        original_max_position_embeddings: old,
        ..
    } = rope
    else {
        return inv;
    };
    // Llama 3.1: long wavelengths divided by `factor`, short ones kept, the band between interpolated.
    let (low_wavelen, high_wavelen) = (old / low_freq_factor, old / high_freq_factor);
    let wavelen = inv.reciprocal() * (2.0 * std::f64::consts::PI);
    let scaled = inv.where_self(&wavelen.le(low_wavelen), &(&inv / factor));
    let smooth =
        (wavelen.reciprocal() * old - low_freq_factor) / (high_freq_factor - low_freq_factor);
    let smoothed: Tensor = (smooth.neg() + 1.0) * &scaled / factor + &smooth * &scaled;
    let medium = wavelen
        .ge(high_wavelen)
        .logical_and(&wavelen.le(low_wavelen));
    smoothed.where_self(&medium, &scaled)
}

/// `[-x2, x1]` of the two halves of the last dimension.
fn rotate_half(x: &Tensor) -> Tensor {
    let half = x.size()[x.dim() - 1] / 2;
    let (x1, x2) = (x.narrow(-1, 0, half), x.narrow(-1, half, half));
    Tensor::cat(&[x2.neg(), x1], -1)
}

impl Llama {
    /// Variables are named as in HF `LlamaForCausalLM` (`model.embed_tokens.weight`, `lm_head.weight`, ...).
    pub fn new(p: Path, config: &LlamaConfig, family: LlamaFamily, rope: Rope) -> Llama {
        let d = config.hidden_size;
        let (h, kv, dh) = (
            config.num_attention_heads,
            config.kv_heads(),
            config.head_size(),
        );
        let ff = config.intermediate_size;
        let (qkv_bias, o_bias) = config.biases(family);
        let m = &p / "model";
        let blocks = (0..config.num_hidden_layers)
            .map(|i| {
                let b = &m / "layers" / i;
                let attn = &b / "self_attn";
                let mlp = &b / "mlp";
                Block {
                    input_norm: RmsNorm::new(&b / "input_layernorm", d, config.rms_norm_eps),
                    q: Linear::new(&attn / "q_proj", d, h * dh, qkv_bias),
                    k: Linear::new(&attn / "k_proj", d, kv * dh, qkv_bias),
                    v: Linear::new(&attn / "v_proj", d, kv * dh, qkv_bias),
                    o: Linear::new(&attn / "o_proj", h * dh, d, o_bias),
                    post_norm: RmsNorm::new(
                        &b / "post_attention_layernorm",
                        d,
                        config.rms_norm_eps,
                    ),
                    gate: Linear::new(&mlp / "gate_proj", d, ff, config.mlp_bias),
                    up: Linear::new(&mlp / "up_proj", d, ff, config.mlp_bias),
                    down: Linear::new(&mlp / "down_proj", ff, d, config.mlp_bias),
                }
            })
            .collect();
        let embed = nn::embedding(
            &m / "embed_tokens",
            config.vocab_size,
            d,
            nn::EmbeddingConfig {
                ws_init: nn::Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
                ..Default::default()
            },
        );
        let lm_head = (!config.tie_word_embeddings).then(|| {
            (&p / "lm_head").var(
                "weight",
                &[config.vocab_size, d],
                nn::Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            )
        });
        Llama {
            config: config.clone(),
            family,
            embed,
            blocks,
            norm: RmsNorm::new(&m / "norm", d, config.rms_norm_eps),
            lm_head,
            inv_freq: inverse_frequencies(rope, dh, p.device()),
        }
    }

    /// An empty cache of the key/value heads only, sized for `max_len` positions.
    pub fn new_cache(&self, batch: i64, max_len: i64) -> KvCache {
        KvCache::new(
            self.blocks.len(),
            batch,
            self.config.kv_heads(),
            max_len,
            self.config.head_size(),
            self.embed.ws.kind(),
            self.embed.ws.device(),
        )
    }

    /// Runs `input_ids` `[B, T]` after the cached positions, appending their keys/values; logits `[B, T, V]`, or
    /// of the last position only (`last_only`).
    pub fn forward(&self, input_ids: &Tensor, cache: &mut KvCache, last_only: bool) -> Tensor {
        let (batch, seq) = input_ids.size2().unwrap_or((1, 1));
        let past = cache.len() as i64;
        let (h, kv, dh) = (
            self.config.num_attention_heads,
            self.config.kv_heads(),
            self.config.head_size(),
        );
        let device = input_ids.device();
        let mut x = self.embed.forward(input_ids);
        let kind = x.kind();
        // cos/sin `[T, dh]` for these positions, computed in fp32 and cast as transformers does.
        let positions =
            Tensor::arange_start(past, past + seq, (Kind::Int64, device)).to_kind(Kind::Float);
        let freqs = positions.unsqueeze(1) * self.inv_freq.unsqueeze(0);
        let angles = Tensor::cat(&[&freqs, &freqs], -1);
        let (cos, sin) = (angles.cos().to_kind(kind), angles.sin().to_kind(kind));
        let rotate = |t: &Tensor| t * &cos + rotate_half(t) * &sin;
        let window = self.config.window(self.family);
        let total = past + seq;
        // Keys a query can see: all before it (causal), at most `window` of them.
        let mask = (seq > 1 && (past > 0 || window.is_some_and(|w| w < total)))
            .then(|| attention_mask(seq, past, window, device));
        for (layer, block) in self.blocks.iter().enumerate() {
            let hs = block.input_norm.forward(&x);
            let q = rotate(
                &block
                    .q
                    .forward(&hs)
                    .view([batch, seq, h, dh])
                    .transpose(1, 2),
            );
            let k = rotate(
                &block
                    .k
                    .forward(&hs)
                    .view([batch, seq, kv, dh])
                    .transpose(1, 2),
            );
            let v = block
                .v
                .forward(&hs)
                .view([batch, seq, kv, dh])
                .transpose(1, 2);
            let (mut k_all, mut v_all) = cache.append(layer, &k, &v);
            let gqa = kv != h;
            let attn = if let Some(mask) = &mask {
                Tensor::scaled_dot_product_attention(
                    &q,
                    &k_all,
                    &v_all,
                    Some(mask.shallow_clone()),
                    0.0,
                    false,
                    None,
                    gqa,
                )
            } else {
                if seq == 1
                    && let Some(w) = window.filter(|w| *w < total)
                {
                    // A decode step sees the last `window` keys only.
                    k_all = k_all.narrow(2, total - w, w);
                    v_all = v_all.narrow(2, total - w, w);
                }
                Tensor::scaled_dot_product_attention::<Tensor>(
                    &q,
                    &k_all,
                    &v_all,
                    None,
                    0.0,
                    seq > 1,
                    None,
                    gqa,
                )
            };
            let attn = attn.transpose(1, 2).reshape([batch, seq, h * dh]);
            x += block.o.forward(&attn);
            let hs = block.post_norm.forward(&x);
            x += block
                .down
                .forward(&(block.gate.forward(&hs).silu() * block.up.forward(&hs)));
        }
        cache.advance(seq as usize);
        let x = if last_only {
            x.narrow(1, seq - 1, 1)
        } else {
            x
        };
        let x = self.norm.forward(&x);
        x.matmul(&self.lm_head.as_ref().unwrap_or(&self.embed.ws).tr())
    }
}

/// Boolean mask `[T, past + T]`: query `i` (at position `past + i`) sees keys `j` with
/// `past + i - window < j ≤ past + i`.
fn attention_mask(seq: i64, past: i64, window: Option<i64>, device: tch::Device) -> Tensor {
    let q = Tensor::arange_start(past, past + seq, (Kind::Int64, device)).unsqueeze(1);
    let k = Tensor::arange(past + seq, (Kind::Int64, device)).unsqueeze(0);
    let causal = k.le_tensor(&q);
    match window {
        Some(w) => causal.logical_and(&k.gt_tensor(&(q - w))),
        None => causal,
    }
}
