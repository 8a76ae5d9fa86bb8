//! The Llama family's hyperparameters (`llama`, `qwen2`, `mistral` share one decoder: `RMSNorm`, rotary positions,
//! grouped-query attention, a `SwiGLU` MLP), read from `config.json` as the hub has it (transformers 4.x:
//! `rope_theta`, `rope_scaling`) and as transformers 5.x writes it (`rope_parameters`), or from a model YAML's
//! `config:` block. What differs between the three is `LlamaFamily`.

use serde::{Deserialize, Serialize};

/// Which of the three a config is: their attention biases and windows differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlamaFamily {
    Llama,
    Qwen2,
    Mistral,
}

/// `eos_token_id` as configs write it: one id, or several (Llama 3 lists three).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    One(i64),
    Many(Vec<i64>),
}

impl TokenIds {
    pub fn ids(&self) -> Vec<i64> {
        match self {
            TokenIds::One(id) => vec![*id],
            TokenIds::Many(ids) => ids.clone(),
        }
    }
}

/// Rotary scaling (`rope_scaling` in 4.x, `rope_parameters` in 5.x, which also holds `rope_theta`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RopeParameters {
    #[serde(default, alias = "type", skip_serializing_if = "Option::is_none")]
    pub rope_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_freq_factor: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_freq_factor: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_max_position_embeddings: Option<i64>,
}

/// The rotary positions a model runs with, resolved from whichever keys its config used.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rope {
    /// `inv_freq[i] = theta^(-2i/d)`.
    Default { theta: f64 },
    /// Llama 3.1's frequency-dependent scaling of the default frequencies.
    Llama3 {
        theta: f64,
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: f64,
    },
}

/// The rotary types e3pipe implements.
pub const ROPE_TYPES: &[&str] = &["default", "llama3"];

// The booleans are Hugging Face's config keys, named as there.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    pub vocab_size: i64,
    pub hidden_size: i64,
    pub intermediate_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    /// Grouped-query attention: fewer key/value heads than query heads (default: as many).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_key_value_heads: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<i64>,
    pub max_position_embeddings: i64,
    #[serde(default = "eps_1e6")]
    pub rms_norm_eps: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<RopeParameters>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_parameters: Option<RopeParameters>,
    /// Llama: a bias on q, k, v and o (Qwen2 always has one on q, k, v; Mistral never).
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Mistral: each query sees at most this many keys (itself included); `null` for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sliding_window: Option<i64>,
    /// Qwen2: whether its `sliding_window` applies (e3pipe implements Qwen2 without it, as its checkpoints ship).
    #[serde(default)]
    pub use_sliding_window: bool,
    #[serde(default = "silu")]
    pub hidden_act: String,
    /// Never generated during a measured generation (as transformers' `min_new_tokens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_token_id: Option<TokenIds>,
}

fn eps_1e6() -> f64 {
    1e-6
}

fn silu() -> String {
    "silu".into()
}

/// Keys a model YAML's `config:` block may hold for these model types.
pub const ALLOWED_KEYS: &[&str] = &[
    "model_type",
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "max_position_embeddings",
    "rms_norm_eps",
    "rope_theta",
    "rope_scaling",
    "rope_parameters",
    "attention_bias",
    "mlp_bias",
    "tie_word_embeddings",
    "sliding_window",
    "use_sliding_window",
    "hidden_act",
    "eos_token_id",
];

impl LlamaConfig {
    pub fn kv_heads(&self) -> i64 {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_size(&self) -> i64 {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// The window a query's keys are capped to, in this family (`None`: every earlier key).
    pub fn window(&self, family: LlamaFamily) -> Option<i64> {
        match family {
            LlamaFamily::Mistral => self.sliding_window,
            LlamaFamily::Llama | LlamaFamily::Qwen2 => None,
        }
    }

    /// Bias on q, k, v (and whether on o), in this family.
    pub fn biases(&self, family: LlamaFamily) -> (bool, bool) {
        match family {
            LlamaFamily::Llama => (self.attention_bias, self.attention_bias),
            LlamaFamily::Qwen2 => (true, false),
            LlamaFamily::Mistral => (false, false),
        }
    }

    /// The rotary positions: 5.x's `rope_parameters` first, then 4.x's `rope_theta` and `rope_scaling`.
    pub fn rope(&self) -> Result<Rope, String> {
        let params = self
            .rope_parameters
            .clone()
            .or_else(|| self.rope_scaling.clone())
            .unwrap_or_default();
        let theta = params.rope_theta.or(self.rope_theta).unwrap_or(10_000.0);
        // Each a positive finite number: a zero or negative base or factor makes every position NaN.
        let usable = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(v)
            } else {
                Err(format!("`{name}` must be a positive number, got {v}"))
            }
        };
        let theta = usable("rope_theta", theta)?;
        let kind = params.rope_type.as_deref().unwrap_or("default");
        match kind {
            "default" => Ok(Rope::Default { theta }),
            "llama3" => {
                let need = |name: &str, v: Option<f64>| {
                    usable(
                        name,
                        v.ok_or_else(|| format!("rope type `llama3` needs `{name}`"))?,
                    )
                };
                let (low, high) = (
                    need("low_freq_factor", params.low_freq_factor)?,
                    need("high_freq_factor", params.high_freq_factor)?,
                );
                // The band between the two wavelengths is interpolated over `high - low`.
                if high <= low {
                    return Err(format!(
                        "`high_freq_factor` ({high}) must exceed `low_freq_factor` ({low})"
                    ));
                }
                Ok(Rope::Llama3 {
                    theta,
                    factor: need("factor", params.factor)?,
                    low_freq_factor: low,
                    high_freq_factor: high,
                    original_max_position_embeddings: need(
                        "original_max_position_embeddings",
                        params.original_max_position_embeddings.map(|v| v as f64),
                    )?,
                })
            }
            other => {
                let list: Vec<String> = ROPE_TYPES.iter().map(|t| format!("`{t}`")).collect();
                Err(format!(
                    "unsupported rope type `{}` (e3pipe implements {})",
                    crate::error::shorten(other, 40),
                    list.join(", ")
                ))
            }
        }
    }

    /// The numbers that would otherwise fail deep inside libtorch.
    pub fn validate(&self, family: LlamaFamily) -> Result<(), String> {
        crate::models::config::all_positive(&[
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.kv_heads()),
            ("head_dim", self.head_size()),
            ("max_position_embeddings", self.max_position_embeddings),
        ])?;
        crate::models::config::all_addressable(&[
            &[self.vocab_size, self.hidden_size],
            &[self.intermediate_size, self.hidden_size],
            &[self.num_attention_heads, self.head_size(), self.hidden_size],
        ])?;
        if self.num_attention_heads % self.kv_heads() != 0 {
            return Err(format!(
                "`num_attention_heads` ({}) must be a multiple of `num_key_value_heads` ({})",
                self.num_attention_heads,
                self.kv_heads()
            ));
        }
        if self.head_size() % 2 != 0 {
            return Err(format!(
                "`head_dim` ({}) must be even for rotary positions",
                self.head_size()
            ));
        }
        if !(self.rms_norm_eps.is_finite() && self.rms_norm_eps > 0.0 && self.rms_norm_eps < 1.0) {
            return Err(format!(
                "`rms_norm_eps` must be a small positive number, got {}",
                self.rms_norm_eps
            ));
        }
        if self.hidden_act != "silu" {
            return Err(format!(
                "unsupported `hidden_act` `{}` (e3pipe implements `silu`)",
                crate::error::shorten(&self.hidden_act, 40)
            ));
        }
        if let Some(w) = self.window(family)
            && w <= 0
        {
            return Err(format!("`sliding_window` must be positive, got {w}"));
        }
        if family == LlamaFamily::Qwen2 && self.use_sliding_window {
            return Err(
                "`use_sliding_window: true` is not implemented for qwen2 (its released checkpoints do not use it)"
                    .into(),
            );
        }
        self.rope().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> LlamaConfig {
        serde_json::from_str(json).unwrap()
    }

    const BASE: &str = r#""vocab_size": 100, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": 256"#;

    #[test]
    fn rope_is_read_from_either_generation_of_config() {
        // transformers 4.x: `rope_theta` and `rope_scaling` (with `type` or `rope_type`).
        let v4 = config(&format!(
            r#"{{{BASE}, "rope_theta": 500000.0, "rope_scaling": {{"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}}}"#
        ));
        // transformers 5.x: everything in `rope_parameters`.
        let v5 = config(&format!(
            r#"{{{BASE}, "rope_parameters": {{"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}}}"#
        ));
        assert_eq!(v4.rope().unwrap(), v5.rope().unwrap());
        assert!(
            matches!(v4.rope().unwrap(), Rope::Llama3 { theta, .. } if (theta - 500_000.0).abs() < 1e-9)
        );
        assert_eq!(
            config(&format!("{{{BASE}}}")).rope().unwrap(),
            Rope::Default { theta: 10_000.0 }
        );
        let yarn = config(&format!(
            r#"{{{BASE}, "rope_scaling": {{"type": "yarn", "factor": 4.0}}}}"#
        ));
        assert!(yarn.rope().unwrap_err().contains("`yarn`"));
        let partial = config(&format!(
            r#"{{{BASE}, "rope_scaling": {{"rope_type": "llama3", "factor": 8.0}}}}"#
        ));
        assert!(
            partial
                .validate(LlamaFamily::Llama)
                .unwrap_err()
                .contains("low_freq_factor")
        );
    }

    #[test]
    fn families_differ_in_biases_and_windows() {
        let c = config(&format!(
            r#"{{{BASE}, "num_key_value_heads": 2, "sliding_window": 16, "eos_token_id": [1, 2]}}"#
        ));
        assert_eq!((c.kv_heads(), c.head_size()), (2, 16));
        assert_eq!(c.window(LlamaFamily::Mistral), Some(16));
        assert_eq!(c.window(LlamaFamily::Qwen2), None);
        assert_eq!(c.biases(LlamaFamily::Qwen2), (true, false));
        assert_eq!(c.biases(LlamaFamily::Mistral), (false, false));
        assert_eq!(c.eos_token_id.as_ref().unwrap().ids(), [1, 2]);
        for rope in [
            r#""rope_theta": -5.0"#,
            r#""rope_theta": 0.0"#,
            r#""rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 4.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64}"#,
            r#""rope_scaling": {"rope_type": "llama3", "factor": -1.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64}"#,
        ] {
            let c = config(&format!("{{{BASE}, {rope}}}"));
            assert!(c.validate(LlamaFamily::Llama).is_err(), "{rope}");
        }
        let bad = config(&format!(r#"{{{BASE}, "num_key_value_heads": 3}}"#));
        assert!(
            bad.validate(LlamaFamily::Llama)
                .unwrap_err()
                .contains("multiple")
        );
        let window = config(&format!(r#"{{{BASE}, "use_sliding_window": true}}"#));
        assert!(window.validate(LlamaFamily::Qwen2).is_err());
        assert!(window.validate(LlamaFamily::Llama).is_ok());
    }
}
