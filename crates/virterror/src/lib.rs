//! libvirt's error numbers and domains, as one shared vocabulary.
//!
//! Every layer (XML parsing, the driver, the RPC server) must end in an
//! error a libvirt client understands: `virsh` prints `error: <message>` and
//! libvirt-python raises `libvirtError` whose `get_error_code()` is one of
//! these numbers. The numbers are part of libvirt's stable ABI
//! (`virterror.h`), so they are fixed here once and used everywhere.

use std::fmt;

/// `virErrorNumber`: what went wrong. Only the values ferrovirt raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum ErrorCode {
    InternalError = 1,
    NoSupport = 3,
    NoConnect = 5,
    InvalidConn = 6,
    InvalidDomain = 7,
    InvalidArg = 8,
    OperationFailed = 9,
    OsType = 16,
    NoSource = 19,
    NoName = 21,
    XmlError = 27,
    DomExist = 28,
    OperationDenied = 29,
    OpenFailed = 30,
    ReadFailed = 31,
    WriteFailed = 34,
    XmlDetail = 35,
    InvalidNetwork = 36,
    NetworkExist = 37,
    SystemError = 38,
    Rpc = 39,
    NoDomain = 42,
    NoNetwork = 43,
    InvalidStoragePool = 46,
    InvalidStorageVol = 47,
    NoStoragePool = 49,
    NoStorageVol = 50,
    OperationInvalid = 55,
    /// `VIR_ERR_INVALID_SECRET`.
    InvalidSecret = 65,
    /// `VIR_ERR_NO_SECRET`.
    NoSecret = 66,
    ConfigUnsupported = 67,
    OperationTimeout = 68,
    ArgumentUnsupported = 74,
    StorageProbeFailed = 75,
    StoragePoolBuilt = 76,
    OperationAborted = 78,
    Overflow = 82,
    BlockCopyActive = 83,
    OperationUnsupported = 84,
    ResourceBusy = 87,
    StorageVolExist = 90,
    CpuIncompatible = 91,
    /// `VIR_ERR_MIGRATE_FINISH_OK`: a destination's finish with
    /// `cancelled` undid its side; the client keeps the source's error.
    MigrateFinishOk = 93,
    DeviceMissing = 99,
}

impl ErrorCode {
    /// The wire value (`int code` of `remote_error`).
    pub fn as_i32(self) -> i32 {
        self as i32
    }
}

/// `virErrorDomain`: which part of libvirt raised the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum ErrorDomain {
    None = 0,
    Xml = 5,
    Dom = 6,
    Rpc = 7,
    Conf = 9,
    Qemu = 10,
    Remote = 13,
    Storage = 18,
    Network = 19,
    Domain = 20,
    /// `VIR_FROM_SECRET`.
    Secret = 30,
    /// `VIR_FROM_STREAMS`.
    Streams = 38,
}

impl ErrorDomain {
    /// The wire value (`int domain` of `remote_error`).
    pub fn as_i32(self) -> i32 {
        self as i32
    }
}

/// A libvirt error as a client will see it: code, domain and a message a
/// user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct VirError {
    pub code: ErrorCode,
    pub domain: ErrorDomain,
    pub message: String,
}

impl VirError {
    pub fn new(code: ErrorCode, domain: ErrorDomain, message: impl Into<String>) -> Self {
        Self {
            code,
            domain,
            message: message.into(),
        }
    }
}

impl fmt::Display for VirError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Implemented by every error type that can reach a client, so the RPC layer
/// never has to guess a code.
pub trait ToVirError {
    fn to_vir_error(&self) -> VirError;
}

impl ToVirError for VirError {
    fn to_vir_error(&self) -> VirError {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_values_match_libvirt_abi() {
        assert_eq!(ErrorCode::NoSupport.as_i32(), 3);
        assert_eq!(ErrorCode::XmlError.as_i32(), 27);
        assert_eq!(ErrorCode::OperationDenied.as_i32(), 29);
        assert_eq!(ErrorCode::NoDomain.as_i32(), 42);
        assert_eq!(ErrorCode::InvalidNetwork.as_i32(), 36);
        assert_eq!(ErrorCode::NetworkExist.as_i32(), 37);
        assert_eq!(ErrorCode::NoNetwork.as_i32(), 43);
        assert_eq!(ErrorCode::OperationInvalid.as_i32(), 55);
        assert_eq!(ErrorCode::InvalidSecret.as_i32(), 65);
        assert_eq!(ErrorCode::NoSecret.as_i32(), 66);
        assert_eq!(ErrorDomain::Secret.as_i32(), 30);
        assert_eq!(ErrorCode::ConfigUnsupported.as_i32(), 67);
        assert_eq!(ErrorCode::OperationTimeout.as_i32(), 68);
        assert_eq!(ErrorDomain::Qemu.as_i32(), 10);
        assert_eq!(ErrorDomain::Domain.as_i32(), 20);
    }

    #[test]
    fn display_is_the_message() {
        let e = VirError::new(ErrorCode::NoDomain, ErrorDomain::Qemu, "no domain 'x'");
        assert_eq!(e.to_string(), "no domain 'x'");
    }
}
