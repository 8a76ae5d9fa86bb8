//! What a run will do, decided before any work: for every bench point its cache key and whether it is `cached`,
//! `new`, `stale` (with the key fields that changed against the latest entry for the same model and length),
//! `corrupt`, `forced` or `infeasible`. `--dry-run` prints this and stops.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use crate::bench::config::BenchParams;
use crate::bench::result::{LIBTORCH_VERSION, PointResult};
use crate::cache::file_hash::FileHashes;
use crate::cache::key::{KeyTemplate, PointKey, changed_fields};
use crate::cache::settled::Settled;
use crate::cache::store::{Entry, Lookup, Store};
use crate::error::{Error, Result};
use crate::models::config::{ArchConfig, BuiltinTokenizer, infeasibility};
use crate::models::hardware::Device;
use crate::models::spec::ModelSource;
use crate::models::{DType, WeightsId, files, hardware, resolve_dtype, weights_id};
use crate::pipeline::graph;
use crate::pipeline::spec::{BenchStep, Pipeline, Step, StepKind};

#[derive(Debug, Clone, PartialEq)]
pub enum PointState {
    Cached,
    New,
    Stale(Vec<String>),
    Corrupt(String),
    Forced,
    Infeasible(String),
}

impl std::fmt::Display for PointState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PointState::Cached => f.write_str("cached"),
            PointState::New => f.write_str("new"),
            PointState::Stale(changes) => write!(f, "stale ({})", changes.join(", ")),
            PointState::Corrupt(reason) => write!(f, "corrupt ({reason}): recompute"),
            PointState::Forced => f.write_str("forced"),
            PointState::Infeasible(reason) => write!(f, "infeasible ({reason})"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PlannedPoint {
    pub context_length: usize,
    pub hash: String,
    pub state: PointState,
    /// The cached result, when it was read (and checksummed) while planning; `Cached` points the settled index
    /// vouched for are read only if the step's results change.
    pub cached: Option<Box<PointResult>>,
}

/// A bench step with everything resolved: device, dtype, threads and the points.
#[derive(Debug, Clone)]
pub struct BenchPlan {
    pub step: String,
    pub bench: BenchStep,
    pub device: Device,
    pub dtype: DType,
    pub threads: usize,
    pub weights: WeightsId,
    /// Every point's key is this at its context length.
    pub template: KeyTemplate,
    /// The index of the entries this model's results were last written from.
    pub settled: Settled,
    pub points: Vec<PlannedPoint>,
}

impl BenchPlan {
    pub fn key(&self, point: &PlannedPoint) -> PointKey {
        self.template.key(point.context_length)
    }
}

#[derive(Debug, Clone)]
pub enum StepPlan {
    Bench(Box<BenchPlan>),
    /// `forced`: redo even when the inputs' hash is unchanged. `models`: the models of the bench steps upstream
    /// (the only results aggregated); empty when there are none, and then every result in `latest/inference/` is.
    Aggregate {
        step: String,
        forced: bool,
        models: Vec<String>,
    },
    Plot {
        step: String,
        options: crate::pipeline::spec::PlotOptions,
        forced: bool,
    },
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub steps: Vec<StepPlan>,
    pub root: PathBuf,
    /// Each step's direct dependencies, so a failed step's dependents are skipped rather than run on stale input.
    pub needs: BTreeMap<String, Vec<String>>,
}

/// Which steps to recompute regardless of the cache.
#[derive(Debug, Clone, Default)]
pub struct Force {
    pub all: bool,
    pub steps: Vec<String>,
}

impl Force {
    fn covers(&self, step: &str) -> bool {
        self.all || self.steps.iter().any(|s| s == step)
    }
}

pub fn plan(pipeline: &Pipeline, only: &[String], force: &Force) -> Result<Plan> {
    let selected = graph::select(pipeline, only)?;
    for forced in &force.steps {
        if pipeline.step(forced).is_none() {
            return Err(Error::NoSuchStep {
                path: pipeline.file.clone(),
                step: forced.clone(),
                suggestion: crate::error::suggest(
                    forced,
                    pipeline.steps.iter().map(|s| s.name.as_str()),
                ),
            });
        }
    }
    let store = Store::new(&pipeline.root);
    // Every entry is parsed only if some point misses the cache (to explain what changed).
    let entries = OnceCell::new();
    let hashes = FileHashes::load(&pipeline.root);
    let mut steps = Vec::new();
    for &name in &selected {
        let Some(step) = pipeline.step(name) else {
            continue;
        };
        let mut planned = plan_step(step, &store, &entries, &hashes, force)?;
        if let StepPlan::Aggregate { models, .. } = &mut planned {
            *models = upstream_models(pipeline, step);
        }
        steps.push(planned);
    }
    let needs: BTreeMap<String, Vec<String>> = pipeline
        .steps
        .iter()
        .map(|s| (s.name.clone(), s.needs.clone()))
        .collect();
    check_derived_inputs(pipeline, &selected, &steps)?;
    // Only a run may write; `--dry-run` and `graph` leave the project untouched apart from this memo.
    hashes.save()?;
    Ok(Plan {
        steps,
        root: pipeline.root.clone(),
        needs,
    })
}

/// A derived step whose inputs neither exist nor are made by a step of this run cannot run: that is invalid input,
/// found before anything runs (exit 2, nothing written), with a hint that fits the pipeline.
fn check_derived_inputs(pipeline: &Pipeline, selected: &[&str], steps: &[StepPlan]) -> Result<()> {
    // A step's input is made in this run when a step it needs runs too; with no `needs`, when any step of the
    // producing kind runs (aggregate then reads every result, plot the one table).
    let runs_kind = |kind: &str| {
        selected
            .iter()
            .any(|n| pipeline.step(n).is_some_and(|s| s.kind.name() == kind))
    };
    let made_here = |step: &str, producer_kind: &str| {
        pipeline.step(step).is_some_and(|s| {
            if s.needs.is_empty() {
                runs_kind(producer_kind)
            } else {
                s.needs.iter().any(|n| selected.contains(&n.as_str()))
            }
        })
    };
    for planned in steps {
        let (step, input, producer_kind) = match planned {
            StepPlan::Aggregate { step, .. } => (step, crate::paths::LATEST_DIR, "bench"),
            StepPlan::Plot { step, .. } => (step, crate::paths::RESULTS_TABLE, "aggregate"),
            StepPlan::Bench(_) => continue,
        };
        if made_here(step, producer_kind) || pipeline.root.join(input).exists() {
            continue;
        }
        let producers: Vec<&str> = pipeline
            .steps
            .iter()
            .filter(|s| s.kind.name() == producer_kind)
            .map(|s| s.name.as_str())
            .collect();
        let hint = if producers.is_empty() {
            format!(
                "add a `{producer_kind}` step to `{}` to make it",
                pipeline.file.display()
            )
        } else {
            format!(
                "run `e3pipe run --only {},{step}` first",
                producers.join(",")
            )
        };
        return Err(Error::MissingInput {
            step: step.clone(),
            missing: PathBuf::from(input),
            hint,
        });
    }
    Ok(())
}

/// Model names of the bench steps `step` depends on, directly or not.
fn upstream_models(pipeline: &Pipeline, step: &Step) -> Vec<String> {
    let mut seen: Vec<&str> = Vec::new();
    let mut stack: Vec<&str> = step.needs.iter().map(String::as_str).collect();
    let mut models = Vec::new();
    while let Some(name) = stack.pop() {
        if seen.contains(&name) {
            continue;
        }
        seen.push(name);
        if let Some(up) = pipeline.step(name) {
            if let StepKind::Bench(b) = &up.kind {
                models.push(b.model.name.clone());
            }
            stack.extend(up.needs.iter().map(String::as_str));
        }
    }
    models.sort();
    models.dedup();
    models
}

fn tokenizer_identity(bench: &BenchStep, hashes: &FileHashes) -> Result<String> {
    match &bench.model.tokenizer {
        Some(path) => Ok(format!("blake3:{}", hashes.blake3(path)?)),
        None => {
            // A model without `tokenizer:` has a config (validated when the spec was read).
            let builtin = bench
                .model
                .config
                .as_ref()
                .map(ArchConfig::builtin_tokenizer)
                .ok_or_else(|| Error::BadValue {
                    path: bench.model.file.clone(),
                    field: "tokenizer".into(),
                    message: "set `tokenizer:`".into(),
                })?;
            let hash = match builtin {
                BuiltinTokenizer::Gpt2 => env!("E3PIPE_TOKENIZER_DECODER_BLAKE3"),
                BuiltinTokenizer::Bert => env!("E3PIPE_TOKENIZER_ENCODER_BLAKE3"),
                BuiltinTokenizer::T5 => env!("E3PIPE_TOKENIZER_ENCODER_DECODER_BLAKE3"),
            };
            Ok(format!("builtin:{}:{hash}", builtin.key_name()))
        }
    }
}

fn plan_step(
    step: &Step,
    store: &Store,
    entries: &OnceCell<Vec<(PathBuf, Option<Entry>)>>,
    hashes: &FileHashes,
    force: &Force,
) -> Result<StepPlan> {
    let bench = match &step.kind {
        StepKind::Bench(b) => b,
        StepKind::Aggregate => {
            return Ok(StepPlan::Aggregate {
                step: step.name.clone(),
                forced: force.covers(&step.name),
                models: Vec::new(),
            });
        }
        StepKind::Plot(options) => {
            return Ok(StepPlan::Plot {
                step: step.name.clone(),
                options: options.clone(),
                forced: force.covers(&step.name),
            });
        }
    };
    let model = &bench.model;
    let device = hardware::resolve(model.device).map_err(|message| Error::BadValue {
        path: model.file.clone(),
        field: "device".into(),
        message,
    })?;
    let dtype = resolve_dtype(model.dtype, device);
    if device == Device::Cpu && dtype == DType::Fp16 {
        tracing::warn!(
            "model `{}`: fp16 on CPU is slow and not representative; consider `dtype: fp32`",
            model.name
        );
    }
    let params: &BenchParams = &bench.bench.params;
    let threads = params.threads.unwrap_or_else(hardware::default_threads);
    if let ModelSource::HfDir { dir } | ModelSource::TorchScript { file: dir } = &model.source
        && !dir.exists()
    {
        return Err(Error::ModelFile {
            path: dir.clone(),
            message: format!(
                "model `{}` points at a path that does not exist",
                model.name
            ),
        });
    }
    // Files broken in ways visible without libtorch are invalid input, refused before anything runs.
    match &model.source {
        ModelSource::HfDir { dir } => files::check_safetensors(&dir.join("model.safetensors"))?,
        ModelSource::TorchScript { file } => files::check_torchscript(file)?,
        ModelSource::Random { .. } => {}
    }
    if let Some(tokenizer) = &model.tokenizer {
        files::check_tokenizer(tokenizer)?;
    }
    let weights = weights_id(model, hashes)?;
    let tokenizer = tokenizer_identity(bench, hashes)?;
    let device_name = hardware::describe(device);
    let hardware_id = hardware::identify(device).map_err(|message| Error::BadValue {
        path: model.file.clone(),
        field: "device".into(),
        message,
    })?;
    let template = PointKey::new(
        model.arch,
        model.config.clone(),
        weights.clone(),
        tokenizer.clone(),
        dtype.name(),
        params,
        threads,
        0,
        device_name,
        hardware_id,
        LIBTORCH_VERSION,
    )
    .template();
    let num_tokens = template.key(0).num_tokens;
    let settled = Settled::load(&Settled::path(&store.dir, &model.name)).unwrap_or_default();
    let forced = force.covers(&step.name);
    let points = bench
        .bench
        .context_lengths
        .iter()
        .map(|&length| {
            let hash = template.hash(length);
            let mut cached = None;
            let state = if let Some(reason) =
                infeasibility(model.config.as_ref(), length, num_tokens)
            {
                PointState::Infeasible(reason)
            } else if forced {
                PointState::Forced
            } else if settled.vouches(&hash, &store.entry_path(&hash)) {
                // Verified when it was written and untouched since: read only if the results change.
                PointState::Cached
            } else {
                match store.get(&hash) {
                    Lookup::Hit(entry)
                        if entry.result.status == crate::bench::result::Status::Ok =>
                    {
                        cached = Some(Box::new(entry.result));
                        PointState::Cached
                    }
                    Lookup::Hit(_) => PointState::New,
                    Lookup::Corrupt(reason) => PointState::Corrupt(reason),
                    Lookup::Miss => match store.latest_for(
                        entries.get_or_init(|| store.entries()),
                        &model.name,
                        length,
                    ) {
                        Some(old) => {
                            let changes = changed_fields(&old.key, &template.key(length).fields());
                            if changes.is_empty() {
                                PointState::New
                            } else {
                                PointState::Stale(changes)
                            }
                        }
                        None => PointState::New,
                    },
                }
            };
            PlannedPoint {
                context_length: length,
                hash,
                state,
                cached,
            }
        })
        .collect();
    Ok(StepPlan::Bench(Box::new(BenchPlan {
        step: step.name.clone(),
        bench: (**bench).clone(),
        device,
        dtype,
        threads,
        weights,
        template,
        settled,
        points,
    })))
}

impl Plan {
    /// The `--dry-run` listing.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for step in &self.steps {
            match step {
                StepPlan::Bench(b) => {
                    let _ = writeln!(
                        out,
                        "step `{}` (bench): model {} ({}, {}), {} on {}, {} threads",
                        b.step,
                        b.bench.model.name,
                        b.bench.model.arch,
                        b.weights,
                        b.dtype.name(),
                        hardware::describe(b.device),
                        b.threads
                    );
                    for p in &b.points {
                        let _ = writeln!(
                            out,
                            "  {:>6} tokens  {}  [{}]",
                            p.context_length,
                            p.state,
                            &p.hash[..12]
                        );
                    }
                }
                StepPlan::Aggregate { step, .. } => {
                    let _ = writeln!(
                        out,
                        "step `{step}` (aggregate): {}/*.json -> {}",
                        crate::paths::LATEST_DIR,
                        crate::paths::RESULTS_TABLE
                    );
                }
                StepPlan::Plot { step, .. } => {
                    let _ = writeln!(
                        out,
                        "step `{step}` (plot): {} -> {}/latency_curve.png",
                        crate::paths::RESULTS_TABLE,
                        crate::paths::FIGS_DIR
                    );
                }
            }
        }
        out
    }
}
