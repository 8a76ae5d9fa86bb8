//! Records which libtorch this build targets, without linking it (only the `e3pipe-worker` crate links libtorch):
//! its version goes into results and cache keys, its folder tells whether the CUDA libraries are installed.
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
    println!("cargo:rustc-env=E3PIPE_LIBTORCH_VERSION={version}");
}
