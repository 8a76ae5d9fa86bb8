//! BART (encoder-decoder) on tch with Hugging Face parameter names (`model.shared.weight`,
//! `model.encoder.layers.0.self_attn.q_proj.weight`, ...): learned positions offset by 2, `layernorm_embedding`,
//! post-norm blocks with biased projections, GELU, a cross-attention whose keys and values are computed once from
//! the encoder output, and an LM head plus `final_logits_bias`. Tied (`tie_word_embeddings`, as bart-base), one
//! `model.shared` matrix embeds both sides and is the head; untied, as transformers 5.x builds it, the encoder, the
//! decoder and the head each have their own (a checkpoint that saved only `model.shared` for the embeddings, as 4.x
//! did, fills both from it). Attention is libtorch's fused `scaled_dot_product_attention`.

use tch::nn::{self, Module, Path};
use tch::{Kind, Tensor};

use crate::models::kv_cache::KvCache;
use e3pipe::models::bart_config::{BartConfig, POSITION_OFFSET};

#[derive(Debug)]
struct Attention {
    q: nn::Linear,
    k: nn::Linear,
    v: nn::Linear,
    out: nn::Linear,
    heads: i64,
}

impl Attention {
    fn new(p: Path, d: i64, heads: i64) -> Attention {
        let linear = |name: &str| nn::linear(&p / name, d, d, nn::LinearConfig::default());
        Attention {
            q: linear("q_proj"),
            k: linear("k_proj"),
            v: linear("v_proj"),
            out: linear("out_proj"),
            heads,
        }
    }

    /// `[B, T, D]` -> `[B, H, T, D/H]`.
    fn split(&self, x: &Tensor) -> Tensor {
        let (b, t, d) = x.size3().unwrap_or((1, 1, 1));
        x.view([b, t, self.heads, d / self.heads]).transpose(1, 2)
    }

    fn attend(
        &self,
        x: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: Option<&Tensor>,
        causal: bool,
    ) -> Tensor {
        let (b, t, d) = x.size3().unwrap_or((1, 1, 1));
        let q = self.split(&x.apply(&self.q));
        let y = Tensor::scaled_dot_product_attention(
            &q,
            k,
            v,
            mask.map(Tensor::shallow_clone),
            0.0,
            causal,
            None,
            false,
        );
        y.transpose(1, 2).reshape([b, t, d]).apply(&self.out)
    }
}

#[derive(Debug)]
struct Ffn {
    fc1: nn::Linear,
    fc2: nn::Linear,
    norm: nn::LayerNorm,
}

#[derive(Debug)]
struct EncoderLayer {
    attn: Attention,
    attn_norm: nn::LayerNorm,
    ffn: Ffn,
}

#[derive(Debug)]
struct DecoderLayer {
    self_attn: Attention,
    self_norm: nn::LayerNorm,
    cross_attn: Attention,
    cross_norm: nn::LayerNorm,
    ffn: Ffn,
}

/// A generation in progress: the decoder's self-attention cache, the cross keys/values, the encoder's padding.
#[derive(Debug)]
pub struct BartState {
    pub self_cache: KvCache,
    cross: Vec<(Tensor, Tensor)>,
    cross_mask: Option<Tensor>,
}

#[derive(Debug)]
pub struct Bart {
    pub config: BartConfig,
    /// The encoder's token embedding (`model.shared` when tied) ...
    shared: nn::Embedding,
    /// ... and the decoder's when untied.
    decoder_embed: Option<nn::Embedding>,
    encoder_positions: nn::Embedding,
    encoder_embed_norm: nn::LayerNorm,
    encoder: Vec<EncoderLayer>,
    decoder_positions: nn::Embedding,
    decoder_embed_norm: nn::LayerNorm,
    decoder: Vec<DecoderLayer>,
    /// `None` when tied to `shared`.
    lm_head: Option<Tensor>,
    final_logits_bias: Tensor,
    embed_scale: f64,
}

fn ln(p: Path, d: i64) -> nn::LayerNorm {
    nn::layer_norm(p, vec![d], nn::LayerNormConfig::default())
}

fn ffn(p: &Path, d: i64, inner: i64) -> Ffn {
    Ffn {
        fc1: nn::linear(p / "fc1", d, inner, nn::LinearConfig::default()),
        fc2: nn::linear(p / "fc2", inner, d, nn::LinearConfig::default()),
        norm: ln(p / "final_layer_norm", d),
    }
}

impl Bart {
    /// Variables named as in HF `BartForConditionalGeneration`.
    pub fn new(p: Path, c: &BartConfig) -> Bart {
        let d = c.d_model;
        let emb = nn::EmbeddingConfig {
            ws_init: nn::Init::Randn {
                mean: 0.0,
                stdev: 0.02,
            },
            ..Default::default()
        };
        let m = &p / "model";
        let (e, dec) = (&m / "encoder", &m / "decoder");
        let positions = c.max_position_embeddings + POSITION_OFFSET;
        let encoder = (0..c.encoder_layers)
            .map(|i| {
                let l = &e / "layers" / i;
                EncoderLayer {
                    attn: Attention::new(&l / "self_attn", d, c.encoder_attention_heads),
                    attn_norm: ln(&l / "self_attn_layer_norm", d),
                    ffn: ffn(&l, d, c.encoder_ffn_dim),
                }
            })
            .collect();
        let decoder = (0..c.decoder_layers)
            .map(|i| {
                let l = &dec / "layers" / i;
                DecoderLayer {
                    self_attn: Attention::new(&l / "self_attn", d, c.decoder_attention_heads),
                    self_norm: ln(&l / "self_attn_layer_norm", d),
                    cross_attn: Attention::new(&l / "encoder_attn", d, c.decoder_attention_heads),
                    cross_norm: ln(&l / "encoder_attn_layer_norm", d),
                    ffn: ffn(&l, d, c.decoder_ffn_dim),
                }
            })
            .collect();
        let lm_head = (!c.tie_word_embeddings).then(|| {
            (&p / "lm_head").var(
                "weight",
                &[c.vocab_size, d],
                nn::Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            )
        });
        let (shared, decoder_embed) = if c.tie_word_embeddings {
            (nn::embedding(&m / "shared", c.vocab_size, d, emb), None)
        } else {
            (
                nn::embedding(&e / "embed_tokens", c.vocab_size, d, emb),
                Some(nn::embedding(&dec / "embed_tokens", c.vocab_size, d, emb)),
            )
        };
        Bart {
            config: c.clone(),
            shared,
            decoder_embed,
            encoder_positions: nn::embedding(&e / "embed_positions", positions, d, emb),
            encoder_embed_norm: ln(&e / "layernorm_embedding", d),
            encoder,
            decoder_positions: nn::embedding(&dec / "embed_positions", positions, d, emb),
            decoder_embed_norm: ln(&dec / "layernorm_embedding", d),
            decoder,
            lm_head,
            final_logits_bias: p.zeros("final_logits_bias", &[1, c.vocab_size]),
            embed_scale: if c.scale_embedding {
                (d as f64).sqrt()
            } else {
                1.0
            },
        }
    }

    fn act(&self, x: &Tensor) -> Tensor {
        if self.config.activation_function == "relu" {
            x.relu()
        } else {
            x.gelu("none")
        }
    }

    fn feed_forward(&self, f: &Ffn, x: &Tensor) -> Tensor {
        let y = self.act(&x.apply(&f.fc1)).apply(&f.fc2);
        f.norm.forward(&(y + x))
    }

    fn embed(
        &self,
        ids: &Tensor,
        past: i64,
        tokens: &nn::Embedding,
        table: &nn::Embedding,
        norm: &nn::LayerNorm,
    ) -> Tensor {
        let (_, t) = ids.size2().unwrap_or((1, 1));
        let positions = Tensor::arange_start(
            past + POSITION_OFFSET,
            past + t + POSITION_OFFSET,
            (Kind::Int64, ids.device()),
        );
        norm.forward(&(tokens.forward(ids) * self.embed_scale + table.forward(&positions)))
    }

    /// The encoder's last hidden state; `mask` `[B, S]` (1 = token) only when something is padded.
    pub fn encode(&self, ids: &Tensor, mask: Option<&Tensor>) -> Tensor {
        let (b, s) = ids.size2().unwrap_or((1, 1));
        let keep = mask.map(|m| m.to_kind(Kind::Bool).view([b, 1, 1, s]));
        let mut x = self.embed(
            ids,
            0,
            &self.shared,
            &self.encoder_positions,
            &self.encoder_embed_norm,
        );
        for layer in &self.encoder {
            let k = layer.attn.split(&x.apply(&layer.attn.k));
            let v = layer.attn.split(&x.apply(&layer.attn.v));
            let y = layer.attn.attend(&x, &k, &v, keep.as_ref(), false);
            x = layer.attn_norm.forward(&(y + &x));
            x = self.feed_forward(&layer.ffn, &x);
        }
        x
    }

    /// Cross keys/values from `encoder_out` and an empty self-attention cache for `max_new` tokens.
    pub fn start(&self, encoder_out: &Tensor, mask: Option<&Tensor>, max_new: i64) -> BartState {
        let (b, s, d) = encoder_out.size3().unwrap_or((1, 1, 1));
        let heads = self.config.decoder_attention_heads;
        let cross = self
            .decoder
            .iter()
            .map(|l| {
                (
                    l.cross_attn.split(&encoder_out.apply(&l.cross_attn.k)),
                    l.cross_attn.split(&encoder_out.apply(&l.cross_attn.v)),
                )
            })
            .collect();
        BartState {
            self_cache: KvCache::new(
                self.decoder.len(),
                b,
                heads,
                max_new,
                d / heads,
                encoder_out.kind(),
                encoder_out.device(),
            ),
            cross,
            cross_mask: mask.map(|m| m.to_kind(Kind::Bool).view([b, 1, 1, s])),
        }
    }

    /// Decoder tokens `[B, T]` after those cached; logits `[B, T, V]`.
    pub fn decode(&self, ids: &Tensor, state: &mut BartState) -> Tensor {
        let (_, t) = ids.size2().unwrap_or((1, 1));
        let past = state.self_cache.len() as i64;
        let device = ids.device();
        let tokens = self.decoder_embed.as_ref().unwrap_or(&self.shared);
        let mut x = self.embed(
            ids,
            past,
            tokens,
            &self.decoder_positions,
            &self.decoder_embed_norm,
        );
        let mask = (t > 1 && past > 0).then(|| crate::models::gpt2::causal_mask(t, past, device));
        for (layer, l) in self.decoder.iter().enumerate() {
            let k = l.self_attn.split(&x.apply(&l.self_attn.k));
            let v = l.self_attn.split(&x.apply(&l.self_attn.v));
            let (k_all, v_all) = state.self_cache.append(layer, &k, &v);
            let y = l
                .self_attn
                .attend(&x, &k_all, &v_all, mask.as_ref(), t > 1 && mask.is_none());
            x = l.self_norm.forward(&(y + &x));
            let (ck, cv) = &state.cross[layer];
            let y = l
                .cross_attn
                .attend(&x, ck, cv, state.cross_mask.as_ref(), false);
            x = l.cross_norm.forward(&(y + &x));
            x = self.feed_forward(&l.ffn, &x);
        }
        state.self_cache.advance(t as usize);
        x.matmul(&self.lm_head.as_ref().unwrap_or(&self.shared.ws).tr()) + &self.final_logits_bias
    }
}
