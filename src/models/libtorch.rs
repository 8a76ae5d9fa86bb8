//! Which libtorch the worker loads, and that it is the one this build was made for. A build links the libtorch it
//! was built against (its RUNPATH); on a GPU node that install is usually absent, and `E3PIPE_LIBTORCH` names the
//! node's own (`site-packages/torch` of its `PyPI` `torch`). libtorch keeps no ABI between releases and its sonames carry
//! no version, so a mismatch would fail inside the dynamic loader (`undefined symbol`) or later: it is checked here,
//! from the install's `version.py`, before the worker starts.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The libtorch this build was made for, as its `version.py` says (`2.13.0+cu130`); in every point's cache key.
pub const VERSION: &str = env!("E3PIPE_LIBTORCH_VERSION");
use VERSION as LIBTORCH_VERSION;

/// The releases e3pipe builds against (`torch-versions.txt`, one `<libtorch> <tch>` per line).
const SUPPORTED: &str = include_str!("../../torch-versions.txt");

/// The supported libtorch releases, the default first.
pub fn supported() -> Vec<&'static str> {
    SUPPORTED
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_whitespace().next())
        .collect()
}

/// Names the libtorch to load instead of the one the build linked.
pub const ENV: &str = "E3PIPE_LIBTORCH";

/// The file `make bundle` puts beside the binaries: a bundle carries no libtorch and links none (its RUNPATH is
/// removed), so it takes the node's.
pub const BUNDLE_MARKER: &str = "e3pipe-bundle.txt";

fn bundled() -> bool {
    std::env::current_exe().is_ok_and(|exe| exe.with_file_name(BUNDLE_MARKER).is_file())
}

/// The libtorch install whose `lib/` is on `LD_LIBRARY_PATH` (a node's usual set-up), if any.
fn from_library_path() -> Option<PathBuf> {
    let paths = std::env::var_os("LD_LIBRARY_PATH")?;
    std::env::split_paths(&paths)
        .find(|p| p.join("libtorch_cpu.so").is_file())
        .and_then(|lib| lib.parent().map(Path::to_path_buf))
}

/// The libtorch install in use: `E3PIPE_LIBTORCH` when set; in a bundle, the one on `LD_LIBRARY_PATH`; else the
/// one this build was linked against.
pub fn dir() -> PathBuf {
    match std::env::var_os(ENV) {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ if bundled() => from_library_path().unwrap_or_default(),
        _ => PathBuf::from(env!("E3PIPE_LIBTORCH_DIR")),
    }
}

/// `2.11.0` of `__version__ = '2.11.0+cu130'`: the release, without the local build tag.
pub fn release(version: &str) -> &str {
    version.split('+').next().unwrap_or(version).trim()
}

/// The version a libtorch install states in its `version.py`.
pub fn version_of(dir: &Path) -> Option<String> {
    let file = dir.join("version.py");
    // A plain file only: reading a FIFO or a device put there would block or never end.
    if !std::fs::metadata(&file).is_ok_and(|m| m.is_file()) {
        return None;
    }
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        l.strip_prefix("__version__ = ")
            .map(|v| v.trim().trim_matches(|c| c == '\'' || c == '"').to_string())
    })
}

/// Checks that the libtorch in use exists and is the release this build was made for; the error names both.
pub fn check() -> Result<()> {
    let dir = dir();
    if dir.as_os_str().is_empty() {
        return Err(Error::Libtorch {
            dir,
            message: format!(
                "this bundle carries no libtorch: set `{ENV}` to the `site-packages/torch` of a PyTorch {} install, or put its `lib/` on `LD_LIBRARY_PATH`",
                release(LIBTORCH_VERSION)
            ),
        });
    }
    check_dir(&dir, std::env::var_os(ENV).is_some_and(|d| !d.is_empty()))
}

fn check_dir(dir: &Path, from_env: bool) -> Result<()> {
    let hint = if from_env {
        format!(
            "point `{ENV}` at the `site-packages/torch` of a PyTorch {} install",
            release(LIBTORCH_VERSION)
        )
    } else {
        format!(
            "this build's libtorch is gone; set `{ENV}` to the `site-packages/torch` of a PyTorch {} install",
            release(LIBTORCH_VERSION)
        )
    };
    let bad = |message: String| Error::Libtorch {
        dir: dir.to_path_buf(),
        message,
    };
    if !dir.join("lib").join("libtorch_cpu.so").is_file() {
        return Err(bad(format!("has no `lib/libtorch_cpu.so`; {hint}")));
    }
    let found =
        version_of(dir).ok_or_else(|| bad(format!("has no readable `version.py`; {hint}")))?;
    if release(&found) != release(LIBTORCH_VERSION) {
        let other = if supported().contains(&release(&found)) {
            format!(
                ", or use a build for {} (`make build TORCH={}`)",
                release(&found),
                minor(release(&found))
            )
        } else {
            format!(
                " (e3pipe builds for libtorch {} only)",
                supported().join(", ")
            )
        };
        return Err(bad(format!(
            "is libtorch {found}, but this e3pipe was built for libtorch {LIBTORCH_VERSION}; {hint}{other}"
        )));
    }
    Ok(())
}

/// `2.11` of `2.11.0`.
fn minor(release: &str) -> &str {
    release
        .match_indices('.')
        .nth(1)
        .map_or(release, |(i, _)| &release[..i])
}

/// `LD_LIBRARY_PATH` for the worker when `E3PIPE_LIBTORCH` names the libtorch: its `lib/` first, so the loader takes
/// it over the build's RUNPATH. `None` leaves the environment as it is.
pub fn library_path() -> Option<OsString> {
    let dir = std::env::var_os(ENV).filter(|d| !d.is_empty())?;
    let mut path = Path::new(&dir).join("lib").into_os_string();
    if let Some(old) = std::env::var_os("LD_LIBRARY_PATH").filter(|p| !p.is_empty()) {
        path.push(":");
        path.push(old);
    }
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn install(version: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("lib")).unwrap();
        std::fs::write(dir.path().join("lib/libtorch_cpu.so"), b"").unwrap();
        std::fs::write(
            dir.path().join("version.py"),
            format!("from typing import Optional\n__version__ = '{version}'\ncuda: Optional[str] = '13.0'\n"),
        )
        .unwrap();
        dir
    }

    #[test]
    fn the_release_this_build_was_made_for_passes_and_another_is_named() {
        let same = install(&format!("{}+cu130", release(LIBTORCH_VERSION)));
        check_dir(same.path(), true).unwrap();
        let other = install("1.13.1+cpu");
        let e = check_dir(other.path(), true).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let text = e.to_string();
        assert!(text.contains("is libtorch 1.13.1+cpu"), "{text}");
        assert!(
            text.contains(&format!("built for libtorch {LIBTORCH_VERSION}")),
            "{text}"
        );
        assert!(
            text.contains("builds for libtorch 2.13.0, 2.11.0 only"),
            "{text}"
        );
        // A supported release of another build: say which build takes it.
        let other = supported()
            .into_iter()
            .find(|r| *r != release(LIBTORCH_VERSION))
            .unwrap();
        let text = check_dir(install(other).path(), true)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains(&format!("`make build TORCH={}`", minor(other))),
            "{text}"
        );
        // A FIFO where `version.py` belongs is no version (reading it would block).
        let fifo = install("2.13.0");
        std::fs::remove_file(fifo.path().join("version.py")).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(fifo.path().join("version.py"))
            .status()
            .unwrap();
        assert!(made.success());
        let text = check_dir(fifo.path(), true).unwrap_err().to_string();
        assert!(text.contains("no readable `version.py`"), "{text}");
        let empty = tempfile::tempdir().unwrap();
        let text = check_dir(empty.path(), false).unwrap_err().to_string();
        assert!(
            text.contains("has no `lib/libtorch_cpu.so`") && text.contains(ENV),
            "{text}"
        );
    }

    #[test]
    fn releases_drop_the_local_tag() {
        assert_eq!(release("2.11.0+cu130"), "2.11.0");
        assert_eq!(minor("2.11.0"), "2.11");
        assert_eq!(minor("3"), "3");
    }
}
