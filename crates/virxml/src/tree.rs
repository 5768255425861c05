//! The element tree and its parser.

use quick_xml::events::Event;

use crate::XmlError;

/// Deepest nesting accepted. libvirt's documents need fewer than 10 levels;
/// the limit keeps recursion over hostile input bounded.
pub const MAX_DEPTH: usize = 64;

/// Largest document accepted, in bytes (the RPC layer's string limit).
pub const MAX_DOCUMENT: usize = 4 << 20;

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
    pub fn check_attrs(&self, path: &str, known: &[&str]) -> Result<(), XmlError> {
        for (k, _) in &self.attrs {
            if k.starts_with("xmlns") {
                continue;
            }
            if !known.contains(&k.as_str()) {
                return Err(XmlError::UnknownAttribute {
                    element: path.to_string(),
                    attr: k.clone(),
                });
            }
        }
        Ok(())
    }

    /// Rejects any child element not in `known`.
    pub fn check_children(&self, path: &str, known: &[&str]) -> Result<(), XmlError> {
        for e in self.elements() {
            if !known.contains(&e.name.as_str()) {
                return Err(XmlError::UnknownElement(format!("{path}/{}", e.name)));
            }
        }
        Ok(())
    }

    pub fn child(&self, name: &str) -> Option<&XmlElement> {
        self.elements().find(|e| e.name == name)
    }

    /// Required attribute.
    pub fn req_attr(&self, path: &str, key: &str) -> Result<&str, XmlError> {
        self.attr(key)
            .ok_or_else(|| XmlError::structure(format!("missing attribute '{key}' of <{path}>")))
    }

    /// Child elements called `name`, in document order.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a XmlElement> {
        self.elements().filter(move |e| e.name == name)
    }

    /// Trimmed text of the child element `name`, if present.
    pub fn child_text(&self, name: &str) -> Option<String> {
        self.child(name).map(|c| c.text().trim().to_owned())
    }

    /// Drops whitespace-only text nodes recursively, so that re-indented
    /// output compares equal to the input.
    pub fn strip_blank_text(&mut self) {
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

fn malformed(e: impl std::fmt::Display) -> XmlError {
    XmlError::malformed(e)
}

fn start_element(e: &quick_xml::events::BytesStart<'_>) -> Result<XmlElement, XmlError> {
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
pub fn parse_document(xml: &str) -> Result<XmlElement, XmlError> {
    if xml.len() > MAX_DOCUMENT {
        return Err(malformed(format_args!(
            "document of {} bytes is larger than {MAX_DOCUMENT}",
            xml.len()
        )));
    }
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
}
