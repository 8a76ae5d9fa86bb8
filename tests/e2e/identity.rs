//! What measured a point: the loaded libtorch (its own `version.py`), in every point, in its key and in
//! `e3pipe identify`; CUDA found by loading `libtorch_cuda.so`, or an error that shows the loader's message.

use std::path::{Path, PathBuf};

use crate::project::{Project, point};

/// The libtorch this build runs with, as `identify` reports it: (directory, version).
fn real_libtorch(p: &Project) -> (PathBuf, String) {
    let out = p.run(&["identify", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let id: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    (
        PathBuf::from(id["libtorch_dir"].as_str().unwrap()),
        id["libtorch_version"].as_str().unwrap().to_string(),
    )
}

/// An install at `at` (`…/site-packages/torch`) that is `real`'s libraries under another `version.py`; `without`: a
/// library left out. The wheel's CUDA runtime libraries sit beside it (`../nvidia`), where libtorch's own RPATH
/// looks for them.
fn install(at: &Path, real: &Path, version: &str, without: Option<&str>) {
    std::fs::create_dir_all(at.join("lib")).unwrap();
    let nvidia = real.join("../nvidia");
    if nvidia.exists() {
        std::os::unix::fs::symlink(nvidia, at.join("../nvidia")).unwrap();
    }
    for entry in std::fs::read_dir(real.join("lib")).unwrap() {
        let entry = entry.unwrap();
        if Some(entry.file_name().to_string_lossy().as_ref()) != without {
            std::os::unix::fs::symlink(entry.path(), at.join("lib").join(entry.file_name()))
                .unwrap();
        }
    }
    std::fs::write(
        at.join("version.py"),
        format!("__version__ = '{version}'\ncuda: Optional[str] = '12.8'\n"),
    )
    .unwrap();
}

#[test]
fn the_loaded_libtorch_is_recorded_in_every_point_its_key_and_identify() {
    let p = Project::bert("[32, 64]", "");
    let (real, version) = real_libtorch(&p);
    let release = version.split('+').next().unwrap();
    // A node's install of the same release, built for another CUDA (what `pip install torch` gives there).
    let node = p.path("node/site-packages/torch");
    let node_version = format!("{release}+cu128");
    install(&node, &real, &node_version, None);

    let out = p
        .command(&["identify", "--format", "json"])
        .env("E3PIPE_LIBTORCH", &node)
        .output()
        .unwrap();
    let id: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(id["libtorch_version"], node_version.as_str(), "{id:#}");
    assert_eq!(id["libtorch_dir"], node.display().to_string(), "{id:#}");
    assert_eq!(
        id["device"].as_str().unwrap().split(' ').next(),
        Some("cpu")
    );
    assert!(
        id["cpu"]["model_name"].is_string() && id["threads"].as_u64() > Some(0),
        "{id:#}"
    );
    let text = p
        .command(&["identify"])
        .env("E3PIPE_LIBTORCH", &node)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    let line = |name: &str| {
        text.lines().find(|l| l.starts_with(name)).map_or_else(
            || panic!("no `{name}` in {text}"),
            |l| l[name.len()..].trim().to_string(),
        )
    };
    assert!(
        line("libtorch").starts_with(&format!("{node_version} (")),
        "{text}"
    );
    assert_eq!(
        line("cuda backend"),
        "not loaded: `E3PIPE_NO_CUDA` is set",
        "{text}"
    );

    let run = crate::project::to_run(
        p.command(&["run", "pipelines/p.yaml"])
            .env("E3PIPE_LIBTORCH", &node)
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(run.points(), (2, 0, 0, 0));
    let doc = p.results("bert-tiny");
    for length in [32, 64] {
        assert_eq!(
            point(&doc, length)["libtorch_version"],
            node_version.as_str()
        );
        assert_eq!(point(&doc, length)["hardware"]["kind"], "cpu");
    }
    for entry in p.cache_entries() {
        let e: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(entry).unwrap()).unwrap();
        assert_eq!(e["key"]["libtorch"], node_version.as_str(), "{e:#}");
    }
    // The build's own install is another libtorch: its points are other points.
    let run = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(run.points(), (2, 0, 0, 0), "{}", run.all());
    assert_eq!(
        point(&p.results("bert-tiny"), 32)["libtorch_version"],
        version.as_str()
    );
    // And back: both sets are cached.
    let again = crate::project::to_run(
        p.command(&["run", "pipelines/p.yaml"])
            .env("E3PIPE_LIBTORCH", &node)
            .output()
            .unwrap(),
    );
    assert_eq!(again.points(), (0, 2, 0, 0), "{}", again.all());
}

#[test]
fn cuda_where_libtorch_cuda_does_not_load_is_an_error_with_the_loaders_message() {
    let p = Project::bert("[32]", "");
    let (real, version) = real_libtorch(&p);
    let cpu_only = p.path("cpu-only/site-packages/torch");
    install(&cpu_only, &real, &version, Some("libtorch_cuda.so"));
    p.write(
        "configs/model/bert.yaml",
        &format!("{}device: cuda\n", crate::project::BERT_TINY),
    );
    let refused = |args: &[&str]| {
        crate::project::to_run(
            p.command(args)
                .env("E3PIPE_LIBTORCH", &cpu_only)
                .env_remove("E3PIPE_NO_CUDA")
                .output()
                .unwrap(),
        )
    };
    for args in [
        &["run", "pipelines/p.yaml"][..],
        &["identify", "--device", "cuda"][..],
    ] {
        let out = refused(args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.all());
        // dlopen's own words: the missing file, named.
        assert!(
            out.stderr.contains("libtorch's CUDA backend did not load")
                && out
                    .stderr
                    .contains("libtorch_cuda.so: cannot open shared object file"),
            "{args:?}: {}",
            out.stderr
        );
    }
    assert!(!p.path("cache").exists() && !p.path("results").exists());
    // The build's own install (CPU-only here: its CUDA libraries are not installed) says which one is missing.
    let out = crate::project::to_run(
        p.command(&["identify", "--device", "cuda:0", "--format", "json"])
            .env_remove("E3PIPE_NO_CUDA")
            .output()
            .unwrap(),
    );
    let id: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    if id["cuda_loaded"] == false {
        assert_eq!(out.code, 2);
        assert!(
            id["cuda_error"]
                .as_str()
                .unwrap()
                .contains("cannot open shared object file"),
            "{id:#}"
        );
        assert!(
            id["device"].is_null() && id["device_error"].is_string(),
            "{id:#}"
        );
    }
    // `auto` on a machine without an NVIDIA driver measures on the CPU, without asking.
    if !Path::new("/proc/driver/nvidia/version").exists() {
        p.write("configs/model/bert.yaml", crate::project::BERT_TINY);
        let out = refused(&["run", "pipelines/p.yaml"]);
        assert_eq!(out.code, 0, "{}", out.all());
        assert!(!out.stderr.contains("warning"), "{}", out.stderr);
    }
    let bad = p.run(&["identify", "--device", "tpu"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("unknown device `tpu`"),
        "{}",
        bad.stderr
    );
}
