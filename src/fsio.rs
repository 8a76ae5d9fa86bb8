//! Atomic file writes: a temp file in the destination folder, fsync, then rename, so a reader (or a run killed at
//! any moment) sees either the old file or the whole new one, never a torn write. And safe reads of user input:
//! only regular files (a FIFO or a character device would be read forever), within a stated size, as UTF-8 where
//! text is expected; each failure is invalid input (exit 2) naming the file.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Largest YAML or JSON config e3pipe reads; real ones are a few KiB.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// Checks that `path` is a regular file e3pipe may read, of at most `max_bytes` (`None`: any size); returns its
/// size.
pub fn check_input_file(path: &Path, what: &str, max_bytes: Option<u64>) -> Result<u64> {
    let bad = |message: String| Error::BadInput {
        path: path.into(),
        message,
    };
    let meta = std::fs::metadata(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => Error::Read {
            path: path.into(),
            source,
        },
        _ => bad(format!("cannot read the {what}: {source}")),
    })?;
    let kind = meta.file_type();
    if kind.is_dir() {
        return Err(bad(format!("the {what} is a directory, not a file")));
    }
    if !kind.is_file() {
        return Err(bad(format!(
            "the {what} is not a regular file (a FIFO, socket or device would be read forever)"
        )));
    }
    if let Some(max) = max_bytes
        && meta.len() > max
    {
        return Err(bad(format!(
            "the {what} is {} bytes; the limit is {max} bytes",
            meta.len()
        )));
    }
    // Opening proves it is readable (permissions) before anything runs.
    std::fs::File::open(path).map_err(|e| bad(format!("cannot read the {what}: {e}")))?;
    Ok(meta.len())
}

/// Reads a user's config file as UTF-8 text, after `check_input_file`.
pub fn read_input_text(path: &Path, what: &str) -> Result<String> {
    check_input_file(path, what, Some(MAX_CONFIG_BYTES))?;
    let bytes = std::fs::read(path).map_err(|e| Error::BadInput {
        path: path.into(),
        message: format!("cannot read the {what}: {e}"),
    })?;
    String::from_utf8(bytes).map_err(|e| Error::BadInput {
        path: path.into(),
        message: format!(
            "the {what} is not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ),
    })
}

/// Reads a file e3pipe wrote itself (a cache entry, stamp, index, results document), refusing anything but a
/// regular file: a FIFO or device put in its place would otherwise block the run for ever. The caller treats an
/// error as damage (recompute, rebuild).
pub fn read_own(path: &Path) -> std::io::Result<Vec<u8>> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    std::fs::read(path)
}

pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let err = |source| Error::Write {
        path: path.into(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    make_room(path, dir);
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(err)?;
    tmp.write_all(bytes).map_err(err)?;
    // Temp files are created 0600; outputs get the mode any new file would (0666 less the umask).
    let mode = 0o666 & !current_umask();
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(mode),
    )
    .map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// Serialises `value` as pretty JSON and writes it atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::Write {
        path: path.into(),
        source: e.into(),
    })?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Every path e3pipe writes is its own output (`cache/`, `results/`, `latest/`, `tables/`, `figs/`): a file where one
/// of its folders belongs, or a folder where one of its files belongs, is damage to repair, not a reason to fail
/// the run and lose its work. Only the nearest existing ancestor is looked at, so nothing outside the output's own
/// path is touched.
fn make_room(path: &Path, dir: &Path) {
    remove_blocking_file(dir);
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        crate::output::warn(&format!(
            "replacing `{}`, a folder where an output file belongs",
            path.display()
        ));
        let _ = std::fs::remove_dir_all(path);
    }
}

/// The nearest existing ancestor of `dir`, when it is a file (or anything but a folder) in the way: removed, with a
/// warning. Only that ancestor is looked at, so nothing outside the output's own path is touched.
fn remove_blocking_file(dir: &Path) {
    if let Some(blocking) = dir
        .ancestors()
        .find(|a| std::fs::symlink_metadata(a).is_ok())
        // A link to a folder (a shared cache) is a folder: only what is not one, followed, is in the way.
        && !std::fs::metadata(blocking).is_ok_and(|m| m.is_dir())
        && blocking != Path::new(".")
    {
        crate::output::warn(&format!(
            "replacing `{}`, a file where an output folder belongs",
            blocking.display()
        ));
        let _ = std::fs::remove_file(blocking);
    }
}

/// Creates the output folder `dir` (and its parents), replacing a file of e3pipe's own outputs that stands where one
/// of them belongs, as `write_atomic` would: done before a measuring worker starts, which writes its locks and
/// points there itself.
pub fn prepare_output_dir(dir: &Path) -> Result<()> {
    remove_blocking_file(dir);
    std::fs::create_dir_all(dir).map_err(|e| Error::Write {
        path: dir.into(),
        source: e,
    })
}

/// The process umask, from `/proc/self/status` (Linux 4.7+): reading it there changes nothing, where `umask(2)`
/// would have to set it and put it back, racing with threads creating files meanwhile. Older kernels fall back to
/// the usual 022.
fn current_umask() -> u32 {
    static UMASK: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("Umask:"))
                    .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
            })
            .unwrap_or(0o022)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn outputs_follow_the_umask_not_0600() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("out.csv");
        write_atomic(&file, b"a,b\n").unwrap();
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666 & !current_umask());
        // Where the umask itself is 077, 0600 is the right answer and cannot tell the fix from the bug.
        if current_umask() & 0o066 != 0o066 {
            assert_ne!(mode, 0o600);
        }
        // The umask read from /proc is the one the kernel applies: a plain file created now agrees.
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"").unwrap();
        let plain_mode = std::fs::metadata(&plain).unwrap().permissions().mode() & 0o777;
        assert_eq!(plain_mode, 0o666 & !current_umask());
    }

    #[test]
    fn outputs_make_room_where_damage_blocks_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tables"), "a file").unwrap();
        write_atomic(&dir.path().join("tables/t.csv"), b"x").unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("tables/t.csv")).unwrap(),
            b"x"
        );
        std::fs::create_dir_all(dir.path().join("figs/f.png/junk")).unwrap();
        write_atomic(&dir.path().join("figs/f.png"), b"png").unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("figs/f.png")).unwrap(),
            b"png"
        );
        std::fs::write(dir.path().join("latest"), "a file").unwrap();
        write_atomic(&dir.path().join("latest/inference/m.json"), b"{}").unwrap();
        assert!(dir.path().join("latest/inference/m.json").is_file());
    }

    #[test]
    fn non_files_and_bad_text_are_invalid_input() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_input_text(dir.path(), "pipeline").unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
        assert_eq!(e.exit_code(), 2);
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let e = read_input_text(&fifo, "pipeline").unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let latin1 = dir.path().join("l.yaml");
        std::fs::write(&latin1, b"name: caf\xe9\n").unwrap();
        let e = read_input_text(&latin1, "pipeline").unwrap_err();
        assert!(e.to_string().contains("not UTF-8"), "{e}");
        assert_eq!(e.exit_code(), 2);
    }
}
