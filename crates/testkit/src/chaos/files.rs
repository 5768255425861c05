//! The files a restart must leave: no temporary or partial file anywhere
//! under the root, every save image complete, run files only for running
//! domains, and every block copy destination explained by a copy that
//! started. Also what the operations the kill cut off must have left.

use std::path::{Path, PathBuf};

use rpc::Client;
use rpc::protocol::remote::{DomainGetBlockJobInfoRet, DomainPathFlagsArgs, procedure as p};

use super::check::{Broken, Listed, Report, names_with_ext};
use super::model::{Model, Pending};
use super::ops::wire_domain;
use super::world::{World, uuid_string};
use crate::Error;

/// The first 16 bytes of a save image whose save completed, and of one
/// still being written (the driver's on-disk format).
const IMAGE_COMPLETE: &[u8; 16] = b"FerrovirtSaveImg";
const IMAGE_PARTIAL: &[u8; 16] = b"FerrovirtSavePrt";

/// Runs the file checks and settles the pending consequences.
pub(super) async fn check(
    w: &World,
    m: &mut Model,
    client: &Client,
    listed: &[Listed],
    r: &mut Report,
) -> Result<(), Error> {
    // A background write of a status record (a block job's progress, an
    // event) may be between its temp file and its rename, and a domain
    // being cleaned up is shut off a moment before its record goes: these
    // two must hold once the daemon is idle, so they are polled.
    eventually(r, |found| {
        temporaries(&w.paths.root, found);
        run_files(w, listed, found);
    })
    .await;
    for dir in [&w.paths.images, &w.paths.managed_save_dir()] {
        images(dir, r);
    }
    pending(w, m, client, listed, r).await?;
    copies(w, m, r);
    Ok(())
}

/// How long files may take to settle.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs `check` until it finds nothing or [`SETTLE`] passes; reports what
/// the last run found.
async fn eventually(r: &mut Report, mut check: impl FnMut(&mut Report)) {
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let mut found = Report {
            kill: r.kill,
            found: Vec::new(),
        };
        check(&mut found);
        if found.found.is_empty() || tokio::time::Instant::now() >= deadline {
            r.found.extend(found.found);
            return;
        }
        tokio::time::sleep(crate::wait::POLL * 5).await;
    }
}

/// No temp file of an atomic write and no partial volume, anywhere.
fn temporaries(dir: &Path, r: &mut Report) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in rd.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && (name.contains(".tmp.") || name.contains(".ferrovirt-partial."))
        {
            r.add(
                Broken::Leftover,
                format!("temporary file {} left", path.display()),
            );
        }
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            temporaries(&path, r);
        }
    }
}

/// Whether the save image at `path` is complete (`None`: no such file).
fn image_complete(path: &Path) -> Option<bool> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let mut magic = [0u8; 16];
    Some(f.read_exact(&mut magic).is_ok() && &magic == IMAGE_COMPLETE)
}

/// Every save image in `dir` is complete.
fn images(dir: &Path, r: &mut Report) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in rd.flatten() {
        let path = entry.path();
        if image_complete(&path) == Some(false) {
            let what = if magic_is(&path, IMAGE_PARTIAL) {
                "partial"
            } else {
                "unreadable"
            };
            r.add(
                Broken::Leftover,
                format!("{what} save image {} left", path.display()),
            );
        }
    }
}

fn magic_is(path: &Path, want: &[u8; 16]) -> bool {
    std::fs::read(path).is_ok_and(|b| b.get(..16) == Some(&want[..]))
}

/// Status records and monitor sockets only for running domains.
fn run_files(w: &World, listed: &[Listed], r: &mut Report) {
    let active: Vec<String> = listed
        .iter()
        .filter(|l| l.active())
        .map(|l| uuid_string(&l.dom.uuid))
        .collect();
    for ext in ["json", "qmp"] {
        for uuid in names_with_ext(&w.paths.run_dir(), ext) {
            if !active.contains(&uuid) {
                r.add(
                    Broken::Leftover,
                    format!("run/qemu/{uuid}.{ext} of a domain that does not run"),
                );
            }
        }
    }
}

/// What the operations the kill cut off (or that were refused) left.
async fn pending(
    w: &World,
    m: &mut Model,
    client: &Client,
    listed: &[Listed],
    r: &mut Report,
) -> Result<(), Error> {
    let active = |name: &str| listed.iter().any(|l| l.dom.name == name && l.active());
    let pending = std::mem::take(&mut m.pending);
    for p in pending {
        match p {
            Pending::InterruptedSave {
                domain,
                path,
                managed,
            } => {
                if image_complete(&path) == Some(true) {
                    if !managed && active(&domain) {
                        r.add(
                            Broken::Job,
                            format!(
                                "save of {domain} completed ({}) but the domain still runs",
                                path.display()
                            ),
                        );
                    }
                    if !managed {
                        m.images.push(path);
                    }
                }
            }
            Pending::RefusedSave { path } | Pending::RefusedCopy { dest: path } => {
                if path.exists() {
                    r.add(
                        Broken::Leftover,
                        format!("refused operation left {}", path.display()),
                    );
                }
            }
            Pending::InterruptedCopy { domain, dest } => {
                if dest.exists() {
                    let ended_by_another = m.touched.contains(&domain);
                    if !ended_by_another && !has_block_job(w, client, &domain).await? {
                        r.add(
                            Broken::Leftover,
                            format!(
                                "copy destination {} left without a job of {domain}",
                                dest.display()
                            ),
                        );
                    }
                    m.copies.insert(dest);
                }
            }
        }
    }
    m.touched.clear();
    Ok(())
}

async fn has_block_job(w: &World, client: &Client, domain: &str) -> Result<bool, Error> {
    let Some(d) = w.domain(domain) else {
        return Ok(false);
    };
    let args = DomainPathFlagsArgs {
        dom: wire_domain(d),
        path: "vda".into(),
        flags: 0,
    };
    match client
        .call::<_, DomainGetBlockJobInfoRet>(p::DOMAIN_GET_BLOCK_JOB_INFO, &args)
        .await
    {
        Ok(info) => Ok(info.found == 1),
        // Not running: no job.
        Err(rpc::ClientError::Remote(_)) => Ok(false),
        Err(e) => Err(Error::Rpc {
            what: format!("block job of {domain}"),
            source: e,
        }),
    }
}

/// Every file among the copy destinations was created by a copy that
/// started.
fn copies(w: &World, m: &Model, r: &mut Report) {
    let Ok(rd) = std::fs::read_dir(&w.paths.copies) else {
        return;
    };
    let files: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    for f in files {
        if !m.copies.contains(&f) {
            r.add(
                Broken::Leftover,
                format!("copy destination {} no started copy explains", f.display()),
            );
        }
    }
}
