//! Links e3pipe against the libtorch of the `PyPI` torch wheel.
//!
//! 1. RUNPATH: tch's own rpath flags only apply to tch's targets, so without this the binary fails at start-up with
//!    `libtorch_cpu.so: cannot open shared object file`. `torch-sys` is a direct dependency only so that this script
//!    receives `DEP_TCH_LIBTORCH_LIB`.
//! 2. A small shared library reading the CUDA caching allocator's peak (`src/cuda_shim`), loaded at run time only
//!    when CUDA is usable. If it cannot be built, e3pipe still builds and reports GPU peaks as not measured.
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-changed=src/cuda_shim/peak_memory.cpp");
    let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:rustc-env=E3PIPE_LIBTORCH_LIB=");
        println!("cargo:rustc-env=E3PIPE_CUDA_SHIM=");
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    println!("cargo:rustc-env=E3PIPE_LIBTORCH_LIB={lib_dir}");

    let shim = build_cuda_shim(Path::new(&lib_dir)).unwrap_or_else(|why| {
        println!("cargo:warning=GPU peak memory will not be measured: {why}");
        String::new()
    });
    println!("cargo:rustc-env=E3PIPE_CUDA_SHIM={shim}");
}

fn build_cuda_shim(lib_dir: &Path) -> Result<String, String> {
    let torch = lib_dir.parent().ok_or("no torch dir")?;
    let out = PathBuf::from(std::env::var("OUT_DIR").map_err(|e| e.to_string())?)
        .join("libe3pipe_cuda_peak.so");
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let status = Command::new(&cxx)
        .args([
            "-std=c++17",
            "-O2",
            "-shared",
            "-fPIC",
            "-D_GLIBCXX_USE_CXX11_ABI=1",
        ])
        .arg("-I")
        .arg(torch.join("include"))
        .arg("src/cuda_shim/peak_memory.cpp")
        .arg("-o")
        .arg(&out)
        .arg(format!("-L{}", lib_dir.display()))
        .arg("-lc10")
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .status()
        .map_err(|e| format!("cannot run `{cxx}`: {e}"))?;
    if !status.success() {
        return Err(format!("`{cxx}` failed on src/cuda_shim/peak_memory.cpp"));
    }
    Ok(out.display().to_string())
}
