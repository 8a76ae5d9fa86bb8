//! BERT (encoder) on tch with HF parameter names (`embeddings.word_embeddings.weight`,
//! `encoder.layer.0.attention.self.query.weight`, ...), post-layer-norm blocks and fused attention with a padding
//! mask. The pooler is not built: latency is measured to the last hidden state, as for `BertModel`'s main output.
//! Two more encoders are this network under other names: `RoBERTa` (positions counted from the padding id, as
//! transformers numbers them: only non-padding tokens advance the count) and `DistilBERT` (its own parameter names,
//! no token types).

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

/// Which of the BERT-shaped encoders this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Bert,
    /// Positions `pad + 1 ..` for the non-padding tokens.
    Roberta {
        pad: i64,
    },
    DistilBert,
}

/// The parameter names of one flavor (relative to the layer or the embeddings).
struct Names {
    query: &'static str,
    key: &'static str,
    value: &'static str,
    attn_out: &'static str,
    attn_norm: &'static str,
    intermediate: &'static str,
    output: &'static str,
    out_norm: &'static str,
}

const BERT_NAMES: Names = Names {
    query: "attention.self.query",
    key: "attention.self.key",
    value: "attention.self.value",
    attn_out: "attention.output.dense",
    attn_norm: "attention.output.LayerNorm",
    intermediate: "intermediate.dense",
    output: "output.dense",
    out_norm: "output.LayerNorm",
};

const DISTILBERT_NAMES: Names = Names {
    query: "attention.q_lin",
    key: "attention.k_lin",
    value: "attention.v_lin",
    attn_out: "attention.out_lin",
    attn_norm: "sa_layer_norm",
    intermediate: "ffn.lin1",
    output: "ffn.lin2",
    out_norm: "output_layer_norm",
};

/// `p` / "a.b.c".
fn at<'a>(p: &nn::Path<'a>, dotted: &str) -> nn::Path<'a> {
    let mut parts = dotted.split('.');
    let first = parts.next().unwrap_or_default();
    parts.fold(p / first, |acc, part| &acc / part)
}

#[derive(Debug)]
pub struct Bert {
    pub config: BertConfig,
    flavor: Flavor,
    word: nn::Embedding,
    position: nn::Embedding,
    token_type: Option<nn::Embedding>,
    emb_norm: nn::LayerNorm,
    layers: Vec<Layer>,
}

impl Bert {
    pub fn new(p: Path, c: &BertConfig, flavor: Flavor) -> Bert {
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
        let (e, stack, names) = match flavor {
            Flavor::DistilBert => (
                &p / "embeddings",
                &p / "transformer" / "layer",
                &DISTILBERT_NAMES,
            ),
            Flavor::Bert | Flavor::Roberta { .. } => {
                (&p / "embeddings", &p / "encoder" / "layer", &BERT_NAMES)
            }
        };
        let linear = |l: &nn::Path, name: &str, n_in: i64, n_out: i64| {
            nn::linear(at(l, name), n_in, n_out, nn::LinearConfig::default())
        };
        let layers = (0..c.num_hidden_layers)
            .map(|i| {
                let l = &stack / i;
                Layer {
                    query: linear(&l, names.query, h, h),
                    key: linear(&l, names.key, h, h),
                    value: linear(&l, names.value, h, h),
                    attn_out: linear(&l, names.attn_out, h, h),
                    attn_norm: nn::layer_norm(at(&l, names.attn_norm), vec![h], ln),
                    intermediate: linear(&l, names.intermediate, h, c.intermediate_size),
                    output: linear(&l, names.output, c.intermediate_size, h),
                    out_norm: nn::layer_norm(at(&l, names.out_norm), vec![h], ln),
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
            token_type: (flavor != Flavor::DistilBert)
                .then(|| nn::embedding(&e / "token_type_embeddings", c.type_vocab_size, h, emb)),
            emb_norm: nn::layer_norm(&e / "LayerNorm", vec![h], ln),
            config: c.clone(),
            flavor,
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
        let positions = match self.flavor {
            // transformers' `create_position_ids_from_input_ids`: non-padding tokens count up from pad + 1, a
            // padding token sits at `pad`.
            Flavor::Roberta { pad } => {
                let real = input_ids.ne(pad).to_kind(Kind::Int64);
                real.cumsum(1, Kind::Int64) * &real + pad
            }
            Flavor::Bert | Flavor::DistilBert => Tensor::arange(s, (Kind::Int64, device)),
        };
        let mut sum = self.word.forward(input_ids) + self.position.forward(&positions);
        if let Some(token_type) = &self.token_type {
            sum += token_type.forward(&Tensor::zeros([b, s], (Kind::Int64, device)));
        }
        let mut x = self.emb_norm.forward(&sum);
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
