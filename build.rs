//! Records which libtorch this build targets, without linking it (only the `e3pipe-worker` crate links libtorch):
//! its version goes into results and cache keys, its folder tells whether the CUDA libraries are installed. Also the
//! hashes of the assets the worker embeds (tokenizers, prompt text), for cache keys.
fn main() {
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
        let hash = std::fs::read(file)
            .map(|b| blake3::hash(&b).to_hex().to_string())
            .unwrap_or_else(|_| "missing".into());
        println!("cargo:rustc-env={var}_BLAKE3={hash}");
    }
    println!("cargo:rustc-env=E3PIPE_LIBTORCH_VERSION={version}");
}
