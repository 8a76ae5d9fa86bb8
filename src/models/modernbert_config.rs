//! `ModernBERT`'s hyperparameters (encoder), as the hub's `config.json` has them (transformers 4.x:
//! `global_attn_every_n_layers`, `global_rope_theta`, `local_rope_theta`) and as transformers 5.x writes them
//! (`layer_types`, `rope_parameters` per layer type).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct LayerRope {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RopePerLayerType {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_attention: Option<LayerRope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sliding_attention: Option<LayerRope>,
}

// The booleans are Hugging Face's config keys, named as there.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModernBertConfig {
    pub vocab_size: i64,
    pub hidden_size: i64,
    pub intermediate_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    pub max_position_embeddings: i64,
    #[serde(default = "eps_1e5")]
    pub norm_eps: f64,
    #[serde(default)]
    pub norm_bias: bool,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
    #[serde(default = "gelu")]
    pub hidden_activation: String,
    /// The local layers' whole window: a token sees those within `local_attention / 2` on either side.
    #[serde(default = "local")]
    pub local_attention: i64,
    /// Every n-th layer (from the first) attends globally (4.x); `layer_types` says it per layer (5.x).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_attn_every_n_layers: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_rope_theta: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_rope_theta: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_parameters: Option<RopePerLayerType>,
}

fn eps_1e5() -> f64 {
    1e-5
}
fn gelu() -> String {
    "gelu".into()
}
fn local() -> i64 {
    128
}

/// Keys a model YAML's `config:` block may hold.
pub const ALLOWED_KEYS: &[&str] = &[
    "model_type",
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "max_position_embeddings",
    "norm_eps",
    "norm_bias",
    "attention_bias",
    "mlp_bias",
    "hidden_activation",
    "local_attention",
    "global_attn_every_n_layers",
    "layer_types",
    "global_rope_theta",
    "local_rope_theta",
    "rope_parameters",
];

impl ModernBertConfig {
    /// Whether layer `i` attends globally (else within the local window).
    pub fn global_layer(&self, i: i64) -> bool {
        match &self.layer_types {
            Some(types) => types.get(i as usize).is_none_or(|t| t == "full_attention"),
            None => i % self.global_attn_every_n_layers.unwrap_or(3).max(1) == 0,
        }
    }

    /// How many layers attend globally (counted, not iterated: a typo'd layer count must not loop for ever).
    pub fn global_layers(&self) -> i64 {
        if let Some(types) = &self.layer_types {
            types.iter().filter(|t| *t == "full_attention").count() as i64
        } else {
            let every = self.global_attn_every_n_layers.unwrap_or(3).max(1);
            (self.num_hidden_layers.max(0) + every - 1) / every
        }
    }

    /// A token sees the tokens within this distance in a local layer.
    pub fn half_window(&self) -> i64 {
        self.local_attention / 2
    }

    /// Rotary base of global (`true`) or local layers: 5.x's `rope_parameters`, else 4.x's keys, else the defaults.
    pub fn rope_theta(&self, global: bool) -> f64 {
        let per_type = self.rope_parameters.as_ref().and_then(|r| {
            if global {
                r.full_attention.as_ref()
            } else {
                r.sliding_attention.as_ref()
            }
        });
        per_type
            .and_then(|r| r.rope_theta)
            .or(if global {
                self.global_rope_theta
            } else {
                self.local_rope_theta
            })
            .unwrap_or(if global { 160_000.0 } else { 10_000.0 })
    }

    pub fn validate(&self) -> Result<(), String> {
        crate::models::config::all_positive(&[
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("max_position_embeddings", self.max_position_embeddings),
            ("local_attention", self.local_attention),
        ])?;
        crate::models::config::all_addressable(&[
            &[self.vocab_size, self.hidden_size],
            &[self.intermediate_size, self.hidden_size, 2],
        ])?;
        if self.hidden_size % self.num_attention_heads != 0
            || (self.hidden_size / self.num_attention_heads) % 2 != 0
        {
            return Err(format!(
                "`hidden_size` ({}) must be an even multiple of `num_attention_heads` ({}) for rotary positions",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if !(self.norm_eps.is_finite() && self.norm_eps > 0.0 && self.norm_eps < 1.0) {
            return Err(format!(
                "`norm_eps` must be a small positive number, got {}",
                self.norm_eps
            ));
        }
        for global in [true, false] {
            let theta = self.rope_theta(global);
            if !(theta.is_finite() && theta > 0.0) {
                return Err(format!(
                    "a rotary base must be a positive number, got {theta}"
                ));
            }
        }
        if self.hidden_activation != "gelu" {
            return Err(format!(
                "unsupported `hidden_activation` `{}` (e3pipe implements `gelu`)",
                crate::error::shorten(&self.hidden_activation, 40)
            ));
        }
        if let Some(types) = &self.layer_types {
            if types.len() as i64 != self.num_hidden_layers {
                return Err(format!(
                    "`layer_types` has {} entries for {} layers",
                    types.len(),
                    self.num_hidden_layers
                ));
            }
            if let Some(bad) = types
                .iter()
                .find(|t| *t != "full_attention" && *t != "sliding_attention")
            {
                return Err(format!(
                    "unknown layer type `{}` (expected `full_attention` or `sliding_attention`)",
                    crate::error::shorten(bad, 40)
                ));
            }
        }
        for rope in self
            .rope_parameters
            .iter()
            .flat_map(|r| [r.full_attention.as_ref(), r.sliding_attention.as_ref()])
            .flatten()
        {
            if let Some(kind) = rope.rope_type.as_deref().filter(|k| *k != "default") {
                return Err(format!(
                    "unsupported rope type `{}` (e3pipe implements `default` for ModernBERT)",
                    crate::error::shorten(kind, 40)
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_types_and_rope_bases_read_from_either_generation_of_config() {
        let base = r#""vocab_size": 100, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 4, "num_attention_heads": 4, "max_position_embeddings": 64"#;
        // transformers 4.x (the hub's ModernBERT-base): every 3rd layer global, bases by name.
        let v4: ModernBertConfig = serde_json::from_str(&format!(
            r#"{{{base}, "global_attn_every_n_layers": 3, "global_rope_theta": 160000.0, "local_rope_theta": 10000.0, "local_attention": 128}}"#
        ))
        .unwrap();
        // transformers 5.x: per layer type.
        let v5: ModernBertConfig = serde_json::from_str(&format!(
            r#"{{{base}, "layer_types": ["full_attention", "sliding_attention", "sliding_attention", "full_attention"], "rope_parameters": {{"full_attention": {{"rope_theta": 160000.0, "rope_type": "default"}}, "sliding_attention": {{"rope_theta": 10000.0, "rope_type": "default"}}}}, "local_attention": 128}}"#
        ))
        .unwrap();
        for c in [&v4, &v5] {
            let globals: Vec<bool> = (0..4).map(|i| c.global_layer(i)).collect();
            assert_eq!(globals, [true, false, false, true]);
            assert_eq!(c.global_layers(), 2);
            assert!((c.rope_theta(true) - 160_000.0).abs() < 1e-9);
            assert!((c.rope_theta(false) - 10_000.0).abs() < 1e-9);
            assert_eq!(c.half_window(), 64);
            assert!(c.validate().is_ok());
        }
        let bad = ModernBertConfig {
            layer_types: Some(vec!["full_attention".into()]),
            ..v5.clone()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .contains("1 entries for 4 layers")
        );
    }
}
