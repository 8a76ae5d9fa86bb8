//! Freshness of a derived step (aggregate, plot, and any kind that writes files from files), in one place: the
//! step is up to date only when the hash of its inputs is unchanged *and* every output it wrote is still there with
//! the bytes it wrote. A truncated, deleted or edited table or figure is therefore rebuilt by the next run, and a
//! reader can check a table against what aggregate recorded before drawing from it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsio::write_json;
use crate::output;

/// A derived step: its outputs live in `dir` (relative to the project root) beside the stamp `stamp`.
#[derive(Debug, Clone, Copy)]
pub struct Derived<'a> {
    pub step: &'a str,
    pub dir: &'static str,
    pub stamp: &'static str,
    /// How the up-to-date line names what was read and what is written (`inputs`, `tables`).
    pub inputs_noun: &'static str,
    pub outputs_noun: &'static str,
}

/// What a derived step's build did: the line to print and the outputs it wrote (relative to its `dir`).
pub struct Built {
    pub message: String,
    pub outputs: Vec<String>,
}

impl Derived<'_> {
    /// Fails with a hint unless the step's input (`input`, relative to `root`) is there.
    pub fn require(&self, root: &Path, input: &str, hint: &str) -> Result<PathBuf> {
        let path = root.join(input);
        if path.exists() {
            return Ok(path);
        }
        Err(Error::MissingInput {
            step: self.step.into(),
            missing: PathBuf::from(input),
            hint: hint.into(),
        })
    }

    /// Runs `build` unless the outputs are fresh for `inputs` (a blake3 of everything read) and not `forced`; then
    /// records what it wrote. Returns the line to print.
    pub fn run(
        &self,
        root: &Path,
        inputs: String,
        forced: bool,
        build: impl FnOnce() -> Result<Built>,
    ) -> Result<String> {
        let dir = root.join(self.dir);
        let stamp_file = dir.join(self.stamp);
        let stamp = Stamp::load(&stamp_file);
        if !forced && stamp.as_ref().is_some_and(|s| s.is_fresh(&inputs, &dir)) {
            return Ok(format!(
                "step `{}`: {} unchanged, {} are up to date",
                self.step, self.inputs_noun, self.outputs_noun
            ));
        }
        if let Some(damaged) = stamp.and_then(|s| s.damaged_output(&dir)) {
            output::warn(&format!(
                "`{}/{}` is missing or not what step `{}` wrote; rebuilding the {}",
                self.dir,
                damaged.display(),
                self.step,
                self.outputs_noun
            ));
        }
        let built = build()?;
        let outputs: Vec<&str> = built.outputs.iter().map(String::as_str).collect();
        Stamp::of(inputs, &dir, &outputs).save(&stamp_file)?;
        Ok(built.message)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stamp {
    /// blake3 of everything the step read.
    pub inputs: String,
    /// Each output (relative to the stamp's folder) and the blake3 of the bytes written.
    pub outputs: BTreeMap<PathBuf, String>,
}

fn file_hash(path: &Path) -> Option<String> {
    crate::fsio::read_own(path)
        .ok()
        .map(|bytes| blake3::hash(&bytes).to_hex().to_string())
}

impl Stamp {
    /// The stamp in `path`, if it is readable and ours.
    pub fn load(path: &Path) -> Option<Stamp> {
        serde_json::from_slice(&crate::fsio::read_own(path).ok()?).ok()
    }

    /// A stamp for `inputs` recording the current bytes of `outputs` (paths relative to `dir`).
    pub fn of(inputs: String, dir: &Path, outputs: &[&str]) -> Stamp {
        Stamp {
            inputs,
            outputs: outputs
                .iter()
                .map(|o| {
                    (
                        PathBuf::from(o),
                        file_hash(&dir.join(o)).unwrap_or_default(),
                    )
                })
                .collect(),
        }
    }

    /// True when the inputs are the same and every output is intact.
    pub fn is_fresh(&self, inputs: &str, dir: &Path) -> bool {
        self.inputs == inputs && self.damaged_output(dir).is_none()
    }

    /// The first output that is missing or differs from what was written.
    pub fn damaged_output(&self, dir: &Path) -> Option<PathBuf> {
        self.outputs
            .iter()
            .find(|(path, hash)| file_hash(&dir.join(path)).as_deref() != Some(hash.as_str()))
            .map(|(path, _)| path.clone())
    }

    /// Whether `output` (relative to `dir`) still holds what was written, when the stamp records it.
    pub fn vouches_for(&self, dir: &Path, output: &str) -> Option<bool> {
        let hash = self.outputs.get(Path::new(output))?;
        Some(file_hash(&dir.join(output)).as_deref() == Some(hash.as_str()))
    }

    /// Writes the stamp unless an identical one is already there (a no-op run writes nothing).
    pub fn save(&self, path: &Path) -> Result<()> {
        if Stamp::load(path).as_ref() == Some(self) {
            return Ok(());
        }
        write_json(path, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_or_missing_outputs_are_not_fresh() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.csv"), "a,b\n1,2\n").unwrap();
        std::fs::write(dir.path().join("f.png"), "png").unwrap();
        let stamp = Stamp::of("in".into(), dir.path(), &["t.csv", "f.png"]);
        assert!(stamp.is_fresh("in", dir.path()));
        assert!(!stamp.is_fresh("other inputs", dir.path()));
        std::fs::write(dir.path().join("t.csv"), "a,b\n1,").unwrap();
        assert_eq!(
            stamp.damaged_output(dir.path()),
            Some(PathBuf::from("t.csv"))
        );
        assert_eq!(stamp.vouches_for(dir.path(), "t.csv"), Some(false));
        std::fs::write(dir.path().join("t.csv"), "a,b\n1,2\n").unwrap();
        std::fs::remove_file(dir.path().join("f.png")).unwrap();
        assert!(!stamp.is_fresh("in", dir.path()));
    }
}
