//! The user's own figures: a plot step's `figures:` drawn as PNG + SVG and shown in the report; a bad spec is
//! refused before anything is written.

use crate::project::{Project, THREE_MODELS};

const FIGURES: &str = "    figures:
      - name: tbt_by_length
        x: context_length
        y: tbt_ms
        log_x: true
      - name: latency_by_arch
        x: context_length
        y: latency_ms
        color: model
        facet: arch
        log_y: true
";

#[test]
fn a_figures_spec_is_drawn_and_shown_in_the_report() {
    let p = Project::new();
    p.write("pipelines/p.yaml", &format!("{THREE_MODELS}{FIGURES}"));
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stderr.contains("and 6 more figures"), "{}", r.stderr);
    for name in ["tbt_by_length", "latency_by_arch"] {
        let png = image::open(p.path(&format!("figs/{name}.png")))
            .unwrap()
            .to_rgb8();
        let inked = png.pixels().filter(|px| px.0 != [255, 255, 255]).count();
        assert!(inked > 5_000, "{name}: {inked} inked pixels");
    }
    // TBT exists for the generators only: their two legend entries, in the models' markers' words.
    let svg = p.read("figs/tbt_by_length.svg");
    assert!(
        svg.contains("gpt2-tiny (decoder)") && svg.contains("t5-tiny (encoder-decoder)"),
        "{svg:.300}"
    );
    assert!(!svg.contains("bert-tiny"), "an encoder has no TBT");
    assert!(svg.contains("context_length (log scale)"));
    // A panel per architecture, each model in one of them.
    let svg = p.read("figs/latency_by_arch.svg");
    for panel in ["arch = decoder", "arch = encoder", "arch = encoder-decoder"] {
        assert!(svg.contains(panel), "{panel}");
    }
    let html = p.read("figs/report.html");
    assert!(
        html.contains("id=\"fig-tbt_by_length\"") && html.contains("tbt_ms against context_length")
    );
    // A rerun with the same spec draws nothing; a changed spec draws again.
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert!(r.stderr.contains("figures are up to date"), "{}", r.stderr);
    p.write(
        "pipelines/p.yaml",
        &format!(
            "{THREE_MODELS}{}",
            FIGURES.replace("log_x: true", "log_x: false")
        ),
    );
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert!(
        r.stderr.contains("drew figs/latency_curve.png"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_bad_figures_spec_is_refused_before_anything_is_written() {
    let p = Project::new();
    let cases: [(&str, &str, &[&str]); 7] = [
        (
            "y: tbt_ms",
            "y: tbt_mss",
            &[
                "pipelines/p.yaml:23:9",
                "figures[0].y",
                "did you mean `tbt_ms`?",
            ],
        ),
        ("y: tbt_ms", "y: model", &["`model` is a text column"]),
        (
            "facet: arch",
            "facet: archh",
            &["figures[1].facet", "did you mean `arch`?"],
        ),
        (
            "name: latency_by_arch",
            "name: latency_curve",
            &["a figure e3pipe draws itself"],
        ),
        (
            "name: latency_by_arch",
            "name: tbt_by_length",
            &["names two figures"],
        ),
        (
            "log_y: true",
            "log_yy: true",
            &["unknown key `log_yy`", "did you mean `log_y`?"],
        ),
        (
            "name: latency_by_arch",
            "name: history",
            &["a figure e3pipe draws itself"],
        ),
    ];
    for (from, to, expected) in cases {
        p.write(
            "pipelines/p.yaml",
            &format!("{THREE_MODELS}{}", FIGURES.replace(from, to)),
        );
        let r = p.run(&["run", "pipelines/p.yaml"]);
        assert_eq!(r.code, 2, "{to}: {}", r.all());
        for e in expected {
            assert!(r.stderr.contains(e), "{to}: `{e}` not in {}", r.stderr);
        }
        for out in ["cache", "results", "latest", "tables", "figs"] {
            assert!(!p.path(out).exists(), "{to}: `{out}` written");
        }
    }
    p.write("pipelines/p.yaml", &format!("{THREE_MODELS}    figures:\n      - name: ../escape\n        x: context_length\n        y: tbt_ms\n"));
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("cannot name a file"), "{}", r.stderr);
}
