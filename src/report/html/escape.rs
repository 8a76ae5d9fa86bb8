//! Text from results and configs (model names, reasons, paths, warnings) made safe for HTML and SVG: element
//! content and quoted attribute values alike.

/// Whether XML 1.0 allows `c` in a document at all: no C0 control but tab, line feed and carriage return, and not
/// U+FFFE or U+FFFF (Rust strings hold no surrogates). An SVG or HTML page with one is not well-formed.
pub(crate) fn xml_allowed(c: char) -> bool {
    !matches!(c, '\u{0}'..='\u{8}' | '\u{B}' | '\u{C}' | '\u{E}'..='\u{1F}' | '\u{FFFE}' | '\u{FFFF}')
}

/// `s` with every character XML forbids replaced by U+FFFD: a whole SVG written by the plotting library, whose
/// text came from model names of foreign files.
pub(crate) fn xml_safe(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars().all(xml_allowed) {
        std::borrow::Cow::Borrowed(s)
    } else {
        std::borrow::Cow::Owned(
            s.chars()
                .map(|c| if xml_allowed(c) { c } else { '\u{FFFD}' })
                .collect(),
        )
    }
}

/// `s` with `&`, `<`, `>`, `"` and `'` replaced by entities, and characters XML forbids by U+FFFD.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            c if !xml_allowed(c) => out.push('\u{FFFD}'),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_xml_forbids_are_replaced() {
        assert_eq!(escape("a\u{1}b\u{FFFE}c\td"), "a\u{FFFD}b\u{FFFD}c\td");
        assert_eq!(xml_safe("<text>m\u{1F}</text>"), "<text>m\u{FFFD}</text>");
        assert!(matches!(xml_safe("fine\n"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn markup_and_quotes_become_entities() {
        assert_eq!(
            escape(r#"<img src=x onerror="a('b')">&"#),
            "&lt;img src=x onerror=&quot;a(&#39;b&#39;)&quot;&gt;&amp;"
        );
        assert_eq!(escape("gpt2 · 512 tokens"), "gpt2 · 512 tokens");
    }
}
