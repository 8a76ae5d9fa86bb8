//! Structural checks of model files that need no libtorch, run while validating (exit 2, before anything is
//! written): a safetensors file whose header disagrees with its size (truncated, or not safetensors at all), a
//! `TorchScript` file that is not the zip archive `torch.jit.save` writes, a tokenizer that is not JSON. Failures
//! found only by loading into libtorch stay with the measuring worker (failed points, exit 1).

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};
use crate::fsio::check_input_file;

fn bad(path: &Path, message: String) -> Error {
    Error::ModelFile {
        path: path.into(),
        message,
    }
}

/// Largest safetensors header we parse (the format's own limit is 100 MB).
const MAX_HEADER_BYTES: u64 = 100 << 20;

fn dtype_bytes(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E4M3" | "F8_E5M2" => 1,
        "F16" | "BF16" | "I16" | "U16" => 2,
        "F32" | "I32" | "U32" => 4,
        "F64" | "I64" | "U64" => 8,
        _ => return None,
    })
}

/// The weights files of a Hugging Face directory: `model.safetensors`, or the shards `model.safetensors.index.json`
/// maps tensors to (file names inside the directory, each once, in order).
pub fn weight_files(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let single = dir.join("model.safetensors");
    let index = dir.join("model.safetensors.index.json");
    if single.exists() || !index.exists() {
        return Ok(vec![single]);
    }
    let text = crate::fsio::read_input_text(&index, "weights index")?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(&index, format!("not valid JSON: {e}")))?;
    let map = value
        .get("weight_map")
        .and_then(serde_json::Value::as_object)
        .ok_or_else(|| bad(&index, "has no `weight_map` object".into()))?;
    let mut names: Vec<&str> = Vec::new();
    for (tensor, file) in map {
        let file = file.as_str().ok_or_else(|| {
            bad(
                &index,
                format!(
                    "`weight_map.{}` is not a file name",
                    crate::error::shorten(tensor, 60)
                ),
            )
        })?;
        // A shard is a file of this directory, never a path out of it.
        if file.is_empty()
            || file.contains('/')
            || file.contains('\\')
            || file == ".."
            || file == "."
        {
            return Err(bad(
                &index,
                format!(
                    "shard `{}` is not a file name in the directory",
                    crate::error::shorten(file, 60)
                ),
            ));
        }
        if !names.contains(&file) {
            names.push(file);
        }
    }
    if names.is_empty() {
        return Err(bad(&index, "`weight_map` names no shard".into()));
    }
    names.sort_unstable();
    Ok(names.into_iter().map(|n| dir.join(n)).collect())
}

/// Every weights file of a Hugging Face directory passes `check_safetensors`.
pub fn check_weights(dir: &Path) -> Result<()> {
    for file in weight_files(dir)? {
        check_safetensors(&file)?;
    }
    Ok(())
}

/// A safetensors file: 8-byte little-endian header length, a JSON header of tensors with their byte ranges, then
/// exactly the bytes those ranges cover.
pub fn check_safetensors(path: &Path) -> Result<()> {
    let size = check_input_file(path, "weights file", None)?;
    let mut file = std::fs::File::open(path).map_err(|e| bad(path, e.to_string()))?;
    let mut len = [0u8; 8];
    if size < 8 || file.read_exact(&mut len).is_err() {
        return Err(bad(
            path,
            format!("not a safetensors file: only {size} bytes"),
        ));
    }
    let header_len = u64::from_le_bytes(len);
    if header_len > MAX_HEADER_BYTES || 8 + header_len > size {
        return Err(bad(
            path,
            format!(
                "not a safetensors file, or truncated: its header claims {header_len} bytes but the file has {size}"
            ),
        ));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header)
        .map_err(|e| bad(path, format!("cannot read the safetensors header: {e}")))?;
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&header)
        .map_err(|e| {
            bad(
                path,
                format!("the safetensors header is not valid JSON: {e}"),
            )
        })?;
    let data_bytes = size - 8 - header_len;
    let mut end_max = 0u64;
    for (name, info) in header.iter().filter(|(n, _)| *n != "__metadata__") {
        let offsets: Vec<u64> = info
            .get("data_offsets")
            .and_then(|o| o.as_array())
            .map(|a| a.iter().filter_map(serde_json::Value::as_u64).collect())
            .unwrap_or_default();
        let [begin, end] = offsets[..] else {
            return Err(bad(
                path,
                format!("tensor `{name}` has no valid `data_offsets`"),
            ));
        };
        let elements = info.get("shape").and_then(|s| s.as_array()).map(|dims| {
            dims.iter()
                .try_fold(1u64, |n, d| d.as_u64().and_then(|d| n.checked_mul(d)))
        });
        let width = info
            .get("dtype")
            .and_then(|d| d.as_str())
            .and_then(dtype_bytes);
        if let (Some(Some(elements)), Some(width)) = (elements, width)
            && elements.checked_mul(width) != Some(end.saturating_sub(begin))
        {
            return Err(bad(
                path,
                format!(
                    "tensor `{name}` spans {} bytes, but its shape and dtype need {}",
                    end.saturating_sub(begin),
                    elements.saturating_mul(width)
                ),
            ));
        }
        if begin > end {
            return Err(bad(
                path,
                format!("tensor `{name}` has inverted `data_offsets`"),
            ));
        }
        end_max = end_max.max(end);
    }
    if end_max != data_bytes {
        return Err(bad(
            path,
            format!(
                "the header describes {end_max} bytes of tensor data but the file holds {data_bytes} (truncated or damaged)"
            ),
        ));
    }
    Ok(())
}

/// A `TorchScript` file as `torch.jit.save` writes it: a zip archive.
pub fn check_torchscript(path: &Path) -> Result<()> {
    check_input_file(path, "TorchScript file", None)?;
    let mut magic = [0u8; 4];
    let read = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic));
    if read.is_err() || magic != *b"PK\x03\x04" {
        return Err(bad(
            path,
            "not a TorchScript file (`torch.jit.save` writes a zip archive; this is not one)"
                .into(),
        ));
    }
    // A zip ends with its central directory record; a truncated copy has none.
    let size = std::fs::metadata(path).map_or(0, |m| m.len());
    let tail_len = size.min(66 * 1024);
    let mut tail = vec![0u8; tail_len as usize];
    let read_tail = std::fs::File::open(path).and_then(|mut f| {
        use std::io::{Seek, SeekFrom};
        f.seek(SeekFrom::Start(size - tail_len))?;
        f.read_exact(&mut tail)
    });
    if read_tail.is_err() || !tail.windows(4).any(|w| w == b"PK\x05\x06") {
        return Err(bad(
            path,
            "a truncated or damaged TorchScript file (its zip archive has no central directory)"
                .into(),
        ));
    }
    Ok(())
}

/// A `tokenizer.json`: a regular file of at most 256 MiB holding a JSON object (fully parsed by the worker).
pub fn check_tokenizer(path: &Path) -> Result<()> {
    check_input_file(path, "tokenizer", Some(256 << 20))?;
    let mut head = [0u8; 64];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| bad(path, e.to_string()))?;
    if head[..n].iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(Error::Tokenizer {
            path: path.into(),
            message: "not a `tokenizer.json` (a JSON object)".into(),
        });
    }
    Ok(())
}

/// A `tokenizer.json` loaded as the worker loads it (the `tokenizers` crate), so that a file that is JSON but no
/// tokenizer (`{"model": 42}`) is refused while planning.
pub fn load_tokenizer(path: &Path) -> Result<()> {
    check_tokenizer(path)?;
    tokenizers::Tokenizer::from_file(path)
        .map(|_| ())
        .map_err(|e| Error::Tokenizer {
            path: path.into(),
            message: crate::error::shorten(&e.to_string(), 200),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn safetensors(header: &str, data: &[u8]) -> Vec<u8> {
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend(header.as_bytes());
        bytes.extend(data);
        bytes
    }

    #[test]
    fn safetensors_header_must_match_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.safetensors");
        let header = r#"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#;
        std::fs::write(&file, safetensors(header, &[0; 16])).unwrap();
        check_safetensors(&file).unwrap();
        std::fs::write(&file, safetensors(header, &[0; 10])).unwrap();
        let e = check_safetensors(&file).unwrap_err().to_string();
        assert!(e.contains("truncated or damaged"), "{e}");
        std::fs::write(&file, b"\xff\xff\xff\xff\xff\xff\xff\x7fjunk").unwrap();
        assert!(
            check_safetensors(&file)
                .unwrap_err()
                .to_string()
                .contains("header claims")
        );
        let wrong = r#"{"w":{"dtype":"F32","shape":[3,2],"data_offsets":[0,16]}}"#;
        std::fs::write(&file, safetensors(wrong, &[0; 16])).unwrap();
        assert!(
            check_safetensors(&file)
                .unwrap_err()
                .to_string()
                .contains("shape and dtype need 24")
        );
    }

    #[test]
    fn the_fixtures_pass_and_junk_does_not() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        check_safetensors(&fixtures.join("tiny-gpt2/model.safetensors")).unwrap();
        check_torchscript(&fixtures.join("tiny-bert-encoder.pt")).unwrap();
        let e = check_torchscript(&fixtures.join("tiny-gpt2/config.json")).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let dir = tempfile::tempdir().unwrap();
        let cut = dir.path().join("cut.pt");
        let whole = std::fs::read(fixtures.join("tiny-bert-encoder.pt")).unwrap();
        std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
        assert!(
            check_torchscript(&cut)
                .unwrap_err()
                .to_string()
                .contains("truncated")
        );
        assert!(check_tokenizer(&fixtures.join("tiny-bert-encoder.pt")).is_err());
    }
}
