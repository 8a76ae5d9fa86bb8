//! Per-point locks so two `e3pipe run`s on one project never compute the same point twice. A lock file records
//! the owner's pid, host and start time; a lock whose owner is dead (same host, no such pid) is taken over with a
//! warning.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Serialize, Deserialize)]
pub struct Owner {
    pub pid: u32,
    pub host: String,
    pub started_at: String,
}

/// Held lock; the file is removed on drop.
#[derive(Debug)]
pub struct PointLock {
    path: PathBuf,
}

impl Drop for PointLock {
    fn drop(&mut self) {
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
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

pub fn acquire(dir: &Path, hash: &str) -> Result<Acquire> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Write {
        path: dir.into(),
        source,
    })?;
    let path = dir.join(format!("{hash}.lock"));
    for _ in 0..3 {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut file) => {
                let owner = Owner {
                    pid: std::process::id(),
                    host: host_name(),
                    started_at: crate::bench::result::now_rfc3339(),
                };
                let text = serde_json::to_string(&owner).unwrap_or_default();
                file.write_all(text.as_bytes())
                    .map_err(|source| Error::Write {
                        path: path.clone(),
                        source,
                    })?;
                return Ok(Acquire::Held(PointLock { path }));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let owner: Option<Owner> = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|t| serde_json::from_str(&t).ok());
                match owner {
                    Some(owner) if owner.host != host_name() || alive(owner.pid) => {
                        return Ok(Acquire::Busy(owner));
                    }
                    Some(owner) => {
                        tracing::warn!(
                            "taking over the lock of point {} from dead process {} (started {})",
                            &hash[..12],
                            owner.pid,
                            owner.started_at
                        );
                        let _ = std::fs::remove_file(&path);
                    }
                    None => {
                        // Created but not yet written by its owner, or torn by a crash: wait briefly, then treat
                        // an unreadable lock older than a few seconds as dead.
                        let age = std::fs::metadata(&path)
                            .and_then(|m| m.modified())
                            .ok()
                            .and_then(|t| t.elapsed().ok());
                        if age.is_some_and(|a| a.as_secs() >= 5) {
                            let _ = std::fs::remove_file(&path);
                        } else {
                            std::thread::sleep(std::time::Duration::from_millis(200));
                        }
                    }
                }
            }
            Err(source) => return Err(Error::Write { path, source }),
        }
    }
    let owner = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    Ok(owner.map(Acquire::Busy).unwrap_or_else(|| {
        Acquire::Busy(Owner {
            pid: 0,
            host: host_name(),
            started_at: String::new(),
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_acquire_is_busy_and_dead_owner_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire(dir.path(), "abcdef0123456789").unwrap();
        assert!(matches!(first, Acquire::Held(_)));
        assert!(matches!(
            acquire(dir.path(), "abcdef0123456789").unwrap(),
            Acquire::Busy(_)
        ));
        drop(first);
        // A lock left by a dead process (pid far above pid_max) is taken over.
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
