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

pub fn run(pipeline_file: &Path, prune: bool) -> Result<()> {
    let pipeline = Pipeline::load(pipeline_file)?;
    let store = Store::new(&pipeline.root);
    let entries = store.entries();
    let total_bytes: u64 = entries
        .iter()
        .filter_map(|(p, _)| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let mut per_model: BTreeMap<String, usize> = BTreeMap::new();
    let mut unreadable = 0;
    for (_, entry) in &entries {
        match entry {
            Some(e) => *per_model.entry(e.result.model.clone()).or_default() += 1,
            None => unreadable += 1,
        }
    }
    output::result(&format!(
        "cache {}: {} entries, {} bytes",
        store.dir.display(),
        entries.len(),
        total_bytes
    ));
    for (model, n) in &per_model {
        output::result(&format!("  {model}: {n} point(s)"));
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
            "  machine peaks: {} entr{} ({} from other measuring code)",
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
    let dir = pipeline.root.join("pipelines");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(std::result::Result::ok)
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    if !files.contains(&pipeline.file) {
        files.push(pipeline.file.clone());
    }
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|x| x == "yaml" || x == "yml"))
    {
        match Pipeline::load(file).and_then(|p| plan(&p, &[], &Force::default())) {
            Ok(plan) => {
                for (hash, key) in plan.steps.iter().flat_map(|s| s.work.cache_points()) {
                    portable.insert(portable_fields(&key.fields()));
                    referenced.insert(hash);
                }
            }
            Err(e) => {
                // An unreadable pipeline could reference anything: refuse to prune rather than lose its points.
                return Err(Error::Refused {
                    step: "cache --prune".into(),
                    message: format!(
                        "not pruning: pipeline `{}` does not load: {e}",
                        file.display()
                    ),
                });
            }
        }
    }
    for path in &stale_peaks {
        let _ = std::fs::remove_file(path);
    }
    let mut removed = 0;
    for (path, entry) in &entries {
        let hash = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let elsewhere = entry
            .as_ref()
            .is_some_and(|e| portable.contains(&portable_fields(&e.key)));
        if !referenced.contains(&hash) && !elsewhere && std::fs::remove_file(path).is_ok() {
            removed += 1;
        }
    }
    output::result(&format!(
        "pruned {removed} entr{} no pipeline references",
        if removed == 1 { "y" } else { "ies" }
    ));
    Ok(())
}

/// A key's fields without those that name the machine, as one comparable string.
fn portable_fields(fields: &serde_json::Map<String, serde_json::Value>) -> String {
    let mut f = fields.clone();
    for machine in ["device", "threads", "libtorch"] {
        f.remove(machine);
    }
    serde_json::Value::Object(f).to_string()
}
