//! `DomainDef` → XML in libvirt's dumpxml layout (element order, two-space
//! indentation, single-quoted attributes), so that tools diffing
//! `virsh dumpxml` output see familiar text.

use crate::def::*;
use crate::devices::format_devices;
use crate::parse::QEMU_NS;
use crate::xml::XmlWriter;

pub(crate) fn on_off(b: bool) -> String {
    if b { "on" } else { "off" }.to_string()
}

pub(crate) fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

pub(crate) fn format_domain(def: &DomainDef, live: Option<&LiveInfo>) -> String {
    let mut w = XmlWriter::new();
    let mut attrs = vec![("type", def.domain_type.as_str().to_string())];
    if let Some(l) = live {
        attrs.push(("id", l.id.to_string()));
    }
    let has_qemu_ns = !def.qemu_commandline.args.is_empty() || !def.qemu_commandline.env.is_empty();
    if has_qemu_ns {
        attrs.push(("xmlns:qemu", QEMU_NS.to_string()));
    }
    w.open("domain", &attrs);
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
    let placement = match def.vcpu_placement {
        VcpuPlacement::Static => "static",
        VcpuPlacement::Auto => "auto",
    };
    w.text_elem(
        "vcpu",
        &[("placement", placement.into())],
        &def.vcpus.to_string(),
    );
    format_os(&mut w, &def.os);
    format_features(&mut w, &def.features);
    if let Some(c) = &def.cpu {
        format_cpu(&mut w, c);
    }
    if let Some(c) = &def.clock {
        format_clock(&mut w, c);
    }
    w.text_elem("on_poweroff", &[], def.on_poweroff.as_str());
    w.text_elem("on_reboot", &[], def.on_reboot.as_str());
    w.text_elem("on_crash", &[], def.on_crash.as_str());
    if let Some(l) = &def.on_lockfailure {
        w.text_elem("on_lockfailure", &[], l);
    }
    if let Some(pm) = &def.pm {
        if pm.suspend_to_mem.is_none() && pm.suspend_to_disk.is_none() {
            w.empty("pm", &[]);
        } else {
            w.open("pm", &[]);
            if let Some(v) = pm.suspend_to_mem {
                w.empty("suspend-to-mem", &[("enabled", yes_no(v))]);
            }
            if let Some(v) = pm.suspend_to_disk {
                w.empty("suspend-to-disk", &[("enabled", yes_no(v))]);
            }
            w.close("pm");
        }
    }
    format_devices(&mut w, &def.devices, def.os.family(), live);
    if def.seclabel_none {
        w.empty(
            "seclabel",
            &[("type", "none".into()), ("model", "none".into())],
        );
    }
    if has_qemu_ns {
        w.open("qemu:commandline", &[]);
        for a in &def.qemu_commandline.args {
            w.empty("qemu:arg", &[("value", a.clone())]);
        }
        for (k, v) in &def.qemu_commandline.env {
            w.empty("qemu:env", &[("name", k.clone()), ("value", v.clone())]);
        }
        w.close("qemu:commandline");
    }
    w.close("domain");
    w.finish()
}

fn format_os(w: &mut XmlWriter, os: &OsDef) {
    w.open("os", &[]);
    let mut attrs = vec![("arch", "x86_64".to_string())];
    if let Some(m) = &os.machine {
        attrs.push(("machine", m.clone()));
    }
    w.text_elem("type", &attrs, "hvm");
    if let Some(k) = &os.kernel {
        w.text_elem("kernel", &[], &k.to_string_lossy());
    }
    if let Some(i) = &os.initrd {
        w.text_elem("initrd", &[], &i.to_string_lossy());
    }
    if let Some(c) = &os.cmdline {
        w.text_elem("cmdline", &[], c);
    }
    for b in &os.boot_devs {
        w.empty("boot", &[("dev", b.as_str().into())]);
    }
    if let Some(m) = os.bootmenu {
        w.empty("bootmenu", &[("enable", yes_no(m))]);
    }
    w.close("os");
}

fn format_features(w: &mut XmlWriter, f: &Features) {
    if f == &Features::default() {
        return;
    }
    w.open("features", &[]);
    if f.acpi {
        w.empty("acpi", &[]);
    }
    if f.apic {
        w.empty("apic", &[]);
    }
    if f.pae {
        w.empty("pae", &[]);
    }
    if let Some(v) = f.vmport {
        w.empty("vmport", &[("state", on_off(v))]);
    }
    w.close("features");
}

fn format_cpu(w: &mut XmlWriter, c: &CpuDef) {
    let mut attrs = vec![("mode", c.mode.as_str().to_string())];
    if let Some(m) = &c.match_ {
        attrs.push(("match", m.clone()));
    }
    if let Some(m) = &c.check {
        attrs.push(("check", m.clone()));
    }
    if let Some(m) = c.migratable {
        attrs.push(("migratable", on_off(m)));
    }
    if c.model.is_none() && c.topology.is_none() && c.features.is_empty() {
        w.empty("cpu", &attrs);
        return;
    }
    w.open("cpu", &attrs);
    if let Some(m) = &c.model {
        let fb: Vec<(&str, String)> = c.fallback.iter().map(|f| ("fallback", f.clone())).collect();
        w.text_elem("model", &fb, m);
    }
    if let Some(t) = &c.topology {
        w.empty(
            "topology",
            &[
                ("sockets", t.sockets.to_string()),
                ("dies", t.dies.to_string()),
                ("cores", t.cores.to_string()),
                ("threads", t.threads.to_string()),
            ],
        );
    }
    for f in &c.features {
        w.empty(
            "feature",
            &[
                ("policy", f.policy.as_str().into()),
                ("name", f.name.clone()),
            ],
        );
    }
    w.close("cpu");
}

fn format_clock(w: &mut XmlWriter, c: &ClockDef) {
    let offset = match c.offset {
        ClockOffset::Utc => "utc",
        ClockOffset::Localtime => "localtime",
    };
    if c.timers.is_empty() {
        w.empty("clock", &[("offset", offset.into())]);
        return;
    }
    w.open("clock", &[("offset", offset.into())]);
    for t in &c.timers {
        let mut a = vec![("name", t.name.clone())];
        if let Some(p) = &t.tickpolicy {
            a.push(("tickpolicy", p.clone()));
        }
        if let Some(p) = t.present {
            a.push(("present", yes_no(p)));
        }
        w.empty("timer", &a);
    }
    w.close("clock");
}
