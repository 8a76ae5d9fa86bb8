//! Bring-your-own `TorchScript` models in e3pipe's calling convention (see README, "`TorchScript` models"):
//! - encoder: `forward(input_ids, attention_mask) -> last_hidden_state`
//! - decoder: `prefill(input_ids) -> (logits, kv)`, `step(input_ids, kv) -> (logits, kv)`, `kv` a list of tensors
//! - encoder-decoder: `encode(input_ids, attention_mask) -> hidden`,
//!   `step(decoder_input_ids, hidden, attention_mask, kv) -> (logits, kv)`, `kv` empty at the first step
//!
//! A file is probed with a two-token input at load time, so a wrong signature fails before any timing.

use std::path::{Path, PathBuf};

use tch::{CModule, Device, IValue, Kind, Tensor};

use e3pipe::error::{Error, Result};
use e3pipe::models::config::Arch;

#[derive(Debug)]
pub struct ScriptModel {
    module: CModule,
    file: PathBuf,
}

impl ScriptModel {
    pub fn load(file: &Path, arch: Arch, device: Device, kind: Kind) -> Result<ScriptModel> {
        let mut module = CModule::load_on_device(file, device).map_err(|e| Error::ModelFile {
            path: file.into(),
            message: format!(
                "not a loadable TorchScript file: {}",
                first_line(&e.to_string())
            ),
        })?;
        // Inference behaviour (dropout off, batch norm frozen), whatever mode the file was saved in.
        module.f_set_eval().map_err(|e| Error::ModelFile {
            path: file.into(),
            message: format!("cannot switch to eval mode: {}", first_line(&e.to_string())),
        })?;
        // The requested dtype applies to TorchScript weights too, so results and cache keys tell the truth.
        module.to(device, kind, false);
        let model = ScriptModel {
            module,
            file: file.into(),
        };
        let ids = Tensor::from_slice(&[1i64, 2])
            .view([1, 2])
            .to_device(device);
        let mask = Tensor::ones([1, 2], (Kind::Int64, device));
        let probe = match arch {
            Arch::Encoder => model.forward(&ids, &mask).map(|_| ()),
            Arch::Decoder => model
                .prefill(&ids)
                .and_then(|(_, kv)| model.decoder_step(&ids.narrow(1, 0, 1), kv).map(|_| ())),
            Arch::EncoderDecoder => model.encode(&ids, &mask).and_then(|h| {
                model
                    .seq2seq_step(&ids.narrow(1, 0, 1), &h, &mask, Vec::new())
                    .map(|_| ())
            }),
        };
        probe.map_err(|e| Error::ModelFile {
            path: file.into(),
            message: if kind == Kind::Float {
                format!("does not follow e3pipe's `{arch}` TorchScript calling convention: {e}")
            } else {
                // Scripts often build fp32 masks inside; converted weights then clash with them.
                let dtype = crate::models::kind_name(kind);
                format!(
                    "does not run in `{dtype}` (set `dtype: fp32`, or export it in `{dtype}`): {e}"
                )
            },
        })?;
        Ok(model)
    }

    fn fail(&self, what: &str, e: impl std::fmt::Display) -> Error {
        Error::ModelFile {
            path: self.file.clone(),
            message: format!("{what}: {}", first_line(&e.to_string())),
        }
    }

    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        self.module
            .forward_ts(&[ids, mask])
            .map_err(|e| self.fail("forward", e))
    }

    pub fn encode(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        self.module
            .method_ts("encode", &[ids, mask])
            .map_err(|e| self.fail("encode", e))
    }

    pub fn prefill(&self, ids: &Tensor) -> Result<(Tensor, Vec<Tensor>)> {
        let out = self
            .module
            .method_is("prefill", &[IValue::Tensor(ids.shallow_clone())])
            .map_err(|e| self.fail("prefill", e))?;
        self.logits_and_kv("prefill", out)
    }

    pub fn decoder_step(&self, ids: &Tensor, kv: Vec<Tensor>) -> Result<(Tensor, Vec<Tensor>)> {
        let out = self
            .module
            .method_is(
                "step",
                &[IValue::Tensor(ids.shallow_clone()), IValue::TensorList(kv)],
            )
            .map_err(|e| self.fail("step", e))?;
        self.logits_and_kv("step", out)
    }

    pub fn seq2seq_step(
        &self,
        ids: &Tensor,
        hidden: &Tensor,
        mask: &Tensor,
        kv: Vec<Tensor>,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let args = [
            IValue::Tensor(ids.shallow_clone()),
            IValue::Tensor(hidden.shallow_clone()),
            IValue::Tensor(mask.shallow_clone()),
            IValue::TensorList(kv),
        ];
        let out = self
            .module
            .method_is("step", &args)
            .map_err(|e| self.fail("step", e))?;
        self.logits_and_kv("step", out)
    }

    fn logits_and_kv(&self, what: &str, out: IValue) -> Result<(Tensor, Vec<Tensor>)> {
        let IValue::Tuple(mut parts) = out else {
            return Err(self.fail(what, "expected a tuple (logits, kv)"));
        };
        if parts.len() != 2 {
            return Err(self.fail(
                what,
                format!(
                    "expected a 2-tuple (logits, kv), got {} elements",
                    parts.len()
                ),
            ));
        }
        let kv = match parts.pop() {
            Some(IValue::TensorList(kv)) => kv,
            Some(IValue::GenericList(items)) => items
                .into_iter()
                .map(|i| {
                    if let IValue::Tensor(t) = i {
                        Ok(t)
                    } else {
                        Err(self.fail(what, "kv must be a list of tensors"))
                    }
                })
                .collect::<Result<_>>()?,
            _ => return Err(self.fail(what, "kv must be a list of tensors")),
        };
        let Some(IValue::Tensor(logits)) = parts.pop() else {
            return Err(self.fail(what, "logits must be a tensor"));
        };
        Ok((logits, kv))
    }
}

fn first_line(s: &str) -> String {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_string()
}
