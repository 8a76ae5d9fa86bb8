//! Reading the project's YAML files with errors that point at the file, the line and the key.
//!
//! Files are parsed in two passes: first into a `Value` (syntax errors carry line and column), then each mapping's
//! keys are checked against what we accept (typos get a did-you-mean) before the typed deserialisation. Merge
//! keys (`<<: *defaults`) are applied. Nesting deeper than `MAX_DEPTH` is refused before parsing: the parser's
//! time grows with depth (100k levels: 87 s measured here before it fails), and no config needs more than a
//! handful.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_yaml_ng::{Mapping, Value};

use crate::error::{Error, Result, suggest};

/// Deepest nesting of collections a config may have.
pub const MAX_DEPTH: usize = 64;

/// Parses `path` as YAML; the top level must be a mapping.
pub fn read_mapping(path: &Path) -> Result<Mapping> {
    let text = crate::fsio::read_input_text(path, "YAML file")?;
    parse_mapping(path, &text)
}

/// An upper bound of the nesting depth: flow brackets (`[`, `{`) open, plus block indentation steps and `- `
/// sequence markers on the deepest line. Quoted text can only over-count, and only in files far past the limit.
fn nesting_bound(text: &str) -> usize {
    let mut flow: usize = 0;
    let mut deepest = 0;
    for line in text.lines() {
        let trimmed = line.trim_start_matches(' ');
        let indent = line.len() - trimmed.len();
        let mut rest = trimmed;
        let mut dashes = 0;
        while let Some(r) = rest.strip_prefix("- ") {
            dashes += 1;
            rest = r.trim_start_matches(' ');
        }
        for b in rest.bytes() {
            match b {
                b'[' | b'{' => flow += 1,
                b']' | b'}' => flow = flow.saturating_sub(1),
                b'#' => break,
                _ => {}
            }
            deepest = deepest.max(flow + indent / 2 + dashes);
        }
        deepest = deepest.max(flow + indent / 2 + dashes);
    }
    deepest
}

/// Parses `text` (the contents of `path`) as a YAML mapping.
pub fn parse_mapping(path: &Path, text: &str) -> Result<Mapping> {
    if nesting_bound(text) > MAX_DEPTH {
        return Err(Error::YamlShape {
            path: path.into(),
            message: format!("nested deeper than {MAX_DEPTH} levels, the limit for e3pipe's files"),
        });
    }
    let mut value: Value = serde_yaml_ng::from_str(text).map_err(|e| syntax_error(path, &e))?;
    value.apply_merge().map_err(|e| Error::YamlShape {
        path: path.into(),
        message: format!("merge key `<<`: {e}"),
    })?;
    match value {
        Value::Mapping(m) => Ok(m),
        Value::Null => Err(Error::YamlShape {
            path: path.into(),
            message: "the file is empty".into(),
        }),
        _ => Err(Error::YamlShape {
            path: path.into(),
            message: "expected a mapping of keys at the top level".into(),
        }),
    }
}

fn syntax_error(path: &Path, e: &serde_yaml_ng::Error) -> Error {
    let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
    let message = e.to_string();
    // serde_yaml_ng appends " at line X column Y"; we already say where.
    let message = message
        .split(" at line ")
        .next()
        .unwrap_or(&message)
        .to_string();
    Error::YamlSyntax {
        path: path.into(),
        line,
        column,
        message,
    }
}

/// Fails on the first key of `map` not in `allowed`, naming `context` (e.g. "step `plot`").
pub fn check_keys(path: &Path, context: &str, map: &Mapping, allowed: &[&str]) -> Result<()> {
    for key in map.keys() {
        let key = key_name(path, key)?;
        if !allowed.contains(&key.as_str()) {
            return Err(Error::UnknownKey {
                path: path.into(),
                context: context.into(),
                suggestion: suggest(&key, allowed.iter().copied()),
                key,
            });
        }
    }
    Ok(())
}

fn key_name(path: &Path, key: &Value) -> Result<String> {
    match key {
        Value::String(s) => Ok(s.clone()),
        other => Err(Error::YamlShape {
            path: path.into(),
            message: format!("keys must be strings, found `{other:?}`"),
        }),
    }
}

/// Deserialises one value into `T`, naming the file and `context` on failure.
pub fn typed<T: DeserializeOwned>(path: &Path, context: &str, value: Value) -> Result<T> {
    serde_yaml_ng::from_value(value).map_err(|e| Error::YamlShape {
        path: path.into(),
        message: format!("{context}: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keys_share_settings() {
        let text = "defaults: &d\n  num_runs: 5\n  threads: 2\nbench:\n  <<: *d\n  threads: 1\n";
        let m = parse_mapping(Path::new("x.yaml"), text).unwrap();
        let bench = m.get("bench").unwrap();
        assert_eq!(bench.get("num_runs").and_then(Value::as_i64), Some(5));
        assert_eq!(bench.get("threads").and_then(Value::as_i64), Some(1));
    }

    #[test]
    fn deep_nesting_is_refused_fast() {
        let deep = format!("a: {}{}", "[".repeat(100_000), "]".repeat(100_000));
        let started = std::time::Instant::now();
        let e = parse_mapping(Path::new("x.yaml"), &deep).unwrap_err();
        assert!(
            e.to_string().contains("nested deeper than 64 levels"),
            "{e}"
        );
        assert!(started.elapsed().as_secs() < 5);
        let dashes = format!("a:\n  {}x\n", "- ".repeat(1000));
        assert!(parse_mapping(Path::new("x.yaml"), &dashes).is_err());
        // Ordinary files pass.
        assert!(
            parse_mapping(
                Path::new("x.yaml"),
                "steps:\n  - name: a\n    needs: [b, c]\n"
            )
            .is_ok()
        );
    }
}
