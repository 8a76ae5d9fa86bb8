//! `figs/report.html`: one self-contained page per plot step (criterion's report, DVC's `plots show`), its story on
//! top: a header with what was measured, on what and when, and the headline numbers; a table of contents; the run's
//! warnings and notes in one place; the figures at their natural size (inline SVG with hover text per point); the
//! results table (consistent significant digits, columns that sort on click); the scaling fits; what the points
//! were measured with. No network: inline CSS, SVG and one small inline script (the sorting), so it opens from a
//! file:// path and from an e-mail attachment. Every string from results or configs is escaped (`escape`).
//! `compare --format html` builds its page from the same parts (`shell`, `nav`, `sig3`).

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

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.5rem;color:#222}
header{border-bottom:2px solid #ddd;padding-bottom:.6rem}h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
p.what{margin:.3rem 0;color:#444}nav{margin:.8rem 0;line-height:1.8}nav a{display:inline-block;margin-right:1rem;white-space:nowrap}
figure{margin:1rem 0;overflow-x:auto}div.scroll{overflow-x:auto}figcaption{font-weight:600;margin-bottom:.3rem}figure svg{max-width:none;height:auto}
table{border-collapse:collapse;font-size:.85rem}th,td{border:1px solid #ccc;padding:.2rem .45rem;text-align:right;white-space:nowrap}
th{background:#f3f3f3;position:sticky;top:0}table.sortable th{cursor:pointer}th[aria-sort=ascending]::after{content:' ▲'}th[aria-sort=descending]::after{content:' ▼'}
td.t{text-align:left}td.w{white-space:normal;min-width:16rem;text-align:left}tr.bad td{background:#fff3f3}
.warn{color:#9a3412}ul.warn{margin:.3rem 0}.meta td{text-align:left;white-space:normal}.hover circle:hover{stroke:#000;stroke-width:1.5}";

/// Sorts a `table.sortable` by the clicked column: numbers as numbers (`data-v` when a cell has one), text as
/// text, empty cells last; a second click reverses. The page's only script.
const SORT_SCRIPT: &str = "document.querySelectorAll('table.sortable').forEach(function(t){var hs=t.tHead.rows[0].cells;Array.prototype.forEach.call(hs,function(h,i){h.addEventListener('click',function(){var b=t.tBodies[0],rs=Array.prototype.slice.call(b.rows),d=h.getAttribute('aria-sort')==='ascending'?-1:1;var v=function(r){var c=r.cells[i];if(!c)return '';var a=c.getAttribute('data-v');return a!==null?a:c.textContent.trim();};var num=rs.every(function(r){var x=v(r);return x===''||!isNaN(parseFloat(x));});rs.sort(function(p,q){var x=v(p),y=v(q);if(x===''&&y==='')return 0;if(x==='')return 1;if(y==='')return -1;return d*(num?parseFloat(x)-parseFloat(y):x.localeCompare(y));});rs.forEach(function(r){b.appendChild(r);});Array.prototype.forEach.call(hs,function(o){o.removeAttribute('aria-sort');});h.setAttribute('aria-sort',d===1?'ascending':'descending');t.setAttribute('data-sorted-by',i);});});});";

/// A whole page: the shared style, `body`, and the sorting script.
pub fn shell(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{STYLE}</style></head><body>{body}<script>{SORT_SCRIPT}</script></body></html>\n",
        escape(title)
    )
}

/// The table of contents: (element id, label).
pub fn nav(items: &[(String, String)]) -> String {
    let mut out = String::from("<nav id=\"contents\">");
    for (id, label) in items {
        let _ = write!(out, "<a href=\"#{}\">{}</a>", escape(id), escape(label));
    }
    out.push_str("</nav>");
    out
}

/// Three significant digits, one rule for every number of a table: `0.123`, `4.56`, `71.8`, `167`, `1234`.
pub fn sig3(v: f64) -> String {
    if !v.is_finite() {
        return String::new();
    }
    let a = v.abs();
    if a == 0.0 || a >= 100.0 {
        return format!("{v:.0}");
    }
    let decimals = (2 - a.log10().floor() as i32).clamp(0, 9) as usize;
    format!("{v:.decimals$}")
}

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
    v.map_or_else(String::new, sig3)
}

/// A numeric cell: the shown number, and the exact one to sort by.
fn num_cell(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("<td data-v=\"{x}\">{}</td>", sig3(x)),
        _ => "<td></td>".into(),
    }
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
    out.push_str("<h2 id=\"results\">Results</h2><p>One row per point, by model, batch size, then length; click a column to sort by it. Front: whether the batch size is on the latency–throughput Pareto front of its model and length. Latency is the first token (generators) or the forward pass (encoders); the interval is the order-statistic interval of the median at the level given. Numbers to three significant digits.</p>");
    out.push_str("<div class=\"scroll\"><table id=\"results-table\" class=\"sortable\"><thead><tr><th>model</th><th>arch</th><th>tokens</th><th>batch</th><th>status</th><th>latency ms (median)</th><th>interval</th><th>level</th><th>n</th><th>TTFT ms</th><th>TBT ms</th><th>E2E ms</th><th>peak GB</th><th>throughput</th><th>seq/s</th><th>front</th><th>warnings</th></tr></thead><tbody>");
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
        let int =
            |v: Option<i64>| v.map_or_else(|| "<td></td>".to_string(), |v| format!("<td>{v}</td>"));
        let _ = write!(
            out,
            "<tr{}><td class=\"t\">{}</td><td class=\"t\">{}</td>{}{}<td class=\"t\">{}</td>{}<td>{}</td><td>{}</td>{}{}{}{}{}{}{}<td class=\"t\">{}</td><td class=\"w warn\">{}</td></tr>",
            if r.status == "ok" {
                ""
            } else {
                " class=\"bad\""
            },
            escape(&r.model),
            escape(&r.arch),
            int(r.context_length),
            int(r.batch_size),
            escape(&r.status),
            num_cell(r.latency_ms),
            interval,
            r.latency_ci_level
                .map_or_else(String::new, crate::bench::stats::level_label),
            int(r.n),
            num_cell(r.ttft_ms),
            num_cell(r.tbt_ms),
            num_cell(r.e2e_latency_ms),
            num_cell(r.max_memory_gb),
            num_cell(r.throughput),
            num_cell(r.sequences_per_sec),
            escape(r.pareto_front.as_deref().unwrap_or("")),
            escape(&notes.join("; ")),
        );
    }
    out.push_str("</tbody></table></div>");
}

/// Every warning and note of the run in one place: the curves' (mixed runs or builds), then each point's.
fn warnings_section(
    out: &mut String,
    rows: &[Row],
    curve: &[crate::report::aggregate::CurveWarning],
) -> usize {
    let mut items: Vec<String> = curve.iter().map(|w| w.message.clone()).collect();
    let mut sorted: Vec<&Row> = rows.iter().collect();
    sorted.sort_by(|a, b| {
        (&a.model, a.batch_size, a.context_length).cmp(&(&b.model, b.batch_size, b.context_length))
    });
    for r in sorted {
        let at = format!(
            "{}@{}{}",
            r.model,
            r.context_length
                .map_or_else(|| "?".into(), |l| l.to_string()),
            r.batch_size
                .filter(|b| *b != 1)
                .map(|b| format!("×b{b}"))
                .unwrap_or_default()
        );
        for w in point_warnings(r) {
            items.push(format!("{at}: {w}"));
        }
        if r.status != "ok" {
            items.push(format!(
                "{at}: {} ({})",
                r.status,
                r.reason.as_deref().unwrap_or("no reason recorded")
            ));
        }
    }
    let _ = write!(
        out,
        "<h2 id=\"warnings\">Warnings and notes ({})</h2>",
        items.len()
    );
    if items.is_empty() {
        out.push_str(
            "<p>None: every curve comes from one run of one build, and no point was flagged.</p>",
        );
    } else {
        out.push_str("<ul class=\"warn\">");
        for item in &items {
            let _ = write!(out, "<li>{}</li>", escape(item));
        }
        out.push_str("</ul>");
    }
    items.len()
}

/// The header: what was measured, on what and when, and each model's headline number (its longest measured
/// length at the smallest batch, and the scaling exponent fitted to its curve).
fn header(out: &mut String, rows: &[Row], fits: &[Fit]) {
    let models: BTreeSet<&str> = rows.iter().map(|r| r.model.as_str()).collect();
    let newest = rows
        .iter()
        .filter_map(|r| r.finished_at.as_deref())
        .filter(|t| !t.is_empty())
        .max()
        .map_or_else(
            || "date not recorded".to_string(),
            |t| t.replace('T', " ").replace('Z', " UTC"),
        );
    let _ = write!(
        out,
        "<header id=\"top\"><h1>Inference latency against context length</h1><p class=\"what\" id=\"summary\">{} models, {} points ({} ok) · on {} · {} · libtorch {} · e3pipe {} · measured until {}. Hover a point for its numbers.</p>",
        models.len(),
        rows.len(),
        rows.iter().filter(|r| r.status == "ok").count(),
        escape(&distinct(rows, |r| r.device.clone())),
        escape(&distinct(rows, |r| r.dtype.clone())),
        escape(&distinct(rows, |r| r.libtorch_version.clone())),
        escape(&distinct(rows, |r| r.e3pipe_version.clone())),
        escape(&newest),
    );
    out.push_str("<table id=\"headline\" class=\"sortable\"><thead><tr><th>model</th><th>arch</th><th>longest length</th><th>latency ms there</th><th>scaling exponent k</th></tr></thead><tbody>");
    for model in models {
        let own: Vec<&Row> = rows
            .iter()
            .filter(|r| r.model == model && r.status == "ok")
            .collect();
        let smallest = own.iter().filter_map(|r| r.batch_size).min();
        let longest = own
            .iter()
            .filter(|r| r.batch_size == smallest && r.latency_ms.is_some())
            .max_by_key(|r| r.context_length);
        let k = fits
            .iter()
            .find(|f| f.model == model && f.batch_size == smallest)
            .map(|f| f.k);
        let arch = rows
            .iter()
            .find(|r| r.model == model)
            .map_or("", |r| r.arch.as_str());
        let _ = write!(
            out,
            "<tr><td class=\"t\">{}</td><td class=\"t\">{}</td><td>{}</td>{}{}</tr>",
            escape(model),
            escape(arch),
            longest
                .and_then(|r| r.context_length)
                .map_or_else(String::new, |l| l.to_string()),
            num_cell(longest.and_then(|r| r.latency_ms)),
            num_cell(k),
        );
    }
    out.push_str("</tbody></table></header>");
}

fn fit_table(out: &mut String, fits: &[Fit]) {
    out.push_str("<h2 id=\"scaling-fit\">Scaling fit</h2><p>latency ≈ a·L<sup>k</sup> by least squares on log–log; k's interval is t-based at 95 %. The form is the one AICc chose among power law, quadratic and broken power law, which predictions use.</p>");
    out.push_str("<div class=\"scroll\"><table id=\"fit-table\" class=\"sortable\"><thead><tr><th>model</th><th>arch</th><th>batch</th><th>k</th><th>k 95 % interval</th><th>a (ms)</th><th>R²</th><th>form</th><th>lengths</th></tr></thead><tbody>");
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
    out.push_str("</tbody></table></div>");
}

/// The whole page.
pub fn page(rows: &[Row], fits: &[Fit], figures: &[Figure<'_>]) -> String {
    let mut body = String::with_capacity(512 * 1024);
    header(&mut body, rows, fits);
    let warnings = curve_warnings(rows);
    let mixed: BTreeSet<(String, Option<i64>)> = warnings
        .iter()
        .map(|w| (w.model.clone(), w.batch_size))
        .collect();
    let mut rest = String::with_capacity(512 * 1024);
    let count = warnings_section(&mut rest, rows, &warnings);
    for f in figures {
        let _ = write!(
            rest,
            "<figure id=\"fig-{}\"><figcaption>{}</figcaption>{}</figure>",
            escape(f.name),
            escape(f.title),
            f.svg
        );
    }
    results_table(&mut rest, rows, &mixed);
    fit_table(&mut rest, fits);
    measured_with(&mut rest, rows);
    let mut contents = vec![(
        "warnings".to_string(),
        format!("Warnings and notes ({count})"),
    )];
    contents.extend(
        figures
            .iter()
            .map(|f| (format!("fig-{}", f.name), f.title.to_string())),
    );
    contents.extend(
        [
            ("results", "Results"),
            ("scaling-fit", "Scaling fit"),
            ("measured-with", "Measured with"),
        ]
        .map(|(id, label)| (id.to_string(), label.to_string())),
    );
    body.push_str(&nav(&contents));
    body.push_str(&rest);
    shell("e3pipe report", &body)
}

#[cfg(test)]
mod tests {
    use super::sig3;

    #[test]
    fn three_significant_digits_everywhere() {
        let shown: Vec<String> = [71.787, 167.0, 0.12345, 4.5678, 1234.6, 0.0, 0.000_123]
            .map(sig3)
            .to_vec();
        assert_eq!(
            shown,
            ["71.8", "167", "0.123", "4.57", "1235", "0", "0.000123"]
        );
    }
}
