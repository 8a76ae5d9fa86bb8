//! Hover text for the points of a figure: while a figure is drawn, each point's pixel position and its description
//! are collected; the SVG then gets one invisible circle per point carrying an SVG `<title>`, which browsers show
//! as a tooltip. No script: the page and the SVG files work from a file:// path and an e-mail attachment.

use std::cell::RefCell;
use std::fmt::Write as _;

use crate::report::html::escape;

/// Radius of a point's hover target, in pixels.
const TARGET_PX: i32 = 9;

#[derive(Default)]
pub(crate) struct Hotspots(RefCell<Vec<((i32, i32), String)>>);

impl Hotspots {
    pub(crate) fn add(&self, at: (i32, i32), tip: String) {
        self.0.borrow_mut().push((at, tip));
    }

    /// The SVG with a hover target per point, placed last so it lies on top.
    pub(crate) fn into_svg(self, svg: &str) -> String {
        let spots = self.0.into_inner();
        if spots.is_empty() {
            return svg.to_string();
        }
        let mut g = String::from(r#"<g class="hover" fill="transparent" stroke="none">"#);
        for ((x, y), tip) in spots {
            let _ = write!(
                g,
                r#"<circle cx="{x}" cy="{y}" r="{TARGET_PX}" pointer-events="all"><title>{}</title></circle>"#,
                escape(&tip)
            );
        }
        g.push_str("</g>");
        match svg.rfind("</svg>") {
            Some(end) => format!("{}{g}{}", &svg[..end], &svg[end..]),
            None => svg.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_point_gets_an_escaped_title_inside_the_svg() {
        let h = Hotspots::default();
        h.add((10, 20), "<script>alert(1)</script> at 128 tokens".into());
        let svg = h.into_svg(r#"<svg width="1" height="1"><rect/></svg>"#);
        assert!(svg.ends_with("</g></svg>"), "{svg}");
        assert!(svg.contains(r#"<circle cx="10" cy="20" r="9""#));
        assert!(svg.contains("<title>&lt;script&gt;alert(1)&lt;/script&gt; at 128 tokens</title>"));
        assert!(!svg.contains("<script>"));
    }
}
