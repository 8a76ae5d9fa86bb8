//! Measured machine roofs, one per (run, device, hardware, dtype, threads, libtorch, measuring code) under
//! `cache/peaks/<blake3>.json`. A roof belongs to the run that measured it: a point's latency is only ever divided
//! by the roof measured in its own run (this shared machine's speed drifts up to 2× between sessions, so a roof from
//! another day says little about a point of today). The bench steps of one run share its roof.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::bench::peaks::Peaks;
use crate::bench::result::METHOD_ID;
use crate::error::Result;
use crate::fsio::{read_own, write_json};
use crate::models::hardware::HardwareId;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeaksKey {
    pub method: String,
    pub device: String,
    pub hardware: HardwareId,
    pub dtype: String,
    pub threads: usize,
    pub libtorch: String,
    /// The run that measured (or will measure) it (`clock::run_id`).
    #[serde(default)]
    pub run_id: String,
}

impl PeaksKey {
    pub fn new(
        device: String,
        hardware: HardwareId,
        dtype: &str,
        threads: usize,
        libtorch: &str,
    ) -> PeaksKey {
        PeaksKey {
            method: METHOD_ID.into(),
            device,
            hardware,
            dtype: dtype.into(),
            threads,
            libtorch: libtorch.into(),
            run_id: crate::clock::run_id().into(),
        }
    }

    /// The same roof as measured by the run `run_id`.
    #[must_use]
    pub fn of_run(&self, run_id: &str) -> PeaksKey {
        PeaksKey {
            run_id: run_id.into(),
            ..self.clone()
        }
    }

    pub fn hash(&self) -> String {
        let mut hasher = blake3::Hasher::new();
        let _ = serde_json::to_writer(&mut hasher, self);
        hasher.finalize().to_hex().to_string()
    }
}

/// The cached entry: the key it was measured for, and the peaks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Entry {
    key: PeaksKey,
    peaks: Peaks,
}

/// `cache/peaks/<hash>.json` under the cache folder `cache_dir`.
pub fn path(cache_dir: &Path, key: &PeaksKey) -> PathBuf {
    cache_dir.join("peaks").join(format!("{}.json", key.hash()))
}

/// The peaks measured for `key`, if an intact entry for exactly that key is there.
pub fn load(cache_dir: &Path, key: &PeaksKey) -> Option<Peaks> {
    let bytes = read_own(&path(cache_dir, key)).ok()?;
    let entry: Entry = serde_json::from_slice(&bytes).ok()?;
    // Between a megaFLOP/s and an exaFLOP/s, a megabyte/s and a petabyte/s: anything else was not measured here.
    let p = &entry.peaks;
    let sane = (1e6..1e18).contains(&p.matmul_flops_per_s)
        && (1e6..1e15).contains(&p.memory_bytes_per_s)
        && p.matmul_median_flops_per_s <= p.matmul_flops_per_s
        && p.memory_median_bytes_per_s <= p.memory_bytes_per_s
        && p.runs >= 1;
    (entry.key == *key && sane).then_some(entry.peaks)
}

/// Every peaks entry in the cache folder `cache_dir`, and whether this build can use it (an entry measured by other
/// measuring code, or unreadable, never matches a key again: `e3pipe cache --prune` removes it).
pub fn entries(cache_dir: &Path) -> Vec<(PathBuf, bool)> {
    let Ok(dir) = std::fs::read_dir(cache_dir.join("peaks")) else {
        return Vec::new();
    };
    let mut found: Vec<(PathBuf, bool)> = dir
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let usable = read_own(&p)
                .ok()
                .and_then(|b| serde_json::from_slice::<Entry>(&b).ok())
                .is_some_and(|e| e.key.method == METHOD_ID);
            (p, usable)
        })
        .collect();
    found.sort();
    found
}

/// Records `peaks` for `key` (atomically).
pub fn save(cache_dir: &Path, key: &PeaksKey, peaks: &Peaks) -> Result<()> {
    write_json(
        &path(cache_dir, key),
        &Entry {
            key: key.clone(),
            peaks: peaks.clone(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(threads: usize) -> PeaksKey {
        PeaksKey::new(
            "cpu (test)".into(),
            crate::models::hardware::identify(crate::models::hardware::Device::Cpu).unwrap(),
            "fp32",
            threads,
            "2.13.0",
        )
    }

    fn peaks(flops: f64) -> Peaks {
        Peaks {
            device: "cpu (test)".into(),
            dtype: "fp32".into(),
            threads: 2,
            matmul_flops_per_s: flops,
            matmul_median_flops_per_s: flops,
            matmul_n: 1024,
            memory_bytes_per_s: 1e10,
            memory_median_bytes_per_s: 1e10,
            stream_bytes: 1,
            runs: 1,
            method: METHOD_ID.into(),
            measured_at: String::new(),
            datasheet: None,
        }
    }

    #[test]
    fn entries_are_found_only_for_their_own_key_and_when_sane() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &key(2), &peaks(1e11)).unwrap();
        assert_eq!(load(dir.path(), &key(2)), Some(peaks(1e11)));
        assert_eq!(load(dir.path(), &key(1)), None);
        // A damaged or nonsensical entry is measured again, never used.
        std::fs::write(path(dir.path(), &key(2)), "{").unwrap();
        assert_eq!(load(dir.path(), &key(2)), None);
        save(dir.path(), &key(2), &peaks(f64::NAN)).unwrap();
        assert_eq!(load(dir.path(), &key(2)), None);
        save(dir.path(), &key(2), &peaks(1e30)).unwrap();
        assert_eq!(load(dir.path(), &key(2)), None);
    }
}
