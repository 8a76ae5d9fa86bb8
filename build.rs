//! Gives the e3pipe binary and its tests a RUNPATH to libtorch.
//!
//! tch's own rpath flags only apply to tch's targets, so without this the binary fails at start-up with
//! `libtorch_cpu.so: cannot open shared object file`. `torch-sys` is a direct dependency only so that this script
//! receives `DEP_TCH_LIBTORCH_LIB`.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
        println!("cargo:rustc-env=E3PIPE_LIBTORCH_LIB={lib_dir}");
        // The wheel's `torch/version.py` sits beside `lib/`; results and cache keys record it.
        let version_py = std::path::Path::new(&lib_dir).join("../version.py");
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
        println!("cargo:rustc-env=E3PIPE_LIBTORCH_VERSION={version}");
    } else {
        println!("cargo:rustc-env=E3PIPE_LIBTORCH_LIB=");
        println!("cargo:rustc-env=E3PIPE_LIBTORCH_VERSION=unknown");
    }
}
