//! Per-point locks so two `e3pipe run`s on one project never compute the same point twice.
//!
//! A lock is an advisory `flock` on `cache/locks/<key>.lock` (std's `File::try_lock`), which the kernel releases
//! when its owner dies however it dies, so there is no stale-lock race to get wrong. The file records the owner's
//! pid, host and start time for messages; finding a previous owner's record under a free lock means that owner died
//! mid-point, which is reported as a takeover.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Serialize, Deserialize)]
pub struct Owner {
    pub pid: u32,
    pub host: String,
    pub started_at: String,
}

/// Held lock: the record is removed, then the lock released, on drop.
#[derive(Debug)]
pub struct PointLock {
    path: PathBuf,
    _file: File,
}

impl Drop for PointLock {
    fn drop(&mut self) {
        // Unlink while still holding the lock; `acquire` re-checks the path after locking, so a waiter that locked
        // the unlinked file retries on a fresh one.
        let _ = std::fs::remove_file(&self.path);
    }
}

pub enum Acquire {
    Held(PointLock),
    /// Another live process is computing this point.
    Busy(Owner),
}

pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "localhost".into(), |s| s.trim().to_string())
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

pub fn acquire(dir: &Path, hash: &str) -> Result<Acquire> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Write {
        path: dir.into(),
        source,
    })?;
    let path = dir.join(format!("{hash}.lock"));
    let err = |source| Error::Write {
        path: path.clone(),
        source,
    };
    loop {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let owner = serde_json::from_str(&text).unwrap_or(Owner {
                    pid: 0,
                    host: host_name(),
                    started_at: String::new(),
                });
                return Ok(Acquire::Busy(owner));
            }
            Err(TryLockError::Error(source)) => return Err(err(source)),
        }
        // The previous holder may have unlinked the file between our open and our lock: then lock a fresh one.
        let same_file = std::fs::metadata(&path)
            .ok()
            .zip(file.metadata().ok())
            .is_some_and(|(a, b)| a.ino() == b.ino() && a.dev() == b.dev());
        if !same_file {
            continue;
        }
        let mut previous = String::new();
        let _ = file.read_to_string(&mut previous);
        if let Ok(dead) = serde_json::from_str::<Owner>(&previous) {
            crate::output::warn(&format!(
                "taking over the lock of point {} from dead process {} (started {})",
                short(hash),
                dead.pid,
                dead.started_at
            ));
        }
        let owner = Owner {
            pid: std::process::id(),
            host: host_name(),
            started_at: crate::clock::now_rfc3339(),
        };
        let text = serde_json::to_string(&owner).unwrap_or_default();
        file.set_len(0).map_err(err)?;
        file.rewind().map_err(err)?;
        file.write_all(text.as_bytes()).map_err(err)?;
        return Ok(Acquire::Held(PointLock { path, _file: file }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_acquire_is_busy_and_dead_owner_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire(dir.path(), "abcdef0123456789").unwrap();
        assert!(matches!(first, Acquire::Held(_)));
        match acquire(dir.path(), "abcdef0123456789").unwrap() {
            Acquire::Busy(owner) => assert_eq!(owner.pid, std::process::id()),
            Acquire::Held(_) => panic!("a held lock was taken twice"),
        }
        drop(first);
        assert!(
            !dir.path().join("abcdef0123456789.lock").exists(),
            "released locks leave no file"
        );
        // The record of a process that died mid-point, with no lock held on it, is taken over.
        let stale = Owner {
            pid: 4_000_000_000,
            host: host_name(),
            started_at: "then".into(),
        };
        std::fs::write(
            dir.path().join("abcdef0123456789.lock"),
            serde_json::to_string(&stale).unwrap(),
        )
        .unwrap();
        assert!(matches!(
            acquire(dir.path(), "abcdef0123456789").unwrap(),
            Acquire::Held(_)
        ));
    }
}
