//! `e3pipe cache`: what the cache holds (entries per model, bytes on disk) and `--prune` of entries that no
//! pipeline under the project's `pipelines/` folder references any more. Points measured on other machines (other
//! device, threads or libtorch) of points a pipeline still lists are kept.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::cache::store::Store;
use crate::error::{Error, Result};
use crate::output;
use crate::pipeline::plan::{Force, plan};
use crate::pipeline::spec::Pipeline;

/// `project`: the project folder, or any file in it (a pipeline, as earlier versions took).
pub fn run(project: &Path, prune: bool, dry_run: bool) -> Result<()> {
    let root = project_of(project)?;
    let store = Store::new(&root);
    let entries = store.entries();
    let total_bytes: u64 = entries
        .iter()
        .filter_map(|(p, _)| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let mut per_model: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    let mut unreadable = 0;
    for (path, entry) in &entries {
        match entry {
            Some(e) => {
                let slot = per_model.entry(e.result.model.clone()).or_default();
                slot.0 += 1;
                slot.1 += std::fs::metadata(path).map_or(0, |m| m.len());
            }
            None => unreadable += 1,
        }
    }
    output::result(&format!(
        "{}/: {} entr{}, {}",
        crate::shown_path::for_people(&store.dir),
        entries.len(),
        if entries.len() == 1 { "y" } else { "ies" },
        human_bytes(total_bytes)
    ));
    for (model, (n, bytes)) in &per_model {
        output::result(&format!("  {model}: {n} point(s), {}", human_bytes(*bytes)));
    }
    if unreadable > 0 {
        output::result(&format!(
            "  {unreadable} unreadable entr{} (recomputed when needed)",
            if unreadable == 1 { "y" } else { "ies" }
        ));
    }
    let peaks = crate::cache::peaks::entries(&store.dir);
    let stale_peaks: Vec<&std::path::PathBuf> = peaks
        .iter()
        .filter(|(_, usable)| !*usable)
        .map(|(p, _)| p)
        .collect();
    if !peaks.is_empty() {
        output::result(&format!(
            "  machine roofs: {} entr{} ({} from other measuring code)",
            peaks.len(),
            if peaks.len() == 1 { "y" } else { "ies" },
            stale_peaks.len()
        ));
    }
    if !prune {
        return Ok(());
    }
    // Everything is checked (every pipeline loads and plans) before anything is removed.
    // Every pipeline of the project counts, so pruning for one pipeline never drops another's points.
    let mut referenced = BTreeSet::new();
    // Entries measured on another machine (other device, threads or libtorch) of a point a pipeline still lists.
    let mut portable = BTreeSet::new();
    let mut measured_models = BTreeSet::new();
    let dir = root.join("pipelines");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(std::result::Result::ok)
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let pipelines: Vec<&std::path::PathBuf> = files
        .iter()
        .filter(|f| f.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    if pipelines.is_empty() {
        return Err(Error::Refused {
            step: "cache --prune".into(),
            message: format!(
                "not pruning: `{}` holds no pipeline, so every entry would look unused",
                shown(&root, &dir)
            ),
        });
    }
    for file in pipelines {
        match Pipeline::load(file).and_then(|p| plan(&p, &[], &Force::default())) {
            Ok(plan) => {
                for step in &plan.steps {
                    if let Some(bench) =
                        step.work
                            .as_any()
                            .downcast_ref::<crate::pipeline::kinds::bench::plan::BenchPlan>()
                    {
                        measured_models.insert(bench.bench.model.name.clone());
                    }
                    for (hash, key) in step.work.cache_points() {
                        portable.insert(portable_fields(&key.fields()));
                        referenced.insert(hash);
                    }
                }
            }
            Err(e) => {
                // An unreadable pipeline could reference anything: refuse to prune rather than lose its points.
                return Err(Error::Refused {
                    step: "cache --prune".into(),
                    message: format!(
                        "not pruning: pipeline `{}` does not load: {e}",
                        shown(&root, file)
                    ),
                });
            }
        }
    }
    // What goes: entries no pipeline plans (named by model and point), roofs of other measuring code, and
    // e3pipe's own results of models no pipeline measures (the original tool's files are never touched).
    let mut doomed: Vec<(std::path::PathBuf, String)> = Vec::new();
    for (path, entry) in &entries {
        let hash = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let elsewhere = entry
            .as_ref()
            .is_some_and(|e| portable.contains(&portable_fields(&e.key)));
        if !referenced.contains(&hash) && !elsewhere {
            let name = entry.as_ref().map_or_else(
                || format!("unreadable entry {}", shown(&root, path)),
                |e| {
                    format!(
                        "point {}@{}×b{} ({}…)",
                        e.result.model,
                        e.result.context_length,
                        e.result.batch_size,
                        hash.chars().take(12).collect::<String>()
                    )
                },
            );
            doomed.push((path.clone(), name));
        }
    }
    for path in &stale_peaks {
        doomed.push((
            (*path).clone(),
            format!("roof of other measuring code {}", shown(&root, path)),
        ));
    }
    for (path, model) in own_documents(&root.join(crate::paths::LATEST_DIR)) {
        if !measured_models.contains(&model) {
            doomed.push((
                path.clone(),
                format!(
                    "results of `{model}`, which no pipeline measures: {}",
                    shown(&root, &path)
                ),
            ));
        }
    }
    let verb = if dry_run { "would remove" } else { "removed" };
    let mut removed = 0;
    for (path, name) in &doomed {
        if dry_run || std::fs::remove_file(path).is_ok() {
            removed += 1;
            output::result(&format!("  {verb} {name}"));
        }
    }
    output::result(&format!(
        "{} {removed} file(s) no pipeline needs{}",
        if dry_run { "would prune" } else { "pruned" },
        if dry_run {
            " (dry run: nothing removed)"
        } else {
            ""
        }
    ));
    Ok(())
}

/// The project a path names: a folder is the project; a file is in `<project>/pipelines/` or the project itself.
pub fn project_of(path: &Path) -> Result<std::path::PathBuf> {
    let meta = std::fs::metadata(path).map_err(|e| Error::BadValue {
        path: path.into(),
        field: "PROJECT".into(),
        message: format!("cannot be read ({e}); give the project folder (`e3pipe cache .`)"),
    })?;
    Ok(if meta.is_dir() {
        path.to_path_buf()
    } else {
        crate::pipeline::spec::project_root(path)
    })
}

/// e3pipe's own documents in `latest/inference/` (they carry `schema_version`), with their model.
fn own_documents(dir: &Path) -> Vec<(std::path::PathBuf, String)> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(std::path::PathBuf, String)> = read
        .filter_map(std::result::Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p| {
            let doc: serde_json::Value =
                serde_json::from_slice(&crate::fsio::read_own(&p).ok()?).ok()?;
            doc.get("schema_version")?;
            let model = doc.get("model")?.as_str()?.to_string();
            Some((p, model))
        })
        .collect();
    out.sort();
    out
}

/// A path as the project names it (relative to its root).
fn shown(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Bytes for people: `812 B`, `4.2 KiB`, `1.3 GiB`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A key's fields without those that name the machine, as one comparable string.
fn portable_fields(fields: &serde_json::Map<String, serde_json::Value>) -> String {
    let mut f = fields.clone();
    for machine in ["device", "threads", "libtorch"] {
        f.remove(machine);
    }
    serde_json::Value::Object(f).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn bytes_read_in_binary_units() {
        assert_eq!(super::human_bytes(0), "0 B");
        assert_eq!(super::human_bytes(1023), "1023 B");
        assert_eq!(super::human_bytes(1536), "1.5 KiB");
        assert_eq!(super::human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
        assert_eq!(super::human_bytes(u64::MAX), "16777216.0 TiB");
    }
}
