//! blake3 of weights and tokenizer files, remembered by (path, size, modification time) in
//! `cache/file_hashes.json`, so a no-op rerun does not re-read gigabytes of weights to learn nothing changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsio::write_json;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Known {
    size_bytes: u64,
    modified_ns: u128,
    blake3: String,
}

#[derive(Debug)]
pub struct FileHashes {
    file: PathBuf,
    known: Mutex<BTreeMap<PathBuf, Known>>,
    changed: Mutex<bool>,
}

impl FileHashes {
    /// Loads the memo of the project at `root` (an unreadable memo is simply empty).
    pub fn load(root: &Path) -> FileHashes {
        let file = root.join("cache").join("file_hashes.json");
        let known = crate::fsio::read_own(&file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        FileHashes {
            file,
            known: Mutex::new(known),
            changed: Mutex::new(false),
        }
    }

    /// The blake3 hex digest of `path`, read only when its size or modification time changed.
    pub fn blake3(&self, path: &Path) -> Result<String> {
        // A FIFO or device named as weights or tokenizer would be read forever: refuse it first.
        crate::fsio::check_input_file(path, "file", None)?;
        let meta = std::fs::metadata(path).map_err(|source| Error::Read {
            path: path.into(),
            source,
        })?;
        let modified_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let mut known = self
            .known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(k) = known
            .get(&key)
            .filter(|k| k.size_bytes == meta.len() && k.modified_ns == modified_ns)
        {
            return Ok(k.blake3.clone());
        }
        let blake3 = hash_file(path)?;
        known.insert(
            key,
            Known {
                size_bytes: meta.len(),
                modified_ns,
                blake3: blake3.clone(),
            },
        );
        *self
            .changed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        Ok(blake3)
    }

    /// Writes the memo back if anything was hashed.
    pub fn save(&self) -> Result<()> {
        if !*self
            .changed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            return Ok(());
        }
        let known = self
            .known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        write_json(&self.file, &*known)
    }
}

/// blake3 of a file's contents, read whole and hashed on all cores (rayon): multi-GB weights hash in a second or
/// two, and only when the file changed.
pub fn hash_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read {
        path: path.into(),
        source,
    })?;
    let mut hasher = blake3::Hasher::new();
    hasher.update_rayon(&bytes);
    Ok(hasher.finalize().to_hex().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rehashes_only_changed_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("w.bin");
        std::fs::write(&file, b"weights v1").unwrap();
        let memo = FileHashes::load(dir.path());
        let first = memo.blake3(&file).unwrap();
        assert_eq!(first, blake3::hash(b"weights v1").to_hex().to_string());
        memo.save().unwrap();
        let memo = FileHashes::load(dir.path());
        assert_eq!(memo.blake3(&file).unwrap(), first);
        std::fs::write(&file, b"weights v2, longer").unwrap();
        assert_eq!(
            memo.blake3(&file).unwrap(),
            blake3::hash(b"weights v2, longer").to_hex().to_string()
        );
    }
}
