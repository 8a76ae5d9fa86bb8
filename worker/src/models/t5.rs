//! T5 (encoder-decoder) on tch with HF parameter names: RMS layer norm, unscaled attention with a learned relative
//! position bias (from each stack's first block), decoder self-attention KV cache, and cross-attention keys/values
//! computed once per generation from the encoder output.
//!
//! The position bias is built with tensor ops on the model's device, as transformers does: a host loop over the
//! S×S bucket table (≈1M scalar calls at S = 1024) and its copy to the device would land in the timed encoder and
//! in every decode step. The scalar bucket function survives only as the test oracle.

use tch::nn::{self, Module, Path};
use tch::{Device, Kind, Tensor};

use crate::models::kv_cache::KvCache;
use e3pipe::models::config::T5Config;

#[derive(Debug)]
struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    fn new(p: Path, dim: i64, eps: f64) -> RmsNorm {
        RmsNorm {
            weight: p.ones("weight", &[dim]),
            eps,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        // Variance in fp32 as HF does, then back to the weights' dtype.
        let variance = x
            .to_kind(Kind::Float)
            .pow_tensor_scalar(2)
            .mean_dim(-1, true, Kind::Float);
        let normed = x.to_kind(Kind::Float) * (variance + self.eps).rsqrt();
        normed.to_kind(self.weight.kind()) * &self.weight
    }
}

#[derive(Debug)]
struct Attention {
    q: nn::Linear,
    k: nn::Linear,
    v: nn::Linear,
    o: nn::Linear,
    heads: i64,
    d_kv: i64,
}

fn no_bias() -> nn::LinearConfig {
    nn::LinearConfig {
        bias: false,
        ..Default::default()
    }
}

impl Attention {
    fn new(p: Path, c: &T5Config) -> Attention {
        let inner = c.num_heads * c.d_kv;
        Attention {
            q: nn::linear(&p / "q", c.d_model, inner, no_bias()),
            k: nn::linear(&p / "k", c.d_model, inner, no_bias()),
            v: nn::linear(&p / "v", c.d_model, inner, no_bias()),
            o: nn::linear(&p / "o", inner, c.d_model, no_bias()),
            heads: c.num_heads,
            d_kv: c.d_kv,
        }
    }

    fn split(&self, x: &Tensor) -> Tensor {
        let (b, t, _) = x.size3().unwrap_or((1, 1, 1));
        x.view([b, t, self.heads, self.d_kv]).transpose(1, 2)
    }

    /// Attention of `q_in` over given keys/values with additive `bias` `[1|B, H, Tq, Tk]`; T5 does not scale.
    fn attend(&self, q_in: &Tensor, k: &Tensor, v: &Tensor, bias: Option<&Tensor>) -> Tensor {
        let (b, t, _) = q_in.size3().unwrap_or((1, 1, 1));
        let q = self.split(&q_in.apply(&self.q));
        let out = Tensor::scaled_dot_product_attention(
            &q,
            k,
            v,
            bias.map(|b| b.to_kind(q.kind())),
            0.0,
            false,
            1.0,
            false,
        );
        out.transpose(1, 2)
            .reshape([b, t, self.heads * self.d_kv])
            .apply(&self.o)
    }
}

#[derive(Debug)]
enum FeedForward {
    Relu {
        wi: nn::Linear,
        wo: nn::Linear,
    },
    Gated {
        wi_0: nn::Linear,
        wi_1: nn::Linear,
        wo: nn::Linear,
        gelu: bool,
    },
}

impl FeedForward {
    fn new(p: Path, c: &T5Config) -> FeedForward {
        let p = &p / "DenseReluDense";
        let wo = nn::linear(&p / "wo", c.d_ff, c.d_model, no_bias());
        match c.feed_forward_proj.as_str() {
            "relu" => FeedForward::Relu {
                wi: nn::linear(&p / "wi", c.d_model, c.d_ff, no_bias()),
                wo,
            },
            other => FeedForward::Gated {
                wi_0: nn::linear(&p / "wi_0", c.d_model, c.d_ff, no_bias()),
                wi_1: nn::linear(&p / "wi_1", c.d_model, c.d_ff, no_bias()),
                wo,
                gelu: other.contains("gelu"),
            },
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        match self {
            FeedForward::Relu { wi, wo } => x.apply(wi).relu().apply(wo),
            FeedForward::Gated {
                wi_0,
                wi_1,
                wo,
                gelu,
            } => {
                let gate = x.apply(wi_0);
                let gate = if *gelu {
                    gate.gelu("tanh")
                } else {
                    gate.relu()
                };
                (gate * x.apply(wi_1)).apply(wo)
            }
        }
    }
}

#[derive(Debug)]
struct EncoderBlock {
    attn: Attention,
    attn_norm: RmsNorm,
    ff: FeedForward,
    ff_norm: RmsNorm,
}

#[derive(Debug)]
struct DecoderBlock {
    self_attn: Attention,
    self_norm: RmsNorm,
    cross_attn: Attention,
    cross_norm: RmsNorm,
    ff: FeedForward,
    ff_norm: RmsNorm,
}

/// What a generation carries between decode steps.
#[derive(Debug)]
pub struct T5State {
    pub self_cache: KvCache,
    /// Per decoder layer: cross-attention keys and values of the encoder output.
    cross: Vec<(Tensor, Tensor)>,
    /// Additive encoder padding mask `[B, 1, 1, S]`, when something is padded.
    cross_bias: Option<Tensor>,
}

#[derive(Debug)]
pub struct T5 {
    pub config: T5Config,
    shared: nn::Embedding,
    encoder: Vec<EncoderBlock>,
    encoder_bias: nn::Embedding,
    encoder_norm: RmsNorm,
    decoder: Vec<DecoderBlock>,
    decoder_bias: nn::Embedding,
    decoder_norm: RmsNorm,
    lm_head: Option<nn::Linear>,
}

impl T5 {
    /// Variables are named as in HF `T5ForConditionalGeneration`.
    pub fn new(p: Path, c: &T5Config) -> T5 {
        let emb = nn::EmbeddingConfig {
            ws_init: nn::Init::Randn {
                mean: 0.0,
                stdev: 1.0,
            },
            ..Default::default()
        };
        let shared = nn::embedding(&p / "shared", c.vocab_size, c.d_model, emb);
        let eps = c.layer_norm_epsilon;
        let enc = &p / "encoder";
        let encoder = (0..c.num_layers)
            .map(|i| {
                let b = &enc / "block" / i / "layer";
                EncoderBlock {
                    attn: Attention::new(&b / 0 / "SelfAttention", c),
                    attn_norm: RmsNorm::new(&b / 0 / "layer_norm", c.d_model, eps),
                    ff: FeedForward::new(&b / 1, c),
                    ff_norm: RmsNorm::new(&b / 1 / "layer_norm", c.d_model, eps),
                }
            })
            .collect();
        let dec = &p / "decoder";
        let decoder = (0..c.num_decoder_layers.unwrap_or(c.num_layers))
            .map(|i| {
                let b = &dec / "block" / i / "layer";
                DecoderBlock {
                    self_attn: Attention::new(&b / 0 / "SelfAttention", c),
                    self_norm: RmsNorm::new(&b / 0 / "layer_norm", c.d_model, eps),
                    cross_attn: Attention::new(&b / 1 / "EncDecAttention", c),
                    cross_norm: RmsNorm::new(&b / 1 / "layer_norm", c.d_model, eps),
                    ff: FeedForward::new(&b / 2, c),
                    ff_norm: RmsNorm::new(&b / 2 / "layer_norm", c.d_model, eps),
                }
            })
            .collect();
        let bias_cfg = nn::EmbeddingConfig::default();
        T5 {
            encoder_bias: nn::embedding(
                &enc / "block" / 0 / "layer" / 0 / "SelfAttention" / "relative_attention_bias",
                c.relative_attention_num_buckets,
                c.num_heads,
                bias_cfg,
            ),
            encoder_norm: RmsNorm::new(&enc / "final_layer_norm", c.d_model, eps),
            decoder_bias: nn::embedding(
                &dec / "block" / 0 / "layer" / 0 / "SelfAttention" / "relative_attention_bias",
                c.relative_attention_num_buckets,
                c.num_heads,
                bias_cfg,
            ),
            decoder_norm: RmsNorm::new(&dec / "final_layer_norm", c.d_model, eps),
            lm_head: (!c.tie_word_embeddings)
                .then(|| nn::linear(&p / "lm_head", c.d_model, c.vocab_size, no_bias())),
            config: c.clone(),
            shared,
            encoder,
            decoder,
        }
    }

    pub fn weight_like(&self) -> &Tensor {
        &self.shared.ws
    }

    /// Relative position bias `[1, H, Tq, Tk]` for queries at `q_start..q_start+tq` over keys `0..tk`.
    fn position_bias(
        &self,
        table: &nn::Embedding,
        bidirectional: bool,
        q_start: i64,
        tq: i64,
        tk: i64,
        device: Device,
    ) -> Tensor {
        let c = &self.config;
        let queries =
            Tensor::arange_start(q_start, q_start + tq, (Kind::Int64, device)).unsqueeze(1);
        let keys = Tensor::arange(tk, (Kind::Int64, device)).unsqueeze(0);
        let buckets = relative_position_buckets(
            &(keys - queries),
            bidirectional,
            c.relative_attention_num_buckets,
            c.relative_attention_max_distance,
        );
        table.forward(&buckets).permute([2, 0, 1]).unsqueeze(0)
    }

    /// Encoder stack: `input_ids` `[B, S]`, `attention_mask` `[B, S]` (1 = token; `None`: nothing padded) ->
    /// hidden `[B, S, D]`.
    pub fn encode(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Tensor {
        let (_, s) = input_ids.size2().unwrap_or((1, 1));
        let device = input_ids.device();
        let mut bias = self.position_bias(&self.encoder_bias, true, 0, s, s, device);
        if let Some(mask) = attention_mask {
            // Not `+=`: that is an in-place add into `[1, H, S, S]`, and the padding broadcasts it to `[B, H, S, S]`.
            #[allow(clippy::assign_op_pattern)]
            {
                bias = bias + padding_bias(mask);
            }
        }
        let mut x = self.shared.forward(input_ids);
        for block in &self.encoder {
            let h = block.attn_norm.forward(&x);
            let (k, v) = (
                block.attn.split(&h.apply(&block.attn.k)),
                block.attn.split(&h.apply(&block.attn.v)),
            );
            x += block.attn.attend(&h, &k, &v, Some(&bias));
            x = &x + block.ff.forward(&block.ff_norm.forward(&x));
        }
        self.encoder_norm.forward(&x)
    }

    /// Prepares a generation: cross-attention keys/values from `encoder_out`, an empty self-attention cache.
    pub fn start(
        &self,
        encoder_out: &Tensor,
        attention_mask: Option<&Tensor>,
        max_new: i64,
    ) -> T5State {
        let (b, _, _) = encoder_out.size3().unwrap_or((1, 1, 1));
        let cross = self
            .decoder
            .iter()
            .map(|blk| {
                (
                    blk.cross_attn.split(&encoder_out.apply(&blk.cross_attn.k)),
                    blk.cross_attn.split(&encoder_out.apply(&blk.cross_attn.v)),
                )
            })
            .collect();
        let w = self.weight_like();
        T5State {
            self_cache: KvCache::new(
                self.decoder.len(),
                b,
                self.config.num_heads,
                max_new,
                self.config.d_kv,
                w.kind(),
                w.device(),
            ),
            cross,
            cross_bias: attention_mask.map(padding_bias),
        }
    }

    /// Decoder on `decoder_ids` `[B, T]` after the cached positions; returns logits `[B, T, V]`.
    pub fn decode(&self, decoder_ids: &Tensor, state: &mut T5State) -> Tensor {
        let (_, t) = decoder_ids.size2().unwrap_or((1, 1));
        let past = state.self_cache.len() as i64;
        let device = decoder_ids.device();
        let mut self_bias =
            self.position_bias(&self.decoder_bias, false, past, t, past + t, device);
        if t > 1 {
            let allowed = crate::models::gpt2::causal_mask(t, past, device);
            self_bias += Tensor::zeros_like(&allowed.to_kind(Kind::Float))
                .masked_fill(&allowed.logical_not(), f64::from(f32::MIN));
        }
        let mut x = self.shared.forward(decoder_ids);
        for (layer, block) in self.decoder.iter().enumerate() {
            let h = block.self_norm.forward(&x);
            let (k, v) = (
                block.self_attn.split(&h.apply(&block.self_attn.k)),
                block.self_attn.split(&h.apply(&block.self_attn.v)),
            );
            let (k_all, v_all) = state.self_cache.append(layer, &k, &v);
            x += block.self_attn.attend(&h, &k_all, &v_all, Some(&self_bias));
            let h = block.cross_norm.forward(&x);
            let (ck, cv) = &state.cross[layer];
            x += block
                .cross_attn
                .attend(&h, ck, cv, state.cross_bias.as_ref());
            x = &x + block.ff.forward(&block.ff_norm.forward(&x));
        }
        state.self_cache.advance(t as usize);
        let x = self.decoder_norm.forward(&x);
        match &self.lm_head {
            Some(head) => x.apply(head),
            // Tied embeddings: HF rescales by d_model^-0.5 before the shared projection.
            None => (x * (self.config.d_model as f64).powf(-0.5)).matmul(&self.shared.ws.tr()),
        }
    }
}

/// Additive mask `[B, 1, 1, S]`: 0 for tokens, the dtype's minimum for padding.
fn padding_bias(attention_mask: &Tensor) -> Tensor {
    let keep = attention_mask
        .to_kind(Kind::Float)
        .unsqueeze(1)
        .unsqueeze(1);
    (1.0 - keep) * f64::from(f32::MIN)
}

/// HF's `_relative_position_bucket` on a tensor of relative positions (key - query), on its device: exact buckets
/// for small distances, log-spaced ones (computed in f32 like the reference) up to `max_distance`.
pub fn relative_position_buckets(
    relative: &Tensor,
    bidirectional: bool,
    num_buckets: i64,
    max_distance: i64,
) -> Tensor {
    let (mut buckets, mut result, rel) =
        (num_buckets, relative.zeros_like(), relative.shallow_clone());
    let rel = if bidirectional {
        buckets /= 2;
        result = rel.gt(0).to_kind(Kind::Int64) * buckets;
        rel.abs()
    } else {
        rel.clamp_max(0).neg()
    };
    let max_exact = buckets / 2;
    let is_small = rel.lt(max_exact);
    // clamp_min(1) keeps ln finite where the exact branch is taken anyway.
    let large = (rel.clamp_min(1).to_kind(Kind::Float) / max_exact as f64).log()
        / (max_distance as f64 / max_exact as f64).ln()
        * (buckets - max_exact) as f64;
    let large = (large.to_kind(Kind::Int64) + max_exact).clamp_max(buckets - 1);
    result + rel.where_self(&is_small, &large)
}

#[cfg(test)]
mod tests {
    use super::relative_position_buckets;
    use tch::{Kind, Tensor};

    /// HF's scalar `_relative_position_bucket`, the oracle for the tensor version (f32 like the reference).
    fn bucket(relative: i64, bidirectional: bool, num_buckets: i64, max_distance: i64) -> i64 {
        let mut buckets = num_buckets;
        let mut result = 0;
        let mut rel = relative;
        if bidirectional {
            buckets /= 2;
            if rel > 0 {
                result += buckets;
            }
            rel = rel.abs();
        } else {
            rel = -rel.min(0);
        }
        let max_exact = buckets / 2;
        if rel < max_exact {
            return result + rel;
        }
        let scaled = ((rel as f32 / max_exact as f32).ln()
            / (max_distance as f64 / max_exact as f64).ln() as f32
            * (buckets - max_exact) as f32) as i64;
        result + (max_exact + scaled).min(buckets - 1)
    }

    #[test]
    fn oracle_matches_hf() {
        // Values from HF T5Attention._relative_position_bucket(num_buckets=32, max_distance=128).
        assert_eq!(bucket(0, true, 32, 128), 0);
        assert_eq!(bucket(3, true, 32, 128), 19);
        assert_eq!(bucket(-3, true, 32, 128), 3);
        assert_eq!(bucket(-200, true, 32, 128), 15);
        assert_eq!(bucket(-5, false, 32, 128), 5);
        assert_eq!(bucket(5, false, 32, 128), 0);
    }

    #[test]
    fn tensor_buckets_equal_the_scalar_reference_everywhere() {
        // Every relative position of a 1100-token sequence, both directions, T5's and the fixtures' settings.
        let rel: Vec<i64> = (-1100..=1100).collect();
        let t = Tensor::from_slice(&rel);
        for (bidirectional, num_buckets, max_distance) in [
            (true, 32, 128),
            (false, 32, 128),
            (true, 8, 20),
            (false, 8, 20),
        ] {
            let got = relative_position_buckets(&t, bidirectional, num_buckets, max_distance);
            assert_eq!(got.kind(), Kind::Int64);
            let got: Vec<i64> = Vec::try_from(&got).unwrap();
            for (r, g) in rel.iter().zip(got) {
                assert_eq!(
                    g,
                    bucket(*r, bidirectional, num_buckets, max_distance),
                    "relative {r}"
                );
            }
        }
    }
}
