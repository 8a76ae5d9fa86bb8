//! A step kind, defined once. Everything that differs between `bench`, `aggregate` and `plot` (the keys a step may
//! hold and how they are validated, what the step plans, how it shows in `--dry-run` and `e3pipe graph`, how it
//! runs) is one implementation of these traits; `spec`, `graph`, `plan` and `execute` only call them. A new kind is
//! one module under `kinds/` plus one line in `kinds::builtin`, and every message that lists kinds is derived from
//! the registry.

use std::any::Any;
use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_yaml_ng::{Mapping, Value};

use crate::cache::key::PointKey;
use crate::cache::store::{Entry, Store};
use crate::error::{Error, Result};
use crate::file_hash::FileHashes;
use crate::models::spec::ModelSpec;
use crate::pipeline::executor::Executor;

/// The keys every step has, whatever its kind.
pub const COMMON_KEYS: &[&str] = &["name", "kind", "needs"];

/// What a `kind:` value stands for: its keys and how a step of it is read from the pipeline file.
pub trait Kind: Sync {
    /// The `kind:` value.
    fn name(&self) -> &'static str;
    /// Keys a step of this kind may hold besides [`COMMON_KEYS`].
    fn keys(&self) -> &'static [&'static str];
    /// Kinds that write fixed files allow one step per pipeline (a second would overwrite the first's outputs).
    fn one_per_pipeline(&self) -> bool {
        false
    }
    /// The file this kind reads that another kind writes: a run that neither finds it nor makes it fails before
    /// anything runs, and the step is skipped when a step it needs failed in this run.
    fn input(&self) -> Option<Input> {
        None
    }
    /// Reads and validates the step's own keys (and the configs they name).
    fn configure(&self, step: &StepContext<'_>) -> Result<Arc<dyn Settings>>;
}

impl fmt::Debug for dyn Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kind({})", self.name())
    }
}

/// A kind's input: a path relative to the project root, written by steps of kind `made_by`.
#[derive(Debug, Clone, Copy)]
pub struct Input {
    pub path: &'static str,
    pub made_by: &'static str,
}

/// A configured step of some kind: what it describes, and how it plans.
pub trait Settings: fmt::Debug + Send + Sync {
    /// One line of key parameters, for `e3pipe graph`.
    fn describe(&self) -> String;
    /// The model a step measures, if it measures one: model names must be unique in a pipeline (they name
    /// results files), and aggregate reads only the results of the models upstream of it.
    fn model(&self) -> Option<&ModelSpec> {
        None
    }
    /// Decides what the step will do, before any work.
    fn plan(&self, ctx: &PlanContext<'_>) -> Result<Box<dyn Planned>>;
}

/// A step's planned work.
pub trait Planned: fmt::Debug {
    /// Its lines of the `--dry-run` listing (each ends with a newline).
    fn render(&self, step: &str) -> String;
    /// Does the work, adding the points it settles to `ctx.counts`.
    fn run(&self, step: &str, ctx: &mut RunContext<'_>) -> Result<()>;
    /// The cache entries this step's points use (`e3pipe cache --prune` keeps them): (hash, key).
    fn cache_points(&self) -> Vec<(String, PointKey)> {
        Vec::new()
    }
    /// How many points a run of this step would measure, and at how many threads (`--dry-run` asks the executor
    /// what it would do with them).
    fn pending_points(&self) -> (usize, usize) {
        (0, 0)
    }
    /// The plan as its own type, for commands that need a kind's details (`e3pipe peaks` reads bench plans).
    fn as_any(&self) -> &dyn std::any::Any;
}

/// What [`Kind::configure`] sees: one step's mapping in the pipeline file.
pub struct StepContext<'a> {
    /// The pipeline file (named in errors).
    pub file: &'a Path,
    /// The project root, against which config paths are resolved.
    pub root: &'a Path,
    pub step: &'a str,
    pub map: &'a Mapping,
    pub memo: &'a ConfigMemo,
}

impl StepContext<'_> {
    /// A `BadValue` error naming this step and `key`.
    pub fn bad_value(&self, key: &str, message: impl Into<String>) -> Error {
        Error::BadValue {
            path: self.file.into(),
            field: format!("step `{}`: {key}", self.step),
            message: message.into(),
        }
    }

    /// `key:` holds a path to a config file (relative to the project root) that must exist.
    pub fn config_path(&self, key: &str) -> Result<PathBuf> {
        let rel = self
            .map
            .get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| Error::YamlShape {
                path: self.file.into(),
                message: format!(
                    "step `{}` needs `{key}:` (a path to a {key} config)",
                    self.step
                ),
            })?;
        let path = self.root.join(rel);
        if !path.exists() {
            // The nearest name among the files beside where it should be.
            let rel_path = std::path::Path::new(rel);
            let folder = rel_path.parent().unwrap_or(std::path::Path::new(""));
            let siblings: Vec<String> = std::fs::read_dir(self.root.join(folder))
                .map(|d| {
                    d.filter_map(std::result::Result::ok)
                        .filter_map(|e| e.file_name().to_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let wanted = rel_path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let suggestion = crate::error::suggest(&wanted, siblings.iter().map(String::as_str))
                .map(|s| folder.join(s).display().to_string());
            return Err(Error::MissingConfig {
                path: self.file.into(),
                step: self.step.into(),
                config: PathBuf::from(rel),
                suggestion,
            });
        }
        Ok(path)
    }
}

/// Configs already read while loading this pipeline, by path: sweeps often share one bench config (a
/// 10,000-length list is read once, not once per step).
#[derive(Default)]
pub struct ConfigMemo {
    read: RefCell<HashMap<PathBuf, Box<dyn Any>>>,
}

impl ConfigMemo {
    /// The config at `path`, loaded by `load` the first time it is asked for.
    pub fn get_or_load<T: Clone + 'static>(
        &self,
        path: &Path,
        load: impl FnOnce(&Path) -> Result<T>,
    ) -> Result<T> {
        if let Some(known) = self
            .read
            .borrow()
            .get(path)
            .and_then(|v| v.downcast_ref::<T>())
        {
            return Ok(known.clone());
        }
        let value = load(path)?;
        self.read
            .borrow_mut()
            .insert(path.into(), Box::new(value.clone()));
        Ok(value)
    }
}

/// What [`Settings::plan`] sees.
pub struct PlanContext<'a> {
    pub step: &'a str,
    /// `--force` names this step (or every step).
    pub forced: bool,
    /// The settings of every step this one depends on, directly or not.
    pub upstream: Vec<&'a dyn Settings>,
    pub store: &'a Store,
    /// Every cache entry, parsed only if some point misses the cache (to explain what changed).
    pub entries: &'a OnceCell<Vec<(PathBuf, Option<Entry>)>>,
    pub hashes: &'a FileHashes,
    /// Where bench points run when that is not this machine: a compute node's identity for a device setting
    /// (`None`: plan here). See `slurm_identity`.
    pub remote: Option<&'a Remote<'a>>,
}

/// A compute node's identity for a model's `device:` setting, asked by step name; `Ok(None)`: plan here.
pub type Remote<'a> = dyn Fn(
        crate::models::spec::DeviceChoice,
        &str,
    ) -> crate::error::Result<Option<crate::models::identity::Identity>>
    + 'a;

/// What [`Planned::run`] sees.
pub struct RunContext<'a> {
    pub root: &'a Path,
    pub counts: &'a mut Counts,
    /// What measures points.
    pub executor: &'a dyn Executor,
    /// Set by a step whose work was handed to a scheduler and not waited for: steps reading its outputs wait too.
    pub submitted: bool,
    /// The whole run's progress over its bench steps (for one overall count and ETA).
    pub overall: &'a mut crate::job::Progress,
}

/// Point counts for the closing line, and what each bench step's model contributed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    pub computed: usize,
    pub cached: usize,
    pub failed: usize,
    pub infeasible: usize,
    pub models: Vec<ModelTally>,
}

/// One bench step's share of the counts, for the closing summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelTally {
    pub model: String,
    /// What its latency is, as people name it (`bench::result::headline_metric_label`).
    pub metric: &'static str,
    pub computed: usize,
    pub cached: usize,
}

impl Counts {
    /// The closing summary's lines after the points line (which keeps its exact form: tools parse it): what
    /// each model's latency means, and which models' points are new and which came from the cache.
    pub fn facts(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let mut by_metric: Vec<(&str, Vec<&str>)> = Vec::new();
        for t in &self.models {
            match by_metric.iter_mut().find(|(m, _)| *m == t.metric) {
                Some((_, models)) => models.push(&t.model),
                None => by_metric.push((t.metric, vec![&t.model])),
            }
        }
        if !by_metric.is_empty() {
            let parts: Vec<String> = by_metric
                .iter()
                .map(|(metric, models)| {
                    let gloss = match *metric {
                        "TTFT" => " (time to first token)",
                        "forward pass" => " (the whole input, once)",
                        _ => "",
                    };
                    format!("{metric}{gloss} for {}", models.join(", "))
                })
                .collect();
            lines.push(format!("latency: {}", parts.join("; ")));
        }
        let list = |pick: &dyn Fn(&ModelTally) -> usize| -> String {
            let parts: Vec<String> = self
                .models
                .iter()
                .filter(|t| pick(t) > 0)
                .map(|t| format!("{} {}", t.model, pick(t)))
                .collect();
            if parts.is_empty() {
                "none".into()
            } else {
                parts.join(", ")
            }
        };
        if !self.models.is_empty() {
            lines.push(format!(
                "measured now: {}; from the cache: {}",
                list(&|t| t.computed),
                list(&|t| t.cached)
            ));
        }
        lines
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "points: {} computed, {} cached, {} failed, {} infeasible",
            self.computed, self.cached, self.failed, self.infeasible
        )
    }
}

/// The kinds a pipeline may use, in the order messages list them.
#[derive(Clone)]
pub struct Registry {
    kinds: Vec<&'static dyn Kind>,
}

impl Registry {
    pub fn new(kinds: Vec<&'static dyn Kind>) -> Registry {
        Registry { kinds }
    }

    /// This registry and one more kind.
    #[must_use]
    pub fn with(mut self, kind: &'static dyn Kind) -> Registry {
        self.kinds.push(kind);
        self
    }

    pub fn get(&self, name: &str) -> Option<&'static dyn Kind> {
        self.kinds.iter().copied().find(|k| k.name() == name)
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.kinds.iter().map(|k| k.name())
    }

    /// "`bench`, `aggregate` or `plot`", for messages.
    pub fn expected(&self) -> String {
        let names: Vec<String> = self.names().map(|n| format!("`{n}`")).collect();
        match names.as_slice() {
            [] => String::new(),
            [one] => one.clone(),
            [init @ .., last] => format!("{} or {last}", init.join(", ")),
        }
    }
}
