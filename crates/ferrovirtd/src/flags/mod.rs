//! libvirt's API flags and enums, one module per object, each value named
//! as in libvirt without its object prefix (`VIR_DOMAIN_XML_SECURE` is
//! [`domain::XML_SECURE`]). Handlers check the flags a call brings against
//! what they implement ([`check`]) and translate them into the driver's
//! typed options; a flag they do not implement is refused, never ignored.

pub(crate) mod connect;
pub(crate) mod domain;
pub(crate) mod network;
pub(crate) mod node;
pub(crate) mod secret;
pub(crate) mod storage;

use virterror::{ErrorCode, ErrorDomain, VirError};

/// Refuses the bits of `flags` outside `allowed`, naming the libvirt API
/// (`api`) as libvirt's own check does.
pub(crate) fn check(api: &str, flags: u32, allowed: u32) -> Result<(), VirError> {
    match flags & !allowed {
        0 => Ok(()),
        extra => Err(unsupported(api, extra)),
    }
}

/// A flag the procedure does not implement: `VIR_ERR_INVALID_ARG`, as
/// libvirt reports unknown flags.
pub(crate) fn unsupported(api: &str, flags: u32) -> VirError {
    VirError::new(
        ErrorCode::InvalidArg,
        ErrorDomain::Qemu,
        format!("unsupported flags (0x{flags:x}) in function {api}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_bits_are_refused_by_name() {
        assert!(check("virDomainReset", 0, 0).is_ok());
        assert!(check("virDomainDestroyFlags", 1, domain::DESTROY_GRACEFUL).is_ok());
        let e = check("virDomainDestroyFlags", 6, domain::DESTROY_GRACEFUL).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArg);
        assert_eq!(
            e.message,
            "unsupported flags (0x6) in function virDomainDestroyFlags"
        );
    }
}
