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

/// `path:line:column` of where `field` is written: its path of keys and list indexes
/// (`figures[1].name` -> the `name:` of the second item under `figures:`), else the first line
/// where its last key is written as a mapping key; the path alone when the file cannot be read, is large, or has no
/// such key.
pub fn located(path: &Path, field: &str) -> String {
    let shown = for_people(path);
    let small = std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() <= 1 << 20);
    let Some(text) = small.then(|| std::fs::read_to_string(path).ok()).flatten() else {
        return shown;
    };
    let lines: Vec<&str> = text.lines().collect();
    let segments = segments(field.rsplit(' ').next().unwrap_or(field));
    let Some((last, _)) = segments.last() else {
        return shown;
    };
    let found = walk(&lines, &segments).or_else(|| find_key(&lines, 0..lines.len(), last, None));
    match found {
        Some((line, column)) => format!("{shown}:{}:{}", line + 1, column + 1),
        None => shown,
    }
}

/// `figures[1].name` -> [(`figures`, Some(1)), (`name`, None)]; nothing when a key is not a plain name.
fn segments(path: &str) -> Vec<(String, Option<usize>)> {
    let mut out = Vec::new();
    for part in path.trim_matches('`').split('.') {
        let (key, index) = match part.split_once('[') {
            Some((k, rest)) => (k, rest.trim_end_matches(']').parse().ok()),
            None => (part, None),
        };
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Vec::new();
        }
        out.push((key.to_string(), index));
    }
    out
}

/// Indentation of a line's content, after spaces and list dashes.
fn content_start(line: &str) -> usize {
    line.len() - line.trim_start_matches([' ', '\t', '-']).len()
}

/// The first line in `range` (deeper than `deeper_than`) that writes `key` as a mapping key: (line, column).
fn find_key(
    lines: &[&str],
    range: std::ops::Range<usize>,
    key: &str,
    deeper_than: Option<usize>,
) -> Option<(usize, usize)> {
    let quoted = [
        format!("{key}:"),
        format!("\"{key}\":"),
        format!("'{key}':"),
    ];
    range.into_iter().find_map(|i| {
        let line = lines.get(i)?;
        let start = content_start(line);
        let rest = &line[start..];
        (deeper_than.is_none_or(|d| start > d)
            && quoted.iter().any(|q| rest.starts_with(q.as_str())))
        .then_some((i, start))
    })
}

/// Follows `segments` down the file's indentation.
fn walk(lines: &[&str], segments: &[(String, Option<usize>)]) -> Option<(usize, usize)> {
    let mut range = 0..lines.len();
    let mut deeper_than = None;
    let mut found = None;
    for (key, index) in segments {
        let (line, column) = find_key(lines, range.clone(), key, deeper_than)?;
        found = Some((line, column));
        let indent = line_indent(lines[line]);
        // What belongs to the key: the lines after it, up to one indented no deeper than it (not a list item).
        let end = (line + 1..range.end)
            .find(|&i| {
                let l = lines[i];
                let blank = l.trim().is_empty() || l.trim_start().starts_with('#');
                let item = line_indent(l) == indent && l.trim_start().starts_with('-');
                !blank && !item && line_indent(l) <= indent
            })
            .unwrap_or(range.end);
        range = line + 1..end;
        deeper_than = Some(column);
        if let Some(n) = index {
            let items: Vec<usize> = range
                .clone()
                .filter(|&i| lines[i].trim_start().starts_with('-'))
                .collect();
            let item_indent = line_indent(lines[*items.first()?]);
            let items: Vec<usize> = items
                .into_iter()
                .filter(|&i| line_indent(lines[i]) == item_indent)
                .collect();
            let first = *items.get(*n)?;
            let next = items.get(n + 1).copied().unwrap_or(range.end);
            range = first..next;
            deeper_than = Some(item_indent);
        }
    }
    found
}

fn line_indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
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
        // A path of keys and list indexes, and a key written in several items.
        std::fs::write(
            &file,
            "steps:\n  - name: a\n    kind: aggregate\n  - name: plot\n    figures:\n      - name: one\n        x: l\n      - name: two\n        y: m\n",
        )
        .unwrap();
        assert_eq!(
            located(&file, "step `plot`: figures[1].name"),
            format!("{shown}:8:9")
        );
        assert_eq!(
            located(&file, "step `plot`: figures[1].y"),
            format!("{shown}:9:9")
        );
        assert_eq!(
            located(&file, "step `plot`: figures[0].x"),
            format!("{shown}:7:9")
        );
        // An index past the list: the first such key instead.
        assert_eq!(located(&file, "figures[5].name"), format!("{shown}:2:5"));
        assert_eq!(
            located(&dir.path().join("none.yaml"), "name"),
            dir.path().join("none.yaml").display().to_string()
        );
    }
}
