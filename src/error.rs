//! The one error type users see. Every variant carries the names (file, step, model, length) its message needs,
//! and `exit_code` decides between "bad input" (2) and "work failed" (1).

use std::path::PathBuf;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn hint(suggestion: Option<&String>) -> String {
    suggestion
        .map(|s| format!("\n  did you mean `{s}`?"))
        .unwrap_or_default()
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read `{}`", crate::shown_path::for_people(path))]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot write `{}`", crate::shown_path::for_people(path))]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error(
        "`{}` is not valid YAML at line {line}, column {column}: {message}",
        crate::shown_path::for_people(path)
    )]
    YamlSyntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },

    #[error("`{}`: {message}", crate::shown_path::for_people(path))]
    YamlShape { path: PathBuf, message: String },

    /// A file that cannot be input at all: a directory, FIFO or device, unreadable, too large, not UTF-8.
    #[error("`{}`: {message}", crate::shown_path::for_people(path))]
    BadInput { path: PathBuf, message: String },

    #[error("`{}`: unknown key `{}` in {context}{}", crate::shown_path::for_people(path), echo(key), hint(suggestion.as_ref()))]
    UnknownKey {
        path: PathBuf,
        context: String,
        key: String,
        suggestion: Option<String>,
    },

    /// `expected` lists the registered kinds (`pipeline::kind::Registry::expected`).
    #[error("`{}`: step `{}` has unknown kind `{}` (expected {expected}){}", crate::shown_path::for_people(path), echo(step), echo(kind), hint(suggestion.as_ref()))]
    UnknownKind {
        path: PathBuf,
        step: String,
        kind: String,
        expected: String,
        suggestion: Option<String>,
    },

    #[error(
        "`{}`: step `{}` is declared twice",
        crate::shown_path::for_people(path),
        echo(step)
    )]
    DuplicateStep { path: PathBuf, step: String },

    #[error("`{}`: step `{}` needs unknown step `{}`{}", crate::shown_path::for_people(path), echo(step), echo(needed), hint(suggestion.as_ref()))]
    UnknownNeed {
        path: PathBuf,
        step: String,
        needed: String,
        suggestion: Option<String>,
    },

    #[error("`{}`: steps form a cycle: `{}`", crate::shown_path::for_people(path), echo(&cycle.join(" -> ")))]
    Cycle { path: PathBuf, cycle: Vec<String> },

    #[error("pipeline `{}` has no step `{}`{}", crate::shown_path::for_people(path), echo(step), hint(suggestion.as_ref()))]
    NoSuchStep {
        path: PathBuf,
        step: String,
        suggestion: Option<String>,
    },

    #[error("`{}`: step `{step}`: config file `{}` does not exist{}", crate::shown_path::for_people(path), crate::shown_path::for_people(config), hint(suggestion.as_ref()))]
    MissingConfig {
        path: PathBuf,
        step: String,
        config: PathBuf,
        suggestion: Option<String>,
    },

    #[error("`{}`: {field}: {message}", crate::shown_path::located(path, field))]
    BadValue {
        path: PathBuf,
        field: String,
        message: String,
    },

    #[error(
        "step `{step}` needs `{}`, which is not there: {hint}",
        crate::shown_path::for_people(missing)
    )]
    MissingInput {
        step: String,
        missing: PathBuf,
        hint: String,
    },

    #[error("model `{model}`: {message}")]
    Model { model: String, message: String },

    #[error("`{}`: {message}", crate::shown_path::for_people(path))]
    ModelFile { path: PathBuf, message: String },

    #[error(
        "tokenizer `{}` cannot be loaded: {message}",
        crate::shown_path::for_people(path)
    )]
    Tokenizer { path: PathBuf, message: String },

    #[error("point {model}@{length}: {message}")]
    Point {
        model: String,
        length: usize,
        message: String,
    },

    #[error("libtorch: {0}")]
    Torch(String),

    /// The libtorch the worker would load is missing or not the one this build was made for.
    #[error("libtorch{}: {message}", if dir.as_os_str().is_empty() { String::new() } else { format!(" `{}`", dir.display()) })]
    Libtorch { dir: PathBuf, message: String },

    #[error("step `{step}`: {message}")]
    Step { step: String, message: String },

    /// A scheduler refused the step's jobs as configured (`sbatch --test-only`): nothing was submitted.
    #[error("step `{step}`: {message}")]
    Refused { step: String, message: String },

    #[error("{0}")]
    Report(String),

    /// A command-line value that cannot be used (checked before anything is read or written).
    #[error("{0}")]
    Usage(String),

    #[error("interrupted")]
    Interrupted,
}

impl Error {
    /// 2 for input the user must fix before anything can run, 1 for work that failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::YamlSyntax { .. }
            | Error::YamlShape { .. }
            | Error::UnknownKey { .. }
            | Error::UnknownKind { .. }
            | Error::DuplicateStep { .. }
            | Error::UnknownNeed { .. }
            | Error::Cycle { .. }
            | Error::NoSuchStep { .. }
            | Error::MissingConfig { .. }
            | Error::BadValue { .. }
            | Error::BadInput { .. }
            // Found while validating, before anything runs (the worker's own failures reach users as failed
            // points, exit 1).
            | Error::ModelFile { .. }
            | Error::Tokenizer { .. }
            | Error::MissingInput { .. }
            | Error::Libtorch { .. }
            | Error::Usage(_)
            | Error::Refused { .. } => 2,
            Error::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => 2,
            _ => 1,
        }
    }
}

/// `text` cut to `max_chars` characters with `…` and the full length, for messages quoting a huge value.
/// A value from the user's files as messages echo it: at most 80 characters (a 1 MB step name is not repeated).
fn echo(text: &str) -> String {
    shorten(text, 80)
}

pub fn shorten(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let head: String = text.chars().take(max_chars).collect();
    format!("{head}… ({} characters)", text.chars().count())
}

/// The closest candidate within edit distance 2, for `did you mean` hints.
/// `a` or `an` before `word` as it is spoken (`an encoder`, `a decoder`, `an aggregate`).
pub fn article(word: &str) -> &'static str {
    match word.trim_start_matches('`').chars().next() {
        Some(c) if "aeiouAEIOU".contains(c) => "an",
        _ => "a",
    }
}

pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(word, c), c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(suggest("plto", ["plot", "aggregate"]), Some("plot".into()));
        assert_eq!(suggest("zzzzzz", ["plot", "aggregate"]), None);
    }
}

#[cfg(test)]
mod article_tests {
    #[test]
    fn articles_follow_the_word() {
        assert_eq!(super::article("encoder"), "an");
        assert_eq!(super::article("encoder-decoder"), "an");
        assert_eq!(super::article("decoder"), "a");
        assert_eq!(super::article("aggregate"), "an");
        assert_eq!(super::article("bench"), "a");
        assert_eq!(super::article(""), "a");
    }
}
