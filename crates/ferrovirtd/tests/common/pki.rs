//! Test certificates made with openssl: CAs, server and client leaves,
//! and libvirt's `pkipath` directories (`cacert.pem`, `clientcert.pem`,
//! `clientkey.pem`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The extensions of a server certificate for loopback.
pub const SERVER_EXT: &str =
    "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n";
/// The extensions of a client certificate.
pub const CLIENT_EXT: &str = "extendedKeyUsage=clientAuth\n";

/// Runs openssl with `args` in `dir`.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`NAME-ca.pem`, `NAME-ca.key`).
pub fn ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            &format!("{name}-ca.key"),
            "-out",
            &format!("{name}-ca.pem"),
            "-subj",
            &format!("/O={name}/CN={name} CA"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// A certificate for `subj` signed by CA `ca`: `NAME.pem`, `NAME.key`.
pub fn leaf(dir: &Path, ca: &str, name: &str, subj: &str, ext: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            subj,
        ],
    );
    std::fs::write(dir.join(format!("{name}.ext")), ext).expect("write extensions");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}-ca.pem"),
            "-CAkey",
            &format!("{ca}-ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &format!("{name}.pem"),
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

/// A `pkipath` directory for client `name` trusting CA `ca`.
pub fn pkipath(dir: &Path, ca: &str, name: &str) -> PathBuf {
    let p = dir.join(format!("pki-{name}"));
    std::fs::create_dir_all(&p).expect("pkipath directory");
    let copy = |from: String, to: &str| {
        std::fs::copy(dir.join(&from), p.join(to)).unwrap_or_else(|e| panic!("{from}: {e}"));
    };
    copy(format!("{ca}-ca.pem"), "cacert.pem");
    copy(format!("{name}.pem"), "clientcert.pem");
    copy(format!("{name}.key"), "clientkey.pem");
    p
}
