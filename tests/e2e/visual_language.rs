//! One visual language in every figure, read back from the SVGs: colour = model, marker = architecture (triangle
//! decoder, circle encoder-decoder, square encoder), in the plot and in the legend; other distinctions (prefill or
//! decode, on or off the Pareto front) by fill, never by another marker.

use crate::project::{Project, THREE_MODELS};

/// The markers drawn in an SVG's plot area (left of the legend column): (shape, colour, filled).
fn markers(svg: &str) -> Vec<(&'static str, String, bool)> {
    let width: i64 = attr(svg.split('>').next().unwrap(), "width")
        .unwrap()
        .parse()
        .unwrap();
    let legend_x = width - 320;
    let mut out = Vec::new();
    for (tag, body) in ["<polygon ", "<polyline ", "<rect ", "<circle "]
        .iter()
        .flat_map(|t| {
            svg.match_indices(t)
                .map(move |(i, _)| (*t, &svg[i..i + svg[i..].find('>').unwrap()]))
        })
    {
        let fill = attr(body, "fill");
        let stroke = attr(body, "stroke");
        let points_text = attr(body, "points").unwrap_or_default();
        let points: Vec<&str> = points_text.split_whitespace().collect();
        let x = |s: &str| {
            s.split(',')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0) as i64
        };
        let (shape, x_at, filled) = match tag {
            "<polygon " if points.len() == 3 && attr(body, "opacity") == Some("1".into()) => {
                ("triangle", x(points[0]), true)
            }
            "<polyline " if points.len() == 4 && points[0] == points[3] => {
                ("triangle", x(points[0]), false)
            }
            "<rect "
                if attr(body, "width").as_deref() == Some("10")
                    && attr(body, "height").as_deref() == Some("10") =>
            {
                (
                    "square",
                    attr(body, "x").unwrap().parse().unwrap(),
                    fill.as_deref() != Some("none"),
                )
            }
            "<circle " if matches!(attr(body, "r").as_deref(), Some("5" | "6")) => (
                "circle",
                attr(body, "cx").unwrap().parse().unwrap(),
                fill.as_deref() != Some("none"),
            ),
            _ => continue,
        };
        if x_at >= legend_x {
            continue;
        }
        let color = if filled { fill } else { stroke };
        out.push((shape, color.unwrap_or_default(), filled));
    }
    out
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let at = tag.find(&key)? + key.len();
    Some(tag[at..].split('"').next()?.to_string())
}

#[test]
fn every_figure_draws_each_model_in_its_colour_with_its_architectures_marker() {
    let p = Project::new();
    // Two batch sizes, so the batch trade-off is drawn too; and a figure of the user's.
    crate::project::write_benches(&p, "[16, 32]", 3, |t| {
        t.replace("batch_size: 1", "batch_sizes: [1, 2]")
    });
    p.write(
        "pipelines/p.yaml",
        &format!("{THREE_MODELS}    figures:\n      - name: mine\n        x: context_length\n        y: latency_ms\n"),
    );
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    // Models in sorted order take the palette's first colours.
    let models = [
        ("bert-tiny", "encoder", "square", "#1F77B4"),
        ("gpt2-tiny", "decoder", "triangle", "#FF7F0E"),
        ("t5-tiny", "encoder-decoder", "circle", "#2CA02C"),
    ];
    for figure in [
        "latency_curve",
        "ttft_tbt_curves",
        "roofline",
        "batch_tradeoff",
        "mine",
    ] {
        let svg = p.read(&format!("figs/{figure}.svg"));
        let drawn = markers(&svg);
        for (model, arch, shape, color) in models {
            if figure == "ttft_tbt_curves" && arch == "encoder" {
                assert!(!svg.contains(model), "{figure}: an encoder has no TTFT/TBT");
                continue;
            }
            // The legend names the model with its architecture ...
            assert!(
                svg.contains(&format!("{model} ({arch})")),
                "{figure}: no legend entry for {model}"
            );
            // ... and every marker in its colour is its architecture's.
            let own: Vec<_> = drawn.iter().filter(|m| m.1 == color).collect();
            assert!(!own.is_empty(), "{figure}: no marker of {model}");
            assert!(
                own.iter().all(|m| m.0 == shape),
                "{figure}: {model} drawn with {:?}",
                own.iter()
                    .map(|m| m.0)
                    .collect::<std::collections::BTreeSet<_>>()
            );
        }
        // Phase and front are told by fill: the roofline's decode steps and the trade-off's off-front points are
        // hollow markers of the same shape.
        if figure == "roofline" {
            assert!(
                drawn.iter().any(|m| !m.2 && m.0 == "triangle"),
                "{figure}: decode steps hollow"
            );
            assert!(svg.contains("hollow: decode step") && !svg.contains("hollow triangle"));
        }
    }
    // Same band, same statistic: the latency figure shades the interval of the median, the TTFT/TBT figure draws
    // ± std as dotted edges and says so.
    assert!(
        p.read("figs/latency_curve.svg")
            .contains("interval of the median")
    );
    let ttft = p.read("figs/ttft_tbt_curves.svg");
    assert!(ttft.contains("dotted edges: ± std over runs") && !ttft.contains("shade: ± std"));
    // Throughput split by unit: no generated and input tokens on one axis.
    let perf = p.read("figs/inference_performance.svg");
    for panel in [
        "Generated tokens per second (generators)",
        "Input tokens per second (encoders)",
        "Sequences per second (every model)",
    ] {
        assert!(perf.contains(panel), "{panel}");
    }
}
