//! TLS for `qemu+tls://` clients, with libvirt's x509 layout: a CA that
//! signed both sides, the server's certificate and key, client
//! certificates required and verified, and an optional allow-list of
//! client distinguished names (`tls_allowed_dn_list`, glob patterns).
//!
//! After its handshake a libvirt client reads one byte before it speaks:
//! 1 when the server accepted its certificate. A refused client gets the
//! connection closed instead, which it reports as a failed verification.

use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use crate::transport::{Conn, Transport};

/// Where the certificates are, and whom to let in.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The CA certificate(s) client certificates must chain to.
    pub ca_file: PathBuf,
    /// The server's certificate (chain), PEM.
    pub cert_file: PathBuf,
    /// The server's private key, PEM.
    pub key_file: PathBuf,
    /// Client DNs allowed in (`*` and `?` match as in a shell); empty
    /// lets in every client whose certificate verifies.
    pub allowed_dn: Vec<String>,
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("{path} holds no {what}")]
    Empty { path: PathBuf, what: &'static str },
    #[error("invalid TLS set-up: {0}")]
    Setup(String),
}

/// Accepts TLS connections with the files' settings.
pub struct TlsServer {
    acceptor: TlsAcceptor,
    allowed_dn: Vec<String>,
}

impl TlsServer {
    pub fn new(f: &TlsFiles) -> Result<Self, TlsError> {
        #[allow(
            deprecated,
            reason = "ring builds with the C compiler alone; its suites and key exchanges are libvirt's"
        )]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for ca in certs(&f.ca_file)? {
            roots
                .add(ca)
                .map_err(|e| TlsError::Setup(format!("{}: {e}", f.ca_file.display())))?;
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| TlsError::Setup(e.to_string()))?;
        let key = PrivateKeyDer::from_pem_file(&f.key_file).map_err(|source| TlsError::Read {
            path: f.key_file.clone(),
            source,
        })?;
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs(&f.cert_file)?, key)
            .map_err(|e| TlsError::Setup(e.to_string()))?;
        // A libvirt client waits for the socket to be readable and then
        // reads its confirmation byte once: a TLS 1.3 session ticket
        // arriving first would be read instead, and fail the connection.
        config.send_tls13_tickets = 0;
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            allowed_dn: f.allowed_dn.clone(),
        })
    }

    /// The handshake, the client's DN checked against the allow-list, and
    /// libvirt's confirmation byte.
    pub(crate) async fn accept(&self, tcp: TcpStream) -> io::Result<Conn> {
        let socket = tcp.as_raw_fd();
        let mut tls = self.acceptor.accept(tcp).await?;
        let dn = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| subject_dn(c.as_ref()))
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::PermissionDenied, "no client certificate")
            })?;
        if !dn_allowed(&dn, &self.allowed_dn) {
            // A clean close (close_notify): the client reads end-of-file
            // where it waits for its byte, and reports a failed
            // verification, as libvirtd makes it do.
            let _ = tls.shutdown().await;
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("client DN '{dn}' is not in tls_allowed_dn_list"),
            ));
        }
        tls.write_all(&[1]).await?;
        tls.flush().await?;
        tracing::info!(%dn, "TLS client accepted");
        Ok(Conn::Bytes {
            stream: Box::new(tls),
            socket,
            transport: Transport::Tls,
        })
    }
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read = |source| TlsError::Read {
        path: path.to_owned(),
        source,
    };
    let v = CertificateDer::pem_file_iter(path)
        .map_err(read)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read)?;
    if v.is_empty() {
        return Err(TlsError::Empty {
            path: path.to_owned(),
            what: "certificate",
        });
    }
    Ok(v)
}

/// The certificate's subject as libvirt writes it: attributes in the
/// certificate's order, `C=GB,O=Example,CN=client`.
pub fn subject_dn(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let registry = x509_parser::objects::oid_registry();
    let mut parts = Vec::new();
    for rdn in cert.subject().iter() {
        for attr in rdn.iter() {
            let name = x509_parser::objects::oid2abbrev(attr.attr_type(), registry)
                .map(str::to_owned)
                .unwrap_or_else(|_| attr.attr_type().to_id_string());
            parts.push(format!("{name}={}", attr.as_str().ok()?));
        }
    }
    Some(parts.join(","))
}

/// Whether `dn` matches one of `patterns` (every DN when there are none).
pub fn dn_allowed(dn: &str, patterns: &[String]) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| glob(p.as_bytes(), dn.as_bytes()))
}

/// Shell-style matching of the whole text: `*` any run, `?` one byte.
fn glob(p: &[u8], t: &[u8]) -> bool {
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was, and the text position it is tried at.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_dns() {
        let dn = "C=GB,O=Example,CN=client1";
        for yes in [
            "*",
            "C=GB,O=Example,CN=client1",
            "C=GB,*",
            "*CN=client?",
            "C=GB,O=*,CN=*1",
        ] {
            assert!(glob(yes.as_bytes(), dn.as_bytes()), "{yes}");
        }
        for no in [
            "",
            "C=GB",
            "*CN=client",
            "C=US,*",
            "?",
            "C=GB,O=Example,CN=client12",
        ] {
            assert!(!glob(no.as_bytes(), dn.as_bytes()), "{no}");
        }
        assert!(dn_allowed(dn, &[]));
        assert!(dn_allowed(dn, &["x".into(), "*client1".into()]));
        assert!(!dn_allowed(dn, &["*client2".into()]));
    }
}
