//! `DomainDef` → XML in libvirt's dumpxml layout (element order, two-space
//! indentation, single-quoted attributes), so that tools diffing
//! `virsh dumpxml` output see familiar text.

use crate::clock::format_clock;
use crate::cpu::format_cpu;
use crate::def::*;
use crate::devices::{FormatCtx, format_devices};
use crate::features::format_features;
use crate::memory::format_memory_backing;
use crate::os::format_os;
use crate::parse::QEMU_NS;
use crate::sysinfo::format_sysinfo;
use crate::tune::{format_blkiotune, format_cputune, format_memtune};
use crate::values::yes_no;
use crate::xml::XmlWriter;

/// How to format: live (with the running domain's details) or inactive,
/// and whether secrets (graphics passwords) are shown.
#[derive(Debug, Clone, Copy, Default)]
pub struct XmlOptions<'a> {
    pub live: Option<&'a LiveInfo>,
    pub secure: bool,
}

pub(crate) fn format_domain(def: &DomainDef, o: XmlOptions<'_>) -> String {
    let mut w = XmlWriter::new();
    let mut attrs = vec![("type", def.domain_type.as_str().to_string())];
    if let Some(l) = o.live {
        attrs.push(("id", l.id.to_string()));
    }
    let has_qemu_ns = !def.qemu_commandline.args.is_empty() || !def.qemu_commandline.env.is_empty();
    if has_qemu_ns {
        attrs.push(("xmlns:qemu", QEMU_NS.to_string()));
    }
    w.open("domain", &attrs);
    format_identity(&mut w, def);
    format_sizes(&mut w, def);
    format_tuning(&mut w, def);
    if let Some(s) = &def.sysinfo {
        format_sysinfo(&mut w, s);
    }
    format_os(&mut w, &def.os);
    format_features(&mut w, &def.features);
    if let Some(c) = &def.cpu {
        format_cpu(&mut w, c);
    }
    if let Some(c) = &def.clock {
        format_clock(&mut w, c);
    }
    format_lifecycle(&mut w, def);
    let cx = FormatCtx {
        family: def.os.family(),
        live: o.live,
        secure: o.secure,
    };
    format_devices(&mut w, &def.devices, &cx);
    if def.seclabel_none {
        w.empty(
            "seclabel",
            &[("type", "none".into()), ("model", "none".into())],
        );
    }
    if has_qemu_ns {
        format_qemu_commandline(&mut w, &def.qemu_commandline);
    }
    w.close("domain");
    w.finish()
}

fn format_identity(w: &mut XmlWriter, def: &DomainDef) {
    w.text_elem("name", &[], &def.name);
    w.text_elem("uuid", &[], &def.uuid.hyphenated().to_string());
    if let Some(t) = &def.title {
        w.text_elem("title", &[], t);
    }
    if let Some(d) = &def.description {
        w.text_elem("description", &[], d);
    }
    if !def.metadata.is_empty() {
        w.open("metadata", &[]);
        for m in &def.metadata {
            w.element(m);
        }
        w.close("metadata");
    }
}

fn format_sizes(w: &mut XmlWriter, def: &DomainDef) {
    w.text_elem(
        "memory",
        &[("unit", "KiB".into())],
        &def.memory_kib.to_string(),
    );
    w.text_elem(
        "currentMemory",
        &[("unit", "KiB".into())],
        &def.current_memory_kib.to_string(),
    );
    if let Some(m) = &def.memory_backing {
        format_memory_backing(w, m);
    }
    let placement = match def.vcpu_placement {
        VcpuPlacement::Static => "static",
        VcpuPlacement::Auto => "auto",
    };
    let mut a = vec![("placement", placement.to_string())];
    if let Some(s) = &def.vcpu_cpuset {
        a.push(("cpuset", s.to_string()));
    }
    if let Some(c) = def.current_vcpus {
        a.push(("current", c.to_string()));
    }
    w.text_elem("vcpu", &a, &def.vcpus.to_string());
    format_iothreads(w, &def.iothread_ids);
}

fn format_iothreads(w: &mut XmlWriter, ids: &[u32]) {
    if ids.is_empty() {
        return;
    }
    w.text_elem("iothreads", &[], &ids.len().to_string());
    let sequential = ids.iter().enumerate().all(|(i, id)| *id == i as u32 + 1);
    if !sequential {
        w.open("iothreadids", &[]);
        for id in ids {
            w.empty("iothread", &[("id", id.to_string())]);
        }
        w.close("iothreadids");
    }
}

fn format_tuning(w: &mut XmlWriter, def: &DomainDef) {
    format_cputune(w, &def.cputune);
    format_memtune(w, &def.memtune);
    format_blkiotune(w, &def.blkiotune);
    if let Some(p) = &def.resource_partition {
        w.open("resource", &[]);
        w.text_elem("partition", &[], p);
        w.close("resource");
    }
}

fn format_lifecycle(w: &mut XmlWriter, def: &DomainDef) {
    w.text_elem("on_poweroff", &[], def.on_poweroff.as_str());
    w.text_elem("on_reboot", &[], def.on_reboot.as_str());
    w.text_elem("on_crash", &[], def.on_crash.as_str());
    if let Some(l) = &def.on_lockfailure {
        w.text_elem("on_lockfailure", &[], l);
    }
    let Some(pm) = &def.pm else {
        return;
    };
    if pm.suspend_to_mem.is_none() && pm.suspend_to_disk.is_none() {
        w.empty("pm", &[]);
        return;
    }
    w.open("pm", &[]);
    if let Some(v) = pm.suspend_to_mem {
        w.empty("suspend-to-mem", &[("enabled", yes_no(v))]);
    }
    if let Some(v) = pm.suspend_to_disk {
        w.empty("suspend-to-disk", &[("enabled", yes_no(v))]);
    }
    w.close("pm");
}

fn format_qemu_commandline(w: &mut XmlWriter, q: &QemuCommandline) {
    w.open("qemu:commandline", &[]);
    for a in &q.args {
        w.empty("qemu:arg", &[("value", a.clone())]);
    }
    for (k, v) in &q.env {
        w.empty("qemu:env", &[("name", k.clone()), ("value", v.clone())]);
    }
    w.close("qemu:commandline");
}
