//! `configs/model/*.yaml`: which model a bench step measures and where its weights come from.
//!
//! Three sources: `path:` to a Hugging Face model directory (`config.json`, `model.safetensors`,
//! `tokenizer.json`), `weights: random` with the real architecture's hyperparameters under `config:` (a seeded
//! stand-in with the same shapes and work), or `torchscript:` a `.pt` file in e3pipe's calling convention.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_yaml_ng::{Mapping, Value};

use crate::error::{Error, Result, suggest};
use crate::models::config::{Arch, ArchConfig};
use crate::yaml;

const KEYS: &[&str] = &[
    "name",
    "arch",
    "path",
    "torchscript",
    "weights",
    "seed",
    "config",
    "tokenizer",
    "dtype",
    "device",
];

/// Where the weights come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ModelSource {
    Random {
        seed: u64,
    },
    HfDir {
        #[serde(with = "crate::os_path")]
        dir: PathBuf,
    },
    TorchScript {
        #[serde(with = "crate::os_path")]
        file: PathBuf,
    },
}

/// Requested numeric type; `auto` is fp32 on CPU and fp16 on CUDA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DTypeChoice {
    #[serde(rename = "auto")]
    Auto,
    #[serde(rename = "fp32")]
    Fp32,
    #[serde(rename = "fp16")]
    Fp16,
    #[serde(rename = "bf16")]
    Bf16,
}

/// Requested device; `auto` is the first CUDA device when one is usable, else the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceChoice {
    Auto,
    Cpu,
    Cuda(usize),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelSpec {
    /// The file this spec came from, for error messages.
    #[serde(with = "crate::os_path")]
    pub file: PathBuf,
    pub name: String,
    pub arch: Arch,
    pub source: ModelSource,
    /// Hyperparameters; `None` only for `TorchScript` models, whose shapes live in the `.pt` file.
    pub config: Option<ArchConfig>,
    /// `None` means the tokenizer built into e3pipe for this architecture.
    #[serde(with = "crate::os_path::option")]
    pub tokenizer: Option<PathBuf>,
    pub dtype: DTypeChoice,
    pub device: DeviceChoice,
}

impl ModelSpec {
    /// Reads a model YAML; relative paths inside it are resolved against `root`.
    pub fn load(file: &Path, root: &Path) -> Result<ModelSpec> {
        let map = yaml::read_mapping(file)?;
        yaml::check_keys(file, "the model config", &map, KEYS)?;
        let bad = |field: &str, message: String| Error::BadValue {
            path: file.into(),
            field: field.into(),
            message,
        };
        let string = |key: &str| -> Result<Option<String>> {
            match map.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(Value::Number(n)) => Ok(Some(n.to_string())),
                Some(_) => Err(bad(key, "expected a string".into())),
            }
        };
        let name = string("name")?
            .ok_or_else(|| bad("name", "missing; every model needs a `name`".into()))?;
        // Names become file names (`latest/inference/<name>.json`) and figure labels.
        if name.trim().is_empty()
            || name.chars().all(|c| c == '.')
            || name.chars().any(char::is_control)
        {
            return Err(bad(
                "name",
                format!(
                    "`{}` cannot name a model: it must have a visible character other than `.` and no control characters",
                    crate::error::shorten(&name.escape_debug().to_string(), 60)
                ),
            ));
        }
        let path = string("path")?.map(|p| root.join(p));
        let torchscript = string("torchscript")?.map(|p| root.join(p));
        let weights = string("weights")?;
        let seed = match map.get("seed") {
            None => 0,
            Some(v) => v
                .as_u64()
                .ok_or_else(|| bad("seed", "expected a non-negative integer".into()))?,
        };

        let source = match (path, torchscript, weights.as_deref()) {
            (Some(dir), None, None) => ModelSource::HfDir { dir },
            (None, Some(file), None) => ModelSource::TorchScript { file },
            (None, None, Some("random")) => ModelSource::Random { seed },
            (None, None, Some(other)) => {
                return Err(bad(
                    "weights",
                    format!("expected `random`, got `{other}` (use `path:` for a model directory)"),
                ));
            }
            (None, None, None) => {
                return Err(bad("weights", "give one of `path:` (HF model directory), `torchscript:` (.pt file) or `weights: random` with `config:`".into()));
            }
            _ => {
                return Err(bad(
                    "path",
                    "`path`, `torchscript` and `weights` are alternatives: give exactly one".into(),
                ));
            }
        };

        let config = match (&source, map.get("config")) {
            (ModelSource::HfDir { dir }, None) => Some(read_hf_config(dir)?),
            (ModelSource::HfDir { .. }, Some(_)) => {
                return Err(bad(
                    "config",
                    "a model directory brings its own `config.json`; remove `config:`".into(),
                ));
            }
            (ModelSource::Random { .. }, Some(Value::Mapping(m))) => Some(inline_config(file, m)?),
            (ModelSource::Random { .. }, _) => {
                return Err(bad(
                    "config",
                    "`weights: random` needs the architecture under `config:` (with `model_type`)"
                        .into(),
                ));
            }
            (ModelSource::TorchScript { .. }, Some(Value::Mapping(m))) => {
                Some(inline_config(file, m)?)
            }
            (ModelSource::TorchScript { .. }, _) => None,
        };

        let arch_text = string("arch")?;
        let arch = match (&arch_text, &config) {
            (Some(a), _) => Arch::parse(a).ok_or_else(|| {
                let hint = suggest(a, Arch::NAMES).map(|s| format!("; did you mean `{s}`?")).unwrap_or_default();
                bad("arch", format!("unknown arch `{a}` (expected `decoder`, `encoder-decoder` or `encoder`){hint}"))
            })?,
            (None, Some(c)) => c.arch(),
            (None, None) => return Err(bad("arch", "a TorchScript model needs `arch:`".into())),
        };
        if let Some(c) = &config
            && c.arch() != arch
        {
            return Err(bad(
                "arch",
                format!(
                    "`{arch}` does not match model_type of the config ({} `{}` model)",
                    crate::error::article(c.arch().as_str()),
                    c.arch()
                ),
            ));
        }

        let tokenizer = match string("tokenizer")? {
            Some(t) => Some(root.join(t)),
            None => match &source {
                ModelSource::HfDir { dir } if dir.join("tokenizer.json").exists() => {
                    Some(dir.join("tokenizer.json"))
                }
                _ => None,
            },
        };
        if tokenizer.is_none() && config.is_none() {
            return Err(bad(
                "tokenizer",
                "a TorchScript model has no `model_type` to choose a built-in tokenizer by (e3pipe has GPT-2's, BERT's and T5's); set `tokenizer:` to its tokenizer.json".into(),
            ));
        }
        let dtype = match string("dtype")?.as_deref() {
            None | Some("auto") => DTypeChoice::Auto,
            Some("fp32" | "float32") => DTypeChoice::Fp32,
            Some("fp16" | "float16") => DTypeChoice::Fp16,
            Some("bf16" | "bfloat16") => DTypeChoice::Bf16,
            Some(other) => {
                return Err(bad(
                    "dtype",
                    format!("unknown dtype `{other}` (expected `auto`, `fp32`, `fp16` or `bf16`)"),
                ));
            }
        };
        let device = match string("device")? {
            None => DeviceChoice::Auto,
            Some(d) => parse_device(&d).ok_or_else(|| {
                bad(
                    "device",
                    format!("unknown device `{d}` (expected `auto`, `cpu`, `cuda` or `cuda:N`)"),
                )
            })?,
        };
        Ok(ModelSpec {
            file: file.into(),
            name,
            arch,
            source,
            config,
            tokenizer,
            dtype,
            device,
        })
    }
}

pub fn parse_device(text: &str) -> Option<DeviceChoice> {
    match text {
        "auto" => Some(DeviceChoice::Auto),
        "cpu" => Some(DeviceChoice::Cpu),
        "cuda" => Some(DeviceChoice::Cuda(0)),
        other => other
            .strip_prefix("cuda:")?
            .parse()
            .ok()
            .map(DeviceChoice::Cuda),
    }
}

/// The model types e3pipe runs, as messages list them.
fn model_types() -> String {
    ArchConfig::MODEL_TYPES
        .iter()
        .map(|t| format!("`{t}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn inline_config(file: &Path, map: &Mapping) -> Result<ArchConfig> {
    let model_type = map
        .get("model_type")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::BadValue {
            path: file.into(),
            field: "config.model_type".into(),
            message: format!("missing; expected one of {}", model_types()),
        })?;
    if !ArchConfig::MODEL_TYPES.contains(&model_type) {
        let hint = suggest(model_type, ArchConfig::MODEL_TYPES)
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        return Err(Error::BadValue {
            path: file.into(),
            field: "config.model_type".into(),
            message: format!(
                "unsupported model_type `{}` (expected one of {}){hint}",
                crate::error::shorten(model_type, 40),
                model_types()
            ),
        });
    }
    yaml::check_keys(file, "`config`", map, ArchConfig::allowed_keys(model_type))?;
    // Name the key when a number does not fit (the typed read below would only say "expected i64").
    for (key, value) in map {
        let (Some(key), Value::Number(n)) = (key.as_str(), value) else {
            continue;
        };
        let float_key = key.ends_with("epsilon") || key.ends_with("eps") || key.ends_with("theta");
        if !float_key && !n.is_i64() {
            return Err(Error::BadValue {
                path: file.into(),
                field: format!("config.{key}"),
                message: format!(
                    "expected an integer in range, got `{}`",
                    crate::error::shorten(&n.to_string(), 30)
                ),
            });
        }
    }
    let config: ArchConfig = yaml::typed(file, "config", Value::Mapping(map.clone()))?;
    config.validate().map_err(|message| Error::BadValue {
        path: file.into(),
        field: "config".into(),
        message,
    })?;
    Ok(config)
}

/// Reads an HF `config.json`; keys e3pipe does not use are ignored, an unsupported `model_type` is an error.
pub fn read_hf_config(dir: &Path) -> Result<ArchConfig> {
    let path = dir.join("config.json");
    let text = crate::fsio::read_input_text(&path, "model config")?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::ModelFile {
        path: path.clone(),
        message: format!("not valid JSON: {e}"),
    })?;
    let model_type = value
        .get("model_type")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    if !ArchConfig::MODEL_TYPES.contains(&model_type) {
        return Err(Error::ModelFile {
            path,
            message: format!(
                "unsupported model_type `{}` (e3pipe runs {})",
                crate::error::shorten(model_type, 40),
                model_types()
            ),
        });
    }
    let config: ArchConfig = serde_json::from_value(value).map_err(|e| Error::ModelFile {
        path: path.clone(),
        message: e.to_string(),
    })?;
    config
        .validate()
        .map_err(|message| Error::ModelFile { path, message })?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse() {
        assert_eq!(parse_device("cuda:1"), Some(DeviceChoice::Cuda(1)));
        assert_eq!(parse_device("cuda"), Some(DeviceChoice::Cuda(0)));
        assert_eq!(parse_device("gpu"), None);
    }
}
