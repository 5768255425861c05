//! Wire structures of the procedures that open a stream or pass a
//! descriptor: consoles, channels, volume transfers, screenshots and
//! graphics connections.

use super::{NonnullDomain, NonnullStorageVol};
use crate::xdr_struct;

xdr_struct! {
    /// `remote_domain_open_console_args` and
    /// `remote_domain_open_channel_args`: a domain, the device's name
    /// (`dev_name`, `name`; null for the first) and flags.
    pub struct DomainOpenChardevArgs {
        pub dom: NonnullDomain,
        pub name: Option<String>,
        pub flags: u32,
    }

    /// `remote_storage_vol_upload_args` and
    /// `remote_storage_vol_download_args`.
    pub struct StorageVolTransferArgs {
        pub vol: NonnullStorageVol,
        pub offset: u64,
        pub length: u64,
        pub flags: u32,
    }

    /// `remote_domain_screenshot_args`.
    pub struct DomainScreenshotArgs {
        pub dom: NonnullDomain,
        pub screen: u32,
        pub flags: u32,
    }

    /// `remote_domain_screenshot_ret`: the image's MIME type.
    pub struct DomainScreenshotRet {
        pub mime: Option<String>,
    }

    /// `remote_domain_open_graphics_args` and
    /// `remote_domain_open_graphics_fd_args`.
    pub struct DomainOpenGraphicsArgs {
        pub dom: NonnullDomain,
        pub idx: u32,
        pub flags: u32,
    }
}
