//! `-m`, RAM backends (`<memoryBacking>`), NUMA cells and I/O threads.

use super::{Args, Ctx, esc_path};
use crate::def::*;
use crate::error::DomainXmlError;

/// RAM comes from an explicit backend object (`pc.ram`) rather than QEMU's
/// default: when `<memoryBacking>` asks for something the default lacks
/// and there are no NUMA cells (which have backends of their own).
pub(super) fn uses_backend(def: &DomainDef) -> bool {
    let numa = def.cpu.as_ref().is_some_and(|c| !c.numa.is_empty());
    !numa
        && def
            .memory_backing
            .as_ref()
            .is_some_and(MemoryBacking::needs_backend)
}

pub(super) fn memory(cx: &Ctx<'_>, a: &mut Args) -> Result<(), DomainXmlError> {
    let def = cx.def;
    a.opt("-m", format!("size={}k", def.memory_kib));
    if uses_backend(def) {
        a.opt("-object", backend(cx, "pc.ram", def.memory_kib, None));
    }
    if def.memory_backing.as_ref().is_some_and(|b| b.locked) {
        a.opt("-overcommit", "mem-lock=on");
    }
    Ok(())
}

/// A `memory-backend-*` object of `kib` for RAM or a NUMA cell.
fn backend(cx: &Ctx<'_>, id: &str, kib: u64, cell_shared: Option<bool>) -> String {
    let b = cx.def.memory_backing.clone().unwrap_or_default();
    let bytes = kib * 1024;
    let mut s = match (b.hugepages, b.source) {
        (Some(size), _) => {
            let mut s = format!("memory-backend-memfd,id={id},size={bytes},hugetlb=on");
            if let Some(k) = size {
                s.push_str(&format!(",hugetlbsize={}", k * 1024));
            }
            s
        }
        (None, Some(MemorySource::Memfd)) => format!("memory-backend-memfd,id={id},size={bytes}"),
        (None, Some(MemorySource::File)) => format!(
            "memory-backend-file,id={id},mem-path={},size={bytes}",
            esc_path(&cx.launch.domain_run_dir)
        ),
        _ => format!("memory-backend-ram,id={id},size={bytes}"),
    };
    if let Some(sh) = cell_shared.or(b.shared) {
        s.push_str(if sh { ",share=on" } else { ",share=off" });
    }
    if b.allocation == Some(AllocationMode::Immediate) || b.hugepages.is_some() {
        s.push_str(",prealloc=on");
    }
    if b.discard {
        s.push_str(",discard-data=on");
    }
    s
}

pub(super) fn numa(cx: &Ctx<'_>, a: &mut Args) {
    let Some(cpu) = &cx.def.cpu else {
        return;
    };
    for cell in &cpu.numa {
        let id = format!("ram-node{}", cell.id);
        a.opt("-object", backend(cx, &id, cell.memory_kib, cell.shared));
        let mut n = format!("node,nodeid={}", cell.id);
        for (lo, hi) in cell.cpus.ranges() {
            if lo == hi {
                n.push_str(&format!(",cpus={lo}"));
            } else {
                n.push_str(&format!(",cpus={lo}-{hi}"));
            }
        }
        n.push_str(&format!(",memdev={id}"));
        a.opt("-numa", n);
    }
}

pub(super) fn iothreads(cx: &Ctx<'_>, a: &mut Args) {
    for id in &cx.def.iothread_ids {
        a.opt("-object", format!("iothread,id=iothread{id}"));
    }
}
