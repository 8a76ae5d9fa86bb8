//! `e3pipe baseline`: named baselines inside a project, so a regression check needs no copied project.
//! `save NAME` copies `latest/inference/*.json` (every model's current results) to `baselines/NAME/`;
//! `list` names them; `e3pipe compare --baseline NAME` compares one with the project as it is now.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fsio::write_atomic;
use crate::output;
use crate::shown_path::for_people;

/// A name that is one plain folder name: letters, digits, `-`, `_`, `.` (not leading), at most 64.
pub fn check_name(name: &str) -> Result<()> {
    let plain = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if plain {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "baseline name `{}` must be up to 64 letters, digits, `-`, `_` or `.` (not first)",
            crate::error::shorten(name, 60)
        )))
    }
}

/// `baselines/<name>/` of the project.
pub fn dir(root: &Path, name: &str) -> PathBuf {
    root.join(crate::paths::BASELINES_DIR).join(name)
}

pub fn save(project: &Path, name: &str, force: bool) -> Result<()> {
    check_name(name)?;
    let root = crate::commands::cache::project_of(project)?;
    let latest = root.join(crate::paths::LATEST_DIR);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&latest)
        .map(|d| {
            d.filter_map(std::result::Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    if files.is_empty() {
        return Err(Error::Usage(format!(
            "nothing to save: `{}` holds no results (`e3pipe run` first)",
            for_people(&latest)
        )));
    }
    let target = dir(&root, name);
    if target.exists() && !force {
        return Err(Error::Usage(format!(
            "baseline `{name}` exists (`{}`); `--force` replaces it",
            for_people(&target)
        )));
    }
    // Everything read before anything is written.
    let mut contents = Vec::with_capacity(files.len());
    for f in &files {
        let bytes = crate::fsio::read_own(f).map_err(|e| Error::Read {
            path: f.clone(),
            source: e,
        })?;
        contents.push((f.file_name().map(PathBuf::from).unwrap_or_default(), bytes));
    }
    // Into a fresh folder beside it, renamed into place: a reader never sees half a baseline.
    let parent = root.join(crate::paths::BASELINES_DIR);
    let staging = parent.join(format!(".saving-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    for (file, bytes) in &contents {
        write_atomic(&staging.join(file), bytes)?;
    }
    // `--force`: the old baseline is moved aside, not deleted, until the new one is in place (a kill between the
    // two renames leaves it under `.replaced-…`, never neither).
    let aside = parent.join(format!(".replaced-{name}-{}", std::process::id()));
    let replacing = target.exists();
    if replacing {
        std::fs::rename(&target, &aside).map_err(|e| Error::Write {
            path: target.clone(),
            source: e,
        })?;
    }
    std::fs::rename(&staging, &target).map_err(|e| Error::Write {
        path: target.clone(),
        source: e,
    })?;
    if replacing {
        let _ = std::fs::remove_dir_all(&aside);
    }
    output::result(&format!(
        "saved baseline `{name}`: {} model(s) in {}/ (compare with `e3pipe compare --baseline {name}`)",
        contents.len(),
        for_people(&target)
    ));
    Ok(())
}

pub fn list(project: &Path) -> Result<()> {
    let root = crate::commands::cache::project_of(project)?;
    let parent = root.join(crate::paths::BASELINES_DIR);
    let mut names: Vec<String> = std::fs::read_dir(&parent)
        .map(|d| {
            d.filter_map(std::result::Result::ok)
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    if names.is_empty() {
        output::result(
            "no baselines (`e3pipe baseline save NAME` saves the current results as one)",
        );
    }
    for n in names {
        let models = std::fs::read_dir(parent.join(&n)).map_or(0, Iterator::count);
        output::result(&format!("{n}: {models} model(s)"));
    }
    Ok(())
}

/// The folder `compare --baseline NAME` reads, which must exist.
pub fn resolve(project: &Path, name: &str) -> Result<PathBuf> {
    check_name(name)?;
    let root = crate::commands::cache::project_of(project)?;
    let target = dir(&root, name);
    if target.is_dir() {
        return Ok(target);
    }
    let known: Vec<String> = std::fs::read_dir(root.join(crate::paths::BASELINES_DIR))
        .map(|d| {
            d.filter_map(std::result::Result::ok)
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    Err(Error::Usage(format!(
        "no baseline `{name}` in `{}`{}",
        for_people(&root),
        crate::error::suggest(name, known.iter().map(String::as_str)).map_or_else(
            || " (`e3pipe baseline save NAME` saves one)".into(),
            |s| format!("; did you mean `{s}`?")
        )
    )))
}
