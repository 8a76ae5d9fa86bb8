//! Aggregate and plot from known result files: the seed's shapes (scaling and single-point), ours, a broken file.

use crate::project::Project;

const SEED_SCALING: &str = r#"{"exp_id": "inference_scaling_20251111_120000", "model": "gpt2", "arch": "decoder",
  "metrics": {"128": {"first_token_latency_ms": 5.23, "throughput_tokens_per_sec": 96.15, "max_memory_gb": 0.25},
              "256": {"first_token_latency_ms": 8.67, "throughput_tokens_per_sec": 87.31, "max_memory_gb": 0.28}}}"#;
const SEED_SINGLE: &str = r#"{"exp_id": "inference_20251110_090000", "config": {"model": "bert-base-uncased", "arch": "encoder", "context_length": 128},
  "metrics": {"latency_ms": 3.1, "throughput": 41000.0, "max_memory_gb": 0.12}}"#;

/// A CSV's header and rows, split on commas (the tables here hold no quoted commas).
fn cells(csv: &str) -> (Vec<&str>, Vec<Vec<&str>>) {
    let mut lines = csv.lines();
    let header = lines.next().unwrap_or_default().split(',').collect();
    (header, lines.map(|l| l.split(',').collect()).collect())
}

fn aggregate_only(p: &Project) -> crate::project::Run {
    p.write("pipelines/agg.yaml", "steps:\n  - name: aggregate\n    kind: aggregate\n  - name: plot\n    kind: plot\n    needs: [aggregate]\n    predict_lengths: [1024]\n");
    p.run(&["run", "pipelines/agg.yaml"])
}

#[test]
fn aggregate_reads_seed_and_our_results_and_skips_broken_files() {
    let p = Project::new();
    p.write("pipelines/p.yaml", "steps:\n  - name: b\n    kind: bench\n    model: configs/model/bert.yaml\n    bench: configs/bench/encoder.yaml\n");
    assert_eq!(p.run(&["run", "pipelines/p.yaml"]).code, 0);
    p.write("latest/inference/gpt2.json", SEED_SCALING);
    p.write("latest/inference/bert-base-uncased.json", SEED_SINGLE);
    p.write("latest/inference/broken.json", "{\"exp_id\": ");
    p.write("latest/inference/foreign.json", "{\"hello\": 1}");
    let r = aggregate_only(&p);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stderr
            .contains("warning: skipping `latest/inference/broken.json`: not valid JSON"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(
            "warning: skipping `latest/inference/foreign.json`: no `exp_id`: not a results file"
        ),
        "{}",
        r.stderr
    );
    let csv = p.read("tables/inference_results.csv");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(
        &header[..7],
        [
            "exp_id",
            "model",
            "arch",
            "context_length",
            "latency_ms",
            "throughput",
            "max_memory_gb"
        ]
    );
    for col in [
        "ttft_ms",
        "tbt_ms",
        "e2e_latency_ms",
        "encoder_latency_ms",
        "latency_std_ms",
        "status",
        "input_tokens",
        "n",
        "latency_median_ms",
        "latency_p90_ms",
        "latency_ci_low_ms",
        "latency_ci_high_ms",
        "device",
        "dtype",
        "weights",
    ] {
        assert!(header.contains(&col), "missing column {col}");
    }
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    // bert-tiny at 32 and 512, the seed's gpt2 at 128 and 256, the seed's single point.
    assert_eq!(rows.len(), 5, "{csv}");
    let find = |model: &str, length: &str| {
        rows.iter()
            .find(|r| r[1] == model && r[3] == length)
            .unwrap_or_else(|| panic!("no {model}@{length} in {csv}"))
    };
    assert_eq!(find("gpt2", "128")[4], "5.2300");
    assert_eq!(find("gpt2", "256")[6], "0.2800");
    let single = find("bert-base-uncased", "128");
    assert_eq!(
        (single[0], single[4], single[5]),
        ("inference_20251110_090000", "3.1000", "41000.0000")
    );
    let ours = find("bert-tiny", "512");
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    assert_eq!(
        (
            ours[col("status")],
            ours[col("input_tokens")],
            ours[col("n")],
            ours[col("dtype")]
        ),
        ("ok", "512", "3", "fp32")
    );
    let fit = p.read("tables/scaling_fit.csv");
    assert!(
        fit.starts_with("model,arch,batch_size,k,k_stderr,df,k_ci95_low,k_ci95_high,a_ms,r_squared,fit_form,knee_tokens,overhead_to_linear_tokens,linear_to_quadratic_tokens,break_tokens,fit_selection,fit_params,aicc_power_law,aicc_quadratic,aicc_broken_power_law,lengths,runs\n"),
        "{fit}"
    );
    assert_eq!(
        fit.lines().count(),
        3,
        "bert-tiny and gpt2 have two lengths each: {fit}"
    );
    let summary = p.read("tables/summary.csv");
    assert_eq!(summary.lines().count(), 4, "{summary}");
    assert!(
        p.path("tables/inference_results.parquet")
            .metadata()
            .unwrap()
            .len()
            > 100
    );
    // Nothing changed: nothing redone.
    let r = aggregate_only(&p);
    assert!(
        r.stderr.contains("step `aggregate`: inputs unchanged"),
        "{}",
        r.stderr
    );
}

fn count_color(img: &image::RgbImage, x0: u32, x1: u32, color: [u8; 3]) -> usize {
    (x0..x1)
        .flat_map(|x| (0..img.height()).map(move |y| (x, y)))
        .filter(|&(x, y)| img.get_pixel(x, y).0 == color)
        .count()
}

#[test]
fn latency_curve_has_both_panels_and_every_architecture() {
    let p = Project::new();
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let img = image::open(p.path("figs/latency_curve.png"))
        .unwrap()
        .to_rgb8();
    // Two panels of 800 px and the legend column of 320 px beside them.
    assert_eq!(img.dimensions(), (1920, 650));
    let csv = p.read("tables/inference_results.csv");
    let mut models: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    models.sort_unstable();
    models.dedup();
    assert_eq!(models.len(), 3, "{csv}");
    // Each model in its own colour (the palette's first three, in name order) in both panels and the legend.
    for (model, color) in models
        .iter()
        .zip([[31, 119, 180], [255, 127, 14], [44, 160, 44]])
    {
        let left = count_color(&img, 0, 800, color);
        let right = count_color(&img, 800, 1600, color);
        let legend = count_color(&img, 1600, 1920, color);
        assert!(
            left > 200 && right > 200 && legend > 30,
            "{model}: {left} px in the latency panel, {right} px in the memory panel, {legend} in the legend"
        );
    }
    for fig in [
        "ttft_tbt_curves",
        "inference_performance",
        "inference_memory_tradeoff",
        "latency_curve",
    ] {
        assert!(
            p.path(&format!("figs/{fig}.png")).metadata().unwrap().len() > 10_000,
            "{fig}.png"
        );
        assert!(
            p.read(&format!("figs/{fig}.svg")).starts_with("<svg"),
            "{fig}.svg"
        );
    }
    assert!(
        p.read("figs/latency_curve.svg")
            .contains("Context length (tokens)")
    );
}

#[test]
fn a_pipelines_aggregate_keeps_the_other_pipelines_models() {
    let p = Project::new();
    p.write("pipelines/p.yaml", "steps:\n  - name: b\n    kind: bench\n    model: configs/model/bert.yaml\n    bench: configs/bench/encoder.yaml\n  - name: aggregate\n    kind: aggregate\n    needs: [b]\n");
    // Left by another pipeline of the same project (or the original tool): its rows stay in the tables.
    p.write("latest/inference/gpt2.json", SEED_SCALING);
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let csv = p.read("tables/inference_results.csv");
    assert_eq!(
        csv.lines().count(),
        5,
        "bert-tiny's two rows and gpt2's two: {csv}"
    );
    assert_eq!(csv.matches(",gpt2,").count(), 2, "{csv}");
    assert_eq!(csv.matches(",bert-tiny,").count(), 2, "{csv}");
    // Its own model's document missing is said; the other's is not required.
    std::fs::remove_file(p.path("latest/inference/bert-tiny.json")).unwrap();
    let r = p.run(&["run", "pipelines/p.yaml", "--only", "aggregate"]);
    assert!(
        r.stderr.contains("no results for model `bert-tiny`"),
        "{}",
        r.stderr
    );
    assert_eq!(p.read("tables/inference_results.csv").lines().count(), 3);
}

#[test]
fn seed_files_bring_their_architecture_spread_runs_and_energy() {
    // The original tool's scaling layout: names in `config.model`, its own architecture aliases, spreads, run
    // counts and energy per length; an unknown extra field is no reason to skip the file.
    let seed = |name: &str, arch: &str| {
        format!(
            r#"{{"exp_id": "inference_scaling_20251111_120000", "config": {{"model": {{"name": "{name}", "arch": "{arch}", "pretrained": "x"}}, "bench": {{"arch": "{arch}"}}}},
  "metrics": {{"128": {{"first_token_latency_ms": 5.0, "latency_std_ms": 0.4, "encoder_std_ms": 0.1, "throughput_tokens_per_sec": 90.0,
     "throughput_std": 3.0, "total_runs": 10, "inference_energy_per_sample_joules": 1.5, "avg_power_watts": 250.0,
     "current_memory_gb": 0.7, "max_memory_gb": 0.9, "something_new": [1, 2]}}}}}}"#
        )
    };
    let p = Project::new();
    p.write("latest/inference/a.json", &seed("t5-small", "encdec"));
    p.write("latest/inference/b.json", &seed("gpt2", "Causal_LM"));
    p.write("latest/inference/c.json", &seed("bert", "encoder-only"));
    let r = aggregate_only(&p);
    assert_eq!(r.code, 0, "{}", r.all());
    let csv = p.read("tables/inference_results.csv");
    let (header, rows) = cells(&csv);
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let archs: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r[col("model")], r[col("arch")]))
        .collect();
    assert_eq!(
        archs,
        [
            ("bert", "encoder"),
            ("gpt2", "decoder"),
            ("t5-small", "encoder-decoder")
        ]
    );
    for r in &rows {
        assert_eq!(
            (
                r[col("latency_std_ms")],
                r[col("n")],
                r[col("encoder_std_ms")],
                r[col("throughput_std")]
            ),
            ("0.4000", "10", "0.1000", "3.0000")
        );
        assert_eq!(
            (
                r[col("energy_per_sample_j")],
                r[col("avg_power_w")],
                r[col("current_memory_gb")]
            ),
            ("1.5000", "250.0000", "0.7000")
        );
    }
}

/// A results file in the original tool's scaling layout with `lengths`, latency growing with `scale`.
fn seed_file(name: &str, arch: &str, scale: f64, lengths: &[u32]) -> String {
    let metrics: Vec<String> = lengths
        .iter()
        .map(|l| {
            let ms = scale * f64::from(*l) / 128.0;
            format!(
                r#""{l}": {{"first_token_latency_ms": {ms}, "latency_std_ms": {std}, "max_memory_gb": {gb}, "total_runs": 10}}"#,
                std = ms * 0.05,
                gb = 0.5 + scale / 100.0 + f64::from(*l) / 2000.0
            )
        })
        .collect();
    format!(
        r#"{{"exp_id": "inference_scaling_20251111_1200{scale:02}", "config": {{"model": {{"name": "{name}", "arch": "{arch}"}}}}, "metrics": {{{}}}}}"#,
        metrics.join(", ")
    )
}

#[test]
fn fifteen_models_get_fifteen_colours_and_a_row_of_panels_per_architecture() {
    let p = Project::new();
    let archs = ["decoder", "encdec", "encoder"];
    for i in 0..15 {
        p.write(
            &format!("latest/inference/m{i:02}.json"),
            &seed_file(
                &format!("model-{i:02}"),
                archs[i % 3],
                5.0 + i as f64,
                &[128, 256, 512],
            ),
        );
    }
    let r = aggregate_only(&p);
    assert_eq!(r.code, 0, "{}", r.all());
    let img = image::open(p.path("figs/latency_curve.png"))
        .unwrap()
        .to_rgb8();
    // Past eight models: three rows of panels (decoder, encoder-decoder, encoder), 520 px each.
    assert_eq!(img.dimensions(), (1920, 3 * 520));
    let svg = p.read("figs/latency_curve.svg");
    for title in [
        "Latency vs context length: decoder",
        "Latency vs context length: encoder-decoder",
        "Peak memory vs context length: encoder",
        "shade: ± std (file gave no interval)",
    ] {
        assert!(svg.contains(title), "{title}");
    }
    // Fifteen distinct colours, each drawn in the panels (the curves) and in the legend column.
    let palette: [[u8; 3]; 15] = [
        [31, 119, 180],
        [255, 127, 14],
        [44, 160, 44],
        [214, 39, 40],
        [148, 103, 189],
        [140, 86, 75],
        [227, 119, 194],
        [127, 127, 127],
        [188, 189, 34],
        [23, 190, 207],
        [0, 0, 117],
        [128, 0, 0],
        [128, 128, 0],
        [70, 153, 144],
        [145, 30, 180],
    ];
    for (i, color) in palette.iter().enumerate() {
        let panels = count_color(&img, 0, 1600, *color);
        let legend = count_color(&img, 1600, 1920, *color);
        assert!(
            panels > 300 && legend > 30,
            "model-{i:02}: {panels} px in the panels, {legend} px in the legend"
        );
    }
    // Each model's curve sits in its architecture's row only: model-00 is a decoder (top row).
    let row_of = |color: [u8; 3]| -> Vec<usize> {
        (0..3)
            .map(|row| {
                (0..1600)
                    .flat_map(|x| (row * 520..(row + 1) * 520).map(move |y| (x, y as u32)))
                    .filter(|&(x, y)| img.get_pixel(x, y).0 == color)
                    .count()
            })
            .collect()
    };
    let decoder = row_of(palette[0]);
    assert!(
        decoder[0] > 300 && decoder[1] == 0 && decoder[2] == 0,
        "{decoder:?}"
    );
    let encoder = row_of(palette[2]);
    assert!(
        encoder[2] > 300 && encoder[0] == 0 && encoder[1] == 0,
        "{encoder:?}"
    );
}

#[test]
fn results_written_before_schema_versions_still_aggregate() {
    // `latest/inference/t5-small-quick.json` as e3pipe wrote it before `schema_version` (its bench config flat in
    // `config`, `null` for unmeasured fields), from a real quick run.
    let p = Project::new();
    let old = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/results-v0-t5-small-quick.json"),
    )
    .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&old).unwrap();
    p.write("latest/inference/t5-small-quick.json", &old);
    let r = aggregate_only(&p);
    assert_eq!(r.code, 0, "{}", r.all());
    let csv = p.read("tables/inference_results.csv");
    let (header, rows) = cells(&csv);
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    assert_eq!(
        rows.len(),
        doc["metrics"].as_object().unwrap().len(),
        "{csv}"
    );
    for r in &rows {
        let length = r[col("context_length")];
        let point = &doc["metrics"][length]["point"];
        assert_eq!(r[col("arch")], "encoder-decoder");
        assert_eq!(r[col("status")], point["status"].as_str().unwrap());
        assert_eq!(r[col("n")], point["stats"]["ttft_ms"]["n"].to_string());
        let median: f64 = r[col("latency_ms")].parse().unwrap();
        let want = point["stats"]["ttft_ms"]["median"].as_f64().unwrap();
        assert!(
            (median - want).abs() < 1e-4 * want.max(1.0),
            "{median} vs {want}"
        );
        // The positions limit came from the flat config's hyperparameters.
        assert_eq!(
            r[col("max_positions")],
            "",
            "T5 has relative positions: no limit"
        );
    }
}

/// What the original tool's `src/e3bench/report/aggregate.py` (E3-mini-benchmark, run by hand against `make quick`'s
/// outputs) reads from each `latest/inference/*.json`, and how: it skips a document whose `exp_id` lacks
/// `inference` or that has no `config`; takes `config.model["name"]`, `config.model["arch"]` and `config.bench`
/// with `[]` (a missing key stops it: `KeyError`); makes one row per `metrics` key with `int(key)`; reads each field
/// below with `.get(field, 0)` and compares some with numbers (`forward_pass_latency_ms > 0`), so a field may be
/// missing but never `null` or a string.
const ORIGINAL_AGGREGATE_FIELDS: [&str; 18] = [
    "ttft_ms",
    "ttft_std_ms",
    "tbt_ms",
    "tbt_std_ms",
    "e2e_latency_ms",
    "e2e_std_ms",
    "encoder_latency_ms",
    "encoder_std_ms",
    "first_token_latency_ms",
    "forward_pass_latency_ms",
    "latency_ms",
    "latency_std_ms",
    "throughput_tokens_per_sec",
    "throughput_std",
    "max_memory_gb",
    "current_memory_gb",
    "inference_energy_per_sample_joules",
    "total_runs",
];

/// The columns its `plots.py --tables tables` reads from `tables/inference_results.csv` for the inference figures
/// (by name, with `df[...]`: a missing one stops it, `Column not found`), summing, grouping and averaging them.
const ORIGINAL_PLOT_COLUMNS: [&str; 14] = [
    "model",
    "arch",
    "context_length",
    "latency_ms",
    "latency_std_ms",
    "throughput_tokens_per_sec",
    "max_memory_gb",
    "ttft_ms",
    "ttft_std_ms",
    "tbt_ms",
    "tbt_std_ms",
    "e2e_latency_ms",
    "e2e_std_ms",
    "encoder_latency_ms",
];

#[test]
fn outputs_carry_every_field_and_column_the_original_report_scripts_read() {
    let p = Project::new();
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    for model in ["gpt2-tiny", "t5-tiny", "bert-tiny"] {
        let doc = p.results(model);
        assert!(doc["exp_id"].as_str().unwrap().contains("inference"));
        assert_eq!(doc["config"]["model"]["name"], model);
        let arch = doc["config"]["model"]["arch"].as_str().unwrap();
        assert!(doc["config"]["bench"].is_object());
        let metrics = doc["metrics"].as_object().unwrap();
        assert!(!metrics.is_empty());
        for (length, m) in metrics {
            assert!(length.parse::<i64>().is_ok(), "{model}: key {length}");
            for field in ORIGINAL_AGGREGATE_FIELDS {
                assert!(
                    m.get(field).is_none_or(serde_json::Value::is_number),
                    "{model}@{length}: `{field}` is {}",
                    m[field]
                );
            }
            // What each architecture's rows are built from is there.
            let needed: &[&str] = if arch == "encoder" {
                &[
                    "forward_pass_latency_ms",
                    "latency_ms",
                    "latency_std_ms",
                    "throughput_tokens_per_sec",
                    "max_memory_gb",
                    "total_runs",
                ]
            } else {
                &[
                    "ttft_ms",
                    "ttft_std_ms",
                    "tbt_ms",
                    "tbt_std_ms",
                    "e2e_latency_ms",
                    "e2e_std_ms",
                    "first_token_latency_ms",
                    "throughput_tokens_per_sec",
                    "max_memory_gb",
                    "total_runs",
                ]
            };
            for field in needed {
                assert!(m[*field].is_number(), "{model}@{length}: `{field}` missing");
            }
        }
    }
    let csv = p.read("tables/inference_results.csv");
    let (header, rows) = cells(&csv);
    for column in ORIGINAL_PLOT_COLUMNS {
        let Some(i) = header.iter().position(|h| *h == column) else {
            panic!("no column `{column}`");
        };
        if !["model", "arch"].contains(&column) {
            for row in &rows {
                assert!(
                    row[i].is_empty() || row[i].parse::<f64>().is_ok(),
                    "`{column}`: {}",
                    row[i]
                );
            }
        }
    }
    // The same numbers under both names.
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    for row in &rows {
        assert_eq!(
            row[col("throughput_tokens_per_sec")],
            row[col("throughput")]
        );
        assert_eq!(row[col("num_runs")], row[col("n")]);
    }
}
