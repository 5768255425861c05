//! The save image: its header and stream layout ([`header`]), and the
//! domain XML it carries ([`xml`]: `save-image-dumpxml`,
//! `save-image-define`, `restore --xml`).

pub(crate) mod header;
pub(crate) mod xml;
