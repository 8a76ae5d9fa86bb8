//! How a message shows a path: relative to the working folder when it lies below it, so that every error, hint
//! and summary spells one file one way; and, for a value error in a YAML file, where in the file the key is
//! (`file:line:column`), found in the text the parser read.

use std::path::{Path, PathBuf};

/// A path as a message shows it: relative to the working folder when it lies below it (`cache/points/x.json`, not
/// `/home/me/project/cache/points/x.json` or `./cache/...`), else as it is.
pub fn for_people(path: &Path) -> String {
    let cwd = std::env::current_dir().ok();
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.as_ref()
            .map_or_else(|| path.to_path_buf(), |c| c.join(path))
    };
    let relative = cwd
        .as_ref()
        .and_then(|c| absolute.strip_prefix(c).ok())
        .map(|r| {
            r.components()
                .filter(|c| !matches!(c, std::path::Component::CurDir))
                .collect::<PathBuf>()
        });
    match relative {
        Some(r) if r.as_os_str().is_empty() => ".".into(),
        Some(r) => r.display().to_string(),
        None => path.display().to_string(),
    }
}

/// `path:line:column` of the first line where `field`'s last segment (`config.n_layer` -> `n_layer`) is written
/// as a mapping key; the path alone when the file cannot be read, is large, or has no such key.
pub fn located(path: &Path, field: &str) -> String {
    let shown = for_people(path);
    let key = field
        .rsplit('.')
        .next()
        .unwrap_or(field)
        .split('[')
        .next()
        .unwrap_or("")
        .trim_matches('`');
    if key.is_empty()
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return shown;
    }
    let small = std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() <= 1 << 20);
    let Some(text) = small.then(|| std::fs::read_to_string(path).ok()).flatten() else {
        return shown;
    };
    for (index, line) in text.lines().enumerate() {
        let start = line.len() - line.trim_start_matches([' ', '\t', '-']).len();
        let rest = &line[start..];
        let quoted = [
            format!("{key}:"),
            format!("\"{key}\":"),
            format!("'{key}':"),
        ];
        if quoted.iter().any(|q| rest.starts_with(q.as_str())) {
            return format!("{shown}:{}:{}", index + 1, start + 1);
        }
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_found_where_it_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("b.yaml");
        std::fs::write(
            &file,
            "name: x\nconfig:\n  n_layer: 2\nlist:\n  - num_runs: -1\n",
        )
        .unwrap();
        let shown = file.display().to_string();
        assert_eq!(located(&file, "num_runs"), format!("{shown}:5:5"));
        assert_eq!(located(&file, "config.n_layer"), format!("{shown}:3:3"));
        assert_eq!(located(&file, "missing"), shown);
        assert_eq!(located(&file, "--force"), shown);
        assert_eq!(
            located(&dir.path().join("none.yaml"), "name"),
            dir.path().join("none.yaml").display().to_string()
        );
    }
}
