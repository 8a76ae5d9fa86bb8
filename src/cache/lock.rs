//! Per-point locks so two `e3pipe run`s on one project never compute the same point twice.
//!
//! A lock is an advisory `flock` on `cache/locks/<key>.lock` (std's `File::try_lock`), which the kernel releases
//! when its owner dies however it dies, so there is no stale-lock race to get wrong. The file records the owner's
//! pid, host and start time for messages; finding a previous owner's record under a free lock means that owner died
//! mid-point, which is reported as a takeover.
//!
//! Filesystems without `flock` (Lustre mounted without it, some NFS) answer `ENOSYS`, `ENOLCK` or `EOPNOTSUPP`.
//! There a lock is an exclusively created file (`O_EXCL`, atomic on every filesystem e3pipe runs on) holding the
//! same record; it is stale when its owner, on this host, is no longer alive. An owner on another host cannot be
//! checked from here: its file is named in the message, to remove by hand if that run is gone. Slurm array tasks
//! take no locks (each owns its points; atomic renames make the writes safe).

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
    _file: Option<File>,
}

impl Drop for PointLock {
    fn drop(&mut self) {
        // Unlink while still holding the lock; `acquire` re-checks the path after locking, so a waiter that locked
        // the unlinked file retries on a fresh one. A lock file (no `flock`) is the lock itself.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Set once `flock` has been refused as unsupported: every later lock is a lock file.
static NO_FLOCK: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `flock` is not supported on this filesystem (as opposed to held by someone else).
fn unsupported(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSYS | libc::ENOLCK | libc::EOPNOTSUPP)
    )
}

/// Whether process `pid` is alive on this host.
fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

fn owner_now() -> Owner {
    Owner {
        pid: std::process::id(),
        host: host_name(),
        started_at: crate::clock::now_rfc3339(),
    }
}

/// The lock-file fallback: `<hash>.excl`, created exclusively, holding its owner's record.
fn acquire_file(dir: &Path, hash: &str) -> Result<Acquire> {
    let path = dir.join(format!("{hash}.excl"));
    let err = |source| Error::Write {
        path: path.clone(),
        source,
    };
    loop {
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut file) => {
                let text = serde_json::to_string(&owner_now()).unwrap_or_default();
                file.write_all(text.as_bytes()).map_err(err)?;
                return Ok(Acquire::Held(PointLock { path, _file: None }));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let Ok(owner) = serde_json::from_str::<Owner>(&text) else {
                    // Being written this instant (or empty after a crash between create and write): look again.
                    if std::fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .is_ok_and(|t| t.elapsed().is_ok_and(|a| a.as_secs() > 10))
                    {
                        let _ = std::fs::remove_file(&path);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    continue;
                };
                // Two waiters taking over the same dead owner's file at once could both end up holding it (one
                // removes the file the other just created): the point is then measured twice, and each result is
                // written by an atomic rename, so nothing is lost or mixed. `flock` has no such window.
                if owner.host == host_name() && !alive(owner.pid) {
                    crate::output::warn(&format!(
                        "taking over the lock file of point {} from dead process {} (started {})",
                        short(hash),
                        owner.pid,
                        owner.started_at
                    ));
                    let _ = std::fs::remove_file(&path);
                    continue;
                }
                return Ok(Acquire::Busy(owner));
            }
            Err(e) => return Err(err(e)),
        }
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
    if NO_FLOCK.load(std::sync::atomic::Ordering::Relaxed) {
        return acquire_file(dir, hash);
    }
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
            Err(TryLockError::Error(source)) if unsupported(&source) => {
                drop(file);
                let _ = std::fs::remove_file(&path);
                if !NO_FLOCK.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    crate::output::warn(&format!(
                        "`flock` is not supported in `{}` ({source}); using lock files instead",
                        dir.display()
                    ));
                }
                return acquire_file(dir, hash);
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
        let text = serde_json::to_string(&owner_now()).unwrap_or_default();
        file.set_len(0).map_err(err)?;
        file.rewind().map_err(err)?;
        file.write_all(text.as_bytes()).map_err(err)?;
        return Ok(Acquire::Held(PointLock {
            path,
            _file: Some(file),
        }));
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

    #[test]
    fn lock_files_stand_in_for_flock_and_a_dead_owner_s_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire_file(dir.path(), "0123456789abcdef").unwrap();
        assert!(matches!(first, Acquire::Held(_)));
        match acquire_file(dir.path(), "0123456789abcdef").unwrap() {
            Acquire::Busy(owner) => assert_eq!(owner.pid, std::process::id()),
            Acquire::Held(_) => panic!("a held lock file was taken twice"),
        }
        drop(first);
        assert!(!dir.path().join("0123456789abcdef.excl").exists());
        // A dead owner on this host: taken over. A live one on another host: busy (it cannot be checked).
        let write = |pid: u32, host: &str| {
            let o = Owner {
                pid,
                host: host.into(),
                started_at: "then".into(),
            };
            std::fs::write(
                dir.path().join("0123456789abcdef.excl"),
                serde_json::to_string(&o).unwrap(),
            )
            .unwrap();
        };
        write(4_000_000_000, &host_name());
        assert!(matches!(
            acquire_file(dir.path(), "0123456789abcdef").unwrap(),
            Acquire::Held(_)
        ));
        write(1, "another-node");
        assert!(
            matches!(acquire_file(dir.path(), "0123456789abcdef").unwrap(), Acquire::Busy(o) if o.host == "another-node")
        );
        assert!(unsupported(&std::io::Error::from_raw_os_error(
            libc::ENOSYS
        )));
        assert!(unsupported(&std::io::Error::from_raw_os_error(
            libc::ENOLCK
        )));
        assert!(!unsupported(&std::io::Error::from_raw_os_error(
            libc::EACCES
        )));
    }
}
