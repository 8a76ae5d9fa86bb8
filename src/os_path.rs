//! Paths in the JSON job the orchestrator hands the worker. JSON strings are UTF-8 and Linux paths are bytes, so
//! a project under a non-UTF-8 directory name would make the job unserialisable: a path that is valid UTF-8
//! travels as a string (readable in logs), any other as its raw bytes (an array of numbers).

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Wire {
    Text(String),
    Bytes(Vec<u8>),
}

fn to_wire(path: &Path) -> Wire {
    match path.to_str() {
        Some(text) => Wire::Text(text.to_string()),
        None => Wire::Bytes(path.as_os_str().as_bytes().to_vec()),
    }
}

fn from_wire(wire: Wire) -> PathBuf {
    match wire {
        Wire::Text(text) => PathBuf::from(text),
        Wire::Bytes(bytes) => PathBuf::from(OsString::from_vec(bytes)),
    }
}

pub fn serialize<S: Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    to_wire(path).serialize(s)
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    Wire::deserialize(d).map(from_wire)
}

/// The same for `Option<PathBuf>`.
pub mod option {
    use super::{
        Deserialize, Deserializer, PathBuf, Serialize, Serializer, Wire, from_wire, to_wire,
    };

    pub fn serialize<S: Serializer>(path: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
        path.as_deref().map(to_wire).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
        Option::<Wire>::deserialize(d).map(|w| w.map(from_wire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Job {
        #[serde(with = "super")]
        root: PathBuf,
        #[serde(with = "super::option")]
        tokenizer: Option<PathBuf>,
    }

    #[test]
    fn non_utf8_paths_survive_the_job() {
        let job = Job {
            root: PathBuf::from(OsString::from_vec(b"/tmp/caf\xe9".to_vec())),
            tokenizer: Some(PathBuf::from("/tmp/t.json")),
        };
        let text = serde_json::to_string(&job).unwrap();
        assert!(text.contains("\"/tmp/t.json\""), "{text}");
        assert_eq!(serde_json::from_str::<Job>(&text).unwrap(), job);
    }
}
