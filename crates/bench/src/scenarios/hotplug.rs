//! Disk hot-plug on a booted guest: the test guest (kernel + initramfs,
//! real QEMU) boots on each daemon, then a virtio disk is attached live
//! and detached live, one call at a time, `rounds` times. A detach waits
//! for the guest to release the disk (QEMU's DEVICE_DELETED), up to the
//! daemon's own deadline (5 s on both), so the round trip is what a
//! client waits for a disk to come and go.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rpc::Client;
use rpc::protocol::remote::{
    DomainArgs, DomainAttachDeviceFlagsArgs, DomainDefineXmlArgs, DomainFlagsArgs,
    DomainGetXmlDescRet, DomainRet, NonnullDomain, procedure as p,
};

use crate::daemon::{Daemon, DaemonKind, Emu, Env};
use crate::error::{BenchError, BenchResult};
use crate::params::Params;
use crate::results::HotplugResult;
use crate::stats::LatencySummary;

/// Boot under TCG on a loaded machine: well under a minute, bounded.
const BOOT: Duration = Duration::from_secs(180);
/// A removal left pending completes later: how long to wait before the
/// next round.
const SETTLE: Duration = Duration::from_secs(60);
const AFFECT_LIVE: u32 = 1;

pub(crate) async fn run(
    kind: DaemonKind,
    env: &Env,
    params: &Params,
) -> BenchResult<HotplugResult> {
    let daemon = Daemon::start(kind, env, "hotplug")?;
    let dir = env.work.join(format!("hotplug-{}", kind.name()));
    let result = measure(&daemon, &dir, params.hotplug_rounds).await;
    daemon.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn measure(daemon: &Daemon, dir: &Path, rounds: usize) -> BenchResult<HotplugResult> {
    let io = |what: String| BenchError::io(what);
    std::fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
    let image = dir.join("vdb.img");
    let f = std::fs::File::create(&image).map_err(io(format!("create {}", image.display())))?;
    f.set_len(16 << 20)
        .map_err(io(format!("size {}", image.display())))?;
    let serial = dir.join("serial.log");
    let name = format!("{}hotplug", super::run_tag());
    let xml = guest_xml(daemon, &name, &serial)?;
    let client = crate::client::open_within(&daemon.socket, crate::client::CONNECT).await?;
    let dom: DomainRet = call(&client, p::DOMAIN_DEFINE_XML, &DomainDefineXmlArgs { xml }).await?;
    let dom = dom.dom;
    let args = DomainArgs { dom: dom.clone() };
    call::<_, ()>(&client, p::DOMAIN_CREATE, &args).await?;
    wait_for(|| {
        std::fs::read_to_string(&serial).is_ok_and(|s| s.contains(testkit::guest::READY_MARKER))
    })
    .await
    .ok_or(BenchError::Unsupported("the guest did not boot"))?;
    let disk = format!(
        "<disk type='file' device='disk'><driver name='qemu' type='raw'/>\
         <source file='{}'/><target dev='vdb' bus='virtio'/></disk>",
        image.display()
    );
    let mut figures = (Vec::new(), Vec::new(), Vec::new(), 0);
    for _ in 0..rounds {
        round(&client, &dom, &disk, &mut figures).await?;
    }
    call::<_, ()>(&client, p::DOMAIN_DESTROY, &args).await?;
    call::<_, ()>(&client, p::DOMAIN_UNDEFINE, &args).await?;
    client.close().await;
    let (attach, detach, both, pending) = figures;
    let r = HotplugResult {
        rounds,
        attach: LatencySummary::of(&attach),
        detach: LatencySummary::of(&detach),
        round_trip: LatencySummary::of(&both),
        pending,
    };
    eprintln!(
        "  [{}] hotplug: attach p50 {:?} us, detach p50 {:?} us, {} of {rounds} pending",
        daemon.label(),
        r.attach.p50_us,
        r.detach.p50_us,
        r.pending
    );
    Ok(r)
}

type Figures = (Vec<Duration>, Vec<Duration>, Vec<Duration>, usize);

/// One attach + detach; a removal left pending is waited for (not
/// measured) so the next round starts clean.
async fn round(
    client: &Client,
    dom: &NonnullDomain,
    disk: &str,
    f: &mut Figures,
) -> BenchResult<()> {
    let args = DomainAttachDeviceFlagsArgs {
        dom: dom.clone(),
        xml: disk.to_owned(),
        flags: AFFECT_LIVE,
    };
    let t0 = Instant::now();
    call::<_, ()>(client, p::DOMAIN_ATTACH_DEVICE_FLAGS, &args).await?;
    let attached = t0.elapsed();
    let t1 = Instant::now();
    call::<_, ()>(client, p::DOMAIN_DETACH_DEVICE_FLAGS, &args).await?;
    let detached = t1.elapsed();
    f.0.push(attached);
    f.1.push(detached);
    f.2.push(attached + detached);
    if has_vdb(client, dom).await? {
        f.3 += 1;
        let mut gone = false;
        let deadline = Instant::now() + SETTLE;
        while !gone && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            gone = !has_vdb(client, dom).await?;
        }
        if !gone {
            return Err(BenchError::Unsupported("the guest never released the disk"));
        }
    }
    Ok(())
}

async fn has_vdb(client: &Client, dom: &NonnullDomain) -> BenchResult<bool> {
    let args = DomainFlagsArgs {
        dom: dom.clone(),
        flags: 0,
    };
    let xml: DomainGetXmlDescRet = call(client, p::DOMAIN_GET_XML_DESC, &args).await?;
    Ok(xml.xml.contains("dev='vdb'"))
}

/// Polls `ready` every 100 ms until it holds or [`BOOT`] passes.
async fn wait_for(ready: impl Fn() -> bool) -> Option<()> {
    let deadline = Instant::now() + BOOT;
    while Instant::now() < deadline {
        if ready() {
            return Some(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// The bench's diskless domain, booting the test guest, with its serial
/// console in a file and free hot-plug ports.
fn guest_xml(daemon: &Daemon, name: &str, serial: &Path) -> BenchResult<String> {
    let g = testkit::guest::build()?;
    let (kernel, initrd): (&PathBuf, &PathBuf) = (&g.kernel, &g.initrd);
    let xml = daemon.domain_xml(name, Emu::Real, &[])?;
    let os = format!(
        "<os><type arch='x86_64' machine='q35'>hvm</type><kernel>{}</kernel>\
         <initrd>{}</initrd><cmdline>console=ttyS0 quiet</cmdline></os>\n  \
         <features><acpi/></features>",
        kernel.display(),
        initrd.display()
    );
    // Indexed: libvirt takes a PCI controller without one for index 0.
    let ports: String = (1..=2)
        .map(|i| format!("<controller type='pci' index='{i}' model='pcie-root-port'/>\n    "))
        .collect();
    Ok(xml
        .replace(
            "<memory unit='MiB'>64</memory>",
            "<memory unit='MiB'>256</memory>",
        )
        .replace(
            "<currentMemory unit='MiB'>64</currentMemory>",
            "<currentMemory unit='MiB'>256</currentMemory>",
        )
        .replace("<os><type arch='x86_64' machine='q35'>hvm</type></os>", &os)
        .replace(
            "<serial type='null'/>",
            &format!(
                "{ports}<serial type='file'><source path='{}'/></serial>",
                serial.display()
            ),
        ))
}

async fn call<A: rpc::xdr::Xdr, R: rpc::xdr::Xdr>(
    client: &Client,
    procedure: i32,
    args: &A,
) -> BenchResult<R> {
    client
        .call(procedure, args)
        .await
        .map_err(|e| BenchError::Refused {
            what: rpc::server::describe_procedure(procedure),
            answer: e.to_string(),
        })
}
