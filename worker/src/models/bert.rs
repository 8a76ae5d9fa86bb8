//! BERT (encoder) on tch with HF parameter names (`embeddings.word_embeddings.weight`,
//! `encoder.layer.0.attention.self.query.weight`, ...), post-layer-norm blocks and fused attention with a padding
//! mask. The pooler is not built: latency is measured to the last hidden state, as for `BertModel`'s main output.

use tch::nn::{self, Module, Path};
use tch::{Kind, Tensor};

use e3pipe::models::config::BertConfig;

#[derive(Debug)]
struct Layer {
    query: nn::Linear,
    key: nn::Linear,
    value: nn::Linear,
    attn_out: nn::Linear,
    attn_norm: nn::LayerNorm,
    intermediate: nn::Linear,
    output: nn::Linear,
    out_norm: nn::LayerNorm,
}

#[derive(Debug)]
pub struct Bert {
    pub config: BertConfig,
    word: nn::Embedding,
    position: nn::Embedding,
    token_type: nn::Embedding,
    emb_norm: nn::LayerNorm,
    layers: Vec<Layer>,
}

impl Bert {
    pub fn new(p: Path, c: &BertConfig) -> Bert {
        let h = c.hidden_size;
        let ln = nn::LayerNormConfig {
            eps: c.layer_norm_eps,
            ..Default::default()
        };
        let emb = nn::EmbeddingConfig {
            ws_init: nn::Init::Randn {
                mean: 0.0,
                stdev: 0.02,
            },
            ..Default::default()
        };
        let e = &p / "embeddings";
        let layers = (0..c.num_hidden_layers)
            .map(|i| {
                let l = &p / "encoder" / "layer" / i;
                Layer {
                    query: nn::linear(
                        &l / "attention" / "self" / "query",
                        h,
                        h,
                        nn::LinearConfig::default(),
                    ),
                    key: nn::linear(
                        &l / "attention" / "self" / "key",
                        h,
                        h,
                        nn::LinearConfig::default(),
                    ),
                    value: nn::linear(
                        &l / "attention" / "self" / "value",
                        h,
                        h,
                        nn::LinearConfig::default(),
                    ),
                    attn_out: nn::linear(
                        &l / "attention" / "output" / "dense",
                        h,
                        h,
                        nn::LinearConfig::default(),
                    ),
                    attn_norm: nn::layer_norm(
                        &l / "attention" / "output" / "LayerNorm",
                        vec![h],
                        ln,
                    ),
                    intermediate: nn::linear(
                        &l / "intermediate" / "dense",
                        h,
                        c.intermediate_size,
                        nn::LinearConfig::default(),
                    ),
                    output: nn::linear(
                        &l / "output" / "dense",
                        c.intermediate_size,
                        h,
                        nn::LinearConfig::default(),
                    ),
                    out_norm: nn::layer_norm(&l / "output" / "LayerNorm", vec![h], ln),
                }
            })
            .collect();
        Bert {
            word: nn::embedding(&e / "word_embeddings", c.vocab_size, h, emb),
            position: nn::embedding(
                &e / "position_embeddings",
                c.max_position_embeddings,
                h,
                emb,
            ),
            token_type: nn::embedding(&e / "token_type_embeddings", c.type_vocab_size, h, emb),
            emb_norm: nn::layer_norm(&e / "LayerNorm", vec![h], ln),
            config: c.clone(),
            layers,
        }
    }

    pub fn weight_like(&self) -> &Tensor {
        &self.word.ws
    }

    /// `input_ids`, `attention_mask` `[B, S]` -> last hidden state `[B, S, H]` (token types all 0). No mask when
    /// nothing is padded: attention over everything needs none, and on CUDA a mask rules out the fastest kernel.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Tensor {
        let (b, s) = input_ids.size2().unwrap_or((1, 1));
        let heads = self.config.num_attention_heads;
        let head_dim = self.config.hidden_size / heads;
        let device = input_ids.device();
        let positions = Tensor::arange(s, (Kind::Int64, device));
        let types = Tensor::zeros([b, s], (Kind::Int64, device));
        let mut x = self.emb_norm.forward(
            &(self.word.forward(input_ids)
                + self.position.forward(&positions)
                + self.token_type.forward(&types)),
        );
        let keep = attention_mask.map(|m| m.to_kind(Kind::Bool).view([b, 1, 1, s]));
        let split = |t: Tensor| t.view([b, s, heads, head_dim]).transpose(1, 2);
        let gelu_approx = if self.config.hidden_act == "gelu_new"
            || self.config.hidden_act == "gelu_pytorch_tanh"
        {
            "tanh"
        } else {
            "none"
        };
        for layer in &self.layers {
            let q = split(x.apply(&layer.query));
            let k = split(x.apply(&layer.key));
            let v = split(x.apply(&layer.value));
            let attn = Tensor::scaled_dot_product_attention(
                &q,
                &k,
                &v,
                keep.as_ref(),
                0.0,
                false,
                None,
                false,
            );
            let attn = attn
                .transpose(1, 2)
                .reshape([b, s, heads * head_dim])
                .apply(&layer.attn_out);
            x = layer.attn_norm.forward(&(attn + &x));
            let ff = x
                .apply(&layer.intermediate)
                .gelu(gelu_approx)
                .apply(&layer.output);
            x = layer.out_norm.forward(&(ff + &x));
        }
        x
    }
}
