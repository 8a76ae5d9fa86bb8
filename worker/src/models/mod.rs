//! The three architectures behind one interface the bench runner drives: prefill/step generation for decoders and
//! encoder-decoders, a single forward for encoders. `Model::load` turns a `ModelSpec` into weights on a device.

// tch layer constructors take `nn::Path` by value, built per call as `&p / "name"`, as tch's own layers do.
#[allow(clippy::needless_pass_by_value)]
pub mod bart;
#[allow(clippy::needless_pass_by_value)]
pub mod bert;
pub mod device;
#[allow(clippy::needless_pass_by_value)]
pub mod gpt2;
pub mod kv_cache;
#[allow(clippy::needless_pass_by_value)]
pub mod llama;
#[allow(clippy::needless_pass_by_value)]
pub mod modernbert;
#[allow(clippy::needless_pass_by_value)]
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

#[allow(clippy::needless_pass_by_value)] // the shape `map_err(torch)` needs
fn torch(e: tch::TchError) -> Error {
    Error::Torch(e.to_string())
}

enum Network {
    Bart(bart::Bart),
    Gpt2(gpt2::Gpt2),
    Llama(llama::Llama),
    T5(t5::T5),
    Bert(bert::Bert),
    ModernBert(modernbert::ModernBert),
    Script(torchscript::ScriptModel),
}

/// A generation in progress.
pub enum GenState {
    Bart(Box<bart::BartState>),
    Gpt2(KvCache),
    Llama(KvCache),
    T5(Box<t5::T5State>),
    ScriptDecoder(Vec<Tensor>),
    ScriptSeq2Seq {
        hidden: Tensor,
        mask: Tensor,
        kv: Vec<Tensor>,
    },
}

impl GenState {
    /// NaN in every cache position not written yet (tests: proves decode steps read only what they wrote).
    pub fn poison_unwritten(&mut self) {
        match self {
            GenState::Gpt2(cache) | GenState::Llama(cache) => cache.poison_unwritten(),
            GenState::T5(state) => state.self_cache.poison_unwritten(),
            GenState::Bart(state) => state.self_cache.poison_unwritten(),
            GenState::ScriptDecoder(_) | GenState::ScriptSeq2Seq { .. } => {}
        }
    }
}

pub struct Model {
    pub name: String,
    pub arch: Arch,
    pub config: Option<ArchConfig>,
    pub device: Device,
    pub kind: Kind,
    /// Bytes of the parameters (0 for `TorchScript`, whose parameters are not enumerated).
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
            ArchConfig::Bert(c) => Network::Bert(bert::Bert::new(root, c, bert::Flavor::Bert)),
            ArchConfig::Roberta(c) => Network::Bert(bert::Bert::new(
                root,
                c,
                bert::Flavor::Roberta {
                    pad: c.pad_token_id.unwrap_or(1),
                },
            )),
            ArchConfig::Bart(c) => Network::Bart(bart::Bart::new(root, c)),
            ArchConfig::ModernBert(c) => Network::ModernBert(modernbert::ModernBert::new(root, c)),
            ArchConfig::DistilBert(c) => Network::Bert(bert::Bert::new(
                root,
                &c.as_bert(),
                bert::Flavor::DistilBert,
            )),
            ArchConfig::Llama(c) | ArchConfig::Qwen2(c) | ArchConfig::Mistral(c) => {
                let family = config
                    .llama()
                    .map_or(e3pipe::models::config::LlamaFamily::Llama, |(_, f)| f);
                let rope = c.rope().map_err(model_err)?;
                Network::Llama(llama::Llama::new(root, c, family, rope))
            }
        };
        if let ModelSource::HfDir { dir } = &spec.source {
            let files = e3pipe::models::files::weight_files(dir)?;
            match &config {
                ArchConfig::Gpt2(_) => {
                    weights::load_safetensors(&vs, &files, &["transformer."], &[])?;
                }
                ArchConfig::T5(_) => weights::load_safetensors(
                    &vs,
                    &files,
                    &[],
                    &[("shared.weight", "encoder.embed_tokens.weight")],
                )?,
                ArchConfig::Bert(_) => weights::load_safetensors(&vs, &files, &["bert."], &[])?,
                ArchConfig::Roberta(_) => {
                    weights::load_safetensors(&vs, &files, &["roberta."], &[])?;
                }
                ArchConfig::DistilBert(_) => {
                    weights::load_safetensors(&vs, &files, &["distilbert."], &[])?;
                }
                // `ModernBertForMaskedLM` saves the encoder under `model.`.
                ArchConfig::ModernBert(_) => {
                    weights::load_safetensors(&vs, &files, &["model."], &[])?;
                }
                // A tied embedding may be saved under any of its names; untied embeddings a 4.x checkpoint did
                // not save separately are its `model.shared`.
                ArchConfig::Bart(_) => weights::load_safetensors(
                    &vs,
                    &files,
                    &[],
                    &[
                        ("model.shared.weight", "model.encoder.embed_tokens.weight"),
                        ("model.shared.weight", "model.decoder.embed_tokens.weight"),
                        ("model.shared.weight", "lm_head.weight"),
                        ("model.encoder.embed_tokens.weight", "model.shared.weight"),
                        ("model.decoder.embed_tokens.weight", "model.shared.weight"),
                    ],
                )?,
                // Named in the files as in the model (`model.layers.0...`, `lm_head.weight`).
                ArchConfig::Llama(_) | ArchConfig::Qwen2(_) | ArchConfig::Mistral(_) => {
                    weights::load_safetensors(&vs, &files, &[], &[])?;
                }
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

    /// Bytes of the KV cache a generation of `num_tokens` after `context_length` allocates (self-attention of
    /// every decoder layer; T5 adds the cross-attention keys/values of the encoder output). `None` for encoders
    /// and `TorchScript`, whose caches are not ours.
    pub fn kv_cache_bytes(
        &self,
        batch: usize,
        context_length: usize,
        num_tokens: usize,
    ) -> Option<u128> {
        let elt = self.kind.elt_size_in_bytes() as u128;
        let (b, l, n) = (batch as u128, context_length as u128, num_tokens as u128);
        match (&self.network, &self.config) {
            (Network::Gpt2(_), Some(ArchConfig::Gpt2(c))) => {
                Some(2 * c.n_layer as u128 * b * (l + n) * c.n_embd as u128 * elt)
            }
            // Only the key/value heads are cached (grouped-query attention).
            (Network::Llama(m), _) => {
                let c = &m.config;
                let per_position = (c.kv_heads() * c.head_size()) as u128;
                Some(2 * c.num_hidden_layers as u128 * b * (l + n) * per_position * elt)
            }
            (Network::Bart(_), Some(ArchConfig::Bart(c))) => {
                Some(2 * c.decoder_layers as u128 * b * (n + l) * c.d_model as u128 * elt)
            }
            (Network::T5(_), Some(ArchConfig::T5(c))) => {
                let layers = c.num_decoder_layers.unwrap_or(c.num_layers) as u128;
                let inner = (c.num_heads * c.d_kv) as u128;
                Some(2 * layers * b * (n + l) * inner * elt)
            }
            _ => None,
        }
    }

    /// A `TorchScript` model (its calling convention always takes a mask; its executor optimises on early calls).
    pub fn is_script(&self) -> bool {
        matches!(self.network, Network::Script(_))
    }

    /// Encoder forward (BERT) or the encoder stack of an encoder-decoder (T5). `mask` `[B, S]` (1 = token) only
    /// when something is padded; `TorchScript` models get all ones when none is given.
    pub fn encode(&self, ids: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        match &self.network {
            Network::Bert(m) => Ok(m.forward(ids, mask)),
            Network::ModernBert(m) => Ok(m.forward(ids, mask)),
            Network::T5(m) => Ok(m.encode(ids, mask)),
            Network::Bart(m) => Ok(m.encode(ids, mask)),
            Network::Script(s) => {
                let ones;
                let mask = if let Some(m) = mask {
                    m
                } else {
                    ones = Tensor::ones_like(ids);
                    &ones
                };
                match self.arch {
                    Arch::Encoder => s.forward(ids, mask),
                    Arch::EncoderDecoder => s.encode(ids, mask),
                    Arch::Decoder => Err(self.wrong("encode")),
                }
            }
            Network::Gpt2(_) | Network::Llama(_) => Err(self.wrong("encode")),
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
                Ok((self.greedy(&logits), GenState::Gpt2(cache)))
            }
            Network::Llama(m) => {
                let (batch, _) = ids.size2().map_err(torch)?;
                let mut cache = m.new_cache(batch, max_len);
                let logits = m.forward(ids, &mut cache, true);
                Ok((self.greedy(&logits), GenState::Llama(cache)))
            }
            Network::Script(s) if self.arch == Arch::Decoder => {
                let (logits, kv) = s.prefill(ids)?;
                Ok((self.greedy(&logits), GenState::ScriptDecoder(kv)))
            }
            _ => Err(self.wrong("prefill")),
        }
    }

    /// Starts decoding from an encoder output; the first `step` takes the decoder start tokens.
    pub fn start_decoder(
        &self,
        hidden: &Tensor,
        mask: Option<&Tensor>,
        max_new: i64,
    ) -> Result<GenState> {
        match &self.network {
            Network::T5(m) => Ok(GenState::T5(Box::new(m.start(hidden, mask, max_new)))),
            Network::Bart(m) => Ok(GenState::Bart(Box::new(m.start(hidden, mask, max_new)))),
            Network::Script(_) if self.arch == Arch::EncoderDecoder => {
                let (b, s, _) = hidden.size3().map_err(torch)?;
                Ok(GenState::ScriptSeq2Seq {
                    hidden: hidden.shallow_clone(),
                    mask: mask.map_or_else(
                        || Tensor::ones([b, s], (Kind::Int64, hidden.device())),
                        Tensor::shallow_clone,
                    ),
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
            Some(ArchConfig::Bart(c)) => c.decoder_start_token_id,
            _ => 0,
        }
    }

    /// One greedy decode step: feeds `ids` `[B, 1]`, returns the next token `[B, 1]`.
    pub fn step(&self, ids: &Tensor, state: &mut GenState) -> Result<Tensor> {
        match (&self.network, state) {
            (Network::Gpt2(m), GenState::Gpt2(cache)) => {
                Ok(self.greedy(&m.forward(ids, cache, true)))
            }
            (Network::Llama(m), GenState::Llama(cache)) => {
                Ok(self.greedy(&m.forward(ids, cache, true)))
            }
            (Network::T5(m), GenState::T5(s)) => Ok(self.greedy(&m.decode(ids, s))),
            (Network::Bart(m), GenState::Bart(s)) => Ok(self.greedy(&m.decode(ids, s))),
            (Network::Script(s), GenState::ScriptDecoder(kv)) => {
                let (logits, next_kv) = s.decoder_step(ids, std::mem::take(kv))?;
                *kv = next_kv;
                Ok(self.greedy(&logits))
            }
            (Network::Script(s), GenState::ScriptSeq2Seq { hidden, mask, kv }) => {
                let (logits, next_kv) = s.seq2seq_step(ids, hidden, mask, std::mem::take(kv))?;
                *kv = next_kv;
                Ok(self.greedy(&logits))
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
                cache.poison_unwritten();
                Ok(m.forward(ids, &mut cache, false))
            }
            (Network::Llama(m), None) => {
                let (b, t) = ids.size2().map_err(torch)?;
                let mut cache = m.new_cache(b, t);
                cache.poison_unwritten();
                Ok(m.forward(ids, &mut cache, false))
            }
            (Network::T5(m), Some(dec)) => {
                let hidden = m.encode(ids, None);
                let mut state = m.start(&hidden, None, dec.size()[1]);
                state.self_cache.poison_unwritten();
                Ok(m.decode(dec, &mut state))
            }
            (Network::Bart(m), Some(dec)) => {
                let hidden = m.encode(ids, None);
                let mut state = m.start(&hidden, None, dec.size()[1]);
                state.self_cache.poison_unwritten();
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
                cache.poison_unwritten();
                let steps: Vec<Tensor> = (0..t)
                    .map(|i| m.forward(&ids.narrow(1, i, 1), &mut cache, false))
                    .collect();
                Ok(Tensor::cat(&steps, 1))
            }
            (Network::Llama(m), None) => {
                let (b, t) = ids.size2().map_err(torch)?;
                let mut cache = m.new_cache(b, t);
                cache.poison_unwritten();
                let steps: Vec<Tensor> = (0..t)
                    .map(|i| m.forward(&ids.narrow(1, i, 1), &mut cache, false))
                    .collect();
                Ok(Tensor::cat(&steps, 1))
            }
            (Network::T5(m), Some(dec)) => {
                let hidden = m.encode(ids, None);
                let t = dec.size()[1];
                let mut state = m.start(&hidden, None, t);
                state.self_cache.poison_unwritten();
                let steps: Vec<Tensor> = (0..t)
                    .map(|i| m.decode(&dec.narrow(1, i, 1), &mut state))
                    .collect();
                Ok(Tensor::cat(&steps, 1))
            }
            (Network::Bart(m), Some(dec)) => {
                let hidden = m.encode(ids, None);
                let t = dec.size()[1];
                let mut state = m.start(&hidden, None, t);
                state.self_cache.poison_unwritten();
                let steps: Vec<Tensor> = (0..t)
                    .map(|i| m.decode(&dec.narrow(1, i, 1), &mut state))
                    .collect();
                Ok(Tensor::cat(&steps, 1))
            }
            _ => Err(self.wrong("incremental_logits")),
        }
    }
}

impl Model {
    /// The end-of-sequence tokens that greedy decoding never picks, those inside the vocabulary.
    fn eos_tokens(&self) -> Vec<i64> {
        let eos = match &self.config {
            Some(ArchConfig::Gpt2(c)) => c.eos_token_id.into_iter().collect(),
            Some(ArchConfig::T5(c)) => c.eos_token_id.into_iter().collect(),
            Some(ArchConfig::Bart(c)) => c.eos_token_id.into_iter().collect(),
            Some(c) => c
                .llama()
                .and_then(|(l, _)| l.eos_token_id.as_ref())
                .map(e3pipe::models::llama_config::TokenIds::ids)
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let vocab = self.config.as_ref().map_or(0, ArchConfig::vocab_size);
        eos.into_iter()
            .filter(|id| (0..vocab).contains(id))
            .collect()
    }

    /// Greedy choice from the last position's logits, `[B, T, V]` -> `[B, 1]`, with EOS excluded as transformers'
    /// `min_new_tokens` does: a measured generation always decodes `num_tokens` real tokens. The mask is a scalar
    /// fill on the device, no host copy.
    fn greedy(&self, logits: &Tensor) -> Tensor {
        let last = logits.select(1, -1);
        for eos in self.eos_tokens() {
            let _ = last.narrow(1, eos, 1).fill_(f64::NEG_INFINITY);
        }
        last.argmax(-1, true)
    }
}
