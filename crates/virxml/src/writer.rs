//! libvirt's output layout.

use crate::tree::{XmlElement, XmlNode};

/// Escapes text or an attribute value the way libvirt does (all five
/// predefined entities, so `'`-quoted attributes are always safe).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// Indenting writer producing libvirt's layout: two spaces per level,
/// attributes in single quotes, empty elements as `<x/>`.
#[derive(Default)]
pub struct XmlWriter {
    buf: String,
    depth: usize,
}

pub type Attrs<'a> = &'a [(&'a str, String)];

impl XmlWriter {
    pub fn new() -> Self {
        Self::default()
    }

    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.buf.push_str("  ");
        }
    }

    fn tag(&mut self, name: &str, attrs: Attrs<'_>) {
        self.buf.push('<');
        self.buf.push_str(name);
        for (k, v) in attrs {
            self.buf.push(' ');
            self.buf.push_str(k);
            self.buf.push_str("='");
            self.buf.push_str(&escape(v));
            self.buf.push('\'');
        }
    }

    pub fn open(&mut self, name: &str, attrs: Attrs<'_>) {
        self.indent();
        self.tag(name, attrs);
        self.buf.push_str(">\n");
        self.depth += 1;
    }

    pub fn close(&mut self, name: &str) {
        self.depth = self.depth.saturating_sub(1);
        self.indent();
        self.buf.push_str("</");
        self.buf.push_str(name);
        self.buf.push_str(">\n");
    }

    pub fn empty(&mut self, name: &str, attrs: Attrs<'_>) {
        self.indent();
        self.tag(name, attrs);
        self.buf.push_str("/>\n");
    }

    pub fn text_elem(&mut self, name: &str, attrs: Attrs<'_>, text: &str) {
        self.indent();
        self.tag(name, attrs);
        self.buf.push('>');
        self.buf.push_str(&escape(text));
        self.buf.push_str("</");
        self.buf.push_str(name);
        self.buf.push_str(">\n");
    }

    /// Writes a preserved element. Mixed content is written on one line
    /// without added whitespace so that its text survives unchanged.
    pub fn element(&mut self, el: &XmlElement) {
        let attrs: Vec<(&str, String)> = el
            .attrs
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        let has_text = el.children.iter().any(|c| matches!(c, XmlNode::Text(_)));
        if el.children.is_empty() {
            self.empty(&el.name, &attrs);
        } else if has_text {
            self.indent();
            self.inline(el);
            self.buf.push('\n');
        } else {
            self.open(&el.name, &attrs);
            for c in el.elements() {
                self.element(c);
            }
            self.close(&el.name);
        }
    }

    fn inline(&mut self, el: &XmlElement) {
        let attrs: Vec<(&str, String)> = el
            .attrs
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        self.tag(&el.name, &attrs);
        if el.children.is_empty() {
            self.buf.push_str("/>");
            return;
        }
        self.buf.push('>');
        for c in &el.children {
            match c {
                XmlNode::Text(t) => self.buf.push_str(&escape(t)),
                XmlNode::Element(e) => self.inline(e),
            }
        }
        self.buf.push_str("</");
        self.buf.push_str(&el.name);
        self.buf.push('>');
    }

    pub fn finish(self) -> String {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_layout() {
        let mut w = XmlWriter::new();
        w.open("a", &[("k", "it's".into())]);
        w.empty("b", &[]);
        w.text_elem("c", &[], "x&y");
        w.close("a");
        assert_eq!(
            w.finish(),
            "<a k='it&apos;s'>\n  <b/>\n  <c>x&amp;y</c>\n</a>\n"
        );
    }
}
