//! `ModernBERT` (encoder) on tch with Hugging Face parameter names (`embeddings.tok_embeddings.weight`,
//! `layers.0.attn.Wqkv.weight`, ...): pre-norm blocks (the first without an attention norm), rotary positions with a
//! base per layer type, a fused q/k/v projection, a `GeGLU` MLP, no biases unless configured, and a final norm.
//! Every `global_attn_every_n_layers`-th layer (or as `layer_types` says) attends globally; the others see only the
//! tokens within `local_attention / 2` on either side, through an explicit mask (the kernel's masked path) once the
//! input is longer than that window.

use tch::nn::{self, Module, Path};
use tch::{Kind, Tensor};

use e3pipe::models::modernbert_config::ModernBertConfig;

/// A layer norm whose bias is optional (`norm_bias`; `ModernBERT` has none).
#[derive(Debug)]
struct Norm {
    weight: Tensor,
    bias: Option<Tensor>,
    eps: f64,
}

impl Norm {
    fn new(p: Path, d: i64, bias: bool, eps: f64) -> Norm {
        Norm {
            weight: p.ones("weight", &[d]),
            bias: bias.then(|| p.zeros("bias", &[d])),
            eps,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let d = self.weight.size()[0];
        x.layer_norm([d], Some(&self.weight), self.bias.as_ref(), self.eps, false)
    }
}

#[derive(Debug)]
struct Layer {
    attn_norm: Option<Norm>,
    wqkv: nn::Linear,
    wo: nn::Linear,
    mlp_norm: Norm,
    wi: nn::Linear,
    mlp_out: nn::Linear,
    global: bool,
}

#[derive(Debug)]
pub struct ModernBert {
    pub config: ModernBertConfig,
    tok: nn::Embedding,
    emb_norm: Norm,
    layers: Vec<Layer>,
    final_norm: Norm,
    /// Rotary inverse frequencies of global and local layers, fp32.
    inv_freq_global: Tensor,
    inv_freq_local: Tensor,
}

fn inverse_frequencies(theta: f64, dim: i64, device: tch::Device) -> Tensor {
    let exponents = Tensor::arange_start_step(0, dim, 2, (Kind::Int64, device))
        .to_kind(Kind::Float)
        / dim as f64;
    Tensor::pow_scalar(theta, &exponents).reciprocal()
}

fn rotate_half(x: &Tensor) -> Tensor {
    let half = x.size()[x.dim() - 1] / 2;
    Tensor::cat(&[x.narrow(-1, half, half).neg(), x.narrow(-1, 0, half)], -1)
}

impl ModernBert {
    /// Variables named as in HF `ModernBertModel`.
    pub fn new(p: Path, c: &ModernBertConfig) -> ModernBert {
        let d = c.hidden_size;
        let ln = |path: Path| Norm::new(path, d, c.norm_bias, c.norm_eps);
        let linear = |path: Path, n_in: i64, n_out: i64, bias: bool| {
            nn::linear(
                path,
                n_in,
                n_out,
                nn::LinearConfig {
                    bias,
                    ..Default::default()
                },
            )
        };
        let layers = (0..c.num_hidden_layers)
            .map(|i| {
                let l = &p / "layers" / i;
                Layer {
                    attn_norm: (i > 0).then(|| ln(&l / "attn_norm")),
                    wqkv: linear(&l / "attn" / "Wqkv", d, 3 * d, c.attention_bias),
                    wo: linear(&l / "attn" / "Wo", d, d, c.attention_bias),
                    mlp_norm: ln(&l / "mlp_norm"),
                    wi: linear(&l / "mlp" / "Wi", d, 2 * c.intermediate_size, c.mlp_bias),
                    mlp_out: linear(&l / "mlp" / "Wo", c.intermediate_size, d, c.mlp_bias),
                    global: c.global_layer(i),
                }
            })
            .collect();
        let head_dim = d / c.num_attention_heads;
        ModernBert {
            tok: nn::embedding(
                &p / "embeddings" / "tok_embeddings",
                c.vocab_size,
                d,
                nn::EmbeddingConfig {
                    ws_init: nn::Init::Randn {
                        mean: 0.0,
                        stdev: 0.02,
                    },
                    ..Default::default()
                },
            ),
            emb_norm: ln(&p / "embeddings" / "norm"),
            layers,
            final_norm: ln(&p / "final_norm"),
            inv_freq_global: inverse_frequencies(c.rope_theta(true), head_dim, p.device()),
            inv_freq_local: inverse_frequencies(c.rope_theta(false), head_dim, p.device()),
            config: c.clone(),
        }
    }

    /// `input_ids`, `attention_mask` `[B, S]` -> last hidden state `[B, S, H]`.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Tensor {
        let (b, s) = input_ids.size2().unwrap_or((1, 1));
        let heads = self.config.num_attention_heads;
        let head_dim = self.config.hidden_size / heads;
        let device = input_ids.device();
        let mut x = self.emb_norm.forward(&self.tok.forward(input_ids));
        let kind = x.kind();
        let positions = Tensor::arange(s, (Kind::Int64, device)).to_kind(Kind::Float);
        let angles = |inv: &Tensor| {
            let freqs = positions.unsqueeze(1) * inv.unsqueeze(0);
            let a = Tensor::cat(&[&freqs, &freqs], -1);
            (a.cos(), a.sin())
        };
        let (global_rope, local_rope) =
            (angles(&self.inv_freq_global), angles(&self.inv_freq_local));
        let keep = attention_mask.map(|m| m.to_kind(Kind::Bool).view([b, 1, 1, s]));
        // Local layers: |i - j| ≤ w, only when the input is longer than the window.
        let w = self.config.half_window();
        let local_mask = (s > w + 1).then(|| {
            let i = Tensor::arange(s, (Kind::Int64, device));
            let near = (i.unsqueeze(1) - i.unsqueeze(0)).abs().le(w);
            match &keep {
                Some(k) => near.logical_and(k),
                None => near,
            }
        });
        for layer in &self.layers {
            let h = match &layer.attn_norm {
                Some(norm) => norm.forward(&x),
                None => x.shallow_clone(),
            };
            let qkv = h
                .apply(&layer.wqkv)
                .view([b, s, 3, heads, head_dim])
                .permute([2, 0, 3, 1, 4]);
            let (cos, sin) = if layer.global {
                &global_rope
            } else {
                &local_rope
            };
            // Rotated in fp32, as transformers does, then cast back.
            let rotate = |t: &Tensor| {
                let f = t.to_kind(Kind::Float);
                (&f * cos + rotate_half(&f) * sin).to_kind(kind)
            };
            let (q, k, v) = (rotate(&qkv.get(0)), rotate(&qkv.get(1)), qkv.get(2));
            let mask = if layer.global {
                keep.as_ref()
            } else {
                local_mask.as_ref().or(keep.as_ref())
            };
            let attn = Tensor::scaled_dot_product_attention(
                &q,
                &k,
                &v,
                mask.map(Tensor::shallow_clone),
                0.0,
                false,
                None,
                false,
            );
            let attn = attn
                .transpose(1, 2)
                .reshape([b, s, heads * head_dim])
                .apply(&layer.wo);
            x += attn;
            let h = layer.mlp_norm.forward(&x);
            let up = h.apply(&layer.wi);
            let (input, gate) = (
                up.narrow(-1, 0, self.config.intermediate_size),
                up.narrow(
                    -1,
                    self.config.intermediate_size,
                    self.config.intermediate_size,
                ),
            );
            x = &x + (input.gelu("none") * gate).apply(&layer.mlp_out);
        }
        self.final_norm.forward(&x)
    }
}
