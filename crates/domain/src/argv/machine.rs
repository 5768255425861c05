//! `-machine`, `-cpu` and `-smp`.

use super::{Accel, Args, Ctx, esc};
use crate::def::*;
use crate::error::DomainXmlError;
use crate::features::HypervFeature;

pub(super) fn machine(cx: &Ctx<'_>, a: &mut Args) -> Result<(), DomainXmlError> {
    let def = cx.def;
    let f = &def.features;
    let mut m = format!(
        "{},usb=off,dump-guest-core=off,accel={}",
        esc(&cx.machine),
        cx.launch.accel.as_str()
    );
    let mut push = |s: &str| {
        m.push(',');
        m.push_str(s);
    };
    if let Some(v) = f.vmport {
        push(if v { "vmport=on" } else { "vmport=off" });
    }
    if let Some(s) = f.smm {
        push(if s { "smm=on" } else { "smm=off" });
    }
    if let Some(d) = f.ioapic {
        push(match d {
            IoapicDriver::Qemu => "kernel_irqchip=split",
            IoapicDriver::Kvm => "kernel_irqchip=on",
        });
    }
    if def.memory_backing.as_ref().is_some_and(|b| b.nosharepages) {
        push("mem-merge=off");
    }
    if def
        .os
        .loader
        .as_ref()
        .is_some_and(|l| l.ltype == Some(LoaderType::Pflash))
    {
        push("pflash0=libvirt-pflash0-format");
        if def.os.nvram.as_ref().is_some_and(|n| n.path.is_some()) {
            push("pflash1=libvirt-pflash1-format");
        }
    }
    if super::memory::uses_backend(def) {
        push("memory-backend=pc.ram");
    }
    if def.os.bios.is_some_and(|b| b.useserial == Some(true)) {
        push("graphics=off");
    }
    push(if f.acpi { "acpi=on" } else { "acpi=off" });
    let hpet = def.clock.as_ref().and_then(|c| c.timer(TimerName::Hpet));
    if hpet.and_then(|t| t.present) == Some(false) {
        push("hpet=off");
    }
    a.opt("-machine", m);
    if f.vmcoreinfo == Some(true) {
        cx.require_device("vmcoreinfo", "feature", "vmcoreinfo")?;
        a.device("vmcoreinfo");
    }
    Ok(())
}

/// The base of `-cpu` for the mode and accelerator (`None`: QEMU's
/// default model, no `-cpu`).
fn cpu_model(def: &DomainDef, accel: Accel) -> Result<Option<String>, DomainXmlError> {
    let Some(cpu) = &def.cpu else {
        return Ok(None);
    };
    let s = match (cpu.mode, accel) {
        (CpuMode::HostPassthrough, Accel::Kvm) => "host".to_string(),
        (CpuMode::HostPassthrough, Accel::Tcg) => {
            return Err(DomainXmlError::unsupported_because(
                "cpu mode",
                "host-passthrough",
                "it needs KVM; use mode='maximum' for TCG",
            ));
        }
        // host-model should expand to a named model matching the host; with
        // KVM `host` is the faithful approximation, with TCG `max`.
        (CpuMode::HostModel, Accel::Kvm) => "host".to_string(),
        (CpuMode::HostModel, Accel::Tcg) | (CpuMode::Maximum, _) => "max".to_string(),
        (CpuMode::Custom, _) => match &cpu.model {
            Some(m) => m.clone(),
            None => return Ok(None),
        },
    };
    Ok(Some(s))
}

/// `-cpu` properties from `<cpu>` features and the CPU-visible
/// `<features>` (Hyper-V, KVM, PMU) and timers (hypervclock, kvmclock).
fn cpu_props(def: &DomainDef, accel: Accel) -> Result<Vec<String>, DomainXmlError> {
    let mut p = Vec::new();
    if let Some(cpu) = &def.cpu {
        if let (Some(m), CpuMode::HostPassthrough) = (cpu.migratable, cpu.mode) {
            p.push(format!("migratable={}", if m { "on" } else { "off" }));
        }
        for f in &cpu.features {
            let on = if f.policy.enables() { "on" } else { "off" };
            p.push(format!("{}={on}", f.name));
        }
    }
    let onoff = |b: bool| if b { "on" } else { "off" };
    let f = &def.features;
    if let Some(e) = f.apic_eoi {
        p.push(format!("kvm-pv-eoi={}", onoff(e)));
    }
    if let Some(v) = f.pvspinlock {
        p.push(format!("kvm-pv-unhalt={}", onoff(v)));
    }
    if let Some(v) = f.pmu {
        p.push(format!("pmu={}", onoff(v)));
    }
    for (k, on) in &f.kvm {
        p.push(match k {
            KvmFeature::Hidden => format!("kvm={}", onoff(!on)),
            KvmFeature::HintDedicated => format!("kvm-hint-dedicated={}", onoff(*on)),
            KvmFeature::PollControl => format!("kvm-poll-control={}", onoff(*on)),
            KvmFeature::PvIpi => format!("kvm-pv-ipi={}", onoff(*on)),
        });
    }
    if let Some(h) = &f.hyperv {
        hyperv_props(h, accel, &mut p)?;
    }
    timer_props(def, &mut p);
    Ok(p)
}

fn hyperv_props(h: &HypervDef, accel: Accel, p: &mut Vec<String>) -> Result<(), DomainXmlError> {
    if h.mode == Some(HypervMode::Passthrough) {
        if accel != Accel::Kvm {
            return Err(DomainXmlError::unsupported_because(
                "hyperv mode",
                "passthrough",
                "it passes KVM's enlightenments through; it needs KVM",
            ));
        }
        p.push("hv-passthrough=on".into());
        return Ok(());
    }
    for (feat, on) in &h.features {
        if !on {
            continue;
        }
        if *feat == HypervFeature::Vpindex && accel != Accel::Kvm {
            return Err(DomainXmlError::unsupported_because(
                "hyperv feature",
                "vpindex",
                "QEMU provides it only under KVM",
            ));
        }
        match feat {
            HypervFeature::Spinlocks => {
                p.push(format!(
                    "hv-spinlocks=0x{:x}",
                    h.spinlocks_retries.unwrap_or(8191)
                ));
            }
            HypervFeature::VendorId => {
                p.push(format!(
                    "hv-vendor-id={}",
                    h.vendor_id.as_deref().unwrap_or("")
                ));
            }
            HypervFeature::Stimer => {
                p.push("hv-stimer=on".into());
                if h.stimer_direct == Some(true) {
                    p.push("hv-stimer-direct=on".into());
                }
            }
            other => p.push(format!("{}=on", other.qemu_prop())),
        }
    }
    Ok(())
}

fn timer_props(def: &DomainDef, p: &mut Vec<String>) {
    let Some(clock) = &def.clock else {
        return;
    };
    if clock.timer(TimerName::Hypervclock).and_then(|t| t.present) == Some(true) {
        p.push("hv-time=on".into());
    }
    if let Some(k) = clock.timer(TimerName::Kvmclock).and_then(|t| t.present) {
        p.push(format!("kvmclock={}", if k { "on" } else { "off" }));
    }
}

pub(super) fn cpu(cx: &Ctx<'_>, a: &mut Args) -> Result<(), DomainXmlError> {
    let accel = cx.launch.accel;
    let props = cpu_props(cx.def, accel)?;
    let base = match cpu_model(cx.def, accel)? {
        Some(m) => m,
        None if props.is_empty() => return Ok(()),
        // Properties need a model: QEMU's default x86 one.
        None => "qemu64".to_string(),
    };
    let mut s = base;
    for prop in props {
        s.push(',');
        s.push_str(&prop);
    }
    a.opt("-cpu", s);
    Ok(())
}

pub(super) fn smp(cx: &Ctx<'_>, a: &mut Args) -> Result<(), DomainXmlError> {
    let def = cx.def;
    let max = cx.caps.cpu_max(&cx.machine).unwrap_or(match cx.family {
        MachineFamily::Q35 => 288,
        MachineFamily::I440fx => 255,
    });
    if def.vcpus > max {
        return Err(DomainXmlError::unsupported_because(
            "vcpu count",
            def.vcpus.to_string(),
            format!("machine '{}' supports at most {max}", cx.machine),
        ));
    }
    let mut s = def.boot_vcpus().to_string();
    if def.current_vcpus.is_some() {
        s.push_str(&format!(",maxcpus={}", def.vcpus));
    }
    match def.cpu.as_ref().and_then(|c| c.topology) {
        Some(t) => s.push_str(&format!(
            ",sockets={},dies={},cores={},threads={}",
            t.sockets, t.dies, t.cores, t.threads
        )),
        None => s.push_str(&format!(",sockets={},cores=1,threads=1", def.vcpus)),
    }
    a.opt("-smp", s);
    Ok(())
}
