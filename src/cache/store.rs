//! The point cache: one JSON file per point under `cache/points/`, named by its key hash, written atomically when
//! the point finishes. Entries carry their key fields (to explain staleness) and a checksum of the result (to
//! detect a corrupted file, which is reported and recomputed).

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::bench::result::PointResult;
use crate::cache::key::PointKey;
use crate::error::Result;
use crate::fsio::write_json;

const FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub format: u32,
    pub hash: String,
    pub key: serde_json::Map<String, serde_json::Value>,
    pub result: PointResult,
    /// blake3 of the result's JSON.
    pub checksum: String,
}

pub enum Lookup {
    Hit(Box<Entry>),
    Miss,
    /// The file exists but cannot be trusted; the reason is reported and the point recomputed.
    Corrupt(String),
}

#[derive(Debug, Clone)]
pub struct Store {
    pub dir: PathBuf,
}

fn checksum(result: &PointResult) -> String {
    let mut hasher = blake3::Hasher::new();
    let _ = serde_json::to_writer(&mut hasher, result);
    hasher.finalize().to_hex().to_string()
}

impl Store {
    pub fn new(root: &Path) -> Store {
        Store {
            dir: root.join(crate::paths::CACHE_DIR),
        }
    }

    pub fn points_dir(&self) -> PathBuf {
        self.dir.join("points")
    }

    pub fn entry_path(&self, hash: &str) -> PathBuf {
        self.points_dir().join(format!("{hash}.json"))
    }

    pub fn get(&self, hash: &str) -> Lookup {
        let path = self.entry_path(hash);
        let text = match crate::fsio::read_own(&path) {
            Ok(t) => t,
            // No entry, also when a file stands where the cache folder belongs (it is replaced before any write).
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                return Lookup::Miss;
            }
            Err(e) => return Lookup::Corrupt(format!("cannot read: {e}")),
        };
        match serde_json::from_slice::<Entry>(&text) {
            Err(e) => Lookup::Corrupt(format!("not a valid cache entry ({e})")),
            Ok(entry) if entry.hash != hash => {
                Lookup::Corrupt("entry holds a different key".into())
            }
            Ok(entry) if entry.checksum != checksum(&entry.result) => {
                Lookup::Corrupt("checksum mismatch".into())
            }
            Ok(entry) => Lookup::Hit(Box::new(entry)),
        }
    }

    pub fn put(&self, key: &PointKey, result: &PointResult) -> Result<()> {
        let hash = key.hash();
        let entry = Entry {
            format: FORMAT,
            hash: hash.clone(),
            key: key.fields(),
            result: result.clone(),
            checksum: checksum(result),
        };
        write_json(&self.entry_path(&hash), &entry)?;
        // Then say that this model's points changed, for the documents that keep other pipelines' points
        // (`results_file::carried`): a unique line per write, so every write changes it.
        crate::fsio::write_atomic(
            &self.changes_path(&result.model),
            format!("{hash} {}\n", result.finished_at).as_bytes(),
        )
    }

    /// `cache/changes/<model>.txt`: the last entry written for the model (what `changes` reads).
    pub fn changes_path(&self, model: &str) -> PathBuf {
        self.dir
            .join("changes")
            .join(format!("{}.txt", crate::paths::sanitize(model)))
    }

    /// What the model's last written entry was, as `put` recorded it; empty when none was recorded.
    pub fn changes(&self, model: &str) -> String {
        crate::fsio::read_own(&self.changes_path(model))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The hashes of the entries present, from one listing of the directory (no entry is read).
    pub fn hashes(&self) -> std::collections::BTreeSet<String> {
        std::fs::read_dir(self.points_dir())
            .map(|d| {
                d.filter_map(std::result::Result::ok)
                    .filter_map(|e| {
                        e.file_name()
                            .to_str()
                            .and_then(|n| n.strip_suffix(".json"))
                            .map(str::to_string)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every readable entry, for staleness explanations and `e3pipe cache`.
    pub fn entries(&self) -> Vec<(PathBuf, Option<Entry>)> {
        let Ok(dir) = std::fs::read_dir(self.points_dir()) else {
            return Vec::new();
        };
        let paths: Vec<PathBuf> = dir
            .filter_map(std::result::Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        // Parsing every entry is the bulk of a no-op rerun's work on a big cache: spread it over the cores.
        let mut out: Vec<(PathBuf, Option<Entry>)> = paths
            .into_par_iter()
            .map(|p| {
                let entry = crate::fsio::read_own(&p)
                    .ok()
                    .and_then(|t| serde_json::from_slice(&t).ok());
                (p, entry)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The most recent entry for the same model and context length, to say what changed.
    pub fn latest_for(
        &self,
        entries: &[(PathBuf, Option<Entry>)],
        model: &str,
        context_length: usize,
        batch_size: usize,
    ) -> Option<Entry> {
        entries
            .iter()
            .filter_map(|(_, e)| e.as_ref())
            .filter(|e| {
                e.result.model == model
                    && e.result.context_length == context_length
                    && e.result.batch_size == batch_size
            })
            .max_by(|a, b| a.result.finished_at.cmp(&b.result.finished_at))
            .cloned()
    }
}
