//! BART's hyperparameters (encoder-decoder), named as in its `config.json`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BartConfig {
    pub vocab_size: i64,
    pub d_model: i64,
    pub encoder_layers: i64,
    pub decoder_layers: i64,
    pub encoder_attention_heads: i64,
    pub decoder_attention_heads: i64,
    pub encoder_ffn_dim: i64,
    pub decoder_ffn_dim: i64,
    /// Learned positions; the table holds 2 more (BART's offset).
    pub max_position_embeddings: i64,
    #[serde(default = "gelu")]
    pub activation_function: String,
    /// Token embeddings multiplied by √`d_model` (off in bart-base).
    #[serde(default)]
    pub scale_embedding: bool,
    #[serde(default = "yes")]
    pub tie_word_embeddings: bool,
    #[serde(default = "two")]
    pub decoder_start_token_id: i64,
    #[serde(default = "two_opt", skip_serializing_if = "Option::is_none")]
    pub eos_token_id: Option<i64>,
}

fn gelu() -> String {
    "gelu".into()
}
fn yes() -> bool {
    true
}
fn two() -> i64 {
    2
}
#[allow(clippy::unnecessary_wraps)] // serde `default` for an `Option` field
fn two_opt() -> Option<i64> {
    Some(2)
}

/// BART's position offset: position `p` is row `p + 2` of the table.
pub const POSITION_OFFSET: i64 = 2;

/// Keys a model YAML's `config:` block may hold.
pub const ALLOWED_KEYS: &[&str] = &[
    "model_type",
    "vocab_size",
    "d_model",
    "encoder_layers",
    "decoder_layers",
    "encoder_attention_heads",
    "decoder_attention_heads",
    "encoder_ffn_dim",
    "decoder_ffn_dim",
    "max_position_embeddings",
    "activation_function",
    "scale_embedding",
    "tie_word_embeddings",
    "decoder_start_token_id",
    "eos_token_id",
];

impl BartConfig {
    pub fn validate(&self) -> Result<(), String> {
        crate::models::config::all_positive(&[
            ("vocab_size", self.vocab_size),
            ("d_model", self.d_model),
            ("encoder_layers", self.encoder_layers),
            ("decoder_layers", self.decoder_layers),
            ("encoder_attention_heads", self.encoder_attention_heads),
            ("decoder_attention_heads", self.decoder_attention_heads),
            ("encoder_ffn_dim", self.encoder_ffn_dim),
            ("decoder_ffn_dim", self.decoder_ffn_dim),
            ("max_position_embeddings", self.max_position_embeddings),
        ])?;
        crate::models::config::all_addressable(&[
            &[self.vocab_size, self.d_model],
            &[self.encoder_ffn_dim.max(self.decoder_ffn_dim), self.d_model],
            &[self.max_position_embeddings, self.d_model],
        ])?;
        for (name, heads) in [
            ("encoder_attention_heads", self.encoder_attention_heads),
            ("decoder_attention_heads", self.decoder_attention_heads),
        ] {
            if self.d_model % heads != 0 {
                return Err(format!(
                    "`d_model` ({}) must be a multiple of `{name}` ({heads})",
                    self.d_model
                ));
            }
        }
        if !["gelu", "relu"].contains(&self.activation_function.as_str()) {
            return Err(format!(
                "unsupported `activation_function` `{}` (e3pipe implements `gelu`, `relu`)",
                crate::error::shorten(&self.activation_function, 40)
            ));
        }
        if !(0..self.vocab_size).contains(&self.decoder_start_token_id) {
            return Err(format!(
                "`decoder_start_token_id` {} is outside the vocabulary (0..{})",
                self.decoder_start_token_id, self.vocab_size
            ));
        }
        Ok(())
    }
}
