//! The XML layer every libvirt document shares: a small element tree on top
//! of quick-xml ([`parse_document`]), libvirt's output layout
//! ([`XmlWriter`]), libvirt's scaled integers ([`units`]) and the errors a
//! client gets for bad XML ([`XmlError`]).
//!
//! Why a tree rather than streaming: libvirt's schemas are order-insensitive
//! among siblings, validation needs look-ahead, and foreign elements
//! (`<metadata>`) must be kept verbatim. The documents are small, and the
//! parser bounds both nesting and size, so the tree costs nothing that
//! matters.

mod error;
mod tree;
pub mod units;
mod writer;

pub use error::XmlError;
pub use tree::{MAX_DEPTH, MAX_DOCUMENT, XmlElement, XmlNode, parse_document};
pub use writer::{Attrs, XmlWriter, escape};
