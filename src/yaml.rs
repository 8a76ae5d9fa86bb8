//! Reading the project's YAML files with errors that point at the file, the line and the key.
//!
//! Files are parsed in two passes: first into a `Value` (syntax errors carry line and column), then each mapping's
//! keys are checked against what we accept (typos get a did-you-mean) before the typed deserialisation.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_yaml_ng::{Mapping, Value};

use crate::error::{Error, Result, suggest};

/// Parses `path` as YAML; the top level must be a mapping.
pub fn read_mapping(path: &Path) -> Result<Mapping> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.into(),
        source,
    })?;
    parse_mapping(path, &text)
}

/// Parses `text` (the contents of `path`) as a YAML mapping.
pub fn parse_mapping(path: &Path, text: &str) -> Result<Mapping> {
    let value: Value = serde_yaml_ng::from_str(text).map_err(|e| syntax_error(path, &e))?;
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
    let (line, column) = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((0, 0));
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
