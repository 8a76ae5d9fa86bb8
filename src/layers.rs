//! The crate's layers, checked: every module may use only modules of a lower layer, so nothing under `bench`,
//! `cache`, `models` or `report` can reach up into `pipeline` or `commands`. A test reads the sources and fails
//! on any `crate::` path that points up or sideways.

/// Top-level modules by layer, lowest first.
const LAYERS: &[&[&str]] = &[
    &["shown_path"],
    &[
        "error",
        "clock",
        "os_path",
        "interrupt",
        "cli",
        "method_text",
        "rerun",
    ],
    &["output", "paths"],
    &["fsio"],
    &["yaml", "file_hash"],
    &["models"],
    &["bench"],
    &["results"],
    &["cache", "report"],
    &["job", "compare"],
    &["pipeline"],
    &["commands"],
];

/// The stages inside `pipeline`, lowest first: a step kind knows nothing of the stages that call it.
const PIPELINE_LAYERS: &[&[&str]] = &[
    &["dag", "worker_process", "executor_config"],
    &["probe", "executor"],
    &["slurm", "kind"],
    &["slurm_identity"],
    &["kinds"],
    &["spec"],
    &["graph"],
    &["plan"],
    &["execute"],
];

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{LAYERS, PIPELINE_LAYERS};

    fn layer(module: &str) -> Option<usize> {
        LAYERS.iter().position(|l| l.contains(&module))
    }

    fn stage(module: &str) -> Option<usize> {
        PIPELINE_LAYERS.iter().position(|l| l.contains(&module))
    }

    /// The module a `crate::`-relative path names: `pipeline::plan::Plan` -> `pipeline`.
    fn first_segment(path: &str) -> String {
        path.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    }

    fn visit(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                visit(&path, files);
            } else if path.extension().is_some_and(|x| x == "rs") {
                files.push(path);
            }
        }
    }

    #[test]
    fn no_module_uses_a_module_of_its_own_or_a_higher_layer() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        visit(&src, &mut files);
        let mut checked = 0;
        let mut violations = Vec::new();
        for file in files {
            let rel = file.strip_prefix(&src).unwrap();
            let top = rel
                .iter()
                .next()
                .unwrap()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string();
            if matches!(top.as_str(), "lib" | "main" | "layers") {
                continue;
            }
            let own = layer(&top).unwrap_or_else(|| panic!("`{top}` is in no layer of `LAYERS`"));
            let text = std::fs::read_to_string(&file).unwrap();
            // Test modules may reach anywhere.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for (at, _) in code.match_indices("crate::") {
                let used = first_segment(&code[at + 7..]);
                checked += 1;
                if used == top {
                    if top == "pipeline" {
                        check_stage(rel, &code[at + 7..], &mut violations);
                    }
                    continue;
                }
                match layer(&used) {
                    Some(l) if l < own => {}
                    _ => violations.push(format!("{} uses `crate::{used}`", rel.display())),
                }
            }
        }
        assert!(
            checked > 100,
            "only {checked} paths found: is the scan broken?"
        );
        assert!(violations.is_empty(), "{violations:#?}");
    }

    /// Inside `pipeline`, a stage uses only lower stages (and itself).
    fn check_stage(file: &Path, path: &str, violations: &mut Vec<String>) {
        let Some(inner) = path.strip_prefix("pipeline::") else {
            return;
        };
        let used = first_segment(inner);
        let own = file
            .iter()
            .nth(1)
            .map(|s| s.to_string_lossy().trim_end_matches(".rs").to_string())
            .unwrap_or_default();
        if own == "mod" || used == own {
            return;
        }
        let (Some(own_stage), Some(used_stage)) = (stage(&own), stage(&used)) else {
            violations.push(format!(
                "{} uses `pipeline::{used}`, in no stage of `PIPELINE_LAYERS`",
                file.display()
            ));
            return;
        };
        if used_stage >= own_stage {
            violations.push(format!("{} uses `pipeline::{used}`", file.display()));
        }
    }
}
