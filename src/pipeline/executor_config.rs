//! Which executor measures a run's bench points, as the pipeline file's `executor:` block and `--executor` say:
//! `local` (the worker as a child process, the default) or `slurm` (array jobs). Every value is checked before
//! anything runs; none is ever pasted into a shell line (they reach `sbatch` as separate arguments).

use std::path::Path;

use serde_yaml_ng::{Mapping, Value};

use crate::error::{Error, Result};
use crate::yaml;

const KEYS: &[&str] = &[
    "kind",
    "partition",
    "gres",
    "cpus_per_task",
    "time",
    "max_parallel",
    "points_per_task",
    "sbatch_args",
    "poll_interval_s",
    "account",
    "mem",
    "gpus",
    "plan_on",
    "probe_timeout_s",
];

/// `sbatch` options e3pipe sets itself: an `sbatch_args` entry setting one would break the run.
const OWN_OPTIONS: &[&str] = &[
    "--array",
    "-a",
    "--output",
    "-o",
    "--error",
    "-e",
    "--parsable",
    "--wrap",
    "--job-name",
    "-J",
    "--open-mode",
    "--export",
];

/// `sbatch`'s short options that take no argument (`-Q` quiet, `-W` wait, ...): in a bundle (`-Qo/x`) the next
/// letter is another option; after any other letter, the rest of the bundle is that option's argument.
const FLAGS_WITHOUT_ARGUMENT: &str = "HhOQsuVvW";

/// Which of e3pipe's own options `arg` sets, parsed as `sbatch`'s option parser (getopt) reads it: a long option
/// by any unambiguous prefix (`--outp=/x` is `--output`), short options bundled (`-Qo/x` is `-Q -o /x`).
fn own_option(arg: &str) -> Option<&'static str> {
    if let Some(long) = arg.strip_prefix("--") {
        let name = long.split('=').next().unwrap_or_default();
        if name.is_empty() {
            return None;
        }
        return OWN_OPTIONS
            .iter()
            .find(|o| {
                o.strip_prefix("--")
                    .is_some_and(|own| own.starts_with(name))
            })
            .copied();
    }
    let bundle = arg.strip_prefix('-')?;
    for c in bundle.chars() {
        if let Some(own) = OWN_OPTIONS.iter().find(|o| o.len() == 2 && o.ends_with(c)) {
            return Some(own);
        }
        if !FLAGS_WITHOUT_ARGUMENT.contains(c) {
            return None; // the rest is this option's argument
        }
    }
    None
}

// One value per run: its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum ExecutorConfig {
    Local,
    Slurm(SlurmConfig),
}

#[derive(Debug, Clone, PartialEq)]
pub struct SlurmConfig {
    pub partition: Option<String>,
    pub gres: Option<String>,
    /// Defaults to the bench step's threads.
    pub cpus_per_task: Option<usize>,
    pub time: Option<String>,
    /// `--account`: the allocation charged (many clusters refuse jobs without one).
    pub account: Option<String>,
    /// `--mem` per task (`16G`); CUDA steps get `DEFAULT_CUDA_MEM` when not given, CPU steps the cluster's default.
    pub mem: Option<String>,
    /// GPUs per task as `--gres=gpu:<gpus>` (`1`, `h200:1`); CUDA steps get one when neither this nor `gres` is given.
    pub gpus: Option<String>,
    /// At most this many tasks of an array run at once (`%N`).
    pub max_parallel: usize,
    pub points_per_task: usize,
    pub sbatch_args: Vec<String>,
    /// How often the queue is asked whether tasks are still alive (finished points are seen sooner, in the cache).
    pub poll_interval_s: f64,
    /// `--no-wait`: submit and return.
    pub wait: bool,
    /// Plan points from a compute node's identity (a probe job), or from this machine's (`plan_on: here`).
    pub plan_on_node: bool,
    /// How long a probe job may wait in the queue before the run gives up on it.
    pub probe_timeout_s: f64,
}

impl Default for SlurmConfig {
    fn default() -> SlurmConfig {
        SlurmConfig {
            partition: None,
            gres: None,
            cpus_per_task: None,
            time: None,
            account: None,
            mem: None,
            gpus: None,
            max_parallel: 16,
            points_per_task: 4,
            sbatch_args: Vec::new(),
            poll_interval_s: 30.0,
            wait: true,
            plan_on_node: true,
            probe_timeout_s: 600.0,
        }
    }
}

/// `kind` as `--executor` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutorKind {
    Local,
    Slurm,
}

fn text(file: &Path, key: &str, v: &Value) -> Result<String> {
    let bad = |message: &str| Error::BadValue {
        path: file.into(),
        field: format!("executor: {key}"),
        message: message.into(),
    };
    let s = v.as_str().ok_or_else(|| bad("expected text"))?;
    if s.is_empty() || s.chars().any(char::is_control) || s.len() > 200 {
        return Err(bad("expected one line of text, at most 200 characters"));
    }
    Ok(s.to_string())
}

/// One Slurm name (an account, a GPU type): letters, digits, `-`, `_`, `.`, `:`.
fn slurm_word(file: &Path, key: &str, v: &Value) -> Result<String> {
    let s = text(file, key, v)?;
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
    {
        Ok(s)
    } else {
        Err(Error::BadValue {
            path: file.into(),
            field: format!("executor: {key}"),
            message: format!("`{s}`: expected letters, digits, `-`, `_`, `.` or `:`"),
        })
    }
}

fn count(file: &Path, key: &str, v: &Value, max: u64) -> Result<usize> {
    v.as_u64()
        .filter(|n| (1..=max).contains(n))
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| Error::BadValue {
            path: file.into(),
            field: format!("executor: {key}"),
            message: format!("expected a whole number from 1 to {max}"),
        })
}

impl ExecutorConfig {
    /// The `executor:` block of `file` (absent: local).
    pub fn read(file: &Path, value: Option<&Value>) -> Result<ExecutorConfig> {
        let Some(value) = value else {
            return Ok(ExecutorConfig::Local);
        };
        let Value::Mapping(map) = value else {
            return Err(Error::YamlShape {
                path: file.into(),
                message: "`executor` must be a mapping, e.g. `executor: {kind: slurm}`".into(),
            });
        };
        yaml::check_keys(file, "`executor`", map, KEYS)?;
        match map.get("kind").and_then(Value::as_str) {
            Some("local") => {
                if let Some(key) = map.keys().filter_map(Value::as_str).find(|k| *k != "kind") {
                    return Err(Error::BadValue {
                        path: file.into(),
                        field: format!("executor: {key}"),
                        message: "only `kind: slurm` takes settings".into(),
                    });
                }
                Ok(ExecutorConfig::Local)
            }
            Some("slurm") => Ok(ExecutorConfig::Slurm(slurm(file, map)?)),
            other => Err(Error::BadValue {
                path: file.into(),
                field: "executor: kind".into(),
                message: format!(
                    "expected `local` or `slurm`, got `{}`{}",
                    other.unwrap_or(""),
                    crate::error::suggest(other.unwrap_or(""), ["local", "slurm"])
                        .map(|s| format!("; did you mean `{s}`?"))
                        .unwrap_or_default()
                ),
            }),
        }
    }

    /// `--executor` overrides the file's kind; the file's Slurm settings stay when the CLI also says `slurm`.
    #[must_use]
    pub fn with_cli(self, kind: Option<ExecutorKind>, no_wait: bool) -> ExecutorConfig {
        let chosen = match (kind, self) {
            (Some(ExecutorKind::Local), _) => ExecutorConfig::Local,
            (Some(ExecutorKind::Slurm), ExecutorConfig::Local) => {
                ExecutorConfig::Slurm(SlurmConfig::default())
            }
            (_, config) => config,
        };
        match chosen {
            ExecutorConfig::Slurm(mut s) => {
                s.wait = !no_wait;
                ExecutorConfig::Slurm(s)
            }
            ExecutorConfig::Local => ExecutorConfig::Local,
        }
    }
}

fn slurm(file: &Path, map: &Mapping) -> Result<SlurmConfig> {
    let mut config = SlurmConfig::default();
    for (key, value) in map {
        let key = key.as_str().unwrap_or_default();
        match key {
            "partition" => config.partition = Some(text(file, key, value)?),
            "gres" => config.gres = Some(text(file, key, value)?),
            "time" => {
                let t = text(file, key, value)?;
                if !t
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == ':' || c == '-')
                {
                    return Err(Error::BadValue {
                        path: file.into(),
                        field: "executor: time".into(),
                        message: format!(
                            "`{t}` is not a Slurm time (minutes, `HH:MM:SS` or `D-HH:MM:SS`)"
                        ),
                    });
                }
                config.time = Some(t);
            }
            "account" => config.account = Some(slurm_word(file, key, value)?),
            "mem" => {
                let m = text(file, key, value)?;
                let digits = m.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
                if digits.is_empty()
                    || !digits.chars().all(|c| c.is_ascii_digit())
                    || digits.starts_with('0')
                {
                    return Err(Error::BadValue {
                        path: file.into(),
                        field: "executor: mem".into(),
                        message: format!(
                            "`{m}` is not a Slurm memory size (a positive number with an optional K, M, G or T: `16G`)"
                        ),
                    });
                }
                config.mem = Some(m);
            }
            "gpus" => {
                // `1`, or `<type>:<count>` (`h200:1`), as the number in `--gres=gpu:…`.
                let g = match value {
                    Value::Number(_) => count(file, key, value, 64)?.to_string(),
                    _ => slurm_word(file, key, value)?,
                };
                let (kind, n) = g.rsplit_once(':').unwrap_or(("", g.as_str()));
                if n.parse::<u32>().map_or(true, |n| n == 0 || n > 64) || kind.contains(':') {
                    return Err(Error::BadValue {
                        path: file.into(),
                        field: "executor: gpus".into(),
                        message: format!(
                            "`{g}`: expected a count from 1 to 64, or `<type>:<count>` (`h200:1`)"
                        ),
                    });
                }
                config.gpus = Some(g);
            }
            "cpus_per_task" => config.cpus_per_task = Some(count(file, key, value, 4096)?),
            "max_parallel" => config.max_parallel = count(file, key, value, 100_000)?,
            "points_per_task" => config.points_per_task = count(file, key, value, 100_000)?,
            "plan_on" => {
                config.plan_on_node = match value.as_str() {
                    Some("node") => true,
                    Some("here") => false,
                    _ => {
                        return Err(Error::BadValue {
                            path: file.into(),
                            field: "executor: plan_on".into(),
                            message: "expected `node` (a probe job asks a compute node, the default) or `here`".into(),
                        });
                    }
                };
            }
            "probe_timeout_s" => {
                config.probe_timeout_s = value
                    .as_f64()
                    .filter(|s| (1.0..=86_400.0).contains(s))
                    .ok_or_else(|| Error::BadValue {
                        path: file.into(),
                        field: "executor: probe_timeout_s".into(),
                        message: "expected seconds from 1 to 86400".into(),
                    })?;
            }
            "poll_interval_s" => {
                config.poll_interval_s = value
                    .as_f64()
                    .filter(|s| (0.1..=3600.0).contains(s))
                    .ok_or_else(|| Error::BadValue {
                        path: file.into(),
                        field: "executor: poll_interval_s".into(),
                        message: "expected seconds from 0.1 to 3600".into(),
                    })?;
            }
            "sbatch_args" => {
                let Value::Sequence(items) = value else {
                    return Err(Error::BadValue {
                        path: file.into(),
                        field: "executor: sbatch_args".into(),
                        message: "expected a list of arguments, e.g. [\"--qos=high\"]".into(),
                    });
                };
                for item in items {
                    let arg = text(file, key, item)?;
                    if let Some(option) = own_option(&arg) {
                        return Err(Error::BadValue {
                            path: file.into(),
                            field: "executor: sbatch_args".into(),
                            message: format!(
                                "`{}`: e3pipe sets `{option}` itself",
                                crate::error::shorten(&arg, 60)
                            ),
                        });
                    }
                    config.sbatch_args.push(arg);
                }
            }
            _ => {}
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<ExecutorConfig> {
        let value: Value = serde_yaml_ng::from_str(text).unwrap();
        ExecutorConfig::read(Path::new("p.yaml"), Some(&value))
    }

    #[test]
    fn own_options_are_found_as_sbatch_parses_them() {
        for arg in [
            "--output=/x",
            "--outp=/x",
            "--o",
            "--arr=0-3",
            "-o/x",
            "-Qo/x",
            "-QWa1",
            "-J",
            "--export=ALL",
            "--open",
        ] {
            assert!(own_option(arg).is_some(), "{arg}");
        }
        // Another option's argument that happens to hold a letter of ours; options e3pipe leaves alone.
        for arg in [
            "--qos=high",
            "-pgpu-o",
            "--exclusive",
            "-N2",
            "--partition=o",
            "-t00:10:00",
            "--",
        ] {
            assert!(own_option(arg).is_none(), "{arg}");
        }
    }

    #[test]
    fn slurm_settings_are_read_and_checked() {
        let c = read("{kind: slurm, partition: gpu, gres: \"gpu:1\", cpus_per_task: 8, time: \"00:30:00\", max_parallel: 2, points_per_task: 3, sbatch_args: [\"--qos=high\"], poll_interval_s: 0.5}").unwrap();
        let ExecutorConfig::Slurm(s) = c else {
            panic!()
        };
        assert_eq!(s.partition.as_deref(), Some("gpu"));
        assert_eq!(
            (s.cpus_per_task, s.max_parallel, s.points_per_task),
            (Some(8), 2, 3)
        );
        assert_eq!(s.sbatch_args, ["--qos=high"]);
        let ExecutorConfig::Slurm(s) =
            read("{kind: slurm, account: proj-42, mem: 32G, gpus: \"h200:2\"}").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (s.account.as_deref(), s.mem.as_deref(), s.gpus.as_deref()),
            (Some("proj-42"), Some("32G"), Some("h200:2"))
        );
        let ExecutorConfig::Slurm(s) = read("{kind: slurm, gpus: 1}").unwrap() else {
            panic!()
        };
        assert_eq!(s.gpus.as_deref(), Some("1"));
        for (bad, says) in [
            ("{kind: slurm, partiton: gpu}", "did you mean `partition`?"),
            ("{kind: slrum}", "did you mean `slurm`?"),
            ("{kind: slurm, points_per_task: 0}", "from 1 to"),
            ("{kind: slurm, time: \"1h; rm -rf /\"}", "not a Slurm time"),
            (
                "{kind: slurm, sbatch_args: [\"--array=0-9\"]}",
                "sets `--array` itself",
            ),
            (
                "{kind: slurm, sbatch_args: [\"-o/tmp/x\"]}",
                "sets `-o` itself",
            ),
            (
                "{kind: slurm, sbatch_args: [\"--output\"]}",
                "sets `--output` itself",
            ),
            ("{kind: slurm, partition: \"a\\nb\"}", "one line"),
            ("{kind: slurm, mem: 16GB}", "not a Slurm memory size"),
            ("{kind: slurm, plan_on: login}", "expected `node`"),
            ("{kind: slurm, probe_timeout_s: 0}", "from 1 to 86400"),
            ("{kind: slurm, mem: \"-1G\"}", "not a Slurm memory size"),
            ("{kind: slurm, mem: 0}", "expected text"),
            ("{kind: slurm, gpus: 0}", "from 1 to 64"),
            ("{kind: slurm, gpus: \"h200:0\"}", "a count from 1 to 64"),
            ("{kind: slurm, gpus: \"a:b:1\"}", "a count from 1 to 64"),
            ("{kind: slurm, account: \"proj 1\"}", "expected letters"),
            (
                "{kind: slurm, sbatch_args: [\"--open-mode=truncate\"]}",
                "sets `--open-mode` itself",
            ),
            ("{kind: local, partition: gpu}", "only `kind: slurm`"),
        ] {
            let err = read(bad).unwrap_err();
            assert!(err.to_string().contains(says), "{bad}: {err}");
            assert_eq!(err.exit_code(), 2);
        }
    }

    #[test]
    fn the_command_line_overrides_the_file() {
        let file = read("{kind: slurm, partition: gpu}").unwrap();
        assert_eq!(
            file.clone().with_cli(Some(ExecutorKind::Local), false),
            ExecutorConfig::Local
        );
        let ExecutorConfig::Slurm(s) = file.with_cli(None, true) else {
            panic!()
        };
        assert_eq!((s.partition.as_deref(), s.wait), (Some("gpu"), false));
        let ExecutorConfig::Slurm(s) =
            ExecutorConfig::Local.with_cli(Some(ExecutorKind::Slurm), false)
        else {
            panic!()
        };
        assert_eq!(s, SlurmConfig::default());
    }
}
