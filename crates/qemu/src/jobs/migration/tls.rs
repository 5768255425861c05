//! QEMU's own TLS on the migration stream (`--tls`, `VIR_MIGRATE_TLS`):
//! a `tls-creds-x509` object in each QEMU, named in the migration's
//! `tls-creds` parameter.
//!
//! The credentials are read from `migrate_tls_x509_cert_dir` in QEMU's
//! layout (`ca-cert.pem`, `server-cert.pem`, `server-key.pem`,
//! `client-cert.pem`, `client-key.pem`) by the daemon, not by QEMU: the
//! files one side needs are copied into the guest's own run directory
//! (owned by QEMU's user, the key mode 0600), QEMU loads them when the
//! object is made, and the copies are removed at once. So the system's
//! key never has to be readable by QEMU's user, and no copy outlives the
//! call.

use std::path::{Path, PathBuf};

use qmp::commands::{MigrateSetParameters, ObjectAdd, ObjectDel};

use crate::object::Domain;
use crate::shared::Shared;
use crate::{Error, Result};

/// The object's id in QEMU.
const OBJECT_ID: &str = "migrate-tls0";

/// Which end of the stream a QEMU is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// The destination: listens, and verifies the source's certificate.
    Server,
    /// The source: connects, and checks the destination's certificate
    /// for `hostname`.
    Client,
}

impl Endpoint {
    fn as_str(self) -> &'static str {
        match self {
            Endpoint::Server => "server",
            Endpoint::Client => "client",
        }
    }

    /// The files of the configured directory this end loads.
    fn files(self) -> [&'static str; 3] {
        match self {
            Endpoint::Server => ["ca-cert.pem", "server-cert.pem", "server-key.pem"],
            Endpoint::Client => ["ca-cert.pem", "client-cert.pem", "client-key.pem"],
        }
    }
}

/// Gives `dom`'s QEMU the credentials of `end` and names them in its
/// migration parameters (with the host the destination's certificate
/// must name, for the client).
pub(crate) async fn enable(
    s: &Shared,
    dom: &Domain,
    end: Endpoint,
    hostname: Option<&str>,
) -> Result<()> {
    let staged = stage(s, dom, end)?;
    let made = add_object(s, dom, end, &staged.0).await;
    drop(staged);
    made?;
    let mut p = serde_json::Map::new();
    p.insert("tls-creds".into(), OBJECT_ID.into());
    if let Some(h) = hostname {
        p.insert("tls-hostname".into(), h.into());
    }
    if let Err(e) = dom
        .qmp(&MigrateSetParameters(p), s.cfg.monitor_timeout)
        .await
    {
        disable(s, dom).await;
        return Err(e);
    }
    Ok(())
}

/// Takes the credentials back (a QEMU that stays after a failed or
/// finished migration): best effort, as the QEMU may be gone.
pub(crate) async fn disable(s: &Shared, dom: &Domain) {
    let t = s.cfg.monitor_timeout;
    let mut p = serde_json::Map::new();
    p.insert("tls-creds".into(), "".into());
    p.insert("tls-hostname".into(), "".into());
    let _ = dom.qmp(&MigrateSetParameters(p), t).await;
    let del = ObjectDel {
        id: OBJECT_ID.into(),
    };
    let _ = dom.qmp(&del, t).await;
}

async fn add_object(s: &Shared, dom: &Domain, end: Endpoint, dir: &Path) -> Result<()> {
    let mut o = serde_json::Map::new();
    o.insert("qom-type".into(), "tls-creds-x509".into());
    o.insert("id".into(), OBJECT_ID.into());
    o.insert("dir".into(), dir.to_string_lossy().into_owned().into());
    o.insert("endpoint".into(), end.as_str().into());
    if end == Endpoint::Server {
        o.insert("verify-peer".into(), s.cfg.migration.tls_verify.into());
    }
    dom.qmp(&ObjectAdd(o), s.cfg.monitor_timeout)
        .await
        .map(|_| ())
        .map_err(|e| {
            Error::OperationFailed(format!(
                "QEMU cannot load the migration's TLS credentials: {e}"
            ))
        })
}

/// A copy of one end's credentials, removed when dropped.
struct Staged(PathBuf);

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Copies the files `end` needs into the guest's run directory, owned by
/// QEMU's user.
fn stage(s: &Shared, dom: &Domain, end: Endpoint) -> Result<Staged> {
    use std::os::unix::fs::OpenOptionsExt;
    let from = &s.cfg.migration.tls_dir;
    let creds = s.cfg.confinement.creds.as_ref();
    let dir = s.layout.domain_run_dir(&dom.uuid()).join("migrate-tls");
    let _ = std::fs::remove_dir_all(&dir);
    crate::lifecycle::host::create_private_dir(&dir, creds)?;
    let staged = Staged(dir);
    for name in end.files() {
        let src = from.join(name);
        let data = std::fs::read(&src).map_err(|e| {
            Error::OperationInvalid(format!(
                "cannot read the migration's TLS credentials {}: {e}",
                src.display()
            ))
        })?;
        let dst = staged.0.join(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&dst)
            .map_err(|e| Error::io(format!("cannot create {}", dst.display()), e))?;
        if let Some(c) = creds {
            std::os::unix::fs::fchown(&f, Some(c.uid), Some(c.gid)).map_err(|e| {
                Error::io(format!("cannot give {} to QEMU's user", dst.display()), e)
            })?;
        }
        std::io::Write::write_all(&mut f, &data)
            .map_err(|e| Error::io(format!("cannot write {}", dst.display()), e))?;
    }
    Ok(staged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_end_loads_its_own_files_in_qemus_layout() {
        assert_eq!(Endpoint::Server.as_str(), "server");
        assert!(Endpoint::Server.files().contains(&"server-key.pem"));
        assert!(Endpoint::Client.files().contains(&"client-cert.pem"));
        assert!(
            Endpoint::Client
                .files()
                .iter()
                .all(|f| !f.starts_with("server"))
        );
    }
}
