//! Loading `model.safetensors` into a model's variables by Hugging Face name, with errors that name the file and
//! the tensor (missing, wrong shape, truncated file) instead of libtorch's.

use std::collections::HashMap;
use std::path::Path;

use tch::{Tensor, nn::VarStore};

use e3pipe::error::{Error, Result};

/// Copies every variable of `vs` from `files` (one `model.safetensors`, or the shards its index names), cast to the
/// variables' dtype (a bf16 checkpoint into an fp32 run). Tensor names in the files may carry one of `prefixes` (HF
/// heads save `transformer.h.0...` or `bert.encoder...`); `aliases` maps a variable to alternative names (tied
/// embeddings).
pub fn load_safetensors(
    vs: &VarStore,
    files: &[std::path::PathBuf],
    prefixes: &[&str],
    aliases: &[(&str, &str)],
) -> Result<()> {
    let mut by_name: HashMap<String, Tensor> = HashMap::new();
    for file in files {
        if !file.is_file() {
            return Err(Error::ModelFile {
                path: file.clone(),
                message: "weights file does not exist".into(),
            });
        }
        let tensors = Tensor::read_safetensors(file).map_err(|e| Error::ModelFile {
            path: file.clone(),
            message: format!("not a readable safetensors file ({e})"),
        })?;
        for (name, tensor) in tensors {
            let short = prefixes
                .iter()
                .find_map(|p| name.strip_prefix(p))
                .map_or_else(|| name.clone(), str::to_string);
            by_name.insert(short, tensor);
        }
    }
    // Errors name the file, or the index for a sharded checkpoint.
    let file: &Path = files
        .first()
        .map_or(Path::new("model.safetensors"), |f| f.as_path());
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
