//! `figs/report.html`: written by every plot step, self-contained (no script, no URL in any `src` or `href`),
//! escaping what results carry, and rendered by a real headless Chromium with every figure and table row present.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::project::Project;

/// The headless browser: `E3PIPE_CHROMIUM`, else `chromium` on the PATH (`scripts/chromium.sh` installs it).
fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("E3PIPE_CHROMIUM") {
        return PathBuf::from(p);
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(out) = Command::new("which").arg(name).output()
            && out.status.success()
        {
            return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        }
    }
    panic!("no chromium: run scripts/chromium.sh (make test does) or set E3PIPE_CHROMIUM");
}

/// Runs headless Chromium on `page` with `args`; returns (stdout, stderr).
fn browse(page: &Path, args: &[&str]) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every `src="…"` or `href="…"` value in `html`.
fn links(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=", "href="] {
        for (i, _) in html.match_indices(attr) {
            let rest = &html[i + attr.len()..];
            out.push(
                rest.chars()
                    .take_while(|c| !c.is_whitespace() && *c != '>')
                    .collect(),
            );
        }
    }
    out
}

const HOSTILE: &str = r#"{"exp_id": "inference_scaling_20251111_120000", "config": {"model": {"name": "<script>alert(1)</script>", "arch": "decoder"}},
  "metrics": {"128": {"first_token_latency_ms": 5.0, "latency_std_ms": 0.2, "max_memory_gb": 0.3},
              "256": {"first_token_latency_ms": 9.0, "latency_std_ms": 0.3, "max_memory_gb": 0.4},
              "512": {"status": "error", "reason": "<img src=x onerror=alert(2)> crashed"}}}"#;

#[test]
fn the_report_is_one_self_contained_page_that_chromium_renders_whole() {
    let p = Project::new();
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    // A file from elsewhere whose model name and reason are markup.
    p.write("latest/inference/hostile.json", HOSTILE);
    p.write("pipelines/report.yaml", "steps:\n  - name: aggregate\n    kind: aggregate\n  - name: plot\n    kind: plot\n    needs: [aggregate]\n");
    let r = p.run(&["run", "pipelines/report.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stderr.contains("figs/report.html"), "{}", r.stderr);
    let html = p.read("figs/report.html");
    // Self-contained: one inline script (the table sorting), nothing fetched from anywhere.
    assert_eq!(
        html.to_lowercase().matches("<script").count(),
        1,
        "one script"
    );
    assert!(html.contains("<script>document.querySelectorAll('table.sortable')"));
    for link in links(&html) {
        assert!(
            !link.trim_matches(['"', '\'']).starts_with("http"),
            "a URL in src/href: {link}"
        );
    }
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("&lt;img src=x onerror=alert(2)&gt; crashed"));
    // Five figures: `batch_tradeoff` compares batch sizes, and this sweep has one.
    assert_eq!(html.matches("<svg ").count(), 5, "five inline figures");
    assert!(!p.path("figs/batch_tradeoff.png").exists() && !html.contains("fig-batch_tradeoff"));
    // The story on top: the header (what, on what, when, headline numbers) and the table of contents before
    // the first figure.
    let first_figure = html.find("<figure").unwrap();
    for part in [
        "<header id=\"top\">",
        "on cpu (",
        "fp32",
        "libtorch 2.",
        "measured until 20",
        "id=\"headline\"",
        "<nav id=\"contents\">",
        "href=\"#fig-latency_curve\"",
        "href=\"#results\"",
        "id=\"warnings\"",
    ] {
        let at = html.find(part).unwrap_or_else(|| panic!("{part} missing"));
        assert!(at < first_figure, "{part} after the first figure");
    }
    // A hover title per drawn point: 3 tiny models × 2 lengths + the file's 2 + its failed length, in the latency
    // panel alone.
    assert!(html.matches("<title>").count() > 9 + 1, "hover titles");
    assert!(html.len() < 2_000_000, "{} bytes", html.len());

    // In a real browser: the DOM holds every figure, every table row, the hostile name as text; no console errors.
    let page = p.path("figs/report.html");
    let (dom, log) = browse(&page, &["--dump-dom"]);
    for id in [
        "top",
        "contents",
        "headline",
        "warnings",
        "fig-latency_curve",
        "fig-ttft_tbt_curves",
        "fig-inference_performance",
        "fig-inference_memory_tradeoff",
        "fig-roofline",
        "results-table",
        "fit-table",
        "measured-with",
    ] {
        assert!(
            dom.contains(&format!("id=\"{id}\"")),
            "{id} missing from the rendered DOM"
        );
    }
    let csv = p.read("tables/inference_results.csv");
    let body = dom
        .split("id=\"results-table\"")
        .nth(1)
        .unwrap()
        .split("</tbody>")
        .next()
        .unwrap();
    assert_eq!(
        body.matches("<tr").count() - 1,
        csv.lines().count() - 1,
        "a table row per point"
    );
    assert!(
        dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the name renders as text"
    );
    assert!(!dom.contains("<script>alert(1)"));
    let console: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .collect();
    assert!(console.is_empty(), "console: {console:?}");
    // A click on a column header sorts the rows in the browser, by the number, and a second click reverses.
    let clicked = p.path("figs/clicked.html");
    std::fs::write(
        &clicked,
        html.replace(
            "</body>",
            "<script>var t=document.getElementById('results-table'),h=t.tHead.rows[0].cells[5];var col=function(){return [].map.call(t.tBodies[0].rows,function(r){return r.cells[5].getAttribute('data-v')||''}).join(',')};document.body.setAttribute('data-before',col());h.click();document.body.setAttribute('data-first',col());h.click();document.body.setAttribute('data-second',col());</script></body>",
        ),
    )
    .unwrap();
    let (dom, log) = browse(&clicked, &["--dump-dom"]);
    assert!(!log.contains("Uncaught"), "{log}");
    let order = |attr: &str| -> Vec<f64> {
        let at = dom
            .find(&format!("{attr}=\""))
            .unwrap_or_else(|| panic!("no {attr} in the DOM"))
            + attr.len()
            + 2;
        dom[at..]
            .split('"')
            .next()
            .unwrap()
            .split(',')
            .filter(|v| !v.is_empty())
            .map(|v| v.parse().unwrap())
            .collect()
    };
    let (before, first, second) = (
        order("data-before"),
        order("data-first"),
        order("data-second"),
    );
    assert!(first.len() >= 6 && first.len() == before.len(), "{first:?}");
    assert!(
        first.windows(2).all(|w| w[0] <= w[1]),
        "ascending after one click: {first:?}"
    );
    assert!(
        second.windows(2).all(|w| w[0] >= w[1]),
        "descending after two: {second:?}"
    );
    assert_ne!(before, first, "the click changed the order");
    assert!(dom.contains("aria-sort=\"descending\""));
    // And it draws: a screenshot that is not blank.
    let shot = p.path("report.png");
    browse(
        &page,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1400,1800",
        ],
    );
    let img = image::open(&shot).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (1400, 1800));
    let inked = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
    assert!(inked > 50_000, "{inked} non-white pixels");
}
