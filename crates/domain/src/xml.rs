//! A small XML tree on top of quick-xml, and the writer used by the
//! formatter.
//!
//! Why a tree rather than streaming: libvirt's schema is order-insensitive
//! among siblings and validation needs look-ahead (e.g. `<os><boot>` vs
//! per-device `<boot order>`), and `<metadata>` must be kept verbatim. The
//! documents are tiny, so the tree costs nothing that matters.

use crate::error::DomainXmlError;
use quick_xml::events::Event;

/// Deepest nesting accepted. Domain XML needs < 10 levels; the limit keeps
/// recursion over hostile input bounded.
const MAX_DEPTH: usize = 64;

/// An element with its attributes (values unescaped) and children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlElement {
    /// Qualified name as written (`qemu:commandline`).
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<XmlNode>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XmlNode {
    Element(XmlElement),
    Text(String),
}

impl XmlElement {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            attrs: Vec::new(),
            children: Vec::new(),
        }
    }

    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Concatenated character data of the direct children.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for c in &self.children {
            if let XmlNode::Text(t) = c {
                s.push_str(t);
            }
        }
        s
    }

    pub fn elements(&self) -> impl Iterator<Item = &XmlElement> {
        self.children.iter().filter_map(|c| match c {
            XmlNode::Element(e) => Some(e),
            XmlNode::Text(_) => None,
        })
    }

    /// The part of the name after the namespace prefix.
    pub fn local_name(&self) -> &str {
        self.name.rsplit(':').next().unwrap_or(&self.name)
    }

    pub fn prefix(&self) -> Option<&str> {
        self.name.split_once(':').map(|(p, _)| p)
    }

    /// Rejects any attribute not in `known`, naming it: an attribute we do
    /// not understand would otherwise be silently dropped.
    pub(crate) fn check_attrs(&self, path: &str, known: &[&str]) -> Result<(), DomainXmlError> {
        for (k, _) in &self.attrs {
            if k.starts_with("xmlns") {
                continue;
            }
            if !known.contains(&k.as_str()) {
                return Err(DomainXmlError::UnknownAttribute {
                    element: path.to_string(),
                    attr: k.clone(),
                });
            }
        }
        Ok(())
    }

    /// Rejects any child element not in `known`.
    pub(crate) fn check_children(&self, path: &str, known: &[&str]) -> Result<(), DomainXmlError> {
        for e in self.elements() {
            if !known.contains(&e.name.as_str()) {
                return Err(DomainXmlError::UnknownElement(format!("{path}/{}", e.name)));
            }
        }
        Ok(())
    }

    pub(crate) fn child(&self, name: &str) -> Option<&XmlElement> {
        self.elements().find(|e| e.name == name)
    }

    /// Required attribute.
    pub(crate) fn req_attr(&self, path: &str, key: &str) -> Result<&str, DomainXmlError> {
        self.attr(key).ok_or_else(|| {
            DomainXmlError::structure(format!("missing attribute '{key}' of <{path}>"))
        })
    }

    /// Drops whitespace-only text nodes recursively, so that re-indented
    /// output compares equal to the input.
    pub(crate) fn strip_blank_text(&mut self) {
        self.children.retain(|c| match c {
            XmlNode::Text(t) => !t.trim().is_empty(),
            XmlNode::Element(_) => true,
        });
        for c in &mut self.children {
            if let XmlNode::Element(e) = c {
                e.strip_blank_text();
            }
        }
    }
}

fn malformed(e: impl std::fmt::Display) -> DomainXmlError {
    DomainXmlError::Malformed(e.to_string())
}

fn start_element(e: &quick_xml::events::BytesStart<'_>) -> Result<XmlElement, DomainXmlError> {
    let name = std::str::from_utf8(e.name().as_ref())
        .map_err(malformed)?
        .to_string();
    let mut el = XmlElement::new(name);
    for a in e.attributes() {
        let a = a.map_err(malformed)?;
        let key = std::str::from_utf8(a.key.as_ref())
            .map_err(malformed)?
            .to_string();
        let value = a.unescape_value().map_err(malformed)?.into_owned();
        el.attrs.push((key, value));
    }
    Ok(el)
}

/// Parses a whole document and returns its root element.
pub fn parse_document(xml: &str) -> Result<XmlElement, DomainXmlError> {
    let mut reader = quick_xml::Reader::from_str(xml);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<XmlElement> = Vec::new();
    let mut root: Option<XmlElement> = None;
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| malformed(format_args!("{e} (at byte {})", reader.error_position())))?;
        match ev {
            Event::Start(e) => {
                if root.is_some() {
                    return Err(malformed("content after the root element"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(malformed("elements nested too deeply"));
                }
                stack.push(start_element(&e)?);
            }
            Event::Empty(e) => {
                if root.is_some() {
                    return Err(malformed("content after the root element"));
                }
                let el = start_element(&e)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(XmlNode::Element(el)),
                    None => root = Some(el),
                }
            }
            Event::End(_) => {
                let el = stack.pop().ok_or_else(|| malformed("unexpected end tag"))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(XmlNode::Element(el)),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                let s = t.unescape().map_err(malformed)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(XmlNode::Text(s.into_owned())),
                    None if s.trim().is_empty() => {}
                    None => return Err(malformed("text outside the root element")),
                }
            }
            Event::CData(c) => {
                let s = std::str::from_utf8(&c).map_err(malformed)?.to_string();
                match stack.last_mut() {
                    Some(parent) => parent.children.push(XmlNode::Text(s)),
                    None => return Err(malformed("CDATA outside the root element")),
                }
            }
            Event::DocType(_) => return Err(malformed("DOCTYPE is not allowed")),
            Event::Comment(_) | Event::PI(_) | Event::Decl(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(malformed("unexpected end of document"));
    }
    root.ok_or_else(|| malformed("no root element"))
}

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
    fn parses_and_rejects() {
        let r = parse_document("<?xml version='1.0'?><a x='1&amp;'><b>t&lt;</b><c/></a>").unwrap();
        assert_eq!(r.attr("x"), Some("1&"));
        assert_eq!(r.child("b").unwrap().text(), "t<");
        assert!(parse_document("<a><b></a>").is_err());
        assert!(parse_document("<a x='1' x='2'/>").is_err());
        assert!(parse_document("<!DOCTYPE a><a/>").is_err());
        assert!(parse_document("").is_err());
        assert!(parse_document("<a/><b/>").is_err());
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        assert!(parse_document(&deep).is_err());
    }

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
