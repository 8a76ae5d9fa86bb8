//! What goes into a point's cache key: everything that changes its measurement and nothing that does not (step
//! names, file paths, comments, key order, the other lengths of the sweep). The key is a blake3 hash of the
//! canonical JSON of `PointKey`, whose field order is fixed by the struct (just's approach).

use serde::{Deserialize, Serialize};

use crate::bench::config::BenchParams;
use crate::bench::result::{METHOD_ID, METHOD_VERSION};
use crate::models::WeightsId;
use crate::models::config::{Arch, ArchConfig};
use crate::models::hardware::HardwareId;
use crate::models::runtime::CudaRuntime;

/// Key fields that do not change which curve a point lies on: the axes and the measuring effort.
const CURVE_FREE: &[&str] = &[
    "context_length",
    "batch_size",
    "num_runs",
    "warmup_runs",
    "min_duration_s",
    "target_rel_ci",
    "max_runs",
    "max_duration_s",
    "warmup_s",
    "read_back",
    "record_outputs",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointKey {
    pub method_version: u32,
    /// The measuring code's identity (`METHOD_ID`, from its sources at build time).
    pub method: String,
    pub arch: Arch,
    /// Architecture hyperparameters (`None` for `TorchScript`, whose file hash stands for them).
    pub hyperparameters: Option<ArchConfig>,
    pub weights: WeightsId,
    /// Tokenizer identity: the built-in name and hash, or the blake3 of the `tokenizer.json` used.
    pub tokenizer: String,
    /// blake3 of the prose prompts are cut from (`assets/text/corpus.txt`).
    pub prompt_text: String,
    pub dtype: String,
    pub num_tokens: usize,
    pub batch_size: usize,
    pub num_runs: usize,
    pub warmup_runs: usize,
    pub min_duration_s: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_rel_ci: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_runs: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration_s: Option<f64>,
    pub threads: usize,
    /// The time-based warm-up, where there is one (on CUDA by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_s: Option<f64>,
    /// The `read_back` diagnostic (left out when off, so other keys are unchanged).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_back: bool,
    /// Points that record their outputs (left out when off, so other keys are unchanged).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub record_outputs: bool,
    pub context_length: usize,
    /// Where it runs, as people read it: `cpu (AMD EPYC 7B13)`, `cuda:0 (NVIDIA H200)`.
    pub device: String,
    /// What of that hardware changes the kernels: CPU generation, ISA, logical CPUs; GPU model.
    pub hardware: HardwareId,
    /// The loaded libtorch's own version (`2.11.0+cu128`), not the one the build was made against.
    pub libtorch: String,
    /// On a GPU: the CUDA runtime, cuDNN and the settings that change kernels (allocator, TF32 overrides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<CudaRuntime>,
}

impl PointKey {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        arch: Arch,
        hyperparameters: Option<ArchConfig>,
        weights: WeightsId,
        tokenizer: String,
        dtype: &str,
        params: &BenchParams,
        threads: usize,
        context_length: usize,
        device: String,
        hardware: HardwareId,
        libtorch: &str,
        runtime: Option<CudaRuntime>,
    ) -> PointKey {
        PointKey {
            method_version: METHOD_VERSION,
            method: METHOD_ID.into(),
            arch,
            hyperparameters,
            weights,
            tokenizer,
            prompt_text: env!("E3PIPE_CORPUS_BLAKE3").into(),
            dtype: dtype.into(),
            num_tokens: if arch.generates() {
                params.num_tokens
            } else {
                0
            },
            batch_size: params.batch_size,
            num_runs: params.num_runs,
            warmup_runs: params.warmup_runs,
            min_duration_s: params.min_duration_s,
            target_rel_ci: params.target_rel_ci,
            max_runs: params.target_rel_ci.and(params.max_runs),
            max_duration_s: params.target_rel_ci.and(params.max_duration_s),
            threads,
            warmup_s: Some(params.warmup_s_on(matches!(hardware, HardwareId::Cuda { .. })))
                .filter(|s| *s > 0.0),
            read_back: params.read_back,
            record_outputs: params.record_outputs,
            context_length,
            device,
            hardware,
            libtorch: libtorch.into(),
            runtime,
        }
    }

    /// A template that hashes this key at any context length without serialising it again: a sweep of 10,000
    /// lengths differs only in that number, and a no-op run must not pay for 10,000 serialisations.
    pub fn template(&self) -> KeyTemplate {
        let mut probe = self.clone();
        probe.context_length = KeyTemplate::SENTINEL;
        let json = serde_json::to_string(&probe).unwrap_or_default();
        let marker = format!("\"context_length\":{}", KeyTemplate::SENTINEL);
        match json.split_once(&marker) {
            Some((prefix, suffix)) => KeyTemplate {
                prefix: format!("{prefix}\"context_length\":"),
                suffix: suffix.to_string(),
                key: self.clone(),
            },
            // Not reachable with the struct as defined; hashing each key in full stays correct.
            None => KeyTemplate {
                prefix: String::new(),
                suffix: String::new(),
                key: self.clone(),
            },
        }
    }

    /// The blake3 hex digest of the canonical serialisation.
    pub fn hash(&self) -> String {
        let mut hasher = blake3::Hasher::new();
        // Serialising a plain struct of strings and numbers into a hasher cannot fail.
        let _ = serde_json::to_writer(&mut hasher, self);
        hasher.finalize().to_hex().to_string()
    }

    /// Which curve the point belongs to: its flat key without the length and batch size (the axes) and without
    /// what only sets how long or how often it is measured. Points of one model from different pipelines share a
    /// results document when their curves are the same (`pipeline::kinds::bench::results_file::carried`).
    pub fn curve(fields: &serde_json::Map<String, serde_json::Value>) -> String {
        let mut f = fields.clone();
        for axis_or_effort in CURVE_FREE {
            f.remove(*axis_or_effort);
        }
        serde_json::Value::Object(f).to_string()
    }

    /// The key as a flat JSON object, stored in each entry so `--dry-run` can name the fields that changed.
    pub fn fields(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut flat = serde_json::Map::new();
        if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(self) {
            flatten("", &serde_json::Value::Object(map), &mut flat);
        }
        flat
    }
}

/// A key's canonical JSON split around its context length (see `PointKey::template`).
#[derive(Debug, Clone)]
pub struct KeyTemplate {
    prefix: String,
    suffix: String,
    key: PointKey,
}

impl KeyTemplate {
    const SENTINEL: usize = 987_654_321_987_654_321;

    /// The hash `PointKey { context_length, ..key }.hash()` would give.
    pub fn hash(&self, context_length: usize) -> String {
        if self.prefix.is_empty() {
            return self.key(context_length).hash();
        }
        let mut hasher = blake3::Hasher::new();
        hasher.update(self.prefix.as_bytes());
        hasher.update(context_length.to_string().as_bytes());
        hasher.update(self.suffix.as_bytes());
        hasher.finalize().to_hex().to_string()
    }

    /// The full key at `context_length`.
    pub fn key(&self, context_length: usize) -> PointKey {
        PointKey {
            context_length,
            ..self.key.clone()
        }
    }
}

fn flatten(
    prefix: &str,
    value: &serde_json::Value,
    out: &mut serde_json::Map<String, serde_json::Value>,
) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&name, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

/// Fields that differ between an old entry's key and a new one, as `name: old -> new`.
pub fn changed_fields(
    old: &serde_json::Map<String, serde_json::Value>,
    new: &serde_json::Map<String, serde_json::Value>,
) -> Vec<String> {
    let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
    names.sort();
    names.dedup();
    let show = |v: Option<&serde_json::Value>| match v {
        None => "none".to_string(),
        // Hashes (the method identity, file hashes) read best abbreviated, as git does.
        Some(serde_json::Value::String(s))
            if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            format!("{}…", &s[..8])
        }
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    };
    names
        .into_iter()
        .filter(|n| old.get(*n) != new.get(*n))
        .map(|n| format!("{n}: {} -> {}", show(old.get(n)), show(new.get(n))))
        .collect()
}

/// The stored form of a key's fields, for entries read back from disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredKey(pub serde_json::Map<String, serde_json::Value>);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::config::Gpt2Config;

    fn key(num_tokens: usize) -> PointKey {
        let params = BenchParams {
            num_tokens,
            batch_size: 1,
            num_runs: 3,
            warmup_runs: 1,
            min_duration_s: 0.0,
            threads: None,
            target_rel_ci: None,
            max_runs: None,
            max_duration_s: None,
            read_back: false,
            record_outputs: false,
            warmup_s: None,
        };
        let config = ArchConfig::Gpt2(Gpt2Config {
            vocab_size: 50257,
            n_positions: 1024,
            n_embd: 1024,
            n_layer: 24,
            n_head: 16,
            n_inner: None,
            layer_norm_epsilon: 1e-5,
            eos_token_id: Some(50256),
        });
        let mut key = PointKey::new(
            Arch::Decoder,
            Some(config),
            WeightsId::RandomInit { seed: 0 },
            "builtin:gpt2".into(),
            "fp32",
            &params,
            2,
            128,
            "cpu (test)".into(),
            HardwareId::Cuda {
                name: "test".into(),
                memory_total: "1 MiB".into(),
                compute_capability: "9.0".into(),
                mig_profile: None,
                driver: "580.159.04".into(),
                power_limit: "700.00 W".into(),
                host_cpu: crate::models::hardware::HostCpu {
                    model_name: "AMD EPYC 7B13".into(),
                    family_model_stepping: "25/1/1".into(),
                },
            },
            "2.13.0+cu130",
            None,
        );
        // The build's own method identity changes with every edit of the measured code; pin one here.
        key.method = "0".repeat(64);
        key
    }

    #[test]
    fn known_key_is_pinned() {
        // Changing this value is a deliberate change of the cache format: every cached point is recomputed.
        assert_eq!(
            key(50).hash(),
            "68dd4abf3b175cad04a23577164c1a15d2a2e93d60b96579a26c3454c6f37bc7"
        );
    }

    #[test]
    fn built_in_prompt_text_is_in_the_key() {
        let corpus = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/assets/text/corpus.txt"
        ))
        .unwrap();
        assert_eq!(
            key(50).prompt_text,
            blake3::hash(&corpus).to_hex().to_string()
        );
    }

    #[test]
    fn the_template_hashes_exactly_like_the_key() {
        let template = key(50).template();
        for length in [0, 1, 128, 960, 1_000_000, usize::MAX] {
            let full = PointKey {
                context_length: length,
                ..key(50)
            };
            assert_eq!(template.hash(length), full.hash(), "{length}");
        }
    }

    #[test]
    fn changed_fields_name_old_and_new() {
        let diff = changed_fields(&key(50).fields(), &key(100).fields());
        assert_eq!(diff, vec!["num_tokens: 50 -> 100".to_string()]);
    }

    #[test]
    fn a_new_method_makes_points_stale_and_is_named_short() {
        let mut new = key(50);
        new.method = format!("91bc{}", "0".repeat(60));
        assert_ne!(new.hash(), key(50).hash());
        assert_eq!(
            changed_fields(&key(50).fields(), &new.fields()),
            vec!["method: 00000000… -> 91bc0000…".to_string()]
        );
    }

    #[test]
    fn the_build_has_a_method_identity() {
        assert_eq!(METHOD_ID.len(), 64);
        assert!(METHOD_ID.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
