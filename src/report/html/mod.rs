//! `figs/report.html`: one self-contained page per plot step (criterion's report, DVC's `plots show`): the
//! figures as inline SVG with hover text per point, the results table pre-sorted by model then length, the scaling
//! fits, what the points were measured with, and the run's warnings beside the points they concern. No script, no
//! network: inline CSS and SVG only, so it opens from a file:// path and from an e-mail attachment. Every string
//! from results or configs is escaped (`escape`).

pub(crate) mod escape;

use std::collections::BTreeSet;
use std::fmt::Write as _;

pub use escape::escape;

use crate::report::aggregate::{Row, curve_warnings};
use crate::report::fit::Fit;
use crate::report::point_warnings::point_warnings;

/// One figure of the page.
pub struct Figure<'a> {
    /// The file stem (`latency_curve`), used as the element id.
    pub name: &'a str,
    pub title: &'a str,
    pub svg: &'a str,
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.5rem auto;max-width:1400px;padding:0 1rem;color:#222}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
figure{margin:1rem 0}figcaption{font-weight:600;margin-bottom:.3rem}svg{max-width:100%;height:auto}
table{border-collapse:collapse;font-size:.85rem}th,td{border:1px solid #ccc;padding:.2rem .45rem;text-align:right}
th{background:#f3f3f3;position:sticky;top:0}td.t{text-align:left}tr.bad td{background:#fff3f3}
.warn{color:#9a3412}ul.warn{margin:.3rem 0}.meta td{text-align:left}.hover circle:hover{stroke:#000;stroke-width:1.5}";

fn distinct(rows: &[Row], f: impl Fn(&Row) -> Option<String>) -> String {
    let v: BTreeSet<String> = rows
        .iter()
        .filter_map(f)
        .filter(|s| !s.is_empty())
        .collect();
    if v.is_empty() {
        "not recorded (results from elsewhere)".into()
    } else {
        v.into_iter().collect::<Vec<_>>().join(", ")
    }
}

fn number(v: Option<f64>) -> String {
    v.map_or_else(String::new, |v| {
        if v.abs() >= 100.0 {
            format!("{v:.1}")
        } else {
            format!("{v:.3}")
        }
    })
}

fn measured_with(out: &mut String, rows: &[Row]) {
    let fields: [(&str, String); 7] = [
        ("device", distinct(rows, |r| r.device.clone())),
        ("dtype", distinct(rows, |r| r.dtype.clone())),
        (
            "threads",
            distinct(rows, |r| r.threads.map(|t| t.to_string())),
        ),
        ("libtorch", distinct(rows, |r| r.libtorch_version.clone())),
        ("e3pipe", distinct(rows, |r| r.e3pipe_version.clone())),
        (
            "measuring code (method)",
            distinct(rows, |r| r.method.clone()),
        ),
        ("runs", distinct(rows, |r| r.run_id.clone())),
    ];
    out.push_str("<h2 id=\"measured-with\">Measured with</h2><table class=\"meta\">");
    for (name, value) in fields {
        let _ = write!(out, "<tr><th>{name}</th><td>{}</td></tr>", escape(&value));
    }
    out.push_str("</table>");
}

fn results_table(out: &mut String, rows: &[Row], mixed: &BTreeSet<(String, Option<i64>)>) {
    let mut sorted: Vec<&Row> = rows.iter().collect();
    sorted.sort_by(|a, b| {
        (&a.model, a.batch_size, a.context_length).cmp(&(&b.model, b.batch_size, b.context_length))
    });
    out.push_str("<h2 id=\"results\">Results</h2><p>One row per point, by model, batch size, then length. Front: whether the batch size is on the latency–throughput Pareto front of its model and length. Latency is the first token (generators) or the forward pass (encoders); the interval is the order-statistic interval of the median at the level given.</p>");
    out.push_str("<table id=\"results-table\"><thead><tr><th>model</th><th>arch</th><th>tokens</th><th>batch</th><th>status</th><th>latency ms (median)</th><th>interval</th><th>level</th><th>n</th><th>TTFT ms</th><th>TBT ms</th><th>E2E ms</th><th>peak GB</th><th>throughput</th><th>seq/s</th><th>front</th><th>warnings</th></tr></thead><tbody>");
    for r in sorted {
        let interval = match (r.latency_ci_low_ms, r.latency_ci_high_ms, r.latency_std_ms) {
            (Some(lo), Some(hi), _) => format!("{} – {}", number(Some(lo)), number(Some(hi))),
            (_, _, Some(s)) => format!("± {} (std)", number(Some(s))),
            _ => String::new(),
        };
        let mut notes = point_warnings(r);
        if let Some(reason) = &r.reason {
            notes.push(reason.clone());
        }
        if mixed.contains(&(r.model.clone(), r.batch_size)) {
            notes.push(format!(
                "curve mixes runs or builds; this point: run {}",
                r.run_id.as_deref().unwrap_or("?")
            ));
        }
        let _ = write!(
            out,
            "<tr{}><td class=\"t\">{}</td><td class=\"t\">{}</td><td>{}</td><td>{}</td><td class=\"t\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"t\">{}</td><td class=\"t warn\">{}</td></tr>",
            if r.status == "ok" {
                ""
            } else {
                " class=\"bad\""
            },
            escape(&r.model),
            escape(&r.arch),
            r.context_length.map_or_else(String::new, |l| l.to_string()),
            r.batch_size.map_or_else(String::new, |b| b.to_string()),
            escape(&r.status),
            number(r.latency_ms),
            interval,
            r.latency_ci_level
                .map_or_else(String::new, crate::bench::stats::level_label),
            r.n.map_or_else(String::new, |n| n.to_string()),
            number(r.ttft_ms),
            number(r.tbt_ms),
            number(r.e2e_latency_ms),
            number(r.max_memory_gb),
            number(r.throughput),
            number(r.sequences_per_sec),
            escape(r.pareto_front.as_deref().unwrap_or("")),
            escape(&notes.join("; ")),
        );
    }
    out.push_str("</tbody></table>");
}

fn fit_table(out: &mut String, fits: &[Fit]) {
    out.push_str("<h2 id=\"scaling-fit\">Scaling fit</h2><p>latency ≈ a·L<sup>k</sup> by least squares on log–log; k's interval is t-based at 95 %. The form is the one AICc chose among power law, quadratic and broken power law, which predictions use.</p>");
    out.push_str("<table id=\"fit-table\"><thead><tr><th>model</th><th>arch</th><th>batch</th><th>k</th><th>k 95 % interval</th><th>a (ms)</th><th>R²</th><th>form</th><th>lengths</th></tr></thead><tbody>");
    for f in fits {
        let _ = write!(
            out,
            "<tr><td class=\"t\">{}</td><td class=\"t\">{}</td><td>{}</td><td>{:.3}</td><td>{}</td><td>{}</td><td>{:.4}</td><td class=\"t\">{}</td><td class=\"t\">{}</td></tr>",
            escape(&f.model),
            escape(&f.arch),
            f.batch_size.map_or_else(String::new, |b| b.to_string()),
            f.k,
            f.k_ci95.map_or_else(
                || "too few lengths".into(),
                |(lo, hi)| format!("{lo:.3} – {hi:.3}")
            ),
            number(Some(f.a)),
            f.r_squared,
            escape(f.regime.as_ref().map_or("power_law", |r| r.form.as_str())),
            f.lengths
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    out.push_str("</tbody></table>");
}

/// The whole page.
pub fn page(rows: &[Row], fits: &[Fit], figures: &[Figure<'_>]) -> String {
    let mut out = String::with_capacity(512 * 1024);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>e3pipe report</title><style>{STYLE}</style></head><body>"
    );
    let models: BTreeSet<&str> = rows.iter().map(|r| r.model.as_str()).collect();
    let _ = write!(
        out,
        "<h1>Inference latency against context length</h1><p id=\"summary\">{} models, {} points ({} ok). Hover a point for its numbers.</p>",
        models.len(),
        rows.len(),
        rows.iter().filter(|r| r.status == "ok").count()
    );
    let warnings = curve_warnings(rows);
    let mixed: BTreeSet<(String, Option<i64>)> = warnings
        .iter()
        .map(|w| (w.model.clone(), w.batch_size))
        .collect();
    if !warnings.is_empty() {
        out.push_str("<h2 id=\"warnings\">Warnings</h2><ul class=\"warn\">");
        for w in &warnings {
            let _ = write!(out, "<li>{}</li>", escape(&w.message));
        }
        out.push_str("</ul>");
    }
    for f in figures {
        let _ = write!(
            out,
            "<figure id=\"fig-{}\"><figcaption>{}</figcaption>{}</figure>",
            escape(f.name),
            escape(f.title),
            f.svg
        );
    }
    results_table(&mut out, rows, &mixed);
    fit_table(&mut out, fits);
    measured_with(&mut out, rows);
    out.push_str("</body></html>\n");
    out
}
