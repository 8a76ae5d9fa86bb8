//! Architecture hyperparameters, named exactly as in Hugging Face `config.json` files so the same structs read an
//! HF model directory and the `config:` block of `configs/model/*.yaml`.

use serde::{Deserialize, Serialize};

pub use crate::models::bart_config::BartConfig;
pub use crate::models::llama_config::{LlamaConfig, LlamaFamily};
pub use crate::models::modernbert_config::ModernBertConfig;

/// The three architecture families e3pipe compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Arch {
    #[serde(rename = "decoder")]
    Decoder,
    #[serde(rename = "encoder-decoder", alias = "seq2seq")]
    EncoderDecoder,
    #[serde(rename = "encoder")]
    Encoder,
}

impl Arch {
    pub const NAMES: [&'static str; 4] = ["decoder", "encoder-decoder", "seq2seq", "encoder"];

    pub fn parse(s: &str) -> Option<Arch> {
        match s {
            "decoder" => Some(Arch::Decoder),
            "encoder-decoder" | "seq2seq" => Some(Arch::EncoderDecoder),
            "encoder" => Some(Arch::Encoder),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Decoder => "decoder",
            Arch::EncoderDecoder => "encoder-decoder",
            Arch::Encoder => "encoder",
        }
    }

    /// Whether this architecture generates tokens (and so has ttft/tbt metrics).
    pub fn generates(self) -> bool {
        !matches!(self, Arch::Encoder)
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The tokenizers built into e3pipe. A model without `tokenizer:` gets one by its model type, never by its
/// architecture family: a new decoder type must not silently be fed GPT-2's ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuiltinTokenizer {
    Gpt2,
    Bert,
    T5,
}

impl BuiltinTokenizer {
    /// The family name cache keys have always used for it (kept so existing keys stay valid).
    pub fn key_name(self) -> &'static str {
        match self {
            BuiltinTokenizer::Gpt2 => "decoder",
            BuiltinTokenizer::Bert => "encoder",
            BuiltinTokenizer::T5 => "encoder-decoder",
        }
    }
}

/// Hyperparameters of one model; `model_type` selects the variant as in HF `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model_type")]
pub enum ArchConfig {
    #[serde(rename = "gpt2")]
    Gpt2(Gpt2Config),
    #[serde(rename = "t5")]
    T5(T5Config),
    #[serde(rename = "bert")]
    Bert(BertConfig),
    /// BERT with positions counted from the padding id (`pad_token_id` + 1 onwards), as `RoBERTa` numbers them.
    #[serde(rename = "roberta")]
    Roberta(BertConfig),
    #[serde(rename = "distilbert")]
    DistilBert(DistilBertConfig),
    #[serde(rename = "modernbert")]
    ModernBert(ModernBertConfig),
    #[serde(rename = "bart")]
    Bart(BartConfig),
    #[serde(rename = "llama")]
    Llama(LlamaConfig),
    #[serde(rename = "qwen2")]
    Qwen2(LlamaConfig),
    #[serde(rename = "mistral")]
    Mistral(LlamaConfig),
}

impl ArchConfig {
    pub const MODEL_TYPES: [&'static str; 10] = [
        "gpt2",
        "t5",
        "bart",
        "bert",
        "roberta",
        "distilbert",
        "modernbert",
        "llama",
        "qwen2",
        "mistral",
    ];

    /// BERT's shape, for the encoders that are BERT with other names or positions.
    pub fn bert_like(&self) -> Option<BertConfig> {
        match self {
            ArchConfig::Bert(c) | ArchConfig::Roberta(c) => Some(c.clone()),
            ArchConfig::DistilBert(c) => Some(c.as_bert()),
            _ => None,
        }
    }

    /// The Llama-family decoder's config and which member it is.
    pub fn llama(&self) -> Option<(&LlamaConfig, LlamaFamily)> {
        match self {
            ArchConfig::Llama(c) => Some((c, LlamaFamily::Llama)),
            ArchConfig::Qwen2(c) => Some((c, LlamaFamily::Qwen2)),
            ArchConfig::Mistral(c) => Some((c, LlamaFamily::Mistral)),
            _ => None,
        }
    }

    pub fn arch(&self) -> Arch {
        match self {
            ArchConfig::Gpt2(_)
            | ArchConfig::Llama(_)
            | ArchConfig::Qwen2(_)
            | ArchConfig::Mistral(_) => Arch::Decoder,
            ArchConfig::T5(_) | ArchConfig::Bart(_) => Arch::EncoderDecoder,
            ArchConfig::Bert(_)
            | ArchConfig::Roberta(_)
            | ArchConfig::DistilBert(_)
            | ArchConfig::ModernBert(_) => Arch::Encoder,
        }
    }

    /// The built-in tokenizer of this model type. The Llama family's own tokenizers cannot be had offline: GPT-2's
    /// BPE stands in (its ids fit their vocabularies, which `validate` checks), and `stand_in_tokenizer` says so.
    pub fn builtin_tokenizer(&self) -> BuiltinTokenizer {
        match self {
            // RoBERTa's byte-level BPE is GPT-2's with its own special tokens: GPT-2's stands in for it too.
            ArchConfig::Gpt2(_)
            | ArchConfig::Llama(_)
            | ArchConfig::Qwen2(_)
            | ArchConfig::Mistral(_)
            | ArchConfig::Roberta(_)
            | ArchConfig::Bart(_)
            | ArchConfig::ModernBert(_) => BuiltinTokenizer::Gpt2,
            ArchConfig::T5(_) => BuiltinTokenizer::T5,
            ArchConfig::Bert(_) | ArchConfig::DistilBert(_) => BuiltinTokenizer::Bert,
        }
    }

    /// Whether the built-in tokenizer is another model's, standing in for this one's.
    pub fn stand_in_tokenizer(&self) -> bool {
        self.llama().is_some()
            || matches!(
                self,
                ArchConfig::Roberta(_) | ArchConfig::Bart(_) | ArchConfig::ModernBert(_)
            )
    }

    pub fn vocab_size(&self) -> i64 {
        match self {
            ArchConfig::Llama(c) | ArchConfig::Qwen2(c) | ArchConfig::Mistral(c) => c.vocab_size,
            ArchConfig::Gpt2(c) => c.vocab_size,
            ArchConfig::T5(c) => c.vocab_size,
            ArchConfig::Bert(c) | ArchConfig::Roberta(c) => c.vocab_size,
            ArchConfig::DistilBert(c) => c.vocab_size,
            ArchConfig::Bart(c) => c.vocab_size,
            ArchConfig::ModernBert(c) => c.vocab_size,
        }
    }

    /// The longest input (prompt plus generated tokens for decoders) the architecture can address, if bounded.
    pub fn max_positions(&self) -> Option<usize> {
        match self {
            ArchConfig::Gpt2(c) => Some(c.n_positions as usize),
            ArchConfig::Bert(c) => Some(c.max_position_embeddings as usize),
            ArchConfig::DistilBert(c) => Some(c.max_position_embeddings as usize),
            ArchConfig::ModernBert(c) => Some(c.max_position_embeddings as usize),
            // The encoder's bound; the decoder's (its generated tokens) is checked by `infeasibility`.
            ArchConfig::Bart(c) => Some(c.max_position_embeddings as usize),
            // Positions start after the padding id.
            ArchConfig::Roberta(c) => Some(
                c.max_position_embeddings
                    .saturating_sub(c.pad_token_id.unwrap_or(1) + 1)
                    .max(0) as usize,
            ),
            ArchConfig::Llama(c) | ArchConfig::Qwen2(c) | ArchConfig::Mistral(c) => {
                Some(c.max_position_embeddings as usize)
            }
            // T5's relative position buckets have no hard limit.
            ArchConfig::T5(_) => None,
        }
    }

    /// Keys the `config:` block of a model YAML may hold, for typo detection.
    pub fn allowed_keys(model_type: &str) -> &'static [&'static str] {
        match model_type {
            "gpt2" => &[
                "model_type",
                "vocab_size",
                "n_positions",
                "n_embd",
                "n_layer",
                "n_head",
                "n_inner",
                "layer_norm_epsilon",
                "eos_token_id",
            ],
            "t5" => &[
                "model_type",
                "vocab_size",
                "d_model",
                "d_kv",
                "d_ff",
                "num_layers",
                "num_decoder_layers",
                "num_heads",
                "relative_attention_num_buckets",
                "relative_attention_max_distance",
                "layer_norm_epsilon",
                "feed_forward_proj",
                "tie_word_embeddings",
                "decoder_start_token_id",
                "eos_token_id",
            ],
            "bert" | "roberta" => &[
                "model_type",
                "vocab_size",
                "hidden_size",
                "num_hidden_layers",
                "num_attention_heads",
                "intermediate_size",
                "max_position_embeddings",
                "type_vocab_size",
                "layer_norm_eps",
                "hidden_act",
                "pad_token_id",
            ],
            "distilbert" => &[
                "model_type",
                "vocab_size",
                "dim",
                "n_layers",
                "n_heads",
                "hidden_dim",
                "max_position_embeddings",
                "activation",
            ],
            "llama" | "qwen2" | "mistral" => crate::models::llama_config::ALLOWED_KEYS,
            "bart" => crate::models::bart_config::ALLOWED_KEYS,
            "modernbert" => crate::models::modernbert_config::ALLOWED_KEYS,
            _ => &["model_type"],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gpt2Config {
    pub vocab_size: i64,
    pub n_positions: i64,
    pub n_embd: i64,
    pub n_layer: i64,
    pub n_head: i64,
    #[serde(default)]
    pub n_inner: Option<i64>,
    #[serde(default = "eps_1e5")]
    pub layer_norm_epsilon: f64,
    /// Never generated during a measured generation (as transformers' `min_new_tokens`), so every run decodes
    /// exactly `num_tokens` real steps; GPT-2's is 50256.
    #[serde(default = "gpt2_eos")]
    pub eos_token_id: Option<i64>,
}

#[allow(clippy::unnecessary_wraps)] // serde `default` for an `Option` field
fn gpt2_eos() -> Option<i64> {
    Some(50256)
}

#[allow(clippy::unnecessary_wraps)] // serde `default` for an `Option` field
fn t5_eos() -> Option<i64> {
    Some(1)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct T5Config {
    pub vocab_size: i64,
    pub d_model: i64,
    pub d_kv: i64,
    pub d_ff: i64,
    pub num_layers: i64,
    #[serde(default)]
    pub num_decoder_layers: Option<i64>,
    pub num_heads: i64,
    #[serde(default = "default_buckets")]
    pub relative_attention_num_buckets: i64,
    #[serde(default = "default_max_distance")]
    pub relative_attention_max_distance: i64,
    #[serde(default = "eps_1e6")]
    pub layer_norm_epsilon: f64,
    #[serde(default = "default_ff_proj")]
    pub feed_forward_proj: String,
    #[serde(default = "yes")]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub decoder_start_token_id: i64,
    /// Masked during measured generations, as for GPT-2; T5's is 1.
    #[serde(default = "t5_eos")]
    pub eos_token_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    pub vocab_size: i64,
    pub hidden_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    pub intermediate_size: i64,
    pub max_position_embeddings: i64,
    #[serde(default = "two")]
    pub type_vocab_size: i64,
    #[serde(default = "eps_1e12")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// `RoBERTa`: the padding id its positions start after (1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_token_id: Option<i64>,
}

/// `DistilBERT`'s names for BERT's shape (no token types, no pooler).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistilBertConfig {
    pub vocab_size: i64,
    pub dim: i64,
    pub n_layers: i64,
    pub n_heads: i64,
    pub hidden_dim: i64,
    pub max_position_embeddings: i64,
    #[serde(default = "default_act")]
    pub activation: String,
}

impl DistilBertConfig {
    /// The same network in BERT's names (its layer norms use 1e-12, as BERT's do).
    pub fn as_bert(&self) -> BertConfig {
        BertConfig {
            vocab_size: self.vocab_size,
            hidden_size: self.dim,
            num_hidden_layers: self.n_layers,
            num_attention_heads: self.n_heads,
            intermediate_size: self.hidden_dim,
            max_position_embeddings: self.max_position_embeddings,
            type_vocab_size: 0,
            layer_norm_eps: 1e-12,
            hidden_act: self.activation.clone(),
            pad_token_id: None,
        }
    }
}

fn eps_1e5() -> f64 {
    1e-5
}
fn eps_1e6() -> f64 {
    1e-6
}
fn eps_1e12() -> f64 {
    1e-12
}
fn default_buckets() -> i64 {
    32
}
fn default_max_distance() -> i64 {
    128
}
fn default_ff_proj() -> String {
    "relu".into()
}
fn default_act() -> String {
    "gelu".into()
}
fn yes() -> bool {
    true
}
fn two() -> i64 {
    2
}

/// The feed-forward variants the native T5 implements (anything else would silently run another network).
pub const T5_FEED_FORWARD: &[&str] = &["relu", "gated-gelu", "gated-relu"];
/// The activations the native BERT implements: exact GELU and its tanh approximation.
pub const BERT_ACTIVATIONS: &[&str] = &["gelu", "gelu_new", "gelu_pytorch_tanh"];

fn one_of(name: &str, value: &str, accepted: &[&str]) -> Result<(), String> {
    if accepted.contains(&value) {
        return Ok(());
    }
    let hint = crate::error::suggest(value, accepted.iter().copied())
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default();
    let list: Vec<String> = accepted.iter().map(|a| format!("`{a}`")).collect();
    Err(format!(
        "unsupported `{name}` `{}` (e3pipe implements {}){hint}",
        crate::error::shorten(value, 60),
        list.join(", ")
    ))
}

/// Every named count is positive.
pub(crate) fn all_positive(values: &[(&str, i64)]) -> Result<(), String> {
    match values.iter().find(|(_, v)| *v <= 0) {
        Some((name, v)) => Err(format!("`{name}` must be positive, got {v}")),
        None => Ok(()),
    }
}

/// Every product of dimensions (times 8 bytes an element) is addressable: sizes past that are nonsense, not a model
/// too large for this machine.
pub(crate) fn all_addressable(products: &[&[i64]]) -> Result<(), String> {
    for dims in products {
        if dims
            .iter()
            .try_fold(8i64, |n, &d| n.checked_mul(d.max(1)))
            .is_none()
        {
            return Err(format!(
                "{} make a tensor too large to address; check these values",
                dims.iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(" × ")
            ));
        }
    }
    Ok(())
}

fn epsilon(name: &str, v: f64) -> Result<(), String> {
    if v.is_finite() && v > 0.0 && v < 1.0 {
        Ok(())
    } else {
        Err(format!("`{name}` must be a small positive number, got {v}"))
    }
}

impl ArchConfig {
    /// Checks the numbers that would otherwise fail deep inside libtorch, and every enumerated value against
    /// what the native models implement.
    pub fn validate(&self) -> Result<(), String> {
        let positive = |name: &str, v: i64| {
            if v > 0 {
                Ok(())
            } else {
                Err(format!("`{name}` must be positive, got {v}"))
            }
        };
        let divides = |a: &str, av: i64, b: &str, bv: i64| {
            if bv > 0 && av % bv == 0 {
                Ok(())
            } else {
                Err(format!("`{a}` ({av}) must be a multiple of `{b}` ({bv})"))
            }
        };
        // Valid but huge sizes are for the machine to refuse (an `oom` point); sizes whose tensors could not even be
        // addressed (elements × 8 bytes past i64) are nonsense, refused here.
        let addressable = |what: &str, dims: &[i64]| {
            let elements = dims.iter().try_fold(8i64, |n, &d| n.checked_mul(d.max(1)));
            match elements {
                Some(_) => Ok(()),
                None => Err(format!(
                    "{what} make a tensor too large to address ({}); check these values",
                    dims.iter()
                        .map(i64::to_string)
                        .collect::<Vec<_>>()
                        .join(" × ")
                )),
            }
        };
        match self {
            ArchConfig::Gpt2(c) => {
                addressable("`vocab_size` × `n_embd`", &[c.vocab_size, c.n_embd])?;
                addressable("`n_positions` × `n_embd`", &[c.n_positions, c.n_embd])?;
                addressable("4 × `n_embd` × `n_embd`", &[4, c.n_embd, c.n_embd])?;
                addressable(
                    "`n_embd` × `n_inner`",
                    &[c.n_embd, c.n_inner.unwrap_or(1), 4],
                )?;
                for (n, v) in [
                    ("vocab_size", c.vocab_size),
                    ("n_positions", c.n_positions),
                    ("n_embd", c.n_embd),
                    ("n_layer", c.n_layer),
                    ("n_head", c.n_head),
                ] {
                    positive(n, v)?;
                }
                if let Some(inner) = c.n_inner {
                    positive("n_inner", inner)?;
                }
                epsilon("layer_norm_epsilon", c.layer_norm_epsilon)?;
                divides("n_embd", c.n_embd, "n_head", c.n_head)
            }
            ArchConfig::T5(c) => {
                addressable("`vocab_size` × `d_model`", &[c.vocab_size, c.d_model])?;
                addressable(
                    "`num_heads` × `d_kv` × `d_model`",
                    &[c.num_heads, c.d_kv, c.d_model],
                )?;
                addressable("`d_ff` × `d_model`", &[c.d_ff, c.d_model, 2])?;
                for (n, v) in [
                    ("vocab_size", c.vocab_size),
                    ("d_model", c.d_model),
                    ("d_kv", c.d_kv),
                    ("d_ff", c.d_ff),
                    ("num_layers", c.num_layers),
                    ("num_heads", c.num_heads),
                ] {
                    positive(n, v)?;
                }
                if let Some(layers) = c.num_decoder_layers {
                    positive("num_decoder_layers", layers)?;
                }
                // Bidirectional buckets are halved, then half of those are exact: at least 4 for one of each.
                if c.relative_attention_num_buckets < 4 {
                    return Err(format!(
                        "`relative_attention_num_buckets` must be at least 4, got {}",
                        c.relative_attention_num_buckets
                    ));
                }
                let max_exact = c.relative_attention_num_buckets / 4;
                if c.relative_attention_max_distance <= max_exact {
                    return Err(format!(
                        "`relative_attention_max_distance` must exceed {max_exact} (a quarter of the buckets), got {}",
                        c.relative_attention_max_distance
                    ));
                }
                if !(0..c.vocab_size).contains(&c.decoder_start_token_id) {
                    return Err(format!(
                        "`decoder_start_token_id` {} is outside the vocabulary (0..{})",
                        c.decoder_start_token_id, c.vocab_size
                    ));
                }
                epsilon("layer_norm_epsilon", c.layer_norm_epsilon)?;
                one_of("feed_forward_proj", &c.feed_forward_proj, T5_FEED_FORWARD)
            }
            ArchConfig::Bart(c) => c.validate(),
            ArchConfig::ModernBert(c) => c.validate(),
            ArchConfig::DistilBert(c) => ArchConfig::Bert(BertConfig {
                type_vocab_size: 1,
                ..c.as_bert()
            })
            .validate(),
            ArchConfig::Roberta(c)
                if c.pad_token_id
                    .is_some_and(|p| !(0..c.vocab_size).contains(&p)) =>
            {
                Err(format!(
                    "`pad_token_id` {} is outside the vocabulary (0..{})",
                    c.pad_token_id.unwrap_or_default(),
                    c.vocab_size
                ))
            }
            ArchConfig::Roberta(c)
                if c.max_position_embeddings <= c.pad_token_id.unwrap_or(1) + 1 =>
            {
                Err(format!(
                    "`max_position_embeddings` ({}) must exceed `pad_token_id` + 1 ({}): RoBERTa's positions start after the padding id",
                    c.max_position_embeddings,
                    c.pad_token_id.unwrap_or(1) + 1
                ))
            }
            ArchConfig::Bert(c) | ArchConfig::Roberta(c) => {
                addressable(
                    "`vocab_size` × `hidden_size`",
                    &[c.vocab_size, c.hidden_size],
                )?;
                addressable(
                    "`max_position_embeddings` × `hidden_size`",
                    &[c.max_position_embeddings, c.hidden_size],
                )?;
                addressable(
                    "`intermediate_size` × `hidden_size`",
                    &[c.intermediate_size, c.hidden_size],
                )?;
                addressable(
                    "`hidden_size` × `hidden_size`",
                    &[c.hidden_size, c.hidden_size, 4],
                )?;
                for (n, v) in [
                    ("vocab_size", c.vocab_size),
                    ("hidden_size", c.hidden_size),
                    ("num_hidden_layers", c.num_hidden_layers),
                    ("num_attention_heads", c.num_attention_heads),
                    ("intermediate_size", c.intermediate_size),
                    ("max_position_embeddings", c.max_position_embeddings),
                ] {
                    positive(n, v)?;
                }
                positive("type_vocab_size", c.type_vocab_size)?;
                epsilon("layer_norm_eps", c.layer_norm_eps)?;
                one_of("hidden_act", &c.hidden_act, BERT_ACTIVATIONS)?;
                divides(
                    "hidden_size",
                    c.hidden_size,
                    "num_attention_heads",
                    c.num_attention_heads,
                )
            }
            ArchConfig::Llama(c) | ArchConfig::Qwen2(c) | ArchConfig::Mistral(c) => {
                let family = self.llama().map_or(LlamaFamily::Llama, |(_, f)| f);
                c.validate(family)
            }
        }
    }
}

/// The longest context length an architecture can run with `num_tokens` generated: a decoder feeds the prompt
/// plus N - 1 generated tokens back (L + N - 1 ≤ `n_positions`), an encoder its input (L ≤ max positions); `None`
/// where nothing limits it (T5's relative buckets). One rule for planning points and for predicting them.
pub fn longest_feasible_length(
    arch: Arch,
    max_positions: Option<usize>,
    num_tokens: usize,
) -> Option<usize> {
    let max = max_positions?;
    Some(match arch {
        Arch::Decoder => (max + 1).saturating_sub(num_tokens.max(1)),
        Arch::Encoder | Arch::EncoderDecoder => max,
    })
}

/// Why a point cannot run on this model, before any work: positions beyond what the architecture can address.
pub fn infeasibility(
    config: Option<&ArchConfig>,
    context_length: usize,
    num_tokens: usize,
) -> Option<String> {
    let config = config?;
    // BART's decoder has learned positions too: its generated tokens must fit them.
    if let ArchConfig::Bart(c) = config
        && num_tokens as i64 > c.max_position_embeddings
    {
        return Some(format!(
            "{num_tokens} generated tokens exceed the decoder's max_position_embeddings {}",
            c.max_position_embeddings
        ));
    }
    let longest = longest_feasible_length(config.arch(), config.max_positions(), num_tokens)?;
    (context_length > longest).then(|| match config {
        ArchConfig::Gpt2(c) => format!(
            "{context_length} + {num_tokens} generated tokens exceed n_positions {}",
            c.n_positions
        ),
        ArchConfig::Bert(c) => format!(
            "{context_length} tokens exceed max_position_embeddings {}",
            c.max_position_embeddings
        ),
        ArchConfig::Roberta(c) => format!(
            "{context_length} tokens exceed max_position_embeddings {} less the {} positions up to the padding id",
            c.max_position_embeddings,
            c.pad_token_id.unwrap_or(1) + 1
        ),
        ArchConfig::DistilBert(c) => format!(
            "{context_length} tokens exceed max_position_embeddings {}",
            c.max_position_embeddings
        ),
        ArchConfig::Bart(c) => format!(
            "{context_length} tokens exceed max_position_embeddings {}",
            c.max_position_embeddings
        ),
        ArchConfig::ModernBert(c) => format!(
            "{context_length} tokens exceed max_position_embeddings {}",
            c.max_position_embeddings
        ),
        ArchConfig::T5(_) => format!("{context_length} tokens exceed {longest}"),
        ArchConfig::Llama(c) | ArchConfig::Qwen2(c) | ArchConfig::Mistral(c) => format!(
            "{context_length} + {num_tokens} generated tokens exceed max_position_embeddings {}",
            c.max_position_embeddings
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_limits_make_points_infeasible() {
        let gpt2 = ArchConfig::Gpt2(Gpt2Config {
            vocab_size: 10,
            n_positions: 1024,
            n_embd: 8,
            n_layer: 1,
            n_head: 2,
            n_inner: None,
            layer_norm_epsilon: 1e-5,
            eos_token_id: Some(50256),
        });
        assert_eq!(infeasibility(Some(&gpt2), 975, 50), None);
        assert_eq!(
            infeasibility(Some(&gpt2), 976, 50).as_deref(),
            Some("976 + 50 generated tokens exceed n_positions 1024")
        );
        let bert = ArchConfig::Bert(BertConfig {
            vocab_size: 10,
            hidden_size: 8,
            num_hidden_layers: 1,
            num_attention_heads: 2,
            intermediate_size: 8,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            hidden_act: "gelu".into(),
            pad_token_id: None,
        });
        assert_eq!(infeasibility(Some(&bert), 512, 0), None);
        assert!(infeasibility(Some(&bert), 513, 0).is_some());
        assert_eq!(
            longest_feasible_length(Arch::Decoder, Some(1024), 50),
            Some(975)
        );
        assert_eq!(
            longest_feasible_length(Arch::Decoder, Some(1024), 1),
            Some(1024)
        );
        assert_eq!(
            longest_feasible_length(Arch::Encoder, Some(512), 0),
            Some(512)
        );
        assert_eq!(
            longest_feasible_length(Arch::EncoderDecoder, None, 50),
            None
        );
    }
}
