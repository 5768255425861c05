//! TLS for `qemu+tls://`, with libvirt's x509 layout: a CA that signed
//! both sides, the server's certificate and key, client certificates
//! required and verified, and an optional allow-list of client
//! distinguished names (`tls_allowed_dn_list`, glob patterns). The client
//! side ([`TlsClientFiles`], [`connect`]) is what a daemon presents to a
//! peer daemon.
//!
//! After its handshake a libvirt client reads one byte before it speaks:
//! 1 when the server accepted its certificate. A refused client gets the
//! connection closed instead, which it reports as a failed verification.

use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

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

/// The crypto provider of both sides.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    #[allow(
        deprecated,
        reason = "ring builds with the C compiler alone; its suites and key exchanges are libvirt's"
    )]
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The CA certificates of `ca_file`, as trust roots.
fn roots(ca_file: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in certs(ca_file)? {
        roots
            .add(ca)
            .map_err(|e| TlsError::Setup(format!("{}: {e}", ca_file.display())))?;
    }
    Ok(roots)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

impl TlsServer {
    pub fn new(f: &TlsFiles) -> Result<Self, TlsError> {
        let provider = provider();
        let roots = roots(&f.ca_file)?;
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| TlsError::Setup(e.to_string()))?;
        let key = key(&f.key_file)?;
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

/// What a client presents and trusts (libvirt's `pkipath` layout:
/// `cacert.pem`, `clientcert.pem`, `clientkey.pem`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsClientFiles {
    /// The CA certificate(s) the server's certificate must chain to.
    pub ca_file: PathBuf,
    /// The client's certificate (chain), PEM.
    pub cert_file: PathBuf,
    /// The client's private key, PEM.
    pub key_file: PathBuf,
}

impl TlsClientFiles {
    /// The files of a `pkipath` directory.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            ca_file: dir.join("cacert.pem"),
            cert_file: dir.join("clientcert.pem"),
            key_file: dir.join("clientkey.pem"),
        }
    }

    /// libvirt's system-wide client files.
    pub fn system() -> Self {
        Self {
            ca_file: "/etc/pki/CA/cacert.pem".into(),
            cert_file: "/etc/pki/libvirt/clientcert.pem".into(),
            key_file: "/etc/pki/libvirt/private/clientkey.pem".into(),
        }
    }

    fn config(&self) -> Result<ClientConfig, TlsError> {
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_root_certificates(roots(&self.ca_file)?)
            .with_client_auth_cert(certs(&self.cert_file)?, key(&self.key_file)?)
            .map_err(|e| TlsError::Setup(e.to_string()))
    }
}

/// Connects to the TLS server at `addr` (`HOST:PORT`), whose certificate
/// must name `host`, presenting `files`' certificate; returns once the
/// server has confirmed it accepted that certificate.
pub async fn connect(
    addr: &str,
    host: &str,
    files: &TlsClientFiles,
) -> io::Result<TlsStream<TcpStream>> {
    let setup = |e: TlsError| io::Error::new(io::ErrorKind::InvalidInput, e.to_string());
    let config = files.config().map_err(setup)?;
    let name = ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']'))
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{host}: {e}")))?
        .to_owned();
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    let mut confirmed = [0u8; 1];
    match tls.read(&mut confirmed).await? {
        1 if confirmed[0] == 1 => Ok(tls),
        _ => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the server refused this client's certificate",
        )),
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
