//! Loading `model.safetensors` into a model's variables by Hugging Face name, with errors that name the file and
//! the tensor (missing, wrong shape, truncated file) instead of libtorch's.

use std::collections::HashMap;
use std::path::Path;

use tch::{Tensor, nn::VarStore};

use e3pipe::error::{Error, Result};

/// Copies every variable of `vs` from `file`. Tensor names in the file may carry one of `prefixes` (HF heads save
/// `transformer.h.0...` or `bert.encoder...`); `aliases` maps a variable to alternative names (tied embeddings).
pub fn load_safetensors(
    vs: &VarStore,
    file: &Path,
    prefixes: &[&str],
    aliases: &[(&str, &str)],
) -> Result<()> {
    if !file.is_file() {
        return Err(Error::ModelFile {
            path: file.into(),
            message: "weights file does not exist".into(),
        });
    }
    let tensors = Tensor::read_safetensors(file).map_err(|e| Error::ModelFile {
        path: file.into(),
        message: format!("not a readable safetensors file ({e})"),
    })?;
    let mut by_name: HashMap<String, Tensor> = HashMap::with_capacity(tensors.len());
    for (name, tensor) in tensors {
        let short = prefixes
            .iter()
            .find_map(|p| name.strip_prefix(p))
            .map_or_else(|| name.clone(), str::to_string);
        by_name.insert(short, tensor);
    }
    let mut variables: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    variables.sort_by(|a, b| a.0.cmp(&b.0));
    tch::no_grad(|| -> Result<()> {
        for (name, mut var) in variables {
            let source = by_name.get(&name).or_else(|| {
                aliases
                    .iter()
                    .filter(|(v, _)| *v == name)
                    .find_map(|(_, alt)| by_name.get(*alt))
            });
            let Some(source) = source else {
                return Err(Error::ModelFile {
                    path: file.into(),
                    message: format!("tensor `{name}` is missing"),
                });
            };
            if source.size() != var.size() {
                return Err(Error::ModelFile {
                    path: file.into(),
                    message: format!(
                        "tensor `{name}` has shape {:?}, the config needs {:?}",
                        source.size(),
                        var.size()
                    ),
                });
            }
            var.f_copy_(source).map_err(|e| Error::ModelFile {
                path: file.into(),
                message: format!("tensor `{name}`: {e}"),
            })?;
        }
        Ok(())
    })
}
