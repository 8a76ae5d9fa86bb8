//! What a model is, without running it: architecture configs, the model YAML (`spec`), the device and dtype a
//! bench step resolves to (`hardware`), and the weights' identity. Running models needs libtorch and lives in the
//! `e3pipe-worker` crate (`worker/`), so this crate, and the `e3pipe` binary, never load it.

pub mod bart_config;
pub mod config;
pub mod files;
pub mod gpu;
pub mod hardware;
pub mod identity;
pub mod libtorch;
pub mod llama_config;
pub mod modernbert_config;
pub mod runtime;
pub mod spec;
pub mod work;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use hardware::Device;
use spec::{DTypeChoice, ModelSource, ModelSpec};

/// Which weights were measured: every result says so.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WeightsId {
    /// A seeded random init of the real architecture: same shapes and work as the trained model.
    RandomInit { seed: u64 },
    /// A weights file, by blake3 of its contents.
    File { blake3: String },
}

impl std::fmt::Display for WeightsId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WeightsId::RandomInit { seed } => write!(f, "random-init seed {seed}"),
            WeightsId::File { blake3 } => {
                write!(f, "file blake3:{}", &blake3[..16.min(blake3.len())])
            }
        }
    }
}

/// The weights identity of a spec, hashing the weights file when there is one.
pub fn weights_id(spec: &ModelSpec, hashes: &crate::file_hash::FileHashes) -> Result<WeightsId> {
    match &spec.source {
        ModelSource::Random { seed } => Ok(WeightsId::RandomInit { seed: *seed }),
        ModelSource::HfDir { dir } => {
            // One file's hash, or the hash of the shards' hashes in order.
            let files = files::weight_files(dir)?;
            let blake3 = if let [one] = files.as_slice() {
                hashes.blake3(one)?
            } else {
                let mut hasher = blake3::Hasher::new();
                for f in &files {
                    hasher.update(hashes.blake3(f)?.as_bytes());
                }
                hasher.finalize().to_hex().to_string()
            };
            Ok(WeightsId::File { blake3 })
        }
        ModelSource::TorchScript { file } => Ok(WeightsId::File {
            blake3: hashes.blake3(file)?,
        }),
    }
}

/// The numeric type a point is measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DType {
    #[serde(rename = "fp32")]
    Fp32,
    #[serde(rename = "fp16")]
    Fp16,
    #[serde(rename = "bf16")]
    Bf16,
}

impl DType {
    pub fn name(self) -> &'static str {
        match self {
            DType::Fp32 => "fp32",
            DType::Fp16 => "fp16",
            DType::Bf16 => "bf16",
        }
    }

    /// Bytes per element.
    pub fn bytes(self) -> usize {
        match self {
            DType::Fp32 => 4,
            DType::Fp16 | DType::Bf16 => 2,
        }
    }
}

/// What `auto` resolves to: fp32 on CPU (fp16 matmuls are slow there), fp16 on CUDA.
pub fn resolve_dtype(choice: DTypeChoice, device: Device) -> DType {
    match (choice, device) {
        (DTypeChoice::Fp32, _) | (DTypeChoice::Auto, Device::Cpu) => DType::Fp32,
        (DTypeChoice::Fp16 | DTypeChoice::Auto, _) => DType::Fp16,
        (DTypeChoice::Bf16, _) => DType::Bf16,
    }
}
