//! The settled-points index: per model, the cache entries its bench step last used (hash, size, mtime) and a
//! fingerprint of the results document written from them. A no-op run then checks each point with one `stat`
//! instead of reading and checksumming every entry, and skips rebuilding the document when the fingerprint and
//! the document on disk are unchanged: the cost of a no-op stops growing with the size of the entries.
//!
//! The index is only a shortcut. An entry whose size or mtime differs from the index (rewritten, truncated,
//! replaced) is read and verified the slow way; a missing or unreadable index means the slow way for all.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use crate::error::Result;
use crate::fsio::write_atomic;
use crate::paths::sanitize;

const HEADER: &str = "e3pipe-settled 1";

/// A file's identity for the index: size and modification time (ns).
pub type FileStamp = (u64, u128);

pub fn file_stamp(path: &Path) -> Option<FileStamp> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    let mtime = meta
        .modified()
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_nanos();
    Some((meta.len(), mtime))
}

/// A results document's identity for the index: its size and a digest of its bytes, so that an edit which keeps
/// both size and mtime (`touch -r`) is still seen. Documents are read whole by every reader anyway.
pub fn content_stamp(path: &Path) -> Option<FileStamp> {
    let bytes = crate::fsio::read_own(path).ok()?;
    let digest = blake3::hash(&bytes);
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest.as_bytes()[..16]);
    Some((bytes.len() as u64, u128::from_le_bytes(first)))
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settled {
    /// Fingerprint of the results document last written for the model ...
    pub fingerprint: String,
    /// ... and that document's `content_stamp` when it was written (or found unchanged).
    pub document: Option<FileStamp>,
    entries: HashMap<String, FileStamp>,
}

impl Settled {
    pub fn new(fingerprint: String, document: Option<FileStamp>) -> Settled {
        Settled {
            fingerprint,
            document,
            entries: HashMap::new(),
        }
    }

    /// `cache/settled/<model>.txt`.
    pub fn path(cache_dir: &Path, model: &str) -> PathBuf {
        cache_dir
            .join("settled")
            .join(format!("{}.txt", sanitize(model)))
    }

    pub fn load(path: &Path) -> Option<Settled> {
        let text = String::from_utf8(crate::fsio::read_own(path).ok()?).ok()?;
        let mut lines = text.lines();
        if lines.next()? != HEADER {
            return None;
        }
        let fingerprint = lines.next()?.strip_prefix("fingerprint ")?.to_string();
        let document = lines.next()?.strip_prefix("document ")?;
        let document = (document != "none")
            .then(|| parse_stamp(document))
            .flatten();
        let mut entries = HashMap::new();
        for line in lines {
            let (hash, stamp) = line.split_once(' ')?;
            entries.insert(hash.to_string(), parse_stamp(stamp)?);
        }
        Some(Settled {
            fingerprint,
            document,
            entries,
        })
    }

    /// True when the entry at `entry_path` is the one the index recorded for `hash`.
    pub fn vouches(&self, hash: &str, entry_path: &Path) -> bool {
        self.entries
            .get(hash)
            .is_some_and(|recorded| file_stamp(entry_path).as_ref() == Some(recorded))
    }

    pub fn record(&mut self, hash: &str, stamp: FileStamp) {
        self.entries.insert(hash.to_string(), stamp);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes the index unless the file already says the same (a no-op run writes nothing).
    pub fn save(&self, path: &Path) -> Result<()> {
        if Settled::load(path).as_ref() == Some(self) {
            return Ok(());
        }
        let mut text = format!("{HEADER}\nfingerprint {}\ndocument ", self.fingerprint);
        match self.document {
            Some((size, mtime)) => {
                let _ = writeln!(text, "{size} {mtime}");
            }
            None => text.push_str("none\n"),
        }
        let mut entries: Vec<_> = self.entries.iter().collect();
        entries.sort();
        for (hash, (size, mtime)) in entries {
            let _ = writeln!(text, "{hash} {size} {mtime}");
        }
        write_atomic(path, text.as_bytes())
    }
}

fn parse_stamp(text: &str) -> Option<FileStamp> {
    let (size, mtime) = text.split_once(' ')?;
    Some((size.parse().ok()?, mtime.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_vouches_only_for_unchanged_entries() {
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path().join("e.json");
        std::fs::write(&entry, "{}").unwrap();
        let mut settled = Settled::new("f".into(), Some((1, 2)));
        settled.record("h", file_stamp(&entry).unwrap());
        let path = Settled::path(dir.path(), "a/b");
        assert!(path.ends_with("settled/a_b.txt"));
        settled.save(&path).unwrap();
        let loaded = Settled::load(&path).unwrap();
        assert_eq!(loaded, settled);
        assert!(loaded.vouches("h", &entry));
        assert!(!loaded.vouches("other", &entry));
        std::fs::write(&entry, "{\"x\": 1}").unwrap();
        assert!(
            !loaded.vouches("h", &entry),
            "a rewritten entry is checked the slow way"
        );
        std::fs::write(&path, "junk").unwrap();
        assert_eq!(Settled::load(&path), None);
    }
}
