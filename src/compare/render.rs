//! A comparison as text: an aligned table for the terminal, markdown for a pull-request comment, JSON for tools.

use std::fmt::Write as _;

use serde_json::json;

use super::{Compared, Comparison, Verdict};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Markdown,
    Json,
    /// A self-contained page like the report's (`report::html`).
    Html,
}

/// A percentage without trailing zeros: 95, 99.9.
fn trimmed(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn number(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

fn unit(metric: &str) -> &'static str {
    if metric.ends_with("_ms") {
        " ms"
    } else if metric.ends_with("_per_sec") {
        " /s"
    } else {
        ""
    }
}

fn value(v: Option<f64>, metric: &str, n: usize) -> String {
    match v {
        Some(v) if n > 0 => format!("{}{} (n={n})", number(v), unit(metric)),
        // A median from a file without samples.
        Some(v) => format!("{}{}", number(v), unit(metric)),
        None => "-".into(),
    }
}

/// At most eight items, then how many more.
fn some(items: &[String]) -> String {
    const SHOWN: usize = 8;
    if items.len() <= SHOWN {
        items.join(", ")
    } else {
        format!(
            "{} and {} more",
            items[..SHOWN].join(", "),
            items.len() - SHOWN
        )
    }
}

fn interval(r: &Compared) -> String {
    r.ratio_ci
        .map_or_else(|| "-".into(), |(lo, hi)| format!("[{lo:.3}, {hi:.3}]"))
}

fn ratio(r: &Compared) -> String {
    r.ratio.map_or_else(|| "-".into(), |x| format!("{x:.3}"))
}

fn p(r: &Compared) -> String {
    r.p_adjusted
        .map_or_else(|| "-".into(), |p| format!("{p:.3}"))
}

fn header(c: &Comparison) -> [String; 10] {
    [
        "model".into(),
        "arch".into(),
        "length".into(),
        "batch".into(),
        "metric".into(),
        "baseline".into(),
        "candidate".into(),
        "ratio".into(),
        // A percentile bootstrap: its coverage is near the level only with enough runs (see README).
        format!("{} % bootstrap", trimmed((1.0 - c.alpha) * 100.0)),
        format!("p ({})", c.correction.describe()),
    ]
}

fn cells(r: &Compared) -> [String; 11] {
    [
        r.model.clone(),
        r.arch.clone(),
        r.context_length.to_string(),
        r.batch_size.to_string(),
        r.metric.clone(),
        value(r.baseline_median, &r.metric, r.baseline_n),
        value(r.candidate_median, &r.metric, r.candidate_n),
        ratio(r),
        interval(r),
        p(r),
        r.verdict.as_str().into(),
    ]
}

/// The one-line outcome and what it was decided by.
pub fn summary(c: &Comparison) -> String {
    let tested = c.rows.iter().filter(|r| r.p_value.is_some()).count();
    format!(
        "{} slower, {} faster, {} no change, {} inconclusive, {} not tested; noise band ±{:.1} %, alpha {}, {} over {tested} tests (slower/faster: corrected Mann–Whitney p ≤ alpha and the whole bootstrap interval of the ratio beyond the band)",
        c.count(Verdict::Slower),
        c.count(Verdict::Faster),
        c.count(Verdict::NoChange),
        c.count(Verdict::Inconclusive),
        c.count(Verdict::NotTested),
        c.noise_band * 100.0,
        c.alpha,
        c.correction.describe(),
    )
}

fn exponent_cells(c: &Comparison) -> Vec<[String; 5]> {
    let k = |k: f64, ci: Option<(f64, f64)>| match ci {
        Some((lo, hi)) => format!("{k:.3} [{lo:.3}, {hi:.3}]"),
        None => format!("{k:.3}"),
    };
    c.exponents
        .iter()
        .map(|e| {
            [
                match e.batch_size {
                    Some(b) if b != 1 => format!("{} (batch {b})", e.model),
                    _ => e.model.clone(),
                },
                k(e.baseline_k, e.baseline_k_ci95),
                k(e.candidate_k, e.candidate_k_ci95),
                format!("{:+.3}", e.delta_k),
                e.change.into(),
            ]
        })
        .collect()
}

const EXPONENT_HEADER: [&str; 5] = [
    "model",
    "baseline k [95 % CI]",
    "candidate k [95 % CI]",
    "Δk",
    "exponent",
];

fn aligned(out: &mut String, rows: &[Vec<String>]) {
    let widths: Vec<usize> = (0..rows.first().map_or(0, Vec::len))
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
}

fn lists(c: &Comparison) -> Vec<String> {
    let mut out = Vec::new();
    if !c.differences.is_empty() {
        out.push(format!(
            "measured under different conditions (compared anyway): {}",
            c.differences.join("; ")
        ));
    }
    if !c.only_baseline.is_empty() {
        out.push(format!("only in the baseline: {}", some(&c.only_baseline)));
    }
    if !c.only_candidate.is_empty() {
        out.push(format!(
            "only in the candidate: {}",
            some(&c.only_candidate)
        ));
    }
    out.extend(c.notes.iter().cloned());
    out
}

pub fn table(c: &Comparison) -> String {
    let mut out = format!("baseline:  {}\ncandidate: {}\n\n", c.baseline, c.candidate);
    let mut rows: Vec<Vec<String>> = vec![
        header(c)
            .into_iter()
            .chain(std::iter::once("verdict".to_string()))
            .collect(),
    ];
    rows.extend(c.rows.iter().map(|r| cells(r).to_vec()));
    aligned(&mut out, &rows);
    if !c.exponents.is_empty() {
        out.push_str(
            "\nscaling exponent k (latency ≈ a·L^k, power law over each side's lengths)\n",
        );
        let mut rows: Vec<Vec<String>> =
            vec![EXPONENT_HEADER.iter().map(|s| (*s).to_string()).collect()];
        rows.extend(exponent_cells(c).into_iter().map(|r| r.to_vec()));
        aligned(&mut out, &rows);
    }
    let _ = writeln!(out, "\n{}", summary(c));
    for line in lists(c) {
        let _ = writeln!(out, "note: {line}");
    }
    out
}

/// Text safe inside a markdown table or list, as GitHub renders it: markup and entities escaped (markdown passes
/// HTML through), line breaks and the table's bars neutralised, backslashes and backticks literal.
fn md(cell: &str) -> String {
    let mut out = String::with_capacity(cell.len());
    for c in cell.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            '`' => out.push_str("\\`"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' | '\r' | '\u{2028}' | '\u{2029}' => out.push(' '),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

pub fn markdown(c: &Comparison) -> String {
    let mut out = format!(
        "### e3pipe compare\n\nbaseline {} → candidate {}\n\n",
        md(&c.baseline),
        md(&c.candidate)
    );
    let head: Vec<String> = header(c)
        .into_iter()
        .chain(std::iter::once("verdict".to_string()))
        .collect();
    let _ = writeln!(out, "| {} |", head.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(head.len()));
    for r in &c.rows {
        let mut cells: Vec<String> = cells(r).iter().map(|s| md(s)).collect();
        if matches!(r.verdict, Verdict::Slower | Verdict::Faster) {
            let last = cells.len() - 1;
            cells[last] = format!("**{}**", cells[last]);
        }
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    if !c.exponents.is_empty() {
        let _ = writeln!(out, "\n| {} |", EXPONENT_HEADER.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(EXPONENT_HEADER.len()));
        for r in exponent_cells(c) {
            let cells: Vec<String> = r.iter().map(|s| md(s)).collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
    }
    let _ = writeln!(out, "\n{}", summary(c));
    for line in lists(c) {
        let _ = writeln!(out, "- {}", md(&line));
    }
    out
}

pub fn json(c: &Comparison) -> String {
    let mut v = serde_json::to_value(c).unwrap_or_default();
    v["summary"] = json!({
        "slower": c.count(Verdict::Slower),
        "faster": c.count(Verdict::Faster),
        "no_change": c.count(Verdict::NoChange),
        "inconclusive": c.count(Verdict::Inconclusive),
        "not_tested": c.count(Verdict::NotTested),
    });
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

pub fn render(c: &Comparison, format: Format) -> String {
    match format {
        Format::Table => table(c),
        Format::Markdown => markdown(c),
        Format::Json => json(c),
        Format::Html => html(c),
    }
}

/// The comparison as a page of its own: what was compared and the outcome on top, a table of contents, the rows
/// (sortable; changes marked), the scaling exponents and the notes. Every string escaped.
pub fn html(c: &Comparison) -> String {
    use crate::report::html::{escape, nav, shell};
    let mut body = format!(
        "<header id=\"top\"><h1>e3pipe compare</h1><p class=\"what\">baseline <code>{}</code> → candidate <code>{}</code></p><p id=\"outcome\"><strong>{}</strong></p></header>",
        escape(&c.baseline),
        escape(&c.candidate),
        escape(&summary(c))
    );
    let mut contents = vec![("rows".to_string(), format!("Rows ({})", c.rows.len()))];
    if !c.exponents.is_empty() {
        contents.push(("exponents".into(), "Scaling exponents".into()));
    }
    let notes = lists(c);
    if !notes.is_empty() {
        contents.push(("notes".into(), format!("Notes ({})", notes.len())));
    }
    body.push_str(&nav(&contents));
    body.push_str("<h2 id=\"rows\">Rows</h2><p>Click a column to sort by it. Slower and faster rows are marked.</p><div class=\"scroll\"><table id=\"compare-table\" class=\"sortable\"><thead><tr>");
    for h in header(c)
        .iter()
        .chain(std::iter::once(&"verdict".to_string()))
    {
        let _ = write!(body, "<th>{}</th>", escape(h));
    }
    body.push_str("</tr></thead><tbody>");
    for r in &c.rows {
        let bad = matches!(r.verdict, Verdict::Slower);
        let _ = write!(body, "<tr{}>", if bad { " class=\"bad\"" } else { "" });
        let cells = cells(r);
        for (i, cell) in cells.iter().enumerate() {
            // Text columns left-aligned; the ratio sorts by its number.
            let class = if matches!(i, 0 | 1 | 4 | 10) {
                " class=\"t\""
            } else {
                ""
            };
            let sort = match (i, r.ratio) {
                (7, Some(x)) => format!(" data-v=\"{x}\""),
                _ => String::new(),
            };
            let text = if i == 10 && matches!(r.verdict, Verdict::Slower | Verdict::Faster) {
                format!("<strong>{}</strong>", escape(cell))
            } else {
                escape(cell)
            };
            let _ = write!(body, "<td{class}{sort}>{text}</td>");
        }
        body.push_str("</tr>");
    }
    body.push_str("</tbody></table></div>");
    if !c.exponents.is_empty() {
        body.push_str("<h2 id=\"exponents\">Scaling exponents</h2><p>latency ≈ a·L<sup>k</sup>, a power law over each side's lengths.</p><table class=\"sortable\"><thead><tr>");
        for h in EXPONENT_HEADER {
            let _ = write!(body, "<th>{}</th>", escape(h));
        }
        body.push_str("</tr></thead><tbody>");
        for r in exponent_cells(c) {
            body.push_str("<tr>");
            for (i, cell) in r.iter().enumerate() {
                let class = if i == 0 || i == 4 { " class=\"t\"" } else { "" };
                let _ = write!(body, "<td{class}>{}</td>", escape(cell));
            }
            body.push_str("</tr>");
        }
        body.push_str("</tbody></table>");
    }
    if !notes.is_empty() {
        body.push_str("<h2 id=\"notes\">Notes</h2><ul class=\"warn\">");
        for n in &notes {
            let _ = write!(body, "<li>{}</li>", escape(n));
        }
        body.push_str("</ul>");
    }
    shell("e3pipe compare", &body)
}
