//! A bench step's points, decided before any work: for each its cache key and whether it is `cached`, `new`,
//! `stale` (with the key fields that changed against the latest entry for the same model and length), `corrupt`,
//! `forced` or `infeasible`.

use std::fmt::Write as _;

use crate::bench::config::BenchParams;
use crate::bench::peaks::Peaks;
use crate::bench::result::{PointResult, Status};
use crate::cache::key::{KeyTemplate, PointKey, changed_fields};
use crate::cache::peaks::{self as cache_peaks, PeaksKey};
use crate::cache::settled::Settled;
use crate::cache::store::Lookup;
use crate::error::{Error, Result};
use crate::file_hash::FileHashes;
use crate::models::config::{ArchConfig, BuiltinTokenizer, infeasibility};
use crate::models::hardware::Device;
use crate::models::runtime::{CudaRuntime, loaded_libtorch_version};
use crate::models::spec::ModelSource;
use crate::models::{DType, WeightsId, files, hardware, resolve_dtype, weights_id};
use crate::pipeline::kind::{PlanContext, Planned, RunContext};
use crate::pipeline::kinds::bench::BenchStep;

#[derive(Debug, Clone, PartialEq)]
pub enum PointState {
    Cached,
    New,
    Stale(Vec<String>),
    Corrupt(String),
    Forced,
    Infeasible(String),
    /// Cached, and measured again in this run because its curve gains points: does the cached curve still hold
    /// (`bench::anchor`)?
    Anchor,
}

impl std::fmt::Display for PointState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PointState::Cached => f.write_str("cached"),
            PointState::New => f.write_str("new"),
            PointState::Stale(changes) => write!(f, "stale ({})", changes.join(", ")),
            PointState::Corrupt(reason) => write!(f, "corrupt ({reason}): recompute"),
            PointState::Forced => f.write_str("forced"),
            PointState::Anchor => {
                f.write_str("anchor (cached; re-measured to check the curve for drift)")
            }
            PointState::Infeasible(reason) => write!(f, "infeasible ({reason})"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PlannedPoint {
    pub context_length: usize,
    /// Sequences per batch, each `context_length` tokens.
    pub batch_size: usize,
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
    /// Every point's key is this at its context length and batch size.
    pub template: KeyTemplate,
    /// The index of the entries this model's results were last written from.
    pub settled: Settled,
    pub points: Vec<PlannedPoint>,
    /// Whose peaks the points are read against (`None` for `TorchScript`, whose work is not counted).
    pub peaks_key: Option<PeaksKey>,
    /// The peaks, when already measured on this machine.
    pub peaks: Option<Peaks>,
}

impl BenchPlan {
    pub fn key(&self, point: &PlannedPoint) -> PointKey {
        PointKey {
            batch_size: point.batch_size,
            ..self.template.key(point.context_length)
        }
    }

    /// A point as messages name it: `512` or, when batch sizes are shown, `512×b4` (after `model@`).
    pub fn point_label(&self, context_length: usize, batch_size: usize) -> String {
        if self.shows_batch() {
            format!("{context_length}×b{batch_size}")
        } else {
            context_length.to_string()
        }
    }

    /// A point in the console summary: `512 tokens` or `512 tokens × batch 4`.
    pub fn length_label(&self, context_length: usize, batch_size: usize) -> String {
        if self.shows_batch() {
            format!("{context_length} tokens × batch {batch_size}")
        } else {
            format!("{context_length} tokens")
        }
    }

    /// True when the step sweeps batch sizes, or measures one other than 1: points are then named with it.
    pub fn shows_batch(&self) -> bool {
        self.bench.bench.batch_sizes != [1]
    }

    /// The peaks as they are now: planned, or measured since by an earlier step of this run (steps on one
    /// machine share them).
    pub fn current_peaks(&self, cache_dir: &std::path::Path) -> Option<Peaks> {
        self.peaks.clone().or_else(|| {
            self.peaks_key
                .as_ref()
                .and_then(|key| cache_peaks::load(cache_dir, key))
        })
    }
}

impl Planned for BenchPlan {
    fn render(&self, _step: &str) -> String {
        let mut out = String::new();
        let b = self;
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
        let batch = self.shows_batch();
        for p in &b.points {
            let at = if batch {
                format!("{:>6} tokens × batch {:<4}", p.context_length, p.batch_size)
            } else {
                format!("{:>6} tokens", p.context_length)
            };
            let _ = writeln!(out, "  {at}  {}  [{}]", p.state, &p.hash[..12]);
        }
        let computes = self
            .points
            .iter()
            .any(|p| !matches!(p.state, PointState::Cached | PointState::Infeasible(_)));
        match (&self.peaks, &self.peaks_key) {
            (Some(p), _) => {
                let _ = writeln!(
                    out,
                    "  machine roof: measured in this run ({})",
                    p.describe()
                );
            }
            (None, Some(_)) if computes => {
                let _ = writeln!(
                    out,
                    "  machine roof: measured with these points, in the same run (about a second)"
                );
            }
            (None, Some(_)) => {
                let _ = writeln!(
                    out,
                    "  machine roof: each cached point is read against the roof of the run that measured it"
                );
            }
            (None, None) => {}
        }
        out
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn pending_points(&self) -> (usize, usize) {
        let pending = self
            .points
            .iter()
            .filter(|p| !matches!(p.state, PointState::Cached | PointState::Infeasible(_)))
            .count();
        (pending, self.threads)
    }

    fn run(&self, _step: &str, ctx: &mut RunContext<'_>) -> Result<()> {
        super::run::run(self, ctx)
    }

    fn cache_points(&self) -> Vec<(String, PointKey)> {
        self.points
            .iter()
            .map(|p| (p.hash.clone(), self.key(p)))
            .collect()
    }
}

/// GPT-2's vocabulary: the ids the stand-in tokenizer can produce.
const STAND_IN_VOCAB: i64 = 50257;

fn tokenizer_identity(bench: &BenchStep, hashes: &FileHashes) -> Result<String> {
    if let Some(path) = &bench.model.tokenizer {
        Ok(format!("blake3:{}", hashes.blake3(path)?))
    } else {
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
        // A stand-in must fit: its ids index the model's embedding.
        if let Some(config) = bench
            .model
            .config
            .as_ref()
            .filter(|c| c.stand_in_tokenizer())
            && config.vocab_size() < STAND_IN_VOCAB
        {
            return Err(Error::BadValue {
                path: bench.model.file.clone(),
                field: "config.vocab_size".into(),
                message: format!(
                    "{} is smaller than the {STAND_IN_VOCAB} ids of GPT-2's BPE, which stands in for `{}`'s own tokenizer; set `tokenizer:` to the model's `tokenizer.json`, or a vocabulary of at least {STAND_IN_VOCAB}",
                    config.vocab_size(),
                    bench.model.name
                ),
            });
        }
        let hash = match builtin {
            BuiltinTokenizer::Gpt2 => env!("E3PIPE_TOKENIZER_DECODER_BLAKE3"),
            BuiltinTokenizer::Bert => env!("E3PIPE_TOKENIZER_ENCODER_BLAKE3"),
            BuiltinTokenizer::T5 => env!("E3PIPE_TOKENIZER_ENCODER_DECODER_BLAKE3"),
        };
        Ok(format!("builtin:{}:{hash}", builtin.key_name()))
    }
}

/// Plans every point of `bench`.
pub fn plan(bench: &BenchStep, ctx: &PlanContext<'_>) -> Result<BenchPlan> {
    let (store, hashes, entries) = (ctx.store, ctx.hashes, ctx.entries);
    let model = &bench.model;
    // The libtorch the worker will load must exist and be this build's release (exit 2 before anything runs).
    crate::models::libtorch::check()?;
    let bad_device = |message: String| Error::BadValue {
        path: model.file.clone(),
        field: "device".into(),
        message,
    };
    // A Slurm run's points are keyed by what a compute node said it would run on.
    let remote = match ctx.remote {
        Some(ask) => ask(model.device, ctx.step)?,
        None => None,
    };
    let device = match &remote {
        Some(id) => id.placement.ok_or_else(|| {
            bad_device(
                id.device_error
                    .clone()
                    .unwrap_or_else(|| "the compute node named no device".into()),
            )
        })?,
        None => {
            hardware::resolve(model.device, &crate::pipeline::probe::probe).map_err(bad_device)?
        }
    };
    let dtype = resolve_dtype(model.dtype, device);
    if device == Device::Cpu && dtype == DType::Fp16 {
        crate::output::warn(&format!(
            "model `{}`: fp16 on CPU is slow and not representative; consider `dtype: fp32`",
            model.name
        ));
    }
    let params: &BenchParams = &bench.bench.params;
    // One thread per logical CPU of the machine that measures: a compute node's, when planned from one.
    let threads = params.threads.unwrap_or_else(|| {
        remote
            .as_ref()
            .map_or_else(hardware::default_threads, |id| id.cpu.logical_cpus.max(1))
    });
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
        ModelSource::HfDir { dir } => files::check_weights(dir)?,
        ModelSource::TorchScript { file } => files::check_torchscript(file)?,
        ModelSource::Random { .. } => {}
    }
    if let Some(tokenizer) = &model.tokenizer {
        files::check_tokenizer(tokenizer)?;
    }
    let weights = weights_id(model, hashes)?;
    let tokenizer = tokenizer_identity(bench, hashes)?;
    // A GPU key names the model, not the index (identical GPUs share points), and the CUDA stack the worker loads.
    let (device_name, runtime, libtorch, hardware_id) = match &remote {
        Some(id) => (
            id.key_device
                .clone()
                .unwrap_or_else(|| hardware::key_device(device)),
            id.runtime.clone(),
            id.libtorch_version.clone(),
            id.hardware
                .clone()
                .ok_or_else(|| bad_device("the compute node gave no hardware identity".into()))?,
        ),
        None => (
            hardware::key_device(device),
            match device {
                Device::Cuda(_) => Some(CudaRuntime::of(
                    &crate::pipeline::probe::probe().map_err(bad_device)?,
                )),
                Device::Cpu => None,
            },
            loaded_libtorch_version(),
            hardware::identify(device).map_err(bad_device)?,
        ),
    };
    // GPU kernels do not depend on the host's intra-op threads (one thread launches them): not in a GPU key.
    let key_threads = if device == Device::Cpu { threads } else { 0 };
    let templates: Vec<(usize, KeyTemplate)> = bench
        .bench
        .batch_sizes
        .iter()
        .map(|&batch_size| {
            let params = BenchParams {
                batch_size,
                ..*params
            };
            let key = PointKey::new(
                model.arch,
                model.config.clone(),
                weights.clone(),
                tokenizer.clone(),
                dtype.name(),
                &params,
                key_threads,
                0,
                device_name.clone(),
                hardware_id.clone(),
                &libtorch,
                runtime.clone(),
            );
            (batch_size, key.template())
        })
        .collect();
    // The roofs a point's work is read against; only a model whose work can be counted (not TorchScript) needs them.
    let peaks_key = model.config.as_ref().map(|_| {
        PeaksKey::new(
            device_name,
            hardware_id,
            dtype.name(),
            key_threads,
            &libtorch,
        )
    });
    let peaks = peaks_key
        .as_ref()
        .and_then(|key| cache_peaks::load(&store.dir, key));
    let num_tokens = if model.arch.generates() {
        params.num_tokens
    } else {
        0
    };
    let settled = Settled::load(&Settled::path(&store.dir, &model.name)).unwrap_or_default();
    let forced = ctx.forced;
    // Hashing a key per batch size from its own template keeps a no-op of many points cheap.
    let template = templates
        .first()
        .map(|(_, t)| t.clone())
        .ok_or_else(|| Error::BadValue {
            path: bench.bench.file.clone(),
            field: "batch_sizes".into(),
            message: "is empty; list at least one batch size".into(),
        })?;
    // Length-major, batch sizes within: a sweep's points in the order people read a table.
    let points = bench
        .bench
        .context_lengths
        .iter()
        .flat_map(|&length| templates.iter().map(move |(batch, t)| (length, *batch, t)))
        .map(|(length, batch_size, template)| {
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
                    Lookup::Hit(entry) if entry.result.status == Status::Ok => {
                        cached = Some(Box::new(entry.result));
                        PointState::Cached
                    }
                    Lookup::Hit(_) => PointState::New,
                    Lookup::Corrupt(reason) => PointState::Corrupt(reason),
                    Lookup::Miss => match store.latest_for(
                        entries.get_or_init(|| store.entries()),
                        &model.name,
                        length,
                        batch_size,
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
                batch_size,
                hash,
                state,
                cached,
            }
        })
        .collect();
    let points = if bench.bench.anchor {
        with_anchors(points)
    } else {
        points
    };
    // A tokenizer that will cut prompts in this run is loaded now, so one that is JSON but no tokenizer is invalid
    // input (exit 2, nothing written), not a failure in the worker. Skipped when everything is cached.
    if let Some(tokenizer) = &model.tokenizer
        && points
            .iter()
            .any(|p| !matches!(p.state, PointState::Cached | PointState::Infeasible(_)))
    {
        files::load_tokenizer(tokenizer)?;
    }
    Ok(BenchPlan {
        step: ctx.step.to_string(),
        bench: bench.clone(),
        device,
        dtype,
        threads,
        weights,
        template,
        settled,
        points,
        peaks_key,
        peaks,
    })
}

/// Marks one cached point of each curve (batch size) that gains points in this run as its anchor: the shortest
/// cached length, the cheapest to measure again. A curve measured whole (nothing cached) or not at all needs none.
fn with_anchors(mut points: Vec<PlannedPoint>) -> Vec<PlannedPoint> {
    let mut batches: Vec<usize> = points.iter().map(|p| p.batch_size).collect();
    batches.sort_unstable();
    batches.dedup();
    for batch in batches {
        let curve = || {
            points
                .iter()
                .enumerate()
                .filter(move |(_, p)| p.batch_size == batch)
        };
        let grows = curve().any(|(_, p)| {
            matches!(
                p.state,
                PointState::New | PointState::Stale(_) | PointState::Corrupt(_)
            )
        });
        let anchor = curve()
            .filter(|(_, p)| p.state == PointState::Cached)
            .min_by_key(|(_, p)| p.context_length)
            .map(|(i, _)| i);
        if let (true, Some(i)) = (grows, anchor) {
            points[i].state = PointState::Anchor;
        }
    }
    points
}
