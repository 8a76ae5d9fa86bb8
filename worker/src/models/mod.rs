//! The three architectures behind one interface the bench runner drives: prefill/step generation for decoders and
//! encoder-decoders, a single forward for encoders. `Model::load` turns a `ModelSpec` into weights on a device.

pub mod bert;
pub mod device;
pub mod gpt2;
pub mod kv_cache;
pub mod t5;
pub mod tokenizer;
pub mod torchscript;
pub mod weights;

use e3pipe::error::{Error, Result};
use e3pipe::models::DType;
use e3pipe::models::config::{Arch, ArchConfig};
use e3pipe::models::spec::{ModelSource, ModelSpec};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use kv_cache::KvCache;

/// libtorch's numeric type for a planned dtype.
pub fn kind_of(dtype: DType) -> Kind {
    match dtype {
        DType::Fp32 => Kind::Float,
        DType::Fp16 => Kind::Half,
        DType::Bf16 => Kind::BFloat16,
    }
}

pub fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Half => "fp16",
        Kind::BFloat16 => "bf16",
        _ => "fp32",
    }
}

fn torch(e: tch::TchError) -> Error {
    Error::Torch(e.to_string())
}

enum Network {
    Gpt2(gpt2::Gpt2),
    T5(t5::T5),
    Bert(bert::Bert),
    Script(torchscript::ScriptModel),
}

/// A generation in progress.
pub enum GenState {
    Gpt2(KvCache),
    T5(Box<t5::T5State>),
    ScriptDecoder(Vec<Tensor>),
    ScriptSeq2Seq {
        hidden: Tensor,
        mask: Tensor,
        kv: Vec<Tensor>,
    },
}

pub struct Model {
    pub name: String,
    pub arch: Arch,
    pub config: Option<ArchConfig>,
    pub device: Device,
    pub kind: Kind,
    /// Bytes of the parameters (0 for TorchScript, whose parameters are not enumerated).
    pub weights_bytes: u64,
    network: Network,
    // Owns the parameters the network's tensors point into.
    _vs: Option<VarStore>,
}

impl Model {
    /// Builds the network on `device` in `kind`, with random (seeded) or file weights.
    pub fn load(spec: &ModelSpec, device: Device, kind: Kind) -> Result<Model> {
        let model_err = |message: String| Error::Model {
            model: spec.name.clone(),
            message,
        };
        if let ModelSource::TorchScript { file } = &spec.source {
            let script = torchscript::ScriptModel::load(file, spec.arch, device, kind)?;
            return Ok(Model {
                name: spec.name.clone(),
                arch: spec.arch,
                config: spec.config.clone(),
                device,
                kind,
                weights_bytes: 0,
                network: Network::Script(script),
                _vs: None,
            });
        }
        let config = spec
            .config
            .clone()
            .ok_or_else(|| model_err("no architecture config".into()))?;
        if let ModelSource::Random { seed } = spec.source {
            tch::manual_seed(seed as i64);
        }
        let mut vs = VarStore::new(device);
        let root = vs.root();
        let network = match &config {
            ArchConfig::Gpt2(c) => Network::Gpt2(gpt2::Gpt2::new(root, c)),
            ArchConfig::T5(c) => Network::T5(t5::T5::new(root, c)),
            ArchConfig::Bert(c) => Network::Bert(bert::Bert::new(root, c)),
        };
        if let ModelSource::HfDir { dir } = &spec.source {
            let file = dir.join("model.safetensors");
            match &config {
                ArchConfig::Gpt2(_) => {
                    weights::load_safetensors(&vs, &file, &["transformer."], &[])?
                }
                ArchConfig::T5(_) => weights::load_safetensors(
                    &vs,
                    &file,
                    &[],
                    &[("shared.weight", "encoder.embed_tokens.weight")],
                )?,
                ArchConfig::Bert(_) => weights::load_safetensors(&vs, &file, &["bert."], &[])?,
            }
        }
        vs.set_kind(kind);
        vs.freeze();
        let weights_bytes = vs
            .variables()
            .values()
            .map(|t| (t.numel() * t.kind().elt_size_in_bytes()) as u64)
            .sum();
        Ok(Model {
            name: spec.name.clone(),
            arch: spec.arch,
            config: Some(config),
            device,
            kind,
            weights_bytes,
            network,
            _vs: Some(vs),
        })
    }

    fn wrong(&self, op: &str) -> Error {
        Error::Model {
            model: self.name.clone(),
            message: format!("`{op}` is not defined for a `{}` model", self.arch),
        }
    }

    /// Encoder forward (BERT) or the encoder stack of an encoder-decoder (T5).
    pub fn encode(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        match &self.network {
            Network::Bert(m) => Ok(m.forward(ids, mask)),
            Network::T5(m) => Ok(m.encode(ids, mask)),
            Network::Script(s) if self.arch == Arch::Encoder => s.forward(ids, mask),
            Network::Script(s) if self.arch == Arch::EncoderDecoder => s.encode(ids, mask),
            _ => Err(self.wrong("encode")),
        }
    }

    /// Decoder prefill over the prompt; returns the first generated token `[B, 1]` and the state to continue.
    /// `max_len` is prompt plus generated tokens (the cache is allocated once for all of them).
    pub fn prefill(&self, ids: &Tensor, max_len: i64) -> Result<(Tensor, GenState)> {
        match &self.network {
            Network::Gpt2(m) => {
                let (batch, _) = ids.size2().map_err(torch)?;
                let mut cache = m.new_cache(batch, max_len, m.weight_like());
                let logits = m.forward(ids, &mut cache, true);
                Ok((greedy(&logits), GenState::Gpt2(cache)))
            }
            Network::Script(s) if self.arch == Arch::Decoder => {
                let (logits, kv) = s.prefill(ids)?;
                Ok((greedy(&logits), GenState::ScriptDecoder(kv)))
            }
            _ => Err(self.wrong("prefill")),
        }
    }

    /// Starts decoding from an encoder output; the first `step` takes the decoder start tokens.
    pub fn start_decoder(&self, hidden: &Tensor, mask: &Tensor, max_new: i64) -> Result<GenState> {
        match &self.network {
            Network::T5(m) => Ok(GenState::T5(Box::new(m.start(hidden, mask, max_new)))),
            Network::Script(_) if self.arch == Arch::EncoderDecoder => {
                Ok(GenState::ScriptSeq2Seq {
                    hidden: hidden.shallow_clone(),
                    mask: mask.shallow_clone(),
                    kv: Vec::new(),
                })
            }
            _ => Err(self.wrong("start_decoder")),
        }
    }

    /// The decoder start token of an encoder-decoder (`decoder_start_token_id`, 0 for T5).
    pub fn decoder_start_token(&self) -> i64 {
        match &self.config {
            Some(ArchConfig::T5(c)) => c.decoder_start_token_id,
            _ => 0,
        }
    }

    /// One greedy decode step: feeds `ids` `[B, 1]`, returns the next token `[B, 1]`.
    pub fn step(&self, ids: &Tensor, state: &mut GenState) -> Result<Tensor> {
        match (&self.network, state) {
            (Network::Gpt2(m), GenState::Gpt2(cache)) => Ok(greedy(&m.forward(ids, cache, true))),
            (Network::T5(m), GenState::T5(s)) => Ok(greedy(&m.decode(ids, s))),
            (Network::Script(s), GenState::ScriptDecoder(kv)) => {
                let (logits, next_kv) = s.decoder_step(ids, std::mem::take(kv))?;
                *kv = next_kv;
                Ok(greedy(&logits))
            }
            (Network::Script(s), GenState::ScriptSeq2Seq { hidden, mask, kv }) => {
                let (logits, next_kv) = s.seq2seq_step(ids, hidden, mask, std::mem::take(kv))?;
                *kv = next_kv;
                Ok(greedy(&logits))
            }
            _ => Err(self.wrong("step")),
        }
    }

    /// Full-sequence logits for tests: GPT-2 over `ids`, T5 over `decoder_ids` given the encoder input.
    pub fn logits(&self, ids: &Tensor, decoder_ids: Option<&Tensor>) -> Result<Tensor> {
        match (&self.network, decoder_ids) {
            (Network::Gpt2(m), None) => {
                let (b, t) = ids.size2().map_err(torch)?;
                let mut cache = m.new_cache(b, t, m.weight_like());
                Ok(m.forward(ids, &mut cache, false))
            }
            (Network::T5(m), Some(dec)) => {
                let mask = Tensor::ones_like(ids);
                let hidden = m.encode(ids, &mask);
                let mut state = m.start(&hidden, &mask, dec.size()[1]);
                Ok(m.decode(dec, &mut state))
            }
            _ => Err(self.wrong("logits")),
        }
    }

    /// Per-step logits with the KV cache (prefill one token, then one step per position), for cache parity tests.
    pub fn incremental_logits(&self, ids: &Tensor, decoder_ids: Option<&Tensor>) -> Result<Tensor> {
        match (&self.network, decoder_ids) {
            (Network::Gpt2(m), None) => {
                let (b, t) = ids.size2().map_err(torch)?;
                let mut cache = m.new_cache(b, t, m.weight_like());
                let steps: Vec<Tensor> = (0..t)
                    .map(|i| m.forward(&ids.narrow(1, i, 1), &mut cache, false))
                    .collect();
                Ok(Tensor::cat(&steps, 1))
            }
            (Network::T5(m), Some(dec)) => {
                let mask = Tensor::ones_like(ids);
                let hidden = m.encode(ids, &mask);
                let t = dec.size()[1];
                let mut state = m.start(&hidden, &mask, t);
                let steps: Vec<Tensor> = (0..t)
                    .map(|i| m.decode(&dec.narrow(1, i, 1), &mut state))
                    .collect();
                Ok(Tensor::cat(&steps, 1))
            }
            _ => Err(self.wrong("incremental_logits")),
        }
    }
}

/// Greedy choice from the last position's logits: `[B, T, V]` -> `[B, 1]`.
fn greedy(logits: &Tensor) -> Tensor {
    logits.select(1, -1).argmax(-1, true)
}
