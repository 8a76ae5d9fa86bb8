//! Records which libtorch this build targets, without linking it (only the `e3pipe-worker` crate links libtorch):
//! its version goes into results and cache keys, its folder tells whether the CUDA libraries are installed. Also the
//! hashes of the assets the worker embeds (tokenizers, prompt text), for cache keys; and the identity of the
//! measuring code (`E3PIPE_METHOD_ID`).
use std::path::{Path, PathBuf};

/// Crates whose code runs inside the timed region (their versions come from Cargo.lock).
const MEASURED_CRATES: &[&str] = &["tch", "torch-sys", "tokenizers"];

fn files_under(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map(|d| {
                d.filter_map(std::result::Result::ok)
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default();
        entries.sort();
        for e in entries {
            files_under(&e, out);
        }
    } else if path.is_file() {
        out.push(path.to_path_buf());
    }
}

// The text of code that identities hash; shared with the library, whose unit tests pin its rules.
#[allow(unreachable_pub)] // `pub` for the library, which re-exports it
#[path = "src/method_text.rs"]
mod method_text;
use method_text::{MEASURED_PATHS, measured, normalised};

fn method_id() -> String {
    let mut hasher = blake3::Hasher::new();
    let mut files = Vec::new();
    for p in MEASURED_PATHS {
        println!("cargo:rerun-if-changed={p}");
        files_under(Path::new(p), &mut files);
    }
    files.retain(|f| measured(&f.display().to_string()));
    for f in &files {
        hasher.update(f.display().to_string().as_bytes());
        hasher.update(b"\0");
        hasher.update(
            normalised(&String::from_utf8_lossy(
                &std::fs::read(f).unwrap_or_default(),
            ))
            .as_bytes(),
        );
        hasher.update(b"\0");
    }
    // The crates on the timed path, at their locked versions.
    println!("cargo:rerun-if-changed=Cargo.lock");
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    for block in lock.split("[[package]]") {
        if MEASURED_CRATES
            .iter()
            .any(|c| block.contains(&format!("name = \"{c}\"\n")))
        {
            hasher.update(block.trim().as_bytes());
        }
    }
    // How the worker is compiled: the profiles and the compiler.
    println!("cargo:rerun-if-changed=Cargo.toml");
    let manifest = std::fs::read_to_string("Cargo.toml").unwrap_or_default();
    // Only the profile settings that change how measured code is compiled: a profile's own section and the
    // per-package sections of the measured crates (not, say, the YAML parser's).
    let mut in_profile = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            let section = line.trim_matches(|c| c == '[' || c == ']');
            in_profile = section.starts_with("profile.")
                && match section.split_once(".package.") {
                    None => true,
                    Some((_, package)) => {
                        let package = package.trim_matches('"');
                        package == "*"
                            || package == "e3pipe-worker"
                            || MEASURED_CRATES.contains(&package)
                    }
                };
        }
        if in_profile && !line.is_empty() && !line.starts_with('#') {
            hasher.update(line.as_bytes());
        }
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    if let Ok(out) = std::process::Command::new(rustc).arg("-V").output() {
        hasher.update(&out.stdout);
    }
    hasher.update(std::env::var("PROFILE").unwrap_or_default().as_bytes());
    hasher.finalize().to_hex().to_string()
}

/// The code that writes a bench step's results document (the writer and the results schema): a change rewrites
/// every document on the next run. A path here that does not exist fails the build, so a moved file cannot
/// silently drop out of the identity.
fn document_id() -> String {
    const WRITER: &str = "src/pipeline/kinds/bench/results_file.rs";
    // The summaries it publishes are derived again from the stored samples (`bench::stats`).
    const STATISTICS: &str = "src/bench/stats.rs";
    let mut files = vec![
        std::path::PathBuf::from(WRITER),
        std::path::PathBuf::from(STATISTICS),
    ];
    println!("cargo:rerun-if-changed={STATISTICS}");
    files_under(Path::new("src/results"), &mut files);
    println!("cargo:rerun-if-changed={WRITER}");
    println!("cargo:rerun-if-changed=src/results");
    let mut hasher = blake3::Hasher::new();
    for f in &files {
        let text = std::fs::read_to_string(f)
            .unwrap_or_else(|e| panic!("build.rs: cannot read `{}`: {e}", f.display()));
        hasher.update(f.display().to_string().as_bytes());
        hasher.update(normalised(&text).as_bytes());
    }
    hasher.finalize().to_hex().to_string()
}

/// The code that derives tables and figures (`src/report/`, and `src/results/` that reads their inputs): a change rebuilds them on the next run even when their
/// inputs are unchanged.
fn report_id() -> String {
    let mut files = Vec::new();
    for dir in ["src/report", "src/results"] {
        println!("cargo:rerun-if-changed={dir}");
        files_under(Path::new(dir), &mut files);
    }
    let mut hasher = blake3::Hasher::new();
    for f in &files {
        hasher.update(f.display().to_string().as_bytes());
        hasher.update(normalised(&std::fs::read_to_string(f).unwrap_or_default()).as_bytes());
    }
    hasher.update(env!("CARGO_PKG_VERSION").as_bytes());
    hasher.finalize().to_hex().to_string()
}

fn main() {
    println!("cargo:rustc-env=E3PIPE_METHOD_ID={}", method_id());
    println!("cargo:rustc-env=E3PIPE_REPORT_ID={}", report_id());
    println!("cargo:rustc-env=E3PIPE_DOCUMENT_ID={}", document_id());
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let dir = std::env::var("LIBTORCH").unwrap_or_default();
    let dir = std::fs::canonicalize(&dir)
        .map(|p| p.display().to_string())
        .unwrap_or(dir);
    let version_py = std::path::Path::new(&dir).join("version.py");
    println!("cargo:rerun-if-changed={}", version_py.display());
    let version = std::fs::read_to_string(&version_py)
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                l.strip_prefix("__version__ = ")
                    .map(|v| v.trim_matches(|c| c == '\'' || c == '"').to_string())
            })
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=E3PIPE_LIBTORCH_DIR={dir}");
    // The measuring worker embeds these files; their hashes go into cache keys, so rebuilding a tokenizer or
    // editing the prompt text recomputes the points they affect.
    for (var, file) in [
        (
            "E3PIPE_TOKENIZER_DECODER",
            "assets/tokenizers/gpt2/tokenizer.json",
        ),
        (
            "E3PIPE_TOKENIZER_ENCODER",
            "assets/tokenizers/bert/tokenizer.json",
        ),
        (
            "E3PIPE_TOKENIZER_ENCODER_DECODER",
            "assets/tokenizers/t5/tokenizer.json",
        ),
        ("E3PIPE_CORPUS", "assets/text/corpus.txt"),
    ] {
        println!("cargo:rerun-if-changed={file}");
        let hash = std::fs::read(file).map_or_else(
            |_| "missing".into(),
            |b| blake3::hash(&b).to_hex().to_string(),
        );
        println!("cargo:rustc-env={var}_BLAKE3={hash}");
    }
    println!("cargo:rustc-env=E3PIPE_LIBTORCH_VERSION={version}");
}
