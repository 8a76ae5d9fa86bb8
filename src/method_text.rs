//! The text of measured code that the measuring code's identity (`METHOD_ID`, in `build.rs`) hashes: what can
//! change a measurement, and nothing that cannot, so editing a doc comment, reformatting, a file's unit tests, the
//! worker's job glue or the summary statistics keeps every cached point. Included by `build.rs` (`#[path]`), and a
//! module of the library so that its rules are tested.
//!
//! How it is enforced: `MEASURED_PATHS` names folders and files; every file under a measured folder is measured
//! unless `NOT_MEASURED` names it with the reason, and a test fails on a name there that does not exist (a moved
//! file cannot silently leave the identity) and on a glue file that runs a model or waits for a device.

/// The sources on the measured path: everything the worker runs between loading a model and finishing a point, and
/// the inputs it builds.
pub const MEASURED_PATHS: &[&str] = &[
    "worker/src",
    "worker/build.rs",
    "worker/Cargo.toml",
    "src/bench/interval.rs",
    "src/bench/stopping.rs",
    "src/bench/memory.rs",
    "src/bench/result.rs",
];

/// Files under `MEASURED_PATHS` that cannot change a measurement, and why.
pub const NOT_MEASURED: &[(&str, &str)] = &[
    ("worker/src/main.rs", "the binary's entry point"),
    ("worker/src/lib.rs", "module declarations"),
    (
        "worker/src/run.rs",
        "job glue: reads the job, takes locks, loads the model through `models`, calls `runner::prepare` and \
         `runner::measure_point`, caches and reports each point, runs Slurm array tasks",
    ),
    (
        "worker/src/bench/peaks.rs",
        "the machine's roof: measured again in every run that measures points, and keyed apart",
    ),
];

/// Whether `path` (as `build.rs` lists it) is hashed into the method identity.
pub fn measured(path: &str) -> bool {
    !NOT_MEASURED.iter().any(|(p, _)| *p == path)
}

/// Code with comment-only lines, blank lines and indentation dropped, and without the file's unit tests: everything
/// from a `#[cfg(test)]` whose item is `mod tests` (this project's convention puts it last in a file). A test-only
/// item anywhere else is kept.
pub fn normalised(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let end = (0..lines.len())
        .find(|&i| {
            lines[i] == "#[cfg(test)]"
                && lines[i + 1..]
                    .iter()
                    .find(|l| !l.starts_with("#["))
                    .is_some_and(|l| l.starts_with("mod tests"))
        })
        .unwrap_or(lines.len());
    lines[..end]
        .iter()
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
        .copied()
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_excluded_file_exists_and_glue_times_nothing() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for (path, why) in NOT_MEASURED {
            assert!(!why.is_empty());
            assert!(
                MEASURED_PATHS.iter().any(|m| path.starts_with(m)),
                "`{path}` is not under a measured path"
            );
            let text = std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| {
                panic!("`{path}` is excluded from the method but unreadable: {e}")
            });
            if *path == "worker/src/bench/peaks.rs" {
                continue; // times its own matmuls, for the roof only
            }
            // Glue runs no model and waits for no device itself: that is `runner`'s, inside its clocks.
            let code = normalised(&text);
            for forbidden in [
                ".prefill(",
                ".encode(",
                ".step(",
                "synchronize(",
                "run_once(",
            ] {
                assert!(
                    !code.contains(forbidden),
                    "`{path}` is excluded from the method but contains `{forbidden}`"
                );
            }
        }
        assert!(measured("worker/src/bench/runner.rs"));
        assert!(!measured("worker/src/run.rs"));
    }

    const CODE: &str = "//! Doc.\nfn f() -> u32 {\n    1\n}\n";

    #[test]
    fn tests_comments_and_layout_are_not_measured_code() {
        let base = normalised(CODE);
        assert_eq!(base, "fn f() -> u32 {\n1\n}");
        // Reindented, recommented: the same.
        assert_eq!(
            normalised("//! Other doc.\n\nfn f() -> u32 {\n        1 \n}\n"),
            base
        );
        // Its unit tests, whatever they say: the same.
        let tested = |body: &str| {
            format!(
                "{CODE}\n#[cfg(test)]\n#[allow(clippy::float_cmp)]\nmod tests {{\n    {body}\n}}\n"
            )
        };
        assert_eq!(normalised(&tested("fn a() {}")), base);
        assert_eq!(normalised(&tested("fn b() { assert!(true) }")), base);
        // The code itself: another identity.
        assert_ne!(normalised("fn f() -> u32 {\n    2\n}\n"), base);
        // A test-only item that is not the tests module ends nothing: the code after it counts.
        let helper = "#[cfg(test)]\nfn helper() {}\nfn g() {}\n";
        assert!(normalised(helper).contains("fn g() {}"));
    }
}
