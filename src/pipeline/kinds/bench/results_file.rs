//! The bench step's output files: `results/inference_scaling_YYYYMMDD_HHMMSS.json` and
//! `latest/inference/<model>.json`, each a `results::document::ResultsDocument` (the original tool's layout with
//! e3pipe's record beside it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::bench::peaks::Peaks;
use crate::bench::result::{PointResult, Status};
use crate::bench::roofline::{Roofline, analyse};
use crate::clock::file_name_time;
use crate::error::Result;
use crate::fsio::write_json;
use crate::models::hardware::describe;
use crate::models::spec::ModelSource;
use crate::models::work::point_work;
use crate::paths::{RESULTS_DIR, latest_results};
use crate::pipeline::kinds::bench::plan::{BenchPlan, PointState};
use crate::results::document::{
    BenchRecord, LengthMetrics, ModelRecord, ResultsDocument, RunConfig, SCHEMA_VERSION,
};

/// Which tokenizer cut the prompts: the model's own file, or a built-in one (labelled when it stands in for a
/// tokenizer that cannot be had offline).
fn tokenizer_label(model: &crate::models::spec::ModelSpec) -> String {
    if let Some(path) = &model.tokenizer {
        return format!("file {}", path.display());
    }
    match &model.config {
        Some(c) if c.stand_in_tokenizer() => format!(
            "stand-in: GPT-2's BPE (built in; `{}`'s own tokenizer is not available offline, and GPT-2's ids fit its vocabulary of {})",
            model.name,
            c.vocab_size()
        ),
        Some(c) => format!("built-in {}", c.builtin_tokenizer().key_name()),
        None => "built-in".into(),
    }
}

/// Derives `point`'s summaries again from its stored samples with this build's statistics, so that a change to
/// them needs no point measured again (`bench::stats`).
pub fn use_current_statistics(point: &mut PointResult) {
    let adaptive = point
        .stopped_by
        .is_some_and(crate::bench::stopping::StopReason::adaptive);
    crate::bench::stats::rederive(&mut point.stats, adaptive);
}

/// The roofs points are read against, by the run that measured them (`clock::run_id`).
pub type Roofs = BTreeMap<String, Peaks>;

/// The roofs of the runs that measured `points`, each as that run measured it; a run whose roof is missing (not
/// measured, failed, or from before roofs belonged to runs) has none, and its points no roofline fields.
pub fn roofs(plan: &BenchPlan, cache_dir: &Path, points: &[(String, PointResult)]) -> Roofs {
    let Some(key) = &plan.peaks_key else {
        return Roofs::new();
    };
    let runs: std::collections::BTreeSet<&str> = points
        .iter()
        .map(|(_, p)| p.run_id.as_str())
        .filter(|r| !r.is_empty())
        .collect();
    runs.into_iter()
        .filter_map(|run| {
            crate::cache::peaks::load(cache_dir, &key.of_run(run)).map(|p| (run.to_string(), p))
        })
        .collect()
}

/// The roof the document's header shows: the newest run's (run ids begin with their start time).
fn newest(roofs: &Roofs) -> Option<&Peaks> {
    roofs.values().next_back()
}

/// The point read against the roof measured in its own run, when its work can be counted, it was measured, and
/// that roof's runs agree (`roofline::ROOF_MAX_SPREAD`).
pub fn roofline(plan: &BenchPlan, p: &PointResult, roofs: &Roofs) -> Option<Roofline> {
    let peaks = roofs.get(&p.run_id);
    let config = plan.bench.model.config.as_ref()?;
    if p.status != Status::Ok {
        return None;
    }
    let work = point_work(
        config,
        p.context_length,
        p.num_tokens,
        p.batch_size,
        plan.dtype.bytes(),
    );
    analyse(&work, p.latency_ms()?, p.median("tbt_ms"), peaks?)
}

/// Why a roof is too unsteady to read points against, as a warning for people; `None` when its runs agree.
pub fn unsteady(p: &Peaks) -> Option<String> {
    (crate::bench::roofline::spread(p) > crate::bench::roofline::ROOF_MAX_SPREAD).then(|| {
        format!(
            "the roof measured in this run varies {:.1}× between its own runs (matmul best {:.3} vs median {:.3} TFLOP/s, read best {:.1} vs median {:.1} GB/s): the machine was busy, so its points get no MFU or bandwidth use; measure again when it is quiet (`--force`)",
            crate::bench::roofline::spread(p),
            p.matmul_flops_per_s / 1e12,
            p.matmul_median_flops_per_s / 1e12,
            p.memory_bytes_per_s / 1e9,
            p.memory_median_bytes_per_s / 1e9
        )
    })
}

/// Builds the results document for one bench step.
pub fn document(
    exp_id: &str,
    plan: &BenchPlan,
    points: &[(String, PointResult)],
    roofs: &Roofs,
) -> ResultsDocument {
    // The smallest batch size's points where the original tool's readers look, the others beside them.
    let smallest = plan.bench.bench.params.batch_size;
    let mut metrics = BTreeMap::new();
    let mut batch_metrics: BTreeMap<String, BTreeMap<String, LengthMetrics>> = BTreeMap::new();
    for (hash, p) in points {
        let roof = roofline(plan, p, roofs);
        let entry = (
            p.context_length.to_string(),
            LengthMetrics::of(p, roof.as_ref(), hash),
        );
        if p.batch_size == smallest {
            metrics.insert(entry.0, entry.1);
        } else {
            batch_metrics
                .entry(p.batch_size.to_string())
                .or_default()
                .insert(entry.0, entry.1);
        }
    }
    ResultsDocument {
        exp_id: exp_id.into(),
        metrics,
        batch_metrics,
        ..header(plan, newest(roofs))
    }
}

/// Everything of the document but the points: model, arch, weights, the model and bench blocks, the machine's
/// peaks.
fn header(plan: &BenchPlan, peaks: Option<&Peaks>) -> ResultsDocument {
    let bench = &plan.bench.bench;
    let model = &plan.bench.model;
    let file_name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    let (pretrained, source) = match &model.source {
        ModelSource::Random { seed } => (None, format!("random-init seed {seed}")),
        ModelSource::HfDir { dir } => (file_name(dir), "hf-dir".to_string()),
        ModelSource::TorchScript { file } => (file_name(file), "torchscript".to_string()),
    };
    ResultsDocument {
        schema_version: SCHEMA_VERSION,
        exp_id: String::new(),
        model: model.name.clone(),
        arch: model.arch.as_str().into(),
        weights: Some(plan.weights.to_string()),
        config: RunConfig {
            model: ModelRecord {
                name: model.name.clone(),
                arch: model.arch.as_str().into(),
                pretrained,
                source: Some(source),
                dtype: Some(plan.dtype.name().into()),
                device: Some(describe(plan.device)),
                hyperparameters: model
                    .config
                    .as_ref()
                    .and_then(|c| serde_json::to_value(c).ok()),
                // How the roofline fields count attention (native models only; TorchScript's work is not counted),
                // and which tokenizer cut the prompts.
                extra: {
                    let mut extra = Map::new();
                    if let Some(config) = &model.config {
                        extra.insert(
                            "attention".to_string(),
                            Value::from(crate::models::work::attention_path(config)),
                        );
                    }
                    extra.insert("tokenizer".to_string(), Value::from(tokenizer_label(model)));
                    extra
                },
            },
            bench: BenchRecord {
                name: Some(bench.name.clone()),
                arch: Some(bench.arch.as_str().into()),
                context_lengths: Some(bench.context_lengths.clone()),
                scaling: Some(bench.scaling),
                num_tokens: Some(bench.params.num_tokens),
                batch_size: Some(bench.params.batch_size),
                batch_sizes: (bench.batch_sizes.len() > 1).then(|| bench.batch_sizes.clone()),
                num_runs: Some(bench.params.num_runs),
                warmup_runs: Some(bench.params.warmup_runs),
                min_duration_s: Some(bench.params.min_duration_s),
                threads: Some(plan.threads),
                extra: Map::new(),
            },
            extra: Map::new(),
        },
        peaks: peaks.cloned(),
        metrics: BTreeMap::new(),
        batch_metrics: BTreeMap::new(),
        extra: Map::new(),
    }
}

/// What the step's results document is written from when every point is settled, without reading any cached
/// result: the header, and each point's length, cache key and whether it is infeasible (an `ok` point's result is
/// fixed by its key). Also the code that writes the document, so a new format is written out.
/// The document depends on nothing else: a point's roof is its own run's, measured once with it and never again.
/// `changes`: the model's last cache write (`Store::changes`), since another pipeline's new point of the same
/// curve belongs in the document too (`carried`).
pub fn fingerprint(plan: &BenchPlan, changes: &str) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(env!("E3PIPE_DOCUMENT_ID").as_bytes());
    hasher.update(changes.as_bytes());
    let _ = serde_json::to_writer(&mut hasher, &header(plan, None));
    for p in &plan.points {
        let state = match &p.state {
            PointState::Infeasible(reason) => format!("infeasible {reason}"),
            _ => "ok".to_string(),
        };
        hasher.update(
            format!("\n{} {} {} {state}", p.context_length, p.batch_size, p.hash).as_bytes(),
        );
    }
    hasher.finalize().to_hex().to_string()
}

/// The cached points of the same model and curve (`PointKey::curve`) at a (length, batch size) this step does not
/// plan, the newest measurement of each: another pipeline's points, so that running one pipeline never drops
/// them from the model's document, the tables or the figures. `e3pipe cache --prune` removes those no pipeline
/// plans any more.
pub fn carried(
    plan: &BenchPlan,
    store: &crate::cache::store::Store,
    own: &[(String, PointResult)],
) -> Vec<(String, PointResult)> {
    let Some(first) = plan.points.first() else {
        return Vec::new();
    };
    let curve = crate::cache::key::PointKey::curve(&plan.key(first).fields());
    let planned: std::collections::BTreeSet<(usize, usize)> = plan
        .points
        .iter()
        .map(|p| (p.context_length, p.batch_size))
        .chain(own.iter().map(|(_, r)| (r.context_length, r.batch_size)))
        .collect();
    let mut newest: BTreeMap<(usize, usize), crate::cache::store::Entry> = BTreeMap::new();
    for (_, entry) in store.entries() {
        let Some(entry) = entry else { continue };
        let at = (entry.result.context_length, entry.result.batch_size);
        if entry.result.model != plan.bench.model.name
            || planned.contains(&at)
            || crate::cache::key::PointKey::curve(&entry.key) != curve
        {
            continue;
        }
        if newest
            .get(&at)
            .is_none_or(|e| e.result.finished_at < entry.result.finished_at)
        {
            newest.insert(at, entry);
        }
    }
    newest
        .into_values()
        // Read again the checked way: a damaged entry is left out (and measured again by whoever plans it).
        .filter_map(|e| match store.get(&e.hash) {
            crate::cache::store::Lookup::Hit(entry) => Some((entry.hash, entry.result)),
            _ => None,
        })
        .map(|(hash, mut result)| {
            use_current_statistics(&mut result);
            (hash, result)
        })
        .collect()
}

/// Writes the step's results unless `latest/inference/<model>.json` already holds exactly these points.
/// Returns the results file written, if any.
pub fn write(
    root: &Path,
    plan: &BenchPlan,
    points: &[(String, PointResult)],
    roofs: &Roofs,
) -> Result<Option<PathBuf>> {
    let latest = latest_results(root, &plan.bench.model.name);
    let probe = serde_json::to_value(document("", plan, points, roofs)).unwrap_or(Value::Null);
    let previous: Option<Value> = crate::fsio::read_own(&latest)
        .ok()
        .and_then(|t| serde_json::from_slice(&t).ok());
    if previous.as_ref().is_some_and(|p| {
        // Everything but the experiment id: a rerun that took every point from the cache writes nothing.
        [
            "schema_version",
            "metrics",
            "batch_metrics",
            "config",
            "peaks",
        ]
        .iter()
        .all(|k| p.get(k) == probe.get(k))
    }) {
        return Ok(None);
    }
    // Named by its newest point, so the same points make the same document, byte for byte (a healed
    // `latest/` is what it was); a results file of that name holding another document gets a suffix.
    let results = root.join(RESULTS_DIR);
    let base = format!(
        "inference_scaling_{}",
        points
            .iter()
            .filter_map(|(_, p)| crate::clock::file_name_time_of(&p.finished_at))
            .max()
            .unwrap_or_else(file_name_time)
    );
    let mut n = 1;
    loop {
        let exp_id = if n == 1 {
            base.clone()
        } else {
            format!("{base}_{n}")
        };
        let doc = document(&exp_id, plan, points, roofs);
        let path = results.join(format!("{exp_id}.json"));
        let same = crate::fsio::read_own(&path)
            .ok()
            .and_then(|t| serde_json::from_slice::<Value>(&t).ok())
            .is_some_and(|old| serde_json::to_value(&doc).is_ok_and(|new| new == old));
        if same {
            write_json(&latest, &doc)?;
            return Ok(None);
        }
        if !path.exists() {
            write_json(&path, &doc)?;
            write_json(&latest, &doc)?;
            return Ok(Some(path));
        }
        n += 1;
    }
}
