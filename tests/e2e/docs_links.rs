//! The documentation holds together: every relative link in README.md, CONTRIBUTING.md and docs/*.md names a file
//! that exists and, with `#anchor`, a heading in it; the README stays short (two layers: README, then docs/).

use std::path::{Path, PathBuf};

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == ' ' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn headings(text: &str) -> Vec<String> {
    let mut fenced = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        }
        if !fenced && line.starts_with('#') {
            out.push(slug(line.trim_start_matches('#')));
        }
    }
    out
}

/// Every `](target)` outside code fences.
fn links(text: &str) -> Vec<String> {
    let mut fenced = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        for (i, _) in line.match_indices("](") {
            let rest = &line[i + 2..];
            if let Some(end) = rest.find(')') {
                out.push(rest[..end].to_string());
            }
        }
    }
    out
}

#[test]
fn every_link_in_the_docs_resolves_and_the_readme_is_short() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages: Vec<PathBuf> = vec![root.join("README.md"), root.join("CONTRIBUTING.md")];
    pages.extend(
        std::fs::read_dir(root.join("docs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "md")),
    );
    assert!(pages.len() >= 9, "the docs pages: {pages:?}");
    let mut checked = 0;
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        for link in links(&text) {
            if link.starts_with("http://")
                || link.starts_with("https://")
                || link.starts_with("mailto:")
            {
                continue;
            }
            let (path, anchor) = match link.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (link.as_str(), None),
            };
            let target = if path.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(path)
            };
            assert!(
                target.exists(),
                "{}: `{link}` names no file",
                page.display()
            );
            if let Some(anchor) = anchor {
                let target_text = std::fs::read_to_string(&target).unwrap();
                assert!(
                    headings(&target_text).iter().any(|h| h == anchor),
                    "{}: `{link}`: no heading `#{anchor}` in {}",
                    page.display(),
                    target.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 40, "only {checked} links");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        readme.lines().count() <= 200,
        "README has {} lines",
        readme.lines().count()
    );
    // The two commands a newcomer runs, and the headline figure.
    assert!(readme.contains("make run ") && readme.contains("make test "));
    assert!(readme.contains("](docs/latency_curve.png)"));
}

#[test]
fn anchors_are_made_as_github_makes_them() {
    assert_eq!(
        slug(" Batch size × context length"),
        "batch-size--context-length"
    );
    assert_eq!(slug(" Running on a GPU node"), "running-on-a-gpu-node");
    assert_eq!(
        slug(" Compare, history, baselines"),
        "compare-history-baselines"
    );
}
