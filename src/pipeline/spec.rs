//! `pipelines/*.yaml`: the steps of a pipeline as the user wrote them, checked before anything runs.
//!
//! Paths inside a pipeline (model and bench configs) are relative to the project root, the parent of the folder
//! holding the pipeline file (`<project>/pipelines/scaling.yaml`), so `e3pipe` works from any directory.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_yaml_ng::{Mapping, Value};

use crate::error::{Error, Result, suggest};
use crate::paths::sanitize;
use crate::pipeline::dag;
use crate::pipeline::executor_config::ExecutorConfig;
use crate::pipeline::kind::{COMMON_KEYS, ConfigMemo, Kind, Registry, Settings, StepContext};
use crate::pipeline::kinds;
use crate::yaml;

const TOP_KEYS: &[&str] = &["steps", "executor"];

#[derive(Debug, Clone)]
pub struct Pipeline {
    pub file: PathBuf,
    /// Project root: configs are found and outputs (`cache`, `results`, `tables`, `figs`) written under it.
    pub root: PathBuf,
    pub steps: Vec<Step>,
    /// What measures bench points (`executor:`; `--executor` overrides).
    pub executor: ExecutorConfig,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub needs: Vec<String>,
    pub kind: &'static dyn Kind,
    /// What the step's kind read from its keys.
    pub settings: Arc<dyn Settings>,
}

/// Longest step name.
pub const MAX_STEP_NAME_BYTES: usize = 100;

/// Model names become file names (`latest/inference/<name>.json`); file systems allow 255 bytes.
pub const MAX_MODEL_NAME_BYTES: usize = 200;

impl Pipeline {
    /// Reads and validates a pipeline and every config it references.
    pub fn load(file: &Path) -> Result<Pipeline> {
        Pipeline::load_with(file, &kinds::builtin())
    }

    /// [`Pipeline::load`] with the step kinds of `registry`.
    pub fn load_with(file: &Path, registry: &Registry) -> Result<Pipeline> {
        if !file.exists() {
            return Err(no_pipeline(file));
        }
        let map = yaml::read_mapping(file)?;
        yaml::check_keys(file, "the pipeline", &map, TOP_KEYS)?;
        let root = project_root(file);
        let executor = ExecutorConfig::read(file, map.get("executor"))?;
        let steps_value = map.get("steps").ok_or_else(|| Error::YamlShape {
            path: file.into(),
            message: "no `steps:` list".into(),
        })?;
        let Value::Sequence(items) = steps_value else {
            return Err(Error::YamlShape {
                path: file.into(),
                message: "`steps` must be a list of steps".into(),
            });
        };
        if items.is_empty() {
            return Err(Error::YamlShape {
                path: file.into(),
                message: "`steps` is empty".into(),
            });
        }
        let mut steps = Vec::with_capacity(items.len());
        let mut names = BTreeSet::new();
        for (index, item) in items.iter().enumerate() {
            let Value::Mapping(step) = item else {
                return Err(Error::YamlShape {
                    path: file.into(),
                    message: format!("step {} is not a mapping", index + 1),
                });
            };
            let raw = RawStep::read(file, index, step, registry)?;
            if !names.insert(raw.name.clone()) {
                return Err(Error::DuplicateStep {
                    path: file.into(),
                    step: raw.name,
                });
            }
            steps.push(raw);
        }
        // aggregate and plot write fixed files (`tables/…`, `figs/…`): a second one would overwrite the first.
        for kind in registry.names() {
            let Some(definition) = registry.get(kind) else {
                continue;
            };
            if !definition.one_per_pipeline() {
                continue;
            }
            let mut of_kind = steps.iter().filter(|s| s.kind.name() == kind);
            if let (Some(first), Some(second)) = (of_kind.next(), of_kind.next()) {
                return Err(Error::YamlShape {
                    path: file.into(),
                    message: format!(
                        "steps `{}` and `{}` are both `{kind}` steps; they would overwrite each other's outputs, so a pipeline has at most one",
                        first.name, second.name
                    ),
                });
            }
        }
        for step in &steps {
            for need in &step.needs {
                if !names.contains(need) {
                    return Err(Error::UnknownNeed {
                        path: file.into(),
                        step: step.name.clone(),
                        needed: need.clone(),
                        suggestion: suggest(need, names.iter().map(String::as_str)),
                    });
                }
            }
        }
        // Cycles are found on the graph before any config is read, so a cyclic file fails the same way everywhere.
        let skeleton: Vec<(String, Vec<String>)> = steps
            .iter()
            .map(|s| (s.name.clone(), s.needs.clone()))
            .collect();
        dag::check_acyclic(file, &skeleton)?;
        // A step that lists what it needs must find its input made by one of them (directly or through their own
        // needs): a plot that needs only a bench step would read a table no earlier step made.
        for step in steps.iter().filter(|s| !s.needs.is_empty()) {
            let Some(input) = step.kind.input() else {
                continue;
            };
            let upstream = dag::upstream(&skeleton, &step.name);
            let made = steps
                .iter()
                .any(|s| upstream.contains(&s.name) && s.kind.name() == input.made_by);
            if !made {
                let producers: Vec<String> = steps
                    .iter()
                    .filter(|s| s.kind.name() == input.made_by && s.name != step.name)
                    .map(|s| format!("`{}`", crate::error::shorten(&s.name, 80)))
                    .collect();
                let fix = if producers.is_empty() {
                    format!("add a step of kind `{}` and list it there", input.made_by)
                } else {
                    format!("add {} to them", producers.join(" or "))
                };
                return Err(Error::YamlShape {
                    path: file.into(),
                    message: format!(
                        "step `{}` reads `{}`, which the `{}` kind makes, but nothing it needs is of that kind: {fix} (its `needs` decide what runs before it)",
                        crate::error::shorten(&step.name, 80),
                        input.path,
                        input.made_by
                    ),
                });
            }
        }

        let memo = ConfigMemo::default();
        let steps = steps
            .into_iter()
            .map(|raw| raw.resolve(file, &root, &memo))
            .collect::<Result<Vec<_>>>()?;
        // Results are kept per model name (`latest/inference/<name>.json`): two steps must not share one, nor two
        // names that become the same file name (`tiny/a` and `tiny a` both become `tiny_a`).
        let mut seen: Vec<(&str, String, &str)> = Vec::new();
        for step in &steps {
            if let Some(model) = step.settings.model() {
                let name = &model.name;
                let bad = |message: String| Error::BadValue {
                    path: file.into(),
                    field: format!("step `{}`", step.name),
                    message,
                };
                if name.len() > MAX_MODEL_NAME_BYTES {
                    return Err(bad(format!(
                        "model name `{}` is {} bytes; names become file names, so the limit is {MAX_MODEL_NAME_BYTES}",
                        crate::error::shorten(name, 60),
                        name.len()
                    )));
                }
                let file_name = sanitize(name);
                if let Some((other_name, _, other)) = seen.iter().find(|(_, f, _)| *f == file_name)
                {
                    return Err(bad(if *other_name == name.as_str() {
                        format!(
                            "model `{name}` is already measured by step `{other}`; give each model config its own `name`"
                        )
                    } else {
                        format!(
                            "model `{name}` and model `{other_name}` (step `{other}`) would both write `latest/inference/{file_name}.json`; rename one"
                        )
                    }));
                }
                seen.push((name, file_name, &step.name));
            }
        }
        Ok(Pipeline {
            file: file.into(),
            root,
            steps,
            executor,
        })
    }

    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.name == name)
    }

    /// The steps `step` depends on, directly or not, in no particular order.
    pub fn upstream(&self, step: &Step) -> Vec<&Step> {
        let mut seen: Vec<&str> = Vec::new();
        let mut stack: Vec<&str> = step.needs.iter().map(String::as_str).collect();
        let mut found = Vec::new();
        while let Some(name) = stack.pop() {
            if seen.contains(&name) {
                continue;
            }
            seen.push(name);
            if let Some(up) = self.step(name) {
                found.push(up);
                stack.extend(up.needs.iter().map(String::as_str));
            }
        }
        found
    }
}

/// A pipeline file that is not there: outside a project, say so; inside one, name its pipelines (and the
/// nearest).
fn no_pipeline(file: &Path) -> Error {
    let folder = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut pipelines: Vec<String> = std::fs::read_dir(folder)
        .map(|d| {
            d.filter_map(std::result::Result::ok)
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| {
                    Path::new(n).extension().is_some_and(|x| {
                        x.eq_ignore_ascii_case("yaml") || x.eq_ignore_ascii_case("yml")
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    pipelines.sort();
    let shown = crate::shown_path::for_people(file);
    let message = if !folder.is_dir() {
        let here = std::env::current_dir().map_or_else(|_| ".".into(), |d| d.display().to_string());
        format!(
            "no pipeline `{shown}`: there is no `{}/` folder here ({here}); run e3pipe in a project folder (one with `pipelines/`), or give a pipeline file",
            crate::shown_path::for_people(folder)
        )
    } else if pipelines.is_empty() {
        format!(
            "no pipeline `{shown}`, and `{}/` holds none",
            crate::shown_path::for_people(folder)
        )
    } else {
        let wanted = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let nearest = crate::error::suggest(&wanted, pipelines.iter().map(String::as_str))
            .map(|s| {
                format!(
                    "\n  did you mean `{}`?",
                    crate::shown_path::for_people(&folder.join(s))
                )
            })
            .unwrap_or_default();
        format!(
            "no pipeline `{shown}`; `{}/` has: {}{nearest}",
            crate::shown_path::for_people(folder),
            crate::error::shorten(&pipelines.join(", "), 200)
        )
    };
    Error::Usage(message)
}

/// `<root>/pipelines/x.yaml` -> `<root>`; a pipeline anywhere else uses its own folder.
pub fn project_root(file: &Path) -> PathBuf {
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    if dir.file_name().is_some_and(|n| n == "pipelines") {
        dir.parent().map(Path::to_path_buf).unwrap_or(dir)
    } else {
        dir
    }
}

struct RawStep {
    name: String,
    kind: &'static dyn Kind,
    needs: Vec<String>,
    map: Mapping,
}

impl RawStep {
    fn read(file: &Path, index: usize, map: &Mapping, registry: &Registry) -> Result<RawStep> {
        let shape = |message: String| Error::YamlShape {
            path: file.into(),
            message,
        };
        let name = match map.get("name") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(shape(format!("step {} has no `name`", index + 1))),
        };
        // Step names are typed on command lines and drawn in DOT and Mermaid graphs: keep them to one safe alphabet.
        let valid_name = name.len() <= MAX_STEP_NAME_BYTES
            && name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid_name {
            return Err(shape(format!(
                "step name `{}` is not allowed: use letters, digits, `-`, `_` and `.`, starting with a letter or digit, at most {MAX_STEP_NAME_BYTES} characters",
                crate::error::shorten(&name.escape_debug().to_string(), 60)
            )));
        }
        let kind_name = match map.get("kind") {
            Some(Value::String(s)) => s.clone(),
            None | Some(Value::Null) => {
                return Err(shape(format!(
                    "step `{name}` has no `kind` (expected {})",
                    registry.expected()
                )));
            }
            Some(_) => {
                return Err(shape(format!(
                    "step `{name}`: `kind` must be a name: {}",
                    registry.expected()
                )));
            }
        };
        let Some(kind) = registry.get(&kind_name) else {
            return Err(Error::UnknownKind {
                path: file.into(),
                step: name,
                suggestion: suggest(&kind_name, registry.names()),
                expected: registry.expected(),
                kind: crate::error::shorten(&kind_name, 60),
            });
        };
        let allowed: Vec<&str> = COMMON_KEYS.iter().chain(kind.keys()).copied().collect();
        yaml::check_keys(file, &format!("step `{name}`"), map, &allowed)?;
        let needs = match map.get("needs") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Sequence(seq)) => seq
                .iter()
                .map(|v| {
                    v.as_str().map(str::to_string).ok_or_else(|| {
                        shape(format!("step `{name}`: `needs` must list step names"))
                    })
                })
                .collect::<Result<_>>()?,
            Some(_) => {
                return Err(shape(format!(
                    "step `{name}`: `needs` must list step names"
                )));
            }
        };
        Ok(RawStep {
            name,
            kind,
            needs,
            map: map.clone(),
        })
    }

    fn resolve(self, file: &Path, root: &Path, memo: &ConfigMemo) -> Result<Step> {
        let settings = self.kind.configure(&StepContext {
            file,
            root,
            step: &self.name,
            map: &self.map,
            memo,
        })?;
        Ok(Step {
            name: self.name,
            needs: self.needs,
            kind: self.kind,
            settings,
        })
    }
}
