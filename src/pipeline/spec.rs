//! `pipelines/*.yaml`: the steps of a pipeline as the user wrote them, checked before anything runs.
//!
//! Paths inside a pipeline (model and bench configs) are relative to the project root, the parent of the folder
//! holding the pipeline file (`<project>/pipelines/scaling.yaml`), so `e3pipe` works from any directory.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_yaml_ng::{Mapping, Value};

use crate::bench::config::BenchConfig;
use crate::error::{Error, Result, suggest};
use crate::models::spec::ModelSpec;
use crate::paths::sanitize;
use crate::yaml;

const TOP_KEYS: &[&str] = &["steps"];
const KINDS: &[&str] = &["bench", "aggregate", "plot"];

#[derive(Debug, Clone)]
pub struct Pipeline {
    pub file: PathBuf,
    /// Project root: configs are found and outputs (`cache`, `results`, `tables`, `figs`) written under it.
    pub root: PathBuf,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub needs: Vec<String>,
    pub kind: StepKind,
}

#[derive(Debug, Clone)]
pub enum StepKind {
    Bench(Box<BenchStep>),
    Aggregate,
    Plot(PlotOptions),
}

impl StepKind {
    pub fn name(&self) -> &'static str {
        match self {
            StepKind::Bench(_) => "bench",
            StepKind::Aggregate => "aggregate",
            StepKind::Plot(_) => "plot",
        }
    }
}

#[derive(Debug, Clone)]
pub struct BenchStep {
    pub model: ModelSpec,
    pub bench: BenchConfig,
}

pub use crate::report::plot::PlotOptions;

/// Longest step name.
pub const MAX_STEP_NAME_BYTES: usize = 100;

/// Model names become file names (`latest/inference/<name>.json`); file systems allow 255 bytes.
pub const MAX_MODEL_NAME_BYTES: usize = 200;

impl Pipeline {
    /// Reads and validates a pipeline and every config it references.
    pub fn load(file: &Path) -> Result<Pipeline> {
        let map = yaml::read_mapping(file)?;
        yaml::check_keys(file, "the pipeline", &map, TOP_KEYS)?;
        let root = project_root(file);
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
            let raw = RawStep::read(file, index, step)?;
            if !names.insert(raw.name.clone()) {
                return Err(Error::DuplicateStep {
                    path: file.into(),
                    step: raw.name,
                });
            }
            steps.push(raw);
        }
        // aggregate and plot write fixed files (`tables/…`, `figs/…`): a second one would overwrite the first.
        for kind in ["aggregate", "plot"] {
            let mut of_kind = steps.iter().filter(|s| s.kind == kind);
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
        crate::pipeline::graph::check_acyclic(file, &skeleton)?;

        // Sweeps often share one bench config (a 10,000-length list read once, not once per step).
        let mut bench_configs = std::collections::HashMap::new();
        let steps = steps
            .into_iter()
            .map(|raw| raw.resolve(file, &root, &mut bench_configs))
            .collect::<Result<Vec<_>>>()?;
        // Results are kept per model name (`latest/inference/<name>.json`): two steps must not share one, nor two
        // names that become the same file name (`tiny/a` and `tiny a` both become `tiny_a`).
        let mut seen: Vec<(&str, String, &str)> = Vec::new();
        for step in &steps {
            if let StepKind::Bench(b) = &step.kind {
                let name = &b.model.name;
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
        })
    }

    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.name == name)
    }
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
    kind: String,
    needs: Vec<String>,
    map: Mapping,
}

impl RawStep {
    fn read(file: &Path, index: usize, map: &Mapping) -> Result<RawStep> {
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
        let kind = match map.get("kind") {
            Some(Value::String(s)) => s.clone(),
            _ => {
                return Err(shape(format!(
                    "step `{name}` has no `kind` (expected `bench`, `aggregate` or `plot`)"
                )));
            }
        };
        if !KINDS.contains(&kind.as_str()) {
            return Err(Error::UnknownKind {
                path: file.into(),
                step: name,
                suggestion: suggest(&kind, KINDS.iter().copied()),
                kind,
            });
        }
        let allowed: &[&str] = match kind.as_str() {
            "bench" => &["name", "kind", "needs", "model", "bench"],
            "plot" => &["name", "kind", "needs", "log2_x", "predict_lengths"],
            _ => &["name", "kind", "needs"],
        };
        yaml::check_keys(file, &format!("step `{name}`"), map, allowed)?;
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

    fn resolve(
        self,
        file: &Path,
        root: &Path,
        bench_configs: &mut std::collections::HashMap<PathBuf, BenchConfig>,
    ) -> Result<Step> {
        let RawStep {
            name,
            kind,
            needs,
            map,
        } = self;
        let config_path = |key: &str| -> Result<PathBuf> {
            let rel = map
                .get(key)
                .and_then(Value::as_str)
                .ok_or_else(|| Error::YamlShape {
                    path: file.into(),
                    message: format!("step `{name}` needs `{key}:` (a path to a {key} config)"),
                })?;
            let path = root.join(rel);
            if !path.exists() {
                return Err(Error::MissingConfig {
                    path: file.into(),
                    step: name.clone(),
                    config: PathBuf::from(rel),
                });
            }
            Ok(path)
        };
        let kind = match kind.as_str() {
            "bench" => {
                let model = ModelSpec::load(&config_path("model")?, root)?;
                let bench_path = config_path("bench")?;
                let bench = match bench_configs.get(&bench_path) {
                    Some(bench) => bench.clone(),
                    None => {
                        let bench = BenchConfig::load(&bench_path)?;
                        bench_configs.insert(bench_path, bench.clone());
                        bench
                    }
                };
                if bench.arch != model.arch {
                    return Err(Error::BadValue {
                        path: bench.file.clone(),
                        field: "arch".into(),
                        message: format!(
                            "step `{name}`: bench arch `{}` does not match model `{}` (a `{}` model)",
                            bench.arch, model.name, model.arch
                        ),
                    });
                }
                StepKind::Bench(Box::new(BenchStep { model, bench }))
            }
            "plot" => {
                let log2_x = match map.get("log2_x") {
                    None => false,
                    Some(v) => v.as_bool().ok_or_else(|| Error::BadValue {
                        path: file.into(),
                        field: format!("step `{name}`: log2_x"),
                        message: "expected true or false".into(),
                    })?,
                };
                let predict_lengths = match map.get("predict_lengths") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Sequence(seq)) => seq
                        .iter()
                        .map(|v| {
                            v.as_u64()
                                .filter(|n| *n > 0)
                                .map(|n| n as usize)
                                .ok_or_else(|| Error::BadValue {
                                    path: file.into(),
                                    field: format!("step `{name}`: predict_lengths"),
                                    message: "expected positive integers".into(),
                                })
                        })
                        .collect::<Result<_>>()?,
                    Some(_) => {
                        return Err(Error::BadValue {
                            path: file.into(),
                            field: format!("step `{name}`: predict_lengths"),
                            message: "expected a list of lengths".into(),
                        });
                    }
                };
                StepKind::Plot(PlotOptions {
                    log2_x,
                    predict_lengths,
                })
            }
            _ => StepKind::Aggregate,
        };
        Ok(Step { name, needs, kind })
    }
}
