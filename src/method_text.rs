//! The text of measured code that the measuring code's identity (`METHOD_ID`, in `build.rs`) hashes: what can
//! change a measurement, and nothing that cannot, so editing a doc comment, reformatting, or editing a file's unit
//! tests keeps every cached point. Included by `build.rs` (`#[path]`), and a module of the library so that its
//! rules are tested.

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
