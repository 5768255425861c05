//! `update-device` of a CD-ROM (`virsh change-media`): eject, insert or
//! replace its medium. Live, QEMU is driven through the tray as libvirt
//! does: `blockdev-open-tray` (forced), `blockdev-remove-medium` and the
//! old medium's nodes deleted, the new medium's nodes added,
//! `blockdev-insert-medium`, `blockdev-close-tray`. QEMU's
//! DEVICE_TRAY_MOVED events become TRAY_CHANGE (see `events::handle`).
//! The live definition follows each step that succeeded, so a failure
//! half-way leaves it saying what QEMU really holds.

use std::path::PathBuf;

use domain::{DiskDef, DiskFormat};
use qmp::commands::{
    BlockdevAdd, BlockdevCloseTray, BlockdevDel, BlockdevInsertMedium, BlockdevOpenTray,
    BlockdevRemoveMedium,
};

use crate::lifecycle::host::owner;
use crate::object::Domain;
use crate::shared::Shared;
use crate::store::status;
use crate::{Error, Result};

/// Changes the medium of the running guest's CD-ROM `new.target` to
/// `new.source` (none: eject).
pub(super) async fn change_live(s: &Shared, dom: &Domain, new: &DiskDef) -> Result<()> {
    let (ctx, live) = {
        let g = dom.lock();
        (g.active_ctx()?, g.live().cloned().ok_or(Error::NotRunning)?)
    };
    let i = live.changed(|d| d.find_media(new))?.1;
    let old = live.domain().devices.disks[i].clone();
    if old.source == new.source && old.driver.format == new.driver.format {
        return Ok(());
    }
    if let Some(src) = &new.source {
        std::fs::metadata(src)
            .map_err(|e| Error::io(format!("Cannot access storage file '{}'", src.display()), e))?;
    }
    if let Some(src) = &new.source {
        owner::give_live(s, dom, ctx.generation, src)?;
    }
    let res = swap(s, dom, ctx.generation, i, &old, new).await;
    if let Some(src) = &new.source {
        owner::given(dom, ctx.generation, src);
    }
    // The medium QEMU no longer holds (the old one, or a new one that
    // failed to go in) goes back to its owner.
    owner::settle(s, dom, ctx.generation);
    res
}

/// Takes the old medium of CD-ROM `i` out and puts the new one in.
async fn swap(
    s: &Shared,
    dom: &Domain,
    generation: u64,
    i: usize,
    old: &DiskDef,
    new: &DiskDef,
) -> Result<()> {
    let alias = old.alias();
    let t = s.cfg.monitor_timeout;
    let open = BlockdevOpenTray {
        id: alias.clone(),
        force: true,
    };
    dom.qmp(&open, t).await?;
    if old.source.is_some() {
        dom.qmp(&BlockdevRemoveMedium { id: alias.clone() }, t)
            .await?;
        let (storage, format) = domain::disk_nodes(i, old);
        set_media(s, dom, generation, &old.target, None, None)?;
        for node_name in [format, storage] {
            if let Err(e) = dom.qmp(&BlockdevDel { node_name }, t).await {
                tracing::warn!(domain = dom.name(), error = %e, "cannot delete the node of an ejected medium");
            }
        }
    }
    if let Some(src) = &new.source {
        insert(s, dom, generation, &alias, new, src).await?;
    }
    Ok(())
}

/// Adds the nodes of `src` and puts them into the open, empty tray of
/// `alias`, then closes it.
async fn insert(
    s: &Shared,
    dom: &Domain,
    generation: u64,
    alias: &str,
    new: &DiskDef,
    src: &std::path::Path,
) -> Result<()> {
    let t = s.cfg.monitor_timeout;
    let used = super::node_numbers_in_use(s, dom).await?;
    let live = dom.lock().live().cloned().ok_or(Error::NotRunning)?;
    let (with, i) = live.changed(|d| {
        let i = d.find_disk(&new.target)?;
        d.set_disk_media(i, Some(src.to_path_buf()), new.driver.format, true);
        super::skip_used_numbers(d, i, &used);
        Ok(i)
    })?;
    let Some(plug) = with.domain().disk_plug(i) else {
        return Err(Error::Internal("cdrom missing".into()));
    };
    let mut added = Vec::new();
    for b in &plug.blockdevs {
        let args = b.as_object().cloned().unwrap_or_default();
        if let Err(e) = dom.qmp(&BlockdevAdd(args), t).await {
            undo(s, dom, added).await;
            return Err(e);
        }
        added.push(b["node-name"].as_str().unwrap_or_default().to_owned());
    }
    let cmd = BlockdevInsertMedium {
        id: alias.to_owned(),
        node_name: plug.nodes.1.clone(),
    };
    if let Err(e) = dom.qmp(&cmd, t).await {
        undo(s, dom, added).await;
        return Err(e);
    }
    dom.lock().update_live(generation, |_| with.clone());
    status::persist(s, dom)?;
    dom.qmp(
        &BlockdevCloseTray {
            id: alias.to_owned(),
        },
        t,
    )
    .await?;
    Ok(())
}

async fn undo(s: &Shared, dom: &Domain, added: Vec<String>) {
    for node_name in added.into_iter().rev() {
        if let Err(e) = dom
            .qmp(&BlockdevDel { node_name }, s.cfg.monitor_timeout)
            .await
        {
            tracing::warn!(domain = dom.name(), error = %e, "cannot remove node of a failed insert");
        }
    }
}

/// The live CD-ROM `target` now holds `source` (none: empty).
fn set_media(
    s: &Shared,
    dom: &Domain,
    generation: u64,
    target: &str,
    source: Option<PathBuf>,
    format: Option<DiskFormat>,
) -> Result<()> {
    {
        let mut g = dom.lock();
        let Some(live) = g.live().cloned() else {
            return Err(Error::NotRunning);
        };
        let (with, ()) = live.changed(|d| {
            let i = d.find_disk(target)?;
            d.set_disk_media(i, source, format, true);
            Ok(())
        })?;
        g.update_live(generation, |_| with);
    }
    status::persist(s, dom)
}
