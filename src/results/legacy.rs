//! Reading every results layout e3pipe has met into this version's `ResultsDocument`, each through an explicit
//! conversion: this version's (`schema_version` 1); e3pipe's before it had one (the model at the top, the bench
//! config flat in `config`, `null` for unmeasured fields); the original Python tool's (names in `config.model` or a
//! string `config.model`, scaling files keyed by length, single-point files with flat metrics and the length in the
//! config). In the metrics of any layout, a field of the wrong type is kept aside (in `extra`) instead of failing the
//! file; the header of a current document is read strictly, and a metrics key that is not a length fails it (older
//! layouts skip such keys).

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::results::document::{
    BenchRecord, LengthMetrics, ModelRecord, ResultsDocument, RunConfig, SCHEMA_VERSION, length_key,
};

/// Which layout a document was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Current,
    /// e3pipe before `schema_version`.
    E3pipeV0,
    /// The original Python tool's.
    Original,
}

/// The architecture names files from elsewhere use (`encdec`, `seq2seq`, `causal`, …), as e3pipe's three.
pub fn canonical_arch(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase().replace('_', "-");
    match lower.as_str() {
        "decoder" | "decoder-only" | "causal" | "causal-lm" | "gpt" | "clm" => "decoder".into(),
        "encoder" | "encoder-only" | "bert" | "mlm" => "encoder".into(),
        "encoder-decoder" | "encdec" | "enc-dec" | "seq2seq" | "t5" => "encoder-decoder".into(),
        _ => lower,
    }
}

/// Deserializes `map` as `T`, setting aside (into the returned map) every entry that does not fit its field, so one
/// odd field never loses a file.
fn lenient<T: DeserializeOwned + Default>(map: &Map<String, Value>) -> (T, Map<String, Value>) {
    let mut fits = Map::new();
    let mut aside = Map::new();
    for (k, v) in map {
        let one: Map<String, Value> = std::iter::once((k.clone(), v.clone())).collect();
        if serde_json::from_value::<T>(Value::Object(one)).is_ok() {
            fits.insert(k.clone(), v.clone());
        } else {
            aside.insert(k.clone(), v.clone());
        }
    }
    // Entries that fit one by one fit together (the schema's fields are independent); if not, keep them all aside.
    match serde_json::from_value::<T>(Value::Object(fits)) {
        Ok(t) => (t, aside),
        Err(_) => (T::default(), map.clone()),
    }
}

fn lenient_metrics(map: &Map<String, Value>) -> LengthMetrics {
    let (mut m, aside): (LengthMetrics, _) = lenient(map);
    m.extra.extend(aside);
    m
}

fn object(v: Option<&Value>) -> Map<String, Value> {
    v.and_then(Value::as_object).cloned().unwrap_or_default()
}

fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(str::to_string)
}

/// Reads a results document of any known layout; `file_stem` names the model when the file does not.
pub fn read(doc: &Value, file_stem: &str) -> Result<(ResultsDocument, Layout), String> {
    let obj = doc
        .as_object()
        .ok_or("not a JSON object: not a results file")?;
    let exp_id = text(obj.get("exp_id")).ok_or("no `exp_id`: not a results file")?;
    let metrics = obj
        .get("metrics")
        .and_then(Value::as_object)
        .ok_or("no `metrics` object: not a results file")?;
    if let Some(version) = obj.get("schema_version") {
        return match version.as_u64() {
            Some(v) if v == u64::from(SCHEMA_VERSION) => {
                Ok((current(obj, metrics)?, Layout::Current))
            }
            Some(v) if v > u64::from(SCHEMA_VERSION) => Err(format!(
                "written by a newer e3pipe (`schema_version` {v}; this one reads up to {SCHEMA_VERSION}): upgrade e3pipe to read it"
            )),
            _ => Err(format!(
                "`schema_version` {version} is not one e3pipe wrote"
            )),
        };
    }
    let config = object(obj.get("config"));
    let ours_v0 = metrics.values().any(|m| m.get("point").is_some())
        || (obj.get("model").is_some_and(Value::is_string) && config.contains_key("num_runs"));
    if ours_v0 {
        Ok((e3pipe_v0(obj, &exp_id, metrics, &config), Layout::E3pipeV0))
    } else {
        Ok((
            original(obj, &exp_id, metrics, &config, file_stem),
            Layout::Original,
        ))
    }
}

/// A foreign file's metrics key that is a length; any other is skipped, with a warning naming it.
fn known_length(key: &str) -> bool {
    let ok = length_key(key).is_some();
    if !ok {
        crate::output::warn(&format!(
            "skipped metrics key `{}`: not a context length (a positive decimal without leading zeros or sign)",
            crate::error::shorten(key, 30)
        ));
    }
    ok
}

fn metrics_of(metrics: &Map<String, Value>) -> Result<BTreeMap<String, LengthMetrics>, String> {
    metrics
        .iter()
        .map(|(length, m)| {
            if length_key(length).is_none() {
                return Err(format!(
                    "metrics key `{}` is not a context length (a positive decimal without leading zeros or sign)",
                    crate::error::shorten(length, 30)
                ));
            }
            Ok((length.clone(), lenient_metrics(&object(Some(m)))))
        })
        .collect()
}

fn current(
    obj: &Map<String, Value>,
    metrics: &Map<String, Value>,
) -> Result<ResultsDocument, String> {
    let mut header = obj.clone();
    header.insert("metrics".into(), Value::Object(Map::new()));
    let batches = header.remove("batch_metrics");
    let mut doc: ResultsDocument = serde_json::from_value(Value::Object(header))
        .map_err(|e| format!("does not follow results schema {SCHEMA_VERSION} ({e})"))?;
    doc.metrics = metrics_of(metrics)?;
    match batches {
        None | Some(Value::Null) => {}
        Some(Value::Object(batches)) => {
            for (batch, lengths) in &batches {
                if batch.parse::<u64>().map_or(true, |b| b == 0) {
                    return Err(format!("`batch_metrics` key `{batch}` is not a batch size"));
                }
                let Value::Object(lengths) = lengths else {
                    return Err(format!(
                        "`batch_metrics.{batch}` is not an object of lengths"
                    ));
                };
                doc.batch_metrics
                    .insert(batch.clone(), metrics_of(lengths)?);
            }
        }
        Some(_) => return Err("`batch_metrics` is not an object".into()),
    }
    doc.arch = canonical_arch(&doc.arch);
    Ok(doc)
}

fn e3pipe_v0(
    obj: &Map<String, Value>,
    exp_id: &str,
    metrics: &Map<String, Value>,
    config: &Map<String, Value>,
) -> ResultsDocument {
    let model = text(obj.get("model")).unwrap_or_default();
    let arch = text(obj.get("arch"))
        .map(|a| canonical_arch(&a))
        .unwrap_or_default();
    // The flat config was the bench block plus the hyperparameters.
    let (mut bench, aside): (BenchRecord, _) = lenient(config);
    bench.extra.extend(aside);
    let hyperparameters = bench
        .extra
        .remove("hyperparameters")
        .filter(|h| !h.is_null());
    ResultsDocument {
        schema_version: SCHEMA_VERSION,
        batch_metrics: std::collections::BTreeMap::new(),
        exp_id: exp_id.into(),
        model: model.clone(),
        arch: arch.clone(),
        weights: text(obj.get("weights")),
        config: RunConfig {
            model: ModelRecord {
                name: model,
                arch,
                hyperparameters,
                ..ModelRecord::default()
            },
            bench,
            extra: Map::new(),
        },
        peaks: obj
            .get("peaks")
            .and_then(|p| serde_json::from_value(p.clone()).ok()),
        metrics: metrics
            .iter()
            .filter(|(k, _)| known_length(k))
            .map(|(k, m)| (k.clone(), lenient_metrics(&object(Some(m)))))
            .collect(),
        extra: Map::new(),
    }
}

fn original(
    obj: &Map<String, Value>,
    exp_id: &str,
    metrics: &Map<String, Value>,
    config: &Map<String, Value>,
    file_stem: &str,
) -> ResultsDocument {
    let model_block = object(config.get("model"));
    let (mut model, aside): (ModelRecord, _) = lenient(&model_block);
    model.extra.extend(aside);
    let (mut bench, aside): (BenchRecord, _) = lenient(&object(config.get("bench")));
    bench.extra.extend(aside);
    // Scaling files name the model in `config.model.name`, single-point files in a string `config.model`.
    let name = Some(model.name.clone())
        .filter(|n| !n.is_empty())
        .or_else(|| text(config.get("model")))
        .or_else(|| text(obj.get("model")))
        .unwrap_or_else(|| file_stem.to_string());
    let arch = text(obj.get("arch"))
        .or_else(|| Some(model.arch.clone()).filter(|a| !a.is_empty()))
        .or_else(|| bench.arch.clone())
        .or_else(|| text(config.get("arch")))
        .map(|a| canonical_arch(&a))
        .unwrap_or_default();
    model.name.clone_from(&name);
    model.arch.clone_from(&arch);
    let mut extra_config = config.clone();
    extra_config.remove("model");
    extra_config.remove("bench");
    let scaling = metrics.values().any(Value::is_object);
    let points = if scaling {
        metrics
            .iter()
            .filter(|(k, _)| known_length(k))
            .map(|(k, m)| (k.clone(), lenient_metrics(&object(Some(m)))))
            .collect()
    } else {
        // One point with flat metrics; its length (if any) in the config. No length: keyed `""`, drawn nowhere.
        let length = ["context_length", "max_length"]
            .iter()
            .find_map(|k| config.get(*k).or_else(|| bench.extra.get(*k)))
            .and_then(Value::as_u64)
            .map(|l| l.to_string())
            .unwrap_or_default();
        let mut m = lenient_metrics(metrics);
        // Its throughput was `throughput`.
        if m.throughput_tokens_per_sec.is_none() {
            m.throughput_tokens_per_sec = m.extra.get("throughput").and_then(Value::as_f64);
        }
        std::iter::once((length, m)).collect()
    };
    let mut extra = obj.clone();
    for k in ["exp_id", "metrics", "config", "model", "arch"] {
        extra.remove(k);
    }
    ResultsDocument {
        schema_version: SCHEMA_VERSION,
        batch_metrics: std::collections::BTreeMap::new(),
        exp_id: exp_id.into(),
        model: name,
        arch,
        weights: None,
        config: RunConfig {
            model,
            bench,
            extra: extra_config,
        },
        peaks: None,
        metrics: points,
        extra,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_original_scaling_layout_brings_names_aliases_spreads_and_unknown_fields() {
        let doc = json!({"exp_id": "inference_scaling_20251111_120000",
            "config": {"model": {"name": "t5-small", "arch": "encdec", "pretrained": "t5-small"},
                       "bench": {"arch": "encdec", "num_runs": 10}},
            "metrics": {"128": {"first_token_latency_ms": 5.0, "latency_std_ms": 0.4, "total_runs": 10,
                                "avg_power_watts": 250.0, "something_new": [1, 2], "tbt_ms": "n/a"}}});
        let (d, layout) = read(&doc, "file").unwrap();
        assert_eq!(layout, Layout::Original);
        assert_eq!(
            (d.model.as_str(), d.arch.as_str()),
            ("t5-small", "encoder-decoder")
        );
        assert_eq!(d.config.model.pretrained.as_deref(), Some("t5-small"));
        assert_eq!(d.config.bench.num_runs, Some(10));
        let m = &d.metrics["128"];
        assert_eq!(m.first_token_latency_ms, Some(5.0));
        assert_eq!(
            (m.latency_std_ms, m.total_runs, m.avg_power_watts),
            (Some(0.4), Some(10), Some(250.0))
        );
        // Unknown and mistyped fields are kept aside, not fatal.
        assert_eq!(m.extra["something_new"], json!([1, 2]));
        assert_eq!((m.tbt_ms, &m.extra["tbt_ms"]), (None, &json!("n/a")));
    }

    #[test]
    fn the_original_single_point_layout_takes_its_length_from_the_config() {
        let doc = json!({"exp_id": "inference_20251110_090000",
            "config": {"model": "bert-base-uncased", "arch": "encoder", "context_length": 128},
            "metrics": {"latency_ms": 3.1, "throughput": 41000.0, "max_memory_gb": 0.12}});
        let (d, layout) = read(&doc, "file").unwrap();
        assert_eq!(layout, Layout::Original);
        assert_eq!(
            (d.model.as_str(), d.arch.as_str()),
            ("bert-base-uncased", "encoder")
        );
        let m = &d.metrics["128"];
        assert_eq!(
            (m.latency_ms, m.throughput_tokens_per_sec),
            (Some(3.1), Some(41000.0))
        );
        // No name anywhere: the file's.
        let bare = json!({"exp_id": "x", "metrics": {"latency_ms": 1.0}});
        let (d, _) = read(&bare, "stem").unwrap();
        assert_eq!(d.model, "stem");
        assert!(d.metrics.contains_key(""));
    }

    #[test]
    fn e3pipe_before_schema_versions_moves_its_flat_config_into_the_two_blocks() {
        let doc = json!({"exp_id": "inference_scaling_1", "model": "gpt2", "arch": "decoder", "weights": "random-init seed 1",
            "config": {"name": "quick", "arch": "decoder", "context_lengths": [8], "scaling": true, "num_tokens": 4,
                       "batch_size": 1, "num_runs": 3, "warmup_runs": 1, "min_duration_s": 0.0, "threads": 2,
                       "hyperparameters": {"n_positions": 64}},
            "metrics": {"8": {"latency_ms": 7.0, "tbt_ms": null, "status": "ok", "point": {"broken": true}}}});
        let (d, layout) = read(&doc, "file").unwrap();
        assert_eq!(layout, Layout::E3pipeV0);
        assert_eq!(d.config.bench.num_runs, Some(3));
        assert_eq!(d.config.bench.context_lengths, Some(vec![8]));
        assert_eq!(d.config.model.max_positions(), Some(64));
        let m = &d.metrics["8"];
        assert_eq!((m.latency_ms, m.tbt_ms), (Some(7.0), None));
        // A damaged point record is set aside; the seed-level numbers still read.
        assert!(m.point.is_none() && m.extra.contains_key("point"));
    }

    #[test]
    fn a_newer_schema_is_refused_by_name_and_a_current_one_round_trips() {
        let newer = json!({"exp_id": "x", "schema_version": SCHEMA_VERSION + 1, "metrics": {}});
        let e = read(&newer, "f").unwrap_err();
        assert!(e.contains("newer e3pipe"), "{e}");
        let doc = ResultsDocument {
            schema_version: SCHEMA_VERSION,
            exp_id: "inference_scaling_2".into(),
            model: "m".into(),
            arch: "encoder".into(),
            weights: None,
            config: RunConfig::default(),
            peaks: None,
            metrics: std::iter::once((
                "16".to_string(),
                LengthMetrics {
                    latency_ms: Some(1.5),
                    ..LengthMetrics::default()
                },
            ))
            .collect(),
            batch_metrics: std::iter::once((
                "4".to_string(),
                std::iter::once((
                    "16".to_string(),
                    LengthMetrics {
                        latency_ms: Some(4.5),
                        batch_size: Some(4),
                        ..LengthMetrics::default()
                    },
                ))
                .collect(),
            ))
            .collect(),
            extra: Map::new(),
        };
        let value = serde_json::to_value(&doc).unwrap();
        assert_eq!(
            value["batch_metrics"]["4"]["16"],
            json!({"latency_ms": 4.5, "batch_size": 4})
        );
        // Unmeasured fields are left out, never null (the original reader compares them with numbers).
        assert_eq!(value["metrics"]["16"], json!({"latency_ms": 1.5}));
        let (back, layout) = read(&value, "f").unwrap();
        assert_eq!((back, layout), (doc, Layout::Current));
        for (bad, says) in [
            (json!({"x": {}}), "key `x` is not a batch size"),
            (json!({"0": {}}), "key `0` is not a batch size"),
            (json!({"2": 5}), "not an object of lengths"),
            (json!([1]), "is not an object"),
            (json!({"2": {"long": {}}}), "not a context length"),
        ] {
            let file = json!({"exp_id": "x", "schema_version": SCHEMA_VERSION, "model": "m", "metrics": {}, "batch_metrics": bad});
            let e = read(&file, "f").unwrap_err();
            assert!(e.contains(says), "{e}");
        }
        let bad_key = json!({"exp_id": "x", "schema_version": SCHEMA_VERSION, "model": "m", "metrics": {"long": {}}});
        assert!(
            read(&bad_key, "f")
                .unwrap_err()
                .contains("not a context length")
        );
    }
}
